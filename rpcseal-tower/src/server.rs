//! The server layer (spec/http.md §3, §4, §5).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use base64::Engine as _;
use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use rpcseal::rpc::{NeedSession, RequestContext, Responder, CONTENT_TYPE as META_CONTENT_TYPE};
use rpcseal::{ErrorKind, KeyId, Metadata, Opener, SessionFacts};

use crate::{
    is_sealed, method_binding, wire_status, BoxError, CONTENT_TYPE, DEFAULT_MAX_BODY,
    NEED_SESSION_HEADER, SESSION_HEADER, STATUS_KEY,
};

/// Who sent a request and what it authenticated, in the request extensions of every
/// request the [`ServerLayer`] opened (`Extension<Caller>` in axum). Absent on unsealed
/// routes.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Caller {
    /// The verified sender's identity key id.
    pub sender: KeyId,
    /// The sender's name in the opener's keyring (its key id in hex when unnamed).
    pub sender_name: Arc<str>,
    /// The request's authenticated metadata (`rpc.method`, `rpc.content-type`, the
    /// client's own keys).
    pub metadata: Metadata,
    /// The request session, as its signed block states it.
    pub session: SessionFacts,
    /// The request's sequence number in its session.
    pub seq: u64,
    /// The sender's timestamp (unix seconds), checked against this server's clock.
    pub timestamp: u64,
    /// The request id (its message hash) that the response names (spec/rpc.md §3).
    pub request_id: [u8; 32],
}

struct Shared {
    opener: Opener,
    responder: Responder,
    unsealed: Vec<String>,
    max_body: usize,
}

/// Opens every request and seals every response of the service it wraps (spec/http.md).
/// `Clone`; one layer's opener and responder serve every connection.
#[derive(Clone)]
pub struct ServerLayer {
    shared: Arc<Shared>,
}

impl ServerLayer {
    /// A layer opening requests with `opener` (its identity, trusted callers, replay store
    /// and policy) and sealing responses with `responder` (one reply session per caller).
    pub fn new(opener: Opener, responder: Responder) -> ServerLayer {
        ServerLayer {
            shared: Arc::new(Shared {
                opener,
                responder,
                unsealed: Vec::new(),
                max_body: DEFAULT_MAX_BODY,
            }),
        }
    }

    /// Marks the route `path` (compared with the request path, byte for byte) as
    /// unsealed: its requests and responses pass through in plaintext, with no
    /// [`Caller`]. For health checks and the like; every other route answers a request
    /// without the rpcseal content type with 415.
    pub fn unsealed_route(mut self, path: &str) -> ServerLayer {
        self.shared_mut().unsealed.push(path.to_owned());
        self
    }

    /// The largest request body read (default [`DEFAULT_MAX_BODY`]); a larger one is 413.
    /// It also bounds the handler's response.
    pub fn max_body(mut self, bytes: usize) -> ServerLayer {
        self.shared_mut().max_body = bytes;
        self
    }

    fn shared_mut(&mut self) -> &mut Shared {
        Arc::get_mut(&mut self.shared).expect("configured before it is cloned")
    }
}

impl<S> tower_layer::Layer<S> for ServerLayer {
    type Service = ServerService<S>;

    fn layer(&self, inner: S) -> ServerService<S> {
        ServerService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service [`ServerLayer`] makes. The inner service gets `Request<Full<Bytes>>`
/// with the plaintext body; its errors pass through unchanged (axum's are `Infallible`).
#[derive(Clone)]
pub struct ServerService<S> {
    inner: S,
    shared: Arc<Shared>,
}

/// An empty answer with only a status: what a refused request gets. No body, no reason:
/// the server logs nothing either; a prober learns only the status (spec/http.md §6).
fn refuse(status: StatusCode) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = status;
    r
}

async fn read_body<B>(body: B, max: usize) -> Result<Bytes, StatusCode>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    match Limited::new(body, max).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(StatusCode::PAYLOAD_TOO_LARGE),
        Err(_) => Err(StatusCode::BAD_REQUEST),
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, RB> tower_service::Service<Request<B>> for ServerService<S>
where
    S: tower_service::Service<Request<Full<Bytes>>, Response = Response<RB>>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
    S::Error: Send,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    RB: Body<Data = Bytes> + Send + 'static,
    RB::Error: Into<BoxError>,
{
    type Response = Response<Full<Bytes>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<Full<Bytes>>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // The clone is the one that was not polled ready; swap so `self` keeps the ready one
        // for this call (tower's usual dance).
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        Box::pin(handle(shared, inner, req))
    }
}

async fn handle<S, B, RB>(
    shared: Arc<Shared>,
    mut inner: S,
    req: Request<B>,
) -> Result<Response<Full<Bytes>>, S::Error>
where
    S: tower_service::Service<Request<Full<Bytes>>, Response = Response<RB>>,
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
    RB: Body<Data = Bytes>,
    RB::Error: Into<BoxError>,
{
    let (parts, body) = req.into_parts();

    // spec/http.md §3.1: unsealed routes pass through; every other route takes only
    // envelopes.
    if shared.unsealed.iter().any(|p| p == parts.uri.path()) {
        let body = match read_body(body, shared.max_body).await {
            Ok(b) => b,
            Err(s) => return Ok(refuse(s)),
        };
        let resp = inner
            .call(Request::from_parts(parts, Full::new(body)))
            .await?;
        let (rparts, rbody) = resp.into_parts();
        return Ok(match read_body(rbody, shared.max_body).await {
            Ok(b) => Response::from_parts(rparts, Full::new(b)),
            Err(_) => refuse(StatusCode::INTERNAL_SERVER_ERROR),
        });
    }
    if !is_sealed(&parts.headers) {
        return Ok(refuse(StatusCode::UNSUPPORTED_MEDIA_TYPE));
    }
    let envelope = match read_body(body, shared.max_body).await {
        Ok(b) => b,
        Err(s) => return Ok(refuse(s)),
    };

    // spec/http.md §5: a block sent beside the envelope, after a 428.
    if let Some(v) = parts.headers.get(SESSION_HEADER) {
        let block = match base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(v.as_bytes()) {
            Ok(b) => b,
            Err(_) => return Ok(refuse(StatusCode::BAD_REQUEST)),
        };
        if shared.opener.import_session(&block).is_err() {
            return Ok(refuse(StatusCode::BAD_REQUEST));
        }
    }

    // spec/http.md §3.2: the full opening procedure, the request rules of spec/rpc.md
    // §4.1, the route binding; only then the replay mark.
    let (opened, mark) = match shared.opener.open_unmarked(&envelope) {
        Ok(o) => o,
        Err(e) => {
            if e.kind() == ErrorKind::UnknownSession {
                if let Some(need) = NeedSession::from_rejection(&envelope, &e) {
                    let mut r = refuse(StatusCode::PRECONDITION_REQUIRED);
                    r.headers_mut().insert(
                        NEED_SESSION_HEADER,
                        HeaderValue::from_str(&need.to_string()).expect("hex is a header value"),
                    );
                    return Ok(r);
                }
            }
            return Ok(refuse(StatusCode::BAD_REQUEST));
        }
    };
    // A reply address cannot be honoured: the reply travels on this connection
    // (spec/rpc.md §4.3, spec/http.md §3.1 step 5).
    let ctx = match RequestContext::new(&shared.opener, &opened) {
        Ok(c) if c.reply_to().is_none() => c,
        _ => return Ok(refuse(StatusCode::BAD_REQUEST)),
    };
    let route = method_binding(&parts.method, &parts.uri);
    if opened.metadata.get(rpcseal::rpc::METHOD) != Some(&route) {
        return Ok(refuse(StatusCode::BAD_REQUEST));
    }
    if shared.opener.mark(mark).is_err() {
        return Ok(refuse(StatusCode::BAD_REQUEST));
    }

    // The handler sees the plaintext with its authenticated content type.
    let mut parts = parts;
    parts.headers.remove(header::CONTENT_TYPE);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(SESSION_HEADER);
    if let Some(ct) = opened.metadata.get(META_CONTENT_TYPE) {
        match HeaderValue::from_str(ct) {
            Ok(v) => {
                parts.headers.insert(header::CONTENT_TYPE, v);
            }
            Err(_) => return Ok(refuse(StatusCode::BAD_REQUEST)),
        }
    }
    let rpcseal::Opened {
        payload,
        metadata,
        sender,
        sender_name,
        seq,
        timestamp,
        session,
        message_hash,
        ..
    } = opened;
    parts.extensions.insert(Caller {
        sender,
        sender_name,
        metadata,
        session,
        seq,
        timestamp,
        request_id: message_hash,
    });
    let resp = inner
        .call(Request::from_parts(parts, Full::new(Bytes::from(payload))))
        .await?;

    // spec/http.md §4: the response, sealed to the caller and bound to the request.
    let (mut rparts, rbody) = resp.into_parts();
    let body = match read_body(rbody, shared.max_body).await {
        Ok(b) => b,
        Err(_) => return Ok(refuse(StatusCode::INTERNAL_SERVER_ERROR)),
    };
    let mut meta = Metadata::new();
    meta.insert(STATUS_KEY.into(), rparts.status.as_u16().to_string());
    if let Some(ct) = rparts.headers.get(header::CONTENT_TYPE) {
        match ct.to_str() {
            Ok(ct) => {
                meta.insert(META_CONTENT_TYPE.into(), ct.to_owned());
            }
            Err(_) => return Ok(refuse(StatusCode::INTERNAL_SERVER_ERROR)),
        }
    }
    let sealed = match shared.responder.seal_reply(&ctx, &body, &meta) {
        Ok(s) => s,
        Err(_) => return Ok(refuse(StatusCode::INTERNAL_SERVER_ERROR)),
    };
    rparts.status = wire_status(rparts.status);
    rparts.headers.remove(header::CONTENT_LENGTH);
    rparts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    Ok(Response::from_parts(rparts, Full::new(Bytes::from(sealed))))
}
