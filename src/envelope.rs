//! The v3 message envelope (spec/envelope-v3.md §7): layout, strict decoding, and the
//! message hash that the authenticator covers.

use std::collections::BTreeMap;

use crate::error::{Error, ErrorKind};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::hash::{h, CTX_LIST_KEY, CTX_MESSAGE, SIG_LABEL_MESSAGE};
use crate::session::VERSION;
use crate::suite::Suite;
use crate::wire::{self, Reader};

/// Fields in a v3 envelope (spec §7.1).
pub(crate) const ENVELOPE_FIELDS: usize = 10;
/// Length of the random per-message nonce.
pub(crate) const NONCE_LEN: usize = 16;
/// Length of the session reference.
pub(crate) const REF_LEN: usize = 16;
/// Length of one MAC-mode tag (spec §7.2).
pub(crate) const MAC_TAG_LEN: usize = 16;
/// Length of an Ed25519 signature.
pub(crate) const SIG_LEN: usize = 64;
/// Length of the payload AEAD tag.
pub(crate) const AEAD_TAG_LEN: usize = 16;

/// Authenticated cleartext metadata: string keys (non-empty) to string values. Sorted and
/// unique by construction, which is the canonical order the spec requires on the wire.
pub type Metadata = BTreeMap<String, String>;

/// Limits a decoder applies before it trusts any length (spec §9).
#[derive(Clone, Copy, Debug)]
pub(crate) struct DecodeLimits {
    pub max_metadata_entries: usize,
    pub max_metadata_bytes: usize,
}

/// Writes the metadata map (spec §7.1 field 7): `metadata` plus one more entry, `extra`, whose key `metadata` must not hold, in
/// its sorted place: the bytes of the map with `extra` inserted, without building that map
/// (a reply's binding, spec/rpc.md §3).
pub(crate) fn put_metadata_with(
    out: &mut Vec<u8>,
    metadata: &Metadata,
    mut extra: Option<(&str, &str)>,
) {
    debug_assert!(extra.is_none_or(|(k, _)| !metadata.contains_key(k)));
    wire::put_map(out, metadata.len() + usize::from(extra.is_some()));
    for (k, v) in metadata {
        if let Some((ek, ev)) = extra.filter(|(ek, _)| *ek < k.as_str()) {
            wire::put_str(out, ek);
            wire::put_str(out, ev);
            extra = None;
        }
        wire::put_str(out, k);
        wire::put_str(out, v);
    }
    if let Some((ek, ev)) = extra {
        wire::put_str(out, ek);
        wire::put_str(out, ev);
    }
}

/// The metadata entries of a decoded envelope, checked by [`Envelope::decode`] and read again
/// from the envelope's bytes when needed, so decoding allocates nothing.
#[derive(Clone, Copy)]
pub(crate) struct MetadataRef<'a> {
    bytes: &'a [u8],
    pairs: usize,
}

impl<'a> MetadataRef<'a> {
    /// The entries in wire order (strictly increasing keys).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        let mut r = Reader::new(self.bytes);
        (0..self.pairs).map_while(move |_| Some((r.str().ok()?, r.str().ok()?)))
    }

    /// An owned copy; inserting in the (sorted) wire order needs no temporary buffer.
    pub(crate) fn to_metadata(self) -> Metadata {
        let mut m = Metadata::new();
        for (k, v) in self.iter() {
            m.insert(k.to_owned(), v.to_owned());
        }
        m
    }
}

/// A decoded envelope borrowing from the input.
pub(crate) struct Envelope<'a> {
    pub suite: Suite,
    pub session_ref: [u8; REF_LEN],
    pub block: Option<&'a [u8]>,
    pub seq: u64,
    pub timestamp: u64,
    pub nonce: [u8; NONCE_LEN],
    pub metadata: MetadataRef<'a>,
    pub body: &'a [u8],
    pub authenticator: &'a [u8],
    /// Every byte before the authenticator field: what the message hash covers.
    pub covered: &'a [u8],
}

impl<'a> Envelope<'a> {
    /// Strict decode (spec §7.3 steps 1 to 3, and §9).
    /// The length of the session block `bytes` carries inline (0 when it refers to its
    /// session), from the first four fields alone: no allocation, no hashing. Says nothing
    /// about the fields after them; for accounting, not for accepting.
    pub(crate) fn inline_block_len(bytes: &[u8]) -> Result<usize, Error> {
        let mut r = Reader::new(bytes);
        r.versioned(VERSION, ENVELOPE_FIELDS, "envelope")?;
        Suite::from_id(r.uint()?)?;
        r.bin_exact::<REF_LEN>()?;
        Ok(r.nil_or_bin()?.map_or(0, <[u8]>::len))
    }

    pub(crate) fn decode(bytes: &'a [u8], limits: &DecodeLimits) -> Result<Envelope<'a>, Error> {
        let mut r = Reader::new(bytes);
        r.versioned(VERSION, ENVELOPE_FIELDS, "envelope")?;
        let suite = Suite::from_id(r.uint()?)?;
        let session_ref = r.bin_exact::<REF_LEN>()?;
        let block = r.nil_or_bin()?;
        let seq = r.uint()?;
        let timestamp = r.uint()?;
        let nonce = r.bin_exact::<NONCE_LEN>()?;
        let pairs = r.map()?;
        if pairs > limits.max_metadata_entries
            && !crate::mutant::is(crate::mutant::Mutant::NoReceiverLimits)
        {
            return Err(Error::new(
                ErrorKind::LimitExceeded,
                format!(
                    "{pairs} metadata entries exceed the limit of {}",
                    limits.max_metadata_entries
                ),
            ));
        }
        let metadata_start = r.position();
        let mut prev: Option<&str> = None;
        let mut total = 0usize;
        for _ in 0..pairs {
            let k = r.str()?;
            let v = r.str()?;
            if k.is_empty() && !crate::mutant::is(crate::mutant::Mutant::EmptyMetadataKeyAccepted) {
                return Err(Error::new(ErrorKind::Malformed, "empty metadata key"));
            }
            if let Some(prev) = prev {
                if prev >= k && !crate::mutant::is(crate::mutant::Mutant::MetadataOrderUnchecked) {
                    return Err(Error::new(
                        ErrorKind::Malformed,
                        "metadata keys are not in strictly increasing order (duplicate or unsorted)",
                    ));
                }
            }
            total += k.len() + v.len();
            if total > limits.max_metadata_bytes
                && !crate::mutant::is(crate::mutant::Mutant::NoReceiverLimits)
            {
                return Err(Error::new(
                    ErrorKind::LimitExceeded,
                    format!(
                        "metadata exceeds the limit of {} bytes",
                        limits.max_metadata_bytes
                    ),
                ));
            }
            prev = Some(k);
        }
        let metadata = MetadataRef {
            bytes: r.since(metadata_start),
            pairs,
        };
        let body = r.bin()?;
        let covered = r.since(0);
        let authenticator = r.bin()?;
        r.finish()?;
        Ok(Envelope {
            suite,
            session_ref,
            block,
            seq,
            timestamp,
            nonce,
            metadata,
            body,
            authenticator,
            covered,
        })
    }
}

/// `H_message(header_hash || covered bytes)` (spec §7.2).
pub(crate) fn message_hash(header_hash: &[u8; 32], covered: &[u8]) -> [u8; 32] {
    let mut hasher = message_hasher(header_hash);
    hasher.update(covered);
    *hasher.finalize().as_bytes()
}

/// [`message_hash`] to be fed piece by piece: the hasher has absorbed `header_hash`; the
/// covered bytes follow in order, then `finalize`.
///
/// The context key of `CTX_MESSAGE` is derived once per process: `new_derive_key` hashes
/// its context string on every call, one BLAKE3 compression of the eight or so that every
/// envelope costs. The same state, so the same hash (`message_hash_is_h_of_the_context`).
pub(crate) fn message_hasher(header_hash: &[u8; 32]) -> blake3::Hasher {
    use blake3::hazmat::HasherExt as _;
    static CONTEXT_KEY: std::sync::OnceLock<blake3::hazmat::ContextKey> =
        std::sync::OnceLock::new();
    let key = CONTEXT_KEY.get_or_init(|| blake3::hazmat::hash_derive_key_context(CTX_MESSAGE));
    let mut hasher = blake3::Hasher::new_from_context_key(key);
    hasher.update(header_hash);
    hasher
}

/// The AEAD nonce of message `seq`: four zero bytes then `seq` big-endian (spec §7.2).
pub(crate) fn aead_nonce(seq: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&seq.to_be_bytes());
    n
}

/// The byte string a session key signs for a message (spec §7.2).
pub(crate) fn signature_input(message_hash: &[u8; 32]) -> [u8; SIG_LABEL_MESSAGE.len() + 32] {
    let mut m = [0u8; SIG_LABEL_MESSAGE.len() + 32];
    m[..SIG_LABEL_MESSAGE.len()].copy_from_slice(SIG_LABEL_MESSAGE);
    m[SIG_LABEL_MESSAGE.len()..].copy_from_slice(message_hash);
    m
}

/// One recipient's MAC tag of a message (spec §7.2): `BLAKE3-keyed(MK_i, message hash)`,
/// first 16 bytes.
pub(crate) fn mac_tag(mac_key: &[u8; 32], message_hash: &[u8; 32]) -> [u8; MAC_TAG_LEN] {
    let full = blake3::keyed_hash(mac_key, message_hash);
    full.as_bytes()[..MAC_TAG_LEN].try_into().expect("32 >= 16")
}

/// Length of a MAC-mode authenticator for `n` recipients (spec §7.2): one tag each, and
/// with two or more recipients one list tag after them.
pub(crate) fn mac_list_len(n: usize) -> usize {
    MAC_TAG_LEN * n + if n >= 2 { MAC_TAG_LEN } else { 0 }
}

/// `AK = H_listkey(EK)`: every recipient knows it; it keys the list tag (spec §7.2).
pub(crate) fn list_key(ek: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    Zeroizing::new(h(CTX_LIST_KEY, &[ek]))
}

/// The list tag: `BLAKE3-keyed(AK, message hash || every recipient tag)`, first 16 bytes.
/// It makes the other recipients' tags tamper-evident to each recipient.
pub(crate) fn list_tag(ak: &[u8; 32], message_hash: &[u8; 32], tags: &[u8]) -> [u8; MAC_TAG_LEN] {
    let mut hasher = blake3::Hasher::new_keyed(ak);
    hasher.update(message_hash);
    hasher.update(tags);
    hasher.finalize().as_bytes()[..MAC_TAG_LEN]
        .try_into()
        .expect("32 >= 16")
}

/// Appends the MAC-mode authenticator's bytes (its bin header written by the caller).
pub(crate) fn put_mac_list(
    out: &mut Vec<u8>,
    mac_keys: &[Zeroizing<[u8; 32]>],
    ak: &[u8; 32],
    message_hash: &[u8; 32],
) {
    let start = out.len();
    for mk in mac_keys {
        out.extend_from_slice(&mac_tag(mk, message_hash));
    }
    if mac_keys.len() >= 2 {
        let t = list_tag(ak, message_hash, &out[start..]);
        out.extend_from_slice(&t);
    }
}

/// Checks recipient `index`'s tag and, with two or more recipients, the list tag. Both
/// comparisons are constant-time; the caller has checked the length.
pub(crate) fn check_mac_list(
    auth: &[u8],
    index: usize,
    n: usize,
    mac_key: &[u8; 32],
    ak: &[u8; 32],
    message_hash: &[u8; 32],
) -> bool {
    let at = index * MAC_TAG_LEN;
    let mut ok = mac_tag(mac_key, message_hash).ct_eq(&auth[at..at + MAC_TAG_LEN]);
    if n >= 2 {
        let (tags, tail) = auth.split_at(n * MAC_TAG_LEN);
        ok &= list_tag(ak, message_hash, tags).ct_eq(tail);
    }
    bool::from(ok)
}

/// Writes everything before the body's bytes: fields 0 to 7 and the body's bin header.
#[allow(clippy::too_many_arguments)]
pub(crate) fn put_prefix(
    out: &mut Vec<u8>,
    version: u64,
    suite: u64,
    session_ref: &[u8; REF_LEN],
    block: Option<&[u8]>,
    seq: u64,
    timestamp: u64,
    nonce: &[u8; NONCE_LEN],
    metadata: &Metadata,
    extra: Option<(&str, &str)>,
    body_len: usize,
) {
    wire::put_array(out, ENVELOPE_FIELDS);
    wire::put_uint(out, version);
    wire::put_uint(out, suite);
    wire::put_bin(out, session_ref);
    match block {
        Some(b) => wire::put_bin(out, b),
        None => wire::put_nil(out),
    }
    wire::put_uint(out, seq);
    wire::put_uint(out, timestamp);
    wire::put_bin(out, nonce);
    put_metadata_with(out, metadata, extra);
    wire::put_bin_header(out, body_len);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_hash_is_h_of_the_context() {
        let hh = [7u8; 32];
        for len in [0usize, 1, 31, 64, 1000, 1024, 1025, 5000] {
            let covered: Vec<u8> = (0..len).map(|i| (i * 31) as u8).collect();
            let expected = h(CTX_MESSAGE, &[&hh, &covered]);
            assert_eq!(message_hash(&hh, &covered), expected, "{len}");
            // Twice: the shared keyed state is not changed by a use.
            assert_eq!(message_hash(&hh, &covered), expected, "{len}");
            let mut piecewise = message_hasher(&hh);
            for c in covered.chunks(100) {
                piecewise.update(c);
            }
            assert_eq!(*piecewise.finalize().as_bytes(), expected, "{len}");
        }
    }
}
