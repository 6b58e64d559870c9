//! An append-only segment store whose records can be encrypted at rest (spec/at-rest.md).
//!
//! A store is a directory; each queue is a subdirectory of numbered segments, the message
//! blocks a queue or stream server keeps. A segment is one *asset* of the at-rest format:
//! `<seq>.hdr` holds its header (the asset key wrapped under the master key, or the mark
//! of a plain segment), `<seq>.seg` its records. Whether a queue's new segments are
//! encrypted is the writer's per-queue flag; every header and record says which it is, so
//! a queue can be switched on without confusing old plain records with new sealed ones.
//!
//! ```
//! use rpcseal_store::{MasterKey, Store, StoreConfig};
//! let dir = tempfile::tempdir().unwrap();
//! let store = Store::open(dir.path(), StoreConfig::new("orders", vec![MasterKey::generate()])).unwrap();
//! let mut w = store.writer("eu-west", true).unwrap();
//! w.append(&[b"order 1".as_slice(), b"order 2"]).unwrap();
//! w.close().unwrap();
//! let mut got = Vec::new();
//! store.read_queue("eu-west", |_, _, body| got.push(body.to_vec())).unwrap();
//! assert_eq!(got, [b"order 1".to_vec(), b"order 2".to_vec()]);
//! ```
#![forbid(unsafe_code)]

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use rpcseal::at_rest::{self, AssetKey, AssetRef};
pub use rpcseal::at_rest::{AtRestError, AtRestErrorKind};
pub use rpcseal::{KeyId, MasterKey};

#[doc(hidden)]
pub mod measure;
#[doc(hidden)]
pub mod vectors;

/// The asset kind of a queue segment (spec/at-rest.md §4).
pub const KIND_SEGMENT: u8 = 1;

/// When a writer asks the disk to make appended records durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fsync {
    /// Never on append (the page cache; like JetStream's default sync interval): a crash
    /// of the process loses nothing, a crash of the machine may lose recent batches.
    Never,
    /// `fdatasync` after every appended batch.
    EveryBatch,
}

/// How a store is opened.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    name: String,
    keys: Vec<MasterKey>,
    fsync: Fsync,
    segment_bytes: u64,
    require_encrypted: bool,
}

impl StoreConfig {
    /// A store named `name` (bound into every key derivation, spec/at-rest.md §4). `keys`
    /// are the master keys it accepts when reading; the first one wraps new segments. During
    /// a rotation, give the new key first and the old one after it.
    pub fn new(name: &str, keys: Vec<MasterKey>) -> StoreConfig {
        StoreConfig {
            name: name.to_owned(),
            keys,
            fsync: Fsync::Never,
            segment_bytes: 64 << 20,
            require_encrypted: false,
        }
    }

    /// The fsync policy of writers (default [`Fsync::Never`]).
    pub fn fsync(mut self, fsync: Fsync) -> StoreConfig {
        self.fsync = fsync;
        self
    }

    /// A writer starts a new segment once the current one holds this many bytes
    /// (default 64 MiB).
    pub fn segment_bytes(mut self, bytes: u64) -> StoreConfig {
        self.segment_bytes = bytes.max(1);
        self
    }

    /// Readers refuse plain segments ([`AtRestErrorKind::ModeMismatch`]): for queues that
    /// were always encrypted, so that nobody can swap in a plain segment of their own.
    pub fn require_encrypted(mut self, yes: bool) -> StoreConfig {
        self.require_encrypted = yes;
        self
    }
}

/// Why a store operation failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// The file system refused (the path says where).
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// Stored bytes were rejected: tampered, under an unknown or wrong key, misplaced,
    /// truncated. Nothing of the failing record was returned.
    Format {
        /// The queue.
        queue: String,
        /// The segment.
        segment: u64,
        /// Why.
        error: AtRestError,
    },
    /// A queue name outside `[A-Za-z0-9._-]{1,64}`, or a record over 16 MiB.
    Misuse(&'static str),
    /// A writer needs a master key to create encrypted segments.
    NoMasterKey,
}

impl StoreError {
    /// The at-rest failure class, for [`StoreError::Format`].
    pub fn kind(&self) -> Option<AtRestErrorKind> {
        match self {
            StoreError::Format { error, .. } => Some(error.kind()),
            _ => None,
        }
    }
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            StoreError::Format {
                queue,
                segment,
                error,
            } => write!(f, "queue {queue}, segment {segment}: {error}"),
            StoreError::Misuse(m) => f.write_str(m),
            StoreError::NoMasterKey => f.write_str("encrypted segments need a master key"),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Io { source, .. } => Some(source),
            StoreError::Format { error, .. } => Some(error),
            _ => None,
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

fn check_queue_name(q: &str) -> Result<(), StoreError> {
    let ok = !q.is_empty()
        && q.len() <= 64
        && q != "."
        && q != ".."
        && q.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(StoreError::Misuse(
            "queue names are 1 to 64 of [A-Za-z0-9._-]",
        ))
    }
}

/// The asset id of a segment: `<queue>/<seq as 16 hex digits>` (spec/at-rest.md §11).
fn asset_id(queue: &str, seq: u64) -> Vec<u8> {
    format!("{queue}/{seq:016x}").into_bytes()
}

/// What a rotation did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RotationReport {
    /// Headers re-wrapped under the new key.
    pub rewrapped: u64,
    /// Encrypted segments already under the new key (a rotation that was resumed).
    pub already: u64,
    /// Plain segments (nothing to re-wrap).
    pub plain: u64,
}

/// What reading a queue found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadReport {
    /// Segments read.
    pub segments: u64,
    /// Records handed out.
    pub records: u64,
    /// Payload bytes handed out.
    pub bytes: u64,
}

/// A store directory.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    cfg: StoreConfig,
}

impl Store {
    /// Opens (creating if needed) the store at `root`.
    pub fn open(root: &Path, cfg: StoreConfig) -> Result<Store, StoreError> {
        if cfg.name.len() > at_rest::MAX_NAME {
            return Err(StoreError::Misuse("store names are at most 255 bytes"));
        }
        fs::create_dir_all(root).map_err(io_err(root))?;
        Ok(Store {
            root: root.to_owned(),
            cfg,
        })
    }

    fn asset<'a>(&'a self, id: &'a [u8]) -> AssetRef<'a> {
        AssetRef {
            store: self.cfg.name.as_bytes(),
            kind: KIND_SEGMENT,
            id,
        }
    }

    /// The queues in the store, sorted.
    pub fn queues(&self) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.root).map_err(io_err(&self.root))? {
            let e = e.map_err(io_err(&self.root))?;
            if e.path().is_dir() {
                if let Some(n) = e.file_name().to_str() {
                    if check_queue_name(n).is_ok() {
                        out.push(n.to_owned());
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// The segment numbers of a queue, sorted (a segment exists once its header does).
    pub fn segments(&self, queue: &str) -> Result<Vec<u64>, StoreError> {
        check_queue_name(queue)?;
        let dir = self.root.join(queue);
        let mut out = Vec::new();
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io_err(&dir)(e)),
        };
        for e in rd {
            let name = e.map_err(io_err(&dir))?.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(stem) = name.strip_suffix(".hdr") {
                if stem.len() == 16 {
                    if let Ok(seq) = u64::from_str_radix(stem, 16) {
                        out.push(seq);
                    }
                }
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    fn paths(&self, queue: &str, seq: u64) -> (PathBuf, PathBuf) {
        let dir = self.root.join(queue);
        (
            dir.join(format!("{seq:016x}.hdr")),
            dir.join(format!("{seq:016x}.seg")),
        )
    }

    fn format_err(queue: &str, seq: u64) -> impl FnOnce(AtRestError) -> StoreError + '_ {
        move |error| StoreError::Format {
            queue: queue.to_owned(),
            segment: seq,
            error,
        }
    }

    /// Opens a segment's header with the store's keys.
    fn open_segment(&self, queue: &str, seq: u64) -> Result<AssetKey, StoreError> {
        let (hdr, _) = self.paths(queue, seq);
        let bytes = fs::read(&hdr).map_err(io_err(&hdr))?;
        let id = asset_id(queue, seq);
        let key = at_rest::open_asset(&bytes, &self.asset(&id), &self.cfg.keys)
            .map_err(Self::format_err(queue, seq))?;
        if self.cfg.require_encrypted && !key.is_encrypted() {
            return Err(StoreError::Format {
                queue: queue.to_owned(),
                segment: seq,
                error: AtRestError::new(
                    AtRestErrorKind::ModeMismatch,
                    "a plain segment where encryption is required",
                ),
            });
        }
        Ok(key)
    }

    /// Reads every record of a queue in order, handing `(segment, index, body)` to `each`.
    /// Every segment but the last must end with its final record and the segment numbers
    /// must follow each other without a gap ([`AtRestErrorKind::Truncated`] otherwise).
    /// Only authenticated bytes are handed out; on an error, the records before it were.
    pub fn read_queue(
        &self,
        queue: &str,
        mut each: impl FnMut(u64, u64, &[u8]),
    ) -> Result<ReadReport, StoreError> {
        let segs = self.segments(queue)?;
        let mut report = ReadReport::default();
        let mut buf = Vec::new();
        for (i, &seq) in segs.iter().enumerate() {
            if i > 0 && segs[i - 1] + 1 != seq {
                return Err(StoreError::Format {
                    queue: queue.to_owned(),
                    segment: segs[i - 1] + 1,
                    error: AtRestError::new(AtRestErrorKind::Truncated, "a segment is missing"),
                });
            }
            let key = self.open_segment(queue, seq)?;
            let (_, data) = self.paths(queue, seq);
            read_into(&data, &mut buf)?;
            let last = i + 1 == segs.len();
            let scan = key
                .open_all(&buf, !last, |idx, body| {
                    report.bytes += body.len() as u64;
                    each(seq, idx, body)
                })
                .map_err(Self::format_err(queue, seq))?;
            report.records += scan.records;
            report.segments += 1;
        }
        Ok(report)
    }

    /// A writer appending to `queue`, encrypted or not (the queue's flag). It always starts
    /// a new segment: a segment left unfinished by a crash is finished first (an incomplete
    /// record at its end, a write the crash cut short, is cut off; a complete record that
    /// does not authenticate is an error), and never appended to again, so no record
    /// position is ever written twice under one asset key (spec/at-rest.md §8).
    ///
    /// One writer per queue at a time, across processes: that is the service's job (as a
    /// stream server has one leader per stream); two writers on one queue would race for
    /// segment numbers.
    pub fn writer(&self, queue: &str, encrypted: bool) -> Result<QueueWriter<'_>, StoreError> {
        check_queue_name(queue)?;
        if encrypted && self.cfg.keys.is_empty() {
            return Err(StoreError::NoMasterKey);
        }
        let dir = self.root.join(queue);
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let segs = self.segments(queue)?;
        let next = match segs.last() {
            Some(&seq) => {
                self.recover(queue, seq)?;
                seq + 1
            }
            None => 0,
        };
        let mut w = QueueWriter {
            store: self,
            queue: queue.to_owned(),
            encrypted,
            seq: next,
            key: None,
            file: None,
            index: 0,
            bytes: 0,
            buf: Vec::with_capacity(1 << 16),
        };
        w.start_segment()?;
        Ok(w)
    }

    /// Finishes a segment a crashed writer left open.
    fn recover(&self, queue: &str, seq: u64) -> Result<(), StoreError> {
        let key = self.open_segment(queue, seq)?;
        let (_, data) = self.paths(queue, seq);
        let mut buf = Vec::new();
        read_into(&data, &mut buf)?;
        let scan = key
            .open_all(&buf, false, |_, _| {})
            .map_err(Self::format_err(queue, seq))?;
        if scan.finished {
            return Ok(());
        }
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&data)
            .map_err(io_err(&data))?;
        f.set_len(scan.valid_len as u64).map_err(io_err(&data))?;
        let mut fin = Vec::new();
        key.seal_final(scan.records, &mut fin);
        f.write_all(&fin).map_err(io_err(&data))?;
        f.sync_data().map_err(io_err(&data))?;
        Ok(())
    }

    /// Re-wraps every encrypted segment header of every queue under `new` (spec/at-rest.md
    /// §10). Records are not read or written. Each header is replaced atomically (written
    /// beside it, synced, renamed over it), so a crash at any point leaves every header
    /// whole, under the old key or the new one; running the rotation again finishes it.
    /// Readers must hold both keys until it returns; after it returns, no header needs the
    /// old key.
    pub fn rotate(&self, new: &MasterKey) -> Result<RotationReport, StoreError> {
        let mut keys = self.cfg.keys.clone();
        keys.push(new.clone());
        let mut report = RotationReport::default();
        for queue in self.queues()? {
            let dir = self.root.join(&queue);
            // Leftovers of a rotation that was killed before its rename.
            for e in fs::read_dir(&dir).map_err(io_err(&dir))? {
                let p = e.map_err(io_err(&dir))?.path();
                if p.extension().is_some_and(|x| x == "tmp") {
                    fs::remove_file(&p).map_err(io_err(&p))?;
                }
            }
            for seq in self.segments(&queue)? {
                let (hdr, _) = self.paths(&queue, seq);
                let bytes = fs::read(&hdr).map_err(io_err(&hdr))?;
                let info =
                    at_rest::inspect_header(&bytes).map_err(Self::format_err(&queue, seq))?;
                match info.master_key_id {
                    None => report.plain += 1,
                    Some(id) if id == new.key_id() => report.already += 1,
                    Some(_) => {
                        let id = asset_id(&queue, seq);
                        let fresh = at_rest::rewrap_header(&bytes, &self.asset(&id), &keys, new)
                            .map_err(Self::format_err(&queue, seq))?;
                        write_atomically(&hdr, &fresh)?;
                        report.rewrapped += 1;
                    }
                }
            }
            sync_dir(&dir)?;
        }
        Ok(report)
    }
}

fn read_into(path: &Path, buf: &mut Vec<u8>) -> Result<(), StoreError> {
    use std::io::Read;
    buf.clear();
    match File::open(path) {
        Ok(mut f) => {
            f.read_to_end(buf).map_err(io_err(path))?;
            Ok(())
        }
        // A header whose data file was never created: an empty segment.
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(path)(e)),
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let tmp = path.with_extension("hdr.tmp");
    let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(bytes).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    fs::rename(&tmp, path).map_err(io_err(path))
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// Appends records to one queue. Dropping it without [`QueueWriter::close`] leaves the
/// current segment unfinished, as a crash would; the next writer finishes it.
pub struct QueueWriter<'s> {
    store: &'s Store,
    queue: String,
    encrypted: bool,
    seq: u64,
    key: Option<AssetKey>,
    file: Option<File>,
    index: u64,
    bytes: u64,
    buf: Vec<u8>,
}

impl std::fmt::Debug for QueueWriter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "QueueWriter {{ queue: {}, segment: {}, encrypted: {} }}",
            self.queue, self.seq, self.encrypted
        )
    }
}

impl QueueWriter<'_> {
    fn start_segment(&mut self) -> Result<(), StoreError> {
        let id = asset_id(&self.queue, self.seq);
        let master = if self.encrypted {
            self.store.cfg.keys.first()
        } else {
            None
        };
        let (header, key) = at_rest::create_asset(&self.store.asset(&id), master)
            .map_err(|_| StoreError::Misuse("asset id out of range"))?;
        let (hdr, data) = self.store.paths(&self.queue, self.seq);
        write_atomically(&hdr, &header)?;
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&data)
            .map_err(io_err(&data))?;
        sync_dir(&self.store.root.join(&self.queue))?;
        self.key = Some(key);
        self.file = Some(file);
        self.index = 0;
        self.bytes = 0;
        Ok(())
    }

    fn finish_segment(&mut self) -> Result<(), StoreError> {
        let (Some(key), Some(mut file)) = (self.key.take(), self.file.take()) else {
            return Ok(());
        };
        let (_, data) = self.store.paths(&self.queue, self.seq);
        self.buf.clear();
        key.seal_final(self.index, &mut self.buf);
        file.write_all(&self.buf).map_err(io_err(&data))?;
        if self.store.cfg.fsync == Fsync::EveryBatch {
            file.sync_data().map_err(io_err(&data))?;
        }
        Ok(())
    }

    /// Appends a batch of records with one write (and one fsync under
    /// [`Fsync::EveryBatch`]). Returns the (segment, index) of the first.
    pub fn append(&mut self, records: &[&[u8]]) -> Result<(u64, u64), StoreError> {
        if records.iter().any(|r| r.len() > at_rest::MAX_RECORD_BODY) {
            return Err(StoreError::Misuse("a record is at most 16 MiB"));
        }
        if self.bytes >= self.store.cfg.segment_bytes {
            self.finish_segment()?;
            self.seq += 1;
            self.start_segment()?;
        }
        let first = (self.seq, self.index);
        let (Some(key), Some(file)) = (&self.key, &mut self.file) else {
            return Err(StoreError::Misuse("the writer is closed"));
        };
        self.buf.clear();
        for r in records {
            // Lengths were checked above.
            let _ = key.seal_record(self.index, r, &mut self.buf);
            self.index += 1;
        }
        let (_, data) = self.store.paths(&self.queue, self.seq);
        file.write_all(&self.buf).map_err(io_err(&data))?;
        if self.store.cfg.fsync == Fsync::EveryBatch {
            file.sync_data().map_err(io_err(&data))?;
        }
        self.bytes += self.buf.len() as u64;
        Ok(first)
    }

    /// Finishes the current segment (its final record), so that nothing can be cut off
    /// its end unnoticed.
    pub fn close(mut self) -> Result<(), StoreError> {
        self.finish_segment()
    }
}
