//! An axum service behind `ServerLayer` and a hyper client behind `ClientLayer`, on
//! 127.0.0.1 (a free port), one sealed JSON call between them.
//!
//!     cargo run -p rpcseal-tower --example axum

use axum::routing::post;
use axum::{Extension, Json, Router};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rpcseal::rpc::Responder;
use rpcseal::{Identity, Inline, Mode, Opener, Recipient, Sealer, SealerConfig};
use rpcseal_tower::{Caller, ClientLayer, ServerLayer};
use serde_json::{json, Value};
use tower::{Layer, ServiceExt};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let service = Identity::generate();
    let client = Identity::generate();
    let config = SealerConfig::new(Mode::Mac).inline(Inline::FirstMessage);

    // The service: the few lines it adds are the opener, the responder and the layer.
    let opener = Opener::builder()
        .identity(&service)
        .trust(client.public())
        .build()?;
    let responder = Responder::new(&service, config.clone(), 1000)?;
    let app = Router::new()
        .route(
            "/inventory/get",
            post(|Extension(caller): Extension<Caller>, Json(req): Json<Value>| async move {
                Json(json!({ "sku": req["sku"], "count": 7, "caller": caller.sender_name.to_string() }))
            }),
        )
        .layer(ServerLayer::new(opener, responder));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    // The client: a sealer to the service, an opener for its replies, the layer.
    let sealer = Sealer::new(&client, &[Recipient::from(service.public())], config)?;
    let replies = Opener::builder()
        .identity(&client)
        .trust(service.public())
        .build()?;
    let http = ClientLayer::new(sealer, replies, service.public())
        .layer(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());

    let request = http::Request::post(format!("http://{addr}/inventory/get"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(br#"{"sku": 42}"#)))?;
    let response = http.oneshot(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    println!("{status} {}", String::from_utf8_lossy(&body));
    server.abort();
    Ok(())
}
