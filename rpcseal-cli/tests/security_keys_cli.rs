//! Security review part 1 (issue 13), the command-line side of the key items: secret keys
//! are never echoed (item 4), secret key files others can read are refused (item 17).

use std::fs;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;
use predicates::str::contains;

fn rpcseal() -> Command {
    Command::cargo_bin("rpcseal").unwrap()
}

/// `rpcseal keygen -o DIR/NAME.key [extra]`; returns the path.
fn keygen(dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let p = dir.join(format!("{name}.key"));
    rpcseal()
        .arg("keygen")
        .arg("-o")
        .arg(&p)
        .args(extra)
        .assert()
        .success();
    p
}

/// The public key string of an identity key file.
fn pubkey(p: &Path) -> String {
    let out = rpcseal().arg("pubkey").arg(p).assert().success();
    String::from_utf8(out.get_output().stdout.clone())
        .unwrap()
        .trim()
        .to_owned()
}

/// The secret key line of a key file `keygen` wrote.
fn secret_line(text: &str) -> String {
    text.lines()
        .find(|l| l.starts_with("RPCSEAL-SECRET-"))
        .unwrap()
        .to_owned()
}

/// No 8-byte window of the secret key string's body shows in `out`.
fn assert_no_secret(what: &str, out: &[u8], secret: &str) {
    let body = &secret.as_bytes()[secret.find(':').unwrap() + 1..];
    for w in body.windows(8) {
        assert!(
            !out.windows(8).any(|o| o == w),
            "{what}: output shows secret bytes {:?}: {}",
            String::from_utf8_lossy(w),
            String::from_utf8_lossy(out)
        );
    }
}

// Item 4: every secret kind, through every argument and file that takes a public key; the
// command fails and no byte of the secret string appears on stdout or stderr.
#[test]
fn item_04_secret_keys_given_as_public_keys_are_refused_and_never_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let alice = keygen(d, "alice", &[]);
    let bob = keygen(d, "bob", &[]);
    let alice_pub = pubkey(&alice);
    let bob_pub = pubkey(&bob);
    let envelope = rpcseal()
        .arg("seal")
        .arg("--from")
        .arg(&alice)
        .args(["--to", &bob_pub])
        .write_stdin("hello")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();

    let mut checked = 0;
    for (kind, extra) in [
        ("identity", &[][..]),
        ("group", &["--group"][..]),
        ("symmetric", &["--symmetric"][..]),
    ] {
        let key = keygen(d, &format!("secret-{kind}"), extra);
        let file_text = fs::read_to_string(&key).unwrap();
        let secret = secret_line(&file_text);
        // Arguments as a user might type or paste them.
        let arguments = [
            secret.clone(),
            file_text.clone(),
            format!("  {secret}  "),
            format!("x{secret}"),
            format!("{bob_pub}{secret}"),
            format!("{bob_pub}\n{secret}"),
        ];
        // Files holding it: the key file, a .pub file with a public key first, a
        // keyring-looking file, a file with the secret in a comment.
        let mixed = d.join(format!("mixed-{kind}.pub"));
        fs::write(&mixed, format!("{bob_pub}\n{alice_pub}\n{secret}\n")).unwrap();
        let ring = d.join(format!("ring-{kind}"));
        fs::write(
            &ring,
            format!("trust alice {alice_pub}\ntrust x {secret}\n"),
        )
        .unwrap();
        let comment = d.join(format!("comment-{kind}.pub"));
        fs::write(&comment, format!("# was {secret}\n{alice_pub}\n")).unwrap();
        let files = [key.clone(), mixed, ring, comment];

        let mut runs: Vec<(String, Command)> = Vec::new();
        let file_args: Vec<String> = files
            .iter()
            .map(|f| f.to_str().unwrap().to_owned())
            .collect();
        for arg in arguments.iter().chain(&file_args) {
            let mut seal = rpcseal();
            seal.arg("seal")
                .arg("--from")
                .arg(&alice)
                .arg("--to")
                .arg(arg)
                .write_stdin("payload");
            runs.push((format!("seal --to ({kind})"), seal));
            let mut seal2 = rpcseal();
            seal2
                .arg("seal")
                .arg("--from")
                .arg(&alice)
                .args(["--to", &bob_pub, "--to"])
                .arg(arg)
                .write_stdin("payload");
            runs.push((format!("seal --to KEY --to ({kind})"), seal2));
            let mut open = rpcseal();
            open.arg("open")
                .arg("--key")
                .arg(&bob)
                .arg("--trust")
                .arg(arg)
                .write_stdin(envelope.clone());
            runs.push((format!("open --trust ({kind})"), open));
        }
        for f in &files {
            let mut open = rpcseal();
            open.arg("open")
                .arg("--key")
                .arg(&bob)
                .arg("--keyring")
                .arg(f)
                .write_stdin(envelope.clone());
            runs.push((format!("open --keyring ({kind})"), open));
        }
        for (what, mut cmd) in runs {
            let out = cmd.output().unwrap();
            assert!(!out.status.success(), "{what} accepted a secret key");
            assert_no_secret(&what, &out.stdout, &secret);
            assert_no_secret(&what, &out.stderr, &secret);
            checked += 1;
        }
    }
    assert_eq!(checked, 3 * (3 * (6 + 4) + 4));
}

// Item 4: an argument that is not a key and not a readable file is named only when it looks
// like a path.
#[test]
fn item_04_unreadable_arguments_are_not_quoted_unless_they_look_like_paths() {
    let dir = tempfile::tempdir().unwrap();
    let alice = keygen(dir.path(), "alice", &[]);
    rpcseal()
        .arg("seal")
        .arg("--from")
        .arg(&alice)
        .args(["--to", "no-such-file.pub"])
        .write_stdin("x")
        .assert()
        .code(3)
        .stderr(contains("\"no-such-file.pub\""));
    rpcseal()
        .arg("seal")
        .arg("--from")
        .arg(&alice)
        .args(["--to", "a password\nsomething private"])
        .write_stdin("x")
        .assert()
        .code(3)
        .stderr(contains("password").not().and(contains("private").not()));
}

// Item 17: secret key files that other users can read are refused unless the override is
// given.
#[cfg(unix)]
#[test]
fn item_17_secret_key_files_readable_by_others_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let alice = keygen(d, "alice", &[]);
    let bob = keygen(d, "bob", &[]);
    let bob_pub = pubkey(&bob);
    let alice_pub = pubkey(&alice);
    let envelope = rpcseal()
        .arg("seal")
        .arg("--from")
        .arg(&alice)
        .args(["--to", &bob_pub])
        .write_stdin("hello")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    for mode in [0o640, 0o604, 0o644, 0o660] {
        fs::set_permissions(&bob, fs::Permissions::from_mode(mode)).unwrap();
        fs::set_permissions(&alice, fs::Permissions::from_mode(mode)).unwrap();
        let refused = || contains("other users").and(contains("chmod 600"));
        rpcseal()
            .arg("pubkey")
            .arg(&bob)
            .assert()
            .code(3)
            .stdout("")
            .stderr(refused());
        rpcseal()
            .arg("open")
            .arg("--key")
            .arg(&bob)
            .args(["--trust", &alice_pub])
            .write_stdin(envelope.clone())
            .assert()
            .code(3)
            .stdout("")
            .stderr(refused());
        rpcseal()
            .arg("seal")
            .arg("--from")
            .arg(&alice)
            .args(["--to", &bob_pub])
            .write_stdin("x")
            .assert()
            .code(3)
            .stdout("")
            .stderr(refused());
        // The explicit override: used, with a warning.
        rpcseal()
            .arg("open")
            .arg("--key")
            .arg(&bob)
            .args(["--trust", &alice_pub])
            .arg("--dangerous-allow-readable-key-files")
            .write_stdin(envelope.clone())
            .assert()
            .success()
            .stdout("hello")
            .stderr(contains("warning").and(contains("chmod 600")));
    }
    // Owner-only files need no override, whatever the owner's bits.
    for mode in [0o600, 0o400] {
        fs::set_permissions(&bob, fs::Permissions::from_mode(mode)).unwrap();
        rpcseal()
            .arg("pubkey")
            .arg(&bob)
            .assert()
            .success()
            .stderr("");
    }
}

// Item 3: MAC mode to a symmetric key needs the loud opt-in on both sides.
#[test]
fn item_03_mac_mode_to_a_symmetric_key_needs_both_opt_ins() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let alice = keygen(d, "alice", &[]);
    let vault = keygen(d, "vault", &["--symmetric"]);
    let alice_pub = pubkey(&alice);
    let seal = || {
        let mut c = rpcseal();
        c.arg("seal")
            .arg("--from")
            .arg(&alice)
            .arg("--to-symmetric")
            .arg(&vault)
            .args(["--mode", "mac"])
            .write_stdin("stored");
        c
    };
    seal()
        .assert()
        .code(2)
        .stdout("")
        .stderr(contains("symmetric").and(contains("--dangerous-allow-mac-to-group")));
    let env = seal()
        .arg("--dangerous-allow-mac-to-group")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let open = || {
        let mut c = rpcseal();
        c.arg("open")
            .arg("--key")
            .arg(&vault)
            .args(["--trust", &alice_pub])
            .write_stdin(env.clone());
        c
    };
    open()
        .assert()
        .code(1)
        .stdout("")
        .stderr(contains("mode_not_allowed"));
    open()
        .arg("--dangerous-accept-mac-via-group")
        .assert()
        .success()
        .stdout("stored");
}
