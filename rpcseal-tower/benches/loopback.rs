//! Requests per second and median latency of a small JSON call over axum + hyper on
//! 127.0.0.1, plain and sealed (MAC and signed mode), with the ratios to plain. Bounded:
//! each case runs for a fixed time (default 3 s after 0.5 s of warm-up) and stops by
//! itself. Not part of `.ci/run`.
//!
//!     cargo bench -p rpcseal-tower --bench loopback [-- SECONDS [CONCURRENCY [ROUNDS]]]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rpcseal::rpc::Responder;
use rpcseal::{Identity, Inline, Mode, Opener, Recipient, Sealer, SealerConfig};
use rpcseal_tower::{ClientLayer, ClientService, ServerLayer};
use serde::{Deserialize, Serialize};
use tower::{Layer, ServiceExt};

#[path = "common/driver.rs"]
mod driver;
use driver::cpu_us;

#[derive(Serialize, Deserialize)]
struct Order {
    sku: u32,
    name: String,
    qty: u32,
    tags: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct Stock {
    sku: u32,
    count: u32,
    warehouse: String,
}

async fn handler(Json(o): Json<Order>) -> Json<Stock> {
    Json(Stock {
        sku: o.sku,
        count: o.qty * 7,
        warehouse: "north-2".into(),
    })
}

const BODY: &[u8] = br#"{"sku":42,"name":"widget, blue","qty":3,"tags":["fragile","express"]}"#;

#[derive(Clone)]
enum Caller {
    Plain(Client<HttpConnector, Full<Bytes>>),
    Sealed(ClientService<Client<HttpConnector, Full<Bytes>>>),
}

impl Caller {
    async fn call(&self, url: &str) {
        let req = http::Request::post(url)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(BODY)))
            .unwrap();
        let body = match self {
            Caller::Plain(c) => c
                .request(req)
                .await
                .unwrap()
                .into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes(),
            Caller::Sealed(c) => c
                .clone()
                .oneshot(req)
                .await
                .unwrap()
                .into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes(),
        };
        let s: Stock = serde_json::from_slice(&body).unwrap();
        assert_eq!(s.count, 21);
    }
}

async fn case(mode: Option<Mode>, secs: f64, conc: usize) -> (f64, Duration, f64) {
    let (svc, cli) = (Identity::generate(), Identity::generate());
    let mut app = Router::new().route("/order", post(handler));
    let mut caller = Caller::Plain(Client::builder(TokioExecutor::new()).build_http());
    if let Some(mode) = mode {
        let config = SealerConfig::new(mode).inline(Inline::FirstMessage);
        let opener = Opener::builder()
            .identity(&svc)
            .trust(cli.public())
            .build()
            .unwrap();
        app = app.layer(ServerLayer::new(
            opener,
            Responder::new(&svc, config.clone(), 100).unwrap(),
        ));
        let sealer = Sealer::new(&cli, &[Recipient::from(svc.public())], config).unwrap();
        let replies = Opener::builder()
            .identity(&cli)
            .trust(svc.public())
            .build()
            .unwrap();
        caller = Caller::Sealed(
            ClientLayer::new(sealer, replies, svc.public())
                .layer(Client::builder(TokioExecutor::new()).build_http()),
        );
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/order", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let r = drive(caller, url, secs, conc).await;
    server.abort();
    r
}

async fn drive(caller: Caller, url: String, secs: f64, conc: usize) -> (f64, Duration, f64) {
    let warm = Instant::now() + Duration::from_millis(500);
    let mut warm_calls = 0u64;
    while Instant::now() < warm {
        caller.call(&url).await;
        warm_calls += 1;
    }
    let lat = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let cpu_start = cpu_us();
    let end = start + Duration::from_secs_f64(secs);
    let tasks: Vec<_> = (0..conc)
        .map(|_| {
            let (caller, url, lat) = (caller.clone(), url.clone(), lat.clone());
            tokio::spawn(async move {
                let mut mine = Vec::new();
                while Instant::now() < end {
                    let t = Instant::now();
                    caller.call(&url).await;
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
    let mut lat = lat.lock().unwrap().clone();
    lat.sort();
    (
        lat.len() as f64 / elapsed,
        lat[lat.len() / 2],
        cpu / lat.len() as f64,
    )
}

/// The library's work in one call, alone, on one thread: seal the request, open it, seal
/// the reply, open it (what the layers add besides HTTP plumbing).
fn crypto_per_call(mode: Mode) -> Duration {
    let (svc, cli) = (Identity::generate(), Identity::generate());
    let config = SealerConfig::new(mode).inline(Inline::FirstMessage);
    let mut sealer = Sealer::new(&cli, &[Recipient::from(svc.public())], config.clone()).unwrap();
    let incoming = Opener::builder()
        .identity(&svc)
        .trust(cli.public())
        .build()
        .unwrap();
    let responder = Responder::new(&svc, config, 10).unwrap();
    let replies = Opener::builder()
        .identity(&cli)
        .trust(svc.public())
        .build()
        .unwrap();
    let mut meta = rpcseal::Metadata::new();
    meta.insert(rpcseal::rpc::METHOD.into(), "POST /order".into());
    meta.insert(rpcseal::rpc::CONTENT_TYPE.into(), "application/json".into());
    let reply = br#"{"sku":42,"count":21,"warehouse":"north-2"}"#;
    let n = 2000;
    let mut t = Duration::ZERO;
    for i in 0..n + 100 {
        let start = Instant::now();
        let (req, pending) = sealer.seal_request(BODY, &meta, svc.public()).unwrap();
        let opened = incoming.open(&req).unwrap();
        let ctx = rpcseal::rpc::RequestContext::new(&incoming, &opened).unwrap();
        let rep = responder
            .seal_reply(&ctx, reply, &rpcseal::Metadata::new())
            .unwrap();
        pending.open_reply(&replies, &rep).unwrap();
        if i >= 100 {
            t += start.elapsed();
        }
    }
    t / n
}

fn main() {
    if !driver::run("axum + hyper over 127.0.0.1", case) {
        return;
    }
    for (name, mode) in [("MAC", Mode::Mac), ("signed", Mode::Signed)] {
        let t = crypto_per_call(mode);
        println!(
            "library work per call ({name}: seal, open, seal reply, open reply; one thread): {:.1} us",
            t.as_secs_f64() * 1e6
        );
    }
}
