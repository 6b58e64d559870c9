//! What the NATS tests share: the server from `NATS_URL` (started by `.ci/run`), the
//! rule that under `CI=true` an unreachable server fails the test, and key material.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rpcseal::rpc::Responder;
use rpcseal::{Identity, Inline, Mode, Opener, Recipient, Sealer, SealerConfig};

/// Connects to `NATS_URL`. Unreachable: a failure under `CI=true`, else `None` (the test
/// says it skipped).
pub async fn nats() -> Option<async_nats::Client> {
    let url = rpcseal_nats::nats_url();
    let r = tokio::time::timeout(
        Duration::from_secs(3),
        async_nats::ConnectOptions::new()
            .max_reconnects(Some(3))
            .connect(url.clone()),
    )
    .await;
    match r {
        Ok(Ok(c)) => Some(c),
        other => {
            let why = match other {
                Ok(Err(e)) => e.to_string(),
                _ => "connect timed out".into(),
            };
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("nats-server at {url} unreachable under CI=true: {why}");
            }
            eprintln!("SKIPPED: nats-server at {url} unreachable ({why}); set NATS_URL");
            None
        }
    }
}

/// A subject no other test (or run) uses.
pub fn subject(name: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "rpcseal.test.{name}.{}.{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn rpc_config(mode: Mode) -> SealerConfig {
    SealerConfig::new(mode).inline(Inline::FirstMessage)
}

/// A client's sealer to `service` and opener of its replies.
pub fn client_side(client: &Identity, service: &Identity, mode: Mode) -> (Sealer, Opener) {
    let sealer = Sealer::new(
        client,
        &[Recipient::from(service.public().clone())],
        rpc_config(mode),
    )
    .unwrap();
    let opener = Opener::builder()
        .identity(client)
        .trust(service.public())
        .build()
        .unwrap();
    (sealer, opener)
}

/// A service's opener of requests from `clients` and its responder.
pub fn service_side(service: &Identity, clients: &[&Identity], mode: Mode) -> (Opener, Responder) {
    let mut b = Opener::builder().identity(service);
    for c in clients {
        b = b.trust(c.public());
    }
    (
        b.build().unwrap(),
        Responder::new(service, rpc_config(mode), 100).unwrap(),
    )
}

/// A JetStream stream on `subject` (file storage, one hour retention) and a durable pull
/// consumer with explicit acknowledgement and a short `ack_wait`.
pub async fn stream_and_consumer(
    nats: &async_nats::Client,
    subject: &str,
    durables: &[&str],
) -> Vec<async_nats::jetstream::consumer::PullConsumer> {
    use async_nats::jetstream::{self, consumer, stream};
    let js = jetstream::new(nats.clone());
    let name = subject.replace('.', "_").to_uppercase();
    let s = js
        .get_or_create_stream(stream::Config {
            name,
            subjects: vec![subject.to_string()],
            max_age: Duration::from_secs(3600),
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut out = Vec::new();
    for d in durables {
        out.push(
            s.get_or_create_consumer(
                d,
                consumer::pull::Config {
                    durable_name: Some(d.to_string()),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: Duration::from_secs(1),
                    max_deliver: 10,
                    ..Default::default()
                },
            )
            .await
            .unwrap(),
        );
    }
    out
}

/// `REDIS_URL` (or the CI's `RPCSEAL_TEST_REDIS_URL`). Missing under `CI=true`: a failure.
pub fn redis_url() -> Option<String> {
    let url = std::env::var("REDIS_URL")
        .or_else(|_| std::env::var("RPCSEAL_TEST_REDIS_URL"))
        .ok();
    if url.is_none() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("REDIS_URL is not set under CI=true");
        }
        eprintln!("SKIPPED: REDIS_URL is not set");
    }
    url
}

/// A shared replay store under a key prefix of its own.
#[cfg(feature = "redis")]
pub fn redis_store(url: &str, prefix: &str) -> std::sync::Arc<dyn rpcseal::replay::ReplayStore> {
    let mut c = rpcseal::replay::RedisReplayConfig::new(url);
    c.key_prefix = prefix.to_string();
    c.create_marker_if_absent = true;
    std::sync::Arc::new(rpcseal::replay::RedisReplayStore::connect(c).expect("redis reachable"))
}

/// Runs this test binary again as a child process, running only the ignored test `name`,
/// with `env`. Its stdout is piped.
pub fn spawn_self(name: &str, env: &[(&str, String)]) -> std::process::Child {
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--ignored",
        "--exact",
        name,
        "--nocapture",
        "--test-threads=1",
    ])
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

/// Child processes, killed (SIGKILL) and reaped when the test ends, also when it fails.
#[derive(Default)]
pub struct Children(pub Vec<std::process::Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
