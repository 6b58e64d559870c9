//! One-way messages to a group (spec/nats.md §6): 1:m and m:n publish/subscribe.

use std::fmt;
use std::sync::Mutex;

use bytes::Bytes;
use futures_util::StreamExt;
use rpcseal::{Error, Metadata, Misuse, Opened, Opener, Sealer};

/// Why a publication failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum PublishError {
    /// The message could not be sealed (caller misuse). Nothing was sent.
    Seal(Misuse),
    /// The NATS server refused or did not acknowledge the message.
    Transport(String),
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublishError::Seal(e) => write!(f, "the message could not be sealed: {e}"),
            PublishError::Transport(e) => write!(f, "NATS: {e}"),
        }
    }
}

impl std::error::Error for PublishError {}

/// A publisher to a group: seals once per message, to a group key (signed mode) or to a
/// list of members, and publishes the envelope to a subject every member subscribes to.
///
/// Subscribers cannot ask for a session block, so the sealer should use
/// [`rpcseal::Inline::Always`] (spec/rpc.md §6.4): a subscriber that joined late or
/// restarted opens the next message. Membership changes go through the sealer
/// ([`Publisher::update`]): removing a member starts a new session it cannot read.
pub struct Publisher {
    nats: async_nats::Client,
    subject: String,
    sealer: Mutex<Sealer>,
}

impl Publisher {
    /// A publisher sealing with `sealer` to `subject`.
    pub fn new(nats: async_nats::Client, subject: impl Into<String>, sealer: Sealer) -> Publisher {
        Publisher {
            nats,
            subject: subject.into(),
            sealer: Mutex::new(sealer),
        }
    }

    /// Seals `payload` and publishes it. Returns the envelope's size in bytes.
    pub async fn publish(
        &self,
        payload: &[u8],
        metadata: &Metadata,
    ) -> Result<usize, PublishError> {
        // Locked while sealing, not while signing (the guard ends with the statement).
        let unsigned = self
            .sealer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .seal_unsigned(payload, metadata)
            .map_err(PublishError::Seal)?;
        let env = unsigned.finish();
        let n = env.len();
        self.nats
            .publish(self.subject.clone(), Bytes::from(env))
            .await
            .map_err(|e| PublishError::Transport(e.to_string()))?;
        Ok(n)
    }

    /// Changes the sealer (recipients, rotation) under its lock, for example
    /// `p.update(|s| s.remove_recipients(&[id]))`.
    pub fn update<R>(&self, f: impl FnOnce(&mut Sealer) -> R) -> R {
        f(&mut self.sealer.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Waits until the server has received everything published so far.
    pub async fn flush(&self) -> Result<(), PublishError> {
        self.nats
            .flush()
            .await
            .map_err(|e| PublishError::Transport(e.to_string()))
    }
}

/// A member's subscription to a group subject: every message opened by the member's
/// opener (its identity or the group key, the publishers it trusts).
pub struct Subscription {
    sub: async_nats::Subscriber,
    opener: Opener,
}

impl Subscription {
    /// Subscribes to `subject`, opening with `opener`.
    pub async fn new(
        nats: &async_nats::Client,
        subject: impl Into<String>,
        opener: Opener,
    ) -> Result<Subscription, async_nats::Error> {
        let sub = nats.subscribe(subject.into()).await?;
        nats.flush().await?;
        Ok(Subscription { sub, opener })
    }

    /// The next message: `Ok` when it passed every check, `Err` with the library's typed
    /// error otherwise (logged with its class; nothing changed). `None` when the
    /// subscription ended.
    pub async fn next(&mut self) -> Option<Result<Opened, Error>> {
        let msg = self.sub.next().await?;
        let r = self.opener.open(&msg.payload);
        if let Err(e) = &r {
            tracing::warn!(subject = %msg.subject, kind = e.kind().as_str(), "rpcseal-nats: group message refused");
        }
        Some(r)
    }

    /// The opener (statistics, revocation).
    pub fn opener(&self) -> &Opener {
        &self.opener
    }
}
