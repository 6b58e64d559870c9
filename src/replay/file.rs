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
//!   stepping back cannot revive dropped state; a reading more than
//!   [`CLOCK_STEP_BACK_LIMIT_SECS`] ahead of `now` is not trusted (§1.2, below);
//! - the file keeps a *watermark* `M` (§6.4): a message dated at or before `M` is refused
//!   (*below watermark*), tracked or not.
//!
//! Properties:
//! - **Atomic**: the new state is written to a temporary file with a random name, created
//!   exclusively (never through an existing file or symlink), flushed to disk, and renamed
//!   over the old one, so a crash leaves either the old state or the new one.
//! - **Locked**: every call holds an OS file lock on a companion file `FILE.lock` for its
//!   whole duration (shared for [`ReplayStore::check`], exclusive for
//!   [`ReplayStore::check_and_mark`]), so two processes opening the same envelope at the
//!   same time accept it at most once. The lock lives on a separate file because the state
//!   file itself is replaced on every write. It is opened without following symlinks.
//! - **Private**: files are created 0600, and a state directory that others may write to
//!   (group- or world-writable, `/tmp` included) is refused
//!   ([`FileReplayError::UnsafeDirectory`]): whoever can write there can swap the files.
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
//! # Lost state (`spec/replay.md` §7)
//!
//! - A missing state file is an error ([`FileReplayError::Missing`]): [`FileReplayStore::open`]
//!   never starts empty. Only [`FileReplayStore::create`], the caller's statement that the
//!   file is brand new, makes an empty one (the command-line tool's `--replay-state-new`).
//! - A file must prove that it is the latest copy. Every write records, in the file, the
//!   device and inode numbers of the file being written and a fresh random *generation*,
//!   and puts the same generation into the lock file `FILE.lock`. A file whose recorded
//!   inode is not its own (restored from a backup, copied into place) or whose generation
//!   is not the lock file's (an older file moved back into place, a lock file deleted) cannot
//!   prove it: the next call treats it as a loss, as Redis does (§6.4), and raises the
//!   watermark to `now + loss margin` ([`FileReplayStore::with_loss_margin`], default
//!   [`DEFAULT_LOSS_MARGIN_SECS`]), which covers every message a previous incarnation
//!   could have accepted. Its entries are kept. [`FileReplayStore::losses_detected`] counts
//!   these. A `create` beside a lock file that holds a generation (the state file was
//!   deleted, not new) is treated the same way.
//! - Not detected: a snapshot of the whole filesystem or machine rolled back (the inode and
//!   both files come back together). Don't roll back a host's replay state with it.
//!
//! The file format is text, one entry per line, so an operator can read it:
//!
//! ```text
//! rpcseal-replay-state v2
//! latest <the latest clock reading of a successful mark, unix seconds>
//! watermark <messages dated at or before it are refused, unix seconds>
//! origin <device, decimal> <inode, decimal> <generation, 32 hex>
//! s <sender key id, 32 hex> <session id, 32 hex> <seq, decimal> <expires_at, decimal>
//! n <sender key id, 32 hex> <session id, 32 hex> <nonce, 32 hex> <expires_at, decimal>
//! ...
//! end <entry count> <BLAKE3 of every byte before this line, 64 hex>
//! ```
//!
//! The lock file holds the generation (32 hex and a newline). A version 1 file (without the
//! `watermark` and `origin` lines) is read, and cannot prove it is the latest.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use getrandom::SysRng;
use rand_core::{Rng, UnwrapErr};

use super::{
    ReplayError, ReplayItem, ReplayStore, CLOCK_STEP_BACK_LIMIT_SECS, DEFAULT_LOSS_MARGIN_SECS,
    WINDOW_SIZE,
};

const MAGIC: &str = "rpcseal-replay-state v2\n";
const MAGIC_V1: &str = "rpcseal-replay-state v1\n";
/// Bytes of one entry line: 2 + 32 + 1 + 32 + 1 + up to 32 + 1 + up to 20 + 1.
const MAX_LINE: usize = 122;
/// Bytes of the `latest`, `watermark` and `origin` lines.
const MAX_LATEST: usize = 28 + 31 + 7 + 21 + 21 + 33;
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
    /// `open` was asked for a file that does not exist. A replay store that starts empty
    /// would accept again every message its lost state had seen: create a new file only
    /// when it is brand new ([`FileReplayStore::create`]).
    #[error(
        "replay state file {path} does not exist: refusing to start empty, which would accept \
         again what a lost state file had accepted; create a new file only if it is brand new"
    )]
    Missing {
        /// The file concerned.
        path: PathBuf,
    },
    /// The directory of the state file can be written by other users (group- or
    /// world-writable): they could replace the state or plant symlinks.
    #[error(
        "replay state directory {path} is writable by other users (mode {mode:o}): use a \
         directory only its owner can write"
    )]
    UnsafeDirectory {
        /// The directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
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
    /// spec/replay.md §6.4: messages dated at or before it are refused.
    watermark: u64,
    /// The file proved that it is the latest copy (see the module documentation).
    proven: bool,
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

    /// spec/replay.md §1.2 and §6.4, before every verdict: a file that cannot prove it is
    /// the latest, or a recorded clock reading more than [`CLOCK_STEP_BACK_LIMIT_SECS`]
    /// ahead of `now`, is a loss: the clock is re-based on `now` and the watermark raised to
    /// `now + margin`. Returns true when it was.
    fn needs_settling(&self, now: u64) -> bool {
        !self.proven || now.saturating_add(CLOCK_STEP_BACK_LIMIT_SECS) < self.latest
    }

    fn settle(&mut self, now: u64, margin: u64) -> bool {
        let loss = self.needs_settling(now);
        if now.saturating_add(CLOCK_STEP_BACK_LIMIT_SECS) < self.latest {
            self.latest = now;
        }
        if loss {
            self.watermark = self.watermark.max(now.saturating_add(margin));
            self.proven = true;
        }
        loss
    }

    /// spec/replay.md §1.1, §3, §4 and §6.4: the verdict for `item` at `now`.
    fn check(&self, item: &ReplayItem, now: u64) -> Result<(), ReplayError> {
        if now.max(self.latest) > item.expires_at {
            return Err(ReplayError::Expired);
        }
        if item.one_shot {
            if self
                .nonces
                .contains_key(&(item.sender, item.session_id, super::ONE_SHOT_SLOT))
            {
                return Err(ReplayError::Replayed);
            }
        } else {
            match self.top(item.sender, item.session_id) {
                Some(top) if item.seq <= top && top - item.seq >= WINDOW_SIZE => {
                    return Err(ReplayError::OutsideWindow)
                }
                _ if self
                    .seqs
                    .contains_key(&(item.sender, item.session_id, item.seq)) =>
                {
                    return Err(ReplayError::Replayed)
                }
                _ => {}
            }
        }
        // Tracked or not: entries kept from before a loss may miss what the lost state held.
        if item.timestamp <= self.watermark {
            return Err(ReplayError::BelowWatermark);
        }
        Ok(())
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
    max_entries: usize,
    loss_margin: u64,
    losses: AtomicU64,
}

impl FileReplayStore {
    /// Opens an existing state file and checks that it is readable and intact. A missing
    /// file is [`FileReplayError::Missing`]: the store never starts empty by itself.
    pub fn open(path: impl AsRef<Path>) -> Result<FileReplayStore, FileReplayError> {
        let store = FileReplayStore::at(path.as_ref());
        store.check_directory()?;
        if fs::symlink_metadata(&store.path).is_err() {
            return Err(FileReplayError::Missing { path: store.path });
        }
        store.validate()?;
        Ok(store)
    }

    /// Creates a new, empty state file; fails if it exists. Call it only for a state file
    /// that is brand new: a store that starts empty accepts again, within the clock skew,
    /// every message its lost state had accepted. (If the lock file beside it still holds
    /// the generation of an earlier state file, the new one is treated as a loss, below
    /// the watermark rule of the module documentation.)
    pub fn create(path: impl AsRef<Path>) -> Result<FileReplayStore, FileReplayError> {
        let store = FileReplayStore::at(path.as_ref());
        let mut lock = store.lock_file()?;
        lock.lock().map_err(|e| store.io(&store.lock_path, e))?;
        if fs::symlink_metadata(&store.path).is_ok() {
            return Err(FileReplayError::Exists { path: store.path });
        }
        // An earlier incarnation left its generation in the lock file: keep it there, so
        // that the new file cannot prove it is the latest and the next call sets a watermark.
        let previous = store.lock_generation(&mut lock)?.is_some();
        store.save(&State::default(), &mut lock, !previous)?;
        Ok(store)
    }

    /// Sets the bound on live entries (default [`DEFAULT_MAX_ENTRIES`], at least 1).
    pub fn with_max_entries(mut self, n: usize) -> FileReplayStore {
        self.max_entries = n.max(1);
        self
    }

    /// Sets the loss margin (default [`DEFAULT_LOSS_MARGIN_SECS`]): after a loss the
    /// watermark is `now + margin`. It must be at least the receivers' clock skew plus the
    /// largest clock difference between the processes sharing the file (§6.4); an
    /// [`Opener`](crate::Opener) refuses a store whose margin is below its skew.
    pub fn with_loss_margin(mut self, secs: u64) -> FileReplayStore {
        self.loss_margin = secs;
        self
    }

    /// How many times this store found that its file could not prove it is the latest copy,
    /// or that its recorded clock was more than [`CLOCK_STEP_BACK_LIMIT_SECS`] ahead, and
    /// raised the watermark. For alerting.
    pub fn losses_detected(&self) -> u64 {
        self.losses.load(Ordering::Relaxed)
    }

    /// The watermark the file holds: messages dated at or before it are refused.
    pub fn watermark(&self) -> Result<u64, FileReplayError> {
        let mut lock = self.lock_file()?;
        lock.lock_shared()
            .map_err(|e| self.io(&self.lock_path, e))?;
        Ok(self.load(&mut lock)?.watermark)
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
        let mut lock = self.lock_file()?;
        lock.lock_shared()
            .map_err(|e| self.io(&self.lock_path, e))?;
        Ok(self.load(&mut lock)?.len())
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
            max_entries: DEFAULT_MAX_ENTRIES,
            loss_margin: DEFAULT_LOSS_MARGIN_SECS,
            losses: AtomicU64::new(0),
        }
    }

    /// The directory the state file lives in.
    fn directory(&self) -> PathBuf {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        }
    }

    /// Refuses a directory that other users may write to: they could swap the state file
    /// or plant links where the store writes.
    fn check_directory(&self) -> Result<(), FileReplayError> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let dir = self.directory();
            let mode = fs::metadata(&dir)
                .map_err(|e| self.io(&dir, e))?
                .permissions()
                .mode();
            if mode & 0o022 != 0 {
                return Err(FileReplayError::UnsafeDirectory {
                    path: dir,
                    mode: mode & 0o7777,
                });
            }
        }
        Ok(())
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
        let mut lock = self.lock_file()?;
        lock.lock_shared()
            .map_err(|e| self.io(&self.lock_path, e))?;
        self.load(&mut lock).map(|_| ())
    }

    /// The lock file, created if needed, never through a symlink, in a directory only its
    /// owner can write. Locks are released when the handle is dropped.
    fn lock_file(&self) -> Result<File, FileReplayError> {
        self.check_directory()?;
        let mut o = private_options();
        o.read(true).write(true).create(true).truncate(false);
        no_follow(&mut o);
        o.open(&self.lock_path)
            .map_err(|e| self.io(&self.lock_path, e))
    }

    /// The generation the lock file holds, if any. Call with the lock held.
    fn lock_generation(&self, lock: &mut File) -> Result<Option<[u8; 16]>, FileReplayError> {
        let mut text = String::new();
        lock.seek(io::SeekFrom::Start(0))
            .and_then(|_| lock.take(64).read_to_string(&mut text))
            .map_err(|e| self.io(&self.lock_path, e))?;
        Ok(text.strip_suffix('\n').and_then(unhex16))
    }

    /// Reads and checks the whole file. Call with the lock held.
    fn load(&self, lock: &mut File) -> Result<State, FileReplayError> {
        let file = File::open(&self.path).map_err(|e| self.io(&self.path, e))?;
        let identity = file_identity(&file).map_err(|e| self.io(&self.path, e))?;
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
        let (v1, body) = match (text.strip_prefix(MAGIC), text.strip_prefix(MAGIC_V1)) {
            (Some(body), _) => (false, body),
            (None, Some(body)) => (true, body),
            (None, None) => {
                return Err(self.corrupt("the first line is not the format's header"));
            }
        };
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
        if !v1 {
            state.watermark = lines
                .next()
                .and_then(|l| l.strip_prefix("watermark "))
                .and_then(parse_u64)
                .ok_or_else(|| self.corrupt("the third line is not `watermark <time>`"))?;
            let origin = lines
                .next()
                .and_then(|l| l.strip_prefix("origin "))
                .and_then(parse_origin)
                .ok_or_else(|| self.corrupt("the fourth line is not `origin <dev> <ino> <gen>`"))?;
            // The proof of being the latest copy: our own inode, and the lock's generation.
            let generation = self.lock_generation(lock)?;
            state.proven = origin.0 == identity && generation == Some(origin.1);
        }
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

    /// Writes the state to a new temporary file with a random name (created exclusively,
    /// never through a symlink), flushes it, renames it over the state file, flushes the
    /// directory, and records the new generation in the lock file (unless `set_generation`
    /// is false). Call with the exclusive lock held.
    fn save(
        &self,
        state: &State,
        lock: &mut File,
        set_generation: bool,
    ) -> Result<(), FileReplayError> {
        let mut random = [0u8; 16];
        UnwrapErr(SysRng).fill_bytes(&mut random);
        let mut tmp = self.path.as_os_str().to_owned();
        tmp.push(format!(".tmp.{}", hex(&random)));
        let tmp = PathBuf::from(tmp);
        let mut o = private_options();
        o.write(true).create_new(true);
        no_follow(&mut o);
        let mut f = o.open(&tmp).map_err(|e| self.io(&tmp, e))?;
        let written = self.write_state(state, &mut f).and_then(|generation| {
            drop(f);
            fs::rename(&tmp, &self.path).map_err(|e| self.io(&self.path, e))?;
            Ok(generation)
        });
        let generation = match written {
            Ok(g) => g,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
        };
        sync_parent(&self.path).map_err(|e| self.io(&self.path, e))?;
        if set_generation {
            // After the rename: a crash in between leaves a file that cannot prove it is the
            // latest, which fails closed (a watermark), never open.
            lock.set_len(0)
                .and_then(|()| lock.seek(io::SeekFrom::Start(0)))
                .and_then(|_| lock.write_all(format!("{}\n", hex(&generation)).as_bytes()))
                .and_then(|()| lock.sync_all())
                .map_err(|e| self.io(&self.lock_path, e))?;
        }
        Ok(())
    }

    /// The file's text, written to `f` (the new temporary file) and flushed. Returns the
    /// generation it records.
    fn write_state(&self, state: &State, f: &mut File) -> Result<[u8; 16], FileReplayError> {
        let (dev, ino) = file_identity(f).map_err(|e| self.io(&self.path, e))?;
        let mut generation = [0u8; 16];
        UnwrapErr(SysRng).fill_bytes(&mut generation);
        let mut text = String::with_capacity(MAGIC.len() + state.len() * 100 + MAX_TRAILER);
        text.push_str(MAGIC);
        let _ = writeln!(text, "latest {}", state.latest);
        let _ = writeln!(text, "watermark {}", state.watermark);
        let _ = writeln!(text, "origin {dev} {ino} {}", hex(&generation));
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
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| self.io(&self.path, e))?;
        Ok(generation)
    }
}

impl ReplayStore for FileReplayStore {
    fn check(&self, item: &ReplayItem, now: u64) -> Result<(), ReplayError> {
        let mut lock = self.lock_file()?;
        lock.lock_shared()
            .map_err(|e| self.io(&self.lock_path, e))?;
        let mut state = self.load(&mut lock)?;
        if state.needs_settling(now) {
            // A loss is recorded at once, in check as in mark (as Redis's script re-creates
            // its marker in either mode): a watermark computed afresh from each call's `now`
            // would refuse every message for good. Under the exclusive lock, from a fresh read.
            lock.unlock().map_err(|e| self.io(&self.lock_path, e))?;
            lock.lock().map_err(|e| self.io(&self.lock_path, e))?;
            state = self.load(&mut lock)?;
            if state.settle(now, self.loss_margin) {
                self.losses.fetch_add(1, Ordering::Relaxed);
                self.save(&state, &mut lock, true)?;
            }
        }
        state.check(item, now)
    }

    fn check_and_mark(&self, item: &ReplayItem, now: u64) -> Result<(), ReplayError> {
        // One exclusive lock around read, check and write: no other process can slip the
        // same message in between. The lock is released when `lock` is dropped.
        let mut lock = self.lock_file()?;
        lock.lock().map_err(|e| self.io(&self.lock_path, e))?;
        let mut state = self.load(&mut lock)?;
        if state.settle(now, self.loss_margin) {
            // A loss: the watermark is written whatever the verdict, as Redis keeps the
            // marker a rejected call re-created (§6.3 step 1). Without it, every later call
            // would set a new one from its own `now`.
            self.losses.fetch_add(1, Ordering::Relaxed);
            self.save(&state, &mut lock, true)?;
        }
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
        self.save(&state, &mut lock, true)?;
        Ok(())
    }

    fn loss_margin_secs(&self) -> Option<u64> {
        Some(self.loss_margin)
    }
}

/// The device and inode numbers of an open file (zeros where there are none).
fn file_identity(f: &File) -> io::Result<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let m = f.metadata()?;
        Ok((m.dev(), m.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = f;
        Ok((0, 0))
    }
}

/// `<dev> <ino> <generation>` of the `origin` line.
fn parse_origin(s: &str) -> Option<((u64, u64), [u8; 16])> {
    let mut f = s.split(' ');
    let dev = parse_u64(f.next()?)?;
    let ino = parse_u64(f.next()?)?;
    let generation = unhex16(f.next()?)?;
    f.next().is_none().then_some(((dev, ino), generation))
}

/// Opening never follows a symlink at the last component (`O_NOFOLLOW`).
fn no_follow(o: &mut OpenOptions) {
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(o, libc::O_NOFOLLOW);
    #[cfg(not(unix))]
    let _ = o;
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
        let s = FileReplayStore::create(&path).unwrap();
        s.check(&item(0, 2000), 1000).unwrap();
        s.check_and_mark(&item(0, 2000), 1000).unwrap();
        s.check_and_mark(&item(1, 2000), 1000).unwrap();

        let again = FileReplayStore::open(&path).unwrap();
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
            s.check(&item(1, 4800), 4500),
            Err(ReplayError::Expired)
        ));
        // §1.2: a step back of more than the limit re-bases the clock, with a watermark.
        let other = ReplayItem {
            sender: [7; 16],
            ..item(1, 4000)
        };
        assert!(matches!(
            s.check(&other, 3000),
            Err(ReplayError::BelowWatermark)
        ));
        assert_eq!(s.watermark().unwrap(), 3000 + DEFAULT_LOSS_MARGIN_SECS);
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
            good.replacen("rpcseal-replay-state v2", "rpcseal-replay-state v9", 1),
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

    /// A version 1 file (no watermark, no origin) is read, cannot prove it is the latest,
    /// and gets a loss watermark; its entries are kept, and it is rewritten as version 2.
    #[test]
    fn a_version_1_file_is_read_as_unproven() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let mut text = String::from(MAGIC_V1);
        text.push_str("latest 1000\n");
        let _ = writeln!(text, "s {} {} 0 2000", hex(&[1; 16]), hex(&[2; 16]));
        let sum = checksum(&text);
        let _ = writeln!(text, "end 1 {sum}");
        fs::write(&path, &text).unwrap();
        let s = FileReplayStore::open(&path).unwrap();
        assert!(matches!(
            s.check_and_mark(&item(0, 2000), 1000),
            Err(ReplayError::Replayed)
        ));
        assert_eq!(s.losses_detected(), 1);
        assert_eq!(s.watermark().unwrap(), 1000 + DEFAULT_LOSS_MARGIN_SECS);
        // Untracked and dated before the watermark: refused; after it: accepted.
        assert!(matches!(
            s.check_and_mark(&item(1, 2000), 1001),
            Err(ReplayError::BelowWatermark)
        ));
        let later = ReplayItem {
            timestamp: 1301,
            ..item(1, 2000)
        };
        s.check_and_mark(&later, 1301).unwrap();
        assert_eq!(s.losses_detected(), 1);
        assert!(fs::read_to_string(&path).unwrap().starts_with(MAGIC));
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
