//! The client side of request/reply (spec/nats.md §3, spec/rpc.md §5).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::{HeaderMap, Message, StatusCode};
use bytes::Bytes;
use futures_util::StreamExt;
use rpcseal::rpc::{self, NeedSession, RpcError};
use rpcseal::{ErrorKind, Metadata, Misuse, Opened, Opener, PublicIdentity, Sealer};
use tokio::sync::mpsc;

use crate::{
    frame, header, inline_block_len, HEADER_BLOCK, HEADER_ERROR, HEADER_NEED_SESSION,
    HEADER_RESEND_TO,
};

/// How often one call answers a need-session signal (a second signal for the same call
/// means the block did not help; a third is ignored).
const MAX_BLOCK_RESENDS: u32 = 2;

/// Why a call failed. Every variant means: no reply was accepted; whether the service
/// handled the request is unknown, except for [`CallError::Seal`] (nothing was sent).
#[derive(Debug)]
#[non_exhaustive]
pub enum CallError {
    /// The request could not be sealed (caller misuse: reserved metadata, size). Nothing
    /// was sent.
    Seal(Misuse),
    /// No service subscribes to the subject (the server's 503 status).
    NoResponders,
    /// No acceptable reply within the call's timeout. `rejected` is the last reply the
    /// client refused meanwhile (a reply to another request, from another identity, a
    /// replay, a forgery), if any: what a caller may log.
    Timeout {
        /// The last refused reply, if any.
        rejected: Option<RpcError>,
    },
    /// A reply that cannot be accepted and will not get better by waiting: its session is
    /// unknown to this client (spec/rpc.md §6.3; rotate the request session before a
    /// retry).
    Reply(RpcError),
    /// The service refused the request and said why ([`crate::HEADER_ERROR`], for example
    /// `replayed`, `untrusted_sender`, `handler_failed`). The signal is unauthenticated:
    /// anyone on the path could have sent it (as anyone on the path can drop a request).
    Refused {
        /// The error class the service reported.
        kind: String,
    },
    /// The connection to the NATS server failed.
    Transport(String),
}

impl CallError {
    /// A stable snake_case class.
    pub fn kind(&self) -> &str {
        match self {
            CallError::Seal(_) => "seal_failed",
            CallError::NoResponders => "no_responders",
            CallError::Timeout { .. } => "timeout",
            CallError::Reply(e) => e.kind(),
            CallError::Refused { kind } => kind,
            CallError::Transport(_) => "transport",
        }
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Seal(e) => write!(f, "the request could not be sealed: {e}"),
            CallError::NoResponders => {
                f.write_str("no service listens on the subject (no_responders)")
            }
            CallError::Timeout { rejected: None } => f.write_str("no reply in time (timeout)"),
            CallError::Timeout { rejected: Some(e) } => {
                write!(
                    f,
                    "no acceptable reply in time (timeout); last refused reply: {e}"
                )
            }
            CallError::Reply(e) => write!(f, "the reply was refused: {e}"),
            CallError::Refused { kind } => {
                write!(
                    f,
                    "the service refused the request ({kind}; unauthenticated signal)"
                )
            }
            CallError::Transport(e) => write!(f, "NATS: {e}"),
        }
    }
}

impl std::error::Error for CallError {}

/// What a [`Client`] sent: for the fraction of bytes spent on session blocks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Requests sent (each counted once, however often its block was asked for).
    pub requests: u64,
    /// Bytes of request payloads published, blocks included.
    pub bytes_sent: u64,
    /// Of those, bytes of session blocks (inline in an envelope, or beside it).
    pub block_bytes_sent: u64,
    /// Need-session signals answered with a block.
    pub blocks_resent: u64,
    /// Bytes of replies received.
    pub bytes_received: u64,
    /// Of those, bytes of session blocks inline in replies.
    pub block_bytes_received: u64,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    bytes_sent: AtomicU64,
    block_bytes_sent: AtomicU64,
    blocks_resent: AtomicU64,
    bytes_received: AtomicU64,
    block_bytes_received: AtomicU64,
}

type Pending = Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Message>>>>;

/// A client of one service (spec/nats.md §3): seals requests to the service's identity,
/// publishes them to the service's subject with a reply subject of its own, and accepts
/// only the reply bound to each request, from that service, once.
///
/// One subscription (`<inbox>.*`) receives the replies of every call; each call has its own
/// reply subject under it, which the request authenticates as `rpc.reply-to`. Calls may
/// run concurrently (`&self`); the sealer is locked only while sealing. Dropping the client
/// ends its subscription.
pub struct Client {
    nats: async_nats::Client,
    subject: String,
    service: PublicIdentity,
    sealer: Mutex<Sealer>,
    replies: Arc<Opener>,
    inbox: String,
    next: AtomicU64,
    pending: Pending,
    timeout: Duration,
    counters: Counters,
    dispatcher: tokio::task::JoinHandle<()>,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.dispatcher.abort();
    }
}

impl Client {
    /// A client calling the service `service` on `subject`. `sealer` seals to `service`
    /// (its recipients: the service's identity, or a key the service holds) and should use
    /// [`rpcseal::Inline::FirstMessage`]; `replies` opens the service's replies (it holds
    /// the client's identity and trusts the service). Calls time out after 5 s unless
    /// [`Client::with_timeout`] says otherwise.
    pub async fn new(
        nats: async_nats::Client,
        subject: impl Into<String>,
        service: PublicIdentity,
        sealer: Sealer,
        replies: Opener,
    ) -> Result<Client, CallError> {
        let inbox = nats.new_inbox();
        let mut sub = nats
            .subscribe(format!("{inbox}.*"))
            .await
            .map_err(|e| CallError::Transport(e.to_string()))?;
        let pending: Pending = Arc::default();
        let table = pending.clone();
        let dispatcher = tokio::spawn(async move {
            while let Some(msg) = sub.next().await {
                let tx = table
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(msg.subject.as_str())
                    .cloned();
                match tx {
                    Some(tx) => {
                        let _ = tx.send(msg);
                    }
                    None => tracing::debug!(
                        subject = %msg.subject,
                        "rpcseal-nats: a message for no call in flight, dropped"
                    ),
                }
            }
        });
        nats.flush()
            .await
            .map_err(|e| CallError::Transport(e.to_string()))?;
        Ok(Client {
            nats,
            subject: subject.into(),
            service,
            sealer: Mutex::new(sealer),
            replies: Arc::new(replies),
            inbox,
            next: AtomicU64::new(0),
            pending,
            timeout: Duration::from_secs(5),
            counters: Counters::default(),
            dispatcher,
        })
    }

    /// The time a call waits for an acceptable reply.
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    /// The opener of replies (its replay store, its statistics).
    pub fn replies(&self) -> &Opener {
        &self.replies
    }

    /// Counters of what was sent and received.
    pub fn stats(&self) -> ClientStats {
        let c = &self.counters;
        ClientStats {
            requests: c.requests.load(Ordering::Relaxed),
            bytes_sent: c.bytes_sent.load(Ordering::Relaxed),
            block_bytes_sent: c.block_bytes_sent.load(Ordering::Relaxed),
            blocks_resent: c.blocks_resent.load(Ordering::Relaxed),
            bytes_received: c.bytes_received.load(Ordering::Relaxed),
            block_bytes_received: c.block_bytes_received.load(Ordering::Relaxed),
        }
    }

    /// Starts a new request session: the next request carries its block inline. After a
    /// reply failed with `unknown_session` (spec/rpc.md §6.3), before a retry.
    pub fn rotate(&self) {
        self.sealer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .rotate();
    }

    /// Calls `method` with `payload`: seals the request (with `rpc.method` and the
    /// authenticated `rpc.reply-to`), publishes it, answers the service's need-session
    /// signal with the block, and returns the first reply that passes every check of
    /// spec/rpc.md §5. `metadata` may carry application keys (and `rpc.id`,
    /// `rpc.content-type`).
    pub async fn call(
        &self,
        method: &str,
        payload: &[u8],
        metadata: &Metadata,
    ) -> Result<Opened, CallError> {
        let reply_to = format!(
            "{}.{}",
            self.inbox,
            self.next.fetch_add(1, Ordering::Relaxed)
        );
        let mut meta = metadata.clone();
        meta.insert(rpc::METHOD.into(), method.into());
        meta.insert(rpc::REPLY_TO.into(), reply_to.clone());
        // The sealer is locked while sealing, not while signing: calls sign in parallel.
        let (unsigned, pending, session_ref) = {
            let mut s = self.sealer.lock().unwrap_or_else(|p| p.into_inner());
            let (e, p) = s
                .seal_request_unsigned(payload, &meta, &self.service)
                .map_err(CallError::Seal)?;
            (e, p, s.session_ref())
        };
        let envelope = unsigned.finish();
        let (tx, mut rx) = mpsc::unbounded_channel();
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(reply_to.clone(), tx);
        let _guard = Forget(&self.pending, &reply_to);

        let envelope = Bytes::from(envelope);
        self.count_sent(envelope.len(), inline_block_len(&envelope));
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        self.nats
            .publish_with_reply(self.subject.clone(), reply_to.clone(), envelope.clone())
            .await
            .map_err(|e| CallError::Transport(e.to_string()))?;

        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut rejected: Option<RpcError> = None;
        let mut resent = 0;
        loop {
            let msg = match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(m)) => m,
                Ok(None) => {
                    return Err(CallError::Transport("the reply subscription ended".into()))
                }
                Err(_) => return Err(CallError::Timeout { rejected }),
            };
            if msg.status == Some(StatusCode::NO_RESPONDERS) {
                return Err(CallError::NoResponders);
            }
            if let Some(v) = header(&msg, HEADER_NEED_SESSION) {
                // spec/nats.md §4: the same envelope again, with the block beside it.
                let Some(need) = NeedSession::parse(v) else {
                    continue;
                };
                if Some(need.session_ref()) != session_ref || resent >= MAX_BLOCK_RESENDS {
                    continue;
                }
                let block = {
                    let s = self.sealer.lock().unwrap_or_else(|p| p.into_inner());
                    s.session_block_for(&need.session_ref()).map(<[u8]>::to_vec)
                };
                let Some(block) = block else { continue };
                // To the asking replica's own subject when it named one that is a valid
                // subject (no wildcards, no spaces), else to the service's subject.
                let to = match header(&msg, HEADER_RESEND_TO) {
                    Some(d) if valid_subject(d) => d.to_string(),
                    _ => self.subject.clone(),
                };
                resent += 1;
                self.counters.blocks_resent.fetch_add(1, Ordering::Relaxed);
                self.count_sent(block.len() + envelope.len(), block.len());
                let mut h = HeaderMap::new();
                h.insert(HEADER_BLOCK, block.len().to_string().as_str());
                self.nats
                    .publish_with_reply_and_headers(
                        to,
                        reply_to.clone(),
                        h,
                        Bytes::from(frame(&block, &envelope)),
                    )
                    .await
                    .map_err(|e| CallError::Transport(e.to_string()))?;
                continue;
            }
            if let Some(kind) = header(&msg, HEADER_ERROR) {
                let kind: String = kind
                    .chars()
                    .take(64)
                    .filter(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                return Err(CallError::Refused { kind });
            }
            self.counters
                .bytes_received
                .fetch_add(msg.payload.len() as u64, Ordering::Relaxed);
            self.counters
                .block_bytes_received
                .fetch_add(inline_block_len(&msg.payload) as u64, Ordering::Relaxed);
            match pending.open_reply(&self.replies, &msg.payload) {
                Ok(opened) => return Ok(opened),
                Err(e) => {
                    tracing::warn!(
                        subject = %msg.subject,
                        kind = e.kind(),
                        "rpcseal-nats: reply refused"
                    );
                    if e.rejection().map(|r| r.kind()) == Some(ErrorKind::UnknownSession) {
                        return Err(CallError::Reply(e));
                    }
                    rejected = Some(e);
                }
            }
        }
    }

    fn count_sent(&self, bytes: usize, block: usize) {
        self.counters
            .bytes_sent
            .fetch_add(bytes as u64, Ordering::Relaxed);
        self.counters
            .block_bytes_sent
            .fetch_add(block as u64, Ordering::Relaxed);
    }
}

/// A subject a client may publish to: non-empty tokens of printable ASCII, no wildcard.
fn valid_subject(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s.split('.').all(|t| {
            !t.is_empty() && t != "*" && t != ">" && t.bytes().all(|b| b.is_ascii_graphic())
        })
}

/// Removes a call from the table when it ends, however it ends.
struct Forget<'a>(&'a Pending, &'a str);

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(self.1);
    }
}
