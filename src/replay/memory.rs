//! Bounded in-memory replay store (spec/replay.md §4 and §5).
//!
//! Layout: `shards` session shards and `shards` nonce shards, each a
//! `Mutex<Table>`. A table is a slab of slots (`Vec`) indexed by a `hashbrown`
//! `HashTable<u32>` keyed by a precomputed, randomly keyed SipHash of the key; the
//! same hash picks the shard. Capacity per shard is fixed; when a shard is full, a
//! CLOCK sweep picks a victim: an expired slot is dropped freely, a live one is
//! evicted and raises the shard's watermark to the newest timestamp it covered.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Mutex, MutexGuard};

use hashbrown::HashTable;

use super::window::Window;
use super::{ReplayError, ReplayItem, ReplayStore};

/// Sizing of a [`MemoryReplayStore`].
///
/// Memory use is bounded by about `max_sessions * 230` bytes plus
/// `max_nonces * 90` bytes (each rounded up to a multiple of `shards`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryReplayConfig {
    /// Most (sender, session) windows tracked at once. Default 262 144 (about 60 MB).
    pub max_sessions: usize,
    /// Most one-shot (sender, session, nonce) entries tracked at once. Default 262 144.
    pub max_nonces: usize,
    /// Number of independently locked shards for each of the two tables. Default 64.
    /// Values are clamped to 1..=65 536.
    pub shards: usize,
}

impl Default for MemoryReplayConfig {
    fn default() -> Self {
        MemoryReplayConfig {
            max_sessions: 1 << 18,
            max_nonces: 1 << 18,
            shards: 64,
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
/// clock that steps back cannot revive state that was dropped as expired.
///
/// `check` and `check_and_mark` are O(1) (eviction is amortised O(1)), take one shard lock,
/// and allocate nothing once the tables have grown to their working size.
pub struct MemoryReplayStore {
    hasher: RandomState,
    sessions: Shards<SessionKey, SessionState>,
    nonces: Shards<NonceKey, NonceState>,
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
type Shards<K, V> = Box<[Padded<Mutex<Table<K, V>>>]>;

/// Keeps each shard's lock on its own cache line(s).
#[repr(align(128))]
struct Padded<T>(T);

type SessionKey = [u8; 32];
type NonceKey = [u8; 48];

struct SessionState {
    window: Window,
    /// Newest message timestamp accepted in this session.
    newest_ts: u64,
    /// Shard watermark when this entry was created: messages with a timestamp at or
    /// below it may belong to an evicted earlier incarnation and are rejected.
    floor: u64,
    /// Largest `expires_at` seen for this session.
    expires_at: u64,
}

struct NonceState {
    timestamp: u64,
    expires_at: u64,
}

trait Covered {
    fn expires_at(&self) -> u64;
    fn newest_ts(&self) -> u64;
}

impl Covered for SessionState {
    fn expires_at(&self) -> u64 {
        self.expires_at
    }
    fn newest_ts(&self) -> u64 {
        self.newest_ts
    }
}

impl Covered for NonceState {
    fn expires_at(&self) -> u64 {
        self.expires_at
    }
    fn newest_ts(&self) -> u64 {
        self.timestamp
    }
}

struct Slot<K, V> {
    hash: u64,
    key: K,
    val: V,
    referenced: bool,
}

struct Table<K, V> {
    index: HashTable<u32>,
    slots: Vec<Slot<K, V>>,
    capacity: usize,
    hand: usize,
    /// Newest timestamp covered by any live entry evicted from this shard.
    watermark: u64,
    /// Latest `now` of a successful mark in this shard (monotone).
    clock: u64,
}

impl<K: Eq, V: Covered> Table<K, V> {
    fn new(capacity: usize) -> Self {
        Table {
            index: HashTable::new(),
            slots: Vec::new(),
            capacity,
            hand: 0,
            watermark: 0,
            clock: 0,
        }
    }

    #[inline]
    fn find(&self, hash: u64, key: &K) -> Option<usize> {
        let slots = &self.slots;
        self.index
            .find(hash, |&i| {
                let s = &slots[i as usize];
                s.hash == hash && s.key == *key
            })
            .map(|&i| i as usize)
    }

    /// Effective time: never earlier than a time at which state was dropped.
    #[inline]
    fn now(&self, now: u64) -> u64 {
        self.clock.max(now)
    }

    /// Insert a key known to be absent. Evicts one slot when full.
    fn insert(&mut self, hash: u64, key: K, val: V, now: u64) {
        let slot = Slot {
            hash,
            key,
            val,
            referenced: false,
        };
        let idx = if self.slots.len() < self.capacity {
            self.slots.push(slot);
            self.slots.len() - 1
        } else {
            let victim = self.pick_victim(now);
            let old_hash = self.slots[victim].hash;
            if let Ok(e) = self.index.find_entry(old_hash, |&i| i as usize == victim) {
                e.remove();
            }
            self.slots[victim] = slot;
            victim
        };
        let slots = &self.slots;
        // idx < capacity <= u32::MAX (checked in MemoryReplayStore::new).
        self.index
            .insert_unique(hash, idx as u32, |&i| slots[i as usize].hash);
    }

    /// CLOCK sweep. Terminates within `capacity + 1` steps: after one full turn every
    /// reference bit is clear. Raises the watermark when the victim is live.
    fn pick_victim(&mut self, now: u64) -> usize {
        loop {
            let i = self.hand;
            self.hand = if i + 1 >= self.slots.len() { 0 } else { i + 1 };
            let s = &mut self.slots[i];
            if s.val.expires_at() < now {
                // Expired: no message it covered can be accepted any more.
                return i;
            }
            if s.referenced {
                s.referenced = false;
                continue;
            }
            self.watermark = self.watermark.max(s.val.newest_ts());
            return i;
        }
    }
}

impl MemoryReplayStore {
    /// A store sized by `config`. Memory is allocated as entries arrive, up to the bound.
    pub fn new(config: MemoryReplayConfig) -> Self {
        let shards = config.shards.clamp(1, 1 << 16);
        let per = |max: usize| {
            let per = max.max(1).div_ceil(shards);
            per.min(u32::MAX as usize)
        };
        let (ps, pn) = (per(config.max_sessions), per(config.max_nonces));
        MemoryReplayStore {
            hasher: RandomState::new(),
            sessions: (0..shards)
                .map(|_| Padded(Mutex::new(Table::new(ps))))
                .collect(),
            nonces: (0..shards)
                .map(|_| Padded(Mutex::new(Table::new(pn))))
                .collect(),
        }
    }

    #[inline]
    fn hash(&self, parts: &[&[u8; 16]]) -> u64 {
        let mut h = self.hasher.build_hasher();
        for p in parts {
            h.write(&p[..]);
        }
        h.finish()
    }

    #[inline]
    fn shard_of(hash: u64, n: usize) -> usize {
        // Bits 32.. : hashbrown uses the low bits for the bucket and the top 7 bits as tag.
        ((hash >> 32) as usize) % n
    }

    fn session_key(item: &ReplayItem) -> SessionKey {
        let mut k = [0u8; 32];
        k[..16].copy_from_slice(&item.sender);
        k[16..].copy_from_slice(&item.session_id);
        k
    }

    fn nonce_key(item: &ReplayItem) -> NonceKey {
        let mut k = [0u8; 48];
        k[..16].copy_from_slice(&item.sender);
        k[16..32].copy_from_slice(&item.session_id);
        k[32..].copy_from_slice(&item.nonce);
        k
    }

    fn lock<T>(m: &Mutex<T>) -> Result<MutexGuard<'_, T>, ReplayError> {
        // A poisoned shard may hold half-updated state: fail closed.
        m.lock().map_err(|_| ReplayError::Unavailable {
            reason: "a replay store shard was poisoned by a panic".into(),
        })
    }

    fn session_op(&self, item: &ReplayItem, now: u64, mark: bool) -> Result<(), ReplayError> {
        let hash = self.hash(&[&item.sender, &item.session_id]);
        let key = Self::session_key(item);
        let shard = &self.sessions[Self::shard_of(hash, self.sessions.len())].0;
        let mut t = Self::lock(shard)?;
        let now = t.now(now);
        if now > item.expires_at {
            return Err(ReplayError::Expired);
        }
        match t.find(hash, &key) {
            Some(i) => {
                let slot = &mut t.slots[i];
                let st = &mut slot.val;
                if item.timestamp <= st.floor {
                    return Err(ReplayError::BelowWatermark);
                }
                st.window.check(item.seq)?;
                if mark {
                    st.window.mark(item.seq);
                    st.newest_ts = st.newest_ts.max(item.timestamp);
                    st.expires_at = st.expires_at.max(item.expires_at);
                    slot.referenced = true;
                }
            }
            None => {
                if item.timestamp <= t.watermark {
                    return Err(ReplayError::BelowWatermark);
                }
                if mark {
                    let st = SessionState {
                        window: Window::new(item.seq),
                        newest_ts: item.timestamp,
                        floor: t.watermark,
                        expires_at: item.expires_at,
                    };
                    t.insert(hash, key, st, now);
                }
            }
        }
        if mark {
            t.clock = now;
        }
        Ok(())
    }

    fn nonce_op(&self, item: &ReplayItem, now: u64, mark: bool) -> Result<(), ReplayError> {
        let hash = self.hash(&[&item.sender, &item.session_id, &item.nonce]);
        let key = Self::nonce_key(item);
        let shard = &self.nonces[Self::shard_of(hash, self.nonces.len())].0;
        let mut t = Self::lock(shard)?;
        let now = t.now(now);
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
            let st = NonceState {
                timestamp: item.timestamp,
                expires_at: item.expires_at,
            };
            t.insert(hash, key, st, now);
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
}
