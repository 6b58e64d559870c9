//! check_and_mark cost with one million tracked sessions (target: < 150 ns).
//!
//! Run: `cargo bench --bench replay`.

// criterion_group! generates an undocumented function.
#![allow(missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};
use rpcseal::replay::{MemoryReplayConfig, MemoryReplayStore, ReplayItem, ReplayStore};

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

fn bench(c: &mut Criterion) {
    let store = MemoryReplayStore::new(MemoryReplayConfig {
        max_sessions: 1 << 20,
        max_nonces: 1 << 10,
        shards: 64,
    });
    for s in 0..SESSIONS {
        store.check_and_mark(&item(s, 0), NOW).unwrap();
    }
    let mut g = c.benchmark_group("replay_1M_sessions");

    // Random session each call (worst case for caches), in-order sequence numbers.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut seq: u64 = 1;
    g.bench_function("check_and_mark_random_session", |b| {
        b.iter(|| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            seq += 1;
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

    // Read-only check (the early filter path), random session.
    g.bench_function("check_random_session", |b| {
        b.iter_batched(
            || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                item((x % u64::from(SESSIONS)) as u32, seq)
            },
            |it| black_box(store.check(&it, NOW)).ok(),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
