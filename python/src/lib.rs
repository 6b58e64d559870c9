//! `rpcseal._rpcseal`: the Python binding of the rpcseal library.
//!
//! Only conversion lives here: every rule (formats, checks, policy, replay) is the
//! library's. Cryptography and I/O run with the GIL released (`Python::detach`, the name
//! PyO3 0.26 gave to `allow_threads`), so other Python threads run meanwhile and one
//! `Opener` serves many threads at once. Secret key objects have no way to print their
//! bytes: `repr()` shows the key id only, and export is an explicit method.

#![deny(missing_docs)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use rpcseal::replay::{MemoryReplayConfig, NoReplayCheck, ReplayStore};

/// The library's in-memory store (the Python class of the same name wraps it).
type MemoryReplayStore_ = rpcseal::replay::MemoryReplayStore;

mod keys;
mod rpc;

use keys::{GroupKey, GroupPublicKey, Identity, Keyring, PublicIdentity, SymmetricKey};

pyo3::create_exception!(
    rpcseal,
    RpcsealError,
    PyException,
    "Base class of every rpcseal error. `kind` names the failure class."
);
pyo3::create_exception!(
    rpcseal,
    Rejected,
    RpcsealError,
    "An envelope was rejected. `kind` is the failure class of the test vectors \
     (\"replayed\", \"bad_authenticator\", \"untrusted_sender\", ...)."
);
pyo3::create_exception!(
    rpcseal,
    MisuseError,
    RpcsealError,
    "The caller asked for something rpcseal refuses to do (no recipients, payload too \
     large, MAC mode to a group, ...). `kind` names it."
);
pyo3::create_exception!(
    rpcseal,
    KeyFormatError,
    RpcsealError,
    "A key string, key file or keyring could not be used. `kind` names why."
);
pyo3::create_exception!(
    rpcseal,
    ReplayStoreError,
    RpcsealError,
    "A replay store could not be opened or reached."
);

/// An exception of class `T` with `kind` (and `detail`) attributes.
fn with_kind<T: pyo3::PyTypeInfo>(py: Python<'_>, kind: &str, message: String) -> PyErr {
    let err = PyErr::new::<T, _>(message);
    let value = err.value(py);
    // Setting an attribute on a fresh exception object cannot fail in practice; if it
    // did, the exception would still be raised, without the attribute.
    let _ = value.setattr("kind", kind);
    err
}

pub(crate) fn rejected(py: Python<'_>, e: rpcseal::Error) -> PyErr {
    let err = with_kind::<Rejected>(py, e.kind().as_str(), e.to_string());
    let _ = err.value(py).setattr("detail", e.detail());
    err
}

pub(crate) fn misuse(py: Python<'_>, e: rpcseal::Misuse) -> PyErr {
    let kind = match &e {
        rpcseal::Misuse::NoRecipients => "no_recipients",
        rpcseal::Misuse::TooManyRecipients { .. } => "too_many_recipients",
        rpcseal::Misuse::DuplicateRecipient => "duplicate_recipient",
        rpcseal::Misuse::UnknownRecipient(_) => "unknown_recipient",
        rpcseal::Misuse::PayloadTooLarge { .. } => "payload_too_large",
        rpcseal::Misuse::InvalidMetadata(_) => "invalid_metadata",
        rpcseal::Misuse::MacToGroup => "mac_to_group",
        rpcseal::Misuse::InvalidConfig(_) => "invalid_config",
        rpcseal::Misuse::InvalidLegacyMessage(_) => "invalid_legacy_message",
        rpcseal::Misuse::ReaddressMac => "readdress_mac",
        rpcseal::Misuse::NoKeys => "no_keys",
        rpcseal::Misuse::NoTrustedSenders => "no_trusted_senders",
        rpcseal::Misuse::Clock => "clock",
        _ => "misuse",
    };
    with_kind::<MisuseError>(py, kind, e.to_string())
}

pub(crate) fn misuse_msg(py: Python<'_>, kind: &str, message: impl Into<String>) -> PyErr {
    with_kind::<MisuseError>(py, kind, message.into())
}

pub(crate) fn parse_mode(py: Python<'_>, mode: &str) -> PyResult<rpcseal::Mode> {
    mode.parse::<rpcseal::Mode>().map_err(|_| {
        misuse_msg(
            py,
            "invalid_config",
            format!("unknown mode {mode:?}: expected \"signed\", \"mac\" or \"sign-only\""),
        )
    })
}

pub(crate) fn parse_inline(py: Python<'_>, inline: &str) -> PyResult<rpcseal::Inline> {
    match inline {
        "always" => Ok(rpcseal::Inline::Always),
        "first_message" => Ok(rpcseal::Inline::FirstMessage),
        "never" => Ok(rpcseal::Inline::Never),
        other => Err(misuse_msg(
            py,
            "invalid_config",
            format!(
                "unknown inline setting {other:?}: expected \"always\", \"first_message\" \
                 or \"never\""
            ),
        )),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave these values half-changed (every
    // mutation is one library call that either completes or returns an error).
    m.lock().unwrap_or_else(|p| p.into_inner())
}

// ---------------------------------------------------------------------------------------
// Sealer

/// A recipient given from Python: a key object or a public key string.
pub(crate) fn recipient_of(py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<rpcseal::Recipient> {
    if let Ok(p) = obj.cast::<PublicIdentity>() {
        return Ok(rpcseal::Recipient::from(&p.get().0));
    }
    if let Ok(g) = obj.cast::<GroupPublicKey>() {
        return Ok(rpcseal::Recipient::from(&g.get().0));
    }
    if let Ok(s) = obj.cast::<SymmetricKey>() {
        return Ok(rpcseal::Recipient::from(&s.get().0));
    }
    if obj.cast::<Identity>().is_ok() || obj.cast::<GroupKey>().is_ok() {
        return Err(misuse_msg(
            py,
            "secret_key_as_recipient",
            "a secret key was given as a recipient: give its public half (key.public())",
        ));
    }
    if let Ok(text) = obj.extract::<String>() {
        return rpcseal::Recipient::parse(&text).map_err(|e| keys::key_error(py, e));
    }
    Err(misuse_msg(
        py,
        "invalid_recipient",
        "a recipient is a PublicIdentity, GroupPublicKey, SymmetricKey or public key string",
    ))
}

fn recipients_of(py: Python<'_>, items: &Bound<'_, PyAny>) -> PyResult<Vec<rpcseal::Recipient>> {
    if items.extract::<String>().is_ok() {
        return Err(misuse_msg(
            py,
            "invalid_recipient",
            "recipients must be a list, not a single string",
        ));
    }
    let mut out = Vec::new();
    for item in items.try_iter()? {
        out.push(recipient_of(py, &item?)?);
    }
    Ok(out)
}

/// Seals payloads from one identity to a list of recipients, one session at a time.
///
/// Safe to share between threads (calls are serialized); the cryptography runs without
/// the GIL.
#[pyclass(module = "rpcseal", frozen)]
pub(crate) struct Sealer {
    pub(crate) inner: Mutex<rpcseal::Sealer>,
    mode: rpcseal::Mode,
}

#[pymethods]
impl Sealer {
    #[new]
    #[pyo3(signature = (identity, recipients, mode = "signed", *, lifetime = None,
        max_messages = None, max_bytes = None, max_payload = None, inline = None,
        dangerous_allow_mac_to_group = false))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        identity: &Identity,
        recipients: &Bound<'_, PyAny>,
        mode: &str,
        lifetime: Option<f64>,
        max_messages: Option<u64>,
        max_bytes: Option<u64>,
        max_payload: Option<usize>,
        inline: Option<&str>,
        dangerous_allow_mac_to_group: bool,
    ) -> PyResult<Self> {
        let mode = parse_mode(py, mode)?;
        let recipients = recipients_of(py, recipients)?;
        let mut config = rpcseal::SealerConfig::new(mode);
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
        if let Some(n) = max_messages {
            config = config.max_messages(n);
        }
        if let Some(n) = max_bytes {
            config = config.max_bytes(n);
        }
        if let Some(n) = max_payload {
            config = config.max_payload(n);
        }
        if let Some(i) = inline {
            config = config.inline(parse_inline(py, i)?);
        }
        if dangerous_allow_mac_to_group {
            config = config.dangerous_allow_mac_to_group();
        }
        let sealer =
            rpcseal::Sealer::new(&identity.0, &recipients, config).map_err(|e| misuse(py, e))?;
        Ok(Sealer {
            inner: Mutex::new(sealer),
            mode,
        })
    }

    /// Seals `payload` (bytes) with `metadata` (str to str, authenticated cleartext).
    #[pyo3(signature = (payload, metadata = None))]
    fn seal<'py>(
        &self,
        py: Python<'py>,
        payload: &[u8],
        metadata: Option<BTreeMap<String, String>>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let metadata = metadata.unwrap_or_default();
        let sealed = py.detach(|| {
            // Locked while sealing, not while signing: threads sign in parallel.
            let unsigned = lock(&self.inner).seal_unsigned(payload, &metadata);
            unsigned.map(rpcseal::Unsigned::finish)
        });
        match sealed {
            Ok(envelope) => Ok(PyBytes::new(py, &envelope)),
            Err(e) => Err(misuse(py, e)),
        }
    }

    /// The current session's block (starting a session if none is active), for senders
    /// that deliver blocks out of band (`inline="never"`).
    fn session_block<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let block = py.detach(|| lock(&self.inner).session_block().map(<[u8]>::to_vec));
        match block {
            Ok(b) => Ok(PyBytes::new(py, &b)),
            Err(e) => Err(misuse(py, e)),
        }
    }

    /// Ends the current session: the next message starts a new one.
    fn rotate(&self) {
        lock(&self.inner).rotate();
    }

    /// Adds recipients (the next message starts a new session).
    fn add_recipients(&self, py: Python<'_>, recipients: &Bound<'_, PyAny>) -> PyResult<()> {
        let more = recipients_of(py, recipients)?;
        lock(&self.inner)
            .add_recipients(&more)
            .map_err(|e| misuse(py, e))
    }

    /// Removes recipients by key id (hex).
    fn remove_recipients(&self, py: Python<'_>, key_ids: Vec<String>) -> PyResult<()> {
        let ids = key_ids
            .iter()
            .map(|k| keys::key_id_of(py, k))
            .collect::<PyResult<Vec<_>>>()?;
        lock(&self.inner)
            .remove_recipients(&ids)
            .map_err(|e| misuse(py, e))
    }

    /// Seals a request to `responder` (spec/rpc.md §4): returns the envelope and the
    /// `PendingReply` that accepts only this request's reply, from `responder`.
    #[pyo3(signature = (payload, metadata, responder))]
    fn seal_request<'py>(
        &self,
        py: Python<'py>,
        payload: &[u8],
        metadata: Option<BTreeMap<String, String>>,
        responder: &PublicIdentity,
    ) -> PyResult<(Bound<'py, PyBytes>, rpc::PendingReply)> {
        rpc::seal_request(self, py, payload, metadata, responder)
    }

    /// How many sessions this sealer has started.
    #[getter]
    fn sessions_created(&self) -> u64 {
        lock(&self.inner).sessions_created()
    }

    /// The mode: "signed", "mac" or "sign-only".
    #[getter]
    fn mode(&self) -> &'static str {
        self.mode.as_str()
    }

    fn __repr__(&self) -> String {
        format!("<rpcseal.Sealer mode={}>", self.mode.as_str())
    }
}

// ---------------------------------------------------------------------------------------
// Policy and replay stores

/// What an opener accepts. Every argument is optional; the defaults are the library's.
#[pyclass(module = "rpcseal", frozen)]
#[derive(Clone)]
struct Policy(rpcseal::Policy);

#[pymethods]
impl Policy {
    #[new]
    #[pyo3(signature = (*, modes = None, suites = None, clock_skew = None, max_payload = None,
        max_recipients = None, max_metadata_entries = None, max_metadata_bytes = None,
        max_session_lifetime = None, max_session_messages = None,
        dangerous_accept_mac_via_group_key = false,
        dangerous_accept_unauthenticated_legacy_v2 = false))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        modes: Option<Vec<String>>,
        suites: Option<Vec<u64>>,
        clock_skew: Option<u64>,
        max_payload: Option<usize>,
        max_recipients: Option<usize>,
        max_metadata_entries: Option<usize>,
        max_metadata_bytes: Option<usize>,
        max_session_lifetime: Option<u64>,
        max_session_messages: Option<u64>,
        dangerous_accept_mac_via_group_key: bool,
        dangerous_accept_unauthenticated_legacy_v2: bool,
    ) -> PyResult<Self> {
        let mut p = rpcseal::Policy::default();
        if let Some(modes) = modes {
            let modes = modes
                .iter()
                .map(|m| parse_mode(py, m))
                .collect::<PyResult<Vec<_>>>()?;
            p = p.modes(&modes);
        }
        if let Some(suites) = suites {
            let suites = suites
                .into_iter()
                .map(|s| rpcseal::Suite::from_id(s).map_err(|e| rejected(py, e)))
                .collect::<PyResult<Vec<_>>>()?;
            p = p.suites(&suites);
        }
        if let Some(s) = clock_skew {
            p = p.clock_skew(Duration::from_secs(s));
        }
        if let Some(n) = max_payload {
            p = p.max_payload(n);
        }
        if let Some(n) = max_recipients {
            p = p.max_recipients(n);
        }
        if max_metadata_entries.is_some() || max_metadata_bytes.is_some() {
            p = p.max_metadata(
                max_metadata_entries.unwrap_or(64),
                max_metadata_bytes.unwrap_or(8 * 1024),
            );
        }
        if let Some(secs) = max_session_lifetime {
            p = p.max_session_lifetime(Duration::from_secs(secs));
        }
        if let Some(n) = max_session_messages {
            p = p.max_session_messages(n);
        }
        if dangerous_accept_mac_via_group_key {
            p = p.dangerous_accept_mac_via_group_key();
        }
        if dangerous_accept_unauthenticated_legacy_v2 {
            p = p.dangerous_accept_unauthenticated_legacy_v2();
        }
        Ok(Policy(p))
    }

    fn __repr__(&self) -> String {
        format!("<rpcseal.Policy clock_skew={}>", self.0.skew_secs())
    }
}

/// Replay state: `MemoryReplayStore()`, `FileReplayStore(path)` or
/// `RedisReplayStore(url)`. One store may be shared by several openers.
#[pyclass(module = "rpcseal", frozen, subclass)]
struct ReplayStoreBase {
    store: Arc<dyn ReplayStore>,
    what: String,
}

#[pymethods]
impl ReplayStoreBase {
    fn __repr__(&self) -> String {
        format!("<rpcseal.{}>", self.what)
    }
}

/// Replay state in this process's memory (the default of an opener).
#[pyclass(module = "rpcseal", frozen, extends = ReplayStoreBase)]
struct MemoryReplayStore;

#[pymethods]
impl MemoryReplayStore {
    #[new]
    #[pyo3(signature = (*, max_sessions = None, max_nonces = None))]
    fn new(
        max_sessions: Option<usize>,
        max_nonces: Option<usize>,
    ) -> PyClassInitializer<MemoryReplayStore> {
        let mut c = MemoryReplayConfig::default();
        if let Some(n) = max_sessions {
            c.max_sessions = n;
        }
        if let Some(n) = max_nonces {
            c.max_nonces = n;
        }
        PyClassInitializer::from(ReplayStoreBase {
            store: Arc::new(MemoryReplayStore_::new(c)),
            what: "MemoryReplayStore".into(),
        })
        .add_subclass(MemoryReplayStore)
    }
}

/// Replay state in a file, kept across restarts, locked while in use. `create=True` makes
/// a brand-new state file (and fails if one exists); otherwise the file must exist: a
/// store that silently started empty would accept again what its lost state had accepted.
#[pyclass(module = "rpcseal", frozen, extends = ReplayStoreBase)]
struct FileReplayStore;

#[pymethods]
impl FileReplayStore {
    #[new]
    #[pyo3(signature = (path, *, create = false, max_entries = None))]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        create: bool,
        max_entries: Option<usize>,
    ) -> PyResult<PyClassInitializer<FileReplayStore>> {
        let opened = py.detach(|| {
            if create {
                rpcseal::replay::file::FileReplayStore::create(&path)
            } else {
                rpcseal::replay::file::FileReplayStore::open(&path)
            }
        });
        let mut store = opened
            .map_err(|e| with_kind::<ReplayStoreError>(py, "replay_unavailable", e.to_string()))?;
        if let Some(n) = max_entries {
            store = store.with_max_entries(n);
        }
        Ok(PyClassInitializer::from(ReplayStoreBase {
            store: Arc::new(store),
            what: format!("FileReplayStore path={:?}", path.display().to_string()),
        })
        .add_subclass(FileReplayStore))
    }
}

/// Replay state in a shared Redis (`redis://host:port/db`), for fleets of receivers.
#[pyclass(module = "rpcseal", frozen, extends = ReplayStoreBase)]
struct RedisReplayStore;

#[pymethods]
impl RedisReplayStore {
    #[new]
    #[pyo3(signature = (url, *, key_prefix = None, connect_timeout = None,
        command_timeout = None, create_marker_if_absent = false))]
    fn new(
        py: Python<'_>,
        url: String,
        key_prefix: Option<String>,
        connect_timeout: Option<f64>,
        command_timeout: Option<f64>,
        create_marker_if_absent: bool,
    ) -> PyResult<PyClassInitializer<RedisReplayStore>> {
        redis_store(
            py,
            url,
            key_prefix,
            connect_timeout,
            command_timeout,
            create_marker_if_absent,
        )
        .map(|base| PyClassInitializer::from(base).add_subclass(RedisReplayStore))
    }
}

#[cfg(feature = "redis")]
fn redis_store(
    py: Python<'_>,
    url: String,
    key_prefix: Option<String>,
    connect_timeout: Option<f64>,
    command_timeout: Option<f64>,
    create_marker_if_absent: bool,
) -> PyResult<ReplayStoreBase> {
    let secs = |s: f64| -> PyResult<Duration> {
        Duration::try_from_secs_f64(s)
            .map_err(|_| misuse_msg(py, "invalid_config", "a timeout must be positive seconds"))
    };
    let mut c = rpcseal::replay::RedisReplayConfig::new(url);
    if let Some(p) = key_prefix {
        c.key_prefix = p;
    }
    if let Some(s) = connect_timeout {
        c.connect_timeout = secs(s)?;
    }
    if let Some(s) = command_timeout {
        c.command_timeout = secs(s)?;
    }
    c.create_marker_if_absent = create_marker_if_absent;
    let prefix = c.key_prefix.clone();
    let store = py
        .detach(|| rpcseal::replay::RedisReplayStore::connect(c))
        .map_err(|e| with_kind::<ReplayStoreError>(py, "replay_unavailable", e.to_string()))?;
    Ok(ReplayStoreBase {
        store: Arc::new(store),
        what: format!("RedisReplayStore key_prefix={prefix:?}"),
    })
}

#[cfg(not(feature = "redis"))]
fn redis_store(
    py: Python<'_>,
    _url: String,
    _key_prefix: Option<String>,
    _connect_timeout: Option<f64>,
    _command_timeout: Option<f64>,
    _create_marker_if_absent: bool,
) -> PyResult<ReplayStoreBase> {
    Err(with_kind::<ReplayStoreError>(
        py,
        "unsupported",
        "this build of rpcseal has no Redis support (cargo feature `redis`)".into(),
    ))
}

/// A replay store given to an `Opener`: a store object, or a string: "memory",
/// "file:PATH" (an existing state file), or a `redis://` / `rediss://` URL (default
/// settings).
fn replay_store_of(py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<Arc<dyn ReplayStore>> {
    if let Ok(s) = obj.cast::<ReplayStoreBase>() {
        return Ok(s.get().store.clone());
    }
    let Ok(text) = obj.extract::<String>() else {
        return Err(misuse_msg(
            py,
            "invalid_config",
            "replay_store is a replay store object, \"memory\", \"file:PATH\" or a \
             redis:// URL",
        ));
    };
    if text == "memory" {
        return Ok(Arc::new(MemoryReplayStore_::new(
            MemoryReplayConfig::default(),
        )));
    }
    if let Some(path) = text.strip_prefix("file:") {
        let opened = py.detach(|| rpcseal::replay::file::FileReplayStore::open(path));
        let store = opened
            .map_err(|e| with_kind::<ReplayStoreError>(py, "replay_unavailable", e.to_string()))?;
        return Ok(Arc::new(store));
    }
    if text.starts_with("redis://") || text.starts_with("rediss://") {
        return Ok(redis_store(py, text, None, None, None, false)?.store);
    }
    Err(misuse_msg(
        py,
        "invalid_config",
        "replay_store is a replay store object, \"memory\", \"file:PATH\" or a redis:// URL",
    ))
}

// ---------------------------------------------------------------------------------------
// Opener and what it returns

/// Facts about the session a message belongs to, all signed by the sender.
#[pyclass(module = "rpcseal", frozen, get_all)]
struct SessionFacts {
    /// The session's random id (hex).
    session_id: String,
    /// How envelopes refer to the session (hex).
    session_ref: String,
    /// The suite id.
    suite: u16,
    /// "signed", "mac" or "sign-only".
    mode: &'static str,
    /// Unix seconds.
    not_before: u64,
    /// Unix seconds.
    expires: u64,
    /// The session's message limit.
    max_messages: u64,
    /// The session's payload byte limit.
    max_bytes: u64,
    /// Our index among the recipients.
    recipient_index: u32,
    /// How many recipients the session has.
    recipients: u32,
    /// The key id (hex) of our key that the session reached.
    via_key: String,
    /// True when it reached us through a group key.
    via_group: bool,
}

#[pymethods]
impl SessionFacts {
    fn __repr__(&self) -> String {
        format!(
            "<rpcseal.SessionFacts mode={} session_ref={} recipients={}>",
            self.mode, self.session_ref, self.recipients
        )
    }
}

/// A message that passed every check.
#[pyclass(module = "rpcseal", frozen)]
pub(crate) struct Opened {
    payload: Py<PyBytes>,
    sender: String,
    session: Py<SessionFacts>,
    /// The library's value (its payload moved into `payload`), for the RPC calls.
    pub(crate) inner: rpcseal::Opened,
}

impl Opened {
    pub(crate) fn from_rust(py: Python<'_>, mut o: rpcseal::Opened) -> PyResult<Opened> {
        let s = &o.session;
        let facts = SessionFacts {
            session_id: hex(&s.session_id),
            session_ref: hex(&s.session_ref),
            suite: s.suite.id(),
            mode: s.mode.as_str(),
            not_before: s.not_before,
            expires: s.expires,
            max_messages: s.max_messages,
            max_bytes: s.max_bytes,
            recipient_index: s.recipient_index,
            recipients: s.recipients,
            via_key: s.via_key.to_string(),
            via_group: s.via_group,
        };
        let payload = PyBytes::new(py, &o.payload).unbind();
        // The plaintext lives on in the Python bytes object only.
        zeroize::Zeroize::zeroize(&mut o.payload);
        o.payload = Vec::new();
        Ok(Opened {
            payload,
            sender: o.sender.to_string(),
            session: Py::new(py, facts)?,
            inner: o,
        })
    }
}

#[pymethods]
impl Opened {
    /// The payload (bytes).
    #[getter]
    fn payload(&self, py: Python<'_>) -> Py<PyBytes> {
        self.payload.clone_ref(py)
    }
    /// The authenticated cleartext metadata (a new dict on every access).
    #[getter]
    fn metadata<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, v) in &self.inner.metadata {
            d.set_item(k, v)?;
        }
        Ok(d)
    }
    /// The verified sender's key id (hex), as `Identity.key_id` / `PublicIdentity.key_id`.
    #[getter]
    fn sender(&self) -> &str {
        &self.sender
    }
    /// The sender's name in the keyring (the key id for keys trusted without a name).
    #[getter]
    fn sender_name(&self) -> &str {
        &self.inner.sender_name
    }
    /// The message's sequence number in its session.
    #[getter]
    fn seq(&self) -> u64 {
        self.inner.seq
    }
    /// The sender's timestamp (unix seconds), checked against our clock.
    #[getter]
    fn timestamp(&self) -> u64 {
        self.inner.timestamp
    }
    /// The session's facts.
    #[getter]
    fn session(&self, py: Python<'_>) -> Py<SessionFacts> {
        self.session.clone_ref(py)
    }
    /// Always True: this message was verified.
    #[getter]
    fn authenticated(&self) -> bool {
        true
    }
    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "<rpcseal.Opened sender={} seq={} payload={} bytes>",
            self.sender,
            self.inner.seq,
            self.payload.bind(py).as_bytes().len()
        )
    }
}

/// A legacy v2 (oslo.messaging) envelope, returned only by `Opener.open_any` under a
/// policy that opted in. NOTHING about it is authenticated: not its sender, not its
/// content, not its freshness.
#[pyclass(module = "rpcseal", frozen)]
struct LegacyMessage {
    version: (u64, u64),
    message: String,
}

#[pymethods]
impl LegacyMessage {
    /// The oslo envelope version: (2, 0), or (1, 0) for a bare JSON object.
    #[getter]
    fn version(&self) -> (u64, u64) {
        self.version
    }
    /// The message, a JSON object as text. Unauthenticated: treat it as hostile input.
    #[getter]
    fn unauthenticated_message(&self) -> &str {
        &self.message
    }
    /// Always False.
    #[getter]
    fn authenticated(&self) -> bool {
        false
    }
    fn __repr__(&self) -> String {
        format!(
            "<rpcseal.LegacyMessage version={}.{} UNAUTHENTICATED {} bytes>",
            self.version.0,
            self.version.1,
            self.message.len()
        )
    }
}

/// Opens envelopes addressed to its keys from the senders it trusts.
///
/// Thread-safe: share one opener between threads; opening runs without the GIL.
#[pyclass(module = "rpcseal", frozen)]
pub(crate) struct Opener {
    pub(crate) inner: Arc<rpcseal::Opener>,
}

#[pymethods]
impl Opener {
    #[new]
    #[pyo3(signature = (identity = None, trust = None, *, identities = None, group_keys = None,
        symmetric_keys = None, keyring = None, key_directory = None, policy = None,
        replay_store = None, session_cache_capacity = None,
        dangerous_disable_replay_protection = false))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        identity: Option<PyRef<'_, Identity>>,
        trust: Option<&Bound<'_, PyAny>>,
        identities: Option<Vec<PyRef<'_, Identity>>>,
        group_keys: Option<Vec<PyRef<'_, GroupKey>>>,
        symmetric_keys: Option<Vec<PyRef<'_, SymmetricKey>>>,
        keyring: Option<PyRef<'_, Keyring>>,
        key_directory: Option<PathBuf>,
        policy: Option<PyRef<'_, Policy>>,
        replay_store: Option<&Bound<'_, PyAny>>,
        session_cache_capacity: Option<usize>,
        dangerous_disable_replay_protection: bool,
    ) -> PyResult<Self> {
        let mut b = rpcseal::Opener::builder();
        if let Some(id) = &identity {
            b = b.identity(&id.0);
        }
        for id in identities.iter().flatten() {
            b = b.identity(&id.0);
        }
        for g in group_keys.iter().flatten() {
            b = b.group_key(&g.0);
        }
        for k in symmetric_keys.iter().flatten() {
            b = b.symmetric_key(&k.0);
        }
        if let Some(trust) = trust {
            if trust.extract::<String>().is_ok() {
                return Err(misuse_msg(
                    py,
                    "invalid_trust",
                    "trust must be a list of public identities, not a single string",
                ));
            }
            for item in trust.try_iter()? {
                let item = item?;
                let key = if let Ok(p) = item.cast::<PublicIdentity>() {
                    p.get().0.clone()
                } else if let Ok(s) = item.extract::<String>() {
                    rpcseal::PublicIdentity::parse(&s).map_err(|e| keys::key_error(py, e))?
                } else {
                    return Err(misuse_msg(
                        py,
                        "invalid_trust",
                        "a trusted sender is a PublicIdentity or an rpcseal-pub-id: string",
                    ));
                };
                b = b.trust(&key);
            }
        }
        if let Some(k) = keyring {
            b = b.keyring(k.snapshot());
        }
        if let Some(dir) = key_directory {
            b = b.key_directory(Arc::new(rpcseal::FileDirectory::new(dir)));
        }
        if let Some(p) = policy {
            b = b.policy(p.0.clone());
        }
        if let Some(n) = session_cache_capacity {
            b = b.session_cache_capacity(n);
        }
        match (replay_store, dangerous_disable_replay_protection) {
            (Some(_), true) => {
                return Err(misuse_msg(
                    py,
                    "invalid_config",
                    "replay_store and dangerous_disable_replay_protection exclude each other",
                ))
            }
            (Some(s), false) => b = b.replay_store(replay_store_of(py, s)?),
            (None, true) => b = b.replay_store(Arc::new(NoReplayCheck)),
            (None, false) => {
                b = b.replay_store(Arc::new(MemoryReplayStore_::new(
                    MemoryReplayConfig::default(),
                )))
            }
        }
        let opener = b.build().map_err(|e| misuse(py, e))?;
        Ok(Opener {
            inner: Arc::new(opener),
        })
    }

    /// Opens a v3 envelope: returns an `Opened`, or raises `Rejected` (with `kind`).
    /// `now` (unix seconds) replaces the clock, for tests and test vectors.
    #[pyo3(signature = (envelope, *, now = None))]
    fn open(&self, py: Python<'_>, envelope: &[u8], now: Option<u64>) -> PyResult<Opened> {
        let r = py.detach(|| match now {
            Some(t) => self.inner.open_at(envelope, t),
            None => self.inner.open(envelope),
        });
        match r {
            Ok(o) => Opened::from_rust(py, o),
            Err(e) => Err(rejected(py, e)),
        }
    }

    /// Opens a v3 envelope, or, only when the policy opted in with
    /// `dangerous_accept_unauthenticated_legacy_v2=True`, a legacy v2 envelope, returned
    /// as an (unauthenticated) `LegacyMessage`.
    #[pyo3(signature = (envelope, *, now = None))]
    fn open_any(&self, py: Python<'_>, envelope: &[u8], now: Option<u64>) -> PyResult<Py<PyAny>> {
        let r = py.detach(|| match now {
            Some(t) => self.inner.open_any_at(envelope, t),
            None => self.inner.open_any(envelope),
        });
        match r {
            Ok(rpcseal::Received::Verified(o)) => {
                Ok(Py::new(py, Opened::from_rust(py, o)?)?.into_any())
            }
            Ok(rpcseal::Received::UnauthenticatedLegacy(l)) => Ok(Py::new(
                py,
                LegacyMessage {
                    version: l.version(),
                    message: l.unauthenticated_message().to_owned(),
                },
            )?
            .into_any()),
            Ok(_) => Err(misuse_msg(py, "unsupported", "an unknown kind of message")),
            Err(e) => Err(rejected(py, e)),
        }
    }

    /// Verifies and caches a session block received out of band; returns its session
    /// reference.
    #[pyo3(signature = (block, *, now = None))]
    fn import_session<'py>(
        &self,
        py: Python<'py>,
        block: &[u8],
        now: Option<u64>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let r = py.detach(|| match now {
            Some(t) => self.inner.import_session_at(block, t),
            None => self.inner.import_session(block),
        });
        match r {
            Ok(session_ref) => Ok(PyBytes::new(py, &session_ref)),
            Err(e) => Err(rejected(py, e)),
        }
    }

    /// Opens `envelope` as the reply to a request: it must pass every check of `open`,
    /// come from the pending reply's responder and name its request. Give several
    /// `PendingReply` when the request was sealed to several keys: the reply is accepted
    /// from any one of them. Replay state is marked only when everything passed, so a
    /// refused reply changes nothing. Raises `Rejected` (`kind`: the envelope's failure
    /// class, or `wrong_responder`, `wrong_request`, `not_a_reply`).
    #[pyo3(signature = (envelope, pending, *, now = None))]
    fn open_reply(
        &self,
        py: Python<'_>,
        envelope: &[u8],
        pending: &Bound<'_, PyAny>,
        now: Option<u64>,
    ) -> PyResult<Opened> {
        rpc::open_reply(self, py, envelope, pending, now)
    }

    /// The context of a request this opener opened: who the reply goes to, where, and
    /// its binding. Raises `Rejected` (`not_a_request`, `untrusted_client`,
    /// `invalid_reply_session`).
    fn request_context(&self, py: Python<'_>, request: &Opened) -> PyResult<rpc::RequestContext> {
        rpc::request_context(self, py, request)
    }

    /// Revokes a sender's key (key id in hex): its cached sessions stop opening too.
    fn revoke(&self, py: Python<'_>, key_id: &str) -> PyResult<()> {
        self.inner.revoke(keys::key_id_of(py, key_id)?);
        Ok(())
    }

    /// Counters: sessions established, cache hits, ... (a dict).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.inner.stats();
        let d = PyDict::new(py);
        d.set_item("sessions_established", s.sessions_established)?;
        d.set_item("session_cache_hits", s.session_cache_hits)?;
        d.set_item("cached_sessions", self.inner.cached_sessions())?;
        Ok(d)
    }

    fn __repr__(&self) -> String {
        format!(
            "<rpcseal.Opener cached_sessions={}>",
            self.inner.cached_sessions()
        )
    }
}

// ---------------------------------------------------------------------------------------
// Free functions

/// Wraps a JSON object (text) in a legacy v2 (oslo.messaging) envelope: neither signed
/// nor encrypted. For peers that are not upgraded yet.
#[pyfunction]
fn seal_legacy_v2(py: Python<'_>, message_json: &str) -> PyResult<String> {
    rpcseal::seal_legacy_v2(message_json).map_err(|e| misuse(py, e))
}

/// What an envelope's cleartext header claims, read without any key. NOTHING in it is
/// verified.
#[pyfunction]
fn inspect<'py>(py: Python<'py>, envelope: &[u8]) -> PyResult<Bound<'py, PyDict>> {
    let i = rpcseal::inspect(envelope).map_err(|e| rejected(py, e))?;
    let d = PyDict::new(py);
    d.set_item("version", i.version)?;
    d.set_item("suite", i.suite.id())?;
    d.set_item("session_ref", hex(&i.session_ref))?;
    d.set_item("seq", i.seq)?;
    d.set_item("timestamp", i.timestamp)?;
    d.set_item("nonce", hex(&i.nonce))?;
    d.set_item("metadata", i.metadata.clone())?;
    d.set_item("body_len", i.body_len)?;
    d.set_item("envelope_len", i.envelope_len)?;
    match &i.session {
        Some(s) => {
            let sd = PyDict::new(py);
            sd.set_item("mode", s.mode.as_str())?;
            sd.set_item("sender", s.sender.to_string())?;
            sd.set_item("session_id", hex(&s.session_id))?;
            sd.set_item("not_before", s.not_before)?;
            sd.set_item("expires", s.expires)?;
            sd.set_item(
                "recipients",
                s.recipients
                    .iter()
                    .map(|r| r.to_string())
                    .collect::<Vec<_>>(),
            )?;
            d.set_item("session", sd)?;
        }
        None => d.set_item("session", py.None())?,
    }
    Ok(d)
}

/// The error kinds an opener can report, in the library's order.
#[pyfunction]
fn error_kinds() -> Vec<&'static str> {
    rpcseal::ErrorKind::ALL.iter().map(|k| k.as_str()).collect()
}

/// The module.
#[pymodule]
fn _rpcseal(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("RpcsealError", py.get_type::<RpcsealError>())?;
    m.add("Rejected", py.get_type::<Rejected>())?;
    m.add("MisuseError", py.get_type::<MisuseError>())?;
    m.add("KeyFormatError", py.get_type::<KeyFormatError>())?;
    m.add("ReplayStoreError", py.get_type::<ReplayStoreError>())?;
    m.add_class::<Identity>()?;
    m.add_class::<PublicIdentity>()?;
    m.add_class::<GroupKey>()?;
    m.add_class::<GroupPublicKey>()?;
    m.add_class::<SymmetricKey>()?;
    m.add_class::<Keyring>()?;
    m.add_class::<Sealer>()?;
    m.add_class::<Policy>()?;
    m.add_class::<ReplayStoreBase>()?;
    m.add_class::<MemoryReplayStore>()?;
    m.add_class::<FileReplayStore>()?;
    m.add_class::<RedisReplayStore>()?;
    m.add_class::<Opener>()?;
    m.add_class::<Opened>()?;
    m.add_class::<SessionFacts>()?;
    m.add_class::<LegacyMessage>()?;
    m.add_function(wrap_pyfunction!(seal_legacy_v2, m)?)?;
    m.add_function(wrap_pyfunction!(inspect, m)?)?;
    m.add_function(wrap_pyfunction!(error_kinds, m)?)?;
    rpc::register(m)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("HAS_REDIS", cfg!(feature = "redis"))?;
    Ok(())
}
