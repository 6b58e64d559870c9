//! `rpcseal vectors verify|generate DIR` (placeholder: another issue fills it in).

use std::path::Path;
use std::process::ExitCode;

/// Checks the vectors in `dir`.
pub fn verify(_dir: &Path) -> ExitCode {
    eprintln!("rpcseal: vectors verify is not implemented in this build yet");
    ExitCode::from(2)
}

/// Writes the vectors to `dir`.
pub fn generate(_dir: &Path) -> ExitCode {
    eprintln!("rpcseal: vectors generate is not implemented in this build yet");
    ExitCode::from(2)
}
