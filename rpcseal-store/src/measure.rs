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
//!
//! The headline ratios are from wall-clock time. Beside them, the same ratios from the
//! time the measuring thread spent on a CPU (`*_cpu`): other processes holding the CPU
//! do not count there, so on a loaded machine they show what the code costs, where the
//! wall-clock ratios also show when the scheduler let it run.

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
    /// [`StoreFigures::write_256_vs_plain`] from on-CPU time instead of wall-clock time
    /// (the time other processes held the CPU left out).
    pub write_256_vs_plain_cpu: f64,
    /// [`StoreFigures::read_256_vs_plain`] from on-CPU time.
    pub read_256_vs_plain_cpu: f64,
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
) -> Sample {
    let _ = std::fs::remove_dir_all(dir);
    let s = store(dir, key, fsync);
    let refs: Vec<&[u8]> = vec![rec; BATCH];
    let mut w = s.writer("q", enc).expect("writer");
    let t = Sample::start();
    for _ in 0..n / BATCH {
        w.append(&refs).expect("append");
    }
    let d = t.stop();
    w.close().expect("close");
    d
}

/// One run's time: wall-clock, and the time this thread spent on a CPU (Linux's
/// `/proc/thread-self/schedstat`, nanoseconds, user and kernel), which leaves out the
/// time other processes held the CPU. On a machine shared with other work the second is
/// the steadier estimate of what the run costs; where it cannot be read it is the wall
/// time.
#[derive(Clone, Copy, Debug)]
struct Sample {
    wall: Duration,
    cpu: Duration,
}

fn on_cpu() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    (ns > 0).then(|| Duration::from_nanos(ns))
}

struct Started(Instant, Option<Duration>);

impl Sample {
    fn start() -> Started {
        Started(Instant::now(), on_cpu())
    }
}

impl Started {
    fn stop(self) -> Sample {
        let wall = self.0.elapsed();
        let cpu = match (self.1, on_cpu()) {
            (Some(a), Some(b)) if b > a => b - a,
            _ => wall,
        };
        Sample { wall, cpu }
    }
}

/// The medians of [`pairs`].
struct Paired {
    /// Median of the rounds' wall-clock ratios (plain time over encrypted time).
    ratio: f64,
    /// The same from on-CPU times.
    ratio_cpu: f64,
    /// Median wall time, plain.
    plain: Duration,
    /// Median wall time, encrypted.
    enc: Duration,
}

/// `rounds` pairs of runs, plain and encrypted, alternating which goes first: the median
/// of the rounds' ratios (plain time over encrypted time), and the median times of each
/// side.
fn pairs(rounds: usize, mut f: impl FnMut(bool) -> Sample) -> Paired {
    let (mut ratios, mut ratios_cpu, mut ps, mut es) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let (p, e) = if round % 2 == 0 {
            let p = f(false);
            (p, f(true))
        } else {
            let e = f(true);
            (f(false), e)
        };
        ratios.push(p.wall.as_secs_f64() / e.wall.as_secs_f64().max(1e-12));
        ratios_cpu.push(p.cpu.as_secs_f64() / e.cpu.as_secs_f64().max(1e-12));
        ps.push(p.wall);
        es.push(e.wall);
    }
    Paired {
        ratio: median(&mut ratios),
        ratio_cpu: median(&mut ratios_cpu),
        plain: median(&mut ps),
        enc: median(&mut es),
    }
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
    let rounds = if cfg!(debug_assertions) {
        3
    } else if quick {
        15
    } else {
        31
    };
    let mut fig = StoreFigures::default();
    let wdir = tmp.join("write");

    // Writes and reads, 256 B and 16 KiB.
    for (size, n) in [
        (256usize, if quick { 32_768 } else { 131_072 } / token),
        (16384, if quick { 1024 } else { 4096 } / token),
    ] {
        let rec = vec![0x5au8; size];
        let w = pairs(rounds, |enc| {
            write_once(&wdir, &key, Fsync::Never, enc, &rec, n)
        });
        let r = {
            let rdir_p = tmp.join(format!("read-plain-{size}"));
            let rdir_e = tmp.join(format!("read-enc-{size}"));
            write_once(&rdir_p, &key, Fsync::Never, false, &rec, n);
            write_once(&rdir_e, &key, Fsync::Never, true, &rec, n);
            let sp = store(&rdir_p, &key, Fsync::Never);
            let se = store(&rdir_e, &key, Fsync::Never);
            pairs(rounds, |enc| {
                let s = if enc { &se } else { &sp };
                let t = Sample::start();
                let r = s.read_queue("q", |_, _, b| {
                    std::hint::black_box(b);
                });
                let d = t.stop();
                assert_eq!(r.expect("read").records as usize, n / BATCH * BATCH);
                d
            })
        };
        if size == 256 {
            fig.write_256_vs_plain = w.ratio;
            fig.read_256_vs_plain = r.ratio;
            fig.write_256_vs_plain_cpu = w.ratio_cpu;
            fig.read_256_vs_plain_cpu = r.ratio_cpu;
            let recs = (n / BATCH * BATCH) as f64;
            fig.write_256_plain_rps = recs / w.plain.as_secs_f64();
            fig.write_256_encrypted_rps = recs / w.enc.as_secs_f64();
            fig.read_256_plain_rps = recs / r.plain.as_secs_f64();
            fig.read_256_encrypted_rps = recs / r.enc.as_secs_f64();
        } else {
            fig.write_16k_vs_plain = w.ratio;
            fig.read_16k_vs_plain = r.ratio;
        }
    }
    // 256 B with an fdatasync per batch: the disk's flush dominates both sides.
    let rec = vec![0x5au8; 256];
    let nf = BATCH * if quick { 16 } else { 64 } / token;
    let f = pairs(5, |enc| {
        write_once(&wdir, &key, Fsync::EveryBatch, enc, &rec, nf)
    });
    fig.write_256_fsync_vs_plain = f.ratio;
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
