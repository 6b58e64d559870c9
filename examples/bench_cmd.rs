//! Temporary driver for `src/cli/bench.rs` until `src/main.rs` (the CLI) lands:
//! `cargo run --release --example bench_cmd -- [--quick] [--json]`.

#[path = "../src/cli/bench.rs"]
mod bench;

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    bench::run(
        args.iter().any(|a| a == "--quick"),
        args.iter().any(|a| a == "--json"),
    )
}
