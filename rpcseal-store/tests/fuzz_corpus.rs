//! Replays the `at_rest` fuzz target's checked-in corpus (`fuzz/corpus/seed/at_rest/`, and
//! `fuzz/regressions/at_rest/` if any) through the target's invariants as a plain test.
//! The seeds are written by `cargo test -p rpcseal-store --test fuzz_corpus -- --ignored`.

#[path = "common/at_rest_fuzz.rs"]
mod at_rest_fuzz;

use std::path::{Path, PathBuf};

fn dir(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz")
        .join(sub)
        .join("at_rest")
}

#[test]
fn corpus_holds_every_invariant() {
    let mut n = 0;
    for d in [dir("corpus/seed"), dir("regressions")] {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd {
            let data = std::fs::read(e.unwrap().path()).unwrap();
            at_rest_fuzz::at_rest(&data);
            // And every single-byte truncation and bit flip of it.
            for i in 0..data.len() {
                at_rest_fuzz::at_rest(&data[..i]);
                let mut m = data.clone();
                m[i] ^= 0x04;
                at_rest_fuzz::at_rest(&m);
            }
            n += 1;
        }
    }
    assert!(n >= 9, "only {n} seeds");
}

#[test]
fn seeds_are_checked_in() {
    for (name, bytes) in at_rest_fuzz::seeds() {
        let p = dir("corpus/seed").join(&name);
        assert_eq!(
            std::fs::read(&p).ok().as_deref(),
            Some(&bytes[..]),
            "{} stale",
            p.display()
        );
    }
}

#[test]
#[ignore = "writes the seed corpus"]
fn write_seed_corpus() {
    std::fs::create_dir_all(dir("corpus/seed")).unwrap();
    for (name, bytes) in at_rest_fuzz::seeds() {
        std::fs::write(dir("corpus/seed").join(name), bytes).unwrap();
    }
}
