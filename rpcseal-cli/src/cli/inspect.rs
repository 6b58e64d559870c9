//! `rpcseal inspect`: an envelope's cleartext, through [`rpcseal::inspect`], with no key.

use std::fmt::Write as _;
use std::path::Path;

use rpcseal::{Inspection, DEFAULT_MAX_PAYLOAD};
use serde_json::json;

use super::{hex, read_input, rfc3339, Failure, Result};

/// What a reader without keys cannot check, said every time so nobody mistakes the output
/// for a verdict.
const NOT_CHECKED: [&str; 5] = [
    "the session block's signature by the sender's identity",
    "the recipients' key wraps",
    "the message authenticator (signature or MACs) and the payload's AEAD tag",
    "freshness: the timestamp and the session's lifetime against a clock",
    "whether the message was seen before (replay)",
];

pub fn run(input: Option<&Path>, json: bool) -> Result<()> {
    let (bytes, _) = read_input(input, DEFAULT_MAX_PAYLOAD + 1024 * 1024)?;
    let ins = rpcseal::inspect(&bytes)
        .map_err(|e| Failure::rejected(format!("not a valid envelope: {e}")))?;
    if json {
        println!("{}", to_json(&ins));
    } else {
        print!("{}", to_text(&ins));
    }
    Ok(())
}

fn time(secs: u64) -> String {
    format!("{secs} ({})", rfc3339(secs))
}

fn to_text(i: &Inspection) -> String {
    let mut s = String::new();
    let mut line = |k: &str, v: &str| {
        let _ = writeln!(s, "{k:<17} {v}");
    };
    line("version", &i.version.to_string());
    line("suite", &i.suite.to_string());
    match &i.session {
        Some(b) => {
            line("mode", b.mode.as_str());
            line("sender key id", &b.sender.to_string());
            line("session id", &hex(&b.session_id));
            line("session ref", &hex(&i.session_ref));
            line("not before", &time(b.not_before));
            line("expires", &time(b.expires));
            line(
                "session limits",
                &format!("{} messages, {} payload bytes", b.max_messages, b.max_bytes),
            );
            line("recipients", &b.recipients.len().to_string());
            for (n, r) in b.recipients.iter().enumerate() {
                line(&format!("  recipient {n}"), &r.to_string());
            }
        }
        None => {
            line("session ref", &hex(&i.session_ref));
            line(
                "session block",
                "not carried: the receiver must have it already",
            );
        }
    }
    line("sequence number", &i.seq.to_string());
    line("timestamp", &time(i.timestamp));
    if i.metadata.is_empty() {
        line("metadata", "(none)");
    }
    for (k, v) in &i.metadata {
        line("metadata", &format!("{k} = {v}"));
    }
    let block = i.session.as_ref().map_or(0, |b| b.block_len);
    line(
        "sizes",
        &format!(
            "envelope {} bytes: session block {block}, body {}, authenticator {}",
            i.envelope_len, i.body_len, i.authenticator_len
        ),
    );
    let _ = writeln!(s, "\nNothing above is verified. Not checked without keys:");
    for n in NOT_CHECKED {
        let _ = writeln!(s, "  - {n}");
    }
    s
}

fn to_json(i: &Inspection) -> serde_json::Value {
    let session = i.session.as_ref().map(|b| {
        json!({
            "mode": b.mode.as_str(),
            "sender": b.sender.to_string(),
            "session_id": hex(&b.session_id),
            "not_before": b.not_before,
            "not_before_rfc3339": rfc3339(b.not_before),
            "expires": b.expires,
            "expires_rfc3339": rfc3339(b.expires),
            "max_messages": b.max_messages,
            "max_bytes": b.max_bytes,
            "recipients": b.recipients.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "block_len": b.block_len,
        })
    });
    json!({
        "version": i.version,
        "suite": {
            "id": i.suite.id(),
            "name": i.suite.name(),
            "post_quantum": i.suite.is_post_quantum(),
        },
        "session_ref": hex(&i.session_ref),
        "session": session,
        "seq": i.seq,
        "timestamp": i.timestamp,
        "timestamp_rfc3339": rfc3339(i.timestamp),
        "metadata": i.metadata,
        "envelope_len": i.envelope_len,
        "body_len": i.body_len,
        "authenticator_len": i.authenticator_len,
        "verified": false,
        "not_checked": NOT_CHECKED,
    })
}
