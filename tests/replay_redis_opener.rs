//! Replay protection through the Opener, with real envelopes, with the Redis store
//! (spec/replay.md §6): replicas sharing one Redis, concurrent opens, Redis stopped and
//! restarted with its data, and Redis back empty.
//!
//! Needs `RPCSEAL_TEST_REDIS_URL` (e.g. `redis://127.0.0.1:6390/`); the tests that stop and
//! restart a server also need `redis-server` on PATH and start their own, on a free
//! loopback port. Skipped (printing "skipped") otherwise, except under `CI=true`, where they fail.
#![cfg(feature = "redis")]

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rpcseal::replay::{RedisReplayConfig, RedisReplayStore, ReplayItem, ReplayStore};
use rpcseal::{ErrorKind, Identity, Mode, Opener, Policy, Recipient, Sealer, SealerConfig};

/// The tests' fixed clock. The Redis script refuses marks whose key expiry is already past
/// on the server's clock, so the fixed time must not be in the past: after that date the
/// tests move to the current time.
fn t0() -> u64 {
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    1_800_000_000u64.max(wall)
}

use common::redis_url as shared_url;

fn has_redis_server() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Gate for the tests that run their own server.
fn own_server_allowed(test: &str) -> bool {
    if shared_url(test).is_none() {
        return false;
    }
    if !has_redis_server() {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "{test}: redis-server is not on PATH under CI=true"
        );
        println!("skipped {test}: redis-server is not on PATH");
        return false;
    }
    true
}

fn prefix(test: &str) -> String {
    format!(
        "rpcseal-test:{}:{}:{}",
        test,
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

fn store(url: &str, key_prefix: &str) -> Arc<RedisReplayStore> {
    let mut c = RedisReplayConfig::new(url);
    c.key_prefix = key_prefix.to_owned();
    // Fresh prefixes: start without a loss watermark.
    c.create_marker_if_absent = true;
    Arc::new(RedisReplayStore::connect(c).unwrap())
}

fn opener(me: &Identity, trust: &Identity, store: Arc<RedisReplayStore>) -> Opener {
    common::opener_with(me, trust, store)
}

fn sealer(from: &Identity, to: &Identity, mode: Mode) -> Sealer {
    common::sealer(from, &[to], mode)
}

use common::seal;

fn kind(r: Result<rpcseal::Opened, rpcseal::Error>) -> Result<Vec<u8>, ErrorKind> {
    r.map(|o| o.payload).map_err(|e| e.kind())
}

/// A redis-server child process on a free loopback port, killed on drop (also when the
/// test fails).
struct Server {
    port: u16,
    child: Option<Child>,
    args: Vec<String>,
}

impl Server {
    /// `persist_dir`: Some(dir) keeps the data across restarts (append-only file, fsync
    /// on every write); None keeps nothing.
    fn start(persist_dir: Option<&Path>) -> Server {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut args: Vec<String> = ["--port", &port.to_string(), "--bind", "127.0.0.1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(["--save", ""].map(String::from));
        match persist_dir {
            Some(d) => {
                args.extend(
                    ["--appendonly", "yes", "--appendfsync", "always", "--dir"].map(String::from),
                );
                args.push(d.display().to_string());
            }
            None => args.extend(["--appendonly", "no"].map(String::from)),
        }
        let mut s = Server {
            port,
            child: None,
            args,
        };
        s.restart();
        s
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kill the server at once (as a crash would).
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start it (again) on the same port and wait until it answers PING.
    fn restart(&mut self) {
        self.stop();
        let child = Command::new("redis-server")
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let up = redis::Client::open(self.url())
                .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(200)))
                .and_then(|mut con| redis::cmd("PING").query::<String>(&mut con));
            if up.is_ok() {
                return;
            }
            assert!(Instant::now() < deadline, "redis-server did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Three replicas, each with its own store connected to the same server and prefix: a
/// message accepted by one is rejected by the other two.
#[test]
fn three_replicas_reject_each_others_replays() {
    let Some(url) = shared_url("three_replicas_reject_each_others_replays") else {
        return;
    };
    let alice = Identity::generate();
    let svc = Identity::generate();
    let p = prefix("replicas");
    let replicas: Vec<Opener> = (0..3)
        .map(|_| opener(&svc, &alice, store(&url, &p)))
        .collect();
    let t = t0();
    for mode in [Mode::Signed, Mode::Mac, Mode::SignOnly] {
        let mut s = sealer(&alice, &svc, mode);
        let envs: Vec<Vec<u8>> = (0..9u32)
            .map(|i| seal(&mut s, &i.to_be_bytes(), t))
            .collect();
        for (i, e) in envs.iter().enumerate() {
            assert_eq!(
                kind(replicas[i % 3].open_at(e, t)),
                Ok((i as u32).to_be_bytes().to_vec()),
                "{mode} message {i}"
            );
            for (j, r) in replicas.iter().enumerate() {
                assert_eq!(
                    kind(r.open_at(e, t + 1)),
                    Err(ErrorKind::Replayed),
                    "{mode} message {i} on replica {j}"
                );
            }
        }
    }
}

/// Two threads open the same envelope at once through two Openers: exactly one accepts.
#[test]
fn concurrent_opens_on_two_replicas_accept_exactly_one() {
    let Some(url) = shared_url("concurrent_opens_on_two_replicas_accept_exactly_one") else {
        return;
    };
    let alice = Identity::generate();
    let svc = Identity::generate();
    let p = prefix("concurrent");
    let replicas: Vec<Arc<Opener>> = (0..2)
        .map(|_| Arc::new(opener(&svc, &alice, store(&url, &p))))
        .collect();
    let t = t0();
    let mut s = sealer(&alice, &svc, Mode::Mac);
    for round in 0..25u32 {
        let env = Arc::new(seal(&mut s, &round.to_be_bytes(), t));
        let barrier = Arc::new(Barrier::new(2));
        let handles: Vec<_> = replicas
            .iter()
            .map(|o| {
                let (o, env, barrier) = (Arc::clone(o), Arc::clone(&env), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    kind(o.open_at(&env, t))
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let ok = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(ok, 1, "round {round}: {results:?}");
        assert!(
            results
                .iter()
                .all(|r| r.is_ok() || *r == Err(ErrorKind::Replayed)),
            "round {round}: {results:?}"
        );
    }
}

/// Redis stopped mid-run: opens fail closed. Back with its data: the same stores reconnect
/// by themselves, accept new messages, and still reject a message accepted before the stop.
#[test]
fn redis_restart_with_data_fails_closed_then_keeps_rejecting_replays() {
    let test = "redis_restart_with_data_fails_closed_then_keeps_rejecting_replays";
    if !own_server_allowed(test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(Some(dir.path()));
    let alice = Identity::generate();
    let svc = Identity::generate();
    let p = prefix("restart");
    let stores: Vec<Arc<RedisReplayStore>> = (0..2).map(|_| store(&server.url(), &p)).collect();
    let replicas: Vec<Opener> = stores
        .iter()
        .map(|st| opener(&svc, &alice, st.clone()))
        .collect();
    let t = t0();
    let mut s = sealer(&alice, &svc, Mode::Signed);
    let before: Vec<Vec<u8>> = (0..4u32)
        .map(|i| seal(&mut s, &i.to_be_bytes(), t))
        .collect();
    for (i, e) in before.iter().enumerate() {
        assert!(replicas[i % 2].open_at(e, t).is_ok(), "message {i}");
    }

    server.stop();
    let during = seal(&mut s, b"during", t + 1);
    for r in &replicas {
        for _ in 0..3 {
            assert_eq!(
                kind(r.open_at(&during, t + 1)),
                Err(ErrorKind::ReplayUnavailable)
            );
        }
    }

    server.restart();
    // Every pooled connection is stale now; each store must replace them by itself.
    for (i, e) in before.iter().enumerate() {
        for (j, r) in replicas.iter().enumerate() {
            assert_eq!(
                kind(r.open_at(e, t + 2)),
                Err(ErrorKind::Replayed),
                "message {i} on replica {j} after the restart"
            );
        }
    }
    // The message rejected while Redis was down was never marked: it opens now, once.
    assert_eq!(
        kind(replicas[0].open_at(&during, t + 2)),
        Ok(b"during".to_vec())
    );
    assert_eq!(
        kind(replicas[1].open_at(&during, t + 2)),
        Err(ErrorKind::Replayed)
    );
    for i in 0..20u32 {
        let e = seal(&mut s, &i.to_be_bytes(), t + 3);
        assert!(
            replicas[(i % 2) as usize].open_at(&e, t + 3).is_ok(),
            "new message {i}"
        );
    }
    // The data came back: no loss was detected.
    assert_eq!(stores[0].losses_detected() + stores[1].losses_detected(), 0);
}

/// Redis back empty (restart without persistence): a message accepted before the loss is
/// still rejected when replayed, messages at or below the loss watermark are rejected
/// (fail closed), and messages timestamped after the watermark are accepted.
#[test]
fn redis_back_empty_rejects_old_replays_and_accepts_new_messages() {
    let test = "redis_back_empty_rejects_old_replays_and_accepts_new_messages";
    if !own_server_allowed(test) {
        return;
    }
    let mut server = Server::start(None);
    let alice = Identity::generate();
    let svc = Identity::generate();
    let p = prefix("empty");
    let stores: Vec<Arc<RedisReplayStore>> = (0..2).map(|_| store(&server.url(), &p)).collect();
    let replicas: Vec<Opener> = stores
        .iter()
        .map(|st| opener(&svc, &alice, st.clone()))
        .collect();
    let margin = RedisReplayConfig::new("").loss_margin_secs;
    let t = t0();
    // One session of ordinary messages, and one-shot sessions (tracked by nonce).
    let mut s = sealer(&alice, &svc, Mode::Mac);
    let old: Vec<Vec<u8>> = (0..3u32)
        .map(|i| seal(&mut s, &i.to_be_bytes(), t))
        .collect();
    let mut one = Sealer::new(
        &alice,
        &[Recipient::from(svc.public())],
        SealerConfig::new(Mode::Signed).max_messages(1),
    )
    .unwrap();
    let old_one_shot = seal(&mut one, b"one shot", t);
    for e in old.iter().chain([&old_one_shot]) {
        assert!(replicas[0].open_at(e, t).is_ok());
    }

    server.restart(); // no persistence: everything is gone, the markers too
    let detect = t + 10;
    // Each of the 256 loss shards (spec/replay.md §6.2) notices the loss on its first use
    // and takes `that call's now + margin` as its watermark. A busy fleet touches every
    // shard within moments; here a read-only check in each shard at `detect` stands for
    // that, so that every shard has the watermark `detect + margin`.
    for shard in 0..=255u8 {
        let mut session_id = [0xa5u8; 16];
        session_id[0] = shard;
        let probe = ReplayItem {
            sender: [0; 16],
            session_id,
            seq: 0,
            nonce: [0; 16],
            timestamp: detect,
            expires_at: detect + 3600,
            one_shot: false,
        };
        assert!(stores[usize::from(shard) % 2]
            .check(&probe, detect)
            .is_err());
    }
    // Replays of what was accepted before the loss: rejected, on both replicas, as late
    // as they can still pass the freshness check.
    for (j, r) in replicas.iter().enumerate() {
        for at in [detect, t + 120] {
            for e in old.iter().chain([&old_one_shot]) {
                // Below the loss watermark: "cannot prove it is new" (spec/replay.md §8).
                assert_eq!(
                    kind(r.open_at(e, at)),
                    Err(ErrorKind::ReplayUnavailable),
                    "replica {j} at {at}"
                );
            }
        }
    }
    assert_eq!(
        stores[0].losses_detected() + stores[1].losses_detected(),
        256,
        "one loss, detected once in each shard"
    );
    // A new message of the same session, timestamped at or below the watermark: the store
    // cannot tell it from a replay, so it is rejected too (fail closed).
    let watermark = detect + margin;
    let early = seal(&mut s, b"early", watermark);
    assert_eq!(
        kind(replicas[1].open_at(&early, watermark)),
        Err(ErrorKind::ReplayUnavailable)
    );
    // After the watermark: accepted, once, on any replica, in the old session and in new ones.
    let late = seal(&mut s, b"late", watermark + 1);
    assert_eq!(
        kind(replicas[1].open_at(&late, watermark + 1)),
        Ok(b"late".to_vec())
    );
    assert_eq!(
        kind(replicas[0].open_at(&late, watermark + 1)),
        Err(ErrorKind::Replayed)
    );
    let mut fresh = sealer(&alice, &svc, Mode::Signed);
    let f = seal(&mut fresh, b"fresh", watermark + 2);
    assert_eq!(
        kind(replicas[0].open_at(&f, watermark + 2)),
        Ok(b"fresh".to_vec())
    );
    assert_eq!(
        kind(replicas[1].open_at(&f, watermark + 2)),
        Err(ErrorKind::Replayed)
    );
    let mut one2 = Sealer::new(
        &alice,
        &[Recipient::from(svc.public())],
        SealerConfig::new(Mode::Signed).max_messages(1),
    )
    .unwrap();
    let n = seal(&mut one2, b"n", watermark + 3);
    assert!(replicas[1].open_at(&n, watermark + 3).is_ok());
    assert_eq!(
        kind(replicas[0].open_at(&n, watermark + 3)),
        Err(ErrorKind::Replayed)
    );
    // The early message of the old session stays rejected: the session's entry, re-created
    // after the loss, keeps the watermark as its floor.
    assert_eq!(
        kind(replicas[0].open_at(&early, watermark + 3)),
        Err(ErrorKind::ReplayUnavailable)
    );
}

/// Deletes every key of one prefix (Redis losing this store's state, as FLUSHALL would).
fn lose_prefix(url: &str, key_prefix: &str) {
    let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{key_prefix}:*"))
        .query(&mut con)
        .unwrap();
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL").arg(&keys).query(&mut con).unwrap();
    }
}

/// Item 5 of issue 13: with a skew of 600 s and the default 300 s loss margin, a message
/// stamped now + 500 s would be accepted, and accepted again after a loss. Such an opener
/// is refused; with a margin that covers the skew, the replay after the loss is rejected.
#[test]
fn item_05_a_loss_margin_below_the_skew_cannot_be_configured() {
    let test = "item_05_a_loss_margin_below_the_skew_cannot_be_configured";
    let Some(url) = shared_url(test) else { return };
    let alice = Identity::generate();
    let svc = Identity::generate();
    let skew = Policy::default().clock_skew(Duration::from_secs(600));
    let p = prefix("item05");
    let built = Opener::builder()
        .identity(&svc)
        .trust(alice.public())
        .policy(skew.clone())
        .replay_store(store(&url, &p))
        .build();
    let e = built.err().expect("a margin below the skew is refused");
    assert!(e.to_string().contains("loss margin"), "{e}");

    let mut c = RedisReplayConfig::new(&url);
    c.key_prefix = p.clone();
    c.loss_margin_secs = 600 + 60;
    let o = Opener::builder()
        .identity(&svc)
        .trust(alice.public())
        .policy(skew)
        .replay_store(Arc::new(RedisReplayStore::connect(c).unwrap()))
        .build()
        .unwrap();
    let t = t0();
    let mut s = sealer(&alice, &svc, Mode::Signed);
    let ahead = seal(&mut s, b"ahead", t + 500);
    assert!(o.open_at(&ahead, t).is_ok());
    lose_prefix(&url, &p);
    assert!(o.open_at(&ahead, t + 1).is_err());
}

/// Item 16 of issue 13: there is no shared default key prefix. A store without one is
/// refused; the receiver-derived prefix differs between two services, so each accepts its
/// own copy of a message sent to both.
#[test]
fn item_16_two_services_never_share_a_default_redis_prefix() {
    let test = "item_16_two_services_never_share_a_default_redis_prefix";
    let Some(url) = shared_url(test) else { return };
    let e = RedisReplayStore::connect(RedisReplayConfig::new(&url)).unwrap_err();
    assert!(e.to_string().contains("key prefix"), "{e}");

    let alice = Identity::generate();
    let (one, two) = (Identity::generate(), Identity::generate());
    let open = |me: &Identity| {
        let mut c = RedisReplayConfig::for_receiver(&url, &me.public().key_id());
        c.create_marker_if_absent = true;
        let st = Arc::new(RedisReplayStore::connect(c).unwrap());
        opener(me, &alice, st)
    };
    let (o1, o2) = (open(&one), open(&two));
    let mut s = Sealer::new(
        &alice,
        &[Recipient::from(one.public()), Recipient::from(two.public())],
        SealerConfig::new(Mode::Signed),
    )
    .unwrap();
    let t = t0();
    let env = seal(&mut s, b"to both", t);
    assert_eq!(kind(o1.open_at(&env, t)), Ok(b"to both".to_vec()));
    assert_eq!(kind(o2.open_at(&env, t)), Ok(b"to both".to_vec()));
    assert_eq!(kind(o1.open_at(&env, t)), Err(ErrorKind::Replayed));
    // Replicas of one service (same identity) share the prefix.
    let replica = open(&one);
    assert_eq!(kind(replica.open_at(&env, t)), Err(ErrorKind::Replayed));
}

/// Item 20 of issue 13: a key prefix used for the first time without declaring it new is
/// "cannot prove it is new" (the store's class), with what happened and what to do, not
/// "replayed".
#[test]
fn item_20_a_never_used_prefix_says_cannot_prove_and_what_to_do() {
    let test = "item_20_a_never_used_prefix_says_cannot_prove_and_what_to_do";
    let Some(url) = shared_url(test) else { return };
    let alice = Identity::generate();
    let svc = Identity::generate();
    let mut c = RedisReplayConfig::new(&url);
    c.key_prefix = prefix("item20");
    let o = opener(
        &svc,
        &alice,
        Arc::new(RedisReplayStore::connect(c).unwrap()),
    );
    let t = t0();
    let mut s = sealer(&alice, &svc, Mode::Signed);
    let e = o.open_at(&seal(&mut s, b"x", t), t).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ReplayUnavailable);
    let text = e.to_string();
    for needle in [
        "cannot prove",
        "used for the first time",
        "--replay-redis-new-prefix",
    ] {
        assert!(text.contains(needle), "{needle:?} not in {text}");
    }
}
