//! Identities, group keys, recipients, key ids and key strings (spec/envelope-v3.md §2).

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::{SigningKey, VerifyingKey};
use getrandom::SysRng;
use rand_core::{CryptoRng, Rng, UnwrapErr};
use x25519_dalek::{PublicKey as XPublic, StaticSecret};
use zeroize::Zeroizing;

use crate::error::KeyError;
use crate::hash::{h, CTX_KEY_CHECKSUM, CTX_KEY_ID};

/// A short public fingerprint of one public key: the first 16 bytes of
/// `H_keyid(tag || key)` (spec §2.3). Shown as 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub(crate) [u8; 16]);

impl KeyId {
    pub(crate) fn of(tag: &[u8], key: &[u8]) -> KeyId {
        let d = h(CTX_KEY_ID, &[tag, key]);
        let mut id = [0u8; 16];
        id.copy_from_slice(&d[..16]);
        KeyId(id)
    }

    /// The 16 raw bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Builds a key id from its 16 raw bytes.
    pub fn from_bytes(bytes: [u8; 16]) -> KeyId {
        KeyId(bytes)
    }

    /// Parses 32 hex digits.
    pub fn from_hex(s: &str) -> Option<KeyId> {
        let s = s.as_bytes();
        if s.len() != 32 {
            return None;
        }
        let mut out = [0u8; 16];
        for (i, pair) in s.chunks(2).enumerate() {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            out[i] = (hi * 16 + lo) as u8;
        }
        Some(KeyId(out))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// Key id tag of an Ed25519 identity (signing) key.
pub(crate) const TAG_ED25519: &[u8] = b"ed25519";
/// Key id tag of an X25519 recipient key (service or group).
pub(crate) const TAG_X25519: &[u8] = b"x25519";
/// Key id tag of a generated symmetric key.
pub(crate) const TAG_SYMMETRIC: &[u8] = b"symmetric";
/// Key id tag of an X-Wing public key (spec §2.3, §2.5).
pub(crate) const TAG_XWING: &[u8] = b"xwing";
/// Length of an X-Wing public key: ML-KEM-768 encapsulation key (1184) ‖ X25519 (32).
pub const XWING_PUBLIC_LEN: usize = 1216;
/// Length of the ML-KEM-768 encapsulation key inside an X-Wing public key.
const MLKEM768_EK_LEN: usize = 1184;
/// Key id tag of a generated at-rest master key (spec/at-rest.md §2).
pub(crate) const TAG_MASTER: &[u8] = b"at-rest master";

// Key string prefixes, spec §2.4. Secrets are upper case so they stand out in a file or an
// environment listing; public keys are lower case.
const PREFIX_PUB_ID: &str = "rpcseal-pub-id:";
const PREFIX_SECRET_ID: &str = "RPCSEAL-SECRET-ID:";
const PREFIX_PUB_GROUP: &str = "rpcseal-pub-group:";
const PREFIX_SECRET_GROUP: &str = "RPCSEAL-SECRET-GROUP:";
const PREFIX_SECRET_SYM: &str = "RPCSEAL-SECRET-SYM:";
/// The master key of stored data encrypted at rest (spec/at-rest.md §2).
const PREFIX_SECRET_MASTER: &str = "RPCSEAL-SECRET-MASTER:";
// The post-quantum forms of the identity and group kinds (spec §2.4, §2.5): the classical
// payload followed by the X-Wing public key or seed.
const PREFIX_PUB_ID_XWING: &str = "rpcseal-pub-id-xwing:";
const PREFIX_SECRET_ID_XWING: &str = "RPCSEAL-SECRET-ID-XWING:";
const PREFIX_PUB_GROUP_XWING: &str = "rpcseal-pub-group-xwing:";
const PREFIX_SECRET_GROUP_XWING: &str = "RPCSEAL-SECRET-GROUP-XWING:";

#[derive(Clone, Copy, PartialEq, Eq)]
enum StringKind {
    PubId,
    SecretId,
    PubGroup,
    SecretGroup,
    SecretSym,
    SecretMaster,
    PubIdXwing,
    SecretIdXwing,
    PubGroupXwing,
    SecretGroupXwing,
}

impl StringKind {
    const ALL: [StringKind; 10] = [
        StringKind::PubId,
        StringKind::SecretId,
        StringKind::PubGroup,
        StringKind::SecretGroup,
        StringKind::SecretSym,
        StringKind::SecretMaster,
        StringKind::PubIdXwing,
        StringKind::SecretIdXwing,
        StringKind::PubGroupXwing,
        StringKind::SecretGroupXwing,
    ];

    fn prefix(self) -> &'static str {
        match self {
            StringKind::PubId => PREFIX_PUB_ID,
            StringKind::SecretId => PREFIX_SECRET_ID,
            StringKind::PubGroup => PREFIX_PUB_GROUP,
            StringKind::SecretGroup => PREFIX_SECRET_GROUP,
            StringKind::SecretSym => PREFIX_SECRET_SYM,
            StringKind::SecretMaster => PREFIX_SECRET_MASTER,
            StringKind::PubIdXwing => PREFIX_PUB_ID_XWING,
            StringKind::SecretIdXwing => PREFIX_SECRET_ID_XWING,
            StringKind::PubGroupXwing => PREFIX_PUB_GROUP_XWING,
            StringKind::SecretGroupXwing => PREFIX_SECRET_GROUP_XWING,
        }
    }

    fn name(self) -> &'static str {
        match self {
            StringKind::PubId | StringKind::PubIdXwing => "a public identity",
            StringKind::SecretId | StringKind::SecretIdXwing => "a SECRET identity key",
            StringKind::PubGroup | StringKind::PubGroupXwing => "a public group key",
            StringKind::SecretGroup | StringKind::SecretGroupXwing => "a SECRET group key",
            StringKind::SecretSym => "a SECRET symmetric key",
            StringKind::SecretMaster => "a SECRET at-rest master key",
        }
    }

    fn payload_len(self) -> usize {
        match self {
            StringKind::PubId | StringKind::SecretId => 64,
            StringKind::PubGroup | StringKind::SecretGroup => 32,
            StringKind::SecretSym | StringKind::SecretMaster => 48,
            StringKind::PubIdXwing => 64 + XWING_PUBLIC_LEN,
            StringKind::SecretIdXwing => 96,
            StringKind::PubGroupXwing => 32 + XWING_PUBLIC_LEN,
            StringKind::SecretGroupXwing => 64,
        }
    }

    /// The post-quantum form of an identity or group kind, which a parser of that kind
    /// accepts too (spec §2.4).
    fn xwing_form(self) -> Option<StringKind> {
        match self {
            StringKind::PubId => Some(StringKind::PubIdXwing),
            StringKind::SecretId => Some(StringKind::SecretIdXwing),
            StringKind::PubGroup => Some(StringKind::PubGroupXwing),
            StringKind::SecretGroup => Some(StringKind::SecretGroupXwing),
            _ => None,
        }
    }
}

const ALL_PREFIXES: &str = "rpcseal-pub-id:, rpcseal-pub-group:, RPCSEAL-SECRET-ID:, \
                            RPCSEAL-SECRET-GROUP:, RPCSEAL-SECRET-SYM:, \
                            RPCSEAL-SECRET-MASTER:, rpcseal-pub-id-xwing:, \
                            rpcseal-pub-group-xwing:, RPCSEAL-SECRET-ID-XWING:, \
                            RPCSEAL-SECRET-GROUP-XWING:";

fn checksum(prefix: &str, payload: &[u8]) -> [u8; 4] {
    let d = h(CTX_KEY_CHECKSUM, &[prefix.as_bytes(), payload]);
    [d[0], d[1], d[2], d[3]]
}

fn encode_key(kind: StringKind, payload: &[u8]) -> Zeroizing<String> {
    let mut raw = Zeroizing::new(Vec::with_capacity(payload.len() + 4));
    raw.extend_from_slice(payload);
    raw.extend_from_slice(&checksum(kind.prefix(), payload));
    let mut s = Zeroizing::new(String::with_capacity(
        kind.prefix().len() + (payload.len() + 4).div_ceil(3) * 4,
    ));
    s.push_str(kind.prefix());
    URL_SAFE_NO_PAD.encode_string(&raw[..], &mut s);
    s
}

/// Decodes a key string of kind `want` or of its post-quantum form (spec §2.4): the
/// `-xwing` prefix selects the post-quantum kind, anything else is decoded (and its errors
/// reported) as `want`. Returns the kind decoded and the payload.
fn decode_key_any(
    text: &str,
    want: StringKind,
) -> Result<(StringKind, Zeroizing<Vec<u8>>), KeyError> {
    let kind = match want.xwing_form() {
        Some(pq) if text.trim().starts_with(pq.prefix()) => pq,
        _ => want,
    };
    decode_key(text, kind).map(|payload| (kind, payload))
}

/// Decodes a key string of exactly kind `want`, with errors that say what was found instead.
fn decode_key(text: &str, want: StringKind) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    use crate::mutant::{is, Mutant};
    let text = if is(Mutant::KeyStringNotTrimmed) {
        text
    } else {
        text.trim()
    };
    let found = StringKind::ALL
        .into_iter()
        .find(|k| text.starts_with(k.prefix()) || is(Mutant::NoPrefixCheck))
        .ok_or(KeyError::UnknownPrefix {
            expected: ALL_PREFIXES,
        })?;
    let found = if is(Mutant::NoPrefixCheck) {
        want
    } else {
        found
    };
    if found != want && !is(Mutant::NoKindCheck) {
        return Err(KeyError::WrongKind {
            found: found.name(),
            expected: want.name(),
        });
    }
    let body = text.get(found.prefix().len()..).ok_or(KeyError::Encoding)?;
    let raw = Zeroizing::new(lenient_or_strict_base64(body).map_err(|_| KeyError::Encoding)?);
    let expected = want.payload_len() + 4;
    if raw.len() != expected && !is(Mutant::NoKeyLengthCheck) {
        return Err(KeyError::Length {
            found: raw.len(),
            expected,
        });
    }
    let (payload, sum) = raw.split_at(raw.len().saturating_sub(4));
    let prefix = if is(Mutant::ChecksumWithoutPrefix) {
        ""
    } else {
        found.prefix()
    };
    if !is(Mutant::NoKeyChecksum)
        && !bool::from(subtle::ConstantTimeEq::ct_eq(
            &checksum(prefix, payload)[..],
            sum,
        ))
    {
        return Err(KeyError::Checksum);
    }
    if payload.len() != want.payload_len() {
        // Only a mutant gets here.
        return Err(KeyError::Invalid("key string payload"));
    }
    Ok(Zeroizing::new(payload.to_vec()))
}

/// spec/envelope-v3.md §2.1: the one encoding of an X25519 public key is the little-endian
/// `u` with bit 255 clear and `u < p = 2^255 - 19`. RFC 7748 §5 tells a Diffie-Hellman to
/// ignore bit 255 and to accept `u >= p`, so without this check `u`, `u + p` and `u | 2^255`
/// are one key under three key ids. Public data: no need for constant time.
pub(crate) fn x25519_is_canonical(b: &[u8; 32]) -> bool {
    use crate::mutant::{is, Mutant};
    if is(Mutant::NoCanonicalKeyChecks) || is(Mutant::StockKeyDecoding) {
        return true;
    }
    if b[31] & 0x80 != 0 {
        return false;
    }
    // u >= p exactly when the bytes are ed ff .. ff 7f or above: b[31] = 0x7f,
    // b[1..31] all 0xff, b[0] >= 0xed.
    !(b[31] == 0x7f && b[1..31].iter().all(|&x| x == 0xff) && b[0] >= 0xed)
}

/// spec §2.4: unpadded base64url; padding and non-zero trailing bits are errors (the
/// engine's configuration). The lenient variant is a test mutant only.
fn lenient_or_strict_base64(body: &str) -> Result<Vec<u8>, base64::DecodeError> {
    use crate::mutant::{is, Mutant};
    let forgiving = is(Mutant::ForgivingBase64);
    let padding = forgiving || is(Mutant::KeyPaddingAccepted);
    let trailing = forgiving || is(Mutant::KeyTrailingBitsAccepted);
    let alphabets = forgiving || is(Mutant::KeyEitherAlphabet);
    if padding || trailing || alphabets {
        use base64::engine::{general_purpose, DecodePaddingMode, GeneralPurposeConfig};
        let lenient = general_purpose::GeneralPurpose::new(
            &base64::alphabet::URL_SAFE,
            GeneralPurposeConfig::new()
                .with_decode_padding_mode(if padding {
                    DecodePaddingMode::Indifferent
                } else {
                    DecodePaddingMode::RequireNone
                })
                .with_decode_allow_trailing_bits(trailing),
        );
        let body = if alphabets {
            body.replace('+', "-").replace('/', "_")
        } else {
            body.to_owned()
        };
        return lenient.decode(body.as_bytes());
    }
    URL_SAFE_NO_PAD.decode(body.as_bytes())
}

fn x25519_public(bytes: &[u8]) -> Result<XPublic, KeyError> {
    let arr: [u8; 32] = bytes
        .try_into()
        .map_err(|_| KeyError::Invalid("X25519 key"))?;
    if !x25519_is_canonical(&arr) {
        return Err(KeyError::Invalid(
            "X25519 public key (not its canonical encoding: bit 255 set or u >= 2^255 - 19)",
        ));
    }
    let pk = XPublic::from(arr);
    // A low-order point makes every Diffie-Hellman with it all-zero: refuse it up front.
    let probe = StaticSecret::from([0x42; 32]);
    if !probe.diffie_hellman(&pk).was_contributory()
        && !crate::mutant::is(crate::mutant::Mutant::NoSmallOrderKeyCheck)
        && !crate::mutant::is(crate::mutant::Mutant::StockKeyDecoding)
    {
        return Err(KeyError::Invalid(
            "X25519 public key (it is a low-order point)",
        ));
    }
    Ok(pk)
}

/// spec/envelope-v3.md §2.5: the modulus check of FIPS 203 §7.2 on an ML-KEM-768
/// encapsulation key: its first 1152 bytes, read as 768 little-endian 12-bit integers, are
/// each below q = 3329 (so that `ByteEncode12(ByteDecode12(ek)) = ek`: a lenient decoder
/// would reduce a coefficient >= q, and two strings would be one key under two key ids).
/// The last 32 bytes (the seed rho) are arbitrary. Public data: no need for constant time.
pub(crate) fn mlkem768_ek_is_canonical(ek: &[u8]) -> bool {
    if crate::mutant::is(crate::mutant::Mutant::NoCanonicalKeyChecks) {
        return true;
    }
    const Q: u16 = 3329;
    ek.len() == MLKEM768_EK_LEN
        && ek[..1152].chunks_exact(3).all(|b| {
            let d0 = u16::from(b[0]) | (u16::from(b[1] & 0x0f) << 8);
            let d1 = u16::from(b[1] >> 4) | (u16::from(b[2]) << 4);
            d0 < Q && d1 < Q
        })
}

/// An X-Wing public key (spec §2.5) in its one encoding, with its key id
/// `keyid("xwing", pk)`. Boxed: 1216 bytes.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct XWingPublic {
    bytes: Box<[u8; XWING_PUBLIC_LEN]>,
    id: KeyId,
}

impl XWingPublic {
    /// Accepts the 1216 bytes only in their one encoding: the ML-KEM-768 part passes the
    /// modulus check, the X25519 part the rules of §2.1 (canonical, not of small order).
    pub(crate) fn parse(bytes: &[u8]) -> Result<XWingPublic, KeyError> {
        let arr: [u8; XWING_PUBLIC_LEN] = bytes
            .try_into()
            .map_err(|_| KeyError::Invalid("X-Wing public key (wrong length)"))?;
        if !mlkem768_ek_is_canonical(&arr[..MLKEM768_EK_LEN]) {
            return Err(KeyError::Invalid(
                "X-Wing public key (its ML-KEM-768 part fails the modulus check of FIPS 203 \
                 §7.2: a coefficient is 3329 or more)",
            ));
        }
        x25519_public(&arr[MLKEM768_EK_LEN..]).map_err(|e| match e {
            KeyError::Invalid(_) => KeyError::Invalid(
                "X-Wing public key (its X25519 part is not canonical or is a low-order point)",
            ),
            other => other,
        })?;
        Ok(XWingPublic::trusted(arr))
    }

    /// A key derived from a seed (always in its one encoding).
    fn trusted(bytes: [u8; XWING_PUBLIC_LEN]) -> XWingPublic {
        XWingPublic {
            id: KeyId::of(TAG_XWING, &bytes),
            bytes: Box::new(bytes),
        }
    }

    pub(crate) fn as_bytes(&self) -> &[u8; XWING_PUBLIC_LEN] {
        &self.bytes
    }

    pub(crate) fn key_id(&self) -> KeyId {
        self.id
    }
}

/// An X-Wing secret: the 32-byte seed (the draft's decapsulation key, spec §2.5) and the
/// public key derived from it. Zeroized on drop; no `Debug`.
pub(crate) struct XWingSecret {
    seed: Zeroizing<[u8; 32]>,
    public: XWingPublic,
}

impl XWingSecret {
    pub(crate) fn from_seed(seed: &[u8; 32]) -> XWingSecret {
        XWingSecret {
            public: XWingPublic::trusted(crate::session::xwing_public_from_seed(seed)),
            seed: Zeroizing::new(*seed),
        }
    }

    pub(crate) fn seed(&self) -> &[u8; 32] {
        &self.seed
    }

    pub(crate) fn public(&self) -> &XWingPublic {
        &self.public
    }
}

impl Clone for XWingSecret {
    fn clone(&self) -> XWingSecret {
        XWingSecret {
            seed: self.seed.clone(),
            public: self.public.clone(),
        }
    }
}

/// spec/envelope-v3.md §2.1: an Ed25519 public key (an identity key or a session's
/// `verify_key`) is accepted only in its one canonical encoding (RFC 8032 §5.1.3: `y < p`;
/// and `x = 0` with the sign bit set, "negative zero", is refused too), and only when it lies
/// in the prime-order subgroup: not of small order and not of mixed order (`A + T` with `T`
/// a torsion point), so that the cofactorless and the cofactored equations of RFC 8032
/// §5.1.7 agree on every signature under it. Checked once per key (at parse, or once per
/// session), so it costs nothing per message.
pub(crate) fn ed25519_public(b: &[u8; 32]) -> Result<VerifyingKey, &'static str> {
    let vk = VerifyingKey::from_bytes(b).map_err(|_| "it is not a point on the curve")?;
    if crate::mutant::is(crate::mutant::Mutant::StockKeyDecoding) {
        return Ok(vk);
    }
    if crate::mutant::is(crate::mutant::Mutant::NoCanonicalKeyChecks) {
        return if vk.is_weak() {
            Err("it is a low-order point")
        } else {
            Ok(vk)
        };
    }
    let point = vk.to_edwards();
    if point.compress().as_bytes() != b {
        return Err("not its canonical encoding: y >= 2^255 - 19, or a negative zero x");
    }
    if vk.is_weak() && !crate::mutant::is(crate::mutant::Mutant::NoSmallOrderKeyCheck) {
        return Err("it is a low-order point");
    }
    if !point.is_torsion_free() {
        return Err("it has a small-order component (mixed order)");
    }
    Ok(vk)
}

/// A service's long-term identity: an Ed25519 signing key (who it is) and an X25519 key
/// (how it is reached). Zeroized on drop; `Debug` shows only the key id.
pub struct Identity {
    signing: SigningKey,
    x25519: StaticSecret,
    xwing: Option<XWingSecret>,
    public: PublicIdentity,
}

impl Identity {
    /// Generates a fresh identity from the operating system's random number generator.
    pub fn generate() -> Identity {
        Identity::generate_with(&mut UnwrapErr(SysRng))
    }

    pub(crate) fn generate_with<R: CryptoRng>(rng: &mut R) -> Identity {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut seed[..]);
        let mut x = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut x[..]);
        Identity::from_parts(&seed, &x)
    }

    /// Generates a fresh identity with an X-Wing receiving key (spec §2.5) besides its
    /// X25519 key: sessions to it (and to other such recipients) use the post-quantum
    /// suite 2. Its key strings are `RPCSEAL-SECRET-ID-XWING:` / `rpcseal-pub-id-xwing:`.
    pub fn generate_post_quantum() -> Identity {
        let mut seed = Zeroizing::new([0u8; 32]);
        let mut x = Zeroizing::new([0u8; 32]);
        let mut w = Zeroizing::new([0u8; 32]);
        UnwrapErr(SysRng).fill_bytes(&mut seed[..]);
        UnwrapErr(SysRng).fill_bytes(&mut x[..]);
        UnwrapErr(SysRng).fill_bytes(&mut w[..]);
        Identity::from_parts_post_quantum(&seed, &x, &w)
    }

    /// Builds an identity from a 32-byte Ed25519 seed and a 32-byte X25519 secret
    /// (deterministic test vectors).
    #[doc(hidden)]
    pub fn from_parts(ed25519_seed: &[u8; 32], x25519_secret: &[u8; 32]) -> Identity {
        Identity::build(ed25519_seed, x25519_secret, None)
    }

    /// [`Identity::from_parts`] with a 32-byte X-Wing seed (deterministic test vectors).
    #[doc(hidden)]
    pub fn from_parts_post_quantum(
        ed25519_seed: &[u8; 32],
        x25519_secret: &[u8; 32],
        xwing_seed: &[u8; 32],
    ) -> Identity {
        Identity::build(
            ed25519_seed,
            x25519_secret,
            Some(XWingSecret::from_seed(xwing_seed)),
        )
    }

    fn build(
        ed25519_seed: &[u8; 32],
        x25519_secret: &[u8; 32],
        xwing: Option<XWingSecret>,
    ) -> Identity {
        let signing = SigningKey::from_bytes(ed25519_seed);
        let x25519 = StaticSecret::from(*x25519_secret);
        let public = PublicIdentity::new(
            signing.verifying_key(),
            XPublic::from(&x25519),
            xwing.as_ref().map(|w| w.public().clone()),
        );
        Identity {
            signing,
            x25519,
            xwing,
            public,
        }
    }

    /// True when the identity has an X-Wing receiving key (post-quantum sessions).
    pub fn is_post_quantum(&self) -> bool {
        self.xwing.is_some()
    }

    /// The public half, to hand to peers.
    pub fn public(&self) -> &PublicIdentity {
        &self.public
    }

    /// The key id of the identity's signing key: the sender id in session blocks.
    pub fn key_id(&self) -> KeyId {
        self.public.key_id()
    }

    /// The secret key string (`RPCSEAL-SECRET-ID:...`, or `RPCSEAL-SECRET-ID-XWING:...`
    /// with an X-Wing key), zeroized when dropped.
    pub fn to_secret_string(&self) -> Zeroizing<String> {
        let mut payload = Zeroizing::new([0u8; 96]);
        payload[..32].copy_from_slice(self.signing.as_bytes());
        payload[32..64].copy_from_slice(self.x25519.as_bytes());
        match &self.xwing {
            Some(w) => {
                payload[64..].copy_from_slice(w.seed());
                encode_key(StringKind::SecretIdXwing, &payload[..])
            }
            None => encode_key(StringKind::SecretId, &payload[..64]),
        }
    }

    /// Parses a secret key string, with or without an X-Wing key.
    pub fn from_secret_string(text: &str) -> Result<Identity, KeyError> {
        let (kind, raw) = decode_key_any(text, StringKind::SecretId)?;
        let mut seed = Zeroizing::new([0u8; 32]);
        seed.copy_from_slice(&raw[..32]);
        let mut x = Zeroizing::new([0u8; 32]);
        x.copy_from_slice(&raw[32..64]);
        if kind == StringKind::SecretIdXwing {
            let mut w = Zeroizing::new([0u8; 32]);
            w.copy_from_slice(&raw[64..96]);
            return Ok(Identity::from_parts_post_quantum(&seed, &x, &w));
        }
        Ok(Identity::from_parts(&seed, &x))
    }

    pub(crate) fn xwing_secret(&self) -> Option<&XWingSecret> {
        self.xwing.as_ref()
    }

    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    pub(crate) fn x25519_secret(&self) -> &StaticSecret {
        &self.x25519
    }
}

impl Clone for Identity {
    fn clone(&self) -> Identity {
        let x = Zeroizing::new(self.x25519.to_bytes());
        Identity::build(self.signing.as_bytes(), &x, self.xwing.clone())
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Identity {{ key_id: {}, secret: <redacted> }}",
            self.key_id()
        )
    }
}

/// The public half of an [`Identity`]: what a peer needs to trust it as a sender and to
/// address it as a recipient.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicIdentity {
    verifying: VerifyingKey,
    x25519: XPublic,
    xwing: Option<XWingPublic>,
    key_id: KeyId,
    recipient_id: KeyId,
}

impl PublicIdentity {
    fn new(verifying: VerifyingKey, x25519: XPublic, xwing: Option<XWingPublic>) -> PublicIdentity {
        PublicIdentity {
            key_id: KeyId::of(TAG_ED25519, verifying.as_bytes()),
            recipient_id: KeyId::of(TAG_X25519, x25519.as_bytes()),
            verifying,
            x25519,
            xwing,
        }
    }

    /// True when the identity has an X-Wing key: sessions to it can be post-quantum.
    pub fn is_post_quantum(&self) -> bool {
        self.xwing.is_some()
    }

    /// The key id of the X-Wing key (the id of this identity's suite-2 recipient entries),
    /// if it has one.
    pub fn xwing_key_id(&self) -> Option<KeyId> {
        self.xwing.as_ref().map(XWingPublic::key_id)
    }

    /// The same identity without its X-Wing key (the form older peers read).
    pub fn classical(&self) -> PublicIdentity {
        PublicIdentity::new(self.verifying, self.x25519, None)
    }

    /// The key id of the Ed25519 identity key (the sender id).
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The key id of the X25519 key (the id of this identity's recipient entries).
    pub fn recipient_key_id(&self) -> KeyId {
        self.recipient_id
    }

    /// The Ed25519 public key bytes.
    pub fn ed25519_bytes(&self) -> [u8; 32] {
        self.verifying.to_bytes()
    }

    /// The X25519 public key bytes.
    pub fn x25519_bytes(&self) -> [u8; 32] {
        self.x25519.to_bytes()
    }

    /// Parses a public identity string (`rpcseal-pub-id:...` or
    /// `rpcseal-pub-id-xwing:...`). Every key in it must be in its one encoding (spec §2.1,
    /// §2.5), checked in payload order.
    pub fn parse(text: &str) -> Result<PublicIdentity, KeyError> {
        let (kind, raw) = decode_key_any(text, StringKind::PubId)?;
        let ed: [u8; 32] = raw[..32]
            .try_into()
            .map_err(|_| KeyError::Invalid("Ed25519 key"))?;
        let verifying = ed25519_public(&ed).map_err(KeyError::InvalidEd25519)?;
        let x25519 = x25519_public(&raw[32..64])?;
        let xwing = match kind {
            StringKind::PubIdXwing => Some(XWingPublic::parse(&raw[64..])?),
            _ => None,
        };
        Ok(PublicIdentity::new(verifying, x25519, xwing))
    }

    pub(crate) fn verifying_key(&self) -> &VerifyingKey {
        &self.verifying
    }
}

impl fmt::Display for PublicIdentity {
    /// The public key string, `rpcseal-pub-id:...` (`rpcseal-pub-id-xwing:...` with an
    /// X-Wing key).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut payload = Vec::with_capacity(64 + XWING_PUBLIC_LEN);
        payload.extend_from_slice(self.verifying.as_bytes());
        payload.extend_from_slice(self.x25519.as_bytes());
        match &self.xwing {
            Some(w) => {
                payload.extend_from_slice(w.as_bytes());
                f.write_str(&encode_key(StringKind::PubIdXwing, &payload))
            }
            None => f.write_str(&encode_key(StringKind::PubId, &payload)),
        }
    }
}

impl fmt::Debug for PublicIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicIdentity {{ key_id: {} }}", self.key_id)
    }
}

impl std::str::FromStr for PublicIdentity {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        PublicIdentity::parse(s)
    }
}

/// A group key: an X25519 key pair whose private half every member of a group holds, so
/// one wrap reaches the whole group. It proves membership, never which member sent what.
pub struct GroupKey {
    secret: StaticSecret,
    xwing: Option<XWingSecret>,
    public: GroupPublicKey,
}

impl GroupKey {
    /// Generates a fresh group key.
    pub fn generate() -> GroupKey {
        let mut x = Zeroizing::new([0u8; 32]);
        UnwrapErr(SysRng).fill_bytes(&mut x[..]);
        GroupKey::from_secret_bytes(&x)
    }

    /// Generates a fresh group key with an X-Wing key besides its X25519 key (spec §2.5):
    /// `RPCSEAL-SECRET-GROUP-XWING:` / `rpcseal-pub-group-xwing:`.
    pub fn generate_post_quantum() -> GroupKey {
        let mut x = Zeroizing::new([0u8; 32]);
        let mut w = Zeroizing::new([0u8; 32]);
        UnwrapErr(SysRng).fill_bytes(&mut x[..]);
        UnwrapErr(SysRng).fill_bytes(&mut w[..]);
        GroupKey::from_secret_bytes_post_quantum(&x, &w)
    }

    /// Builds a group key from its 32 secret bytes (deterministic test vectors).
    #[doc(hidden)]
    pub fn from_secret_bytes(secret: &[u8; 32]) -> GroupKey {
        GroupKey::build(secret, None)
    }

    /// [`GroupKey::from_secret_bytes`] with a 32-byte X-Wing seed (test vectors).
    #[doc(hidden)]
    pub fn from_secret_bytes_post_quantum(secret: &[u8; 32], xwing_seed: &[u8; 32]) -> GroupKey {
        GroupKey::build(secret, Some(XWingSecret::from_seed(xwing_seed)))
    }

    fn build(secret: &[u8; 32], xwing: Option<XWingSecret>) -> GroupKey {
        let secret = StaticSecret::from(*secret);
        let pk = XPublic::from(&secret);
        GroupKey {
            public: GroupPublicKey {
                id: KeyId::of(TAG_X25519, pk.as_bytes()),
                x25519: pk,
                xwing: xwing.as_ref().map(|w| w.public().clone()),
            },
            secret,
            xwing,
        }
    }

    pub(crate) fn xwing_secret(&self) -> Option<&XWingSecret> {
        self.xwing.as_ref()
    }

    /// The public half, to hand to senders.
    pub fn public(&self) -> &GroupPublicKey {
        &self.public
    }

    /// The secret key string (`RPCSEAL-SECRET-GROUP:...`, or
    /// `RPCSEAL-SECRET-GROUP-XWING:...` with an X-Wing key), zeroized when dropped.
    pub fn to_secret_string(&self) -> Zeroizing<String> {
        match &self.xwing {
            Some(w) => {
                let mut payload = Zeroizing::new([0u8; 64]);
                payload[..32].copy_from_slice(self.secret.as_bytes());
                payload[32..].copy_from_slice(w.seed());
                encode_key(StringKind::SecretGroupXwing, &payload[..])
            }
            None => encode_key(StringKind::SecretGroup, self.secret.as_bytes()),
        }
    }

    /// Parses a secret group key string, with or without an X-Wing key.
    pub fn from_secret_string(text: &str) -> Result<GroupKey, KeyError> {
        let (kind, raw) = decode_key_any(text, StringKind::SecretGroup)?;
        let mut x = Zeroizing::new([0u8; 32]);
        x.copy_from_slice(&raw[..32]);
        if kind == StringKind::SecretGroupXwing {
            let mut w = Zeroizing::new([0u8; 32]);
            w.copy_from_slice(&raw[32..64]);
            return Ok(GroupKey::from_secret_bytes_post_quantum(&x, &w));
        }
        Ok(GroupKey::from_secret_bytes(&x))
    }

    pub(crate) fn x25519_secret(&self) -> &StaticSecret {
        &self.secret
    }
}

impl Clone for GroupKey {
    fn clone(&self) -> GroupKey {
        let x = Zeroizing::new(self.secret.to_bytes());
        GroupKey::build(&x, self.xwing.clone())
    }
}

impl fmt::Debug for GroupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "GroupKey {{ key_id: {}, secret: <redacted> }}",
            self.public.id
        )
    }
}

/// The public half of a [`GroupKey`].
#[derive(Clone, PartialEq, Eq)]
pub struct GroupPublicKey {
    x25519: XPublic,
    id: KeyId,
    xwing: Option<XWingPublic>,
}

impl GroupPublicKey {
    /// The group key's id (its suite-1 recipient entries carry it).
    pub fn key_id(&self) -> KeyId {
        self.id
    }

    /// True when the group key has an X-Wing key: sessions to it can be post-quantum.
    pub fn is_post_quantum(&self) -> bool {
        self.xwing.is_some()
    }

    /// The key id of the X-Wing key (its suite-2 recipient entries carry it), if any.
    pub fn xwing_key_id(&self) -> Option<KeyId> {
        self.xwing.as_ref().map(XWingPublic::key_id)
    }

    /// Parses a public group key string (`rpcseal-pub-group:...` or
    /// `rpcseal-pub-group-xwing:...`).
    pub fn parse(text: &str) -> Result<GroupPublicKey, KeyError> {
        let (kind, raw) = decode_key_any(text, StringKind::PubGroup)?;
        let pk = x25519_public(&raw[..32])?;
        let xwing = match kind {
            StringKind::PubGroupXwing => Some(XWingPublic::parse(&raw[32..])?),
            _ => None,
        };
        Ok(GroupPublicKey {
            id: KeyId::of(TAG_X25519, pk.as_bytes()),
            x25519: pk,
            xwing,
        })
    }
}

impl fmt::Display for GroupPublicKey {
    /// The public key string, `rpcseal-pub-group:...` (`rpcseal-pub-group-xwing:...` with
    /// an X-Wing key).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.xwing {
            Some(w) => {
                let mut payload = Vec::with_capacity(32 + XWING_PUBLIC_LEN);
                payload.extend_from_slice(self.x25519.as_bytes());
                payload.extend_from_slice(w.as_bytes());
                f.write_str(&encode_key(StringKind::PubGroupXwing, &payload))
            }
            None => f.write_str(&encode_key(StringKind::PubGroup, self.x25519.as_bytes())),
        }
    }
}

impl fmt::Debug for GroupPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GroupPublicKey {{ key_id: {} }}", self.id)
    }
}

/// A 256-bit symmetric recipient key with its key id: handed out by a key server (each
/// service it is given to, and the server, can open what is wrapped to it), or held by one
/// service to encrypt what it stores for itself. Zeroized on drop; `Debug` shows only the
/// key id.
#[derive(Clone)]
pub struct SymmetricKey {
    id: KeyId,
    key: Zeroizing<[u8; 32]>,
}

impl SymmetricKey {
    /// Generates a fresh key; its id is derived from the key (§2.3).
    pub fn generate() -> SymmetricKey {
        let mut key = Zeroizing::new([0u8; 32]);
        UnwrapErr(SysRng).fill_bytes(&mut key[..]);
        SymmetricKey::with_id(KeyId::of(TAG_SYMMETRIC, &key[..]), &key)
    }

    /// A key with the id a key server assigned to it.
    pub fn with_id(id: KeyId, key: &[u8; 32]) -> SymmetricKey {
        SymmetricKey {
            id,
            key: Zeroizing::new(*key),
        }
    }

    /// The key id its recipient entries carry.
    pub fn key_id(&self) -> KeyId {
        self.id
    }

    /// The secret key string (`RPCSEAL-SECRET-SYM:...`): key id and key.
    pub fn to_secret_string(&self) -> Zeroizing<String> {
        encode_id_and_key(StringKind::SecretSym, &self.id, &self.key)
    }

    /// Parses a secret symmetric key string.
    pub fn from_secret_string(text: &str) -> Result<SymmetricKey, KeyError> {
        let (id, key) = decode_id_and_key(text, StringKind::SecretSym, "symmetric key")?;
        Ok(SymmetricKey::with_id(id, &key))
    }

    pub(crate) fn secret(&self) -> &[u8; 32] {
        &self.key
    }
}

impl PartialEq for SymmetricKey {
    fn eq(&self, other: &Self) -> bool {
        bool::from(subtle::ConstantTimeEq::ct_eq(&self.key[..], &other.key[..]))
            && self.id == other.id
    }
}

impl Eq for SymmetricKey {}

impl fmt::Debug for SymmetricKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SymmetricKey {{ key_id: {}, secret: <redacted> }}",
            self.id
        )
    }
}

/// What a recipient entry is wrapped to.
pub(crate) enum WrapTarget<'a> {
    X25519(&'a [u8; 32]),
    XWing(&'a [u8; XWING_PUBLIC_LEN]),
    Symmetric(&'a [u8; 32]),
}

/// Someone a session is addressed to.
// Recipients are few per sealer and cloned once; boxing the largest variant would only add
// an allocation and an indirection.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
// Boxing the larger variant would change the public API for a few bytes per recipient.
pub enum Recipient {
    /// A service, reached through its identity's X25519 key.
    Service(PublicIdentity),
    /// A group, reached through the group key's X25519 key.
    Group(GroupPublicKey),
    /// Holders of a symmetric key (spec §5.5).
    Symmetric(SymmetricKey),
}

impl Recipient {
    /// Parses a public identity or public group key string (classical or post-quantum
    /// form), or a symmetric key string.
    pub fn parse(text: &str) -> Result<Recipient, KeyError> {
        let t = text.trim();
        if t.starts_with(PREFIX_PUB_GROUP) || t.starts_with(PREFIX_PUB_GROUP_XWING) {
            GroupPublicKey::parse(t).map(Recipient::Group)
        } else if t.starts_with(PREFIX_PUB_ID) || t.starts_with(PREFIX_PUB_ID_XWING) {
            PublicIdentity::parse(t).map(Recipient::Service)
        } else if t.starts_with(PREFIX_SECRET_SYM) {
            SymmetricKey::from_secret_string(t).map(Recipient::Symmetric)
        } else if (t.starts_with(PREFIX_SECRET_ID) || t.starts_with(PREFIX_SECRET_ID_XWING))
            && crate::mutant::is(crate::mutant::Mutant::NoKindCheck)
        {
            PublicIdentity::parse(t).map(Recipient::Service)
        } else if t.starts_with(PREFIX_SECRET_ID)
            || t.starts_with(PREFIX_SECRET_GROUP)
            || t.starts_with(PREFIX_SECRET_ID_XWING)
            || t.starts_with(PREFIX_SECRET_GROUP_XWING)
        {
            Err(KeyError::WrongKind {
                found: "a SECRET key",
                expected: "a public key",
            })
        } else {
            Err(KeyError::UnknownPrefix {
                expected: "rpcseal-pub-id:, rpcseal-pub-group:, rpcseal-pub-id-xwing:, \
                           rpcseal-pub-group-xwing:, RPCSEAL-SECRET-SYM:",
            })
        }
    }

    /// The key id its recipient entry carries in a suite-1 session (for an identity or a
    /// group key, its X25519 key's id).
    pub fn key_id(&self) -> KeyId {
        match self {
            Recipient::Service(p) => p.recipient_id,
            Recipient::Group(g) => g.id,
            Recipient::Symmetric(k) => k.id,
        }
    }

    /// The key id its recipient entry carries in a session of `suite`: in suite 2 an
    /// identity or a group key is reached through its X-Wing key.
    pub fn key_id_in(&self, suite: crate::Suite) -> KeyId {
        match (suite.is_post_quantum(), self.xwing()) {
            (true, Some(w)) => w.key_id(),
            _ => self.key_id(),
        }
    }

    /// True for an identity or a group key (a public-key recipient).
    pub fn is_asymmetric(&self) -> bool {
        !matches!(self, Recipient::Symmetric(_))
    }

    /// True when a post-quantum session can reach this recipient: an identity or group key
    /// with an X-Wing key, or a 256-bit symmetric key (spec §5.6).
    pub fn is_post_quantum(&self) -> bool {
        match self {
            Recipient::Service(p) => p.is_post_quantum(),
            Recipient::Group(g) => g.is_post_quantum(),
            Recipient::Symmetric(_) => true,
        }
    }

    fn xwing(&self) -> Option<&XWingPublic> {
        match self {
            Recipient::Service(p) => p.xwing.as_ref(),
            Recipient::Group(g) => g.xwing.as_ref(),
            Recipient::Symmetric(_) => None,
        }
    }

    /// True for a group key.
    pub fn is_group(&self) -> bool {
        matches!(self, Recipient::Group(_))
    }

    /// True for a key that several parties hold: a group key or a symmetric key. MAC mode
    /// to such a key cannot tell its holders apart (spec §6.4).
    pub fn is_shared(&self) -> bool {
        matches!(self, Recipient::Group(_) | Recipient::Symmetric(_))
    }

    /// What this recipient's entry is wrapped to in a session of `suite` (spec §5.4); `None`
    /// for an identity or group key without an X-Wing key in suite 2 (the sealer chooses
    /// suite 1 for such a list, §5.6).
    pub(crate) fn wrap_target(&self, suite: crate::Suite) -> Option<WrapTarget<'_>> {
        if let Recipient::Symmetric(k) = self {
            return Some(WrapTarget::Symmetric(&k.key));
        }
        if suite.is_post_quantum() {
            return self.xwing().map(|w| WrapTarget::XWing(w.as_bytes()));
        }
        Some(match self {
            Recipient::Service(p) => WrapTarget::X25519(p.x25519.as_bytes()),
            Recipient::Group(g) => WrapTarget::X25519(g.x25519.as_bytes()),
            Recipient::Symmetric(k) => WrapTarget::Symmetric(&k.key),
        })
    }
}

impl From<PublicIdentity> for Recipient {
    fn from(p: PublicIdentity) -> Self {
        Recipient::Service(p)
    }
}

impl From<&PublicIdentity> for Recipient {
    fn from(p: &PublicIdentity) -> Self {
        Recipient::Service(p.clone())
    }
}

impl From<&SymmetricKey> for Recipient {
    fn from(k: &SymmetricKey) -> Self {
        Recipient::Symmetric(k.clone())
    }
}

impl From<GroupPublicKey> for Recipient {
    fn from(g: GroupPublicKey) -> Self {
        Recipient::Group(g)
    }
}

impl From<&GroupPublicKey> for Recipient {
    fn from(g: &GroupPublicKey) -> Self {
        Recipient::Group(g.clone())
    }
}

/// The payload of a symmetric or master key string (spec/envelope-v3.md §2.4): the 16-byte
/// key id, then the 32-byte key.
fn encode_id_and_key(kind: StringKind, id: &KeyId, key: &[u8; 32]) -> Zeroizing<String> {
    let mut payload = Zeroizing::new([0u8; 48]);
    payload[..16].copy_from_slice(&id.0);
    payload[16..].copy_from_slice(&key[..]);
    encode_key(kind, &payload[..])
}

/// Parses what [`encode_id_and_key`] writes; `what` names the kind in the error.
fn decode_id_and_key(
    text: &str,
    kind: StringKind,
    what: &'static str,
) -> Result<(KeyId, Zeroizing<[u8; 32]>), KeyError> {
    let raw = decode_key(text, kind)?;
    let id = KeyId(raw[..16].try_into().map_err(|_| KeyError::Invalid(what))?);
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&raw[16..]);
    Ok((id, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_strings_roundtrip_and_are_told_apart() {
        let id = Identity::generate();
        let secret = id.to_secret_string();
        assert!(secret.starts_with("RPCSEAL-SECRET-ID:"));
        let back = Identity::from_secret_string(&secret).unwrap();
        assert_eq!(back.public(), id.public());

        let public = id.public().to_string();
        assert!(public.starts_with("rpcseal-pub-id:"));
        assert_eq!(&PublicIdentity::parse(&public).unwrap(), id.public());

        assert!(matches!(
            PublicIdentity::parse(&secret),
            Err(KeyError::WrongKind { .. })
        ));
        assert!(matches!(
            Identity::from_secret_string(&public),
            Err(KeyError::WrongKind { .. })
        ));
        assert!(matches!(
            Recipient::parse(&secret),
            Err(KeyError::WrongKind { .. })
        ));

        let g = GroupKey::generate();
        let gs = g.to_secret_string();
        assert_eq!(
            GroupKey::from_secret_string(&gs).unwrap().public(),
            g.public()
        );
        let gp = g.public().to_string();
        assert_eq!(
            Recipient::parse(&gp).unwrap(),
            Recipient::Group(g.public().clone())
        );
    }

    #[test]
    fn damaged_key_strings_get_clear_errors() {
        let public = Identity::generate().public().to_string();
        let truncated = &public[..public.len() - 5];
        assert!(matches!(
            PublicIdentity::parse(truncated),
            Err(KeyError::Length { .. }) | Err(KeyError::Encoding)
        ));
        // Change one character of the body: the checksum catches it.
        let mut typo = public.clone().into_bytes();
        let i = typo.len() - 20;
        typo[i] = if typo[i] == b'A' { b'B' } else { b'A' };
        let typo = String::from_utf8(typo).unwrap();
        assert_eq!(PublicIdentity::parse(&typo), Err(KeyError::Checksum));
        assert!(matches!(
            PublicIdentity::parse("age1qqqq"),
            Err(KeyError::UnknownPrefix { .. })
        ));
        assert_eq!(
            PublicIdentity::parse("rpcseal-pub-id:!!!!"),
            Err(KeyError::Encoding)
        );
        // Error messages never echo the key.
        let e =
            Identity::from_secret_string(&typo.replace("rpcseal-pub-id:", "RPCSEAL-SECRET-ID:"))
                .unwrap_err()
                .to_string();
        assert!(!e.contains(&public[15..30]));
    }

    #[test]
    fn low_order_recipient_keys_are_refused() {
        // The all-zero point has order 1 (RFC 7748 §6.1 lists why such outputs are rejected).
        let s = encode_key(StringKind::PubGroup, &[0u8; 32]);
        assert!(matches!(
            GroupPublicKey::parse(&s),
            Err(KeyError::Invalid(_))
        ));
    }

    /// spec §2.1: one encoding per key. X25519: bit 255 set, or u >= p (RFC 7748 §5 would
    /// reduce both to the same key under another key id). Ed25519: y >= p (RFC 8032 §5.1.3
    /// step 1 says reject), x = 0 with the sign bit set, and mixed order (A + T8).
    #[test]
    fn only_canonical_public_keys_are_accepted() {
        let id = Identity::from_parts(&[7; 32], &[8; 32]);
        let ed = id.public().ed25519_bytes();
        let x = id.public().x25519_bytes();
        let pub_id = |ed: &[u8; 32], x: &[u8; 32]| {
            let mut payload = [0u8; 64];
            payload[..32].copy_from_slice(ed);
            payload[32..].copy_from_slice(x);
            PublicIdentity::parse(&encode_key(StringKind::PubId, &payload))
        };
        assert!(pub_id(&ed, &x).is_ok());
        let mut high = x;
        high[31] |= 0x80;
        assert!(matches!(pub_id(&ed, &high), Err(KeyError::Invalid(m)) if m.contains("canonical")));
        let group = |x: &[u8; 32]| GroupPublicKey::parse(&encode_key(StringKind::PubGroup, x));
        assert!(group(&high).is_err());
        // u = p + 9 is u = 9 (the base point) on the wire a second time.
        let mut p_plus_9 = [0xff; 32];
        p_plus_9[0] = 0xed + 9;
        p_plus_9[31] = 0x7f;
        assert!(!x25519_is_canonical(&p_plus_9));
        assert!(group(&p_plus_9).is_err());
        let mut p_minus_1 = [0xff; 32];
        p_minus_1[0] = 0xec;
        p_minus_1[31] = 0x7f;
        assert!(x25519_is_canonical(&p_minus_1));
        // Ed25519, x = 0 with the sign bit set: the identity as 01 00 .. 80.
        let mut neg_zero = [0u8; 32];
        neg_zero[0] = 1;
        neg_zero[31] = 0x80;
        assert!(
            matches!(pub_id(&neg_zero, &x), Err(KeyError::InvalidEd25519(m)) if m.contains("canonical"))
        );
        // y = p + y0 for every y0 that decodes: never accepted.
        for y0 in 0u8..19 {
            let mut y = [0xff; 32];
            y[0] = 0xed + y0;
            y[31] = 0x7f;
            assert!(ed25519_public(&y).is_err(), "y = p + {y0}");
        }
        // Mixed order: A + T, T a point of order 8 (curve25519-dalek's EIGHT_TORSION).
        let a = id.signing_key().verifying_key().to_edwards();
        for t in &curve25519_dalek::constants::EIGHT_TORSION[1..] {
            let mixed = (a + t).compress().to_bytes();
            assert!(
                matches!(pub_id(&mixed, &x), Err(KeyError::InvalidEd25519(m)) if m.contains("mixed") || m.contains("low-order")),
                "{t:?}"
            );
        }
    }

    #[test]
    fn debug_never_shows_secrets() {
        let id = Identity::generate();
        let dbg = format!("{id:?}");
        let secret = id.to_secret_string();
        assert!(!dbg.contains(&secret[18..40]));
        assert!(dbg.contains("redacted"));
    }
}

/// The master key of stored data encrypted at rest (spec/at-rest.md §2): 32 secret bytes
/// and a public key id that every asset header wrapped under it names. The library never
/// writes it anywhere; it comes from an environment variable, a file or the caller, as the
/// key string `RPCSEAL-SECRET-MASTER:...`. Zeroized on drop; `Debug` shows only the id.
#[derive(Clone)]
pub struct MasterKey {
    id: KeyId,
    key: Zeroizing<[u8; 32]>,
}

impl MasterKey {
    /// Generates a fresh master key; its id is `keyid("at-rest master", key)`.
    pub fn generate() -> MasterKey {
        let mut key = Zeroizing::new([0u8; 32]);
        UnwrapErr(SysRng).fill_bytes(&mut key[..]);
        MasterKey::from_bytes(&key)
    }

    /// A master key from its 32 bytes (say, from a key management service), with the id
    /// derived from the key as [`MasterKey::generate`] does.
    pub fn from_bytes(key: &[u8; 32]) -> MasterKey {
        MasterKey::with_id(KeyId::of(TAG_MASTER, key), key)
    }

    /// A master key with an id chosen by whoever manages it.
    pub fn with_id(id: KeyId, key: &[u8; 32]) -> MasterKey {
        MasterKey {
            id,
            key: Zeroizing::new(*key),
        }
    }

    /// The key id that asset headers wrapped under this key carry.
    pub fn key_id(&self) -> KeyId {
        self.id
    }

    /// The secret key string (`RPCSEAL-SECRET-MASTER:...`): key id and key.
    pub fn to_secret_string(&self) -> Zeroizing<String> {
        encode_id_and_key(StringKind::SecretMaster, &self.id, &self.key)
    }

    /// Parses a master key string.
    pub fn from_secret_string(text: &str) -> Result<MasterKey, KeyError> {
        let (id, key) = decode_id_and_key(text, StringKind::SecretMaster, "at-rest master key")?;
        Ok(MasterKey::with_id(id, &key))
    }

    /// Reads the key string from the environment variable `name`. The error never
    /// contains the variable's value.
    pub fn from_env(name: &str) -> Result<MasterKey, KeyError> {
        let text = Zeroizing::new(
            std::env::var(name)
                .map_err(|_| KeyError::Invalid("environment variable (unset or not UTF-8)"))?,
        );
        MasterKey::from_secret_string(&text)
    }

    /// Reads the key string from a file (whitespace around it is ignored).
    pub fn from_file(path: &std::path::Path) -> Result<MasterKey, KeyError> {
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|_| KeyError::Invalid("key file (unreadable or not UTF-8)"))?,
        );
        MasterKey::from_secret_string(&text)
    }

    #[cfg_attr(not(feature = "at-rest"), allow(dead_code))]
    pub(crate) fn secret(&self) -> &[u8; 32] {
        &self.key
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey {{ key_id: {}, secret: <redacted> }}", self.id)
    }
}

impl fmt::Debug for XWingPublic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "XWingPublic({})", self.id)
    }
}

#[cfg(test)]
mod xwing_key_tests {
    use super::*;

    /// spec §2.5: the ML-KEM-768 part passes FIPS 203's modulus check, the X25519 part the
    /// rules of §2.1; anything else is an invalid key, reported after the checksum.
    #[test]
    fn non_canonical_xwing_keys_are_refused() {
        let id = Identity::from_parts_post_quantum(&[1; 32], &[2; 32], &[3; 32]);
        let good = id.public().to_string();
        let (_, raw) = decode_key_any(&good, StringKind::PubId).unwrap();
        let parse =
            |payload: &[u8]| PublicIdentity::parse(&encode_key(StringKind::PubIdXwing, payload));
        assert_eq!(&parse(&raw).unwrap(), id.public());
        // Coefficient 0 = 3329 = 0xd01: bytes 01 .d (the low nibble of byte 1).
        let mut q = raw.to_vec();
        q[64] = 0x01;
        q[65] = (q[65] & 0xf0) | 0x0d;
        assert!(matches!(parse(&q), Err(KeyError::Invalid(m)) if m.contains("modulus")));
        // Coefficient 1 (the high 12 bits of bytes 1..3) = 4095.
        let mut top = raw.to_vec();
        top[65] |= 0xf0;
        top[66] = 0xff;
        assert!(matches!(parse(&top), Err(KeyError::Invalid(m)) if m.contains("modulus")));
        // 3328 = q - 1 is fine: 00 .d with byte 0 = 0x00.
        let mut q1 = raw.to_vec();
        q1[64] = 0x00;
        q1[65] = (q1[65] & 0xf0) | 0x0d;
        assert!(parse(&q1).is_ok());
        // The seed rho (the last 32 bytes of the ML-KEM key) is arbitrary.
        let mut rho = raw.to_vec();
        rho[64 + 1152] ^= 0xff;
        assert!(parse(&rho).is_ok());
        // The X25519 part with bit 255 set, or of small order.
        let mut high = raw.to_vec();
        high[64 + 1215] |= 0x80;
        assert!(matches!(parse(&high), Err(KeyError::Invalid(m)) if m.contains("X-Wing")));
        let mut zero = raw.to_vec();
        zero[64 + 1184..].fill(0);
        assert!(matches!(parse(&zero), Err(KeyError::Invalid(m)) if m.contains("X-Wing")));
        // The same checks for group keys.
        let g = GroupKey::from_secret_bytes_post_quantum(&[4; 32], &[5; 32]);
        let (_, graw) = decode_key_any(&g.public().to_string(), StringKind::PubGroup).unwrap();
        let mut gq = graw.to_vec();
        gq[32] = 0x01;
        gq[33] = (gq[33] & 0xf0) | 0x0d;
        assert!(GroupPublicKey::parse(&encode_key(StringKind::PubGroupXwing, &gq)).is_err());
        // A payload of the classical length under the post-quantum prefix: a length error.
        assert!(matches!(
            PublicIdentity::parse(&encode_key(StringKind::PubIdXwing, &raw[..64])),
            Err(KeyError::Length { .. })
        ));
    }

    #[test]
    fn derived_keys_always_pass_and_differ_per_seed() {
        for s in 0u8..8 {
            let w = XWingSecret::from_seed(&[s; 32]);
            assert!(XWingPublic::parse(w.public().as_bytes()).is_ok());
        }
        assert_ne!(
            XWingSecret::from_seed(&[0; 32]).public().key_id(),
            XWingSecret::from_seed(&[1; 32]).public().key_id()
        );
    }
}
