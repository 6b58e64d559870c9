//! Negative vectors: envelopes that must be rejected, each valid except for the defect it is
//! named after (re-signed and re-authenticated with the session's real keys wherever the
//! defect is not in the authenticator itself), with the receiver that must reject it.

use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit};
use ed25519_dalek::SigningKey;
use serde_json::{json, Value};

use super::{
    bytes, cast_identity, cast_key, det, det16, det32, hx, keys_json, num, opener_from_json,
    outcome_any, CastKey, Receiver, ScriptRng, FORMAT, T0,
};
use crate::envelope;
use crate::hash::HPKE_INFO;
use crate::keys::{Identity, KeyId};
use crate::session;
use crate::suite::Mode;
use crate::wire;

// ---- raw MessagePack pieces ----------------------------------------------------------------

fn u(v: u64) -> Vec<u8> {
    let mut o = Vec::new();
    wire::put_uint(&mut o, v);
    o
}
fn b(x: &[u8]) -> Vec<u8> {
    let mut o = Vec::new();
    wire::put_bin(&mut o, x);
    o
}
fn s(x: &str) -> Vec<u8> {
    let mut o = Vec::new();
    wire::put_str(&mut o, x);
    o
}
fn arr_hdr(n: usize) -> Vec<u8> {
    let mut o = Vec::new();
    wire::put_array(&mut o, n);
    o
}
fn arr(fields: &[Vec<u8>]) -> Vec<u8> {
    let mut o = arr_hdr(fields.len());
    for f in fields {
        o.extend_from_slice(f);
    }
    o
}
fn map(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut o = Vec::new();
    wire::put_map(&mut o, pairs.len());
    for (k, v) in pairs {
        o.extend(s(k));
        o.extend(s(v));
    }
    o
}
fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}
/// The payload of an encoded `bin` (a field of a plan's entries).
fn bytes_of_bin(field: &[u8]) -> Vec<u8> {
    let mut r = wire::Reader::new(field);
    r.bin().expect("a bin field").to_vec()
}

// ---- sessions built by hand ------------------------------------------------------------------

/// Where a recipient entry is wrapped to.
#[derive(Clone)]
enum Target {
    X(KeyId, [u8; 32]),
    Sym(KeyId, [u8; 32]),
    /// An X-Wing key (suite 2, kind 3): its key id and its 1216 bytes.
    XW(KeyId, Box<[u8; crate::keys::XWING_PUBLIC_LEN]>),
}

/// The target of `name` in a suite-2 session: its X-Wing key, or a symmetric key.
fn target_pq(name: &str) -> Target {
    let xw = |w: &crate::keys::XWingSecret| {
        Target::XW(w.public().key_id(), Box::new(*w.public().as_bytes()))
    };
    match cast_key(name) {
        CastKey::Identity(i) => xw(i.xwing_secret().expect("a post-quantum identity")),
        CastKey::Group(g) => xw(g.xwing_secret().expect("a post-quantum group key")),
        CastKey::Symmetric(k) => Target::Sym(k.key_id(), *k.secret()),
    }
}

fn target(name: &str) -> Target {
    match cast_key(name) {
        CastKey::Identity(i) => Target::X(i.public().recipient_key_id(), i.public().x25519_bytes()),
        CastKey::Group(g) => Target::X(
            g.public().key_id(),
            x25519_dalek::PublicKey::from(g.x25519_secret()).to_bytes(),
        ),
        CastKey::Symmetric(k) => Target::Sym(k.key_id(), *k.secret()),
    }
}

impl Target {
    fn id(&self) -> KeyId {
        match self {
            Target::X(id, _) | Target::Sym(id, _) | Target::XW(id, _) => *id,
        }
    }
}

/// A session under construction: header fields (raw, editable), then entries (raw,
/// editable), then the signed block.
struct Plan {
    label: String,
    /// The suite of the envelopes (field 1); the header's is `header[1]`.
    suite: u64,
    mode: Mode,
    header: Vec<Vec<u8>>,
    to: Vec<Target>,
    ek: [u8; 32],
    sk: [u8; 32],
    signing: SigningKey,
    plaintexts: Vec<Vec<u8>>,
}

impl Plan {
    fn new(label: &str, mode: Mode, to: &[&str]) -> Plan {
        let signing = SigningKey::from_bytes(&det32(&format!("{label}/signing seed")));
        let ek = det32(&format!("{label}/ek"));
        let sk = det32(&format!("{label}/sk"));
        let to: Vec<Target> = to.iter().map(|n| target(n)).collect();
        let vk = signing.verifying_key().to_bytes();
        let commitment = session::ek_commitment(&ek);
        let header = vec![
            u(3),
            u(1),
            u(mode.to_wire()),
            b(cast_identity("alice").key_id().as_bytes()),
            b(&det16(&format!("{label}/session id"))),
            u(T0),
            u(T0 + 3600),
            u(1 << 32),
            u(1 << 40),
            b(if mode.signs() { &vk[..] } else { &[][..] }),
            b(if mode.encrypts() {
                &commitment[..]
            } else {
                &[][..]
            }),
        ];
        let mut p = Plan {
            label: label.into(),
            suite: 1,
            mode,
            header,
            to,
            ek,
            sk,
            signing,
            plaintexts: vec![],
        };
        p.plaintexts = (0..p.to.len()).map(|i| p.plaintext(i)).collect();
        p
    }

    /// A suite-2 session (issue 15): the header and envelopes say suite 2, and each
    /// recipient is its X-Wing key (or a symmetric key).
    fn new_pq(label: &str, mode: Mode, to: &[&str]) -> Plan {
        let mut p = Plan::new(label, mode, to);
        p.suite = 2;
        p.header[1] = u(2);
        p.to = to.iter().map(|n| target_pq(n)).collect();
        p.plaintexts = (0..p.to.len()).map(|i| p.plaintext(i)).collect();
        p
    }

    fn plaintext(&self, i: usize) -> Vec<u8> {
        let mut pt = Vec::new();
        if self.mode.encrypts() {
            pt.extend_from_slice(&self.ek);
        }
        if self.mode == Mode::Mac {
            pt.extend_from_slice(&self.mac_key(i));
        }
        pt
    }

    fn mac_key(&self, i: usize) -> [u8; 32] {
        *session::mac_key(&self.sk, i as u32, &self.to[i].id())
    }

    fn header_bytes(&self) -> Vec<u8> {
        arr(&self.header)
    }

    /// The honest entries for the current header, each as its 4 raw fields.
    fn entries(&self) -> Vec<Vec<Vec<u8>>> {
        let hh = session::header_hash(&self.header_bytes());
        self.to
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let aad = session::wrap_aad(&hh, i as u32);
                let pt = &self.plaintexts[i];
                let (kind, enc, wrapped) = match t {
                    Target::X(_, pk) => {
                        let mut rng = ScriptRng::new(vec![(
                            "ikm_e".into(),
                            det(&format!("{}/ikm_e {i}", self.label), 32),
                        )]);
                        let (enc, w) = session::hpke_seal(pk, HPKE_INFO, &aad, pt, &mut rng)
                            .expect("usable key");
                        (1, enc.to_vec(), w)
                    }
                    Target::Sym(_, k) => {
                        let mut rng = ScriptRng::new(vec![(
                            "salt".into(),
                            det(&format!("{}/salt {i}", self.label), 16),
                        )]);
                        let (enc, w) = session::symmetric_seal(k, &aad, pt, &mut rng);
                        (2, enc.to_vec(), w)
                    }
                    Target::XW(_, pk) => {
                        let mut rng = ScriptRng::new(vec![(
                            "eseed".into(),
                            det(&format!("{}/eseed {i}", self.label), 64),
                        )]);
                        let (enc, w) = session::xwing_seal(pk, HPKE_INFO, &aad, pt, &mut rng)
                            .expect("usable key");
                        (3, enc.to_vec(), w)
                    }
                };
                vec![u(kind), b(t.id().as_bytes()), b(&enc), b(&wrapped)]
            })
            .collect()
    }

    /// Signs the block with `signer` over the given raw recipients list.
    fn seal_raw(&self, recipients: &[u8], signer: &Identity) -> Sess {
        let header = self.header_bytes();
        let block = session::assemble_block(signer.signing_key(), &header, recipients);
        Sess {
            suite: self.suite,
            mode: self.mode,
            hh: session::header_hash(&header),
            block,
            ek: self.ek,
            signing: self.signing.clone(),
            mac_keys: (0..self.to.len()).map(|i| self.mac_key(i)).collect(),
            label: self.label.clone(),
        }
    }

    fn seal_entries(&self, entries: &[Vec<Vec<u8>>]) -> Sess {
        let raw: Vec<Vec<u8>> = entries.iter().map(|e| arr(e)).collect();
        self.seal_raw(&arr(&raw), &cast_identity("alice"))
    }

    fn seal(&self) -> Sess {
        self.seal_entries(&self.entries())
    }
}

/// The raw fields of each recipient entry, editable before the block is signed.
type Entries = Vec<Vec<Vec<u8>>>;

/// A finished session and the keys to authenticate messages in it.
struct Sess {
    suite: u64,
    mode: Mode,
    hh: [u8; 32],
    block: Vec<u8>,
    ek: [u8; 32],
    signing: SigningKey,
    mac_keys: Vec<[u8; 32]>,
    label: String,
}

/// A message under construction: the array header and fields 0 to 8, raw.
#[derive(Clone)]
struct Msg {
    hdr: Vec<u8>,
    f: Vec<Vec<u8>>,
}

const META: &[(&str, &str)] = &[("method", "inventory.get"), ("msg-id", "0001")];
const PAYLOAD: &[u8] = b"{\"sku\": 42}";

impl Sess {
    fn body(&self, seq: u64, payload: &[u8]) -> Vec<u8> {
        let mut body = payload.to_vec();
        if self.mode.encrypts() {
            let tag = ChaCha20Poly1305::new_from_slice(&self.ek[..])
                .expect("a 32-byte key")
                .encrypt_inout_detached(
                    &envelope::aead_nonce(seq).into(),
                    b"",
                    body.as_mut_slice().into(),
                )
                .expect("small");
            body.extend_from_slice(&tag);
        }
        b(&body)
    }

    fn msg_with(
        &self,
        seq: u64,
        ts: u64,
        inline: bool,
        payload: &[u8],
        meta: &[(&str, &str)],
    ) -> Msg {
        Msg {
            hdr: arr_hdr(10),
            f: vec![
                u(3),
                u(self.suite),
                b(&session::session_ref(&self.hh)),
                if inline { b(&self.block) } else { vec![0xc0] },
                u(seq),
                u(ts),
                b(&det16(&format!("{}/nonce {seq} {ts}", self.label))),
                map(meta),
                self.body(seq, payload),
            ],
        }
    }

    fn msg(&self, seq: u64) -> Msg {
        self.msg_with(seq, T0, true, PAYLOAD, META)
    }

    /// The authenticator of spec §6 over these covered bytes.
    fn auth(&self, covered: &[u8]) -> Vec<u8> {
        let mh = envelope::message_hash(&self.hh, covered);
        if self.mode.signs() {
            crate::sign::sign(&self.signing, &envelope::signature_input(&mh)).to_vec()
        } else {
            let mut tags: Vec<u8> = self
                .mac_keys
                .iter()
                .flat_map(|k| envelope::mac_tag(k, &mh))
                .collect();
            if self.mac_keys.len() >= 2 {
                let ak = envelope::list_key(&self.ek);
                let t = envelope::list_tag(&ak, &mh, &tags);
                tags.extend_from_slice(&t);
            }
            tags
        }
    }

    fn finish(&self, m: &Msg) -> Vec<u8> {
        let covered = cat(&[&m.hdr, &m.f.concat()]);
        let auth = self.auth(&covered);
        cat(&[&covered, &b(&auth)])
    }
}

fn honest(label: &str, mode: Mode, to: &[&str]) -> Sess {
    Plan::new(label, mode, to).seal()
}

// ---- cases ---------------------------------------------------------------------------------

struct Step {
    envelope: Vec<u8>,
    now: u64,
    expect: &'static str,
    /// Before this step the receiver's keyring becomes this one (`v3/reconfigure/` only).
    keyring: Option<Value>,
}

struct Case {
    name: String,
    description: String,
    rule: &'static str,
    receiver: Receiver,
    steps: Vec<Step>,
}

struct Family {
    cases: Vec<Case>,
}

impl Family {
    fn one(
        &mut self,
        name: &str,
        rule: &'static str,
        description: &str,
        receiver: Receiver,
        env: Vec<u8>,
        expect: &'static str,
    ) {
        self.at(name, rule, description, receiver, env, T0, expect);
    }

    #[allow(clippy::too_many_arguments)]
    fn at(
        &mut self,
        name: &str,
        rule: &'static str,
        description: &str,
        receiver: Receiver,
        env: Vec<u8>,
        now: u64,
        expect: &'static str,
    ) {
        self.seq(
            name,
            rule,
            description,
            receiver,
            vec![Step {
                envelope: env,
                now,
                expect,
                keyring: None,
            }],
        );
    }

    fn seq(
        &mut self,
        name: &str,
        rule: &'static str,
        description: &str,
        receiver: Receiver,
        steps: Vec<Step>,
    ) {
        self.cases.push(Case {
            name: name.into(),
            description: description.into(),
            rule,
            receiver,
            steps,
        });
    }
}

fn bob() -> Receiver {
    Receiver::new("bob")
}

fn step(envelope: Vec<u8>, now: u64, expect: &'static str) -> Step {
    Step {
        envelope,
        now,
        expect,
        keyring: None,
    }
}

/// A step before which the receiver's keyring is replaced by `rx`'s (its trusted senders,
/// their validity, its revocations); caches and replay state stay.
fn step_after(rx: &Receiver, envelope: Vec<u8>, now: u64, expect: &'static str) -> Step {
    let j = rx.to_json();
    Step {
        envelope,
        now,
        expect,
        keyring: Some(json!({
            "trusted_senders": j["trusted_senders"],
            "sender_validity": j["sender_validity"],
            "revoked_senders": j["revoked_senders"],
        })),
    }
}

/// Offsets of the envelope's fields: (start, end) of each of the 10, in the full bytes.
fn field_spans(m: &Msg, full_len: usize) -> Vec<(usize, usize)> {
    let mut at = m.hdr.len();
    let mut spans = Vec::new();
    for f in &m.f {
        spans.push((at, at + f.len()));
        at += f.len();
    }
    spans.push((at, full_len));
    spans
}

fn structure() -> Family {
    let mut f = Family { cases: vec![] };
    let base = honest("structure/base", Mode::Signed, &["bob"]);
    let m = base.msg(0);
    let good = base.finish(&m);
    let spans = field_spans(&m, good.len());
    let r = "§3, §9";
    f.one("empty-input", r, "Zero bytes.", bob(), vec![], "malformed");
    for (name, cut, what) in [
        (
            "truncated-after-array-header",
            1,
            "Only the array header 0x9a.",
        ),
        (
            "truncated-after-version",
            2,
            "The array header and the version.",
        ),
        (
            "truncated-in-session-ref",
            spans[2].0 + 8,
            "Cut inside the 16-byte session reference.",
        ),
        (
            "truncated-in-session-block",
            spans[3].0 + 40,
            "Cut inside the inline session block.",
        ),
        (
            "truncated-in-metadata",
            spans[7].0 + 5,
            "Cut inside the metadata map.",
        ),
        ("truncated-in-body", spans[8].0 + 6, "Cut inside the body."),
        (
            "truncated-in-authenticator",
            spans[9].0 + 10,
            "Cut inside the signature.",
        ),
        (
            "truncated-last-byte",
            good.len() - 1,
            "The last byte of the signature is missing.",
        ),
    ] {
        f.one(name, r, what, bob(), good[..cut].to_vec(), "malformed");
    }
    f.one(
        "trailing-zero-byte",
        r,
        "A valid envelope followed by one 0x00 byte.",
        bob(),
        cat(&[&good, &[0]]),
        "malformed",
    );
    f.one(
        "trailing-second-envelope",
        r,
        "Two valid envelopes back to back.",
        bob(),
        cat(&[&good, &good]),
        "malformed",
    );
    let mut nine = m.clone();
    nine.hdr = arr_hdr(9);
    f.one(
        "envelope-9-fields",
        "§7.1, §9",
        "Array header 0x99: the authenticator is then a trailing value.",
        bob(),
        base.finish(&nine),
        "malformed",
    );
    f.one(
        "envelope-11-fields",
        "§7.1, §9",
        "Array header 0x9b with an 11th field (nil) after the authenticator.",
        bob(),
        cat(&[&[0x9b], &base.finish(&m)[1..], &[0xc0]]),
        "malformed",
    );
    let mut x = m.clone();
    x.f[2] = b(&session::session_ref(&base.hh)[..15]);
    f.one(
        "session-ref-15-bytes",
        "§7.1, §9",
        "A 15-byte session reference, re-authenticated.",
        bob(),
        base.finish(&x),
        "malformed",
    );
    let mut x = m.clone();
    x.f[6] = b(&[7u8; 17]);
    f.one(
        "nonce-17-bytes",
        "§7.1, §9",
        "A 17-byte nonce, re-authenticated.",
        bob(),
        base.finish(&x),
        "malformed",
    );
    let short = cat(&[
        &good[..spans[9].0],
        &b(&good[spans[9].0 + 2..good.len() - 1]),
    ]);
    f.one(
        "signature-63-bytes",
        "§8 step 9",
        "The signature field is 63 bytes long.",
        bob(),
        short,
        "malformed",
    );
    let mac = honest("structure/mac2", Mode::Mac, &["bob", "carol"]);
    let mm = mac.msg(0);
    let full = mac.finish(&mm);
    let ms = field_spans(&mm, full.len());
    let tags = &full[ms[9].0 + 2..];
    f.one("mac-list-missing-list-tag", "§8 step 9", "MAC mode to two recipients: the authenticator has the two tags but not the list tag (32 bytes instead of 48).", bob(), cat(&[&full[..ms[9].0], &b(&tags[..32])]), "malformed");
    let mut x = m.clone();
    x.f[8] = b(&[0x55; 15]);
    f.one(
        "body-shorter-than-tag",
        "§8 step 7",
        "Signed mode, a 15-byte body: shorter than the AEAD tag (re-authenticated).",
        bob(),
        base.finish(&x),
        "malformed",
    );
    let other = honest("structure/other", Mode::Signed, &["bob"]);
    let mut x = m.clone();
    x.f[2] = b(&session::session_ref(&other.hh));
    f.one("session-ref-not-matching-block", "§7.1, §8 step 4", "The session reference of another session, with this session's block inline (re-authenticated under this session).", bob(), base.finish(&x), "malformed");

    // Session header, block and entry structure: rebuilt and re-signed by alice.
    let header_case = |name: &str,
                       what: &str,
                       edit: &dyn Fn(&mut Plan),
                       class: &'static str,
                       rule: &'static str,
                       f: &mut Family| {
        let mut p = Plan::new(&format!("structure/{name}"), Mode::Signed, &["bob"]);
        edit(&mut p);
        let sess = p.seal();
        f.one(name, rule, what, bob(), sess.finish(&sess.msg(0)), class);
    };
    header_case(
        "header-10-fields",
        "The session header has 10 fields (ek_commitment dropped).",
        &|p| {
            p.header.pop();
        },
        "malformed",
        "§5.1, §9",
        &mut f,
    );
    header_case(
        "header-12-fields",
        "The session header has 12 fields (an extra 0).",
        &|p| p.header.push(u(0)),
        "malformed",
        "§5.1, §9",
        &mut f,
    );
    header_case(
        "header-mode-4",
        "Mode 4 is not defined.",
        &|p| p.header[2] = u(4),
        "malformed",
        "§5.1, §9",
        &mut f,
    );
    header_case(
        "header-expires-equals-not-before",
        "expires = not_before.",
        &|p| p.header[6] = u(T0),
        "malformed",
        "§5.1, §9",
        &mut f,
    );
    header_case(
        "header-max-messages-zero",
        "max_messages = 0.",
        &|p| p.header[7] = u(0),
        "malformed",
        "§5.1, §9",
        &mut f,
    );
    header_case(
        "header-verify-key-31-bytes",
        "Signed mode with a 31-byte verify_key.",
        &|p| p.header[9] = b(&[9u8; 31]),
        "malformed",
        "§5.1, §9",
        &mut f,
    );
    header_case(
        "header-verify-key-in-mac-mode",
        "MAC mode (2) with a 32-byte verify_key where bin(0) is required.",
        &|p| p.header[2] = u(2),
        "malformed",
        "§5.1, §9",
        &mut f,
    );
    header_case(
        "header-commitment-in-sign-only-mode",
        "Sign-only mode (3) with a 32-byte ek_commitment where bin(0) is required.",
        &|p| p.header[2] = u(3),
        "malformed",
        "§5.1, §9",
        &mut f,
    );
    header_case(
        "header-max-messages-over-2-48",
        "max_messages = 2^48 + 1 (§5.1: at most 2^48, the AEAD nonce bound), block correctly signed.",
        &|p| p.header[7] = u((1 << 48) + 1),
        "malformed",
        "§5.1, §10.5",
        &mut f,
    );
    header_case(
        "verify-key-small-order",
        "verify_key is the identity point (01 00 .. 00), of small order; block correctly signed.",
        &|p| {
            let mut k = [0u8; 32];
            k[0] = 1;
            p.header[9] = b(&k);
        },
        "malformed",
        "§8 step 4f",
        &mut f,
    );
    header_case(
        "verify-key-not-a-point",
        "verify_key does not decode to a curve point; block correctly signed.",
        &|p| {
            let k = (2u8..)
                .map(|y| {
                    let mut k = [0u8; 32];
                    k[0] = y;
                    k
                })
                .find(|k| ed25519_dalek::VerifyingKey::from_bytes(k).is_err())
                .expect("some y is off the curve");
            p.header[9] = b(&k);
        },
        "malformed",
        "§8 step 4f",
        &mut f,
    );

    let p = Plan::new("structure/entries", Mode::Signed, &["bob", "carol"]);
    let e = p.entries();
    let block_case = |name: &str, what: &str, recipients: Vec<u8>, f: &mut Family| {
        let sess = p.seal_raw(&recipients, &cast_identity("alice"));
        f.one(
            name,
            "§5.3, §5.4, §9",
            what,
            bob(),
            sess.finish(&sess.msg(0)),
            "malformed",
        );
    };
    block_case(
        "zero-recipients",
        "An empty recipient list (0x90), signed.",
        arr(&[]),
        &mut f,
    );
    block_case(
        "entry-3-fields",
        "Bob's entry has 3 fields (wrapped missing).",
        arr(&[arr(&e[0][..3]), arr(&e[1])]),
        &mut f,
    );
    block_case(
        // Kind 3 is X-Wing since issue 15 (a kind suite 1 does not allow, also malformed):
        // kind 4 is the smallest undefined kind.
        "entry-unknown-kind-4",
        "Bob's entry has kind 4, not defined.",
        arr(&[
            arr(&[u(4), e[0][1].clone(), e[0][2].clone(), e[0][3].clone()]),
            arr(&e[1]),
        ]),
        &mut f,
    );
    let w = &e[0][3];
    block_case(
        "entry-wrapped-47-bytes",
        "Bob's wrapped keys are 47 bytes (48 required in signed mode).",
        arr(&[
            arr(&[
                e[0][0].clone(),
                e[0][1].clone(),
                e[0][2].clone(),
                b(&w[2..w.len() - 1]),
            ]),
            arr(&e[1]),
        ]),
        &mut f,
    );
    block_case(
        "entry-enc-31-bytes",
        "Bob's enc is 31 bytes.",
        arr(&[
            arr(&[
                e[0][0].clone(),
                e[0][1].clone(),
                b(&e[0][2][2..33]),
                e[0][3].clone(),
            ]),
            arr(&e[1]),
        ]),
        &mut f,
    );
    block_case(
        "duplicate-recipient",
        "Bob's entry twice (same key id), signed.",
        arr(&[arr(&e[0]), arr(&e[0])]),
        &mut f,
    );
    {
        let sess = p.seal_entries(&e);
        let mut blk = sess.block.clone();
        // Block with 2 fields: drop the signature and fix the array header.
        let sig_field = 2 + 64;
        blk.truncate(blk.len() - sig_field);
        blk[0] = 0x92;
        let mut m = sess.msg(0);
        m.f[3] = b(&blk);
        f.one(
            "block-2-fields",
            "§5.3, §9",
            "A session block with 2 fields (no signature).",
            bob(),
            sess.finish(&m),
            "malformed",
        );
        let mut blk = sess.block.clone();
        blk[0] = 0x94;
        blk.push(0xc0);
        let mut m = sess.msg(0);
        m.f[3] = b(&blk);
        f.one(
            "block-4-fields",
            "§5.3, §9",
            "A session block with a 4th field (nil) after the signature.",
            bob(),
            sess.finish(&m),
            "malformed",
        );
        let mut blk = sess.block.clone();
        blk.push(0);
        let mut m = sess.msg(0);
        m.f[3] = b(&blk);
        f.one(
            "block-trailing-byte",
            "§5.3, §9",
            "A trailing 0x00 inside the session block's bin.",
            bob(),
            sess.finish(&m),
            "malformed",
        );
    }
    f
}

fn encoding() -> Family {
    let mut f = Family { cases: vec![] };
    let base = honest("encoding/base", Mode::Signed, &["bob"]);
    let m = base.msg(0);
    let r = "§3, §9";
    let field = |i: usize, raw: Vec<u8>| {
        let mut x = m.clone();
        x.f[i] = raw;
        base.finish(&x)
    };
    let body = m.f[8][2..].to_vec();
    let sref = session::session_ref(&base.hh);
    let nonce = m.f[6][2..].to_vec();
    for (name, what, env) in [
        ("version-uint8", "The version as uint 8 (0xcc 0x03).", field(0, vec![0xcc, 3])),
        ("suite-uint16", "The suite as uint 16 (0xcd 0x00 0x01).", field(1, vec![0xcd, 0, 1])),
        ("seq-uint8", "seq 0 as uint 8 (0xcc 0x00).", field(4, vec![0xcc, 0])),
        ("timestamp-uint64", "The timestamp as uint 64 where uint 32 holds it.", field(5, cat(&[&[0xcf], &T0.to_be_bytes()]))),
        ("session-ref-bin16", "The session reference's length as bin 16.", field(2, cat(&[&[0xc5, 0, 16], &sref]))),
        ("body-bin32", "The body's length as bin 32.", field(8, cat(&[&[0xc6], &(body.len() as u32).to_be_bytes(), &body]))),
        ("session-block-bin32", "The inline block's length as bin 32.", field(3, cat(&[&[0xc6], &(base.block.len() as u32).to_be_bytes(), &base.block]))),
        ("metadata-map16", "Two metadata entries counted with map 16.", field(7, cat(&[&[0xde, 0, 2], &map(META)[1..]]))),
        ("metadata-key-str8", "A 6-byte metadata key as str 8.", field(7, cat(&[&[0x82, 0xd9, 6], b"method", &s("inventory.get"), &s("msg-id"), &s("0001")]))),
        ("metadata-unsorted", "Keys msg-id then method: not in increasing order.", field(7, map(&[("msg-id", "0001"), ("method", "inventory.get")]))),
        ("metadata-duplicate-key", "The key method twice.", field(7, map(&[("method", "a"), ("method", "b")]))),
        ("metadata-empty-key", "An empty metadata key.", field(7, map(&[("", "x")]))),
        ("metadata-invalid-utf8", "A metadata value that is not UTF-8 (0xff).", field(7, vec![0x81, 0xa1, b'k', 0xa1, 0xff])),
        ("metadata-key-is-bin", "A metadata key as bin instead of str.", field(7, cat(&[&[0x81], &b(b"method"), &s("x")]))),
        ("session-ref-is-str", "The session reference as a 16-byte str instead of bin (type confusion).", field(2, cat(&[&[0xb0], &[b'a'; 16]]))),
        ("nonce-is-nil", "nil where the nonce bin is required.", field(6, vec![0xc0])),
        ("seq-is-true", "true (0xc3) where seq is required.", field(4, vec![0xc3])),
        ("seq-negative-fixint", "-1 (0xff) where an unsigned seq is required.", field(4, vec![0xff])),
        ("timestamp-float64", "A float 64 timestamp.", field(5, cat(&[&[0xcb], &(T0 as f64).to_be_bytes()]))),
        ("body-is-str", "The body as str (its bytes are not UTF-8 either).", field(8, cat(&[&[0xd9, body.len() as u8], &body]))),
        ("metadata-is-array", "An array where the metadata map is required.", field(7, vec![0x90])),
        ("session-block-is-ext", "An ext value (fixext 1) where nil or bin is required.", field(3, vec![0xd4, 1, 0])),
        ("nonce-is-array-of-ints", "The nonce's 16 bytes as an array of 16 integers.", field(6, cat(&[&[0xdc, 0, 16], &nonce.iter().map(|x| x & 0x7f).collect::<Vec<_>>()]))),
        ("deep-nesting-in-metadata", "A metadata value made of 1000 nested arrays (0x91 ... 0x90).", field(7, cat(&[&[0x81], &s("k"), &[0x91; 999], &[0x90]]))),
        ("deep-nesting-as-seq", "seq replaced by 1000 nested arrays.", field(4, cat(&[&[0x91; 999], &[0x90]]))),
        ("body-length-claims-4-gib", "The body claims 0xffffffff bytes (bin 32).", field(8, cat(&[&[0xc6, 0xff, 0xff, 0xff, 0xff], &body]))),
        ("session-block-length-claims-4-gib", "The inline block claims 0xffffffff bytes.", field(3, cat(&[&[0xc6, 0xff, 0xff, 0xff, 0xff], &base.block]))),
        ("metadata-count-claims-4-billion", "The metadata map claims 0xffffffff entries (map 32): a count beyond the input is malformed before any limit applies.", field(7, cat(&[&[0xdf, 0xff, 0xff, 0xff, 0xff], &map(META)[1..]]))),
        ("metadata-str-claims-4-gib", "A metadata key claims 0xffffffff bytes (str 32).", field(7, cat(&[&[0x81, 0xdb, 0xff, 0xff, 0xff, 0xff], b"k"]))),
    ] {
        f.one(name, r, what, bob(), env, "malformed");
    }
    let good = base.finish(&m);
    f.one(
        "envelope-array16",
        r,
        "The envelope's array header as array 16 (0xdc 0x00 0x0a).",
        bob(),
        cat(&[&[0xdc, 0, 10], &good[1..]]),
        "malformed",
    );
    f.one(
        "authenticator-length-claims-4-gib",
        r,
        "The authenticator claims 0xffffffff bytes.",
        bob(),
        {
            let spans = field_spans(&m, good.len());
            cat(&[
                &good[..spans[9].0],
                &[0xc6, 0xff, 0xff, 0xff, 0xff],
                &good[spans[9].0 + 2..],
            ])
        },
        "malformed",
    );
    // Inside the signed session header and block, rebuilt and re-signed.
    let header_case = |name: &str, what: &str, edit: &dyn Fn(&mut Plan), f: &mut Family| {
        let mut p = Plan::new(&format!("encoding/{name}"), Mode::Signed, &["bob"]);
        edit(&mut p);
        let sess = p.seal();
        f.one(name, r, what, bob(), sess.finish(&sess.msg(0)), "malformed");
    };
    header_case(
        "header-not-before-uint64",
        "not_before as uint 64 in the signed header.",
        &|p| p.header[5] = cat(&[&[0xcf], &T0.to_be_bytes()]),
        &mut f,
    );
    header_case(
        "header-sender-bin16",
        "The header's sender id with a bin 16 length.",
        &|p| p.header[3] = cat(&[&[0xc5, 0, 16], cast_identity("alice").key_id().as_bytes()]),
        &mut f,
    );
    header_case(
        "header-session-id-is-str",
        "The session id as str (type confusion) in the signed header.",
        &|p| p.header[4] = cat(&[&[0xb0], &[b'x'; 16]]),
        &mut f,
    );
    let p = Plan::new("encoding/entries", Mode::Signed, &["bob"]);
    let e = p.entries();
    let sess = p.seal_raw(&cat(&[&[0xdc, 0, 1], &arr(&e[0])]), &cast_identity("alice"));
    f.one(
        "recipients-array16",
        r,
        "One recipient counted with array 16.",
        bob(),
        sess.finish(&sess.msg(0)),
        "malformed",
    );
    let sess = p.seal_raw(
        &arr(&[arr(&[
            vec![0xcc, 1],
            e[0][1].clone(),
            e[0][2].clone(),
            e[0][3].clone(),
        ])]),
        &cast_identity("alice"),
    );
    f.one(
        "entry-kind-uint8",
        r,
        "The entry kind as uint 8 (0xcc 0x01).",
        bob(),
        sess.finish(&sess.msg(0)),
        "malformed",
    );
    let sess = p.seal_raw(
        &cat(&[&[0xdd, 0xff, 0xff, 0xff, 0xff], &arr(&e[0])]),
        &cast_identity("alice"),
    );
    f.one("recipients-count-claims-4-billion", r, "The recipient list claims 0xffffffff entries (array 32): beyond the input, malformed before the recipient limit applies.", bob(), sess.finish(&sess.msg(0)), "malformed");
    f
}

fn policy() -> Family {
    let mut f = Family { cases: vec![] };
    let base = honest("policy/base", Mode::Signed, &["bob"]);
    let m = base.msg(0);
    let field = |i: usize, raw: Vec<u8>| {
        let mut x = m.clone();
        x.f[i] = raw;
        base.finish(&x)
    };
    for v in [4u64, 2, 0] {
        f.one(
            &format!("envelope-version-{v}"),
            "§1.1, §8 step 2",
            &format!("Envelope version {v}, re-authenticated."),
            bob(),
            field(0, u(v)),
            "unsupported_version",
        );
    }
    // Suite 2 exists since issue 15: suite 3 is the smallest undefined id.
    for id in [3u64, 65535] {
        f.one(
            &format!("envelope-suite-{id}"),
            "§1.2, §8 step 2",
            &format!("Envelope suite {id}, not defined."),
            bob(),
            field(1, u(id)),
            "unknown_suite",
        );
    }
    let mut p = Plan::new("policy/header-version", Mode::Signed, &["bob"]);
    p.header[0] = u(4);
    let sess = p.seal();
    f.one(
        "header-version-4",
        "§1.1, §8 step 4",
        "The inline session header says version 4 (envelope version 3).",
        bob(),
        sess.finish(&sess.msg(0)),
        "unsupported_version",
    );
    let mut p = Plan::new("policy/header-suite", Mode::Signed, &["bob"]);
    p.header[1] = u(3);
    let sess = p.seal();
    f.one(
        "header-suite-3",
        "§1.2, §5.1",
        "The inline session header names suite 3, not defined (envelope suite 1).",
        bob(),
        sess.finish(&sess.msg(0)),
        "unknown_suite",
    );
    let good = base.finish(&m);
    let mut rx = bob();
    rx.suites = vec![];
    f.one(
        "suite-not-allowed",
        "§1.2, §8 step 3",
        "Suite 1 is known but the receiver's allowlist is empty.",
        rx,
        good.clone(),
        "suite_not_allowed",
    );
    for (mode, allowed) in [
        (Mode::Signed, vec![Mode::Mac, Mode::SignOnly]),
        (Mode::Mac, vec![Mode::Signed, Mode::SignOnly]),
        (Mode::SignOnly, vec![Mode::Signed, Mode::Mac]),
    ] {
        let sess = honest(&format!("policy/mode {}", mode.as_str()), mode, &["bob"]);
        let mut rx = bob();
        rx.modes = allowed;
        f.one(
            &format!("mode-{}-not-allowed", mode.as_str()),
            "§8 step 4c",
            &format!(
                "A {} session to a receiver that does not allow that mode.",
                mode.as_str()
            ),
            rx,
            sess.finish(&sess.msg(0)),
            "mode_not_allowed",
        );
    }
    let sess = honest("policy/mac-group", Mode::Mac, &["team"]);
    let mut rx = bob();
    rx.identities = vec![];
    rx.group_keys = vec!["team"];
    f.one(
        "mac-via-group-key-without-opt-in",
        "§6.4, §8 step 4c",
        "A MAC-mode session to a group key; the receiver holds the group key and has not opted in.",
        rx,
        sess.finish(&sess.msg(0)),
        "mode_not_allowed",
    );
    let sess = honest("policy/mac-symmetric", Mode::Mac, &["vault"]);
    let mut rx = bob();
    rx.identities = vec![];
    rx.symmetric_keys = vec!["vault"];
    f.one(
        "mac-via-symmetric-key-without-opt-in",
        "§6.4, §8 step 4c",
        "A MAC-mode session to a symmetric key (vault); the receiver holds the key and has not opted in: every holder of it could have forged the message.",
        rx,
        sess.finish(&sess.msg(0)),
        "mode_not_allowed",
    );
    let mut rx = bob();
    rx.max_payload = 8;
    f.one(
        "payload-over-receiver-limit",
        "§7.3, §8 step 7",
        "An 11-byte payload to a receiver whose payload limit is 8.",
        rx,
        good.clone(),
        "limit_exceeded",
    );
    let two = honest("policy/two", Mode::Signed, &["bob", "carol"]);
    let mut rx = bob();
    rx.max_recipients = 1;
    f.one(
        "recipients-over-limit",
        "§5.3, §7.3",
        "A block with 2 recipients to a receiver whose limit is 1.",
        rx,
        two.finish(&two.msg(0)),
        "limit_exceeded",
    );
    let mut rx = bob();
    rx.max_metadata_entries = 1;
    f.one(
        "metadata-entries-over-limit",
        "§7.3, §8 step 2",
        "2 metadata entries to a receiver whose limit is 1.",
        rx,
        good.clone(),
        "limit_exceeded",
    );
    let mut rx = bob();
    rx.max_metadata_bytes = 16;
    f.one(
        "metadata-bytes-over-limit",
        "§7.3, §8 step 2",
        "29 bytes of metadata keys and values to a receiver whose limit is 16.",
        rx,
        good,
        "limit_exceeded",
    );
    f
}

fn sessions() -> Family {
    let mut f = Family { cases: vec![] };
    let base = honest("session/base", Mode::Signed, &["bob"]);
    let good = base.finish(&base.msg(0));
    f.one(
        "not-for-us",
        "§8 step 4b",
        "A session for bob opened by carol.",
        Receiver::new("carol"),
        good.clone(),
        "not_for_us",
    );
    let mut rx = bob();
    rx.trusted = vec!["carol"];
    f.one(
        "untrusted-sender",
        "§8 step 4a",
        "From alice to a receiver that trusts only carol.",
        rx,
        good.clone(),
        "untrusted_sender",
    );
    let p = Plan::new("session/mallory", Mode::Signed, &["bob"]);
    let sess = p.seal_raw(
        &arr(&p.entries().iter().map(|e| arr(e)).collect::<Vec<_>>()),
        &cast_identity("mallory"),
    );
    f.one(
        "block-signed-by-another-identity",
        "§8 step 4d",
        "The header names alice as sender; mallory signed the block.",
        bob(),
        sess.finish(&sess.msg(0)),
        "bad_signature",
    );
    let mut blk = base.block.clone();
    let n = blk.len();
    blk[n - 20] ^= 0x04;
    let mut m = base.msg(0);
    m.f[3] = b(&blk);
    f.one(
        "block-signature-bit-flipped",
        "§8 step 4d",
        "One bit of the block signature flipped (envelope re-authenticated).",
        bob(),
        base.finish(&m),
        "bad_signature",
    );

    let wrap_case = |name: &str,
                     what: &str,
                     class: &'static str,
                     edit: &dyn Fn(&Plan, &mut Entries),
                     to: &[&str],
                     mode: Mode,
                     rx: Receiver,
                     f: &mut Family| {
        let p = Plan::new(&format!("session/{name}"), mode, to);
        let mut e = p.entries();
        edit(&p, &mut e);
        let sess = p.seal_entries(&e);
        let rule = match class {
            "bad_wrap" => "§5.4, §5.5, §8 step 4e",
            "key_commitment" => "§5.4, §10.3, §8 step 4e",
            "malformed" => "§2.1, §5.4, §9",
            _ => "§8 step 4",
        };
        f.one(name, rule, what, rx, sess.finish(&sess.msg(0)), class);
    };
    wrap_case("wrapped-bit-flipped-and-signed", "A bit of bob's wrapped keys flipped before alice signed the block (a sender's mistake or malice).", "bad_wrap", &|_, e| { let mut w = e[0][3].clone(); w[10] ^= 1; e[0][3] = w; }, &["bob"], Mode::Signed, bob(), &mut f);
    wrap_case("wrap-for-another-index", "Bob's entry was wrapped for index 0 (aad ends in u32(0)) but sits at index 1; block signed.", "bad_wrap", &|_, e| {
        // Carol's entry first, then bob's, which was made for index 0.
        e.swap(0, 1);
    }, &["bob", "carol"], Mode::Signed, bob(), &mut f);
    wrap_case(
        "wrap-for-another-header",
        "Bob's wrap was made under another session's header hash.",
        "bad_wrap",
        &|_, e| {
            let other = Plan::new("session/elsewhere", Mode::Signed, &["bob"]);
            e[0] = other.entries()[0].clone();
        },
        &["bob"],
        Mode::Signed,
        bob(),
        &mut f,
    );
    wrap_case(
        "wrap-to-another-key",
        "The entry carries bob's key id but was wrapped to carol's key.",
        "bad_wrap",
        &|p, e| {
            let mut q = Plan::new(&p.label, Mode::Signed, &["carol"]);
            q.header = p.header.clone();
            e[0][3] = q.entries()[0][3].clone();
            e[0][2] = q.entries()[0][2].clone();
        },
        &["bob"],
        Mode::Signed,
        bob(),
        &mut f,
    );
    for (name, point, what) in [
        (
            "enc-all-zero",
            "0000000000000000000000000000000000000000000000000000000000000000",
            "u = 0",
        ),
        (
            "enc-u-1",
            "0100000000000000000000000000000000000000000000000000000000000000",
            "u = 1 (order 4)",
        ),
        (
            "enc-order-8",
            "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
            "a point of order 8",
        ),
        (
            "enc-u-p-minus-1",
            "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
            "u = p - 1 (order 2)",
        ),
    ] {
        let pt = super::unhex(point).expect("hex");
        wrap_case(name, &format!("Bob's HPKE enc is the low-order X25519 share {what}: the Diffie-Hellman output is all zero (RFC 7748 §6.1); block signed."), "bad_wrap", &|_, e| e[0][2] = b(&pt), &["bob"], Mode::Signed, bob(), &mut f);
    }
    // spec §2.1, §5.4: an enc is an X25519 public key in its one encoding, checked as the
    // field is read (before any Diffie-Hellman).
    let pt = super::unhex("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")
        .expect("hex");
    wrap_case("enc-u-p", "Bob's HPKE enc is u = p, a non-canonical encoding of 0 (§2.1): malformed as it is read, before any Diffie-Hellman; block signed.", "malformed", &|_, e| e[0][2] = b(&pt), &["bob"], Mode::Signed, bob(), &mut f);
    wrap_case("enc-bit-255-set", "Bob's honest HPKE enc with bit 255 set: RFC 7748 would ignore the bit, §2.1 does not accept it (one encoding per key); block signed.", "malformed", &|_, e| {
        let mut enc = bytes_of_bin(&e[0][2]);
        enc[31] |= 0x80;
        e[0][2] = b(&enc);
    }, &["bob"], Mode::Signed, bob(), &mut f);
    // Key commitment: one ciphertext, two EKs.
    let commit_case = |name: &str, mode: Mode, rx: Receiver, f: &mut Family| {
        let mut p = Plan::new(&format!("session/{name}"), mode, &["bob", "carol"]);
        let mut evil = det(&format!("session/{name}/other ek"), 32);
        if mode == Mode::Mac {
            evil.extend_from_slice(&p.mac_key(1));
        }
        p.plaintexts[1] = evil;
        let sess = p.seal();
        f.one(name, "§5.4, §10.3, §8 step 4e", &format!("{} mode: the header commits to EK; alice wraps EK to bob (index 0) but another key to carol (index 1). Bob accepts the message; carol must reject it rather than decrypt the same ciphertext to another plaintext.", mode.as_str()), rx, sess.finish(&sess.msg(0)), "key_commitment");
    };
    commit_case(
        "key-commitment-attack-signed",
        Mode::Signed,
        Receiver::new("carol"),
        &mut f,
    );
    commit_case(
        "key-commitment-attack-mac",
        Mode::Mac,
        Receiver::new("carol"),
        &mut f,
    );
    let mut vault_rx = bob();
    vault_rx.identities = vec![];
    vault_rx.symmetric_keys = vec!["vault"];
    // MAC mode to a symmetric key needs the receiver's opt-in (spec §6.4): given, so that
    // these cases reach the wrap.
    vault_rx.mac_via_group = true;
    wrap_case("symmetric-commit-flipped", "A symmetric (kind 2) entry whose key commitment (last 16 bytes of enc) has one bit flipped; block signed. The receiver opts in to MAC mode through a symmetric key.", "bad_wrap", &|_, e| { let mut x = e[0][2].clone(); x[30] ^= 0x80; e[0][2] = x; }, &["vault"], Mode::Mac, vault_rx.clone(), &mut f);
    let mut stale_rx = vault_rx.clone();
    stale_rx.symmetric_keys = vec!["vault-stale"];
    wrap_case("symmetric-wrong-key", "Wrapped to vault; the receiver holds a different key under the same key id (vault-stale): the commitment does not match.", "bad_wrap", &|_, _| {}, &["vault"], Mode::Mac, stale_rx, &mut f);
    let mut m = base.msg(0);
    m.f[3] = vec![0xc0];
    f.one(
        "unknown-session",
        "§8 step 4",
        "A message by reference (field 3 nil) to a receiver that has not seen its session.",
        bob(),
        base.finish(&m),
        "unknown_session",
    );

    // Insiders forging messages.
    let mac = honest("session/mac3", Mode::Mac, &["bob", "carol"]);
    let m = mac.msg(0);
    let mut forged = mac.finish(&m);
    let n = forged.len();
    // Bob replaces the message and its own tag but cannot compute carol's.
    let mut x = m.clone();
    x.f[8] = mac.body(0, b"{\"sku\": 43}");
    let covered = cat(&[&x.hdr, &x.f.concat()]);
    let mh = envelope::message_hash(&mac.hh, &covered);
    let mut tags = envelope::mac_tag(&mac.mac_keys[0], &mh).to_vec();
    tags.extend_from_slice(&[0u8; 16]);
    let t = envelope::list_tag(&envelope::list_key(&mac.ek), &mh, &tags);
    tags.extend_from_slice(&t);
    let bob_forgery = cat(&[&covered, &b(&tags)]);
    f.one("mac-forged-by-recipient", "§6.2, §8 step 9", "Bob (recipient 0) changes the payload and computes his own tag and the list tag (he knows AK); carol's tag he cannot compute. Carol rejects it.", Receiver::new("carol"), bob_forgery, "bad_authenticator");
    forged[n - 5] ^= 1;
    f.one(
        "mac-list-tag-flipped",
        "§6.2, §8 step 9",
        "MAC mode, two recipients: one bit of the list tag flipped; bob's own tag is intact.",
        bob(),
        forged,
        "bad_authenticator",
    );
    let signed = honest("session/signed3", Mode::Signed, &["bob", "carol"]);
    let mut x = signed.msg(0);
    x.f[8] = signed.body(0, b"{\"sku\": 43}");
    let covered = cat(&[&x.hdr, &x.f.concat()]);
    let mh = envelope::message_hash(&signed.hh, &covered);
    let bobs_key = SigningKey::from_bytes(&det32("session/signed3/bob's own key"));
    let sig = crate::sign::sign(&bobs_key, &envelope::signature_input(&mh));
    f.one("signed-forged-by-recipient", "§6.1, §8 step 9", "Bob knows EK and re-encrypts another payload, signing with a key of his own: not the session's verify_key.", Receiver::new("carol"), cat(&[&covered, &b(&sig)]), "bad_authenticator");
    // §8 step 4: each distinct inline block is verified once, also for a cached session.
    let p = Plan::new("session/cached block", Mode::Signed, &["bob"]);
    let good = p.seal();
    let mut block = good.block.clone();
    let last = block.len() - 1;
    block[last] ^= 1;
    let broken = Sess { block, ..p.seal() };
    f.seq("cached-session-inline-block-bad-signature", "§8 step 4, §6.1", "Message 0 establishes the session; message 1 carries the same header in a block whose identity signature is damaged, and is correctly signed with the session key (only the session key holder can make it). Each distinct block is verified: bad_signature.", bob(), vec![step(good.finish(&good.msg(0)), T0, "ok"), step(broken.finish(&broken.msg(1)), T0, "bad_signature")]);
    // §5.7: a re-addressed block has the same header; old messages open by the full
    // header hash through the cache.
    let p1 = Plan::new("session/readdressed", Mode::Signed, &["bob", "carol"]);
    let p2 = Plan::new(
        "session/readdressed",
        Mode::Signed,
        &["bob", "carol", "dave"],
    );
    let b1 = p1.seal();
    let b2 = p2.seal();
    f.seq("readdressed-block-opens-earlier-messages", "§5.7, §8 step 4", "dave joins: message 0 carries the re-addressed block (same header bytes, bob and carol unchanged, dave appended), then message 1 carries the original block, which has no entry for dave. The session is found in the cache by its full header hash (and the original block's signature is verified): ok; its copy is replayed. An implementation that never reuses a cached session says not_for_us at step 1.", Receiver::new("dave"), vec![step(b2.finish(&b2.msg(0)), T0, "ok"), step(b1.finish(&b1.msg(1)), T0, "ok"), step(b1.finish(&b1.msg(1)), T0, "replayed")]);
    f
}

fn time() -> Family {
    let mut f = Family { cases: vec![] };
    let base = honest("time/base", Mode::Signed, &["bob"]);
    let good = base.finish(&base.msg(0));
    let r = "§8 step 6";
    f.at(
        "session-not-yet-valid",
        r,
        "The receiver's clock is 121 s before not_before (skew 120).",
        bob(),
        good.clone(),
        T0 - 121,
        "not_yet_valid",
    );
    f.at(
        "session-expired",
        r,
        "The receiver's clock is 121 s after expires (skew 120).",
        bob(),
        good.clone(),
        T0 + 3600 + 121,
        "expired",
    );
    f.at(
        "timestamp-behind-clock",
        r,
        "Timestamp T0, receiver clock T0 + 121 (skew 120).",
        bob(),
        good.clone(),
        T0 + 121,
        "clock_skew",
    );
    f.one(
        "timestamp-ahead-of-clock",
        r,
        "Timestamp T0 + 200, receiver clock T0 (skew 120).",
        bob(),
        base.finish(&base.msg_with(0, T0 + 200, true, PAYLOAD, META)),
        "clock_skew",
    );
    f.one("timestamp-before-not-before", r, "Timestamp T0 - 10, 10 s before the session's not_before, within the skew of the receiver's clock T0.", bob(), base.finish(&base.msg_with(0, T0 - 10, true, PAYLOAD, META)), "not_yet_valid");
    f.at("timestamp-at-expires", r, "Timestamp = expires (T0 + 3600), receiver clock T0 + 3660: within skew, but a session is usable strictly before expires.", bob(), base.finish(&base.msg_with(0, T0 + 3600, true, PAYLOAD, META)), T0 + 3660, "expired");
    let mut rx = bob();
    rx.skew = 0;
    f.at(
        "zero-skew-one-second-late",
        r,
        "A receiver with skew 0 whose clock is 1 s past the timestamp.",
        rx,
        good,
        T0 + 1,
        "clock_skew",
    );
    f
}

fn replay() -> Family {
    let mut f = Family { cases: vec![] };
    let base = honest("replay/base", Mode::Signed, &["bob"]);
    let e0 = base.finish(&base.msg(0));
    let r = "replay.md §3, §4; §8 step 11";
    f.seq(
        "replayed-envelope",
        r,
        "The same envelope twice.",
        bob(),
        vec![step(e0.clone(), T0, "ok"), step(e0.clone(), T0, "replayed")],
    );
    let mut t = e0.clone();
    let n = t.len();
    t[n - 70] ^= 0x10;
    f.seq(
        "tampered-then-original-then-replay",
        r,
        "A tampered copy fails and changes no state; the original is accepted once.",
        bob(),
        vec![
            step(t, T0, "bad_authenticator"),
            step(e0.clone(), T0, "ok"),
            step(e0.clone(), T0 + 1, "replayed"),
        ],
    );
    let mac = honest("replay/mac", Mode::Mac, &["bob"]);
    let m0 = mac.finish(&mac.msg(0));
    let m1 = mac.finish(&mac.msg_with(1, T0, false, b"second", &[]));
    f.seq("replay-by-reference", r, "Message 0 carries the block, message 1 refers to the session; message 1 again is a replay.", bob(), vec![step(m0, T0, "ok"), step(m1.clone(), T0, "ok"), step(m1, T0, "replayed")]);
    let s = |seq: u64| base.finish(&base.msg_with(seq, T0, true, PAYLOAD, META));
    f.seq("older-than-window", r, "seq 1100 is accepted, then seq 0: 1100 - 0 >= W = 1024, outside the window (class replayed).", bob(), vec![step(s(1100), T0, "ok"), step(s(0), T0, "replayed")]);
    f.seq(
        "reordered-within-window",
        r,
        "seq 5, then 3 (inside the window: accepted), then both again.",
        bob(),
        vec![
            step(s(5), T0, "ok"),
            step(s(3), T0, "ok"),
            step(s(5), T0, "replayed"),
            step(s(3), T0, "replayed"),
        ],
    );
    let mut p = Plan::new("replay/one-shot", Mode::Signed, &["bob"]);
    p.header[7] = u(1);
    let one = p.seal();
    let o = one.finish(&one.msg(0));
    let o_first = o.clone();
    f.seq(
        "one-shot-session-replayed",
        r,
        "A session with max_messages = 1 is tracked per session (replay.md §4): its copy is replayed.",
        bob(),
        vec![step(o.clone(), T0, "ok"), step(o, T0, "replayed")],
    );
    f.seq(
        "replayed-after-session-expired",
        "§8 step 6",
        "Accepted at T0; the copy arrives after the session's expiry plus skew.",
        bob(),
        vec![
            step(e0.clone(), T0, "ok"),
            step(e0.clone(), T0 + 3600 + 121, "expired"),
        ],
    );
    let mut p = Plan::new("replay/limit", Mode::Signed, &["bob"]);
    p.header[7] = u(2);
    let lim = p.seal();
    f.seq("seq-past-session-limit", "§5.6, §8 step 7", "max_messages = 2: seq 0 and 1 are accepted, seq 2 (correctly authenticated by the sender's session key) is past the limit.", bob(), vec![
        step(lim.finish(&lim.msg(0)), T0, "ok"),
        step(lim.finish(&lim.msg_with(1, T0, false, PAYLOAD, META)), T0, "ok"),
        step(lim.finish(&lim.msg_with(2, T0, false, PAYLOAD, META)), T0, "session_limit"),
    ]);
    let mut p = Plan::new("replay/bytes", Mode::Signed, &["bob"]);
    p.header[8] = u(4);
    let by = p.seal();
    f.one(
        "payload-over-session-byte-limit",
        "§5.6, §8 step 7",
        "max_bytes = 4 and an 11-byte payload.",
        bob(),
        by.finish(&by.msg(0)),
        "session_limit",
    );
    // Issue 13, item 14: the receiver's caps on what one session may cover.
    let mut p = Plan::new("limits/lifetime-24h", Mode::Signed, &["bob"]);
    p.header[6] = u(T0 + 86_400);
    let day = p.seal();
    let mut p = Plan::new("limits/lifetime", Mode::Signed, &["bob"]);
    p.header[6] = u(T0 + 86_401);
    let long = p.seal();
    f.seq(
        "session-lifetime-over-receiver-limit",
        "§8 step 7",
        "A session of expires − not_before = 86 400 s (the default receiver limit of 24 hours) is accepted; one of 86 401 s is not.",
        bob(),
        vec![
            step(day.finish(&day.msg(0)), T0, "ok"),
            step(long.finish(&long.msg(0)), T0, "session_limit"),
        ],
    );
    let mut p = Plan::new("limits/messages", Mode::Signed, &["bob"]);
    p.header[7] = u((1 << 32) + 1);
    let many = p.seal();
    f.one(
        "session-max-messages-over-receiver-limit",
        "§8 step 7",
        "max_messages = 2^32 + 1, one over the default receiver limit of 2^32.",
        bob(),
        many.finish(&many.msg(0)),
        "session_limit",
    );
    // replay.md §4: exactly one message per one-shot session, whatever its nonce.
    let other = one.finish(&one.msg_with(0, T0 + 1, true, b"another payload", META));
    f.seq(
        "one-shot-session-second-message",
        r,
        "max_messages = 1: a second, different message of the session (seq 0, another nonce and payload, correctly signed: only a faulty sender makes it) would reuse AEAD nonce 0 under EK; it is replayed, like a byte-identical copy.",
        bob(),
        vec![step(o_first.clone(), T0, "ok"), step(other, T0 + 1, "replayed")],
    );
    // replay.md §3: W >= 1024, so 1000 behind the top is inside the window.
    f.seq("inside-window-1000-behind", r, "seq 1000, then seq 0 (1000 behind the top: inside any window of W >= 1024, outside a window of 64), then seq 0 again.", bob(), vec![step(s(1000), T0, "ok"), step(s(0), T0, "ok"), step(s(0), T0, "replayed")]);
    // replay.md §1.1: expires_at includes the skew.
    let late = base.finish(&base.msg_with(7, T0 + 3599, true, PAYLOAD, META));
    f.seq("accepted-after-expiry-within-skew", "replay.md §1.1; §8 step 6", "Timestamp expires - 1, receiver clock expires + 100 (skew 120): fresh by §8 step 6, and the replay store's expires_at = expires + skew; a store using expires alone rejects it as expired. Then the copy is replayed.", bob(), vec![step(late.clone(), T0 + 3700, "ok"), step(late, T0 + 3700, "replayed")]);
    // §8 step 8 is required: a forged copy of an accepted message is replayed.
    let mut forged = e0.clone();
    let n = forged.len();
    forged[n - 1] ^= 1;
    f.seq("forged-copy-of-accepted-message", "§8 step 8; replay.md §2 (e)", "The accepted message's seq again, its signature damaged: the read-only replay check of step 8 (required) comes before the authenticator, so the class is replayed, not bad_authenticator.", bob(), vec![step(e0.clone(), T0, "ok"), step(forged, T0, "replayed")]);
    f
}

fn order() -> Family {
    let mut f = Family { cases: vec![] };
    let base = honest("order/base", Mode::Signed, &["bob"]);
    let mut bad = base.finish(&base.msg(0));
    let n = bad.len();
    bad[n - 1] ^= 1;
    f.at("not-yet-valid-and-bad-authenticator", "§8 steps 6 before 9", "Received 500 s before the session's not_before (skew 120), with a damaged signature: step 6 (not_yet_valid) comes before step 9 (bad_authenticator).", bob(), bad.clone(), T0 - 500, "not_yet_valid");
    f.at("clock-skew-and-bad-authenticator", "§8 steps 6 before 9", "Timestamp 500 s from the receiver's clock (skew 120), damaged signature: clock_skew, not bad_authenticator.", bob(), bad, T0 + 500, "clock_skew");
    let mut p = Plan::new("order/limit", Mode::Signed, &["bob"]);
    p.header[7] = u(2);
    let lim = p.seal();
    f.at("clock-skew-and-seq-past-limit", "§8 steps 6 before 7", "seq 2 of a session with max_messages = 2, 500 s from the receiver's clock: step 6 (clock_skew) comes before step 7 (session_limit).", bob(), lim.finish(&lim.msg(2)), T0 + 500, "clock_skew");
    let mut rx = bob();
    rx.revoked = vec!["alice"];
    f.at("revoked-and-expired", "§8 steps 4a/5 before 6", "A revoked sender's expired session: the sender check (revoked) comes before time (expired).", rx, base.finish(&base.msg(0)), T0 + 3600 + 200, "revoked");
    let mut rx = bob();
    rx.modes = vec![Mode::Mac];
    f.at("mode-not-allowed-and-expired", "§8 steps 4c/5 before 6", "A signed-mode session to a receiver that allows only MAC mode, received after expiry: mode_not_allowed before expired.", rx, base.finish(&base.msg(0)), T0 + 3600 + 200, "mode_not_allowed");
    let e = base.finish(&base.msg(0));
    f.seq("exact-skew-is-fresh", "§8 step 6", "|timestamp - now| = skew exactly (120): not more than skew, so accepted; then its copy is replayed. An implementation using >= rejects the first as clock_skew.", bob(), vec![step(e.clone(), T0 + 120, "ok"), step(e, T0 + 120, "replayed")]);
    f
}

// ---- strict Ed25519 (spec §1, §2.1) -----------------------------------------------------------

use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::scalar::Scalar;
use sha2::{Digest, Sha512};

/// The secret scalar `a` of an Ed25519 seed (RFC 8032 §5.1.5: SHA-512, clamp, low half).
fn ed_scalar(seed: &[u8; 32]) -> Scalar {
    let h = Sha512::digest(seed);
    let mut a = [0u8; 32];
    a.copy_from_slice(&h[..32]);
    a[0] &= 248;
    a[31] &= 127;
    a[31] |= 64;
    Scalar::from_bytes_mod_order(a)
}

/// `k = SHA-512(R ‖ A ‖ M) mod L` (RFC 8032 §5.1.6 step 4), over the bytes as given.
fn ed_challenge(r: &[u8; 32], a: &[u8; 32], m: &[u8]) -> Scalar {
    let mut h = Sha512::new();
    h.update(r);
    h.update(a);
    h.update(m);
    Scalar::from_bytes_mod_order_wide(&h.finalize().into())
}

/// A signature by the holder of `seed` on `m` under the public key encoded as `a_bytes`,
/// with a chosen `R`: `R = r·B + extra` (`r` from `label`), or the exact bytes `r_bytes`
/// with `r = 0`; `S = r + k·a`. `need` filters `k` (retrying with another `r`).
fn ed_sign_with(
    seed: &[u8; 32],
    a_bytes: &[u8; 32],
    m: &[u8],
    label: &str,
    extra: Option<EdwardsPoint>,
    r_bytes: Option<[u8; 32]>,
    need: &dyn Fn(&Scalar) -> bool,
) -> [u8; 64] {
    let a = ed_scalar(seed);
    for attempt in 0u32.. {
        let (r, rb) = match r_bytes {
            Some(rb) => (Scalar::ZERO, rb),
            None => {
                let wide: [u8; 64] = det(&format!("{label}/r {attempt}"), 64)
                    .try_into()
                    .expect("64");
                let r = Scalar::from_bytes_mod_order_wide(&wide);
                let point = ED25519_BASEPOINT_POINT * r + extra.unwrap_or_default();
                (r, point.compress().to_bytes())
            }
        };
        let k = ed_challenge(&rb, a_bytes, m);
        if !need(&k) {
            assert!(r_bytes.is_none(), "cannot retry fixed R bytes");
            continue;
        }
        let s = r + k * a;
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&rb);
        sig[32..].copy_from_slice(s.as_bytes());
        return sig;
    }
    unreachable!()
}

/// `S + L` as a 32-byte little-endian integer (fits: S < L < 2^253).
fn plus_l(s: &[u8]) -> [u8; 32] {
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let v = u16::from(s[i]) + u16::from(L[i]) + carry;
        out[i] = v as u8;
        carry = v >> 8;
    }
    out
}

fn signatures() -> Family {
    let mut f = Family { cases: vec![] };
    let r_msg = "§1, §6.1, §8 step 9";
    // Messages signed by the session's own key with a chosen R or S: only the holder of
    // the session signing key can make them; a non-strict verifier accepts them.
    let sess = honest("signatures/message", Mode::Signed, &["bob"]);
    let seed = *sess.signing.as_bytes();
    let vk = sess.signing.verifying_key().to_bytes();
    let m = sess.msg(0);
    let covered = cat(&[&m.hdr, &m.f.concat()]);
    let input = envelope::signature_input(&envelope::message_hash(&sess.hh, &covered));
    let with_sig = |sig: &[u8]| cat(&[&covered, &b(sig)]);
    let t2 = EIGHT_TORSION[4];
    let torsion = ed_sign_with(
        &seed,
        &vk,
        &input,
        "signatures/torsion",
        Some(t2),
        None,
        &|_| true,
    );
    f.one("message-signature-r-plus-order-2-point", r_msg, "R' = rB + T2 (T2 = (0, -1), of order 2), S = r + k·a with k = H(R' ‖ A ‖ M): the cofactored equation [8S]B = [8]R' + [8k]A holds, and a random-coefficient batch equation holds for every even coefficient (issue 14 item 2); the cofactorless equation does not.", bob(), with_sig(&torsion), "bad_authenticator");
    let honest_sig = sess.auth(&covered);
    let mut s_plus_l = honest_sig.clone();
    s_plus_l[32..].copy_from_slice(&plus_l(&honest_sig[32..]));
    f.one("message-signature-s-plus-l", r_msg, "The honest signature with S replaced by S + L: [S + L]B = [S]B, so a verifier that does not require S < L (RFC 8032 §5.1.7 step 1) accepts it: a second encoding of one signature.", bob(), with_sig(&s_plus_l), "bad_authenticator");
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let small_r = ed_sign_with(
        &seed,
        &vk,
        &input,
        "signatures/small r",
        None,
        Some(identity),
        &|_| true,
    );
    f.one("message-signature-small-order-r", r_msg, "R = 01 00 .. 00 (the identity, small order) and S = k·a: [S]B = R + [k]A holds exactly; strict verification rejects a small-order R.", bob(), with_sig(&small_r), "bad_authenticator");
    let mut neg_zero = identity;
    neg_zero[31] = 0x80;
    let nz = ed_sign_with(
        &seed,
        &vk,
        &input,
        "signatures/negative zero r",
        None,
        Some(neg_zero),
        &|_| true,
    );
    f.one("message-signature-r-negative-zero", r_msg, "R = 01 00 .. 80: the identity with the x sign bit set (x = 0, a non-canonical encoding; Wycheproof ed25519 tcId 151 is of this kind), S = k·a with k over these R bytes: a verifier that compares points instead of R's bytes, or decodes R leniently, accepts it.", bob(), with_sig(&nz), "bad_authenticator");

    // The block signature by the identity key: the same rule (§5.3, §8 step 4d).
    let p = Plan::new("signatures/block", Mode::Signed, &["bob"]);
    let alice = cast_identity("alice");
    let alice_seed = *alice.signing_key().as_bytes();
    let alice_pk = alice.public().ed25519_bytes();
    let header = p.header_bytes();
    let raw: Vec<Vec<u8>> = p.entries().iter().map(|e| arr(e)).collect();
    let recipients = arr(&raw);
    let good = p.seal_raw(&recipients, &alice);
    let block_input = session::block_signing_input(&good.hh, &recipients);
    let bad_sig = ed_sign_with(
        &alice_seed,
        &alice_pk,
        &block_input,
        "signatures/block torsion",
        Some(t2),
        None,
        &|_| true,
    );
    let forged = Sess {
        block: cat(&[&arr_hdr(3), &b(&header), &recipients, &b(&bad_sig)]),
        ..good
    };
    f.one("block-signature-r-plus-order-2-point", "§1, §5.3, §8 step 4d", "The session block signed by alice's identity with R' = rB + T2 (T2 of order 2): accepted by cofactored or batch verification, rejected by strict verification.", bob(), forged.finish(&forged.msg(0)), "bad_signature");

    // verify_key of mixed order: A + T8. A message signed with k ≡ 0 (mod 8) satisfies the
    // cofactorless equation under it, so only the prime-order check of §2.1 rejects it.
    let mut p = Plan::new("signatures/mixed verify key", Mode::Signed, &["bob"]);
    let mixed = (p.signing.verifying_key().to_edwards() + EIGHT_TORSION[1])
        .compress()
        .to_bytes();
    p.header[9] = b(&mixed);
    let ms = p.seal();
    let mm = ms.msg(0);
    let mcov = cat(&[&mm.hdr, &mm.f.concat()]);
    let minput = envelope::signature_input(&envelope::message_hash(&ms.hh, &mcov));
    let mseed = *ms.signing.as_bytes();
    let msig = ed_sign_with(
        &mseed,
        &mixed,
        &minput,
        "signatures/mixed",
        None,
        None,
        &|k| k.as_bytes()[0] & 7 == 0,
    );
    f.one("verify-key-mixed-order", "§2.1, §8 step 4f", "verify_key = A + T (T of order 8), block correctly signed; the message's signature has k ≡ 0 (mod 8), so [S]B = R + [k](A + T) holds: a receiver that rejects only small-order keys accepts it.", bob(), cat(&[&mcov, &b(&msig)]), "malformed");
    // verify_key y >= p: the 19 values p .. 2^255 - 1 of y (x sign bit clear); the first
    // that decodes to a point.
    let noncanon = (0u8..19)
        .map(|y0| {
            let mut y = [0xff; 32];
            y[0] = 0xed + y0;
            y[31] = 0x7f;
            y
        })
        .find(|y| ed25519_dalek::VerifyingKey::from_bytes(y).is_ok())
        .expect("some y >= p decodes");
    let mut p = Plan::new(
        "signatures/non-canonical verify key",
        Mode::Signed,
        &["bob"],
    );
    p.header[9] = b(&noncanon);
    let ns = p.seal();
    f.one("verify-key-y-at-least-p", "§2.1, §8 step 4f", "verify_key encodes y >= p (RFC 8032 §5.1.3 step 1: decoding fails), block correctly signed.", bob(), ns.finish(&ns.msg(0)), "malformed");
    f
}

fn bitflips() -> Family {
    let mut f = Family { cases: vec![] };
    for (mode, to) in [
        (Mode::Signed, &["bob"][..]),
        (Mode::Mac, &["bob", "carol"][..]),
        (Mode::SignOnly, &["bob"][..]),
    ] {
        let sess = honest(&format!("bitflips/{}", mode.as_str()), mode, to);
        let m = sess.msg(0);
        let good = sess.finish(&m);
        let spans = field_spans(&m, good.len());
        let blk = spans[3].0 + 3; // block bytes start after bin 16 header
        let (hb, _) = crate::forge::block_header(&sess.block);
        let hdr_at = blk + 1 + 2; // block array header, then bin 8 header of the header bytes
        let rec_at = hdr_at + hb.len();
        let entry0 = rec_at + 1 + 1; // list header, entry header
        let mut flips: Vec<(&str, usize, u8, &'static str, &'static str)> = vec![
            (
                "version",
                spans[0].0,
                0x01,
                "unsupported_version",
                "§8 step 2",
            ),
            ("suite", spans[1].0, 0x01, "unknown_suite", "§8 step 2"),
            ("session-ref", spans[2].0 + 5, 0x01, "malformed", "§7.1"),
            (
                "header-session-id",
                hdr_at + 1 + 1 + 1 + 1 + 18 + 2 + 3,
                0x01,
                "malformed",
                "§7.1 (session_ref no longer matches)",
            ),
            (
                "entry-key-id",
                entry0 + 1 + 2 + 4,
                0x01,
                "not_for_us",
                "§8 step 4b",
            ),
            (
                "entry-enc",
                entry0 + 1 + 18 + 2 + 4,
                0x01,
                "bad_signature",
                "§8 step 4d",
            ),
            (
                "block-signature",
                spans[3].1 - 10,
                0x01,
                "bad_signature",
                "§8 step 4d",
            ),
            ("seq", spans[4].0, 0x01, "bad_authenticator", "§8 step 9"),
            (
                "timestamp",
                spans[5].1 - 1,
                0x01,
                "bad_authenticator",
                "§8 step 9",
            ),
            (
                "nonce",
                spans[6].0 + 7,
                0x01,
                "bad_authenticator",
                "§8 step 9",
            ),
            (
                "metadata-value",
                spans[7].1 - 1,
                0x01,
                "bad_authenticator",
                "§8 step 9",
            ),
            (
                "body",
                spans[8].0 + 4,
                0x01,
                "bad_authenticator",
                "§8 step 9",
            ),
            (
                "authenticator",
                spans[9].0 + 10,
                0x01,
                "bad_authenticator",
                "§8 step 9",
            ),
        ];
        if mode.encrypts() {
            flips.push((
                "entry-wrapped",
                entry0 + 1 + 18 + 34 + 2 + 5,
                0x01,
                "bad_signature",
                "§8 step 4d",
            ));
            flips.push((
                "body-tag",
                spans[8].1 - 1,
                0x80,
                "bad_authenticator",
                "§8 step 9",
            ));
        }
        for (what, at, bit, class, rule) in flips {
            let mut x = good.clone();
            x[at] ^= bit;
            f.one(
                &format!("{}-{what}", mode.as_str()),
                rule,
                &format!(
                    "{} mode: byte {at} of the envelope (in the {what} field) XOR 0x{bit:02x}.",
                    mode.as_str()
                ),
                bob(),
                x,
                class,
            );
        }
    }
    f
}

fn versions() -> Family {
    let mut f = Family { cases: vec![] };
    let base = honest("versions/base", Mode::Signed, &["bob"]);
    let good = base.finish(&base.msg(0));
    let legacy = |message: &str| {
        crate::legacy::seal_legacy_v2(message)
            .expect("a JSON object")
            .into_bytes()
    };
    let with_legacy = || {
        let mut r = bob();
        r.accept_legacy = true;
        r
    };
    f.one(
        "legacy-v2-by-default",
        "legacy-v2.md §3 step 1",
        "A well-formed legacy v2 envelope; the receiver does not opt in to legacy input.",
        bob(),
        legacy(r#"{"method": "ping", "args": {}}"#),
        "legacy_not_allowed",
    );
    f.one(
        "legacy-v2-stripped-v3",
        "legacy-v2.md §3 step 1 (downgrade)",
        "The payload of a v3 message rewrapped by an attacker as an unsigned v2 envelope.",
        bob(),
        legacy(r#"{"method": "transfer", "args": {"to": "eve"}}"#),
        "legacy_not_allowed",
    );
    f.one(
        "legacy-oslo-1.0-by-default",
        "legacy-v2.md §3 step 1",
        "A bare JSON object (oslo.messaging's unversioned 1.0 format); the receiver does not opt in.",
        bob(),
        br#"{"method": "ping", "args": {}}"#.to_vec(),
        "legacy_not_allowed",
    );
    for (name, text, class, why) in [
        (
            "legacy-v2-newer-minor",
            r#"{"oslo.version": "2.1", "oslo.message": "{}"}"#,
            "unsupported_version",
            "oslo.version 2.1: a newer minor than ours (2.0).",
        ),
        (
            "legacy-v2-other-major",
            r#"{"oslo.version": "3.0", "oslo.message": "{}"}"#,
            "unsupported_version",
            "oslo.version 3.0: another major.",
        ),
        (
            "legacy-v2-extra-member",
            r#"{"oslo.version": "2.0", "oslo.message": "{}", "x": 1}"#,
            "malformed",
            "A member besides oslo.version and oslo.message.",
        ),
        (
            "legacy-v2-message-not-object",
            r#"{"oslo.version": "2.0", "oslo.message": "[1]"}"#,
            "malformed",
            "oslo.message holds a JSON array, not an object.",
        ),
        (
            "legacy-v2-version-not-digits",
            r#"{"oslo.version": "2.x", "oslo.message": "{}"}"#,
            "malformed",
            "oslo.version is not MAJOR.MINOR digits.",
        ),
    ] {
        f.one(
            name,
            "legacy-v2.md §3",
            &format!("{why} The receiver opts in to legacy input."),
            with_legacy(),
            text.as_bytes().to_vec(),
            class,
        );
    }
    // legacy-v2.md §2: '{' after JSON white space is legacy input too. A reader that looks
    // at the first byte only calls these unsupported_version (mutant LegacyBraceFirstOnly).
    f.one(
        "legacy-v2-leading-whitespace-by-default",
        "legacy-v2.md §2, §3 step 1",
        "A well-formed legacy v2 envelope after JSON white space (space, tab, CR, LF): still legacy input, which this receiver does not accept.",
        bob(),
        cat(&[b" \t\r\n", &legacy(r#"{"method": "ping", "args": {}}"#)]),
        "legacy_not_allowed",
    );
    f.one(
        "legacy-v2-leading-whitespace-opted-in",
        "legacy-v2.md §2, §3",
        "A legacy v2 envelope whose oslo.message is a JSON array, after JSON white space; the receiver opts in to legacy input, so the legacy reader rejects it.",
        with_legacy(),
        cat(&[b"\n  ", br#"{"oslo.version": "2.0", "oslo.message": "[1]"}"#]),
        "malformed",
    );
    f.one(
        "unknown-format",
        "legacy-v2.md §2",
        "The first byte is neither a MessagePack array header nor '{'.",
        bob(),
        cat(&[&[0x00], &good]),
        "unsupported_version",
    );
    let mut rx = bob();
    rx.revoked = vec!["alice"];
    f.one(
        "sender-revoked",
        "keyring.md §2 step 1, §8 step 4a",
        "A valid envelope from alice; the receiver trusts alice's key but has revoked it.",
        rx,
        good.clone(),
        "revoked",
    );
    let mut rx = bob();
    rx.validity = vec![("alice", None, Some(T0))];
    f.one(
        "sender-key-ended",
        "keyring.md §2 step 3",
        "alice's key is valid only for messages timestamped before T0; this one is timestamped T0.",
        rx,
        good.clone(),
        "expired",
    );
    let mut rx = bob();
    rx.validity = vec![("alice", Some(T0 + 1), None)];
    f.one(
        "sender-key-not-started",
        "keyring.md §2 step 3",
        "alice's key is valid only from T0 + 1; the message is timestamped T0.",
        rx,
        good,
        "not_yet_valid",
    );
    f
}

/// spec §8 step 5: a receiver whose keyring changes between the envelopes of one case.
fn reconfigure() -> Family {
    let mut f = Family { cases: vec![] };
    let r = "§8 step 5 (repeated for cached sessions)";
    let sess = honest("reconfigure/base", Mode::Signed, &["bob"]);
    let m0 = sess.finish(&sess.msg(0));
    let m1 = sess.finish(&sess.msg_with(1, T0 + 10, false, PAYLOAD, META));
    let mut revoked = bob();
    revoked.revoked = vec!["alice"];
    f.seq("revoked-after-session-cached", r, "Message 0 establishes the session; then alice's key is revoked; message 1 (by reference, from the cache) is revoked.", bob(), vec![step(m0.clone(), T0, "ok"), step_after(&revoked, m1.clone(), T0 + 10, "revoked")]);
    let mut untrusted = bob();
    untrusted.trusted = vec!["carol"];
    f.seq("untrusted-after-session-cached", r, "Message 0 establishes the session; then the keyring no longer trusts alice; message 1 (from the cache) is untrusted_sender.", bob(), vec![step(m0.clone(), T0, "ok"), step_after(&untrusted, m1.clone(), T0 + 10, "untrusted_sender")]);
    let mut ended = bob();
    ended.validity = vec![("alice", None, Some(T0 + 5))];
    f.seq("key-validity-ends-after-session-cached", "§8 step 5; keyring.md §2", "Message 0 establishes the session; then alice's key is valid only until T0 + 5; message 1, timestamped T0 + 10, is expired (key validity).", bob(), vec![step(m0.clone(), T0, "ok"), step_after(&ended, m1.clone(), T0 + 10, "expired")]);
    let late = sess.finish(&sess.msg_with(2, T0, false, PAYLOAD, META));
    f.seq("revoked-and-expired-cached-session", "§8 steps 5 before 6", "Message 0 establishes the session; alice is revoked; message 2 (by reference) arrives after the session's expiry plus skew: revoked (step 5) before expired (step 6).", bob(), vec![step(m0, T0, "ok"), step_after(&revoked, late, T0 + 3600 + 200, "revoked")]);
    f
}

/// `v3/reconfigure/keyring-changes.json`: negative cases whose steps may carry a `keyring`.
pub(super) fn reconfigure_file() -> Value {
    family_file("reconfigure/keyring-changes", "A receiver whose keyring changes between the envelopes of one case: step 5's re-checks of cached sessions.", reconfigure())
}

fn family_file(family: &str, description: &str, fam: Family) -> Value {
    family_file_with(family, description, fam, keys_json())
}

fn family_file_with(family: &str, description: &str, fam: Family, keys: Value) -> Value {
    let mut file = json!({
        "format": FORMAT,
        "family": family,
        "description": description,
        "spec": "spec/envelope-v3.md",
        "license": "CC0-1.0",
        "keys": keys,
        "cases": [],
    });
    let cases: Vec<Value> = fam
        .cases
        .into_iter()
        .map(|c| {
            let v = json!({
                "name": c.name,
                "description": c.description,
                "rule": c.rule,
                "failure": c.steps.last().map(|s| s.expect).unwrap_or("ok"),
                "receiver": c.receiver.to_json(),
                "steps": c.steps.iter().map(|s| {
                    let mut j = json!({
                        "now": s.now,
                        "envelope": hx(&s.envelope),
                        "expect": s.expect,
                    });
                    if let Some(k) = &s.keyring {
                        j["keyring"] = k.clone();
                    }
                    j
                }).collect::<Vec<_>>(),
            });
            if let Err(e) = verify_case(&file, &v) {
                panic!("{family}/{}: {e}", c.name);
            }
            v
        })
        .collect();
    file["cases"] = Value::Array(cases);
    file
}

pub(super) fn files() -> Vec<(&'static str, Value)> {
    let families: Vec<(&str, &str, Family)> = vec![
        ("structure", "Truncation, trailing bytes, field counts, field lengths, and the structural rules of headers, blocks and entries.", structure()),
        ("encoding", "The canonical MessagePack subset of §3: non-shortest encodings, wrong types, metadata order, deep nesting, lengths claiming gigabytes.", encoding()),
        ("policy", "Versions, suites, modes and the receiver's limits.", policy()),
        ("session", "Sender authentication, wraps, low-order shares, key commitment, and insiders forging messages.", sessions()),
        ("time", "Session lifetimes and clock skew.", time()),
        ("replay", "Ordered lists of envelopes opened by one receiver: replays, the window, one-shot sessions, session limits.", replay()),
        ("signatures", "Strict Ed25519 verification (§1) of message and block signatures, and the one encoding of every Ed25519 key on the wire (§2.1).", signatures()),
        ("order", "Envelopes with two defects whose class depends on the order of §8's steps, so that the MUST order is tested.", order()),
        ("bitflips", "One bit flipped in each field of a valid envelope, in each mode.", bitflips()),
        ("versions", "Legacy v2 input (spec/legacy-v2.md), unknown formats, and the keyring's revocation and key validity (spec/keyring.md).", versions()),
    ];
    families
        .into_iter()
        .map(|(name, description, fam)| {
            (
                name,
                family_file(&format!("negative/{name}"), description, fam),
            )
        })
        .collect()
}

/// `v3/negative/INDEX.md`: every negative case, its failure class and the rule.
pub(super) fn index(files: &[(&'static str, Value)]) -> Vec<u8> {
    let mut s = String::from(
        "# Negative vectors: index\n\nGenerated by `cargo run -- vectors generate vectors/` \
         (do not edit). Each row is one case: the class a receiver must return (for a case \
         with several steps, the class of the last step) and the rule of \
         `spec/envelope-v3.md` (or `spec/replay.md`) that rejects it.\n\n\
         | file | case | failure | rule |\n|---|---|---|---|\n",
    );
    for (name, file) in files {
        for c in file["cases"].as_array().expect("cases") {
            s.push_str(&format!(
                "| {name}.json | {} | {} | {} |\n",
                c["name"].as_str().unwrap_or(""),
                c["failure"].as_str().unwrap_or(""),
                c["rule"].as_str().unwrap_or("")
            ));
        }
    }
    s.into_bytes()
}

/// Opens every step of a negative case with its receiver, in order, and compares.
pub(super) fn verify_case(file: &Value, case: &Value) -> Result<(), String> {
    let opener = opener_from_json(file, &case["receiver"])?;
    let steps = case["steps"].as_array().ok_or("steps")?;
    for (i, s) in steps.iter().enumerate() {
        if !s["keyring"].is_null() {
            opener.set_keyring(super::keyring_from_json(file, &s["keyring"])?);
        }
        let env = bytes(&s["envelope"])?;
        // The one entry point for every version (spec/legacy-v2.md §2).
        let got = outcome_any(&opener.open_any_at(&env, num(&s["now"])?));
        let want = s["expect"].as_str().ok_or("expect")?;
        if got != want {
            return Err(format!("step {i}: got {got}, expected {want}"));
        }
    }
    match (
        steps.last().and_then(|s| s["expect"].as_str()),
        case["failure"].as_str(),
    ) {
        (Some(a), Some(b)) if a == b => Ok(()),
        _ => Err("failure does not match the last step's outcome".into()),
    }
}

// ---- issue 15: the post-quantum suite 2 ------------------------------------------------------

/// A receiver of the `v3/pq/` files (suites 1 and 2, the post-quantum fields written).
fn bob_pq() -> Receiver {
    Receiver::new_pq("bob-pq")
}

/// The rules of suite 2: the kinds a suite allows, the length of a kind-3 `enc`, the
/// envelope's suite against its session's, downgrades refused by receivers that require
/// suite 2 (their policy, or the keyring's `require=pq`), and the post-quantum recipient
/// limit (spec §1.2, §5.4, §7.1, §7.3, §8 steps 3-5; keyring.md §2 rule 4).
fn post_quantum() -> Family {
    let mut f = Family { cases: vec![] };
    let signed = Mode::Signed;

    // A kind-3 entry whose enc is not 1120 bytes (spec §5.4), re-signed.
    for (name, len, what) in [
        ("xwing-enc-1119-bytes", 1119usize, "one byte short"),
        ("xwing-enc-1121-bytes", 1121, "one byte long"),
        ("xwing-enc-32-bytes", 32, "the length of an X25519 enc"),
    ] {
        let p = Plan::new_pq(&format!("pq/{name}"), signed, &["bob-pq"]);
        let mut e = p.entries();
        let mut enc = bytes_of_bin(&e[0][2]);
        enc.resize(len, 0x42);
        e[0][2] = b(&enc);
        let sess = p.seal_entries(&e);
        f.one(
            name,
            "§5.4, §9",
            &format!("Suite 2: bob-pq's kind-3 entry has an enc of {len} bytes ({what}; X-Wing's is 1120). Block correctly signed."),
            bob_pq(),
            sess.finish(&sess.msg(0)),
            "malformed",
        );
    }

    // A classical X25519 wrap (kind 1) inside a suite-2 session: the weakest-wrap rule.
    let mut p = Plan::new("pq/classical-wrap-in-pq-session", signed, &["bob-pq"]);
    p.suite = 2;
    p.header[1] = u(2);
    let sess = p.seal();
    f.one(
        "x25519-wrap-in-suite-2-session",
        "§5.4 (kinds per suite), §5.6",
        "A suite-2 session whose only entry is a kind-1 X25519 wrap to bob-pq's X25519 key (a valid wrap, block correctly signed): a classical wrap inside a post-quantum session.",
        bob_pq(),
        sess.finish(&sess.msg(0)),
        "malformed",
    );
    // And the other way: an X-Wing wrap (kind 3) inside a suite-1 session.
    let mut p = Plan::new_pq("pq/xwing-wrap-in-suite-1-session", signed, &["bob-pq"]);
    p.suite = 1;
    p.header[1] = u(1);
    let sess = p.seal();
    f.one(
        "xwing-wrap-in-suite-1-session",
        "§5.4 (kinds per suite)",
        "A suite-1 session whose only entry is a kind-3 X-Wing wrap to bob-pq (a valid wrap, block correctly signed).",
        bob_pq(),
        sess.finish(&sess.msg(0)),
        "malformed",
    );

    // X-Wing rejects implicitly: a damaged enc is a wrap that does not open.
    for (name, at, what) in [
        (
            "xwing-enc-mlkem-part-damaged",
            100usize,
            "byte 100 (in the ML-KEM-768 ciphertext)",
        ),
        (
            "xwing-enc-x25519-part-damaged",
            1100,
            "byte 1100 (in the X25519 ephemeral key)",
        ),
    ] {
        let p = Plan::new_pq(&format!("pq/{name}"), signed, &["bob-pq"]);
        let mut e = p.entries();
        let mut enc = bytes_of_bin(&e[0][2]);
        enc[at] ^= 0x01;
        e[0][2] = b(&enc);
        let sess = p.seal_entries(&e);
        f.one(
            name,
            "§5.4 (kind 3), §8 step 4e",
            &format!("Suite 2: {what} of bob-pq's enc flipped, block re-signed: X-Wing decapsulates to another secret and the wrap does not open."),
            bob_pq(),
            sess.finish(&sess.msg(0)),
            "bad_wrap",
        );
    }
    // bob's classical key alone does not reach a suite-2 session.
    let sess = Plan::new_pq("pq/classical-receiver", signed, &["bob-pq"]).seal();
    let mut classical_bob = Receiver::new_pq("bob");
    classical_bob.identities = vec!["bob"];
    f.one(
        "classical-receiver-not-for-us",
        "§5.4, §8 step 4b",
        "A suite-2 session to bob-pq; the receiver holds bob's classical identity (the same X25519 key, no X-Wing key): no entry of a kind and key id it holds.",
        classical_bob,
        sess.finish(&sess.msg(0)),
        "not_for_us",
    );

    // Downgrades: a suite-1 session to bob-pq (its X25519 key).
    let classical = Plan::new("pq/downgrade", signed, &["bob-pq"]).seal();
    let env = classical.finish(&classical.msg(0));
    let mut only_pq = bob_pq();
    only_pq.suites = vec![2];
    f.one(
        "downgrade-receiver-requires-suite-2",
        "§1.2, §8 step 3, §10.2",
        "A suite-1 session to bob-pq; the receiver allows suite 2 only (Policy::require_post_quantum): refused before any cryptography.",
        only_pq,
        env.clone(),
        "suite_not_allowed",
    );
    let mut per_sender = bob_pq();
    per_sender.pq.as_mut().expect("a pq receiver").require_pq = vec!["alice"];
    f.one(
        "downgrade-sender-requires-pq",
        "keyring.md §2 rule 4, §8 step 4a",
        "A suite-1 session from alice to bob-pq; the receiver allows suites 1 and 2 but trusts alice with require=pq (sender_require_pq).",
        per_sender.clone(),
        env,
        "suite_not_allowed",
    );
    // The same rule for a session established before the keyring said require=pq.
    let m0 = classical.finish(&classical.msg_with(0, T0, true, PAYLOAD, META));
    let m1 = classical.finish(&classical.msg_with(1, T0 + 1, false, PAYLOAD, META));
    f.seq(
        "downgrade-sender-requires-pq-cached",
        "keyring.md §2 rule 4, §8 step 5",
        "Message 0 (suite 1, inline) is accepted; the keyring then trusts alice with require=pq; message 1 (by reference, from the cache) is refused.",
        bob_pq(),
        vec![step(m0, T0, "ok"), {
            let mut s = step_after(&per_sender, m1, T0 + 1, "suite_not_allowed");
            s.keyring.as_mut().expect("a keyring step")["sender_require_pq"] = json!(["alice"]);
            s
        }],
    );

    // The envelope's suite differs from its session's (§7.1, §8 step 5; issue 14's leftover).
    let pq = Plan::new_pq("pq/envelope-suite", signed, &["bob-pq"]).seal();
    let mut m = pq.msg(0);
    m.f[1] = u(1);
    f.one(
        "envelope-suite-1-in-suite-2-session",
        "§7.1, §8 step 4",
        "The inline block is a suite-2 session to bob-pq; the envelope's field 1 says suite 1. Re-authenticated with the session's key.",
        bob_pq(),
        pq.finish(&m),
        "malformed",
    );
    let mut m = classical.msg(0);
    m.f[1] = u(2);
    f.one(
        "envelope-suite-2-in-suite-1-session",
        "§7.1, §8 step 4",
        "The inline block is a suite-1 session; the envelope's field 1 says suite 2. Re-authenticated with the session's key.",
        bob_pq(),
        classical.finish(&m),
        "malformed",
    );
    let m0 = pq.finish(&pq.msg_with(0, T0, true, PAYLOAD, META));
    let mut by_ref = pq.msg_with(1, T0 + 1, false, PAYLOAD, META);
    by_ref.f[1] = u(1);
    f.seq(
        "envelope-suite-differs-from-cached-session",
        "§8 step 5",
        "Message 0 establishes a suite-2 session; message 1 refers to it by session_ref with envelope suite 1 (re-authenticated): the session's suite is not the envelope's.",
        bob_pq(),
        vec![step(m0, T0, "ok"), step(pq.finish(&by_ref), T0 + 1, "malformed")],
    );

    // The post-quantum recipient limit (§7.3), lowered by the receiver's policy to 2.
    let three = ["bob-pq", "carol-pq", "team-pq"];
    let pq3 = Plan::new_pq("pq/limit", signed, &three).seal();
    let c3 = Plan::new("pq/limit-classical", signed, &three).seal();
    let mut small = bob_pq();
    small.pq.as_mut().expect("a pq receiver").max_pq_recipients = 2;
    f.seq(
        "pq-recipients-over-limit",
        "§7.3, §5.3",
        "The receiver's post-quantum recipient limit is 2 (max_recipients stays 4096): a suite-1 session to bob-pq, carol-pq and team-pq opens; the same three in a suite-2 session are over the limit, decided from the array header.",
        small,
        vec![
            step(c3.finish(&c3.msg(0)), T0, "ok"),
            step(pq3.finish(&pq3.msg(0)), T0, "limit_exceeded"),
        ],
    );
    f
}

/// `v3/pq/negative/suite-2.json`.
pub(super) fn pq_file() -> Value {
    family_file_with(
        "pq/negative",
        "Suite 2 (X-Wing wraps, issue 15): entry kinds per suite, the length of a kind-3 enc, damaged X-Wing ciphertexts, downgrades to suite 1 refused by receivers that require suite 2, the envelope's suite against its session's, and the post-quantum recipient limit.",
        post_quantum(),
        super::keys_json_pq(),
    )
}
