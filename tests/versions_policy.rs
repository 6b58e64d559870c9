//! Versions and policy: one entry point, legacy v2 by opt-in only, downgrade protection,
//! keyrings with rotation and revocation, key directories, re-addressing.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rpcseal::{
    seal_legacy_v2, CachedDirectory, ErrorKind, FileDirectory, Identity, KeyDirectory, KeyId,
    Keyring, KeyringError, Lookup, Misuse, Mode, Opener, Policy, Received, Recipient, TrustedKey,
};

use common::{kind, seal, sealer, T0};

#[test]
fn one_entry_point_tells_every_version_apart() {
    let alice = Identity::generate();
    let bob = Identity::generate();
    let strict = Opener::builder()
        .identity(&bob)
        .trust(alice.public())
        .build()
        .unwrap();
    let legacy_ok = Opener::builder()
        .identity(&bob)
        .trust(alice.public())
        .policy(Policy::default().dangerous_accept_unauthenticated_legacy_v2())
        .build()
        .unwrap();
    let v3 = seal(
        &mut sealer(&alice, &[&bob], Mode::Signed),
        b"v3 payload",
        T0,
    );
    assert!(
        matches!(strict.open_any_at(&v3, T0), Ok(Received::Verified(o)) if o.payload == b"v3 payload")
    );

    let v2 = seal_legacy_v2(r#"{"method": "ping"}"#).unwrap();
    assert_eq!(
        kind(strict.open_any_at(v2.as_bytes(), T0)),
        ErrorKind::LegacyNotAllowed
    );
    match legacy_ok.open_any_at(v2.as_bytes(), T0).unwrap() {
        Received::UnauthenticatedLegacy(m) => {
            assert_eq!(m.version(), (2, 0));
            assert_eq!(m.unauthenticated_message(), r#"{"method": "ping"}"#);
        }
        other => panic!("a legacy message came out as {other:?}"),
    }
    // `open` never returns a legacy message, whatever the policy.
    assert_eq!(
        kind(legacy_ok.open_at(v2.as_bytes(), T0)),
        ErrorKind::LegacyNotAllowed
    );

    // oslo 1.0 (a bare object): refused by default, unauthenticated under the opt-in.
    let v1 = br#"{"method": "ping"}"#;
    assert_eq!(
        kind(strict.open_any_at(v1, T0)),
        ErrorKind::LegacyNotAllowed
    );
    match legacy_ok.open_any_at(v1, T0).unwrap() {
        Received::UnauthenticatedLegacy(m) => {
            assert_eq!(m.version(), (1, 0));
            assert_eq!(m.unauthenticated_message(), r#"{"method": "ping"}"#);
        }
        other => panic!("a 1.0 message came out as {other:?}"),
    }
    // A newer oslo minor, a future v4, and noise.
    let v21 = br#"{"oslo.version": "2.1", "oslo.message": "{}"}"#;
    assert_eq!(
        kind(legacy_ok.open_any_at(v21, T0)),
        ErrorKind::UnsupportedVersion
    );
    let mut v4 = v3.clone();
    v4[1] = 4;
    assert_eq!(
        kind(strict.open_any_at(&v4, T0)),
        ErrorKind::UnsupportedVersion
    );
    assert_eq!(
        kind(strict.open_any_at(b"\x00garbage", T0)),
        ErrorKind::UnsupportedVersion
    );
    // No byte at all: a truncated envelope.
    assert_eq!(kind(strict.open_any_at(b"", T0)), ErrorKind::Malformed);
}

#[test]
fn a_v3_message_stripped_to_v2_form_is_a_downgrade_and_rejected() {
    let alice = Identity::generate();
    let bob = Identity::generate();
    let o = Opener::builder()
        .identity(&bob)
        .trust(alice.public())
        .build()
        .unwrap();
    let v3 = seal(
        &mut sealer(&alice, &[&bob], Mode::Signed),
        br#"{"method":"transfer"}"#,
        T0,
    );
    let opened = o.open_at(&v3, T0).unwrap();
    // An attacker re-wraps the same request as an unsigned legacy envelope.
    let stripped = seal_legacy_v2(std::str::from_utf8(&opened.payload).unwrap()).unwrap();
    let fresh = Opener::builder()
        .identity(&bob)
        .trust(alice.public())
        .build()
        .unwrap();
    assert_eq!(
        kind(fresh.open_any_at(stripped.as_bytes(), T0)),
        ErrorKind::LegacyNotAllowed
    );
    assert_eq!(fresh.stats().messages_opened, 0);
}

#[test]
fn keyring_rotation_honours_each_keys_validity() {
    let old = Identity::generate();
    let new = Identity::generate();
    let bob = Identity::generate();
    let switch = T0 + 1000;
    let mut ring = Keyring::new();
    ring.add(TrustedKey::new("billing", old.public().clone()).valid_until(switch));
    ring.add(TrustedKey::new("billing", new.public().clone()).valid_from(switch - 100));
    let o = Opener::builder()
        .identity(&bob)
        .keyring(ring)
        .build()
        .unwrap();

    let mut by_old = sealer(&old, &[&bob], Mode::Mac);
    let m = o
        .open_at(&seal(&mut by_old, b"a", switch - 1), switch - 1)
        .unwrap();
    assert_eq!(&*m.sender_name, "billing");
    // Sealed before the old key's end, delivered a little later: still valid.
    let late = seal(&mut by_old, b"b", switch - 1);
    assert!(o.open_at(&late, switch + 60).is_ok());
    // Sealed after its end: rejected.
    assert_eq!(
        kind(o.open_at(&seal(&mut by_old, b"c", switch), switch)),
        ErrorKind::Expired
    );

    let mut by_new = sealer(&new, &[&bob], Mode::Mac);
    assert_eq!(
        kind(o.open_at(&seal(&mut by_new, b"d", switch - 101), switch - 101)),
        ErrorKind::NotYetValid
    );
    assert_eq!(
        &*o.open_at(&seal(&mut by_new, b"e", switch - 50), switch - 50)
            .unwrap()
            .sender_name,
        "billing"
    );
    // The edges themselves: valid_from is included, valid_until excluded (above).
    assert!(o
        .open_at(&seal(&mut by_new, b"f", switch - 100), switch - 100)
        .is_ok());
}

#[test]
fn revocation_applies_to_cached_sessions_too() {
    let alice = Identity::generate();
    let bob = Identity::generate();
    let o = Opener::builder()
        .identity(&bob)
        .trust(alice.public())
        .build()
        .unwrap();
    let mut s = sealer(&alice, &[&bob], Mode::Mac);
    assert!(o.open_at(&seal(&mut s, b"1", T0), T0).is_ok());
    assert_eq!(o.cached_sessions(), 1);
    o.revoke(alice.key_id());
    assert_eq!(
        kind(o.open_at(&seal(&mut s, b"2", T0), T0)),
        ErrorKind::Revoked
    );
    s.rotate();
    assert_eq!(
        kind(o.open_at(&seal(&mut s, b"3", T0), T0)),
        ErrorKind::Revoked
    );

    // The same through a keyring file's revoke line.
    let text = format!(
        "# test\ntrust alice {}\nrevoke {}\n",
        alice.public(),
        alice.key_id()
    );
    let ring = Keyring::parse(&text).unwrap();
    let o = Opener::builder()
        .identity(&bob)
        .keyring(ring)
        .build()
        .unwrap();
    assert_eq!(
        kind(o.open_at(&seal(&mut s, b"4", T0), T0)),
        ErrorKind::Revoked
    );
}

#[test]
fn keyring_text_roundtrips_and_reports_bad_lines() {
    let a = Identity::generate();
    let b = Identity::generate();
    let mut ring = Keyring::new();
    ring.add(
        TrustedKey::new("a", a.public().clone())
            .valid_from(5)
            .valid_until(10),
    );
    ring.add(TrustedKey::new("b", b.public().clone()));
    ring.revoke(b.key_id());
    let text = ring.to_text();
    let back = Keyring::parse(&text).unwrap();
    assert_eq!(back.to_text(), text);
    assert_eq!(
        back.get(&a.key_id()).unwrap().validity(),
        (Some(5), Some(10))
    );
    assert!(back.is_revoked(&b.key_id()));

    for (bad, line) in [
        ("trust x\n", 1),
        ("# c\n\ntrust x rpcseal-pub-id:AAAA\n", 3),
        ("revoke 12\n", 1),
        ("allow everything\n", 1),
        (
            &format!("trust a {} valid-from=9 valid-until=3\n", a.public()),
            1,
        ),
        (&format!("trust a {} colour=blue\n", a.public()), 1),
    ] {
        match Keyring::parse(bad) {
            Err(KeyringError::Line { line: l, .. }) => assert_eq!(l, line, "{bad}"),
            other => panic!("{bad}: {other:?}"),
        }
    }
    // A secret key pasted where a public one belongs is refused with a clear reason.
    let e = Keyring::parse(&format!("trust a {}\n", a.to_secret_string().as_str())).unwrap_err();
    assert!(e.to_string().contains("SECRET"), "{e}");
    assert!(!e.to_string().contains(&a.to_secret_string()[20..40]));
}

#[test]
fn unknown_senders_are_found_in_a_key_directory_once() {
    let alice = Identity::generate();
    let carol = Identity::generate();
    let bob = Identity::generate();
    let dir = std::env::temp_dir().join(format!("rpcseal-dir-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("alice.pub"),
        format!("# alice\n{}\n", alice.public()),
    )
    .unwrap();
    std::fs::write(dir.join("notes.txt"), "ignored").unwrap();

    struct Counting<D>(D, AtomicUsize);
    impl<D: KeyDirectory> KeyDirectory for Counting<D> {
        fn lookup(&self, id: &KeyId) -> Result<Lookup, KeyringError> {
            self.1.fetch_add(1, Ordering::SeqCst);
            self.0.lookup(id)
        }
    }
    let counting = Arc::new(Counting(FileDirectory::new(&dir), AtomicUsize::new(0)));
    let o = Opener::builder()
        .identity(&bob)
        .key_directory(counting.clone())
        .build()
        .unwrap();
    let mut s = sealer(&alice, &[&bob], Mode::Signed);
    for i in 0..5u8 {
        let m = o.open_at(&seal(&mut s, &[i], T0), T0).unwrap();
        assert_eq!(&*m.sender_name, "alice");
    }
    assert_eq!(
        counting.1.load(Ordering::SeqCst),
        1,
        "looked up once, then from the keyring"
    );
    let mut c = sealer(&carol, &[&bob], Mode::Signed);
    assert_eq!(
        kind(o.open_at(&seal(&mut c, b"x", T0), T0)),
        ErrorKind::UntrustedSender
    );

    // A keyring file as a directory, with a revocation, behind a cache.
    let file = dir.join("keyring");
    std::fs::write(
        &file,
        format!(
            "trust carol {}\nrevoke {}\n",
            carol.public(),
            carol.key_id()
        ),
    )
    .unwrap();
    let cached = CachedDirectory::new(FileDirectory::new(&file), Duration::from_secs(60));
    assert!(matches!(
        cached.lookup(&carol.key_id()),
        Ok(Lookup::Revoked)
    ));
    std::fs::remove_file(&file).unwrap();
    assert!(
        matches!(cached.lookup(&carol.key_id()), Ok(Lookup::Revoked)),
        "answered from the cache"
    );
    let o = Opener::builder()
        .identity(&bob)
        .key_directory(Arc::new(cached))
        .build()
        .unwrap();
    assert_eq!(
        kind(o.open_at(&seal(&mut c, b"y", T0), T0)),
        ErrorKind::Revoked
    );
    // A directory that cannot be read fails closed.
    let gone = Opener::builder()
        .identity(&bob)
        .key_directory(Arc::new(FileDirectory::new(dir.join("missing"))))
        .build()
        .unwrap();
    assert_eq!(
        kind(gone.open_at(&seal(&mut c, b"z", T0), T0)),
        ErrorKind::UntrustedSender
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_new_member_reads_the_sessions_earlier_messages_after_readdressing() {
    let alice = Identity::generate();
    let bob = Identity::generate();
    let carol = Identity::generate();
    for mode in [Mode::Signed, Mode::SignOnly] {
        let mut s = sealer(&alice, &[&bob], mode);
        let early: Vec<Vec<u8>> = (0..3u8).map(|i| seal(&mut s, &[i], T0)).collect();
        let carols = Opener::builder()
            .identity(&carol)
            .trust(alice.public())
            .build()
            .unwrap();
        assert_eq!(kind(carols.open_at(&early[0], T0)), ErrorKind::NotForUs);

        s.add_recipients(&[Recipient::from(carol.public())])
            .unwrap();
        assert_eq!(
            s.sessions_created(),
            1,
            "{mode}: the same session, not a new one"
        );
        carols
            .import_session_at(s.session_block().unwrap(), T0)
            .unwrap();
        for (i, e) in early.iter().enumerate() {
            assert_eq!(carols.open_at(e, T0).unwrap().payload, [i as u8], "{mode}");
        }
        // Later messages reach both, in the same session.
        let bobs = Opener::builder()
            .identity(&bob)
            .trust(alice.public())
            .build()
            .unwrap();
        let later = seal(&mut s, b"later", T0);
        let a = bobs.open_at(&later, T0).unwrap();
        let b = carols.open_at(&later, T0).unwrap();
        assert_eq!(a.session.session_id, b.session.session_id);
        assert_eq!(b.session.recipient_index, 1);
    }
    let mut mac = sealer(&alice, &[&bob], Mode::Mac);
    seal(&mut mac, b"x", T0);
    assert_eq!(
        mac.add_recipients(&[Recipient::from(carol.public())]),
        Err(Misuse::ReaddressMac)
    );
}

#[test]
fn removing_a_member_starts_a_session_it_cannot_read() {
    let alice = Identity::generate();
    let bob = Identity::generate();
    let carol = Identity::generate();
    let mut s = sealer(&alice, &[&bob, &carol], Mode::Signed);
    let carols = Opener::builder()
        .identity(&carol)
        .trust(alice.public())
        .build()
        .unwrap();
    let before = seal(&mut s, b"before", T0);
    assert!(carols.open_at(&before, T0).is_ok());
    s.remove_recipients(&[carol.public().recipient_key_id()])
        .unwrap();
    let after = seal(&mut s, b"after", T0);
    assert_eq!(s.sessions_created(), 2);
    assert_eq!(kind(carols.open_at(&after, T0)), ErrorKind::NotForUs);
    let bobs = Opener::builder()
        .identity(&bob)
        .trust(alice.public())
        .build()
        .unwrap();
    assert_eq!(bobs.open_at(&after, T0).unwrap().payload, b"after");
    assert_eq!(
        s.remove_recipients(&[bob.public().recipient_key_id()]),
        Err(Misuse::NoRecipients)
    );
}

#[test]
fn removing_an_unknown_recipient_is_refused_and_changes_nothing() {
    let alice = Identity::generate();
    let bob = Identity::generate();
    let carol = Identity::generate();
    let mut s = sealer(&alice, &[&bob, &carol], Mode::Signed);
    let _ = seal(&mut s, b"first", T0);
    let stranger = Identity::generate().public().recipient_key_id();
    // A typo beside a real id: nothing is removed and the session goes on.
    assert_eq!(
        s.remove_recipients(&[carol.public().recipient_key_id(), stranger]),
        Err(Misuse::UnknownRecipient(stranger))
    );
    assert_eq!(s.recipients().len(), 2);
    let _ = seal(&mut s, b"second", T0);
    assert_eq!(s.sessions_created(), 1);
}

#[test]
fn a_post_quantum_recipient_is_removed_by_its_x_wing_key_id() {
    let alice = Identity::generate();
    let bob = Identity::generate_post_quantum();
    let carol = Identity::generate_post_quantum();
    let mut s = sealer(&alice, &[&bob, &carol], Mode::Signed);
    let _ = seal(&mut s, b"first", T0);
    let carols_xwing = carol.public().xwing_key_id().expect("an X-Wing key");
    s.remove_recipients(&[carols_xwing]).unwrap();
    assert_eq!(s.recipients().len(), 1);
    let after = seal(&mut s, b"after", T0);
    let carols = Opener::builder()
        .identity(&carol)
        .trust(alice.public())
        .build()
        .unwrap();
    assert_eq!(kind(carols.open_at(&after, T0)), ErrorKind::NotForUs);
}
