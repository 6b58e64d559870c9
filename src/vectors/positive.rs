//! Positive vectors: envelopes made by the real [`Sealer`] from fixed inputs, with every
//! intermediate value, and the receivers that open them.

use serde_json::{json, Map, Value};

use super::{
    bytes, det, file_key, first_difference, hx, keys_json, num, opener_from_json, outcome, CastKey,
    Receiver, ScriptRng, FORMAT, T0,
};
use crate::envelope::{self, DecodeLimits, Envelope, Metadata};
use crate::keys::Recipient;
use crate::seal::{Inline, Sealer, SealerConfig};
use crate::session::{self, Block, Header};
use crate::suite::Mode;

/// One RNG draw: spec §5.2's name, and the session, recipient or message it belongs to.
#[derive(Clone)]
struct Draw {
    name: String,
    session: Option<u64>,
    recipient: Option<u64>,
    message: Option<u64>,
    value: Vec<u8>,
}

struct MsgIn {
    now: u64,
    payload: Vec<u8>,
    metadata: Metadata,
}

/// Everything a positive case is made from.
struct Inputs {
    sender: String,
    recipients: Vec<String>,
    mode: Mode,
    inline: Inline,
    lifetime: u64,
    max_messages: u64,
    max_bytes: u64,
    allow_mac_to_group: bool,
    draws: Vec<Draw>,
    messages: Vec<MsgIn>,
    receivers: Vec<Value>,
}

fn inline_str(i: Inline) -> &'static str {
    match i {
        Inline::Always => "always",
        Inline::FirstMessage => "first_message",
        Inline::Never => "never",
    }
}

fn meta(pairs: &[(&str, &str)]) -> Metadata {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// How a generated case is described before its RNG script is planned.
struct Spec {
    name: &'static str,
    description: &'static str,
    mode: Mode,
    to: &'static [&'static str],
    inline: Inline,
    max_messages: u64,
    allow_mac_to_group: bool,
    messages: Vec<MsgIn>,
    receivers: Vec<Receiver>,
}

impl Spec {
    fn new(
        name: &'static str,
        description: &'static str,
        mode: Mode,
        to: &'static [&'static str],
    ) -> Spec {
        Spec {
            name,
            description,
            mode,
            to,
            inline: Inline::Always,
            max_messages: 1 << 32,
            allow_mac_to_group: false,
            messages: vec![],
            receivers: to
                .iter()
                .filter(|n| ["bob", "carol", "dave"].contains(n))
                .map(|n| Receiver::new(n))
                .collect(),
        }
    }

    fn msg(mut self, now: u64, payload: &[u8], m: &[(&str, &str)]) -> Spec {
        self.messages.push(MsgIn {
            now,
            payload: payload.to_vec(),
            metadata: meta(m),
        });
        self
    }

    /// The sealer's suite for this recipient list (spec §5.6).
    fn suite_is_pq(&self) -> bool {
        let recipients: Vec<Recipient> = self
            .to
            .iter()
            .map(|n| match super::cast_key(n) {
                CastKey::Identity(i) => Recipient::from(i.public()),
                CastKey::Group(g) => Recipient::Group(g.public().clone()),
                CastKey::Symmetric(k) => Recipient::Symmetric(k),
            })
            .collect();
        recipients.iter().all(Recipient::is_post_quantum)
            && recipients.iter().any(Recipient::is_asymmetric)
    }

    /// Plans the RNG script: the draws the sealer makes, in the order of spec §5.2.
    fn inputs(self, file: &str) -> Inputs {
        const LIFETIME: u64 = 3600;
        const MAX_BYTES: u64 = 1 << 40;
        let mut draws = Vec::new();
        let mut session: Option<(u64, u64, u64, u64)> = None; // (index, next seq, bytes, start)
        let mut sessions = 0u64;
        for (j, m) in self.messages.iter().enumerate() {
            let len = m.payload.len() as u64;
            let usable = session.is_some_and(|(_, seq, b, start)| {
                seq < self.max_messages
                    && b + len <= MAX_BYTES
                    && m.now >= start
                    && m.now < start + LIFETIME
            });
            if !usable {
                let s = sessions;
                sessions += 1;
                let label = |n: &str| format!("{file}/{}/session {s}/{n}", self.name);
                let mut d = |name: &str, recipient: Option<u64>, n: usize| {
                    let full = match recipient {
                        Some(i) => format!("{name} {i}"),
                        None => name.to_owned(),
                    };
                    draws.push(Draw {
                        name: name.into(),
                        session: Some(s),
                        recipient,
                        message: None,
                        value: det(&label(&full), n),
                    });
                };
                d("session_id", None, 16);
                if self.mode.encrypts() {
                    d("ek", None, 32);
                }
                if self.mode == Mode::Mac {
                    d("sk", None, 32);
                }
                if self.mode.signs() {
                    d("signing_seed", None, 32);
                }
                // spec §5.6: suite 2 when every identity and group recipient has an
                // X-Wing key; its wraps draw X-Wing's 64 bytes of `eseed` (§5.2).
                let pq = self.suite_is_pq();
                for (i, r) in self.to.iter().enumerate() {
                    match super::cast_key(r) {
                        CastKey::Symmetric(_) => d("salt", Some(i as u64), 16),
                        _ if pq => d("eseed", Some(i as u64), 64),
                        _ => d("ikm_e", Some(i as u64), 32),
                    }
                }
                session = Some((s, 0, 0, m.now));
            }
            let (s, seq, b, start) = session.expect("set");
            session = Some((s, seq + 1, b + len, start));
            draws.push(Draw {
                name: "nonce".into(),
                session: None,
                recipient: None,
                message: Some(j as u64),
                value: det(&format!("{file}/{}/message {j}/nonce", self.name), 16),
            });
        }
        Inputs {
            sender: "alice".into(),
            recipients: self.to.iter().map(|s| (*s).to_owned()).collect(),
            mode: self.mode,
            inline: self.inline,
            lifetime: LIFETIME,
            max_messages: self.max_messages,
            max_bytes: MAX_BYTES,
            allow_mac_to_group: self.allow_mac_to_group,
            draws,
            messages: self.messages,
            receivers: self.receivers.iter().map(Receiver::to_json).collect(),
        }
    }
}

const PAYLOAD: &[u8] = b"{\"sku\": 42, \"warehouse\": \"north\"}";

fn rpc_meta() -> Vec<(&'static str, &'static str)> {
    vec![
        ("content-type", "application/json"),
        ("method", "inventory.get"),
        ("msg-id", "0001"),
    ]
}

fn specs() -> Vec<(&'static str, &'static str, Vec<Spec>)> {
    let rm = rpc_meta();
    let mut modes = vec![];
    for (name, mode, what) in [
        ("signed-1to1-inline", Mode::Signed, "Signed mode (1): payload encrypted under EK, message signed by the session key."),
        ("mac-1to1-inline", Mode::Mac, "MAC mode (2): payload encrypted under EK, one 16-byte BLAKE3 tag for the single recipient, no list tag. This is the case walked through in spec/worked-example.md."),
        ("sign-only-1to1-inline", Mode::SignOnly, "Sign-only mode (3): payload in clear, message signed by the session key; the wrap carries no key."),
    ] {
        modes.push(Spec::new(name, what, mode, &["bob"]).msg(T0, PAYLOAD, &rm));
    }

    let mut recipients = vec![];
    for (name, mode) in [
        ("signed-3-recipients", Mode::Signed),
        ("mac-3-recipients", Mode::Mac),
    ] {
        recipients.push(
            Spec::new(name, "Three service recipients (bob, carol, dave); each opens the same envelope. In MAC mode the authenticator is three tags and a list tag.", mode, &["bob", "carol", "dave"])
                .msg(T0, PAYLOAD, &rm),
        );
    }
    let mut group_rx = Receiver::new("bob");
    group_rx.identities = vec![];
    group_rx.group_keys = vec!["team"];
    let mut g = Spec::new("signed-group-key", "Signed mode to a group key (team): any holder of the group secret opens it; the signature proves the sender.", Mode::Signed, &["team"]).msg(T0, PAYLOAD, &rm);
    g.receivers = vec![group_rx.clone()];
    recipients.push(g);
    let mut g = Spec::new("mac-group-key-dangerous-opt-in", "MAC mode to a group key, allowed only because both sides opt in (SealerConfig::dangerous_allow_mac_to_group, Policy::dangerous_accept_mac_via_group_key; spec §6.4).", Mode::Mac, &["team"]).msg(T0, PAYLOAD, &rm);
    g.allow_mac_to_group = true;
    let mut opt = group_rx.clone();
    opt.mac_via_group = true;
    g.receivers = vec![opt];
    recipients.push(g);
    let mut sym_rx = Receiver::new("bob");
    sym_rx.identities = vec![];
    sym_rx.symmetric_keys = vec!["vault"];
    let mut s = Spec::new("mac-symmetric-key", "MAC mode to a symmetric recipient key (vault, kind 2, spec §5.5): salted, committing AEAD wrap instead of HPKE. Every holder of the key can forge towards the others, so both sides opt in as for a group key (SealerConfig::dangerous_allow_mac_to_group, Policy::dangerous_accept_mac_via_group_key; spec §6.4).", Mode::Mac, &["vault"]).msg(T0, PAYLOAD, &rm);
    s.allow_mac_to_group = true;
    let mut opt = sym_rx.clone();
    opt.mac_via_group = true;
    s.receivers = vec![opt];
    recipients.push(s);
    let mut s = Spec::new("signed-mixed-recipients", "Signed mode to a service (bob), a group key (team) and a symmetric key (vault): entries of kind 1, 1 and 2; each receiver finds its own entry.", Mode::Signed, &["bob", "team", "vault"]).msg(T0, PAYLOAD, &rm);
    s.receivers = vec![Receiver::new("bob"), group_rx, sym_rx];
    recipients.push(s);

    let mut sessions = vec![];
    for (name, mode, inline, what) in [
        ("mac-by-reference", Mode::Mac, Inline::FirstMessage, "Inline::FirstMessage: message 0 carries the session block, messages 1 and 2 refer to it by session_ref only (field 3 is nil). The receiver opens them in order."),
        ("signed-by-reference", Mode::Signed, Inline::FirstMessage, "As mac-by-reference, in signed mode."),
        ("signed-inline-sequence", Mode::Signed, Inline::Always, "Three messages of one session, each carrying the block: the receiver establishes the session once and finds it in its cache after."),
    ] {
        let mut s = Spec::new(name, what, mode, &["bob"])
            .msg(T0, b"request 0", &[("method", "counter.add"), ("msg-id", "0")])
            .msg(T0 + 1, b"request 1", &[("method", "counter.add"), ("msg-id", "1")])
            .msg(T0 + 2, b"request 2", &[("method", "counter.add"), ("msg-id", "2")]);
        s.inline = inline;
        sessions.push(s);
    }
    let mut s = Spec::new("mac-rotation-at-message-limit", "A session limited to 2 messages (max_messages = 2): the third message starts a second session, so the RNG script has a second set of session draws before its nonce.", Mode::Mac, &["bob"])
        .msg(T0, b"a", &[])
        .msg(T0, b"b", &[])
        .msg(T0, b"c", &[]);
    s.inline = Inline::FirstMessage;
    s.max_messages = 2;
    sessions.push(s);

    let large: Vec<u8> = (0..65536u32).map(|i| (i % 251) as u8).collect();
    let many: Vec<(String, String)> = (0..16)
        .map(|i| (format!("k{i:02}"), format!("value {i}")))
        .collect();
    let mut long_meta: Vec<(&str, &str)> =
        many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    long_meta.push(("reply-to", "rpc.replies.ünïcødé.0123456789abcdef"));
    let payloads = vec![
        Spec::new("signed-empty-payload-no-metadata", "An empty payload (the body is the 16-byte AEAD tag alone) and an empty metadata map (0x80).", Mode::Signed, &["bob"]).msg(T0, b"", &[]),
        Spec::new("mac-empty-payload", "An empty payload in MAC mode.", Mode::Mac, &["bob"]).msg(T0, b"", &[("method", "ping")]),
        Spec::new("sign-only-empty-payload", "An empty payload in sign-only mode: the body is an empty bin (0xc4 0x00).", Mode::SignOnly, &["bob"]).msg(T0, b"", &[]),
        Spec::new("mac-64kib-payload", "A 65536-byte payload (byte i is i mod 251): the body is 65552 bytes, so its length needs bin 32 (0xc6).", Mode::Mac, &["bob"]).msg(T0, &large, &rm),
        {
            let s = Spec::new("signed-17-metadata-entries", "17 metadata entries (map 16, 0xde 0x00 0x11), sorted bytewise, with a non-ASCII value of more than 31 bytes (str 8).", Mode::Signed, &["bob"]);
            s.msg(T0, PAYLOAD, &long_meta)
        },
    ];
    vec![
        (
            "modes",
            "One message in each mode, 1:1, session block inline, with metadata.",
            modes,
        ),
        (
            "recipients",
            "Several recipients, group keys, symmetric recipient keys.",
            recipients,
        ),
        (
            "sessions",
            "Sequences of messages in one session; sessions by reference; rotation.",
            sessions,
        ),
        (
            "payloads",
            "Empty and large payloads, no metadata and many metadata entries.",
            payloads,
        ),
    ]
}

/// Suite 2 (issue 15): sessions whose identity and group recipients all have an X-Wing key,
/// and the fallback to suite 1 when one does not (spec §5.6).
fn pq_specs() -> Vec<Spec> {
    let rm = rpc_meta();
    let bob = || Receiver::new_pq("bob-pq");
    let mut out = vec![];
    for (name, mode, what) in [
        ("signed-1to1-xwing", Mode::Signed, "Signed mode to bob-pq: suite 2, one kind-3 entry (X-Wing wrap, enc of 1120 bytes)."),
        ("mac-1to1-xwing", Mode::Mac, "MAC mode to bob-pq: suite 2; the MAC key is derived with bob-pq's X-Wing recipient id."),
        ("sign-only-1to1-xwing", Mode::SignOnly, "Sign-only mode to bob-pq: suite 2; the X-Wing wrap carries no key."),
    ] {
        let mut s = Spec::new(name, what, mode, &["bob-pq"]).msg(T0, PAYLOAD, &rm);
        let mut strict = bob();
        strict.suites = vec![2];
        s.receivers = vec![bob(), strict];
        out.push(s);
    }
    let mut group_rx = Receiver::new_pq("bob-pq");
    group_rx.identities = vec![];
    group_rx.group_keys = vec!["team-pq"];
    let mut sym_rx = Receiver::new_pq("bob-pq");
    sym_rx.identities = vec![];
    sym_rx.symmetric_keys = vec!["vault"];
    let mut s = Spec::new("signed-mixed-kinds-xwing", "Signed mode to bob-pq, carol-pq, the group key team-pq and the symmetric key vault: suite 2 with entries of kind 3, 3, 3 and 2 (a 256-bit symmetric key is fine in a post-quantum session, spec §5.6). Each receiver finds its own entry.", Mode::Signed, &["bob-pq", "carol-pq", "team-pq", "vault"]).msg(T0, PAYLOAD, &rm);
    s.receivers = vec![bob(), Receiver::new_pq("carol-pq"), group_rx, sym_rx];
    out.push(s);
    let mut s = Spec::new("mac-by-reference-xwing", "MAC mode to bob-pq and carol-pq, Inline::FirstMessage: message 0 carries the suite-2 block, messages 1 and 2 refer to it (their envelopes say suite 2). The per-message work is suite 1's.", Mode::Mac, &["bob-pq", "carol-pq"])
        .msg(T0, b"request 0", &[("method", "counter.add")])
        .msg(T0 + 1, b"request 1", &[("method", "counter.add")])
        .msg(T0 + 2, b"request 2", &[("method", "counter.add")]);
    s.inline = Inline::FirstMessage;
    s.receivers = vec![bob(), Receiver::new_pq("carol-pq")];
    out.push(s);
    let mut s = Spec::new("signed-mixed-falls-back-to-suite-1", "Signed mode to bob-pq and the classical dave: dave has no X-Wing key, so the session is suite 1 and bob-pq is reached through its X25519 key (kind 1). (pq/negative's downgrade cases show a receiver that requires suite 2 refusing such a session).", Mode::Signed, &["bob-pq", "dave"]).msg(T0, PAYLOAD, &rm);
    s.receivers = vec![bob(), Receiver::new_pq("dave")];
    out.push(s);
    out
}

/// `v3/pq/positive/suite-2.json`.
pub(super) fn pq_file() -> Value {
    build_file(
        "pq/positive",
        "pq",
        "Suite 2 (issue 15): X-Wing wraps for every identity and group recipient, with symmetric recipients beside them; and the fallback to suite 1 when a recipient has no X-Wing key.",
        super::keys_json_pq(),
        pq_specs(),
    )
}

fn build_file(
    family: &str,
    file: &'static str,
    description: &str,
    keys: Value,
    specs: Vec<Spec>,
) -> Value {
    let mut f = json!({
        "format": FORMAT,
        "family": family,
        "description": description,
        "spec": "spec/envelope-v3.md",
        "license": "CC0-1.0",
        "keys": keys,
        "cases": [],
    });
    let cases: Vec<Value> = specs
        .into_iter()
        .map(|s| {
            let name = s.name;
            let description = s.description;
            let inputs = s.inputs(file);
            let v = run(&f, name, description, &inputs)
                .unwrap_or_else(|e| panic!("{family}/{name}: {e}"));
            let all_ok = v["receivers"].as_array().is_some_and(|rs| {
                rs.iter().all(|r| {
                    r["opens"]
                        .as_array()
                        .is_some_and(|o| o.iter().all(|x| x["expect"] == "ok"))
                })
            });
            assert!(all_ok, "{family}/{name}: a receiver rejects a message");
            v
        })
        .collect();
    f["cases"] = Value::Array(cases);
    f
}

pub(super) fn files() -> Vec<(&'static str, Value)> {
    specs()
        .into_iter()
        .map(|(file, description, specs)| {
            let mut f = json!({
                "format": FORMAT,
                "family": format!("positive/{file}"),
                "description": description,
                "spec": "spec/envelope-v3.md",
                "license": "CC0-1.0",
                "keys": keys_json(),
                "cases": [],
            });
            let cases: Vec<Value> = specs
                .into_iter()
                .map(|s| {
                    let name = s.name;
                    let description = s.description;
                    let inputs = s.inputs(file);
                    let v = run(&f, name, description, &inputs)
                        .unwrap_or_else(|e| panic!("positive/{file}/{name}: {e}"));
                    let all_ok = v["receivers"].as_array().is_some_and(|rs| {
                        rs.iter().all(|r| {
                            r["opens"]
                                .as_array()
                                .is_some_and(|o| o.iter().all(|x| x["expect"] == "ok"))
                        })
                    });
                    assert!(
                        all_ok,
                        "positive/{file}/{name}: a receiver rejects a message"
                    );
                    v
                })
                .collect();
            f["cases"] = Value::Array(cases);
            (file, f)
        })
        .collect()
}

fn draw_json(d: &Draw) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), d.name.clone().into());
    if let Some(s) = d.session {
        m.insert("session".into(), s.into());
    }
    if let Some(r) = d.recipient {
        m.insert("recipient".into(), r.into());
    }
    if let Some(j) = d.message {
        m.insert("message".into(), j.into());
    }
    m.insert("value".into(), hx(&d.value).into());
    Value::Object(m)
}

pub(super) fn recipient_of(file: &Value, name: &str) -> Result<Recipient, String> {
    Ok(match file_key(file, name)? {
        CastKey::Identity(i) => Recipient::from(i.public()),
        CastKey::Group(g) => Recipient::Group(g.public().clone()),
        CastKey::Symmetric(k) => Recipient::Symmetric(k),
    })
}

fn limits() -> DecodeLimits {
    DecodeLimits {
        max_metadata_entries: usize::MAX,
        max_metadata_bytes: usize::MAX,
    }
}

/// Seals, explains and opens a case: the whole case as JSON.
fn run(file: &Value, name: &str, description: &str, c: &Inputs) -> Result<Value, String> {
    let sender = match file_key(file, &c.sender)? {
        CastKey::Identity(i) => i,
        _ => return Err("the sender is not an identity".into()),
    };
    let recipients: Vec<Recipient> = c
        .recipients
        .iter()
        .map(|n| recipient_of(file, n))
        .collect::<Result<_, _>>()?;
    let mut config = SealerConfig::new(c.mode)
        .lifetime(std::time::Duration::from_secs(c.lifetime))
        .max_messages(c.max_messages)
        .max_bytes(c.max_bytes)
        .inline(c.inline);
    if c.allow_mac_to_group {
        config = config.dangerous_allow_mac_to_group();
    }
    let mut sealer = Sealer::new(&sender, &recipients, config).map_err(|e| e.to_string())?;
    let mut rng = ScriptRng::new(
        c.draws
            .iter()
            .map(|d| (d.name.clone(), d.value.clone()))
            .collect(),
    );
    let mut envelopes = Vec::new();
    for m in &c.messages {
        envelopes.push(
            sealer
                .seal_deterministic(&m.payload, &m.metadata, m.now, &mut rng)
                .map_err(|e| e.to_string())?,
        );
    }
    if !rng.left().is_empty() {
        return Err(format!(
            "RNG draws not used by the sealer: {:?}",
            rng.left()
        ));
    }

    // The sessions, from the envelopes that carry their blocks.
    let mut sessions: Vec<Value> = Vec::new();
    let mut current: Option<(u64, SessionKeys)> = None;
    let mut messages = Vec::new();
    for (m, env_bytes) in c.messages.iter().zip(&envelopes) {
        let env = Envelope::decode(env_bytes, &limits()).map_err(|e| e.to_string())?;
        if let Some(block) = env.block {
            let fresh = current
                .as_ref()
                .is_none_or(|(_, k)| session::session_ref(&k.header_hash) != env.session_ref);
            if fresh {
                let index = sessions.len() as u64;
                let (v, keys) = explain_session(file, c, index, block)?;
                sessions.push(v);
                current = Some((index, keys));
            }
        }
        let (index, keys) = current
            .as_ref()
            .ok_or("a message before any session block")?;
        messages.push(json!({
            "now": m.now,
            "payload": hx(&m.payload),
            "metadata": m.metadata,
            "envelope": hx(env_bytes),
            "intermediate": explain_message(*index, keys, &env),
        }));
    }

    let mut receivers = Vec::new();
    for r in &c.receivers {
        let opener = opener_from_json(file, r)?;
        let mut opens = Vec::new();
        for (j, (m, env)) in c.messages.iter().zip(&envelopes).enumerate() {
            let got = opener.open_at(env, m.now);
            if let Ok(o) = &got {
                if o.payload != m.payload || o.metadata != m.metadata || o.sender != sender.key_id()
                {
                    return Err(format!("message {j} opened to something else"));
                }
            }
            opens.push(json!({"message": j, "now": m.now, "expect": outcome(&got)}));
        }
        receivers.push(json!({"receiver": r, "opens": opens}));
    }

    Ok(json!({
        "name": name,
        "description": description,
        "sender": c.sender,
        "recipients": c.recipients,
        "sealer": {
            "mode": c.mode.as_str(),
            "lifetime": c.lifetime,
            "max_messages": c.max_messages,
            "max_bytes": c.max_bytes,
            "inline": inline_str(c.inline),
            "dangerous_allow_mac_to_group": c.allow_mac_to_group,
        },
        "rng": c.draws.iter().map(draw_json).collect::<Vec<_>>(),
        "sessions": sessions,
        "messages": messages,
        "receivers": receivers,
    }))
}

/// What the explanation of a message needs of its session.
struct SessionKeys {
    mode: Mode,
    header_hash: [u8; 32],
    ek: Option<[u8; 32]>,
    mac_keys: Vec<[u8; 32]>,
}

fn find_draw<'a>(
    c: &'a Inputs,
    session: u64,
    name: &str,
    recipient: Option<u64>,
) -> Option<&'a [u8]> {
    c.draws
        .iter()
        .find(|d| d.session == Some(session) && d.name == name && d.recipient == recipient)
        .map(|d| &d.value[..])
}

fn arr32(b: Option<&[u8]>) -> Option<[u8; 32]> {
    b.and_then(|b| b.try_into().ok())
}

fn explain_session(
    file: &Value,
    c: &Inputs,
    s: u64,
    block_bytes: &[u8],
) -> Result<(Value, SessionKeys), String> {
    let block = Block::decode(block_bytes, usize::MAX).map_err(|e| e.to_string())?;
    let (header_bytes, hh) = crate::forge::block_header(block_bytes);
    let h: &Header = &block.header;
    let ek = arr32(find_draw(c, s, "ek", None));
    let sk = arr32(find_draw(c, s, "sk", None));
    let seed = arr32(find_draw(c, s, "signing_seed", None));
    let mut v = Map::new();
    v.insert("session".into(), s.into());
    v.insert("header".into(), hx(&header_bytes).into());
    v.insert(
        "header_fields".into(),
        json!({
            "version": 3,
            "suite": h.suite.id(),
            "mode": h.mode.to_wire(),
            "sender": hx(h.sender.as_bytes()),
            "session_id": hx(&h.session_id),
            "not_before": h.not_before,
            "expires": h.expires,
            "max_messages": h.max_messages,
            "max_bytes": h.max_bytes,
            "verify_key": hx(h.verify_key.as_ref().map_or(&[][..], |k| &k[..])),
            "ek_commitment": hx(h.ek_commitment.as_ref().map_or(&[][..], |k| &k[..])),
        }),
    );
    v.insert("header_hash".into(), hx(&hh).into());
    v.insert("session_ref".into(), hx(&session::session_ref(&hh)).into());
    if let Some(ek) = &ek {
        v.insert("ek".into(), hx(ek).into());
        v.insert(
            "ek_commitment".into(),
            hx(&session::ek_commitment(ek)).into(),
        );
    }
    if let Some(sk) = &sk {
        v.insert("sk".into(), hx(sk).into());
        if let Some(ek) = &ek {
            v.insert(
                "mac_list_key".into(),
                hx(&envelope::list_key(ek)[..]).into(),
            );
        }
    }
    if let Some(seed) = &seed {
        let k = ed25519_dalek::SigningKey::from_bytes(seed);
        v.insert("signing_seed".into(), hx(seed).into());
        v.insert(
            "verify_key".into(),
            hx(&k.verifying_key().to_bytes()).into(),
        );
    }
    let rh = crate::hash::h(crate::hash::CTX_RECIPIENTS, &[block.recipients_bytes]);
    let mut sig_input = crate::hash::SIG_LABEL_SESSION.to_vec();
    sig_input.extend_from_slice(&hh);
    sig_input.extend_from_slice(&rh);
    v.insert("recipients_bytes".into(), hx(block.recipients_bytes).into());
    v.insert("recipients_hash".into(), hx(&rh).into());
    v.insert("block_signature_input".into(), hx(&sig_input).into());
    v.insert("block_signature".into(), hx(&block.signature).into());
    let mut entries = Vec::new();
    let mut mac_keys = Vec::new();
    for (i, e) in block.entries.iter().enumerate() {
        let mut m = Map::new();
        m.insert("index".into(), i.into());
        m.insert("recipient".into(), c.recipients[i].clone().into());
        m.insert("kind".into(), e.kind.into());
        m.insert("key_id".into(), hx(e.key_id.as_bytes()).into());
        let aad = session::wrap_aad(&hh, i as u32);
        m.insert("aad".into(), hx(&aad).into());
        let mut pt = Vec::new();
        if let Some(ek) = &ek {
            pt.extend_from_slice(ek);
        }
        if let Some(sk) = &sk {
            let mk = *session::mac_key(sk, i as u32, &e.key_id);
            m.insert("mac_key".into(), hx(&mk).into());
            pt.extend_from_slice(&mk);
            mac_keys.push(mk);
        }
        m.insert("wrap_plaintext".into(), hx(&pt).into());
        match super::file_key(file, &c.recipients[i])? {
            CastKey::Symmetric(k) => {
                let salt = find_draw(c, s, "salt", Some(i as u64)).ok_or("no salt draw")?;
                let commit = crate::hash::h(crate::hash::CTX_SYM_COMMIT, &[k.secret(), salt]);
                let kw = crate::hash::h(crate::hash::CTX_SYM_WRAP, &[k.secret(), salt]);
                m.insert("salt".into(), hx(salt).into());
                m.insert("commit".into(), hx(&commit[..16]).into());
                m.insert("wrap_key".into(), hx(&kw).into());
            }
            CastKey::Identity(_) | CastKey::Group(_) if e.kind == session::KIND_XWING => {
                let eseed = find_draw(c, s, "eseed", Some(i as u64)).ok_or("no eseed draw")?;
                let seed = match super::file_key(file, &c.recipients[i])? {
                    CastKey::Identity(id) => *id.xwing_secret().ok_or("no X-Wing key")?.seed(),
                    CastKey::Group(g) => *g.xwing_secret().ok_or("no X-Wing key")?.seed(),
                    CastKey::Symmetric(_) => return Err("a symmetric key in a kind-3 entry".into()),
                };
                m.insert("eseed".into(), hx(eseed).into());
                m.insert(
                    "xwing_shared_secret".into(),
                    hx(&crate::xwing::xwing_shared_secret(&seed, e.enc)?).into(),
                );
            }
            _ => {
                let ikm = find_draw(c, s, "ikm_e", Some(i as u64)).ok_or("no ikm_e draw")?;
                let (clamped, pk_e) = session::hpke_derive_keypair(ikm);
                let sk_e = derive_key_pair_sk(ikm);
                if curve25519_dalek::scalar::clamp_integer(sk_e) != clamped {
                    return Err(format!("entry {i}: the hpke crate's sk is not clamp(sk)"));
                }
                if pk_e[..] != e.enc[..] {
                    return Err(format!("entry {i}: enc is not DeriveKeyPair(ikm_e).pk"));
                }
                m.insert("ikm_e".into(), hx(ikm).into());
                m.insert("ephemeral_secret".into(), hx(&sk_e).into());
            }
        }
        m.insert("enc".into(), hx(e.enc).into());
        m.insert("wrapped".into(), hx(e.wrapped).into());
        entries.push(Value::Object(m));
    }
    v.insert("entries".into(), Value::Array(entries));
    v.insert("block".into(), hx(block_bytes).into());
    Ok((
        Value::Object(v),
        SessionKeys {
            mode: h.mode,
            header_hash: hh,
            ek,
            mac_keys,
        },
    ))
}

fn explain_message(session: u64, k: &SessionKeys, env: &Envelope<'_>) -> Value {
    let mh = envelope::message_hash(&k.header_hash, env.covered);
    let mut m = Map::new();
    m.insert("session".into(), session.into());
    m.insert("session_block_inline".into(), env.block.is_some().into());
    m.insert("seq".into(), env.seq.into());
    m.insert("timestamp".into(), env.timestamp.into());
    m.insert("nonce".into(), hx(&env.nonce).into());
    if k.ek.is_some() {
        m.insert(
            "aead_nonce".into(),
            hx(&envelope::aead_nonce(env.seq)).into(),
        );
    }
    m.insert("covered_length".into(), env.covered.len().into());
    m.insert("message_hash".into(), hx(&mh).into());
    if k.mode.signs() {
        m.insert(
            "signature_input".into(),
            hx(&envelope::signature_input(&mh)).into(),
        );
    } else {
        let tags: Vec<[u8; 16]> = k
            .mac_keys
            .iter()
            .map(|mk| envelope::mac_tag(mk, &mh))
            .collect();
        m.insert(
            "tags".into(),
            tags.iter().map(|t| hx(t)).collect::<Vec<_>>().into(),
        );
        if tags.len() >= 2 {
            let ak = envelope::list_key(&k.ek.expect("MAC mode encrypts"));
            let all: Vec<u8> = tags.concat();
            m.insert(
                "list_tag".into(),
                hx(&envelope::list_tag(&ak, &mh, &all)).into(),
            );
        }
    }
    m.insert("authenticator".into(), hx(env.authenticator).into());
    Value::Object(m)
}

/// Re-runs a positive case from the inputs in its file and compares everything.
pub(super) fn verify_case(file: &Value, case: &Value) -> Result<(), String> {
    let sealer = &case["sealer"];
    let mode: Mode = sealer["mode"].as_str().ok_or("sealer.mode")?.parse()?;
    let inline = match sealer["inline"].as_str() {
        Some("always") => Inline::Always,
        Some("first_message") => Inline::FirstMessage,
        Some("never") => Inline::Never,
        _ => return Err("sealer.inline".into()),
    };
    let opt = |v: &Value| v.as_u64();
    let draws = case["rng"]
        .as_array()
        .ok_or("rng")?
        .iter()
        .map(|d| {
            Ok(Draw {
                name: d["name"].as_str().ok_or("rng name")?.to_owned(),
                session: opt(&d["session"]),
                recipient: opt(&d["recipient"]),
                message: opt(&d["message"]),
                value: bytes(&d["value"])?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let messages = case["messages"]
        .as_array()
        .ok_or("messages")?
        .iter()
        .map(|m| {
            let metadata = m["metadata"]
                .as_object()
                .ok_or("metadata")?
                .iter()
                .map(|(k, v)| Ok((k.clone(), v.as_str().ok_or("metadata value")?.to_owned())))
                .collect::<Result<Metadata, String>>()?;
            Ok(MsgIn {
                now: num(&m["now"])?,
                payload: bytes(&m["payload"])?,
                metadata,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let names = |v: &Value| -> Result<Vec<String>, String> {
        v.as_array()
            .ok_or("names")?
            .iter()
            .map(|n| {
                n.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| "name".to_string())
            })
            .collect()
    };
    let inputs = Inputs {
        sender: case["sender"].as_str().ok_or("sender")?.to_owned(),
        recipients: names(&case["recipients"])?,
        mode,
        inline,
        lifetime: num(&sealer["lifetime"])?,
        max_messages: num(&sealer["max_messages"])?,
        max_bytes: num(&sealer["max_bytes"])?,
        allow_mac_to_group: sealer["dangerous_allow_mac_to_group"].as_bool() == Some(true),
        draws,
        messages,
        receivers: case["receivers"]
            .as_array()
            .ok_or("receivers")?
            .iter()
            .map(|r| r["receiver"].clone())
            .collect(),
    };
    let got = run(
        file,
        case["name"].as_str().unwrap_or(""),
        case["description"].as_str().unwrap_or(""),
        &inputs,
    )?;
    match first_difference("", &got, case) {
        None => Ok(()),
        Some(d) => Err(d),
    }
}

/// The secret key of RFC 9180 §7.1.3 `DeriveKeyPair(ikm)` for DHKEM(X25519, HKDF-SHA256),
/// as the RFC's test vectors print it: `LabeledExpand(LabeledExtract("", "dkp_prk", ikm),
/// "sk", "", 32)`, not clamped. The hpke crate (0.15) gives the key only clamped (RFC 9180
/// §7.1.2's SerializePrivateKey), which loses the five bits the vectors record.
fn derive_key_pair_sk(ikm: &[u8]) -> [u8; 32] {
    type Hkdf = hkdf::Hkdf<sha2::Sha256>;
    // suite_id = "KEM" || I2OSP(kem_id = 0x0020, 2) (RFC 9180 §4.1).
    const PREFIX: &[u8] = b"HPKE-v1KEM\x00\x20";
    let labeled_ikm = [PREFIX, b"dkp_prk", ikm].concat();
    let (_, prk) = Hkdf::extract(Some(b""), &labeled_ikm);
    let labeled_info = [&32u16.to_be_bytes()[..], PREFIX, b"sk"].concat();
    let mut sk = [0u8; 32];
    prk.expand(&labeled_info, &mut sk)
        .expect("32 bytes is within HKDF-SHA256's output limit");
    sk
}
