//! The sender's side: [`Sealer`] (spec/envelope-v3.md §6 and §7.2).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ed25519_dalek::SigningKey;

use getrandom::SysRng;
use rand_core::{CryptoRng, UnwrapErr};

use zeroize::Zeroizing;

use crate::aead::{self, PayloadCipher};
use crate::envelope::{self, Metadata, NONCE_LEN, SIG_LEN};
use crate::error::Misuse;
use crate::keys::{Identity, Recipient};
use crate::parallel;
use crate::session::{self, Lifetime, SealerSession};
use crate::suite::{Mode, Suite};
use crate::wire;

/// When an envelope carries its session block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inline {
    /// Every envelope carries the block: self-contained, fits brokers that may deliver any
    /// message to any replica. Costs the block's size on every message.
    Always,
    /// Only the first envelope of each session carries it; later ones refer to it. For
    /// ordered, reliable channels to one receiver.
    FirstMessage,
    /// No envelope carries it; the caller sends [`Sealer::session_block`] out of band.
    Never,
}

// Whatever the policy, [`Sealer::inline_next`] makes the next envelope carry the block, and
// [`Sealer::session_block_for`] answers a receiver's request for a block (spec/rpc.md §6).

/// Limits on metadata, shared by sealers and openers (spec §7.1).
pub(crate) const DEFAULT_MAX_METADATA_ENTRIES: usize = 64;
pub(crate) const DEFAULT_MAX_METADATA_BYTES: usize = 8 * 1024;
/// Default largest payload: 16 MiB.
pub const DEFAULT_MAX_PAYLOAD: usize = 16 * 1024 * 1024;

/// The largest payload an envelope can carry: the body (payload plus the 16-byte AEAD tag)
/// is a byte string with a 32-bit length (spec/envelope-v3.md §3).
pub const MAX_WIRE_PAYLOAD: u64 = u32::MAX as u64 - aead::TAG_LEN as u64;
/// Default largest recipient list.
pub const DEFAULT_MAX_RECIPIENTS: usize = 4096;

/// How a [`Sealer`] makes sessions. Build with [`SealerConfig::new`] and the setters.
#[derive(Clone, Debug)]
pub struct SealerConfig {
    mode: Mode,
    lifetime: Duration,
    max_messages: u64,
    max_bytes: u64,
    max_payload: usize,
    inline: Inline,
    allow_mac_to_group: bool,
    parallel_hash_from: Option<usize>,
    require_pq: bool,
}

impl Default for SealerConfig {
    fn default() -> Self {
        SealerConfig::new(Mode::Signed)
    }
}

impl SealerConfig {
    /// Defaults: a one-hour session, 2^32 messages, 2^40 payload bytes, 16 MiB payloads,
    /// the block inline on every message.
    pub fn new(mode: Mode) -> SealerConfig {
        SealerConfig {
            mode,
            lifetime: Duration::from_secs(3600),
            max_messages: 1 << 32,
            max_bytes: 1 << 40,
            max_payload: DEFAULT_MAX_PAYLOAD,
            inline: Inline::Always,
            allow_mac_to_group: false,
            parallel_hash_from: None,
            require_pq: false,
        }
    }

    /// Always seal in the post-quantum suite 2 (spec §5.6): a recipient list with an
    /// identity or group key that has no X-Wing key is refused
    /// ([`Misuse::NotPostQuantum`]), and a list of symmetric keys alone uses suite 2 too.
    /// Without this, a sealer uses suite 2 exactly when every identity and group key it
    /// seals to has an X-Wing key (and there is at least one).
    pub fn require_post_quantum(mut self) -> Self {
        self.require_pq = true;
        self
    }

    /// True when [`SealerConfig::require_post_quantum`] is set.
    pub fn requires_post_quantum(&self) -> bool {
        self.require_pq
    }

    /// How long a session lives (whole seconds, at least one).
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// Messages per session before the sealer rotates to a new one. At most 2^48 (spec §6:
    /// ChaCha20-Poly1305's usage limits).
    pub fn max_messages(mut self, n: u64) -> Self {
        self.max_messages = n;
        self
    }

    /// Payload bytes per session before the sealer rotates.
    pub fn max_bytes(mut self, n: u64) -> Self {
        self.max_bytes = n;
        self
    }

    /// The largest payload [`Sealer::seal`] accepts. Values above [`MAX_WIRE_PAYLOAD`]
    /// (what a body's 32-bit length can carry) act as [`MAX_WIRE_PAYLOAD`].
    pub fn max_payload(mut self, n: usize) -> Self {
        self.max_payload = n;
        self
    }

    /// The payload size [`Sealer::seal`] checks against: `max_payload` and the session's
    /// byte limit, never more than the wire can carry (a larger body would not fit its
    /// 32-bit length and would be written corrupt).
    fn payload_limit(&self) -> u64 {
        (self.max_payload as u64)
            .min(self.max_bytes)
            .min(MAX_WIRE_PAYLOAD)
    }

    /// When the session block travels inside envelopes.
    pub fn inline(mut self, inline: Inline) -> Self {
        self.inline = inline;
        self
    }

    /// Allows MAC mode to a group key or a symmetric key (spec §6.4). Every holder of such
    /// a key (any member of the group; any service a symmetric key was given to, and the
    /// key server that issued it) can then forge messages that the other holders accept as
    /// from this sender: use only when every holder is as trusted as the sender itself.
    pub fn dangerous_allow_mac_to_group(mut self) -> Self {
        self.allow_mac_to_group = true;
        self
    }

    /// Hashes payloads of at least `min_payload` bytes on a second thread while the
    /// caller's thread encrypts them. Default: `None`, never; the sealer then starts no
    /// threads.
    ///
    /// Sealing a message in signed or MAC mode is ChaCha20-Poly1305 over the payload and a
    /// BLAKE3 pass over every byte before the authenticator, ciphertext included (spec
    /// §7.2). One after the other, a 1 MiB payload costs about a quarter more than the AEAD
    /// alone. With this set, [`Sealer::seal`] and [`Sealer::seal_into`] start one scoped
    /// thread ([`std::thread::scope`]) for each such message: the caller's thread runs the
    /// ChaCha20 keystream over the payload in pieces of 32 KiB and hands each finished piece
    /// of ciphertext to that thread, which runs both hashes over it, Poly1305 (the AEAD's
    /// authenticator) and BLAKE3, while the next piece is encrypted; the thread has finished
    /// before the call returns. While it waits for the next piece, the thread polls for up
    /// to 100 us before it sleeps (a wake-up per piece would cost more than hashing it). On
    /// a machine with a second core free, a large seal then costs about the ChaCha20 pass
    /// alone, less than the AEAD alone on one core. The envelope is byte for byte the same
    /// as without this setting. If the thread cannot be spawned, or does not return its
    /// results, the caller's thread computes them: no error, no panic.
    ///
    /// Starting the thread costs tens of microseconds, and a second core reading the
    /// output slows the next writes into the same buffer, so this pays only for large
    /// payloads: README.perf.md has the measurements (on the machine measured there, from
    /// about 256 to 384 KiB on; the `rpcseal` command-line tool uses 512 KiB). Sign-only
    /// payloads are not encrypted and are always hashed on the caller's thread.
    pub fn parallel_hash_from(mut self, min_payload: Option<usize>) -> Self {
        self.parallel_hash_from = min_payload;
        self
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }
}

/// The largest message limit a session may declare (spec §6).
pub const MAX_MESSAGES_LIMIT: u64 = 1 << 48;

struct Active {
    s: SealerSession,
    list_key: Option<Zeroizing<[u8; 32]>>,
    cipher: Option<PayloadCipher>,
    session_ref: [u8; 16],
    /// The session's per-message signing key (signed and sign-only modes), shared with
    /// the [`Unsigned`] envelopes still to be signed outside the sealer.
    signer: Option<Arc<SigningKey>>,
    next_seq: u64,
    bytes: u64,
}

/// An envelope sealed but for its per-message signature: everything that depends on the
/// sealer's state (the session, the sequence number, the nonce, the encryption, the
/// message hash) is done, and [`Unsigned::finish`] appends the Ed25519 signature, which
/// needs nothing but the session's key. A sealer shared behind a lock seals with
/// [`Sealer::seal_unsigned`] under the lock and finishes after releasing it, so that
/// concurrent callers sign in parallel. The finished envelope is byte for byte what
/// [`Sealer::seal`] would have made. In MAC mode the envelope is already complete and
/// `finish` only hands it out.
#[must_use = "the envelope is complete only after finish"]
pub struct Unsigned {
    out: Vec<u8>,
    message_hash: [u8; 32],
    signer: Option<Arc<SigningKey>>,
}

impl Unsigned {
    /// The envelope's message hash (spec/envelope-v3.md §7.2), known before the signature.
    pub fn message_hash(&self) -> [u8; 32] {
        self.message_hash
    }

    /// Signs (signed and sign-only modes) and returns the envelope.
    pub fn finish(mut self) -> Vec<u8> {
        if let Some(key) = &self.signer {
            let sig = crate::sign::sign(key, &envelope::signature_input(&self.message_hash));
            self.out.extend_from_slice(&sig);
        }
        self.out
    }
}

impl std::fmt::Debug for Unsigned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unsigned")
            .field("len", &self.out.len())
            .field("signed", &self.signer.is_some())
            .finish_non_exhaustive()
    }
}

/// Seals payloads from one sender to a fixed set of recipients. Creates a session (one
/// signature and one HPKE wrap per recipient) and then seals each message with symmetric
/// work only, plus one Ed25519 signature in signed and sign-only modes. Rotates to a new
/// session by itself when a limit is reached; never reuses an AEAD nonce.
pub struct Sealer {
    identity: Identity,
    recipients: Vec<Recipient>,
    config: SealerConfig,
    active: Option<Active>,
    /// The reference and block of the session before the current one, so a request for its
    /// block (spec/rpc.md §6) can still be answered just after a rotation.
    previous: Option<([u8; 16], Vec<u8>)>,
    /// The next envelope carries the block inline whatever the policy.
    force_inline: bool,
    sessions_created: u64,
    /// The reply session this client last opened a reply in, shared with the
    /// [`crate::rpc::PendingReply`]s it hands out (spec/rpc.md §5, §6.3).
    pub(crate) reply_ack: crate::rpc::ReplyAck,
}

impl Sealer {
    /// A sealer for `identity` to `recipients`.
    pub fn new(
        identity: &Identity,
        recipients: &[Recipient],
        config: SealerConfig,
    ) -> Result<Sealer, Misuse> {
        Self::check_recipients(recipients, &config)?;
        if config.lifetime.as_secs() == 0 {
            return Err(Misuse::InvalidConfig(
                "the session lifetime must be at least one second",
            ));
        }
        use crate::mutant::{is, Mutant};
        if (config.max_messages == 0 && !is(Mutant::SealerAllowsZeroMessages))
            || (config.max_messages > MAX_MESSAGES_LIMIT && !is(Mutant::SealerNoMessageCap))
            || (config.max_messages == MAX_MESSAGES_LIMIT && is(Mutant::SealerMessageCapExclusive))
        {
            return Err(Misuse::InvalidConfig(
                "max_messages must be between 1 and 2^48",
            ));
        }
        if config.max_bytes == 0 {
            return Err(Misuse::InvalidConfig("max_bytes must be at least 1"));
        }
        Ok(Sealer {
            identity: identity.clone(),
            recipients: recipients.to_vec(),
            config,
            active: None,
            previous: None,
            force_inline: false,
            sessions_created: 0,
            reply_ack: crate::rpc::ReplyAck::default(),
        })
    }

    fn check_recipients(recipients: &[Recipient], config: &SealerConfig) -> Result<(), Misuse> {
        use crate::mutant::{is, Mutant};
        if recipients.is_empty() && !is(Mutant::SealerAllowsNoRecipients) {
            return Err(Misuse::NoRecipients);
        }
        if recipients.len() > DEFAULT_MAX_RECIPIENTS {
            return Err(Misuse::TooManyRecipients {
                count: recipients.len(),
                limit: DEFAULT_MAX_RECIPIENTS,
            });
        }
        let suite = Self::suite_for(recipients, config)?;
        if suite.is_post_quantum() && recipients.len() > session::MAX_PQ_RECIPIENTS {
            return Err(Misuse::TooManyRecipients {
                count: recipients.len(),
                limit: session::MAX_PQ_RECIPIENTS,
            });
        }
        let mut ids: Vec<_> = recipients.iter().map(|r| r.key_id_in(suite)).collect();
        ids.sort_unstable();
        let duplicate = if is(Mutant::SealerDuplicatesByKey) {
            (0..recipients.len()).any(|i| recipients[..i].contains(&recipients[i]))
        } else {
            ids.windows(2).any(|w| w[0] == w[1])
        };
        if duplicate && !is(Mutant::SealerAllowsDuplicates) {
            return Err(Misuse::DuplicateRecipient);
        }
        if (config.mode == Mode::Mac || is(Mutant::SealerRefusesGroupsInEveryMode))
            && (!config.allow_mac_to_group || is(Mutant::SealerIgnoresMacOptIn))
            && !is(Mutant::SealerAllowsMacToGroup)
            && recipients.iter().any(Recipient::is_shared)
        {
            return Err(Misuse::MacToGroup);
        }
        Ok(())
    }

    /// The suite of a session to `recipients` (spec §5.6): suite 2 when every identity and
    /// group key has an X-Wing key and there is at least one (or when the configuration
    /// requires it), else suite 1.
    fn suite_for(recipients: &[Recipient], config: &SealerConfig) -> Result<Suite, Misuse> {
        let all_pq = recipients.iter().all(Recipient::is_post_quantum);
        if config.require_pq {
            return if all_pq {
                Ok(Suite::XWING_CHACHA20POLY1305_BLAKE3_ED25519)
            } else {
                Err(Misuse::NotPostQuantum)
            };
        }
        if all_pq && recipients.iter().any(Recipient::is_asymmetric) {
            Ok(Suite::XWING_CHACHA20POLY1305_BLAKE3_ED25519)
        } else {
            Ok(Suite::X25519_CHACHA20POLY1305_BLAKE3_ED25519)
        }
    }

    /// The suite the sealer's sessions use now (spec §5.6): the post-quantum suite 2 when
    /// every identity and group key it seals to has an X-Wing key.
    pub fn suite(&self) -> Suite {
        Self::suite_for(&self.recipients, &self.config)
            .unwrap_or(Suite::X25519_CHACHA20POLY1305_BLAKE3_ED25519)
    }

    /// Seals `payload` with `metadata` into a new envelope.
    pub fn seal(&mut self, payload: &[u8], metadata: &Metadata) -> Result<Vec<u8>, Misuse> {
        let mut out = Vec::new();
        self.seal_into(payload, metadata, &mut out)?;
        Ok(out)
    }

    /// Seals into `out` (appended), so a caller can reuse one buffer for every message.
    pub fn seal_into(
        &mut self,
        payload: &[u8],
        metadata: &Metadata,
        out: &mut Vec<u8>,
    ) -> Result<(), Misuse> {
        self.seal_into_hashed(payload, metadata, out).map(|_| ())
    }

    /// [`Sealer::seal_into`], returning the envelope's message hash (spec/envelope-v3.md
    /// §7.2), which [`crate::rpc`] uses to bind replies to this request.
    pub(crate) fn seal_into_hashed(
        &mut self,
        payload: &[u8],
        metadata: &Metadata,
        out: &mut Vec<u8>,
    ) -> Result<[u8; 32], Misuse> {
        let now = unix_now()?;
        self.seal_at(payload, metadata, out, now, &mut UnwrapErr(SysRng))
    }

    /// Seals `payload` with `metadata` up to the per-message signature, which
    /// [`Unsigned::finish`] adds: for a sealer shared behind a lock, so that the signature
    /// (the bulk of a small message's cost in signed mode) runs after the lock is released
    /// and concurrent callers sign in parallel. Same checks, session handling and bytes as
    /// [`Sealer::seal`].
    pub fn seal_unsigned(
        &mut self,
        payload: &[u8],
        metadata: &Metadata,
    ) -> Result<Unsigned, Misuse> {
        self.seal_unsigned_with(payload, metadata, None)
    }

    /// [`Sealer::seal_unsigned`] with `metadata` plus the entry `extra` (a key `metadata`
    /// does not hold), encoded as the map with it inserted would be, without the copy.
    pub(crate) fn seal_unsigned_with(
        &mut self,
        payload: &[u8],
        metadata: &Metadata,
        extra: Option<(&str, &str)>,
    ) -> Result<Unsigned, Misuse> {
        let now = unix_now()?;
        let mut out = Vec::new();
        let (message_hash, signer) = self.seal_parts(
            payload,
            metadata,
            extra,
            &mut out,
            now,
            &mut UnwrapErr(SysRng),
        )?;
        Ok(Unsigned {
            out,
            message_hash,
            signer,
        })
    }

    /// Makes the next envelope carry the session block inline, whatever the [`Inline`]
    /// policy: for a sender that learnt that a receiver lacks the session (a restarted
    /// service, a queue-group replica that has not seen it yet; spec/rpc.md §6) and cannot
    /// hand it the block beside the envelope. Later envelopes follow the policy again.
    pub fn inline_next(&mut self) {
        self.force_inline = true;
    }

    /// The block of the session whose reference is `session_ref`, if it is the current
    /// session or the one before it (a rotation may have happened since the envelope was
    /// sealed). This is what a sender sends, beside the unchanged envelope, to a receiver
    /// that rejected the envelope as [`crate::ErrorKind::UnknownSession`] (spec/rpc.md §6).
    /// `None` for any other reference: the sender never reveals blocks it does not hold,
    /// and the caller then re-seals the payload instead.
    pub fn session_block_for(&self, session_ref: &[u8; 16]) -> Option<&[u8]> {
        if let Some(a) = &self.active {
            if &a.session_ref == session_ref {
                return Some(&a.s.block);
            }
        }
        match &self.previous {
            Some((r, block)) if r == session_ref => Some(block),
            _ => None,
        }
    }

    /// The reference of the current session (spec/envelope-v3.md §5.1), if there is one.
    pub fn session_ref(&self) -> Option<[u8; 16]> {
        self.active.as_ref().map(|a| a.session_ref)
    }

    /// The block of the current session (the latest one sealed with), creating a session if
    /// there is none yet. For
    /// [`Inline::Never`]: deliver this to receivers before the envelopes that need it.
    pub fn session_block(&mut self) -> Result<&[u8], Misuse> {
        if self.active.is_none() {
            let now = unix_now()?;
            self.ensure_session(0, now, &mut UnwrapErr(SysRng))?;
        }
        Ok(&self.active.as_ref().expect("ensured").s.block)
    }

    /// Gives the current session to more recipients (a new member joins a group) without
    /// re-encrypting anything: a new block is signed, the existing entries stay as they are,
    /// and every message already sealed in the session opens for the new recipients once
    /// they have the new block ([`Sealer::session_block`]; later envelopes carry it inline
    /// as configured). The new recipients also join every later session. Signed and
    /// sign-only modes only: MAC-mode tags are per recipient.
    pub fn add_recipients(&mut self, more: &[Recipient]) -> Result<(), Misuse> {
        let mut all = self.recipients.clone();
        all.extend_from_slice(more);
        Self::check_recipients(&all, &self.config)?;
        if self.config.mode == Mode::Mac {
            return Err(Misuse::ReaddressMac);
        }
        if let Some(a) = &mut self.active {
            // A post-quantum session takes only recipients it can reach with X-Wing (spec
            // §5.4); otherwise the next message starts a classical session for everyone.
            if a.s.header.suite.is_post_quantum() && !more.iter().all(Recipient::is_post_quantum) {
                self.recipients = all;
                self.rotate();
                return Ok(());
            }
            session::readdress(&self.identity, &mut a.s, more, &mut UnwrapErr(SysRng))?;
        }
        self.recipients = all;
        Ok(())
    }

    /// Removes recipients. A removed member still holds the current session's keys, so
    /// this also ends the session: the next message starts a new one it cannot read.
    ///
    /// A recipient is named by either of its key ids: the one its entry carries in a suite-1
    /// session ([`Recipient::key_id`]) or, for a post-quantum recipient, its X-Wing key's id.
    /// An id that names no recipient is [`Misuse::UnknownRecipient`] and nothing changes: a
    /// typo must not leave a member the caller meant to remove able to read what follows.
    pub fn remove_recipients(&mut self, ids: &[crate::KeyId]) -> Result<(), Misuse> {
        let names = |r: &Recipient, id: &crate::KeyId| {
            r.key_id() == *id
                || r.key_id_in(crate::Suite::XWING_CHACHA20POLY1305_BLAKE3_ED25519) == *id
        };
        if let Some(unknown) = ids
            .iter()
            .find(|id| !self.recipients.iter().any(|r| names(r, id)))
        {
            return Err(Misuse::UnknownRecipient(*unknown));
        }
        let rest: Vec<Recipient> = self
            .recipients
            .iter()
            .filter(|r| !ids.iter().any(|id| names(r, id)))
            .cloned()
            .collect();
        Self::check_recipients(&rest, &self.config)?;
        self.recipients = rest;
        self.rotate();
        Ok(())
    }

    /// Ends the current session; the next message starts a new one.
    pub fn rotate(&mut self) {
        if let Some(a) = self.active.take() {
            self.previous = Some((a.session_ref, a.s.block));
        }
    }

    /// How many sessions this sealer has created (each costs one signature and one HPKE
    /// seal per recipient).
    pub fn sessions_created(&self) -> u64 {
        self.sessions_created
    }

    /// The sealer's configuration.
    pub fn config(&self) -> &SealerConfig {
        &self.config
    }

    /// The recipients every session of this sealer is addressed to.
    pub fn recipients(&self) -> &[Recipient] {
        &self.recipients
    }

    /// The sender id (spec/envelope-v3.md §2.3) of the identity this sealer seals as.
    pub fn sender(&self) -> crate::KeyId {
        self.identity.key_id()
    }

    /// Deterministic sealing for the test vectors: a caller-chosen clock and RNG.
    #[doc(hidden)]
    pub fn seal_deterministic<R: CryptoRng>(
        &mut self,
        payload: &[u8],
        metadata: &Metadata,
        now: u64,
        rng: &mut R,
    ) -> Result<Vec<u8>, Misuse> {
        let mut out = Vec::new();
        self.seal_at(payload, metadata, &mut out, now, rng)?;
        Ok(out)
    }

    /// The limits of spec §7.1 on `metadata` plus `extra` (one more entry).
    fn check_metadata(metadata: &Metadata, extra: Option<(&str, &str)>) -> Result<(), Misuse> {
        if metadata.len() + usize::from(extra.is_some()) > DEFAULT_MAX_METADATA_ENTRIES {
            return Err(Misuse::InvalidMetadata("more than 64 entries"));
        }
        let mut total = 0usize;
        let all = metadata.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        for (k, v) in all.chain(extra) {
            if k.is_empty() {
                return Err(Misuse::InvalidMetadata("empty key"));
            }
            total += k.len() + v.len();
        }
        if total > DEFAULT_MAX_METADATA_BYTES {
            return Err(Misuse::InvalidMetadata(
                "more than 8192 bytes of keys and values",
            ));
        }
        Ok(())
    }

    /// Makes sure a session can take a payload of `len` bytes at time `now`, rotating if
    /// any limit would be crossed (spec §6).
    fn ensure_session<R: CryptoRng>(
        &mut self,
        len: u64,
        now: u64,
        rng: &mut R,
    ) -> Result<(), Misuse> {
        let usable = self.active.as_ref().is_some_and(|a| {
            let h = &a.s.header;
            a.next_seq < h.max_messages
                && a.bytes.saturating_add(len) <= h.max_bytes
                && now >= h.not_before
                && now < h.expires
        });
        if usable {
            return Ok(());
        }
        let lifetime = Lifetime {
            not_before: now,
            expires: now.saturating_add(self.config.lifetime.as_secs()),
            max_messages: self.config.max_messages,
            max_bytes: self.config.max_bytes,
        };
        let s = session::create(
            &self.identity,
            &self.recipients,
            Self::suite_for(&self.recipients, &self.config)?,
            self.config.mode,
            &lifetime,
            rng,
        )?;
        self.sessions_created += 1;
        self.rotate();
        let mut s = s;
        let signer = s.signing.take().map(Arc::new);
        let cipher = s.ek.as_ref().map(|k| PayloadCipher::new(k));
        let list_key = (s.header.mode == Mode::Mac)
            .then(|| s.ek.as_ref().map(|k| envelope::list_key(k)))
            .flatten();
        self.active = Some(Active {
            list_key,
            session_ref: session::session_ref(&s.header_hash),
            s,
            cipher,
            signer,
            next_seq: 0,
            bytes: 0,
        });
        Ok(())
    }

    pub(crate) fn seal_at<R: CryptoRng>(
        &mut self,
        payload: &[u8],
        metadata: &Metadata,
        out: &mut Vec<u8>,
        now: u64,
        rng: &mut R,
    ) -> Result<[u8; 32], Misuse> {
        let (mh, signer) = self.seal_parts(payload, metadata, None, out, now, rng)?;
        if let Some(key) = signer {
            out.extend_from_slice(&crate::sign::sign(&key, &envelope::signature_input(&mh)));
        }
        Ok(mh)
    }

    /// Everything but the per-message signature: appends the envelope up to the
    /// signature's bytes (a MAC-mode envelope whole) and returns the message hash and, in
    /// the signing modes, the key the signature is made with. The state changes (sequence
    /// number, byte count, the one-off inline flag) are made here, so the signature can run
    /// anywhere after.
    fn seal_parts<R: CryptoRng>(
        &mut self,
        payload: &[u8],
        metadata: &Metadata,
        extra: Option<(&str, &str)>,
        out: &mut Vec<u8>,
        now: u64,
        rng: &mut R,
    ) -> Result<([u8; 32], Option<Arc<SigningKey>>), Misuse> {
        let limit = self.config.payload_limit();
        if (payload.len() as u64 > limit
            && !crate::mutant::is(crate::mutant::Mutant::SealerNoPayloadCheck))
            || (payload.len() as u64 == limit
                && crate::mutant::is(crate::mutant::Mutant::SealerPayloadLimitExclusive))
        {
            return Err(Misuse::PayloadTooLarge {
                size: payload.len(),
                limit,
            });
        }
        Self::check_metadata(metadata, extra)?;
        self.ensure_session(payload.len() as u64, now, rng)?;
        let inline = self.config.inline;
        let a = self.active.as_mut().expect("ensured");
        let seq = a.next_seq;
        let carry_block = self.force_inline
            || match inline {
                Inline::Always => true,
                Inline::FirstMessage => seq == 0,
                Inline::Never => false,
            };
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let mode = a.s.header.mode;
        let body_len = payload.len()
            + if mode.encrypts() {
                envelope::AEAD_TAG_LEN
            } else {
                0
            };
        let start = out.len();
        let auth_len = if mode.signs() {
            SIG_LEN
        } else {
            envelope::mac_list_len(a.s.mac_keys.len())
        };
        out.reserve(96 + body_len + auth_len + if carry_block { a.s.block.len() + 5 } else { 0 });
        envelope::put_prefix(
            out,
            crate::session::VERSION,
            u64::from(a.s.header.suite.id()),
            &a.session_ref,
            carry_block.then_some(&a.s.block[..]),
            seq,
            now,
            &nonce,
            metadata,
            extra,
            body_len,
        );
        let body_start = out.len();
        let header_hash = &a.s.header_hash;
        let mh = match &a.cipher {
            None => {
                out.extend_from_slice(payload);
                envelope::message_hash(header_hash, &out[start..])
            }
            Some(cipher) => {
                // The ciphertext goes from the payload straight into the envelope.
                let nonce = envelope::aead_nonce(seq);
                out.resize(body_start + payload.len(), 0);
                let (head, body) = out[start..].split_at_mut(body_start - start);
                let parallel = self
                    .config
                    .parallel_hash_from
                    .is_some_and(|min| payload.len() >= min);
                let sealed = if parallel {
                    parallel::seal_body(cipher, &nonce, header_hash, head, payload, body)
                } else {
                    cipher
                        .encrypt_b2b(&nonce, b"", payload, body)
                        .map(|tag| (tag, None))
                };
                let Ok((tag, hashed)) = sealed else {
                    // Only a text longer than one nonce can encrypt gets here.
                    out.truncate(start);
                    return Err(Misuse::PayloadTooLarge {
                        size: payload.len(),
                        limit: aead::MAX_TEXT,
                    });
                };
                out.extend_from_slice(&tag);
                hashed.unwrap_or_else(|| envelope::message_hash(header_hash, &out[start..]))
            }
        };
        wire::put_bin_header(out, auth_len);
        if a.signer.is_none() {
            let ak = a.list_key.as_ref().expect("MAC sessions encrypt");
            envelope::put_mac_list(out, &a.s.mac_keys, ak, &mh);
        }
        a.next_seq += 1;
        a.bytes += payload.len() as u64;
        self.force_inline = false;
        Ok((mh, a.signer.clone()))
    }
}

/// The current time in whole unix seconds.
pub(crate) fn unix_now() -> Result<u64, Misuse> {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| Misuse::Clock)
}

#[cfg(test)]
mod limit_tests {
    use super::*;

    #[test]
    fn payload_limit_never_exceeds_what_the_wire_carries() {
        let huge = SealerConfig::new(Mode::Mac)
            .max_payload(usize::MAX)
            .max_bytes(u64::MAX);
        assert_eq!(huge.payload_limit(), MAX_WIRE_PAYLOAD);
        let small = SealerConfig::new(Mode::Mac).max_payload(1000);
        assert_eq!(small.payload_limit(), 1000);
        let bytes = SealerConfig::new(Mode::Mac).max_bytes(10);
        assert_eq!(bytes.payload_limit(), 10);
    }
}
