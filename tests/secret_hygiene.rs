//! Secret hygiene (brief property 8): secrets zeroize on drop, never show in `Debug` or
//! `Display`, and are compared in constant time.
//!
//! What the compiler can check is checked here: the types that hold every secret of the
//! library implement `ZeroizeOnDrop`. The rest was reviewed by reading, and is listed in
//! `secret_holders_reviewed_by_reading` below so the list stays next to the checks.

use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use getrandom::SysRng;
use rand_core::UnwrapErr;
use rpcseal::{
    forge, GroupKey, Identity, Inline, Metadata, Mode, Opener, Policy, Recipient, Sealer,
    SealerConfig, SymmetricKey,
};
use zeroize::{ZeroizeOnDrop, Zeroizing};

fn zeroizes_on_drop<T: ZeroizeOnDrop>() {}

/// Every field type that holds a long-term or session secret zeroizes on drop.
#[test]
fn secret_field_types_zeroize_on_drop() {
    // Identity.signing, SealerSession.signing (the per-session Ed25519 key).
    zeroizes_on_drop::<ed25519_dalek::SigningKey>();
    // Identity.x25519, GroupKey.secret, and inside the hpke crate's X25519 private key
    // (Opener's own keys): x25519-dalek's StaticSecret, built with its `zeroize` feature.
    // x25519-dalek 3 wipes it in its Drop and implements the `ZeroizeOnDrop` marker (2 had
    // the zeroizing Drop but not the marker).
    zeroizes_on_drop::<x25519_dalek::StaticSecret>();
    // Sealer and Opener: the payload cipher keyed with EK.
    zeroizes_on_drop::<chacha20poly1305::ChaCha20Poly1305>();
    // EK, SK, MAC keys, list keys, unwrapped wrap plaintexts, key-string payloads.
    zeroizes_on_drop::<Zeroizing<[u8; 32]>>();
    zeroizes_on_drop::<Zeroizing<Vec<u8>>>();
    zeroizes_on_drop::<Zeroizing<String>>();
}

/// Holders of secrets whose drop glue is reviewed, not compiler-checked (no marker trait to
/// assert): kept as a list so a new secret-bearing type gets added here.
#[test]
fn secret_holders_reviewed_by_reading() {
    // Identity { SigningKey, StaticSecret, PublicIdentity }: both secrets ZeroizeOnDrop.
    // SymmetricKey { KeyId, Zeroizing<[u8; 32]> }; its PartialEq compares keys with subtle.
    // GroupKey { StaticSecret, GroupPublicKey }: ZeroizeOnDrop field.
    // Sealer { Identity, .., Active { SealerSession { ek: Option<Zeroizing>, mac_keys:
    //   Vec<Zeroizing>, signing: Option<SigningKey> }, list_key: Option<Zeroizing>,
    //   cipher: Option<ChaCha20Poly1305> } }.
    // Opener { keys: Vec<OwnKey { secret: hpke PrivateKey(StaticSecret) }>, cache of
    //   CachedSession { cipher, mac_key: Option<Zeroizing>, list_key: Option<Zeroizing> } }.
    // Transients: session::create's SK and wrap plaintext (Zeroizing), hpke_seal encrypts
    // its plaintext copy in place, hpke_open and Block::unwrap return Zeroizing, key strings
    // are built and decoded in Zeroizing buffers.
    fn no_debug_needed<T>() {}
    no_debug_needed::<Sealer>();
    no_debug_needed::<Opener>();
}

/// Every rendering of `secret` that a careless Debug could print.
fn renderings(secret: &[u8]) -> Vec<String> {
    let mut v = vec![
        hex::encode(secret),
        hex::encode_upper(secret),
        URL_SAFE_NO_PAD.encode(secret),
        STANDARD_NO_PAD.encode(secret),
        format!("{secret:?}"),
    ];
    // Any 8-byte window, in hex: a partial leak is a leak.
    for w in secret.windows(8) {
        v.push(hex::encode(w));
        v.push(format!("{:?}", w).trim_matches(['[', ']']).to_owned());
    }
    v
}

fn assert_hidden(what: &str, text: &str, secrets: &[&[u8]]) {
    for s in secrets {
        for r in renderings(s) {
            assert!(
                !text.contains(&r),
                "{what} shows secret bytes as {r}: {text}"
            );
        }
        for w in s.windows(8) {
            assert!(
                !text.as_bytes().windows(8).any(|t| t == w),
                "{what} contains raw secret bytes"
            );
        }
    }
}

fn secret_payload(secret_string: &str) -> Vec<u8> {
    let body = secret_string.split_once(':').unwrap().1;
    URL_SAFE_NO_PAD.decode(body).unwrap()
}

#[test]
fn debug_and_display_never_show_key_bytes() {
    let alice = Identity::generate();
    let bob = Identity::generate();
    let group = GroupKey::generate();
    let alice_secret = alice.to_secret_string();
    let group_secret = group.to_secret_string();
    let alice_raw = secret_payload(&alice_secret);
    let group_raw = secret_payload(&group_secret);
    let alice_body = alice_secret.split_once(':').unwrap().1.to_owned();
    let group_body = group_secret.split_once(':').unwrap().1.to_owned();
    let sym = SymmetricKey::generate();
    let sym_secret = sym.to_secret_string();
    // The symmetric key string carries the key id (public) then the key.
    let sym_raw = secret_payload(&sym_secret);
    let sym_body = sym_secret.split_once(':').unwrap().1.to_owned();
    let secrets: Vec<&[u8]> = vec![
        &alice_raw[..32],
        &alice_raw[32..64],
        &group_raw[..32],
        alice_body.as_bytes(),
        group_body.as_bytes(),
        &sym_raw[16..48],
        sym_body.as_bytes(),
    ];
    for (what, text) in [
        ("Identity Debug", format!("{alice:?}")),
        ("Identity Debug (alternate)", format!("{alice:#?}")),
        ("GroupKey Debug", format!("{group:?}")),
        ("GroupKey Debug (alternate)", format!("{group:#?}")),
        ("PublicIdentity Display", alice.public().to_string()),
        ("PublicIdentity Debug", format!("{:?}", alice.public())),
        ("GroupPublicKey Display", group.public().to_string()),
        ("GroupPublicKey Debug", format!("{:?}", group.public())),
        (
            "Recipient Debug",
            format!("{:?}", Recipient::from(group.public())),
        ),
    ] {
        assert_hidden(what, &text, &secrets);
    }

    // Session secrets: EK and the MAC key, as the recipient unwraps them, never show in
    // what an opener returns, in errors, or in an inspection.
    let mut sealer = Sealer::new(
        &alice,
        &[Recipient::from(bob.public())],
        SealerConfig::new(Mode::Mac).inline(Inline::Always),
    )
    .unwrap();
    let now = 1_800_000_000;
    let mut meta = Metadata::new();
    meta.insert("method".into(), "a.b".into());
    let env = sealer
        .seal_deterministic(b"payload", &meta, now, &mut UnwrapErr(SysRng))
        .unwrap();
    let info = rpcseal::inspect(&env).unwrap();
    let block_len = info.session.as_ref().unwrap().block_len;
    let block = find_block(&env, block_len);
    let (ek, mk) = forge::unwrap_as(&block, 0, &forge::identity_x25519(&bob));
    let (ek, mk) = (ek.unwrap(), mk.unwrap());
    let session_secrets: Vec<&[u8]> = vec![&ek, &mk, &alice_raw[..32], &alice_raw[32..]];
    let opener = Opener::builder()
        .identity(&bob)
        .trust(alice.public())
        .policy(Policy::default())
        .build()
        .unwrap();
    let opened = opener.open_at(&env, now).unwrap();
    assert_hidden("Opened Debug", &format!("{opened:#?}"), &session_secrets);
    assert_hidden("Inspection Debug", &format!("{info:#?}"), &session_secrets);
    assert_hidden(
        "SealerConfig Debug",
        &format!("{:?}", sealer.config()),
        &session_secrets,
    );
    let mut bad = env.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let e = opener.open_at(&bad, now).unwrap_err();
    assert_hidden("Error Display", &e.to_string(), &session_secrets);
    assert_hidden("Error Debug", &format!("{e:?}"), &session_secrets);
    // A damaged secret key string: the error says what is wrong, not what the key was.
    let mut typo = alice_secret.to_string().into_bytes();
    typo[30] = if typo[30] == b'A' { b'B' } else { b'A' };
    let e = Identity::from_secret_string(std::str::from_utf8(&typo).unwrap()).unwrap_err();
    assert_hidden("KeyError Display", &e.to_string(), &secrets);
    assert_hidden("KeyError Debug", &format!("{e:?}"), &secrets);
}

/// The block bytes inside an envelope, found by their length (inspect reports it).
fn find_block(env: &[u8], len: usize) -> Vec<u8> {
    (0..env.len() - len)
        .map(|at| &env[at..at + len])
        .find(|b| rpcseal::inspect_session_block(b).is_ok())
        .unwrap()
        .to_vec()
}
