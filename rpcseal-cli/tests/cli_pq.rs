//! Issue 15 through the command line: `keygen --pq`, `seal` choosing the post-quantum suite
//! by itself, `open --require-pq`, `require=pq` in a keyring, `inspect` naming the suite.

use std::path::PathBuf;

use assert_cmd::Command;
use predicates::prelude::*;
use predicates::str::contains;

fn rpcseal() -> Command {
    Command::cargo_bin("rpcseal").unwrap()
}

struct Keys {
    dir: tempfile::TempDir,
}

impl Keys {
    fn new() -> Keys {
        Keys {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn key(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.key"))
    }

    /// `rpcseal keygen -o NAME.key [ARGS]`, returns the public key printed on stderr.
    fn keygen(&self, name: &str, args: &[&str]) -> String {
        let out = rpcseal()
            .arg("keygen")
            .arg("-o")
            .arg(self.key(name))
            .args(args)
            .assert()
            .success()
            .get_output()
            .clone();
        String::from_utf8(out.stderr)
            .unwrap()
            .trim()
            .strip_prefix("Public key: ")
            .expect("keygen prints the public key")
            .to_owned()
    }
}

fn seal(keys: &Keys, from: &str, to: &[&str], extra: &[&str]) -> Vec<u8> {
    let mut cmd = rpcseal();
    cmd.arg("seal").arg("--from").arg(keys.key(from));
    for t in to {
        cmd.arg("--to").arg(t);
    }
    cmd.args(extra)
        .write_stdin(&b"quantum-safe"[..])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone()
}

fn suite_of(env: &[u8]) -> serde_json::Value {
    let out = rpcseal()
        .args(["inspect", "--json"])
        .write_stdin(env.to_vec())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    v["suite"].clone()
}

#[test]
fn keygen_pq_writes_xwing_keys_and_pubkey_prints_them() {
    let k = Keys::new();
    let public = k.keygen("bob", &["--pq"]);
    assert!(public.starts_with("rpcseal-pub-id-xwing:"), "{public}");
    let file = std::fs::read_to_string(k.key("bob")).unwrap();
    assert!(file.contains("# rpcseal post-quantum identity"));
    assert!(file.contains("\nRPCSEAL-SECRET-ID-XWING:"));
    rpcseal()
        .arg("pubkey")
        .arg(k.key("bob"))
        .assert()
        .success()
        .stdout(contains(public.as_str()));
    let group = k.keygen("team", &["--group", "--pq"]);
    assert!(group.starts_with("rpcseal-pub-group-xwing:"));
    rpcseal()
        .args(["keygen", "--symmetric", "--pq"])
        .assert()
        .code(2);
}

#[test]
fn seal_picks_suite_2_when_every_recipient_has_an_xwing_key() {
    let k = Keys::new();
    let alice = k.keygen("alice", &[]);
    let bob = k.keygen("bob", &["--pq"]);
    let carol = k.keygen("carol", &[]);
    let team = k.keygen("team", &["--group", "--pq"]);

    let env = seal(&k, "alice", &[&bob, &team], &[]);
    let suite = suite_of(&env);
    assert_eq!(suite["id"], 2);
    assert_eq!(
        suite["name"],
        "RPCSEAL-V3-XWING-CHACHA20POLY1305-BLAKE3-ED25519"
    );
    assert_eq!(suite["post_quantum"], true);
    rpcseal()
        .arg("inspect")
        .write_stdin(env.clone())
        .assert()
        .success()
        .stdout(contains(
            "2 (RPCSEAL-V3-XWING-CHACHA20POLY1305-BLAKE3-ED25519)",
        ));
    for (key, require) in [("bob", false), ("bob", true), ("team", true)] {
        let mut cmd = rpcseal();
        cmd.arg("open")
            .arg("--key")
            .arg(k.key(key))
            .arg("--trust")
            .arg(&alice);
        if require {
            cmd.arg("--require-pq");
        }
        cmd.write_stdin(env.clone())
            .assert()
            .success()
            .stdout("quantum-safe");
    }

    // A classical co-recipient: suite 1 for everyone, which --require-pq refuses.
    let mixed = seal(&k, "alice", &[&bob, &carol], &["--mode", "mac"]);
    assert_eq!(suite_of(&mixed)["id"], 1);
    assert_eq!(suite_of(&mixed)["post_quantum"], false);
    rpcseal()
        .arg("open")
        .arg("--key")
        .arg(k.key("bob"))
        .arg("--trust")
        .arg(&alice)
        .write_stdin(mixed.clone())
        .assert()
        .success();
    rpcseal()
        .arg("open")
        .arg("--key")
        .arg(k.key("bob"))
        .arg("--trust")
        .arg(&alice)
        .arg("--require-pq")
        .write_stdin(mixed)
        .assert()
        .code(1)
        .stderr(contains("suite_not_allowed"));

    // seal --require-pq refuses the mixed list before reading any payload.
    rpcseal()
        .arg("seal")
        .arg("--from")
        .arg(k.key("alice"))
        .args(["--to", &bob, "--to", &carol, "--require-pq"])
        .write_stdin(&b"x"[..])
        .assert()
        .code(2)
        .stderr(contains("X-Wing"));
}

#[test]
fn keyring_require_pq_and_old_key_files() {
    let k = Keys::new();
    let alice = k.keygen("alice", &[]);
    let bob_pq = k.keygen("bob", &["--pq"]);
    let ring = k.dir.path().join("keyring");
    std::fs::write(&ring, format!("trust alice {alice} require=pq\n")).unwrap();
    let pq = seal(&k, "alice", &[&bob_pq], &[]);
    rpcseal()
        .arg("open")
        .arg("--key")
        .arg(k.key("bob"))
        .arg("--keyring")
        .arg(&ring)
        .write_stdin(pq)
        .assert()
        .success()
        .stdout("quantum-safe");
    // bob's classical public key (its old form) gives a classical session: refused.
    let bob_classical = {
        let text = std::fs::read_to_string(k.key("bob")).unwrap();
        let secret = text.lines().find(|l| l.starts_with("RPCSEAL-")).unwrap();
        rpcseal::Identity::from_secret_string(secret)
            .unwrap()
            .public()
            .classical()
            .to_string()
    };
    let classical = seal(&k, "alice", &[&bob_classical], &[]);
    assert_eq!(suite_of(&classical)["id"], 1);
    rpcseal()
        .arg("open")
        .arg("--key")
        .arg(k.key("bob"))
        .arg("--keyring")
        .arg(&ring)
        .write_stdin(classical.clone())
        .assert()
        .code(1)
        .stderr(contains("suite_not_allowed").and(contains("require=pq")));
    // Without the keyring option the same classical session opens: old peers keep working.
    rpcseal()
        .arg("open")
        .arg("--key")
        .arg(k.key("bob"))
        .arg("--trust")
        .arg(&alice)
        .write_stdin(classical)
        .assert()
        .success()
        .stdout("quantum-safe");
    // A bad require value names the line, not its text.
    std::fs::write(&ring, format!("trust alice {alice} require=yes\n")).unwrap();
    rpcseal()
        .arg("open")
        .arg("--key")
        .arg(k.key("bob"))
        .arg("--keyring")
        .arg(&ring)
        .write_stdin(&b""[..])
        .assert()
        .code(3)
        .stderr(contains("line 1").and(contains(&alice[20..40]).not()));
}
