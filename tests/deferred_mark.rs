//! Split replay check and mark (spec/replay.md §2.1): open and authenticate without
//! marking, mark after the handler succeeded. At-least-once delivery redelivers a message
//! whose handling failed; that redelivery is processed, not rejected as a replay.

use std::sync::Arc;

use getrandom::SysRng;
use rand_core::UnwrapErr;
use rpcseal::replay::{MemoryReplayStore, ReplayStore};
use rpcseal::{ErrorKind, Identity, Metadata, Mode, Opener, Recipient, Sealer, SealerConfig};

const T0: u64 = 1_800_000_000;

struct Pair {
    sealer: Sealer,
    opener: Opener,
}

fn pair(store: Arc<dyn ReplayStore>) -> Pair {
    let alice = Identity::generate();
    let bob = Identity::generate();
    Pair {
        sealer: Sealer::new(
            &alice,
            &[Recipient::from(bob.public())],
            SealerConfig::new(Mode::Mac),
        )
        .unwrap(),
        opener: Opener::builder()
            .identity(&bob)
            .trust(alice.public())
            .replay_store(store)
            .build()
            .unwrap(),
    }
}

fn seal(p: &mut Pair, payload: &[u8]) -> Vec<u8> {
    p.sealer
        .seal_deterministic(payload, &Metadata::new(), T0, &mut UnwrapErr(SysRng))
        .unwrap()
}

#[test]
fn tampered_copy_fails_and_marks_nothing_then_the_original_is_handled_once() {
    let mut p = pair(Arc::new(MemoryReplayStore::default()));
    let env = seal(&mut p, b"job");
    let mut bad = env.clone();
    let n = bad.len();
    bad[n - 1] ^= 1;
    assert_eq!(
        p.opener.open_unmarked_at(&bad, T0).unwrap_err().kind(),
        ErrorKind::BadAuthenticator
    );
    let (opened, mark) = p.opener.open_unmarked_at(&env, T0).unwrap();
    assert_eq!(opened.payload, b"job");
    p.opener.mark_at(mark, T0).unwrap();
    // Marked: every later delivery is a replay, whichever way it is opened.
    assert_eq!(
        p.opener.open_unmarked_at(&env, T0).unwrap_err().kind(),
        ErrorKind::Replayed
    );
    assert_eq!(
        p.opener.open_at(&env, T0).unwrap_err().kind(),
        ErrorKind::Replayed
    );
}

#[test]
fn a_failed_handler_leaves_the_message_acceptable_for_its_redelivery() {
    let mut p = pair(Arc::new(MemoryReplayStore::default()));
    let env = seal(&mut p, b"job");
    // First delivery: the handler fails, the mark is dropped unrecorded (and the broker
    // is not acknowledged).
    let (_, mark) = p.opener.open_unmarked_at(&env, T0).unwrap();
    drop(mark);
    // Redelivery: processed, then marked.
    let (opened, mark) = p.opener.open_unmarked_at(&env, T0 + 5).unwrap();
    assert_eq!(opened.payload, b"job");
    p.opener.mark_at(mark, T0 + 5).unwrap();
    assert_eq!(
        p.opener.open_unmarked_at(&env, T0 + 6).unwrap_err().kind(),
        ErrorKind::Replayed
    );
}

#[test]
fn of_two_deliveries_handled_at_once_only_one_mark_succeeds() {
    // The window the split opens: both deliveries are handled, the second mark reports it.
    let mut p = pair(Arc::new(MemoryReplayStore::default()));
    let env = seal(&mut p, b"job");
    let (_, m1) = p.opener.open_unmarked_at(&env, T0).unwrap();
    let (_, m2) = p.opener.open_unmarked_at(&env, T0).unwrap();
    p.opener.mark_at(m1, T0).unwrap();
    assert_eq!(
        p.opener.mark_at(m2, T0).unwrap_err().kind(),
        ErrorKind::Replayed
    );
}

#[test]
fn replicas_sharing_a_store_see_each_others_marks() {
    let store: Arc<dyn ReplayStore> = Arc::new(MemoryReplayStore::default());
    let alice = Identity::generate();
    let bob = Identity::generate();
    let replica = || {
        Opener::builder()
            .identity(&bob)
            .trust(alice.public())
            .replay_store(store.clone())
            .build()
            .unwrap()
    };
    let (r1, r2) = (replica(), replica());
    let mut s = Sealer::new(
        &alice,
        &[Recipient::from(bob.public())],
        SealerConfig::new(Mode::Mac),
    )
    .unwrap();
    let env = s
        .seal_deterministic(b"job", &Metadata::new(), T0, &mut UnwrapErr(SysRng))
        .unwrap();
    let (_, m) = r1.open_unmarked_at(&env, T0).unwrap();
    r1.mark_at(m, T0).unwrap();
    assert_eq!(
        r2.open_unmarked_at(&env, T0).unwrap_err().kind(),
        ErrorKind::Replayed
    );
}

#[test]
fn a_mark_after_the_session_expired_for_replay_fails_closed() {
    let mut p = pair(Arc::new(MemoryReplayStore::default()));
    let env = seal(&mut p, b"job");
    let (opened, mark) = p.opener.open_unmarked_at(&env, T0).unwrap();
    let skew = p.opener.policy().skew_secs();
    let too_late = opened.session.expires + skew + 1;
    assert_eq!(
        p.opener.mark_at(mark, too_late).unwrap_err().kind(),
        ErrorKind::Expired
    );
}

#[test]
fn the_default_open_still_checks_and_marks_at_once() {
    let mut p = pair(Arc::new(MemoryReplayStore::default()));
    let env = seal(&mut p, b"job");
    p.opener.open_at(&env, T0).unwrap();
    assert_eq!(
        p.opener.open_unmarked_at(&env, T0).unwrap_err().kind(),
        ErrorKind::Replayed
    );
}
