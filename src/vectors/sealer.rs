//! `v3/sealer/refusals.json`: what a sealer MUST refuse (spec/envelope-v3.md §5.6, §6.4),
//! with controls it must accept. A vector kind of its own:
//! `{name, description, rule, sender, recipients, sealer, payload_length, expect}`.

use serde_json::{json, Value};

use super::{file_key, keys_json, positive::recipient_of, CastKey, FORMAT};
use crate::envelope::Metadata;
use crate::seal::{Sealer, SealerConfig};
use crate::suite::Mode;

struct Case {
    name: &'static str,
    description: &'static str,
    rule: &'static str,
    recipients: Vec<&'static str>,
    mode: &'static str,
    max_messages: u64,
    max_bytes: u64,
    allow_mac_to_group: bool,
    payload_length: Option<u64>,
    expect: &'static str,
}

fn cases() -> Vec<Case> {
    let c = |name, description, rule, recipients: &[&'static str], mode, expect| Case {
        name,
        description,
        rule,
        recipients: recipients.to_vec(),
        mode,
        max_messages: 1 << 32,
        max_bytes: 1 << 40,
        allow_mac_to_group: false,
        payload_length: None,
        expect,
    };
    vec![
        c("mac-to-group", "MAC mode with a group key among the recipients, no opt-in: any member could forge as the sender.", "§6.4", &["bob", "team"], "mac", "refused"),
        Case { allow_mac_to_group: true, ..c("mac-to-group-opted-in", "The same with dangerous_allow_mac_to_group: accepted (control).", "§6.4", &["bob", "team"], "mac", "ok") },
        c("signed-to-group", "Signed mode to a group key: accepted (control).", "§6.4", &["team"], "signed", "ok"),
        c("no-recipients", "A session with no recipient.", "§5.6", &[], "signed", "refused"),
        c("duplicate-recipient", "bob twice.", "§5.6", &["bob", "carol", "bob"], "signed", "refused"),
        c("duplicate-key-id", "Two symmetric keys with one key id (vault and vault-stale): recipients are distinct by key id (§5.3).", "§5.3, §5.6", &["vault", "vault-stale"], "signed", "refused"),
        Case { max_messages: 0, ..c("max-messages-zero", "max_messages = 0.", "§5.1, §5.6", &["bob"], "signed", "refused") },
        Case { max_messages: (1 << 48) + 1, ..c("max-messages-over-2-48", "max_messages = 2^48 + 1.", "§5.1, §5.6", &["bob"], "signed", "refused") },
        Case { max_messages: 1 << 48, ..c("max-messages-2-48", "max_messages = 2^48: the largest allowed (control).", "§5.1, §5.6", &["bob"], "signed", "ok") },
        Case { max_bytes: 4, payload_length: Some(5), ..c("payload-over-max-bytes", "max_bytes = 4 and a 5-byte payload: no session can carry it.", "§5.6", &["bob"], "signed", "refused") },
        Case { max_bytes: 4, payload_length: Some(4), ..c("payload-at-max-bytes", "max_bytes = 4 and a 4-byte payload (control).", "§5.6", &["bob"], "signed", "ok") },
    ]
}

/// Builds the sealer of a case and seals its payload, if any: `ok` or `refused`.
fn run(file: &Value, case: &Value) -> Result<&'static str, String> {
    let sender = match file_key(file, case["sender"].as_str().ok_or("sender")?)? {
        CastKey::Identity(i) => i,
        _ => return Err("the sender is not an identity".into()),
    };
    let recipients = case["recipients"]
        .as_array()
        .ok_or("recipients")?
        .iter()
        .map(|n| recipient_of(file, n.as_str().ok_or("recipient name")?))
        .collect::<Result<Vec<_>, String>>()?;
    let s = &case["sealer"];
    let mode: Mode = s["mode"]
        .as_str()
        .ok_or("sealer.mode")?
        .parse()
        .map_err(str::to_owned)?;
    let mut config = SealerConfig::new(mode)
        .max_messages(s["max_messages"].as_u64().ok_or("max_messages")?)
        .max_bytes(s["max_bytes"].as_u64().ok_or("max_bytes")?);
    if s["dangerous_allow_mac_to_group"].as_bool() == Some(true) {
        config = config.dangerous_allow_mac_to_group();
    }
    let mut sealer = match Sealer::new(&sender, &recipients, config) {
        Ok(s) => s,
        Err(_) => return Ok("refused"),
    };
    if let Some(n) = case["payload_length"].as_u64() {
        let payload = vec![0x2a; usize::try_from(n).map_err(|_| "payload_length")?];
        if sealer.seal(&payload, &Metadata::new()).is_err() {
            return Ok("refused");
        }
    }
    Ok("ok")
}

pub(super) fn file() -> Value {
    let mut file = json!({
        "format": FORMAT,
        "family": "sealer/refusals",
        "description": "Sealer configurations and payloads a sealer must refuse (and controls it must accept).",
        "spec": "spec/envelope-v3.md §5.6, §6.4",
        "license": "CC0-1.0",
        "keys": keys_json(),
        "cases": [],
    });
    let cases: Vec<Value> = cases()
        .into_iter()
        .map(|c| {
            let mut v = json!({
                "name": c.name,
                "description": c.description,
                "rule": c.rule,
                "sender": "alice",
                "recipients": c.recipients,
                "sealer": {
                    "mode": c.mode,
                    "max_messages": c.max_messages,
                    "max_bytes": c.max_bytes,
                    "dangerous_allow_mac_to_group": c.allow_mac_to_group,
                },
                "expect": c.expect,
            });
            if let Some(n) = c.payload_length {
                v["payload_length"] = json!(n);
            }
            let got = run(&file, &v).expect("well-formed case");
            assert_eq!(got, c.expect, "sealer/{}", c.name);
            v
        })
        .collect();
    file["cases"] = Value::Array(cases);
    file
}

pub(super) fn verify_case(file: &Value, case: &Value) -> Result<(), String> {
    let want = case["expect"].as_str().ok_or("expect")?;
    let got = run(file, case)?;
    if got != want {
        return Err(format!("got {got}, expected {want}"));
    }
    Ok(())
}
