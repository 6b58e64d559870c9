//! Every interop test vector in `vectors/` as its own named trial (`FILE::CASE`), and a
//! check that regenerating the vectors gives the checked-in files byte for byte.

use std::path::{Path, PathBuf};

use libtest_mimic::{Arguments, Failed, Trial};

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors")
}

/// Generates into a fresh temporary directory and compares every file with `vectors/`.
fn regenerate_is_identical() -> Result<(), Failed> {
    let tmp = std::env::temp_dir().join(format!("rpcseal-vectors-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let written = rpcseal::vectors::generate(&tmp).map_err(|e| e.to_string())?;
    let mut problems = Vec::new();
    for path in &written {
        let rel = path.strip_prefix(&tmp).expect("under tmp");
        let fresh = std::fs::read(path).map_err(|e| e.to_string())?;
        match std::fs::read(vectors_dir().join(rel)) {
            Ok(old) if old == fresh => {}
            Ok(_) => problems.push(format!("{} differs", rel.display())),
            Err(e) => problems.push(format!("{}: {e}", rel.display())),
        }
    }
    // Nothing checked in that the generator no longer writes.
    for sub in [
        "v3/positive",
        "v3/negative",
        "v3/keys",
        "v3/reconfigure",
        "v3/sealer",
    ] {
        for entry in std::fs::read_dir(vectors_dir().join(sub)).map_err(|e| e.to_string())? {
            let rel = Path::new(sub).join(entry.map_err(|e| e.to_string())?.file_name());
            if !written
                .iter()
                .any(|w| w.strip_prefix(&tmp).ok() == Some(rel.as_path()))
            {
                problems.push(format!("{} is not generated any more", rel.display()));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}; regenerate with `cargo run -- vectors generate vectors/`",
            problems.join("; ")
        )
        .into())
    }
}

fn main() {
    let args = Arguments::from_args();
    let mut trials = vec![Trial::test(
        "regenerate_is_identical",
        regenerate_is_identical,
    )];
    match rpcseal::vectors::checks(&vectors_dir()) {
        Ok(checks) => trials.extend(checks.into_iter().map(|c| {
            let name = c.name.clone();
            Trial::test(name, move || c.run().map_err(Failed::from))
        })),
        Err(e) => trials.push(Trial::test("vectors_readable", move || Err(e.into()))),
    }
    libtest_mimic::run(&args, trials).exit();
}
