//! Reading an envelope's cleartext without any key (spec/envelope-v3.md §7.1, §5.3).
//!
//! Nothing here is authenticated: an [`Inspection`] says what the bytes claim, decoded as
//! strictly as the opener decodes them, and nothing more.

use crate::envelope::{DecodeLimits, Envelope, Metadata};
use crate::error::Error;
use crate::keys::KeyId;
use crate::seal::{
    DEFAULT_MAX_METADATA_BYTES, DEFAULT_MAX_METADATA_ENTRIES, DEFAULT_MAX_RECIPIENTS,
};
use crate::session::{self, Block};
use crate::suite::{Mode, Suite};

/// What a session block claims (unverified).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionInfo {
    /// The mode.
    pub mode: Mode,
    /// The suite.
    pub suite: Suite,
    /// The key id of the identity key that claims to have signed the block.
    pub sender: KeyId,
    /// The session's random id.
    pub session_id: [u8; 16],
    /// The session reference (first 16 bytes of the header hash).
    pub session_ref: [u8; 16],
    /// Unix seconds.
    pub not_before: u64,
    /// Unix seconds.
    pub expires: u64,
    /// Message limit.
    pub max_messages: u64,
    /// Payload byte limit.
    pub max_bytes: u64,
    /// The recipients' key ids, in block order.
    pub recipients: Vec<KeyId>,
    /// The block's size in bytes.
    pub block_len: usize,
}

/// What an envelope claims (unverified).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Inspection {
    /// The format version (3).
    pub version: u64,
    /// The suite.
    pub suite: Suite,
    /// The session reference.
    pub session_ref: [u8; 16],
    /// The inline session block, if the envelope carries one.
    pub session: Option<SessionInfo>,
    /// Sequence number.
    pub seq: u64,
    /// Sender's timestamp, unix seconds.
    pub timestamp: u64,
    /// The random nonce.
    pub nonce: [u8; 16],
    /// The cleartext metadata.
    pub metadata: Metadata,
    /// The body's size (ciphertext with its tag, or the clear payload in sign-only mode).
    pub body_len: usize,
    /// The authenticator's size.
    pub authenticator_len: usize,
    /// The envelope's size.
    pub envelope_len: usize,
}

pub(crate) fn default_limits() -> DecodeLimits {
    DecodeLimits {
        max_metadata_entries: DEFAULT_MAX_METADATA_ENTRIES,
        max_metadata_bytes: DEFAULT_MAX_METADATA_BYTES,
    }
}

/// Decodes a session block without verifying it.
pub fn inspect_session_block(bytes: &[u8]) -> Result<SessionInfo, Error> {
    let b = Block::decode(bytes, DEFAULT_MAX_RECIPIENTS)?;
    let h = &b.header;
    Ok(SessionInfo {
        mode: h.mode,
        suite: h.suite,
        sender: h.sender,
        session_id: h.session_id,
        session_ref: session::session_ref(&b.header_hash),
        not_before: h.not_before,
        expires: h.expires,
        max_messages: h.max_messages,
        max_bytes: h.max_bytes,
        recipients: b.entries.iter().map(|e| e.key_id).collect(),
        block_len: bytes.len(),
    })
}

/// The byte length of the session block an envelope carries inline, 0 when it refers to
/// its session by reference. Reads only the envelope's first fields (no allocation, no
/// hashing): for a transport counting the bytes it spends on blocks on every message.
/// Fails on an input that does not start like a v3 envelope; says nothing about the rest
/// of it, nor about its authenticity.
pub fn inline_block_len(envelope: &[u8]) -> Result<usize, Error> {
    crate::envelope::Envelope::inline_block_len(envelope)
}

/// Decodes a v3 envelope without any key. Fails on exactly the structural errors the
/// opener would report; says nothing about authenticity.
pub fn inspect(bytes: &[u8]) -> Result<Inspection, Error> {
    let env = Envelope::decode(bytes, &default_limits())?;
    let session = env.block.map(inspect_session_block).transpose()?;
    Ok(Inspection {
        version: session::VERSION,
        suite: env.suite,
        session_ref: env.session_ref,
        session,
        seq: env.seq,
        timestamp: env.timestamp,
        nonce: env.nonce,
        metadata: env.metadata.to_metadata(),
        body_len: env.body.len(),
        authenticator_len: env.authenticator.len(),
        envelope_len: bytes.len(),
    })
}
