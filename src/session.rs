//! Session headers, session blocks and the per-recipient HPKE wraps (spec/envelope-v3.md §5).

use ed25519_dalek::{SigningKey, VerifyingKey};
use hpke::aead::{AeadTag, ChaCha20Poly1305 as HpkeChaCha};
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::error::{Error, ErrorKind, Misuse};
use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit};

use crate::hash::{
    h, CTX_EK_COMMIT, CTX_HEADER, CTX_MAC_KEY, CTX_RECIPIENTS, CTX_SYM_COMMIT, CTX_SYM_WRAP,
    HPKE_INFO, SIG_LABEL_SESSION,
};
use crate::keys::{Identity, KeyId, Recipient, WrapTarget};
use crate::suite::{Mode, Suite};
use crate::wire::{self, Reader};
pub(crate) use crate::xwing::{
    xwing_open, xwing_private, xwing_public_from_seed, xwing_seal, XWingPrivate,
};

/// The version number of this format (spec §1.1).
pub(crate) const VERSION: u64 = 3;
/// Fields in a session header (spec §5.1).
const HEADER_FIELDS: usize = 11;
/// Fields in a session block (spec §5.3).
const BLOCK_FIELDS: usize = 3;
/// Fields in a recipient entry (spec §5.4).
const ENTRY_FIELDS: usize = 4;
/// Recipient entry kind: HPKE to an X25519 key (spec §5.4).
pub(crate) const KIND_X25519: u64 = 1;
/// Recipient entry kind: AEAD under a symmetric key (spec §5.5).
pub(crate) const KIND_SYMMETRIC: u64 = 2;
/// Recipient entry kind: HPKE to an X-Wing key (spec §5.4, suite 2 only).
pub(crate) const KIND_XWING: u64 = 3;
/// Length of an X-Wing ciphertext, HPKE's `enc` in a kind-3 entry (spec §5.4):
/// ML-KEM-768 ciphertext (1088) ‖ X25519 ephemeral public key (32).
pub(crate) const XWING_ENC_LEN: usize = 1120;
/// The most recipients a suite-2 block may list (spec §7.3): 768 kind-3 entries in MAC mode
/// with their tags and the largest metadata stay under the 1 MiB the envelope limit adds to
/// the payload limit.
pub const MAX_PQ_RECIPIENTS: usize = 768;

/// The entry kinds a suite allows (spec §5.4): suite 1, X25519 and symmetric wraps; suite 2,
/// X-Wing and symmetric wraps, never a classical X25519 wrap.
pub(crate) fn kind_allowed(suite: Suite, kind: u64) -> bool {
    if suite.is_post_quantum() {
        kind == KIND_XWING || kind == KIND_SYMMETRIC
    } else {
        kind == KIND_X25519 || kind == KIND_SYMMETRIC
    }
}

/// The length of `enc` for an entry kind (spec §5.4).
pub(crate) fn enc_len(kind: u64) -> usize {
    if kind == KIND_XWING {
        XWING_ENC_LEN
    } else {
        32
    }
}
/// HPKE AEAD tag length (ChaCha20Poly1305).
const WRAP_TAG: usize = 16;

pub(crate) type HpkePrivate = <X25519HkdfSha256 as hpke::Kem>::PrivateKey;
type HpkePublic = <X25519HkdfSha256 as hpke::Kem>::PublicKey;
type HpkeEnc = <X25519HkdfSha256 as hpke::Kem>::EncappedKey;

/// The signed facts of a session (spec §5.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub suite: Suite,
    pub mode: Mode,
    pub sender: KeyId,
    pub session_id: [u8; 16],
    pub not_before: u64,
    pub expires: u64,
    pub max_messages: u64,
    pub max_bytes: u64,
    /// The session's Ed25519 verification key (signed and sign-only modes).
    pub verify_key: Option<[u8; 32]>,
    /// `H_commit(EK)` (signed and MAC modes).
    pub ek_commitment: Option<[u8; 32]>,
}

impl Header {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(160);
        wire::put_array(&mut out, HEADER_FIELDS);
        wire::put_uint(&mut out, VERSION);
        wire::put_uint(&mut out, u64::from(self.suite.id()));
        wire::put_uint(&mut out, self.mode.to_wire());
        wire::put_bin(&mut out, self.sender.as_bytes());
        wire::put_bin(&mut out, &self.session_id);
        wire::put_uint(&mut out, self.not_before);
        wire::put_uint(&mut out, self.expires);
        wire::put_uint(&mut out, self.max_messages);
        wire::put_uint(&mut out, self.max_bytes);
        wire::put_bin(
            &mut out,
            self.verify_key.as_ref().map_or(&[][..], |k| &k[..]),
        );
        wire::put_bin(
            &mut out,
            self.ek_commitment.as_ref().map_or(&[][..], |k| &k[..]),
        );
        out
    }

    /// Strict decode (spec §5.1, §9).
    pub(crate) fn decode(bytes: &[u8]) -> Result<Header, Error> {
        let mut r = Reader::new(bytes);
        r.versioned(VERSION, HEADER_FIELDS, "session header")?;
        let suite = Suite::from_id(r.uint()?)?;
        let mode = Mode::from_wire(r.uint()?)?;
        let sender = KeyId(r.bin_exact::<16>()?);
        let session_id = r.bin_exact::<16>()?;
        let not_before = r.uint()?;
        let expires = r.uint()?;
        let max_messages = r.uint()?;
        let max_bytes = r.uint()?;
        let verify_key = optional_key(r.bin()?, mode.signs(), "session verification key")?;
        let ek_commitment = optional_key(r.bin()?, mode.encrypts(), "EK commitment")?;
        r.finish()?;
        if expires <= not_before && !crate::mutant::is(crate::mutant::Mutant::HeaderRulesUnchecked)
        {
            return Err(Error::new(
                ErrorKind::Malformed,
                "session expires before it starts",
            ));
        }
        if max_messages == 0 && !crate::mutant::is(crate::mutant::Mutant::HeaderRulesUnchecked) {
            return Err(Error::new(
                ErrorKind::Malformed,
                "session allows no messages",
            ));
        }
        // spec §5.1, §10.5: the AEAD nonce bound is a rule of the format, checked by every
        // receiver, not a promise of the sender.
        if max_messages > crate::seal::MAX_MESSAGES_LIMIT
            && !crate::mutant::is(crate::mutant::Mutant::NoMaxMessagesCapInHeader)
        {
            return Err(Error::new(
                ErrorKind::Malformed,
                "session allows more than 2^48 messages",
            ));
        }
        Ok(Header {
            suite,
            mode,
            sender,
            session_id,
            not_before,
            expires,
            max_messages,
            max_bytes,
            verify_key,
            ek_commitment,
        })
    }

    /// Length of the plaintext wrapped for each recipient (spec §5.4).
    pub(crate) fn wrapped_key_len(&self) -> usize {
        match self.mode {
            Mode::Signed => 32,
            Mode::Mac => 64,
            Mode::SignOnly => 0,
        }
    }
}

fn optional_key(b: &[u8], present: bool, what: &'static str) -> Result<Option<[u8; 32]>, Error> {
    match (present, b.len()) {
        (true, 32) => Ok(Some(b.try_into().expect("length checked"))),
        (false, 0) => Ok(None),
        (false, 32) if crate::mutant::is(crate::mutant::Mutant::HeaderRulesUnchecked) => Ok(None),
        _ => Err(Error::new(
            ErrorKind::Malformed,
            format!("the {what} has the wrong length for the session's mode"),
        )),
    }
}

/// `H_header(header bytes)`: names the session (spec §5.3).
pub(crate) fn header_hash(header_bytes: &[u8]) -> [u8; 32] {
    h(CTX_HEADER, &[header_bytes])
}

/// The first 16 bytes of the header hash: how envelopes refer to a session (spec §7).
pub(crate) fn session_ref(header_hash: &[u8; 32]) -> [u8; 16] {
    header_hash[..16].try_into().expect("32 >= 16")
}

/// The byte string the sender's identity key signs (spec §5.3).
pub(crate) fn block_signing_input(header_hash: &[u8; 32], recipients_bytes: &[u8]) -> Vec<u8> {
    let rh = h(CTX_RECIPIENTS, &[recipients_bytes]);
    let mut m = Vec::with_capacity(SIG_LABEL_SESSION.len() + 64);
    m.extend_from_slice(SIG_LABEL_SESSION);
    m.extend_from_slice(header_hash);
    m.extend_from_slice(&rh);
    m
}

/// Appends one recipient entry (spec §5.4).
pub(crate) fn put_entry(out: &mut Vec<u8>, kind: u64, key_id: &KeyId, enc: &[u8], wrapped: &[u8]) {
    wire::put_array(out, ENTRY_FIELDS);
    wire::put_uint(out, kind);
    wire::put_bin(out, key_id.as_bytes());
    wire::put_bin(out, enc);
    wire::put_bin(out, wrapped);
}

/// Signs and assembles a block from the header's bytes and the encoded recipient list
/// (spec §5.3).
pub(crate) fn assemble_block(
    signer: &SigningKey,
    header_bytes: &[u8],
    recipients_bytes: &[u8],
) -> Vec<u8> {
    let hh = header_hash(header_bytes);
    let signature = crate::sign::sign(signer, &block_signing_input(&hh, recipients_bytes));
    let mut block = Vec::with_capacity(header_bytes.len() + recipients_bytes.len() + 80);
    wire::put_array(&mut block, BLOCK_FIELDS);
    wire::put_bin(&mut block, header_bytes);
    block.extend_from_slice(recipients_bytes);
    wire::put_bin(&mut block, &signature);
    block
}

/// The AAD of wrap number `index` (spec §5.4).
pub(crate) fn wrap_aad(header_hash: &[u8; 32], index: u32) -> [u8; 36] {
    let mut aad = [0u8; 36];
    aad[..32].copy_from_slice(header_hash);
    aad[32..].copy_from_slice(&index.to_be_bytes());
    aad
}

/// HPKE base-mode single-shot seal, RFC 9180 §6.1, with the suite of spec §5.4.
pub(crate) fn hpke_seal<R: CryptoRng>(
    recipient: &[u8; 32],
    info: &[u8],
    aad: &[u8],
    plaintext: &[u8],
    rng: &mut R,
) -> Result<([u8; 32], Vec<u8>), ()> {
    let pk = HpkePublic::from_bytes(recipient).map_err(|_| ())?;
    // The plaintext (EK, and MK in MAC mode) is copied here and encrypted in place: wiped
    // if the seal fails before encrypting it. The capacity leaves room for the tag, so the
    // vector is never reallocated with the secret in it.
    let mut buf = Zeroizing::new(Vec::with_capacity(plaintext.len() + WRAP_TAG));
    buf.extend_from_slice(plaintext);
    let (enc, tag) =
        hpke::single_shot_seal_inout_detached_with_rng::<HpkeChaCha, HkdfSha256, X25519HkdfSha256>(
            &OpModeS::Base,
            &pk,
            info,
            buf.as_mut_slice().into(),
            aad,
            rng,
        )
        .map_err(|_| ())?;
    // Encrypted now: no secret left to wipe.
    let mut out = std::mem::take(&mut *buf);
    out.extend_from_slice(&tag.to_bytes());
    let enc: [u8; 32] = enc.to_bytes().into();
    Ok((enc, out))
}

/// HPKE base-mode single-shot open, RFC 9180 §6.1. Lengths are checked by the caller
/// before this is reached; an all-zero shared secret is an error inside the hpke crate.
pub(crate) fn hpke_open(
    secret: &HpkePrivate,
    enc: &[u8; 32],
    info: &[u8],
    aad: &[u8],
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, ()> {
    if ciphertext.len() < WRAP_TAG {
        return Err(());
    }
    let enc = HpkeEnc::from_bytes(enc).map_err(|_| ())?;
    let (ct, tag) = ciphertext.split_at(ciphertext.len() - WRAP_TAG);
    let tag = AeadTag::<HpkeChaCha>::from_bytes(tag).map_err(|_| ())?;
    let mut buf = Zeroizing::new(ct.to_vec());
    hpke::single_shot_open_inout_detached::<HpkeChaCha, HkdfSha256, X25519HkdfSha256>(
        &OpModeR::Base,
        secret,
        &enc,
        info,
        buf.as_mut_slice().into(),
        aad,
        &tag,
    )
    .map_err(|_| ())?;
    Ok(buf)
}

/// The commitment and the wrap key of a symmetric wrap (spec §5.5).
fn symmetric_keys(key: &[u8; 32], salt: &[u8]) -> ([u8; 16], Zeroizing<[u8; 32]>) {
    let commit = h(CTX_SYM_COMMIT, &[key, salt]);
    let wrap_key = Zeroizing::new(h(CTX_SYM_WRAP, &[key, salt]));
    (commit[..16].try_into().expect("32 >= 16"), wrap_key)
}

/// Wraps `plaintext` under a symmetric recipient key (spec §5.5): `enc` is the random salt
/// followed by the key commitment; the AEAD key is unique per salt, so its nonce is zero.
pub(crate) fn symmetric_seal<R: CryptoRng>(
    key: &[u8; 32],
    aad: &[u8],
    plaintext: &[u8],
    rng: &mut R,
) -> ([u8; 32], Vec<u8>) {
    let mut enc = [0u8; 32];
    rng.fill_bytes(&mut enc[..16]);
    let (commit, wrap_key) = symmetric_keys(key, &enc[..16]);
    enc[16..].copy_from_slice(&commit);
    let mut buf = plaintext.to_vec();
    let tag = ChaCha20Poly1305::new((&*wrap_key).into())
        .encrypt_inout_detached(&[0u8; 12].into(), aad, buf.as_mut_slice().into())
        .expect("short plaintext");
    buf.extend_from_slice(&tag);
    (enc, buf)
}

/// Opens a symmetric wrap: the commitment first (in constant time), then the AEAD.
pub(crate) fn symmetric_open(
    key: &[u8; 32],
    enc: &[u8; 32],
    aad: &[u8],
    wrapped: &[u8],
) -> Result<Zeroizing<Vec<u8>>, ()> {
    let (commit, wrap_key) = symmetric_keys(key, &enc[..16]);
    if !bool::from(subtle::ConstantTimeEq::ct_eq(&commit[..], &enc[16..]))
        || wrapped.len() < WRAP_TAG
    {
        return Err(());
    }
    let (ct, tag) = wrapped.split_at(wrapped.len() - WRAP_TAG);
    let mut buf = Zeroizing::new(ct.to_vec());
    let tag: &[u8; WRAP_TAG] = tag.try_into().map_err(|_| ())?;
    ChaCha20Poly1305::new((&*wrap_key).into())
        .decrypt_inout_detached(
            &[0u8; 12].into(),
            aad,
            buf.as_mut_slice().into(),
            tag.into(),
        )
        .map_err(|_| ())?;
    Ok(buf)
}

/// The key a receiver opens its entry with.
pub(crate) enum UnwrapKey<'a> {
    /// Its X25519 secret (entries of kind 1).
    X25519(&'a HpkePrivate),
    /// Its X-Wing secret (entries of kind 3).
    XWing(&'a XWingPrivate),
    /// A symmetric key (entries of kind 2).
    Symmetric(&'a [u8; 32]),
}

impl UnwrapKey<'_> {
    /// The entry kind this key opens.
    pub(crate) fn kind(&self) -> u64 {
        match self {
            UnwrapKey::X25519(_) => KIND_X25519,
            UnwrapKey::XWing(_) => KIND_XWING,
            UnwrapKey::Symmetric(_) => KIND_SYMMETRIC,
        }
    }
}

/// Converts an X25519 secret into the hpke crate's key type.
pub(crate) fn hpke_private(secret: &x25519_dalek::StaticSecret) -> HpkePrivate {
    let bytes = Zeroizing::new(secret.to_bytes());
    HpkePrivate::from_bytes(&bytes[..]).expect("every 32-byte string is an X25519 secret")
}

/// Derives the X25519 key pair of RFC 9180 §7.1.3 `DeriveKeyPair(ikm)` (test vectors).
#[doc(hidden)]
pub fn hpke_derive_keypair(ikm: &[u8]) -> ([u8; 32], [u8; 32]) {
    let (sk, pk) = X25519HkdfSha256::derive_keypair(ikm);
    (sk.to_bytes().into(), pk.to_bytes().into())
}

/// The MAC key of recipient `index` (spec §5.4): `H_mackey(SK || u32(index) || key id)`.
pub(crate) fn mac_key(sk: &[u8; 32], index: u32, key_id: &KeyId) -> Zeroizing<[u8; 32]> {
    Zeroizing::new(h(
        CTX_MAC_KEY,
        &[sk, &index.to_be_bytes(), key_id.as_bytes()],
    ))
}

/// `H_commit(EK)` (spec §5.2).
pub(crate) fn ek_commitment(ek: &[u8; 32]) -> [u8; 32] {
    h(CTX_EK_COMMIT, &[ek])
}

/// What the sealer keeps of a session it created.
pub(crate) struct SealerSession {
    pub header: Header,
    pub header_hash: [u8; 32],
    pub header_bytes: Vec<u8>,
    /// The encoded recipient entries, without the array header.
    pub entries: Vec<u8>,
    /// How many entries.
    pub recipients: usize,
    pub block: Vec<u8>,
    pub ek: Option<Zeroizing<[u8; 32]>>,
    pub mac_keys: Vec<Zeroizing<[u8; 32]>>,
    pub signing: Option<SigningKey>,
}

/// The session lifetime a sealer asks for.
pub(crate) struct Lifetime {
    pub not_before: u64,
    pub expires: u64,
    pub max_messages: u64,
    pub max_bytes: u64,
}

/// Creates a session and its signed block (spec §5).
pub(crate) fn create<R: CryptoRng>(
    identity: &Identity,
    recipients: &[Recipient],
    suite: Suite,
    mode: Mode,
    lifetime: &Lifetime,
    rng: &mut R,
) -> Result<SealerSession, Misuse> {
    let mut session_id = [0u8; 16];
    rng.fill_bytes(&mut session_id);
    let ek = mode.encrypts().then(|| {
        let mut k = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut k[..]);
        k
    });
    let sk = (mode == Mode::Mac).then(|| {
        let mut k = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut k[..]);
        k
    });
    let signing = mode.signs().then(|| {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut seed[..]);
        SigningKey::from_bytes(&seed)
    });
    let header = Header {
        suite,
        mode,
        sender: identity.key_id(),
        session_id,
        not_before: lifetime.not_before,
        expires: lifetime.expires,
        max_messages: lifetime.max_messages,
        max_bytes: lifetime.max_bytes,
        verify_key: signing.as_ref().map(|s| s.verifying_key().to_bytes()),
        ek_commitment: ek.as_ref().map(|k| ek_commitment(k)),
    };
    let header_bytes = header.encode();
    let hh = header_hash(&header_bytes);

    let mut mac_keys = Vec::new();
    let mut entries = Vec::with_capacity(recipients.len() * 100);
    wrap_entries(
        &mut entries,
        recipients,
        0,
        suite,
        &hh,
        ek.as_deref(),
        sk.as_deref(),
        &mut mac_keys,
        rng,
    )?;
    let block = assemble_from_entries(identity, &header_bytes, recipients.len(), &entries);
    Ok(SealerSession {
        header,
        header_hash: hh,
        header_bytes,
        entries,
        recipients: recipients.len(),
        block,
        ek,
        mac_keys,
        signing,
    })
}

/// Wraps the session keys for `recipients`, numbered from `first_index`, appending the
/// encoded entries to `out` and, in MAC mode, their MAC keys to `mac_keys` (spec §5.4).
#[allow(clippy::too_many_arguments)]
fn wrap_entries<R: CryptoRng>(
    out: &mut Vec<u8>,
    recipients: &[Recipient],
    first_index: usize,
    suite: Suite,
    hh: &[u8; 32],
    ek: Option<&[u8; 32]>,
    sk: Option<&[u8; 32]>,
    mac_keys: &mut Vec<Zeroizing<[u8; 32]>>,
    rng: &mut R,
) -> Result<(), Misuse> {
    let mut plaintext = Zeroizing::new(Vec::with_capacity(64));
    for (offset, r) in recipients.iter().enumerate() {
        let index = u32::try_from(first_index + offset).map_err(|_| Misuse::TooManyRecipients {
            count: first_index + recipients.len(),
            limit: u32::MAX as usize,
        })?;
        plaintext.clear();
        if let Some(ek) = ek {
            plaintext.extend_from_slice(ek);
        }
        let key_id = r.key_id_in(suite);
        if let Some(sk) = sk {
            let mk = mac_key(sk, index, &key_id);
            plaintext.extend_from_slice(&mk[..]);
            mac_keys.push(mk);
        }
        let aad = wrap_aad(hh, index);
        let unusable = |_| Misuse::InvalidConfig("a recipient key is unusable (low-order point)");
        match r.wrap_target(suite).ok_or(Misuse::NotPostQuantum)? {
            WrapTarget::X25519(pk) => {
                let (enc, wrapped) =
                    hpke_seal(pk, HPKE_INFO, &aad, &plaintext, rng).map_err(unusable)?;
                put_entry(out, KIND_X25519, &key_id, &enc, &wrapped);
            }
            WrapTarget::XWing(pk) => {
                let (enc, wrapped) =
                    xwing_seal(pk, HPKE_INFO, &aad, &plaintext, rng).map_err(unusable)?;
                put_entry(out, KIND_XWING, &key_id, &enc[..], &wrapped);
            }
            WrapTarget::Symmetric(key) => {
                let (enc, wrapped) = symmetric_seal(key, &aad, &plaintext, rng);
                put_entry(out, KIND_SYMMETRIC, &key_id, &enc, &wrapped);
            }
        }
    }
    Ok(())
}

/// A signed block from the header and `count` encoded entries.
fn assemble_from_entries(
    identity: &Identity,
    header_bytes: &[u8],
    count: usize,
    entries: &[u8],
) -> Vec<u8> {
    let mut recipients = Vec::with_capacity(entries.len() + 5);
    wire::put_array(&mut recipients, count);
    recipients.extend_from_slice(entries);
    assemble_block(identity.signing_key(), header_bytes, &recipients)
}

/// Re-addresses a session to more recipients (spec §5.7): the same header and keys, the
/// existing entries unchanged at their indices, new entries after them, a new signature.
/// Messages already sealed open for the new recipients; nothing is re-encrypted.
pub(crate) fn readdress<R: CryptoRng>(
    identity: &Identity,
    s: &mut SealerSession,
    more: &[Recipient],
    rng: &mut R,
) -> Result<(), Misuse> {
    if s.header.mode == Mode::Mac {
        return Err(Misuse::ReaddressMac);
    }
    let mut entries = s.entries.clone();
    let mut no_mac_keys = Vec::new();
    wrap_entries(
        &mut entries,
        more,
        s.recipients,
        s.header.suite,
        &s.header_hash,
        s.ek.as_deref(),
        None,
        &mut no_mac_keys,
        rng,
    )?;
    s.block = assemble_from_entries(
        identity,
        &s.header_bytes,
        s.recipients + more.len(),
        &entries,
    );
    s.entries = entries;
    s.recipients += more.len();
    Ok(())
}

/// One recipient entry, borrowed from the block.
#[derive(Clone, Copy)]
pub(crate) struct Entry<'a> {
    pub kind: u64,
    pub key_id: KeyId,
    /// 32 bytes for kinds 1 and 2, 1120 for kind 3 (checked by [`Block::decode`]).
    pub enc: &'a [u8],
    pub wrapped: &'a [u8],
}

/// What a recipient unwraps: EK (modes 1, 2) and its MAC key (mode 2).
pub(crate) type UnwrappedKeys = (Option<Zeroizing<[u8; 32]>>, Option<Zeroizing<[u8; 32]>>);

/// A session block decoded but not yet verified (spec §5.3).
pub(crate) struct Block<'a> {
    pub header: Header,
    pub header_hash: [u8; 32],
    pub recipients_bytes: &'a [u8],
    pub entries: Vec<Entry<'a>>,
    pub signature: [u8; 64],
}

impl<'a> Block<'a> {
    /// Strict structural decode; no public-key work. `max_recipients` bounds the entry
    /// list before it is read.
    pub(crate) fn decode(bytes: &'a [u8], max_recipients: usize) -> Result<Block<'a>, Error> {
        Block::decode_with(bytes, max_recipients, MAX_PQ_RECIPIENTS)
    }

    /// [`Block::decode`] with the post-quantum recipient limit of the receiver's policy
    /// (spec §7.3), applied to suite-2 blocks on top of `max_recipients`.
    pub(crate) fn decode_with(
        bytes: &'a [u8],
        max_recipients: usize,
        max_pq_recipients: usize,
    ) -> Result<Block<'a>, Error> {
        let mut r = Reader::new(bytes);
        if r.array()? != BLOCK_FIELDS {
            return Err(Error::new(
                ErrorKind::Malformed,
                "session block has the wrong number of fields",
            ));
        }
        let header_bytes = r.bin()?;
        let header = Header::decode(header_bytes)?;
        let start = r.position();
        let n = r.array()?;
        if n == 0 && !crate::mutant::is(crate::mutant::Mutant::BlockRulesUnchecked) {
            return Err(Error::new(
                ErrorKind::Malformed,
                "session block has no recipients",
            ));
        }
        let limit = if header.suite.is_post_quantum()
            && !crate::mutant::is(crate::mutant::Mutant::NoPqRecipientLimit)
        {
            max_recipients.min(max_pq_recipients).min(MAX_PQ_RECIPIENTS)
        } else {
            max_recipients
        };
        if n > limit && !crate::mutant::is(crate::mutant::Mutant::NoReceiverLimits) {
            return Err(Error::new(
                ErrorKind::LimitExceeded,
                format!("session block lists {n} recipients, the limit is {limit}"),
            ));
        }
        let wrap_len = header.wrapped_key_len() + WRAP_TAG;
        // Every entry takes at least this many bytes (array header, kind, two bin fields
        // with their headers, the wrap with a one-byte-length header): a count the rest of
        // the block cannot hold is refused before anything is allocated for it, and the
        // allocation is capped besides (issue 13, item 11).
        let min_entry = 1 + 1 + (2 + 16) + (2 + 32) + (2 + wrap_len);
        if n.saturating_mul(min_entry) > r.remaining() {
            return Err(Error::new(
                ErrorKind::Malformed,
                "session block is shorter than its recipient count needs",
            ));
        }
        let mut entries = Vec::with_capacity(n.min(256));
        for _ in 0..n {
            if r.array()? != ENTRY_FIELDS {
                return Err(Error::new(
                    ErrorKind::Malformed,
                    "recipient entry has the wrong number of fields",
                ));
            }
            let kind = r.uint()?;
            // spec §5.4: the kinds the suite allows, checked as the kind is read; a
            // classical X25519 wrap inside a post-quantum session is malformed.
            let known = kind == KIND_X25519 || kind == KIND_SYMMETRIC || kind == KIND_XWING;
            let allowed = kind_allowed(header.suite, kind)
                || (known && crate::mutant::is(crate::mutant::Mutant::AnyEntryKindInAnySuite))
                || crate::mutant::is(crate::mutant::Mutant::BlockRulesUnchecked);
            if !allowed {
                return Err(Error::new(
                    ErrorKind::Malformed,
                    if kind == KIND_X25519 || kind == KIND_XWING {
                        "a recipient entry of a kind its session's suite does not allow"
                    } else {
                        "unknown recipient entry kind"
                    },
                ));
            }
            let key_id = KeyId(r.bin_exact::<16>()?);
            let enc = r.bin()?;
            if enc.len() != enc_len(kind)
                && !crate::mutant::is(crate::mutant::Mutant::NoEncLengthCheck)
            {
                return Err(Error::new(
                    ErrorKind::Malformed,
                    "the encapsulated key has the wrong length for its entry kind",
                ));
            }
            // spec §5.4: an HPKE `enc` is an X25519 public key, accepted in its one encoding
            // only (§2.1), checked as the field is read.
            if kind == KIND_X25519
                && !<&[u8; 32]>::try_from(enc).is_ok_and(crate::keys::x25519_is_canonical)
            {
                return Err(Error::new(
                    ErrorKind::Malformed,
                    "an encapsulated key is not a canonical X25519 public key",
                ));
            }
            let wrapped = r.bin()?;
            if wrapped.len() != wrap_len {
                return Err(Error::new(
                    ErrorKind::Malformed,
                    "wrapped session key has the wrong length",
                ));
            }
            entries.push(Entry {
                kind,
                key_id,
                enc,
                wrapped,
            });
        }
        let recipients_bytes = r.since(start);
        let signature = r.bin_exact::<64>()?;
        r.finish()?;
        let mut ids: Vec<[u8; 16]> = entries.iter().map(|e| e.key_id.0).collect();
        ids.sort_unstable();
        if ids.windows(2).any(|w| w[0] == w[1])
            && !crate::mutant::is(crate::mutant::Mutant::BlockRulesUnchecked)
        {
            return Err(Error::new(
                ErrorKind::Malformed,
                "a recipient is listed twice",
            ));
        }
        Ok(Block {
            header_hash: header_hash(header_bytes),
            header,
            recipients_bytes,
            entries,
            signature,
        })
    }

    /// Verifies the identity signature over the whole block (spec §5.3).
    pub(crate) fn verify_signature(&self, sender: &VerifyingKey) -> Result<(), Error> {
        if crate::sign::verify(
            sender,
            &block_signing_input(&self.header_hash, self.recipients_bytes),
            &self.signature,
        ) || crate::mutant::is(crate::mutant::Mutant::NoBlockSignatureCheck)
        {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::BadSignature,
                "the sender's signature over the session block does not verify",
            ))
        }
    }

    /// Unwraps entry `index` with `secret` and checks the EK commitment (spec §5.4).
    /// Returns (EK, MAC key) as the mode has them.
    pub(crate) fn unwrap(
        &self,
        index: usize,
        secret: &UnwrapKey<'_>,
    ) -> Result<UnwrappedKeys, Error> {
        let entry = &self.entries[index];
        let idx = u32::try_from(index)
            .map_err(|_| Error::new(ErrorKind::LimitExceeded, "recipient index too large"))?;
        let aad = wrap_aad(&self.header_hash, idx);
        let opened = match secret {
            UnwrapKey::X25519(sk) => entry
                .enc
                .try_into()
                .map_err(|_| ())
                .and_then(|enc| hpke_open(sk, enc, HPKE_INFO, &aad, entry.wrapped)),
            UnwrapKey::XWing(sk) => xwing_open(sk, entry.enc, HPKE_INFO, &aad, entry.wrapped),
            UnwrapKey::Symmetric(k) => entry
                .enc
                .try_into()
                .map_err(|_| ())
                .and_then(|enc| symmetric_open(k, enc, &aad, entry.wrapped)),
        };
        let pt = opened.map_err(|_| {
            Error::new(
                ErrorKind::BadWrap,
                "the wrapped session keys do not open with our key",
            )
        })?;
        let take = |range: std::ops::Range<usize>| {
            let mut k = Zeroizing::new([0u8; 32]);
            k.copy_from_slice(&pt[range]);
            k
        };
        let ek = self.header.mode.encrypts().then(|| take(0..32));
        let mk = (self.header.mode == Mode::Mac).then(|| take(32..64));
        if let (Some(ek), Some(commitment)) = (&ek, &self.header.ek_commitment) {
            let ok = subtle::ConstantTimeEq::ct_eq(&ek_commitment(ek)[..], &commitment[..]);
            if !bool::from(ok) && !crate::mutant::is(crate::mutant::Mutant::NoKeyCommitmentCheck) {
                return Err(Error::new(
                    ErrorKind::KeyCommitment,
                    "the unwrapped EK does not match the commitment in the signed header",
                ));
            }
        }
        Ok((ek, mk))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An RNG that returns fixed bytes: feeds RFC 9180's ikmE into the ephemeral key.
    struct Fixed(Vec<u8>);
    impl Fixed {
        fn next_u32(&mut self) -> u32 {
            unimplemented!()
        }
        fn next_u64(&mut self) -> u64 {
            unimplemented!()
        }
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            let n = dest.len();
            dest.copy_from_slice(&self.0[..n]);
            self.0.drain(..n);
        }
    }
    impl rand_core::TryRng for Fixed {
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
    impl rand_core::TryCryptoRng for Fixed {}

    fn hex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    /// RFC 9180 Appendix A.2.1 through the project's own wrap primitives.
    #[test]
    fn hpke_wrap_matches_rfc9180_a_2_1() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/vectors/primitives/rfc9180-a2-x25519-sha256-chacha20poly1305.json"
        ))
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let case = &v["vectors"][0];
        assert_eq!(case["section"], "A.2.1");
        let get = |k: &str| hex(case[k].as_str().unwrap());
        let (sk_r, pk_r) = hpke_derive_keypair(&get("ikmR"));
        let enc_case = &case["encryptions"][0];
        let eget = |k: &str| hex(enc_case[k].as_str().unwrap());
        let mut rng = Fixed(get("ikmE"));
        let (enc, ct) =
            hpke_seal(&pk_r, &get("info"), &eget("aad"), &eget("pt"), &mut rng).unwrap();
        assert_eq!(enc.to_vec(), get("pkEm"));
        assert_eq!(ct, eget("ct"));
        let secret = HpkePrivate::from_bytes(&sk_r).unwrap();
        let pt = hpke_open(&secret, &enc, &get("info"), &eget("aad"), &ct).unwrap();
        assert_eq!(&pt[..], &eget("pt")[..]);
    }

    #[test]
    fn all_zero_and_low_order_shares_are_rejected() {
        let secret = HpkePrivate::from_bytes(&[7u8; 32]).unwrap();
        let ct = [0u8; 48];
        // u = 0 and u = 1 are low-order points (RFC 7748 §6.1): the DH output is all zero.
        for share in [[0u8; 32], {
            let mut one = [0u8; 32];
            one[0] = 1;
            one
        }] {
            assert!(hpke_open(&secret, &share, HPKE_INFO, b"", &ct).is_err());
        }
    }
}
