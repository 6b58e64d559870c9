//! Property tests (proptest): round trips for any payload, metadata and recipient set in
//! every mode; every single mutation of an envelope rejected; no sequence number accepted
//! twice by an opener, with an exact reference store and with the default store.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};

use getrandom::SysRng;
use proptest::prelude::*;
use rand_core::UnwrapErr;
use rpcseal::replay::{ReplayError, ReplayItem, ReplayStore};
use rpcseal::{
    ErrorKind, GroupKey, Identity, Metadata, Mode, Opener, Recipient, Sealer, SealerConfig,
    SymmetricKey,
};

const T0: u64 = 1_800_000_000;

fn mode() -> impl Strategy<Value = Mode> {
    prop_oneof![Just(Mode::Signed), Just(Mode::Mac), Just(Mode::SignOnly)]
}

/// Valid metadata: up to 8 entries, non-empty keys, well under the 8 KiB limit.
fn metadata() -> impl Strategy<Value = Metadata> {
    proptest::collection::btree_map("[a-z_.]{1,16}", "\\PC{0,40}", 0..8)
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64),
        proptest::collection::vec(any::<u8>(), 0..4096),
    ]
}

/// One recipient of a generated set: a service identity, a group key or a symmetric key
/// (shared keys in signed and sign-only modes only: MAC mode to them needs opt-ins on both
/// sides, spec §6.4).
#[derive(Debug, Clone, Copy)]
enum Who {
    Service,
    Group,
    Symmetric,
}

fn recipients() -> impl Strategy<Value = Vec<Who>> {
    proptest::collection::vec(
        prop_oneof![
            3 => Just(Who::Service),
            1 => Just(Who::Group),
            1 => Just(Who::Symmetric),
        ],
        1..=5,
    )
}

enum Member {
    Service(Box<Identity>),
    Group(Box<GroupKey>),
    Symmetric(Box<SymmetricKey>),
}

impl Member {
    fn recipient(&self) -> Recipient {
        match self {
            Member::Service(i) => Recipient::from(i.public()),
            Member::Group(g) => Recipient::from(g.public()),
            Member::Symmetric(k) => Recipient::Symmetric((**k).clone()),
        }
    }

    fn opener(&self, sender: &Identity) -> Opener {
        let b = Opener::builder().trust(sender.public());
        match self {
            Member::Service(i) => b.identity(i),
            Member::Group(g) => b.group_key(g),
            Member::Symmetric(k) => b.symmetric_key(k),
        }
        .build()
        .unwrap()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// open(seal(x)) gives back x, the metadata and the sender, for every recipient.
    #[test]
    fn every_recipient_opens_what_was_sealed(
        mode in mode(),
        who in recipients(),
        payload in payload(),
        meta in metadata(),
    ) {
        let alice = Identity::generate();
        let members: Vec<Member> = who
            .iter()
            .map(|w| match (w, mode) {
                (Who::Group, Mode::Signed | Mode::SignOnly) => Member::Group(Box::new(GroupKey::generate())),
                (Who::Symmetric, Mode::Signed | Mode::SignOnly) => Member::Symmetric(Box::new(SymmetricKey::generate())),
                _ => Member::Service(Box::new(Identity::generate())),
            })
            .collect();
        let to: Vec<Recipient> = members.iter().map(Member::recipient).collect();
        let mut sealer = Sealer::new(&alice, &to, SealerConfig::new(mode)).unwrap();
        let env = sealer.seal_deterministic(&payload, &meta, T0, &mut UnwrapErr(SysRng)).unwrap();
        for (i, m) in members.iter().enumerate() {
            let got = m.opener(&alice).open_at(&env, T0).unwrap();
            prop_assert_eq!(&got.payload, &payload);
            prop_assert_eq!(&got.metadata, &meta);
            prop_assert_eq!(got.sender, alice.key_id());
            prop_assert_eq!(got.session.mode, mode);
            prop_assert_eq!(got.session.recipient_index as usize, i);
            prop_assert_eq!(got.session.recipients as usize, members.len());
        }
    }
}

/// One change to an envelope.
#[derive(Debug, Clone)]
enum Change {
    Flip { at: usize, bit: u8 },
    Truncate { to: usize },
    Extend { bytes: Vec<u8> },
    Insert { at: usize, byte: u8 },
    Replace { at: usize, byte: u8 },
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Change::Flip { at, bit }),
        any::<usize>().prop_map(|to| Change::Truncate { to }),
        proptest::collection::vec(any::<u8>(), 1..16).prop_map(|bytes| Change::Extend { bytes }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Change::Insert { at, byte }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Change::Replace { at, byte }),
    ]
}

/// Applies a change; `None` when it would leave the envelope as it was (a replacement by
/// the same byte).
fn apply(env: &[u8], c: &Change) -> Option<Vec<u8>> {
    let mut v = env.to_vec();
    match c {
        Change::Flip { at, bit } => v[at % env.len()] ^= 1 << bit,
        Change::Truncate { to } => v.truncate(to % env.len()),
        Change::Extend { bytes } => v.extend_from_slice(bytes),
        Change::Insert { at, byte } => v.insert(at % (env.len() + 1), *byte),
        Change::Replace { at, byte } => v[at % env.len()] = *byte,
    }
    (v != env).then_some(v)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Any single mutation of an envelope is rejected, whatever the mode, and the rejection
    /// changes nothing: the original still opens afterwards.
    #[test]
    fn any_single_mutation_is_rejected(
        mode in mode(),
        n in 1usize..=3,
        payload in payload(),
        meta in metadata(),
        changes in proptest::collection::vec(change(), 1..8),
    ) {
        let alice = Identity::generate();
        let ids: Vec<Identity> = (0..n).map(|_| Identity::generate()).collect();
        let to: Vec<Recipient> = ids.iter().map(|i| Recipient::from(i.public())).collect();
        let mut sealer = Sealer::new(&alice, &to, SealerConfig::new(mode)).unwrap();
        let env = sealer.seal_deterministic(&payload, &meta, T0, &mut UnwrapErr(SysRng)).unwrap();
        let opener = Opener::builder().identity(&ids[n - 1]).trust(alice.public()).build().unwrap();
        for c in &changes {
            if let Some(bad) = apply(&env, c) {
                let e = opener.open_at(&bad, T0);
                prop_assert!(e.is_err(), "{:?} of a {} envelope was accepted", c, mode);
            }
        }
        prop_assert_eq!(opener.open_at(&env, T0).unwrap().payload, payload);
    }
}

/// An exact replay store for the property below: every (sender, session, seq) it has
/// marked, kept forever. It isolates what the property is about, the opener's use of its
/// store (check before the cryptography, mark only after success), from any store's own
/// windowing, which the replay module tests.
#[derive(Default)]
struct ExactStore(Mutex<HashSet<Seen>>);

/// (sender, session id, sequence number).
type Seen = ([u8; 16], [u8; 16], u64);

impl ReplayStore for ExactStore {
    fn check(&self, item: &ReplayItem, _now: u64) -> Result<(), ReplayError> {
        let seen = self.0.lock().unwrap();
        if seen.contains(&(item.sender, item.session_id, item.seq)) {
            return Err(ReplayError::Replayed);
        }
        Ok(())
    }
    fn check_and_mark(&self, item: &ReplayItem, _now: u64) -> Result<(), ReplayError> {
        if self
            .0
            .lock()
            .unwrap()
            .insert((item.sender, item.session_id, item.seq))
        {
            Ok(())
        } else {
            Err(ReplayError::Replayed)
        }
    }
}

/// Seals `count` messages (sessions rotate every `per_session`), delivers them in the
/// order `deliveries` gives (indexes, with repeats), and checks that the opener never
/// accepts one (session, seq) twice and accepts each message's first delivery.
fn sequence_numbers_never_repeat(
    store: Option<Arc<dyn ReplayStore>>,
    mode: Mode,
    count: usize,
    per_session: u64,
    deliveries: &[usize],
) -> Result<(), TestCaseError> {
    let alice = Identity::generate();
    let bob = Identity::generate();
    let mut sealer = Sealer::new(
        &alice,
        &[Recipient::from(bob.public())],
        SealerConfig::new(mode).max_messages(per_session),
    )
    .unwrap();
    let envs: Vec<Vec<u8>> = (0..count)
        .map(|i| {
            sealer
                .seal_deterministic(
                    &i.to_be_bytes(),
                    &Metadata::new(),
                    T0,
                    &mut UnwrapErr(SysRng),
                )
                .unwrap()
        })
        .collect();
    let mut b = Opener::builder().identity(&bob).trust(alice.public());
    if let Some(s) = store {
        b = b.replay_store(s);
    }
    let opener = b.build().unwrap();
    let mut accepted = BTreeSet::new();
    let mut delivered = HashSet::new();
    for &d in deliveries {
        let i = d % count;
        match opener.open_at(&envs[i], T0) {
            Ok(o) => {
                prop_assert!(
                    accepted.insert((o.session.session_id, o.seq)),
                    "sequence number {} of a session accepted twice",
                    o.seq
                );
                prop_assert!(delivered.insert(i));
            }
            Err(e) => {
                prop_assert!(
                    delivered.contains(&i),
                    "first delivery of {} refused: {}",
                    i,
                    e
                );
                prop_assert_eq!(e.kind(), ErrorKind::Replayed);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Against an exact store: the opener consults and marks it correctly.
    #[test]
    fn accepted_sequence_numbers_never_repeat(
        mode in mode(),
        count in 1usize..12,
        per_session in 1u64..5,
        deliveries in proptest::collection::vec(any::<usize>(), 1..40),
    ) {
        sequence_numbers_never_repeat(
            Some(Arc::new(ExactStore::default())),
            mode,
            count,
            per_session,
            &deliveries,
        )?;
    }

    /// The same property against the opener's default replay store (the in-memory store of
    /// the replay module).
    #[test]
    fn default_store_never_accepts_a_sequence_number_twice(
        mode in mode(),
        count in 1usize..12,
        per_session in 1u64..5,
        deliveries in proptest::collection::vec(any::<usize>(), 1..40),
    ) {
        sequence_numbers_never_repeat(None, mode, count, per_session, &deliveries)?;
    }
}
