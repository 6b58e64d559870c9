//! Request and reply over envelopes (normative text: `spec/rpc.md`): the reserved metadata
//! keys, replies bound to their requests and to the addressed service, and the request a
//! receiver sends for a session block it lacks.
//!
//! Transport-neutral: no runtime, no framework. A NATS client, a tower layer, a tonic codec
//! and the Python driver all build on these few calls.
//!
//! ```
//! use rpcseal::rpc::{self, RequestContext, Responder};
//! use rpcseal::{Identity, Inline, Metadata, Mode, Opener, Recipient, Sealer, SealerConfig};
//!
//! let client = Identity::generate();
//! let service = Identity::generate();
//! let config = SealerConfig::new(Mode::Mac).inline(Inline::FirstMessage);
//!
//! // Client: a sealer to the service, an opener for its replies.
//! let mut requests = Sealer::new(&client, &[Recipient::from(service.public())], config.clone())?;
//! let replies = Opener::builder().identity(&client).trust(service.public()).build()?;
//!
//! // Service: an opener for requests, a responder for replies (one session per client).
//! let incoming = Opener::builder().identity(&service).trust(client.public()).build()?;
//! let responder = Responder::new(&service, config, 1000)?;
//!
//! let mut meta = Metadata::new();
//! meta.insert(rpc::METHOD.into(), "inventory.get".into());
//! meta.insert(rpc::REPLY_TO.into(), "_INBOX.client.1".into());
//! let (request, pending) = requests.seal_request(b"{\"sku\": 42}", &meta, service.public())?;
//!
//! // The service opens the request and replies to the address the client authenticated.
//! let opened = incoming.open(&request)?;
//! let ctx = RequestContext::new(&incoming, &opened)?;
//! assert_eq!(ctx.reply_to(), Some("_INBOX.client.1"));
//! let reply = responder.seal_reply(&ctx, b"{\"count\": 7}", &Metadata::new())?;
//!
//! // The client accepts only the reply to this request, from this service, once.
//! let answer = pending.open_reply(&replies, &reply)?;
//! assert_eq!(answer.payload, b"{\"count\": 7}");
//! assert!(pending.open_reply(&replies, &reply).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use lru::LruCache;

use crate::error::{Error, ErrorKind, Misuse};
use crate::keys::{Identity, KeyId, PublicIdentity, Recipient};
use crate::open::{Opened, Opener};
use crate::seal::{Sealer, SealerConfig, Unsigned};
use crate::Metadata;

// spec/rpc.md §2: the reserved metadata keys.

/// Every metadata key starting with this prefix is reserved for `spec/rpc.md`.
pub const RESERVED_PREFIX: &str = "rpc.";
/// The method (procedure) a request calls. Optional.
pub const METHOD: &str = "rpc.method";
/// A caller-chosen message id, for correlation and logs. Optional; never trusted for
/// security (the binding is [`IN_REPLY_TO`]).
pub const MESSAGE_ID: &str = "rpc.id";
/// The address (NATS subject, AMQP queue, ...) the reply must be sent to, as the client
/// authenticated it. A service replies there, never to the address a broker delivered.
pub const REPLY_TO: &str = "rpc.reply-to";
/// In a reply: the request's message hash (spec/envelope-v3.md §7.2), 64 lowercase hex
/// digits. Its presence is what makes a message a reply; a request never carries it.
pub const IN_REPLY_TO: &str = "rpc.in-reply-to";
/// The payload's media type (`application/msgpack`, `application/json`, ...).
pub const CONTENT_TYPE: &str = "rpc.content-type";
/// In a request: the references of the reply sessions the client holds (those it last
/// opened replies in, at most [`MAX_REPLY_SESSIONS`], newest first), each 32 lowercase hex
/// digits, separated by `,`. Set by [`Sealer::seal_request`], never by the caller; a
/// service sends replies by reference only to a request that names its current reply
/// session (spec/rpc.md §6.3).
pub const REPLY_SESSION: &str = "rpc.reply-session";
/// At most this many session references in [`REPLY_SESSION`] (spec/rpc.md §2): one per
/// replica of a service (a NATS queue group, a pool behind a load balancer).
pub const MAX_REPLY_SESSIONS: usize = 8;

/// Why a reply or a request was refused at the RPC layer (spec/rpc.md §7). Every variant
/// means: do not use the message. The envelope itself may have been fine; these are about
/// what it claims to answer, who sent it, or where the answer goes.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RpcError {
    /// The envelope was rejected by the opener; [`Error::kind`] says why (for example
    /// [`ErrorKind::Replayed`] for a replayed reply, [`ErrorKind::UnknownSession`] when the
    /// reply's session block is missing).
    Rejected(Error),
    /// The reply is from another identity than the service the request was sealed to.
    WrongResponder {
        /// The service the request addressed.
        expected: KeyId,
        /// The sender of the reply.
        found: KeyId,
    },
    /// The message carries no [`IN_REPLY_TO`]: it is not a reply.
    NotAReply,
    /// The reply answers another request (or its [`IN_REPLY_TO`] is not 64 hex digits).
    WrongRequest,
    /// A message carrying [`IN_REPLY_TO`] was offered as a request: a reply must never be
    /// handled as a request.
    NotARequest,
    /// The request's authenticated [`REPLY_TO`] differs from the reply address the broker
    /// delivered (or one of the two is missing).
    ReplyToMismatch,
    /// The request's sender is no longer trusted (revoked since the request was opened):
    /// no reply is sealed to it.
    UntrustedClient,
    /// The request's [`REPLY_SESSION`] is not 1 to [`MAX_REPLY_SESSIONS`] session
    /// references, each 32 lowercase hex digits, separated by `,`.
    InvalidReplySession,
}

impl RpcError {
    /// A stable snake_case name: the `kind` a binding (Python's exceptions, an HTTP
    /// problem type) reports. For [`RpcError::Rejected`] it is the envelope's
    /// [`ErrorKind::as_str`].
    pub fn kind(&self) -> &'static str {
        match self {
            RpcError::Rejected(e) => e.kind().as_str(),
            RpcError::WrongResponder { .. } => "wrong_responder",
            RpcError::NotAReply => "not_a_reply",
            RpcError::WrongRequest => "wrong_request",
            RpcError::NotARequest => "not_a_request",
            RpcError::ReplyToMismatch => "reply_to_mismatch",
            RpcError::UntrustedClient => "untrusted_client",
            RpcError::InvalidReplySession => "invalid_reply_session",
        }
    }

    /// The envelope rejection, when that is what this is.
    pub fn rejection(&self) -> Option<&Error> {
        match self {
            RpcError::Rejected(e) => Some(e),
            _ => None,
        }
    }
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RpcError::Rejected(e) => write!(f, "{e}"),
            RpcError::WrongResponder { expected, found } => write!(
                f,
                "the reply is from {found}, not from the service the request addressed ({expected}) (wrong_responder)"
            ),
            RpcError::NotAReply => f.write_str("the message is not a reply: it names no request (not_a_reply)"),
            RpcError::WrongRequest => f.write_str("the reply answers another request (wrong_request)"),
            RpcError::NotARequest => f.write_str("a reply cannot be handled as a request (not_a_request)"),
            RpcError::ReplyToMismatch => f.write_str(
                "the broker's reply address differs from the one the client authenticated (reply_to_mismatch)",
            ),
            RpcError::UntrustedClient => f.write_str("the request's sender is no longer trusted (untrusted_client)"),
            RpcError::InvalidReplySession => f.write_str(
                "the request's rpc.reply-session is not a list of session references (invalid_reply_session)",
            ),
        }
    }
}

impl std::error::Error for RpcError {}

impl From<Error> for RpcError {
    fn from(e: Error) -> Self {
        RpcError::Rejected(e)
    }
}

/// 32 bytes as 64 lowercase hex digits.
fn hex32(bytes: &[u8; 32]) -> String {
    hex(bytes)
}

/// The value of [`REPLY_SESSION`]: `refs` as hex, separated by `,`.
fn reply_sessions_text(refs: &[[u8; 16]]) -> String {
    let mut s = String::with_capacity(33 * refs.len());
    for (i, r) in refs.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&hex(r));
    }
    s
}

/// The session references of a [`REPLY_SESSION`] value, or `None` if it is malformed.
fn parse_reply_sessions(text: &str) -> Option<ReplySessions> {
    let mut out = ReplySessions::default();
    for part in text.split(',') {
        if out.len == MAX_REPLY_SESSIONS {
            return None;
        }
        out.refs[out.len] = unhex::<16>(part)?;
        out.len += 1;
    }
    Some(out)
}

/// Up to [`MAX_REPLY_SESSIONS`] session references, without allocating.
#[derive(Clone, Copy, Debug, Default)]
struct ReplySessions {
    refs: [[u8; 16]; MAX_REPLY_SESSIONS],
    len: usize,
}

impl ReplySessions {
    fn as_slice(&self) -> &[[u8; 16]] {
        &self.refs[..self.len]
    }
}

/// hex(x) of spec/rpc.md §1.
fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(2 * bytes.len());
    for b in bytes {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 15)]));
    }
    s
}

/// A request id from its text form, hex(request id) as [`IN_REPLY_TO`] carries it
/// (spec/rpc.md §3): exactly 64 lowercase hex digits, or `None`.
pub fn parse_request_id(text: &str) -> Option<[u8; 32]> {
    unhex::<32>(text)
}

/// Exactly `2 * N` lowercase hex digits, or `None`.
fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let b = s.as_bytes();
    if b.len() != 2 * N {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = (digit(b[2 * i])? << 4) | digit(b[2 * i + 1])?;
    }
    Some(out)
}

/// The reply sessions a client holds, shared by a [`Sealer`] and the [`PendingReply`]s it
/// hands out (spec/rpc.md §5, §6.3): a session is added (newest first, at most
/// [`MAX_REPLY_SESSIONS`]) when a reply of it passes [`PendingReply::check_reply`], removed
/// when a reply of it fails with [`ErrorKind::UnknownSession`] (the client's opener lost
/// it), and every request sealed with [`Sealer::seal_request`] names them in
/// [`REPLY_SESSION`]. Public values.
#[derive(Clone, Debug, Default)]
pub(crate) struct ReplyAck(Arc<Mutex<ReplySessions>>);

impl ReplyAck {
    fn lock(&self) -> std::sync::MutexGuard<'_, ReplySessions> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The value of [`REPLY_SESSION`], `None` while no session is held.
    fn text(&self) -> Option<String> {
        let held = *self.lock();
        (held.len > 0).then(|| reply_sessions_text(held.as_slice()))
    }

    /// `session_ref` becomes the newest held session.
    fn set(&self, session_ref: [u8; 16]) {
        let mut held = self.lock();
        if held.refs[0] == session_ref && held.len > 0 {
            return; // the steady state: nothing to move
        }
        let keep = held
            .as_slice()
            .iter()
            .position(|r| *r == session_ref)
            .unwrap_or(held.len.min(MAX_REPLY_SESSIONS - 1));
        held.refs.copy_within(..keep, 1);
        held.refs[0] = session_ref;
        held.len = held.len.max(keep + 1);
    }

    /// Forgets `session_ref` if it is held.
    fn forget(&self, session_ref: [u8; 16]) {
        let mut held = self.lock();
        if let Some(i) = held.as_slice().iter().position(|r| *r == session_ref) {
            let len = held.len;
            held.refs.copy_within(i + 1..len, i);
            held.len -= 1;
        }
    }
}

/// The client's side of one call: what a reply must match (spec/rpc.md §5). Returned by
/// [`Sealer::seal_request`]. Holds no secret; `Clone`, `Send`, and cheap to keep in a
/// table of calls in flight.
///
/// One returned by [`Sealer::seal_request`] also tells that sealer which reply session the
/// client holds once a reply opened, so that later requests acknowledge it
/// ([`REPLY_SESSION`]) and their replies go by reference (spec/rpc.md §6.3). One made with
/// [`PendingReply::new`] does not; equality compares the request and the responder only.
#[derive(Clone, Debug)]
pub struct PendingReply {
    request: [u8; 32],
    responder: KeyId,
    ack: Option<ReplyAck>,
}

impl PartialEq for PendingReply {
    fn eq(&self, other: &Self) -> bool {
        self.request == other.request && self.responder == other.responder
    }
}

impl Eq for PendingReply {}

impl PendingReply {
    /// A pending reply from its parts, for a caller that keeps calls in flight elsewhere
    /// (both parts are public values).
    pub fn new(request_id: [u8; 32], responder: KeyId) -> PendingReply {
        PendingReply {
            request: request_id,
            responder,
            ack: None,
        }
    }

    /// The request's id: its message hash (spec/envelope-v3.md §7.2).
    pub fn request_id(&self) -> [u8; 32] {
        self.request
    }

    /// The request's id as the reply carries it in [`IN_REPLY_TO`]: 64 lowercase hex digits.
    /// A transport may key its table of calls in flight by it.
    pub fn request_id_hex(&self) -> String {
        hex32(&self.request)
    }

    /// The sender id of the only identity whose reply is accepted.
    pub fn responder(&self) -> KeyId {
        self.responder
    }

    /// Opens `envelope` as the reply to this request: the envelope passes every check of
    /// [`Opener::open`], it is from [`PendingReply::responder`], and it names this
    /// request. Only then is it marked as seen; a reply refused for any reason changes no
    /// replay state, so the genuine reply still opens if it comes later.
    ///
    /// A reply refused as [`ErrorKind::UnknownSession`] whose session is the one this
    /// client acknowledged (its opener lost it) withdraws the acknowledgement: the next
    /// reply carries its block again (spec/rpc.md §6.3).
    pub fn open_reply(&self, opener: &Opener, envelope: &[u8]) -> Result<Opened, RpcError> {
        let (opened, mark) = opener
            .open_unmarked(envelope)
            .map_err(|e| self.lost(envelope, e))?;
        self.check_reply(&opened)?;
        opener.mark(mark)?;
        Ok(opened)
    }

    /// [`PendingReply::open_reply`] with the receiver's clock reading `now`.
    #[doc(hidden)]
    pub fn open_reply_at(
        &self,
        opener: &Opener,
        envelope: &[u8],
        now: u64,
    ) -> Result<Opened, RpcError> {
        let (opened, mark) = opener
            .open_unmarked_at(envelope, now)
            .map_err(|e| self.lost(envelope, e))?;
        self.check_reply(&opened)?;
        opener.mark_at(mark, now)?;
        Ok(opened)
    }

    /// The binding checks of spec/rpc.md §5 alone, for a caller that opened the message
    /// itself (with [`Opener::open_unmarked`], marking only after this passed): the sender
    /// is the responder ([`RpcError::WrongResponder`]), the message is a reply
    /// ([`RpcError::NotAReply`]) to this request ([`RpcError::WrongRequest`]). When it
    /// passes, the reply's session is the one later requests of the sealer that made this
    /// pending reply acknowledge (spec/rpc.md §6.3).
    pub fn check_reply(&self, opened: &Opened) -> Result<(), RpcError> {
        self.check_binding(opened)?;
        if let Some(ack) = &self.ack {
            ack.set(opened.session.session_ref);
        }
        Ok(())
    }

    /// `e` from opening `envelope`; an unknown session withdraws its acknowledgement.
    fn lost(&self, envelope: &[u8], e: Error) -> RpcError {
        self.note_rejection(envelope, &e);
        RpcError::Rejected(e)
    }

    /// For a caller that opens replies itself ([`Opener::open_unmarked`], then
    /// [`PendingReply::check_reply`]): tells this pending reply that opening `envelope`
    /// failed with `error`. If that is [`ErrorKind::UnknownSession`] for the reply session
    /// the client acknowledges, the acknowledgement is withdrawn, so that the next reply
    /// carries its block (spec/rpc.md §5, §6.3). [`PendingReply::open_reply`] does this
    /// itself.
    pub fn note_rejection(&self, envelope: &[u8], error: &Error) {
        if let (Some(ack), ErrorKind::UnknownSession) = (&self.ack, error.kind()) {
            if let Ok(i) = crate::inspect(envelope) {
                ack.forget(i.session_ref);
            }
        }
    }

    fn check_binding(&self, opened: &Opened) -> Result<(), RpcError> {
        if opened.sender != self.responder {
            return Err(RpcError::WrongResponder {
                expected: self.responder,
                found: opened.sender,
            });
        }
        let named = opened
            .metadata
            .get(IN_REPLY_TO)
            .ok_or(RpcError::NotAReply)?;
        match unhex::<32>(named) {
            // Public values, but compared without early exit all the same.
            Some(id) if bool::from(subtle::ConstantTimeEq::ct_eq(&id[..], &self.request[..])) => {
                Ok(())
            }
            _ => Err(RpcError::WrongRequest),
        }
    }
}

impl Sealer {
    /// Seals a request to `responder` (spec/rpc.md §4), returning the envelope and the
    /// [`PendingReply`] that accepts only this request's reply, from `responder`.
    ///
    /// `metadata` may set [`METHOD`], [`MESSAGE_ID`], [`REPLY_TO`] and [`CONTENT_TYPE`] besides
    /// the application's own keys; it must not set [`IN_REPLY_TO`] (that makes a reply) nor
    /// any other key starting with [`RESERVED_PREFIX`] ([`Misuse::InvalidMetadata`]).
    /// The sealer is expected to seal to `responder` (its identity, or a key it holds).
    ///
    /// The sealer adds [`REPLY_SESSION`] once a reply to one of its requests has opened
    /// (the pending replies it returns share that state with it): the service then sends
    /// replies by reference, and until then with their block (spec/rpc.md §6.3).
    /// Open the replies to one sealer's requests with one [`Opener`] (the one that then
    /// holds the acknowledged session).
    pub fn seal_request(
        &mut self,
        payload: &[u8],
        metadata: &Metadata,
        responder: &PublicIdentity,
    ) -> Result<(Vec<u8>, PendingReply), Misuse> {
        let (unsigned, pending) = self.seal_request_unsigned(payload, metadata, responder)?;
        Ok((unsigned.finish(), pending))
    }

    /// [`Sealer::seal_request`] up to the per-message signature ([`Sealer::seal_unsigned`]):
    /// for a sealer shared behind a lock, [`Unsigned::finish`] runs after the lock is
    /// released. The [`PendingReply`] is known before the signature.
    pub fn seal_request_unsigned(
        &mut self,
        payload: &[u8],
        metadata: &Metadata,
        responder: &PublicIdentity,
    ) -> Result<(Unsigned, PendingReply), Misuse> {
        check_reserved(metadata, false)?;
        let held = self.reply_ack.text();
        let extra = held.as_deref().map(|h| (REPLY_SESSION, h));
        let unsigned = self.seal_unsigned_with(payload, metadata, extra)?;
        let pending = PendingReply {
            request: unsigned.message_hash(),
            responder: responder.key_id(),
            ack: Some(self.reply_ack.clone()),
        };
        Ok((unsigned, pending))
    }
}

/// Reserved keys: only those of spec/rpc.md §2 a caller sets; [`IN_REPLY_TO`] only when
/// `reply`; never [`REPLY_SESSION`], which [`Sealer::seal_request`] sets.
fn check_reserved(metadata: &Metadata, reply: bool) -> Result<(), Misuse> {
    for k in metadata.keys() {
        if !k.starts_with(RESERVED_PREFIX) {
            continue;
        }
        match k.as_str() {
            METHOD | MESSAGE_ID | REPLY_TO | CONTENT_TYPE => {}
            IN_REPLY_TO if reply => {}
            IN_REPLY_TO => {
                return Err(Misuse::InvalidMetadata(
                    "rpc.in-reply-to makes a message a reply; a request must not carry it",
                ))
            }
            REPLY_SESSION => {
                return Err(Misuse::InvalidMetadata(
                    "rpc.reply-session is set by seal_request from the replies the client opened",
                ))
            }
            _ => {
                return Err(Misuse::InvalidMetadata(
                    "keys starting with \"rpc.\" are reserved (spec/rpc.md §2)",
                ))
            }
        }
    }
    Ok(())
}

/// The service's side of one call, from the opened request (spec/rpc.md §4): who the reply
/// goes to, where, and the binding it carries.
#[derive(Clone, Debug)]
pub struct RequestContext {
    request: [u8; 32],
    client: PublicIdentity,
    reply_sessions: ReplySessions,
    reply_to: Option<String>,
}

impl RequestContext {
    /// The context of a request that `opener` opened: refuses a reply offered as a
    /// request ([`RpcError::NotARequest`]) and a sender the opener no longer trusts
    /// ([`RpcError::UntrustedClient`]) and a malformed [`REPLY_SESSION`]
    /// ([`RpcError::InvalidReplySession`]).
    pub fn new(opener: &Opener, request: &Opened) -> Result<RequestContext, RpcError> {
        if request.metadata.contains_key(IN_REPLY_TO) {
            return Err(RpcError::NotARequest);
        }
        let reply_sessions = match request.metadata.get(REPLY_SESSION) {
            None => ReplySessions::default(),
            Some(v) => parse_reply_sessions(v).ok_or(RpcError::InvalidReplySession)?,
        };
        let client = opener
            .trusted_identity(&request.sender)
            .ok_or(RpcError::UntrustedClient)?;
        Ok(RequestContext {
            request: request.message_hash,
            client,
            reply_sessions,
            reply_to: request.metadata.get(REPLY_TO).cloned(),
        })
    }

    /// The request's id (its message hash), which the reply names.
    pub fn request_id(&self) -> [u8; 32] {
        self.request
    }

    /// The request's id as a reply names it in [`IN_REPLY_TO`]: 64 lowercase hex digits.
    pub fn request_id_hex(&self) -> String {
        hex32(&self.request)
    }

    /// The reply sessions the client acknowledged holding ([`REPLY_SESSION`]), newest
    /// first; empty if it named none.
    pub fn reply_sessions(&self) -> &[[u8; 16]] {
        self.reply_sessions.as_slice()
    }

    /// The request's sender: the only identity the reply may be sealed to.
    pub fn client(&self) -> &PublicIdentity {
        &self.client
    }

    /// The reply address the client authenticated ([`REPLY_TO`]), if any. Send the reply
    /// here, never to an address the broker supplied.
    pub fn reply_to(&self) -> Option<&str> {
        self.reply_to.as_deref()
    }

    /// Compares the reply address a broker delivered with the authenticated one:
    /// [`RpcError::ReplyToMismatch`] unless both are absent or both equal. A transport
    /// that receives the broker's address calls this and drops the request on a mismatch
    /// (a broker redirecting replies is hostile).
    pub fn check_reply_to(&self, delivered: Option<&str>) -> Result<(), RpcError> {
        if self.reply_to.as_deref() == delivered {
            Ok(())
        } else {
            Err(RpcError::ReplyToMismatch)
        }
    }

    /// `metadata` plus the binding, [`IN_REPLY_TO`]: the metadata of the reply.
    /// `metadata` must not set [`IN_REPLY_TO`] itself, nor unknown reserved keys.
    pub fn reply_metadata(&self, metadata: &Metadata) -> Result<Metadata, Misuse> {
        check_reserved(metadata, false)?;
        let mut m = metadata.clone();
        m.insert(IN_REPLY_TO.into(), hex32(&self.request));
        Ok(m)
    }

    /// Seals the reply with `sealer`, which must seal to the client alone
    /// ([`Misuse::InvalidConfig`] otherwise). [`Responder`] keeps such a sealer per client.
    pub fn seal_reply(
        &self,
        sealer: &mut Sealer,
        payload: &[u8],
        metadata: &Metadata,
    ) -> Result<Vec<u8>, Misuse> {
        self.seal_reply_unsigned(sealer, payload, metadata)
            .map(Unsigned::finish)
    }

    /// [`RequestContext::seal_reply`] up to the per-message signature
    /// ([`Sealer::seal_unsigned`]): [`Unsigned::finish`] may run after the sealer's lock
    /// is released.
    pub fn seal_reply_unsigned(
        &self,
        sealer: &mut Sealer,
        payload: &[u8],
        metadata: &Metadata,
    ) -> Result<Unsigned, Misuse> {
        match sealer.recipients() {
            [Recipient::Service(r)] if *r == self.client => {}
            _ => {
                return Err(Misuse::InvalidConfig(
                    "a reply must be sealed to the request's sender alone",
                ))
            }
        }
        // The bytes of `reply_metadata(metadata)` without building that map.
        check_reserved(metadata, false)?;
        let id = hex32(&self.request);
        sealer.seal_unsigned_with(payload, metadata, Some((IN_REPLY_TO, &id)))
    }
}

struct ClientSealer {
    sealer: Sealer,
}

/// Seals replies for a service: one reply session per client, kept in a bounded LRU, so a
/// reply costs symmetric work only (spec/rpc.md §4).
///
/// A reply carries its session block inline unless its request acknowledged the current
/// reply session ([`REPLY_SESSION`], [`RequestContext::reply_sessions`]): the client then
/// holds it. Replies to calls in flight at once, a lost first reply, a restarted client, a
/// second process with the same identity: each gets the block until its own requests
/// acknowledge the session, with no round trip (spec/rpc.md §6.3). Otherwise the sealer's
/// [`crate::Inline`] policy applies; [`crate::Inline::FirstMessage`] is the intended one.
/// `Send + Sync`.
pub struct Responder {
    identity: Identity,
    config: SealerConfig,
    clients: Mutex<LruCache<KeyId, Arc<Mutex<ClientSealer>>>>,
}

impl Responder {
    /// A responder for `identity`, sealing with `config`, keeping reply sessions for up to
    /// `capacity` clients (at least one).
    pub fn new(
        identity: &Identity,
        config: SealerConfig,
        capacity: usize,
    ) -> Result<Responder, Misuse> {
        // Fails early on an unusable configuration, with a throwaway recipient.
        Sealer::new(
            identity,
            &[Recipient::from(identity.public())],
            config.clone(),
        )?;
        Ok(Responder {
            identity: identity.clone(),
            config,
            clients: Mutex::new(LruCache::new(
                NonZeroUsize::new(capacity.max(1)).expect("at least one"),
            )),
        })
    }

    /// Seals the reply to the request `ctx` describes: to the client alone, bound to the
    /// request ([`IN_REPLY_TO`] added to `metadata`). The client's reply sealer is locked
    /// while the reply is sealed but not while it is signed: replies to one client are
    /// signed in parallel, each with its own sequence number.
    pub fn seal_reply(
        &self,
        ctx: &RequestContext,
        payload: &[u8],
        metadata: &Metadata,
    ) -> Result<Vec<u8>, Misuse> {
        let id = ctx.client.key_id();
        let entry = {
            let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
            match clients.get(&id) {
                Some(e) => e.clone(),
                None => {
                    let sealer = Sealer::new(
                        &self.identity,
                        &[Recipient::from(ctx.client.clone())],
                        self.config.clone(),
                    )?;
                    let e = Arc::new(Mutex::new(ClientSealer { sealer }));
                    clients.put(id, e.clone());
                    e
                }
            }
        };
        let unsigned = {
            let mut c = entry.lock().unwrap_or_else(|p| p.into_inner());
            Self::seal_locked(&mut c, ctx, payload, metadata)?
        };
        Ok(unsigned.finish())
    }

    /// The part of [`Responder::seal_reply`] under the client's lock.
    fn seal_locked(
        c: &mut ClientSealer,
        ctx: &RequestContext,
        payload: &[u8],
        metadata: &Metadata,
    ) -> Result<Unsigned, Misuse> {
        // No session yet, or a new one the client cannot have named yet: the block.
        let held = c
            .sealer
            .session_ref()
            .is_some_and(|r| ctx.reply_sessions().contains(&r));
        if !held {
            c.sealer.inline_next();
        }
        // A rotation inside this seal starts a new session, whose first envelope carries
        // its block under `Inline::FirstMessage`.
        ctx.seal_reply_unsigned(&mut c.sealer, payload, metadata)
    }
}

/// A receiver's request for a session block (spec/rpc.md §6): the envelope it could not
/// open refers to a session it does not hold. The sender answers with the block, beside
/// the unchanged envelope ([`Sealer::session_block_for`]); the receiver then imports the
/// block ([`Opener::import_session`]) and opens the same envelope again, so the message is
/// neither lost nor duplicated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NeedSession {
    session_ref: [u8; 16],
}

impl NeedSession {
    /// The request to send when opening `envelope` failed with `error`: `Some` only for
    /// [`ErrorKind::UnknownSession`] (a by-reference envelope whose session this receiver
    /// lacks).
    pub fn from_rejection(envelope: &[u8], error: &Error) -> Option<NeedSession> {
        if error.kind() != ErrorKind::UnknownSession {
            return None;
        }
        let i = crate::inspect(envelope).ok()?;
        i.session.is_none().then_some(NeedSession {
            session_ref: i.session_ref,
        })
    }

    /// A request for the session `session_ref`.
    pub fn new(session_ref: [u8; 16]) -> NeedSession {
        NeedSession { session_ref }
    }

    /// The reference of the session asked for.
    pub fn session_ref(&self) -> [u8; 16] {
        self.session_ref
    }

    /// Parses the text form: exactly 32 lowercase hex digits.
    pub fn parse(text: &str) -> Option<NeedSession> {
        unhex::<16>(text).map(NeedSession::new)
    }
}

impl fmt::Display for NeedSession {
    /// The text form a transport header carries: 32 lowercase hex digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.session_ref {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_strictness() {
        let x: [u8; 32] = std::array::from_fn(|i| (i * 37) as u8);
        assert_eq!(unhex::<32>(&hex32(&x)), Some(x));
        assert_eq!(unhex::<32>(&hex32(&x).to_uppercase()), None);
        assert_eq!(unhex::<32>(&hex32(&x)[..63]), None);
        assert_eq!(unhex::<32>(&format!("{}0", hex32(&x))), None);
        assert_eq!(unhex::<16>("0g000000000000000000000000000000"), None);
        let n = NeedSession::new([0xab; 16]);
        assert_eq!(NeedSession::parse(&n.to_string()), Some(n));
    }

    #[test]
    fn held_reply_sessions_newest_first_bounded() {
        let ack = ReplyAck::default();
        assert_eq!(ack.text(), None);
        for i in 0..10u8 {
            ack.set([i; 16]);
        }
        let held = |a: &ReplyAck| a.lock().as_slice().iter().map(|r| r[0]).collect::<Vec<_>>();
        assert_eq!(held(&ack), [9, 8, 7, 6, 5, 4, 3, 2]);
        ack.set([5; 16]);
        assert_eq!(held(&ack), [5, 9, 8, 7, 6, 4, 3, 2]);
        ack.set([5; 16]);
        ack.forget([8; 16]);
        ack.forget([1; 16]);
        assert_eq!(held(&ack), [5, 9, 7, 6, 4, 3, 2]);
        let text = ack.text().unwrap();
        assert_eq!(
            parse_reply_sessions(&text).unwrap().as_slice(),
            ack.lock().as_slice()
        );
        for r in held(&ack) {
            ack.forget([r; 16]);
        }
        assert_eq!(ack.text(), None);
        ack.set([1; 16]);
        assert_eq!(ack.text().unwrap(), "01".repeat(16));
    }
}
