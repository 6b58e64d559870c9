//! Stored data encrypted at rest: asset headers, records, master key wrapping and rotation
//! (spec/at-rest.md). Feature `at-rest`.
//!
//! The key hierarchy: a [`MasterKey`] held by the service (never stored by this code) ->
//! a key-encryption key (KEK) derived for one asset and one random salt, never stored ->
//! a random asset key (AEK), stored wrapped by the KEK in the asset's header. Records are
//! sealed under the AEK with the asset and the record's position authenticated. Rotating
//! the master key re-wraps headers only ([`rewrap_header`]); records are not touched.
//!
//! This module is the format only: bytes in, bytes out. Files, segments and queues are the
//! `rpcseal-store` crate's job.

use std::fmt;

use getrandom::SysRng;
use rand_core::{CryptoRng, UnwrapErr};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::aead::{PayloadCipher, TAG_LEN};
use crate::hash::h;
use crate::keys::{KeyId, MasterKey};

// spec/at-rest.md §3: the hash contexts.
/// KEK derivation (§4).
pub const CTX_KEK: &str = "rpcseal 2026-11-30 at-rest v1 kek";
/// The header check (§5).
pub const CTX_HEADER_CHECK: &str = "rpcseal 2026-11-30 at-rest v1 header check";
/// The asset binding every record authenticates (§6).
pub const CTX_ASSET_BIND: &str = "rpcseal 2026-11-30 at-rest v1 asset binding";
/// The asset key id records carry (§6).
pub const CTX_ASSET_KEY_ID: &str = "rpcseal 2026-11-30 at-rest v1 asset key id";
/// The check key of plain records (§7).
pub const CTX_PLAIN_CHECK: &str = "rpcseal 2026-11-30 at-rest v1 plain record check";

/// The first four bytes of every asset header (§5).
pub const HEADER_MAGIC: [u8; 4] = *b"RSAH";
/// The format version this code reads and writes.
pub const VERSION: u8 = 1;
/// Header mode byte: records in plain text (the queue's encryption flag off).
const MODE_PLAIN: u8 = 0;
/// Header mode byte: records sealed under a wrapped asset key.
const MODE_ENCRYPTED: u8 = 1;
/// Record marker of a sealed record (§6).
pub const MARKER_ENCRYPTED: u8 = 0xE5;
/// Record marker of a plain record (§7).
pub const MARKER_PLAIN: u8 = 0x50;
/// Record flag: the asset's final record (§8).
const FLAG_FINAL: u8 = 0x01;
/// Bytes before a record's body.
pub const RECORD_HEADER_LEN: usize = 24;
/// Bytes a record adds to its body (header and tag).
pub const RECORD_OVERHEAD: usize = RECORD_HEADER_LEN + TAG_LEN;
/// The longest record body (16 MiB): a reader refuses longer declared lengths before
/// reading them, so a hostile length cannot make it allocate.
pub const MAX_RECORD_BODY: usize = 1 << 24;
/// The longest asset id and store name (their length is one byte).
pub const MAX_NAME: usize = 255;
/// Length of the fixed part of a header; the whole header is this plus the asset id.
const HEADER_FIXED: usize = 8 + 16 + 32 + 48 + 16;

/// Why stored bytes were rejected. The categories are the failure classes of the negative
/// vectors in `vectors/at-rest/` (spec/at-rest.md §9).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AtRestErrorKind {
    /// Not a well-formed header or record: bad magic or marker, reserved bits set, a
    /// declared length over the limit, trailing bytes, non-zero fields that must be zero.
    Malformed,
    /// A format version this code does not implement.
    UnsupportedVersion,
    /// A plain record in an encrypted asset or the other way round, or a plain asset where
    /// the reader requires encryption.
    ModeMismatch,
    /// The header is wrapped under a master key id the reader does not hold.
    UnknownKey,
    /// The master key with the header's id does not unwrap it: a wrong key under a
    /// reused id, another store's asset, or a header altered with its check recomputed.
    WrongKey,
    /// A header whose check fails, or a record whose tag does not verify.
    Tampered,
    /// A header for another asset (id or kind), or a record of another asset or another
    /// position (moved or reordered).
    Misplaced,
    /// The bytes end before the header, a record, or the asset's final record.
    Truncated,
}

impl AtRestErrorKind {
    /// The failure class as the vectors spell it (`malformed`, `wrong_key`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            AtRestErrorKind::Malformed => "malformed",
            AtRestErrorKind::UnsupportedVersion => "unsupported_version",
            AtRestErrorKind::ModeMismatch => "mode_mismatch",
            AtRestErrorKind::UnknownKey => "unknown_key",
            AtRestErrorKind::WrongKey => "wrong_key",
            AtRestErrorKind::Tampered => "tampered",
            AtRestErrorKind::Misplaced => "misplaced",
            AtRestErrorKind::Truncated => "truncated",
        }
    }
}

/// A rejected header or record: its category and a sentence for a person (never any byte
/// of a key or of the data).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AtRestError {
    kind: AtRestErrorKind,
    what: &'static str,
}

impl AtRestError {
    /// An error of category `kind`, described by `what`.
    pub fn new(kind: AtRestErrorKind, what: &'static str) -> AtRestError {
        AtRestError { kind, what }
    }

    /// The category.
    pub fn kind(&self) -> AtRestErrorKind {
        self.kind
    }
}

impl fmt::Display for AtRestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.what, self.kind.as_str())
    }
}

impl std::error::Error for AtRestError {}

/// Caller misuse when creating assets or sealing records (not hostile input).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AtRestMisuse {
    /// An asset id must be 1 to 255 bytes, a store name 0 to 255 bytes.
    #[error("asset ids are 1 to 255 bytes and store names at most 255 bytes")]
    Name,
    /// A record body longer than [`MAX_RECORD_BODY`].
    #[error("a record body is at most 16 MiB")]
    RecordTooLong,
}

/// Which asset a header or a record belongs to: the store's name, the asset's kind and
/// its id (spec §4). The reader supplies it from where it found the bytes; the format
/// checks that the bytes agree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AssetRef<'a> {
    /// The store's name (0 to 255 bytes): bound into every KEK, so an asset copied into
    /// another store under the same master key does not open there.
    pub store: &'a [u8],
    /// What kind of asset (1 = a queue's message segment in `rpcseal-store`).
    pub kind: u8,
    /// The asset's id within the store (1 to 255 bytes).
    pub id: &'a [u8],
}

impl AssetRef<'_> {
    fn check(&self) -> Result<(), AtRestMisuse> {
        if self.id.is_empty() || self.id.len() > MAX_NAME || self.store.len() > MAX_NAME {
            return Err(AtRestMisuse::Name);
        }
        Ok(())
    }

    /// `u8(len(store)) ‖ store ‖ u8(kind) ‖ u8(len(id)) ‖ id` (§4).
    fn context(&self, out: &mut Vec<u8>) {
        out.push(self.store.len() as u8);
        out.extend_from_slice(self.store);
        out.push(self.kind);
        out.push(self.id.len() as u8);
        out.extend_from_slice(self.id);
    }
}

/// What a header says without any key (spec §5): for inspection and for choosing a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderInfo {
    /// True for an encrypted asset.
    pub encrypted: bool,
    /// The asset kind.
    pub kind: u8,
    /// The asset id.
    pub asset_id: Vec<u8>,
    /// The id of the master key the asset key is wrapped under (encrypted assets).
    pub master_key_id: Option<KeyId>,
}

/// The key of one asset, unwrapped: seals and opens its records. Zeroized on drop.
pub struct AssetKey {
    cipher: Option<PayloadCipher>,
    aek: Zeroizing<[u8; 32]>,
    akid: [u8; 8],
    bind: [u8; 32],
    plain_key: [u8; 32],
}

impl fmt::Debug for AssetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "AssetKey {{ encrypted: {}, secret: <redacted> }}",
            self.cipher.is_some()
        )
    }
}

fn kek(master: &MasterKey, asset: &AssetRef<'_>, salt: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    // spec §4: KEK = H(CTX_KEK, MK ‖ asset context ‖ salt)
    let mut ctx = Vec::with_capacity(3 + 2 * MAX_NAME);
    asset.context(&mut ctx);
    Zeroizing::new(h(CTX_KEK, &[master.secret(), &ctx, salt]))
}

fn binding(asset: &AssetRef<'_>) -> [u8; 32] {
    let mut ctx = Vec::with_capacity(3 + 2 * MAX_NAME);
    asset.context(&mut ctx);
    h(CTX_ASSET_BIND, &[&ctx])
}

impl AssetKey {
    fn new(encrypted: bool, aek: &[u8; 32], asset: &AssetRef<'_>) -> AssetKey {
        let bind = binding(asset);
        if encrypted {
            let d = h(CTX_ASSET_KEY_ID, &[aek]);
            let mut akid = [0u8; 8];
            akid.copy_from_slice(&d[..8]);
            AssetKey {
                cipher: Some(PayloadCipher::new(aek)),
                aek: Zeroizing::new(*aek),
                akid,
                bind,
                plain_key: [0; 32],
            }
        } else {
            AssetKey {
                cipher: None,
                aek: Zeroizing::new([0; 32]),
                akid: [0; 8],
                bind,
                plain_key: h(CTX_PLAIN_CHECK, &[&bind]),
            }
        }
    }

    /// True when the asset's records are encrypted.
    pub fn is_encrypted(&self) -> bool {
        self.cipher.is_some()
    }

    /// Appends the record at position `index` holding `body` to `out` (spec §6, §7).
    pub fn seal_record(
        &self,
        index: u64,
        body: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), AtRestMisuse> {
        if body.len() > MAX_RECORD_BODY {
            return Err(AtRestMisuse::RecordTooLong);
        }
        self.seal(0, index, body, out);
        Ok(())
    }

    /// Appends the asset's final record after `count` records (spec §8): a reader that
    /// finds it knows nothing was cut off the end.
    pub fn seal_final(&self, count: u64, out: &mut Vec<u8>) {
        self.seal(FLAG_FINAL, count, &[], out);
    }

    fn record_header(&self, flags: u8, index: u64, len: usize) -> [u8; RECORD_HEADER_LEN] {
        let mut hd = [0u8; RECORD_HEADER_LEN];
        hd[0] = if self.is_encrypted() {
            MARKER_ENCRYPTED
        } else {
            MARKER_PLAIN
        };
        hd[1] = VERSION;
        hd[2] = flags;
        hd[4..8].copy_from_slice(&(len as u32).to_be_bytes());
        hd[8..16].copy_from_slice(&self.akid);
        hd[16..24].copy_from_slice(&index.to_be_bytes());
        hd
    }

    fn seal(&self, flags: u8, index: u64, body: &[u8], out: &mut Vec<u8>) {
        let hd = self.record_header(flags, index, body.len());
        let start = out.len();
        out.reserve(RECORD_OVERHEAD + body.len());
        out.extend_from_slice(&hd);
        match &self.cipher {
            Some(cipher) => {
                let ad = self.ad(&hd);
                out.resize(start + RECORD_HEADER_LEN + body.len(), 0);
                // Lengths are checked above (16 MiB is far below the AEAD's limit).
                let tag = cipher
                    .encrypt_b2b(
                        &nonce(flags, index),
                        &ad,
                        body,
                        &mut out[start + RECORD_HEADER_LEN..],
                    )
                    .unwrap_or([0; TAG_LEN]);
                out.extend_from_slice(&tag);
            }
            None => {
                out.extend_from_slice(body);
                let check = self.plain_check(&hd, body);
                out.extend_from_slice(&check);
            }
        }
    }

    fn ad(&self, hd: &[u8; RECORD_HEADER_LEN]) -> [u8; 32 + RECORD_HEADER_LEN] {
        let mut ad = [0u8; 32 + RECORD_HEADER_LEN];
        ad[..32].copy_from_slice(&self.bind);
        ad[32..].copy_from_slice(hd);
        ad
    }

    fn plain_check(&self, hd: &[u8], body: &[u8]) -> [u8; TAG_LEN] {
        let mut hasher = blake3::Hasher::new_keyed(&self.plain_key);
        hasher.update(hd);
        hasher.update(body);
        let d = hasher.finalize();
        let mut c = [0u8; TAG_LEN];
        c.copy_from_slice(&d.as_bytes()[..TAG_LEN]);
        c
    }

    /// Opens the record at the start of `input`, which must be the record at position
    /// `index` (spec §6.2, §7). Its body goes to `scratch` (encrypted assets) or stays in
    /// `input` (plain); the returned [`OpenedRecord`] says where and how many bytes of
    /// `input` the record took. Nothing of a record that fails is returned.
    pub fn open_record<'a>(
        &self,
        index: u64,
        input: &'a [u8],
        scratch: &'a mut Vec<u8>,
    ) -> Result<OpenedRecord<'a>, AtRestError> {
        use AtRestErrorKind::*;
        if input.len() < RECORD_HEADER_LEN {
            return Err(AtRestError::new(
                Truncated,
                "the data end inside a record header",
            ));
        }
        let hd: &[u8; RECORD_HEADER_LEN] = input[..RECORD_HEADER_LEN]
            .try_into()
            .map_err(|_| AtRestError::new(Truncated, "short record header"))?;
        let encrypted = match hd[0] {
            MARKER_ENCRYPTED => true,
            MARKER_PLAIN => false,
            _ => return Err(AtRestError::new(Malformed, "not a record marker")),
        };
        if encrypted != self.is_encrypted() {
            return Err(AtRestError::new(
                ModeMismatch,
                if encrypted {
                    "an encrypted record in a plain asset"
                } else {
                    "a plain record in an encrypted asset"
                },
            ));
        }
        if hd[1] != VERSION {
            return Err(AtRestError::new(
                UnsupportedVersion,
                "unknown record version",
            ));
        }
        let flags = hd[2];
        if flags & !FLAG_FINAL != 0 || hd[3] != 0 {
            return Err(AtRestError::new(Malformed, "reserved record bits are set"));
        }
        let len = u32::from_be_bytes([hd[4], hd[5], hd[6], hd[7]]) as usize;
        if len > MAX_RECORD_BODY || (flags & FLAG_FINAL != 0 && len != 0) {
            return Err(AtRestError::new(Malformed, "record length out of range"));
        }
        let total = RECORD_OVERHEAD + len;
        if input.len() < total {
            return Err(AtRestError::new(Truncated, "the data end inside a record"));
        }
        if !bool::from(hd[8..16].ct_eq(&self.akid[..])) {
            return Err(AtRestError::new(
                if encrypted { Misplaced } else { Malformed },
                "the record's key id is not its asset's",
            ));
        }
        if u64::from_be_bytes(hd[16..24].try_into().unwrap_or([0xff; 8])) != index {
            return Err(AtRestError::new(
                Misplaced,
                "the record is not at its position",
            ));
        }
        let body = &input[RECORD_HEADER_LEN..RECORD_HEADER_LEN + len];
        let tag: &[u8; TAG_LEN] = input[RECORD_HEADER_LEN + len..total]
            .try_into()
            .map_err(|_| AtRestError::new(Truncated, "short tag"))?;
        let last = flags & FLAG_FINAL != 0;
        match &self.cipher {
            Some(cipher) => {
                // Grown once, then reused: the decryption overwrites every byte it hands
                // out, so there is nothing to clear first.
                if scratch.len() < len {
                    scratch.resize(len, 0);
                }
                let out = &mut scratch[..len];
                cipher
                    .decrypt_b2b(&nonce(flags, index), &self.ad(hd), body, out, tag)
                    .map_err(|_| AtRestError::new(Tampered, "the record does not authenticate"))?;
                Ok(OpenedRecord {
                    body: &scratch[..len],
                    len: total,
                    last,
                })
            }
            None => {
                if !bool::from(self.plain_check(hd, body).ct_eq(tag)) {
                    return Err(AtRestError::new(
                        Tampered,
                        "the record's check does not match",
                    ));
                }
                Ok(OpenedRecord {
                    body,
                    len: total,
                    last,
                })
            }
        }
    }

    /// Opens every record of an asset's data, in order, handing each body to `each`
    /// (spec §8). With `require_final`, data without a final record are [`Truncated`]
    /// (an asset that was closed); without it (the asset a writer may still be appending
    /// to), data may end after any whole record, and an incomplete record at the very end
    /// is reported in [`AssetScan::torn_tail`] and not returned.
    ///
    /// [`Truncated`]: AtRestErrorKind::Truncated
    pub fn open_all(
        &self,
        data: &[u8],
        require_final: bool,
        mut each: impl FnMut(u64, &[u8]),
    ) -> Result<AssetScan, AtRestError> {
        let mut scratch = Vec::new();
        let mut at = 0usize;
        let mut index = 0u64;
        while at < data.len() {
            match self.open_record(index, &data[at..], &mut scratch) {
                Ok(rec) => {
                    at += rec.len;
                    if rec.last {
                        if at != data.len() {
                            return Err(AtRestError::new(
                                AtRestErrorKind::Malformed,
                                "bytes after the final record",
                            ));
                        }
                        return Ok(AssetScan {
                            records: index,
                            finished: true,
                            valid_len: at,
                            torn_tail: false,
                        });
                    }
                    each(index, rec.body);
                    index += 1;
                }
                Err(e) if e.kind == AtRestErrorKind::Truncated && !require_final => {
                    return Ok(AssetScan {
                        records: index,
                        finished: false,
                        valid_len: at,
                        torn_tail: true,
                    });
                }
                Err(e) => return Err(e),
            }
        }
        if require_final {
            return Err(AtRestError::new(
                AtRestErrorKind::Truncated,
                "the asset ends without its final record",
            ));
        }
        Ok(AssetScan {
            records: index,
            finished: false,
            valid_len: at,
            torn_tail: false,
        })
    }
}

/// One opened record. Its `Debug` shows the body's length, never its bytes.
pub struct OpenedRecord<'a> {
    /// The body, authenticated (and decrypted).
    pub body: &'a [u8],
    /// How many bytes of the input the record took.
    pub len: usize,
    /// True for the asset's final record (its body is empty).
    pub last: bool,
}

impl fmt::Debug for OpenedRecord<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenedRecord")
            .field("body", &crate::open::Redacted(self.body.len()))
            .field("len", &self.len)
            .field("last", &self.last)
            .finish()
    }
}

/// What [`AssetKey::open_all`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AssetScan {
    /// The number of records handed out.
    pub records: u64,
    /// True when the data end with the final record.
    pub finished: bool,
    /// Bytes of whole, authentic records (and the final record, if any).
    pub valid_len: usize,
    /// True when an incomplete record follows `valid_len` (a write cut short).
    pub torn_tail: bool,
}

/// spec §6.1: `nonce = u32(flags) ‖ u64(index)`, big-endian.
fn nonce(flags: u8, index: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[3] = flags;
    n[4..].copy_from_slice(&index.to_be_bytes());
    n
}

/// Creates an asset: its header and its key (spec §5). With a master key, the records
/// will be encrypted under a fresh random AEK wrapped in the header; with `None`, the
/// asset is plain (the queue's encryption flag is off) and the header says so.
pub fn create_asset(
    asset: &AssetRef<'_>,
    master: Option<&MasterKey>,
) -> Result<(Vec<u8>, AssetKey), AtRestMisuse> {
    create_asset_with(asset, master, &mut UnwrapErr(SysRng))
}

/// [`create_asset`] with a chosen random number generator (test vectors).
#[doc(hidden)]
pub fn create_asset_with<R: CryptoRng>(
    asset: &AssetRef<'_>,
    master: Option<&MasterKey>,
    rng: &mut R,
) -> Result<(Vec<u8>, AssetKey), AtRestMisuse> {
    asset.check()?;
    let mut aek = Zeroizing::new([0u8; 32]);
    let mut salt = [0u8; 32];
    if master.is_some() {
        rng.fill_bytes(&mut aek[..]);
        rng.fill_bytes(&mut salt);
    }
    let header = write_header(asset, master, &salt, &aek);
    Ok((header, AssetKey::new(master.is_some(), &aek, asset)))
}

fn write_header(
    asset: &AssetRef<'_>,
    master: Option<&MasterKey>,
    salt: &[u8; 32],
    aek: &[u8; 32],
) -> Vec<u8> {
    let n = asset.id.len();
    let mut out = Vec::with_capacity(HEADER_FIXED + n);
    out.extend_from_slice(&HEADER_MAGIC);
    out.push(VERSION);
    out.push(if master.is_some() {
        MODE_ENCRYPTED
    } else {
        MODE_PLAIN
    });
    out.push(asset.kind);
    out.push(n as u8);
    out.extend_from_slice(asset.id);
    match master {
        Some(mk) => {
            out.extend_from_slice(mk.key_id().as_bytes());
            out.extend_from_slice(salt);
            let kek = kek(mk, asset, salt);
            let cipher = PayloadCipher::new(&kek);
            let mut wrapped = [0u8; 32];
            // spec §5.2: the KEK is used once (fresh salt), so the nonce is zero.
            let tag = cipher
                .encrypt_b2b(&[0; 12], &out, aek, &mut wrapped)
                .unwrap_or([0; TAG_LEN]);
            out.extend_from_slice(&wrapped);
            out.extend_from_slice(&tag);
        }
        None => out.resize(out.len() + 16 + 32 + 48, 0),
    }
    let check = h(CTX_HEADER_CHECK, &[&out]);
    out.extend_from_slice(&check[..16]);
    out
}

/// Reads a header without any key (spec §5.3 steps 1 to 5): structure, version, check.
pub fn inspect_header(header: &[u8]) -> Result<HeaderInfo, AtRestError> {
    use AtRestErrorKind::*;
    if header.len() < 8 {
        return Err(AtRestError::new(Truncated, "the header is incomplete"));
    }
    if header[..4] != HEADER_MAGIC {
        return Err(AtRestError::new(Malformed, "not an asset header"));
    }
    if header[4] != VERSION {
        return Err(AtRestError::new(
            UnsupportedVersion,
            "unknown header version",
        ));
    }
    let encrypted = match header[5] {
        MODE_PLAIN => false,
        MODE_ENCRYPTED => true,
        _ => return Err(AtRestError::new(Malformed, "unknown header mode")),
    };
    let n = header[7] as usize;
    if n == 0 {
        return Err(AtRestError::new(Malformed, "empty asset id"));
    }
    let want = HEADER_FIXED + n;
    if header.len() < want {
        return Err(AtRestError::new(Truncated, "the header is incomplete"));
    }
    if header.len() > want {
        return Err(AtRestError::new(Malformed, "bytes after the header"));
    }
    let check = h(CTX_HEADER_CHECK, &[&header[..want - 16]]);
    if !bool::from(check[..16].ct_eq(&header[want - 16..])) {
        return Err(AtRestError::new(
            Tampered,
            "the header's check does not match",
        ));
    }
    let mkid: [u8; 16] = header[8 + n..24 + n]
        .try_into()
        .map_err(|_| AtRestError::new(Malformed, "short key id"))?;
    if !encrypted && header[8 + n..want - 16].iter().any(|&b| b != 0) {
        return Err(AtRestError::new(
            Malformed,
            "a plain header with key fields",
        ));
    }
    Ok(HeaderInfo {
        encrypted,
        kind: header[6],
        asset_id: header[8..8 + n].to_vec(),
        master_key_id: encrypted.then(|| KeyId::from_bytes(mkid)),
    })
}

/// Opens an asset's header (spec §5.3): checks it, checks that it is the header of
/// `asset`, finds the master key it names among `keys` (during a rotation, both the old
/// and the new key) and unwraps the asset key.
pub fn open_asset(
    header: &[u8],
    asset: &AssetRef<'_>,
    keys: &[MasterKey],
) -> Result<AssetKey, AtRestError> {
    let (info, aek) = unwrap(header, asset, keys)?;
    Ok(AssetKey::new(info.encrypted, &aek, asset))
}

fn unwrap(
    header: &[u8],
    asset: &AssetRef<'_>,
    keys: &[MasterKey],
) -> Result<(HeaderInfo, Zeroizing<[u8; 32]>), AtRestError> {
    use AtRestErrorKind::*;
    let info = inspect_header(header)?;
    if info.kind != asset.kind || info.asset_id != asset.id {
        return Err(AtRestError::new(
            Misplaced,
            "the header belongs to another asset",
        ));
    }
    let mut aek = Zeroizing::new([0u8; 32]);
    let Some(id) = info.master_key_id else {
        return Ok((info, aek));
    };
    let mk = keys
        .iter()
        .find(|k| k.key_id() == id)
        .ok_or(AtRestError::new(
            UnknownKey,
            "no master key with the header's key id",
        ))?;
    let n = asset.id.len();
    let salt: [u8; 32] = header[24 + n..56 + n]
        .try_into()
        .map_err(|_| AtRestError::new(Malformed, "short salt"))?;
    let tag: [u8; TAG_LEN] = header[88 + n..104 + n]
        .try_into()
        .map_err(|_| AtRestError::new(Malformed, "short wrap"))?;
    let kek = kek(mk, asset, &salt);
    PayloadCipher::new(&kek)
        .decrypt_b2b(
            &[0; 12],
            &header[..56 + n],
            &header[56 + n..88 + n],
            &mut aek[..],
            &tag,
        )
        .map_err(|_| AtRestError::new(WrongKey, "the master key does not unwrap the asset key"))?;
    Ok((info, aek))
}

/// Re-wraps an encrypted asset's key under `new` (spec §10): the header is opened with
/// any of `keys` and rewritten with a fresh salt, naming `new`. The asset key and every
/// record stay as they are.
pub fn rewrap_header(
    header: &[u8],
    asset: &AssetRef<'_>,
    keys: &[MasterKey],
    new: &MasterKey,
) -> Result<Vec<u8>, AtRestError> {
    rewrap_header_with(header, asset, keys, new, &mut UnwrapErr(SysRng))
}

/// [`rewrap_header`] with a chosen random number generator (test vectors).
#[doc(hidden)]
pub fn rewrap_header_with<R: CryptoRng>(
    header: &[u8],
    asset: &AssetRef<'_>,
    keys: &[MasterKey],
    new: &MasterKey,
    rng: &mut R,
) -> Result<Vec<u8>, AtRestError> {
    let (info, aek) = unwrap(header, asset, keys)?;
    if !info.encrypted {
        return Err(AtRestError::new(
            AtRestErrorKind::ModeMismatch,
            "a plain asset has no wrapped key to rotate",
        ));
    }
    let mut salt = [0u8; 32];
    rng.fill_bytes(&mut salt);
    Ok(write_header(asset, Some(new), &salt, &aek))
}

/// The asset key bytes, for the vector generator only.
#[doc(hidden)]
pub fn asset_key_bytes(key: &AssetKey) -> Zeroizing<[u8; 32]> {
    key.aek.clone()
}

#[cfg(test)]
mod tests {
    use super::OpenedRecord;

    #[test]
    fn an_opened_record_debug_shows_no_plaintext() {
        let r = OpenedRecord {
            body: b"card 4111-1111",
            len: 60,
            last: false,
        };
        let shown = format!("{r:?}");
        assert!(!shown.contains("4111"), "{shown}");
        assert!(!shown.contains("52, 49, 49, 49"), "{shown}");
        assert!(shown.contains("14 bytes, redacted"), "{shown}");
    }
}
