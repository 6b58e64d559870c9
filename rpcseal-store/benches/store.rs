//! Criterion benches of the segment store (issue 20): appends and reads of 256 B and
//! 16 KiB records, the queue's encryption flag on and off in the same run (same store,
//! same code path, batches of 64 records, no fsync), and master key rotation of a fixed
//! number of assets holding 16 KiB or 1 MiB each (the time should not depend on the size).
//!
//! `cargo bench -p rpcseal-store --bench store`
#![allow(missing_docs)] // criterion_group! generates an undocumented function

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rpcseal_store::{measure::BATCH, Fsync, MasterKey, Store, StoreConfig};

fn cfg(key: &MasterKey) -> StoreConfig {
    StoreConfig::new("bench", vec![key.clone()])
        .fsync(Fsync::Never)
        .segment_bytes(64 << 20)
}

fn writes_and_reads(c: &mut Criterion) {
    let key = MasterKey::generate();
    let tmp = tempfile::tempdir().unwrap();
    for size in [256usize, 16384] {
        let rec = vec![0x5au8; size];
        let refs: Vec<&[u8]> = vec![&rec[..]; BATCH];
        let mut g = c.benchmark_group(format!("store_write/{size}"));
        g.throughput(Throughput::Bytes((size * BATCH) as u64));
        for (name, enc) in [("plain", false), ("encrypted", true)] {
            g.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter_custom(|iters| {
                    // A fresh store per sample, so the disk use stays bounded.
                    let dir = tmp.path().join(format!("w-{name}-{size}"));
                    let _ = std::fs::remove_dir_all(&dir);
                    let s = Store::open(&dir, cfg(&key)).unwrap();
                    let mut w = s.writer("q", enc).unwrap();
                    let t = Instant::now();
                    for _ in 0..iters {
                        w.append(&refs).unwrap();
                    }
                    let d = t.elapsed();
                    w.close().unwrap();
                    let _ = std::fs::remove_dir_all(&dir);
                    d
                })
            });
        }
        g.finish();

        let n = (4 << 20) / size;
        let mut g = c.benchmark_group(format!("store_read/{size}"));
        g.throughput(Throughput::Bytes((n / BATCH * BATCH * size) as u64));
        for (name, enc) in [("plain", false), ("encrypted", true)] {
            let dir = tmp.path().join(format!("r-{name}-{size}"));
            let s = Store::open(&dir, cfg(&key)).unwrap();
            let mut w = s.writer("q", enc).unwrap();
            for _ in 0..n / BATCH {
                w.append(&refs).unwrap();
            }
            w.close().unwrap();
            g.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter(|| {
                    s.read_queue("q", |_, _, body| {
                        std::hint::black_box(body);
                    })
                    .unwrap()
                })
            });
        }
        g.finish();
    }
}

fn rotation(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let mut g = c.benchmark_group("rotation");
    g.sample_size(10).measurement_time(Duration::from_secs(4));
    for assets in [16usize, 64] {
        for per in [16usize << 10, 1 << 20] {
            let a = MasterKey::generate();
            let b = MasterKey::generate();
            let dir = tmp.path().join(format!("{assets}-{per}"));
            let s = Store::open(
                &dir,
                StoreConfig::new("bench", vec![a.clone(), b.clone()]).segment_bytes(per as u64 - 1),
            )
            .unwrap();
            let rec = vec![7u8; 4096];
            let mut w = s.writer("q", true).unwrap();
            for _ in 0..assets * per / 4096 {
                w.append(&[&rec[..]]).unwrap();
            }
            w.close().unwrap();
            g.throughput(Throughput::Elements(s.segments("q").unwrap().len() as u64));
            let mut to_b = true;
            g.bench_function(
                BenchmarkId::new(format!("assets_{assets}"), format!("{}KiB_each", per >> 10)),
                |bn| {
                    bn.iter(|| {
                        s.rotate(if to_b { &b } else { &a }).unwrap();
                        to_b = !to_b;
                    })
                },
            );
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = writes_and_reads, rotation
}
criterion_main!(benches);
