//! The client layer (spec/http.md §3, §4, §5).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use base64::Engine as _;
use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Full, Limited};
use rpcseal::rpc::{NeedSession, RpcError, CONTENT_TYPE as META_CONTENT_TYPE, METHOD};
use rpcseal::{Metadata, Misuse, Opener, PublicIdentity, Sealer};

use crate::{
    is_sealed, method_binding, wire_status, BoxError, CONTENT_TYPE, DEFAULT_MAX_BODY,
    NEED_SESSION_HEADER, SESSION_HEADER, STATUS_KEY,
};

/// Why a call through a [`ClientService`] failed. Only [`ClientError::Transport`] and
/// [`ClientError::Body`] are about the connection; the rest mean the service refused the
/// request or the response must not be used.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientError {
    /// The inner client failed (connection refused, reset, ...).
    Transport(BoxError),
    /// A body could not be read, or was larger than the limit.
    Body(BoxError),
    /// The request could not be sealed (too large, invalid metadata, ...).
    Seal(Misuse),
    /// The response is not sealed: the server refused the request (400 rejected, 415,
    /// 413, a 428 the client could not satisfy) or something between rewrote it. Its
    /// status is all there is, and it is not authenticated.
    NotSealed {
        /// The response's (unauthenticated) status.
        status: StatusCode,
    },
    /// The sealed response is not the reply to this request from the service: rejected
    /// envelope, wrong responder, not a reply, reply to another request
    /// ([`RpcError::kind`] says which).
    Reply(RpcError),
    /// The reply's authenticated status is missing or differs from the one on the wire.
    StatusMismatch,
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Transport(e) => write!(f, "the HTTP call failed: {e}"),
            ClientError::Body(e) => write!(f, "a body could not be read: {e}"),
            ClientError::Seal(m) => write!(f, "the request could not be sealed: {m}"),
            ClientError::NotSealed { status } => {
                write!(f, "the response ({status}) is not sealed: the server refused the request or the response was replaced")
            }
            ClientError::Reply(e) => write!(f, "the response was refused: {e}"),
            ClientError::StatusMismatch => {
                f.write_str("the response's status differs from the one the server sealed")
            }
        }
    }
}

impl std::error::Error for ClientError {}

struct Shared {
    sealer: Mutex<Sealer>,
    replies: Opener,
    service: PublicIdentity,
    max_body: usize,
}

/// Seals every request to one service and opens its responses (spec/http.md). Every call
/// through the layer (and the services it makes, on any connection) shares the sealer's
/// session: one signature and one HPKE seal per session, not per call. `Clone`.
#[derive(Clone)]
pub struct ClientLayer {
    shared: Arc<Shared>,
}

impl ClientLayer {
    /// A layer that seals with `sealer` (to `service`, [`rpcseal::Inline::FirstMessage`]
    /// is the intended policy) and opens replies with `replies` (this client's identity,
    /// trusting `service`).
    pub fn new(sealer: Sealer, replies: Opener, service: &PublicIdentity) -> ClientLayer {
        ClientLayer {
            shared: Arc::new(Shared {
                sealer: Mutex::new(sealer),
                replies,
                service: service.clone(),
                max_body: DEFAULT_MAX_BODY,
            }),
        }
    }

    /// The largest request or response body read (default [`DEFAULT_MAX_BODY`]).
    pub fn max_body(mut self, bytes: usize) -> ClientLayer {
        Arc::get_mut(&mut self.shared)
            .expect("configured before it is cloned")
            .max_body = bytes;
        self
    }
}

impl<S> tower_layer::Layer<S> for ClientLayer {
    type Service = ClientService<S>;

    fn layer(&self, inner: S) -> ClientService<S> {
        ClientService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service [`ClientLayer`] makes: `Request<B>` in, `Response<Full<Bytes>>` out with the
/// opened body and its authenticated status and content type. The inner client gets
/// `Request<Full<Bytes>>` (hyper-util's `Client<_, Full<Bytes>>`, for example).
#[derive(Clone)]
pub struct ClientService<S> {
    inner: S,
    shared: Arc<Shared>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, RB> tower_service::Service<Request<B>> for ClientService<S>
where
    S: tower_service::Service<Request<Full<Bytes>>, Response = Response<RB>>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    RB: Body<Data = Bytes> + Send + 'static,
    RB::Error: Into<BoxError>,
{
    type Response = Response<Full<Bytes>>;
    type Error = ClientError;
    type Future = BoxFuture<Result<Response<Full<Bytes>>, ClientError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ClientError>> {
        self.inner
            .poll_ready(cx)
            .map_err(|e| ClientError::Transport(e.into()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        Box::pin(call(shared, inner, req))
    }
}

async fn collect<B>(body: B, max: usize) -> Result<Bytes, ClientError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    Limited::new(body, max)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(ClientError::Body)
}

async fn call<S, B, RB>(
    shared: Arc<Shared>,
    mut inner: S,
    req: Request<B>,
) -> Result<Response<Full<Bytes>>, ClientError>
where
    S: tower_service::Service<Request<Full<Bytes>>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
    RB: Body<Data = Bytes>,
    RB::Error: Into<BoxError>,
{
    let (mut parts, body) = req.into_parts();
    let body = collect(body, shared.max_body).await?;

    // spec/http.md §3: the route and the body's content type are authenticated.
    let mut meta = Metadata::new();
    meta.insert(METHOD.into(), method_binding(&parts.method, &parts.uri));
    if let Some(ct) = parts.headers.get(header::CONTENT_TYPE) {
        let ct = ct
            .to_str()
            .map_err(|_| ClientError::Seal(Misuse::InvalidMetadata("content-type is not text")))?;
        meta.insert(META_CONTENT_TYPE.into(), ct.to_owned());
    }
    // The sealer is locked while sealing, not while signing: calls sign in parallel.
    let (unsigned, pending) = shared
        .sealer
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .seal_request_unsigned(&body, &meta, &shared.service)
        .map_err(ClientError::Seal)?;
    let envelope = Bytes::from(unsigned.finish());
    parts.headers.remove(header::CONTENT_LENGTH);
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    let retry = (
        parts.method.clone(),
        parts.uri.clone(),
        parts.version,
        parts.headers.clone(),
    );

    let mut resp = inner
        .call(Request::from_parts(parts, Full::new(envelope.clone())))
        .await
        .map_err(|e| ClientError::Transport(e.into()))?;

    // spec/http.md §5: the server lacks the session; send the same envelope again with its
    // block, once.
    if resp.status() == StatusCode::PRECONDITION_REQUIRED {
        let block = resp
            .headers()
            .get(NEED_SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(NeedSession::parse)
            .and_then(|need| {
                let sealer = shared.sealer.lock().unwrap_or_else(|p| p.into_inner());
                sealer
                    .session_block_for(&need.session_ref())
                    .map(|b| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
            });
        if let Some(block) = block {
            let (method, uri, version, headers) = retry;
            let mut again = Request::new(Full::new(envelope));
            *again.method_mut() = method;
            *again.uri_mut() = uri;
            *again.version_mut() = version;
            *again.headers_mut() = headers;
            again.headers_mut().insert(
                SESSION_HEADER,
                HeaderValue::from_str(&block).expect("base64url is a header value"),
            );
            resp = inner
                .call(again)
                .await
                .map_err(|e| ClientError::Transport(e.into()))?;
        }
    }

    let (mut rparts, rbody) = resp.into_parts();
    if !is_sealed(&rparts.headers) {
        return Err(ClientError::NotSealed {
            status: rparts.status,
        });
    }
    let sealed = collect(rbody, shared.max_body).await?;
    let opened = pending
        .open_reply(&shared.replies, &sealed)
        .map_err(ClientError::Reply)?;

    // spec/http.md §4: the status the handler answered with is the sealed one.
    let status = opened
        .metadata
        .get(STATUS_KEY)
        .filter(|s| s.len() == 3 && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| StatusCode::from_bytes(s.as_bytes()).ok())
        .ok_or(ClientError::StatusMismatch)?;
    if wire_status(status) != rparts.status {
        return Err(ClientError::StatusMismatch);
    }
    rparts.status = status;
    rparts.headers.remove(header::CONTENT_LENGTH);
    rparts.headers.remove(header::CONTENT_TYPE);
    if let Some(ct) = opened.metadata.get(META_CONTENT_TYPE) {
        let v = HeaderValue::from_str(ct).map_err(|_| ClientError::StatusMismatch)?;
        rparts.headers.insert(header::CONTENT_TYPE, v);
    }
    rparts.extensions.insert(opened.session.clone());
    Ok(Response::from_parts(
        rparts,
        Full::new(Bytes::from(opened.payload)),
    ))
}
