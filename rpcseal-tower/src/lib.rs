//! rpcseal for HTTP services and clients built on tower (hyper, axum): every request body
//! is a sealed request envelope, every response body a reply sealed to the caller and
//! bound to its request. The normative HTTP binding is `spec/http.md`; every security check
//! is the `rpcseal` library's (`spec/rpc.md`), this crate only maps it onto HTTP.
//!
//! - [`ServerLayer`] opens every request (or answers 400 / 415 / 428 / 413 without a word
//!   about why), hands the handler the plaintext body with its original content type and a
//!   [`Caller`] in the request extensions, and seals the handler's response back to the
//!   caller, bound to the request.
//! - [`ClientLayer`] seals every request to one service and opens every response,
//!   refusing one that is not sealed, not from the service, or not bound to this request.
//!   All calls through one layer share one session; its block travels only when the
//!   server asks for it.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use axum::{routing::post, Extension, Router};
//! use rpcseal::rpc::Responder;
//! use rpcseal::{Identity, Inline, Mode, Opener, SealerConfig};
//! use rpcseal_tower::{Caller, ServerLayer};
//!
//! let service = Identity::generate();
//! let client = Identity::generate();
//! let opener = Opener::builder().identity(&service).trust(client.public()).build()?;
//! let responder = Responder::new(&service, SealerConfig::new(Mode::Mac).inline(Inline::FirstMessage), 1000)?;
//!
//! let app = Router::new()
//!     .route("/echo", post(|Extension(caller): Extension<Caller>, body: String| async move {
//!         format!("{} said {body}", caller.sender_name)
//!     }))
//!     .route("/health", axum::routing::get(|| async { "ok" }))
//!     .layer(ServerLayer::new(opener, responder).unsealed_route("/health"));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod client;
mod server;

pub use client::{ClientError, ClientLayer, ClientService};
pub use server::{Caller, ServerLayer, ServerService};

/// The media type of a body that is one rpcseal v3 envelope (spec/http.md §2).
pub const CONTENT_TYPE: &str = "application/rpcseal";
/// Request header: a session block sent beside an unchanged envelope, base64url without
/// padding (spec/http.md §5).
pub const SESSION_HEADER: &str = "rpcseal-session";
/// Response header of a 428 answer: the reference (32 lowercase hex digits) of the session
/// whose block the server lacks (spec/http.md §5).
pub const NEED_SESSION_HEADER: &str = "rpcseal-need-session";
/// Reply metadata key: the HTTP status the handler answered with, three digits
/// (spec/http.md §4).
pub const STATUS_KEY: &str = "http.status";
/// The largest body either layer reads by default: the library's largest payload plus room
/// for the envelope around it.
pub const DEFAULT_MAX_BODY: usize = rpcseal::DEFAULT_MAX_PAYLOAD + 64 * 1024;

/// Boxed errors, as tower and hyper pass them around.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The value of [`rpcseal::rpc::METHOD`] for an HTTP request: its method, one space, its
/// path and query (spec/http.md §3).
fn method_binding(method: &http::Method, uri: &http::Uri) -> String {
    let target = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    format!("{} {}", method.as_str(), target)
}

/// Statuses that must not carry a body travel as 200 (spec/http.md §4).
fn wire_status(status: http::StatusCode) -> http::StatusCode {
    if status.is_informational()
        || status == http::StatusCode::NO_CONTENT
        || status == http::StatusCode::NOT_MODIFIED
    {
        http::StatusCode::OK
    } else {
        status
    }
}

/// True when the `content-type` header is exactly [`CONTENT_TYPE`] (no parameters).
fn is_sealed(headers: &http::HeaderMap) -> bool {
    let values: Vec<_> = headers.get_all(http::header::CONTENT_TYPE).iter().collect();
    values.len() == 1 && values[0].as_bytes() == CONTENT_TYPE.as_bytes()
}
