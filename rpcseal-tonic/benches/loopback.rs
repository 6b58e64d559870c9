//! Requests per second and median latency of a small unary call over tonic on 127.0.0.1,
//! plain (prost) and sealed (MAC and signed mode), with the ratios to plain. Bounded: each
//! case runs for a fixed time (default 3 s after 0.5 s of warm-up) and stops by itself.
//! Not part of `.ci/run`.
//!
//!     cargo bench -p rpcseal-tonic --bench loopback [-- SECONDS [CONCURRENCY [ROUNDS]]]

use std::convert::Infallible;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Buf;
use rpcseal::{Identity, Inline, Mode, Opener, SealerConfig};
use rpcseal_tonic::{ClientCodecs, Incoming, ServerCodecs};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::BoxFuture;
use tonic::transport::{Channel, Server};
use tonic::{Request, Response, Status};

#[path = "../../rpcseal-tower/benches/common/driver.rs"]
mod driver;
use driver::cpu_us;

const ORDER: &str = "/bench.Shop/Order";

#[derive(Clone, PartialEq, prost::Message)]
struct Order {
    #[prost(uint32, tag = "1")]
    sku: u32,
    #[prost(string, tag = "2")]
    name: String,
    #[prost(uint32, tag = "3")]
    qty: u32,
    #[prost(string, repeated, tag = "4")]
    tags: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Stock {
    #[prost(uint32, tag = "1")]
    sku: u32,
    #[prost(uint32, tag = "2")]
    count: u32,
    #[prost(string, tag = "3")]
    warehouse: String,
}

fn stock(o: &Order) -> Stock {
    Stock {
        sku: o.sku,
        count: o.qty * 7,
        warehouse: "north-2".into(),
    }
}

fn order() -> Order {
    Order {
        sku: 42,
        name: "widget, blue".into(),
        qty: 3,
        tags: vec!["fragile".into(), "express".into()],
    }
}

/// The plain prost codec (what tonic-prost does), for the baseline.
struct Plain<E, D>(PhantomData<fn(E) -> D>);
impl<E, D> Default for Plain<E, D> {
    fn default() -> Self {
        Plain(PhantomData)
    }
}
impl<E: prost::Message + Send + 'static, D: prost::Message + Default + Send + 'static> Codec
    for Plain<E, D>
{
    type Encode = E;
    type Decode = D;
    type Encoder = Plain<E, D>;
    type Decoder = Plain<E, D>;
    fn encoder(&mut self) -> Self::Encoder {
        Plain::default()
    }
    fn decoder(&mut self) -> Self::Decoder {
        Plain::default()
    }
}
impl<E: prost::Message, D> Encoder for Plain<E, D> {
    type Item = E;
    type Error = Status;
    fn encode(&mut self, item: E, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(e.to_string()))
    }
}
impl<E, D: prost::Message + Default> Decoder for Plain<E, D> {
    type Item = D;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<D>, Status> {
        let b = src.copy_to_bytes(src.remaining());
        D::decode(b)
            .map(Some)
            .map_err(|e| Status::internal(e.to_string()))
    }
}

struct SealedHandler;
impl tonic::server::UnaryService<Incoming<Order>> for SealedHandler {
    type Response = Stock;
    type Future = BoxFuture<Response<Stock>, Status>;
    fn call(&mut self, req: Request<Incoming<Order>>) -> Self::Future {
        let s = stock(&req.into_inner().message);
        Box::pin(async move { Ok(Response::new(s)) })
    }
}

struct PlainHandler;
impl tonic::server::UnaryService<Order> for PlainHandler {
    type Response = Stock;
    type Future = BoxFuture<Response<Stock>, Status>;
    fn call(&mut self, req: Request<Order>) -> Self::Future {
        let s = stock(&req.into_inner());
        Box::pin(async move { Ok(Response::new(s)) })
    }
}

#[derive(Clone)]
struct Shop(Option<ServerCodecs>);

impl tonic::server::NamedService for Shop {
    const NAME: &'static str = "bench.Shop";
}

impl<B> tonic::codegen::Service<http::Request<B>> for Shop
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
        match &self.0 {
            Some(codecs) => {
                let codec = codecs.unary_codec::<Stock, Order, _>(&req);
                Box::pin(async move {
                    Ok(tonic::server::Grpc::new(codec)
                        .unary(SealedHandler, req)
                        .await)
                })
            }
            None => Box::pin(async move {
                Ok(tonic::server::Grpc::new(Plain::<Stock, Order>::default())
                    .unary(PlainHandler, req)
                    .await)
            }),
        }
    }
}

async fn one_call(grpc: &mut tonic::client::Grpc<Channel>, codecs: &Option<ClientCodecs>) {
    let s: Stock = match codecs {
        Some(c) => c.unary(grpc, order(), ORDER).await.unwrap().into_inner(),
        None => {
            grpc.ready().await.unwrap();
            grpc.unary(
                Request::new(order()),
                http::uri::PathAndQuery::from_static(ORDER),
                Plain::<Order, Stock>::default(),
            )
            .await
            .unwrap()
            .into_inner()
        }
    };
    assert_eq!(s.count, 21);
}

async fn case(mode: Option<Mode>, secs: f64, conc: usize) -> (f64, Duration, f64) {
    let (svc, cli) = (Identity::generate(), Identity::generate());
    let (server_codecs, client_codecs) = match mode {
        None => (None, None),
        Some(mode) => {
            let config = SealerConfig::new(mode).inline(Inline::FirstMessage);
            let (id, c) = (svc.clone(), cli.public().clone());
            let s = ServerCodecs::new(&svc, config.clone(), 100, move || {
                Opener::builder().identity(&id).trust(&c)
            })
            .unwrap();
            let (id, s2) = (cli.clone(), svc.public().clone());
            let c = ClientCodecs::new(&cli, svc.public(), config, move || {
                Opener::builder().identity(&id).trust(&s2)
            })
            .unwrap();
            (Some(s), Some(c))
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // TCP_NODELAY on the server's side as on the channel's (tonic's `Endpoint` sets it by
    // default; `serve_with_incoming` leaves accepted sockets as they are). Without it a
    // reply whose frames are written in two pieces (a signed reply: the HEADERS frame goes
    // out while the message is still being signed) waits for the client's delayed ACK,
    // ~40 ms on Linux: signed calls then ran at ~1000/s with the CPU mostly idle.
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let server = tokio::spawn(
        Server::builder()
            .add_service(Shop(server_codecs))
            .serve_with_incoming(incoming),
    );
    // One channel (one HTTP/2 connection) shared by every caller, as a service would.
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    let warm = Instant::now() + Duration::from_millis(500);
    let mut warm_calls = 0u64;
    while Instant::now() < warm {
        one_call(&mut grpc, &client_codecs).await;
        warm_calls += 1;
    }
    let lat = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let cpu_start = cpu_us();
    let end = start + Duration::from_secs_f64(secs);
    let tasks: Vec<_> = (0..conc)
        .map(|_| {
            let (mut grpc, codecs, lat) = (grpc.clone(), client_codecs.clone(), lat.clone());
            tokio::spawn(async move {
                let mut mine = Vec::new();
                while Instant::now() < end {
                    let t = Instant::now();
                    one_call(&mut grpc, &codecs).await;
                    mine.push(t.elapsed());
                }
                lat.lock().unwrap().extend(mine);
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    if std::env::var_os("LOOPBACK_CASE").is_some() {
        // For an instruction-count profile: every call this process made.
        eprintln!(
            "calls: {} measured, {warm_calls} warm-up",
            lat.lock().unwrap().len()
        );
    }
    let cpu = cpu_us()
        .zip(cpu_start)
        .map_or(f64::NAN, |(e, s)| e.saturating_sub(s) as f64);
    server.abort();
    let mut lat = lat.lock().unwrap().clone();
    lat.sort();
    (
        lat.len() as f64 / elapsed,
        lat[lat.len() / 2],
        cpu / lat.len() as f64,
    )
}

fn main() {
    driver::run("tonic over 127.0.0.1 (one channel)", case);
}
