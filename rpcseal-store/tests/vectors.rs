//! The at-rest vectors (`vectors/at-rest/`): every case checked, and regenerating them gives
//! the checked-in files byte for byte.

use std::path::{Path, PathBuf};

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../vectors")
}

#[test]
fn every_vector_case_holds() {
    let checks = rpcseal_store::vectors::checks(&vectors_dir()).expect("vector files");
    assert!(checks.len() >= 50, "only {} cases", checks.len());
    let failed: Vec<String> = checks
        .iter()
        .filter_map(|c| c.result.as_ref().err().map(|e| format!("{}: {e}", c.name)))
        .collect();
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn regenerating_gives_the_same_files() {
    let tmp = tempfile::tempdir().unwrap();
    let written = rpcseal_store::vectors::generate(tmp.path()).unwrap();
    for p in written {
        let rel = p.strip_prefix(tmp.path()).unwrap();
        let old = std::fs::read(vectors_dir().join(rel)).unwrap_or_default();
        assert!(
            old == std::fs::read(&p).unwrap(),
            "{} differs: run `cargo run -p rpcseal-store -- vectors generate vectors/`",
            rel.display()
        );
    }
}

#[test]
fn negative_cases_cover_every_failure_class() {
    let text = std::fs::read_to_string(vectors_dir().join("at-rest/negative.json")).unwrap();
    for class in [
        "malformed",
        "unsupported_version",
        "mode_mismatch",
        "unknown_key",
        "wrong_key",
        "tampered",
        "misplaced",
        "truncated",
    ] {
        assert!(
            text.contains(&format!("\"failure\": \"{class}\"")),
            "no negative vector of class {class}"
        );
    }
}
