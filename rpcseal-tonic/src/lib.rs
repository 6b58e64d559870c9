//! rpcseal for gRPC: a tonic [`Codec`] that seals every message of a unary or streaming
//! call (prost-encoded inside) and opens it on the other side, so the messages stay sealed
//! end to end through any gRPC proxy or load balancer. The normative binding is
//! `spec/grpc.md`; every check is the `rpcseal` library's (`spec/rpc.md`).
//!
//! - Unary calls through one [`ClientCodecs`] share one request session; the service
//!   answers from one reply session per client ([`rpcseal::rpc::Responder`]). Each reply is
//!   bound to its request. A server that lacks the session answers `FAILED_PRECONDITION`
//!   with `rpcseal-need-session`, and [`ClientCodecs::unary`] sends the same envelope again
//!   with its block.
//! - Each streaming call has a session of its own in each direction, opened in strict order
//!   ([`rpcseal::Policy::strict_order`]): a replayed, reordered or dropped message, or one
//!   moved in from another stream, is an error on that stream.
//!
//! **Generated code** (tonic-build, `codec_path("rpcseal_tonic::SealedCodec")`): serve
//! the generated server as `server_codecs.service(GreeterServer::new(handler))` and build
//! the generated client on `client_codecs.channel(channel)`; each call's [`SealedCodec`]
//! (made by `Default` in the generated code) finds its keys there ([`SealedService`],
//! [`SealedChannel`]), and the handler reads the sender with [`caller_of`]. Client- and
//! bidirectional-streaming methods are named on both sides (`.streaming(path)`); a method
//! not named carries one request message per call (a second is refused). A server-streaming
//! method may be named too: its replies are then a session of their own, in strict order.
//! `examples/generated.rs` runs one.
//!
//! **Hand-written plumbing**: pass the codecs [`ServerCodecs`] and [`ClientCodecs`] make
//! (as `examples/grpc.rs` shows); the handler gets [`Incoming`], the message and its sender.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod generated;
pub use generated::{
    caller_of, SealedChannel, SealedCodec, SealedDecoder, SealedEncoder, SealedService,
};

use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use bytes::{Buf, BufMut};
use rpcseal::rpc::{self, NeedSession, PendingReply, RequestContext, Responder};
use rpcseal::{
    Error, ErrorKind, Identity, Inline, KeyId, Metadata, Misuse, Opened, Opener, OpenerBuilder,
    PublicIdentity, Recipient, Sealer, SealerConfig, SessionFacts,
};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Status};

/// The `rpc.content-type` of a sealed gRPC message: one protobuf message (spec/grpc.md §2).
pub const CONTENT_TYPE: &str = "application/protobuf";
/// Status metadata of a `FAILED_PRECONDITION` answer: the reference of the session whose
/// block the server lacks, 32 lowercase hex digits (spec/grpc.md §4).
pub const NEED_SESSION_KEY: &str = "rpcseal-need-session";
/// Request metadata (binary): the session block sent beside an unchanged envelope
/// (spec/grpc.md §4).
pub const SESSION_KEY: &str = "rpcseal-session-bin";
/// Status metadata the client codec adds to a status of its own making: the error class
/// (`replayed`, `out_of_order`, `wrong_request`, `invalid_payload`, ...). Local only; a
/// server never sends it.
pub const ERROR_KIND_KEY: &str = "rpcseal-error";

/// Who sent a request message and what it authenticated (spec/rpc.md §4.1).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Caller {
    /// The verified sender's identity key id.
    pub sender: KeyId,
    /// The sender's name in the opener's keyring (its key id in hex when unnamed).
    pub sender_name: Arc<str>,
    /// The message's authenticated metadata.
    pub metadata: Metadata,
    /// The request session, as its signed block states it.
    pub session: SessionFacts,
    /// The message's sequence number in its session.
    pub seq: u64,
    /// The message id (its message hash); replies name the call's first one.
    pub request_id: [u8; 32],
}

/// A request message opened by a server codec: the message and who sent it.
#[derive(Clone, Debug)]
pub struct Incoming<T> {
    /// The decoded message.
    pub message: T,
    /// Its sender and authenticated facts.
    pub caller: Caller,
}

fn caller(opened: &Opened) -> Caller {
    Caller {
        sender: opened.sender,
        sender_name: opened.sender_name.clone(),
        metadata: opened.metadata.clone(),
        session: opened.session.clone(),
        seq: opened.seq,
        request_id: opened.message_hash,
    }
}

/// A status the client codec makes, with the class in [`ERROR_KIND_KEY`].
fn local_status(code: Code, kind: &str, message: String) -> Status {
    let mut m = MetadataMap::new();
    if let Ok(v) = MetadataValue::try_from(kind) {
        m.insert(ERROR_KIND_KEY, v);
    }
    Status::with_metadata(code, message, m)
}

/// What a server answers for a request it refuses: no detail (spec/grpc.md §5).
fn refused() -> Status {
    Status::unauthenticated("request refused")
}

fn misuse(m: Misuse) -> Status {
    Status::internal(format!("rpcseal: {m}"))
}

fn message_metadata(path: &str) -> Metadata {
    let mut m = Metadata::new();
    m.insert(rpc::METHOD.into(), path.into());
    m.insert(rpc::CONTENT_TYPE.into(), CONTENT_TYPE.into());
    m
}

/// The payload as a `T`, if its authenticated content type says protobuf.
fn decode_payload<T: prost::Message + Default>(opened: &Opened) -> Result<T, DecodeFailure> {
    if opened.metadata.get(rpc::CONTENT_TYPE).map(String::as_str) != Some(CONTENT_TYPE) {
        return Err(DecodeFailure::WrongContentType);
    }
    T::decode(&opened.payload[..]).map_err(|_| DecodeFailure::Invalid)
}

enum DecodeFailure {
    WrongContentType,
    Invalid,
}

impl DecodeFailure {
    fn kind(&self) -> &'static str {
        match self {
            DecodeFailure::WrongContentType => "wrong_content_type",
            DecodeFailure::Invalid => "invalid_payload",
        }
    }
}

/// Strict order within one call (spec/grpc.md §3): the first message of a call is its
/// session's first (seq 0), every later one is of the same session.
fn pin_session(pinned: &mut Option<[u8; 16]>, opened: &Opened) -> Result<(), &'static str> {
    match pinned {
        None if opened.seq == 0 => {
            *pinned = Some(opened.session.session_ref);
            Ok(())
        }
        None => Err("out_of_order"),
        Some(r) if *r == opened.session.session_ref => Ok(()),
        Some(_) => Err("wrong_stream"),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Unary,
    Streaming,
}

// ---------------------------------------------------------------------------------------
// Client

struct ClientShared {
    identity: Identity,
    service: PublicIdentity,
    config: SealerConfig,
    sealer: Mutex<Sealer>,
    replies: Opener,
    stream_replies: Opener,
}

/// The client side: makes a [`ClientCodec`] per call. Unary calls share one request
/// session (its block inline on its first message, or on demand); each streaming call gets
/// a session of its own. `Clone`, cheap: share one per channel.
#[derive(Clone)]
pub struct ClientCodecs {
    shared: Arc<ClientShared>,
}

impl ClientCodecs {
    /// A client with `identity` calling `service`, sealing with `config` (the intended
    /// inline policy is [`Inline::FirstMessage`]; streams always use it), opening replies
    /// with openers built by `opener` (this client's identity, trusting the service; the
    /// streaming one gets the same policy with strict order).
    pub fn new(
        identity: &Identity,
        service: &PublicIdentity,
        config: SealerConfig,
        opener: impl Fn() -> OpenerBuilder,
    ) -> Result<ClientCodecs, Misuse> {
        let sealer = Sealer::new(
            identity,
            &[Recipient::from(service.clone())],
            config.clone(),
        )?;
        let replies = opener().build()?;
        let stream_replies = opener()
            .policy(replies.policy().clone().strict_order())
            .build()?;
        Ok(ClientCodecs {
            shared: Arc::new(ClientShared {
                identity: identity.clone(),
                service: service.clone(),
                config,
                sealer: Mutex::new(sealer),
                replies,
                stream_replies,
            }),
        })
    }

    /// The codec of one unary call to `path` (`/package.Service/Method`).
    pub fn unary_codec<Req, Resp>(&self, path: &str) -> ClientCodec<Req, Resp> {
        self.codec(path, Kind::Unary, None)
    }

    /// The codec of one streaming call to `path`, with a new session of its own.
    pub fn streaming_codec<Req, Resp>(&self, path: &str) -> Result<ClientCodec<Req, Resp>, Misuse> {
        let sealer = Sealer::new(
            &self.shared.identity,
            &[Recipient::from(self.shared.service.clone())],
            self.shared.config.clone().inline(Inline::FirstMessage),
        )?;
        Ok(self.codec(path, Kind::Streaming, Some(sealer)))
    }

    fn codec<Req, Resp>(
        &self,
        path: &str,
        kind: Kind,
        stream_sealer: Option<Sealer>,
    ) -> ClientCodec<Req, Resp> {
        ClientCodec {
            shared: self.shared.clone(),
            path: path.into(),
            kind,
            state: Arc::new(Mutex::new(ClientCall {
                stream_sealer,
                ..ClientCall::default()
            })),
            _types: PhantomData,
        }
    }

    /// One unary call to `path` on `grpc`: seals `message`, opens the reply; when the
    /// server lacks the request session (`FAILED_PRECONDITION` with
    /// [`NEED_SESSION_KEY`]), sends the same envelope once more with its block
    /// (spec/grpc.md §4).
    pub async fn unary<T, Req, Resp>(
        &self,
        grpc: &mut tonic::client::Grpc<T>,
        message: Req,
        path: &'static str,
    ) -> Result<tonic::Response<Resp>, Status>
    where
        T: tonic::client::GrpcService<tonic::body::Body>,
        T::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        T::ResponseBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        <T::ResponseBody as http_body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        Req: prost::Message + Clone + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let route = http::uri::PathAndQuery::from_static(path);
        grpc.ready()
            .await
            .map_err(|e| Status::unavailable(format!("not ready: {}", e.into())))?;
        let codec = self.unary_codec::<Req, Resp>(path);
        let state = codec.state.clone();
        let err = match grpc
            .unary(tonic::Request::new(message.clone()), route.clone(), codec)
            .await
        {
            Ok(r) => return Ok(r),
            Err(e) => e,
        };
        let need = (err.code() == Code::FailedPrecondition)
            .then(|| err.metadata().get(NEED_SESSION_KEY))
            .flatten()
            .and_then(|v| v.to_str().ok())
            .and_then(NeedSession::parse);
        let Some(need) = need else { return Err(err) };
        let block = self
            .shared
            .sealer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .session_block_for(&need.session_ref())
            .map(<[u8]>::to_vec);
        let (Some(block), Some((envelope, pending))) = (
            block,
            state.lock().unwrap_or_else(|p| p.into_inner()).sent.clone(),
        ) else {
            return Err(err);
        };
        let again = self.unary_codec::<Req, Resp>(path);
        {
            let mut s = again.state.lock().unwrap_or_else(|p| p.into_inner());
            s.resend = Some(envelope);
            s.pending = Some(pending);
        }
        let mut request = tonic::Request::new(message);
        request
            .metadata_mut()
            .insert_bin(SESSION_KEY, MetadataValue::from_bytes(&block));
        grpc.ready()
            .await
            .map_err(|e| Status::unavailable(format!("not ready: {}", e.into())))?;
        grpc.unary(request, route, again).await
    }
}

#[derive(Default)]
struct ClientCall {
    /// What every reply of this call must answer (the call's first request message).
    pending: Option<PendingReply>,
    /// The envelope sent and its pending reply, for a resend with the block.
    sent: Option<(Vec<u8>, PendingReply)>,
    /// An envelope to send instead of sealing (the resend).
    resend: Option<Vec<u8>>,
    /// A streaming call's own sealer.
    stream_sealer: Option<Sealer>,
    /// A streaming call's reply session, pinned by its first reply.
    reply_session: Option<[u8; 16]>,
}

/// The codec of one client call: seals `Req` messages, opens `Resp` replies. Made by
/// [`ClientCodecs`].
pub struct ClientCodec<Req, Resp> {
    shared: Arc<ClientShared>,
    path: Arc<str>,
    kind: Kind,
    state: Arc<Mutex<ClientCall>>,
    _types: PhantomData<fn(Req) -> Resp>,
}

impl<Req, Resp> Codec for ClientCodec<Req, Resp>
where
    Req: prost::Message + Send + 'static,
    Resp: prost::Message + Default + Send + 'static,
{
    type Encode = Req;
    type Decode = Resp;
    type Encoder = ClientEncoder<Req>;
    type Decoder = ClientDecoder<Resp>;

    fn encoder(&mut self) -> ClientEncoder<Req> {
        ClientEncoder {
            shared: self.shared.clone(),
            path: self.path.clone(),
            kind: self.kind,
            state: self.state.clone(),
            _types: PhantomData,
        }
    }

    fn decoder(&mut self) -> ClientDecoder<Resp> {
        ClientDecoder {
            shared: self.shared.clone(),
            kind: self.kind,
            state: self.state.clone(),
            _types: PhantomData,
        }
    }
}

/// Seals each request message of a call.
pub struct ClientEncoder<Req> {
    shared: Arc<ClientShared>,
    path: Arc<str>,
    kind: Kind,
    state: Arc<Mutex<ClientCall>>,
    _types: PhantomData<fn(Req)>,
}

impl<Req: prost::Message> Encoder for ClientEncoder<Req> {
    type Item = Req;
    type Error = Status;

    fn encode(&mut self, item: Req, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(envelope) = state.resend.take() {
            dst.put_slice(&envelope);
            return Ok(());
        }
        let payload = item.encode_to_vec();
        let meta = message_metadata(&self.path);
        // The channel's shared sealer is locked while sealing, not while signing: calls on
        // one channel sign in parallel.
        let (unsigned, pending) = match self.kind {
            Kind::Unary => self
                .shared
                .sealer
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .seal_request_unsigned(&payload, &meta, &self.shared.service),
            Kind::Streaming => state
                .stream_sealer
                .as_mut()
                .expect("a streaming codec has its sealer")
                .seal_request_unsigned(&payload, &meta, &self.shared.service),
        }
        .map_err(misuse)?;
        let envelope = unsigned.finish();
        dst.put_slice(&envelope);
        if state.pending.is_none() {
            state.pending = Some(pending.clone());
        }
        if self.kind == Kind::Unary {
            state.sent = Some((envelope, pending));
        }
        Ok(())
    }
}

/// Opens each reply message of a call.
pub struct ClientDecoder<Resp> {
    shared: Arc<ClientShared>,
    kind: Kind,
    state: Arc<Mutex<ClientCall>>,
    _types: PhantomData<fn() -> Resp>,
}

impl<Resp: prost::Message + Default> Decoder for ClientDecoder<Resp> {
    type Item = Resp;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Resp>, Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let refuse = |kind: &str| {
            local_status(
                Code::Unauthenticated,
                kind,
                format!("rpcseal: the reply was refused ({kind})"),
            )
        };
        let pending = state.pending.clone().ok_or_else(|| refuse("not_a_reply"))?;
        let opened = match self.kind {
            Kind::Unary => pending
                .open_reply(&self.shared.replies, &bytes)
                .map_err(|e| refuse(e.kind()))?,
            Kind::Streaming => {
                let opener = &self.shared.stream_replies;
                let (opened, mark) = opener
                    .open_unmarked(&bytes)
                    .map_err(|e| refuse(e.kind().as_str()))?;
                pin_session(&mut state.reply_session, &opened).map_err(refuse)?;
                pending.check_reply(&opened).map_err(|e| refuse(e.kind()))?;
                opener.mark(mark).map_err(|e| refuse(e.kind().as_str()))?;
                opened
            }
        };
        decode_payload(&opened).map(Some).map_err(|f| {
            local_status(
                Code::Internal,
                f.kind(),
                format!("rpcseal: the reply does not decode ({})", f.kind()),
            )
        })
    }
}

// ---------------------------------------------------------------------------------------
// Server

struct ServerShared {
    identity: Identity,
    config: SealerConfig,
    requests: Opener,
    stream_requests: Opener,
    responder: Responder,
}

/// The server side: makes a [`ServerCodec`] per call, from the call's HTTP request (its
/// path is the method every message must name; its metadata may carry a session block).
/// `Clone`, cheap.
#[derive(Clone)]
pub struct ServerCodecs {
    shared: Arc<ServerShared>,
}

impl ServerCodecs {
    /// A service with `identity`, sealing replies with `config` (one reply session per
    /// client for unary calls, up to `clients` of them; one per streaming call), opening
    /// requests with openers built by `opener` (this identity, the trusted clients, the
    /// replay store; the streaming one gets the same policy with strict order).
    pub fn new(
        identity: &Identity,
        config: SealerConfig,
        clients: usize,
        opener: impl Fn() -> OpenerBuilder,
    ) -> Result<ServerCodecs, Misuse> {
        let requests = opener().build()?;
        let stream_requests = opener()
            .policy(requests.policy().clone().strict_order())
            .build()?;
        let responder = Responder::new(identity, config.clone(), clients)?;
        Ok(ServerCodecs {
            shared: Arc::new(ServerShared {
                identity: identity.clone(),
                config,
                requests,
                stream_requests,
                responder,
            }),
        })
    }

    /// The codec of a unary (or server-streaming) call.
    pub fn unary_codec<Resp, Req, B>(&self, req: &http::Request<B>) -> ServerCodec<Resp, Req> {
        self.codec(req, Kind::Unary)
    }

    /// The codec of a client- or bidirectional-streaming call.
    pub fn streaming_codec<Resp, Req, B>(&self, req: &http::Request<B>) -> ServerCodec<Resp, Req> {
        self.codec(req, Kind::Streaming)
    }

    fn codec<Resp, Req, B>(&self, req: &http::Request<B>, kind: Kind) -> ServerCodec<Resp, Req> {
        // The headers are copied into a metadata map only when the block is there: a
        // copy of every call's headers would cost more than the call's cryptography.
        let block = (kind == Kind::Unary && req.headers().contains_key(SESSION_KEY))
            .then(|| MetadataMap::from_headers(req.headers().clone()))
            .and_then(|m| m.get_bin(SESSION_KEY).map(|v| v.to_bytes()))
            .map(|r| r.map(|b| b.to_vec()).map_err(|_| ()));
        ServerCodec {
            shared: self.shared.clone(),
            path: req.uri().path().into(),
            kind,
            state: Arc::new(Mutex::new(ServerCall {
                block,
                ..ServerCall::default()
            })),
            _types: PhantomData,
        }
    }
}

#[derive(Default)]
struct ServerCall {
    /// A session block sent beside the envelope (unary), still to be imported; `Err` when
    /// the metadata did not decode.
    block: Option<Result<Vec<u8>, ()>>,
    /// The call's first request, which every reply names.
    ctx: Option<RequestContext>,
    /// A streaming call's request session, pinned by its first message.
    session: Option<[u8; 16]>,
    /// A streaming call's reply sealer.
    reply_sealer: Option<Sealer>,
    /// Request messages received in the call.
    messages: u64,
}

/// The codec of one server call: opens `Req` messages into [`Incoming`], seals `Resp`
/// replies to the caller, bound to the call's first request. Made by [`ServerCodecs`].
pub struct ServerCodec<Resp, Req> {
    shared: Arc<ServerShared>,
    path: Arc<str>,
    kind: Kind,
    state: Arc<Mutex<ServerCall>>,
    _types: PhantomData<fn(Req) -> Resp>,
}

impl<Resp, Req> Codec for ServerCodec<Resp, Req>
where
    Resp: prost::Message + Send + 'static,
    Req: prost::Message + Default + Send + 'static,
{
    type Encode = Resp;
    type Decode = Incoming<Req>;
    type Encoder = ServerEncoder<Resp>;
    type Decoder = ServerDecoder<Req>;

    fn encoder(&mut self) -> ServerEncoder<Resp> {
        ServerEncoder {
            shared: self.shared.clone(),
            kind: self.kind,
            state: self.state.clone(),
            _types: PhantomData,
        }
    }

    fn decoder(&mut self) -> ServerDecoder<Req> {
        ServerDecoder {
            shared: self.shared.clone(),
            path: self.path.clone(),
            kind: self.kind,
            state: self.state.clone(),
            _types: PhantomData,
        }
    }
}

/// Opens each request message of a call.
pub struct ServerDecoder<Req> {
    shared: Arc<ServerShared>,
    path: Arc<str>,
    kind: Kind,
    state: Arc<Mutex<ServerCall>>,
    _types: PhantomData<fn() -> Req>,
}

fn need_session(envelope: &[u8], e: &Error) -> Status {
    if e.kind() == ErrorKind::UnknownSession {
        if let Some(need) = NeedSession::from_rejection(envelope, e) {
            let mut m = MetadataMap::new();
            if let Ok(v) = MetadataValue::try_from(need.to_string()) {
                m.insert(NEED_SESSION_KEY, v);
            }
            return Status::with_metadata(Code::FailedPrecondition, "session needed", m);
        }
    }
    refused()
}

impl<Req: prost::Message + Default> Decoder for ServerDecoder<Req> {
    type Item = Incoming<Req>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Incoming<Req>>, Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let shared = &self.shared;
        let opener = match self.kind {
            Kind::Unary => &shared.requests,
            Kind::Streaming => &shared.stream_requests,
        };
        // spec/grpc.md §4: a call treated as unary has one request message.
        state.messages += 1;
        if self.kind == Kind::Unary && state.messages > 1 {
            return Err(refused());
        }
        // spec/grpc.md §4: a block beside the envelope.
        match state.block.take() {
            Some(Ok(block)) => {
                opener.import_session(&block).map_err(|_| refused())?;
            }
            Some(Err(())) => return Err(refused()),
            None => {}
        }
        // spec/grpc.md §3: the full opening procedure, the request rules, the method, and
        // for a stream its one session in strict order; only then the mark.
        let (opened, mark) = opener.open_unmarked(&bytes).map_err(|e| match self.kind {
            // A stream's session travels inline on its first message: nothing to ask.
            Kind::Unary => need_session(&bytes, &e),
            Kind::Streaming => refused(),
        })?;
        let ctx = RequestContext::new(opener, &opened).map_err(|_| refused())?;
        // The reply travels on the call: a reply address cannot be honoured (spec/rpc.md §4.3).
        if ctx.reply_to().is_some() {
            return Err(refused());
        }
        if opened.metadata.get(rpc::METHOD).map(String::as_str) != Some(&*self.path) {
            return Err(refused());
        }
        if self.kind == Kind::Streaming {
            pin_session(&mut state.session, &opened).map_err(|_| refused())?;
        }
        let message = decode_payload::<Req>(&opened)
            .map_err(|f| Status::invalid_argument(format!("rpcseal: {}", f.kind())))?;
        opener.mark(mark).map_err(|_| refused())?;
        if state.ctx.is_none() {
            state.ctx = Some(ctx);
        }
        Ok(Some(Incoming {
            caller: caller(&opened),
            message,
        }))
    }
}

/// Seals each reply message of a call.
pub struct ServerEncoder<Resp> {
    shared: Arc<ServerShared>,
    kind: Kind,
    state: Arc<Mutex<ServerCall>>,
    _types: PhantomData<fn(Resp)>,
}

impl<Resp: prost::Message> Encoder for ServerEncoder<Resp> {
    type Item = Resp;
    type Error = Status;

    fn encode(&mut self, item: Resp, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let state = &mut *state;
        let ctx = state.ctx.as_ref().ok_or_else(|| {
            Status::internal("rpcseal: a reply is sent only after the call's first request")
        })?;
        let payload = item.encode_to_vec();
        let mut meta = Metadata::new();
        meta.insert(rpc::CONTENT_TYPE.into(), CONTENT_TYPE.into());
        let envelope = match self.kind {
            Kind::Unary => self.shared.responder.seal_reply(ctx, &payload, &meta),
            Kind::Streaming => {
                if state.reply_sealer.is_none() {
                    state.reply_sealer = Some(
                        Sealer::new(
                            &self.shared.identity,
                            &[Recipient::from(ctx.client().clone())],
                            self.shared.config.clone().inline(Inline::FirstMessage),
                        )
                        .map_err(misuse)?,
                    );
                }
                let sealer = state.reply_sealer.as_mut().expect("set above");
                ctx.seal_reply(sealer, &payload, &meta)
            }
        }
        .map_err(misuse)?;
        dst.put_slice(&envelope);
        Ok(())
    }
}
