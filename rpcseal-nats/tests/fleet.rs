//! A fleet (spec/nats.md §3, §5): three replicas of a service, three OS processes, in one
//! NATS queue group, sharing replay state only through Redis. A captured request
//! re-published is refused by whichever replica gets it; a replica killed (SIGKILL)
//! mid-stream: no request is answered twice, every request gets a reply or a clear error.
#![cfg(feature = "redis")]

mod common;

use std::collections::HashMap;
use std::io::BufRead;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use rpcseal::rpc::{self, Responder};
use rpcseal::{Identity, Metadata, Mode, Opener, PublicIdentity};
use rpcseal_nats::{Client, Reply, Service, HEADER_BLOCK, HEADER_ERROR, HEADER_NEED_SESSION};

/// One replica: serves the subject in the queue group `fleet`, prints `READY` once
/// subscribed and `HANDLED <rpc.id>` for each request it handles.
#[tokio::test]
#[ignore = "a child process of another test"]
async fn fleet_replica_process() {
    let Ok(subject) = std::env::var("FLEET_SUBJECT") else {
        return;
    };
    let nats = common::nats().await.unwrap();
    let service = Identity::from_secret_string(&std::env::var("FLEET_SERVICE").unwrap()).unwrap();
    let client = PublicIdentity::parse(&std::env::var("FLEET_CLIENT").unwrap()).unwrap();
    let store = common::redis_store(
        &std::env::var("FLEET_REDIS").unwrap(),
        &std::env::var("FLEET_PREFIX").unwrap(),
    );
    let opener = Opener::builder()
        .identity(&service)
        .trust(&client)
        .replay_store(store)
        .build()
        .unwrap();
    let responder = Responder::new(&service, common::rpc_config(Mode::Mac), 100).unwrap();
    let svc = Service::new(nats.clone(), opener, responder);
    let ready = nats.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        ready.flush().await.unwrap();
        println!("READY");
    });
    svc.serve(&subject, Some("fleet"), |o| {
        println!(
            "HANDLED {}",
            o.metadata
                .get(rpc::MESSAGE_ID)
                .map(String::as_str)
                .unwrap_or("?")
        );
        std::thread::sleep(Duration::from_millis(5));
        Ok(Reply::from(o.payload.clone()))
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn three_replicas_share_replay_state_and_survive_a_sigkill() {
    let Some(nats) = common::nats().await else {
        return;
    };
    let Some(redis) = common::redis_url() else {
        return;
    };
    let subject = common::subject("fleet");
    let prefix = format!("rpcseal:test:{}", common::subject("fleet"));
    let (client, service) = (Identity::generate(), Identity::generate());
    let env = [
        ("FLEET_SUBJECT", subject.clone()),
        ("FLEET_SERVICE", service.to_secret_string().to_string()),
        ("FLEET_CLIENT", client.public().to_string()),
        ("FLEET_REDIS", redis.clone()),
        ("FLEET_PREFIX", prefix.clone()),
        ("NATS_URL", rpcseal_nats::nats_url()),
    ];
    // Lines of each replica, collected by a thread per replica.
    let handled: Arc<Mutex<Vec<(usize, String)>>> = Arc::default();
    let mut children = common::Children::default();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    for i in 0..3 {
        let mut child = common::spawn_self("fleet_replica_process", &env);
        let out = child.stdout.take().unwrap();
        let (handled, ready_tx) = (handled.clone(), ready_tx.clone());
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                // libtest may print "test NAME ... " before the first line.
                if line.ends_with("READY") {
                    let _ = ready_tx.send(i);
                } else if let Some((_, id)) = line.split_once("HANDLED ") {
                    handled.lock().unwrap().push((i, id.to_string()));
                }
            }
        });
        children.0.push(child);
    }
    for _ in 0..3 {
        ready_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("replica ready");
    }

    // A copy of every request as it travels (a plain subscriber beside the queue group).
    let mut tap = nats.subscribe(subject.clone()).await.unwrap();
    let (s, o) = common::client_side(&client, &service, Mode::Mac);
    let c = Arc::new(
        Client::new(nats.clone(), &subject, service.public().clone(), s, o)
            .await
            .unwrap()
            .with_timeout(Duration::from_secs(3)),
    );
    const N: usize = 90;
    let mut calls = Vec::new();
    for i in 0..N {
        let c = c.clone();
        calls.push(tokio::spawn(async move {
            let mut m = Metadata::new();
            m.insert(rpc::MESSAGE_ID.into(), format!("req-{i}"));
            (
                i,
                c.call("echo", format!("payload {i}").as_bytes(), &m).await,
            )
        }));
        if i == N / 3 {
            // Mid-stream: SIGKILL one replica.
            children.0[0].kill().unwrap();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut ok = 0;
    let mut errors: HashMap<String, usize> = HashMap::new();
    for call in calls {
        let (i, r) = tokio::time::timeout(Duration::from_secs(10), call)
            .await
            .expect("every call ends by its deadline")
            .unwrap();
        match r {
            Ok(o) => {
                assert_eq!(o.payload, format!("payload {i}").as_bytes());
                ok += 1;
            }
            Err(e) => *errors.entry(e.kind().to_string()).or_default() += 1,
        }
    }
    assert_eq!(ok + errors.values().sum::<usize>(), N);
    assert!(ok >= N / 2, "{ok} replies, errors {errors:?}");
    // Errors are only those a dead replica explains: a timeout (the request was with it).
    assert!(errors.keys().all(|k| k == "timeout"), "{errors:?}");
    {
        let h = handled.lock().unwrap();
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (_, id) in h.iter() {
            *seen.entry(id).or_default() += 1;
        }
        assert!(
            seen.values().all(|&n| n == 1),
            "a request handled twice: {seen:?}"
        );
        assert!(h.len() >= ok);
        let replicas: std::collections::HashSet<usize> = h.iter().map(|(r, _)| *r).collect();
        assert!(
            replicas.len() >= 2,
            "the queue group spread the load: {replicas:?}"
        );
    }

    // Replays: every captured request published again, with a reply subject we watch.
    let inbox = common::subject("replays");
    let mut signals = nats.subscribe(inbox.clone()).await.unwrap();
    // Only requests some replica handled: one a killed replica never got to is not a
    // replay when it first reaches a live one.
    let handled_ids: std::collections::HashSet<String> = handled
        .lock()
        .unwrap()
        .iter()
        .map(|(_, id)| id.clone())
        .collect();
    let mut captured = Vec::new();
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(200), tap.next()).await {
        let id = rpcseal::inspect(&m.payload)
            .ok()
            .and_then(|i| i.metadata.get(rpc::MESSAGE_ID).cloned());
        if m.headers
            .as_ref()
            .and_then(|h| h.get(HEADER_BLOCK))
            .is_none()
            && id.is_some_and(|id| handled_ids.contains(&id))
        {
            captured.push(m.payload);
        }
    }
    assert!(captured.len() >= N / 2);
    let before = handled.lock().unwrap().len();
    for env in &captured {
        nats.publish_with_reply(subject.clone(), inbox.clone(), Bytes::clone(env))
            .await
            .unwrap();
    }
    let mut kinds: HashMap<String, usize> = HashMap::new();
    for _ in 0..captured.len() {
        let m = tokio::time::timeout(Duration::from_secs(5), signals.next())
            .await
            .expect("every replay answered")
            .unwrap();
        let h = m.headers.as_ref();
        let k = match (
            h.and_then(|h| h.get(HEADER_ERROR)),
            h.and_then(|h| h.get(HEADER_NEED_SESSION)),
        ) {
            (Some(e), _) => e.as_str().to_string(),
            (None, Some(_)) => "need_session".into(),
            (None, None) => "ACCEPTED".into(),
        };
        *kinds.entry(k).or_default() += 1;
    }
    // Each replay refused by whichever replica got it: replayed, or, for a request whose
    // session that replica never saw, asked for the block (need-session), never handled.
    assert!(!kinds.contains_key("ACCEPTED"), "{kinds:?}");
    assert!(kinds.get("replayed").copied().unwrap_or(0) > 0, "{kinds:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        handled.lock().unwrap().len(),
        before,
        "no replay was handled"
    );
}
