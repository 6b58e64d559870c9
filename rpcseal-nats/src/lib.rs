//! rpcseal envelopes over NATS (normative text: `spec/nats.md`).
//!
//! A thin skin over the transport-neutral core of `rpcseal` (`spec/rpc.md`): every rule
//! about what is accepted lives there; this crate only says where the bytes travel.
//!
//! - [`Client`] and [`Service`]: request/reply, each reply bound to its request and to the
//!   addressed service, sent to the reply subject the client authenticated, with session
//!   blocks sent only when a receiver lacks them (the need-session signal, `spec/rpc.md`
//!   §6) and timeouts and "no responders" reported as errors.
//! - [`Publisher`] and [`Subscription`]: one-way messages to a group (1:m, m:n), the session
//!   block inline in every message, since no subscriber can ask for it.
//! - [`StreamPublisher`] and [`StreamConsumer`]: sealed envelopes at rest in a JetStream
//!   stream, consumed by a durable pull consumer in the order open (unmarked), handle,
//!   mark, acknowledge (`spec/replay.md` §2.1), so a redelivery after a failed handler is
//!   processed, never rejected as a replay, and nothing is marked before its handler
//!   succeeded.
//!
//! Hostile input arriving through the broker is rejected by the library with a typed
//! error, logged (through `tracing`, the error's class and the subject only, never a key or
//! a payload), and changes no state; no message makes a service panic. async-nats itself
//! logs, at DEBUG, the subject of each message it receives, and at TRACE each message
//! whole, its payload (the envelope) included: ciphertext in MAC and signed mode, but the
//! cleartext payload of a sign-only envelope. Keep the `async_nats` target above TRACE in a
//! production log (`tests/rpc.rs`, `refusals_are_logged_with_their_class_and_without_secrets`,
//! checks every line at every level).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod client;
mod group;
mod service;
mod stream;

pub use client::{CallError, Client, ClientStats};
pub use group::{PublishError, Publisher, Subscription};
pub use service::{HandlerError, Outcome, Reply, Service, ServiceStats};
pub use stream::{StreamConsumer, StreamOutcome, StreamPublisher};

/// `spec/nats.md` §3: on a request, the byte length of a session block that precedes the
/// envelope in the message payload (decimal ASCII digits, no sign, no leading zeros).
pub const HEADER_BLOCK: &str = "Rpcseal-Block";
/// `spec/nats.md` §4: on a message to the reply subject, the need-session signal: the
/// session reference (32 lowercase hex digits) of the request the service could not open.
pub const HEADER_NEED_SESSION: &str = "Rpcseal-Need-Session";
/// `spec/nats.md` §4: beside [`HEADER_NEED_SESSION`], the subject of the asking replica
/// alone, where the client sends the envelope with its block (so that the block reaches
/// the replica that lacks it, not another member of its queue group).
pub const HEADER_RESEND_TO: &str = "Rpcseal-Resend-To";
/// `spec/nats.md` §5: on a message to the reply subject, the class of the error that made
/// the service refuse the request (`spec/rpc.md` §7, `spec/envelope-v3.md` §9).
/// Unauthenticated.
pub const HEADER_ERROR: &str = "Rpcseal-Error";

/// The default server URL when `NATS_URL` is not set.
pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";

/// `NATS_URL` from the environment, or [`DEFAULT_NATS_URL`].
pub fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| DEFAULT_NATS_URL.to_string())
}

/// The payload of a request carrying a session block beside its envelope
/// (`spec/nats.md` §3): the block, then the envelope, unchanged.
pub(crate) fn frame(block: &[u8], envelope: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(block.len() + envelope.len());
    v.extend_from_slice(block);
    v.extend_from_slice(envelope);
    v
}

/// Splits a request payload by its [`HEADER_BLOCK`] value into (block, envelope). `None`
/// for a value that is not canonical decimal or is larger than the payload.
pub(crate) fn unframe<'a>(len: &str, payload: &'a [u8]) -> Option<(&'a [u8], &'a [u8])> {
    let b = len.as_bytes();
    if b.is_empty() || b.len() > 9 || !b.iter().all(u8::is_ascii_digit) || (b[0] == b'0') {
        return None;
    }
    let n: usize = len.parse().ok()?;
    (n <= payload.len()).then(|| payload.split_at(n))
}

/// The value of header `name`, if present.
pub(crate) fn header<'a>(msg: &'a async_nats::Message, name: &str) -> Option<&'a str> {
    msg.headers
        .as_ref()
        .and_then(|h| h.get(name))
        .map(|v| v.as_str())
}

/// The bytes of an inline session block in `envelope` (0 when it travels by reference).
/// Reads the envelope's first fields only (no allocation): for accounting, on every message.
pub(crate) fn inline_block_len(envelope: &[u8]) -> usize {
    rpcseal::inline_block_len(envelope).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unframe_is_strict() {
        let p = b"blockenvelope";
        assert_eq!(unframe("5", p), Some((&b"block"[..], &b"envelope"[..])));
        assert_eq!(unframe("13", p), Some((&p[..], &b""[..])));
        for bad in [
            "",
            "0",
            "05",
            "14",
            "+5",
            "-1",
            " 5",
            "5 ",
            "1e1",
            "9999999999",
        ] {
            assert_eq!(unframe(bad, p), None, "{bad:?}");
        }
    }
}
