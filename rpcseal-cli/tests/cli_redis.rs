//! `rpcseal open --replay-redis URL`: the same envelope opened twice is rejected the second
//! time. Needs `RPCSEAL_TEST_REDIS_URL` and `redis-server` on PATH; skipped otherwise (failed
//! under `CI=true`).
//! Each test uses its own key prefix, so it touches no other keys of the server.
#![cfg(feature = "redis")]

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use assert_cmd::Command;
use predicates::str::contains;

/// The test server's URL; `None` (the test prints "skipped") without one, except under
/// `CI=true`, where a missing server fails the test.
fn gate(test: &str) -> Option<String> {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let url = match std::env::var("RPCSEAL_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            assert!(
                !ci,
                "{test}: RPCSEAL_TEST_REDIS_URL is not set under CI=true"
            );
            println!("skipped {test}: RPCSEAL_TEST_REDIS_URL is not set");
            return None;
        }
    };
    let on_path = std::process::Command::new("redis-server")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !on_path {
        assert!(!ci, "{test}: redis-server is not on PATH under CI=true");
        println!("skipped {test}: redis-server is not on PATH");
        return None;
    }
    Some(url)
}

fn rpcseal() -> Command {
    Command::cargo_bin("rpcseal").unwrap()
}

fn prefix(test: &str) -> String {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("rpcseal-test:cli:{test}:{}:{t}", std::process::id())
}

struct Keys {
    dir: tempfile::TempDir,
    alice: String,
    bob: String,
}

impl Keys {
    fn new() -> Keys {
        let dir = tempfile::tempdir().unwrap();
        let keygen = |name: &str| {
            let out = rpcseal()
                .arg("keygen")
                .arg("-o")
                .arg(dir.path().join(format!("{name}.key")))
                .assert()
                .success()
                .get_output()
                .stderr
                .clone();
            String::from_utf8(out)
                .unwrap()
                .trim()
                .strip_prefix("Public key: ")
                .unwrap()
                .to_owned()
        };
        let alice = keygen("alice");
        let bob = keygen("bob");
        Keys { dir, alice, bob }
    }

    fn key(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.key"))
    }

    fn seal(&self, payload: &[u8]) -> Vec<u8> {
        rpcseal()
            .arg("seal")
            .arg("--from")
            .arg(self.key("alice"))
            .arg("--to")
            .arg(&self.bob)
            .write_stdin(payload)
            .assert()
            .success()
            .get_output()
            .stdout
            .clone()
    }

    fn open(&self, url: &str, prefix: &str, env: &[u8]) -> Command {
        let mut c = rpcseal();
        c.arg("open")
            .arg("--key")
            .arg(self.key("bob"))
            .arg("--trust")
            .arg(&self.alice)
            .args(["--replay-redis", url, "--replay-redis-prefix", prefix])
            .write_stdin(env.to_vec());
        c
    }
}

#[test]
fn redis_replay_state_rejects_the_second_open() {
    let Some(url) = gate("redis_replay_state_rejects_the_second_open") else {
        return;
    };
    let k = Keys::new();
    let p = prefix("twice");
    let env = k.seal(b"once only");
    // The first run on a brand-new prefix says so, and so starts without a loss watermark.
    k.open(&url, &p, &env)
        .arg("--replay-redis-new-prefix")
        .assert()
        .success()
        .stdout("once only");
    k.open(&url, &p, &env)
        .assert()
        .code(1)
        .stdout("")
        .stderr(contains("replayed"));
    // Another envelope still opens, once.
    let other = k.seal(b"another");
    k.open(&url, &p, &other)
        .assert()
        .success()
        .stdout("another");
    k.open(&url, &p, &other)
        .arg("--replay-redis-new-prefix") // the marker exists: changes nothing
        .assert()
        .code(1)
        .stderr(contains("replayed"));
}

#[test]
fn redis_new_prefix_without_the_flag_fails_closed() {
    let Some(url) = gate("redis_new_prefix_without_the_flag_fails_closed") else {
        return;
    };
    let k = Keys::new();
    let p = prefix("unmarked");
    let env = k.seal(b"early");
    // A missing marker is a loss as far as the store can tell: messages up to now + the
    // loss margin are rejected, never accepted twice.
    k.open(&url, &p, &env)
        .assert()
        .code(1)
        .stdout("")
        .stderr(contains("replayed"));
}
