//! Replay protection, Redis store (spec/replay.md §6). Needs a Redis server whose URL is
//! in `RPCSEAL_TEST_REDIS_URL` (e.g. `redis://127.0.0.1:6390/`); skipped when unset,
//! except under `CI=true`, where the tests fail.
//! The tests reconfigure and flush that server: never point it at a server in use.
#![cfg(feature = "redis")]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use rpcseal::replay::{
    MemoryReplayStore, RedisReplayConfig, RedisReplayStore, ReplayError, ReplayItem, ReplayStore,
    WINDOW_SIZE,
};

/// The tests change server-wide settings (maxmemory-policy, FLUSHALL): run them one by one.
static SERIAL: Mutex<()> = Mutex::new(());

fn setup(test: &str) -> Option<(MutexGuard<'static, ()>, String)> {
    let url = common::redis_url(test)?;
    Some((SERIAL.lock().unwrap_or_else(|p| p.into_inner()), url))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn config(url: &str, test: &str) -> RedisReplayConfig {
    let mut c = RedisReplayConfig::new(url);
    c.key_prefix = format!("rpcseal-test:{}:{}:{}", std::process::id(), test, now());
    c.create_marker_if_absent = true;
    c
}

fn raw(url: &str) -> redis::Connection {
    redis::Client::open(url).unwrap().get_connection().unwrap()
}

/// Puts the server's `maxmemory-policy` back to `noeviction` when dropped, also when the
/// test fails.
struct RestorePolicy(String);

impl Drop for RestorePolicy {
    fn drop(&mut self) {
        let _: Result<(), _> = redis::cmd("CONFIG")
            .arg("SET")
            .arg("maxmemory-policy")
            .arg("noeviction")
            .query(&mut raw(&self.0));
    }
}

fn set_policy(url: &str, policy: &str) {
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg(policy)
        .query(&mut raw(url))
        .unwrap();
}

fn item(session: u32, seq: u64) -> ReplayItem {
    let mut session_id = [0u8; 16];
    session_id[..4].copy_from_slice(&session.to_le_bytes());
    ReplayItem {
        sender: [7u8; 16],
        session_id,
        seq,
        nonce: [1u8; 16],
        timestamp: now(),
        expires_at: now() + 600,
        one_shot: false,
    }
}

#[test]
fn redis_window_and_nonce_semantics() {
    let Some((_g, url)) = setup("redis_window_and_nonce_semantics") else {
        return;
    };
    let s = RedisReplayStore::connect(config(&url, "sem")).unwrap();
    let t = now();
    let m = item(1, 0);
    s.check(&m, t).unwrap();
    s.check(&m, t).unwrap(); // check never marks
    s.check_and_mark(&m, t).unwrap();
    assert!(matches!(s.check(&m, t), Err(ReplayError::Replayed)));
    assert!(matches!(
        s.check_and_mark(&m, t),
        Err(ReplayError::Replayed)
    ));
    // Reordering, window edge.
    s.check_and_mark(&item(1, 3000), t).unwrap();
    s.check_and_mark(&item(1, 2999), t).unwrap();
    s.check_and_mark(&item(1, 3000 - WINDOW_SIZE + 1), t)
        .unwrap();
    assert!(matches!(
        s.check_and_mark(&item(1, 3000 - WINDOW_SIZE + 1), t),
        Err(ReplayError::Replayed)
    ));
    assert!(matches!(
        s.check_and_mark(&item(1, 3000 - WINDOW_SIZE), t),
        Err(ReplayError::OutsideWindow)
    ));
    // A failed check_and_mark changes nothing: expired far-ahead item.
    let expired = ReplayItem {
        expires_at: t - 1,
        ..item(1, 1_000_000)
    };
    assert!(matches!(
        s.check_and_mark(&expired, t),
        Err(ReplayError::Expired)
    ));
    s.check_and_mark(&item(1, 3000 - WINDOW_SIZE + 2), t)
        .unwrap();
    // u64::MAX edges (Lua numbers are doubles: the script splits seq in halves).
    for seq in [u64::MAX - 1, u64::MAX, u64::MAX - (WINDOW_SIZE - 1)] {
        s.check_and_mark(&item(2, seq), t).unwrap();
    }
    for seq in [u64::MAX - 1, u64::MAX] {
        assert!(matches!(
            s.check(&item(2, seq), t),
            Err(ReplayError::Replayed)
        ));
    }
    assert!(matches!(
        s.check(&item(2, u64::MAX - WINDOW_SIZE), t),
        Err(ReplayError::OutsideWindow)
    ));
    assert!(matches!(
        s.check(&item(2, 0), t),
        Err(ReplayError::OutsideWindow)
    ));
    s.check(&item(2, u64::MAX - 2), t).unwrap();
    // One-shot sessions: exactly one message per session, whatever its nonce (§4).
    let n = ReplayItem {
        one_shot: true,
        ..item(3, 0)
    };
    s.check_and_mark(&n, t).unwrap();
    assert!(matches!(
        s.check_and_mark(&n, t),
        Err(ReplayError::Replayed)
    ));
    let n2 = ReplayItem {
        nonce: [2u8; 16],
        ..n
    };
    assert!(matches!(
        s.check_and_mark(&n2, t),
        Err(ReplayError::Replayed)
    ));
    s.check_and_mark(
        &ReplayItem {
            one_shot: true,
            ..item(4, 0)
        },
        t,
    )
    .unwrap();
    // Keys expire no earlier than expires_at (plus margin), and do expire.
    let mut con = raw(&url);
    // spec/replay.md §6.2: the hash tag {P:hh} of the session id's first byte.
    let key = format!(
        "{{{}:{:02x}}}:w:{}{}",
        config_prefix(&s),
        item(1, 0).session_id[0],
        hex(&item(1, 0).sender),
        hex(&item(1, 0).session_id)
    );
    let ttl: i64 = redis::cmd("TTL").arg(&key).query(&mut con).unwrap();
    assert!((600..=600 + 300 + 5).contains(&ttl), "ttl {ttl}");
}

fn config_prefix(s: &RedisReplayStore) -> String {
    // The Debug output carries the prefix; avoids widening the public API for a test.
    let d = format!("{s:?}");
    let start = d.find("key_prefix: \"").unwrap() + "key_prefix: \"".len();
    d[start..start + d[start..].find('"').unwrap()].to_string()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Differential test: the Lua window agrees with the in-memory window.
#[test]
fn redis_window_agrees_with_memory_window() {
    let Some((_g, url)) = setup("redis_window_agrees_with_memory_window") else {
        return;
    };
    let r = RedisReplayStore::connect(config(&url, "diff")).unwrap();
    let m = MemoryReplayStore::default();
    let t = now();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for base in [0u64, 1 << 32, u64::MAX - 5000, (1 << 32) - 700] {
        let session = (base % 1000) as u32 + 10;
        let mut top = base;
        for _ in 0..1500 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let seq = match x % 8 {
                0 => top.saturating_add((x >> 8) % 2000),
                1..=5 => top.saturating_sub((x >> 8) % 1100),
                _ => top.saturating_add((x >> 8) % 70),
            };
            let it = item(session, seq);
            let a = r.check_and_mark(&it, t).map_err(|e| e.to_string());
            let b = m.check_and_mark(&it, t).map_err(|e| e.to_string());
            assert_eq!(a, b, "seq {seq} base {base}");
            if a.is_ok() {
                top = top.max(seq);
            }
        }
    }
}

/// Two receivers ("replicas") sharing one Redis: a message accepted by one is rejected
/// by the other.
#[test]
fn redis_replay_across_replicas_is_rejected() {
    let Some((_g, url)) = setup("redis_replay_across_replicas_is_rejected") else {
        return;
    };
    let c = config(&url, "replicas");
    let a = RedisReplayStore::connect(c.clone()).unwrap();
    let b = RedisReplayStore::connect(c).unwrap();
    let t = now();
    a.check_and_mark(&item(1, 5), t).unwrap();
    assert!(matches!(
        b.check(&item(1, 5), t),
        Err(ReplayError::Replayed)
    ));
    assert!(matches!(
        b.check_and_mark(&item(1, 5), t),
        Err(ReplayError::Replayed)
    ));
    b.check_and_mark(&item(1, 6), t).unwrap();
    assert!(matches!(
        a.check_and_mark(&item(1, 6), t),
        Err(ReplayError::Replayed)
    ));
    let n = ReplayItem {
        one_shot: true,
        ..item(2, 0)
    };
    b.check_and_mark(&n, t).unwrap();
    assert!(matches!(
        a.check_and_mark(&n, t),
        Err(ReplayError::Replayed)
    ));
}

#[test]
fn redis_concurrent_check_and_mark_accepts_exactly_one() {
    let Some((_g, url)) = setup("redis_concurrent_check_and_mark_accepts_exactly_one") else {
        return;
    };
    let c = config(&url, "concurrent");
    let stores: Vec<Arc<RedisReplayStore>> = (0..2)
        .map(|_| Arc::new(RedisReplayStore::connect(c.clone()).unwrap()))
        .collect();
    let t = now();
    for round in 0..20u32 {
        let wins = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let s = Arc::clone(&stores[i % 2]);
                let wins = Arc::clone(&wins);
                std::thread::spawn(move || {
                    if s.check_and_mark(&item(round, 42), t).is_ok() {
                        wins.fetch_add(1, Ordering::SeqCst);
                    }
                    let n = ReplayItem {
                        one_shot: true,
                        ..item(round + 1000, 0)
                    };
                    if s.check_and_mark(&n, t).is_ok() {
                        wins.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(wins.load(Ordering::SeqCst), 2, "round {round}");
    }
}

#[test]
fn redis_evicting_policy_is_refused_at_connect() {
    let Some((_g, url)) = setup("redis_evicting_policy_is_refused_at_connect") else {
        return;
    };
    let _restore = RestorePolicy(url.clone());
    for policy in ["allkeys-lru", "volatile-ttl"] {
        set_policy(&url, policy);
        let r = RedisReplayStore::connect(config(&url, "policy"));
        match r {
            Err(ReplayError::Misconfigured { reason }) => assert!(reason.contains(policy)),
            other => panic!("expected Misconfigured, got {other:?}"),
        }
    }
}

/// A policy changed on a running server (`CONFIG SET`) is noticed by pooled connections
/// at their next re-check, and the store then refuses to answer (fails closed) until the
/// policy is back.
#[test]
fn redis_evicting_policy_set_later_is_noticed() {
    let Some((_g, url)) = setup("redis_evicting_policy_set_later_is_noticed") else {
        return;
    };
    let _restore = RestorePolicy(url.clone());
    let mut c = config(&url, "recheck");
    c.pool_size = 1;
    c.policy_recheck = std::time::Duration::ZERO;
    let store = RedisReplayStore::connect(c).unwrap();
    let now = now();
    store.check_and_mark(&item(1, 0), now).unwrap();
    set_policy(&url, "allkeys-lru");
    match store.check_and_mark(&item(1, 1), now) {
        Err(ReplayError::Misconfigured { reason }) => assert!(reason.contains("allkeys-lru")),
        other => panic!("expected Misconfigured, got {other:?}"),
    }
    set_policy(&url, "noeviction");
    // Nothing was marked while misconfigured.
    store.check_and_mark(&item(1, 1), now).unwrap();
    assert!(matches!(
        store.check_and_mark(&item(1, 1), now),
        Err(ReplayError::Replayed)
    ));
}

#[test]
fn redis_unreachable_server_is_unavailable() {
    let Some((_g, _url)) = setup("redis_unreachable_server_is_unavailable") else {
        return;
    };
    // Port 1 on loopback: nothing listens there.
    let r = RedisReplayStore::connect(config("redis://127.0.0.1:1/", "closed"));
    assert!(
        matches!(r, Err(ReplayError::Unavailable { .. })),
        "expected Unavailable, got {r:?}"
    );
    let r = RedisReplayStore::connect(config("not a url", "bad"));
    assert!(matches!(r, Err(ReplayError::Misconfigured { .. })), "{r:?}");
}

/// Delete every key of one prefix: Redis losing this store's state (as FLUSHALL, a
/// restart without persistence or a failover to an empty replica would), without
/// touching other tests' keys.
fn lose_state(url: &str, prefix: &str) {
    let mut con = raw(url);
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{{{prefix}:*"))
        .query(&mut con)
        .unwrap();
    assert!(!keys.is_empty());
    let _: () = redis::cmd("DEL").arg(&keys).query(&mut con).unwrap();
}

#[test]
fn redis_lost_state_sets_a_watermark_that_rejects_old_replays() {
    let Some((_g, url)) = setup("redis_lost_state_sets_a_watermark_that_rejects_old_replays")
    else {
        return;
    };
    let c = config(&url, "lost");
    let s = RedisReplayStore::connect(c.clone()).unwrap();
    let t = now();
    let at = |session, seq, ts| ReplayItem {
        timestamp: ts,
        ..item(session, seq)
    };
    // Every item of this test is in session 1, so in one loss shard (spec/replay.md §6.2):
    // one loss, one watermark.
    let nonce = |n: u8, ts| ReplayItem {
        one_shot: true,
        nonce: [n; 16],
        ..at(1, 0, ts)
    };
    s.check_and_mark(&at(1, 0, t), t).unwrap();
    s.check_and_mark(&nonce(2, t), t).unwrap();
    assert_eq!(s.losses_detected(), 0);
    lose_state(&url, &c.key_prefix);

    // The first call after the loss detects it and sets watermark = now + loss_margin.
    let detect = t + 5;
    let wm = detect + c.loss_margin_secs;
    for r in [
        s.check(&at(1, 0, t), detect),
        s.check_and_mark(&at(1, 0, t), detect),
        s.check_and_mark(&nonce(2, t), detect),
        // New messages at or below the watermark cannot be told from replays either.
        s.check_and_mark(&at(1, 1, wm), wm),
        s.check_and_mark(&nonce(3, wm), wm),
    ] {
        assert!(matches!(r, Err(ReplayError::BelowWatermark)), "{r:?}");
    }
    assert_eq!(s.losses_detected(), 1);
    // A second store, connected after the loss, sees the same watermark; connecting
    // without create_marker_if_absent works (nothing for an operator to do).
    let strict = RedisReplayConfig {
        create_marker_if_absent: false,
        ..c.clone()
    };
    let s2 = RedisReplayStore::connect(strict).unwrap();
    assert!(matches!(
        s2.check_and_mark(&at(1, 0, t), t + 200),
        Err(ReplayError::BelowWatermark)
    ));
    assert_eq!(s2.losses_detected(), 0);
    // Above the watermark: accepted, once.
    s2.check_and_mark(&at(1, 7, wm + 1), wm + 1).unwrap();
    assert!(matches!(
        s.check_and_mark(&at(1, 7, wm + 1), wm + 1),
        Err(ReplayError::Replayed)
    ));
    s.check_and_mark(&nonce(3, wm + 1), wm + 1).unwrap();
    assert!(matches!(
        s2.check_and_mark(&nonce(3, wm + 1), wm + 1),
        Err(ReplayError::Replayed)
    ));
    // The re-created session entry keeps the watermark as its floor: a lower timestamp in
    // its window is still rejected, though the sequence number is new to the window.
    assert!(matches!(
        s.check_and_mark(&at(1, 6, wm), wm + 1),
        Err(ReplayError::BelowWatermark)
    ));
    s.check_and_mark(&at(1, 6, wm + 1), wm + 1).unwrap();

    // create_marker_if_absent on a prefix that lost its state would hide the loss: it is
    // only for prefixes that never accepted a message. Here it starts without watermark.
    let fresh = config(&url, "lost-fresh");
    let f = RedisReplayStore::connect(fresh).unwrap();
    f.check_and_mark(&at(1, 0, t), t).unwrap();
    assert_eq!(f.losses_detected(), 0);
    // Without it, a brand-new prefix starts with a watermark: fails closed for a margin.
    let mut new = config(&url, "lost-new");
    new.create_marker_if_absent = false;
    let n = RedisReplayStore::connect(new).unwrap();
    assert!(matches!(
        n.check_and_mark(&at(1, 0, t), t),
        Err(ReplayError::BelowWatermark)
    ));
    assert_eq!(n.losses_detected(), 1);
}

/// spec/replay.md §6.2, §6.4: the state is split into 256 loss shards by the session id's
/// first byte, each with its own marker. Losing one shard's keys (as a cluster master that
/// comes back empty loses the shards it held) is detected in that shard only: its replays
/// are refused by the watermark, while the other shards keep their state and their
/// sessions carry on without one.
#[test]
fn redis_loss_of_one_shard_is_detected_in_that_shard_only() {
    let Some((_g, url)) = setup("redis_loss_of_one_shard_is_detected_in_that_shard_only") else {
        return;
    };
    let c = config(&url, "shard");
    let s = RedisReplayStore::connect(c.clone()).unwrap();
    let t = now();
    // Sessions 1 and 2: shards 01 and 02.
    for session in [1, 2] {
        for seq in 0..3 {
            s.check_and_mark(&item(session, seq), t).unwrap();
        }
    }
    let mut con = raw(&url);
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{{{}:01}}:*", c.key_prefix))
        .query(&mut con)
        .unwrap();
    assert_eq!(
        keys.len(),
        2,
        "shard 01: its marker and session 1's window: {keys:?}"
    );
    let _: () = redis::cmd("DEL").arg(&keys).query(&mut con).unwrap();

    for seq in 0..3 {
        assert!(matches!(
            s.check_and_mark(&item(1, seq), t + 1),
            Err(ReplayError::BelowWatermark)
        ));
        assert!(matches!(
            s.check_and_mark(&item(2, seq), t + 1),
            Err(ReplayError::Replayed)
        ));
    }
    assert_eq!(s.losses_detected(), 1);
    // Shard 02 is untouched: its session accepts its next message at once.
    s.check_and_mark(&item(2, 3), t + 1).unwrap();
    // A key prefix with a brace would break the hash tag: refused.
    let mut braced = config(&url, "brace");
    braced.key_prefix.push('{');
    assert!(matches!(
        RedisReplayStore::connect(braced),
        Err(ReplayError::Misconfigured { .. })
    ));
}

/// Item 10 of issue 13: the config's Debug never shows the password, and the URL can come
/// from an environment variable or a file instead of a command line.
#[test]
fn item_10_redis_config_debug_redacts_the_password_and_the_url_has_other_sources() {
    let url = "redis://replay-user:s3cret-Pw@127.0.0.1:6390/2?password=0ther-s3cret";
    let c = RedisReplayConfig::new(url);
    let d = format!("{c:?}");
    assert!(!d.contains("s3cret"), "{d}");
    assert!(!d.contains("replay-user"), "{d}");
    assert!(d.contains("127.0.0.1:6390"), "{d}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("redis-url");
    std::fs::write(&file, format!("{url}\n")).unwrap();
    assert_eq!(RedisReplayConfig::from_url_file(&file).unwrap().url, url);
    let e = RedisReplayConfig::from_url_file(dir.path().join("missing")).unwrap_err();
    assert!(!e.to_string().contains("s3cret"));
    let var = "RPCSEAL_TEST_ITEM_10_REDIS_URL";
    std::env::set_var(var, url);
    assert_eq!(RedisReplayConfig::from_env(var).unwrap().url, url);
    std::env::remove_var(var);
    assert!(RedisReplayConfig::from_env(var).is_err());
}
