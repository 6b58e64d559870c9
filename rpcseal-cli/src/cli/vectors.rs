//! `rpcseal vectors verify|generate DIR`, through the library's hidden `vectors` module.

use std::path::Path;
use std::process::ExitCode;

use super::{EXIT_KEY_OR_FILE, EXIT_REJECTED};

/// Checks every vector in `dir`: one line per failure, then `N passed, N failed`. Exit 1 if
/// any failed, 3 if the directory cannot be read.
pub fn verify(dir: &Path) -> ExitCode {
    if !dir.is_dir() {
        eprintln!(
            "rpcseal: error: {} is not a directory of vectors",
            dir.display()
        );
        return ExitCode::from(EXIT_KEY_OR_FILE);
    }
    let report = rpcseal::vectors::verify(dir);
    for (name, why) in &report.failures {
        println!("FAIL {name}: {why}");
    }
    println!("{} passed, {} failed", report.passed, report.failures.len());
    if report.failures.is_empty() && report.passed > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_REJECTED)
    }
}

/// Writes the vectors to `dir` (deterministic: the same bytes every time).
pub fn generate(dir: &Path) -> ExitCode {
    match rpcseal::vectors::generate(dir) {
        Ok(files) => {
            for f in files {
                println!("wrote {}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "rpcseal: error: cannot write the vectors to {}: {e}",
                dir.display()
            );
            ExitCode::from(EXIT_KEY_OR_FILE)
        }
    }
}
