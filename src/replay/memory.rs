//! Bounded in-memory replay store (spec/replay.md §4 and §5).
//!
//! Layout: `shards` session shards and `shards` nonce shards, each a `Mutex<Table>`. A
//! table is an open-addressing hash table with linear probing whose entries live inline in
//! one array (`slots`), beside a parallel array of 16-bit tags (`tags`). The tags hold
//! "occupied", the CLOCK reference bit and 14 bits of the hash; at two bytes per bucket they
//! stay in the CPU caches even when the slots do not, so a lookup walks the tags and touches
//! slot memory only where a fingerprint matches. A lookup of a tracked session therefore
//! costs one cache miss in the common case (the slot's key and window lines, fetched in
//! parallel), where an index table pointing into a separate slab costs two dependent ones.
//!
//! Capacity per shard is fixed; the arrays grow by doubling up to it (at most 80% load).
//! When a shard is full, a CLOCK sweep over the tags picks a victim: an entry past its
//! `expires_at` is dropped freely, a live one is evicted and raises the shard's watermark
//! to the newest timestamp it covered. Removal shifts the following entries of the probe
//! run back (no tombstones), so lookups never slow down with churn.

use std::sync::{Mutex, MutexGuard, OnceLock};

use getrandom::SysRng;
use rand_core::{Rng, UnwrapErr};

use super::window::Window;
use super::{
    ReplayError, ReplayItem, ReplayStore, CLOCK_STEP_BACK_LIMIT_SECS, DEFAULT_LOSS_MARGIN_SECS,
};

/// Sizing of a [`MemoryReplayStore`].
///
/// Memory use is bounded by about `max_sessions * 265` bytes plus `max_nonces * 95`
/// bytes (each rounded up to a multiple of `shards`); a shard that grows its table holds
/// the old half-size one too while it moves the entries, so the peak is up to half as much
/// again for a moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryReplayConfig {
    /// Most (sender, session) windows tracked at once. Default 262 144 (about 70 MB at
    /// most).
    pub max_sessions: usize,
    /// Most one-shot (sender, session, nonce) entries tracked at once. Default 262 144.
    pub max_nonces: usize,
    /// Number of independently locked shards for each of the two tables. Default 64.
    /// Values are clamped to 1..=65 536.
    pub shards: usize,
    /// Seconds added to `now` when the store raises its watermark because it cannot trust
    /// what it holds: at start with [`start_watermark`](Self::start_watermark), and when
    /// the receiver's clock is found more than
    /// [`CLOCK_STEP_BACK_LIMIT_SECS`](super::CLOCK_STEP_BACK_LIMIT_SECS) behind the
    /// store's (`spec/replay.md` §1.2, §6.4). Must be at least the receiver's clock skew
    /// (an [`Opener`](crate::Opener) refuses a smaller one). Default 300.
    pub loss_margin_secs: u64,
    /// Start with a watermark: the first call sets it to its `now + loss_margin_secs`, so
    /// every message dated up to then is refused (*below watermark*). Default `false`.
    ///
    /// Without it the store protects against replays for **one process lifetime**: after a
    /// restart, a message captured within the clock skew before it can be replayed once.
    /// With it, a restarted process cannot accept anything its previous incarnation
    /// accepted, at the cost of refusing every message for about `loss_margin_secs` after
    /// each start (a process that seals and opens at once, or any sender in that window,
    /// sees rejections). For services that restart and cannot share a store (file, Redis).
    pub start_watermark: bool,
}

impl Default for MemoryReplayConfig {
    fn default() -> Self {
        MemoryReplayConfig {
            max_sessions: 1 << 18,
            max_nonces: 1 << 18,
            shards: 64,
            loss_margin_secs: DEFAULT_LOSS_MARGIN_SECS,
            start_watermark: false,
        }
    }
}

/// A bounded, sharded, in-process [`ReplayStore`]; the default store.
///
/// * Ordinary sessions: one sliding window of [`WINDOW_SIZE`](super::WINDOW_SIZE)
///   sequence numbers per (sender, session id).
/// * One-shot sessions: one entry per (sender, session id, nonce).
///
/// When a table is full, an entry past its `expires_at` is dropped if one is found;
/// otherwise a live entry is evicted and its shard's **watermark** rises to the newest
/// message timestamp that entry covered. From then on a message whose session (or nonce)
/// is not tracked, or was re-tracked after the eviction, is rejected with
/// [`ReplayError::BelowWatermark`] unless its timestamp is above the watermark. An
/// adversary who floods the store can therefore cause rejections (fail closed), never an
/// accepted replay.
///
/// The store also refuses items with `now > expires_at` ([`ReplayError::Expired`]), using
/// per shard the latest `now` it has seen in a successful `check_and_mark`, so a receiver
/// clock that steps back cannot revive state that was dropped as expired. A recorded
/// reading more than [`CLOCK_STEP_BACK_LIMIT_SECS`](super::CLOCK_STEP_BACK_LIMIT_SECS)
/// ahead of `now` (one message accepted while the clock was far ahead) is not trusted: the
/// shard re-bases on `now` and raises its watermark to `now + loss_margin_secs`.
///
/// Its protection lasts one process lifetime: see
/// [`MemoryReplayConfig::start_watermark`] for a process that restarts.
///
/// `check` and `check_and_mark` are O(1) (eviction is amortised O(1)), take one shard lock,
/// and allocate nothing once the tables have grown to their working size. Keys are hashed
/// with a keyed hash whose key is drawn from the operating system when the store is
/// created; the keys themselves (sender key ids and session ids) come from authenticated
/// session headers.
pub struct MemoryReplayStore {
    hasher: KeyedHash,
    sessions: Shards<SessionEntry>,
    nonces: Shards<NonceEntry>,
    loss_margin: u64,
    /// With [`MemoryReplayConfig::start_watermark`]: the start watermark, set by the first
    /// call (`now + loss_margin`).
    start: Option<OnceLock<u64>>,
}

impl std::fmt::Debug for MemoryReplayStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryReplayStore")
            .field("shards", &self.sessions.len())
            .finish_non_exhaustive()
    }
}

impl Default for MemoryReplayStore {
    fn default() -> Self {
        Self::new(MemoryReplayConfig::default())
    }
}

/// One table per shard, each behind its own lock.
type Shards<E> = Box<[Padded<Mutex<Table<E>>>]>;

/// Keeps each shard's lock on its own cache line(s).
#[repr(align(128))]
struct Padded<T>(T);

/// A keyed 64-bit hash of 16-byte words (folded 64x64->128-bit multiplications, as in
/// foldhash and wyhash). Not a cryptographic hash: it only has to spread keys, chosen by
/// authenticated senders, over buckets in a way they cannot predict without the key.
#[derive(Clone, Copy)]
struct KeyedHash {
    k: [u64; 8],
}

/// Folded multiply: the xor of the two halves of the 128-bit product.
#[inline(always)]
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

impl KeyedHash {
    fn random() -> KeyedHash {
        let mut k = [0u64; 8];
        for w in k.iter_mut() {
            *w = UnwrapErr(SysRng).next_u64();
        }
        KeyedHash { k }
    }

    #[inline(always)]
    fn words(b: &[u8; 16]) -> (u64, u64) {
        let (lo, hi) = b.split_at(8);
        (
            u64::from_le_bytes(lo.try_into().expect("8 bytes")),
            u64::from_le_bytes(hi.try_into().expect("8 bytes")),
        )
    }

    #[inline(always)]
    fn hash(&self, parts: &[&[u8; 16]]) -> u64 {
        let k = &self.k;
        let mut acc = k[0];
        for (i, p) in parts.iter().enumerate() {
            let (a, b) = Self::words(p);
            // Distinct key words per part, so swapping parts changes the hash.
            let j = 1 + 2 * (i % 3);
            acc ^= fold_mul(a ^ k[j], b ^ k[j + 1]);
            acc = acc.rotate_left(23);
        }
        fold_mul(acc ^ k[7], 0x9e37_79b9_7f4a_7c15)
    }
}

/// Tag of an empty bucket.
const EMPTY: u16 = 0;
/// Tag bit: the bucket holds an entry.
const OCCUPIED: u16 = 1;
/// Tag bit: CLOCK reference bit, set when the entry is used, cleared by the sweep.
const REFERENCED: u16 = 2;
/// The remaining 14 tag bits: a fingerprint of the hash.
const FINGERPRINT: u16 = !(OCCUPIED | REFERENCED);

#[inline(always)]
fn fingerprint(hash: u64) -> u16 {
    // Bits 32..46: apart from the bits that pick the shard (the top of the low 32 bits)
    // and from the high bits, which pick the bucket.
    ((hash >> 30) as u16 & FINGERPRINT) | OCCUPIED
}

/// Bucket of `hash` among `n`: the high bits of `hash * n` (no division, any `n`).
#[inline(always)]
fn bucket_of(hash: u64, n: usize) -> usize {
    ((u128::from(hash) * n as u128) >> 64) as usize
}

/// What a table stores per key.
trait Entry: Clone {
    type Key: Eq + Copy;
    const VACANT: Self;
    fn hash(&self) -> u64;
    fn key(&self) -> &Self::Key;
    fn expires_at(&self) -> u64;
    /// Newest message timestamp the entry covered (raises the watermark on eviction).
    fn newest_ts(&self) -> u64;
}

/// Largest fraction of buckets in use, as a ratio: at most 4 of every 5.
const LOAD_NUM: usize = 4;
const LOAD_DEN: usize = 5;
/// Smallest bucket array allocated.
const MIN_BUCKETS: usize = 16;

struct Table<E> {
    tags: Vec<u16>,
    slots: Vec<E>,
    len: usize,
    /// Most entries this table holds.
    capacity: usize,
    /// CLOCK hand: a bucket index.
    hand: usize,
    /// Newest timestamp covered by any live entry evicted from this shard.
    watermark: u64,
    /// Latest `now` of a successful mark in this shard (monotone).
    clock: u64,
}

impl<E: Entry> Table<E> {
    fn new(capacity: usize) -> Self {
        Table {
            tags: Vec::new(),
            slots: Vec::new(),
            len: 0,
            capacity,
            hand: 0,
            watermark: 0,
            clock: 0,
        }
    }

    /// Buckets needed to hold `entries` at the load limit (at least `entries + 1`).
    fn buckets_for(entries: usize) -> usize {
        entries
            .saturating_mul(LOAD_DEN)
            .div_ceil(LOAD_NUM)
            .max(entries.saturating_add(1))
    }

    /// Bucket holding `key`, if present.
    #[inline(always)]
    fn find(&self, hash: u64, key: &E::Key) -> Option<usize> {
        let n = self.tags.len();
        if n == 0 {
            return None;
        }
        let fp = fingerprint(hash);
        let mut i = bucket_of(hash, n);
        // The load limit keeps at least one bucket empty, so the loop ends.
        loop {
            let t = self.tags[i];
            if t == EMPTY {
                return None;
            }
            if t & !REFERENCED == fp && self.slots[i].key() == key {
                return Some(i);
            }
            i += 1;
            if i == n {
                i = 0;
            }
        }
    }

    /// Effective time: never earlier than a time at which state was dropped, unless the
    /// recorded clock is more than [`CLOCK_STEP_BACK_LIMIT_SECS`] ahead of `now`: then it
    /// is re-based on `now` and the watermark raised to `now + margin` (spec/replay.md
    /// §1.2), in check and mark alike. `floor` is the start watermark (0 for none).
    #[inline]
    fn settle(&mut self, now: u64, margin: u64, floor: u64) -> u64 {
        if now.saturating_add(CLOCK_STEP_BACK_LIMIT_SECS) < self.clock {
            self.clock = now;
            self.watermark = self.watermark.max(now.saturating_add(margin));
        }
        if floor > self.watermark {
            self.watermark = floor;
        }
        self.clock.max(now)
    }

    /// Insert an entry whose key is known to be absent. Evicts one entry when full.
    fn insert(&mut self, entry: E, now: u64) {
        if self.len >= self.capacity {
            let victim = self.pick_victim(now);
            self.remove(victim);
            // Removal may have shifted later entries of the run into `victim` and after
            // it; the hand restarts there so that the sweep does not skip them.
            self.hand = victim;
        } else if self.len + 1 > self.tags.len() / LOAD_DEN * LOAD_NUM
            && self.tags.len() < self.most_buckets()
        {
            self.grow();
        }
        // New entries start referenced: the sweep passes over them once before they can
        // be evicted, as it does over entries used since its last visit.
        self.place(entry, REFERENCED);
    }

    /// Put an entry into the first free bucket of its probe run.
    fn place(&mut self, entry: E, flags: u16) {
        let n = self.tags.len();
        let hash = entry.hash();
        let mut i = bucket_of(hash, n);
        while self.tags[i] != EMPTY {
            i += 1;
            if i == n {
                i = 0;
            }
        }
        self.tags[i] = fingerprint(hash) | flags;
        self.slots[i] = entry;
        self.len += 1;
    }

    /// Size of the bucket array once the table holds `capacity` entries. Always more
    /// than `capacity`, so a probe always ends at an empty bucket.
    fn most_buckets(&self) -> usize {
        Self::buckets_for(self.capacity).max(MIN_BUCKETS)
    }

    /// Doubles the bucket array (up to [`Self::most_buckets`]) and rehashes.
    fn grow(&mut self) {
        let n = (self.tags.len() * 2).clamp(MIN_BUCKETS, self.most_buckets());
        let old_tags = std::mem::replace(&mut self.tags, vec![EMPTY; n]);
        let old_slots = std::mem::replace(&mut self.slots, vec![E::VACANT; n]);
        self.len = 0;
        self.hand = 0;
        for (t, e) in old_tags.into_iter().zip(old_slots) {
            if t != EMPTY {
                self.place(e, t & REFERENCED);
            }
        }
    }

    /// Removes the entry in bucket `i`, shifting later entries of its probe run back so
    /// that every entry stays reachable from its home bucket (no tombstones).
    fn remove(&mut self, mut i: usize) {
        let n = self.tags.len();
        self.tags[i] = EMPTY;
        self.slots[i] = E::VACANT;
        self.len -= 1;
        let mut j = i;
        loop {
            j += 1;
            if j == n {
                j = 0;
            }
            if self.tags[j] == EMPTY {
                return;
            }
            let home = bucket_of(self.slots[j].hash(), n);
            // The entry at j may move to i only if its home is not cyclically in (i, j].
            let stays = if i <= j {
                i < home && home <= j
            } else {
                i < home || home <= j
            };
            if !stays {
                self.tags[i] = self.tags[j];
                self.slots.swap(i, j);
                self.tags[j] = EMPTY;
                i = j;
            }
        }
    }

    /// CLOCK sweep. Terminates within `buckets + len` steps: until it returns it only
    /// clears reference bits. An expired entry is taken first, whatever its reference bit.
    /// Before a live entry is evicted (which raises the watermark), the next
    /// [`EXPIRED_LOOKAHEAD`] entries are searched for an expired one to take instead
    /// (spec/replay.md §5: stores SHOULD prefer evicting expired entries).
    fn pick_victim(&mut self, now: u64) -> usize {
        let n = self.tags.len();
        loop {
            let i = self.hand;
            self.hand = if i + 1 >= n { 0 } else { i + 1 };
            let t = self.tags[i];
            if t == EMPTY {
                continue;
            }
            let e = &self.slots[i];
            if e.expires_at() < now {
                // Expired: no message it covered can be accepted any more.
                return i;
            }
            if t & REFERENCED != 0 {
                self.tags[i] = t & !REFERENCED;
                continue;
            }
            if let Some(j) = self.expired_after(i, now) {
                return j;
            }
            let newest = self.slots[i].newest_ts();
            self.watermark = self.watermark.max(newest);
            return i;
        }
    }

    /// An expired entry among the [`EXPIRED_LOOKAHEAD`] entries after bucket `i`.
    fn expired_after(&self, i: usize, now: u64) -> Option<usize> {
        let n = self.tags.len();
        let mut j = i;
        let mut seen = 0;
        while seen < EXPIRED_LOOKAHEAD.min(self.len) {
            j = if j + 1 >= n { 0 } else { j + 1 };
            if j == i {
                return None;
            }
            if self.tags[j] == EMPTY {
                continue;
            }
            seen += 1;
            if self.slots[j].expires_at() < now {
                return Some(j);
            }
        }
        None
    }
}

/// How many entries past a live eviction candidate are searched for an expired one. Bounds
/// the cost of an insert into a full table (each step may read a slot from memory).
const EXPIRED_LOOKAHEAD: usize = 32;

#[derive(Clone)]
#[repr(C)]
struct SessionEntry {
    /// sender key id, then session id.
    key: [u8; 32],
    hash: u64,
    /// Shard watermark when this entry was created: messages with a timestamp at or
    /// below it may belong to an evicted earlier incarnation and are rejected.
    floor: u64,
    /// Newest message timestamp accepted in this session.
    newest_ts: u64,
    /// Largest `expires_at` seen for this session.
    expires_at: u64,
    window: Window,
}

impl Entry for SessionEntry {
    type Key = [u8; 32];
    const VACANT: Self = SessionEntry {
        key: [0; 32],
        hash: 0,
        floor: 0,
        newest_ts: 0,
        expires_at: 0,
        window: Window::EMPTY,
    };
    fn hash(&self) -> u64 {
        self.hash
    }
    fn key(&self) -> &[u8; 32] {
        &self.key
    }
    fn expires_at(&self) -> u64 {
        self.expires_at
    }
    fn newest_ts(&self) -> u64 {
        self.newest_ts
    }
}

#[derive(Clone)]
struct NonceEntry {
    /// sender key id, session id, nonce.
    key: [u8; 48],
    hash: u64,
    timestamp: u64,
    expires_at: u64,
}

impl Entry for NonceEntry {
    type Key = [u8; 48];
    const VACANT: Self = NonceEntry {
        key: [0; 48],
        hash: 0,
        timestamp: 0,
        expires_at: 0,
    };
    fn hash(&self) -> u64 {
        self.hash
    }
    fn key(&self) -> &[u8; 48] {
        &self.key
    }
    fn expires_at(&self) -> u64 {
        self.expires_at
    }
    fn newest_ts(&self) -> u64 {
        self.timestamp
    }
}

impl MemoryReplayStore {
    /// A store sized by `config`. Memory is allocated as entries arrive, up to the bound.
    pub fn new(config: MemoryReplayConfig) -> Self {
        let shards = config.shards.clamp(1, 1 << 16);
        let per = |max: usize| max.max(1).div_ceil(shards);
        let (ps, pn) = (per(config.max_sessions), per(config.max_nonces));
        MemoryReplayStore {
            hasher: KeyedHash::random(),
            sessions: (0..shards)
                .map(|_| Padded(Mutex::new(Table::new(ps))))
                .collect(),
            nonces: (0..shards)
                .map(|_| Padded(Mutex::new(Table::new(pn))))
                .collect(),
            loss_margin: config.loss_margin_secs,
            start: config.start_watermark.then(OnceLock::new),
        }
    }

    /// The start watermark (0 without [`MemoryReplayConfig::start_watermark`]).
    #[inline]
    fn start_floor(&self, now: u64) -> u64 {
        match &self.start {
            None => 0,
            Some(s) => *s.get_or_init(|| now.saturating_add(self.loss_margin)),
        }
    }

    /// Shard of `hash` among `n`: from the low 32 bits, which neither the bucket index
    /// (high bits) nor the fingerprint (bits 32..46) depend on.
    #[inline(always)]
    fn shard_of(hash: u64, n: usize) -> usize {
        ((u64::from(hash as u32) * n as u64) >> 32) as usize
    }

    fn lock<T>(m: &Mutex<T>) -> Result<MutexGuard<'_, T>, ReplayError> {
        // A poisoned shard may hold half-updated state: fail closed.
        m.lock().map_err(|_| ReplayError::Unavailable {
            reason: "a replay store shard was poisoned by a panic".into(),
        })
    }

    fn session_op(&self, item: &ReplayItem, now: u64, mark: bool) -> Result<(), ReplayError> {
        let hash = self.hasher.hash(&[&item.sender, &item.session_id]);
        let mut key = [0u8; 32];
        key[..16].copy_from_slice(&item.sender);
        key[16..].copy_from_slice(&item.session_id);
        let shard = &self.sessions[Self::shard_of(hash, self.sessions.len())].0;
        let mut t = Self::lock(shard)?;
        let now = t.settle(now, self.loss_margin, self.start_floor(now));
        if now > item.expires_at {
            return Err(ReplayError::Expired);
        }
        match t.find(hash, &key) {
            Some(i) => {
                let e = &mut t.slots[i];
                if item.timestamp <= e.floor {
                    return Err(ReplayError::BelowWatermark);
                }
                e.window.check(item.seq)?;
                if mark {
                    e.window.mark(item.seq);
                    e.newest_ts = e.newest_ts.max(item.timestamp);
                    e.expires_at = e.expires_at.max(item.expires_at);
                    t.tags[i] |= REFERENCED;
                }
            }
            None => {
                if item.timestamp <= t.watermark {
                    return Err(ReplayError::BelowWatermark);
                }
                if mark {
                    let e = SessionEntry {
                        key,
                        hash,
                        floor: t.watermark,
                        newest_ts: item.timestamp,
                        expires_at: item.expires_at,
                        window: Window::new(item.seq),
                    };
                    t.insert(e, now);
                }
            }
        }
        if mark {
            t.clock = now;
        }
        Ok(())
    }

    fn nonce_op(&self, item: &ReplayItem, now: u64, mark: bool) -> Result<(), ReplayError> {
        let hash = self
            .hasher
            .hash(&[&item.sender, &item.session_id, &super::ONE_SHOT_SLOT]);
        let mut key = [0u8; 48];
        key[..16].copy_from_slice(&item.sender);
        key[16..32].copy_from_slice(&item.session_id);
        key[32..].copy_from_slice(&super::ONE_SHOT_SLOT);
        let shard = &self.nonces[Self::shard_of(hash, self.nonces.len())].0;
        let mut t = Self::lock(shard)?;
        let now = t.settle(now, self.loss_margin, self.start_floor(now));
        if now > item.expires_at {
            return Err(ReplayError::Expired);
        }
        if t.find(hash, &key).is_some() {
            return Err(ReplayError::Replayed);
        }
        if item.timestamp <= t.watermark {
            return Err(ReplayError::BelowWatermark);
        }
        if mark {
            let e = NonceEntry {
                key,
                hash,
                timestamp: item.timestamp,
                expires_at: item.expires_at,
            };
            t.insert(e, now);
            t.clock = now;
        }
        Ok(())
    }
}

impl ReplayStore for MemoryReplayStore {
    fn check(&self, item: &ReplayItem, now: u64) -> Result<(), ReplayError> {
        if item.one_shot {
            self.nonce_op(item, now, false)
        } else {
            self.session_op(item, now, false)
        }
    }

    fn check_and_mark(&self, item: &ReplayItem, now: u64) -> Result<(), ReplayError> {
        if item.one_shot {
            self.nonce_op(item, now, true)
        } else {
            self.session_op(item, now, true)
        }
    }

    fn loss_margin_secs(&self) -> Option<u64> {
        Some(self.loss_margin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn entry(k: u64, hash: u64, expires_at: u64) -> NonceEntry {
        let mut key = [0u8; 48];
        key[..8].copy_from_slice(&k.to_le_bytes());
        NonceEntry {
            key,
            hash,
            timestamp: k,
            expires_at,
        }
    }

    /// Every occupied bucket is reachable from its home bucket without crossing an empty
    /// one (the linear-probing invariant), `find` returns it, and `len` is right.
    fn check_invariants(t: &Table<NonceEntry>) -> HashSet<[u8; 48]> {
        let n = t.tags.len();
        let mut keys = HashSet::new();
        for i in 0..n {
            if t.tags[i] == EMPTY {
                continue;
            }
            let e = &t.slots[i];
            assert_eq!(t.tags[i] & !REFERENCED, fingerprint(e.hash));
            let mut j = bucket_of(e.hash, n);
            while j != i {
                assert_ne!(t.tags[j], EMPTY, "bucket {i} unreachable from its home");
                j = (j + 1) % n;
            }
            assert_eq!(t.find(e.hash, &e.key), Some(i));
            assert!(keys.insert(e.key), "duplicate key");
        }
        assert_eq!(keys.len(), t.len);
        assert!(t.len <= t.capacity);
        assert!(t.len < n || n == 0);
        keys
    }

    /// Random inserts with deliberately clustered hashes (few distinct home buckets, equal
    /// fingerprints), growth, eviction with backward shifts, wrap-around at the end of the
    /// array: the table never loses an entry it did not evict, and evicts exactly one entry
    /// per insert when full.
    #[test]
    fn table_keeps_its_invariants_under_churn() {
        for capacity in [1usize, 2, 7, 13, 50, 200] {
            let mut t: Table<NonceEntry> = Table::new(capacity);
            let mut x: u64 = 0x2545_f491_4f6c_dd1d ^ capacity as u64;
            let mut present: HashSet<[u8; 48]> = HashSet::new();
            for k in 0..5_000u64 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Hashes from a small set: long probe runs and equal fingerprints.
                let hash = match x % 4 {
                    0 => u64::MAX - (x >> 60),
                    1 => x >> 61,
                    _ => x.rotate_left((k % 64) as u32) & 0xF000_0000_0000_00FF,
                };
                let expires = if x.is_multiple_of(3) { 10 } else { 1_000 };
                let e = entry(k, hash, expires);
                assert_eq!(t.find(hash, &e.key), None);
                let full = t.len == capacity;
                t.insert(e.clone(), 100);
                let after = check_invariants(&t);
                assert!(after.contains(&e.key));
                let lost: Vec<_> = present.difference(&after).collect();
                assert_eq!(lost.len(), usize::from(full), "capacity {capacity} key {k}");
                present = after;
                // Touch some entries, as lookups do.
                if let Some(i) = t.find(hash, &e.key) {
                    if x.is_multiple_of(2) {
                        t.tags[i] |= REFERENCED;
                    }
                }
            }
            assert_eq!(t.len, capacity);
            assert!(t.tags.len() <= Table::<NonceEntry>::buckets_for(capacity).max(MIN_BUCKETS));
        }
    }

    #[test]
    fn eviction_prefers_expired_entries_and_raises_the_watermark_only_for_live_ones() {
        let mut t: Table<NonceEntry> = Table::new(4);
        for k in 0..4 {
            t.insert(entry(k, k.wrapping_mul(0x9e37_79b9_7f4a_7c15), 50 + k), 10);
        }
        // At now = 52, entries 0 and 1 (expiring at 50, 51) are expired.
        t.insert(entry(10, 77, 1_000), 52);
        t.insert(entry(11, 78, 1_000), 52);
        assert_eq!(t.watermark, 0);
        let keys = check_invariants(&t);
        assert!(!keys.contains(&entry(0, 0, 0).key));
        assert!(!keys.contains(&entry(1, 0, 0).key));
        // Now everything is live: the next eviction raises the watermark to the victim's
        // newest timestamp (its k here).
        t.insert(entry(12, 79, 1_000), 52);
        assert!(t.watermark >= 2);
        check_invariants(&t);
    }

    /// The memory bound in `MemoryReplayConfig`'s documentation: entry size plus a 2-byte
    /// tag, at most 4 entries per 5 buckets.
    #[test]
    fn documented_memory_per_entry() {
        let per = |entry: usize| (entry + 2) as f64 * LOAD_DEN as f64 / LOAD_NUM as f64;
        assert_eq!(std::mem::size_of::<SessionEntry>(), 208);
        assert_eq!(std::mem::size_of::<NonceEntry>(), 72);
        assert!(per(208) <= 265.0);
        assert!(per(72) <= 95.0);
    }

    #[test]
    fn keyed_hash_depends_on_every_word_and_on_the_order_of_parts() {
        let h = KeyedHash::random();
        let a = [1u8; 16];
        let mut b = [1u8; 16];
        b[15] = 2;
        let base = h.hash(&[&a, &a]);
        assert_ne!(base, h.hash(&[&a, &b]));
        assert_ne!(base, h.hash(&[&b, &a]));
        assert_ne!(h.hash(&[&a, &b]), h.hash(&[&b, &a]));
        assert_ne!(h.hash(&[&a, &a, &a]), h.hash(&[&a, &a, &b]));
        // Two stores hash differently (keys from the OS).
        assert_ne!(base, KeyedHash::random().hash(&[&a, &a]));
    }
}
