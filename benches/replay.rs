//! check_and_mark cost with one million tracked sessions (target: < 150 ns).
//!
//! Run: `cargo bench --bench replay`.

// criterion_group! generates an undocumented function.
#![allow(missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use rpcseal::replay::{MemoryReplayConfig, MemoryReplayStore, ReplayItem, ReplayStore};

#[path = "../rpcseal-cli/src/cli/measure.rs"]
#[allow(dead_code)]
mod measure;

const SESSIONS: u32 = 1_000_000;
const NOW: u64 = 1_700_000_000;

fn item(session: u32, seq: u64) -> ReplayItem {
    let mut session_id = [0x5au8; 16];
    session_id[..4].copy_from_slice(&session.to_le_bytes());
    ReplayItem {
        sender: [7u8; 16],
        session_id,
        seq,
        nonce: [0u8; 16],
        timestamp: NOW,
        expires_at: NOW + 3600,
        one_shot: false,
    }
}

/// Call `n` (from 1) of a scattered round-robin over all sessions: (session, seq).
fn scattered(n: u64) -> (u32, u64) {
    let s = u64::from(SESSIONS);
    // 0x9e37_79b1 is odd and not a multiple of 5, so coprime with 1_000_000.
    let session = ((n % s) * 0x9e37_79b1) % s;
    // Sessions were loaded with seq 0.
    (session as u32, n / s + 1)
}

fn bench(c: &mut Criterion) {
    let store = MemoryReplayStore::new(MemoryReplayConfig {
        max_sessions: 1 << 20,
        max_nonces: 1 << 10,
        shards: 64,
        ..MemoryReplayConfig::default()
    });
    for s in 0..SESSIONS {
        store.check_and_mark(&item(s, 0), NOW).unwrap();
    }
    let mut g = c.benchmark_group("replay_1M_sessions");

    // A different session each call, in a scattered order that visits every session once
    // per round (the multiplier is coprime with SESSIONS; the keyed hash scatters the
    // buckets anyway), so every call misses the CPU caches as on a busy receiver. Each
    // session's sequence numbers advance by one per round, as a sealer's do: the mark
    // touches the window's top and one bitmap word.
    let mut n: u64 = 0;
    g.bench_function("check_and_mark_random_session", |b| {
        b.iter(|| {
            n += 1;
            let (s, seq) = scattered(n);
            let it = item(s, seq);
            black_box(store.check_and_mark(black_box(&it), NOW)).unwrap();
        })
    });

    // The same, but every message jumps its session's sequence number past the window, so
    // the mark rewrites the whole bitmap (136 bytes): the worst case for memory traffic.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut seq: u64 = 1 << 40;
    g.bench_function("check_and_mark_random_session_window_jump", |b| {
        b.iter(|| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            seq += 2 * rpcseal::replay::WINDOW_SIZE;
            let it = item((x % u64::from(SESSIONS)) as u32, seq);
            black_box(store.check_and_mark(black_box(&it), NOW)).unwrap();
        })
    });

    // Hot set of 1000 sessions (typical: most traffic on few live sessions).
    let mut i: u32 = 0;
    g.bench_function("check_and_mark_hot_sessions", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            seq += 1;
            let it = item(i % 1000, seq);
            black_box(store.check_and_mark(black_box(&it), NOW)).unwrap();
        })
    });

    // Read-only check (the early filter path), a different session each call.
    g.bench_function("check_random_session", |b| {
        b.iter(|| {
            n += 1;
            let (s, _) = scattered(n);
            let it = item(s, u64::MAX);
            black_box(store.check(black_box(&it), NOW)).unwrap();
        })
    });
    // The floor for the random-session cases: one dependent read of a random cache line of
    // a 256 MiB array (the store holds about 270 MB). A cold session's check cannot beat it.
    let mut chase = measure::PointerChase::new(256 << 20);
    g.bench_function("memory_latency_floor", |b| {
        b.iter(|| black_box(chase.walk(1)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
