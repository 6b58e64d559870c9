//! The load test of issue 16: the same request/reply workload through plain NATS and
//! through rpcseal (MAC and signed modes, 256 B and 16 KiB payloads, 1 and 3 service
//! replicas), against the nats-server at `NATS_URL` (loopback only), then captured requests
//! re-published to count replays accepted.
//!
//! ```text
//! cargo run --release -p rpcseal-nats --example loadtest -- --json
//! ```
//!
//! Options: `--json` (one JSON object as the last line of stdout), `--secs N` (measured
//! seconds per run, default 4; each run also has 1 s of warm-up), `--concurrency N` (calls
//! in flight, default 16), `--replays N` (captured requests re-published, default 200);
//! for profiling, `--headline-only` (256 B, one replica) and `--modes LIST` (a
//! comma-separated list of `plain`, `mac`, `signed`, run in that order, repeats allowed).
//! Each run also reports `cpu_us_per_call`: this process's CPU time (client and replicas;
//! nats-server is another process) per call, the figure that does not move with the
//! machine's load.
//! Bounded: 12 runs of at most `secs + 1` seconds and 500 000 calls each; about 75 s in all
//! by default.
//!
//! "Plain" is this same program with sealing and opening removed: the same client
//! (one reply subscription, a reply subject per call), the same service loop (one message at
//! a time per replica), the same payloads and concurrency. The headline keys are 256 B
//! payloads, one replica and an in-memory replay store; every combination is under `runs`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use bytes::Bytes;
use futures_util::StreamExt;
use rpcseal::replay::{MemoryReplayConfig, MemoryReplayStore, ReplayStore};
use rpcseal::rpc::Responder;
use rpcseal::{Identity, Inline, Metadata, Mode, Opener, Recipient, Sealer, SealerConfig};
use rpcseal_nats::{Client, Reply, Service, HEADER_ERROR, HEADER_NEED_SESSION};
use tokio::sync::oneshot;

const MAX_CALLS_PER_RUN: u64 = 500_000;

struct Args {
    json: bool,
    secs: u64,
    concurrency: usize,
    replays: usize,
    /// Only the headline combination (256 B, one replica): for profiling.
    headline_only: bool,
    /// The modes to run (all three by default).
    modes: Vec<Kind>,
}

fn args() -> Args {
    let mut a = Args {
        json: false,
        secs: 4,
        concurrency: 16,
        replays: 200,
        headline_only: false,
        modes: vec![
            Kind::Plain,
            Kind::Sealed(Mode::Mac),
            Kind::Sealed(Mode::Signed),
        ],
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < v.len() {
        let num = |i: usize| -> u64 {
            v.get(i + 1)
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| {
                    eprintln!("{} needs a number", v[i]);
                    std::process::exit(2)
                })
        };
        match v[i].as_str() {
            "--json" => a.json = true,
            "--secs" => {
                a.secs = num(i).clamp(1, 20);
                i += 1;
            }
            "--concurrency" => {
                a.concurrency = num(i).clamp(1, 256) as usize;
                i += 1;
            }
            "--headline-only" => a.headline_only = true,
            "--modes" => {
                let list = v.get(i + 1).cloned().unwrap_or_default();
                a.modes = list
                    .split(',')
                    .map(|m| match m {
                        "plain" => Kind::Plain,
                        "mac" => Kind::Sealed(Mode::Mac),
                        "signed" => Kind::Sealed(Mode::Signed),
                        _ => {
                            eprintln!("--modes takes a list of plain, mac, signed");
                            std::process::exit(2)
                        }
                    })
                    .collect();
                i += 1;
            }
            "--replays" => {
                a.replays = num(i).clamp(100, 10_000) as usize;
                i += 1;
            }
            other => {
                eprintln!(
                    "unknown argument {other}; use --json, --secs N, --concurrency N, --replays N, --modes LIST, --headline-only"
                );
                std::process::exit(2)
            }
        }
        i += 1;
    }
    a
}

/// The plain client: `rpcseal_nats::Client` with sealing and opening removed.
struct PlainClient {
    nats: async_nats::Client,
    subject: String,
    inbox: String,
    next: AtomicU64,
    pending: Arc<Mutex<HashMap<String, oneshot::Sender<Bytes>>>>,
}

impl PlainClient {
    async fn new(nats: async_nats::Client, subject: &str) -> PlainClient {
        let inbox = nats.new_inbox();
        let mut sub = nats.subscribe(format!("{inbox}.*")).await.unwrap();
        let pending: Arc<Mutex<HashMap<String, oneshot::Sender<Bytes>>>> = Arc::default();
        let table = pending.clone();
        tokio::spawn(async move {
            while let Some(m) = sub.next().await {
                if let Some(tx) = table.lock().unwrap().remove(m.subject.as_str()) {
                    let _ = tx.send(m.payload);
                }
            }
        });
        nats.flush().await.unwrap();
        PlainClient {
            nats,
            subject: subject.into(),
            inbox,
            next: AtomicU64::new(0),
            pending,
        }
    }

    async fn call(&self, payload: &[u8]) -> Result<Bytes, &'static str> {
        let reply_to = format!(
            "{}.{}",
            self.inbox,
            self.next.fetch_add(1, Ordering::Relaxed)
        );
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap().insert(reply_to.clone(), tx);
        self.nats
            .publish_with_reply(
                self.subject.clone(),
                reply_to.clone(),
                Bytes::copy_from_slice(payload),
            )
            .await
            .map_err(|_| "transport")?;
        let r = tokio::time::timeout(Duration::from_secs(5), rx).await;
        self.pending.lock().unwrap().remove(&reply_to);
        match r {
            Ok(Ok(b)) => Ok(b),
            _ => Err("timeout"),
        }
    }
}

async fn plain_service(nats: async_nats::Client, subject: String) {
    let mut sub = nats.queue_subscribe(subject, "svc".into()).await.unwrap();
    nats.flush().await.unwrap();
    while let Some(m) = sub.next().await {
        if let Some(r) = m.reply {
            let mut p = b"echo:".to_vec();
            p.extend_from_slice(&m.payload);
            let _ = nats.publish(r, Bytes::from(p)).await;
        }
    }
}

fn echo(o: &rpcseal::Opened) -> Result<Reply, rpcseal_nats::HandlerError> {
    let mut p = b"echo:".to_vec();
    p.extend_from_slice(&o.payload);
    Ok(p.into())
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Plain,
    Sealed(Mode),
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Plain => "plain",
            Kind::Sealed(Mode::Mac) => "mac",
            Kind::Sealed(_) => "signed",
        }
    }
}

struct RunResult {
    kind: Kind,
    payload: usize,
    replicas: usize,
    calls: u64,
    errors: u64,
    rps: f64,
    p50_us: u64,
    p99_us: u64,
    block_bytes_fraction: Option<f64>,
    cpu_us_per_call: Option<f64>,
}

/// This process's CPU time (user + system) in microseconds, from `/proc/self/stat`
/// (Linux; `None` elsewhere). CPU per call is the load-independent figure on a shared
/// machine: the client and the service replicas run in this process (nats-server does not).
fn cpu_us() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of proc(5), counted from the state (field 3) here.
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on every Linux this runs on.
    Some(ticks * 10_000)
}

fn pct(sorted: &[u32], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    u64::from(sorted[i])
}

async fn connect(url: &str) -> async_nats::Client {
    async_nats::connect(url).await.unwrap_or_else(|e| {
        eprintln!("cannot reach nats-server at {url}: {e}");
        std::process::exit(1)
    })
}

/// One run: services up, `concurrency` workers calling for 1 s of warm-up and `secs`
/// measured seconds.
async fn run(
    url: &str,
    kind: Kind,
    payload: usize,
    replicas: usize,
    a: &Args,
    tag: &str,
) -> RunResult {
    let subject = format!("rpcseal.loadtest.{}.{tag}", std::process::id());
    let (client_id, service_id) = (Identity::generate(), Identity::generate());
    let mut services = Vec::new();
    let mut tasks = Vec::new();
    let store: Arc<dyn ReplayStore> =
        Arc::new(MemoryReplayStore::new(MemoryReplayConfig::default()));
    for _ in 0..replicas {
        let nats = connect(url).await;
        match kind {
            Kind::Plain => tasks.push(tokio::spawn(plain_service(nats, subject.clone()))),
            Kind::Sealed(mode) => {
                let o = Opener::builder()
                    .identity(&service_id)
                    .trust(client_id.public())
                    .replay_store(store.clone())
                    .build()
                    .unwrap();
                let r = Responder::new(
                    &service_id,
                    SealerConfig::new(mode).inline(Inline::FirstMessage),
                    100,
                )
                .unwrap();
                let s = Arc::new(Service::new(nats, o, r));
                services.push(s.clone());
                let subj = subject.clone();
                tasks.push(tokio::spawn(async move {
                    let _ = s.serve(&subj, Some("svc"), echo).await;
                }));
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let nats = connect(url).await;
    let body = vec![0x5a; payload];
    enum C {
        Plain(Box<PlainClient>),
        Sealed(Box<Client>),
    }
    let client = Arc::new(match kind {
        Kind::Plain => C::Plain(Box::new(PlainClient::new(nats, &subject).await)),
        Kind::Sealed(mode) => {
            let s = Sealer::new(
                &client_id,
                &[Recipient::from(service_id.public().clone())],
                SealerConfig::new(mode).inline(Inline::FirstMessage),
            )
            .unwrap();
            let o = Opener::builder()
                .identity(&client_id)
                .trust(service_id.public())
                .build()
                .unwrap();
            C::Sealed(Box::new(
                Client::new(nats, &subject, service_id.public().clone(), s, o)
                    .await
                    .unwrap(),
            ))
        }
    });
    let warm_end = Instant::now() + Duration::from_secs(1);
    let end = warm_end + Duration::from_secs(a.secs);
    let calls = Arc::new(AtomicU64::new(0));
    let cpu_at_warm_end = Arc::new(Mutex::new(None));
    {
        let cpu = cpu_at_warm_end.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(warm_end.into()).await;
            *cpu.lock().unwrap() = cpu_us();
        });
    }
    let mut workers = Vec::new();
    for _ in 0..a.concurrency {
        let (client, body, calls) = (client.clone(), body.clone(), calls.clone());
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let meta = Metadata::new();
            loop {
                let t = Instant::now();
                if t >= end || calls.load(Ordering::Relaxed) >= MAX_CALLS_PER_RUN {
                    break;
                }
                let ok = match &*client {
                    C::Plain(c) => c
                        .call(&body)
                        .await
                        .map(|r| r.len() == body.len() + 5)
                        .unwrap_or(false),
                    C::Sealed(c) => c
                        .call("echo", &body, &meta)
                        .await
                        .map(|r| r.payload.len() == body.len() + 5)
                        .unwrap_or(false),
                };
                if t >= warm_end {
                    calls.fetch_add(1, Ordering::Relaxed);
                    if ok {
                        lat.push(t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                    } else {
                        errors += 1;
                    }
                }
            }
            (lat, errors)
        }));
    }
    let mut lat = Vec::new();
    let mut errors = 0;
    for w in workers {
        let (l, e) = w.await.unwrap();
        lat.extend(l);
        errors += e;
    }
    let measured = a.secs as f64;
    let cpu_used = cpu_us()
        .zip(*cpu_at_warm_end.lock().unwrap())
        .map(|(end, start)| end.saturating_sub(start));
    lat.sort_unstable();
    let block_bytes_fraction = match &*client {
        C::Plain(_) => None,
        C::Sealed(c) => {
            let s = c.stats();
            let total = s.bytes_sent + s.bytes_received;
            let blocks = s.block_bytes_sent + s.block_bytes_received;
            Some(blocks as f64 / total.max(1) as f64)
        }
    };
    for t in tasks {
        t.abort();
    }
    RunResult {
        kind,
        payload,
        replicas,
        calls: lat.len() as u64 + errors,
        errors,
        rps: lat.len() as f64 / measured,
        p50_us: pct(&lat, 0.50),
        p99_us: pct(&lat, 0.99),
        block_bytes_fraction,
        cpu_us_per_call: cpu_used.map(|c| c as f64 / lat.len().max(1) as f64),
    }
}

/// Captured requests re-published: returns (attempted, accepted).
async fn replays(url: &str, n: usize) -> (usize, usize) {
    let subject = format!("rpcseal.loadtest.{}.replay", std::process::id());
    let (client_id, service_id) = (Identity::generate(), Identity::generate());
    let o = Opener::builder()
        .identity(&service_id)
        .trust(client_id.public())
        .build()
        .unwrap();
    let r = Responder::new(
        &service_id,
        SealerConfig::new(Mode::Mac).inline(Inline::FirstMessage),
        10,
    )
    .unwrap();
    let svc = Arc::new(Service::new(connect(url).await, o, r));
    let s2 = svc.clone();
    let subj = subject.clone();
    let task = tokio::spawn(async move {
        let _ = s2.serve(&subj, Some("svc"), echo).await;
    });
    let nats = connect(url).await;
    let mut tap = nats.subscribe(subject.clone()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let s = Sealer::new(
        &client_id,
        &[Recipient::from(service_id.public().clone())],
        SealerConfig::new(Mode::Mac).inline(Inline::FirstMessage),
    )
    .unwrap();
    let oc = Opener::builder()
        .identity(&client_id)
        .trust(service_id.public())
        .build()
        .unwrap();
    let c = Client::new(nats.clone(), &subject, service_id.public().clone(), s, oc)
        .await
        .unwrap();
    for _ in 0..n {
        c.call("echo", b"to be captured", &Metadata::new())
            .await
            .unwrap();
    }
    let mut captured = Vec::new();
    while captured.len() < n {
        match tokio::time::timeout(Duration::from_secs(2), tap.next()).await {
            Ok(Some(m)) => captured.push(m.payload),
            _ => break,
        }
    }
    let handled_before = svc.stats().handled;
    let inbox = nats.new_inbox();
    let mut answers = nats.subscribe(inbox.clone()).await.unwrap();
    for env in &captured {
        nats.publish_with_reply(subject.clone(), inbox.clone(), env.clone())
            .await
            .unwrap();
    }
    let mut accepted = 0;
    for _ in 0..captured.len() {
        match tokio::time::timeout(Duration::from_secs(5), answers.next()).await {
            Ok(Some(m)) => {
                let h: Option<&HeaderMap> = m.headers.as_ref();
                let refused = h.is_some_and(|h| {
                    h.get(HEADER_ERROR).is_some() || h.get(HEADER_NEED_SESSION).is_some()
                });
                if !refused {
                    accepted += 1;
                }
            }
            _ => break,
        }
    }
    // A replay that slipped through would also show as a handled request.
    let handled_again = (svc.stats().handled - handled_before) as usize;
    task.abort();
    (captured.len(), accepted.max(handled_again))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a = args();
    let url = rpcseal_nats::nats_url();
    if !(url.contains("127.0.0.1") || url.contains("localhost") || url.contains("[::1]")) {
        eprintln!("the load test runs against a loopback nats-server only (NATS_URL={url})");
        std::process::exit(2);
    }
    let started = Instant::now();
    let mut results = Vec::new();
    let (replica_list, payload_list): (&[usize], &[usize]) = if a.headline_only {
        (&[1], &[256])
    } else {
        (&[1, 3], &[256, 16 * 1024])
    };
    for &replicas in replica_list {
        for &payload in payload_list {
            for &kind in &a.modes {
                let tag = format!("{}-{payload}-{replicas}", kind.name());
                let r = run(&url, kind, payload, replicas, &a, &tag).await;
                eprintln!(
                    "{:>6} {:>6} B  {} replica(s): {:>8.0} calls/s  p50 {:>5} us  p99 {:>6} us  cpu/call {:>5.1} us  errors {}{}",
                    kind.name(),
                    payload,
                    replicas,
                    r.rps,
                    r.p50_us,
                    r.p99_us,
                    r.cpu_us_per_call.unwrap_or(f64::NAN),
                    r.errors,
                    r.block_bytes_fraction.map(|f| format!("  blocks {:.4}% of bytes", f * 100.0)).unwrap_or_default()
                );
                results.push(r);
            }
        }
    }
    let (attempted, accepted) = replays(&url, a.replays).await;
    eprintln!("replays: {attempted} captured requests re-published, {accepted} accepted");
    let head = |k: &str| {
        results
            .iter()
            .find(|r| r.kind.name() == k && r.payload == 256 && r.replicas == 1)
    };
    let (p, m, s) = (head("plain"), head("mac"), head("signed"));
    let rps = |r: Option<&RunResult>| r.map(|r| r.rps.round());
    let p50 = |r: Option<&RunResult>| r.map(|r| r.p50_us);
    let p99 = |r: Option<&RunResult>| r.map(|r| r.p99_us);
    let ratio = p
        .zip(m)
        .map(|(p, m)| (m.rps / p.rps.max(1.0) * 1000.0).round() / 1000.0);
    let added = p
        .zip(m)
        .map(|(p, m)| ((m.p50_us as f64 / (p.p50_us.max(1) as f64) - 1.0) * 1000.0).round() / 10.0);
    let runs: Vec<serde_json::Value> = results
        .iter()
        .map(|r| {
            serde_json::json!({
                "mode": r.kind.name(),
                "payload_bytes": r.payload,
                "replicas": r.replicas,
                "calls": r.calls,
                "errors": r.errors,
                "rps": r.rps.round(),
                "p50_us": r.p50_us,
                "p99_us": r.p99_us,
                "block_bytes_fraction": r.block_bytes_fraction,
                "cpu_us_per_call": r.cpu_us_per_call.map(|c| (c * 10.0).round() / 10.0),
            })
        })
        .collect();
    let out = serde_json::json!({
        "plain_rps": rps(p),
        "mac_rps": rps(m),
        "signed_rps": rps(s),
        "plain_p50_us": p50(p),
        "mac_p50_us": p50(m),
        "plain_p99_us": p99(p),
        "mac_p99_us": p99(m),
        "block_bytes_fraction": m.and_then(|m| m.block_bytes_fraction),
        "replays_attempted": attempted,
        "replays_accepted": accepted,
        "mac_rps_ratio": ratio,
        "mac_p50_added_pct": added,
        "concurrency": a.concurrency,
        "secs_per_run": a.secs,
        "replay_store": "memory",
        "elapsed_secs": started.elapsed().as_secs(),
        "runs": runs,
    });
    if a.json {
        println!("{out}");
    } else {
        println!("{}", serde_json::to_string_pretty(&out).unwrap());
    }
}
