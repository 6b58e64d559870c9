//! A tonic-build generated service and client (rpcseal-tonic/codegen-test: the code
//! `tonic_prost_build::configure().codec_path("rpcseal_tonic::SealedCodec")` makes) on
//! 127.0.0.1 (a free port): one sealed unary call and one sealed bidirectional stream. The
//! only rpcseal lines are the keys, `codecs.service(..)` around the generated server and
//! `codecs.channel(..)` under the generated client.
//!
//!     cargo run -p rpcseal-tonic --example generated

use std::pin::Pin;

use rpcseal::{Identity, Inline, Mode, Opener, SealerConfig};
use rpcseal_tonic::{ClientCodecs, ServerCodecs};
use rpcseal_tonic_codegen_test::inventory_client::InventoryClient;
use rpcseal_tonic_codegen_test::inventory_server::{Inventory, InventoryServer};
use rpcseal_tonic_codegen_test::{GetRequest, Stock, CHAT};
use tokio_stream::{Stream, StreamExt};
use tonic::transport::{Channel, Server};
use tonic::{Request, Response, Status, Streaming};

/// The handlers, as for any generated tonic service.
struct Shop;

#[tonic::async_trait]
impl Inventory for Shop {
    async fn get(&self, req: Request<GetRequest>) -> Result<Response<Stock>, Status> {
        // Who sent it: the verified sender of the sealed request.
        let caller = rpcseal_tonic::caller_of(&req).map(|c| c.sender_name.to_string());
        Ok(Response::new(Stock {
            sku: req.get_ref().sku,
            count: req.get_ref().sku / 6,
            caller: caller.unwrap_or_default(),
            session: Vec::new(),
        }))
    }

    type ChatStream = Pin<Box<dyn Stream<Item = Result<Stock, Status>> + Send>>;

    async fn chat(
        &self,
        req: Request<Streaming<GetRequest>>,
    ) -> Result<Response<Self::ChatStream>, Status> {
        let out = req.into_inner().map(|m| {
            m.map(|m| Stock {
                sku: m.sku,
                count: m.sku * 2,
                ..Stock::default()
            })
        });
        Ok(Response::new(Box::pin(out) as Self::ChatStream))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let service = Identity::generate();
    let client = Identity::generate();
    let config = SealerConfig::new(Mode::Mac).inline(Inline::FirstMessage);

    // Service: its keys, and the generated server served through them.
    let (id, trusted) = (service.clone(), client.public().clone());
    let codecs = ServerCodecs::new(&service, config.clone(), 1000, move || {
        Opener::builder().identity(&id).trust(&trusted)
    })?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let server = tokio::spawn(
        Server::builder()
            .add_service(codecs.service(InventoryServer::new(Shop)).streaming(CHAT))
            .serve_with_incoming(incoming),
    );

    // Client: its keys, and the generated client on a channel through them.
    let (id, svc) = (client.clone(), service.public().clone());
    let calls = ClientCodecs::new(&client, service.public(), config, move || {
        Opener::builder().identity(&id).trust(&svc)
    })?;
    let channel = Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let mut inventory = InventoryClient::new(calls.channel(channel).streaming(CHAT));

    let stock = inventory.get(GetRequest { sku: 42 }).await?.into_inner();
    println!("count {} for {}", stock.count, stock.caller);
    let requests = tokio_stream::iter((1..=3).map(|sku| GetRequest { sku }));
    let mut replies = inventory.chat(requests).await?.into_inner();
    while let Some(stock) = replies.next().await {
        let stock = stock?;
        println!("stream: sku {} count {}", stock.sku, stock.count);
    }
    server.abort();
    Ok(())
}
