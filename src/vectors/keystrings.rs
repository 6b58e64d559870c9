//! `v3/keys/key-strings.json`: key strings (spec/envelope-v3.md §2.1, §2.4) that a parser
//! must accept, with the key id of the one encoding, or reject, with the reason. A vector
//! kind of its own (`{name, description, rule, asked_kind, string, expect, key_id}`), in a
//! file of its own, so that readers of the envelope files meet no unknown field.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use curve25519_dalek::constants::EIGHT_TORSION;
use serde_json::{json, Value};

use super::{cast_identity, cast_key, CastKey, FORMAT};
use crate::error::KeyError;
use crate::hash::{h, CTX_KEY_CHECKSUM};
use crate::keys::{GroupKey, GroupPublicKey, Identity, PublicIdentity, Recipient, SymmetricKey};

/// A key string with a correct checksum over any payload (spec §2.4).
fn encode(prefix: &str, payload: &[u8]) -> String {
    let sum = h(CTX_KEY_CHECKSUM, &[prefix.as_bytes(), payload]);
    let mut raw = payload.to_vec();
    raw.extend_from_slice(&sum[..4]);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(raw))
}

/// The outcome class of parsing `string` as `asked_kind`, and the key id on success.
fn parse(asked_kind: &str, string: &str) -> Result<(&'static str, Option<String>), String> {
    let class = |e: KeyError| match e {
        KeyError::UnknownPrefix { .. } => "unknown_prefix",
        KeyError::WrongKind { .. } => "wrong_kind",
        KeyError::Encoding => "encoding",
        KeyError::Length { .. } => "length",
        KeyError::Checksum => "checksum",
        _ => "invalid_key",
    };
    let r = match asked_kind {
        "public_identity" => PublicIdentity::parse(string).map(|k| k.key_id()),
        "secret_identity" => Identity::from_secret_string(string).map(|k| k.key_id()),
        "public_group" => GroupPublicKey::parse(string).map(|k| k.key_id()),
        "secret_group" => GroupKey::from_secret_string(string).map(|k| k.public().key_id()),
        "secret_symmetric" => SymmetricKey::from_secret_string(string).map(|k| k.key_id()),
        "recipient" => Recipient::parse(string).map(|k| k.key_id()),
        other => return Err(format!("unknown asked_kind {other}")),
    };
    Ok(match r {
        Ok(id) => ("ok", Some(id.to_string())),
        // tests/mutants.rs: a parser that keeps the key's bytes unchecked accepts them.
        Err(e) => match class(e) {
            "invalid_key" if crate::mutant::is(crate::mutant::Mutant::UncheckedKeyBytes) => {
                ("ok", None)
            }
            c => (c, None),
        },
    })
}

struct Case {
    name: &'static str,
    description: &'static str,
    rule: &'static str,
    asked_kind: &'static str,
    string: String,
    expect: &'static str,
}

fn cases() -> Vec<Case> {
    let alice = cast_identity("alice");
    let pub_id = alice.public().to_string();
    let secret_id = alice.to_secret_string().to_string();
    let (group_pub, group_secret) = match cast_key("team") {
        CastKey::Group(g) => (g.public().to_string(), g.to_secret_string().to_string()),
        _ => unreachable!("team is a group key"),
    };
    let sym = match cast_key("vault") {
        CastKey::Symmetric(k) => k.to_secret_string().to_string(),
        _ => unreachable!("vault is a symmetric key"),
    };
    let ed = alice.public().ed25519_bytes();
    let x = alice.public().x25519_bytes();
    let id_with =
        |e: &[u8; 32], xk: &[u8; 32]| encode("rpcseal-pub-id:", &[&e[..], &xk[..]].concat());
    let group_with = |xk: &[u8; 32]| encode("rpcseal-pub-group:", xk);
    let mut x_high = x;
    x_high[31] |= 0x80;
    // u = p + 9: the base point's u a second time (RFC 7748 §5 reduces it).
    let mut p_plus_9 = [0xff; 32];
    p_plus_9[0] = 0xed + 9;
    p_plus_9[31] = 0x7f;
    let mut ed_identity = [0u8; 32];
    ed_identity[0] = 1;
    let mut ed_neg_zero = ed_identity;
    ed_neg_zero[31] = 0x80;
    let ed_y_ge_p = (0u8..19)
        .map(|y0| {
            let mut y = [0xff; 32];
            y[0] = 0xed + y0;
            y[31] = 0x7f;
            y
        })
        .find(|y| ed25519_dalek::VerifyingKey::from_bytes(y).is_ok())
        .expect("some y >= p decodes");
    let ed_mixed = (alice.signing_key().verifying_key().to_edwards() + EIGHT_TORSION[1])
        .compress()
        .to_bytes();
    let ed_off_curve = (2u8..)
        .map(|y| {
            let mut k = [0u8; 32];
            k[0] = y;
            k
        })
        .find(|k| ed25519_dalek::VerifyingKey::from_bytes(k).is_err())
        .expect("some y is off the curve");
    let body = &pub_id["rpcseal-pub-id:".len()..];
    // 68 bytes are 91 base64url characters; the last carries 4 data bits and 2 zero bits.
    let last = body.chars().last().expect("non-empty");
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let idx = alphabet.find(last).expect("base64url");
    let trailing = alphabet.as_bytes()[idx | 1] as char;
    let mut typo = pub_id.clone().into_bytes();
    let mid = typo.len() / 2;
    typo[mid] = if typo[mid] == b'A' { b'B' } else { b'A' };
    // A valid string with '-' or '_' in it, written in the standard alphabet: the same bytes,
    // so only a parser that takes both alphabets accepts it.
    let (std_kind, std_alphabet) = [
        ("public_identity", pub_id.clone()),
        ("public_group", group_pub.clone()),
        ("public_identity", cast_identity("bob").public().to_string()),
        (
            "public_identity",
            cast_identity("carol").public().to_string(),
        ),
    ]
    .into_iter()
    .find(|(_, s)| s.contains(['-', '_']))
    .map(|(k, s)| {
        let (prefix, body) = s.split_at(s.find(':').expect("a prefix") + 1);
        (
            k,
            format!("{prefix}{}", body.replace('-', "+").replace('_', "/")),
        )
    })
    .expect("one of four key strings has '-' or '_'");
    let ok = "§2.4";
    let c = |name, description, rule, asked_kind, string: String, expect| Case {
        name,
        description,
        rule,
        asked_kind,
        string,
        expect,
    };
    vec![
        c("public-identity", "alice's public identity string.", ok, "public_identity", pub_id.clone(), "ok"),
        c("secret-identity", "alice's secret identity string; the key id is her sender id.", ok, "secret_identity", secret_id.clone(), "ok"),
        c("public-group", "The team group key's public string.", ok, "public_group", group_pub.clone(), "ok"),
        c("secret-group", "The team group key's secret string.", ok, "secret_group", group_secret.clone(), "ok"),
        c("secret-symmetric", "vault's symmetric key string (key id ‖ key).", ok, "secret_symmetric", sym.clone(), "ok"),
        c("recipient-group", "A recipient may be a public group key.", ok, "recipient", group_pub.clone(), "ok"),
        c("recipient-symmetric", "A recipient may be a symmetric key.", ok, "recipient", sym, "ok"),
        c("surrounding-whitespace", "Leading and trailing whitespace (spaces, tab, CRLF) is ignored.", ok, "public_identity", format!(" \t{pub_id}\r\n"), "ok"),
        c("unknown-prefix", "Not an rpcseal key string.", ok, "public_identity", "age1qqqqqqqqqqqqqqqqqqqq".into(), "unknown_prefix"),
        c("prefix-wrong-case", "The public prefix in upper case: prefixes are exact.", ok, "public_identity", pub_id.replacen("rpcseal-pub-id:", "RPCSEAL-PUB-ID:", 1), "unknown_prefix"),
        c("group-asked-as-identity", "A public group key where a public identity is asked for.", ok, "public_identity", group_pub, "wrong_kind"),
        c("secret-asked-as-public", "A secret identity where a public identity is asked for.", ok, "public_identity", secret_id.clone(), "wrong_kind"),
        c("secret-as-recipient", "A secret identity string is never a recipient.", ok, "recipient", secret_id, "wrong_kind"),
        c("padding", "base64url with padding ('='): rejected, the encoding is unpadded (RFC 4648 §3.2).", ok, "public_identity", format!("{pub_id}="), "encoding"),
        c("non-zero-trailing-bits", "The last character changed so that its 2 unused low bits are not zero: the same bytes, a second string (RFC 4648 §3.5).", ok, "public_identity", format!("{}{trailing}", &pub_id[..pub_id.len() - 1]), "encoding"),
        c("standard-alphabet", "A character of the standard alphabet ('+') instead of base64url.", ok, "public_identity", format!("{}+", &pub_id[..pub_id.len() - 1]), "encoding"),
        c("standard-alphabet-same-bytes", "A valid key string whose '-' and '_' are written '+' and '/': the same bytes and checksum in the standard alphabet, a second string for one key.", ok, std_kind, std_alphabet, "encoding"),
        c("truncated", "Four characters missing (a truncated copy): wrong decoded length.", ok, "public_identity", pub_id[..pub_id.len() - 4].into(), "length"),
        c("checksum", "One character changed in the middle: the checksum does not match.", ok, "public_identity", String::from_utf8(typo).expect("ascii"), "checksum"),
        c("x25519-bit-255-set", "alice's X25519 key with bit 255 set, checksum correct: RFC 7748 ignores the bit, so it would be her key under another key id.", "§2.1, §2.4", "public_identity", id_with(&ed, &x_high), "invalid_key"),
        c("x25519-u-p-plus-9", "A group key u = p + 9 (the base point reduced mod p), checksum correct: not the canonical encoding.", "§2.1, §2.4", "public_group", group_with(&p_plus_9), "invalid_key"),
        c("x25519-u-zero", "A group key u = 0, of small order, checksum correct.", "§2.4", "public_group", group_with(&[0; 32]), "invalid_key"),
        c("ed25519-small-order", "An identity whose Ed25519 key is the identity point 01 00 .. 00.", "§2.1, §2.4", "public_identity", id_with(&ed_identity, &x), "invalid_key"),
        c("ed25519-negative-zero", "An Ed25519 key 01 00 .. 80: x = 0 with the sign bit set, a second encoding of the identity point.", "§2.1, §2.4", "public_identity", id_with(&ed_neg_zero, &x), "invalid_key"),
        c("ed25519-y-at-least-p", "An Ed25519 key whose y is p or more (RFC 8032 §5.1.3 step 1: decoding fails).", "§2.1, §2.4", "public_identity", id_with(&ed_y_ge_p, &x), "invalid_key"),
        c("ed25519-mixed-order", "alice's Ed25519 key plus a point of order 8: a point on the curve, not of small order, not in the prime-order subgroup.", "§2.1, §2.4", "public_identity", id_with(&ed_mixed, &x), "invalid_key"),
        c("ed25519-not-on-curve", "32 bytes that decode to no curve point.", "§2.1, §2.4", "public_identity", id_with(&ed_off_curve, &x), "invalid_key"),
    ]
}

pub(super) fn file() -> Value {
    let cases: Vec<Value> = cases()
        .into_iter()
        .map(|c| {
            let (expect, key_id) = parse(c.asked_kind, &c.string).expect("known kinds");
            assert_eq!(expect, c.expect, "key-strings/{}", c.name);
            let mut v = json!({
                "name": c.name,
                "description": c.description,
                "rule": c.rule,
                "asked_kind": c.asked_kind,
                "string": c.string,
                "expect": expect,
            });
            if let Some(id) = key_id {
                v["key_id"] = json!(id);
            }
            v
        })
        .collect();
    json!({
        "format": FORMAT,
        "family": "keys/key-strings",
        "description": "Key strings to parse as asked_kind: accepted with the key id of their one encoding, or rejected with the reason.",
        "spec": "spec/envelope-v3.md §2.1, §2.4",
        "license": "CC0-1.0",
        "cases": cases,
    })
}

pub(super) fn verify_case(case: &Value) -> Result<(), String> {
    let kind = case["asked_kind"].as_str().ok_or("asked_kind")?;
    let string = case["string"].as_str().ok_or("string")?;
    let want = case["expect"].as_str().ok_or("expect")?;
    let (got, id) = parse(kind, string)?;
    if got != want {
        return Err(format!("got {got}, expected {want}"));
    }
    if let Some(want_id) = case["key_id"].as_str() {
        if id.as_deref() != Some(want_id) {
            return Err(format!("key id {id:?}, expected {want_id}"));
        }
    }
    if let Some(want) = case["xwing_key_id"].as_str() {
        let got = xwing_key_id(kind, string).ok_or("no X-Wing key id")?;
        if got != want {
            return Err(format!("X-Wing key id {got}, expected {want}"));
        }
    }
    Ok(())
}

/// The X-Wing recipient id of a post-quantum key string (spec §2.3, §2.5).
fn xwing_key_id(asked_kind: &str, string: &str) -> Option<String> {
    let id = match asked_kind {
        "public_identity" => PublicIdentity::parse(string).ok()?.xwing_key_id(),
        "secret_identity" => Identity::from_secret_string(string)
            .ok()?
            .public()
            .xwing_key_id(),
        "public_group" => GroupPublicKey::parse(string).ok()?.xwing_key_id(),
        "secret_group" => GroupKey::from_secret_string(string)
            .ok()?
            .public()
            .xwing_key_id(),
        _ => None,
    };
    id.map(|k| k.to_string())
}

/// `v3/pq/keys/key-strings.json` (issue 15): the `-xwing` key strings of spec §2.4 and the
/// one encoding of an X-Wing public key (§2.5). The shape of `v3/keys/key-strings.json`, and
/// accepted post-quantum keys also give `xwing_key_id`.
pub(super) fn pq_file() -> Value {
    let (bob, team) = match (cast_key("bob-pq"), cast_key("team-pq")) {
        (CastKey::Identity(b), CastKey::Group(t)) => (b, t),
        _ => unreachable!("bob-pq is an identity, team-pq a group key"),
    };
    let pub_id = bob.public().to_string();
    let secret_id = bob.to_secret_string().to_string();
    let group_pub = team.public().to_string();
    let group_secret = team.to_secret_string().to_string();
    let ed = bob.public().ed25519_bytes();
    let x = bob.public().x25519_bytes();
    let w = *bob
        .xwing_secret()
        .expect("post-quantum")
        .public()
        .as_bytes();
    let id_with = |xw: &[u8]| encode("rpcseal-pub-id-xwing:", &[&ed[..], &x[..], xw].concat());
    // Coefficient 0 of the ML-KEM-768 key set to q = 3329 = 0xd01 (bytes 01 .d).
    let mut q = w;
    q[0] = 0x01;
    q[1] = (q[1] & 0xf0) | 0x0d;
    // Coefficient 767 (the high 12 bits of bytes 1149..1152) set to 4095.
    let mut top = w;
    top[1150] |= 0xf0;
    top[1151] = 0xff;
    // q - 1 = 3328 = 0xd00 is a coefficient like any other.
    let mut q1 = w;
    q1[0] = 0x00;
    q1[1] = (q1[1] & 0xf0) | 0x0d;
    let mut x_high = w;
    x_high[1215] |= 0x80;
    let mut x_zero = w;
    x_zero[1184..].fill(0);
    let mut typo = pub_id.clone().into_bytes();
    let mid = typo.len() / 2;
    typo[mid] = if typo[mid] == b'A' { b'B' } else { b'A' };
    let r = "§2.4, §2.5";
    let c = |name, description, rule, asked_kind, string: String, expect| Case {
        name,
        description,
        rule,
        asked_kind,
        string,
        expect,
    };
    let cases = vec![
        c("public-identity-xwing", "bob-pq's public identity: Ed25519 ‖ X25519 ‖ X-Wing (1280 bytes). Its key id is bob's sender id; xwing_key_id is the id of its kind-3 entries.", r, "public_identity", pub_id.clone(), "ok"),
        c("secret-identity-xwing", "bob-pq's secret identity: Ed25519 seed ‖ X25519 secret ‖ X-Wing seed (96 bytes).", r, "secret_identity", secret_id.clone(), "ok"),
        c("public-group-xwing", "team-pq's public group key: X25519 ‖ X-Wing (1248 bytes); the key id is the X25519 key's.", r, "public_group", group_pub.clone(), "ok"),
        c("secret-group-xwing", "team-pq's secret group key: X25519 secret ‖ X-Wing seed (64 bytes).", r, "secret_group", group_secret.clone(), "ok"),
        c("recipient-identity-xwing", "A recipient may be a post-quantum identity.", r, "recipient", pub_id.clone(), "ok"),
        c("recipient-group-xwing", "A recipient may be a post-quantum group key.", r, "recipient", group_pub.clone(), "ok"),
        c("mlkem-coefficient-q-minus-1", "Coefficient 0 of the ML-KEM-768 part is 3328 = q - 1: in range, accepted (checksum correct).", r, "public_identity", id_with(&q1), "ok"),
        c("checksum-xwing", "One character changed in the middle: the checksum does not match.", r, "public_identity", String::from_utf8(typo).expect("ascii"), "checksum"),
        c("truncated-xwing", "Four characters missing: wrong decoded length.", r, "public_identity", pub_id[..pub_id.len() - 4].into(), "length"),
        c("classical-payload-under-xwing-prefix", "A 64-byte (classical) payload under the rpcseal-pub-id-xwing: prefix, checksum correct: wrong decoded length.", r, "public_identity", encode("rpcseal-pub-id-xwing:", &[&ed[..], &x[..]].concat()), "length"),
        c("group-xwing-asked-as-identity", "A post-quantum group key where a public identity is asked for.", r, "public_identity", group_pub, "wrong_kind"),
        c("secret-xwing-asked-as-public", "A post-quantum secret identity where a public identity is asked for.", r, "public_identity", secret_id.clone(), "wrong_kind"),
        c("secret-xwing-as-recipient", "A post-quantum secret identity is never a recipient.", r, "recipient", secret_id, "wrong_kind"),
        c("public-xwing-asked-as-secret", "A post-quantum public identity where a secret identity is asked for.", r, "secret_identity", pub_id, "wrong_kind"),
        c("mlkem-coefficient-q", "Coefficient 0 of the ML-KEM-768 part is 3329 = q (FIPS 203 §7.2 modulus check), checksum correct: a lenient decoder would reduce it to 0, a second encoding of another key.", r, "public_identity", id_with(&q), "invalid_key"),
        c("mlkem-coefficient-4095", "Coefficient 767 of the ML-KEM-768 part is 4095, checksum correct.", r, "public_identity", id_with(&top), "invalid_key"),
        c("xwing-x25519-bit-255-set", "The X25519 part of the X-Wing key with bit 255 set, checksum correct (§2.1).", r, "public_identity", id_with(&x_high), "invalid_key"),
        c("xwing-x25519-u-zero", "The X25519 part of the X-Wing key is u = 0, of small order, checksum correct (§2.1).", r, "public_identity", id_with(&x_zero), "invalid_key"),
    ];
    let cases: Vec<Value> = cases
        .into_iter()
        .map(|c| {
            let (expect, key_id) = parse(c.asked_kind, &c.string).expect("known kinds");
            assert_eq!(expect, c.expect, "pq/key-strings/{}", c.name);
            let mut v = json!({
                "name": c.name,
                "description": c.description,
                "rule": c.rule,
                "asked_kind": c.asked_kind,
                "string": c.string,
                "expect": expect,
            });
            if let Some(id) = key_id {
                v["key_id"] = json!(id);
                if let Some(xid) = xwing_key_id(c.asked_kind, &c.string) {
                    v["xwing_key_id"] = json!(xid);
                }
            }
            v
        })
        .collect();
    json!({
        "format": FORMAT,
        "family": "pq/keys/key-strings",
        "description": "Post-quantum key strings (issue 15) to parse as asked_kind: accepted with the key id of their one encoding (and xwing_key_id, the id of the X-Wing key), or rejected with the reason.",
        "spec": "spec/envelope-v3.md §2.1, §2.4, §2.5",
        "license": "CC0-1.0",
        "cases": cases,
    })
}
