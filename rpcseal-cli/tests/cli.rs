//! The `rpcseal` command as a user sees it: arguments in, exit code, stdout and stderr out.

use std::fs;
use std::path::{Path, PathBuf};

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

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `rpcseal keygen -o NAME.key`, returns the public key printed on stderr.
    fn keygen(&self, name: &str, group: bool) -> String {
        let mut cmd = rpcseal();
        cmd.arg("keygen")
            .arg("-o")
            .arg(self.path(&format!("{name}.key")));
        if group {
            cmd.arg("--group");
        }
        let out = cmd.assert().success().get_output().clone();
        let stderr = String::from_utf8(out.stderr).unwrap();
        stderr
            .trim()
            .strip_prefix("Public key: ")
            .expect("keygen prints the public key")
            .to_owned()
    }

    fn key(&self, name: &str) -> PathBuf {
        self.path(&format!("{name}.key"))
    }
}

fn seal_bytes(keys: &Keys, from: &str, to: &[&str], extra: &[&str], payload: &[u8]) -> Vec<u8> {
    let mut cmd = rpcseal();
    cmd.arg("seal").arg("--from").arg(keys.key(from));
    for t in to {
        cmd.arg("--to").arg(t);
    }
    cmd.args(extra)
        .write_stdin(payload)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone()
}

fn open_cmd(keys: &[&Path], trust: &str) -> Command {
    let mut cmd = rpcseal();
    cmd.arg("open");
    for k in keys {
        cmd.arg("--key").arg(k);
    }
    cmd.arg("--trust").arg(trust);
    cmd
}

#[cfg(unix)]
fn mode_of(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn keygen_writes_a_private_file_and_refuses_to_overwrite() {
    let k = Keys::new();
    let public = k.keygen("alice", false);
    assert!(public.starts_with("rpcseal-pub-id:"));
    let text = fs::read_to_string(k.key("alice")).unwrap();
    assert!(text.contains("# created: "));
    assert!(text.contains(&format!("# public key: {public}")));
    assert!(text
        .lines()
        .last()
        .unwrap()
        .starts_with("RPCSEAL-SECRET-ID:"));
    #[cfg(unix)]
    assert_eq!(mode_of(&k.key("alice")), 0o600);

    rpcseal()
        .args(["keygen", "-o"])
        .arg(k.key("alice"))
        .assert()
        .code(3)
        .stderr(contains("--force"));
    assert_eq!(fs::read_to_string(k.key("alice")).unwrap(), text);

    rpcseal()
        .args(["keygen", "--force", "-o"])
        .arg(k.key("alice"))
        .assert()
        .success();
    assert_ne!(fs::read_to_string(k.key("alice")).unwrap(), text);

    let group = k.keygen("team", true);
    assert!(group.starts_with("rpcseal-pub-group:"));
    assert!(fs::read_to_string(k.key("team"))
        .unwrap()
        .contains("RPCSEAL-SECRET-GROUP:"));
}

#[test]
fn pubkey_prints_the_public_key_and_refuses_open_permissions() {
    let k = Keys::new();
    let public = k.keygen("bob", false);
    rpcseal()
        .arg("pubkey")
        .arg(k.key("bob"))
        .assert()
        .success()
        .stdout(format!("{public}\n"))
        .stderr("");
    let group = k.keygen("team", true);
    rpcseal()
        .arg("pubkey")
        .arg(k.key("team"))
        .assert()
        .success()
        .stdout(format!("{group}\n"));

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(k.key("bob"), fs::Permissions::from_mode(0o644)).unwrap();
        rpcseal()
            .arg("pubkey")
            .arg(k.key("bob"))
            .assert()
            .code(3)
            .stderr(contains("chmod 600"));
        rpcseal()
            .arg("pubkey")
            .arg(k.key("bob"))
            .arg("--dangerous-allow-readable-key-files")
            .assert()
            .success()
            .stderr(contains("warning").and(contains("chmod 600")));
    }
}

#[test]
fn one_to_one_round_trip_through_files_and_through_pipes() {
    let k = Keys::new();
    let alice = k.keygen("alice", false);
    let bob = k.keygen("bob", false);
    // The recipient as a public key file written by `pubkey`.
    fs::write(k.path("bob.pub"), format!("# bob\n{bob}\n")).unwrap();
    fs::write(k.path("msg"), b"hello bob").unwrap();

    for mode in ["signed", "mac", "sign-only"] {
        rpcseal()
            .arg("seal")
            .arg("--from")
            .arg(k.key("alice"))
            .arg("--to")
            .arg(k.path("bob.pub"))
            .args(["--mode", mode, "--meta", "method=greet"])
            .arg("-i")
            .arg(k.path("msg"))
            .arg("-o")
            .arg(k.path("msg.env"))
            .assert()
            .success()
            .stdout("");
        open_cmd(&[&k.key("bob")], &alice)
            .arg("-i")
            .arg(k.path("msg.env"))
            .arg("-o")
            .arg(k.path("msg.out"))
            .arg("--force") // one file for every mode: replaced each time
            .assert()
            .success();
        assert_eq!(fs::read(k.path("msg.out")).unwrap(), b"hello bob");
    }

    let env = seal_bytes(&k, "alice", &[&bob], &[], b"through a pipe");
    open_cmd(&[&k.key("bob")], &alice)
        .write_stdin(env.clone())
        .assert()
        .success()
        .stdout("through a pipe");

    // --json: payload in base64 and the session's facts.
    let out = open_cmd(&[&k.key("bob")], &alice)
        .arg("--json")
        .write_stdin(env)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["payload_base64"], "dGhyb3VnaCBhIHBpcGU=");
    assert_eq!(v["session"]["mode"], "signed");
    assert_eq!(v["session"]["recipient_index"], 0);
    assert_eq!(v["session"]["via_group"], false);
    assert_eq!(v["seq"], 0);
    assert_eq!(v["session"]["session_id"].as_str().unwrap().len(), 32);
    let sender = v["sender"].as_str().unwrap().to_owned();
    // The sender id is the one `inspect` shows.
    rpcseal()
        .arg("inspect")
        .arg("-i")
        .arg(k.path("msg.env"))
        .assert()
        .success()
        .stdout(contains(&sender));
}

#[test]
fn group_round_trip_reaches_every_member() {
    let k = Keys::new();
    let alice = k.keygen("alice", false);
    k.keygen("carol", false);
    k.keygen("dave", false);
    let team = k.keygen("team", true);
    let env = seal_bytes(
        &k,
        "alice",
        &[&team],
        &["--meta", "method=announce"],
        b"to all",
    );
    fs::write(k.path("group.env"), &env).unwrap();
    for member in ["carol", "dave"] {
        let out = open_cmd(&[&k.key(member), &k.key("team")], &alice)
            .arg("--json")
            .arg("-i")
            .arg(k.path("group.env"))
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["session"]["via_group"], true);
        assert_eq!(v["metadata"]["method"], "announce");
        assert_eq!(v["payload_base64"], "dG8gYWxs");
    }
    // MAC mode to a group needs the loud opt-in.
    rpcseal()
        .arg("seal")
        .arg("--from")
        .arg(k.key("alice"))
        .args(["--to", &team, "--mode", "mac"])
        .write_stdin("x")
        .assert()
        .code(2)
        .stderr(contains("--dangerous-allow-mac-to-group"));
}

#[test]
fn tampered_envelope_is_rejected_with_its_failure_class() {
    let k = Keys::new();
    let alice = k.keygen("alice", false);
    let bob = k.keygen("bob", false);
    let mut env = seal_bytes(&k, "alice", &[&bob], &[], b"do not touch");
    let i = env.len() - 70;
    env[i] ^= 1;
    open_cmd(&[&k.key("bob")], &alice)
        .write_stdin(env)
        .assert()
        .code(1)
        .stdout("")
        .stderr(contains("envelope rejected").and(contains("bad_authenticator")));
}

#[test]
fn wrong_key_or_untrusted_sender_is_rejected() {
    let k = Keys::new();
    let alice = k.keygen("alice", false);
    let bob = k.keygen("bob", false);
    let mallory = k.keygen("mallory", false);
    let env = seal_bytes(&k, "alice", &[&bob], &[], b"for bob");
    open_cmd(&[&k.key("mallory")], &alice)
        .write_stdin(env.clone())
        .assert()
        .code(1)
        .stderr(contains("not_for_us"));
    open_cmd(&[&k.key("bob")], &mallory)
        .write_stdin(env)
        .assert()
        .code(1)
        .stderr(contains("untrusted_sender"));
}

#[test]
fn unusable_key_files_exit_3_without_echoing_keys() {
    let k = Keys::new();
    let alice = k.keygen("alice", false);
    let bob = k.keygen("bob", false);
    let env = seal_bytes(&k, "alice", &[&bob], &[], b"x");

    // Missing.
    open_cmd(&[&k.path("nope.key")], &alice)
        .write_stdin(env.clone())
        .assert()
        .code(3)
        .stderr(contains("cannot read key file"));
    // Damaged: one character of the secret changed, the checksum catches it.
    let text = fs::read_to_string(k.key("bob")).unwrap();
    let secret = text.lines().last().unwrap().to_owned();
    let mut damaged = secret.clone().into_bytes();
    let i = damaged.len() - 10;
    damaged[i] = if damaged[i] == b'A' { b'B' } else { b'A' };
    let damaged = String::from_utf8(damaged).unwrap();
    write_private(&k.path("damaged.key"), &damaged);
    open_cmd(&[&k.path("damaged.key")], &alice)
        .write_stdin(env.clone())
        .assert()
        .code(3)
        .stderr(contains("checksum").and(contains(&secret[20..40]).not()));
    // Not a key at all.
    write_private(&k.path("junk.key"), "hello\n");
    open_cmd(&[&k.path("junk.key")], &alice)
        .write_stdin(env.clone())
        .assert()
        .code(3)
        .stderr(contains("not an rpcseal key"));
    // A secret key where a public key belongs.
    rpcseal()
        .arg("seal")
        .arg("--from")
        .arg(k.key("alice"))
        .arg("--to")
        .arg(k.key("bob"))
        .write_stdin("x")
        .assert()
        .code(3)
        .stderr(contains("rpcseal pubkey").and(contains(&secret[20..40]).not()));
    // A public key where the sender's identity file belongs.
    fs::write(k.path("bob.pub"), format!("{bob}\n")).unwrap();
    rpcseal()
        .arg("seal")
        .arg("--from")
        .arg(k.path("bob.pub"))
        .args(["--to", &bob])
        .write_stdin("x")
        .assert()
        .code(3);
}

fn write_private(p: &Path, text: &str) {
    fs::write(p, text).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(p, fs::Permissions::from_mode(0o600)).unwrap();
    }
}

#[test]
fn replay_state_rejects_the_second_open() {
    let k = Keys::new();
    let alice = k.keygen("alice", false);
    let bob = k.keygen("bob", false);
    let env = seal_bytes(&k, "alice", &[&bob], &[], b"once only");
    let state = k.path("replay.state");
    let open = || {
        let mut c = open_cmd(&[&k.key("bob")], &alice);
        c.arg("--replay-state").arg(&state).write_stdin(env.clone());
        c
    };
    open()
        .arg("--replay-state-new")
        .assert()
        .success()
        .stdout("once only")
        .stderr("");
    open()
        .assert()
        .code(1)
        .stdout("")
        .stderr(contains("replayed"));
    // Another envelope of the same sender still opens.
    let other = seal_bytes(&k, "alice", &[&bob], &[], b"another");
    open_cmd(&[&k.key("bob")], &alice)
        .arg("--replay-state")
        .arg(&state)
        .write_stdin(other)
        .assert()
        .success()
        .stderr("");

    // A damaged state file fails closed, as a file problem.
    fs::write(&state, "rpcseal-replay-state v1\nend 5 00\n").unwrap();
    open()
        .assert()
        .code(3)
        .stderr(contains("replay state").and(contains("damaged")));
}

#[test]
fn concurrent_opens_with_one_state_file_accept_exactly_one() {
    let k = Keys::new();
    let alice = k.keygen("alice", false);
    let bob = k.keygen("bob", false);
    let env = seal_bytes(&k, "alice", &[&bob], &[], b"race");
    fs::write(k.path("race.env"), &env).unwrap();
    let state = k.path("replay.state");
    // Create the state first so both runs race on the same existing file.
    fs::write(
        k.path("warmup.env"),
        seal_bytes(&k, "alice", &[&bob], &[], b"w"),
    )
    .unwrap();
    open_cmd(&[&k.key("bob")], &alice)
        .arg("--replay-state")
        .arg(&state)
        .arg("--replay-state-new")
        .arg("-i")
        .arg(k.path("warmup.env"))
        .assert()
        .success();

    let bin = assert_cmd::cargo::cargo_bin("rpcseal");
    let children: Vec<_> = (0..4)
        .map(|_| {
            std::process::Command::new(&bin)
                .arg("open")
                .arg("--key")
                .arg(k.key("bob"))
                .args(["--trust", &alice])
                .arg("--replay-state")
                .arg(&state)
                .arg("-i")
                .arg(k.path("race.env"))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let accepted = outputs
        .iter()
        .filter(|o| o.status.code() == Some(0))
        .count();
    let replayed = outputs
        .iter()
        .filter(|o| {
            o.status.code() == Some(1) && String::from_utf8_lossy(&o.stderr).contains("replayed")
        })
        .count();
    assert_eq!((accepted, replayed), (1, 3));
}

#[test]
fn inspect_shows_the_cleartext_and_what_it_could_not_check() {
    let k = Keys::new();
    k.keygen("alice", false);
    let bob = k.keygen("bob", false);
    let carol = k.keygen("carol", false);
    let env = seal_bytes(
        &k,
        "alice",
        &[&bob, &carol],
        &["--meta", "method=orders.create", "--mode", "mac"],
        b"12345",
    );
    let alice_id = {
        let text = fs::read_to_string(k.key("alice")).unwrap();
        let public = text
            .lines()
            .find_map(|l| l.strip_prefix("# public key: "))
            .unwrap()
            .to_owned();
        // The key id as `open --json` reports it.
        let env2 = seal_bytes(&k, "alice", &[&bob], &[], b"");
        let out = open_cmd(&[&k.key("bob")], &public)
            .arg("--json")
            .write_stdin(env2)
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        v["sender"].as_str().unwrap().to_owned()
    };
    rpcseal()
        .arg("inspect")
        .write_stdin(env.clone())
        .assert()
        .success()
        .stdout(
            contains("version           3")
                .and(contains("mode              mac"))
                .and(contains(&alice_id))
                .and(contains("recipients        2"))
                .and(contains("method = orders.create"))
                .and(contains("sequence number   0"))
                .and(contains("Z)"))
                .and(contains("Not checked without keys"))
                .and(contains("signature"))
                .and(contains("wraps"))
                .and(contains("freshness")),
        );
    let out = rpcseal()
        .args(["inspect", "--json"])
        .write_stdin(env.clone())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["version"], 3);
    assert_eq!(v["session"]["sender"], alice_id.as_str());
    assert_eq!(v["session"]["recipients"].as_array().unwrap().len(), 2);
    assert_eq!(v["metadata"]["method"], "orders.create");
    assert_eq!(v["verified"], false);
    assert_eq!(v["envelope_len"], env.len());

    rpcseal()
        .arg("inspect")
        .write_stdin("not an envelope")
        .assert()
        .code(1)
        .stderr(contains("malformed"));
}

#[test]
fn usage_errors_exit_2() {
    rpcseal().arg("seal").assert().code(2);
    let keys = Keys::new();
    let alice = keys.keygen("alice", false);
    keys.keygen("bob", false);
    let redis = open_cmd(&[&keys.key("bob")], &alice)
        .args(["--replay-redis", "redis://x"])
        .assert();
    // Without the `redis` feature the flag is a usage error; with it (CI runs
    // `--all-features`), an unreachable store fails closed before any envelope is read.
    if cfg!(feature = "redis") {
        redis
            .code(3)
            .stderr(contains("cannot use the Redis replay store"));
    } else {
        redis
            .code(2)
            .stderr(contains("not available in this build"));
    }
    rpcseal()
        .args(["vectors", "verify", "no/such/dir"])
        .assert()
        .code(3);
    let k = Keys::new();
    let bob = k.keygen("bob", false);
    k.keygen("alice", false);
    rpcseal()
        .arg("seal")
        .arg("--from")
        .arg(k.key("alice"))
        .args(["--to", &bob, "--meta", "novalue"])
        .assert()
        .code(2)
        .stderr(contains("KEY=VALUE"));
}

#[test]
fn demo_runs_and_shows_the_rejections() {
    rpcseal().arg("demo").assert().success().stdout(
        contains("bad_authenticator")
            .and(contains("not_for_us"))
            .and(contains("replayed")),
    );
}

#[test]
fn symmetric_keys_seal_and_open() {
    let keys = Keys::new();
    let alice = keys.keygen("alice", false);
    rpcseal()
        .args(["keygen", "--symmetric", "-o"])
        .arg(keys.key("store"))
        .assert()
        .success()
        .stderr(contains("symmetric key, key id"));
    assert_eq!(mode_of(&keys.key("store")) & 0o777, 0o600);
    rpcseal()
        .arg("pubkey")
        .arg(keys.key("store"))
        .assert()
        .code(2);
    let env = rpcseal()
        .arg("seal")
        .arg("--from")
        .arg(keys.key("alice"))
        .arg("--to-symmetric")
        .arg(keys.key("store"))
        .write_stdin("kept for later")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    open_cmd(&[&keys.key("store")], &alice)
        .write_stdin(env)
        .assert()
        .success()
        .stdout("kept for later");
}

#[test]
fn keyring_files_name_senders_and_revoke_them() {
    let keys = Keys::new();
    let alice = keys.keygen("alice", false);
    let bob = keys.keygen("bob", false);
    let env = seal_bytes(&keys, "alice", &[&bob], &[], b"hi");
    let ring = keys.path("ring");
    fs::write(&ring, format!("trust billing {alice}\n")).unwrap();
    rpcseal()
        .args(["open", "--json", "--key"])
        .arg(keys.key("bob"))
        .arg("--keyring")
        .arg(&ring)
        .write_stdin(env.clone())
        .assert()
        .success()
        .stdout(contains(r#""sender_name":"billing""#));
    let id = rpcseal()
        .args(["inspect", "--json"])
        .write_stdin(env.clone())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&id).unwrap();
    let sender = v["session"]["sender"].as_str().unwrap().to_owned();
    fs::write(&ring, format!("trust billing {alice}\nrevoke {sender}\n")).unwrap();
    rpcseal()
        .args(["open", "--key"])
        .arg(keys.key("bob"))
        .arg("--keyring")
        .arg(&ring)
        .write_stdin(env)
        .assert()
        .code(1)
        .stderr(contains("(revoked)"));
    fs::write(&ring, "trust billing not-a-key\n").unwrap();
    rpcseal()
        .args(["open", "--key"])
        .arg(keys.key("bob"))
        .arg("--keyring")
        .arg(&ring)
        .write_stdin(vec![0u8])
        .assert()
        .code(3)
        .stderr(contains("line 1"));
}

#[test]
fn legacy_envelopes_only_with_allow_legacy_and_a_warning() {
    let keys = Keys::new();
    let alice = keys.keygen("alice", false);
    keys.keygen("bob", false);
    let v2 = rpcseal()
        .arg("legacy-seal")
        .write_stdin(r#"{"method": "ping"}"#)
        .assert()
        .success()
        .stderr(contains("neither signed nor encrypted"))
        .get_output()
        .stdout
        .clone();
    assert!(String::from_utf8_lossy(&v2).contains(r#""oslo.version":"2.0""#));
    open_cmd(&[&keys.key("bob")], &alice)
        .write_stdin(v2.clone())
        .assert()
        .code(1)
        .stderr(contains("legacy_not_allowed"));
    open_cmd(&[&keys.key("bob")], &alice)
        .arg("--allow-legacy")
        .write_stdin(v2)
        .assert()
        .code(4)
        .stdout(r#"{"method": "ping"}"#)
        .stderr(contains("NOT authenticated"));
}

/// Item 1 of issue 13: the state file fails closed when it is lost. `open --replay-state`
/// exits 0, then 1 (replayed), and after the file is deleted 3, never 0 again; a new file
/// only on request, and never over an existing one. Without any replay option, stderr
/// says that the run cannot detect a replay.
#[test]
fn item_01_a_deleted_replay_state_file_fails_closed() {
    let k = Keys::new();
    let alice = k.keygen("alice", false);
    let bob = k.keygen("bob", false);
    let env = seal_bytes(&k, "alice", &[&bob], &[], b"once only");
    let state = k.path("replay.state");
    let open = || {
        let mut c = open_cmd(&[&k.key("bob")], &alice);
        c.arg("--replay-state").arg(&state).write_stdin(env.clone());
        c
    };
    open()
        .assert()
        .code(3)
        .stdout("")
        .stderr(contains("does not exist").and(contains("--replay-state-new")));
    open().arg("--replay-state-new").assert().success();
    open().assert().code(1).stderr(contains("replayed"));
    open()
        .arg("--replay-state-new")
        .assert()
        .code(3)
        .stderr(contains("exists"));
    fs::remove_file(&state).unwrap();
    open()
        .assert()
        .code(3)
        .stdout("")
        .stderr(contains("does not exist"));
    // Declared new beside the old lock file: still not accepted a second time.
    open()
        .arg("--replay-state-new")
        .assert()
        .code(3)
        .stdout("")
        .stderr(contains("cannot prove"));
    // No replay option: accepted, and stderr says what that means.
    open_cmd(&[&k.key("bob")], &alice)
        .write_stdin(env.clone())
        .assert()
        .success()
        .stderr(contains("cannot detect a replayed envelope"));
}

/// Item 8 of issue 13: writing the payload of an unauthenticated legacy envelope exits 4
/// in every output mode, never 0.
#[test]
fn item_08_allow_legacy_exits_4_in_every_output_mode() {
    let k = Keys::new();
    let alice = k.keygen("alice", false);
    let bob = k.keygen("bob", false);
    let v2 = rpcseal()
        .arg("legacy-seal")
        .write_stdin(r#"{"method": "ping"}"#)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let legacy = || {
        let mut c = open_cmd(&[&k.key("bob")], &alice);
        c.arg("--allow-legacy").write_stdin(v2.clone());
        c
    };
    legacy().assert().code(4).stdout(r#"{"method": "ping"}"#);
    let out = k.path("legacy.out");
    legacy().arg("-o").arg(&out).assert().code(4).stdout("");
    assert_eq!(fs::read_to_string(&out).unwrap(), r#"{"method": "ping"}"#);
    let json = legacy()
        .arg("--json")
        .assert()
        .code(4)
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(v["authenticated"], false);
    let out = k.path("legacy.json");
    legacy().args(["--json", "-o"]).arg(&out).assert().code(4);
    let v: serde_json::Value = serde_json::from_slice(&fs::read(&out).unwrap()).unwrap();
    assert_eq!(v["authenticated"], false);
    // A verified envelope with the same flag: 0, "authenticated": true.
    let env = seal_bytes(&k, "alice", &[&bob], &[], b"signed");
    let json = open_cmd(&[&k.key("bob")], &alice)
        .args(["--allow-legacy", "--json"])
        .write_stdin(env)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(v["authenticated"], true);
}

/// Item 9 of issue 13: `open -o FILE` writes the payload privately: 0600, never through a
/// symlink, no overwrite without --force; a device is written as it is.
#[cfg(unix)]
#[test]
fn item_09_open_output_is_private_and_follows_no_symlink() {
    use std::os::unix::fs::symlink;
    let k = Keys::new();
    let alice = k.keygen("alice", false);
    let bob = k.keygen("bob", false);
    let env = seal_bytes(&k, "alice", &[&bob], &[], b"secret payload");
    let open_to = |out: &Path| {
        let mut c = open_cmd(&[&k.key("bob")], &alice);
        c.arg("-o").arg(out).write_stdin(env.clone());
        c
    };
    // umask 022 as usual; the file is 0600 all the same.
    let out = k.path("payload.out");
    open_to(&out).assert().success();
    assert_eq!(fs::read(&out).unwrap(), b"secret payload");
    assert_eq!(mode_of(&out), 0o600);

    // No overwrite without --force; with it, replaced and private.
    let existing = k.path("existing");
    fs::write(&existing, "keep me").unwrap();
    open_to(&existing)
        .assert()
        .code(3)
        .stderr(contains("--force"));
    assert_eq!(fs::read_to_string(&existing).unwrap(), "keep me");
    open_to(&existing).arg("--force").assert().success();
    assert_eq!(fs::read(&existing).unwrap(), b"secret payload");
    assert_eq!(mode_of(&existing), 0o600);

    // Never through a symlink, even with --force.
    let victim = k.path("victim");
    fs::write(&victim, "victim").unwrap();
    let link = k.path("link");
    symlink(&victim, &link).unwrap();
    for force in [false, true] {
        let mut c = open_to(&link);
        if force {
            c.arg("--force");
        }
        c.assert().code(3).stderr(contains("symlink"));
        assert_eq!(fs::read_to_string(&victim).unwrap(), "victim");
    }
    let dangling = k.path("dangling");
    symlink(k.path("nowhere"), &dangling).unwrap();
    open_to(&dangling).assert().code(3);
    assert!(!k.path("nowhere").exists());

    // A device is written as it is.
    open_to(Path::new("/dev/null")).assert().success();

    // So is a FIFO: no replacement, no refusal, the reader gets the payload.
    let fifo = k.path("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if made {
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || fs::read(fifo).unwrap())
        };
        open_to(&fifo).assert().success();
        assert_eq!(reader.join().unwrap(), b"secret payload");
    }
}

#[test]
fn vectors_verify_closes_with_the_counts_and_fails_on_a_damaged_vector() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("vectors");
    rpcseal()
        .args(["vectors", "verify"])
        .arg(&root)
        .assert()
        .success()
        .stdout(predicate::str::is_match(r"(?m)^\d+ passed, 0 failed$").unwrap());
    // A copy with one expected envelope changed: that vector fails, the rest pass.
    let dir = tempfile::tempdir().unwrap();
    rpcseal()
        .args(["vectors", "generate"])
        .arg(dir.path())
        .assert()
        .success();
    let file = dir.path().join("v3/positive/modes.json");
    let text = fs::read_to_string(&file).unwrap();
    let i = text.find("\"envelope\": \"").expect("an envelope field") + 14;
    let mut bytes = text.into_bytes();
    bytes[i] = if bytes[i] == b'0' { b'1' } else { b'0' };
    fs::write(&file, bytes).unwrap();
    rpcseal()
        .args(["vectors", "verify"])
        .arg(dir.path())
        .assert()
        .code(1)
        .stdout(contains("FAIL"))
        .stdout(predicate::str::is_match(r"(?m)^\d+ passed, [1-9]\d* failed$").unwrap());
}

#[test]
fn bench_quick_json_reports_every_ratio() {
    let out = rpcseal()
        .args(["bench", "--quick", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    for key in [
        "mac_256_roundtrip_vs_floor",
        "mac_256_roundtrip_vs_hybrid",
        "signed_256_seal_vs_floor",
        "signed_batch_open_vs_single",
        "setup_1000_vs_hpke",
        "replay_check_ns",
        "aead_1mib_vs_raw",
        "aead_1mib_vs_raw_one_thread",
        "aead_1mib_open_vs_raw",
        "aead_1mib_open_vs_raw_one_thread",
        "overhead_bytes_mac_1to1",
        "setup_pq_1_vs_classical",
        "setup_pq_100_vs_classical",
        "overhead_bytes_pq_per_recipient",
        "mac_256_roundtrip_pq_vs_classical",
        "store_write_256_vs_plain",
        "store_read_256_vs_plain",
        "store_write_256_vs_plain_cpu",
        "store_read_256_vs_plain_cpu",
        "rotation_us_per_asset",
        "rotation_us_per_asset_16k",
        "rotation_ms_per_gib",
    ] {
        assert!(v[key].is_number(), "{key}: {}", v[key]);
    }
    // One JSON object on one line.
    assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
    assert!(v["overhead_bytes_mac_1to1"].as_u64().unwrap() <= 100);
    // spec §5.4: a kind-3 entry in signed mode is 1193 bytes, a kind-1 entry 104.
    assert_eq!(v["overhead_bytes_pq_per_recipient"], 1193);
    assert_eq!(v["overhead_bytes_classical_per_recipient"], 104);
}

#[test]
fn inspect_reports_each_mode() {
    let keys = Keys::new();
    keys.keygen("alice", false);
    let bob = keys.keygen("bob", false);
    for mode in ["signed", "mac", "sign-only"] {
        let env = seal_bytes(&keys, "alice", &[&bob], &["--mode", mode], b"x");
        rpcseal()
            .arg("inspect")
            .write_stdin(env)
            .assert()
            .success()
            .stdout(contains(format!("mode              {mode}")));
    }
    rpcseal()
        .arg("inspect")
        .write_stdin(vec![0x9a, 0x03])
        .assert()
        .code(1)
        .stderr(contains("malformed"));
}

/// Issue 14 item 1: a recipient string whose X25519 key has bit 255 set (the same key to
/// RFC 7748, another key id) used to seal to a recipient id the real recipient does not
/// have. It is refused, naming the kind of key; so is a mixed-order Ed25519 key.
#[test]
fn non_canonical_recipient_strings_are_refused_naming_the_kind() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = fs::read_to_string(root.join("vectors/v3/keys/key-strings.json")).unwrap();
    let string_of = |name: &str| -> String {
        let at = text.find(&format!("\"name\": \"{name}\"")).unwrap();
        let s = text[at..].find("\"string\": \"").unwrap() + at + 11;
        let e = text[s..].find('"').unwrap() + s;
        text[s..e].to_owned()
    };
    let k = Keys::new();
    k.keygen("alice", false);
    for (case, kind) in [
        ("x25519-bit-255-set", "X25519 public key"),
        ("ed25519-mixed-order", "Ed25519 public key"),
    ] {
        rpcseal()
            .arg("seal")
            .arg("--from")
            .arg(k.key("alice"))
            .arg("--to")
            .arg(string_of(case))
            .write_stdin("x")
            .assert()
            .code(3)
            .stderr(contains(kind));
    }
}
