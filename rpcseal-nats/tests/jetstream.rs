//! Sealed envelopes at rest in JetStream (spec/nats.md §7): at-least-once redelivery is
//! processed, not rejected as a replay; nothing is marked before its handler succeeded;
//! stored messages older than the clock skew open under a maximum stored age.

mod common;

use std::cell::Cell;
#[cfg(feature = "redis")]
use std::io::BufRead;
use std::time::Duration;

use async_nats::jetstream;
use rpcseal::{Identity, Inline, Metadata, Mode, Opener, Policy, Recipient, Sealer, SealerConfig};
use rpcseal_nats::{HandlerError, StreamConsumer, StreamOutcome, StreamPublisher};

fn publisher(
    nats: &async_nats::Client,
    subject: &str,
    from: &Identity,
    to: &Identity,
) -> StreamPublisher {
    StreamPublisher::new(
        jetstream::new(nats.clone()),
        subject,
        Sealer::new(
            from,
            &[Recipient::from(to.public().clone())],
            SealerConfig::new(Mode::Signed).inline(Inline::Always),
        )
        .unwrap(),
    )
}

fn stored_policy() -> Policy {
    Policy::default().max_stored_age(Duration::from_secs(3600))
}

#[tokio::test]
async fn a_failed_handler_gets_the_message_again_and_it_is_processed() {
    let Some(nats) = common::nats().await else {
        return;
    };
    let subject = common::subject("js-fail");
    let (alice, bob) = (Identity::generate(), Identity::generate());
    let consumer = common::stream_and_consumer(&nats, &subject, &["worker"])
        .await
        .remove(0);
    let p = publisher(&nats, &subject, &alice, &bob);
    for m in ["a", "fail-once", "c"] {
        p.publish(m.as_bytes(), &Metadata::new()).await.unwrap();
    }
    let opener = Opener::builder()
        .identity(&bob)
        .trust(alice.public())
        .policy(stored_policy())
        .build()
        .unwrap();
    let c = StreamConsumer::new(consumer, opener);
    let failed = Cell::new(false);
    let mut handled = Vec::new();
    let mut outcomes = Vec::new();
    for _ in 0..5 {
        outcomes.extend(
            c.process(10, Duration::from_millis(1500), |o| {
                if o.payload == b"fail-once" && !failed.replace(true) {
                    return Err(HandlerError("the database is down".into()));
                }
                handled.push(String::from_utf8(o.payload.clone()).unwrap());
                Ok(())
            })
            .await
            .unwrap(),
        );
        if handled.len() == 3 {
            break;
        }
    }
    handled.sort();
    assert_eq!(handled, ["a", "c", "fail-once"], "{outcomes:?}");
    let failed_n = outcomes
        .iter()
        .filter(|o| matches!(o, StreamOutcome::HandlerFailed { .. }))
        .count();
    let done = outcomes
        .iter()
        .filter(|o| matches!(o, StreamOutcome::Processed { .. }))
        .count();
    assert_eq!((failed_n, done), (1, 3), "{outcomes:?}");
    // Nothing more comes: every message was acknowledged.
    let rest = c
        .process(10, Duration::from_millis(1500), |_| Ok(()))
        .await
        .unwrap();
    assert!(rest.is_empty(), "{rest:?}");
}

#[tokio::test]
async fn stored_messages_older_than_the_skew_need_a_stored_age() {
    let Some(nats) = common::nats().await else {
        return;
    };
    let subject = common::subject("js-age");
    let (alice, bob) = (Identity::generate(), Identity::generate());
    let mut cs = common::stream_and_consumer(&nats, &subject, &["live", "archive"]).await;
    let p = publisher(&nats, &subject, &alice, &bob);
    p.publish(b"written earlier", &Metadata::new())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let skew = Duration::from_secs(1);
    let live = StreamConsumer::new(
        cs.remove(0),
        Opener::builder()
            .identity(&bob)
            .trust(alice.public())
            .policy(Policy::default().clock_skew(skew))
            .build()
            .unwrap(),
    );
    let archive = StreamConsumer::new(
        cs.remove(0),
        Opener::builder()
            .identity(&bob)
            .trust(alice.public())
            .policy(
                Policy::default()
                    .clock_skew(skew)
                    .max_stored_age(Duration::from_secs(3600)),
            )
            .build()
            .unwrap(),
    );
    let r = live
        .process(1, Duration::from_secs(2), |_| Ok(()))
        .await
        .unwrap();
    assert!(
        matches!(
            r[..],
            [StreamOutcome::Rejected {
                kind: "clock_skew",
                ..
            }]
        ),
        "{r:?}"
    );
    let r = archive
        .process(1, Duration::from_secs(2), |_| Ok(()))
        .await
        .unwrap();
    assert!(matches!(r[..], [StreamOutcome::Processed { .. }]), "{r:?}");
}

#[tokio::test]
async fn hostile_stored_messages_are_terminated_and_the_consumer_goes_on() {
    let Some(nats) = common::nats().await else {
        return;
    };
    let subject = common::subject("js-hostile");
    let (alice, bob, mallory) = (
        Identity::generate(),
        Identity::generate(),
        Identity::generate(),
    );
    let consumer = common::stream_and_consumer(&nats, &subject, &["w"])
        .await
        .remove(0);
    let js = jetstream::new(nats.clone());
    js.publish(subject.clone(), b"\x93garbage".as_slice().into())
        .await
        .unwrap()
        .await
        .unwrap();
    publisher(&nats, &subject, &mallory, &bob)
        .publish(b"untrusted", &Metadata::new())
        .await
        .unwrap();
    publisher(&nats, &subject, &alice, &bob)
        .publish(b"genuine", &Metadata::new())
        .await
        .unwrap();
    let c = StreamConsumer::new(
        consumer,
        Opener::builder()
            .identity(&bob)
            .trust(alice.public())
            .policy(stored_policy())
            .build()
            .unwrap(),
    );
    let mut handled = Vec::new();
    let r = c
        .process(3, Duration::from_secs(2), |o| {
            handled.push(o.payload.clone());
            Ok(())
        })
        .await
        .unwrap();
    assert!(
        matches!(
            r[0],
            StreamOutcome::Rejected {
                kind: "unsupported_version",
                ..
            }
        ),
        "{r:?}"
    );
    assert!(
        matches!(
            r[1],
            StreamOutcome::Rejected {
                kind: "untrusted_sender",
                ..
            }
        ),
        "{r:?}"
    );
    assert!(matches!(r[2], StreamOutcome::Processed { .. }), "{r:?}");
    assert_eq!(handled, [b"genuine".to_vec()]);
    // Terminated: not redelivered.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(c
        .process(3, Duration::from_millis(1500), |_| Ok(()))
        .await
        .unwrap()
        .is_empty());
}

/// What both SIGKILL children start from, read from the environment their parent test
/// sets: the durable consumer `durable` and Bob's opener on the shared Redis store. `None`
/// when run without a parent (the children are ignored tests).
#[cfg(feature = "redis")]
async fn child_consumer(durable: &str) -> Option<(jetstream::consumer::PullConsumer, Opener)> {
    let subject = std::env::var("CHILD_SUBJECT").ok()?;
    let nats = common::nats().await.unwrap();
    let bob = Identity::from_secret_string(&std::env::var("CHILD_BOB").unwrap()).unwrap();
    let alice = rpcseal::PublicIdentity::parse(&std::env::var("CHILD_ALICE").unwrap()).unwrap();
    let consumer = common::stream_and_consumer(&nats, &subject, &[durable])
        .await
        .remove(0);
    let store = common::redis_store(
        &std::env::var("CHILD_REDIS").unwrap(),
        &std::env::var("CHILD_PREFIX").unwrap(),
    );
    let opener = Opener::builder()
        .identity(&bob)
        .trust(&alice)
        .policy(stored_policy())
        .replay_store(store)
        .build()
        .unwrap();
    Some((consumer, opener))
}

/// The child of the SIGKILL test: opens one message, says so, and hangs in its handler
/// until it is killed. Run only by `a_consumer_killed_between_open_and_ack_...`.
#[cfg(feature = "redis")]
#[tokio::test]
#[ignore = "a child process of another test"]
async fn consumer_child_process() {
    let Some((consumer, opener)) = child_consumer("killed").await else {
        return;
    };
    let c = StreamConsumer::new(consumer, opener);
    let _ = c
        .process(1, Duration::from_secs(10), |o| {
            println!("OPENED {}", String::from_utf8_lossy(&o.payload));
            std::thread::sleep(Duration::from_secs(60));
            Ok(())
        })
        .await;
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn a_consumer_killed_between_open_and_ack_leaves_the_message_unmarked_and_redelivered() {
    let Some(nats) = common::nats().await else {
        return;
    };
    let Some(redis) = common::redis_url() else {
        return;
    };
    let subject = common::subject("js-kill");
    let prefix = format!("rpcseal:test:{}", common::subject("kill"));
    let (alice, bob) = (Identity::generate(), Identity::generate());
    let _ = common::stream_and_consumer(&nats, &subject, &["killed"]).await;
    publisher(&nats, &subject, &alice, &bob)
        .publish(b"transfer 10", &Metadata::new())
        .await
        .unwrap();
    let mut children = common::Children::default();
    children.0.push(common::spawn_self(
        "consumer_child_process",
        &[
            ("CHILD_SUBJECT", subject.clone()),
            ("CHILD_BOB", bob.to_secret_string().to_string()),
            ("CHILD_ALICE", alice.public().to_string()),
            ("CHILD_REDIS", redis.clone()),
            ("CHILD_PREFIX", prefix.clone()),
            ("NATS_URL", rpcseal_nats::nats_url()),
        ],
    ));
    let child = &mut children.0[0];
    let lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let opened = tokio::task::spawn_blocking(move || {
        lines
            .map_while(Result::ok)
            .find_map(|l| l.split_once("OPENED ").map(|(_, p)| p.to_string()))
    });
    let opened = tokio::time::timeout(Duration::from_secs(30), opened)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(opened.as_deref(), Some("transfer 10"));
    // SIGKILL in the handler: after open, before mark and ack.
    child.kill().unwrap();
    child.wait().unwrap();
    // The consumer restarts (same durable, same shared replay store): the message comes
    // again after ack_wait and is processed, not rejected as a replay.
    let consumer = common::stream_and_consumer(&nats, &subject, &["killed"])
        .await
        .remove(0);
    let store = common::redis_store(&redis, &prefix);
    let opener = Opener::builder()
        .identity(&bob)
        .trust(alice.public())
        .policy(stored_policy())
        .replay_store(store)
        .build()
        .unwrap();
    let c = StreamConsumer::new(consumer, opener);
    let mut handled = Vec::new();
    let mut outcomes = Vec::new();
    for _ in 0..5 {
        outcomes.extend(
            c.process(1, Duration::from_secs(2), |o| {
                handled.push(o.payload.clone());
                Ok(())
            })
            .await
            .unwrap(),
        );
        if !handled.is_empty() {
            break;
        }
    }
    assert_eq!(handled, [b"transfer 10".to_vec()], "{outcomes:?}");
    // Marked and acknowledged now: no further delivery.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(c
        .process(1, Duration::from_millis(1500), |_| Ok(()))
        .await
        .unwrap()
        .is_empty());
}

/// The child of the mark/ack SIGKILL test: fetches one message and takes it through the
/// steps of spec/replay.md §2.1 by hand up to the mark (open unmarked, handle, mark), says
/// so, and hangs before the acknowledgement until it is killed. Run only by
/// `a_consumer_killed_between_mark_and_ack_...`.
#[cfg(feature = "redis")]
#[tokio::test]
#[ignore = "a child process of another test"]
async fn marking_child_process() {
    use futures_util::StreamExt;
    let Some((consumer, opener)) = child_consumer("marked").await else {
        return;
    };
    let mut batch = consumer
        .fetch()
        .max_messages(1)
        .expires(Duration::from_secs(10))
        .messages()
        .await
        .unwrap();
    let msg = batch.next().await.unwrap().unwrap();
    let (opened, mark) = opener.open_unmarked(&msg.payload).unwrap();
    println!("HANDLED {}", String::from_utf8_lossy(&opened.payload));
    opener.mark(mark).unwrap();
    println!("MARKED");
    // Killed here: marked, never acknowledged.
    std::thread::sleep(Duration::from_secs(60));
    msg.double_ack().await.unwrap();
}

/// spec/replay.md §2.1: "a crash between step 3 and the acknowledgement leaves it marked
/// but unacknowledged; its redelivery is rejected as *replayed* in step 1, and the receiver
/// SHOULD acknowledge" it. The consumer is killed (SIGKILL, a child process) after the mark
/// and before the ack: the restarted consumer gets the message again, refuses it as
/// already processed without running its handler, acknowledges it, and it never comes back.
#[cfg(feature = "redis")]
#[tokio::test]
async fn a_consumer_killed_between_mark_and_ack_gets_the_redelivery_as_already_processed() {
    let Some(nats) = common::nats().await else {
        return;
    };
    let Some(redis) = common::redis_url() else {
        return;
    };
    let subject = common::subject("js-kill-marked");
    let prefix = format!("rpcseal:test:{}", common::subject("kill-marked"));
    let (alice, bob) = (Identity::generate(), Identity::generate());
    let _ = common::stream_and_consumer(&nats, &subject, &["marked"]).await;
    publisher(&nats, &subject, &alice, &bob)
        .publish(b"transfer 20", &Metadata::new())
        .await
        .unwrap();
    let mut children = common::Children::default();
    children.0.push(common::spawn_self(
        "marking_child_process",
        &[
            ("CHILD_SUBJECT", subject.clone()),
            ("CHILD_BOB", bob.to_secret_string().to_string()),
            ("CHILD_ALICE", alice.public().to_string()),
            ("CHILD_REDIS", redis.clone()),
            ("CHILD_PREFIX", prefix.clone()),
            ("NATS_URL", rpcseal_nats::nats_url()),
        ],
    ));
    let child = &mut children.0[0];
    let lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let seen = tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        for l in lines.map_while(Result::ok) {
            if let Some((_, p)) = l.split_once("HANDLED ") {
                seen.push(p.to_string());
            }
            if l.contains("MARKED") {
                seen.push("MARKED".to_string());
                break;
            }
        }
        seen
    });
    let seen = tokio::time::timeout(Duration::from_secs(30), seen)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen, ["transfer 20", "MARKED"]);
    // SIGKILL after the mark, before the ack.
    child.kill().unwrap();
    child.wait().unwrap();
    // The consumer restarts (same durable, same shared replay store): the message comes
    // again after ack_wait, is refused as already processed (the handler does not run),
    // and is acknowledged.
    let consumer = common::stream_and_consumer(&nats, &subject, &["marked"])
        .await
        .remove(0);
    let opener = Opener::builder()
        .identity(&bob)
        .trust(alice.public())
        .policy(stored_policy())
        .replay_store(common::redis_store(&redis, &prefix))
        .build()
        .unwrap();
    let c = StreamConsumer::new(consumer, opener);
    let handled = Cell::new(0);
    let mut outcomes = Vec::new();
    for _ in 0..5 {
        outcomes.extend(
            c.process(1, Duration::from_secs(2), |_| {
                handled.set(handled.get() + 1);
                Ok(())
            })
            .await
            .unwrap(),
        );
        if !outcomes.is_empty() {
            break;
        }
    }
    assert!(
        matches!(outcomes[..], [StreamOutcome::AlreadyProcessed { .. }]),
        "{outcomes:?}"
    );
    assert_eq!(handled.get(), 0);
    // Acknowledged now: no further delivery.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(c
        .process(1, Duration::from_millis(1500), |_| Ok(()))
        .await
        .unwrap()
        .is_empty());
}
