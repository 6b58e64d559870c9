//! Shared replay store in Redis (spec/replay.md §6). Cargo feature `redis`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::{Client, Connection, Script};

use super::window::word_index;
use super::{ReplayError, ReplayItem, ReplayStore};

/// Settings of a [`RedisReplayStore`].
///
/// Its `Debug` output shows the URL without its password or user name.
#[derive(Clone)]
pub struct RedisReplayConfig {
    /// Server URL, e.g. `redis://127.0.0.1:6379/0` (or `rediss://` where the redis crate
    /// was built with TLS support). It may hold a password: keep it out of command lines
    /// ([`from_env`](Self::from_env), [`from_url_file`](Self::from_url_file)).
    pub url: String,
    /// Namespace of every key this store touches: `{key_prefix}:marker`,
    /// `{key_prefix}:w:…`, `{key_prefix}:n:…`. Every receiver sharing replay state must use
    /// the same prefix; unrelated services must use different ones, or each rejects the
    /// other's copy of a message sent to both as a replay. No default:
    /// [`RedisReplayStore::connect`] refuses an empty prefix; [`for_receiver`](Self::for_receiver)
    /// derives one from the receiver's identity, which every replica of a service shares.
    pub key_prefix: String,
    /// Timeout for establishing a TCP connection. Default 1 s.
    pub connect_timeout: Duration,
    /// Read and write timeout of every command. Default 1 s.
    pub command_timeout: Duration,
    /// Number of pooled connections (at least 1). Default 8.
    pub pool_size: usize,
    /// How often a pooled connection checks again that the server's `maxmemory-policy` is
    /// still `noeviction` (it is checked when the connection opens, and then before the
    /// first call after this interval): a `CONFIG SET` on a running server is noticed
    /// within this time. Default 10 s; zero checks before every call.
    pub policy_recheck: Duration,
    /// Seconds added to `expires_at` when setting key expiry, to absorb differences between
    /// the receivers' clocks and the Redis server's clock. Default 300.
    pub expiry_margin_secs: u64,
    /// Seconds added to the caller's `now` to make the **loss watermark** when the store
    /// finds its marker key missing (Redis lost its state). Messages with a timestamp at or
    /// below the watermark are then rejected unless tracked by an entry created after the
    /// loss. It MUST be at least the receivers' allowed clock skew plus the largest clock
    /// difference between the receivers sharing the store: every message accepted before
    /// the loss has `timestamp <= acceptance time + skew <= detection time + skew`.
    /// Default 300 (the Opener's default skew is 120). An
    /// [`Opener`](crate::Opener) refuses to build with a store whose margin is below its
    /// policy's skew ([`Misuse::LossMarginBelowSkew`](crate::Misuse::LossMarginBelowSkew)).
    pub loss_margin_secs: u64,
    /// When the marker key is missing at connect: `false` (default) leaves it to the first
    /// check, which re-creates it with a loss watermark (`now + loss_margin_secs`), so a
    /// brand-new key prefix rejects every message for `loss_margin_secs` (fails closed);
    /// `true` writes a marker without watermark. Set `true` only for a key prefix that has
    /// never accepted a message (first deployment, tests): after a loss, `true` in a
    /// process that connects before the loss is detected would let replays of the last
    /// few minutes through.
    pub create_marker_if_absent: bool,
}

impl std::fmt::Debug for RedisReplayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisReplayConfig")
            .field("url", &redact_url(&self.url))
            .field("key_prefix", &self.key_prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("pool_size", &self.pool_size)
            .field("policy_recheck", &self.policy_recheck)
            .field("expiry_margin_secs", &self.expiry_margin_secs)
            .field("loss_margin_secs", &self.loss_margin_secs)
            .field("create_marker_if_absent", &self.create_marker_if_absent)
            .finish()
    }
}

/// The URL with anything between `://` and `@` (user name, password) and any query
/// replaced by `***`: what `Debug` may show.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "***".into();
    };
    let (rest, query) = match rest.split_once('?') {
        Some((r, _)) => (r, "?***"),
        None => (rest, ""),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://***@{host}{path}{query}"),
        None => format!("{scheme}://{authority}{path}{query}"),
    }
}

impl RedisReplayConfig {
    /// Default settings for `url`, without a key prefix: set
    /// [`key_prefix`](Self::key_prefix), or use [`for_receiver`](Self::for_receiver).
    pub fn new(url: impl Into<String>) -> Self {
        RedisReplayConfig {
            url: url.into(),
            key_prefix: String::new(),
            connect_timeout: Duration::from_secs(1),
            command_timeout: Duration::from_secs(1),
            pool_size: 8,
            policy_recheck: Duration::from_secs(10),
            expiry_margin_secs: 300,
            loss_margin_secs: 300,
            create_marker_if_absent: false,
        }
    }

    /// Default settings for `url`, with the key prefix `rpcseal:replay:<receiver key id
    /// in hex>`: the same for every replica of a service that shares its identity, and
    /// different for unrelated services.
    pub fn for_receiver(url: impl Into<String>, receiver: &crate::KeyId) -> Self {
        let mut c = Self::new(url);
        c.key_prefix = format!("rpcseal:replay:{receiver}");
        c
    }

    /// Default settings for the URL held by the environment variable `var` (so it is not
    /// on a command line, which other users can read in `/proc`).
    pub fn from_env(var: &str) -> Result<Self, ReplayError> {
        match std::env::var(var) {
            Ok(url) if !url.trim().is_empty() => Ok(Self::new(url.trim())),
            _ => Err(ReplayError::Misconfigured {
                reason: format!("the environment variable {var} holds no Redis URL"),
            }),
        }
    }

    /// Default settings for the URL held by the file at `path` (its first line).
    pub fn from_url_file(path: impl AsRef<std::path::Path>) -> Result<Self, ReplayError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| ReplayError::Misconfigured {
            reason: format!(
                "cannot read the Redis URL file {}: {}",
                path.display(),
                e.kind()
            ),
        })?;
        match text.lines().next().map(str::trim) {
            Some(url) if !url.is_empty() => Ok(Self::new(url)),
            _ => Err(ReplayError::Misconfigured {
                reason: format!("the Redis URL file {} is empty", path.display()),
            }),
        }
    }
}

/// A cached connection and when its server's eviction policy was last checked.
type Pooled = (Connection, Instant);

/// A [`ReplayStore`] in a (standalone or primary) Redis server, shared by every receiver
/// that uses the same server and key prefix.
///
/// * Each message costs one atomic Lua script call (EVALSHA, falling back to loading
///   the script), which checks and marks in one step: of concurrent calls for the same
///   message on any number of receivers, exactly one succeeds.
/// * Keys expire at `expires_at + expiry_margin_secs`, never earlier.
/// * Connecting fails with [`ReplayError::Misconfigured`] unless the server's
///   `maxmemory-policy` is `noeviction` (an evicting server would forget accepted
///   messages), and so does any call once a pooled connection, re-checking every
///   [`policy_recheck`](RedisReplayConfig::policy_recheck), finds it changed. A full server
///   rejects writes, which fails closed.
/// * Unreachable server, timeouts and protocol errors give [`ReplayError::Unavailable`].
/// * A marker key without expiry (`{key_prefix}:marker`, holding the loss watermark in
///   decimal, `0` for none) is read inside every script call. If it is gone (restart
///   without persistence, FLUSHALL, failover to an empty replica), the same atomic call
///   re-creates it with watermark `now + loss_margin_secs`, and from then on a message
///   with a timestamp at or below the watermark that no entry created after the loss
///   tracks is rejected ([`ReplayError::BelowWatermark`]); newer messages are accepted.
///   A replay of a message accepted before the loss is therefore still rejected.
///   [`losses_detected`](Self::losses_detected) counts the losses this store noticed.
///
/// A command that times out may still have run on the server: the message is rejected
/// (fail closed) and, if it had been marked, a retry of it is then rejected as a replay.
///
/// Redis Cluster is not supported (the marker and the state key are used in one script).
pub struct RedisReplayStore {
    client: Client,
    config: RedisReplayConfig,
    marker_key: String,
    pool: Box<[Mutex<Option<Pooled>>]>,
    next: AtomicUsize,
    script: Script,
    losses: AtomicU64,
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
const CLOCK_SKEW: i64 = 4;
const BELOW_WATERMARK: i64 = 5;

/// Largest expiry we hand to EXPIREAT (about year 36 800); keeps Redis and Lua arithmetic
/// exact.
const MAX_EXPIRE_AT: u64 = 1 << 40;

/// The check-and-mark script. KEYS[1] marker, KEYS[2] state key. ARGV: mode ("check" or
/// "mark"), kind ("w" window or "n" nonce), seq_hi, seq_lo, word, bit, expire_at,
/// timestamp, loss watermark (the caller's `now + loss_margin_secs`). Returns
/// `{code, lost}`, `lost` = 1 when this call found the marker missing and re-created it.
const SCRIPT: &str = r#"
local lost = 0
local wms = redis.call('GET', KEYS[1])
if not wms then
  wms = ARGV[9]
  redis.call('SET', KEYS[1], wms)
  lost = 1
end
local wm = tonumber(wms)
if not wm then return redis.error_reply('rpcseal: corrupt replay marker') end
local mark = ARGV[1] == 'mark'
local exp = tonumber(ARGV[7])
local ts = tonumber(ARGV[8])
local now = tonumber(redis.call('TIME')[1])
if exp <= now then return {4, lost} end
if ARGV[2] == 'n' then
  if redis.call('EXISTS', KEYS[2]) == 1 then return {1, lost} end
  if ts <= wm then return {5, lost} end
  if mark then
    redis.call('SET', KEYS[2], wms)
    redis.call('EXPIREAT', KEYS[2], ARGV[7])
  end
  return {0, lost}
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
local st = redis.call('HMGET', KEYS[2], 'hi', 'lo', 'bits', 'exp', 'floor')
local hi, lo, bits, e = ARGV[3], ARGV[4], nil, ARGV[7]
local created = false
if not st[1] then
  if ts <= wm then return {5, lost} end
  if not mark then return {0, lost} end
  bits = setbit(string.rep('\0', WORDS * 8), word, bit)
  created = true
else
  local thi = tonumber(st[1])
  local tlo = tonumber(st[2])
  bits = st[3]
  if string.len(bits) ~= WORDS * 8 then return redis.error_reply('rpcseal: corrupt window state') end
  if ts <= (tonumber(st[5]) or 0) then return {5, lost} end
  if st[4] and tonumber(st[4]) > exp then e = st[4] end
  if shi > thi or (shi == thi and slo > tlo) then
    if not mark then return {0, lost} end
    local n = WORDS
    if shi - thi < 2 then
      n = (shi - thi) * 67108864 + math.floor(slo / 64) - math.floor(tlo / 64)
      if n > WORDS then n = WORDS end
    end
    for k = 0, n - 1 do bits = clearword(bits, (word - k) % WORDS) end
    bits = setbit(bits, word, bit)
  else
    local hd = thi - shi
    if hd >= 2 then return {2, lost} end
    if hd * 4294967296 + tlo - slo >= WINDOW then return {2, lost} end
    if getbit(bits, word, bit) then return {1, lost} end
    if not mark then return {0, lost} end
    bits = setbit(bits, word, bit)
    hi, lo = st[1], st[2]
  end
end
if created then
  redis.call('HSET', KEYS[2], 'hi', hi, 'lo', lo, 'bits', bits, 'exp', e, 'floor', wms)
else
  redis.call('HSET', KEYS[2], 'hi', hi, 'lo', lo, 'bits', bits, 'exp', e)
end
redis.call('EXPIREAT', KEYS[2], e)
return {0, lost}
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
    /// Connect, verify `maxmemory-policy` is `noeviction`, and, with
    /// [`RedisReplayConfig::create_marker_if_absent`], create a missing state marker
    /// without watermark.
    pub fn connect(config: RedisReplayConfig) -> Result<Self, ReplayError> {
        let store = Self::open(config)?;
        let mut con = store.new_connection()?;
        if store.config.create_marker_if_absent {
            let _: Option<String> = redis::cmd("SET")
                .arg(&store.marker_key)
                .arg("0")
                .arg("NX")
                .query(&mut con)
                .map_err(|e| unavailable("SET marker", &e))?;
        }
        store
            .script
            .load(&mut con)
            .map_err(|e| unavailable("SCRIPT LOAD", &e))?;
        if let Ok(mut slot) = store.pool[0].lock() {
            *slot = Some((con, Instant::now()));
        }
        Ok(store)
    }

    /// How many times this store found the state marker missing and re-created it with a
    /// loss watermark: each is a loss of Redis's state (or the first use of a key prefix
    /// connected without [`RedisReplayConfig::create_marker_if_absent`]). For alerting:
    /// for `loss_margin_secs` after a loss, older messages of sessions not seen since are
    /// rejected.
    pub fn losses_detected(&self) -> u64 {
        self.losses.load(Ordering::Relaxed)
    }

    fn open(config: RedisReplayConfig) -> Result<Self, ReplayError> {
        if config.key_prefix.is_empty() {
            return Err(ReplayError::Misconfigured {
                reason: "no Redis key prefix: name the service (every replica the same, \
                         unrelated services different: two services on one prefix reject \
                         each other's copies of a message as replays), or use \
                         RedisReplayConfig::for_receiver"
                    .into(),
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
            losses: AtomicU64::new(0),
        })
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
        Self::check_policy(&mut con)?;
        Ok(con)
    }

    /// The server's `maxmemory-policy` must be `noeviction` (spec/replay.md §6.1).
    fn check_policy(con: &mut Connection) -> Result<(), ReplayError> {
        let info: String = redis::cmd("INFO")
            .arg("memory")
            .query(con)
            .map_err(|e| unavailable("INFO memory", &e))?;
        let policy = info
            .lines()
            .find_map(|l| l.trim().strip_prefix("maxmemory_policy:"))
            .map(str::trim);
        match policy {
            Some("noeviction") => Ok(()),
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
            .arg(expire_at)
            .arg(item.timestamp.min(MAX_EXPIRE_AT))
            .arg(
                now.saturating_add(self.config.loss_margin_secs)
                    .min(MAX_EXPIRE_AT),
            );

        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.pool.len();
        // The pool only caches connections: recover it from a poisoned lock.
        let mut slot = self.pool[i].lock().unwrap_or_else(|p| p.into_inner());
        let mut cached = slot.is_some();
        let (code, lost): (i64, i64) = loop {
            if slot.is_none() {
                *slot = Some((self.new_connection()?, Instant::now()));
            }
            let Some((con, checked)) = slot.as_mut() else {
                return Err(ReplayError::Unavailable {
                    reason: "no Redis connection".into(),
                });
            };
            if checked.elapsed() >= self.config.policy_recheck {
                if let Err(e) = Self::check_policy(con) {
                    *slot = None;
                    return Err(e);
                }
                *checked = Instant::now();
            }
            match inv.invoke(con) {
                Ok(r) => break r,
                Err(e) => {
                    let broken = e.is_io_error()
                        || e.is_timeout()
                        || e.is_connection_dropped()
                        || e.is_unrecoverable_error();
                    if broken {
                        *slot = None;
                    }
                    // A pooled connection whose server went away (restart, failover) fails
                    // on first use: retry once on a new connection. Never after a timeout
                    // (the server may be slow; do not double the wait). Safe even if the
                    // first attempt had run: the retry would then see the mark and reject.
                    if broken && cached && !e.is_timeout() {
                        cached = false;
                        continue;
                    }
                    return Err(unavailable("replay script", &e));
                }
            }
        };
        if lost != 0 {
            self.losses.fetch_add(1, Ordering::Relaxed);
        }
        match code {
            OK => Ok(()),
            REPLAYED => Err(ReplayError::Replayed),
            OUTSIDE_WINDOW => Err(ReplayError::OutsideWindow),
            BELOW_WATERMARK => Err(ReplayError::BelowWatermark),
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

    fn loss_margin_secs(&self) -> Option<u64> {
        Some(self.config.loss_margin_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn urls_are_redacted_for_debug() {
        for (url, shown) in [
            ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
            ("redis://:pw@host:1/2", "redis://***@host:1/2"),
            ("rediss://user:p@ss@host", "rediss://***@host"),
            ("redis://host/0?password=pw", "redis://host/0?***"),
            ("unix:///run/redis.sock", "unix:///run/redis.sock"),
            ("pw-only-no-scheme", "***"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }
}
