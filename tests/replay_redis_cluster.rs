//! The Redis replay store on a Redis Cluster (spec/replay.md §6.1, §6.2, §6.4): three
//! masters from Debian's `redis-server`, started by this test on 127.0.0.1:7100-7102 and
//! killed when it ends (also when it fails).
//!
//! The fleet scenario (three replicas, each with its own store, sharing one key prefix):
//! every message is accepted once and rejected by every replica afterwards; the sessions
//! and the script calls spread over the three masters; a master that crashes and comes back
//! empty is detected by the shards it held (their markers are gone), so no replay of a
//! message it had marked is accepted, and the other masters' shards carry on untouched.
//!
//! Needs `redis-server` and `redis-cli` on PATH: skipped (printing "skipped") without them,
//! except under `CI=true`, where the test fails.
#![cfg(feature = "redis")]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::procs::{self, redis_info, redis_query, redis_server, Proc};
use rpcseal::replay::{
    RedisReplayConfig, RedisReplayStore, RedisTopology, ReplayError, ReplayItem, ReplayStore,
};
use rpcseal::{ErrorKind, Identity, Mode, Opener, Sealer};

/// The cluster's ports (the range 7100-7199 is this project's for Redis Cluster and
/// Sentinel tests).
const PORTS: [u16; 3] = [7100, 7101, 7102];
/// Sessions in the fleet scenario: each a sealer with its own random session id, so its
/// own hash tag. With 48 sessions over 3 masters, a master with fewer than 10% of the
/// script calls has a probability below 1e-6.
const SESSIONS: usize = 48;
const MESSAGES_PER_SESSION: usize = 4;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

struct Cluster {
    nodes: Vec<Proc>,
    dir: tempfile::TempDir,
}

fn node_args(dir: &std::path::Path, port: u16) -> Vec<String> {
    vec![
        "--cluster-enabled".into(),
        "yes".into(),
        "--cluster-config-file".into(),
        dir.join(format!("nodes-{port}.conf")).display().to_string(),
        "--cluster-node-timeout".into(),
        "3000".into(),
    ]
}

fn start_node(dir: &std::path::Path, port: u16) -> Proc {
    let args = node_args(dir, port);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    redis_server(dir, port, &args)
}

fn cluster_ok(port: u16) -> bool {
    redis_info_cluster(port).is_some_and(|s| s == "ok")
}

fn redis_info_cluster(port: u16) -> Option<String> {
    let text: String = redis_query(port, redis::cmd("CLUSTER").arg("INFO"))?;
    text.lines()
        .find_map(|l| l.trim().strip_prefix("cluster_state:"))
        .map(|v| v.trim().to_owned())
}

impl Cluster {
    fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let nodes: Vec<Proc> = PORTS.iter().map(|&p| start_node(dir.path(), p)).collect();
        let mut create = std::process::Command::new("redis-cli");
        create.args(["--cluster", "create"]);
        for p in PORTS {
            create.arg(format!("127.0.0.1:{p}"));
        }
        let out = create
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for p in PORTS {
            procs::wait_for(Duration::from_secs(20), "cluster_state:ok", || {
                cluster_ok(p).then_some(())
            });
        }
        Cluster { nodes, dir }
    }

    /// The port of the master that serves `key`'s slot.
    fn master_of(&self, key: &str) -> u16 {
        let slot: i64 = redis_query(PORTS[0], redis::cmd("CLUSTER").arg("KEYSLOT").arg(key))
            .expect("CLUSTER KEYSLOT");
        let slots: redis::Value =
            redis_query(PORTS[0], redis::cmd("CLUSTER").arg("SLOTS")).expect("CLUSTER SLOTS");
        let redis::Value::Array(ranges) = slots else {
            panic!("CLUSTER SLOTS: {slots:?}")
        };
        for r in ranges {
            let redis::Value::Array(r) = r else { continue };
            let (Some(redis::Value::Int(lo)), Some(redis::Value::Int(hi))) = (r.first(), r.get(1))
            else {
                continue;
            };
            if (*lo..=*hi).contains(&slot) {
                if let Some(redis::Value::Array(master)) = r.get(2) {
                    if let Some(redis::Value::Int(port)) = master.get(1) {
                        return *port as u16;
                    }
                }
            }
        }
        panic!("no master for slot {slot}")
    }
}

/// Script calls (EVALSHA and EVAL) a node has served since it started.
fn script_calls(port: u16) -> u64 {
    let text: String =
        redis_query(port, redis::cmd("INFO").arg("commandstats")).unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
        .filter_map(|l| {
            l.split(',')
                .next()?
                .split("calls=")
                .nth(1)?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

fn store(prefix: &str) -> Arc<RedisReplayStore> {
    let mut c = RedisReplayConfig::new(
        PORTS
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}/"))
            .collect::<Vec<_>>()
            .join(","),
    );
    c.topology = RedisTopology::Cluster;
    c.key_prefix = prefix.to_owned();
    c.create_marker_if_absent = true;
    c.pool_size = 2;
    Arc::new(RedisReplayStore::connect(c).expect("connect to the cluster"))
}

fn kind(r: Result<rpcseal::Opened, rpcseal::Error>) -> Result<(), ErrorKind> {
    r.map(|_| ()).map_err(|e| e.kind())
}

#[test]
fn fleet_on_a_three_master_cluster_spreads_and_detects_a_lost_master() {
    let test = "fleet_on_a_three_master_cluster_spreads_and_detects_a_lost_master";
    if !procs::have("redis-server", test) || !procs::have("redis-cli", test) {
        return;
    }
    let mut cluster = Cluster::start();
    let prefix = format!("rpcseal-test:cluster:{}", std::process::id());

    let alice = Identity::generate();
    let svc = Identity::generate();
    let stores: Vec<Arc<RedisReplayStore>> = (0..3).map(|_| store(&prefix)).collect();
    let fleet: Vec<Opener> = stores
        .iter()
        .map(|s| common::opener_with(&svc, &alice, s.clone() as Arc<dyn ReplayStore>))
        .collect();

    // The fleet scenario: every message accepted by one replica, then rejected by all.
    let calls_before: Vec<u64> = PORTS.iter().map(|&p| script_calls(p)).collect();
    let t = now();
    let mut envs: Vec<Vec<u8>> = Vec::new();
    let mut sessions_per_master: BTreeMap<u16, usize> = BTreeMap::new();
    let mut sessions: Vec<([u8; 16], u16)> = Vec::new();
    for _ in 0..SESSIONS {
        let mut s: Sealer = common::sealer(&alice, &[&svc], Mode::Mac);
        let first = common::seal(&mut s, b"m0", t);
        let session_id = rpcseal::inspect(&first)
            .expect("inspect")
            .session
            .expect("the first envelope carries its session block")
            .session_id;
        let tag = format!("{{{prefix}:{:02x}}}", session_id[0]);
        let master = cluster.master_of(&format!("{tag}:marker"));
        *sessions_per_master.entry(master).or_default() += 1;
        sessions.push((session_id, master));
        envs.push(first);
        for i in 1..MESSAGES_PER_SESSION {
            envs.push(common::seal(&mut s, format!("m{i}").as_bytes(), t));
        }
    }
    for (i, e) in envs.iter().enumerate() {
        assert_eq!(kind(fleet[i % 3].open_at(e, t)), Ok(()), "message {i}");
        for (j, r) in fleet.iter().enumerate() {
            assert_eq!(
                kind(r.open_at(e, t)),
                Err(ErrorKind::Replayed),
                "message {i} on replica {j}"
            );
        }
    }
    let calls: Vec<u64> = PORTS
        .iter()
        .zip(&calls_before)
        .map(|(&p, b)| script_calls(p) - b)
        .collect();
    let total: u64 = calls.iter().sum();
    println!(
        "cluster: {} messages, {} script calls per master {:?} (ports {:?}), sessions per master {:?}",
        envs.len(),
        total,
        calls,
        PORTS,
        sessions_per_master
    );
    // At least one script call per open (the Opener may also make a read-only check first).
    assert!(total >= (envs.len() * 4) as u64, "{total} script calls");
    for (p, c) in PORTS.iter().zip(&calls) {
        assert!(
            *c * 10 >= total,
            "master {p} served {c} of {total} script calls: the load does not spread"
        );
    }

    // A master crashes and comes back empty (no persistence), with its slots: the shards
    // it held find their markers gone. Every replay is still rejected: by the loss
    // watermark in its shards, by the intact windows elsewhere.
    let victim = 1;
    let lost_port = PORTS[victim];
    cluster.nodes[victim].kill();
    // While it is down, messages of its sessions cannot be checked: rejected
    // (unavailable), never accepted. (A sample: each call waits for the client's retries.)
    for (i, e) in envs.iter().enumerate().take(12) {
        assert!(kind(fleet[i % 3].open_at(e, t + 1)).is_err(), "message {i}");
    }
    cluster.nodes[victim] = start_node(cluster.dir.path(), lost_port);
    for p in PORTS {
        procs::wait_for(Duration::from_secs(30), "cluster_state:ok again", || {
            cluster_ok(p).then_some(())
        });
    }
    assert_eq!(
        redis_info(lost_port, "keyspace", "db0"),
        None,
        "the restarted master is empty"
    );
    // Until every store's connections and slot maps have caught up with the restarted
    // node, calls fail as unavailable. Wait for that with a read-only check in each of the
    // 256 shards (which is also where the first call finds a lost shard's marker gone).
    for s in &stores {
        for shard in 0..=255u8 {
            let mut session_id = [0x5au8; 16];
            session_id[0] = shard;
            let probe = ReplayItem {
                sender: [9; 16],
                session_id,
                seq: 0,
                nonce: [0; 16],
                timestamp: t + 2,
                expires_at: t + 3600,
                one_shot: false,
            };
            procs::wait_for(
                Duration::from_secs(20),
                "the store reaches every shard",
                || match s.check(&probe, t + 2) {
                    Err(ReplayError::Unavailable { .. }) => None,
                    _ => Some(()),
                },
            );
        }
    }
    let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
    for (i, e) in envs.iter().enumerate() {
        for (j, r) in fleet.iter().enumerate() {
            let res = kind(r.open_at(e, t + 2));
            assert!(
                res.is_err(),
                "replay of message {i} accepted by replica {j}"
            );
            *by_kind
                .entry(format!("{:?}", res.unwrap_err()))
                .or_default() += 1;
        }
    }
    // At the store: every session the lost master held is below its shard's new
    // watermark; every other session's window is intact.
    let mut lost_sessions = 0;
    for (session_id, master) in &sessions {
        let item = ReplayItem {
            sender: *alice.key_id().as_bytes(),
            session_id: *session_id,
            seq: 0,
            nonce: [0; 16],
            timestamp: t,
            expires_at: t + 3600,
            one_shot: false,
        };
        let r = stores[0].check(&item, t + 2);
        if *master == lost_port {
            lost_sessions += 1;
            assert!(matches!(r, Err(ReplayError::BelowWatermark)), "{r:?}");
        } else {
            assert!(matches!(r, Err(ReplayError::Replayed)), "{r:?}");
        }
    }
    assert!(lost_sessions > 0, "the lost master held no session");
    let losses: u64 = stores.iter().map(|s| s.losses_detected()).sum();
    println!("after losing master {lost_port}: replays rejected as {by_kind:?}; shard losses detected {losses}");
    assert!(losses >= 1, "the lost master's shards were not detected");
    println!("sessions on the lost master: {lost_sessions} of {SESSIONS}");
}

/// Ports of the second cluster: three masters and one replica each.
const REPLICATED_PORTS: [u16; 6] = [7140, 7141, 7142, 7143, 7144, 7145];

/// `CLUSTER NODES` from `port`: (port, id, is_master, master id) per node.
fn cluster_nodes(port: u16) -> Vec<(u16, String, bool, String)> {
    let text: String = redis_query(port, redis::cmd("CLUSTER").arg("NODES")).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let addr_port = f
                .get(1)?
                .split('@')
                .next()?
                .rsplit(':')
                .next()?
                .parse()
                .ok()?;
            Some((
                addr_port,
                f.first()?.to_string(),
                f.get(2)?.split(',').any(|x| x == "master"),
                f.get(3)?.to_string(),
            ))
        })
        .collect()
}

/// spec/replay.md §6.5 on a Redis Cluster with a replica per master: with
/// `durable_replicas = 1`, the `WAIT` goes to the master that ran the script (the slot's
/// master), so when one master's replica lags (SIGSTOP, and its replication connection
/// cut: see tests/replay_redis_failover.rs for why both), marks in that master's shards are
/// rejected while the other masters' shards go on accepting; then the master is SIGKILLed,
/// the cluster promotes the replica, and no accepted message is accepted again.
#[test]
fn durable_marks_on_a_cluster_with_replicas_survive_a_master_failover() {
    let test = "durable_marks_on_a_cluster_with_replicas_survive_a_master_failover";
    if !procs::have("redis-server", test) || !procs::have("redis-cli", test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut nodes: Vec<Proc> = REPLICATED_PORTS
        .iter()
        .map(|&p| start_node(dir.path(), p))
        .collect();
    let mut create = std::process::Command::new("redis-cli");
    create.args(["--cluster", "create"]);
    for p in REPLICATED_PORTS {
        create.arg(format!("127.0.0.1:{p}"));
    }
    let out = create
        .args(["--cluster-replicas", "1", "--cluster-yes"])
        .output()
        .expect("run redis-cli --cluster create");
    assert!(
        out.status.success(),
        "redis-cli --cluster create failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Formed: every node sees the cluster ok, every master has its replica in sync.
    let pairs: Vec<(u16, u16)> =
        procs::wait_for(Duration::from_secs(30), "cluster with replicas", || {
            if !REPLICATED_PORTS.iter().all(|&p| cluster_ok(p)) {
                return None;
            }
            let nodes = cluster_nodes(REPLICATED_PORTS[0]);
            let pairs: Vec<(u16, u16)> = nodes
                .iter()
                .filter(|n| n.2)
                .filter_map(|m| {
                    let r = nodes.iter().find(|n| !n.2 && n.3 == m.1)?;
                    (redis_info(r.0, "replication", "master_link_status").as_deref() == Some("up")
                        && procs::replica_acknowledges(m.0))
                    .then_some((m.0, r.0))
                })
                .collect();
            (pairs.len() == 3).then_some(pairs)
        });

    let prefix = format!("rpcseal-test:cluster-durable:{}", std::process::id());
    let mut c = RedisReplayConfig::new(
        REPLICATED_PORTS[..3]
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}/"))
            .collect::<Vec<_>>()
            .join(","),
    );
    c.topology = RedisTopology::Cluster;
    c.key_prefix = prefix.clone();
    c.create_marker_if_absent = true;
    c.pool_size = 2;
    c.durable_replicas = 1;
    // Long enough for a loaded CI machine; each refused mark waits this long.
    c.durable_timeout = Duration::from_millis(500);
    c.command_timeout = Duration::from_secs(2);
    let stores: Vec<Arc<RedisReplayStore>> = (0..2)
        .map(|_| Arc::new(RedisReplayStore::connect(c.clone()).expect("connect")))
        .collect();
    let alice = Identity::generate();
    let svc = Identity::generate();
    let fleet: Vec<Opener> = stores
        .iter()
        .map(|s| common::opener_with(&svc, &alice, s.clone() as Arc<dyn ReplayStore>))
        .collect();
    let t = now();
    let master_of_session = |env: &[u8]| {
        let id = rpcseal::inspect(env).unwrap().session.unwrap().session_id;
        let key = format!("{{{prefix}:{:02x}}}:marker", id[0]);
        let slot: i64 = redis_query(
            REPLICATED_PORTS[0],
            redis::cmd("CLUSTER").arg("KEYSLOT").arg(&key),
        )
        .unwrap();
        let slots: redis::Value =
            redis_query(REPLICATED_PORTS[0], redis::cmd("CLUSTER").arg("SLOTS")).unwrap();
        let redis::Value::Array(ranges) = slots else {
            panic!()
        };
        ranges
            .iter()
            .find_map(|r| {
                let redis::Value::Array(r) = r else {
                    return None;
                };
                let (redis::Value::Int(lo), redis::Value::Int(hi)) = (&r[0], &r[1]) else {
                    return None;
                };
                let redis::Value::Array(m) = &r[2] else {
                    return None;
                };
                let redis::Value::Int(port) = &m[1] else {
                    return None;
                };
                (*lo..=*hi).contains(&slot).then_some(*port as u16)
            })
            .unwrap()
    };

    // Healthy: every mark confirmed by its master's replica.
    let mut accepted: Vec<Vec<u8>> = Vec::new();
    for i in 0..24 {
        let mut s = common::sealer(&alice, &[&svc], Mode::Mac);
        for j in 0..3 {
            let e = common::seal(&mut s, b"healthy", t);
            if let Err(err) = fleet[(i + j) % 2].open_at(&e, t) {
                panic!("session {i}, message {j}: {err}");
            }
            accepted.push(e);
        }
    }

    // One master's replica lags: marks in that master's shards are not confirmed.
    let (victim, victim_replica) = pairs[0];
    let replica_proc = REPLICATED_PORTS
        .iter()
        .position(|&p| p == victim_replica)
        .unwrap();
    nodes[replica_proc].signal("STOP");
    let killed: i64 = redis_query(
        victim,
        redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("replica"),
    )
    .unwrap();
    assert_eq!(killed, 1);
    let (mut refused, mut confirmed) = (0, 0);
    for i in 0..200 {
        if refused >= 3 && confirmed >= 3 {
            break;
        }
        let mut s = common::sealer(&alice, &[&svc], Mode::Mac);
        let e = common::seal(&mut s, b"lagging", t);
        let on_victim = master_of_session(&e) == victim;
        let r = kind(fleet[i % 2].open_at(&e, t));
        if on_victim {
            assert_eq!(
                r,
                Err(ErrorKind::ReplayUnavailable),
                "unconfirmed mark accepted"
            );
            refused += 1;
        } else {
            assert_eq!(r, Ok(()), "a healthy master's shard must go on accepting");
            accepted.push(e);
            confirmed += 1;
        }
    }
    assert!(
        refused >= 3 && confirmed >= 3,
        "{refused} refused, {confirmed} confirmed"
    );

    // The master dies; its replica resumes and the cluster promotes it.
    let failover_start = std::time::Instant::now();
    let victim_proc = REPLICATED_PORTS.iter().position(|&p| p == victim).unwrap();
    nodes[victim_proc].kill();
    nodes[replica_proc].signal("CONT");
    procs::wait_for(
        Duration::from_secs(60),
        "the cluster promotes the replica",
        || {
            (redis_info(victim_replica, "replication", "role").as_deref() == Some("master")
                && REPLICATED_PORTS
                    .iter()
                    .filter(|&&p| p != victim)
                    .all(|&p| cluster_ok(p)))
            .then_some(())
        },
    );
    let failover = failover_start.elapsed();

    let mut replays_accepted = 0;
    let mut retried = 0;
    for e in &accepted {
        for r in &fleet {
            let mut res = kind(r.open_at(e, t + 1));
            for _ in 0..50 {
                if res != Err(ErrorKind::ReplayUnavailable) {
                    break;
                }
                retried += 1;
                std::thread::sleep(Duration::from_millis(100));
                res = kind(r.open_at(e, t + 1));
            }
            match res {
                Ok(()) => replays_accepted += 1,
                Err(ErrorKind::Replayed) => {}
                Err(k) => panic!("replay after the cluster failover: {k:?}"),
            }
        }
    }
    println!(
        "cluster with replicas, durable_replicas=1: {} accepted, {refused} refused while \
         master {victim}'s replica lagged; cluster failover took {failover:?}; replays \
         accepted after it: {replays_accepted} ({retried} retries while unavailable)",
        accepted.len()
    );
    assert_eq!(
        replays_accepted, 0,
        "a replay was accepted after the failover"
    );
}
