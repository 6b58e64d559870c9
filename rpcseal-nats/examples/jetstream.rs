//! Sealed messages at rest in a JetStream stream: the server stores ciphertext it cannot
//! read; a durable consumer opens, handles, marks, acknowledges, in that order. A handler
//! that fails gets the message again, and it is processed, not refused as a replay.
//!
//! ```text
//! nats-server -js -a 127.0.0.1 -p 4222 -sd /tmp/nats-js &
//! cargo run -p rpcseal-nats --example jetstream
//! ```

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use rpcseal::{Identity, Inline, Metadata, Mode, Opener, Policy, Recipient, Sealer, SealerConfig};
use rpcseal_nats::{HandlerError, StreamConsumer, StreamPublisher};

#[tokio::main]
async fn main() -> Result<(), async_nats::Error> {
    let nats = async_nats::connect(rpcseal_nats::nats_url()).await?;
    let js = jetstream::new(nats.clone());
    let retention = Duration::from_secs(24 * 3600);
    let name = format!("ORDERS_{}", std::process::id());
    let subject = format!("orders.{}", std::process::id());
    let s = js
        .get_or_create_stream(stream::Config {
            name: name.clone(),
            subjects: vec![subject.clone()],
            max_age: retention,
            ..Default::default()
        })
        .await?;
    let c = s
        .get_or_create_consumer(
            "billing",
            consumer::pull::Config {
                durable_name: Some("billing".into()),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_secs(2),
                ..Default::default()
            },
        )
        .await?;

    let (shop, billing) = (Identity::generate(), Identity::generate());
    let p = StreamPublisher::new(
        js.clone(),
        &subject,
        Sealer::new(
            &shop,
            &[Recipient::from(billing.public().clone())],
            SealerConfig::new(Mode::Signed).inline(Inline::Always),
        )?,
    );
    for order in ["order 1: 2 books", "order 2: 1 lamp", "order 3: 5 pens"] {
        let seq = p.publish(order.as_bytes(), &Metadata::new()).await?;
        println!("shop:    stored {order:?} as stream message {seq}");
    }
    let raw = s.get_raw_message(1).await?;
    println!(
        "server:  stores {} bytes for message 1; the text {:?} is not among them: {}",
        raw.payload.len(),
        "order 1",
        !raw.payload.windows(7).any(|w| w == b"order 1")
    );

    // The consumer accepts messages as old as the stream keeps them (spec/replay.md §2.2).
    let opener = Opener::builder()
        .identity(&billing)
        .trust(shop.public())
        .policy(Policy::default().max_stored_age(retention))
        .build()?;
    let consumer = StreamConsumer::new(c, opener);
    let mut failed_once = false;
    for round in 1..=4 {
        let outcomes = consumer
            .process(10, Duration::from_secs(3), |o| {
                let text = String::from_utf8_lossy(&o.payload).to_string();
                if text.starts_with("order 2") && !failed_once {
                    failed_once = true;
                    println!("billing: handler FAILED on {text:?} (the database is down)");
                    return Err(HandlerError("database down".into()));
                }
                println!("billing: handled {text:?}");
                Ok(())
            })
            .await?;
        println!("billing: round {round}: {outcomes:?}");
        if outcomes.is_empty() {
            break;
        }
    }
    js.delete_stream(&name).await?;
    Ok(())
}
