//! `rpcseal-store`: operator commands for a store encrypted at rest.
//!
//! ```text
//! rpcseal-store rotate DIR STORE    re-wrap every header under $RPCSEAL_NEW_MASTER_KEY
//!                                   (the current key in $RPCSEAL_MASTER_KEY)
//! rpcseal-store verify DIR STORE    read and authenticate every record of every queue
//!                                   with $RPCSEAL_MASTER_KEY (and $RPCSEAL_NEW_MASTER_KEY)
//! rpcseal-store vectors generate DIR
//! ```
//! Keys are key strings (`RPCSEAL-SECRET-MASTER:...`), read from the environment so that
//! they never show in a process listing. Exit codes: 0 done, 1 failure, 2 usage.

use std::path::Path;
use std::process::ExitCode;

use rpcseal_store::{MasterKey, Store, StoreConfig};

const USAGE: &str =
    "usage: rpcseal-store rotate DIR STORE | verify DIR STORE | vectors generate DIR\n\
                     keys: RPCSEAL_MASTER_KEY (current), RPCSEAL_NEW_MASTER_KEY (rotate: new)";

fn keys(need_new: bool) -> Result<(Vec<MasterKey>, Option<MasterKey>), String> {
    let mut keys = Vec::new();
    if std::env::var_os("RPCSEAL_MASTER_KEY").is_some() {
        keys.push(
            MasterKey::from_env("RPCSEAL_MASTER_KEY")
                .map_err(|e| format!("RPCSEAL_MASTER_KEY: {e}"))?,
        );
    }
    let new = if std::env::var_os("RPCSEAL_NEW_MASTER_KEY").is_some() {
        Some(
            MasterKey::from_env("RPCSEAL_NEW_MASTER_KEY")
                .map_err(|e| format!("RPCSEAL_NEW_MASTER_KEY: {e}"))?,
        )
    } else if need_new {
        return Err("RPCSEAL_NEW_MASTER_KEY is not set".into());
    } else {
        None
    };
    Ok((keys, new))
}

fn run(args: &[String]) -> Result<(), String> {
    match args {
        [cmd, dir, store] if cmd == "rotate" => {
            let (old, new) = keys(true)?;
            let new = new.ok_or("no new key")?;
            let store = Store::open(Path::new(dir), StoreConfig::new(store, old))
                .map_err(|e| e.to_string())?;
            let r = store.rotate(&new).map_err(|e| e.to_string())?;
            println!(
                "rotated to {}: {} headers re-wrapped, {} already under it, {} plain",
                new.key_id(),
                r.rewrapped,
                r.already,
                r.plain
            );
            Ok(())
        }
        [cmd, dir, store] if cmd == "verify" => {
            let (mut ks, new) = keys(false)?;
            ks.extend(new);
            let store = Store::open(Path::new(dir), StoreConfig::new(store, ks))
                .map_err(|e| e.to_string())?;
            let (mut records, mut bytes) = (0u64, 0u64);
            for q in store.queues().map_err(|e| e.to_string())? {
                let r = store
                    .read_queue(&q, |_, _, _| {})
                    .map_err(|e| e.to_string())?;
                records += r.records;
                bytes += r.bytes;
            }
            println!("{records} records, {bytes} bytes: all authentic");
            Ok(())
        }
        [a, b, dir] if a == "vectors" && b == "generate" => {
            for p in rpcseal_store::vectors::generate(Path::new(dir)).map_err(|e| e.to_string())? {
                println!("wrote {}", p.display());
            }
            Ok(())
        }
        _ => Err(USAGE.into()),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e == USAGE => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("rpcseal-store: {e}");
            ExitCode::FAILURE
        }
    }
}
