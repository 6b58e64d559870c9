//! Servers a test starts itself (redis-server nodes, Sentinel) on fixed loopback ports:
//! started as child processes, killed (SIGKILL) and reaped when dropped, so they stop also
//! when the test fails or panics.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// True under `CI=true`, where a test whose server cannot run fails instead of skipping.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Whether `program --version` runs. Under `CI=true` a missing program fails the test;
/// elsewhere the test prints "skipped" and returns.
pub fn have(program: &str, test: &str) -> bool {
    let ok = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            !under_ci(),
            "{test}: {program} is not on PATH under CI=true"
        );
        println!("skipped {test}: {program} is not on PATH");
    }
    ok
}

/// Fails the test unless nothing listens on 127.0.0.1:`port` (a server left over from an
/// earlier run, or another program, would make the test talk to the wrong server).
pub fn assert_port_free(port: u16) {
    assert!(
        TcpListener::bind(("127.0.0.1", port)).is_ok(),
        "loopback port {port} is in use: stop what listens there before running this test"
    );
}

/// Polls `f` every 50 ms until it returns `Some`, for at most `limit`; panics with `what`
/// when the time is up.
pub fn wait_for<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A child process, SIGKILLed and reaped on drop.
pub struct Proc {
    pub name: String,
    child: Option<Child>,
}

impl Proc {
    /// Starts `program args`, its output going to `log` (kept for a failing test to show).
    pub fn start(name: &str, program: &str, args: &[String], log: &Path) -> Proc {
        let out = std::fs::File::create(log).expect("create log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name} ({program}): {e}"));
        Proc {
            name: name.to_owned(),
            child: Some(child),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Sends `signal` (e.g. "STOP", "CONT") to the process.
    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -{signal} {} failed", self.name);
    }

    /// SIGKILL (as a crash would), and reap it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            // A stopped process dies of SIGKILL too.
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A connection to a Redis node (or Sentinel) on 127.0.0.1:`port`, with short timeouts.
pub fn redis_con(port: u16) -> redis::RedisResult<redis::Connection> {
    let c = redis::Client::open(format!("redis://127.0.0.1:{port}/"))?;
    let con = c.get_connection_with_timeout(Duration::from_millis(500))?;
    con.set_read_timeout(Some(Duration::from_secs(2)))?;
    con.set_write_timeout(Some(Duration::from_secs(2)))?;
    Ok(con)
}

/// One command's reply from the node on `port`, or `None` when it cannot be had.
pub fn redis_query<T: redis::FromRedisValue>(port: u16, cmd: &redis::Cmd) -> Option<T> {
    let mut con = redis_con(port).ok()?;
    cmd.query(&mut con).ok()
}

/// The node on `port` answers PING.
pub fn redis_up(port: u16) -> bool {
    redis_query::<String>(port, &redis::cmd("PING")).is_some_and(|p| p == "PONG")
}

/// `field:value` of `INFO section` on `port`.
pub fn redis_info(port: u16, section: &str, field: &str) -> Option<String> {
    let text: String = redis_query(port, redis::cmd("INFO").arg(section))?;
    text.lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_owned())
}

/// Starts `redis-server` on 127.0.0.1:`port` with no persistence and `extra` arguments,
/// working in `dir`, and waits until it answers PING.
pub fn redis_server(dir: &Path, port: u16, extra: &[&str]) -> Proc {
    assert_port_free(port);
    let mut args: Vec<String> = [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--maxmemory-policy",
        "noeviction",
        "--dir",
        &dir.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    let p = Proc::start(
        &format!("redis-server:{port}"),
        "redis-server",
        &args,
        &dir.join(format!("redis-{port}.log")),
    );
    wait_for(
        Duration::from_secs(10),
        &format!("redis-server on {port} up"),
        || redis_up(port).then_some(()),
    );
    p
}

/// The primary on `port`, still empty, streams writes to a replica that acknowledges them:
/// a `FLUSHALL` (a write, propagated, harmless on a server nothing uses yet) followed by
/// `WAIT 1 200` on the same connection returns 1. (After a full synchronisation the primary
/// streams nothing to a replica until its first acknowledgement, which the replica sends
/// up to a second after it says `master_link_status:up`; a `WAIT` in that second fails.)
pub fn replica_acknowledges(port: u16) -> bool {
    let Ok(mut con) = redis_con(port) else {
        return false;
    };
    let flushed: redis::RedisResult<()> = redis::cmd("FLUSHALL").query(&mut con);
    flushed.is_ok()
        && redis::cmd("WAIT")
            .arg(1)
            .arg(200)
            .query::<i64>(&mut con)
            .is_ok_and(|n| n == 1)
}
