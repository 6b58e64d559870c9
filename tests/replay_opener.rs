//! Replay protection as a receiver sees it: through the Opener, with real envelopes.

mod common;

use std::sync::Arc;

use rpcseal::replay::{MemoryReplayConfig, MemoryReplayStore, ReplayStore};
use rpcseal::{ErrorKind, Identity, Inline, Mode, Opener, Recipient, Sealer, SealerConfig};

use common::{opener_with as opener, seal, T0};

fn sealer(from: &Identity, to: &Identity, mode: Mode) -> Sealer {
    common::sealer(from, &[to], mode)
}

fn kind(r: Result<rpcseal::Opened, rpcseal::Error>) -> Result<Vec<u8>, ErrorKind> {
    r.map(|o| o.payload).map_err(|e| e.kind())
}

/// Tampered copy fails and changes nothing; the original passes; the original again is a
/// replay. In every mode.
#[test]
fn tampered_then_original_then_replay() {
    let alice = Identity::generate();
    let bob = Identity::generate();
    for mode in [Mode::Signed, Mode::Mac, Mode::SignOnly] {
        let o = opener(&bob, &alice, Arc::new(MemoryReplayStore::default()));
        let mut s = sealer(&alice, &bob, mode);
        let env = seal(&mut s, b"transfer 10", T0);
        let mut bad = env.clone();
        let n = bad.len();
        bad[n - 40] ^= 4;
        assert!(o.open_at(&bad, T0).is_err());
        assert_eq!(kind(o.open_at(&env, T0)), Ok(b"transfer 10".to_vec()));
        assert_eq!(
            kind(o.open_at(&env, T0)),
            Err(ErrorKind::Replayed),
            "{mode}"
        );
        assert_eq!(
            kind(o.open_at(&env, T0 + 60)),
            Err(ErrorKind::Replayed),
            "{mode}"
        );
    }
}

/// A fleet behind a load balancer: a message accepted by one replica is rejected by every
/// other replica sharing the store.
#[test]
fn replicas_sharing_a_store_reject_each_others_replays() {
    let alice = Identity::generate();
    let svc = Identity::generate();
    let shared: Arc<dyn ReplayStore> = Arc::new(MemoryReplayStore::default());
    let replicas: Vec<Opener> = (0..3)
        .map(|_| opener(&svc, &alice, shared.clone()))
        .collect();
    let mut s = sealer(&alice, &svc, Mode::Mac);
    let envs: Vec<Vec<u8>> = (0..30u32)
        .map(|i| seal(&mut s, &i.to_be_bytes(), T0))
        .collect();
    for (i, e) in envs.iter().enumerate() {
        assert!(replicas[i % 3].open_at(e, T0).is_ok());
        for (j, r) in replicas.iter().enumerate() {
            assert_eq!(
                kind(r.open_at(e, T0)),
                Err(ErrorKind::Replayed),
                "message {i} on replica {j}"
            );
        }
    }
    // A replica that does not share the store would accept it: the sharing is what protects.
    let lone = opener(&svc, &alice, Arc::new(MemoryReplayStore::default()));
    assert!(lone.open_at(&envs[0], T0).is_ok());
}

/// Messages may arrive out of order inside the window; each is accepted once.
#[test]
fn reordered_delivery_is_accepted_once_each() {
    let alice = Identity::generate();
    let bob = Identity::generate();
    let o = opener(&bob, &alice, Arc::new(MemoryReplayStore::default()));
    let mut s = sealer(&alice, &bob, Mode::Mac);
    let envs: Vec<Vec<u8>> = (0..50u32)
        .map(|i| seal(&mut s, &i.to_be_bytes(), T0))
        .collect();
    let order: Vec<usize> = (0..50).rev().chain(0..50).collect();
    let mut accepted = 0;
    for i in order {
        match o.open_at(&envs[i], T0) {
            Ok(_) => accepted += 1,
            Err(e) => assert_eq!(e.kind(), ErrorKind::Replayed),
        }
    }
    assert_eq!(accepted, 50);
}

/// An adversary (a trusted sender, since only authenticated messages reach the store)
/// floods a small store with fresh sessions to push a live session out, then replays a
/// message of it: rejected. Stale state cannot reopen a replay.
#[test]
fn flooding_the_store_with_sessions_does_not_reopen_a_replay() {
    let alice = Identity::generate();
    let mallory = Identity::generate();
    let bob = Identity::generate();
    let store = Arc::new(MemoryReplayStore::new(MemoryReplayConfig {
        max_sessions: 8,
        max_nonces: 8,
        shards: 1,
        ..MemoryReplayConfig::default()
    }));
    let o = Opener::builder()
        .identity(&bob)
        .trust(alice.public())
        .trust(mallory.public())
        .replay_store(store)
        .build()
        .unwrap();
    let mut s = sealer(&alice, &bob, Mode::Mac);
    let victim = seal(&mut s, b"pay once", T0);
    assert!(o.open_at(&victim, T0).is_ok());
    for i in 0..64u64 {
        let mut m = Sealer::new(
            &mallory,
            &[Recipient::from(bob.public())],
            SealerConfig::new(Mode::Mac).inline(Inline::Always),
        )
        .unwrap();
        let e = seal(&mut m, b"flood", T0 + 1 + i % 2);
        let _ = o.open_at(&e, T0 + 1);
    }
    // Still tracked (replayed), or evicted under the flood and so below the watermark,
    // which the store reports as "cannot prove it is new" (spec/replay.md §8): never
    // accepted.
    let r = kind(o.open_at(&victim, T0 + 2));
    assert!(
        matches!(
            r,
            Err(ErrorKind::Replayed) | Err(ErrorKind::ReplayUnavailable)
        ),
        "{r:?}"
    );
}

/// A store that cannot answer fails closed, and a failure before the last step leaves
/// the store untouched.
#[test]
fn nothing_is_marked_unless_everything_passed() {
    let alice = Identity::generate();
    let bob = Identity::generate();
    let store = Arc::new(MemoryReplayStore::default());
    let o = opener(&bob, &alice, store.clone());
    let mut s = sealer(&alice, &bob, Mode::Signed);
    let env = seal(&mut s, b"x", T0);
    // Rejected for the clock: not marked, so it opens later within its window.
    assert_eq!(kind(o.open_at(&env, T0 + 500)), Err(ErrorKind::ClockSkew));
    // A receiver policy rejection: not marked either.
    let strict = Opener::builder()
        .identity(&bob)
        .trust(alice.public())
        .policy(rpcseal::Policy::default().modes(&[Mode::Mac]))
        .replay_store(store.clone())
        .build()
        .unwrap();
    assert_eq!(
        kind(strict.open_at(&env, T0)),
        Err(ErrorKind::ModeNotAllowed)
    );
    assert!(o.open_at(&env, T0).is_ok());
}
