//! Keys from Python: identities, group keys, symmetric keys, their public halves, and
//! keyrings, in the formats of the library (key strings, spec/envelope-v3.md §2.4; keyring
//! files, spec/keyring.md) and of the CLI (key files: `#` comment lines and one key line).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use pyo3::prelude::*;
use zeroize::Zeroizing;

use crate::{lock, with_kind, KeyFormatError};

pub(crate) fn key_error(py: Python<'_>, e: rpcseal::KeyError) -> PyErr {
    let kind = match &e {
        rpcseal::KeyError::UnknownPrefix { .. } => "unknown_prefix",
        rpcseal::KeyError::WrongKind { .. } => "wrong_kind",
        rpcseal::KeyError::Encoding => "encoding",
        rpcseal::KeyError::Length { .. } => "length",
        rpcseal::KeyError::Checksum => "checksum",
        rpcseal::KeyError::Invalid(_) => "invalid",
        _ => "invalid",
    };
    with_kind::<KeyFormatError>(py, kind, e.to_string())
}

fn file_error(py: Python<'_>, path: &Path, why: impl std::fmt::Display) -> PyErr {
    with_kind::<KeyFormatError>(py, "file", format!("key file {}: {why}", path.display()))
}

pub(crate) fn key_id_of(py: Python<'_>, text: &str) -> PyResult<rpcseal::KeyId> {
    rpcseal::KeyId::from_hex(text).ok_or_else(|| {
        with_kind::<KeyFormatError>(py, "key_id", "a key id is 32 hex digits".to_owned())
    })
}

/// The one key line of a key file, as the CLI reads it: blank lines and lines starting
/// with `#` are skipped; exactly one line remains. The text is wiped when dropped.
fn read_key_line(py: Python<'_>, path: &Path) -> PyResult<Zeroizing<String>> {
    let text = py
        .detach(|| std::fs::read_to_string(path))
        .map(Zeroizing::new)
        .map_err(|e| file_error(py, path, format!("cannot read it: {e}")))?;
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    let line = lines
        .next()
        .ok_or_else(|| file_error(py, path, "it holds no key"))?;
    if lines.next().is_some() {
        return Err(file_error(py, path, "it holds more than one key line"));
    }
    Ok(Zeroizing::new(line.to_owned()))
}

fn read_public_line(py: Python<'_>, path: &Path) -> PyResult<Zeroizing<String>> {
    let line = read_key_line(py, path)?;
    if line.starts_with("RPCSEAL-SECRET-") {
        return Err(file_error(
            py,
            path,
            "it is a secret key file; a public key is needed here (rpcseal pubkey FILE)",
        ));
    }
    Ok(line)
}

/// An identity: an Ed25519 signing key and an X25519 key. Its secret never prints.
#[pyclass(module = "rpcseal", frozen)]
pub(crate) struct Identity(pub(crate) rpcseal::Identity);

#[pymethods]
impl Identity {
    /// A new random identity.
    #[staticmethod]
    fn generate(py: Python<'_>) -> Identity {
        Identity(py.detach(rpcseal::Identity::generate))
    }

    /// From a secret key string (`RPCSEAL-SECRET-ID:...`, as `rpcseal keygen` writes).
    #[staticmethod]
    fn from_secret_string(py: Python<'_>, text: &str) -> PyResult<Identity> {
        rpcseal::Identity::from_secret_string(text.trim())
            .map(Identity)
            .map_err(|e| key_error(py, e))
    }

    /// From a key file written by `rpcseal keygen`.
    #[staticmethod]
    fn from_file(py: Python<'_>, path: PathBuf) -> PyResult<Identity> {
        let line = read_key_line(py, &path)?;
        rpcseal::Identity::from_secret_string(&line)
            .map(Identity)
            .map_err(|e| file_error(py, &path, e))
    }

    /// From the raw secrets: a 32-byte Ed25519 seed and a 32-byte X25519 secret.
    #[staticmethod]
    fn from_raw(py: Python<'_>, ed25519_seed: &[u8], x25519_secret: &[u8]) -> PyResult<Identity> {
        let (Ok(seed), Ok(x)) = (
            <&[u8; 32]>::try_from(ed25519_seed),
            <&[u8; 32]>::try_from(x25519_secret),
        ) else {
            return Err(with_kind::<KeyFormatError>(
                py,
                "length",
                "both secrets are 32 bytes".to_owned(),
            ));
        };
        Ok(Identity(rpcseal::Identity::from_parts(seed, x)))
    }

    /// The public identity to hand to peers.
    fn public(&self) -> PublicIdentity {
        PublicIdentity(self.0.public().clone())
    }

    /// The key id (hex): what `Opened.sender` reports for messages from this identity.
    #[getter]
    fn key_id(&self) -> String {
        self.0.key_id().to_string()
    }

    /// The secret key string. Handle with care: it IS the identity.
    fn to_secret_string(&self) -> String {
        self.0.to_secret_string().to_string()
    }

    fn __repr__(&self) -> String {
        format!(
            "<rpcseal.Identity key_id={} (secret not shown)>",
            self.0.key_id()
        )
    }

    fn __reduce__(&self, py: Python<'_>) -> PyResult<()> {
        Err(crate::misuse_msg(
            py,
            "secret_export",
            "an Identity cannot be pickled; use to_secret_string() explicitly",
        ))
    }
}

/// The public half of an identity (`rpcseal-pub-id:...`).
#[pyclass(module = "rpcseal", frozen, eq)]
#[derive(PartialEq, Eq)]
pub(crate) struct PublicIdentity(pub(crate) rpcseal::PublicIdentity);

#[pymethods]
impl PublicIdentity {
    /// Parses a public identity string.
    #[new]
    fn new(py: Python<'_>, text: &str) -> PyResult<PublicIdentity> {
        Self::parse(py, text)
    }

    /// Parses a public identity string.
    #[staticmethod]
    fn parse(py: Python<'_>, text: &str) -> PyResult<PublicIdentity> {
        rpcseal::PublicIdentity::parse(text.trim())
            .map(PublicIdentity)
            .map_err(|e| key_error(py, e))
    }

    /// From a file holding one public identity string (`#` comments allowed).
    #[staticmethod]
    fn from_file(py: Python<'_>, path: PathBuf) -> PyResult<PublicIdentity> {
        let line = read_public_line(py, &path)?;
        rpcseal::PublicIdentity::parse(&line)
            .map(PublicIdentity)
            .map_err(|e| file_error(py, &path, e))
    }

    /// The key id (hex) of the signing key: the sender id.
    #[getter]
    fn key_id(&self) -> String {
        self.0.key_id().to_string()
    }

    /// The key id (hex) of the X25519 key: the recipient id.
    #[getter]
    fn recipient_key_id(&self) -> String {
        self.0.recipient_key_id().to_string()
    }

    fn __str__(&self) -> String {
        self.0.to_string()
    }

    fn __hash__(&self) -> u64 {
        let id = self.0.key_id();
        let mut first = [0u8; 8];
        first.copy_from_slice(&id.as_bytes()[..8]);
        u64::from_le_bytes(first)
    }

    fn __repr__(&self) -> String {
        format!("PublicIdentity({:?})", self.0.to_string())
    }
}

/// A group key: one X25519 key that every member holds. Its secret never prints.
#[pyclass(module = "rpcseal", frozen)]
pub(crate) struct GroupKey(pub(crate) rpcseal::GroupKey);

#[pymethods]
impl GroupKey {
    /// A new random group key.
    #[staticmethod]
    fn generate() -> GroupKey {
        GroupKey(rpcseal::GroupKey::generate())
    }

    /// From a secret group key string (`RPCSEAL-SECRET-GROUP:...`).
    #[staticmethod]
    fn from_secret_string(py: Python<'_>, text: &str) -> PyResult<GroupKey> {
        rpcseal::GroupKey::from_secret_string(text.trim())
            .map(GroupKey)
            .map_err(|e| key_error(py, e))
    }

    /// From a key file written by `rpcseal keygen --group`.
    #[staticmethod]
    fn from_file(py: Python<'_>, path: PathBuf) -> PyResult<GroupKey> {
        let line = read_key_line(py, &path)?;
        rpcseal::GroupKey::from_secret_string(&line)
            .map(GroupKey)
            .map_err(|e| file_error(py, &path, e))
    }

    /// From the raw 32-byte X25519 secret.
    #[staticmethod]
    fn from_raw(py: Python<'_>, secret: &[u8]) -> PyResult<GroupKey> {
        let s = <&[u8; 32]>::try_from(secret).map_err(|_| {
            with_kind::<KeyFormatError>(py, "length", "the secret is 32 bytes".to_owned())
        })?;
        Ok(GroupKey(rpcseal::GroupKey::from_secret_bytes(s)))
    }

    /// The public half, to seal to.
    fn public(&self) -> GroupPublicKey {
        GroupPublicKey(self.0.public().clone())
    }

    /// The secret key string. Handle with care.
    fn to_secret_string(&self) -> String {
        self.0.to_secret_string().to_string()
    }

    fn __repr__(&self) -> String {
        format!(
            "<rpcseal.GroupKey key_id={} (secret not shown)>",
            self.0.public().key_id()
        )
    }

    fn __reduce__(&self, py: Python<'_>) -> PyResult<()> {
        Err(crate::misuse_msg(
            py,
            "secret_export",
            "a GroupKey cannot be pickled; use to_secret_string() explicitly",
        ))
    }
}

/// The public half of a group key (`rpcseal-pub-group:...`).
#[pyclass(module = "rpcseal", frozen)]
pub(crate) struct GroupPublicKey(pub(crate) rpcseal::GroupPublicKey);

#[pymethods]
impl GroupPublicKey {
    /// Parses a public group key string.
    #[staticmethod]
    fn parse(py: Python<'_>, text: &str) -> PyResult<GroupPublicKey> {
        rpcseal::GroupPublicKey::parse(text.trim())
            .map(GroupPublicKey)
            .map_err(|e| key_error(py, e))
    }

    /// The key id (hex).
    #[getter]
    fn key_id(&self) -> String {
        self.0.key_id().to_string()
    }

    fn __str__(&self) -> String {
        self.0.to_string()
    }

    fn __repr__(&self) -> String {
        format!("GroupPublicKey({:?})", self.0.to_string())
    }
}

/// A 256-bit symmetric recipient key with its key id. Its secret never prints.
#[pyclass(module = "rpcseal", frozen)]
pub(crate) struct SymmetricKey(pub(crate) rpcseal::SymmetricKey);

#[pymethods]
impl SymmetricKey {
    /// A new random key.
    #[staticmethod]
    fn generate() -> SymmetricKey {
        SymmetricKey(rpcseal::SymmetricKey::generate())
    }

    /// From a secret key string (`RPCSEAL-SECRET-SYM:...`).
    #[staticmethod]
    fn from_secret_string(py: Python<'_>, text: &str) -> PyResult<SymmetricKey> {
        rpcseal::SymmetricKey::from_secret_string(text.trim())
            .map(SymmetricKey)
            .map_err(|e| key_error(py, e))
    }

    /// From a key file written by `rpcseal keygen --symmetric`.
    #[staticmethod]
    fn from_file(py: Python<'_>, path: PathBuf) -> PyResult<SymmetricKey> {
        let line = read_key_line(py, &path)?;
        rpcseal::SymmetricKey::from_secret_string(&line)
            .map(SymmetricKey)
            .map_err(|e| file_error(py, &path, e))
    }

    /// From a key id (hex) and the raw 32-byte key.
    #[staticmethod]
    fn from_raw(py: Python<'_>, key_id: &str, key: &[u8]) -> PyResult<SymmetricKey> {
        let id = key_id_of(py, key_id)?;
        let k = <&[u8; 32]>::try_from(key).map_err(|_| {
            with_kind::<KeyFormatError>(py, "length", "the key is 32 bytes".to_owned())
        })?;
        Ok(SymmetricKey(rpcseal::SymmetricKey::with_id(id, k)))
    }

    /// The key id (hex).
    #[getter]
    fn key_id(&self) -> String {
        self.0.key_id().to_string()
    }

    /// The secret key string. Handle with care.
    fn to_secret_string(&self) -> String {
        self.0.to_secret_string().to_string()
    }

    fn __repr__(&self) -> String {
        format!(
            "<rpcseal.SymmetricKey key_id={} (secret not shown)>",
            self.0.key_id()
        )
    }

    fn __reduce__(&self, py: Python<'_>) -> PyResult<()> {
        Err(crate::misuse_msg(
            py,
            "secret_export",
            "a SymmetricKey cannot be pickled; use to_secret_string() explicitly",
        ))
    }
}

fn keyring_error(py: Python<'_>, e: rpcseal::KeyringError) -> PyErr {
    with_kind::<KeyFormatError>(py, "keyring", e.to_string())
}

/// Trusted senders by name, with validity periods and revocations (spec/keyring.md).
/// An opener takes a copy when it is built.
#[pyclass(module = "rpcseal", frozen)]
pub(crate) struct Keyring(Mutex<rpcseal::Keyring>);

impl Keyring {
    pub(crate) fn snapshot(&self) -> rpcseal::Keyring {
        lock(&self.0).clone()
    }
}

#[pymethods]
impl Keyring {
    /// An empty keyring.
    #[new]
    fn new() -> Keyring {
        Keyring(Mutex::new(rpcseal::Keyring::new()))
    }

    /// Parses keyring text (`trust NAME KEY [valid-from=T] [valid-until=T]`, `revoke ID`).
    #[staticmethod]
    fn parse(py: Python<'_>, text: &str) -> PyResult<Keyring> {
        rpcseal::Keyring::parse(text)
            .map(|k| Keyring(Mutex::new(k)))
            .map_err(|e| keyring_error(py, e))
    }

    /// Reads a keyring file.
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<Keyring> {
        py.detach(|| rpcseal::Keyring::load(&path))
            .map(|k| Keyring(Mutex::new(k)))
            .map_err(|e| keyring_error(py, e))
    }

    /// Trusts `key` as sender `name`, optionally only for messages timestamped in
    /// `[valid_from, valid_until)` (unix seconds).
    #[pyo3(signature = (name, key, *, valid_from = None, valid_until = None))]
    fn add(
        &self,
        name: &str,
        key: &PublicIdentity,
        valid_from: Option<u64>,
        valid_until: Option<u64>,
    ) {
        let mut t = rpcseal::TrustedKey::new(name, key.0.clone());
        if let Some(f) = valid_from {
            t = t.valid_from(f);
        }
        if let Some(u) = valid_until {
            t = t.valid_until(u);
        }
        lock(&self.0).add(t);
    }

    /// Revokes a key by id (hex).
    fn revoke(&self, py: Python<'_>, key_id: &str) -> PyResult<()> {
        lock(&self.0).revoke(key_id_of(py, key_id)?);
        Ok(())
    }

    /// The public identities trusted under `name` (several during a rotation).
    fn keys_named(&self, name: &str) -> Vec<PublicIdentity> {
        lock(&self.0)
            .keys()
            .filter(|k| k.name() == name)
            .map(|k| PublicIdentity(k.key().clone()))
            .collect()
    }

    /// The names in the keyring, sorted.
    fn names(&self) -> Vec<String> {
        let mut n: Vec<String> = lock(&self.0).keys().map(|k| k.name().to_owned()).collect();
        n.sort();
        n.dedup();
        n
    }

    /// The keyring as text, in the file format.
    fn to_text(&self) -> String {
        lock(&self.0).to_text()
    }

    fn __len__(&self) -> usize {
        lock(&self.0).len()
    }

    fn __repr__(&self) -> String {
        format!("<rpcseal.Keyring {} keys>", lock(&self.0).len())
    }
}
