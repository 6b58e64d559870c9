//! Generates or verifies the interop test vectors until the CLI has a `vectors` command.
//!
//! ```text
//! cargo run --example vectors -- verify vectors/
//! cargo run --example vectors -- generate vectors/
//! ```

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, dir) = match args.as_slice() {
        [cmd, dir] => (cmd.as_str(), Path::new(dir)),
        _ => {
            eprintln!("usage: vectors (verify | generate) DIR");
            return ExitCode::from(2);
        }
    };
    match cmd {
        "generate" => match rpcseal::vectors::generate(dir) {
            Ok(files) => {
                for f in files {
                    println!("wrote {}", f.display());
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        "verify" => {
            let report = rpcseal::vectors::verify(dir);
            for (name, why) in &report.failures {
                println!("FAIL {name}: {why}");
            }
            println!("{} passed, {} failed", report.passed, report.failures.len());
            if report.failures.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        _ => {
            eprintln!("usage: vectors (verify | generate) DIR");
            ExitCode::from(2)
        }
    }
}
