//! Replay protection, in-memory store (spec/replay.md).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rpcseal::replay::{
    MemoryReplayConfig, MemoryReplayStore, NoReplayCheck, ReplayError, ReplayItem, ReplayStore,
    WINDOW_SIZE,
};

const NOW: u64 = 1_700_000_000;

fn item(session: u32, seq: u64) -> ReplayItem {
    let mut session_id = [0u8; 16];
    session_id[..4].copy_from_slice(&session.to_le_bytes());
    ReplayItem {
        sender: [7u8; 16],
        session_id,
        seq,
        nonce: [0u8; 16],
        timestamp: NOW,
        expires_at: NOW + 1_000_000,
        one_shot: false,
    }
}

fn one_shot(session: u32, nonce: u8) -> ReplayItem {
    ReplayItem {
        nonce: [nonce; 16],
        one_shot: true,
        ..item(session, 0)
    }
}

fn small(max_sessions: usize, max_nonces: usize, shards: usize) -> MemoryReplayStore {
    MemoryReplayStore::new(MemoryReplayConfig {
        max_sessions,
        max_nonces,
        shards,
        ..MemoryReplayConfig::default()
    })
}

#[test]
fn store_is_send_sync_and_object_safe() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<MemoryReplayStore>();
    let _dyn: Arc<dyn ReplayStore> = Arc::new(MemoryReplayStore::default());
    const { assert!(WINDOW_SIZE >= 1024) };
}

#[test]
fn accepts_once_then_rejects_duplicate() {
    let s = MemoryReplayStore::default();
    let m = item(1, 0);
    s.check(&m, NOW).unwrap();
    s.check(&m, NOW).unwrap(); // check never marks
    s.check_and_mark(&m, NOW).unwrap();
    assert!(matches!(s.check(&m, NOW), Err(ReplayError::Replayed)));
    assert!(matches!(
        s.check_and_mark(&m, NOW),
        Err(ReplayError::Replayed)
    ));
    // Another session, same seq: independent.
    s.check_and_mark(&item(2, 0), NOW).unwrap();
    // Another sender, same session id: independent.
    let other = ReplayItem {
        sender: [8u8; 16],
        ..m
    };
    s.check_and_mark(&other, NOW).unwrap();
}

#[test]
fn reordering_inside_window_is_accepted_once() {
    let s = MemoryReplayStore::default();
    s.check_and_mark(&item(1, 2000), NOW).unwrap();
    // Everything in (2000 - WINDOW_SIZE, 2000) in reverse order.
    for seq in (2000 - WINDOW_SIZE + 1..2000).rev() {
        s.check_and_mark(&item(1, seq), NOW).unwrap();
    }
    for seq in 2000 - WINDOW_SIZE + 1..=2000 {
        assert!(matches!(
            s.check_and_mark(&item(1, seq), NOW),
            Err(ReplayError::Replayed)
        ));
    }
    // Interleaved forward jumps and late arrivals.
    for seq in [2500u64, 2100, 2499, 3000, 2001, 2999] {
        s.check_and_mark(&item(1, seq), NOW).unwrap();
    }
}

#[test]
fn older_than_window_is_rejected() {
    let s = MemoryReplayStore::default();
    s.check_and_mark(&item(1, 5000), NOW).unwrap();
    assert!(matches!(
        s.check(&item(1, 5000 - WINDOW_SIZE), NOW),
        Err(ReplayError::OutsideWindow)
    ));
    assert!(matches!(
        s.check_and_mark(&item(1, 0), NOW),
        Err(ReplayError::OutsideWindow)
    ));
    s.check_and_mark(&item(1, 5000 - WINDOW_SIZE + 1), NOW)
        .unwrap();
    // A big jump forward moves the window: what was inside is now outside.
    s.check_and_mark(&item(1, 1_000_000), NOW).unwrap();
    assert!(matches!(
        s.check(&item(1, 4999), NOW),
        Err(ReplayError::OutsideWindow)
    ));
}

#[test]
fn sequence_numbers_near_u64_max() {
    let s = MemoryReplayStore::default();
    s.check_and_mark(&item(1, 0), NOW).unwrap();
    s.check_and_mark(&item(1, u64::MAX - 1), NOW).unwrap();
    s.check_and_mark(&item(1, u64::MAX), NOW).unwrap();
    assert!(matches!(
        s.check(&item(1, u64::MAX), NOW),
        Err(ReplayError::Replayed)
    ));
    assert!(matches!(
        s.check(&item(1, u64::MAX - 1), NOW),
        Err(ReplayError::Replayed)
    ));
    s.check_and_mark(&item(1, u64::MAX - (WINDOW_SIZE - 1)), NOW)
        .unwrap();
    assert!(matches!(
        s.check(&item(1, u64::MAX - WINDOW_SIZE), NOW),
        Err(ReplayError::OutsideWindow)
    ));
    assert!(matches!(
        s.check(&item(1, 0), NOW),
        Err(ReplayError::OutsideWindow)
    ));
    // A session that starts at u64::MAX.
    s.check_and_mark(&item(2, u64::MAX), NOW).unwrap();
    s.check_and_mark(&item(2, u64::MAX - 64), NOW).unwrap();
    assert!(matches!(
        s.check_and_mark(&item(2, u64::MAX), NOW),
        Err(ReplayError::Replayed)
    ));
}

#[test]
fn failed_check_and_mark_changes_nothing() {
    let s = small(4, 4, 1);
    s.check_and_mark(&item(1, 100), NOW).unwrap();
    s.check_and_mark(&item(1, 50), NOW).unwrap();

    // Expired item with a far-ahead seq: must not move the window nor the clock.
    let expired = ReplayItem {
        expires_at: NOW - 1,
        ..item(1, 1_000_000)
    };
    assert!(matches!(
        s.check_and_mark(&expired, NOW),
        Err(ReplayError::Expired)
    ));
    // Replayed and outside-window failures.
    assert!(matches!(
        s.check_and_mark(&item(1, 50), NOW),
        Err(ReplayError::Replayed)
    ));
    s.check_and_mark(&item(1, 2000), NOW).unwrap();
    assert!(matches!(
        s.check_and_mark(&item(1, 10), NOW),
        Err(ReplayError::OutsideWindow)
    ));
    // The window is exactly where the successful marks put it.
    s.check_and_mark(&item(1, 2000 - WINDOW_SIZE + 1), NOW)
        .unwrap();
    s.check_and_mark(&item(1, 1999), NOW).unwrap();
    // A failing expired call with a later `now` did not advance the store's clock:
    // an item expiring at NOW+10 is still accepted at NOW.
    let late_now = NOW + 2_000_000;
    assert!(matches!(
        s.check_and_mark(&item(3, 0), late_now),
        Err(ReplayError::Expired)
    ));
    let short = ReplayItem {
        expires_at: NOW + 10,
        ..item(4, 0)
    };
    s.check_and_mark(&short, NOW).unwrap();
    // Failed nonce marks do not record the nonce.
    let n = ReplayItem {
        expires_at: NOW - 1,
        ..one_shot(9, 1)
    };
    assert!(matches!(
        s.check_and_mark(&n, NOW),
        Err(ReplayError::Expired)
    ));
    s.check_and_mark(&one_shot(9, 1), NOW).unwrap();
}

#[test]
fn one_shot_sessions_are_tracked_by_nonce() {
    let s = MemoryReplayStore::default();
    let m = one_shot(1, 1);
    s.check(&m, NOW).unwrap();
    s.check_and_mark(&m, NOW).unwrap();
    assert!(matches!(s.check(&m, NOW), Err(ReplayError::Replayed)));
    assert!(matches!(
        s.check_and_mark(&m, NOW),
        Err(ReplayError::Replayed)
    ));
    // The sequence number plays no part for one-shot items.
    let same_nonce_other_seq = ReplayItem { seq: 99, ..m };
    assert!(matches!(
        s.check_and_mark(&same_nonce_other_seq, NOW),
        Err(ReplayError::Replayed)
    ));
    s.check_and_mark(&one_shot(1, 2), NOW).unwrap();
    s.check_and_mark(&one_shot(2, 1), NOW).unwrap();
    // Windows and nonces do not interfere.
    s.check_and_mark(&item(1, 0), NOW).unwrap();
}

#[test]
fn expired_items_are_rejected_even_if_the_clock_steps_back() {
    let s = small(2, 2, 1);
    let short = ReplayItem {
        expires_at: NOW + 10,
        ..item(1, 0)
    };
    s.check_and_mark(&short, NOW).unwrap();
    assert!(matches!(
        s.check(&ReplayItem { seq: 1, ..short }, NOW + 11),
        Err(ReplayError::Expired)
    ));
    // Fill the shard at a later time: the expired entry is dropped (freely).
    s.check_and_mark(&item(2, 0), NOW + 20).unwrap();
    s.check_and_mark(&item(3, 0), NOW + 20).unwrap();
    // The receiver clock steps back; the dropped session's message must not come back.
    assert!(matches!(
        s.check_and_mark(&short, NOW + 5),
        Err(ReplayError::Expired)
    ));
}

#[test]
fn expired_entries_are_dropped_without_raising_the_watermark() {
    let s = small(8, 8, 1);
    for i in 0..8 {
        let m = ReplayItem {
            expires_at: NOW + 10,
            ..item(i, 0)
        };
        s.check_and_mark(&m, NOW).unwrap();
    }
    // All expired by NOW + 11: new sessions with timestamps as old as the dropped ones
    // are still accepted (no watermark was raised).
    for i in 100..108 {
        s.check_and_mark(&item(i, 0), NOW + 11).unwrap();
    }
    // Now the table is full of live entries: evicting one (for session 108) raises the
    // watermark to the newest timestamp it covered, so the next untracked one fails closed.
    s.check_and_mark(&item(108, 0), NOW + 11).unwrap();
    assert!(matches!(
        s.check_and_mark(&item(109, 0), NOW + 11),
        Err(ReplayError::BelowWatermark)
    ));
}

/// The adversary floods the store with fresh sessions to push a live entry out, then
/// replays the live session's messages: rejected.
#[test]
fn flooding_cannot_evict_a_live_session_into_a_replay() {
    for shards in [1usize, 4] {
        for rising in [false, true] {
            let s = small(64, 64, shards);
            let victim: Vec<ReplayItem> = (0..5).map(|seq| item(0, seq)).collect();
            for m in &victim {
                s.check_and_mark(m, NOW).unwrap();
            }
            // Flood: many fresh, otherwise valid sessions, either all in the same second
            // or with rising timestamps (which keeps the flood itself from being stopped
            // by the watermark, so the victim is certainly evicted).
            for i in 1..10_000u32 {
                let ts = if rising { NOW + u64::from(i) } else { NOW };
                let m = ReplayItem {
                    timestamp: ts,
                    ..item(i, 0)
                };
                let _ = s.check_and_mark(&m, ts);
            }
            let now = NOW + 10_000;
            for m in &victim {
                let r = s.check_and_mark(m, now);
                if rising {
                    assert!(matches!(r, Err(ReplayError::BelowWatermark)), "{r:?}");
                } else {
                    assert!(
                        matches!(r, Err(ReplayError::Replayed | ReplayError::BelowWatermark)),
                        "replay accepted after flood: {r:?}"
                    );
                }
            }
            // The store still accepts genuinely newer messages.
            let newer = ReplayItem {
                timestamp: now + 1,
                ..item(50_000, 0)
            };
            s.check_and_mark(&newer, now + 1).unwrap();
        }
    }
}

/// After eviction, the session comes back with a newer message; replays of messages
/// from before the eviction are still rejected (the new entry keeps a floor).
#[test]
fn re_tracked_session_keeps_rejecting_pre_eviction_messages() {
    let s = small(16, 16, 1);
    for seq in 0..5 {
        s.check_and_mark(&item(0, seq), NOW).unwrap();
    }
    for i in 1..1000u32 {
        let ts = NOW + u64::from(i);
        let m = ReplayItem {
            timestamp: ts,
            ..item(i, 0)
        };
        s.check_and_mark(&m, ts).unwrap();
    }
    // The victim session was evicted; it continues later: accepted, re-tracked.
    let next = ReplayItem {
        timestamp: NOW + 2000,
        ..item(0, 10)
    };
    s.check_and_mark(&next, NOW + 2000).unwrap();
    // Pre-eviction seq 3 is inside the new window and its bit is clear, but it is old.
    assert!(matches!(
        s.check_and_mark(&item(0, 3), NOW + 2000),
        Err(ReplayError::BelowWatermark)
    ));
    // A message never sent before (seq 7) with the old timestamp also fails closed.
    assert!(matches!(
        s.check_and_mark(&item(0, 7), NOW + 2000),
        Err(ReplayError::BelowWatermark)
    ));
    // Newer messages of the session flow normally.
    let later = ReplayItem {
        timestamp: NOW + 2001,
        ..item(0, 8)
    };
    s.check_and_mark(&later, NOW + 2001).unwrap();
}

#[test]
fn flooding_cannot_evict_a_live_nonce_into_a_replay() {
    let s = small(16, 32, 2);
    let victim = one_shot(0, 0xaa);
    s.check_and_mark(&victim, NOW).unwrap();
    for i in 1..5_000u32 {
        let ts = NOW + u64::from(i);
        let m = ReplayItem {
            timestamp: ts,
            ..one_shot(i, (i % 251) as u8)
        };
        s.check_and_mark(&m, ts).unwrap();
    }
    let r = s.check_and_mark(&victim, NOW + 5_000);
    assert!(matches!(r, Err(ReplayError::BelowWatermark)), "{r:?}");
    let fresh = ReplayItem {
        timestamp: NOW + 5_001,
        ..one_shot(9_999, 1)
    };
    s.check_and_mark(&fresh, NOW + 5_001).unwrap();
}

#[test]
fn concurrent_check_and_mark_accepts_exactly_one() {
    let s = Arc::new(MemoryReplayStore::default());
    for round in 0..50u32 {
        let wins = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let s = Arc::clone(&s);
                let wins = Arc::clone(&wins);
                std::thread::spawn(move || {
                    let _ = t;
                    let m = item(round, 7);
                    if s.check_and_mark(&m, NOW).is_ok() {
                        wins.fetch_add(1, Ordering::SeqCst);
                    }
                    if s.check_and_mark(&one_shot(round, 3), NOW).is_ok() {
                        wins.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(wins.load(Ordering::SeqCst), 2, "round {round}");
    }
}

#[test]
fn store_failure_classification() {
    assert!(!ReplayError::Replayed.is_store_failure());
    assert!(!ReplayError::BelowWatermark.is_store_failure());
    assert!(ReplayError::Misconfigured { reason: "x".into() }.is_store_failure());
    let e = ReplayError::Unavailable { reason: "x".into() };
    assert!(e.is_store_failure());
    assert!(e.to_string().contains("unavailable"));
}

#[test]
fn no_replay_check_accepts_everything() {
    let s = NoReplayCheck;
    let m = item(1, 0);
    s.check_and_mark(&m, NOW).unwrap();
    s.check_and_mark(&m, NOW).unwrap();
    s.check(&m, u64::MAX).unwrap();
}

/// One step of the model test below: a message offered to the store at some time.
#[derive(Clone, Debug)]
struct Offer {
    sender: u8,
    /// Sessions 0..6 are ordinary (windows), 100..104 one-shot (nonces).
    session: u8,
    seq: u64,
    nonce: u8,
    /// The receiver's clock, seconds after NOW (may step back).
    now: u64,
    check_first: bool,
}

fn offer() -> impl proptest::strategy::Strategy<Value = Offer> {
    use proptest::prelude::*;
    (
        1u8..3,
        prop_oneof![0u8..6, 100u8..104],
        prop_oneof![0u64..40, 500u64..540, 1000u64..1040, 2000u64..2100],
        0u8..6,
        0u64..100,
        any::<bool>(),
    )
        .prop_map(|(sender, session, seq, nonce, now, check_first)| Offer {
            sender,
            session,
            seq,
            nonce,
            now,
            check_first,
        })
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 300, ..Default::default() })]

    /// The store's safety property under eviction, expiry and clock steps: whatever
    /// sequence of messages arrives, tiny tables that must evict all the time never accept
    /// the same message twice, a message being (sender, session, seq), or for one-shot
    /// sessions (sender, session, nonce), with its timestamp (a replay carries the
    /// authenticated timestamp of the original: each message here has one, derived from
    /// its identity and the case's `salt`); `check` never marks.
    #[test]
    fn never_accepts_a_message_twice_under_eviction(
        max_sessions in 1usize..5,
        max_nonces in 1usize..5,
        shards in 1usize..3,
        salt in 0u64..30,
        offers in proptest::collection::vec(offer(), 1..200),
    ) {
        use std::collections::HashSet;
        let s = small(max_sessions, max_nonces, shards);
        let mut accepted: HashSet<(u8, u8, u64, u8)> = HashSet::new();
        for o in &offers {
            let one_shot = o.session >= 100;
            let (seq, nonce) = if one_shot { (0, o.nonce) } else { (o.seq, 0) };
            // Later sequence numbers tend to carry later timestamps, as a sealer's do.
            let ts = salt
                + 2 * (seq / 100)
                + (31 * u64::from(o.sender) + 17 * u64::from(o.session) + 13 * u64::from(nonce))
                    % 7;
            let it = ReplayItem {
                sender: [o.sender; 16],
                session_id: [o.session; 16],
                seq,
                nonce: [nonce; 16],
                timestamp: NOW + ts,
                // The same for every message of a session, as the opener guarantees.
                expires_at: NOW + 40 + 7 * u64::from(o.session % 8),
                one_shot,
            };
            let key = (o.sender, o.session, seq, nonce);
            let now = NOW + o.now;
            if o.check_first {
                let before = s.check(&it, now).is_ok();
                // check never marks: asking twice gives the same answer.
                proptest::prop_assert_eq!(before, s.check(&it, now).is_ok());
            }
            if s.check_and_mark(&it, now).is_ok() {
                proptest::prop_assert!(accepted.insert(key), "accepted twice: {:?}", o);
                // And now it is known.
                proptest::prop_assert!(s.check(&it, now).is_err());
            }
        }
    }
}

/// The floor boundary: a session evicted while live and re-created keeps as its floor the
/// watermark its eviction raised, which is exactly the timestamp of its newest accepted
/// message; that message, replayed, must hit the floor (timestamp equal to it), not the
/// fresh window of the new incarnation.
#[test]
fn a_replay_dated_exactly_at_the_floor_is_refused() {
    let s = small(1, 1, 1);
    let at = |session: u32, seq: u64, ts: u64| ReplayItem {
        timestamp: NOW + ts,
        ..item(session, seq)
    };
    let m1 = at(1, 5, 10);
    s.check_and_mark(&m1, NOW + 10).unwrap();
    // Session 2 evicts session 1 (live): the watermark becomes 10.
    s.check_and_mark(&at(2, 0, 11), NOW + 11).unwrap();
    // Session 1 again, newer: re-created with floor 10 (its insert evicts session 2 and
    // raises the watermark to 11, after the floor was taken).
    s.check_and_mark(&at(1, 600, 12), NOW + 12).unwrap();
    // m1 again: inside the new incarnation's window, but dated at the floor.
    assert!(matches!(
        s.check_and_mark(&m1, NOW + 12),
        Err(ReplayError::BelowWatermark)
    ));
}
