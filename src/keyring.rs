//! Trusted senders: a [`Keyring`] of named identity keys with validity periods and a
//! revocation list, and [`KeyDirectory`] for looking keys up elsewhere (spec/keyring.md).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::KeyError;
use crate::keys::{KeyId, PublicIdentity};

/// One trusted identity key of a named sender, valid for messages sealed (timestamped) in
/// `[valid_from, valid_until)`. Rotation: the old key gets a `valid_until`, the new one a
/// `valid_from`; messages sealed before the old key's end still open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedKey {
    name: Arc<str>,
    key: PublicIdentity,
    valid_from: Option<u64>,
    valid_until: Option<u64>,
}

impl TrustedKey {
    /// A key of sender `name`, valid without limit.
    pub fn new(name: &str, key: PublicIdentity) -> TrustedKey {
        TrustedKey {
            name: name.into(),
            key,
            valid_from: None,
            valid_until: None,
        }
    }

    /// Valid only for messages timestamped at or after `t` (unix seconds).
    pub fn valid_from(mut self, t: u64) -> Self {
        self.valid_from = Some(t);
        self
    }

    /// Valid only for messages timestamped before `t` (unix seconds).
    pub fn valid_until(mut self, t: u64) -> Self {
        self.valid_until = Some(t);
        self
    }

    /// The sender's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn name_arc(&self) -> Arc<str> {
        self.name.clone()
    }

    /// The public identity.
    pub fn key(&self) -> &PublicIdentity {
        &self.key
    }

    /// `[valid_from, valid_until)`, either end open when `None`.
    pub fn validity(&self) -> (Option<u64>, Option<u64>) {
        (self.valid_from, self.valid_until)
    }
}

/// The senders a receiver trusts, by key id, and the keys it has revoked.
#[derive(Clone, Debug, Default)]
pub struct Keyring {
    keys: HashMap<KeyId, TrustedKey>,
    revoked: HashSet<KeyId>,
}

/// A keyring file could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyringError {
    /// A line is not valid.
    #[error("keyring line {line}: {reason}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The file or directory could not be read.
    #[error("cannot read {path}: {reason}")]
    Io {
        /// The path.
        path: String,
        /// The operating system's reason.
        reason: String,
    },
}

impl Keyring {
    /// An empty keyring.
    pub fn new() -> Keyring {
        Keyring::default()
    }

    /// Adds (or replaces) a trusted key.
    pub fn add(&mut self, key: TrustedKey) {
        self.keys.insert(key.key.key_id(), key);
    }

    /// Revokes a key: sessions signed by it are rejected from now on, cached ones included.
    pub fn revoke(&mut self, id: KeyId) {
        self.revoked.insert(id);
    }

    /// True when `id` is revoked.
    pub fn is_revoked(&self, id: &KeyId) -> bool {
        self.revoked.contains(id)
    }

    /// The trusted key with this id, if any (revoked or not).
    pub fn get(&self, id: &KeyId) -> Option<&TrustedKey> {
        self.keys.get(id)
    }

    /// Number of trusted keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when no key is trusted.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Every trusted key.
    pub fn keys(&self) -> impl Iterator<Item = &TrustedKey> {
        self.keys.values()
    }

    /// Merges another keyring into this one (its keys replace ours, revocations add up).
    pub fn extend(&mut self, other: Keyring) {
        self.keys.extend(other.keys);
        self.revoked.extend(other.revoked);
    }

    /// Parses the text format of spec/keyring.md:
    ///
    /// ```text
    /// # comment
    /// trust billing rpcseal-pub-id:... [valid-from=UNIX] [valid-until=UNIX]
    /// revoke 0123456789abcdef0123456789abcdef
    /// ```
    pub fn parse(text: &str) -> Result<Keyring, KeyringError> {
        let mut ring = Keyring::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let bad = |reason: String| KeyringError::Line { line, reason };
            let l = raw.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let mut words = l.split_whitespace();
            match words.next() {
                Some("trust") => {
                    let name = words
                        .next()
                        .ok_or_else(|| bad("missing sender name".into()))?;
                    let key = words
                        .next()
                        .ok_or_else(|| bad("missing public key".into()))?;
                    let key =
                        PublicIdentity::parse(key).map_err(|e: KeyError| bad(e.to_string()))?;
                    let mut t = TrustedKey::new(name, key);
                    let mut seen: Vec<&str> = Vec::new();
                    for opt in words {
                        let (k, v) = opt
                            .split_once('=')
                            .ok_or_else(|| bad(format!("expected key=value, found {opt:?}")))?;
                        // spec/keyring.md §3: each option at most once.
                        if seen.contains(&k) {
                            return Err(bad(format!("option {k:?} given twice")));
                        }
                        seen.push(k);
                        let v: u64 = v
                            .parse()
                            .map_err(|_| bad(format!("{k} needs unix seconds")))?;
                        t = match k {
                            "valid-from" => t.valid_from(v),
                            "valid-until" => t.valid_until(v),
                            _ => return Err(bad(format!("unknown option {k:?}"))),
                        };
                    }
                    if let (Some(a), Some(b)) = t.validity() {
                        if b <= a {
                            return Err(bad("valid-until must be after valid-from".into()));
                        }
                    }
                    ring.add(t);
                }
                Some("revoke") => {
                    let id = words.next().ok_or_else(|| bad("missing key id".into()))?;
                    let id = KeyId::from_hex(id)
                        .ok_or_else(|| bad("a key id is 32 hex digits".into()))?;
                    if words.next().is_some() {
                        return Err(bad("trailing words after the key id".into()));
                    }
                    ring.revoke(id);
                }
                Some(other) => return Err(bad(format!("unknown directive {other:?}"))),
                None => {}
            }
        }
        Ok(ring)
    }

    /// Reads a keyring file.
    pub fn load(path: &Path) -> Result<Keyring, KeyringError> {
        let text = std::fs::read_to_string(path).map_err(|e| io_error(path, &e))?;
        Keyring::parse(&text)
    }

    /// The text form, sorted by name then key id, which [`Keyring::parse`] reads back.
    pub fn to_text(&self) -> String {
        let mut keys: Vec<&TrustedKey> = self.keys.values().collect();
        keys.sort_by(|a, b| (a.name(), a.key.key_id()).cmp(&(b.name(), b.key.key_id())));
        let mut out = String::from("# rpcseal keyring\n");
        for k in keys {
            out.push_str(&format!("trust {} {}", k.name, k.key));
            if let Some(t) = k.valid_from {
                out.push_str(&format!(" valid-from={t}"));
            }
            if let Some(t) = k.valid_until {
                out.push_str(&format!(" valid-until={t}"));
            }
            out.push('\n');
        }
        let mut revoked: Vec<&KeyId> = self.revoked.iter().collect();
        revoked.sort();
        for id in revoked {
            out.push_str(&format!("revoke {id}\n"));
        }
        out
    }
}

fn io_error(path: &Path, e: &std::io::Error) -> KeyringError {
    KeyringError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// Where an [`crate::Opener`] looks up a sender it does not know yet (OpenStack's key
/// server model). Consulted once per unknown sender at session setup, never per message;
/// what it returns is added to the opener's keyring.
pub trait KeyDirectory: Send + Sync {
    /// The trusted key with this id, `Ok(None)` if the directory does not know it. A
    /// revoked key MUST be reported as revoked, not as unknown.
    fn lookup(&self, id: &KeyId) -> Result<Lookup, KeyringError>;
}

/// The answer of a [`KeyDirectory`].
// Answers are rare (once per unknown sender); boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Lookup {
    /// Trusted.
    Trusted(TrustedKey),
    /// Known and revoked.
    Revoked,
    /// Not known.
    Unknown,
}

/// A directory backed by files: a keyring file (spec/keyring.md), or a directory of key
/// files named `NAME.pub`, each holding one public identity string (comment lines with `#`
/// allowed). Read afresh on every lookup, so edits take effect without a restart; wrap it in
/// a [`CachedDirectory`] to bound the reads.
#[derive(Clone, Debug)]
pub struct FileDirectory {
    path: PathBuf,
}

impl FileDirectory {
    /// A directory over `path` (a keyring file or a folder of `.pub` files).
    pub fn new(path: impl Into<PathBuf>) -> FileDirectory {
        FileDirectory { path: path.into() }
    }

    fn read(&self) -> Result<Keyring, KeyringError> {
        if !self.path.is_dir() {
            return Keyring::load(&self.path);
        }
        let mut ring = Keyring::new();
        let entries = std::fs::read_dir(&self.path).map_err(|e| io_error(&self.path, &e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io_error(&self.path, &e))?;
            let p = entry.path();
            if p.extension().and_then(|e| e.to_str()) != Some("pub") {
                continue;
            }
            let name = p
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("unnamed")
                .to_owned();
            let text = std::fs::read_to_string(&p).map_err(|e| io_error(&p, &e))?;
            let key_line = text
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with('#'))
                .ok_or_else(|| KeyringError::Io {
                    path: p.display().to_string(),
                    reason: "no key in the file".into(),
                })?;
            let key = PublicIdentity::parse(key_line).map_err(|e| KeyringError::Io {
                path: p.display().to_string(),
                reason: e.to_string(),
            })?;
            ring.add(TrustedKey::new(&name, key));
        }
        Ok(ring)
    }
}

impl KeyDirectory for FileDirectory {
    fn lookup(&self, id: &KeyId) -> Result<Lookup, KeyringError> {
        let ring = self.read()?;
        Ok(if ring.is_revoked(id) {
            Lookup::Revoked
        } else {
            ring.get(id)
                .cloned()
                .map_or(Lookup::Unknown, Lookup::Trusted)
        })
    }
}

/// Caches another directory's answers for `ttl` (unknown keys too, so an unknown sender
/// flooding session blocks cannot turn into a flood of lookups).
pub struct CachedDirectory<D> {
    inner: D,
    ttl: Duration,
    cache: Mutex<HashMap<KeyId, (Instant, Lookup)>>,
    max_entries: usize,
}

impl<D: KeyDirectory> CachedDirectory<D> {
    /// Caches `inner`'s answers for `ttl`, at most 10 000 of them.
    pub fn new(inner: D, ttl: Duration) -> Self {
        CachedDirectory {
            inner,
            ttl,
            cache: Mutex::new(HashMap::new()),
            max_entries: 10_000,
        }
    }
}

impl<D: KeyDirectory> KeyDirectory for CachedDirectory<D> {
    fn lookup(&self, id: &KeyId) -> Result<Lookup, KeyringError> {
        let now = Instant::now();
        {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((at, answer)) = cache.get(id) {
                if now.duration_since(*at) < self.ttl {
                    return Ok(answer.clone());
                }
            }
        }
        let answer = self.inner.lookup(id)?;
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= self.max_entries {
            cache.retain(|_, (at, _)| now.duration_since(*at) < self.ttl);
            if cache.len() >= self.max_entries {
                cache.clear();
            }
        }
        cache.insert(*id, (now, answer.clone()));
        Ok(answer)
    }
}
