//! # rpcseal
//!
//! Signed and encrypted RPC envelopes. A sender signs a *session block* once per session
//! with its Ed25519 identity; the block carries the session keys wrapped to each recipient
//! with HPKE (RFC 9180). Each message is then sealed with symmetric work only, plus one
//! Ed25519 signature where non-repudiation is asked for. Receivers reject tampered,
//! replayed, stale, downgraded and misaddressed messages.
//!
//! The wire format is specified in `spec/envelope-v3.md`; this crate follows it section by
//! section (the modules cite the sections they implement).
//!
//! ```
//! use rpcseal::{Identity, Metadata, Mode, Opener, Recipient, Sealer, SealerConfig};
//!
//! let alice = Identity::generate();
//! let bob = Identity::generate();
//!
//! let mut sealer = Sealer::new(&alice, &[Recipient::from(bob.public())], SealerConfig::new(Mode::Mac))?;
//! let opener = Opener::builder().identity(&bob).trust(alice.public()).build()?;
//!
//! let mut meta = Metadata::new();
//! meta.insert("method".into(), "inventory.get".into());
//! let envelope = sealer.seal(b"{\"sku\": 42}", &meta)?;
//!
//! let opened = opener.open(&envelope)?;
//! assert_eq!(opened.payload, b"{\"sku\": 42}");
//! assert_eq!(opened.sender, alice.key_id());
//! assert_eq!(opened.metadata["method"], "inventory.get");
//!
//! // The same envelope again is a replay.
//! assert_eq!(opener.open(&envelope).unwrap_err().kind(), rpcseal::ErrorKind::Replayed);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod aead;
#[cfg(feature = "at-rest")]
pub mod at_rest;
mod envelope;
mod error;
#[cfg(feature = "vectors")]
#[doc(hidden)]
pub mod forge;
mod hash;
mod inspect;
mod keyring;
mod keys;
mod legacy;
#[cfg(feature = "vectors")]
#[doc(hidden)]
pub mod mutant;
#[cfg(not(feature = "vectors"))]
mod mutant;
mod open;
mod parallel;
pub mod replay;
pub mod rpc;
mod seal;
mod session;
mod sign;
mod suite;
#[cfg(feature = "serde")]
pub mod typed;
#[cfg(feature = "vectors")]
#[doc(hidden)]
pub mod vectors;
mod wire;
mod xwing;

pub use envelope::Metadata;
pub use error::{Error, ErrorKind, KeyError, Misuse};
pub use inspect::{inline_block_len, inspect, inspect_session_block, Inspection, SessionInfo};
pub use keyring::{
    CachedDirectory, FileDirectory, KeyDirectory, Keyring, KeyringError, Lookup, TrustedKey,
};
pub use keys::{
    GroupKey, GroupPublicKey, Identity, KeyId, MasterKey, PublicIdentity, Recipient, SymmetricKey,
};
pub use legacy::{seal_legacy_v2, LegacyMessage, OSLO_VERSION};
pub use open::{
    DeferredMark, Opened, Opener, OpenerBuilder, OpenerStats, Policy, Received, SessionFacts,
    DEFAULT_MAX_SESSION_LIFETIME, DEFAULT_MAX_SESSION_MESSAGES, MAX_RECIPIENTS_LIMIT,
};
pub use seal::{
    Inline, Sealer, SealerConfig, Unsigned, DEFAULT_MAX_PAYLOAD, DEFAULT_MAX_RECIPIENTS,
    MAX_MESSAGES_LIMIT, MAX_WIRE_PAYLOAD,
};
pub use session::MAX_PQ_RECIPIENTS;
pub use suite::{Mode, Suite};

#[doc(hidden)]
pub use session::hpke_derive_keypair;

/// The README's Rust examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
