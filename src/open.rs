//! The receiver's side: [`Opener`] and its [`Policy`] (spec/envelope-v3.md §8).

use std::collections::{HashMap, HashSet};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ed25519_dalek::VerifyingKey;

use crate::mutant::{self, Mutant};
use lru::LruCache;
use zeroize::{Zeroize, Zeroizing};

use crate::aead::PayloadCipher;
use crate::envelope::{self, DecodeLimits, Envelope, Metadata, AEAD_TAG_LEN, SIG_LEN};
use crate::error::{Error, ErrorKind, Misuse};
use crate::keyring::{KeyDirectory, Keyring, Lookup, TrustedKey};
use crate::keys::{GroupKey, Identity, KeyId, PublicIdentity, SymmetricKey};
use crate::legacy::{self, LegacyMessage};
use crate::parallel;
use crate::replay::{ReplayError, ReplayItem, ReplayStore};
use crate::seal::{
    DEFAULT_MAX_METADATA_BYTES, DEFAULT_MAX_METADATA_ENTRIES, DEFAULT_MAX_PAYLOAD,
    DEFAULT_MAX_RECIPIENTS,
};
use crate::session::{self, Block, Header, HpkePrivate, UnwrapKey};
use crate::suite::{Mode, Suite};

/// What a receiver accepts. Build with [`Policy::default`] and the setters.
#[derive(Clone, Debug)]
pub struct Policy {
    suites: Vec<Suite>,
    modes: Vec<Mode>,
    clock_skew: u64,
    max_envelope_bytes: usize,
    max_payload: usize,
    max_recipients: usize,
    max_pq_recipients: usize,
    limits: DecodeLimits,
    accept_mac_via_group: bool,
    accept_legacy: bool,
    parallel_hash_from: Option<usize>,
    max_session_lifetime: u64,
    max_session_messages: u64,
    strict_order: bool,
    /// How old a message may be (seconds), at least `clock_skew` (spec/replay.md §2.2).
    max_age: u64,
}

/// The longest session lifetime (`expires - not_before`) a default [`Policy`] accepts:
/// 24 hours (spec/envelope-v3.md §8 step 7).
pub const DEFAULT_MAX_SESSION_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// The largest `max_messages` a session may declare under a default [`Policy`]: 2^32
/// (spec/envelope-v3.md §8 step 7), the sealer's default.
pub const DEFAULT_MAX_SESSION_MESSAGES: u64 = 1 << 32;
/// The most recipients [`Policy::max_recipients`] can be raised to: 65 536.
pub const MAX_RECIPIENTS_LIMIT: usize = 1 << 16;

impl Default for Policy {
    /// Every known suite and mode, 120 s of clock skew, 16 MiB payloads, 4096 recipients,
    /// 64 metadata entries of at most 8 KiB in all, sessions of at most 24 hours and 2^32
    /// messages.
    fn default() -> Self {
        Policy {
            suites: Suite::KNOWN.to_vec(),
            modes: vec![Mode::Signed, Mode::Mac, Mode::SignOnly],
            clock_skew: 120,
            max_envelope_bytes: DEFAULT_MAX_PAYLOAD + 1024 * 1024,
            max_payload: DEFAULT_MAX_PAYLOAD,
            max_recipients: DEFAULT_MAX_RECIPIENTS,
            max_pq_recipients: session::MAX_PQ_RECIPIENTS,
            limits: DecodeLimits {
                max_metadata_entries: DEFAULT_MAX_METADATA_ENTRIES,
                max_metadata_bytes: DEFAULT_MAX_METADATA_BYTES,
            },
            accept_mac_via_group: false,
            accept_legacy: false,
            parallel_hash_from: None,
            max_session_lifetime: DEFAULT_MAX_SESSION_LIFETIME.as_secs(),
            max_session_messages: DEFAULT_MAX_SESSION_MESSAGES,
            strict_order: false,
            max_age: 120,
        }
    }
}

impl Policy {
    /// The suites accepted (the allowlist). Anything else is rejected before any
    /// cryptographic work.
    pub fn suites(mut self, suites: &[Suite]) -> Self {
        self.suites = suites.to_vec();
        self
    }

    /// Accepts only post-quantum suites (spec §10.2): removes every classical suite from
    /// the allowlist, so a suite-1 session (a sender without the receiver's X-Wing key, or
    /// a downgrade) is [`ErrorKind::SuiteNotAllowed`] before any cryptographic work. To
    /// hold only some senders to it, see [`crate::TrustedKey::require_post_quantum`].
    pub fn require_post_quantum(mut self) -> Self {
        self.suites.retain(|s| s.is_post_quantum());
        if self.suites.is_empty() {
            self.suites = Suite::POST_QUANTUM.to_vec();
        }
        self
    }

    /// The longest recipient list accepted in a suite-2 (post-quantum) session block, at
    /// most [`crate::MAX_PQ_RECIPIENTS`] (768; larger values are lowered to it), and never
    /// more than [`Policy::max_recipients`] (spec §7.3).
    pub fn max_pq_recipients(mut self, n: usize) -> Self {
        self.max_pq_recipients = n.min(session::MAX_PQ_RECIPIENTS);
        self
    }

    /// The modes accepted, for example only [`Mode::Signed`] to require non-repudiation.
    pub fn modes(mut self, modes: &[Mode]) -> Self {
        self.modes = modes.to_vec();
        self
    }

    /// How far a message's timestamp may be from this receiver's clock (whole seconds).
    pub fn clock_skew(mut self, skew: Duration) -> Self {
        let stored = self.max_age > self.clock_skew;
        self.clock_skew = skew.as_secs();
        if !stored || self.max_age < self.clock_skew {
            self.max_age = self.clock_skew;
        }
        self
    }

    /// Messages at rest (spec/replay.md §2.2): accepts a message whose timestamp is up to
    /// `max_age` in the past, and whose session expired up to `max_age` ago, instead of
    /// only the clock skew. For a consumer of stored messages (a JetStream stream, a
    /// queue) that reads them minutes or hours after they were sealed. The future side
    /// stays the clock skew. Replay state of a session is then kept until its expiry plus
    /// `max_age` (the item's `expires_at`), so a replay stays detectable as long as the
    /// message is acceptable at all: a larger `max_age` costs replay-store memory. A
    /// `max_age` below the clock skew is the clock skew.
    pub fn max_stored_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age.as_secs().max(self.clock_skew);
        self
    }

    /// How old an accepted message may be, in seconds: [`Policy::max_stored_age`], or the
    /// clock skew when that was not set.
    pub fn max_age_secs(&self) -> u64 {
        self.max_age
    }

    /// The largest payload accepted; the largest envelope accepted grows with it.
    pub fn max_payload(mut self, bytes: usize) -> Self {
        self.max_payload = bytes;
        self.max_envelope_bytes = bytes.saturating_add(1024 * 1024);
        self
    }

    /// The longest recipient list accepted in a session block, at most
    /// [`MAX_RECIPIENTS_LIMIT`] (larger values are lowered to it).
    pub fn max_recipients(mut self, n: usize) -> Self {
        self.max_recipients = n.min(MAX_RECIPIENTS_LIMIT);
        self
    }

    /// The longest session lifetime (`expires - not_before`, whole seconds) accepted;
    /// a session declaring a longer one is refused (*session_limit*). Default
    /// [`DEFAULT_MAX_SESSION_LIFETIME`], 24 hours. A session's keys protect every message
    /// it carries until it expires: this bounds what one captured session key exposes.
    pub fn max_session_lifetime(mut self, lifetime: Duration) -> Self {
        self.max_session_lifetime = lifetime.as_secs();
        self
    }

    /// The largest message count (`max_messages`) a session may declare; a session
    /// declaring more is refused (*session_limit*). Default
    /// [`DEFAULT_MAX_SESSION_MESSAGES`], 2^32.
    pub fn max_session_messages(mut self, n: u64) -> Self {
        self.max_session_messages = n;
        self
    }

    /// Limits on metadata: entries, and bytes of keys and values together.
    pub fn max_metadata(mut self, entries: usize, bytes: usize) -> Self {
        self.limits = DecodeLimits {
            max_metadata_entries: entries,
            max_metadata_bytes: bytes,
        };
        self
    }

    /// Accepts MAC-mode sessions that reach us through a group key or a symmetric key
    /// (spec §6.4). Every holder of such a key (every group member; every service a
    /// symmetric key was given to, and the key server that issued it) can forge such
    /// messages: the sender is then only known to be "the sender or a holder of the key".
    pub fn dangerous_accept_mac_via_group_key(mut self) -> Self {
        self.accept_mac_via_group = true;
        self
    }

    /// Accepts legacy v2 (oslo.messaging) envelopes through [`Opener::open_any`], as
    /// [`Received::UnauthenticatedLegacy`]. They are neither signed nor encrypted nor
    /// protected against replay: anyone on the path can forge them. For migrations only.
    pub fn dangerous_accept_unauthenticated_legacy_v2(mut self) -> Self {
        self.accept_legacy = true;
        self
    }

    /// Hashes envelopes whose payload is at least `min_payload` bytes on a second thread
    /// while the caller's thread decrypts them. Default: `None`, never; the opener then
    /// starts no threads.
    ///
    /// Opening a message in signed or MAC mode is a BLAKE3 pass over every byte before the
    /// authenticator (spec §7.2) and ChaCha20-Poly1305 over the payload. One after the
    /// other, a 1 MiB payload costs about a quarter more than the AEAD alone. With this
    /// set, [`Opener::open`] (and [`Opener::open_any`]) start one scoped thread
    /// ([`std::thread::scope`]) for each such message, which runs both hashes, the AEAD's
    /// Poly1305 over the ciphertext (checking its tag) and the BLAKE3 message hash, while
    /// the caller's thread runs the ChaCha20 keystream, decrypting into a buffer of its
    /// own; the thread is joined before the call returns. On a machine with a second core
    /// free, a large open then costs about the ChaCha20 pass alone. Every check and every
    /// result is the same as without this setting, reported in the same order (the
    /// authenticator before the AEAD tag); the plaintext of a message that fails is
    /// zeroized and never returned, and replay state is marked only after everything
    /// passed. If the thread cannot be spawned, or does not return its results, the
    /// caller's thread computes them: no error, no panic.
    ///
    /// Starting the thread costs tens of microseconds, so this pays only for large
    /// payloads: README.perf.md has the measurements (on the machine measured there, from
    /// about 256 KiB on; the `rpcseal` command-line tool uses 256 KiB). Sign-only payloads
    /// are not encrypted and are always hashed on the caller's thread;
    /// [`Opener::open_batch`] hashes on the caller's thread too.
    pub fn parallel_hash_from(mut self, min_payload: Option<usize>) -> Self {
        self.parallel_hash_from = min_payload;
        self
    }

    /// Strict in-order delivery (spec/rpc.md §8): of each session, this receiver accepts
    /// sequence number 0 first and then only the next one, `seq = previous + 1`. A message
    /// with a lower number is [`ErrorKind::Replayed`], one with a higher number (a message
    /// before it was dropped, or they were reordered) is [`ErrorKind::OutOfOrder`]; neither
    /// changes any state. For ordered streams whose sender dedicates a session to the
    /// stream (a gRPC stream, one sealer per stream); not for sessions shared by concurrent
    /// calls, whose messages may overtake each other. The expected number lives with the
    /// cached session: a session evicted from the cache fails closed (`OutOfOrder` for its
    /// next inline message, [`ErrorKind::UnknownSession`] for a by-reference one), so the
    /// cache must hold every live stream (`OpenerBuilder::session_cache_capacity`).
    pub fn strict_order(mut self) -> Self {
        self.strict_order = true;
        self
    }

    /// The allowed clock skew in seconds.
    pub fn skew_secs(&self) -> u64 {
        self.clock_skew
    }
}

/// Facts about the session a message belongs to, all of them signed by the sender.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionFacts {
    /// The session's random id.
    pub session_id: [u8; 16],
    /// How envelopes refer to the session (first 16 bytes of the header hash).
    pub session_ref: [u8; 16],
    /// The suite.
    pub suite: Suite,
    /// The mode.
    pub mode: Mode,
    /// Unix seconds.
    pub not_before: u64,
    /// Unix seconds.
    pub expires: u64,
    /// The session's message limit.
    pub max_messages: u64,
    /// The session's payload byte limit.
    pub max_bytes: u64,
    /// Our key's index among the recipients.
    pub recipient_index: u32,
    /// How many recipients the block names.
    pub recipients: u32,
    /// The key id of our key that the session reached (identity X25519 key or group key).
    pub via_key: KeyId,
    /// True when it reached us through a group key.
    pub via_group: bool,
}

/// A message that passed every check. Its `Debug` shows the payload's length, never its
/// bytes.
#[derive(Clone)]
#[non_exhaustive]
pub struct Opened {
    /// The payload.
    pub payload: Vec<u8>,
    /// The authenticated cleartext metadata.
    pub metadata: Metadata,
    /// The verified sender's identity key id.
    pub sender: KeyId,
    /// The sender's name in the keyring (the key id in hex for keys trusted without a name).
    pub sender_name: Arc<str>,
    /// The sequence number.
    pub seq: u64,
    /// The sender's timestamp (unix seconds), checked against our clock.
    pub timestamp: u64,
    /// The session.
    pub session: SessionFacts,
    /// The message hash (spec/envelope-v3.md §7.2): what the authenticator covers, unique
    /// to this message. A reply names its request by it (spec/rpc.md §3).
    pub message_hash: [u8; 32],
}

/// The replay mark of a message opened by [`Opener::open_unmarked`], still to be recorded
/// with [`Opener::mark`] once the message's handler has succeeded (spec/replay.md §2.1).
/// Dropping it records nothing: the message stays acceptable, for a redelivery.
#[must_use = "a message opened without its replay mark can be accepted again until it is marked"]
pub struct DeferredMark {
    item: ReplayItem,
    session: Arc<CachedSession>,
}

impl std::fmt::Debug for DeferredMark {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeferredMark")
            .field("seq", &self.item.seq)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("payload", &Redacted(self.payload.len()))
            .field("metadata", &self.metadata)
            .field("sender", &self.sender)
            .field("sender_name", &self.sender_name)
            .field("seq", &self.seq)
            .field("timestamp", &self.timestamp)
            .field("session", &self.session)
            .finish()
    }
}

/// Shows a payload's length in place of its bytes.
pub(crate) struct Redacted(pub(crate) usize);

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{} bytes, redacted>", self.0)
    }
}

/// What [`Opener::open_any`] returns: a verified v3 message, or, only when the policy opts
/// in, a legacy v2 message that nothing vouches for. Its `Debug` shows no payload bytes.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Received {
    /// A v3 envelope that passed every check.
    Verified(Opened),
    /// A legacy v2 envelope. Not authenticated, not decrypted (it never was encrypted),
    /// not replay-checked.
    UnauthenticatedLegacy(LegacyMessage),
}

/// The envelope formats the first bytes tell apart (spec/legacy-v2.md §2).
enum Format {
    V3,
    Legacy,
    Unknown,
}

fn classify(bytes: &[u8]) -> Format {
    match bytes.first() {
        // Empty input goes to the v3 decoder, which reports it as truncated (malformed).
        None | Some(0x90..=0x9f | 0xdc | 0xdd) => Format::V3,
        _ if legacy::looks_like_json(bytes) => Format::Legacy,
        _ => Format::Unknown,
    }
}

/// Counters of the work an [`Opener`] did: the public-key work happens once per session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenerStats {
    /// Sessions established: one identity signature check and one HPKE open each.
    pub sessions_established: u64,
    /// Messages whose session came from the cache.
    pub session_cache_hits: u64,
    /// Per-message Ed25519 signature checks (signed and sign-only modes).
    pub message_signatures_checked: u64,
    /// Messages accepted.
    pub messages_opened: u64,
}

#[derive(Default)]
/// One shard's counters, on a cache line of its own: threads opening messages of
/// different sessions update different lines (the same sharding as the session cache).
#[repr(align(128))]
struct Counters {
    sessions_established: AtomicU64,
    session_cache_hits: AtomicU64,
    message_signatures_checked: AtomicU64,
    messages_opened: AtomicU64,
}

/// An unwrapped session, as the cache keeps it.
struct CachedSession {
    header: Header,
    header_hash: [u8; 32],
    cipher: Option<PayloadCipher>,
    mac_key: Option<Zeroizing<[u8; 32]>>,
    list_key: Option<Zeroizing<[u8; 32]>>,
    verify: Option<VerifyingKey>,
    index: u32,
    recipients: u32,
    via_key: KeyId,
    via_group: bool,
    /// Digests of the distinct inline blocks of this session whose signature has been
    /// verified (the establishing block first): spec §8 step 4 verifies every distinct
    /// block once. Bounded by [`MAX_BLOCKS_MEMO`]; past that, blocks are verified again.
    blocks: Mutex<Vec<[u8; 32]>>,
    /// Reached through a key other holders share: a group key or a symmetric key
    /// (spec §6.4).
    via_shared: bool,
    /// Strict order (spec/rpc.md §8): the next sequence number this receiver accepts.
    /// Held across the replay mark, so that check, mark and advance are one step.
    next_seq: Mutex<u64>,
}

/// What [`Opener::resolve_session`] found: the session, whether it is new to the cache, the
/// batch index of the envelope that carried it (by-reference envelopes of a batch), and the
/// digest of an inline block verified for this message.
type Resolved = (Arc<CachedSession>, bool, Option<usize>, Option<[u8; 32]>);

/// How many distinct verified blocks a cached session remembers (re-addressing adds one
/// per round of new members).
const MAX_BLOCKS_MEMO: usize = 8;

/// An envelope that passed every check before its authenticator (spec §8 steps 1 to 9).
struct Prepared<'a> {
    env: Envelope<'a>,
    session: Arc<CachedSession>,
    /// The session is new to the cache.
    fresh: bool,
    /// The session came from an earlier envelope of the same batch (its index).
    batch_origin: Option<usize>,
    /// The trusted sender's name, from the keyring.
    sender_name: Arc<str>,
    /// An inline block of a known session, verified for this message: remembered as
    /// verified only if the message is accepted (a failed message changes no state).
    verified_block: Option<[u8; 32]>,
    item: ReplayItem,
    payload_len: usize,
}

impl Prepared<'_> {
    /// The message hash that step 10's authenticator covers (spec §7.2).
    fn message_hash(&self) -> [u8; 32] {
        envelope::message_hash(&self.session.header_hash, self.env.covered)
    }
}

/// A decrypted payload on its way out: zeroized when dropped, so a message that fails
/// after decryption (its AEAD tag, its authenticator, the replay mark) leaves no plaintext
/// behind. Not `Zeroizing<Vec<u8>>`, whose drop wipes the (empty) vector left behind by a
/// successful open too: measurable on short messages.
struct Plaintext(Vec<u8>);

impl Plaintext {
    fn into_vec(mut self) -> Vec<u8> {
        std::mem::take(&mut self.0)
    }
}

impl Drop for Plaintext {
    fn drop(&mut self) {
        if self.0.capacity() > 0 {
            self.0.zeroize();
        }
    }
}

/// A prepared envelope of a batch and its message hash.
type Hashed<'a> = (Prepared<'a>, [u8; 32]);

const SHARDS: usize = 16;

/// A sharded LRU of unwrapped sessions keyed by session reference, so threads that open
/// messages of different sessions rarely meet on one lock.
struct SessionCache {
    shards: Vec<Mutex<LruCache<[u8; 16], Arc<CachedSession>>>>,
}

impl SessionCache {
    fn new(capacity: usize) -> SessionCache {
        let per = NonZeroUsize::new(capacity.div_ceil(SHARDS).max(1)).expect("at least one");
        SessionCache {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(LruCache::new(per)))
                .collect(),
        }
    }

    fn shard(
        &self,
        r: &[u8; 16],
    ) -> std::sync::MutexGuard<'_, LruCache<[u8; 16], Arc<CachedSession>>> {
        // A panic while holding the lock cannot leave the LRU half-updated in a way that
        // matters for safety: recover the guard rather than fail every later open.
        self.shards[usize::from(r[0]) % SHARDS]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Looks up without touching the LRU order (a failed open changes no state).
    fn peek(&self, r: &[u8; 16]) -> Option<Arc<CachedSession>> {
        self.shard(r).peek(r).cloned()
    }

    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }
}

/// One of our private keys, as an opener holds it.
struct OwnKey {
    id: KeyId,
    secret: OwnSecret,
    group: bool,
}

enum OwnSecret {
    X25519(HpkePrivate),
    // Boxed: the expanded X-Wing key is a few kilobytes.
    XWing(Box<session::XWingPrivate>),
    Symmetric(Zeroizing<[u8; 32]>),
}

impl OwnKey {
    fn unwrap_key(&self) -> UnwrapKey<'_> {
        match &self.secret {
            OwnSecret::X25519(k) => UnwrapKey::X25519(k),
            OwnSecret::XWing(k) => UnwrapKey::XWing(k),
            OwnSecret::Symmetric(k) => UnwrapKey::Symmetric(k),
        }
    }
}

/// Who an opener trusts (spec/keyring.md §2, §4).
struct Trust {
    /// The keyring it was given (builder, [`Opener::set_keyring`]), with the revocations of
    /// [`Opener::revoke`] applied.
    keyring: Keyring,
    /// Every [`Opener::revoke`], applied again to each keyring set later.
    revoked_at_run_time: HashSet<KeyId>,
    /// What the key directory said about senders the keyring does not hold.
    learned: HashMap<KeyId, Learned>,
}

/// A key directory's answer, as an opener keeps it.
enum Learned {
    /// Trusted, to be asked again from `recheck_at` on (the answer's age plus the
    /// directory's TTL).
    Trusted {
        key: Box<TrustedKey>,
        recheck_at: Instant,
    },
    /// Revoked: for the opener's lifetime (revocation is not undone).
    Revoked,
}

/// How many sessions [`Opener`] remembers from blocks that verified in messages that then
/// failed (spec §8, the last paragraph).
const VERIFIED_BLOCKS: usize = 256;

/// Opens envelopes addressed to its keys from the senders it trusts, under its policy.
/// `Send + Sync`: share one behind an `Arc` between threads.
pub struct Opener {
    keys: Vec<OwnKey>,
    trust: RwLock<Trust>,
    directory: Option<Arc<dyn KeyDirectory>>,
    policy: Policy,
    cache: SessionCache,
    /// Sessions established from inline blocks, by full header hash, whatever became of
    /// the message that carried them: a forged variant of a captured envelope then costs
    /// no signature check and no HPKE open. Only inline blocks with this exact header hash
    /// are looked up here, never envelopes by reference (spec §8 step 4).
    verified_blocks: Mutex<LruCache<[u8; 32], Arc<CachedSession>>>,
    replay: Arc<dyn ReplayStore>,
    counters: Vec<Counters>,
}

/// Builds an [`Opener`].
pub struct OpenerBuilder {
    keys: Vec<OwnKey>,
    keyring: Keyring,
    directory: Option<Arc<dyn KeyDirectory>>,
    policy: Policy,
    cache_capacity: usize,
    replay: Option<Arc<dyn ReplayStore>>,
}

impl OpenerBuilder {
    /// Opens sessions addressed to this identity's X25519 key and, if it has one, to its
    /// X-Wing key (suite 2).
    pub fn identity(mut self, identity: &Identity) -> Self {
        self.keys.push(OwnKey {
            id: identity.public().recipient_key_id(),
            secret: OwnSecret::X25519(session::hpke_private(identity.x25519_secret())),
            group: false,
        });
        if let Some(w) = identity.xwing_secret() {
            self.keys.push(OwnKey {
                id: w.public().key_id(),
                secret: OwnSecret::XWing(Box::new(session::xwing_private(w.seed()))),
                group: false,
            });
        }
        self
    }

    /// Opens sessions addressed to this group key (and to its X-Wing key, if any).
    pub fn group_key(mut self, group: &GroupKey) -> Self {
        self.keys.push(OwnKey {
            id: group.public().key_id(),
            secret: OwnSecret::X25519(session::hpke_private(group.x25519_secret())),
            group: true,
        });
        if let Some(w) = group.xwing_secret() {
            self.keys.push(OwnKey {
                id: w.public().key_id(),
                secret: OwnSecret::XWing(Box::new(session::xwing_private(w.seed()))),
                group: true,
            });
        }
        self
    }

    /// Opens sessions wrapped to this symmetric key. Whoever else holds it (the key server
    /// that issued it, other services it was given to) can open them too.
    pub fn symmetric_key(mut self, key: &SymmetricKey) -> Self {
        self.keys.push(OwnKey {
            id: key.key_id(),
            secret: OwnSecret::Symmetric(Zeroizing::new(*key.secret())),
            group: false,
        });
        self
    }

    /// Trusts this sender.
    pub fn trust(mut self, sender: &PublicIdentity) -> Self {
        let name = sender.key_id().to_string();
        self.keyring.add(TrustedKey::new(&name, sender.clone()));
        self
    }

    /// Trusts the senders of a keyring (named keys with validity periods) and applies its
    /// revocations.
    pub fn keyring(mut self, keyring: Keyring) -> Self {
        self.keyring.extend(keyring);
        self
    }

    /// Where to look up senders that are not in the keyring (spec/keyring.md §4): asked at
    /// the setup of each of their sessions, and again for messages of cached sessions once
    /// its answer is older than the directory's [`KeyDirectory::ttl`], so a revocation
    /// published there stops new sessions at once and cached ones within one TTL. What it
    /// says never enters the keyring: [`Opener::set_keyring`] leaves it alone.
    pub fn key_directory(mut self, directory: Arc<dyn KeyDirectory>) -> Self {
        self.directory = Some(directory);
        self
    }

    /// The policy (default: [`Policy::default`]).
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// How many unwrapped sessions to keep (default 10 000).
    pub fn session_cache_capacity(mut self, n: usize) -> Self {
        self.cache_capacity = n;
        self
    }

    /// Turns replay protection off: every captured message can then be replayed for as
    /// long as it is fresh. Only for receivers whose every operation is idempotent.
    pub fn dangerous_disable_replay_protection(mut self) -> Self {
        self.replay = Some(Arc::new(crate::replay::NoReplayCheck));
        self
    }

    /// Where replay state lives. Default: a bounded in-memory
    /// [`MemoryReplayStore`](crate::replay::MemoryReplayStore), whose protection lasts one
    /// process lifetime (a message captured within the clock skew before a restart can be
    /// replayed once after it). A process that restarts uses a
    /// [`FileReplayStore`](crate::replay::file::FileReplayStore) (one host), a shared store
    /// such as the Redis one behind the `redis` feature (a fleet of replicas), or at least an
    /// in-memory store with
    /// [`start_watermark`](crate::replay::MemoryReplayConfig::start_watermark).
    pub fn replay_store(mut self, store: Arc<dyn ReplayStore>) -> Self {
        self.replay = Some(store);
        self
    }

    /// Builds the opener.
    ///
    /// Refuses a replay store whose loss margin
    /// ([`ReplayStore::loss_margin_secs`]) is smaller than the policy's clock skew: its
    /// loss watermark would not cover every message a receiver may have accepted
    /// (spec/replay.md §6.4). The default in-memory store gets a margin of at least the skew.
    pub fn build(self) -> Result<Opener, Misuse> {
        if self.keys.is_empty() {
            return Err(Misuse::NoKeys);
        }
        if self.keyring.is_empty() && self.directory.is_none() {
            return Err(Misuse::NoTrustedSenders);
        }
        let skew = self.policy.clock_skew;
        let replay = self.replay.unwrap_or_else(|| {
            use crate::replay::{MemoryReplayConfig, MemoryReplayStore};
            let config = MemoryReplayConfig::default();
            Arc::new(MemoryReplayStore::new(MemoryReplayConfig {
                loss_margin_secs: config.loss_margin_secs.max(skew),
                ..config
            }))
        });
        if let Some(margin) = replay.loss_margin_secs() {
            if margin < skew {
                return Err(Misuse::LossMarginBelowSkew { margin, skew });
            }
        }
        Ok(Opener {
            keys: self.keys,
            trust: RwLock::new(Trust {
                keyring: self.keyring,
                revoked_at_run_time: HashSet::new(),
                learned: HashMap::new(),
            }),
            directory: self.directory,
            policy: self.policy,
            cache: SessionCache::new(self.cache_capacity),
            verified_blocks: Mutex::new(LruCache::new(
                NonZeroUsize::new(VERIFIED_BLOCKS).expect("not zero"),
            )),
            replay,
            counters: (0..SHARDS).map(|_| Counters::default()).collect(),
        })
    }
}

fn err(kind: ErrorKind, detail: &'static str) -> Error {
    Error::new(kind, detail)
}

impl Opener {
    /// Starts building an opener.
    pub fn builder() -> OpenerBuilder {
        OpenerBuilder {
            keys: Vec::new(),
            keyring: Keyring::new(),
            directory: None,
            policy: Policy::default(),
            cache_capacity: 10_000,
            replay: None,
        }
    }

    /// Opens an envelope, checking it in the order of spec §8.
    pub fn open(&self, envelope: &[u8]) -> Result<Opened, Error> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| {
                err(
                    ErrorKind::NotYetValid,
                    "the receiver's clock is before 1970",
                )
            })?
            .as_secs();
        self.open_at(envelope, now)
    }

    /// The one entry point for every version: a v3 envelope is opened as by
    /// [`Opener::open`]; a legacy v2 envelope is returned as
    /// [`Received::UnauthenticatedLegacy`] only when the policy opts in
    /// ([`Policy::dangerous_accept_unauthenticated_legacy_v2`]), and is
    /// [`ErrorKind::LegacyNotAllowed`] otherwise; anything else is
    /// [`ErrorKind::UnsupportedVersion`].
    pub fn open_any(&self, envelope: &[u8]) -> Result<Received, Error> {
        self.open_any_at(envelope, now()?)
    }

    /// [`Opener::open_any`] with the receiver's clock reading `now`.
    #[doc(hidden)]
    pub fn open_any_at(&self, bytes: &[u8], now: u64) -> Result<Received, Error> {
        if let Format::Legacy = classify(bytes) {
            if bytes.len() > self.policy.max_envelope_bytes {
                return Err(err(
                    ErrorKind::LimitExceeded,
                    "the legacy envelope is too large",
                ));
            }
            if !self.policy.accept_legacy && !mutant::is(Mutant::LegacyOptInIgnored) {
                return Err(err(
                    ErrorKind::LegacyNotAllowed,
                    "a legacy v2 envelope, and this receiver's policy does not accept unauthenticated legacy input",
                ));
            }
            return legacy::decode(bytes).map(Received::UnauthenticatedLegacy);
        }
        self.open_at(bytes, now).map(Received::Verified)
    }

    /// Opens as if the receiver's clock read `now` (unix seconds): for tests and vectors.
    #[doc(hidden)]
    pub fn open_at(&self, bytes: &[u8], now: u64) -> Result<Opened, Error> {
        let (prepared, payload, mh) = self.open_inner(bytes, now)?;
        self.accept(prepared, payload, mh, now)
    }

    /// Opens an envelope like [`Opener::open`], every check included (the read-only replay
    /// check, and the order check under [`Policy::strict_order`]), but does not record it
    /// as seen: the caller records it with [`Opener::mark`] once its handler succeeded
    /// (spec/replay.md §2.1), for at-least-once delivery where a message whose handling
    /// failed is delivered again and must then be processed, not rejected as a replay.
    ///
    /// Until it is marked, the message can be opened again (a redelivery, or a replay by
    /// anyone who captured it): a message handled but not yet marked can be handled twice.
    /// The caller bounds that window: mark as soon as the handler returns, before
    /// acknowledging to the broker, and redeliver only after the handler's deadline.
    /// A session established by the message is cached (it passed every check).
    pub fn open_unmarked(&self, envelope: &[u8]) -> Result<(Opened, DeferredMark), Error> {
        self.open_unmarked_at(envelope, now()?)
    }

    /// [`Opener::open_unmarked`] with the receiver's clock reading `now`.
    #[doc(hidden)]
    pub fn open_unmarked_at(
        &self,
        envelope: &[u8],
        now: u64,
    ) -> Result<(Opened, DeferredMark), Error> {
        let (prepared, payload, mh) = self.open_inner(envelope, now)?;
        self.defer(prepared, payload, mh)
    }

    /// Records a message opened by [`Opener::open_unmarked`] as seen: the replay store's
    /// `check_and_mark` (and under [`Policy::strict_order`] the advance of the session's
    /// expected sequence number), exactly as [`Opener::open`] does last. Fails, changing
    /// nothing, with [`ErrorKind::Replayed`] when another delivery of the message was
    /// marked in the meantime (it was then handled twice), [`ErrorKind::OutOfOrder`] when
    /// an earlier message of a strictly ordered session was not marked yet,
    /// [`ErrorKind::Expired`] when the session expired meanwhile, or
    /// [`ErrorKind::ReplayUnavailable`]. Give the mark to the opener that returned it
    /// (another opener would record it in its own replay store).
    pub fn mark(&self, mark: DeferredMark) -> Result<(), Error> {
        self.mark_at(mark, now()?)
    }

    /// [`Opener::mark`] with the receiver's clock reading `now`.
    #[doc(hidden)]
    pub fn mark_at(&self, mark: DeferredMark, now: u64) -> Result<(), Error> {
        self.commit(&mark.session, &mark.item, now)
    }

    /// Spec §8 steps 1 to 11: every check but the replay mark, and the decrypted payload.
    /// The caller marks (`accept`) or hands the mark out (`defer`).
    fn open_inner<'a>(
        &self,
        bytes: &'a [u8],
        now: u64,
    ) -> Result<(Prepared<'a>, Plaintext, [u8; 32]), Error> {
        let prepared = self.prepare(bytes, now, &[])?;
        let parallel = self
            .policy
            .parallel_hash_from
            .is_some_and(|min| prepared.payload_len >= min);
        if let (true, Some(cipher)) = (parallel, &prepared.session.cipher) {
            // Steps 10 and 11 at once: the message hash and the AEAD's tag check on a
            // second thread while this one decrypts into a buffer of its own, zeroized on
            // failure. The outcome is reported in the spec's order: the authenticator first.
            let env = &prepared.env;
            let (ciphertext, tag) = env.body.split_at(prepared.payload_len);
            let tag: &[u8; AEAD_TAG_LEN] = tag.try_into().map_err(|_| {
                err(
                    ErrorKind::Malformed,
                    "the ciphertext is shorter than its tag",
                )
            })?;
            let mut payload = Plaintext(vec![0u8; prepared.payload_len]);
            let (verdict, mh) = parallel::open_body(
                cipher,
                &envelope::aead_nonce(env.seq),
                tag,
                &prepared.session.header_hash,
                env.covered,
                ciphertext,
                &mut payload.0,
            );
            self.check_authenticator(&prepared.session, &mh, env.authenticator)?;
            verdict.map_err(|()| bad_aead_tag())?;
            return Ok((prepared, payload, mh));
        }
        // Step 10: the authenticator over every byte before it.
        let mh = prepared.message_hash();
        self.check_authenticator(&prepared.session, &mh, prepared.env.authenticator)?;
        if mutant::is(Mutant::AuthenticatorBeforeTime) {
            let h = &prepared.session.header;
            check_time(
                h,
                prepared.env.timestamp,
                now,
                self.policy.clock_skew,
                self.policy.max_age,
            )?;
        }
        let payload = self.decrypt(&prepared)?;
        Ok((prepared, payload, mh))
    }

    /// Step 12 left to the caller: the order check (read-only) under strict order, then
    /// the message and its mark.
    fn defer(
        &self,
        prepared: Prepared<'_>,
        payload: Plaintext,
        mh: [u8; 32],
    ) -> Result<(Opened, DeferredMark), Error> {
        if self.policy.strict_order {
            let next = *prepared
                .session
                .next_seq
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            check_order(next, prepared.item.seq)?;
        }
        let deferred = DeferredMark {
            item: prepared.item,
            session: prepared.session.clone(),
        };
        Ok((self.finish(prepared, payload, mh), deferred))
    }

    /// The replay mark, last (spec §8 step 11), and under strict order the session's
    /// expected sequence number, checked and advanced under one lock with the mark.
    fn commit(&self, session: &CachedSession, item: &ReplayItem, now: u64) -> Result<(), Error> {
        if !self.policy.strict_order {
            return self.replay.check_and_mark(item, now).map_err(replay_error);
        }
        let mut next = session.next_seq.lock().unwrap_or_else(|p| p.into_inner());
        check_order(*next, item.seq)?;
        self.replay
            .check_and_mark(item, now)
            .map_err(replay_error)?;
        *next = item.seq.saturating_add(1);
        Ok(())
    }

    /// Opens a batch of envelopes, with one `now` for all of them. Results are in input
    /// order, and each is what [`Opener::open`] would have returned had the envelopes been
    /// opened one after the other: every check is the same, replay state is marked in input
    /// order and only for messages that passed everything (so the second copy of a message
    /// in one batch is [`ErrorKind::Replayed`]), and an envelope may refer to a session
    /// whose block arrived earlier in the same batch.
    ///
    /// Every signature is checked on its own with the strict rule of spec §1, exactly as
    /// [`Opener::open`] checks it. (Ed25519 batch verification, about twice as fast, was
    /// dropped: its random linear combination accepts signatures with a small-order
    /// component that strict verification rejects, so two replicas, one using `open` and
    /// one `open_batch`, could disagree on a message.) What a batch still saves is the
    /// per-call overhead and the sharing of sessions established earlier in the batch.
    pub fn open_batch(&self, envelopes: &[&[u8]]) -> Vec<Result<Opened, Error>> {
        let now = match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_secs(),
            Err(_) => {
                return envelopes
                    .iter()
                    .map(|_| {
                        Err(err(
                            ErrorKind::NotYetValid,
                            "the receiver's clock is before 1970",
                        ))
                    })
                    .collect()
            }
        };
        self.open_batch_at(envelopes, now)
    }

    /// [`Opener::open_batch`] with the receiver's clock reading `now`.
    #[doc(hidden)]
    pub fn open_batch_at(&self, envelopes: &[&[u8]], now: u64) -> Vec<Result<Opened, Error>> {
        // Steps 1 to 9 for every envelope, in order. Sessions established by an envelope of
        // this batch are visible to the envelopes after it (as they would be to sequential
        // opens once that envelope is accepted: checked again in the last loop).
        let mut fresh: Vec<([u8; 16], Arc<CachedSession>, usize)> = Vec::new();
        let mut prepared: Vec<Result<Hashed<'_>, Error>> = Vec::with_capacity(envelopes.len());
        for (i, bytes) in envelopes.iter().enumerate() {
            let p = self.prepare(bytes, now, &fresh).map(|p| {
                let mh = p.message_hash();
                (p, mh)
            });
            if let Ok((p, _)) = &p {
                if p.fresh {
                    fresh.push((p.env.session_ref, p.session.clone(), i));
                }
            }
            prepared.push(p);
        }
        // Step 10: MAC lists one by one, signatures together.
        let mut auth: Vec<Result<(), Error>> = Vec::with_capacity(envelopes.len());
        let mut signed = Vec::new();
        for (i, p) in prepared.iter().enumerate() {
            match p {
                Ok((p, _)) if p.session.verify.is_some() => {
                    auth.push(Ok(()));
                    signed.push(i);
                }
                Ok((p, mh)) => {
                    auth.push(self.check_authenticator(&p.session, mh, p.env.authenticator))
                }
                Err(_) => auth.push(Ok(())),
            }
        }
        self.check_signatures(&prepared, &signed, &mut auth);
        // Steps 11 to 13 in input order: decrypt, mark, cache. A by-reference envelope whose
        // session came from this batch opens only once an envelope carrying that block was
        // accepted before it, whichever one (as one by one, where the first accepted copy
        // puts the session in the cache).
        let mut out: Vec<Result<Opened, Error>> = Vec::with_capacity(envelopes.len());
        let mut accepted_blocks: Vec<[u8; 32]> = Vec::new();
        for (p, a) in prepared.into_iter().zip(auth) {
            let r = p.and_then(|(p, mh)| {
                a?;
                if p.batch_origin.is_some() && !accepted_blocks.contains(&p.session.header_hash) {
                    return Err(err(
                        ErrorKind::UnknownSession,
                        "no session with this reference is known: send its block",
                    ));
                }
                let carries_block = p.env.block.is_some();
                let header_hash = p.session.header_hash;
                let payload = self.decrypt(&p)?;
                let opened = self.accept(p, payload, mh, now)?;
                if carries_block && !accepted_blocks.contains(&header_hash) {
                    accepted_blocks.push(header_hash);
                }
                Ok(opened)
            });
            out.push(r);
        }
        out
    }

    /// Checks the signatures of the prepared envelopes at `indices` (all of signed
    /// sessions), with one batch verification, and one by one when that fails.
    fn check_signatures(
        &self,
        prepared: &[Result<Hashed<'_>, Error>],
        indices: &[usize],
        auth: &mut [Result<(), Error>],
    ) {
        let mut batch: Vec<usize> = Vec::with_capacity(indices.len());
        let mut inputs = Vec::with_capacity(indices.len());
        let mut sigs = Vec::with_capacity(indices.len());
        let mut keys = Vec::with_capacity(indices.len());
        for &i in indices {
            let Ok((p, mh)) = &prepared[i] else { continue };
            let vk = p.session.verify.expect("signed session");
            match <&[u8; SIG_LEN]>::try_from(p.env.authenticator) {
                Ok(sig) => {
                    batch.push(i);
                    inputs.push(envelope::signature_input(mh));
                    sigs.push(*sig);
                    keys.push(vk);
                }
                Err(_) => {
                    auth[i] = Err(err(
                        ErrorKind::Malformed,
                        "the signature has the wrong length",
                    ))
                }
            }
        }
        self.counters_for(0)
            .message_signatures_checked
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        // spec §1, §8 step 9: one rule for every verifier. No batch equation: a random
        // linear combination of cofactorless equations accepts signatures with a small-order
        // component that strict verification rejects (issue 14), so each signature is
        // checked on its own, exactly as `open` checks it.
        for (k, &i) in batch.iter().enumerate() {
            if !crate::sign::verify(&keys[k], &inputs[k][..], &sigs[k]) {
                auth[i] = Err(bad_signature());
            }
        }
    }

    /// Spec §8 steps 1 to 9: every check before the authenticator (whose message hash the
    /// caller computes: [`Prepared::message_hash`]). Changes no state.
    /// `batch` holds sessions established earlier in the same batch.
    fn prepare<'a>(
        &self,
        bytes: &'a [u8],
        now: u64,
        batch: &[([u8; 16], Arc<CachedSession>, usize)],
    ) -> Result<Prepared<'a>, Error> {
        let p = &self.policy;
        // §8 step 1: size before anything else.
        if bytes.len() > p.max_envelope_bytes {
            return Err(Error::new(
                ErrorKind::LimitExceeded,
                format!(
                    "an envelope of {} bytes exceeds the limit of {}",
                    bytes.len(),
                    p.max_envelope_bytes
                ),
            ));
        }
        match classify(bytes) {
            Format::V3 => {}
            Format::Legacy => {
                return Err(err(
                    ErrorKind::LegacyNotAllowed,
                    "a legacy v2 envelope: Opener::open returns only verified v3 messages (see open_any)",
                ))
            }
            Format::Unknown => {
                return Err(err(ErrorKind::UnsupportedVersion, "not an envelope format this receiver knows"))
            }
        }
        // Steps 2 and 3: strict decode, version, suite known.
        let env = Envelope::decode(bytes, &p.limits)?;
        // Step 4: suite allowlist, before any cryptographic work.
        if !p.suites.contains(&env.suite) && !mutant::is(Mutant::NoSuiteAllowlist) {
            return Err(err(
                ErrorKind::SuiteNotAllowed,
                "the envelope's suite is not on the allowlist",
            ));
        }
        if let (true, Some(b)) = (mutant::is(Mutant::TimeBeforeEstablish), env.block) {
            if let Ok(block) = Block::decode_with(b, p.max_recipients, p.max_pq_recipients) {
                check_time(&block.header, env.timestamp, now, p.clock_skew, p.max_age)?;
            }
        }
        // Step 5: the session, from the inline block, the cache or this batch.
        let (session, fresh, batch_origin, verified_block) = self.resolve_session(&env, batch)?;
        let h = &session.header;
        // Step 5: the session's suite is the envelope's (also for a cached session), its
        // sender is trusted, its mode allowed: repeated for cached sessions.
        if h.suite != env.suite && !mutant::is(Mutant::NoEnvelopeSuiteCheck) {
            return Err(err(
                ErrorKind::Malformed,
                "the envelope's suite differs from its session's",
            ));
        }
        if mutant::is(Mutant::TimeBeforeSender) {
            check_time(h, env.timestamp, now, p.clock_skew, p.max_age)?;
        }
        let sender_name = if mutant::is(Mutant::NoRecheckOfCachedSessions) && !fresh {
            Arc::from("")
        } else {
            self.check_sender(&h.sender, h.suite, env.timestamp)?
        };
        self.check_mode(h.mode, session.via_shared)?;
        if mutant::is(Mutant::LimitsBeforeTime) && env.seq >= h.max_messages {
            return Err(err(ErrorKind::SessionLimit, "seq past the limit"));
        }
        // Step 7: time.
        if !mutant::is(Mutant::AuthenticatorBeforeTime) {
            check_time(h, env.timestamp, now, p.clock_skew, p.max_age)?;
        }
        // Step 8: session limits and payload size.
        check_session_limits(h, p).or_else(|e| {
            if mutant::is(Mutant::NoSessionLimits) {
                Ok(())
            } else {
                Err(e)
            }
        })?;
        if env.seq >= h.max_messages && !mutant::is(Mutant::NoSessionLimits) {
            return Err(err(
                ErrorKind::SessionLimit,
                "the sequence number is past the session's message limit",
            ));
        }
        let tag_len = if h.mode.encrypts() { AEAD_TAG_LEN } else { 0 };
        let payload_len = env.body.len().checked_sub(tag_len).ok_or_else(|| {
            err(
                ErrorKind::Malformed,
                "the ciphertext is shorter than its tag",
            )
        })?;
        if payload_len as u64 > h.max_bytes && !mutant::is(Mutant::NoSessionLimits) {
            return Err(err(
                ErrorKind::SessionLimit,
                "the payload is larger than the session's byte limit",
            ));
        }
        if payload_len > p.max_payload && !mutant::is(Mutant::NoReceiverLimits) {
            return Err(err(
                ErrorKind::LimitExceeded,
                "the payload exceeds the receiver's limit",
            ));
        }
        // Step 9: a read-only replay check, so replays cost no cryptography.
        let item = ReplayItem {
            sender: h.sender.0,
            session_id: h.session_id,
            seq: env.seq,
            nonce: env.nonce,
            timestamp: env.timestamp,
            expires_at: h.expires.saturating_add(p.max_age),
            one_shot: h.max_messages == 1,
        };
        self.replay.check(&item, now).map_err(replay_error)?;
        Ok(Prepared {
            env,
            session,
            fresh,
            batch_origin,
            sender_name,
            verified_block,
            item,
            payload_len,
        })
    }

    /// Spec §8 step 11, for a message whose authenticator verified: decrypt, from the
    /// envelope straight into the payload (a copy in sign-only mode). The plaintext of a
    /// message whose AEAD tag does not verify is zeroized and never returned.
    fn decrypt(&self, prepared: &Prepared<'_>) -> Result<Plaintext, Error> {
        let env = &prepared.env;
        let (body, tag) = env.body.split_at(prepared.payload_len);
        let Some(cipher) = &prepared.session.cipher else {
            return Ok(Plaintext(body.to_vec()));
        };
        let tag: &[u8; AEAD_TAG_LEN] = tag.try_into().map_err(|_| {
            err(
                ErrorKind::Malformed,
                "the ciphertext is shorter than its tag",
            )
        })?;
        let mut payload = Plaintext(vec![0u8; prepared.payload_len]);
        cipher
            .decrypt_b2b(
                &envelope::aead_nonce(env.seq),
                b"",
                body,
                &mut payload.0,
                tag,
            )
            .map_err(|()| bad_aead_tag())?;
        Ok(payload)
    }

    /// Spec §8 steps 12 and 13, for a message that passed every check and whose payload is
    /// decrypted: mark as seen, remember the session. The payload is zeroized if this
    /// fails.
    fn accept(
        &self,
        prepared: Prepared<'_>,
        payload: Plaintext,
        message_hash: [u8; 32],
        now: u64,
    ) -> Result<Opened, Error> {
        // Step 12: mark as seen, last: only a fully verified message changes replay state.
        self.commit(&prepared.session, &prepared.item, now)?;
        Ok(self.finish(prepared, payload, message_hash))
    }

    /// Step 13 for a message that passed every check: remember the session, count, and
    /// hand out the payload.
    fn finish(&self, prepared: Prepared<'_>, payload: Plaintext, message_hash: [u8; 32]) -> Opened {
        let Prepared {
            env,
            session,
            fresh,
            sender_name,
            verified_block,
            ..
        } = prepared;
        let h = &session.header;
        // A block verified for this (accepted) message is remembered as verified.
        if let Some(d) = verified_block {
            let mut blocks = session.blocks.lock().unwrap_or_else(|p| p.into_inner());
            if blocks.len() < MAX_BLOCKS_MEMO && !blocks.contains(&d) {
                blocks.push(d);
            }
        }
        // Step 13: remember the session.
        {
            let mut shard = self.cache.shard(&env.session_ref);
            if fresh {
                shard.put(env.session_ref, session.clone());
            } else if shard.contains(&env.session_ref) {
                shard.promote(&env.session_ref);
            } else {
                // Established earlier in the same batch, and evicted since or not yet put.
                shard.put(env.session_ref, session.clone());
            }
        }
        self.counters_for(env.session_ref[0])
            .messages_opened
            .fetch_add(1, Ordering::Relaxed);
        let metadata = env.metadata.to_metadata();
        Opened {
            payload: payload.into_vec(),
            metadata,
            sender: h.sender,
            sender_name,
            seq: env.seq,
            timestamp: env.timestamp,
            session: SessionFacts {
                session_id: h.session_id,
                session_ref: env.session_ref,
                suite: h.suite,
                mode: h.mode,
                not_before: h.not_before,
                expires: h.expires,
                max_messages: h.max_messages,
                max_bytes: h.max_bytes,
                recipient_index: session.index,
                recipients: session.recipients,
                via_key: session.via_key,
                via_group: session.via_group,
            },
            message_hash,
        }
    }

    /// Spec §6.4: `via_shared` when the session reached us through a key that others hold
    /// too (a group key or a symmetric key).
    fn check_mode(&self, mode: Mode, via_shared: bool) -> Result<(), Error> {
        if !self.policy.modes.contains(&mode) && !mutant::is(Mutant::NoModeAllowlist) {
            return Err(Error::new(
                ErrorKind::ModeNotAllowed,
                format!("{mode} mode is not allowed by this receiver's policy"),
            ));
        }
        if mode == Mode::Mac
            && via_shared
            && !self.policy.accept_mac_via_group
            && !mutant::is(Mutant::MacViaSharedKeyAccepted)
        {
            return Err(err(
                ErrorKind::ModeNotAllowed,
                "MAC mode through a group or symmetric key cannot authenticate the sender: \
                 every holder of the key can forge it",
            ));
        }
        Ok(())
    }

    /// Finds the session: the cache if it holds this exact header, then sessions established
    /// earlier in the same batch, otherwise the inline block, verified and unwrapped.
    /// Returns the session, whether it is new to the cache, and for a by-reference envelope
    /// whose session came from the batch, the index of the envelope that carried it.
    fn resolve_session(
        &self,
        env: &Envelope<'_>,
        batch: &[([u8; 16], Arc<CachedSession>, usize)],
    ) -> Result<Resolved, Error> {
        let Some(block_bytes) = env.block else {
            if let Some(s) = self.cache.peek(&env.session_ref) {
                self.counters_for(env.session_ref[0])
                    .session_cache_hits
                    .fetch_add(1, Ordering::Relaxed);
                return Ok((s, false, None, None));
            }
            return match batch.iter().find(|(r, _, _)| *r == env.session_ref) {
                Some((_, s, origin)) => Ok((s.clone(), false, Some(*origin), None)),
                None => Err(err(
                    ErrorKind::UnknownSession,
                    "no session with this reference is known: send its block",
                )),
            };
        };
        let block = Block::decode_with(
            block_bytes,
            self.policy.max_recipients,
            self.policy.max_pq_recipients,
        )?;
        if session::session_ref(&block.header_hash) != env.session_ref
            && !mutant::is(Mutant::SessionRefUnchecked)
        {
            return Err(err(
                ErrorKind::Malformed,
                "the session reference does not match the inline block",
            ));
        }
        if block.header.suite != env.suite && !mutant::is(Mutant::NoEnvelopeSuiteCheck) {
            return Err(err(
                ErrorKind::Malformed,
                "the envelope's suite differs from its session's",
            ));
        }
        if let Some(s) = self
            .cache
            .peek(&env.session_ref)
            .filter(|_| !mutant::is(Mutant::NoCacheForInlineBlocks))
        {
            if s.header_hash == block.header_hash {
                let verified = self.check_known_block(&s, block_bytes, &block)?;
                self.counters_for(env.session_ref[0])
                    .session_cache_hits
                    .fetch_add(1, Ordering::Relaxed);
                return Ok((s, false, None, verified));
            }
        }
        // The same session established earlier in this batch: this envelope carries its
        // block too, so it stands on its own whatever became of the earlier one.
        if let Some((_, s, _)) = batch
            .iter()
            .find(|(r, s, _)| *r == env.session_ref && s.header_hash == block.header_hash)
        {
            let verified = self.check_known_block(s, block_bytes, &block)?;
            return Ok((s.clone(), true, None, verified));
        }
        // A block with this exact header verified before, in a message that then failed
        // (or whose session was evicted): the same session, without the public-key work.
        // Still a session setup for the sender's trust: step 4a again (the key directory is
        // asked as for any setup), and step 5 like for any session. A block other than the
        // one verified then is verified once (issue 14 item 4).
        let known = self
            .verified_blocks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&block.header_hash)
            .cloned()
            .filter(|_| !mutant::is(Mutant::NoCacheForInlineBlocks));
        if let Some(s) = known {
            self.sender_for_session(&block.header.sender, block.header.suite)?;
            let verified = self.check_known_block(&s, block_bytes, &block)?;
            return Ok((s, true, None, verified));
        }
        let s = Arc::new(self.establish(block_bytes, &block)?);
        self.verified_blocks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .put(block.header_hash, s.clone());
        Ok((s, true, None, None))
    }

    /// spec §8 step 4: an inline block whose header is already known is verified once per
    /// distinct block: a block other than one already verified (a re-addressed block, or a
    /// forged one with the session's header) has its identity signature checked. The
    /// sender's trust is checked for every message by step 5. Returns the digest to
    /// remember if the message is accepted.
    fn check_known_block(
        &self,
        s: &CachedSession,
        block_bytes: &[u8],
        block: &Block<'_>,
    ) -> Result<Option<[u8; 32]>, Error> {
        if mutant::is(Mutant::KnownBlocksNotReverified) {
            return Ok(None);
        }
        let digest = *blake3::hash(block_bytes).as_bytes();
        if s.blocks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&digest)
        {
            return Ok(None);
        }
        let sender = self.sender_for_session(&s.header.sender, s.header.suite)?;
        block.verify_signature(&sender)?;
        Ok(Some(digest))
    }

    /// Verifies and unwraps a session block addressed to us (spec §8 step 5).
    fn establish(&self, block_bytes: &[u8], block: &Block<'_>) -> Result<CachedSession, Error> {
        let h = &block.header;
        let sender = self.sender_for_session(&h.sender, h.suite)?;
        let (index, own) = block
            .entries
            .iter()
            .enumerate()
            .find_map(|(i, e)| {
                self.keys
                    .iter()
                    .find(|k| k.id == e.key_id && k.unwrap_key().kind() == e.kind)
                    .map(|k| (i, k))
            })
            .ok_or_else(|| {
                err(
                    ErrorKind::NotForUs,
                    "none of our keys is a recipient of this session",
                )
            })?;
        let shared = own.group || matches!(own.secret, OwnSecret::Symmetric(_));
        self.check_mode(h.mode, shared)?;
        block.verify_signature(&sender)?;
        let (ek, mac_key) = block.unwrap(index, &own.unwrap_key())?;
        let verify = match &h.verify_key {
            // Step 4f: canonical, prime order (spec §2.1), checked once per session.
            Some(k) if mutant::is(Mutant::SmallOrderOnlyKeyCheck) => Some(
                VerifyingKey::from_bytes(k)
                    .ok()
                    .filter(|k| !k.is_weak())
                    .ok_or_else(|| err(ErrorKind::Malformed, "small-order verify key"))?,
            ),
            Some(k) => Some(crate::keys::ed25519_public(k).map_err(|_| {
                err(
                    ErrorKind::Malformed,
                    "the session verification key is not a canonical prime-order Ed25519 key",
                )
            })?),
            None => None,
        };
        self.counters_for(block.header_hash[0])
            .sessions_established
            .fetch_add(1, Ordering::Relaxed);
        Ok(CachedSession {
            header: block.header.clone(),
            header_hash: block.header_hash,
            cipher: ek.as_ref().map(|k| PayloadCipher::new(k)),
            list_key: mac_key
                .as_ref()
                .and(ek.as_ref())
                .map(|k| envelope::list_key(k)),
            mac_key,
            verify,
            index: index as u32,
            recipients: block.entries.len() as u32,
            via_key: own.id,
            via_group: own.group,
            blocks: Mutex::new(vec![*blake3::hash(block_bytes).as_bytes()]),
            via_shared: shared,
            next_seq: Mutex::new(0),
        })
    }

    fn check_authenticator(
        &self,
        s: &CachedSession,
        mh: &[u8; 32],
        auth: &[u8],
    ) -> Result<(), Error> {
        self.check_authenticator_strict(s, mh, auth).or_else(|e| {
            if mutant::is(Mutant::NoAuthenticatorCheck) {
                Ok(())
            } else {
                Err(e)
            }
        })
    }

    fn check_authenticator_strict(
        &self,
        s: &CachedSession,
        mh: &[u8; 32],
        auth: &[u8],
    ) -> Result<(), Error> {
        if let Some(vk) = &s.verify {
            let sig: &[u8; SIG_LEN] = auth
                .try_into()
                .map_err(|_| err(ErrorKind::Malformed, "the signature has the wrong length"))?;
            self.counters_for(s.header_hash[0])
                .message_signatures_checked
                .fetch_add(1, Ordering::Relaxed);
            if crate::sign::verify(vk, &envelope::signature_input(mh), sig) {
                Ok(())
            } else {
                Err(bad_signature())
            }
        } else {
            let (Some(mk), Some(ak)) = (&s.mac_key, &s.list_key) else {
                return Err(err(ErrorKind::Malformed, "MAC session without MAC keys"));
            };
            let n = s.recipients as usize;
            if auth.len() != envelope::mac_list_len(n) {
                return Err(err(
                    ErrorKind::Malformed,
                    "the MAC list has the wrong length",
                ));
            }
            if envelope::check_mac_list(auth, s.index as usize, n, mk, ak, mh) {
                Ok(())
            } else {
                Err(err(
                    ErrorKind::BadAuthenticator,
                    "the message MAC does not verify",
                ))
            }
        }
    }

    /// Verifies a session block received out of band (a sealer with [`crate::Inline::Never`]
    /// or [`crate::Inline::FirstMessage`]) and caches it, so envelopes that refer to it
    /// open. Returns the session reference.
    pub fn import_session(&self, block: &[u8]) -> Result<[u8; 16], Error> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| {
                err(
                    ErrorKind::NotYetValid,
                    "the receiver's clock is before 1970",
                )
            })?
            .as_secs();
        self.import_session_at(block, now)
    }

    /// [`Opener::import_session`] with the receiver's clock reading `now`.
    #[doc(hidden)]
    pub fn import_session_at(&self, block: &[u8], now: u64) -> Result<[u8; 16], Error> {
        if block.len() > self.policy.max_envelope_bytes {
            return Err(err(
                ErrorKind::LimitExceeded,
                "the session block is too large",
            ));
        }
        let block_bytes = block;
        let block = Block::decode_with(
            block_bytes,
            self.policy.max_recipients,
            self.policy.max_pq_recipients,
        )?;
        if !self.policy.suites.contains(&block.header.suite) {
            return Err(err(
                ErrorKind::SuiteNotAllowed,
                "the session's suite is not on the allowlist",
            ));
        }
        let h = &block.header;
        if now.saturating_add(self.policy.clock_skew) < h.not_before {
            return Err(err(ErrorKind::NotYetValid, "the session is not valid yet"));
        }
        if now > h.expires.saturating_add(self.policy.max_age) {
            return Err(err(ErrorKind::Expired, "the session has expired"));
        }
        check_session_limits(h, &self.policy)?;
        let session = self.establish(block_bytes, &block)?;
        let r = session::session_ref(&block.header_hash);
        self.cache.shard(&r).put(r, Arc::new(session));
        Ok(r)
    }

    /// The sender's key for verifying a session block (spec §8 step 4a): the keyring, else
    /// the key directory, asked afresh (through its own cache) for every session it
    /// establishes. Revoked keys are refused.
    fn sender_for_session(&self, id: &KeyId, suite: Suite) -> Result<VerifyingKey, Error> {
        {
            let trust = self.trust.read().unwrap_or_else(|p| p.into_inner());
            if trust.is_revoked(id) {
                return Err(revoked());
            }
            if let Some(k) = trust.keyring.get(id) {
                check_require_pq(k, suite)?;
                return Ok(*k.key().verifying_key());
            }
        }
        let k = self.ask_directory(id)?;
        check_require_pq(&k, suite)?;
        Ok(*k.key().verifying_key())
    }

    /// Asks the key directory about a sender the keyring does not hold and remembers the
    /// answer (spec/keyring.md §4). No directory, an unknown key or a directory that
    /// fails: *untrusted_sender*.
    fn ask_directory(&self, id: &KeyId) -> Result<TrustedKey, Error> {
        let Some(dir) = &self.directory else {
            return Err(untrusted());
        };
        let answer = dir.lookup_as_of(id);
        let mut trust = self.trust.write().unwrap_or_else(|p| p.into_inner());
        match answer {
            Ok((Lookup::Trusted(k), as_of)) if k.key().key_id() == *id => {
                if trust.is_revoked(id) {
                    // Revoked by another thread (or by the directory) meanwhile.
                    return Err(revoked());
                }
                let recheck_at = as_of.checked_add(dir.ttl()).unwrap_or(as_of);
                trust.learned.insert(
                    *id,
                    Learned::Trusted {
                        key: Box::new(k.clone()),
                        recheck_at,
                    },
                );
                Ok(k)
            }
            Ok((Lookup::Revoked, _)) => {
                trust.learned.insert(*id, Learned::Revoked);
                Err(revoked())
            }
            Ok(_) => {
                trust.forget(id);
                Err(untrusted())
            }
            Err(e) => {
                trust.forget(id);
                Err(Error::new(
                    ErrorKind::UntrustedSender,
                    format!("the sender is not in the keyring and the key directory failed: {e}"),
                ))
            }
        }
    }

    /// Spec §8 step 5 for every message, cached sessions too: the sender is not revoked, is
    /// trusted, and its key was valid at the message's timestamp. Returns its name. A sender
    /// learned from the key directory is asked about again once that answer is older than
    /// the directory's TTL.
    fn check_sender(&self, id: &KeyId, suite: Suite, timestamp: u64) -> Result<Arc<str>, Error> {
        {
            let trust = self.trust.read().unwrap_or_else(|p| p.into_inner());
            if trust.is_revoked(id) {
                return Err(revoked());
            }
            if let Some(k) = trust.keyring.get(id) {
                check_require_pq(k, suite)?;
                return key_valid_at(k, timestamp);
            }
            if let Some(Learned::Trusted { key, recheck_at }) = trust.learned.get(id) {
                if Instant::now() < *recheck_at {
                    check_require_pq(key, suite)?;
                    return key_valid_at(key, timestamp);
                }
            }
        }
        let key = self.ask_directory(id)?;
        check_require_pq(&key, suite)?;
        key_valid_at(&key, timestamp)
    }

    /// Revokes a sender key at run time: every later message of a session it signed is
    /// rejected, cached sessions included. Kept for the opener's lifetime, across
    /// [`Opener::set_keyring`], and whatever a key directory says.
    pub fn revoke(&self, id: KeyId) {
        let mut trust = self.trust.write().unwrap_or_else(|p| p.into_inner());
        trust.revoked_at_run_time.insert(id);
        trust.keyring.revoke(id);
    }

    /// Replaces the keyring (for example after the keyring file changed). Revocations made
    /// with [`Opener::revoke`] stay in force; what the key directory said is kept apart and
    /// is not touched.
    pub fn set_keyring(&self, keyring: Keyring) {
        let mut trust = self.trust.write().unwrap_or_else(|p| p.into_inner());
        let again: Vec<KeyId> = trust.revoked_at_run_time.iter().copied().collect();
        trust.keyring = keyring;
        for id in again {
            trust.keyring.revoke(id);
        }
    }

    /// Counters of the work done so far.
    pub fn stats(&self) -> OpenerStats {
        let sum = |f: fn(&Counters) -> &AtomicU64| -> u64 {
            self.counters
                .iter()
                .map(|c| f(c).load(Ordering::Relaxed))
                .sum()
        };
        OpenerStats {
            sessions_established: sum(|c| &c.sessions_established),
            session_cache_hits: sum(|c| &c.session_cache_hits),
            message_signatures_checked: sum(|c| &c.message_signatures_checked),
            messages_opened: sum(|c| &c.messages_opened),
        }
    }

    /// The counters of the shard a session reference (or header hash) falls in.
    fn counters_for(&self, first_byte: u8) -> &Counters {
        &self.counters[usize::from(first_byte) % SHARDS]
    }

    /// How many unwrapped sessions the cache holds.
    pub fn cached_sessions(&self) -> usize {
        self.cache.len()
    }

    /// The public identity of a trusted sender, from the keyring or, for a sender the
    /// keyring does not hold, from the key directory's latest answer: what a service seals
    /// its reply to, given the request's [`Opened::sender`] (spec/rpc.md §4). `None` for a
    /// key that is not trusted or is revoked.
    pub fn trusted_identity(&self, id: &KeyId) -> Option<PublicIdentity> {
        let trust = self.trust.read().unwrap_or_else(|p| p.into_inner());
        if trust.is_revoked(id) {
            return None;
        }
        if let Some(k) = trust.keyring.get(id) {
            return Some(k.key().clone());
        }
        match trust.learned.get(id) {
            Some(Learned::Trusted { key, .. }) => Some(key.key().clone()),
            _ => None,
        }
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }
}

impl Trust {
    /// Revoked by the keyring, at run time, or by the key directory.
    fn is_revoked(&self, id: &KeyId) -> bool {
        (self.keyring.is_revoked(id) || matches!(self.learned.get(id), Some(Learned::Revoked)))
            && !mutant::is(Mutant::NoRevocationCheck)
    }

    /// Drops what the directory said about a key, unless it was a revocation.
    fn forget(&mut self, id: &KeyId) {
        if let Some(Learned::Trusted { .. }) = self.learned.get(id) {
            self.learned.remove(id);
        }
    }
}

fn revoked() -> Error {
    err(ErrorKind::Revoked, "the session is signed by a revoked key")
}

fn untrusted() -> Error {
    err(
        ErrorKind::UntrustedSender,
        "the session's sender is not trusted",
    )
}

/// spec/keyring.md §2 rule 4: a sender trusted with `require=pq` is accepted only in a
/// post-quantum suite.
fn check_require_pq(k: &TrustedKey, suite: Suite) -> Result<(), Error> {
    if k.requires_post_quantum() && !suite.is_post_quantum() && !mutant::is(Mutant::IgnoreRequirePq)
    {
        return Err(err(
            ErrorKind::SuiteNotAllowed,
            "this sender is trusted for post-quantum sessions only (require=pq), and the \
             session's suite is classical",
        ));
    }
    Ok(())
}

/// spec/keyring.md §2 rule 3: the key's validity covers the message's timestamp.
fn key_valid_at(k: &TrustedKey, timestamp: u64) -> Result<Arc<str>, Error> {
    let (from, until) = k.validity();
    if from.is_some_and(|t| timestamp < t) && !mutant::is(Mutant::NoKeyValidityCheck) {
        return Err(err(
            ErrorKind::NotYetValid,
            "the message is dated before the sender key's validity starts",
        ));
    }
    if until.is_some_and(|t| timestamp >= t) && !mutant::is(Mutant::NoKeyValidityCheck) {
        return Err(err(
            ErrorKind::Expired,
            "the message is dated after the sender key's validity ended",
        ));
    }
    Ok(k.name_arc())
}

/// The receiver's clock, in unix seconds.
fn now() -> Result<u64, Error> {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| {
            err(
                ErrorKind::NotYetValid,
                "the receiver's clock is before 1970",
            )
        })
}

/// Spec §8 step 7: the session's lifetime and the message's timestamp against our clock.
/// `max_age` (at least `skew`) is how far in the past they may lie (spec/replay.md §2.2).
fn check_time(h: &Header, ts: u64, now: u64, skew: u64, max_age: u64) -> Result<(), Error> {
    check_time_strict(h, ts, now, skew, max_age).or_else(|e| {
        if mutant::is(Mutant::NoTimeCheck) {
            Ok(())
        } else {
            Err(e)
        }
    })
}

fn check_time_strict(h: &Header, ts: u64, now: u64, skew: u64, max_age: u64) -> Result<(), Error> {
    if now.saturating_add(skew) < h.not_before {
        return Err(err(ErrorKind::NotYetValid, "the session is not valid yet"));
    }
    if now > h.expires.saturating_add(max_age) {
        return Err(err(ErrorKind::Expired, "the session has expired"));
    }
    if ts > now.saturating_add(skew)
        || now > ts.saturating_add(max_age)
        || (mutant::is(Mutant::SkewInclusive) && ts.abs_diff(now) == skew)
    {
        return Err(err(
            ErrorKind::ClockSkew,
            "the message's timestamp is too far from our clock",
        ));
    }
    if ts < h.not_before {
        return Err(err(
            ErrorKind::NotYetValid,
            "the message is dated before its session starts",
        ));
    }
    if ts >= h.expires {
        return Err(err(
            ErrorKind::Expired,
            "the message is dated after its session ends",
        ));
    }
    Ok(())
}

/// Spec §8 step 7: the receiver's caps on a session's declared lifetime and message count.
fn check_session_limits(h: &Header, p: &Policy) -> Result<(), Error> {
    if h.expires.saturating_sub(h.not_before) > p.max_session_lifetime {
        return Err(err(
            ErrorKind::SessionLimit,
            "the session's lifetime is longer than this receiver accepts",
        ));
    }
    if h.max_messages > p.max_session_messages {
        return Err(err(
            ErrorKind::SessionLimit,
            "the session allows more messages than this receiver accepts",
        ));
    }
    Ok(())
}

/// Strict order (spec/rpc.md §8): `seq` must be the expected `next`.
fn check_order(next: u64, seq: u64) -> Result<(), Error> {
    match seq.cmp(&next) {
        std::cmp::Ordering::Equal => Ok(()),
        std::cmp::Ordering::Less => Err(err(
            ErrorKind::Replayed,
            "strict order: this sequence number was accepted before",
        )),
        std::cmp::Ordering::Greater => Err(err(
            ErrorKind::OutOfOrder,
            "strict order: a message before this one is missing (dropped or reordered)",
        )),
    }
}

fn bad_aead_tag() -> Error {
    err(
        ErrorKind::BadAuthenticator,
        "the payload's AEAD tag does not verify",
    )
}

fn bad_signature() -> Error {
    err(
        ErrorKind::BadAuthenticator,
        "the message signature does not verify",
    )
}

fn replay_error(e: ReplayError) -> Error {
    match e {
        ReplayError::Replayed => err(ErrorKind::Replayed, "this message was accepted before"),
        ReplayError::OutsideWindow => err(
            ErrorKind::Replayed,
            "the sequence number is older than the replay window: it may have been accepted before",
        ),
        // spec/replay.md §8: "cannot prove it is new" is about the store, not the message.
        ReplayError::BelowWatermark => err(
            ErrorKind::ReplayUnavailable,
            "the replay store cannot prove this message is new: it is dated at or before the \
             store's watermark and the store has no record of its session. The watermark is \
             set when the store lost its state or cannot trust it (a restart with a start \
             watermark, a Redis restart or FLUSHALL, a Redis key prefix used for the first \
             time, a replay state file restored from a copy, a clock that stepped back) or \
             when a full store evicted live entries; it is the time of that event plus the \
             loss margin (300 s by default). Newer messages are accepted: the sender can \
             seal this one again. A Redis key prefix that has never been used is declared \
             new with create_marker_if_absent (rpcseal open --replay-redis-new-prefix)",
        ),
        ReplayError::Expired => err(
            ErrorKind::Expired,
            "the session has expired for replay purposes",
        ),
        other => Error::new(ErrorKind::ReplayUnavailable, format!("{other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Recipient, Sealer, SealerConfig};

    /// The suite byte is inside the bytes the authenticator covers: relabelling a message
    /// with another suite id breaks the authenticator, even if a receiver knew that id and
    /// skipped the suite-equality check. (Step 2 and step 5 reject it earlier.)
    #[test]
    fn the_suite_cannot_be_changed_without_breaking_the_authenticator() {
        let alice = Identity::generate();
        let bob = Identity::generate();
        for mode in [Mode::Signed, Mode::Mac, Mode::SignOnly] {
            let mut s = Sealer::new(
                &alice,
                &[Recipient::from(bob.public())],
                SealerConfig::new(mode),
            )
            .unwrap();
            let env = s
                .seal_deterministic(
                    b"x",
                    &Metadata::new(),
                    1_800_000_000,
                    &mut rand_core::UnwrapErr(getrandom::SysRng),
                )
                .unwrap();
            let o = Opener::builder()
                .identity(&bob)
                .trust(alice.public())
                .build()
                .unwrap();
            let decoded = Envelope::decode(&env, &o.policy.limits).unwrap();
            let (session, _, _, _) = o.resolve_session(&decoded, &[]).unwrap();
            let mh = envelope::message_hash(&session.header_hash, decoded.covered);
            o.check_authenticator(&session, &mh, decoded.authenticator)
                .unwrap();
            assert_eq!(env[2], 0x01, "suite 1 sits at byte 2");
            for other in [0x00u8, 0x02, 0x7f] {
                let mut relabelled = decoded.covered.to_vec();
                relabelled[2] = other;
                let mh = envelope::message_hash(&session.header_hash, &relabelled);
                let e = o
                    .check_authenticator(&session, &mh, decoded.authenticator)
                    .unwrap_err();
                assert_eq!(e.kind(), ErrorKind::BadAuthenticator, "{mode}");
            }
        }
    }
}
