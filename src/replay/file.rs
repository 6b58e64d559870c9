//! A replay store kept in one file, for a process that opens a few messages and exits (the
//! `rpcseal open --replay-state FILE` command) and for a few processes on one host.
//!
//! The rules are those of `spec/replay.md`, with the sequence window kept as a list of the
//! accepted sequence numbers instead of a bitmap:
//! - an ordinary session keeps one entry `(sender, session id, seq)` per accepted message; a
//!   message is *replayed* if its entry is held, *outside window* if it is [`WINDOW_SIZE`] or
//!   more below the session's highest accepted sequence number (§3); entries that fall out
//!   of the window are dropped;
//! - a one-shot session keeps one entry `(sender, session id, nonce)` (§4);
//! - every entry keeps the session's `expires_at` and is dropped once it has passed; an item
//!   whose `expires_at` has passed is refused as *expired* (§1.1). The store remembers the
//!   latest clock reading of any successful mark and never uses an earlier one, so a clock
//!   stepping back cannot revive dropped state.
//!
//! Properties:
//! - **Atomic**: the new state is written to a temporary file, flushed to disk, and renamed
//!   over the old one, so a crash leaves either the old state or the new one.
//! - **Locked**: every call holds an OS file lock on a companion file `FILE.lock` for its
//!   whole duration (shared for [`ReplayStore::check`], exclusive for
//!   [`ReplayStore::check_and_mark`]), so two processes opening the same envelope at the
//!   same time accept it at most once. The lock lives on a separate file because the state
//!   file itself is replaced on every write.
//! - **Bounded**: at most [`FileReplayStore::max_entries`] live entries, and a file larger
//!   than that many entries can hold is refused before it is read. When the store is full
//!   it refuses new messages (fails closed); it never evicts a live entry, since an evicted
//!   entry is a replay waiting to happen.
//! - **Fails closed**: a file that is unreadable, damaged, from another format version or
//!   too large is a [`FileReplayError`], and through the [`ReplayStore`] trait
//!   [`ReplayError::Unavailable`]: the opener then rejects the message.
//!
//! Not a fit for a fleet of replicas on several hosts (use a shared store such as Redis), nor
//! for high message rates: each call reads, and each accepted message rewrites, the file.
//!
//! A state file that is deleted is not detectable as lost: [`FileReplayStore::open_or_create`]
//! reports whether it created the file so a caller can say so.
//!
//! The file format is text, one entry per line, so an operator can read it:
//!
//! ```text
//! rpcseal-replay-state v1
//! latest <the latest clock reading of a successful mark, unix seconds>
//! s <sender key id, 32 hex> <session id, 32 hex> <seq, decimal> <expires_at, decimal>
//! n <sender key id, 32 hex> <session id, 32 hex> <nonce, 32 hex> <expires_at, decimal>
//! ...
//! end <entry count> <BLAKE3 of every byte before this line, 64 hex>
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::{ReplayError, ReplayItem, ReplayStore, WINDOW_SIZE};

const MAGIC: &str = "rpcseal-replay-state v1\n";
/// Bytes of one entry line: 2 + 32 + 1 + 32 + 1 + up to 32 + 1 + up to 20 + 1.
const MAX_LINE: usize = 122;
/// Bytes of the `latest` line.
const MAX_LATEST: usize = 28;
/// Bytes of the trailer line: "end " + up to 20 + " " + 64 + "\n".
const MAX_TRAILER: usize = 90;
const CHECKSUM_CONTEXT: &str = "rpcseal 2026-11-26 replay state file checksum";

/// The default bound on live entries: 100 000 (about 8 MiB of file).
pub const DEFAULT_MAX_ENTRIES: usize = 100_000;

/// Why a replay state file cannot be used. Every variant fails closed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileReplayError {
    /// The file, its lock or its temporary file could not be read, written or locked.
    #[error("replay state file {path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// The file is not a replay state file of this version, or it was damaged.
    #[error("replay state file {path} is damaged or not a replay state file ({reason})")]
    Corrupt {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong, for a person.
        reason: String,
    },
    /// The file is larger than the configured number of entries allows.
    #[error("replay state file {path} is larger than {max_entries} entries allow")]
    TooLarge {
        /// The file concerned.
        path: PathBuf,
        /// The bound.
        max_entries: usize,
    },
    /// Every slot holds a live entry: new messages are refused until some expire.
    #[error("replay state file {path} is full ({max_entries} live entries)")]
    Full {
        /// The file concerned.
        path: PathBuf,
        /// The bound.
        max_entries: usize,
    },
    /// `create` was asked for a file that exists.
    #[error("replay state file {path} exists already")]
    Exists {
        /// The file concerned.
        path: PathBuf,
    },
    /// `open` was asked for a file that does not exist.
    #[error("replay state file {path} does not exist")]
    Missing {
        /// The file concerned.
        path: PathBuf,
    },
}

impl From<FileReplayError> for ReplayError {
    fn from(e: FileReplayError) -> ReplayError {
        ReplayError::Unavailable {
            reason: e.to_string(),
        }
    }
}

/// `(sender, session id, sequence number)`: an accepted message of an ordinary session.
type SeqKey = ([u8; 16], [u8; 16], u64);
/// `(sender, session id, nonce)`: the accepted message of a one-shot session.
type NonceKey = ([u8; 16], [u8; 16], [u8; 16]);

/// The whole state, as read from and written to the file. Values are `expires_at`.
#[derive(Default)]
struct State {
    latest: u64,
    seqs: BTreeMap<SeqKey, u64>,
    nonces: BTreeMap<NonceKey, u64>,
}

impl State {
    fn len(&self) -> usize {
        self.seqs.len() + self.nonces.len()
    }

    /// The highest accepted sequence number of a session.
    fn top(&self, sender: [u8; 16], session: [u8; 16]) -> Option<u64> {
        self.seqs
            .range((sender, session, 0)..=(sender, session, u64::MAX))
            .next_back()
            .map(|(k, _)| k.2)
    }

    /// spec/replay.md §1.1, §3 and §4: the verdict for `item` at `now`.
    fn check(&self, item: &ReplayItem, now: u64) -> Result<(), ReplayError> {
        if now.max(self.latest) > item.expires_at {
            return Err(ReplayError::Expired);
        }
        if item.one_shot {
            return match self.nonces.contains_key(&(
                item.sender,
                item.session_id,
                super::ONE_SHOT_SLOT,
            )) {
                true => Err(ReplayError::Replayed),
                false => Ok(()),
            };
        }
        match self.top(item.sender, item.session_id) {
            Some(top) if item.seq <= top && top - item.seq >= WINDOW_SIZE => {
                Err(ReplayError::OutsideWindow)
            }
            _ if self
                .seqs
                .contains_key(&(item.sender, item.session_id, item.seq)) =>
            {
                Err(ReplayError::Replayed)
            }
            _ => Ok(()),
        }
    }

    /// Records `item` (already checked) and drops what no longer matters.
    fn mark(&mut self, item: &ReplayItem, now: u64) {
        self.latest = self.latest.max(now);
        let latest = self.latest;
        self.seqs.retain(|_, exp| *exp >= latest);
        self.nonces.retain(|_, exp| *exp >= latest);
        let (sender, session) = (item.sender, item.session_id);
        if item.one_shot {
            self.nonces
                .insert((sender, session, super::ONE_SHOT_SLOT), item.expires_at);
            return;
        }
        // §3 rule 2: a new top forgets everything at or below `seq - W`.
        if let Some(floor) = item.seq.checked_sub(WINDOW_SIZE) {
            let old: Vec<SeqKey> = self
                .seqs
                .range((sender, session, 0)..=(sender, session, floor))
                .map(|(k, _)| *k)
                .collect();
            for k in old {
                self.seqs.remove(&k);
            }
        }
        self.seqs
            .insert((sender, session, item.seq), item.expires_at);
    }
}

/// A [`ReplayStore`] kept in a file. See the [module documentation](self).
#[derive(Debug)]
pub struct FileReplayStore {
    path: PathBuf,
    lock_path: PathBuf,
    tmp_path: PathBuf,
    max_entries: usize,
}

impl FileReplayStore {
    /// Opens an existing state file and checks that it is readable and intact.
    pub fn open(path: impl AsRef<Path>) -> Result<FileReplayStore, FileReplayError> {
        let store = FileReplayStore::at(path.as_ref());
        if !store.path.exists() {
            return Err(FileReplayError::Missing { path: store.path });
        }
        store.validate()?;
        Ok(store)
    }

    /// Creates a new, empty state file; fails if it exists.
    pub fn create(path: impl AsRef<Path>) -> Result<FileReplayStore, FileReplayError> {
        let store = FileReplayStore::at(path.as_ref());
        let lock = store.lock_file()?;
        lock.lock().map_err(|e| store.io(&store.lock_path, e))?;
        if store.path.exists() {
            return Err(FileReplayError::Exists { path: store.path });
        }
        store.save(&State::default())?;
        Ok(store)
    }

    /// Opens the state file, creating an empty one if there is none. The flag is true when
    /// the file was created: a caller should say so, since a state file that was deleted
    /// looks exactly like one that never existed.
    pub fn open_or_create(
        path: impl AsRef<Path>,
    ) -> Result<(FileReplayStore, bool), FileReplayError> {
        match FileReplayStore::create(path.as_ref()) {
            Ok(s) => Ok((s, true)),
            Err(FileReplayError::Exists { .. }) => Ok((FileReplayStore::open(path)?, false)),
            Err(e) => Err(e),
        }
    }

    /// Sets the bound on live entries (default [`DEFAULT_MAX_ENTRIES`], at least 1).
    pub fn with_max_entries(mut self, n: usize) -> FileReplayStore {
        self.max_entries = n.max(1);
        self
    }

    /// The bound on live entries.
    pub fn max_entries(&self) -> usize {
        self.max_entries
    }

    /// The state file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many entries the file holds (expired ones included until the next write).
    pub fn len(&self) -> Result<usize, FileReplayError> {
        let lock = self.lock_file()?;
        lock.lock_shared()
            .map_err(|e| self.io(&self.lock_path, e))?;
        Ok(self.load()?.len())
    }

    /// True when the file holds no entry.
    pub fn is_empty(&self) -> Result<bool, FileReplayError> {
        Ok(self.len()? == 0)
    }

    fn at(path: &Path) -> FileReplayStore {
        let with_suffix = |suffix: &str| {
            let mut s = path.as_os_str().to_owned();
            s.push(suffix);
            PathBuf::from(s)
        };
        FileReplayStore {
            path: path.to_owned(),
            lock_path: with_suffix(".lock"),
            tmp_path: with_suffix(".tmp"),
            max_entries: DEFAULT_MAX_ENTRIES,
        }
    }

    fn io(&self, path: &Path, source: io::Error) -> FileReplayError {
        FileReplayError::Io {
            path: path.to_owned(),
            source,
        }
    }

    fn corrupt(&self, reason: impl Into<String>) -> FileReplayError {
        FileReplayError::Corrupt {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    fn validate(&self) -> Result<(), FileReplayError> {
        let lock = self.lock_file()?;
        lock.lock_shared()
            .map_err(|e| self.io(&self.lock_path, e))?;
        self.load().map(|_| ())
    }

    /// The lock file, created if needed. Locks are released when the handle is dropped.
    fn lock_file(&self) -> Result<File, FileReplayError> {
        private_options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.lock_path)
            .map_err(|e| self.io(&self.lock_path, e))
    }

    /// Reads and checks the whole file. Call with the lock held.
    fn load(&self) -> Result<State, FileReplayError> {
        let file = File::open(&self.path).map_err(|e| self.io(&self.path, e))?;
        let limit =
            MAGIC.len() + MAX_LATEST + self.max_entries.saturating_mul(MAX_LINE) + MAX_TRAILER;
        let mut bytes = Vec::new();
        // Read at most one byte past the limit: a larger file is refused, never read whole.
        file.take(limit as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| self.io(&self.path, e))?;
        if bytes.len() > limit {
            return Err(FileReplayError::TooLarge {
                path: self.path.clone(),
                max_entries: self.max_entries,
            });
        }
        let text = std::str::from_utf8(&bytes).map_err(|_| self.corrupt("it is not UTF-8 text"))?;
        let body = text
            .strip_prefix(MAGIC)
            .ok_or_else(|| self.corrupt("the first line is not the format's header"))?;
        let body = body
            .strip_suffix('\n')
            .ok_or_else(|| self.corrupt("the file is truncated"))?;
        let (entries, trailer) = match body.rfind('\n') {
            Some(i) => (&body[..=i], &body[i + 1..]),
            None => ("", body),
        };
        let mut t = trailer.split(' ');
        let (Some("end"), Some(count), Some(sum), None) = (t.next(), t.next(), t.next(), t.next())
        else {
            return Err(self.corrupt("the file is truncated (no end line)"));
        };
        let covered = &text[..text.len() - trailer.len() - 1];
        if !sum.eq_ignore_ascii_case(&checksum(covered)) {
            return Err(self.corrupt("the checksum does not match"));
        }
        let count: usize = count
            .parse()
            .map_err(|_| self.corrupt("the entry count is not a number"))?;
        let mut lines = entries.lines();
        let mut state = State {
            latest: lines
                .next()
                .and_then(|l| l.strip_prefix("latest "))
                .and_then(parse_u64)
                .ok_or_else(|| self.corrupt("the second line is not `latest <time>`"))?,
            ..State::default()
        };
        for (n, line) in lines.enumerate() {
            let bad = || self.corrupt(format!("entry {} is not well formed", n + 1));
            let dup = || self.corrupt(format!("entry {} is a duplicate", n + 1));
            match parse_entry(line).ok_or_else(bad)? {
                Entry::Seq(k, exp) => {
                    if state.seqs.insert(k, exp).is_some() {
                        return Err(dup());
                    }
                }
                Entry::Nonce(k, exp) => {
                    if state.nonces.insert(k, exp).is_some() {
                        return Err(dup());
                    }
                }
            }
        }
        if state.len() != count {
            return Err(self.corrupt("the entry count does not match the entries"));
        }
        Ok(state)
    }

    /// Writes the state to the temporary file, flushes it, renames it over the state file
    /// and flushes the directory. Call with the exclusive lock held.
    fn save(&self, state: &State) -> Result<(), FileReplayError> {
        let mut text = String::with_capacity(MAGIC.len() + state.len() * 100 + MAX_TRAILER);
        text.push_str(MAGIC);
        let _ = writeln!(text, "latest {}", state.latest);
        for ((sender, session, seq), exp) in &state.seqs {
            let _ = writeln!(text, "s {} {} {seq} {exp}", hex(sender), hex(session));
        }
        for ((sender, session, nonce), exp) in &state.nonces {
            let _ = writeln!(
                text,
                "n {} {} {} {exp}",
                hex(sender),
                hex(session),
                hex(nonce)
            );
        }
        let sum = checksum(&text);
        let _ = writeln!(text, "end {} {sum}", state.len());

        let tmp = &self.tmp_path;
        let mut f = private_options()
            .write(true)
            .create(true)
            .truncate(true)
            .open(tmp)
            .map_err(|e| self.io(tmp, e))?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| self.io(tmp, e))?;
        drop(f);
        fs::rename(tmp, &self.path).map_err(|e| self.io(&self.path, e))?;
        sync_parent(&self.path).map_err(|e| self.io(&self.path, e))
    }
}

impl ReplayStore for FileReplayStore {
    fn check(&self, item: &ReplayItem, now: u64) -> Result<(), ReplayError> {
        let lock = self.lock_file()?;
        lock.lock_shared()
            .map_err(|e| self.io(&self.lock_path, e))?;
        self.load()?.check(item, now)
    }

    fn check_and_mark(&self, item: &ReplayItem, now: u64) -> Result<(), ReplayError> {
        // One exclusive lock around read, check and write: no other process can slip the
        // same message in between. The lock is released when `lock` is dropped.
        let lock = self.lock_file()?;
        lock.lock().map_err(|e| self.io(&self.lock_path, e))?;
        let mut state = self.load()?;
        state.check(item, now)?;
        state.mark(item, now);
        if state.len() > self.max_entries {
            // Full of live entries: refuse rather than evict (an evicted entry would let
            // its message be replayed). Nothing is written.
            return Err(FileReplayError::Full {
                path: self.path.clone(),
                max_entries: self.max_entries,
            }
            .into());
        }
        self.save(&state)?;
        Ok(())
    }
}

fn checksum(text: &str) -> String {
    let d = blake3::derive_key(CHECKSUM_CONTEXT, text.as_bytes());
    d.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn hex(b: &[u8; 16]) -> String {
    b.iter().fold(String::with_capacity(32), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn unhex16(s: &str) -> Option<[u8; 16]> {
    let s = s.as_bytes();
    if s.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (o, pair) in out.iter_mut().zip(s.chunks(2)) {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        *o = (hi * 16 + lo) as u8;
    }
    Some(out)
}

fn parse_u64(s: &str) -> Option<u64> {
    // Digits only: no sign, no whitespace, no leading zeros but "0" itself.
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

enum Entry {
    Seq(SeqKey, u64),
    Nonce(NonceKey, u64),
}

fn parse_entry(line: &str) -> Option<Entry> {
    let mut f = line.split(' ');
    let kind = f.next()?;
    let sender = unhex16(f.next()?)?;
    let session = unhex16(f.next()?)?;
    let third = f.next()?;
    let expires = parse_u64(f.next()?)?;
    if f.next().is_some() {
        return None;
    }
    match kind {
        "s" => Some(Entry::Seq((sender, session, parse_u64(third)?), expires)),
        "n" => Some(Entry::Nonce((sender, session, unhex16(third)?), expires)),
        _ => None,
    }
}

/// Options that create files readable by the owner only.
fn private_options() -> OpenOptions {
    #[allow(unused_mut)]
    let mut o = OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o
}

/// Flushes the directory entry of a rename (POSIX); a no-op elsewhere.
fn sync_parent(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(seq: u64, expires_at: u64) -> ReplayItem {
        ReplayItem {
            sender: [1; 16],
            session_id: [2; 16],
            seq,
            nonce: [3; 16],
            timestamp: 1000,
            expires_at,
            one_shot: false,
        }
    }

    #[test]
    fn marks_persist_across_instances_and_replays_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let (s, created) = FileReplayStore::open_or_create(&path).unwrap();
        assert!(created);
        s.check(&item(0, 2000), 1000).unwrap();
        s.check_and_mark(&item(0, 2000), 1000).unwrap();
        s.check_and_mark(&item(1, 2000), 1000).unwrap();

        let (again, created) = FileReplayStore::open_or_create(&path).unwrap();
        assert!(!created);
        assert!(matches!(
            again.check(&item(0, 2000), 1001),
            Err(ReplayError::Replayed)
        ));
        assert!(matches!(
            again.check_and_mark(&item(1, 2000), 1001),
            Err(ReplayError::Replayed)
        ));
        again.check_and_mark(&item(2, 2000), 1001).unwrap();
        assert_eq!(again.len().unwrap(), 3);
    }

    #[test]
    fn expired_entries_are_pruned_and_a_full_store_fails_closed() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileReplayStore::create(dir.path().join("state"))
            .unwrap()
            .with_max_entries(2);
        s.check_and_mark(&item(0, 1100), 1000).unwrap();
        s.check_and_mark(&item(1, 1100), 1000).unwrap();
        // Full of live entries: refuse, never evict.
        assert!(matches!(
            s.check_and_mark(&item(2, 1100), 1000),
            Err(ReplayError::Unavailable { .. })
        ));
        // Once they expire they are dropped, and there is room again.
        s.check_and_mark(&item(2, 3000), 1200).unwrap();
        assert_eq!(s.len().unwrap(), 1);
    }

    #[test]
    fn window_one_shot_and_expiry_follow_the_replay_spec() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileReplayStore::create(dir.path().join("state")).unwrap();
        // §3: far ahead is fine, W or more behind the top is outside the window.
        s.check_and_mark(&item(5000, 9000), 1000).unwrap();
        assert!(matches!(
            s.check_and_mark(&item(5000 - WINDOW_SIZE, 9000), 1000),
            Err(ReplayError::OutsideWindow)
        ));
        s.check_and_mark(&item(5000 - WINDOW_SIZE + 1, 9000), 1000)
            .unwrap();
        // A new top forgets what fell out of the window.
        s.check_and_mark(&item(10_000, 9000), 1000).unwrap();
        assert_eq!(s.len().unwrap(), 1);

        // §4: one entry per one-shot session: a second message, whatever its nonce, is
        // replayed.
        let mut one = item(0, 9000);
        one.one_shot = true;
        s.check_and_mark(&one, 1000).unwrap();
        let mut again = one;
        again.seq = 1;
        assert!(matches!(
            s.check_and_mark(&again, 1000),
            Err(ReplayError::Replayed)
        ));
        one.nonce = [9; 16];
        assert!(matches!(
            s.check_and_mark(&one, 1000),
            Err(ReplayError::Replayed)
        ));

        // §1.1: past expires_at is refused, also when the clock steps back afterwards.
        assert!(matches!(
            s.check_and_mark(&item(1, 999), 1000),
            Err(ReplayError::Expired)
        ));
        s.check_and_mark(&item(20_000, 9000), 5000).unwrap();
        assert!(matches!(
            s.check(&item(1, 4000), 3000),
            Err(ReplayError::Expired)
        ));
    }

    #[test]
    fn damaged_files_fail_closed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let s = FileReplayStore::create(&path).unwrap();
        s.check_and_mark(&item(0, 2000), 1000).unwrap();
        let good = fs::read_to_string(&path).unwrap();

        let damaged = [
            good.replacen(" 0 2000", " 0 2001", 1),
            good[..good.len() - 10].to_owned(),
            good.replacen("rpcseal-replay-state v1", "rpcseal-replay-state v9", 1),
            String::new(),
            "garbage".to_owned(),
        ];
        for bad in damaged {
            fs::write(&path, &bad).unwrap();
            assert!(matches!(
                FileReplayStore::open(&path),
                Err(FileReplayError::Corrupt { .. })
            ));
            assert!(matches!(
                s.check(&item(5, 2000), 1000),
                Err(ReplayError::Unavailable { .. })
            ));
            assert!(matches!(
                s.check_and_mark(&item(5, 2000), 1000),
                Err(ReplayError::Unavailable { .. })
            ));
        }
        fs::remove_file(&path).unwrap();
        assert!(matches!(
            FileReplayStore::open(&path),
            Err(FileReplayError::Missing { .. })
        ));
        assert!(matches!(
            s.check_and_mark(&item(5, 2000), 1000),
            Err(ReplayError::Unavailable { .. })
        ));
    }

    #[test]
    fn oversized_files_are_refused_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        FileReplayStore::create(&path).unwrap();
        fs::write(&path, vec![b'x'; 10_000]).unwrap();
        let s = FileReplayStore::at(&path).with_max_entries(2);
        assert!(matches!(
            s.validate(),
            Err(FileReplayError::TooLarge { .. })
        ));
    }

    #[test]
    fn concurrent_marks_of_one_message_accept_exactly_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        FileReplayStore::create(&path).unwrap();
        let accepted: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let path = &path;
                    scope.spawn(move || {
                        // Each thread its own instance, as separate processes would have.
                        let s = FileReplayStore::open(path).unwrap();
                        s.check_and_mark(&item(7, 2000), 1000).is_ok()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap() as usize)
                .sum()
        });
        assert_eq!(accepted, 1);
    }

    #[cfg(unix)]
    #[test]
    fn files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let s = FileReplayStore::create(&path).unwrap();
        s.check_and_mark(&item(0, 2000), 1000).unwrap();
        for p in [&path, &s.lock_path] {
            let mode = fs::metadata(p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", p.display());
        }
    }
}
