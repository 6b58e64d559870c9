//! Issue 15: the post-quantum suite 2 (X-Wing wraps, spec/envelope-v3.md §1.2, §2.5, §5.4,
//! §5.6, §7.3) and its receiver rules (keyring.md `require=pq`), as a user of the library
//! meets them.

use rpcseal::{
    inspect, ErrorKind, GroupKey, Identity, KeyError, Keyring, Metadata, Misuse, Mode, Opener,
    Policy, PublicIdentity, Recipient, Sealer, SealerConfig, Suite, SymmetricKey, TrustedKey,
    MAX_PQ_RECIPIENTS,
};

const PQ: Suite = Suite::XWING_CHACHA20POLY1305_BLAKE3_ED25519;
const CLASSICAL: Suite = Suite::X25519_CHACHA20POLY1305_BLAKE3_ED25519;

fn opener(me: &Identity, from: &Identity, policy: Policy) -> Opener {
    Opener::builder()
        .identity(me)
        .trust(from.public())
        .policy(policy)
        .build()
        .unwrap()
}

fn seal_one(from: &Identity, to: &[Recipient], config: SealerConfig) -> Vec<u8> {
    Sealer::new(from, to, config)
        .unwrap()
        .seal(b"hello", &Metadata::new())
        .unwrap()
}

#[test]
fn suite_2_is_named_and_post_quantum() {
    assert_eq!(PQ.id(), 2);
    assert!(PQ.name().contains("XWING"));
    assert_eq!(
        PQ.name(),
        "RPCSEAL-V3-XWING-CHACHA20POLY1305-BLAKE3-ED25519"
    );
    assert!(PQ.is_post_quantum());
    assert!(!CLASSICAL.is_post_quantum());
    assert_eq!(Suite::from_id(2).unwrap(), PQ);
    assert_eq!(
        Suite::from_id(3).unwrap_err().kind(),
        ErrorKind::UnknownSuite
    );
}

#[test]
fn round_trips_in_every_mode_use_suite_2_with_no_option() {
    let alice = Identity::generate();
    let bob = Identity::generate_post_quantum();
    for mode in [Mode::Signed, Mode::Mac, Mode::SignOnly] {
        let env = seal_one(
            &alice,
            &[Recipient::from(bob.public())],
            SealerConfig::new(mode),
        );
        assert_eq!(inspect(&env).unwrap().suite, PQ, "{mode}");
        let o = opener(&bob, &alice, Policy::default());
        let opened = o.open(&env).unwrap();
        assert_eq!(&opened.payload[..], b"hello");
        // The receiver that requires suite 2 takes it too.
        let strict = opener(&bob, &alice, Policy::default().require_post_quantum());
        assert_eq!(&strict.open(&env).unwrap().payload[..], b"hello");
    }
}

#[test]
fn a_pq_session_costs_about_1_2_kib_per_recipient() {
    let alice = Identity::generate();
    let bob = Identity::generate_post_quantum();
    let classical = seal_one(
        &alice,
        &[Recipient::from(&bob.public().classical())],
        SealerConfig::new(Mode::Signed),
    );
    let pq = seal_one(
        &alice,
        &[Recipient::from(bob.public())],
        SealerConfig::new(Mode::Signed),
    );
    // kind 3: enc is bin 16 of 1120 bytes against bin 8 of 32 (spec §5.4, §7.3).
    assert_eq!(pq.len() - classical.len(), (3 + 1120) - (2 + 32));
}

#[test]
fn mixed_lists_fall_back_to_suite_1_for_everyone() {
    let alice = Identity::generate();
    let bob = Identity::generate_post_quantum();
    let carol = Identity::generate();
    let env = seal_one(
        &alice,
        &[
            Recipient::from(bob.public()),
            Recipient::from(carol.public()),
        ],
        SealerConfig::new(Mode::Signed),
    );
    // The session is honestly marked classical; bob is reached through his X25519 key.
    assert_eq!(inspect(&env).unwrap().suite, CLASSICAL);
    let opened = opener(&bob, &alice, Policy::default()).open(&env).unwrap();
    assert_eq!(&opened.payload[..], b"hello");
    // A receiver that requires post-quantum sessions refuses it (downgrade, spec §10.2).
    assert_eq!(
        opener(&bob, &alice, Policy::default().require_post_quantum())
            .open(&env)
            .unwrap_err()
            .kind(),
        ErrorKind::SuiteNotAllowed
    );
    // A sealer that requires post-quantum sessions refuses the list.
    assert_eq!(
        Sealer::new(
            &alice,
            &[
                Recipient::from(bob.public()),
                Recipient::from(carol.public())
            ],
            SealerConfig::new(Mode::Signed).require_post_quantum(),
        )
        .err(),
        Some(Misuse::NotPostQuantum)
    );
}

#[test]
fn symmetric_and_group_recipients_in_a_pq_session() {
    let alice = Identity::generate();
    let bob = Identity::generate_post_quantum();
    let group = GroupKey::generate_post_quantum();
    let sym = SymmetricKey::generate();
    let env = seal_one(
        &alice,
        &[
            Recipient::from(bob.public()),
            Recipient::from(group.public()),
            Recipient::from(&sym),
        ],
        SealerConfig::new(Mode::Signed),
    );
    assert_eq!(inspect(&env).unwrap().suite, PQ);
    let member = Opener::builder()
        .group_key(&group)
        .trust(alice.public())
        .build()
        .unwrap();
    assert_eq!(&member.open(&env).unwrap().payload[..], b"hello");
    let holder = Opener::builder()
        .symmetric_key(&sym)
        .trust(alice.public())
        .build()
        .unwrap();
    assert_eq!(&holder.open(&env).unwrap().payload[..], b"hello");
    // Symmetric keys alone: suite 1 by default (spec §5.6), suite 2 when required.
    let only_sym = seal_one(
        &alice,
        &[Recipient::from(&sym)],
        SealerConfig::new(Mode::Signed),
    );
    assert_eq!(inspect(&only_sym).unwrap().suite, CLASSICAL);
    let required = seal_one(
        &alice,
        &[Recipient::from(&sym)],
        SealerConfig::new(Mode::Signed).require_post_quantum(),
    );
    assert_eq!(inspect(&required).unwrap().suite, PQ);
    assert_eq!(&holder.open(&required).unwrap().payload[..], b"hello");
}

#[test]
fn a_classical_only_receiver_is_not_for_us_in_a_pq_session() {
    // bob's X25519 key is not addressed in a suite-2 session: only his X-Wing key is.
    let alice = Identity::generate();
    let bob = Identity::generate_post_quantum();
    let env = seal_one(
        &alice,
        &[Recipient::from(bob.public())],
        SealerConfig::new(Mode::Signed),
    );
    let secret = bob.to_secret_string();
    assert!(secret.starts_with("RPCSEAL-SECRET-ID-XWING:"));
    // The same identity parsed back opens it; a classical identity with bob's first two
    // keys (what an old key file holds) does not.
    let back = Identity::from_secret_string(&secret).unwrap();
    assert_eq!(
        &opener(&back, &alice, Policy::default())
            .open(&env)
            .unwrap()
            .payload[..],
        b"hello"
    );
    let classical = Identity::from_parts(&[1; 32], &[2; 32]);
    let o = Opener::builder()
        .identity(&classical)
        .trust(alice.public())
        .build()
        .unwrap();
    assert_eq!(o.open(&env).unwrap_err().kind(), ErrorKind::NotForUs);
}

#[test]
fn keyring_require_pq_holds_one_sender_to_suite_2() {
    let alice = Identity::generate();
    let bob = Identity::generate_post_quantum();
    let text = format!("trust alice {} require=pq\n", alice.public());
    let ring = Keyring::parse(&text).unwrap();
    assert!(ring.get(&alice.key_id()).unwrap().requires_post_quantum());
    assert!(ring.to_text().contains(" require=pq"));
    assert_eq!(
        Keyring::parse(&ring.to_text())
            .unwrap()
            .get(&alice.key_id()),
        ring.get(&alice.key_id())
    );
    let o = Opener::builder()
        .identity(&bob)
        .keyring(ring)
        .build()
        .unwrap();
    let pq = seal_one(
        &alice,
        &[Recipient::from(bob.public())],
        SealerConfig::new(Mode::Signed),
    );
    assert_eq!(&o.open(&pq).unwrap().payload[..], b"hello");
    let classical = seal_one(
        &alice,
        &[Recipient::from(&bob.public().classical())],
        SealerConfig::new(Mode::Mac),
    );
    assert_eq!(
        o.open(&classical).unwrap_err().kind(),
        ErrorKind::SuiteNotAllowed
    );
    // Other senders are not affected.
    let dave = Identity::generate();
    let o2 = Opener::builder()
        .identity(&bob)
        .keyring(Keyring::parse(&format!("trust dave {}\n", dave.public())).unwrap())
        .build()
        .unwrap();
    let from_dave = seal_one(
        &dave,
        &[Recipient::from(&bob.public().classical())],
        SealerConfig::new(Mode::Signed),
    );
    assert_eq!(&o2.open(&from_dave).unwrap().payload[..], b"hello");
    // The API form.
    let o3 = Opener::builder()
        .identity(&bob)
        .keyring({
            let mut k = Keyring::new();
            k.add(TrustedKey::new("alice", alice.public().clone()).require_post_quantum());
            k
        })
        .build()
        .unwrap();
    assert_eq!(
        o3.open(&classical).unwrap_err().kind(),
        ErrorKind::SuiteNotAllowed
    );
}

#[test]
fn keyring_require_syntax() {
    let alice = Identity::generate_post_quantum();
    // A post-quantum public identity is trusted like a classical one (same sender id).
    let ring = Keyring::parse(&format!("trust alice {} require=pq", alice.public())).unwrap();
    assert!(ring.get(&alice.key_id()).is_some());
    for bad in [
        "require=PQ",
        "require=",
        "require=classical",
        "require=pq require=pq",
    ] {
        let text = format!("trust alice {} {bad}", alice.public().classical());
        assert!(Keyring::parse(&text).is_err(), "{bad}");
    }
    let ok = format!(
        "trust alice {} require=pq valid-from=5 valid-until=9",
        alice.public().classical()
    );
    let k = Keyring::parse(&ok).unwrap();
    let t = k.get(&alice.key_id()).unwrap();
    assert!(t.requires_post_quantum());
    assert_eq!(t.validity(), (Some(5), Some(9)));
}

#[test]
fn key_strings_of_the_post_quantum_kinds() {
    let id = Identity::generate_post_quantum();
    let public = id.public().to_string();
    assert!(public.starts_with("rpcseal-pub-id-xwing:"));
    let back = PublicIdentity::parse(&public).unwrap();
    assert_eq!(&back, id.public());
    assert_eq!(back.key_id(), id.key_id());
    assert!(back.is_post_quantum());
    assert_ne!(back.xwing_key_id(), Some(back.recipient_key_id()));
    // The classical form of the same identity: same sender id and X25519 key.
    let classical = id.public().classical();
    assert!(classical.to_string().starts_with("rpcseal-pub-id:"));
    assert_eq!(classical.key_id(), id.key_id());
    assert_eq!(classical.recipient_key_id(), id.public().recipient_key_id());
    // Wrong kinds, both ways.
    assert!(matches!(
        PublicIdentity::parse(&id.to_secret_string()),
        Err(KeyError::WrongKind { .. })
    ));
    assert!(matches!(
        Identity::from_secret_string(&public),
        Err(KeyError::WrongKind { .. })
    ));
    let g = GroupKey::generate_post_quantum();
    assert!(matches!(
        PublicIdentity::parse(&g.public().to_string()),
        Err(KeyError::WrongKind { .. })
    ));
    assert!(matches!(
        Recipient::parse(&g.to_secret_string()),
        Err(KeyError::WrongKind { .. })
    ));
    assert!(g
        .to_secret_string()
        .starts_with("RPCSEAL-SECRET-GROUP-XWING:"));
    assert_eq!(
        GroupKey::from_secret_string(&g.to_secret_string())
            .unwrap()
            .public(),
        g.public()
    );
    assert_eq!(
        Recipient::parse(&g.public().to_string()).unwrap(),
        Recipient::Group(g.public().clone())
    );
    // A typo: the checksum catches it.
    let mut typo = public.clone().into_bytes();
    let i = typo.len() - 30;
    typo[i] = if typo[i] == b'A' { b'B' } else { b'A' };
    assert_eq!(
        PublicIdentity::parse(std::str::from_utf8(&typo).unwrap()),
        Err(KeyError::Checksum)
    );
    // Truncated.
    assert!(PublicIdentity::parse(&public[..public.len() - 8]).is_err());
}

#[test]
fn the_sealer_refuses_more_pq_recipients_than_receivers_hold() {
    // spec §7.3: 768 recipients in a suite-2 block. One X-Wing identity and symmetric keys
    // make a suite-2 list cheaply.
    assert_eq!(MAX_PQ_RECIPIENTS, 768);
    let alice = Identity::generate();
    let bob = Identity::generate_post_quantum();
    let mut list = vec![Recipient::from(bob.public())];
    list.extend((1..MAX_PQ_RECIPIENTS).map(|_| Recipient::from(&SymmetricKey::generate())));
    assert!(Sealer::new(&alice, &list, SealerConfig::new(Mode::Signed)).is_ok());
    list.push(Recipient::from(&SymmetricKey::generate()));
    assert_eq!(
        Sealer::new(&alice, &list, SealerConfig::new(Mode::Signed)).err(),
        Some(Misuse::TooManyRecipients {
            count: MAX_PQ_RECIPIENTS + 1,
            limit: MAX_PQ_RECIPIENTS
        })
    );
    // The same count in suite 1 (bob's classical key) is fine: 4096 is that limit.
    list[0] = Recipient::from(&bob.public().classical());
    assert!(Sealer::new(&alice, &list, SealerConfig::new(Mode::Signed)).is_ok());
}

#[test]
fn a_full_pq_envelope_fits_the_default_envelope_limit() {
    // 768 recipients in MAC mode (the largest entries and tags), a full-size payload and the
    // largest metadata: what the post-quantum limit was chosen for (spec §7.3).
    let alice = Identity::generate();
    let bob = Identity::generate_post_quantum();
    let mut list = vec![Recipient::from(bob.public())];
    let syms: Vec<SymmetricKey> = (1..MAX_PQ_RECIPIENTS)
        .map(|_| SymmetricKey::generate())
        .collect();
    list.extend(syms.iter().map(Recipient::from));
    let mut s = Sealer::new(
        &alice,
        &list,
        SealerConfig::new(Mode::Mac).dangerous_allow_mac_to_group(),
    )
    .unwrap();
    let mut md = Metadata::new();
    for i in 0..64 {
        md.insert(format!("k{i:03}"), "v".repeat(8192 / 64 - 4));
    }
    let payload = vec![0u8; rpcseal::DEFAULT_MAX_PAYLOAD];
    let env = s.seal(&payload, &md).unwrap();
    let entries_only = env.len() - payload.len();
    assert!(entries_only < 1024 * 1024, "{entries_only}");
    let o = Opener::builder()
        .identity(&bob)
        .trust(alice.public())
        .policy(Policy::default().dangerous_accept_mac_via_group_key())
        .build()
        .unwrap();
    assert_eq!(o.open(&env).unwrap().payload[..].len(), payload.len());
}
