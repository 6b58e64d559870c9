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
        .code(3)
        .stdout("")
        .stderr(contains("cannot prove"));
}

/// Item 20 of issue 13: a never-used prefix without --replay-redis-new-prefix says what
/// happened and what to do, as the store's failure (exit 3), not as a replay.
#[test]
fn item_20_a_never_used_prefix_says_cannot_prove_and_what_to_do() {
    let Some(url) = gate("item_20_a_never_used_prefix_says_cannot_prove_and_what_to_do") else {
        return;
    };
    let k = Keys::new();
    let p = prefix("item20");
    let env = k.seal(b"first");
    let out = k.open(&url, &p, &env).assert().code(3).stdout("");
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    for needle in [
        "cannot prove",
        "used for the first time",
        "--replay-redis-new-prefix",
        "seal this one again",
    ] {
        assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
    }
    assert!(!stderr.contains("replayed"), "{stderr}");
}

/// Item 16 of issue 13: without --replay-redis-prefix the prefix is derived from the
/// receiver's identity, so two services opening their copies of one message both accept
/// it; the same service twice does not.
#[test]
fn item_16_the_default_prefix_is_the_receivers_own() {
    let Some(url) = gate("item_16_the_default_prefix_is_the_receivers_own") else {
        return;
    };
    let k = Keys::new();
    let carol = rpcseal()
        .arg("keygen")
        .arg("-o")
        .arg(k.key("carol"))
        .assert()
        .success()
        .get_output()
        .stderr
        .clone();
    let carol = String::from_utf8(carol).unwrap();
    let carol = carol
        .trim()
        .strip_prefix("Public key: ")
        .unwrap()
        .to_owned();
    let env = rpcseal()
        .arg("seal")
        .arg("--from")
        .arg(k.key("alice"))
        .args(["--to", &k.bob, "--to", &carol])
        .write_stdin(&b"to both"[..])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let open = |who: &str| {
        let mut c = rpcseal();
        c.arg("open")
            .arg("--key")
            .arg(k.key(who))
            .arg("--trust")
            .arg(&k.alice)
            .args(["--replay-redis", &url, "--replay-redis-new-prefix"])
            .write_stdin(env.clone());
        c
    };
    open("bob").assert().success().stdout("to both");
    open("carol").assert().success().stdout("to both");
    open("bob").assert().code(1).stderr(contains("replayed"));
}

/// Item 10 of issue 13: the Redis URL (which may hold a password) can come from a file or
/// an environment variable instead of the command line.
#[test]
fn item_10_the_redis_url_from_a_file_or_the_environment() {
    let Some(url) = gate("item_10_the_redis_url_from_a_file_or_the_environment") else {
        return;
    };
    let k = Keys::new();
    let p = prefix("item10");
    let file = k.dir.path().join("redis.url");
    std::fs::write(&file, format!("{url}\n")).unwrap();
    let env = k.seal(b"via file");
    let open = |env: &[u8]| {
        let mut c = rpcseal();
        c.arg("open")
            .arg("--key")
            .arg(k.key("bob"))
            .arg("--trust")
            .arg(&k.alice)
            .args(["--replay-redis-prefix", &p])
            .write_stdin(env.to_vec());
        c
    };
    open(&env)
        .arg("--replay-redis-url-file")
        .arg(&file)
        .arg("--replay-redis-new-prefix")
        .assert()
        .success()
        .stdout("via file");
    open(&env)
        .args(["--replay-redis-url-env", "RPCSEAL_ITEM10_URL"])
        .env("RPCSEAL_ITEM10_URL", &url)
        .assert()
        .code(1)
        .stderr(contains("replayed"));
}
