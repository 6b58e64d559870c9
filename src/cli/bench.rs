//! `rpcseal bench [--quick] [--json]` (placeholder: another issue fills it in).

use std::process::ExitCode;

/// Runs the benchmarks.
pub fn run(_quick: bool, _json: bool) -> ExitCode {
    eprintln!("rpcseal: bench is not implemented in this build yet");
    ExitCode::from(2)
}
