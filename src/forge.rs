//! Building blocks for hostile envelopes: what a malicious sender or a malicious recipient
//! can do with the keys it holds. Used by the tests and the negative test vectors to reach
//! failure classes that an honest [`crate::Sealer`] never produces (a key-commitment attack,
//! a low-order wrap share, a sequence number past the limit). Nothing here weakens a
//! receiver: every function only does what anyone holding the same keys could do.
#![allow(missing_docs)]

use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit};
use ed25519_dalek::SigningKey;
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::envelope::{self, Metadata, MAC_TAG_LEN};
use crate::hash::HPKE_INFO;
use crate::keys::{Identity, KeyId};
use crate::session::{self, Header};
use crate::suite::{Mode, Suite};
use crate::wire;

/// Every field of a session header, freely chosen.
#[derive(Clone, Debug)]
pub struct HeaderSpec {
    pub version: u64,
    pub suite: u64,
    pub mode: Mode,
    pub sender: KeyId,
    pub session_id: [u8; 16],
    pub not_before: u64,
    pub expires: u64,
    pub max_messages: u64,
    pub max_bytes: u64,
    pub verify_key: Vec<u8>,
    pub ek_commitment: Vec<u8>,
}

impl HeaderSpec {
    /// A valid header for `mode` with the given session keys.
    pub fn honest(
        mode: Mode,
        sender: &Identity,
        session_id: [u8; 16],
        lifetime: (u64, u64),
        verify_key: Option<&SigningKey>,
        ek: Option<&[u8; 32]>,
    ) -> HeaderSpec {
        HeaderSpec {
            version: session::VERSION,
            suite: u64::from(Suite::X25519_CHACHA20POLY1305_BLAKE3_ED25519.id()),
            mode,
            sender: sender.key_id(),
            session_id,
            not_before: lifetime.0,
            expires: lifetime.1,
            max_messages: 1 << 32,
            max_bytes: 1 << 40,
            verify_key: verify_key
                .map(|k| k.verifying_key().to_bytes().to_vec())
                .unwrap_or_default(),
            ek_commitment: ek
                .map(|k| session::ek_commitment(k).to_vec())
                .unwrap_or_default(),
        }
    }

    /// The encoded header, exactly as the fields say (no validation).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        wire::put_array(&mut out, 11);
        wire::put_uint(&mut out, self.version);
        wire::put_uint(&mut out, self.suite);
        wire::put_uint(&mut out, self.mode.to_wire());
        wire::put_bin(&mut out, self.sender.as_bytes());
        wire::put_bin(&mut out, &self.session_id);
        wire::put_uint(&mut out, self.not_before);
        wire::put_uint(&mut out, self.expires);
        wire::put_uint(&mut out, self.max_messages);
        wire::put_uint(&mut out, self.max_bytes);
        wire::put_bin(&mut out, &self.verify_key);
        wire::put_bin(&mut out, &self.ek_commitment);
        out
    }
}

/// `H_header` of encoded header bytes.
pub fn header_hash(header: &[u8]) -> [u8; 32] {
    session::header_hash(header)
}

/// HPKE-wraps `plaintext` for recipient X25519 key `pk` at `index` of a header.
pub fn wrap<R: CryptoRng>(
    pk: &[u8; 32],
    header_hash: &[u8; 32],
    index: u32,
    plaintext: &[u8],
    rng: &mut R,
) -> ([u8; 32], Vec<u8>) {
    session::hpke_seal(
        pk,
        HPKE_INFO,
        &session::wrap_aad(header_hash, index),
        plaintext,
        rng,
    )
    .expect("usable recipient key")
}

/// One recipient entry of kind 1 (X25519): key id, HPKE enc, wrapped keys.
pub type EntrySpec = (KeyId, [u8; 32], Vec<u8>);

/// Encodes a block from header bytes and entries and signs it with `signer`.
pub fn block(signer: &Identity, header: &[u8], entries: &[EntrySpec]) -> Vec<u8> {
    let mut rec = Vec::new();
    wire::put_array(&mut rec, entries.len());
    for (id, enc, wrapped) in entries {
        session::put_entry(&mut rec, session::KIND_X25519, id, enc, wrapped);
    }
    session::assemble_block(signer.signing_key(), header, &rec)
}

/// The MAC key of recipient `index`, as an honest sender derives it from SK.
pub fn mac_key(sk: &[u8; 32], index: u32, key_id: &KeyId) -> [u8; 32] {
    *session::mac_key(sk, index, key_id)
}

/// How a forged message authenticates itself.
pub enum Auth<'a> {
    /// Signed with this key.
    Sign(&'a SigningKey),
    /// One tag per key, in recipient order; `None` writes 16 zero bytes at that position.
    Mac(&'a [Option<[u8; 32]>]),
    /// These exact authenticator bytes.
    Raw(&'a [u8]),
}

/// Everything of a message, freely chosen.
pub struct MessageSpec<'a> {
    pub version: u64,
    pub suite: u64,
    pub session_ref: [u8; 16],
    pub header_hash: [u8; 32],
    pub block: Option<&'a [u8]>,
    pub seq: u64,
    pub timestamp: u64,
    pub nonce: [u8; 16],
    pub metadata: &'a Metadata,
    pub payload: &'a [u8],
    /// Encrypt the payload under this EK (none: the payload goes in clear).
    pub ek: Option<&'a [u8; 32]>,
    pub auth: Auth<'a>,
}

/// Encodes and authenticates a message exactly as the spec describes, whatever the fields.
pub fn message(m: &MessageSpec<'_>) -> Vec<u8> {
    let body_len = m.payload.len()
        + if m.ek.is_some() {
            envelope::AEAD_TAG_LEN
        } else {
            0
        };
    let mut out = Vec::new();
    envelope::put_prefix(
        &mut out,
        m.version,
        m.suite,
        &m.session_ref,
        m.block,
        m.seq,
        m.timestamp,
        &m.nonce,
        m.metadata,
        None,
        body_len,
    );
    let mut body = Zeroizing::new(m.payload.to_vec());
    if let Some(ek) = m.ek {
        let tag = ChaCha20Poly1305::new_from_slice(&ek[..])
            .expect("a 32-byte key")
            .encrypt_inout_detached(
                &envelope::aead_nonce(m.seq).into(),
                b"",
                body.as_mut_slice().into(),
            )
            .expect("small payload");
        body.extend_from_slice(&tag);
    }
    out.extend_from_slice(&body);
    let mh = envelope::message_hash(&m.header_hash, &out);
    let auth = match &m.auth {
        Auth::Sign(k) => crate::sign::sign(k, &envelope::signature_input(&mh)).to_vec(),
        Auth::Mac(keys) => {
            let mut tags: Vec<u8> = keys
                .iter()
                .flat_map(|k| match k {
                    Some(k) => envelope::mac_tag(k, &mh).to_vec(),
                    None => vec![0u8; MAC_TAG_LEN],
                })
                .collect();
            if keys.len() >= 2 {
                let ak = envelope::list_key(m.ek.expect("MAC mode encrypts"));
                tags.extend_from_slice(&envelope::list_tag(&ak, &mh, &tags));
            }
            tags
        }
        Auth::Raw(b) => b.to_vec(),
    };
    wire::put_bin(&mut out, &auth);
    out
}

/// The session reference of a header hash.
pub fn session_ref(header_hash: &[u8; 32]) -> [u8; 16] {
    session::session_ref(header_hash)
}

/// Recipient `index`'s entry of a block, unwrapped with `secret` as that recipient would:
/// returns (EK, MAC key).
pub fn unwrap_as(
    block: &[u8],
    index: usize,
    secret: &x25519_dalek::StaticSecret,
) -> (Option<[u8; 32]>, Option<[u8; 32]>) {
    let b = session::Block::decode(block, usize::MAX).expect("valid block");
    let key = session::hpke_private(secret);
    let (ek, mk) = b
        .unwrap(index, &session::UnwrapKey::X25519(&key))
        .expect("our entry");
    (ek.map(|k| *k), mk.map(|k| *k))
}

/// The header of a block.
pub fn block_header(block: &[u8]) -> (Vec<u8>, [u8; 32]) {
    let mut r = wire::Reader::new(block);
    r.array().expect("block");
    let hb = r.bin().expect("header").to_vec();
    let hh = session::header_hash(&hb);
    let _ = Header::decode(&hb);
    (hb, hh)
}

/// The X25519 secret of an identity (a recipient forging with its own keys).
pub fn identity_x25519(id: &Identity) -> x25519_dalek::StaticSecret {
    id.x25519_secret().clone()
}

/// Strictly decodes an envelope (as [`crate::inspect`] does, inline session block
/// included) and encodes the decoded fields again with the library's own encoder. The
/// wire format has one valid encoding per value (spec §3), so for every accepted input
/// the result equals the input byte for byte; the fuzz targets assert exactly that.
pub fn reencode_envelope(bytes: &[u8]) -> Result<Vec<u8>, crate::Error> {
    let env = envelope::Envelope::decode(bytes, &crate::inspect::default_limits())?;
    let block = env.block.map(reencode_session_block).transpose()?;
    // Through the sorted map on purpose: a decoder that let unsorted or duplicate keys
    // through would not get its input back.
    let metadata: Metadata = env
        .metadata
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let mut out = Vec::with_capacity(bytes.len());
    envelope::put_prefix(
        &mut out,
        session::VERSION,
        u64::from(env.suite.id()),
        &env.session_ref,
        block.as_deref(),
        env.seq,
        env.timestamp,
        &env.nonce,
        &metadata,
        None,
        env.body.len(),
    );
    out.extend_from_slice(env.body);
    wire::put_bin(&mut out, env.authenticator);
    Ok(out)
}

/// Strictly decodes a session block (default recipient limit) and encodes the decoded
/// header, entries and signature again. Equal to the input for every accepted input.
pub fn reencode_session_block(bytes: &[u8]) -> Result<Vec<u8>, crate::Error> {
    let b = session::Block::decode(bytes, crate::DEFAULT_MAX_RECIPIENTS)?;
    let mut rec = Vec::new();
    wire::put_array(&mut rec, b.entries.len());
    for e in &b.entries {
        session::put_entry(&mut rec, e.kind, &e.key_id, e.enc, e.wrapped);
    }
    let mut out = Vec::with_capacity(bytes.len());
    wire::put_array(&mut out, 3);
    wire::put_bin(&mut out, &b.header.encode());
    out.extend_from_slice(&rec);
    wire::put_bin(&mut out, &b.signature);
    Ok(out)
}

/// Poly1305 (RFC 8439 §2.5) computed by the library's own scalar code (src/aead.rs), in
/// every build: what the differential fuzz target `poly1305_differential` compares with
/// the `poly1305` crate.
pub fn poly1305_scalar(key: &[u8; 32], msg: &[u8]) -> [u8; 16] {
    crate::aead::poly1305_scalar(key, msg, true)
}
