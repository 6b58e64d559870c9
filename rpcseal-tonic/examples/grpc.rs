//! A tonic service and channel with the rpcseal codec, on 127.0.0.1 (a free port), one
//! sealed unary call between them. The service plumbing is written by hand, as tonic's
//! generated code would be, with `ServerCodecs` / `ClientCodecs` in place of the default
//! codec.
//!
//!     cargo run -p rpcseal-tonic --example grpc

use std::convert::Infallible;
use std::task::{Context, Poll};

use rpcseal::{Identity, Inline, Mode, Opener, SealerConfig};
use rpcseal_tonic::{ClientCodecs, Incoming, ServerCodecs};
use tonic::codegen::BoxFuture;
use tonic::transport::{Channel, Server};
use tonic::{Request, Response, Status};

const GET: &str = "/inventory.Inventory/Get";

#[derive(Clone, PartialEq, prost::Message)]
struct GetRequest {
    #[prost(uint32, tag = "1")]
    sku: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Stock {
    #[prost(uint32, tag = "1")]
    count: u32,
    #[prost(string, tag = "2")]
    caller: String,
}

/// The handler: gets the message and who sent it.
struct Get;

impl tonic::server::UnaryService<Incoming<GetRequest>> for Get {
    type Response = Stock;
    type Future = BoxFuture<Response<Stock>, Status>;
    fn call(&mut self, req: Request<Incoming<GetRequest>>) -> Self::Future {
        let Incoming {
            message, caller, ..
        } = req.into_inner();
        Box::pin(async move {
            Ok(Response::new(Stock {
                count: message.sku / 6,
                caller: caller.sender_name.to_string(),
            }))
        })
    }
}

#[derive(Clone)]
struct Inventory(ServerCodecs);

impl tonic::server::NamedService for Inventory {
    const NAME: &'static str = "inventory.Inventory";
}

impl<B> tonic::codegen::Service<http::Request<B>> for Inventory
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        match req.uri().path() {
            GET => {
                let codec = self.0.unary_codec::<Stock, GetRequest, _>(&req);
                Box::pin(async move { Ok(tonic::server::Grpc::new(codec).unary(Get, req).await) })
            }
            _ => Box::pin(async { Ok(Status::unimplemented("").into_http()) }),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let service = Identity::generate();
    let client = Identity::generate();
    let config = SealerConfig::new(Mode::Mac).inline(Inline::FirstMessage);

    let (id, trusted) = (service.clone(), client.public().clone());
    let codecs = ServerCodecs::new(&service, config.clone(), 1000, move || {
        Opener::builder().identity(&id).trust(&trusted)
    })?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    // TCP_NODELAY on accepted connections: a signed reply's frames may leave in two
    // writes, and without it the second waits for the client's delayed ACK (~40 ms).
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let server = tokio::spawn(
        Server::builder()
            .add_service(Inventory(codecs))
            .serve_with_incoming(incoming),
    );

    let (id, svc) = (client.clone(), service.public().clone());
    let calls = ClientCodecs::new(&client, service.public(), config, move || {
        Opener::builder().identity(&id).trust(&svc)
    })?;
    let channel = Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let mut grpc = tonic::client::Grpc::new(channel);
    let stock: Stock = calls
        .unary(&mut grpc, GetRequest { sku: 42 }, GET)
        .await?
        .into_inner();
    println!("count {} for {}", stock.count, stock.caller);
    server.abort();
    Ok(())
}
