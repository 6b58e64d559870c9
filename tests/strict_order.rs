//! Strict in-order delivery (spec/rpc.md §8, `Policy::strict_order`): in a session, a
//! reordered, dropped or replayed message is an error, and the error changes no state.

use getrandom::SysRng;
use rand_core::UnwrapErr;
use rpcseal::{
    ErrorKind, Identity, Inline, Metadata, Mode, Opener, Policy, Recipient, Sealer, SealerConfig,
};

const T0: u64 = 1_800_000_000;

fn stream(n: usize, inline: Inline) -> (Vec<Vec<u8>>, Opener) {
    let alice = Identity::generate();
    let bob = Identity::generate();
    let mut s = Sealer::new(
        &alice,
        &[Recipient::from(bob.public())],
        SealerConfig::new(Mode::Mac).inline(inline),
    )
    .unwrap();
    let envs = (0..n)
        .map(|i| {
            s.seal_deterministic(&[i as u8], &Metadata::new(), T0, &mut UnwrapErr(SysRng))
                .unwrap()
        })
        .collect();
    let o = Opener::builder()
        .identity(&bob)
        .trust(alice.public())
        .policy(Policy::default().strict_order())
        .build()
        .unwrap();
    (envs, o)
}

fn kind(r: Result<rpcseal::Opened, rpcseal::Error>) -> ErrorKind {
    r.unwrap_err().kind()
}

#[test]
fn a_dropped_message_is_an_error_and_the_stream_resumes_only_in_order() {
    let (e, o) = stream(5, Inline::FirstMessage);
    o.open_at(&e[0], T0).unwrap();
    o.open_at(&e[1], T0).unwrap();
    // Message 2 is dropped on the way: 3 arrives.
    assert_eq!(kind(o.open_at(&e[3], T0)), ErrorKind::OutOfOrder);
    assert_eq!(kind(o.open_at(&e[4], T0)), ErrorKind::OutOfOrder);
    // Nothing changed: 2, then 3 and 4, open.
    for env in &e[2..] {
        o.open_at(env, T0).unwrap();
    }
}

#[test]
fn a_reordered_first_message_is_an_error() {
    let (e, o) = stream(2, Inline::Always);
    assert_eq!(kind(o.open_at(&e[1], T0)), ErrorKind::OutOfOrder);
    o.open_at(&e[0], T0).unwrap();
    o.open_at(&e[1], T0).unwrap();
}

#[test]
fn a_replayed_or_older_message_is_replayed() {
    let (e, o) = stream(3, Inline::Always);
    for env in &e {
        o.open_at(env, T0).unwrap();
    }
    for env in &e {
        assert_eq!(kind(o.open_at(env, T0)), ErrorKind::Replayed);
    }
}

#[test]
fn without_the_option_reordering_within_the_window_is_accepted() {
    let alice = Identity::generate();
    let bob = Identity::generate();
    let mut s = Sealer::new(
        &alice,
        &[Recipient::from(bob.public())],
        SealerConfig::new(Mode::Mac),
    )
    .unwrap();
    let envs: Vec<_> = (0..3)
        .map(|_| {
            s.seal_deterministic(b"x", &Metadata::new(), T0, &mut UnwrapErr(SysRng))
                .unwrap()
        })
        .collect();
    let lax = Opener::builder()
        .identity(&bob)
        .trust(alice.public())
        .build()
        .unwrap();
    lax.open_at(&envs[2], T0).unwrap();
    lax.open_at(&envs[0], T0).unwrap();
    lax.open_at(&envs[1], T0).unwrap();
}

#[test]
fn with_deferred_marks_the_order_advances_at_the_mark() {
    let (e, o) = stream(3, Inline::FirstMessage);
    let (_, m0) = o.open_unmarked_at(&e[0], T0).unwrap();
    // 0 is not marked yet: 1 would overtake it.
    assert_eq!(
        o.open_unmarked_at(&e[1], T0).unwrap_err().kind(),
        ErrorKind::OutOfOrder
    );
    o.mark_at(m0, T0).unwrap();
    let (_, m1) = o.open_unmarked_at(&e[1], T0).unwrap();
    // A handler failure: 1 is not marked, and its redelivery is processed.
    drop(m1);
    let (_, m1) = o.open_unmarked_at(&e[1], T0).unwrap();
    let (_, m1_again) = o.open_unmarked_at(&e[1], T0).unwrap();
    o.mark_at(m1, T0).unwrap();
    assert_eq!(
        o.mark_at(m1_again, T0).unwrap_err().kind(),
        ErrorKind::Replayed
    );
    o.open_at(&e[2], T0).unwrap();
}

#[test]
fn each_session_has_its_own_order() {
    // Two streams from one sender to one receiver: two sealers, two sessions, two counts.
    let alice = Identity::generate();
    let bob = Identity::generate();
    let sealer = || {
        Sealer::new(
            &alice,
            &[Recipient::from(bob.public())],
            SealerConfig::new(Mode::Mac),
        )
        .unwrap()
    };
    let (mut s1, mut s2) = (sealer(), sealer());
    let seal = |s: &mut Sealer| {
        s.seal_deterministic(b"x", &Metadata::new(), T0, &mut UnwrapErr(SysRng))
            .unwrap()
    };
    let a: Vec<_> = (0..2).map(|_| seal(&mut s1)).collect();
    let b: Vec<_> = (0..2).map(|_| seal(&mut s2)).collect();
    let o = Opener::builder()
        .identity(&bob)
        .trust(alice.public())
        .policy(Policy::default().strict_order())
        .build()
        .unwrap();
    o.open_at(&a[0], T0).unwrap();
    o.open_at(&b[0], T0).unwrap();
    assert_eq!(kind(o.open_at(&a[0], T0)), ErrorKind::Replayed);
    o.open_at(&b[1], T0).unwrap();
    o.open_at(&a[1], T0).unwrap();
}
