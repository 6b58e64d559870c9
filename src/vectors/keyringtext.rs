//! `v3/keys/keyring-text.json`: keyring files (spec/keyring.md §3) that a reader must accept,
//! with the keyring they describe, or refuse as a whole. A vector kind of its own:
//! `{name, description, rule, text, expect, trusted, revoked}`.

use serde_json::{json, Value};

use super::{cast_identity, FORMAT};
use crate::keyring::Keyring;
use crate::keys::KeyId;

fn pub_id(name: &str) -> String {
    cast_identity(name).public().to_string()
}

fn sender_id(name: &str) -> String {
    cast_identity(name).key_id().to_string()
}

/// The keyring as the vectors write it: trusted keys sorted by key id, with their validity.
fn describe(ring: &Keyring) -> Value {
    let mut keys: Vec<Value> = ring
        .keys()
        .map(|k| {
            let (from, until) = k.validity();
            json!({
                "name": k.name(),
                "key_id": k.key().key_id().to_string(),
                "valid_from": from,
                "valid_until": until,
            })
        })
        .collect();
    keys.sort_by(|a, b| a["key_id"].as_str().cmp(&b["key_id"].as_str()));
    Value::Array(keys)
}

fn cases() -> Vec<(
    &'static str,
    &'static str,
    &'static str,
    String,
    Vec<String>,
)> {
    let alice = pub_id("alice");
    let carol = pub_id("carol");
    let alice_id = sender_id("alice");
    let x_high_alice = {
        // alice with bit 255 of her X25519 key set, checksum correct (§2.1).
        let id = cast_identity("alice");
        let mut payload = id.public().ed25519_bytes().to_vec();
        let mut x = id.public().x25519_bytes();
        x[31] |= 0x80;
        payload.extend_from_slice(&x);
        let sum = crate::hash::h(
            crate::hash::CTX_KEY_CHECKSUM,
            &[b"rpcseal-pub-id:", &payload],
        );
        payload.extend_from_slice(&sum[..4]);
        use base64::Engine as _;
        format!(
            "rpcseal-pub-id:{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload)
        )
    };
    let r = "keyring.md §3";
    vec![
        ("empty", "An empty keyring is valid and trusts nobody.", r, String::new(), vec![]),
        ("comments-and-blank-lines", "Blank lines, `#` comments, an indented comment, a tab-indented directive.", r, format!("# senders\n\n   # indented comment\n\ttrust alice {alice}\n"), vec![]),
        ("crlf", "CRLF line ends read like LF.", r, format!("trust alice {alice} valid-from=1800000000\r\ntrust carol {carol}\r\n"), vec![]),
        ("same-key-twice", "The same key on two trust lines (under two names): a key is trusted on at most one line.", r, format!("trust alice {alice} valid-until=1900000000\ntrust alice-2 {alice} valid-from=1700000000\n"), vec![]),
        ("revoke-upper-case", "revoke with upper-case hex digits; a revoked key that is also trusted stays in the list and is refused by §2 step 1.", r, format!("trust alice {alice}\nrevoke {}\n", alice_id.to_uppercase()), vec![alice_id.clone()]),
        ("unknown-directive", "A line with an unknown directive: the whole keyring is refused.", r, format!("trust alice {alice}\ndistrust carol\n"), vec![]),
        ("option-twice", "valid-from given twice on one line (options at most once each).", r, format!("trust alice {alice} valid-from=1 valid-from=2\n"), vec![]),
        ("until-not-after-from", "valid-until equal to valid-from.", r, format!("trust alice {alice} valid-from=5 valid-until=5\n"), vec![]),
        ("unknown-option", "An unknown option.", r, format!("trust alice {alice} valid-after=5\n"), vec![]),
        ("missing-key", "A trust line without its key.", r, "trust alice\n".into(), vec![]),
        ("short-key-id", "revoke with 31 hex digits.", r, format!("revoke {}\n", &alice_id[..31]), vec![]),
        ("revoke-trailing-word", "revoke with a word after the key id.", r, format!("revoke {alice_id} now\n"), vec![]),
        ("non-canonical-key", "alice's identity with bit 255 of its X25519 key set (checksum correct): not the one encoding (envelope-v3.md §2.1), so the keyring is refused.", "keyring.md §3; envelope-v3.md §2.1", format!("trust alice {x_high_alice}\n"), vec![]),
        ("secret-key", "A secret identity string where a public one belongs.", r, format!("trust alice {}\n", cast_identity("alice").to_secret_string().as_str()), vec![]),
    ]
}

pub(super) fn file() -> Value {
    let valid = [
        "empty",
        "comments-and-blank-lines",
        "crlf",
        "revoke-upper-case",
    ];
    let cases: Vec<Value> = cases()
        .into_iter()
        .map(|(name, description, rule, text, revoked)| {
            let parsed = Keyring::parse(&text);
            assert_eq!(parsed.is_ok(), valid.contains(&name), "keyring-text/{name}");
            let mut v = json!({
                "name": name,
                "description": description,
                "rule": rule,
                "text": text,
                "expect": if parsed.is_ok() { "ok" } else { "invalid" },
            });
            if let Ok(ring) = parsed {
                v["trusted"] = describe(&ring);
                v["revoked"] = json!(revoked);
            }
            v
        })
        .collect();
    json!({
        "format": FORMAT,
        "family": "keys/keyring-text",
        "description": "Keyring files: accepted with the keyring they describe, or refused as a whole.",
        "spec": "spec/keyring.md §3, spec/envelope-v3.md §2.4",
        "license": "CC0-1.0",
        "cases": cases,
    })
}

pub(super) fn verify_case(case: &Value) -> Result<(), String> {
    let text = case["text"].as_str().ok_or("text")?;
    let want = case["expect"].as_str().ok_or("expect")?;
    match (Keyring::parse(text), want) {
        (Err(_), "invalid") => Ok(()),
        (Ok(ring), "ok") => {
            if describe(&ring) != case["trusted"] {
                return Err(format!("trusted keys {} differ", describe(&ring)));
            }
            for id in case["revoked"].as_array().ok_or("revoked")? {
                let id = KeyId::from_hex(id.as_str().ok_or("revoked id")?).ok_or("hex")?;
                if !ring.is_revoked(&id) {
                    return Err(format!("{id} is not revoked"));
                }
            }
            Ok(())
        }
        (Ok(_), _) => Err(format!("accepted, expected {want}")),
        (Err(e), _) => Err(format!("refused ({e}), expected {want}")),
    }
}
