//! rpcseal against its floor and its peers, in one run (issue 7).
//!
//! Groups:
//! - `seal/<mode>`, `open/<mode>`: steady state (session by reference, cached at the
//!   receiver), payloads 64 B to 1 MiB, with byte throughput; for the modes that encrypt,
//!   also `2_threads/1048576`: 1 MiB with the message hash on a second thread
//!   (`parallel_hash_from(Some(0))`, as the CLI runs for payloads this large).
//! - `floor/*`: the same AEAD, hash, tag/signature and encoding work done directly with the
//!   crates, no envelope around it; `aead_raw/*`: the chacha20poly1305 crate alone.
//! - `roundtrip/<size>/*`: seal + open of one message, 64 B to 1 MiB: rpcseal (each mode),
//!   the floor, the usual hybrid design (HPKE single-shot seal + Ed25519 signature per
//!   message), age (one X25519 recipient) and a libsodium-style sealed box (crypto_box).
//!   `python3 benches/chart.py` draws `benches/roundtrip.svg` from these results.
//! - `setup/*`: a session to N recipients against N HPKE seals.
//! - `open_session/*`: a session block seen for the first time against a cached one.
//! - `replay/*`: the replay check against the in-memory store with a million sessions.
//! - `batch_open/*`: 64 signed messages, `open_batch` against 64 `open` calls.
//! - `threads/*`: 1 and 2 threads opening messages of different sessions.
//! - `crossover/*`: MAC-mode seal and open from 64 KiB to 768 KiB with the message hash on
//!   the caller's thread and on a second thread: where the second thread starts to pay.
//!
//! Run: `cargo bench --bench envelope`, and for the AVX2 build see README.perf.md.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit};
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use rpcseal::replay::{
    MemoryReplayConfig, MemoryReplayStore, NoReplayCheck, ReplayItem, ReplayStore,
};
use rpcseal::{Identity, Inline, Metadata, Mode, Opener, Policy, Recipient, Sealer, SealerConfig};

// The measuring sticks `rpcseal bench` uses too, so that the two cannot drift.
#[path = "../rpcseal-cli/src/cli/measure.rs"]
#[allow(dead_code)]
mod measure;
use measure::{hpke_seal, Floor, HpkePk, Hybrid, PointerChase, ScatteredSessions};

const SIZES: [usize; 5] = [64, 256, 1024, 16 * 1024, 1024 * 1024];
const MODES: [Mode; 3] = [Mode::Signed, Mode::Mac, Mode::SignOnly];

fn meta() -> Metadata {
    let mut m = Metadata::new();
    m.insert("method".into(), "inventory.get".into());
    m.insert("message_id".into(), "7f3c9a".into());
    m
}

/// A sender and a receiver in steady state: the session block has been delivered and the
/// receiver caches the session; envelopes refer to it.
struct Pair {
    sealer: Sealer,
    opener: Opener,
}

fn pair(mode: Mode, n_recipients: usize) -> Pair {
    pair_n(mode, n_recipients, Arc::new(NoReplayCheck), None)
}

/// A 1:1 [`pair`] whose opener uses `store`.
fn pair_with_store(mode: Mode, store: Arc<dyn ReplayStore>) -> Pair {
    pair_n(mode, 1, store, None)
}

/// [`pair`] with the sealer's and the opener's `parallel_hash_from`.
fn pair_with(mode: Mode, n_recipients: usize, parallel: Option<usize>) -> Pair {
    pair_n(mode, n_recipients, Arc::new(NoReplayCheck), parallel)
}

fn pair_n(
    mode: Mode,
    n_recipients: usize,
    store: Arc<dyn ReplayStore>,
    parallel: Option<usize>,
) -> Pair {
    pair_of(mode, n_recipients, store, parallel, Identity::generate())
}

/// A 1:1 [`pair`] in the post-quantum suite 2: bob has an X-Wing key (issue 15).
fn pair_pq(mode: Mode) -> Pair {
    let bob = Identity::generate_post_quantum();
    pair_of(mode, 1, Arc::new(NoReplayCheck), None, bob)
}

fn pair_of(
    mode: Mode,
    n_recipients: usize,
    store: Arc<dyn ReplayStore>,
    parallel: Option<usize>,
    bob: Identity,
) -> Pair {
    let alice = Identity::generate();
    let mut rcpts = vec![Recipient::from(bob.public())];
    rcpts.extend((1..n_recipients).map(|_| Recipient::from(Identity::generate().public())));
    let mut sealer = Sealer::new(
        &alice,
        &rcpts,
        SealerConfig::new(mode)
            .inline(Inline::FirstMessage)
            .parallel_hash_from(parallel),
    )
    .unwrap();
    let opener = Opener::builder()
        .identity(&bob)
        .trust(alice.public())
        .replay_store(store)
        .policy(Policy::default().parallel_hash_from(parallel))
        .build()
        .unwrap();
    let first = sealer.seal(b"hello", &meta()).unwrap();
    opener.open(&first).unwrap();
    Pair { sealer, opener }
}

fn quick<'a>(
    c: &'a mut Criterion,
    name: &str,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    g
}

fn seal_open(c: &mut Criterion) {
    for mode in MODES {
        let mut g = quick(c, &format!("seal/{mode}"));
        for size in SIZES {
            if size >= 1 << 20 {
                g.sample_size(10);
            }
            g.throughput(Throughput::Bytes(size as u64));
            let mut p = pair(mode, 1);
            let payload = vec![0x5a; size];
            let m = meta();
            let mut out = Vec::with_capacity(size + 1024);
            g.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, _| {
                b.iter(|| {
                    out.clear();
                    p.sealer.seal_into(&payload, &m, &mut out).unwrap();
                    black_box(&out);
                })
            });
        }
        if mode.encrypts() {
            let size = 1 << 20;
            g.sample_size(10).throughput(Throughput::Bytes(size as u64));
            let mut p = pair_with(mode, 1, Some(0));
            let payload = vec![0x5a; size];
            let m = meta();
            let mut out = Vec::with_capacity(size + 1024);
            g.bench_with_input(BenchmarkId::new("2_threads", size), &size, |b, _| {
                b.iter(|| {
                    out.clear();
                    p.sealer.seal_into(&payload, &m, &mut out).unwrap();
                    black_box(&out);
                })
            });
        }
        g.finish();
        let mut g = quick(c, &format!("open/{mode}"));
        for size in SIZES {
            if size >= 1 << 20 {
                g.sample_size(10);
            }
            g.throughput(Throughput::Bytes(size as u64));
            let mut p = pair(mode, 1);
            let env = p.sealer.seal(&vec![0x5a; size], &meta()).unwrap();
            g.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, _| {
                b.iter(|| black_box(p.opener.open(&env).unwrap()))
            });
        }
        if mode.encrypts() {
            let size = 1 << 20;
            g.sample_size(10).throughput(Throughput::Bytes(size as u64));
            let mut p = pair_with(mode, 1, Some(0));
            let env = p.sealer.seal(&vec![0x5a; size], &meta()).unwrap();
            g.bench_with_input(BenchmarkId::new("2_threads", size), &size, |b, _| {
                b.iter(|| black_box(p.opener.open(&env).unwrap()))
            });
        }
        g.finish();
    }
}

fn floor_and_raw(c: &mut Criterion) {
    let mut g = quick(c, "floor/mac_seal");
    for size in SIZES {
        if size >= 1 << 20 {
            g.sample_size(10);
        }
        g.throughput(Throughput::Bytes(size as u64));
        let mut f = Floor::new(&meta());
        let payload = vec![0x5a; size];
        let mut out = Vec::with_capacity(size + 1024);
        g.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, _| {
            b.iter(|| {
                out.clear();
                f.seal_mac(&payload, &mut out);
                black_box(&out);
            })
        });
    }
    g.finish();
    let mut g = quick(c, "floor/signed_seal");
    for size in [64usize, 256] {
        g.throughput(Throughput::Bytes(size as u64));
        let mut f = Floor::new(&meta());
        let payload = vec![0x5a; size];
        let mut out = Vec::with_capacity(size + 1024);
        g.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, _| {
            b.iter(|| {
                out.clear();
                f.seal_signed(&payload, &mut out);
                black_box(&out);
            })
        });
    }
    g.finish();
    let mut g = quick(c, "aead_raw/chacha20poly1305");
    for size in SIZES {
        if size >= 1 << 20 {
            g.sample_size(10);
        }
        g.throughput(Throughput::Bytes(size as u64));
        let aead = ChaCha20Poly1305::new(&[3u8; 32].into());
        let mut buf = vec![0x5a; size];
        let mut seq = 0u64;
        g.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, _| {
            b.iter(|| {
                seq += 1;
                let mut n = [0u8; 12];
                n[4..].copy_from_slice(&seq.to_be_bytes());
                black_box(
                    aead.encrypt_inout_detached(&n.into(), b"", buf.as_mut_slice().into())
                        .unwrap(),
                );
            })
        });
    }
    g.finish();
}

/// Seal + open of one message, per payload size, for each rpcseal mode and each peer: the
/// data behind the chart (`benches/chart.py` draws `benches/roundtrip.svg` from it).
fn roundtrip(c: &mut Criterion) {
    let m = meta();
    // The usual hybrid: an HPKE single-shot seal of the payload and an Ed25519 signature
    // over the ciphertext, per message; the receiver verifies and opens.
    let hybrid = Hybrid::new();
    let age_id = age::x25519::Identity::generate();
    let age_to = age_id.to_public();
    let box_sk = crypto_box::SecretKey::generate(&mut crypto_box::aead::OsRng);
    let box_pk = box_sk.public_key();
    let mut f = Floor::new(&meta());
    for size in SIZES {
        let payload = vec![0x5a; size];
        let mut g = quick(c, &format!("roundtrip/{size}"));
        if size >= 1 << 20 {
            g.sample_size(10);
        }
        g.throughput(Throughput::Bytes(size as u64));
        for mode in MODES {
            let mut p = pair(mode, 1);
            let mut out = Vec::with_capacity(size + 1024);
            g.bench_function(format!("rpcseal_{mode}"), |b| {
                b.iter(|| {
                    out.clear();
                    p.sealer.seal_into(&payload, &m, &mut out).unwrap();
                    black_box(p.opener.open(&out).unwrap());
                })
            });
        }
        // The same in a suite-2 (X-Wing) session: per message, symmetric work only.
        let mut p = pair_pq(Mode::Mac);
        let mut out = Vec::with_capacity(size + 1024);
        g.bench_function("rpcseal_mac_xwing", |b| {
            b.iter(|| {
                out.clear();
                p.sealer.seal_into(&payload, &m, &mut out).unwrap();
                black_box(p.opener.open(&out).unwrap());
            })
        });
        let mut out = Vec::with_capacity(size + 1024);
        g.bench_function("floor_mac", |b| {
            b.iter(|| {
                out.clear();
                f.seal_mac(&payload, &mut out);
                black_box(f.open_mac(&out, payload.len()).unwrap());
            })
        });
        g.bench_function("hybrid_hpke_ed25519", |b| {
            b.iter(|| black_box(hybrid.roundtrip(&payload)))
        });
        g.bench_function("age_x25519", |b| {
            b.iter(|| {
                let ct = age::encrypt(&age_to, &payload).unwrap();
                black_box(age::decrypt(&age_id, &ct).unwrap());
            })
        });
        g.bench_function("sealed_box", |b| {
            b.iter(|| {
                let ct = box_pk.seal(&mut crypto_box::aead::OsRng, &payload).unwrap();
                black_box(box_sk.unseal(&ct).unwrap());
            })
        });
        g.finish();
    }
}

fn setup(c: &mut Criterion) {
    let alice = Identity::generate();
    let mut g = quick(c, "setup");
    for n in [1usize, 10, 100, 1000] {
        if n >= 100 {
            g.sample_size(10);
        }
        g.throughput(Throughput::Elements(n as u64));
        let rcpts: Vec<Recipient> = (0..n)
            .map(|_| Recipient::from(Identity::generate().public()))
            .collect();
        let mut sealer = Sealer::new(&alice, &rcpts, SealerConfig::new(Mode::Signed)).unwrap();
        g.bench_with_input(BenchmarkId::new("rpcseal_signed", n), &n, |b, _| {
            b.iter(|| {
                sealer.rotate();
                black_box(sealer.session_block().unwrap().len());
            })
        });
        // Suite 2 (issue 15): the same number of recipients, each with an X-Wing key.
        let pq: Vec<Recipient> = (0..n.min(100))
            .map(|_| Recipient::from(Identity::generate_post_quantum().public()))
            .collect();
        if n <= 100 {
            let mut sealer = Sealer::new(&alice, &pq, SealerConfig::new(Mode::Signed)).unwrap();
            g.bench_with_input(BenchmarkId::new("rpcseal_signed_xwing", n), &n, |b, _| {
                b.iter(|| {
                    sealer.rotate();
                    black_box(sealer.session_block().unwrap().len());
                })
            });
        }
        let pks: Vec<HpkePk> = rcpts.iter().map(|_| Hybrid::keypair().1).collect();
        g.bench_with_input(BenchmarkId::new("hpke_seals", n), &n, |b, _| {
            b.iter(|| {
                for pk in &pks {
                    black_box(hpke_seal(pk, &[0u8; 36], &[0u8; 32]));
                }
            })
        });
    }
    g.finish();
}

fn open_session(c: &mut Criterion) {
    let alice = Identity::generate();
    let bob = Identity::generate();
    let mut sealer = Sealer::new(
        &alice,
        &[Recipient::from(bob.public())],
        SealerConfig::new(Mode::Mac).inline(Inline::Always),
    )
    .unwrap();
    let env = sealer.seal(&[0x5a; 256], &meta()).unwrap();
    let build = || {
        Opener::builder()
            .identity(&bob)
            .trust(alice.public())
            .session_cache_capacity(16)
            .replay_store(Arc::new(NoReplayCheck))
            .build()
            .unwrap()
    };
    let mut g = quick(c, "open_session");
    g.bench_function("first_seen", |b| {
        b.iter_batched(
            build,
            |o| black_box(o.open(&env).unwrap()),
            BatchSize::SmallInput,
        )
    });
    let warm = build();
    warm.open(&env).unwrap();
    g.bench_function("cached_inline_block", |b| {
        b.iter(|| black_box(warm.open(&env).unwrap()))
    });
    g.finish();
}

fn replay(c: &mut Criterion) {
    const NOW: u64 = 1_800_000_000;
    const SESSIONS: u64 = 1_000_000;
    let store: Arc<dyn ReplayStore> = Arc::new(MemoryReplayStore::new(MemoryReplayConfig {
        max_sessions: 1 << 20,
        ..MemoryReplayConfig::default()
    }));
    let item = ReplayItem {
        sender: [1; 16],
        session_id: [0; 16],
        seq: 0,
        nonce: [2; 16],
        timestamp: NOW,
        expires_at: NOW + 3600,
        one_shot: false,
    };
    // A million tracked sessions; `cold`: each message on another of them (its state is not
    // in the CPU caches, as on a busy receiver); `hot`: traffic on a thousand of them.
    // Sequence numbers in order per session. Per message: the read-only check, then the
    // mark, as the opener does.
    let cold = ScatteredSessions::new(store.clone(), SESSIONS);
    cold.preload(NOW, NOW + 3600).unwrap();
    let hot = ScatteredSessions::new(store, 1000).with_sender(0x5a);
    hot.preload(NOW, NOW + 3600).unwrap();
    let mut g = quick(c, "replay");
    for (name, s) in [("1m_sessions_cold", &cold), ("1m_sessions_hot_1000", &hot)] {
        g.bench_function(format!("memory_check_and_mark_{name}"), |b| {
            b.iter(|| {
                black_box(s.check(&item, NOW)).unwrap();
                black_box(s.check_and_mark(&item, NOW)).unwrap();
            })
        });
    }
    // The floor for a cold session: one dependent read of a random cache line of a 256 MiB
    // array (the store above holds about 270 MB).
    let mut chase = PointerChase::new(256 << 20);
    g.bench_function("memory_latency_floor", |b| {
        b.iter(|| black_box(chase.walk(1)))
    });
    // Inside `Opener::open`: a MAC-mode 256 B seal + open whose replay store tracks a
    // million sessions, each message on a cold one, against a thousand; the difference is
    // what the replay check adds per message.
    drop((cold, hot));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for sessions in [SESSIONS, 1000] {
        let scattered = ScatteredSessions::new(
            MemoryReplayStore::new(MemoryReplayConfig {
                max_sessions: 1 << 20,
                ..MemoryReplayConfig::default()
            }),
            sessions,
        );
        scattered.preload(now - 60, now + 86_400).unwrap();
        let mut p = pair_with_store(Mode::Mac, Arc::new(scattered));
        let m = meta();
        let payload = [0x5a; 256];
        let mut out = Vec::with_capacity(1024);
        g.bench_function(
            format!("roundtrip_256_mac_{sessions}_sessions_tracked"),
            |b| {
                b.iter(|| {
                    out.clear();
                    p.sealer.seal_into(&payload, &m, &mut out).unwrap();
                    black_box(p.opener.open(&out).unwrap());
                })
            },
        );
    }
    g.finish();
}

fn batch_open(c: &mut Criterion) {
    const N: usize = 64;
    let mut g = quick(c, "batch_open");
    g.throughput(Throughput::Elements(N as u64));
    for mode in [Mode::Signed, Mode::SignOnly] {
        let mut p = pair(mode, 1);
        let envs: Vec<Vec<u8>> = (0..N)
            .map(|_| p.sealer.seal(&[0x5a; 256], &meta()).unwrap())
            .collect();
        let refs: Vec<&[u8]> = envs.iter().map(Vec::as_slice).collect();
        g.bench_function(format!("{mode}_single_x{N}"), |b| {
            b.iter(|| {
                for e in &refs {
                    black_box(p.opener.open(e).unwrap());
                }
            })
        });
        g.bench_function(format!("{mode}_batch_{N}"), |b| {
            b.iter(|| black_box(p.opener.open_batch(&refs)))
        });
    }
    g.finish();
}

fn threads(c: &mut Criterion) {
    let alice = Identity::generate();
    let bob = Identity::generate();
    let opener = Opener::builder()
        .identity(&bob)
        .trust(alice.public())
        .replay_store(Arc::new(NoReplayCheck))
        .build()
        .unwrap();
    // One session per thread; their references fall in different cache shards (the
    // common case: 16 shards).
    let mut envs = Vec::new();
    while envs.len() < 2 {
        let mut s = Sealer::new(
            &alice,
            &[Recipient::from(bob.public())],
            SealerConfig::new(Mode::Mac).inline(Inline::Never),
        )
        .unwrap();
        let r = opener.import_session(s.session_block().unwrap()).unwrap();
        if envs
            .iter()
            .any(|(r0, _): &([u8; 16], Vec<u8>)| r0[0] % 16 == r[0] % 16)
        {
            continue;
        }
        envs.push((r, s.seal(&[0x5a; 256], &meta()).unwrap()));
    }
    let mut g = quick(c, "threads/open_mac_256");
    for t in [1usize, 2] {
        g.throughput(Throughput::Elements(t as u64));
        g.bench_function(format!("{t}_threads"), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                std::thread::scope(|s| {
                    for (_, env) in envs.iter().take(t) {
                        let o = &opener;
                        s.spawn(move || {
                            for _ in 0..iters {
                                black_box(o.open(env).unwrap());
                            }
                        });
                    }
                });
                start.elapsed()
            })
        });
    }
    g.finish();
}

/// Where the message hash on a second thread starts to pay: MAC-mode seal and open from
/// 64 KiB to 1 MiB with `parallel_hash_from` off (`1_thread`) and on (`2_threads`). The
/// CLI's thresholds (`rpcseal-cli/src/cli/mod.rs`) come from this.
fn crossover(c: &mut Criterion) {
    const SIZES: [usize; 7] = [
        64 << 10,
        128 << 10,
        256 << 10,
        384 << 10,
        512 << 10,
        640 << 10,
        768 << 10,
    ];
    for (what, seal) in [("seal", true), ("open", false)] {
        let mut g = quick(c, &format!("crossover/{what}_mac"));
        g.sample_size(20);
        for size in SIZES {
            g.throughput(Throughput::Bytes(size as u64));
            for (label, knob) in [("1_thread", None), ("2_threads", Some(0))] {
                let mut p = pair_with(Mode::Mac, 1, knob);
                let payload = vec![0x5a; size];
                let m = meta();
                let env = p.sealer.seal(&payload, &m).unwrap();
                let mut out = Vec::with_capacity(size + 1024);
                g.bench_with_input(BenchmarkId::new(label, size), &size, |b, _| {
                    b.iter(|| {
                        if seal {
                            out.clear();
                            p.sealer.seal_into(&payload, &m, &mut out).unwrap();
                            black_box(&out);
                        } else {
                            black_box(p.opener.open(&env).unwrap());
                        }
                    })
                });
            }
        }
        g.finish();
    }
}

#[allow(missing_docs)]
mod group {
    use super::*;
    criterion_group!(
        benches,
        seal_open,
        floor_and_raw,
        roundtrip,
        setup,
        open_session,
        replay,
        batch_open,
        threads,
        crossover
    );
}
criterion_main!(group::benches);
