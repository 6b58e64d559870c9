//! Messages at rest (spec/replay.md §2.2): `Policy::max_stored_age` accepts messages read
//! long after they were sealed, keeps their replay state as long as they are acceptable,
//! and leaves the future side of the clock check at the skew.

use std::sync::Arc;
use std::time::Duration;

use getrandom::SysRng;
use rand_core::UnwrapErr;
use rpcseal::replay::{MemoryReplayConfig, MemoryReplayStore};
use rpcseal::{
    ErrorKind, Identity, Metadata, Mode, Opener, Policy, Recipient, Sealer, SealerConfig,
};

const T0: u64 = 1_800_000_000;
const HOUR: u64 = 3600;

fn setup(policy: Policy) -> (Sealer, Opener) {
    let alice = Identity::generate();
    let bob = Identity::generate();
    let sealer = Sealer::new(
        &alice,
        &[Recipient::from(bob.public())],
        SealerConfig::new(Mode::Mac).lifetime(Duration::from_secs(HOUR)),
    )
    .unwrap();
    let opener = Opener::builder()
        .identity(&bob)
        .trust(alice.public())
        .policy(policy)
        .replay_store(Arc::new(MemoryReplayStore::new(
            MemoryReplayConfig::default(),
        )))
        .build()
        .unwrap();
    (sealer, opener)
}

fn seal(s: &mut Sealer, at: u64) -> Vec<u8> {
    s.seal_deterministic(b"stored", &Metadata::new(), at, &mut UnwrapErr(SysRng))
        .unwrap()
}

#[test]
fn default_policy_rejects_a_message_older_than_the_skew() {
    let (mut s, o) = setup(Policy::default());
    let e = seal(&mut s, T0);
    assert_eq!(
        o.open_at(&e, T0 + 600).unwrap_err().kind(),
        ErrorKind::ClockSkew
    );
    // The rejection changed nothing: read in time, it opens.
    o.open_at(&e, T0 + 1).unwrap();
}

#[test]
fn stored_age_accepts_old_messages_and_past_the_session_expiry() {
    let (mut s, o) = setup(Policy::default().max_stored_age(Duration::from_secs(6 * HOUR)));
    let early = seal(&mut s, T0);
    let late = seal(&mut s, T0 + HOUR - 1);
    // Read five hours later: the session expired four hours ago, within the maximum age.
    o.open_at(&early, T0 + 5 * HOUR).unwrap();
    o.open_at(&late, T0 + 5 * HOUR).unwrap();
    // Older than the maximum age: clock_skew; past expiry + age: expired.
    let (mut s2, o2) = setup(Policy::default().max_stored_age(Duration::from_secs(6 * HOUR)));
    let m = seal(&mut s2, T0);
    assert_eq!(
        o2.open_at(&m, T0 + 6 * HOUR + 1).unwrap_err().kind(),
        ErrorKind::ClockSkew
    );
    assert_eq!(
        o2.open_at(&m, T0 + 7 * HOUR + 1).unwrap_err().kind(),
        ErrorKind::Expired
    );
}

#[test]
fn replay_state_lives_as_long_as_the_message_is_acceptable() {
    let (mut s, o) = setup(Policy::default().max_stored_age(Duration::from_secs(6 * HOUR)));
    let m = seal(&mut s, T0 + 10);
    o.open_at(&m, T0 + 20).unwrap();
    // Long after the session's expiry + skew, where a skew-only receiver would have dropped
    // the state: the replay is still caught.
    for now in [T0 + HOUR + 200, T0 + 3 * HOUR, T0 + 6 * HOUR] {
        assert_eq!(
            o.open_at(&m, now).unwrap_err().kind(),
            ErrorKind::Replayed,
            "at now = T0 + {}",
            now - T0
        );
    }
}

#[test]
fn the_future_side_stays_the_skew() {
    let (mut s, o) = setup(Policy::default().max_stored_age(Duration::from_secs(6 * HOUR)));
    // The session starts at T0; its second message is dated T0 + 1000.
    let _ = seal(&mut s, T0);
    let m = seal(&mut s, T0 + 1000);
    assert_eq!(
        o.open_at(&m, T0 + 1000 - 121).unwrap_err().kind(),
        ErrorKind::ClockSkew
    );
    o.open_at(&m, T0 + 1000 - 120).unwrap();
}

#[test]
fn skew_and_age_combine_in_either_order() {
    let a = Policy::default()
        .max_stored_age(Duration::from_secs(HOUR))
        .clock_skew(Duration::from_secs(30));
    assert_eq!((a.skew_secs(), a.max_age_secs()), (30, HOUR));
    let b = Policy::default()
        .clock_skew(Duration::from_secs(30))
        .max_stored_age(Duration::from_secs(HOUR));
    assert_eq!((b.skew_secs(), b.max_age_secs()), (30, HOUR));
    // Without a stored age, the age follows the skew; an age below the skew is the skew.
    let c = Policy::default().clock_skew(Duration::from_secs(300));
    assert_eq!(c.max_age_secs(), 300);
    let d = Policy::default()
        .clock_skew(Duration::from_secs(300))
        .max_stored_age(Duration::from_secs(10));
    assert_eq!(d.max_age_secs(), 300);
}
