//! The README's command-line walkthrough, executed as written, so it cannot drift from what
//! the tool does.

use std::path::Path;
use std::process::Command;

/// The ```sh block that follows "Paste this into a shell" in README.md.
fn walkthrough() -> String {
    let readme = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("README.md"),
    )
    .unwrap();
    let start = readme
        .find("Paste this into a shell")
        .expect("the walkthrough's introduction");
    let rest = &readme[start..];
    let open = rest.find("```sh\n").expect("its shell block") + "```sh\n".len();
    let close = rest[open..].find("```").expect("the end of the block");
    rest[open..open + close].to_owned()
}

#[test]
fn the_readme_walkthrough_runs_as_written() {
    let script = walkthrough();
    let bin = Path::new(env!("CARGO_BIN_EXE_rpcseal")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // The walkthrough makes its own directory with mktemp: keep it inside one we remove.
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .env("PATH", path)
        .env("TMPDIR", tmp.path())
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let all = format!("{stdout}\n{stderr}");
    assert!(out.status.success(), "the walkthrough failed:\n{all}");
    // The happy paths.
    assert!(stdout.contains(r#"{"sku": 42}"#), "{all}");
    assert!(stdout.contains("ping"), "{all}");
    assert_eq!(stdout.matches("stock count at 09:00").count(), 2, "{all}");
    assert!(stdout.contains("Nothing above is verified"), "{all}");
    assert!(stdout.contains(r#""payload_base64""#), "{all}");
    // The three refusals the walkthrough shows, each with its class and exit code 1.
    assert_eq!(stdout.matches("exit 1").count(), 3, "{all}");
    for class in ["(replayed)", "(bad_authenticator)", "(not_for_us)"] {
        assert!(stderr.contains(class), "{class} missing:\n{all}");
    }
}
