//! Replay protection (placeholder interface until the replay module lands).

/// What the Opener hands the replay store for one message that passed every other check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplayItem {
    /// Key id of the sender's identity key.
    pub sender: [u8; 16],
    /// The session's id.
    pub session_id: [u8; 16],
    /// Sequence number.
    pub seq: u64,
    /// Nonce.
    pub nonce: [u8; 16],
    /// Timestamp.
    pub timestamp: u64,
    /// Expiry of the state.
    pub expires_at: u64,
    /// One-shot session.
    pub one_shot: bool,
}

/// A replay store.
pub trait ReplayStore: Send + Sync {
    /// Read-only check.
    fn check(&self, item: &ReplayItem, now: u64) -> Result<(), ReplayError>;
    /// Check and record.
    fn check_and_mark(&self, item: &ReplayItem, now: u64) -> Result<(), ReplayError>;
}

/// Replay errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// Seen before.
    #[error("replayed")]
    Replayed,
    /// Outside the window.
    #[error("outside window")]
    OutsideWindow,
    /// Unavailable.
    #[error("unavailable: {reason}")]
    Unavailable {
        /// Why.
        reason: String,
    },
}

/// Accepts everything.
#[derive(Debug, Default)]
pub struct NoReplayCheck;

impl ReplayStore for NoReplayCheck {
    fn check(&self, _: &ReplayItem, _: u64) -> Result<(), ReplayError> {
        Ok(())
    }
    fn check_and_mark(&self, _: &ReplayItem, _: u64) -> Result<(), ReplayError> {
        Ok(())
    }
}

/// The default store.
pub(crate) fn default_store() -> std::sync::Arc<dyn ReplayStore> {
    std::sync::Arc::new(NoReplayCheck)
}
