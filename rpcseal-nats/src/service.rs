//! The service side of request/reply (spec/nats.md §3 to §5, spec/rpc.md §4).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_nats::{HeaderMap, Message};
use bytes::Bytes;
use futures_util::StreamExt;
use rpcseal::rpc::{NeedSession, RequestContext, Responder};
use rpcseal::{Metadata, Opened, Opener};

use crate::{
    header, inline_block_len, unframe, HEADER_BLOCK, HEADER_ERROR, HEADER_NEED_SESSION,
    HEADER_RESEND_TO,
};

/// A handler's answer: the reply's payload and application metadata (`rpc.in-reply-to` is
/// added by the service; `rpc.id` and `rpc.content-type` may be set).
#[derive(Clone, Debug, Default)]
pub struct Reply {
    /// The reply's payload.
    pub payload: Vec<u8>,
    /// Application metadata of the reply.
    pub metadata: Metadata,
}

impl From<Vec<u8>> for Reply {
    fn from(payload: Vec<u8>) -> Reply {
        Reply {
            payload,
            metadata: Metadata::new(),
        }
    }
}

/// A handler's failure. The client gets the `handler_failed` signal; the text stays in the
/// service's log.
#[derive(Clone, Debug)]
pub struct HandlerError(pub String);

/// What the service did with one message.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// Handled, and the reply sent to the authenticated reply subject.
    Replied,
    /// Handled; the request named no reply subject (a cast), so nothing was sent.
    Handled,
    /// The request's session is unknown here: the need-session signal was sent, nothing
    /// else happened.
    NeedSession,
    /// Refused: the error class (spec/rpc.md §7, spec/envelope-v3.md §9). No state changed
    /// (except a session block that passed every check, which may be cached).
    Rejected(&'static str),
    /// The handler failed; the request was marked (it was accepted) and the client told.
    HandlerFailed,
}

/// Counters of a service's outcomes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServiceStats {
    /// Requests handled (replied or not).
    pub handled: u64,
    /// Messages refused.
    pub rejected: u64,
    /// Need-session signals sent.
    pub need_session: u64,
    /// Handler failures.
    pub handler_failed: u64,
    /// Bytes of replies sent.
    pub reply_bytes: u64,
    /// Of those, bytes of session blocks inline in replies.
    pub reply_block_bytes: u64,
}

#[derive(Default)]
struct Counters {
    handled: AtomicU64,
    rejected: AtomicU64,
    need_session: AtomicU64,
    handler_failed: AtomicU64,
    reply_bytes: AtomicU64,
    reply_block_bytes: AtomicU64,
}

/// A service (spec/nats.md §3): opens requests, hands them to a handler, seals replies to
/// the client alone, bound to the request, and sends them to the reply subject the client
/// authenticated, and only if the broker delivered that same subject.
///
/// Several replicas of a service share one subject as a NATS queue group; they share replay
/// state only through the opener's replay store (a Redis store for a fleet), so a request
/// replayed to any of them is refused.
pub struct Service {
    nats: async_nats::Client,
    opener: Arc<Opener>,
    responder: Arc<Responder>,
    counters: Counters,
}

impl Service {
    /// A service answering with `responder` (its identity, a reply session per client)
    /// the requests `opener` accepts (the service's identity, the trusted clients, the
    /// replay store).
    pub fn new(nats: async_nats::Client, opener: Opener, responder: Responder) -> Service {
        Service {
            nats,
            opener: Arc::new(opener),
            responder: Arc::new(responder),
            counters: Counters::default(),
        }
    }

    /// The opener of requests.
    pub fn opener(&self) -> &Opener {
        &self.opener
    }

    /// Counters of outcomes.
    pub fn stats(&self) -> ServiceStats {
        let c = &self.counters;
        ServiceStats {
            handled: c.handled.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            need_session: c.need_session.load(Ordering::Relaxed),
            handler_failed: c.handler_failed.load(Ordering::Relaxed),
            reply_bytes: c.reply_bytes.load(Ordering::Relaxed),
            reply_block_bytes: c.reply_block_bytes.load(Ordering::Relaxed),
        }
    }

    /// Serves `subject` (in the queue group `queue`, if given) until the subscription ends,
    /// handling one message at a time. Never returns an error for a message: every
    /// message gets an [`Outcome`].
    pub async fn serve<H>(
        &self,
        subject: &str,
        queue: Option<&str>,
        handler: H,
    ) -> Result<(), async_nats::Error>
    where
        H: Fn(&Opened) -> Result<Reply, HandlerError>,
    {
        let mut sub = match queue {
            Some(q) => {
                self.nats
                    .queue_subscribe(subject.to_string(), q.to_string())
                    .await?
            }
            None => self.nats.subscribe(subject.to_string()).await?,
        };
        // spec/nats.md §4: a subject of this replica's own, where a client sends the
        // block this replica asked for.
        let direct = self.nats.new_inbox();
        let mut direct_sub = self.nats.subscribe(direct.clone()).await?;
        self.nats.flush().await?;
        loop {
            let msg = tokio::select! {
                m = sub.next() => m,
                m = direct_sub.next() => m,
            };
            let Some(msg) = msg else { break };
            self.handle_at(&msg, Some(&direct), &handler).await;
        }
        Ok(())
    }

    /// Handles one message as [`Service::serve`] does (without a subject of its own for
    /// blocks: a need-session signal then asks for the block on the service's subject).
    pub async fn handle<H>(&self, msg: &Message, handler: &H) -> Outcome
    where
        H: Fn(&Opened) -> Result<Reply, HandlerError>,
    {
        self.handle_at(msg, None, handler).await
    }

    async fn handle_at<H>(&self, msg: &Message, direct: Option<&str>, handler: &H) -> Outcome
    where
        H: Fn(&Opened) -> Result<Reply, HandlerError>,
    {
        let delivered = msg.reply.as_ref().map(|s| s.as_str());
        let outcome = self.process(msg, delivered, direct, handler).await;
        let c = &self.counters;
        match &outcome {
            Outcome::Replied | Outcome::Handled => c.handled.fetch_add(1, Ordering::Relaxed),
            Outcome::NeedSession => c.need_session.fetch_add(1, Ordering::Relaxed),
            Outcome::Rejected(_) => c.rejected.fetch_add(1, Ordering::Relaxed),
            Outcome::HandlerFailed => c.handler_failed.fetch_add(1, Ordering::Relaxed),
        };
        outcome
    }

    async fn process<H>(
        &self,
        msg: &Message,
        delivered: Option<&str>,
        direct: Option<&str>,
        handler: &H,
    ) -> Outcome
    where
        H: Fn(&Opened) -> Result<Reply, HandlerError>,
    {
        // spec/nats.md §3: a block beside the envelope is imported first, as a block
        // received out of band (spec/envelope-v3.md §8, last paragraph).
        let envelope: &[u8] = match header(msg, HEADER_BLOCK) {
            None => &msg.payload,
            Some(len) => match unframe(len, &msg.payload) {
                None => return self.refuse(msg, delivered, "malformed").await,
                Some((block, envelope)) => {
                    if let Err(e) = self.opener.import_session(block) {
                        return self.refuse(msg, delivered, e.kind().as_str()).await;
                    }
                    envelope
                }
            },
        };
        let (opened, mark) = match self.opener.open_unmarked(envelope) {
            Ok(x) => x,
            Err(e) => {
                if let Some(need) = NeedSession::from_rejection(envelope, &e) {
                    // spec/rpc.md §6.1: ask for the block, to the delivered reply subject
                    // (nothing was authenticated yet); handle nothing.
                    tracing::info!(subject = %msg.subject, session = %need, "rpcseal-nats: need-session");
                    if let Some(to) = delivered {
                        let mut h = HeaderMap::new();
                        h.insert(HEADER_NEED_SESSION, need.to_string().as_str());
                        if let Some(d) = direct {
                            h.insert(HEADER_RESEND_TO, d);
                        }
                        let _ = self
                            .nats
                            .publish_with_headers(to.to_string(), h, Bytes::new())
                            .await;
                    }
                    return Outcome::NeedSession;
                }
                return self.refuse(msg, delivered, e.kind().as_str()).await;
            }
        };
        let ctx = match RequestContext::new(&self.opener, &opened) {
            Ok(c) => c,
            Err(e) => return self.refuse(msg, delivered, e.kind()).await,
        };
        // spec/rpc.md §4.3: the broker's reply subject must be the authenticated one.
        if let Err(e) = ctx.check_reply_to(delivered) {
            // Told to the authenticated address, where the client listens.
            return self.refuse(msg, ctx.reply_to(), e.kind()).await;
        }
        // Request/reply marks before handling: a request is handled at most once.
        if let Err(e) = self.opener.mark(mark) {
            return self.refuse(msg, ctx.reply_to(), e.kind().as_str()).await;
        }
        let reply = match handler(&opened) {
            Ok(r) => r,
            Err(HandlerError(text)) => {
                tracing::warn!(subject = %msg.subject, error = %text, "rpcseal-nats: handler failed");
                self.signal_error(ctx.reply_to(), "handler_failed").await;
                return Outcome::HandlerFailed;
            }
        };
        let Some(to) = ctx.reply_to() else {
            return Outcome::Handled;
        };
        let sealed = match self
            .responder
            .seal_reply(&ctx, &reply.payload, &reply.metadata)
        {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(subject = %msg.subject, error = %e, "rpcseal-nats: reply not sealed");
                self.signal_error(Some(to), "handler_failed").await;
                return Outcome::HandlerFailed;
            }
        };
        self.counters
            .reply_bytes
            .fetch_add(sealed.len() as u64, Ordering::Relaxed);
        self.counters
            .reply_block_bytes
            .fetch_add(inline_block_len(&sealed) as u64, Ordering::Relaxed);
        if let Err(e) = self.nats.publish(to.to_string(), Bytes::from(sealed)).await {
            tracing::warn!(subject = %msg.subject, error = %e, "rpcseal-nats: reply not sent");
        }
        Outcome::Replied
    }

    /// Logs a refusal (class and subject only) and tells `to`, if any.
    async fn refuse(&self, msg: &Message, to: Option<&str>, kind: &'static str) -> Outcome {
        tracing::warn!(subject = %msg.subject, kind, "rpcseal-nats: request refused");
        self.signal_error(to, kind).await;
        Outcome::Rejected(kind)
    }

    async fn signal_error(&self, to: Option<&str>, kind: &str) {
        if let Some(to) = to {
            let mut h = HeaderMap::new();
            h.insert(HEADER_ERROR, kind);
            let _ = self
                .nats
                .publish_with_headers(to.to_string(), h, Bytes::new())
                .await;
        }
    }
}
