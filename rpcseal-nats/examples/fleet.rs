//! A fleet: three replicas of a service, three OS processes, in one NATS queue group,
//! sharing replay state only through Redis. A captured request re-published is refused by
//! whichever replica receives it; one replica is killed (SIGKILL) mid-stream, and every
//! call still ends, with a reply or a clear error.
//!
//! ```text
//! nats-server -js -a 127.0.0.1 -p 4222 &
//! redis-server --port 6379 --save '' &
//! REDIS_URL=redis://127.0.0.1:6379/ cargo run -p rpcseal-nats --features redis --example fleet
//! ```

use std::collections::HashMap;
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use rpcseal::replay::{RedisReplayConfig, RedisReplayStore};
use rpcseal::rpc::{self, Responder};
use rpcseal::{
    Identity, Inline, Metadata, Mode, Opener, PublicIdentity, Recipient, Sealer, SealerConfig,
};
use rpcseal_nats::{Client, Reply, Service, HEADER_BLOCK, HEADER_ERROR};

fn config() -> SealerConfig {
    SealerConfig::new(Mode::Mac).inline(Inline::FirstMessage)
}

async fn replica(n: String) -> Result<(), async_nats::Error> {
    let service = Identity::from_secret_string(&std::env::var("FLEET_SERVICE")?)?;
    let client = PublicIdentity::parse(&std::env::var("FLEET_CLIENT")?)?;
    let mut rc = RedisReplayConfig::new(std::env::var("REDIS_URL")?);
    rc.key_prefix = std::env::var("FLEET_PREFIX")?;
    rc.create_marker_if_absent = true;
    let store = Arc::new(RedisReplayStore::connect(rc)?);
    let opener = Opener::builder()
        .identity(&service)
        .trust(&client)
        .replay_store(store)
        .build()?;
    let svc = Service::new(
        async_nats::connect(rpcseal_nats::nats_url()).await?,
        opener,
        Responder::new(&service, config(), 100)?,
    );
    println!("replica {n}: up (pid {})", std::process::id());
    svc.serve("fleet.echo", Some("fleet"), |o| {
        println!(
            "replica {n}: handled {}",
            o.metadata
                .get(rpc::MESSAGE_ID)
                .map(String::as_str)
                .unwrap_or("?")
        );
        std::thread::sleep(Duration::from_millis(20));
        Ok(Reply::from(o.payload.clone()))
    })
    .await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), async_nats::Error> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--replica") {
        return replica(args.get(2).cloned().unwrap_or_default()).await;
    }
    let redis =
        std::env::var("REDIS_URL").map_err(|_| "set REDIS_URL, e.g. redis://127.0.0.1:6379/")?;
    let (client, service) = (Identity::generate(), Identity::generate());
    let mut children = Vec::new();
    for n in 0..3 {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["--replica", &n.to_string()])
            .env("FLEET_SERVICE", service.to_secret_string().as_str())
            .env("FLEET_CLIENT", client.public().to_string())
            .env(
                "FLEET_PREFIX",
                format!("rpcseal:fleet-example:{}", std::process::id()),
            )
            .env("REDIS_URL", &redis)
            .stdout(Stdio::piped())
            .spawn()?;
        let out = child.stdout.take().expect("piped");
        std::thread::spawn(move || {
            for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                println!("  {l}");
            }
        });
        children.push(child);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    let nats = async_nats::connect(rpcseal_nats::nats_url()).await?;
    let mut tap = nats.subscribe("fleet.echo").await?;
    let c = Arc::new(
        Client::new(
            nats.clone(),
            "fleet.echo",
            service.public().clone(),
            Sealer::new(
                &client,
                &[Recipient::from(service.public().clone())],
                config(),
            )?,
            Opener::builder()
                .identity(&client)
                .trust(service.public())
                .build()?,
        )
        .await?
        .with_timeout(Duration::from_secs(2)),
    );
    let mut calls = Vec::new();
    for i in 0..30 {
        if i == 10 {
            println!("client: SIGKILL replica 0 (pid {})", children[0].id());
            children[0].kill()?;
        }
        let c = c.clone();
        calls.push(tokio::spawn(async move {
            let mut m = Metadata::new();
            m.insert(rpc::MESSAGE_ID.into(), format!("req-{i}"));
            (i, c.call("echo", format!("{i}").as_bytes(), &m).await)
        }));
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let mut tally: HashMap<String, usize> = HashMap::new();
    for call in calls {
        let (i, r) = call.await?;
        match r {
            Ok(_) => *tally.entry("reply".into()).or_default() += 1,
            Err(e) => {
                println!("client: req-{i} failed: {e}");
                *tally.entry(e.kind().to_string()).or_default() += 1;
            }
        }
    }
    println!("client: 30 calls: {tally:?}");

    // Replays: the captured requests again, answers to an inbox we watch.
    let inbox = nats.new_inbox();
    let mut answers = nats.subscribe(inbox.clone()).await?;
    let mut replayed = 0;
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(200), tap.next()).await {
        if m.headers
            .as_ref()
            .and_then(|h| h.get(HEADER_BLOCK))
            .is_none()
            && replayed < 10
        {
            nats.publish_with_reply("fleet.echo", inbox.clone(), Bytes::clone(&m.payload))
                .await?;
            replayed += 1;
        }
    }
    for _ in 0..replayed {
        if let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(2), answers.next()).await {
            let h = m.headers.as_ref();
            let what = h
                .and_then(|h| h.get(HEADER_ERROR))
                .map(|v| v.as_str().to_string());
            println!(
                "attacker: replayed request -> {}",
                what.unwrap_or_else(|| {
                    "ANSWERED (possible only for a request the killed replica never handled)".into()
                })
            );
        }
    }
    for mut ch in children {
        let _ = ch.kill();
        let _ = ch.wait();
    }
    Ok(())
}
