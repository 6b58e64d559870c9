//! Invariants shared by the fuzz targets (`fuzz/fuzz_targets/`) and their replay as a plain
//! test over the checked-in corpus (`tests/fuzz_corpus.rs`). Each public function takes the
//! raw bytes a fuzzer hands a target and panics when an invariant breaks; "no panic" is
//! only the least of what they check.
//!
//! Included by path from both places, so the fuzz crate and the tests run the same code.
#![allow(dead_code)]

use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use rpcseal::forge;
use rpcseal::{
    GroupKey, GroupPublicKey, Identity, Inline, Metadata, Mode, Opener, PublicIdentity, Received,
    Recipient, Sealer, SealerConfig, SymmetricKey,
};

/// The clock every fixture envelope is sealed and opened at.
pub const T0: u64 = 1_800_000_000;

/// SplitMix64: a deterministic stream so the fixture (and so the seed corpus) is the same on
/// every run. Test fixtures only: it is not a cryptographic generator, whatever the marker
/// trait below says.
pub struct TestRng(u64);

impl TestRng {
    pub fn new(seed: u64) -> TestRng {
        TestRng(seed)
    }
}

impl TestRng {
    fn next_u32(&mut self) -> u32 {
        self.next_u64() as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}
impl rand_core::TryRng for TestRng {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(self.next_u32())
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(self.next_u64())
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), Self::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}
impl rand_core::TryCryptoRng for TestRng {}

/// One envelope the fixture sealed.
pub struct Original {
    pub name: &'static str,
    pub bytes: Vec<u8>,
    pub payload: Vec<u8>,
    pub metadata: Metadata,
    /// True when the fixture's receiver must accept it (sealed for it by a trusted sender).
    pub for_receiver: bool,
    /// The session block to import first (the envelope refers to its session).
    pub needs_block: Option<Vec<u8>>,
}

/// Keys and envelopes every invariant works with: Alice (trusted) seals to Bob (the
/// receiver), to Bob's group, and to others; Mallory is a sender Bob does not trust.
pub struct Fixture {
    pub alice: Identity,
    pub bob: Identity,
    pub carol: Identity,
    pub dave: Identity,
    pub mallory: Identity,
    pub group: GroupKey,
    pub originals: Vec<Original>,
    /// Session blocks sent out of band.
    pub blocks: Vec<Vec<u8>>,
}

/// The session block an envelope carries inline.
pub fn inline_block(env: &[u8]) -> Vec<u8> {
    let fields = split_array(env, 10).expect("a fixture envelope");
    bin_payload(&fields[3]).expect("an inline block").to_vec()
}

fn id(n: u8) -> Identity {
    Identity::from_parts(&[n; 32], &[n.wrapping_add(100); 32])
}

fn meta(pairs: &[(&str, &str)]) -> Metadata {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

struct Builder {
    rng: TestRng,
    originals: Vec<Original>,
}

impl Builder {
    fn push(
        &mut self,
        name: &'static str,
        sealer: &mut Sealer,
        payload: &[u8],
        metadata: &Metadata,
        for_receiver: bool,
        needs_block: Option<Vec<u8>>,
    ) {
        let bytes = sealer
            .seal_deterministic(payload, metadata, T0, &mut self.rng)
            .expect("fixture seals");
        self.originals.push(Original {
            name,
            bytes,
            payload: payload.to_vec(),
            metadata: metadata.clone(),
            for_receiver,
            needs_block,
        });
    }
}

impl Fixture {
    fn build() -> Fixture {
        let alice = id(1);
        let bob = id(2);
        let carol = id(3);
        let dave = id(4);
        let mallory = id(5);
        let group = GroupKey::from_secret_bytes(&[66; 32]);
        let mut b = Builder {
            rng: TestRng::new(0x5eed),
            originals: Vec::new(),
        };
        let mut blocks = Vec::new();
        let r = |i: &Identity| Recipient::from(i.public());
        let rpc = meta(&[
            ("content_type", "application/json"),
            ("message_id", "7f3c"),
            ("method", "orders.create"),
            ("reply_to", "svc.billing.replies"),
        ]);
        let cfg = SealerConfig::new;
        let mut s = Sealer::new(&alice, &[r(&bob)], cfg(Mode::Signed)).unwrap();
        b.push("signed-1to1", &mut s, b"{\"sku\": 42}", &rpc, true, None);
        let mut s = Sealer::new(&alice, &[r(&carol), r(&bob), r(&dave)], cfg(Mode::Mac)).unwrap();
        b.push("mac-1to3", &mut s, b"hello, three", &rpc, true, None);
        let mut s = Sealer::new(&alice, &[r(&bob)], cfg(Mode::Mac)).unwrap();
        b.push("mac-1to1-empty", &mut s, b"", &Metadata::new(), true, None);
        let mut s = Sealer::new(&alice, &[r(&bob), r(&carol)], cfg(Mode::SignOnly)).unwrap();
        b.push("signonly-1to2", &mut s, b"in clear", &rpc, true, None);
        let to_group = [Recipient::from(group.public()), r(&dave)];
        let mut s = Sealer::new(&alice, &to_group, cfg(Mode::Signed)).unwrap();
        b.push("signed-group", &mut s, &[0xa5; 300], &rpc, true, None);
        // By reference: the first message carries the block, the second refers to it.
        let mut s = Sealer::new(
            &alice,
            &[r(&bob)],
            cfg(Mode::Mac).inline(Inline::FirstMessage),
        )
        .unwrap();
        b.push("mac-first", &mut s, b"first", &rpc, true, None);
        let first_block = inline_block(&b.originals.last().expect("pushed").bytes);
        b.push(
            "mac-by-ref",
            &mut s,
            b"second",
            &rpc,
            true,
            Some(first_block.clone()),
        );
        blocks.push(first_block);
        // Signed by reference; the envelope that carried the block is not kept, so the
        // session reaches the receiver only through an imported block.
        let mut s = Sealer::new(
            &alice,
            &[r(&bob), r(&carol)],
            cfg(Mode::Signed).inline(Inline::FirstMessage),
        )
        .unwrap();
        let carrier = s
            .seal_deterministic(b"", &Metadata::new(), T0, &mut b.rng)
            .unwrap();
        let signed_block = inline_block(&carrier);
        b.push(
            "signed-by-ref",
            &mut s,
            b"out of band session",
            &rpc,
            true,
            Some(signed_block.clone()),
        );
        blocks.push(signed_block);
        // Not for the receiver: an untrusted sender, and a session to others only.
        let mut s = Sealer::new(&mallory, &[r(&bob)], cfg(Mode::Signed)).unwrap();
        b.push(
            "untrusted-sender",
            &mut s,
            b"from mallory",
            &rpc,
            false,
            None,
        );
        let mut s = Sealer::new(&alice, &[r(&carol), r(&dave)], cfg(Mode::Mac)).unwrap();
        b.push(
            "not-for-bob",
            &mut s,
            b"for carol and dave",
            &rpc,
            false,
            None,
        );
        Fixture {
            alice,
            bob,
            carol,
            dave,
            mallory,
            group,
            originals: b.originals,
            blocks,
        }
    }

    /// A fresh opener for Bob (his identity and the group key), trusting Alice only, with
    /// the default policy and replay store: fresh per input, so every run is deterministic
    /// whatever the default replay store keeps.
    pub fn opener(&self) -> Opener {
        Opener::builder()
            .identity(&self.bob)
            .group_key(&self.group)
            .trust(self.alice.public())
            .build()
            .expect("fixture opener")
    }
}

/// The fixture, built once per process.
pub fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(Fixture::build)
}

/// Target `envelope_decode`: `rpcseal::inspect` on arbitrary bytes. Where it accepts, the
/// decoded fields re-encode to the input (the encoding is canonical, spec §3), no strict
/// prefix and no extension of the input is accepted (the encoding is self-delimiting and
/// trailing bytes are refused), and what it reports is consistent with the bytes.
pub fn envelope_decode(data: &[u8]) {
    let reencoded = forge::reencode_envelope(data);
    match rpcseal::inspect(data) {
        Ok(info) => {
            let re = reencoded.expect("inspect accepted what the strict decoder refused");
            assert_eq!(re, data, "accepted a non-canonical envelope encoding");
            assert_eq!(info.version, 3);
            assert_eq!(info.envelope_len, data.len());
            assert!(info.body_len + info.authenticator_len < data.len());
            assert!(info.metadata.len() <= 64);
            assert!(info.metadata.keys().all(|k| !k.is_empty()));
            if let Some(s) = &info.session {
                check_session_info(s);
                assert!(s.block_len < data.len());
            }
            assert!(rpcseal::inspect(&data[..data.len() - 1]).is_err());
            let mut longer = data.to_vec();
            longer.push(0);
            assert!(rpcseal::inspect(&longer).is_err(), "trailing byte accepted");
        }
        Err(e) => {
            assert!(
                reencoded.is_err(),
                "the strict decoder accepted what inspect refused"
            );
            assert!(!e.to_string().is_empty());
        }
    }
}

fn check_session_info(s: &rpcseal::SessionInfo) {
    assert!(!s.recipients.is_empty() && s.recipients.len() <= rpcseal::DEFAULT_MAX_RECIPIENTS);
    let mut ids = s.recipients.clone();
    ids.sort();
    ids.dedup();
    assert_eq!(
        ids.len(),
        s.recipients.len(),
        "duplicate recipient accepted"
    );
    assert!(s.expires > s.not_before);
    assert!(s.max_messages > 0);
}

/// Target `session_block_decode`: `rpcseal::inspect_session_block` on arbitrary bytes,
/// with the same canonical-encoding, prefix and consistency checks.
pub fn session_block_decode(data: &[u8]) {
    let reencoded = forge::reencode_session_block(data);
    match rpcseal::inspect_session_block(data) {
        Ok(info) => {
            let re = reencoded.expect("inspect accepted what the strict decoder refused");
            assert_eq!(re, data, "accepted a non-canonical session block encoding");
            assert_eq!(info.block_len, data.len());
            check_session_info(&info);
            assert!(rpcseal::inspect_session_block(&data[..data.len() - 1]).is_err());
            let mut longer = data.to_vec();
            longer.push(0);
            assert!(rpcseal::inspect_session_block(&longer).is_err());
        }
        Err(_) => assert!(reencoded.is_err()),
    }
}

/// Opens `data` with a fresh fixture opener at [`T0`] (sessions in `prime` imported
/// first) and checks the one rule that matters: success only for bytes the fixture sealed
/// for the receiver, with exactly the payload, metadata and sender sealed.
fn open_checked(data: &[u8], prime: Option<&[u8]>) -> bool {
    let fx = fixture();
    let opener = fx.opener();
    if let Some(block) = prime {
        opener
            .import_session_at(block, T0)
            .expect("the fixture's own session block imports");
    }
    match opener.open_at(data, T0) {
        Ok(opened) => {
            let Some(orig) = fx.originals.iter().find(|o| o.bytes == data) else {
                panic!("opened bytes that were never sealed for this receiver");
            };
            assert!(orig.for_receiver, "opened {} (not for us)", orig.name);
            assert_eq!(opened.payload, orig.payload, "{}", orig.name);
            assert_eq!(opened.metadata, orig.metadata, "{}", orig.name);
            assert_eq!(opened.sender, fx.alice.key_id());
            assert_eq!(opened.timestamp, T0);
            let info = rpcseal::inspect(data).expect("opened, so it decodes");
            assert_eq!(info.seq, opened.seq);
            assert_eq!(info.metadata, opened.metadata);
            true
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            false
        }
    }
}

/// Target `open_fixed_keys`: arbitrary bytes to an opener with fixed keys.
pub fn open_fixed_keys(data: &[u8]) {
    open_checked(data, None);
}

/// Target `key_strings`: every key-string parser on arbitrary text. Whatever parses prints
/// back as exactly the trimmed input (one encoding per key, spec §2.4); a secret never
/// parses as a recipient; errors never echo the key's body.
pub fn key_strings(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let t = text.trim();
    let body = t.split_once(':').map_or("", |(_, b)| b);
    // Only a body that could hold key material is searched for in error messages: 43 or
    // more base64url characters (the shortest key, 32 bytes, takes 43). Shorter runs occur
    // in the errors' own fixed text (the prefix list names `RPCSEAL-SECRET-GROUP-XWING`,
    // 26 characters), which is not an echo of the input.
    let key_like = body.len() >= 43
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let quiet = |e: &rpcseal::KeyError| {
        if key_like {
            assert!(!e.to_string().contains(body), "error echoes the key: {e}");
        }
    };
    match Identity::from_secret_string(&text) {
        Ok(id) => {
            assert_eq!(&*id.to_secret_string(), t);
            let dbg = format!("{id:?}");
            assert!(!dbg.contains(body), "Debug shows the secret");
        }
        Err(e) => quiet(&e),
    }
    match GroupKey::from_secret_string(&text) {
        Ok(g) => {
            assert_eq!(&*g.to_secret_string(), t);
            assert!(!format!("{g:?}").contains(body), "Debug shows the secret");
        }
        Err(e) => quiet(&e),
    }
    let public = PublicIdentity::parse(&text);
    match &public {
        Ok(p) => assert_eq!(p.to_string(), t),
        Err(e) => quiet(e),
    }
    let group = GroupPublicKey::parse(&text);
    match &group {
        Ok(g) => assert_eq!(g.to_string(), t),
        Err(e) => quiet(e),
    }
    let symmetric = SymmetricKey::from_secret_string(&text);
    match &symmetric {
        Ok(k) => {
            assert_eq!(&*k.to_secret_string(), t);
            assert!(!format!("{k:?}").contains(body), "Debug shows the secret");
        }
        Err(e) => quiet(e),
    }
    match Recipient::parse(&text) {
        Ok(Recipient::Service(p)) => assert_eq!(public.as_ref().ok(), Some(&p)),
        Ok(Recipient::Group(g)) => assert_eq!(group.as_ref().ok(), Some(&g)),
        Ok(Recipient::Symmetric(k)) => {
            let parsed = symmetric.as_ref().expect("Recipient::parse accepted it");
            assert_eq!(k.key_id(), parsed.key_id());
            assert_eq!(k.to_secret_string(), parsed.to_secret_string());
            assert!(!format!("{k:?}").contains(body), "Debug shows the secret");
        }
        Err(e) => {
            assert!(public.is_err() && group.is_err() && symmetric.is_err());
            quiet(&e);
        }
    }
}

/// Target `legacy_v2`: arbitrary bytes to `open_any` of a receiver that opted in to legacy
/// v2 and of one that did not. A legacy message comes only from bytes that look like a JSON
/// object, only with the opt-in, and carries a compatible version and a JSON object that
/// `seal_legacy_v2` wraps back to the same message; a verified message only ever comes
/// from bytes the fixture sealed for the receiver.
pub fn legacy_v2(data: &[u8]) {
    let fx = fixture();
    let strict = fx.opener();
    let lenient = Opener::builder()
        .identity(&fx.bob)
        .group_key(&fx.group)
        .trust(fx.alice.public())
        .policy(rpcseal::Policy::default().dangerous_accept_unauthenticated_legacy_v2())
        .build()
        .expect("fixture opener");
    let looks_like_json = data
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .is_some_and(|b| *b == b'{');
    match strict.open_any_at(data, T0) {
        Ok(Received::UnauthenticatedLegacy(_)) => {
            panic!("legacy input accepted without the opt-in")
        }
        Ok(Received::Verified(_)) => assert!(open_checked(data, None)),
        Ok(_) => {}
        Err(e) => {
            if looks_like_json && data.len() <= rpcseal::DEFAULT_MAX_PAYLOAD {
                assert_eq!(e.kind(), rpcseal::ErrorKind::LegacyNotAllowed);
            }
        }
    }
    match lenient.open_any_at(data, T0) {
        Ok(Received::UnauthenticatedLegacy(m)) => {
            assert!(looks_like_json, "legacy message from non-JSON bytes");
            // oslo 2.x no newer than ours, or a bare 1.0 object.
            assert!(
                m.version() == (1, 0)
                    || (m.version().0 == 2 && m.version().1 <= rpcseal::OSLO_VERSION.1)
            );
            let again = rpcseal::seal_legacy_v2(m.unauthenticated_message())
                .expect("the inner message is a JSON object");
            match lenient.open_any_at(again.as_bytes(), T0) {
                Ok(Received::UnauthenticatedLegacy(back)) => {
                    assert_eq!(back.unauthenticated_message(), m.unauthenticated_message());
                    assert_eq!(back.version(), rpcseal::OSLO_VERSION);
                }
                other => panic!("re-wrapped legacy message not read back: {other:?}"),
            }
            // The Debug form says what it is and never prints the unauthenticated body.
            let dbg = format!("{m:?}");
            assert!(dbg.contains("unauthenticated"));
        }
        Ok(Received::Verified(_)) => assert!(open_checked(data, None)),
        Ok(_) => {}
        Err(_) => {}
    }
}

/// One change the structure-aware target makes to an envelope.
#[derive(Arbitrary, Debug)]
pub enum Mutation {
    FlipBit {
        at: u32,
        bit: u8,
    },
    ReplaceByte {
        at: u32,
        byte: u8,
    },
    Truncate {
        to: u32,
    },
    Insert {
        at: u32,
        bytes: Vec<u8>,
    },
    Remove {
        at: u32,
        len: u8,
    },
    /// Replace one part (an envelope field or, inside an inline block, a block field) with a
    /// part of another original, lengths re-framed so the result still parses.
    Splice {
        part: u8,
        from: u8,
        from_part: u8,
    },
    /// Set an integer field (version, suite, seq, timestamp) to a value, canonically encoded.
    SetUint {
        part: u8,
        value: u64,
    },
}

/// The structure-aware target's input: which original, and what to do to it.
#[derive(Arbitrary, Debug)]
pub struct MutationCase {
    pub original: u8,
    pub mutations: Vec<Mutation>,
}

/// An envelope cut into its raw parts: the 10 fields, and the inline block's 3 fields when
/// field 3 holds one. Reassembling gives the input back.
struct Parts {
    fields: Vec<Vec<u8>>,
    block: Option<Vec<Vec<u8>>>,
}

/// Length of the MessagePack value at the start of `b` (only the types the format uses).
fn value_len(b: &[u8]) -> Option<usize> {
    let be = |n: usize| -> Option<usize> {
        let s = b.get(1..1 + n)?;
        Some(s.iter().fold(0usize, |a, x| (a << 8) | usize::from(*x)))
    };
    let (head, body) = match *b.first()? {
        0x00..=0x7f | 0xc0 => (1, 0),
        t @ 0xa0..=0xbf => (1, usize::from(t & 0x1f)),
        0xcc => (2, 0),
        0xcd => (3, 0),
        0xce => (5, 0),
        0xcf => (9, 0),
        0xc4 | 0xd9 => (2, be(1)?),
        0xc5 | 0xda => (3, be(2)?),
        0xc6 | 0xdb => (5, be(4)?),
        t @ (0x80..=0x9f | 0xdc..=0xdf) => {
            let (head, n) = match t {
                0x80..=0x8f => (1, usize::from(t & 0x0f) * 2),
                0x90..=0x9f => (1, usize::from(t & 0x0f)),
                0xdc => (3, be(2)?),
                0xdd => (5, be(4)?),
                0xde => (3, be(2)? * 2),
                _ => (5, be(4)? * 2),
            };
            let mut at = head;
            for _ in 0..n {
                at += value_len(b.get(at..)?)?;
            }
            return Some(at);
        }
        _ => return None,
    };
    (head + body <= b.len()).then_some(head + body)
}

fn bin_payload(v: &[u8]) -> Option<&[u8]> {
    let head = match v.first()? {
        0xc4 => 2,
        0xc5 => 3,
        0xc6 => 5,
        _ => return None,
    };
    v.get(head..)
}

fn split_array(b: &[u8], n: usize) -> Option<Vec<Vec<u8>>> {
    if *b.first()? != 0x90 | n as u8 {
        return None;
    }
    let mut at = 1;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let len = value_len(b.get(at..)?)?;
        out.push(b[at..at + len].to_vec());
        at += len;
    }
    (at == b.len()).then_some(out)
}

impl Parts {
    fn split(env: &[u8]) -> Option<Parts> {
        let fields = split_array(env, 10)?;
        let block = bin_payload(&fields[3]).and_then(|b| split_array(b, 3));
        Some(Parts { fields, block })
    }

    fn count(&self) -> usize {
        10 + self.block.as_ref().map_or(0, Vec::len)
    }

    fn get(&self, i: usize) -> &[u8] {
        match i {
            0..=9 => &self.fields[i],
            _ => &self.block.as_ref().expect("counted")[i - 10],
        }
    }

    fn set(&mut self, i: usize, v: Vec<u8>) {
        match i {
            0..=9 => self.fields[i] = v,
            _ => self.block.as_mut().expect("counted")[i - 10] = v,
        }
    }

    fn join(mut self) -> Vec<u8> {
        if let Some(block) = self.block.take() {
            let inner: Vec<u8> = std::iter::once(0x93).chain(block.concat()).collect();
            self.fields[3] = bin(&inner);
        }
        std::iter::once(0x9a).chain(self.fields.concat()).collect()
    }
}

fn bin(payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(payload.len() + 5);
    match payload.len() {
        n if n <= 0xff => v.extend_from_slice(&[0xc4, n as u8]),
        n if n <= 0xffff => {
            v.push(0xc5);
            v.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            v.push(0xc6);
            v.extend_from_slice(&(n as u32).to_be_bytes());
        }
    }
    v.extend_from_slice(payload);
    v
}

fn uint(v: u64) -> Vec<u8> {
    match v {
        0..=0x7f => vec![v as u8],
        0x80..=0xff => vec![0xcc, v as u8],
        0x100..=0xffff => [&[0xcd][..], &(v as u16).to_be_bytes()].concat(),
        0x1_0000..=0xffff_ffff => [&[0xce][..], &(v as u32).to_be_bytes()].concat(),
        _ => [&[0xcf][..], &v.to_be_bytes()].concat(),
    }
}

/// Applies one mutation; `None` when it does not apply (the input stays as it was).
fn apply(env: &[u8], m: &Mutation) -> Option<Vec<u8>> {
    let fx = fixture();
    let mut out = env.to_vec();
    let n = out.len();
    let pos = |at: u32, len: usize| (at as usize).checked_rem(len);
    match *m {
        Mutation::FlipBit { at, bit } => out[pos(at, n)?] ^= 1 << (bit % 8),
        Mutation::ReplaceByte { at, byte } => out[pos(at, n)?] = byte,
        Mutation::Truncate { to } => out.truncate(pos(to, out.len())?),
        Mutation::Insert { at, ref bytes } => {
            let at = pos(at, out.len() + 1)?;
            out.splice(at..at, bytes.iter().copied());
        }
        Mutation::Remove { at, len } => {
            let at = pos(at, out.len())?;
            let end = (at + usize::from(len).max(1)).min(out.len());
            out.drain(at..end);
        }
        Mutation::Splice {
            part,
            from,
            from_part,
        } => {
            let mut p = Parts::split(&out)?;
            let donor = &fx.originals[usize::from(from) % fx.originals.len()];
            let d = Parts::split(&donor.bytes).expect("originals parse");
            let i = usize::from(part) % p.count();
            let v = d.get(usize::from(from_part) % d.count()).to_vec();
            p.set(i, v);
            out = p.join();
        }
        Mutation::SetUint { part, value } => {
            let mut p = Parts::split(&out)?;
            // Fields 1 (version), 2 (suite), 5 (seq), 6 (timestamp).
            let i = [1usize, 2, 5, 6][usize::from(part) % 4];
            p.set(i, uint(value));
            out = p.join();
        }
    }
    Some(out)
}

/// Target `mutate_envelope`: start from one of the fixture's sealed envelopes, apply
/// arbitrary-driven mutations, and open the result with the fixture's receiver (with the
/// original's session imported when it is sent by reference). An unmodified original
/// sealed for the receiver opens with exactly what was sealed; anything else never opens
/// unless it is byte for byte another original. The decode invariants run on every result.
pub fn mutate_envelope(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(case) = MutationCase::arbitrary(&mut u) else {
        return;
    };
    mutate_case(&case);
}

/// [`mutate_envelope`] on a decoded case (the property tests drive it directly).
pub fn mutate_case(case: &MutationCase) {
    let fx = fixture();
    let orig = &fx.originals[usize::from(case.original) % fx.originals.len()];
    let mut env = orig.bytes.clone();
    // Bounded work per input: a handful of mutations is all a single message needs.
    for m in case.mutations.iter().take(8) {
        if let Some(next) = apply(&env, m) {
            env = next;
        }
    }
    envelope_decode(&env);
    let opened = open_checked(&env, orig.needs_block.as_deref());
    if env == orig.bytes {
        assert_eq!(
            opened, orig.for_receiver,
            "{}: an unmodified original must open exactly when it was sealed for us",
            orig.name
        );
    }
}

/// A target's invariant function.
pub type Target = fn(&[u8]);

/// Every target, by name, for the corpus replay.
pub const TARGETS: &[(&str, Target)] = &[
    ("envelope_decode", envelope_decode),
    ("session_block_decode", session_block_decode),
    ("open_fixed_keys", open_fixed_keys),
    ("key_strings", key_strings),
    ("mutate_envelope", mutate_envelope),
    ("legacy_v2", legacy_v2),
    ("poly1305_differential", poly1305_differential),
];

/// The library's scalar Poly1305 (src/aead.rs) against the `poly1305` crate, on the key and
/// message the input gives. The first byte steers the key towards the edges: 0 takes the
/// next 32 bytes as they are, 1 sets every bit of r that the clamp keeps (the largest
/// limbs), 2 sets r = 1 (the accumulator is the plain sum of the blocks, so inputs reach
/// values around p and 2^130 directly), 3 sets r to all ones and s to all ones.
pub fn poly1305_differential(data: &[u8]) {
    use poly1305::universal_hash::KeyInit as _;
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut key = [0u8; 32];
    let n = rest.len().min(32);
    key[..n].copy_from_slice(&rest[..n]);
    let msg = &rest[n..];
    match mode % 4 {
        1 => key[..16].fill(0xff),
        2 => {
            key[..16].fill(0);
            key[0] = 1;
        }
        3 => key.fill(0xff),
        _ => {}
    }
    let theirs: [u8; 16] = poly1305::Poly1305::new((&key).into())
        .compute_unpadded(msg)
        .into();
    assert_eq!(
        forge::poly1305_scalar(&key, msg),
        theirs,
        "mode {mode}, {} bytes",
        msg.len()
    );
}
