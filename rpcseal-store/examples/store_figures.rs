//! Prints the store's `rpcseal bench` figures (encrypted vs plain, rotation) on their own:
//! `cargo run --release -p rpcseal-store --example store_figures [--quick]`.

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let tmp = std::env::temp_dir().join(format!("rpcseal-store-figures-{}", std::process::id()));
    match rpcseal_store::measure::run(&tmp, quick) {
        Ok(f) => println!("{f:#?}"),
        Err(e) => {
            eprintln!("store_figures: {e}");
            std::process::exit(1);
        }
    }
}
