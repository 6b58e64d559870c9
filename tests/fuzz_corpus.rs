//! Replays the fuzz targets' checked-in inputs as a plain test: every file under
//! `fuzz/corpus/seed/<target>/` (real sealed envelopes, blocks and key strings from the
//! fixture) and `fuzz/regressions/<target>/` (inputs that once broke an invariant) runs
//! through the same invariant function the fuzz target calls.
//!
//! The seed corpus is generated from the deterministic fixture:
//! `cargo test --test fuzz_corpus -- --ignored write_seed_corpus`.

#[path = "common/fuzzing.rs"]
mod fuzzing;

use std::fs;
use std::path::{Path, PathBuf};

use rand_core::Rng;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .map(|e| e.expect("readable corpus dir").path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

#[test]
fn seed_corpus_and_regressions_hold_every_invariant() {
    let mut total = 0;
    for (target, check) in fuzzing::TARGETS {
        let seeds = files(&fuzz_dir().join("corpus/seed").join(target));
        assert!(!seeds.is_empty(), "no seed corpus for {target}");
        let regressions = files(&fuzz_dir().join("regressions").join(target));
        for f in seeds.iter().chain(&regressions) {
            let data = fs::read(f).unwrap();
            let r = std::panic::catch_unwind(|| check(&data));
            assert!(r.is_ok(), "{target}: {} breaks an invariant", f.display());
            total += 1;
        }
    }
    println!("{total} corpus inputs replayed");
}

#[test]
fn every_original_opens_exactly_when_it_was_sealed_for_the_receiver() {
    let fx = fuzzing::fixture();
    for o in &fx.originals {
        // Zero mutations: the structure-aware target's baseline for each original.
        let case = fuzzing::MutationCase {
            original: fx.originals.iter().position(|x| x.name == o.name).unwrap() as u8,
            mutations: Vec::new(),
        };
        fuzzing::mutate_case(&case);
        fuzzing::envelope_decode(&o.bytes);
    }
    for b in &fx.blocks {
        fuzzing::session_block_decode(b);
    }
}

fn hostile_envelopes() -> Vec<(&'static str, Vec<u8>)> {
    let fx = fuzzing::fixture();
    let orig = &fx.originals[0].bytes;
    // Field 3 starts after: array header, version, suite, bin8 header + 16-byte ref.
    let at = 1 + 1 + 1 + 2 + 16;
    let with = |replacement: &[u8]| {
        let mut v = orig[..at].to_vec();
        v.extend_from_slice(replacement);
        v
    };
    vec![
        ("bin32-4gib-block", with(&[0xc6, 0xff, 0xff, 0xff, 0xff])),
        ("str32-claim", with(&[0xdb, 0x7f, 0xff, 0xff, 0xff, b'a'])),
        ("array32-claim", vec![0xdd, 0xff, 0xff, 0xff, 0xff, 0x03]),
        ("map32-claim", vec![0xdf, 0xff, 0xff, 0xff, 0xff]),
        ("truncated", orig[..orig.len() - 1].to_vec()),
        ("version-2", [&[0x9a, 0x02][..], &orig[2..]].concat()),
        ("empty", Vec::new()),
    ]
}

/// Writes the seed corpus from the deterministic fixture (run by hand; see the module doc).
#[test]
#[ignore = "writes fuzz/corpus/seed: run by hand to regenerate it"]
fn write_seed_corpus() {
    let fx = fuzzing::fixture();
    let seed = fuzz_dir().join("corpus/seed");
    let write = |target: &str, name: &str, data: &[u8]| {
        let dir = seed.join(target);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(name), data).unwrap();
    };
    for o in &fx.originals {
        write("envelope_decode", o.name, &o.bytes);
        write("open_fixed_keys", o.name, &o.bytes);
        if rpcseal::inspect(&o.bytes).unwrap().session.is_some() {
            write(
                "session_block_decode",
                o.name,
                &fuzzing::inline_block(&o.bytes),
            );
        }
    }
    for (i, b) in fx.blocks.iter().enumerate() {
        write("session_block_decode", &format!("out-of-band-{i}"), b);
    }
    for (name, data) in hostile_envelopes() {
        write("envelope_decode", name, &data);
        write("open_fixed_keys", name, &data);
    }
    let keys: Vec<(&str, String)> = vec![
        ("secret-id", fx.alice.to_secret_string().to_string()),
        ("public-id", fx.bob.public().to_string()),
        ("secret-group", fx.group.to_secret_string().to_string()),
        ("public-group", fx.group.public().to_string()),
        ("padded", format!("  {}\n", fx.carol.public())),
        ("wrong-prefix", "age1qqqqqqqqqqqqqqqqqq".to_owned()),
        ("bad-char", fx.dave.public().to_string().replace(':', ":!")),
    ];
    for (name, k) in keys {
        write("key_strings", name, k.as_bytes());
    }
    // poly1305_differential: mode byte, key (32), message. RFC 8439 §2.5.2 and A.3 #5, #9,
    // and the steered accumulators of src/aead.rs's adversarial test (r = 1).
    let poly: Vec<(&str, Vec<u8>)> = vec![
        ("rfc8439-2-5-2", [&[0u8][..], &hex::decode("85d6be7857556d337f4452fe42d506a80103808afb0db2fd4abff6af4149f51b").unwrap(), b"Cryptographic Forum Research Group"].concat()),
        ("a3-5", [&[0u8][..], &hex::decode("0200000000000000000000000000000000000000000000000000000000000000ffffffffffffffffffffffffffffffff").unwrap()].concat()),
        ("a3-9", [&[0u8][..], &hex::decode("0200000000000000000000000000000000000000000000000000000000000000fdffffffffffffffffffffffffffffff").unwrap()].concat()),
        ("r1-p", [&[2u8][..], &[0u8; 32], &[0xff; 16], &{ let mut b = [0xff; 16]; b[0] = 0xfc; b }].concat()),
        ("r1-2-130", [&[2u8][..], &[0u8; 32], &[0xff; 16], &{ let mut b = [0u8; 16]; b[0] = 1; b }, &[0u8; 16]].concat()),
        ("clamp-max-ones", [&[1u8][..], &[0u8; 32], &[0xff; 77]].concat()),
        ("all-ones", [&[3u8][..], &[0xffu8; 32], &[0xff; 300]].concat()),
    ];
    for (name, data) in poly {
        write("poly1305_differential", name, &data);
    }
    let legacy = [
        (
            "oslo-call",
            rpcseal::seal_legacy_v2(r#"{"method": "ping", "args": {"n": 1}, "version": "1.3"}"#)
                .unwrap(),
        ),
        ("oslo-empty", rpcseal::seal_legacy_v2("{}").unwrap()),
        (
            "oslo-2.1",
            r#"{"oslo.version": "2.1", "oslo.message": "{}"}"#.to_owned(),
        ),
        ("oslo-1.0-bare", r#"{"method": "ping"}"#.to_owned()),
        (
            "oslo-extra-field",
            r#"{"oslo.version": "2.0", "oslo.message": "{}", "x": 1}"#.to_owned(),
        ),
        (
            "oslo-nested",
            format!(
                r#"{{"oslo.version": "2.0", "oslo.message": "{}"}}"#,
                "[".repeat(200)
            ),
        ),
    ];
    for (name, text) in legacy {
        write("legacy_v2", name, text.as_bytes());
    }
    write("legacy_v2", "v3-envelope", &fx.originals[0].bytes);
    // The structure-aware target reads its input through `arbitrary`: a leading byte picks
    // the original, the rest drives the mutations. One plain input per original, and a few
    // deterministic random ones.
    for i in 0..fx.originals.len() {
        write("mutate_envelope", &format!("original-{i}"), &[i as u8]);
    }
    let mut rng = fuzzing::TestRng::new(7);
    for i in 0..12 {
        let mut data = vec![0u8; 8 + 6 * i];
        rng.fill_bytes(&mut data);
        write("mutate_envelope", &format!("random-{i}"), &data);
    }
}
