//! A real tonic server and a real tonic channel over TCP on 127.0.0.1 (port 0), with the
//! rpcseal codecs on both sides (spec/grpc.md). Hostile traffic is sent by a plain tonic
//! client whose codec passes prepared envelopes through unchanged: the server under test
//! is the real one. Each test's runtime owns its servers, so they stop when the test ends.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Buf, BufMut};
use rpcseal::rpc;
use rpcseal::{Identity, Inline, Metadata, Mode, Opener, Recipient, Sealer, SealerConfig};
use rpcseal_tonic::{ClientCodecs, Incoming, ServerCodecs};
use tokio_stream::{Stream, StreamExt};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::{Channel, Server};
use tonic::{Code, Status};

const GET: &str = "/rpcseal.test.Inventory/Get";
const CHAT: &str = "/rpcseal.test.Inventory/Chat";

#[derive(Clone, PartialEq, prost::Message)]
struct GetRequest {
    #[prost(uint32, tag = "1")]
    sku: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Stock {
    #[prost(uint32, tag = "1")]
    sku: u32,
    #[prost(uint32, tag = "2")]
    count: u32,
    #[prost(string, tag = "3")]
    caller: String,
    #[prost(bytes = "vec", tag = "4")]
    session: Vec<u8>,
}

fn stock(inc: Incoming<GetRequest>) -> Stock {
    Stock {
        sku: inc.message.sku,
        count: inc.message.sku * 2,
        caller: inc.caller.sender_name.to_string(),
        session: inc.caller.session.session_id.to_vec(),
    }
}

/// What the server's handlers saw: messages handled, and errors their request streams
/// ended with.
#[derive(Clone, Default)]
struct Seen {
    handled: Arc<AtomicUsize>,
    errors: Arc<Mutex<Vec<Code>>>,
}

/// The service, written by hand as tonic's generated code would be, with the rpcseal codec.
#[derive(Clone)]
struct Inventory {
    codecs: ServerCodecs,
    seen: Seen,
}

impl tonic::server::NamedService for Inventory {
    const NAME: &'static str = "rpcseal.test.Inventory";
}

struct GetHandler(Seen);

impl tonic::server::UnaryService<Incoming<GetRequest>> for GetHandler {
    type Response = Stock;
    type Future = tonic::codegen::BoxFuture<tonic::Response<Stock>, Status>;

    fn call(&mut self, request: tonic::Request<Incoming<GetRequest>>) -> Self::Future {
        self.0.handled.fetch_add(1, Ordering::SeqCst);
        let reply = stock(request.into_inner());
        Box::pin(async move { Ok(tonic::Response::new(reply)) })
    }
}

struct ChatHandler(Seen);

type StockStream = Pin<Box<dyn Stream<Item = Result<Stock, Status>> + Send>>;

impl tonic::server::StreamingService<Incoming<GetRequest>> for ChatHandler {
    type Response = Stock;
    type ResponseStream = StockStream;
    type Future = tonic::codegen::BoxFuture<tonic::Response<StockStream>, Status>;

    fn call(
        &mut self,
        request: tonic::Request<tonic::Streaming<Incoming<GetRequest>>>,
    ) -> Self::Future {
        let seen = self.0.clone();
        let input = request.into_inner();
        let out = input.map(move |m| match m {
            Ok(inc) => {
                seen.handled.fetch_add(1, Ordering::SeqCst);
                Ok(stock(inc))
            }
            Err(status) => {
                seen.errors.lock().unwrap().push(status.code());
                Err(status)
            }
        });
        Box::pin(async move { Ok(tonic::Response::new(Box::pin(out) as StockStream)) })
    }
}

impl<B> tonic::codegen::Service<http::Request<B>> for Inventory
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = tonic::codegen::BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let seen = self.seen.clone();
        match req.uri().path() {
            GET => {
                let codec = self.codecs.unary_codec::<Stock, GetRequest, _>(&req);
                Box::pin(async move {
                    Ok(tonic::server::Grpc::new(codec)
                        .unary(GetHandler(seen), req)
                        .await)
                })
            }
            CHAT => {
                let codec = self.codecs.streaming_codec::<Stock, GetRequest, _>(&req);
                Box::pin(async move {
                    Ok(tonic::server::Grpc::new(codec)
                        .streaming(ChatHandler(seen), req)
                        .await)
                })
            }
            _ => Box::pin(async { Ok(Status::unimplemented("").into_http()) }),
        }
    }
}

fn config() -> SealerConfig {
    SealerConfig::new(Mode::Mac).inline(Inline::FirstMessage)
}

async fn serve(service: &Identity, clients: &[&Identity]) -> (SocketAddr, Seen) {
    let trusted: Vec<_> = clients.iter().map(|c| c.public().clone()).collect();
    let id = service.clone();
    let codecs = ServerCodecs::new(service, config(), 100, move || {
        trusted
            .iter()
            .fold(Opener::builder().identity(&id), |b, t| b.trust(t))
    })
    .unwrap();
    let seen = Seen::default();
    let svc = Inventory {
        codecs,
        seen: seen.clone(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tokio::spawn(async move {
        Server::builder()
            .add_service(svc)
            .serve_with_incoming(incoming)
            .await
            .unwrap()
    });
    (addr, seen)
}

async fn channel(addr: SocketAddr) -> tonic::client::Grpc<Channel> {
    let ch = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    tonic::client::Grpc::new(ch)
}

fn client_codecs(client: &Identity, service: &Identity) -> ClientCodecs {
    let (id, svc) = (client.clone(), service.public().clone());
    ClientCodecs::new(client, service.public(), config(), move || {
        Opener::builder().identity(&id).trust(&svc)
    })
    .unwrap()
}

fn kind(status: &Status) -> Option<String> {
    status
        .metadata()
        .get(rpcseal_tonic::ERROR_KIND_KEY)
        .map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test]
async fn unary_calls_on_one_channel_share_a_session() {
    let (alice, svc) = (Identity::generate(), Identity::generate());
    let (addr, seen) = serve(&svc, &[&alice]).await;
    let codecs = client_codecs(&alice, &svc);
    let mut grpc = channel(addr).await;
    let mut sessions = Vec::new();
    for sku in [3, 4, 5] {
        let reply: Stock = codecs
            .unary(&mut grpc, GetRequest { sku }, GET)
            .await
            .unwrap()
            .into_inner();
        assert_eq!((reply.sku, reply.count), (sku, sku * 2));
        assert_eq!(reply.caller, alice.key_id().to_string());
        sessions.push(reply.session);
    }
    assert!(sessions.iter().all(|s| *s == sessions[0]));
    assert_eq!(seen.handled.load(Ordering::SeqCst), 3);
}

/// spec/rpc.md §6.3: replies to calls in flight at once, on HTTP/2 streams of one channel,
/// arrive in any order; each opens, whichever comes first. Then, once a reply opened and
/// later requests acknowledge the reply session, the service still answers every call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_unary_calls_on_one_channel_all_succeed() {
    let (alice, svc) = (Identity::generate(), Identity::generate());
    let (addr, seen) = serve(&svc, &[&alice]).await;
    let codecs = client_codecs(&alice, &svc);
    let grpc = channel(addr).await;
    for round in 0..2u32 {
        let mut calls = tokio::task::JoinSet::new();
        for sku in 0..20u32 {
            let (codecs, mut grpc) = (codecs.clone(), grpc.clone());
            calls.spawn(async move {
                let reply: Result<tonic::Response<Stock>, Status> =
                    codecs.unary(&mut grpc, GetRequest { sku }, GET).await;
                (sku, reply)
            });
        }
        while let Some(done) = calls.join_next().await {
            let (sku, reply) = done.unwrap();
            let stock = reply
                .unwrap_or_else(|s| panic!("round {round}, call {sku}: {s:?}"))
                .into_inner();
            assert_eq!((stock.sku, stock.count), (sku, sku * 2));
        }
    }
    assert_eq!(seen.handled.load(Ordering::SeqCst), 40);
}

#[tokio::test]
async fn a_server_without_the_session_gets_the_same_envelope_with_its_block() {
    let (alice, svc) = (Identity::generate(), Identity::generate());
    let (first, _) = serve(&svc, &[&alice]).await;
    let (second, seen) = serve(&svc, &[&alice]).await;
    let codecs = client_codecs(&alice, &svc);
    let mut a = channel(first).await;
    let mut b = channel(second).await;
    codecs
        .unary::<_, _, Stock>(&mut a, GetRequest { sku: 1 }, GET)
        .await
        .unwrap();
    // By reference at a server that never saw the session: FAILED_PRECONDITION, then the
    // same envelope with its block; handled once.
    let reply: Stock = codecs
        .unary(&mut b, GetRequest { sku: 2 }, GET)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.count, 4);
    assert_eq!(seen.handled.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn untrusted_client_is_refused_without_detail() {
    let (alice, mallory, svc) = (
        Identity::generate(),
        Identity::generate(),
        Identity::generate(),
    );
    let (addr, seen) = serve(&svc, &[&alice]).await;
    let codecs = client_codecs(&mallory, &svc);
    let err = codecs
        .unary::<_, _, Stock>(&mut channel(addr).await, GetRequest { sku: 1 }, GET)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_eq!(err.message(), "request refused");
    assert_eq!(seen.handled.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn bidirectional_stream_round_trips_in_order() {
    let (alice, svc) = (Identity::generate(), Identity::generate());
    let (addr, seen) = serve(&svc, &[&alice]).await;
    let codecs = client_codecs(&alice, &svc);
    let mut grpc = channel(addr).await;
    for _ in 0..2 {
        let skus: Vec<u32> = (1..=20).collect();
        let requests = tokio_stream::iter(skus.clone().into_iter().map(|sku| GetRequest { sku }));
        let codec = codecs.streaming_codec::<GetRequest, Stock>(CHAT).unwrap();
        grpc.ready().await.unwrap();
        let mut replies = grpc
            .streaming(
                tonic::Request::new(requests),
                http::uri::PathAndQuery::from_static(CHAT),
                codec,
            )
            .await
            .unwrap()
            .into_inner();
        let mut got = Vec::new();
        let mut session = None;
        while let Some(r) = replies.next().await {
            let r = r.unwrap();
            // One request session for the whole stream.
            assert_eq!(*session.get_or_insert(r.session.clone()), r.session);
            got.push(r.sku);
        }
        assert_eq!(got, skus);
    }
    assert_eq!(seen.handled.load(Ordering::SeqCst), 40);
    assert!(seen.errors.lock().unwrap().is_empty());
}

// ---- Hostile streams: prepared envelopes through a pass-through codec.

#[derive(Clone, Default)]
struct Raw;
struct RawEncoder;
struct RawDecoder;

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

/// `n` request envelopes of one stream session, as the client codec seals them.
fn stream_envelopes(client: &Identity, svc: &Identity, path: &str, n: u32) -> Vec<Vec<u8>> {
    let mut sealer = Sealer::new(client, &[Recipient::from(svc.public())], config()).unwrap();
    let mut meta = Metadata::new();
    meta.insert(rpc::METHOD.into(), path.into());
    meta.insert(rpc::CONTENT_TYPE.into(), rpcseal_tonic::CONTENT_TYPE.into());
    (0..n)
        .map(|sku| {
            let payload = prost::Message::encode_to_vec(&GetRequest { sku });
            sealer
                .seal_request(&payload, &meta, svc.public())
                .unwrap()
                .0
        })
        .collect()
}

/// Sends `envelopes` as one bidirectional call; returns how many replies came before the
/// stream ended, and the status it ended with.
async fn send_raw(addr: SocketAddr, envelopes: Vec<Vec<u8>>) -> (usize, Result<(), Status>) {
    let (replies, end) = exchange_raw(addr, envelopes).await;
    (replies.len(), end)
}

/// Sends `envelopes` as one bidirectional call; returns the replies and how it ended.
async fn exchange_raw(
    addr: SocketAddr,
    envelopes: Vec<Vec<u8>>,
) -> (Vec<Vec<u8>>, Result<(), Status>) {
    let mut grpc = channel(addr).await;
    grpc.ready().await.unwrap();
    let resp = grpc
        .streaming(
            tonic::Request::new(tokio_stream::iter(envelopes)),
            http::uri::PathAndQuery::from_static(CHAT),
            Raw,
        )
        .await;
    let mut replies = match resp {
        Ok(r) => r.into_inner(),
        Err(e) => return (Vec::new(), Err(e)),
    };
    let mut got = Vec::new();
    while let Some(r) = replies.next().await {
        match r {
            Ok(m) => got.push(m),
            Err(e) => return (got, Err(e)),
        }
    }
    (got, Ok(()))
}

/// Rearranges a stream's envelopes.
type Mangle = fn(&[Vec<u8>]) -> Vec<Vec<u8>>;

#[tokio::test]
async fn replayed_reordered_dropped_or_spliced_stream_messages_end_the_stream() {
    let (alice, svc) = (Identity::generate(), Identity::generate());
    let (addr, seen) = serve(&svc, &[&alice]).await;

    // The genuine stream passes.
    let m = stream_envelopes(&alice, &svc, CHAT, 4);
    let (n, end) = send_raw(addr, m.clone()).await;
    assert_eq!((n, end.is_ok()), (4, true));

    // The whole stream again: its first message is a replay.
    let (n, end) = send_raw(addr, m.clone()).await;
    assert_eq!(n, 0);
    assert_eq!(end.unwrap_err().code(), Code::Unauthenticated);

    let cases: [(&str, Mangle, usize); 4] = [
        (
            "replayed",
            |m| vec![m[0].clone(), m[1].clone(), m[1].clone(), m[2].clone()],
            2,
        ),
        (
            "reordered",
            |m| vec![m[0].clone(), m[2].clone(), m[1].clone()],
            1,
        ),
        (
            "dropped",
            |m| vec![m[0].clone(), m[1].clone(), m[3].clone()],
            2,
        ),
        (
            "starts mid-session",
            |m| vec![m[1].clone(), m[2].clone()],
            0,
        ),
    ];
    for (what, mangle, handled) in cases {
        let m = stream_envelopes(&alice, &svc, CHAT, 4);
        let before = seen.handled.load(Ordering::SeqCst);
        let (n, end) = send_raw(addr, mangle(&m)).await;
        let status = end.expect_err(what);
        assert_eq!(status.code(), Code::Unauthenticated, "{what}");
        assert_eq!(status.message(), "request refused", "{what}");
        assert_eq!(n, handled, "{what}");
        assert_eq!(
            seen.handled.load(Ordering::SeqCst) - before,
            handled,
            "{what}"
        );
    }

    // A message of another live stream of the same client, spliced in.
    let a = stream_envelopes(&alice, &svc, CHAT, 3);
    let b = stream_envelopes(&alice, &svc, CHAT, 3);
    let (n, _) = send_raw(addr, vec![b[0].clone()]).await;
    assert_eq!(n, 1);
    let (n, end) = send_raw(addr, vec![a[0].clone(), b[1].clone()]).await;
    assert_eq!(n, 1);
    assert_eq!(end.unwrap_err().code(), Code::Unauthenticated);

    // A unary request's envelope offered to the streaming method: it names another method.
    let u = stream_envelopes(&alice, &svc, GET, 1);
    let (n, end) = send_raw(addr, u).await;
    assert_eq!(n, 0);
    assert_eq!(end.unwrap_err().code(), Code::Unauthenticated);

    assert!(seen
        .errors
        .lock()
        .unwrap()
        .iter()
        .all(|c| *c == Code::Unauthenticated));
}

#[tokio::test]
async fn tampered_unary_request_is_refused_and_never_handled() {
    let (alice, svc) = (Identity::generate(), Identity::generate());
    let (addr, seen) = serve(&svc, &[&alice]).await;
    let env = stream_envelopes(&alice, &svc, GET, 1).remove(0);
    for i in [0, env.len() / 2, env.len() - 1] {
        let mut bad = env.clone();
        bad[i] ^= 0x80;
        let mut grpc = channel(addr).await;
        grpc.ready().await.unwrap();
        let err = grpc
            .unary(
                tonic::Request::new(bad),
                http::uri::PathAndQuery::from_static(GET),
                Raw,
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "byte {i}");
    }
    assert_eq!(seen.handled.load(Ordering::SeqCst), 0);
    // The genuine one still passes, once.
    let call = |e: Vec<u8>| async move {
        let mut grpc = channel(addr).await;
        grpc.ready().await.unwrap();
        grpc.unary(
            tonic::Request::new(e),
            http::uri::PathAndQuery::from_static(GET),
            Raw,
        )
        .await
    };
    assert!(call(env.clone()).await.is_ok());
    assert_eq!(call(env).await.unwrap_err().code(), Code::Unauthenticated);
    assert_eq!(seen.handled.load(Ordering::SeqCst), 1);
}

/// A hostile gRPC proxy: forwards one streaming call's envelopes to the real server and
/// hands the client the real server's replies, rearranged by `mangle`.
#[derive(Clone)]
struct Proxy {
    upstream: SocketAddr,
    mangle: fn(Vec<Vec<u8>>) -> Vec<Vec<u8>>,
}

impl tonic::server::NamedService for Proxy {
    const NAME: &'static str = "rpcseal.test.Inventory";
}

struct ProxyHandler(Proxy);

type RawStream = Pin<Box<dyn Stream<Item = Result<Vec<u8>, Status>> + Send>>;

impl tonic::server::StreamingService<Vec<u8>> for ProxyHandler {
    type Response = Vec<u8>;
    type ResponseStream = RawStream;
    type Future = tonic::codegen::BoxFuture<tonic::Response<RawStream>, Status>;

    fn call(&mut self, request: tonic::Request<tonic::Streaming<Vec<u8>>>) -> Self::Future {
        let proxy = self.0.clone();
        Box::pin(async move {
            let envelopes: Vec<Vec<u8>> = request.into_inner().collect::<Result<_, _>>().await?;
            let (replies, _) = exchange_raw(proxy.upstream, envelopes).await;
            let out = (proxy.mangle)(replies).into_iter().map(Ok);
            Ok(tonic::Response::new(
                Box::pin(tokio_stream::iter(out)) as RawStream
            ))
        })
    }
}

impl<B> tonic::codegen::Service<http::Request<B>> for Proxy
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = tonic::codegen::BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let handler = ProxyHandler(self.clone());
        Box::pin(async move { Ok(tonic::server::Grpc::new(Raw).streaming(handler, req).await) })
    }
}

async fn serve_proxy(upstream: SocketAddr, mangle: fn(Vec<Vec<u8>>) -> Vec<Vec<u8>>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tokio::spawn(async move {
        Server::builder()
            .add_service(Proxy { upstream, mangle })
            .serve_with_incoming(incoming)
            .await
            .unwrap()
    });
    addr
}

/// Calls Chat with skus 0..4 through `addr`; the skus of the replies accepted, and the
/// error class the stream ended with.
async fn chat_through(codecs: &ClientCodecs, addr: SocketAddr) -> (Vec<u32>, Option<String>) {
    let mut grpc = channel(addr).await;
    grpc.ready().await.unwrap();
    let codec = codecs.streaming_codec::<GetRequest, Stock>(CHAT).unwrap();
    let requests = tokio_stream::iter((0..4).map(|sku| GetRequest { sku }));
    let mut replies = grpc
        .streaming(
            tonic::Request::new(requests),
            http::uri::PathAndQuery::from_static(CHAT),
            codec,
        )
        .await
        .unwrap()
        .into_inner();
    let mut got = Vec::new();
    while let Some(r) = replies.next().await {
        match r {
            Ok(s) => got.push(s.sku),
            Err(e) => return (got, kind(&e)),
        }
    }
    (got, None)
}

#[tokio::test]
async fn replayed_reordered_or_foreign_replies_end_the_stream_at_the_client() {
    let (alice, svc) = (Identity::generate(), Identity::generate());
    let (addr, _) = serve(&svc, &[&alice]).await;
    let codecs = client_codecs(&alice, &svc);

    let honest = serve_proxy(addr, |r| r).await;
    assert_eq!(
        chat_through(&codecs, honest).await,
        (vec![0, 1, 2, 3], None)
    );

    let replayed = serve_proxy(addr, |r| {
        vec![r[0].clone(), r[1].clone(), r[1].clone(), r[2].clone()]
    })
    .await;
    assert_eq!(
        chat_through(&codecs, replayed).await,
        (vec![0, 1], Some("replayed".into()))
    );

    let reordered = serve_proxy(addr, |r| vec![r[0].clone(), r[2].clone(), r[1].clone()]).await;
    assert_eq!(
        chat_through(&codecs, reordered).await,
        (vec![0], Some("out_of_order".into()))
    );

    let dropped = serve_proxy(addr, |r| vec![r[0].clone(), r[1].clone(), r[3].clone()]).await;
    assert_eq!(
        chat_through(&codecs, dropped).await,
        (vec![0, 1], Some("out_of_order".into()))
    );
}

// ---- Generated code: rpcseal-tonic/codegen-test, tonic-build with `SealedCodec`.

use generated::inventory_client::InventoryClient;
use generated::inventory_server::{Inventory as GeneratedInventory, InventoryServer};
use rpcseal_tonic_codegen_test as generated;

/// The generated service's handlers. With `upstream`, `get` asks another sealed service
/// (with this client's keys) from inside the call, and answers with what it said.
#[derive(Clone)]
struct Generated {
    seen: Seen,
    upstream: Option<(ClientCodecs, SocketAddr)>,
}

fn generated_stock(sku: u32, caller: Option<&rpcseal_tonic::Caller>) -> generated::Stock {
    generated::Stock {
        sku,
        count: sku * 2,
        caller: caller
            .map(|c| c.sender_name.to_string())
            .unwrap_or_default(),
        session: caller
            .map(|c| c.session.session_id.to_vec())
            .unwrap_or_default(),
    }
}

#[tonic::async_trait]
impl GeneratedInventory for Generated {
    async fn get(
        &self,
        request: tonic::Request<generated::GetRequest>,
    ) -> Result<tonic::Response<generated::Stock>, Status> {
        self.seen.handled.fetch_add(1, Ordering::SeqCst);
        let caller = rpcseal_tonic::caller_of(&request).cloned();
        let sku = request.into_inner().sku;
        if let Some((codecs, addr)) = self.upstream.clone() {
            let ask = async move {
                let mut up = InventoryClient::new(codecs.channel(plain_channel(addr).await));
                up.get(generated::GetRequest { sku }).await
            };
            // Odd skus ask from a task of their own (no scope of this call there).
            let mut reply = match sku % 2 {
                1 => tokio::spawn(ask).await.unwrap()?,
                _ => ask.await?,
            }
            .into_inner();
            reply.caller = format!("{} via {}", reply.caller, caller.unwrap().sender_name);
            return Ok(tonic::Response::new(reply));
        }
        Ok(tonic::Response::new(generated_stock(sku, caller.as_ref())))
    }

    type ChatStream = Pin<Box<dyn Stream<Item = Result<generated::Stock, Status>> + Send>>;

    async fn chat(
        &self,
        request: tonic::Request<tonic::Streaming<generated::GetRequest>>,
    ) -> Result<tonic::Response<Self::ChatStream>, Status> {
        let seen = self.seen.clone();
        let (_, extensions, input) = request.into_parts();
        let caller = tonic::Request::from_parts(Default::default(), extensions, ());
        let out = input.map(move |m| match m {
            Ok(m) => {
                seen.handled.fetch_add(1, Ordering::SeqCst);
                Ok(generated_stock(m.sku, rpcseal_tonic::caller_of(&caller)))
            }
            Err(status) => {
                seen.errors.lock().unwrap().push(status.code());
                Err(status)
            }
        });
        Ok(tonic::Response::new(Box::pin(out) as Self::ChatStream))
    }
}

fn server_codecs(service: &Identity, clients: &[&Identity]) -> ServerCodecs {
    let trusted: Vec<_> = clients.iter().map(|c| c.public().clone()).collect();
    let id = service.clone();
    ServerCodecs::new(service, config(), 100, move || {
        trusted
            .iter()
            .fold(Opener::builder().identity(&id), |b, t| b.trust(t))
    })
    .unwrap()
}

/// How a test serves the generated server.
#[derive(Clone, Copy, PartialEq)]
enum Sealing {
    /// Without `ServerCodecs::service`.
    Off,
    /// Through it, Chat named streaming.
    On,
    /// Through it, Chat not named streaming.
    ChatUnnamed,
}

/// The generated server on 127.0.0.1, sealed with `service`'s keys as `sealing` says.
async fn serve_generated(
    service: &Identity,
    clients: &[&Identity],
    upstream: Option<(ClientCodecs, SocketAddr)>,
    sealing: Sealing,
) -> (SocketAddr, Seen) {
    let seen = Seen::default();
    let server = InventoryServer::new(Generated {
        seen: seen.clone(),
        upstream,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let codecs = server_codecs(service, clients);
    let router = match sealing {
        Sealing::On => {
            Server::builder().add_service(codecs.service(server).streaming(generated::CHAT))
        }
        Sealing::ChatUnnamed => Server::builder().add_service(codecs.service(server)),
        Sealing::Off => Server::builder().add_service(server),
    };
    tokio::spawn(async move { router.serve_with_incoming(incoming).await.unwrap() });
    (addr, seen)
}

async fn plain_channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

type GeneratedClient = InventoryClient<rpcseal_tonic::SealedChannel<Channel>>;

async fn generated_client(codecs: &ClientCodecs, addr: SocketAddr) -> GeneratedClient {
    InventoryClient::new(
        codecs
            .channel(plain_channel(addr).await)
            .streaming(generated::CHAT),
    )
}

#[tokio::test]
async fn generated_unary_calls_are_sealed_and_share_a_session() {
    let (alice, svc) = (Identity::generate(), Identity::generate());
    let (addr, seen) = serve_generated(&svc, &[&alice], None, Sealing::On).await;
    let codecs = client_codecs(&alice, &svc);
    let mut client = generated_client(&codecs, addr).await;
    let mut sessions = Vec::new();
    for sku in [3, 4, 5] {
        let reply = client
            .get(generated::GetRequest { sku })
            .await
            .unwrap()
            .into_inner();
        assert_eq!((reply.sku, reply.count), (sku, sku * 2));
        assert_eq!(reply.caller, alice.key_id().to_string());
        sessions.push(reply.session);
    }
    assert!(sessions.iter().all(|s| *s == sessions[0]));
    assert_eq!(seen.handled.load(Ordering::SeqCst), 3);

    // The same bytes as the hand-written codecs: an envelope sealed as `ClientCodecs`
    // seals it is handled; the same envelope again is a replay, refused without detail.
    let env = stream_envelopes(&alice, &svc, GET, 1).remove(0);
    let call = |e: Vec<u8>| async move {
        let mut grpc = channel(addr).await;
        grpc.ready().await.unwrap();
        grpc.unary(
            tonic::Request::new(e),
            http::uri::PathAndQuery::from_static(GET),
            Raw,
        )
        .await
    };
    assert!(call(env.clone()).await.is_ok());
    let replayed = call(env).await.unwrap_err();
    assert_eq!(replayed.code(), Code::Unauthenticated);
    assert_eq!(replayed.message(), "request refused");
    assert_eq!(seen.handled.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn generated_client_resends_with_the_block_when_a_server_asks() {
    let (alice, svc) = (Identity::generate(), Identity::generate());
    let (first, _) = serve_generated(&svc, &[&alice], None, Sealing::On).await;
    let (second, seen) = serve_generated(&svc, &[&alice], None, Sealing::On).await;
    let codecs = client_codecs(&alice, &svc);
    let mut a = generated_client(&codecs, first).await;
    let mut b = generated_client(&codecs, second).await;
    a.get(generated::GetRequest { sku: 1 }).await.unwrap();
    // By reference at a server that never saw the session: FAILED_PRECONDITION, then the
    // same envelope with its block, inside the one call; handled once.
    let reply = b
        .get(generated::GetRequest { sku: 2 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.count, 4);
    assert_eq!(seen.handled.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn generated_bidirectional_stream_is_in_order_and_refuses_replayed_or_reordered_messages() {
    let (alice, svc) = (Identity::generate(), Identity::generate());
    let (addr, seen) = serve_generated(&svc, &[&alice], None, Sealing::On).await;
    let codecs = client_codecs(&alice, &svc);
    let mut client = generated_client(&codecs, addr).await;
    let skus: Vec<u32> = (1..=20).collect();
    let requests = tokio_stream::iter(
        skus.clone()
            .into_iter()
            .map(|sku| generated::GetRequest { sku }),
    );
    let mut replies = client.chat(requests).await.unwrap().into_inner();
    let mut got = Vec::new();
    while let Some(r) = replies.next().await {
        let r = r.unwrap();
        assert_eq!(r.caller, alice.key_id().to_string());
        got.push(r.sku);
    }
    assert_eq!(got, skus);
    assert_eq!(seen.handled.load(Ordering::SeqCst), 20);

    // Hostile streams at the generated server.
    let cases: [(&str, Mangle, usize); 3] = [
        (
            "replayed",
            |m| vec![m[0].clone(), m[1].clone(), m[1].clone()],
            2,
        ),
        (
            "reordered",
            |m| vec![m[0].clone(), m[2].clone(), m[1].clone()],
            1,
        ),
        ("starts mid-session", |m| vec![m[1].clone()], 0),
    ];
    for (what, mangle, handled) in cases {
        let m = stream_envelopes(&alice, &svc, CHAT, 3);
        let before = seen.handled.load(Ordering::SeqCst);
        let (n, end) = send_raw(addr, mangle(&m)).await;
        let status = end.expect_err(what);
        assert_eq!(status.code(), Code::Unauthenticated, "{what}");
        assert_eq!(n, handled, "{what}");
        assert_eq!(
            seen.handled.load(Ordering::SeqCst) - before,
            handled,
            "{what}"
        );
    }
    // A whole genuine stream sent twice: the second is a replay from its first message.
    let m = stream_envelopes(&alice, &svc, CHAT, 2);
    assert_eq!(send_raw(addr, m.clone()).await.0, 2);
    let (n, end) = send_raw(addr, m).await;
    assert_eq!((n, end.unwrap_err().code()), (0, Code::Unauthenticated));
}

#[tokio::test]
async fn generated_stream_replies_replayed_by_a_proxy_end_the_stream_at_the_client() {
    let (alice, svc) = (Identity::generate(), Identity::generate());
    let (addr, _) = serve_generated(&svc, &[&alice], None, Sealing::On).await;
    let codecs = client_codecs(&alice, &svc);
    let proxy = serve_proxy(addr, |r| vec![r[0].clone(), r[1].clone(), r[1].clone()]).await;
    let mut client = generated_client(&codecs, proxy).await;
    let requests = tokio_stream::iter((0..3).map(|sku| generated::GetRequest { sku }));
    let mut replies = client.chat(requests).await.unwrap().into_inner();
    let mut got = Vec::new();
    let err = loop {
        match replies.next().await {
            Some(Ok(s)) => got.push(s.sku),
            Some(Err(e)) => break e,
            None => panic!("the replayed reply was accepted"),
        }
    };
    assert_eq!(got, vec![0, 1]);
    assert_eq!(kind(&err).as_deref(), Some("replayed"));
}

#[tokio::test]
async fn generated_calls_without_keys_fail_closed() {
    let (alice, svc) = (Identity::generate(), Identity::generate());
    let (addr, seen) = serve_generated(&svc, &[&alice], None, Sealing::On).await;

    // A generated client on a plain channel: its codec has no keys; nothing is sent.
    let mut plain = InventoryClient::new(plain_channel(addr).await);
    let err = plain
        .get(generated::GetRequest { sku: 1 })
        .await
        .unwrap_err();
    assert_ne!(err.code(), Code::Ok);
    let requests = tokio_stream::iter((0..2).map(|sku| generated::GetRequest { sku }));
    match plain.chat(requests).await {
        Ok(r) => {
            let mut r = r.into_inner();
            assert!(r.next().await.unwrap().is_err());
        }
        Err(e) => assert_ne!(e.code(), Code::Ok),
    }
    assert_eq!(seen.handled.load(Ordering::SeqCst), 0);

    // A sealed channel refuses a request whose codec is not `SealedCodec`.
    let codecs = client_codecs(&alice, &svc);
    let mut grpc = tonic::client::Grpc::new(codecs.channel(plain_channel(addr).await));
    grpc.ready().await.unwrap();
    let env = stream_envelopes(&alice, &svc, GET, 1).remove(0);
    let err = grpc
        .unary(
            tonic::Request::new(env),
            http::uri::PathAndQuery::from_static(GET),
            Raw,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(seen.handled.load(Ordering::SeqCst), 0);

    // The generated server without `ServerCodecs::service`: its codec has no keys, so a
    // sealed call fails and the handler never runs.
    let (bare, bare_seen) = serve_generated(&svc, &[&alice], None, Sealing::Off).await;
    let mut client = generated_client(&codecs, bare).await;
    let err = client
        .get(generated::GetRequest { sku: 1 })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(bare_seen.handled.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_handler_calls_another_sealed_service_with_its_own_keys() {
    // bob serves alice; to answer, his handler asks carol's service as client bob.
    let (alice, bob, carol) = (
        Identity::generate(),
        Identity::generate(),
        Identity::generate(),
    );
    let (carol_addr, carol_seen) = serve_generated(&carol, &[&bob], None, Sealing::On).await;
    let upstream = (client_codecs(&bob, &carol), carol_addr);
    let (bob_addr, bob_seen) = serve_generated(&bob, &[&alice], Some(upstream), Sealing::On).await;
    let codecs = client_codecs(&alice, &bob);
    let mut client = generated_client(&codecs, bob_addr).await;
    for sku in [7, 8] {
        let reply = client
            .get(generated::GetRequest { sku })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(reply.count, sku * 2);
        assert_eq!(
            reply.caller,
            format!("{} via {}", bob.key_id(), alice.key_id())
        );
    }
    assert_eq!(bob_seen.handled.load(Ordering::SeqCst), 2);
    assert_eq!(carol_seen.handled.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_stream_to_a_method_not_named_streaming_is_refused_at_its_second_message() {
    let (alice, svc) = (Identity::generate(), Identity::generate());
    let (addr, seen) = serve_generated(&svc, &[&alice], None, Sealing::On).await;
    let codecs = client_codecs(&alice, &svc);
    // The client does not name Chat streaming: its messages are sealed as unary ones.
    let mut client = InventoryClient::new(codecs.channel(plain_channel(addr).await));
    let requests = tokio_stream::iter((0..3).map(|sku| generated::GetRequest { sku }));
    let outcome = match client.chat(requests).await {
        Ok(r) => r.into_inner().collect::<Vec<_>>().await,
        Err(e) => vec![Err(e)],
    };
    assert!(outcome.iter().any(|r| r.is_err()));
    assert!(seen.handled.load(Ordering::SeqCst) <= 1);
}

#[tokio::test]
async fn a_service_refuses_a_second_request_message_on_a_method_not_named_streaming() {
    let (alice, svc) = (Identity::generate(), Identity::generate());
    let (addr, seen) = serve_generated(&svc, &[&alice], None, Sealing::ChatUnnamed).await;
    // Two genuine messages of one session to Chat, which this service treats as unary.
    let m = stream_envelopes(&alice, &svc, CHAT, 2);
    let (n, end) = send_raw(addr, m).await;
    let status = end.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "request refused");
    assert!(n <= 1);
    assert_eq!(seen.handled.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_on_two_channels_with_different_keys_stay_apart() {
    let (alice, bob, one, two) = (
        Identity::generate(),
        Identity::generate(),
        Identity::generate(),
        Identity::generate(),
    );
    let (addr_one, seen_one) = serve_generated(&one, &[&alice], None, Sealing::On).await;
    let (addr_two, seen_two) = serve_generated(&two, &[&bob], None, Sealing::On).await;
    let alice_one = generated_client(&client_codecs(&alice, &one), addr_one).await;
    let bob_two = generated_client(&client_codecs(&bob, &two), addr_two).await;
    // One call each first: its reply carries the reply session's block, which later
    // replies name by reference (spec/rpc.md §6.3). Concurrent first calls could see a
    // by-reference reply overtake the one with the block (unknown_session at the client).
    for (client, who) in [(&alice_one, &alice), (&bob_two, &bob)] {
        let r = client
            .clone()
            .get(generated::GetRequest { sku: 100 })
            .await
            .unwrap();
        assert_eq!(r.into_inner().caller, who.key_id().to_string());
    }
    let mut calls = tokio::task::JoinSet::new();
    for sku in 0..40u32 {
        let (mut client, who) = match sku % 2 {
            0 => (alice_one.clone(), alice.key_id().to_string()),
            _ => (bob_two.clone(), bob.key_id().to_string()),
        };
        calls.spawn(async move {
            if sku % 4 < 2 {
                let r = client.get(generated::GetRequest { sku }).await.unwrap();
                assert_eq!(r.into_inner().caller, who);
            } else {
                let requests =
                    tokio_stream::iter((0..3).map(move |i| generated::GetRequest { sku: sku + i }));
                let replies: Vec<_> = client
                    .chat(requests)
                    .await
                    .unwrap()
                    .into_inner()
                    .collect()
                    .await;
                assert_eq!(replies.len(), 3);
                for r in replies {
                    assert_eq!(r.unwrap().caller, who);
                }
            }
        });
    }
    while let Some(done) = calls.join_next().await {
        done.unwrap();
    }
    assert_eq!(seen_one.handled.load(Ordering::SeqCst), 1 + 10 + 30);
    assert_eq!(seen_two.handled.load(Ordering::SeqCst), 1 + 10 + 30);
}
