//! Request and reply (spec/rpc.md), from Python: the core library's reply binding, the same
//! one every other transport uses. Nothing here decides anything: `Sealer.seal_request`,
//! `PendingReply`, `Opener.open_reply`, `Opener.request_context`, `RequestContext` and
//! `Responder` convert arguments and results of `rpcseal::rpc`.

use std::collections::BTreeMap;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use rpcseal::rpc::{self as core, RpcError};

use crate::keys::{Identity, PublicIdentity};
use crate::{misuse, misuse_msg, parse_mode, rejected, with_kind, Opened, Opener, Rejected};

/// An RPC-layer refusal as `Rejected`, with `kind` from the library (`wrong_responder`,
/// `wrong_request`, `not_a_reply`, ..., or the envelope's failure class).
pub(crate) fn rpc_error(py: Python<'_>, e: RpcError) -> PyErr {
    match e {
        RpcError::Rejected(inner) => rejected(py, inner),
        other => {
            let err = with_kind::<Rejected>(py, other.kind(), other.to_string());
            let _ = err.value(py).setattr("detail", other.to_string());
            err
        }
    }
}

/// A request id from its text form, by the core's strict rule (64 lowercase hex digits).
fn parse_request_id(py: Python<'_>, text: &str) -> PyResult<[u8; 32]> {
    core::parse_request_id(text).ok_or_else(|| {
        misuse_msg(
            py,
            "invalid_request_id",
            "a request id is 64 lowercase hex digits",
        )
    })
}

/// What a reply to one request must match: the request's id and the one identity whose
/// reply is accepted. Public values only.
#[pyclass(module = "rpcseal", frozen)]
#[derive(Clone)]
pub(crate) struct PendingReply(pub(crate) core::PendingReply);

#[pymethods]
impl PendingReply {
    /// From its parts: the request id (64 hex digits) and the responder's key id (hex).
    /// For a request sealed to several keys, one per key that may answer.
    #[new]
    fn new(py: Python<'_>, request_id: &str, responder: &str) -> PyResult<PendingReply> {
        Ok(PendingReply(core::PendingReply::new(
            parse_request_id(py, request_id)?,
            crate::keys::key_id_of(py, responder)?,
        )))
    }

    /// The request's id (hex), which the reply names in `rpc.in-reply-to`.
    #[getter]
    fn request_id(&self) -> String {
        self.0.request_id_hex()
    }

    /// The key id (hex) of the only identity whose reply is accepted.
    #[getter]
    fn responder(&self) -> String {
        self.0.responder().to_string()
    }

    fn __repr__(&self) -> String {
        format!(
            "<rpcseal.PendingReply request_id={} responder={}>",
            self.0.request_id_hex(),
            self.0.responder()
        )
    }
}

/// The service's side of one request: who the reply goes to, where, and its binding.
#[pyclass(module = "rpcseal", frozen)]
pub(crate) struct RequestContext(pub(crate) core::RequestContext);

#[pymethods]
impl RequestContext {
    /// The request's id (hex).
    #[getter]
    fn request_id(&self) -> String {
        self.0.request_id_hex()
    }

    /// The request's sender: the only identity a reply is sealed to.
    #[getter]
    fn client(&self) -> PublicIdentity {
        PublicIdentity(self.0.client().clone())
    }

    /// The reply address the client authenticated (`rpc.reply-to`), if any.
    #[getter]
    fn reply_to(&self) -> Option<&str> {
        self.0.reply_to()
    }

    /// Raises `Rejected(kind="reply_to_mismatch")` unless `delivered` is the
    /// authenticated reply address (both may be None).
    fn check_reply_to(&self, py: Python<'_>, delivered: Option<&str>) -> PyResult<()> {
        self.0
            .check_reply_to(delivered)
            .map_err(|e| rpc_error(py, e))
    }

    fn __repr__(&self) -> String {
        format!(
            "<rpcseal.RequestContext request_id={} client={}>",
            self.0.request_id_hex(),
            self.0.client().key_id()
        )
    }
}

/// Seals replies for a service: one reply session per client (a bounded cache), each
/// reply sealed to the request's sender alone and bound to the request.
#[pyclass(module = "rpcseal", frozen)]
pub(crate) struct Responder(core::Responder);

#[pymethods]
impl Responder {
    #[new]
    #[pyo3(signature = (identity, mode = "signed", capacity = 1000, *, lifetime = None,
        inline = "always"))]
    fn new(
        py: Python<'_>,
        identity: &Identity,
        mode: &str,
        capacity: usize,
        lifetime: Option<f64>,
        inline: &str,
    ) -> PyResult<Responder> {
        let mut config = rpcseal::SealerConfig::new(parse_mode(py, mode)?);
        if let Some(secs) = lifetime {
            if !(secs.is_finite() && (1.0..1e12).contains(&secs)) {
                return Err(misuse_msg(
                    py,
                    "invalid_config",
                    "lifetime must be a number of seconds, at least 1",
                ));
            }
            config = config.lifetime(Duration::from_secs_f64(secs));
        }
        config = config.inline(crate::parse_inline(py, inline)?);
        core::Responder::new(&identity.0, config, capacity)
            .map(Responder)
            .map_err(|e| misuse(py, e))
    }

    /// Seals `payload` as the reply to the request `ctx` describes.
    #[pyo3(signature = (ctx, payload, metadata = None))]
    fn seal_reply<'py>(
        &self,
        py: Python<'py>,
        ctx: &RequestContext,
        payload: &[u8],
        metadata: Option<BTreeMap<String, String>>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let metadata = metadata.unwrap_or_default();
        let sealed = py.detach(|| self.0.seal_reply(&ctx.0, payload, &metadata));
        match sealed {
            Ok(env) => Ok(PyBytes::new(py, &env)),
            Err(e) => Err(misuse(py, e)),
        }
    }
}

/// `Sealer.seal_request`.
pub(crate) fn seal_request<'py>(
    this: &crate::Sealer,
    py: Python<'py>,
    payload: &[u8],
    metadata: Option<BTreeMap<String, String>>,
    responder: &PublicIdentity,
) -> PyResult<(Bound<'py, PyBytes>, PendingReply)> {
    let metadata = metadata.unwrap_or_default();
    let sealed =
        py.detach(|| crate::lock(&this.inner).seal_request(payload, &metadata, &responder.0));
    match sealed {
        Ok((env, pending)) => Ok((PyBytes::new(py, &env), PendingReply(pending))),
        Err(e) => Err(misuse(py, e)),
    }
}

/// `Opener.open_reply`.
pub(crate) fn open_reply(
    this: &Opener,
    py: Python<'_>,
    envelope: &[u8],
    pending: &Bound<'_, PyAny>,
    now: Option<u64>,
) -> PyResult<Opened> {
    let pendings: Vec<core::PendingReply> = if let Ok(p) = pending.cast::<PendingReply>() {
        vec![p.get().0.clone()]
    } else {
        let mut v = Vec::new();
        for item in pending.try_iter()? {
            v.push(item?.cast::<PendingReply>()?.get().0.clone());
        }
        v
    };
    if pendings.is_empty() {
        return Err(misuse_msg(py, "invalid_config", "no pending reply given"));
    }
    let opener = &this.inner;
    let r = py.detach(|| -> Result<rpcseal::Opened, RpcError> {
        let (opened, mark) = match now {
            Some(t) => opener.open_unmarked_at(envelope, t),
            None => opener.open_unmarked(envelope),
        }
        .map_err(|e| {
            // An unknown reply session stops being acknowledged (spec/rpc.md §6.3).
            for p in &pendings {
                p.note_rejection(envelope, &e);
            }
            RpcError::Rejected(e)
        })?;
        let mut first = None;
        for p in &pendings {
            match p.check_reply(&opened) {
                Ok(()) => {
                    match now {
                        Some(t) => opener.mark_at(mark, t),
                        None => opener.mark(mark),
                    }
                    .map_err(RpcError::Rejected)?;
                    return Ok(opened);
                }
                Err(e) => {
                    // A wrong request outranks a wrong responder: it says more.
                    if first.is_none() || matches!(e, RpcError::WrongRequest) {
                        first = Some(e);
                    }
                }
            }
        }
        Err(first.unwrap_or(RpcError::NotAReply))
    });
    match r {
        Ok(o) => Opened::from_rust(py, o),
        Err(e) => Err(rpc_error(py, e)),
    }
}

/// `Opener.request_context`.
pub(crate) fn request_context(
    this: &Opener,
    py: Python<'_>,
    request: &Opened,
) -> PyResult<RequestContext> {
    core::RequestContext::new(&this.inner, &request.inner)
        .map(RequestContext)
        .map_err(|e| rpc_error(py, e))
}

/// Adds the RPC classes and constants to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PendingReply>()?;
    m.add_class::<RequestContext>()?;
    m.add_class::<Responder>()?;
    m.add("RPC_METHOD", core::METHOD)?;
    m.add("RPC_MESSAGE_ID", core::MESSAGE_ID)?;
    m.add("RPC_REPLY_TO", core::REPLY_TO)?;
    m.add("RPC_IN_REPLY_TO", core::IN_REPLY_TO)?;
    m.add("RPC_CONTENT_TYPE", core::CONTENT_TYPE)?;
    Ok(())
}
