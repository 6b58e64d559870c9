//! The store's figures for `rpcseal bench --json`: encrypted against plain throughput in
//! one run (the same store and code path, the queue's flag on or off, the same batching
//! and fsync policy), and master key rotation time per asset for small and large payloads.
//!
//! Method: plain and encrypted runs are taken in pairs, several rounds, the side that goes
//! first alternating from round to round (so that a slow drift of the machine's load
//! favours neither). Each round gives one ratio, encrypted throughput over plain throughput
//! (1.0 = no cost), from two runs taken a few milliseconds apart; the figure is the median
//! of the rounds' ratios, and the records per second are the medians of each side's times.
//! On a shared machine a burst of other work slows one run of one round; the median
//! ignores it, where a mean would not and a minimum taken per side would compare runs
//! from different moments.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::{Fsync, MasterKey, Store, StoreConfig};

/// Records per appended batch (one write per batch).
pub const BATCH: usize = 64;

/// The figures.
#[derive(Clone, Debug, Default)]
pub struct StoreFigures {
    /// Encrypted / plain write throughput, 256-byte records, no fsync.
    pub write_256_vs_plain: f64,
    /// Encrypted / plain read throughput, 256-byte records.
    pub read_256_vs_plain: f64,
    /// Encrypted / plain write throughput, 16 KiB records, no fsync.
    pub write_16k_vs_plain: f64,
    /// Encrypted / plain read throughput, 16 KiB records.
    pub read_16k_vs_plain: f64,
    /// Encrypted / plain write throughput, 256-byte records, fdatasync per batch.
    pub write_256_fsync_vs_plain: f64,
    /// Plain and encrypted 256-byte writes, records per second (no fsync).
    pub write_256_plain_rps: f64,
    /// The same, encrypted.
    pub write_256_encrypted_rps: f64,
    /// Plain 256-byte reads, records per second.
    pub read_256_plain_rps: f64,
    /// Encrypted 256-byte reads, records per second.
    pub read_256_encrypted_rps: f64,
    /// Rotation, microseconds per asset, assets of 1 MiB (the headline figure).
    pub rotation_us_per_asset: f64,
    /// Rotation, microseconds per asset, assets of 16 KiB.
    pub rotation_us_per_asset_16k: f64,
    /// Rotation of the 1 MiB assets expressed per GiB of stored data, milliseconds.
    pub rotation_ms_per_gib: f64,
    /// Rotation time per asset, 1 MiB assets over 16 KiB assets (1.0 = independent of the
    /// payload size).
    pub rotation_large_vs_small_payload: f64,
    /// Assets rotated in each rotation measurement.
    pub rotation_assets: usize,
}

fn store(dir: &Path, key: &MasterKey, fsync: Fsync) -> Store {
    Store::open(
        dir,
        StoreConfig::new("bench", vec![key.clone()])
            .fsync(fsync)
            .segment_bytes(256 << 20),
    )
    .expect("bench store")
}

fn write_once(
    dir: &Path,
    key: &MasterKey,
    fsync: Fsync,
    enc: bool,
    rec: &[u8],
    n: usize,
) -> Duration {
    let _ = std::fs::remove_dir_all(dir);
    let s = store(dir, key, fsync);
    let refs: Vec<&[u8]> = vec![rec; BATCH];
    let mut w = s.writer("q", enc).expect("writer");
    let t = Instant::now();
    for _ in 0..n / BATCH {
        w.append(&refs).expect("append");
    }
    let d = t.elapsed();
    w.close().expect("close");
    d
}

/// `rounds` pairs of runs, plain and encrypted, alternating which goes first: the median
/// of the rounds' ratios (plain time over encrypted time), and the median times of each
/// side (plain, encrypted).
fn pairs(rounds: usize, mut f: impl FnMut(bool) -> Duration) -> (f64, Duration, Duration) {
    let (mut ratios, mut ps, mut es) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let (p, e) = if round % 2 == 0 {
            let p = f(false);
            (p, f(true))
        } else {
            let e = f(true);
            (f(false), e)
        };
        ratios.push(p.as_secs_f64() / e.as_secs_f64().max(1e-12));
        ps.push(p);
        es.push(e);
    }
    (median(&mut ratios), median(&mut ps), median(&mut es))
}

fn median<T: PartialOrd + Copy>(v: &mut [T]) -> T {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v[v.len() / 2]
}

/// Runs every measurement under `tmp` (removed afterwards). `quick` keeps the whole run
/// to a few seconds.
pub fn run(tmp: &Path, quick: bool) -> std::io::Result<StoreFigures> {
    std::fs::create_dir_all(tmp)?;
    let key = MasterKey::generate();
    // A debug build's figures mean nothing (our code unoptimised, the crates optimised):
    // measure a token amount there, so that the tests of `rpcseal bench` stay short.
    let quick = quick || cfg!(debug_assertions);
    let token = if cfg!(debug_assertions) { 8 } else { 1 };
    // Odd, so that the median is one round's figure.
    let rounds = if quick { 15 } else { 31 };
    let mut fig = StoreFigures::default();
    let wdir = tmp.join("write");

    // Writes and reads, 256 B and 16 KiB.
    for (size, n) in [
        (256usize, if quick { 32_768 } else { 131_072 }),
        (16384, if quick { 1024 } else { 4096 }),
    ] {
        let rec = vec![0x5au8; size];
        let (w_ratio, p, e) = pairs(rounds, |enc| {
            write_once(&wdir, &key, Fsync::Never, enc, &rec, n)
        });
        let (r_ratio, rp, re) = {
            let rdir_p = tmp.join(format!("read-plain-{size}"));
            let rdir_e = tmp.join(format!("read-enc-{size}"));
            write_once(&rdir_p, &key, Fsync::Never, false, &rec, n);
            write_once(&rdir_e, &key, Fsync::Never, true, &rec, n);
            let sp = store(&rdir_p, &key, Fsync::Never);
            let se = store(&rdir_e, &key, Fsync::Never);
            pairs(rounds, |enc| {
                let s = if enc { &se } else { &sp };
                let t = Instant::now();
                let r = s.read_queue("q", |_, _, b| {
                    std::hint::black_box(b);
                });
                let d = t.elapsed();
                assert_eq!(r.expect("read").records as usize, n / BATCH * BATCH);
                d
            })
        };
        if size == 256 {
            fig.write_256_vs_plain = w_ratio;
            fig.read_256_vs_plain = r_ratio;
            let recs = (n / BATCH * BATCH) as f64;
            fig.write_256_plain_rps = recs / p.as_secs_f64();
            fig.write_256_encrypted_rps = recs / e.as_secs_f64();
            fig.read_256_plain_rps = recs / rp.as_secs_f64();
            fig.read_256_encrypted_rps = recs / re.as_secs_f64();
        } else {
            fig.write_16k_vs_plain = w_ratio;
            fig.read_16k_vs_plain = r_ratio;
        }
    }
    // 256 B with an fdatasync per batch: the disk's flush dominates both sides.
    let rec = vec![0x5au8; 256];
    let nf = BATCH * if quick { 16 } else { 64 } / token;
    let (f_ratio, _, _) = pairs(5, |enc| {
        write_once(&wdir, &key, Fsync::EveryBatch, enc, &rec, nf)
    });
    fig.write_256_fsync_vs_plain = f_ratio;
    let _ = std::fs::remove_dir_all(&wdir);

    // Rotation: the same number of assets holding 16 KiB or 1 MiB each.
    let assets = if quick { 32 } else { 128 } / token;
    fig.rotation_assets = assets;
    let mut per_asset = [0f64; 2];
    for (slot, per) in [(0usize, 16usize << 10), (1, 1 << 20)] {
        let dir = tmp.join(format!("rot-{per}"));
        let _ = std::fs::remove_dir_all(&dir);
        let a = MasterKey::generate();
        let b = MasterKey::generate();
        let s = Store::open(
            &dir,
            StoreConfig::new("bench", vec![a.clone(), b.clone()]).segment_bytes(per as u64 - 1),
        )
        .expect("store");
        let rec = vec![7u8; 4096];
        let refs: Vec<&[u8]> = vec![&rec[..]; 1];
        let mut w = s.writer("q", true).expect("writer");
        for _ in 0..assets * per / 4096 {
            w.append(&refs).expect("append");
        }
        w.close().expect("close");
        let mut best = Duration::MAX;
        let mut to_b = true;
        for _ in 0..rounds.min(3) {
            let t = Instant::now();
            let r = s.rotate(if to_b { &b } else { &a }).expect("rotate");
            best = best.min(t.elapsed());
            assert!(r.rewrapped as usize >= assets);
            to_b = !to_b;
        }
        let n = s.segments("q").expect("segments").len();
        per_asset[slot] = best.as_secs_f64() * 1e6 / n as f64;
        if slot == 1 {
            let gib = (n * per) as f64 / (1u64 << 30) as f64;
            fig.rotation_ms_per_gib = best.as_secs_f64() * 1e3 / gib;
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    fig.rotation_us_per_asset_16k = per_asset[0];
    fig.rotation_us_per_asset = per_asset[1];
    fig.rotation_large_vs_small_payload = per_asset[1] / per_asset[0];
    let _ = std::fs::remove_dir_all(tmp);
    Ok(fig)
}
