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
    require_pq: bool,
}

impl TrustedKey {
    /// A key of sender `name`, valid without limit.
    pub fn new(name: &str, key: PublicIdentity) -> TrustedKey {
        TrustedKey {
            name: name.into(),
            key,
            valid_from: None,
            valid_until: None,
            require_pq: false,
        }
    }

    /// Accept sessions of this sender only in a post-quantum suite (spec/keyring.md §2
    /// rule 4, the keyring option `require=pq`): a classical session in its name is
    /// [`crate::ErrorKind::SuiteNotAllowed`].
    pub fn require_post_quantum(mut self) -> Self {
        self.require_pq = true;
        self
    }

    /// True when this sender is held to post-quantum sessions.
    pub fn requires_post_quantum(&self) -> bool {
        self.require_pq
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
    /// A key directory cannot answer now (for example [`CachedDirectory`]'s bound on
    /// lookups of unknown ids is reached). The sender is then not trusted.
    #[error("the key directory cannot answer: {reason}")]
    Unavailable {
        /// Why.
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
    /// trust billing rpcseal-pub-id:... [valid-from=UNIX] [valid-until=UNIX] [require=pq]
    /// revoke 0123456789abcdef0123456789abcdef
    /// ```
    ///
    /// All or nothing: the first bad line is an error ([`KeyringError::Line`], which names
    /// the line and the word but never quotes the text, so a secret key pasted into a
    /// keyring is not echoed). A line that contains the secret key stem `RPCSEAL-SECRET-`
    /// anywhere, comments included, is refused; so are an option given twice, a key trusted
    /// twice, a key id revoked twice, and numbers that are not plain decimal digits.
    pub fn parse(text: &str) -> Result<Keyring, KeyringError> {
        use crate::mutant::{is, Mutant};
        #[cfg(feature = "vectors")]
        if is(Mutant::KeyringSkipsBadLines) {
            // Each line on its own, the lines that fail dropped (tests/mutants.rs).
            let mut ring = Keyring::new();
            for line in text.lines() {
                if let Ok(r) = crate::mutant::with(None, || Keyring::parse(line)) {
                    ring.extend(r);
                }
            }
            return Ok(ring);
        }
        let mut ring = Keyring::new();
        // Key id -> the line that trusted or revoked it, for the duplicate errors.
        let mut trusted_on: HashMap<KeyId, usize> = HashMap::new();
        let mut revoked_on: HashMap<KeyId, usize> = HashMap::new();
        let lines: Box<dyn Iterator<Item = &str>> = if is(Mutant::KeyringLfOnly) {
            Box::new(text.split_terminator('\n'))
        } else {
            Box::new(text.lines())
        };
        for (i, raw) in lines.enumerate() {
            let line = i + 1;
            let bad = |reason: String| KeyringError::Line { line, reason };
            // spec/keyring.md §3: refused before anything else, comments included.
            if raw.contains(SECRET_STEM) {
                return Err(bad(format!(
                    "holds a secret key ({SECRET_STEM}...): a keyring holds public keys only; \
                     give the public key (rpcseal pubkey KEY_FILE)"
                )));
            }
            let l = if is(Mutant::KeyringNoIndent) {
                raw
            } else {
                raw.trim_matches(KEYRING_SPACE)
            };
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let mut words = l.split(KEYRING_SPACE).filter(|w| !w.is_empty());
            match words.next() {
                Some("trust") => {
                    let name = words
                        .next()
                        .ok_or_else(|| bad("missing sender name".into()))?;
                    let key = words
                        .next()
                        .ok_or_else(|| bad("missing public key".into()))?;
                    let key = PublicIdentity::parse(key)
                        .map_err(|e: KeyError| bad(format!("word 3, the public key: {e}")))?;
                    let id = key.key_id();
                    let mut t = TrustedKey::new(name, key);
                    let (mut from, mut until, mut require) = (false, false, false);
                    for (n, opt) in words.enumerate() {
                        let word = n + 4;
                        let (k, v) = opt.split_once('=').ok_or_else(|| {
                            bad(format!(
                                "word {word} is not an option (valid-from=UNIX, \
                                 valid-until=UNIX or require=pq)"
                            ))
                        })?;
                        let seen = match k {
                            "valid-from" => &mut from,
                            "valid-until" => &mut until,
                            "require" => &mut require,
                            _ if is(Mutant::KeyringUnknownOptionsIgnored) => continue,
                            _ => {
                                return Err(bad(format!(
                                    "word {word}: unknown option (the options are valid-from, \
                                     valid-until and require)"
                                )))
                            }
                        };
                        if std::mem::replace(seen, true) && !is(Mutant::KeyringOptionTwice) {
                            return Err(bad(format!("word {word}: {k} is given twice")));
                        }
                        if k == "require" {
                            // spec/keyring.md §3: `pq` is the only value, case included.
                            if v != "pq" {
                                return Err(bad(format!(
                                    "word {word}: require takes the value pq (post-quantum \
                                     sessions only)"
                                )));
                            }
                            t = t.require_post_quantum();
                            continue;
                        }
                        let v = unix_seconds(v).ok_or_else(|| {
                            bad(format!(
                                "word {word}: {k} needs unix seconds, plain decimal digits \
                                 below 2^64"
                            ))
                        })?;
                        t = if k == "valid-from" {
                            t.valid_from(v)
                        } else {
                            t.valid_until(v)
                        };
                    }
                    if let (Some(a), Some(b)) = t.validity() {
                        if b < a || (b == a && !is(Mutant::KeyringUntilMayEqualFrom)) {
                            return Err(bad("valid-until must be after valid-from".into()));
                        }
                    }
                    if let (Some(first), false) = (
                        trusted_on.insert(id, line),
                        is(Mutant::KeyringDuplicateKeys),
                    ) {
                        return Err(bad(format!(
                            "key {id} is trusted twice (first on line {first})"
                        )));
                    }
                    ring.add(t);
                }
                Some("revoke") => {
                    let id = words.next().ok_or_else(|| bad("missing key id".into()))?;
                    if is(Mutant::KeyringRevokeLowerCaseOnly)
                        && id.bytes().any(|b| b.is_ascii_uppercase())
                    {
                        return Err(bad("word 2: a key id is 32 hex digits".into()));
                    }
                    let id = KeyId::from_hex(id)
                        .ok_or_else(|| bad("word 2: a key id is 32 hex digits".into()))?;
                    if words.next().is_some() && !is(Mutant::KeyringRevokeTrailingWords) {
                        return Err(bad("trailing words after the key id".into()));
                    }
                    if let Some(first) = revoked_on.insert(id, line) {
                        return Err(bad(format!(
                            "key {id} is revoked twice (first on line {first})"
                        )));
                    }
                    ring.revoke(id);
                }
                Some(_) if is(Mutant::KeyringUnknownDirectivesIgnored) => {}
                Some(_) => {
                    return Err(bad(
                        "word 1: unknown directive (the directives are trust and revoke)".into(),
                    ))
                }
                None => {}
            }
        }
        if is(Mutant::KeyringEmptyRefused) && ring.keys.is_empty() && ring.revoked.is_empty() {
            return Err(KeyringError::Line {
                line: 0,
                reason: "an empty keyring".into(),
            });
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
            if k.require_pq {
                out.push_str(" require=pq");
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

/// The stem every secret key string starts with (spec/envelope-v3.md §2.4), present and
/// future kinds alike.
pub(crate) const SECRET_STEM: &str = "RPCSEAL-SECRET-";

/// Words of a keyring line are separated by spaces or tabs (spec/keyring.md §3).
const KEYRING_SPACE: [char; 2] = [' ', '\t'];

/// A number of spec/keyring.md §3: one or more ASCII decimal digits (no sign, no space),
/// below 2^64.
fn unix_seconds(v: &str) -> Option<u64> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

fn io_error(path: &Path, e: &std::io::Error) -> KeyringError {
    KeyringError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// How long an [`crate::Opener`] relies on an answer of a [`KeyDirectory`] that does not
/// say ([`KeyDirectory::ttl`]): 60 seconds.
pub(crate) const DEFAULT_DIRECTORY_TTL: Duration = Duration::from_secs(60);

/// How long a [`FileDirectory`] keeps what it read before reading it again: 10 seconds.
pub(crate) const DEFAULT_FILE_DIRECTORY_TTL: Duration = Duration::from_secs(10);

/// Where an [`crate::Opener`] looks up senders its keyring does not hold (OpenStack's key
/// server model), spec/keyring.md §4.
///
/// The opener asks when it establishes a session of such a sender (every new session, so
/// a revocation stops new sessions as soon as the directory reports it), and asks again
/// for messages of sessions it has cached once the answer is older than [`KeyDirectory::ttl`]
/// (so a revocation stops cached sessions within one TTL). Never per message otherwise.
/// A directory that fails ([`Err`]) fails closed: the sender is not trusted.
pub trait KeyDirectory: Send + Sync {
    /// The trusted key with this id, [`Lookup::Unknown`] if the directory does not know
    /// it. A revoked key MUST be reported as [`Lookup::Revoked`], not as unknown.
    fn lookup(&self, id: &KeyId) -> Result<Lookup, KeyringError>;

    /// How long a receiver may rely on an answer, counted from [`KeyDirectory::lookup_as_of`]'s
    /// instant; also how late a revocation may reach a session already established.
    /// Default: 60 seconds.
    fn ttl(&self) -> Duration {
        DEFAULT_DIRECTORY_TTL
    }

    /// [`KeyDirectory::lookup`], with the instant the answer was read from its source
    /// (older than now when it comes from a cache). The default asks
    /// [`KeyDirectory::lookup`] and says "now"; caching directories override it so that
    /// caches stacked on each other cannot add up their TTLs.
    fn lookup_as_of(&self, id: &KeyId) -> Result<(Lookup, Instant), KeyringError> {
        let answer = self.lookup(id)?;
        Ok((answer, Instant::now()))
    }
}

/// The answer of a [`KeyDirectory`].
// Answers are rare (once per session setup); boxing would only add an allocation.
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

impl Lookup {
    fn from_keyring(ring: &Keyring, id: &KeyId) -> Lookup {
        if ring.is_revoked(id) {
            Lookup::Revoked
        } else {
            ring.get(id)
                .cloned()
                .map_or(Lookup::Unknown, Lookup::Trusted)
        }
    }
}

/// A directory backed by files: a keyring file (spec/keyring.md §3), or a directory of key
/// files named `NAME.pub`, each holding one public identity string (comment lines with `#`
/// allowed; a file holding a secret key is an error).
///
/// What it reads is kept in memory and used for every lookup, so a flood of unknown
/// sender ids costs a hash lookup each, not a read of every file. It is read again when the
/// path's size, modification time or inode changed (one `stat` per lookup: a keyring file
/// edited or replaced is noticed at the next lookup; files added to or removed from a
/// folder too) and in any case once its copy is older than the TTL
/// (10 seconds, or [`FileDirectory::with_ttl`]), which is what catches
/// a `.pub` file edited in place. An error reading it is returned (fail closed), and the
/// next lookup tries again.
pub struct FileDirectory {
    path: PathBuf,
    ttl: Duration,
    loaded: Mutex<Option<Loaded>>,
}

/// What a [`FileDirectory`] read, and when.
struct Loaded {
    ring: Keyring,
    stamp: Stamp,
    at: Instant,
}

/// What tells that a file or folder changed without reading it.
#[derive(Clone, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
    #[cfg(unix)]
    inode: (u64, u64),
}

impl Stamp {
    fn of(path: &Path) -> Result<Stamp, KeyringError> {
        let meta = std::fs::metadata(path).map_err(|e| io_error(path, &e))?;
        Ok(Stamp {
            len: meta.len(),
            modified: meta.modified().ok(),
            #[cfg(unix)]
            inode: {
                use std::os::unix::fs::MetadataExt;
                (meta.dev(), meta.ino())
            },
        })
    }
}

impl Clone for FileDirectory {
    /// Another directory over the same path, with the same TTL and nothing read yet.
    fn clone(&self) -> Self {
        FileDirectory::new(self.path.clone()).with_ttl(self.ttl)
    }
}

impl std::fmt::Debug for FileDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileDirectory")
            .field("path", &self.path)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl FileDirectory {
    /// A directory over `path` (a keyring file or a folder of `.pub` files), read again at
    /// least every 10 seconds.
    pub fn new(path: impl Into<PathBuf>) -> FileDirectory {
        FileDirectory {
            path: path.into(),
            ttl: DEFAULT_FILE_DIRECTORY_TTL,
            loaded: Mutex::new(None),
        }
    }

    /// Reads the files again at least this often (and an opener re-checks the senders it
    /// learned here this often).
    pub fn with_ttl(mut self, ttl: Duration) -> FileDirectory {
        self.ttl = ttl;
        self
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
            let bad = |reason: String| KeyringError::Io {
                path: p.display().to_string(),
                reason,
            };
            let text =
                zeroize::Zeroizing::new(std::fs::read_to_string(&p).map_err(|e| io_error(&p, &e))?);
            if text.contains(SECRET_STEM) {
                return Err(bad(format!(
                    "holds a secret key ({SECRET_STEM}...): a .pub file holds a public key"
                )));
            }
            let mut keys = text
                .lines()
                .map(|l| l.trim_matches(KEYRING_SPACE))
                .filter(|l| !l.is_empty() && !l.starts_with('#'));
            let key_line = keys
                .next()
                .ok_or_else(|| bad("no key in the file".into()))?;
            if keys.next().is_some() {
                return Err(bad("more than one key line".into()));
            }
            let key = PublicIdentity::parse(key_line).map_err(|e| bad(e.to_string()))?;
            if ring.get(&key.key_id()).is_some() {
                // Which name would win depends on the folder's order: refuse, as a keyring
                // refuses a key trusted twice.
                return Err(bad(format!(
                    "key {} is in another .pub file of the folder too",
                    key.key_id()
                )));
            }
            ring.add(TrustedKey::new(&name, key));
        }
        Ok(ring)
    }
}

impl KeyDirectory for FileDirectory {
    fn lookup(&self, id: &KeyId) -> Result<Lookup, KeyringError> {
        self.lookup_as_of(id).map(|(answer, _)| answer)
    }

    fn ttl(&self) -> Duration {
        self.ttl
    }

    fn lookup_as_of(&self, id: &KeyId) -> Result<(Lookup, Instant), KeyringError> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        let stamp = Stamp::of(&self.path);
        let stamp = match stamp {
            Ok(s) => s,
            Err(e) => {
                *loaded = None;
                return Err(e);
            }
        };
        if let Some(l) = loaded.as_ref() {
            if l.stamp == stamp && l.at.elapsed() < self.ttl {
                return Ok((Lookup::from_keyring(&l.ring, id), l.at));
            }
        }
        *loaded = None;
        let at = Instant::now();
        let ring = self.read()?;
        let answer = Lookup::from_keyring(&ring, id);
        *loaded = Some(Loaded { ring, stamp, at });
        Ok((answer, at))
    }
}

/// Caches another directory's answers for `ttl`, unknown keys too, and bounds how often
/// it asks the other directory about ids it holds no answer for.
///
/// Answers about known keys (trusted or revoked) and answers "unknown" are kept apart,
/// each in a least-recently-used cache of `max_entries`: a flood of made-up sender ids only
/// ever displaces other "unknown" answers, never a known key's. At most
/// `max_misses_per_ttl` lookups of ids without a known-key answer reach the other directory
/// in any window of `ttl`; past that, such lookups fail (the sender is then not trusted,
/// fail closed) until the window ends. That is the price of the bound: during a flood of
/// made-up ids, a genuinely new sender may be refused for up to one TTL. Senders already
/// known (their answer cached or being refreshed) are never affected.
pub struct CachedDirectory<D> {
    inner: D,
    ttl: Duration,
    state: Mutex<CacheState>,
    max_misses: usize,
}

struct CacheState {
    known: lru::LruCache<KeyId, (Instant, Lookup)>,
    unknown: lru::LruCache<KeyId, Instant>,
    /// The start of the current miss window, and the misses in it.
    window: Option<Instant>,
    misses: usize,
}

/// Default capacity of each of a [`CachedDirectory`]'s two caches.
pub(crate) const DEFAULT_CACHE_ENTRIES: usize = 10_000;

/// Default bound on a [`CachedDirectory`]'s lookups of uncached ids per TTL.
pub(crate) const DEFAULT_MAX_MISSES_PER_TTL: usize = 1_000;

impl<D: KeyDirectory> CachedDirectory<D> {
    /// Caches `inner`'s answers for `ttl`, at most 10 000 known keys and
    /// as many unknown ones, and asks `inner` about at most
    /// 1 000 uncached ids per `ttl`.
    pub fn new(inner: D, ttl: Duration) -> Self {
        CachedDirectory::with_limits(
            inner,
            ttl,
            DEFAULT_CACHE_ENTRIES,
            DEFAULT_MAX_MISSES_PER_TTL,
        )
    }

    /// [`CachedDirectory::new`] with the sizes given: `max_entries` answers of each kind
    /// (at least 1), and `max_misses_per_ttl` lookups of uncached ids per `ttl`.
    pub fn with_limits(
        inner: D,
        ttl: Duration,
        max_entries: usize,
        max_misses_per_ttl: usize,
    ) -> Self {
        let cap = std::num::NonZeroUsize::new(max_entries.max(1)).expect("at least one");
        CachedDirectory {
            inner,
            ttl,
            state: Mutex::new(CacheState {
                known: lru::LruCache::new(cap),
                unknown: lru::LruCache::new(cap),
                window: None,
                misses: 0,
            }),
            max_misses: max_misses_per_ttl,
        }
    }

    fn fresh(&self, as_of: Instant, now: Instant) -> bool {
        now.saturating_duration_since(as_of) < self.ttl
    }
}

impl<D: KeyDirectory> KeyDirectory for CachedDirectory<D> {
    fn lookup(&self, id: &KeyId) -> Result<Lookup, KeyringError> {
        self.lookup_as_of(id).map(|(answer, _)| answer)
    }

    fn ttl(&self) -> Duration {
        self.ttl
    }

    fn lookup_as_of(&self, id: &KeyId) -> Result<(Lookup, Instant), KeyringError> {
        let now = Instant::now();
        {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((as_of, answer)) = st.known.get(id) {
                if self.fresh(*as_of, now) {
                    return Ok((answer.clone(), *as_of));
                }
            }
            if let Some(as_of) = st.unknown.get(id) {
                if self.fresh(*as_of, now) {
                    return Ok((Lookup::Unknown, *as_of));
                }
            }
            if !st.known.contains(id) {
                // A miss: counted against the window's budget.
                let st = &mut *st;
                if st.window.is_none_or(|w| !self.fresh(w, now)) {
                    st.window = Some(now);
                    st.misses = 0;
                }
                if st.misses >= self.max_misses {
                    return Err(KeyringError::Unavailable {
                        reason: "too many lookups of unknown key ids; asking again later".into(),
                    });
                }
                st.misses += 1;
            }
        }
        let (answer, as_of) = self.inner.lookup_as_of(id)?;
        // Never claim an answer newer than the moment we asked.
        let as_of = as_of.min(Instant::now());
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match &answer {
            Lookup::Unknown => {
                st.known.pop(id);
                st.unknown.put(*id, as_of);
            }
            _ => {
                st.unknown.pop(id);
                st.known.put(*id, (as_of, answer.clone()));
            }
        }
        Ok((answer, as_of))
    }
}
