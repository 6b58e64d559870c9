//! Shared replay store in Redis (spec/replay.md §6). Cargo feature `redis`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::{Client, Connection, Script};

use super::window::word_index;
use super::{ReplayError, ReplayItem, ReplayStore};

/// Settings of a [`RedisReplayStore`].
#[derive(Clone, Debug)]
pub struct RedisReplayConfig {
    /// Server URL, e.g. `redis://127.0.0.1:6379/0` (or `rediss://` where the redis crate
    /// was built with TLS support).
    pub url: String,
    /// Namespace of every key this store touches: `{key_prefix}:marker`,
    /// `{key_prefix}:w:…`, `{key_prefix}:n:…`. Every receiver sharing replay state must use
    /// the same prefix; unrelated services must use different ones. Default `rpcseal:replay`.
    pub key_prefix: String,
    /// Timeout for establishing a TCP connection. Default 1 s.
    pub connect_timeout: Duration,
    /// Read and write timeout of every command. Default 1 s.
    pub command_timeout: Duration,
    /// Number of pooled connections (at least 1). Default 8.
    pub pool_size: usize,
    /// Seconds added to `expires_at` when setting key expiry, to absorb differences between
    /// the receivers' clocks and the Redis server's clock. Default 300.
    pub expiry_margin_secs: u64,
    /// When the marker key is missing at connect: `false` (default) fails with
    /// [`ReplayError::StateLost`]; `true` writes it. Set `true` only for a key prefix that
    /// has never accepted a message (first deployment, tests): with `true`, a process that
    /// starts after Redis lost its state silently re-opens every replay of the last
    /// session lifetime. After a loss, use
    /// [`RedisReplayStore::reinitialize_lost_state_after_waiting_out_window_and_skew`].
    pub create_marker_if_absent: bool,
}

impl RedisReplayConfig {
    /// Default settings for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        RedisReplayConfig {
            url: url.into(),
            key_prefix: "rpcseal:replay".into(),
            connect_timeout: Duration::from_secs(1),
            command_timeout: Duration::from_secs(1),
            pool_size: 8,
            expiry_margin_secs: 300,
            create_marker_if_absent: false,
        }
    }
}

/// A [`ReplayStore`] in a (standalone or primary) Redis server, shared by every receiver
/// that uses the same server and key prefix.
///
/// * Each message costs one atomic Lua script call (EVALSHA, falling back to loading
///   the script), which checks and marks in one step: of concurrent calls for the same
///   message on any number of receivers, exactly one succeeds.
/// * Keys expire at `expires_at + expiry_margin_secs`, never earlier.
/// * Connecting fails with [`ReplayError::Misconfigured`] unless the server's
///   `maxmemory-policy` is `noeviction` (an evicting server would forget accepted
///   messages). A full server rejects writes, which fails closed.
/// * Unreachable server, timeouts and protocol errors give [`ReplayError::Unavailable`].
/// * A marker key without expiry is written at initialisation and checked inside every
///   script call; if it is gone (restart without persistence, FLUSHALL, failover to an
///   empty replica) every call fails with [`ReplayError::StateLost`] until an operator
///   calls [`reinitialize_lost_state_after_waiting_out_window_and_skew`](Self::reinitialize_lost_state_after_waiting_out_window_and_skew).
///
/// A command that times out may still have run on the server: the message is rejected
/// (fail closed) and, if it had been marked, a retry of it is then rejected as a replay.
///
/// Redis Cluster is not supported (the marker and the state key are used in one script).
pub struct RedisReplayStore {
    client: Client,
    config: RedisReplayConfig,
    marker_key: String,
    pool: Box<[Mutex<Option<Connection>>]>,
    next: AtomicUsize,
    script: Script,
}

impl std::fmt::Debug for RedisReplayStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisReplayStore")
            .field("key_prefix", &self.config.key_prefix)
            .field("pool_size", &self.pool.len())
            .finish_non_exhaustive()
    }
}

/// Script result codes (spec/replay.md §6.3).
const OK: i64 = 0;
const REPLAYED: i64 = 1;
const OUTSIDE_WINDOW: i64 = 2;
const STATE_LOST: i64 = 3;
const CLOCK_SKEW: i64 = 4;

/// Largest expiry we hand to EXPIREAT (about year 36 800); keeps Redis and Lua arithmetic
/// exact.
const MAX_EXPIRE_AT: u64 = 1 << 40;

/// The check-and-mark script. KEYS[1] marker, KEYS[2] state key. ARGV: mode ("check" or
/// "mark"), kind ("w" window or "n" nonce), seq_hi, seq_lo, word, bit, expire_at.
const SCRIPT: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 3 end
local mark = ARGV[1] == 'mark'
local exp = tonumber(ARGV[7])
local now = tonumber(redis.call('TIME')[1])
if exp <= now then return 4 end
if ARGV[2] == 'n' then
  if redis.call('EXISTS', KEYS[2]) == 1 then return 1 end
  if mark then
    redis.call('SET', KEYS[2], '1')
    redis.call('EXPIREAT', KEYS[2], ARGV[7])
  end
  return 0
end
local WINDOW = 1024
local WORDS = 17
local shi = tonumber(ARGV[3])
local slo = tonumber(ARGV[4])
local word = tonumber(ARGV[5])
local bit = tonumber(ARGV[6])
local function idx_mask(w, b)
  return w * 8 + math.floor(b / 8) + 1, 2 ^ (b % 8)
end
local function getbit(s, w, b)
  local i, m = idx_mask(w, b)
  return math.floor(string.byte(s, i) / m) % 2 == 1
end
local function setbit(s, w, b)
  local i, m = idx_mask(w, b)
  local v = string.byte(s, i)
  if math.floor(v / m) % 2 == 0 then v = v + m end
  return string.sub(s, 1, i - 1) .. string.char(v) .. string.sub(s, i + 1)
end
local function clearword(s, w)
  return string.sub(s, 1, w * 8) .. string.rep('\0', 8) .. string.sub(s, w * 8 + 9)
end
local st = redis.call('HMGET', KEYS[2], 'hi', 'lo', 'bits', 'exp')
local hi, lo, bits, e = ARGV[3], ARGV[4], nil, ARGV[7]
if not st[1] then
  if not mark then return 0 end
  bits = setbit(string.rep('\0', WORDS * 8), word, bit)
else
  local thi = tonumber(st[1])
  local tlo = tonumber(st[2])
  bits = st[3]
  if string.len(bits) ~= WORDS * 8 then return redis.error_reply('rpcseal: corrupt window state') end
  if st[4] and tonumber(st[4]) > exp then e = st[4] end
  if shi > thi or (shi == thi and slo > tlo) then
    if not mark then return 0 end
    local n = WORDS
    if shi - thi < 2 then
      n = (shi - thi) * 67108864 + math.floor(slo / 64) - math.floor(tlo / 64)
      if n > WORDS then n = WORDS end
    end
    for k = 0, n - 1 do bits = clearword(bits, (word - k) % WORDS) end
    bits = setbit(bits, word, bit)
  else
    local hd = thi - shi
    if hd >= 2 then return 2 end
    if hd * 4294967296 + tlo - slo >= WINDOW then return 2 end
    if getbit(bits, word, bit) then return 1 end
    if not mark then return 0 end
    bits = setbit(bits, word, bit)
    hi, lo = st[1], st[2]
  end
end
redis.call('HSET', KEYS[2], 'hi', hi, 'lo', lo, 'bits', bits, 'exp', e)
redis.call('EXPIREAT', KEYS[2], e)
return 0
"#;

fn unavailable(what: &str, e: &redis::RedisError) -> ReplayError {
    ReplayError::Unavailable {
        reason: format!("redis {what}: {e}"),
    }
}

fn hex_into(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
}

impl RedisReplayStore {
    /// Connect, verify `maxmemory-policy` is `noeviction`, and verify (or, with
    /// [`RedisReplayConfig::create_marker_if_absent`], create) the state marker.
    pub fn connect(config: RedisReplayConfig) -> Result<Self, ReplayError> {
        let store = Self::open(config)?;
        let mut con = store.new_connection()?;
        let present: bool = redis::cmd("EXISTS")
            .arg(&store.marker_key)
            .query(&mut con)
            .map_err(|e| unavailable("EXISTS", &e))?;
        if !present {
            if !store.config.create_marker_if_absent {
                return Err(ReplayError::StateLost);
            }
            store.write_marker(&mut con)?;
        }
        store
            .script
            .load(&mut con)
            .map_err(|e| unavailable("SCRIPT LOAD", &e))?;
        if let Ok(mut slot) = store.pool[0].lock() {
            *slot = Some(con);
        }
        Ok(store)
    }

    /// **Operator action.** Re-create the state marker after Redis lost its state, so that
    /// every receiver sharing this key prefix accepts messages again.
    ///
    /// Call it only after waiting, from the moment the state was lost, for the longest
    /// session lifetime plus the allowed clock skew (plus `expiry_margin_secs`): until then,
    /// messages accepted before the loss can still pass the freshness check, and with the
    /// state gone they would be accepted a second time. Also call it once for a brand new
    /// key prefix that has never accepted a message. Does nothing if the marker exists.
    pub fn reinitialize_lost_state_after_waiting_out_window_and_skew(
        config: RedisReplayConfig,
    ) -> Result<(), ReplayError> {
        let store = Self::open(config)?;
        let mut con = store.new_connection()?;
        store.write_marker(&mut con)
    }

    fn open(config: RedisReplayConfig) -> Result<Self, ReplayError> {
        if config.key_prefix.is_empty() {
            return Err(ReplayError::Misconfigured {
                reason: "empty Redis key prefix".into(),
            });
        }
        if config.command_timeout.is_zero() || config.connect_timeout.is_zero() {
            return Err(ReplayError::Misconfigured {
                reason: "Redis timeouts must be non-zero".into(),
            });
        }
        let client = Client::open(config.url.as_str()).map_err(|e| ReplayError::Misconfigured {
            reason: format!("invalid Redis URL: {e}"),
        })?;
        let pool = (0..config.pool_size.max(1))
            .map(|_| Mutex::new(None))
            .collect();
        Ok(RedisReplayStore {
            client,
            marker_key: format!("{}:marker", config.key_prefix),
            config,
            pool,
            next: AtomicUsize::new(0),
            script: Script::new(SCRIPT),
        })
    }

    fn write_marker(&self, con: &mut Connection) -> Result<(), ReplayError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let value = format!("rpcseal replay state v1, initialised at unix time {now}");
        let _: Option<String> = redis::cmd("SET")
            .arg(&self.marker_key)
            .arg(value)
            .arg("NX")
            .query(con)
            .map_err(|e| unavailable("SET marker", &e))?;
        Ok(())
    }

    /// Open a connection with timeouts and check the eviction policy.
    fn new_connection(&self) -> Result<Connection, ReplayError> {
        let mut con = self
            .client
            .get_connection_with_timeout(self.config.connect_timeout)
            .map_err(|e| unavailable("connect", &e))?;
        let t = Some(self.config.command_timeout);
        con.set_read_timeout(t)
            .and_then(|_| con.set_write_timeout(t))
            .map_err(|e| unavailable("set timeouts", &e))?;
        let info: String = redis::cmd("INFO")
            .arg("memory")
            .query(&mut con)
            .map_err(|e| unavailable("INFO memory", &e))?;
        let policy = info
            .lines()
            .find_map(|l| l.trim().strip_prefix("maxmemory_policy:"))
            .map(str::trim);
        match policy {
            Some("noeviction") => Ok(con),
            Some(p) => Err(ReplayError::Misconfigured {
                reason: format!(
                    "Redis maxmemory-policy is {p:?}; the replay store requires \"noeviction\" \
                     (an evicting server would forget accepted messages)"
                ),
            }),
            None => Err(ReplayError::Misconfigured {
                reason: "cannot read maxmemory_policy from Redis INFO memory".into(),
            }),
        }
    }

    fn state_key(&self, item: &ReplayItem) -> String {
        let p = &self.config.key_prefix;
        let mut k = String::with_capacity(p.len() + 3 + 96);
        k.push_str(p);
        if item.one_shot {
            k.push_str(":n:");
            hex_into(&mut k, &item.sender);
            hex_into(&mut k, &item.session_id);
            hex_into(&mut k, &item.nonce);
        } else {
            k.push_str(":w:");
            hex_into(&mut k, &item.sender);
            hex_into(&mut k, &item.session_id);
        }
        k
    }

    fn run(&self, item: &ReplayItem, now: u64, mark: bool) -> Result<(), ReplayError> {
        if now > item.expires_at {
            return Err(ReplayError::Expired);
        }
        let expire_at = item
            .expires_at
            .saturating_add(self.config.expiry_margin_secs)
            .min(MAX_EXPIRE_AT);
        let mut inv = self.script.prepare_invoke();
        inv.key(&self.marker_key)
            .key(self.state_key(item))
            .arg(if mark { "mark" } else { "check" })
            .arg(if item.one_shot { "n" } else { "w" })
            .arg(item.seq >> 32)
            .arg(item.seq & 0xffff_ffff)
            .arg(word_index(item.seq))
            .arg(item.seq % 64)
            .arg(expire_at);

        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.pool.len();
        // The pool only caches connections: recover it from a poisoned lock.
        let mut slot = self.pool[i].lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(self.new_connection()?);
        }
        let Some(con) = slot.as_mut() else {
            return Err(ReplayError::Unavailable {
                reason: "no Redis connection".into(),
            });
        };
        let code: i64 = match inv.invoke(con) {
            Ok(c) => c,
            Err(e) => {
                if e.is_io_error()
                    || e.is_timeout()
                    || e.is_connection_dropped()
                    || e.is_unrecoverable_error()
                {
                    *slot = None;
                }
                return Err(unavailable("replay script", &e));
            }
        };
        match code {
            OK => Ok(()),
            REPLAYED => Err(ReplayError::Replayed),
            OUTSIDE_WINDOW => Err(ReplayError::OutsideWindow),
            STATE_LOST => Err(ReplayError::StateLost),
            CLOCK_SKEW => Err(ReplayError::Misconfigured {
                reason: "Redis server clock is past the message's expires_at plus the expiry \
                         margin: receiver and Redis clocks disagree by more than the margin"
                    .into(),
            }),
            other => Err(ReplayError::Unavailable {
                reason: format!("unexpected replay script result {other}"),
            }),
        }
    }
}

impl ReplayStore for RedisReplayStore {
    fn check(&self, item: &ReplayItem, now: u64) -> Result<(), ReplayError> {
        self.run(item, now, false)
    }

    fn check_and_mark(&self, item: &ReplayItem, now: u64) -> Result<(), ReplayError> {
        self.run(item, now, true)
    }
}
