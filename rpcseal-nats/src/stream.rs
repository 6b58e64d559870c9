//! Sealed envelopes at rest in JetStream (spec/nats.md §7, spec/replay.md §2.1, §2.2).

use std::sync::Mutex;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::PullConsumer, AckKind};
use bytes::Bytes;
use futures_util::StreamExt;
use rpcseal::{ErrorKind, Metadata, Opened, Opener, Sealer};

use crate::{HandlerError, PublishError};

/// Publishes sealed envelopes to a JetStream stream. The server stores only ciphertext
/// (and the cleartext metadata and header of each envelope): it holds no key. The sealer
/// should use [`rpcseal::Inline::Always`]: a consumer that reads the stream later, or from
/// the middle, has no way to ask for a block (spec/rpc.md §6.4).
pub struct StreamPublisher {
    js: jetstream::Context,
    subject: String,
    sealer: Mutex<Sealer>,
}

impl StreamPublisher {
    /// A publisher sealing with `sealer` to the stream subject `subject`.
    pub fn new(js: jetstream::Context, subject: impl Into<String>, sealer: Sealer) -> Self {
        StreamPublisher {
            js,
            subject: subject.into(),
            sealer: Mutex::new(sealer),
        }
    }

    /// Seals and publishes one message and waits for the stream's acknowledgement: the
    /// message is stored when this returns its stream sequence number.
    pub async fn publish(&self, payload: &[u8], metadata: &Metadata) -> Result<u64, PublishError> {
        // Locked while sealing, not while signing (the guard ends with the statement).
        let unsigned = self
            .sealer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .seal_unsigned(payload, metadata)
            .map_err(PublishError::Seal)?;
        let env = unsigned.finish();
        let ack = self
            .js
            .publish(self.subject.clone(), Bytes::from(env))
            .await
            .map_err(|e| PublishError::Transport(e.to_string()))?
            .await
            .map_err(|e| PublishError::Transport(e.to_string()))?;
        Ok(ack.sequence)
    }
}

/// What a [`StreamConsumer`] did with one stored message.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamOutcome {
    /// Opened, handled, marked, acknowledged.
    Processed {
        /// The message's stream sequence number.
        stream_seq: u64,
    },
    /// The handler failed: not marked, negatively acknowledged; the stream redelivers it.
    HandlerFailed {
        /// The message's stream sequence number.
        stream_seq: u64,
    },
    /// Already marked (a redelivery of a message processed before, whose acknowledgement
    /// was lost): not handled, acknowledged so that it stops coming.
    AlreadyProcessed {
        /// The message's stream sequence number.
        stream_seq: u64,
    },
    /// Handled, but its mark failed as `replayed`: another delivery of the same message was
    /// handled and marked meanwhile (the window of spec/replay.md §2.1). Acknowledged.
    HandledTwice {
        /// The message's stream sequence number.
        stream_seq: u64,
    },
    /// The replay store was unavailable (before or after the handler): not marked,
    /// negatively acknowledged, redelivered later.
    Deferred {
        /// The message's stream sequence number.
        stream_seq: u64,
        /// The error class.
        kind: &'static str,
    },
    /// The envelope can never be accepted (tampered, forged, untrusted, too old):
    /// terminated, so the stream stops redelivering it. Logged with its class.
    Rejected {
        /// The message's stream sequence number.
        stream_seq: u64,
        /// The error class.
        kind: &'static str,
    },
}

/// A durable pull consumer of sealed envelopes, processing each message in the order of
/// spec/nats.md §7: open without marking (every check, the read-only replay check
/// included) → handle → mark in the replay store → acknowledge. A message is never marked
/// before its handler succeeded, and never acknowledged before it was marked.
///
/// The consumer's `ack_wait` must be longer than the handler's deadline (spec/replay.md
/// §2.1), and the opener's [`rpcseal::Policy::max_stored_age`] should be the stream's
/// retention (spec/replay.md §2.2), or stored messages older than the clock skew are
/// rejected.
pub struct StreamConsumer {
    consumer: PullConsumer,
    opener: Opener,
}

impl StreamConsumer {
    /// A consumer of `consumer`'s messages, opening them with `opener`.
    pub fn new(consumer: PullConsumer, opener: Opener) -> StreamConsumer {
        StreamConsumer { consumer, opener }
    }

    /// The opener.
    pub fn opener(&self) -> &Opener {
        &self.opener
    }

    /// Fetches up to `max` messages, waiting at most `expires` for them, and processes each
    /// with `handler`. Returns one outcome per message received.
    pub async fn process<H>(
        &self,
        max: usize,
        expires: Duration,
        mut handler: H,
    ) -> Result<Vec<StreamOutcome>, async_nats::Error>
    where
        H: FnMut(&Opened) -> Result<(), HandlerError>,
    {
        let mut batch = self
            .consumer
            .fetch()
            .max_messages(max)
            .expires(expires)
            .messages()
            .await?;
        let mut out = Vec::new();
        while let Some(msg) = batch.next().await {
            let msg = msg?;
            out.push(self.one(&msg, &mut handler).await?);
        }
        Ok(out)
    }

    async fn one<H>(
        &self,
        msg: &jetstream::Message,
        handler: &mut H,
    ) -> Result<StreamOutcome, async_nats::Error>
    where
        H: FnMut(&Opened) -> Result<(), HandlerError>,
    {
        let stream_seq = msg.info().map(|i| i.stream_sequence).unwrap_or(0);
        // 1. Open, every check, the replay check read-only.
        let (opened, mark) = match self.opener.open_unmarked(&msg.payload) {
            Ok(x) => x,
            Err(e) => {
                let kind = e.kind().as_str();
                tracing::warn!(subject = %msg.subject, stream_seq, kind, "rpcseal-nats: stored message refused");
                return Ok(match e.kind() {
                    ErrorKind::Replayed => {
                        msg.double_ack().await?;
                        StreamOutcome::AlreadyProcessed { stream_seq }
                    }
                    ErrorKind::ReplayUnavailable => {
                        msg.ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                            .await?;
                        StreamOutcome::Deferred { stream_seq, kind }
                    }
                    _ => {
                        msg.ack_with(AckKind::Term).await?;
                        StreamOutcome::Rejected { stream_seq, kind }
                    }
                });
            }
        };
        // 2. Handle.
        if let Err(HandlerError(text)) = handler(&opened) {
            tracing::warn!(subject = %msg.subject, stream_seq, error = %text, "rpcseal-nats: handler failed");
            drop(mark);
            msg.ack_with(AckKind::Nak(None)).await?;
            return Ok(StreamOutcome::HandlerFailed { stream_seq });
        }
        // 3. Mark, then 4. acknowledge.
        match self.opener.mark(mark) {
            Ok(()) => {
                msg.double_ack().await?;
                Ok(StreamOutcome::Processed { stream_seq })
            }
            Err(e) if e.kind() == ErrorKind::Replayed => {
                tracing::warn!(subject = %msg.subject, stream_seq, "rpcseal-nats: message handled twice");
                msg.double_ack().await?;
                Ok(StreamOutcome::HandledTwice { stream_seq })
            }
            Err(e) => {
                let kind = e.kind().as_str();
                tracing::warn!(subject = %msg.subject, stream_seq, kind, "rpcseal-nats: mark failed");
                msg.ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                    .await?;
                Ok(StreamOutcome::Deferred { stream_seq, kind })
            }
        }
    }
}
