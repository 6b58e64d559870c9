//! Security review part 1 (issue 13), the items about keys, key directories and secret
//! hygiene: one regression test per behaviour-changing item, named after it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use getrandom::SysRng;
use rand_core::{Rng, UnwrapErr};
use rpcseal::{
    CachedDirectory, ErrorKind, FileDirectory, GroupKey, Identity, Inline, KeyDirectory, KeyId,
    Keyring, KeyringError, Lookup, Metadata, Misuse, Mode, Opener, Policy, Received, Recipient,
    Sealer, SealerConfig, SymmetricKey,
};

const T0: u64 = 1_800_000_000;

fn seal(s: &mut Sealer, payload: &[u8], now: u64) -> Vec<u8> {
    s.seal_deterministic(payload, &Metadata::new(), now, &mut UnwrapErr(SysRng))
        .unwrap()
}

fn sealer(from: &Identity, to: &Identity, mode: Mode) -> Sealer {
    Sealer::new(
        from,
        &[Recipient::from(to.public())],
        SealerConfig::new(mode),
    )
    .unwrap()
}

fn kind<T: std::fmt::Debug>(r: Result<T, rpcseal::Error>) -> ErrorKind {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.kind(),
    }
}

/// A fresh scratch folder, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let mut r = [0u8; 8];
        UnwrapErr(SysRng).fill_bytes(&mut r);
        let p = std::env::temp_dir().join(format!("rpcseal-{tag}-{}", hex::encode(r)));
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn random_id() -> KeyId {
    let mut r = [0u8; 16];
    UnwrapErr(SysRng).fill_bytes(&mut r);
    KeyId::from_hex(&hex::encode(r)).unwrap()
}

/// Counts the lookups that reach a directory.
struct Counting<D>(D, Arc<AtomicUsize>);

impl<D: KeyDirectory> KeyDirectory for Counting<D> {
    fn lookup(&self, id: &KeyId) -> Result<Lookup, KeyringError> {
        self.1.fetch_add(1, Ordering::SeqCst);
        self.0.lookup(id)
    }
}

// Item 2: a revocation published through a key directory reaches a running opener: a new
// session at once, a cached session within one TTL. One opener across the edit.
#[test]
fn item_02_a_revocation_in_the_key_directory_reaches_a_running_opener() {
    let alice = Identity::generate();
    let bob = Identity::generate();
    let scratch = Scratch::new("item02");
    let file = scratch.0.join("keyring");
    std::fs::write(&file, format!("trust alice {}\n", alice.public())).unwrap();
    let ttl = Duration::from_millis(400);
    let o = Opener::builder()
        .identity(&bob)
        .key_directory(Arc::new(FileDirectory::new(&file).with_ttl(ttl)))
        .build()
        .unwrap();
    // Two cached sessions, one per mode with an authenticator of its own kind.
    let mut signed = sealer(&alice, &bob, Mode::Signed);
    let mut sign_only = sealer(&alice, &bob, Mode::SignOnly);
    for s in [&mut signed, &mut sign_only] {
        let m = o.open_at(&seal(s, b"before", T0), T0).unwrap();
        assert_eq!(&*m.sender_name, "alice");
        o.open_at(&seal(s, b"cached", T0), T0).unwrap();
    }
    assert_eq!(o.stats().sessions_established, 2);

    // The operator revokes alice's key in the directory.
    std::fs::write(
        &file,
        format!(
            "trust alice {}\nrevoke {}\n",
            alice.public(),
            alice.key_id()
        ),
    )
    .unwrap();
    let edited = Instant::now();
    // A new session (say, signed with the stolen key) is refused at once.
    let mut thief = sealer(&alice, &bob, Mode::Signed);
    assert_eq!(
        kind(o.open_at(&seal(&mut thief, b"new", T0), T0)),
        ErrorKind::Revoked
    );
    // The cached sessions are refused within one TTL of the edit.
    std::thread::sleep(ttl.saturating_sub(edited.elapsed()) + Duration::from_millis(20));
    for s in [&mut signed, &mut sign_only] {
        assert_eq!(
            kind(o.open_at(&seal(s, b"after", T0), T0)),
            ErrorKind::Revoked
        );
    }
    // And a key removed from the directory (not revoked) is no longer trusted either.
    let carol = Identity::generate();
    std::fs::write(&file, format!("trust carol {}\n", carol.public())).unwrap();
    let mut c = sealer(&carol, &bob, Mode::Signed);
    o.open_at(&seal(&mut c, b"hi", T0), T0).unwrap();
    std::fs::write(&file, "# nobody\n").unwrap();
    std::thread::sleep(ttl + Duration::from_millis(20));
    assert_eq!(
        kind(o.open_at(&seal(&mut c, b"gone", T0), T0)),
        ErrorKind::UntrustedSender
    );
}

// Item 2: `Opener::revoke` at run time survives `set_keyring`.
#[test]
fn item_02_runtime_revocations_survive_set_keyring() {
    let alice = Identity::generate();
    let bob = Identity::generate();
    let o = Opener::builder()
        .identity(&bob)
        .trust(alice.public())
        .build()
        .unwrap();
    let mut s = sealer(&alice, &bob, Mode::Signed);
    o.open_at(&seal(&mut s, b"1", T0), T0).unwrap();
    o.revoke(alice.key_id());
    assert_eq!(
        kind(o.open_at(&seal(&mut s, b"2", T0), T0)),
        ErrorKind::Revoked
    );
    // The keyring file is reloaded, still trusting alice: the revocation stays.
    let ring = Keyring::parse(&format!("trust alice {}\n", alice.public())).unwrap();
    o.set_keyring(ring);
    assert_eq!(
        kind(o.open_at(&seal(&mut s, b"3", T0), T0)),
        ErrorKind::Revoked
    );
    let mut fresh = sealer(&alice, &bob, Mode::Signed);
    assert_eq!(
        kind(o.open_at(&seal(&mut fresh, b"4", T0), T0)),
        ErrorKind::Revoked
    );
}

// Item 3: MAC mode to a symmetric key is treated like MAC mode to a group key, on both
// sides (spec §6.4).
#[test]
fn item_03_mac_mode_to_a_symmetric_key_needs_the_dangerous_opt_ins() {
    let alice = Identity::generate();
    let bob = Identity::generate();
    let vault = SymmetricKey::generate();
    // The sealer refuses, alone or among identity recipients.
    for to in [
        vec![Recipient::from(&vault)],
        vec![Recipient::from(bob.public()), Recipient::from(&vault)],
    ] {
        assert!(matches!(
            Sealer::new(&alice, &to, SealerConfig::new(Mode::Mac)),
            Err(Misuse::MacToGroup)
        ));
        // Signed mode is fine.
        Sealer::new(&alice, &to, SealerConfig::new(Mode::Signed)).unwrap();
    }
    // With the sealer's opt-in, the receiver still refuses without its own.
    let mut s = Sealer::new(
        &alice,
        &[Recipient::from(&vault)],
        SealerConfig::new(Mode::Mac).dangerous_allow_mac_to_group(),
    )
    .unwrap();
    let env = seal(&mut s, b"via vault", T0);
    let strict = Opener::builder()
        .symmetric_key(&vault)
        .trust(alice.public())
        .build()
        .unwrap();
    assert_eq!(kind(strict.open_at(&env, T0)), ErrorKind::ModeNotAllowed);
    assert_eq!(strict.cached_sessions(), 0);
    let opted_in = Opener::builder()
        .symmetric_key(&vault)
        .trust(alice.public())
        .policy(Policy::default().dangerous_accept_mac_via_group_key())
        .build()
        .unwrap();
    assert_eq!(opted_in.open_at(&env, T0).unwrap().payload, b"via vault");
    // A MAC-mode session that reaches the receiver through its identity key is unaffected,
    // even when the block also names a symmetric key.
    let mut mixed = Sealer::new(
        &alice,
        &[Recipient::from(bob.public()), Recipient::from(&vault)],
        SealerConfig::new(Mode::Mac).dangerous_allow_mac_to_group(),
    )
    .unwrap();
    let o = Opener::builder()
        .identity(&bob)
        .trust(alice.public())
        .build()
        .unwrap();
    o.open_at(&seal(&mut mixed, b"to bob", T0), T0).unwrap();
}

/// Every secret kind, as the key string and as the file `keygen` writes.
fn secrets() -> Vec<(String, String)> {
    let id = Identity::generate().to_secret_string();
    let group = GroupKey::generate().to_secret_string();
    let sym = SymmetricKey::generate().to_secret_string();
    [id, group, sym]
        .into_iter()
        .map(|s| {
            let s = s.as_str().to_owned();
            let file = format!("# rpcseal key\n# public key: none\n{s}\n");
            (s, file)
        })
        .collect()
}

/// No 8-character window of the secret's body (what follows its prefix) shows in `text`.
fn assert_no_secret(what: &str, text: &str, secret: &str) {
    let body = &secret[secret.find(':').unwrap() + 1..];
    for w in body.as_bytes().windows(8) {
        let w = std::str::from_utf8(w).unwrap();
        assert!(
            !text.contains(w),
            "{what} echoes secret bytes {w:?}: {text}"
        );
    }
}

// Item 4 (library side): the keyring parser never quotes what it could not parse, and
// refuses a line holding a secret key string anywhere.
#[test]
fn item_04_keyring_errors_never_echo_a_secret() {
    let alice = Identity::generate();
    let public = alice.public().to_string();
    for (secret, file) in secrets() {
        let lines = [
            format!("trust alice {secret}"),
            format!("trust {secret} {public}"),
            format!("trust alice {public} {secret}"),
            format!("trust alice {public} valid-from={secret}"),
            format!("trust alice {public} {secret}=1"),
            format!("revoke {secret}"),
            format!("revoke {} {secret}", alice.key_id()),
            secret.clone(),
            format!("# my key: {secret}"),
            format!("x{secret}"),
        ];
        for text in lines.iter().map(String::as_str).chain([file.as_str()]) {
            match Keyring::parse(text) {
                Err(KeyringError::Line { reason, .. }) => {
                    assert_no_secret("keyring error", &reason, &secret);
                    assert!(reason.contains("secret"), "{reason}");
                }
                other => panic!("accepted a line holding a secret: {other:?}"),
            }
        }
        // A folder of .pub files, one of which is a secret key file.
        let scratch = Scratch::new("item04");
        std::fs::write(scratch.0.join("alice.pub"), &file).unwrap();
        let e = FileDirectory::new(&scratch.0)
            .lookup(&alice.key_id())
            .unwrap_err();
        assert_no_secret("directory error", &e.to_string(), &secret);
        assert!(e.to_string().contains("secret"), "{e}");
    }
    // Unparsed words are not quoted even when they hold no secret.
    let e = Keyring::parse("allow everything\n")
        .unwrap_err()
        .to_string();
    assert!(!e.contains("allow"), "{e}");
    let e = Keyring::parse(&format!("trust a {public} colour=blue\n"))
        .unwrap_err()
        .to_string();
    assert!(!e.contains("colour") && !e.contains("blue"), "{e}");
}

// Item 7: an unknown-sender flood costs no file reads and a bounded number of lookups, and
// does not evict the answers about known keys.
#[test]
fn item_07_file_directory_reads_its_files_once_per_ttl() {
    let alice = Identity::generate();
    let scratch = Scratch::new("item07");
    let pubfile = scratch.0.join("alice.pub");
    std::fs::write(&pubfile, format!("{}\n", alice.public())).unwrap();
    let dir = FileDirectory::new(&scratch.0).with_ttl(Duration::from_secs(3600));
    assert!(matches!(dir.lookup(&random_id()), Ok(Lookup::Unknown)));
    // Edited in place (the folder itself does not change): a directory that read and
    // parsed every file on each lookup would now fail every lookup.
    std::fs::write(&pubfile, "not a key at all\n").unwrap();
    for _ in 0..500 {
        assert!(matches!(dir.lookup(&random_id()), Ok(Lookup::Unknown)));
    }
    assert!(matches!(
        dir.lookup(&alice.key_id()),
        Ok(Lookup::Trusted(_))
    ));
    // A file added to the folder is seen at the next lookup; the broken one with it.
    std::fs::write(scratch.0.join("bob.pub"), format!("{}\n", alice.public())).unwrap();
    assert!(dir.lookup(&alice.key_id()).is_err());
}

#[test]
fn item_07_cached_directory_bounds_misses_and_keeps_known_keys() {
    let alice = Identity::generate();
    let scratch = Scratch::new("item07c");
    let file = scratch.0.join("keyring");
    std::fs::write(&file, format!("trust alice {}\n", alice.public())).unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let inner = Counting(FileDirectory::new(&file), count.clone());
    let cached = CachedDirectory::new(inner, Duration::from_secs(3600));
    assert!(matches!(
        cached.lookup(&alice.key_id()),
        Ok(Lookup::Trusted(_))
    ));
    // A flood of made-up sender ids, as many as an attacker likes.
    for _ in 0..20_000 {
        let _ = cached.lookup(&random_id());
    }
    let asked = count.load(Ordering::SeqCst);
    assert!(asked <= 1 + 1_000, "{asked} lookups reached the directory");
    // The known key is still answered from the cache.
    assert!(matches!(
        cached.lookup(&alice.key_id()),
        Ok(Lookup::Trusted(_))
    ));
    assert_eq!(count.load(Ordering::SeqCst), asked, "alice was evicted");

    // Through an opener: 500 envelopes from 500 unknown senders.
    let bob = Identity::generate();
    let count = Arc::new(AtomicUsize::new(0));
    let inner = Counting(FileDirectory::new(&file), count.clone());
    let o = Opener::builder()
        .identity(&bob)
        .key_directory(Arc::new(CachedDirectory::with_limits(
            inner,
            Duration::from_secs(3600),
            1_000,
            100,
        )))
        .build()
        .unwrap();
    for _ in 0..500 {
        let mallory = Identity::generate();
        let mut s = sealer(&mallory, &bob, Mode::Signed);
        assert_eq!(
            kind(o.open_at(&seal(&mut s, b"x", T0), T0)),
            ErrorKind::UntrustedSender
        );
    }
    assert_eq!(count.load(Ordering::SeqCst), 100);
}

// Item 12: the keyring parser rejects repeated options, duplicate keys and signed numbers.
#[test]
fn item_12_keyring_rejects_repeated_options_and_duplicate_keys() {
    let a = Identity::generate();
    let b = Identity::generate();
    let (pa, pb) = (a.public(), b.public());
    for (text, line) in [
        (
            format!("trust a {pa} valid-until=1000 valid-until=4000000000\n"),
            1,
        ),
        (format!("trust a {pa} valid-from=1 valid-from=2\n"), 1),
        (
            format!("trust a {pa} valid-from=1 valid-until=9 valid-from=1\n"),
            1,
        ),
        (format!("trust a {pa}\ntrust b {pb}\ntrust a2 {pa}\n"), 3),
        (
            format!("trust a {pa} valid-until=10\n\ntrust a {pa} valid-from=10\n"),
            3,
        ),
        (format!("revoke {}\nrevoke {}\n", a.key_id(), a.key_id()), 2),
        (format!("trust a {pa} valid-from=+5\n"), 1),
        (format!("trust a {pa} valid-until=-5\n"), 1),
        (format!("trust a {pa} valid-from=\n"), 1),
        (format!("trust a {pa} valid-from=0x10\n"), 1),
        (format!("trust a {pa} valid-from=18446744073709551616\n"), 1),
    ] {
        match Keyring::parse(&text) {
            Err(KeyringError::Line { line: l, .. }) => assert_eq!(l, line, "{text}"),
            other => panic!("{text}: {other:?}"),
        }
    }
    // Still accepted: a key trusted and revoked, options in either order, digits only.
    let ring = Keyring::parse(&format!(
        "trust a {pa} valid-until=4000000000 valid-from=0005\nrevoke {}\ntrust b {pb}\n",
        a.key_id()
    ))
    .unwrap();
    assert_eq!(ring.len(), 2);
    assert!(ring.is_revoked(&a.key_id()));
    assert_eq!(
        ring.get(&a.key_id()).unwrap().validity(),
        (Some(5), Some(4_000_000_000))
    );
    // A folder of .pub files: one key in two files is refused too (which name would win
    // depends on the folder's order).
    let scratch = Scratch::new("item12");
    std::fs::write(scratch.0.join("a.pub"), format!("{pa}\n")).unwrap();
    std::fs::write(scratch.0.join("b.pub"), format!("{pb}\n")).unwrap();
    let dir = FileDirectory::new(&scratch.0);
    assert!(matches!(dir.lookup(&a.key_id()), Ok(Lookup::Trusted(_))));
    std::fs::write(scratch.0.join("a-again.pub"), format!("# same key\n{pa}\n")).unwrap();
    assert!(FileDirectory::new(&scratch.0).lookup(&a.key_id()).is_err());
    // Two key lines in one file as well.
    let scratch = Scratch::new("item12b");
    std::fs::write(scratch.0.join("a.pub"), format!("{pa}\n{pb}\n")).unwrap();
    assert!(FileDirectory::new(&scratch.0).lookup(&a.key_id()).is_err());
}

// Item 17: `Opened` and `Received` do not print the plaintext.
#[test]
fn item_17_debug_of_opened_messages_hides_the_payload() {
    let alice = Identity::generate();
    let bob = Identity::generate();
    let o = Opener::builder()
        .identity(&bob)
        .trust(alice.public())
        .build()
        .unwrap();
    let payload = b"the launch code is 0000";
    let mut s = sealer(&alice, &bob, Mode::Signed);
    let opened = o.open_at(&seal(&mut s, payload, T0), T0).unwrap();
    let received = o.open_any_at(&seal(&mut s, payload, T0), T0).unwrap();
    assert!(matches!(received, Received::Verified(_)));
    for text in [
        format!("{opened:?}"),
        format!("{opened:#?}"),
        format!("{received:?}"),
    ] {
        assert!(!text.contains("launch"), "{text}");
        let bytes = format!("{:?}", &payload[..]);
        assert!(!text.contains(&bytes[..20]), "{text}");
        assert!(!text.contains(&hex::encode(&payload[..8])), "{text}");
        assert!(text.contains("23 bytes"), "{text}");
    }
}

// Item 18: forged variants of a captured inline envelope do not each cost a signature check
// and an HPKE open; and nothing about them changes what later messages do.
#[test]
fn item_18_forged_variants_of_a_captured_envelope_reuse_the_verified_block() {
    let alice = Identity::generate();
    let bob = Identity::generate();
    let o = Opener::builder()
        .identity(&bob)
        .trust(alice.public())
        .build()
        .unwrap();
    let mut s = Sealer::new(
        &alice,
        &[Recipient::from(bob.public())],
        SealerConfig::new(Mode::Signed).inline(Inline::FirstMessage),
    )
    .unwrap();
    let first = seal(&mut s, b"first", T0);
    let second = seal(&mut s, b"second, by reference", T0);
    for i in 0..50 {
        let mut forged = first.clone();
        let n = forged.len();
        forged[n - 1 - i] ^= 0x01;
        assert_eq!(
            kind(o.open_at(&forged, T0)),
            ErrorKind::BadAuthenticator,
            "{i}"
        );
    }
    assert_eq!(
        o.stats().sessions_established,
        1,
        "one public-key setup for 50 forgeries"
    );
    // A failed message changed no state: the by-reference envelope is still unknown.
    assert_eq!(o.cached_sessions(), 0);
    assert_eq!(kind(o.open_at(&second, T0)), ErrorKind::UnknownSession);
    assert_eq!(o.open_at(&first, T0).unwrap().payload, b"first");
    assert_eq!(
        o.open_at(&second, T0).unwrap().payload,
        b"second, by reference"
    );
    // A block whose header is the same but whose signature is broken still fails (the
    // message hash covers the block's bytes).
    let fresh = Opener::builder()
        .identity(&bob)
        .trust(alice.public())
        .build()
        .unwrap();
    let mut s2 = sealer(&alice, &bob, Mode::Mac);
    let good = seal(&mut s2, b"mac", T0);
    let mut bad_sig = good.clone();
    // The block's signature sits just before the block ends; flip a byte in the middle of
    // the envelope instead of hunting for it: it is in the block or in what the MAC covers.
    let mid = bad_sig.len() / 2;
    bad_sig[mid] ^= 0x80;
    assert!(fresh.open_at(&bad_sig, T0).is_err());
    assert_eq!(fresh.open_at(&good, T0).unwrap().payload, b"mac");
}

// Item 18 with item 2: a session remembered from a block that verified is still a session
// setup for the key directory: revoked there, its first message is refused at once.
#[test]
fn item_18_a_remembered_block_still_asks_the_key_directory() {
    let alice = Identity::generate();
    let bob = Identity::generate();
    let scratch = Scratch::new("item18");
    let file = scratch.0.join("keyring");
    std::fs::write(&file, format!("trust alice {}\n", alice.public())).unwrap();
    let o = Opener::builder()
        .identity(&bob)
        .key_directory(Arc::new(
            FileDirectory::new(&file).with_ttl(Duration::from_secs(3600)),
        ))
        .build()
        .unwrap();
    let mut s = sealer(&alice, &bob, Mode::Signed);
    let captured = seal(&mut s, b"captured", T0);
    let mut forged = captured.clone();
    let n = forged.len();
    forged[n - 1] ^= 1;
    assert_eq!(kind(o.open_at(&forged, T0)), ErrorKind::BadAuthenticator);
    std::fs::write(
        &file,
        format!(
            "trust alice {}\nrevoke {}\n",
            alice.public(),
            alice.key_id()
        ),
    )
    .unwrap();
    assert_eq!(kind(o.open_at(&captured, T0)), ErrorKind::Revoked);
    assert_eq!(o.stats().sessions_established, 1);
}

// Item 2: caches stacked on each other do not add up their TTLs: an answer a cache already
// held for a while is relied on only for what is left of its TTL.
#[test]
fn item_02_an_old_cached_answer_is_relied_on_only_for_the_rest_of_its_ttl() {
    let alice = Identity::generate();
    let bob = Identity::generate();
    let scratch = Scratch::new("item02c");
    let file = scratch.0.join("keyring");
    std::fs::write(&file, format!("trust alice {}\n", alice.public())).unwrap();
    let ttl = Duration::from_millis(1200);
    let cached = Arc::new(CachedDirectory::new(
        FileDirectory::new(&file).with_ttl(Duration::from_secs(3600)),
        ttl,
    ));
    // Someone else asked first: the cache's answer dates from now.
    let first = Instant::now();
    assert!(matches!(
        cached.lookup(&alice.key_id()),
        Ok(Lookup::Trusted(_))
    ));
    std::thread::sleep(ttl / 2);
    let o = Opener::builder()
        .identity(&bob)
        .key_directory(cached.clone())
        .build()
        .unwrap();
    let mut s = sealer(&alice, &bob, Mode::Signed);
    o.open_at(&seal(&mut s, b"cached", T0), T0).unwrap();
    std::fs::write(&file, format!("revoke {}\n", alice.key_id())).unwrap();
    // One TTL after the answer was read from the file, not after the opener got it.
    std::thread::sleep(ttl.saturating_sub(first.elapsed()) + Duration::from_millis(20));
    assert!(
        first.elapsed() < ttl + ttl / 2,
        "the machine stalled: the test cannot tell"
    );
    assert_eq!(
        kind(o.open_at(&seal(&mut s, b"after", T0), T0)),
        ErrorKind::Revoked
    );
}
