//! Poly1305 per message, as ChaCha20-Poly1305 uses it (a fresh key for every message):
//! the `poly1305` crate against src/aead.rs's scalar code, at the lengths where the
//! library picks one or the other (issue 15: does the crate still pay its per-key setup in
//! default x86 builds?). `poly1305/crate/N` and `poly1305/scalar/N`, N = 64 B to 4 KiB.
//!
//! Run: `cargo bench --bench poly1305` (a default build: no target-cpu or target-feature
//! flags, which is what the scalar code is for; with `+avx2` the library never uses it).

// criterion_group! defines an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use poly1305::universal_hash::{KeyInit as _, UniversalHash as _};

fn per_message(c: &mut Criterion) {
    let mut g = c.benchmark_group("poly1305");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    for len in [64usize, 256, 1024, 4096] {
        let msg = vec![0x5a; len];
        let mut key = [7u8; 32];
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_with_input(BenchmarkId::new("crate", len), &msg, |b, msg| {
            b.iter(|| {
                key[0] = key[0].wrapping_add(1);
                let mut p = poly1305::Poly1305::new((&key).into());
                p.update_padded(black_box(msg));
                black_box(p.finalize())
            })
        });
        g.bench_with_input(BenchmarkId::new("scalar", len), &msg, |b, msg| {
            b.iter(|| {
                key[0] = key[0].wrapping_add(1);
                black_box(rpcseal::forge::poly1305_scalar(&key, black_box(msg)))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, per_message);
criterion_main!(benches);
