//! Request/reply through nats-server: a service and a client in one process, each on its
//! own connection; then what the client does with a reply that is not its own.
//!
//! ```text
//! nats-server -js -a 127.0.0.1 -p 4222 &
//! cargo run -p rpcseal-nats --example rpc
//! ```

use std::sync::Arc;
use std::time::Duration;

use rpcseal::rpc::Responder;
use rpcseal::{Identity, Inline, Metadata, Mode, Opener, Recipient, Sealer, SealerConfig};
use rpcseal_nats::{Client, Reply, Service};

#[tokio::main]
async fn main() -> Result<(), async_nats::Error> {
    let url = rpcseal_nats::nats_url();
    let (client, service) = (Identity::generate(), Identity::generate());
    let config = SealerConfig::new(Mode::Mac).inline(Inline::FirstMessage);
    println!("client  {}", client.key_id());
    println!("service {}", service.key_id());

    // The service: opens requests from the client, replies with one session per client.
    let incoming = Opener::builder()
        .identity(&service)
        .trust(client.public())
        .build()?;
    let svc = Arc::new(Service::new(
        async_nats::connect(&url).await?,
        incoming,
        Responder::new(&service, config.clone(), 1000)?,
    ));
    let s = svc.clone();
    tokio::spawn(async move {
        s.serve("inventory", None, |req| {
            println!(
                "service: {} from {} says {:?}",
                req.metadata
                    .get("rpc.method")
                    .map(String::as_str)
                    .unwrap_or("?"),
                req.sender_name,
                String::from_utf8_lossy(&req.payload)
            );
            Ok(Reply::from(b"{\"count\": 7}".to_vec()))
        })
        .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;

    // The client: seals to the service, accepts only the reply bound to each request.
    let sealer = Sealer::new(
        &client,
        &[Recipient::from(service.public().clone())],
        config,
    )?;
    let replies = Opener::builder()
        .identity(&client)
        .trust(service.public())
        .build()?;
    let c = Client::new(
        async_nats::connect(&url).await?,
        "inventory",
        service.public().clone(),
        sealer,
        replies,
    )
    .await?
    .with_timeout(Duration::from_secs(2));
    for sku in [42, 43, 44] {
        let r = c
            .call(
                "inventory.get",
                format!("{{\"sku\": {sku}}}").as_bytes(),
                &Metadata::new(),
            )
            .await?;
        println!(
            "client:  reply {:?} from {}",
            String::from_utf8_lossy(&r.payload),
            r.sender
        );
    }
    let st = c.stats();
    println!(
        "client:  {} requests, {} of {} bytes sent were session blocks (the first request's)",
        st.requests, st.block_bytes_sent, st.bytes_sent
    );

    // No one on a subject: an error, not a hang.
    let nobody = Client::new(
        async_nats::connect(&url).await?,
        "nobody.listens.here",
        service.public().clone(),
        Sealer::new(
            &client,
            &[Recipient::from(service.public().clone())],
            SealerConfig::new(Mode::Mac),
        )?,
        Opener::builder()
            .identity(&client)
            .trust(service.public())
            .build()?,
    )
    .await?;
    match nobody.call("x", b"", &Metadata::new()).await {
        Err(e) => println!("client:  call to an empty subject: {e}"),
        Ok(_) => println!("client:  unexpected reply"),
    }
    println!("service: {:?}", svc.stats());
    Ok(())
}
