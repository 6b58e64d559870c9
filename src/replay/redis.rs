//! Shared replay store in Redis (spec/replay.md §6). Cargo feature `redis`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::cluster::{ClusterClient, ClusterConnection};
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Client, Connection, ConnectionLike, Script, Value};

use super::window::word_index;
use super::{ReplayError, ReplayItem, ReplayStore};

/// Settings of a [`RedisReplayStore`].
///
/// Its `Debug` output shows the URL without its password or user name.
#[derive(Clone)]
pub struct RedisReplayConfig {
    /// Server URL, e.g. `redis://127.0.0.1:6379/0` (or `rediss://` where the redis crate
    /// was built with TLS support). For [`RedisTopology::Cluster`] the seed nodes and for
    /// [`RedisTopology::Sentinel`] the Sentinels, comma-separated. It may hold a password:
    /// keep it out of command lines ([`from_env`](Self::from_env),
    /// [`from_url_file`](Self::from_url_file)).
    pub url: String,
    /// What `url` points at: one server (default), a Redis Cluster, or the Sentinels of a
    /// replicated primary (spec/replay.md §6.1).
    pub topology: RedisTopology,
    /// Durability policy (spec/replay.md §6.5): when non-zero, a mark counts only once at
    /// least this many replicas of the primary that holds it acknowledged it (`WAIT` after
    /// the script); otherwise the message is rejected ([`ReplayError::Unavailable`]). With
    /// asynchronous replication and no policy, a failover can lose the last marks, and
    /// replays of those messages are then accepted. Set it to the number of replicas that
    /// can be promoted. Default 0 (off). In a cluster, the `WAIT` goes to the slot's master
    /// in the client's slot map: while a slot migrates (ASK redirections) the script may
    /// run on another node, and the `WAIT` then confirms nothing (spec/replay.md §6.5).
    pub durable_replicas: u32,
    /// How long a mark waits for [`durable_replicas`](Self::durable_replicas)
    /// acknowledgements before the message is rejected. Must be shorter than
    /// [`command_timeout`](Self::command_timeout). Default 500 ms.
    pub durable_timeout: Duration,
    /// Namespace of every key this store touches: `{key_prefix:hh}:marker`,
    /// `{key_prefix:hh}:w:…`, `{key_prefix:hh}:n:…` for the 256 shards `hh` (spec/replay.md
    /// §6.2); no `{` or `}` in it. Every receiver sharing replay state must use
    /// the same prefix; unrelated services must use different ones, or each rejects the
    /// other's copy of a message sent to both as a replay. No default:
    /// [`RedisReplayStore::connect`] refuses an empty prefix; [`for_receiver`](Self::for_receiver)
    /// derives one from the receiver's identity, which every replica of a service shares.
    pub key_prefix: String,
    /// Timeout for establishing a TCP connection. Default 1 s.
    pub connect_timeout: Duration,
    /// Read and write timeout of every command. Default 1 s.
    pub command_timeout: Duration,
    /// Number of pooled connections (at least 1). Default 8. In a cluster each pooled
    /// connection holds one TCP connection per master it has talked to.
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
    /// finds a shard's marker key missing (Redis lost its state). Messages with a timestamp at or
    /// below the watermark are then rejected unless tracked by an entry created after the
    /// loss. It MUST be at least the receivers' allowed clock skew plus the largest clock
    /// difference between the receivers sharing the store: every message accepted before
    /// the loss has `timestamp <= acceptance time + skew <= detection time + skew`.
    /// Default 300 (the Opener's default skew is 120). An
    /// [`Opener`](crate::Opener) refuses to build with a store whose margin is below its
    /// policy's skew ([`Misuse::LossMarginBelowSkew`](crate::Misuse::LossMarginBelowSkew)).
    pub loss_margin_secs: u64,
    /// When the shards' marker keys are missing at connect: `false` (default) leaves each
    /// to the first check in its shard, which re-creates it with a loss watermark (`now + loss_margin_secs`), so a
    /// brand-new key prefix rejects every message for `loss_margin_secs` (fails closed);
    /// `true` writes the 256 markers without watermark. Set `true` only for a key prefix that has
    /// never accepted a message (first deployment, tests): after a loss, `true` in a
    /// process that connects before the loss is detected would let replays of the last
    /// few minutes through.
    pub create_marker_if_absent: bool,
}

impl std::fmt::Debug for RedisReplayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisReplayConfig")
            .field("url", &redact_url(&self.url))
            .field("topology", &self.topology)
            .field("durable_replicas", &self.durable_replicas)
            .field("durable_timeout", &self.durable_timeout)
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
    // Cluster seed nodes and Sentinels: several URLs, comma-separated, each redacted.
    url.split(',')
        .map(redact_one_url)
        .collect::<Vec<_>>()
        .join(",")
}

fn redact_one_url(url: &str) -> String {
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
            topology: RedisTopology::Standalone,
            durable_replicas: 0,
            durable_timeout: Duration::from_millis(500),
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

/// Where a [`RedisReplayStore`]'s state lives (spec/replay.md §6.1).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RedisTopology {
    /// One server, or a primary whose address does not change: `url` is its URL.
    Standalone,
    /// A Redis Cluster: `url` holds one or more seed nodes, comma-separated. The keys of
    /// one session and its shard's marker share a hash tag, so every script touches one
    /// slot; MOVED and ASK redirections are followed by the client.
    Cluster,
    /// A primary with replicas watched by Sentinel: `url` holds the Sentinels,
    /// comma-separated; every new connection asks them for the current primary of
    /// `master_name` (with the store's timeouts, checking with `ROLE` that the server named
    /// is a primary), so the store follows a failover. Limit of this version: the primary
    /// is reached with the Sentinel URL's scheme but without credentials or database of
    /// its own (a primary that requires a password refuses, and every message is
    /// rejected).
    Sentinel {
        /// The name the Sentinels monitor the primary under (`sentinel monitor NAME ...`).
        master_name: String,
    },
}

/// How a store reaches its server(s).
enum Backend {
    Single(Client),
    Cluster(ClusterClient),
    /// The Sentinels (with the scheme their URL used, for the primary's), and the name.
    Sentinel(Vec<(Client, String)>, String),
}

/// An open connection of either kind.
enum Conn {
    Single(Connection),
    Cluster(Box<ClusterConnection>),
}

impl Conn {
    fn as_dyn(&mut self) -> &mut dyn ConnectionLike {
        match self {
            Conn::Single(c) => c,
            Conn::Cluster(c) => &mut **c,
        }
    }
}

/// A cached connection and when its server's eviction policy was last checked.
type Pooled = (Conn, Instant);

/// Number of loss shards (spec/replay.md §6.2): the first byte of the session id picks one.
const SHARDS: usize = 256;

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
/// * The state is split into 256 loss shards by the session id's first byte, each with
///   the hash tag `{key_prefix:hh}` and a marker key without expiry
///   (`{key_prefix:hh}:marker`, holding the shard's loss watermark in decimal, `0` for
///   none), read inside every script call of the shard. If it is gone (restart without
///   persistence, FLUSHALL, failover to an empty replica, a cluster master back empty),
///   the same atomic call re-creates it with watermark `now + loss_margin_secs`, and from then on a message
///   with a timestamp at or below the watermark that no entry created after the loss
///   tracks is rejected ([`ReplayError::BelowWatermark`]); newer messages are accepted.
///   A replay of a message accepted before the loss is therefore still rejected.
///   [`losses_detected`](Self::losses_detected) counts the losses this store noticed.
///
/// A command that times out may still have run on the server: the message is rejected
/// (fail closed) and, if it had been marked, a retry of it is then rejected as a replay.
///
/// Deployments past one server ([`RedisTopology`]): a Redis Cluster (keys of one session
/// and its shard's marker share a hash tag, so a lost master is detected shard by shard),
/// and a replicated primary behind Sentinel, where
/// [`durable_replicas`](RedisReplayConfig::durable_replicas) keeps a failover from losing
/// accepted marks. spec/replay.md §6 says which deployments are safe.
pub struct RedisReplayStore {
    backend: Backend,
    config: RedisReplayConfig,
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
    /// Connect, verify `maxmemory-policy` is `noeviction` (on every master of a cluster),
    /// and, with [`RedisReplayConfig::create_marker_if_absent`], create the missing shard
    /// markers without watermark.
    pub fn connect(config: RedisReplayConfig) -> Result<Self, ReplayError> {
        let store = Self::open(config)?;
        let mut con = store.new_connection()?;
        if store.config.create_marker_if_absent {
            for shard in 0..SHARDS {
                let _: Option<String> = redis::cmd("SET")
                    .arg(store.marker_key(shard as u8))
                    .arg("0")
                    .arg("NX")
                    .query(con.as_dyn())
                    .map_err(|e| unavailable("SET marker", &e))?;
            }
        }
        store
            .script
            .load(con.as_dyn())
            .map_err(|e| unavailable("SCRIPT LOAD", &e))?;
        if let Ok(mut slot) = store.pool[0].lock() {
            *slot = Some((con, Instant::now()));
        }
        Ok(store)
    }

    /// How many times this store found a shard's marker missing and re-created it with a
    /// loss watermark: each is a loss of (part of) Redis's state, counted once per shard
    /// of the 256 whose loss this store noticed first (or the first use of a key prefix
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
        if config.key_prefix.contains(['{', '}']) {
            return Err(ReplayError::Misconfigured {
                reason: "the Redis key prefix must not contain '{' or '}' (it is part of \
                         every key's hash tag)"
                    .into(),
            });
        }
        if config.command_timeout.is_zero() || config.connect_timeout.is_zero() {
            return Err(ReplayError::Misconfigured {
                reason: "Redis timeouts must be non-zero".into(),
            });
        }
        if config.durable_replicas > 0
            && (config.durable_timeout.as_millis() == 0
                || config.durable_timeout >= config.command_timeout)
        {
            return Err(ReplayError::Misconfigured {
                reason: "durable_timeout must be at least 1 ms and shorter than \
                         command_timeout"
                    .into(),
            });
        }
        let bad_url = |e: redis::RedisError| ReplayError::Misconfigured {
            reason: format!("invalid Redis URL: {e}"),
        };
        let urls: Vec<&str> = config
            .url
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .collect();
        let backend = match &config.topology {
            RedisTopology::Standalone => {
                Backend::Single(Client::open(config.url.as_str()).map_err(bad_url)?)
            }
            RedisTopology::Cluster => Backend::Cluster(
                ClusterClient::builder(urls)
                    .connection_timeout(config.connect_timeout)
                    .response_timeout(config.command_timeout)
                    // MOVED, ASK, TRYAGAIN and reconnections: a few, briefly; every
                    // failure after that rejects the message.
                    .retries(3)
                    .min_retry_wait(10)
                    .max_retry_wait(200)
                    .build()
                    .map_err(bad_url)?,
            ),
            RedisTopology::Sentinel { master_name } => {
                let mut sentinels = Vec::with_capacity(urls.len());
                for u in &urls {
                    let scheme = u.split_once("://").map_or("redis", |(s, _)| s).to_owned();
                    sentinels.push((Client::open(*u).map_err(bad_url)?, scheme));
                }
                if sentinels.is_empty() {
                    return Err(ReplayError::Misconfigured {
                        reason: "no Sentinel URL".into(),
                    });
                }
                Backend::Sentinel(sentinels, master_name.clone())
            }
        };
        let pool = (0..config.pool_size.max(1))
            .map(|_| Mutex::new(None))
            .collect();
        Ok(RedisReplayStore {
            backend,
            config,
            pool,
            next: AtomicUsize::new(0),
            script: Script::new(SCRIPT),
            losses: AtomicU64::new(0),
        })
    }

    /// Open a connection with timeouts and check the eviction policy.
    fn new_connection(&self) -> Result<Conn, ReplayError> {
        let mut con = match &self.backend {
            Backend::Cluster(c) => {
                let con = c.get_connection().map_err(|e| unavailable("connect", &e))?;
                Conn::Cluster(Box::new(con))
            }
            Backend::Single(c) => Conn::Single(self.connect_single(c)?),
            Backend::Sentinel(sentinels, name) => {
                Conn::Single(self.connect_sentinel_primary(sentinels, name)?)
            }
        };
        Self::check_policy(&mut con)?;
        Ok(con)
    }

    /// A connection to one server, with the connect, read and write timeouts.
    fn connect_single(&self, client: &Client) -> Result<Connection, ReplayError> {
        let con = client
            .get_connection_with_timeout(self.config.connect_timeout)
            .map_err(|e| unavailable("connect", &e))?;
        let t = Some(self.config.command_timeout);
        con.set_read_timeout(t)
            .and_then(|_| con.set_write_timeout(t))
            .map_err(|e| unavailable("set timeouts", &e))?;
        Ok(con)
    }

    /// spec/replay.md §6.1: asks the Sentinels in turn for the primary of `name`
    /// (`SENTINEL get-master-addr-by-name`), connects to it and checks with `ROLE` that it
    /// is a primary. Every step has the store's timeouts.
    fn connect_sentinel_primary(
        &self,
        sentinels: &[(Client, String)],
        name: &str,
    ) -> Result<Connection, ReplayError> {
        let mut why = String::new();
        for (sentinel, scheme) in sentinels {
            let addr: Result<Option<(String, u16)>, ReplayError> =
                self.connect_single(sentinel).and_then(|mut con| {
                    redis::cmd("SENTINEL")
                        .arg("get-master-addr-by-name")
                        .arg(name)
                        .query(&mut con)
                        .map_err(|e| unavailable("SENTINEL get-master-addr-by-name", &e))
                });
            let (host, port) = match addr {
                Ok(Some(a)) => a,
                Ok(None) => {
                    why = format!("a Sentinel does not know {name:?}");
                    continue;
                }
                Err(e) => {
                    why = e.to_string();
                    continue;
                }
            };
            let host = if host.contains(':') {
                format!("[{host}]")
            } else {
                host
            };
            let client = Client::open(format!("{scheme}://{host}:{port}/")).map_err(|e| {
                ReplayError::Misconfigured {
                    reason: format!("the primary's address from Sentinel: {e}"),
                }
            })?;
            let mut con = match self.connect_single(&client) {
                Ok(c) => c,
                Err(e) => {
                    why = e.to_string();
                    continue;
                }
            };
            let role: Value = redis::cmd("ROLE")
                .query(&mut con)
                .map_err(|e| unavailable("ROLE", &e))?;
            let is_primary = matches!(&role, Value::Array(v)
                if matches!(v.first(), Some(Value::BulkString(r)) if r == b"master"));
            if is_primary {
                return Ok(con);
            }
            why = format!("Sentinel named {host}:{port}, which is not a primary (yet)");
        }
        Err(ReplayError::Unavailable {
            reason: format!("no primary for {name:?} from the Sentinels: {why}"),
        })
    }

    /// The server's `maxmemory-policy` must be `noeviction`, on every master of a cluster
    /// (spec/replay.md §6.1).
    fn check_policy(con: &mut Conn) -> Result<(), ReplayError> {
        let info: Value = redis::cmd("INFO")
            .arg("memory")
            .query(con.as_dyn())
            .map_err(|e| unavailable("INFO memory", &e))?;
        // A server answers with its text; a cluster connection with a map from each
        // master's address to its text.
        let mut texts = Vec::new();
        collect_texts(&info, &mut texts);
        if texts.is_empty() {
            return Err(ReplayError::Misconfigured {
                reason: "cannot read maxmemory_policy from Redis INFO memory".into(),
            });
        }
        for text in texts {
            let policy = text
                .lines()
                .find_map(|l| l.trim().strip_prefix("maxmemory_policy:"))
                .map(str::trim);
            match policy {
                Some("noeviction") => {}
                Some(p) => {
                    return Err(ReplayError::Misconfigured {
                        reason: format!(
                            "Redis maxmemory-policy is {p:?}; the replay store requires \
                             \"noeviction\" (an evicting server would forget accepted messages)"
                        ),
                    })
                }
                None => {
                    return Err(ReplayError::Misconfigured {
                        reason: "cannot read maxmemory_policy from Redis INFO memory".into(),
                    })
                }
            }
        }
        Ok(())
    }

    /// `{P:hh}`: the hash tag of loss shard `shard` (spec/replay.md §6.2).
    fn tag(&self, shard: u8) -> String {
        format!("{{{}:{shard:02x}}}", self.config.key_prefix)
    }

    fn marker_key(&self, shard: u8) -> String {
        let mut k = self.tag(shard);
        k.push_str(":marker");
        k
    }

    fn state_key(&self, item: &ReplayItem) -> String {
        let mut k = self.tag(item.session_id[0]);
        k.reserve(3 + 96);
        if item.one_shot {
            k.push_str(":n:");
            hex_into(&mut k, &item.sender);
            hex_into(&mut k, &item.session_id);
            hex_into(&mut k, &super::ONE_SHOT_SLOT);
        } else {
            k.push_str(":w:");
            hex_into(&mut k, &item.sender);
            hex_into(&mut k, &item.session_id);
        }
        k
    }

    /// spec/replay.md §6.5: `WAIT durable_replicas durable_timeout` on the connection (and,
    /// in a cluster, the node) that ran the script. Fewer acknowledgements reject the
    /// message.
    fn wait_durable(&self, con: &mut Conn, state_key: &str) -> Result<(), ReplayError> {
        let n = self.config.durable_replicas;
        let ms = self.config.durable_timeout.as_millis().max(1) as u64;
        let mut wait = redis::cmd("WAIT");
        wait.arg(n).arg(ms);
        let acked: Result<i64, redis::RedisError> = match con {
            Conn::Single(c) => wait.query(c),
            Conn::Cluster(c) => {
                let route = Route::with_key(state_key.as_bytes(), SlotAddr::Master);
                c.route_command(
                    &wait,
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)),
                )
                .and_then(|v| redis::from_redis_value(v).map_err(Into::into))
            }
        };
        let acked = acked.map_err(|e| unavailable("WAIT", &e))?;
        if acked < i64::from(n) {
            return Err(ReplayError::Unavailable {
                reason: format!(
                    "the mark reached {acked} of the {n} replicas required (durable_replicas) \
                     within {ms} ms; message rejected"
                ),
            });
        }
        Ok(())
    }

    fn run(&self, item: &ReplayItem, now: u64, mark: bool) -> Result<(), ReplayError> {
        if now > item.expires_at {
            return Err(ReplayError::Expired);
        }
        let expire_at = item
            .expires_at
            .saturating_add(self.config.expiry_margin_secs)
            .min(MAX_EXPIRE_AT);
        let state_key = self.state_key(item);
        let mut inv = self.script.prepare_invoke();
        inv.key(self.marker_key(item.session_id[0]))
            .key(&state_key)
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
            match inv.invoke(con.as_dyn()) {
                Ok(r) => break r,
                Err(e) => {
                    let io = e.is_io_error()
                        || e.is_timeout()
                        || e.is_connection_dropped()
                        || e.is_unrecoverable_error();
                    // A server that became a replica (a failover behind Sentinel): the
                    // next connection asks the Sentinels for the new primary.
                    let demoted =
                        e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly);
                    if io || demoted {
                        *slot = None;
                    }
                    // A pooled connection whose server went away (restart, failover) fails
                    // on first use: retry once on a new connection. Never after a timeout
                    // (the server may be slow; do not double the wait). Safe even if the
                    // first attempt had run: the retry would then see the mark and reject.
                    if (io || demoted) && cached && !e.is_timeout() {
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
            OK => {
                if mark && self.config.durable_replicas > 0 {
                    if let Some((con, _)) = slot.as_mut() {
                        if let Err(e) = self.wait_durable(con, &state_key) {
                            *slot = None;
                            return Err(e);
                        }
                    }
                }
                Ok(())
            }
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

/// The text values of a reply: the reply itself, or each value of a map (a cluster's
/// per-node answers).
fn collect_texts(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::BulkString(b) => out.push(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => out.push(s.clone()),
        Value::VerbatimString { text, .. } => out.push(text.clone()),
        Value::Map(kv) => kv.iter().for_each(|(_, v)| collect_texts(v, out)),
        _ => {}
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
            (
                "redis://:pw@h1:1,redis://:pw@h2:2/,redis://h3:3",
                "redis://***@h1:1,redis://***@h2:2/,redis://h3:3",
            ),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }
}
