//! A real axum server and a real hyper client over TCP on 127.0.0.1 (port 0), with the
//! rpcseal layers between them and the application (spec/http.md). Each test's runtime
//! owns its servers, so they stop when the test ends, also when it fails.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use bytes::Bytes;
use http::{header, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rpcseal::rpc::{Responder, METHOD};
use rpcseal::{Identity, Inline, Metadata, Mode, Opener, Recipient, Sealer, SealerConfig};
use rpcseal_tower::{Caller, ClientError, ClientLayer, ServerLayer};
use serde::{Deserialize, Serialize};
use tower::{Layer, Service, ServiceExt};

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Get {
    sku: u32,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Stock {
    sku: u32,
    count: u32,
    caller: String,
    session: String,
}

fn config(mode: Mode) -> SealerConfig {
    SealerConfig::new(mode).inline(Inline::FirstMessage)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// An axum service with identity `service`, trusting `callers`, on 127.0.0.1:0. Returns
/// its address and the number of times a sealed handler ran.
async fn serve(service: &Identity, callers: &[&Identity]) -> (SocketAddr, Arc<AtomicUsize>) {
    let mut opener = Opener::builder().identity(service);
    for c in callers {
        opener = opener.trust(c.public());
    }
    let opener = opener.build().unwrap();
    let responder = Responder::new(service, config(Mode::Mac), 100).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let app = Router::new()
        .route(
            "/stock",
            post(
                move |Extension(caller): Extension<Caller>, Json(get): Json<Get>| async move {
                    counted.fetch_add(1, Ordering::SeqCst);
                    Json(Stock {
                        sku: get.sku,
                        count: get.sku * 2,
                        caller: caller.sender_name.to_string(),
                        session: hex(&caller.session.session_id),
                    })
                },
            ),
        )
        .route(
            "/missing",
            post(|| async { (StatusCode::NOT_FOUND, "no such sku") }),
        )
        .route("/health", get(|| async { "ok" }))
        .layer(ServerLayer::new(opener, responder).unsealed_route("/health"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, calls)
}

async fn send<S>(
    client: &mut S,
    req: Request<Full<Bytes>>,
) -> Result<http::Response<Full<Bytes>>, ClientError>
where
    S: Service<Request<Full<Bytes>>, Response = http::Response<Full<Bytes>>, Error = ClientError>,
{
    client.ready().await?.call(req).await
}

fn hyper_client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

fn sealing_client(
    client: &Identity,
    recipients: &[&Identity],
    service: &Identity,
    trusted: &[&Identity],
) -> ClientLayer {
    let to: Vec<Recipient> = recipients
        .iter()
        .map(|r| Recipient::from(r.public()))
        .collect();
    let sealer = Sealer::new(client, &to, config(Mode::Mac)).unwrap();
    let mut replies = Opener::builder().identity(client);
    for t in trusted {
        replies = replies.trust(t.public());
    }
    ClientLayer::new(sealer, replies.build().unwrap(), service.public())
}

fn json_post(addr: SocketAddr, path: &str, body: &str) -> Request<Full<Bytes>> {
    Request::post(format!("http://{addr}{path}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap()
}

fn sealed_post(addr: SocketAddr, path: &str, envelope: Vec<u8>) -> Request<Full<Bytes>> {
    Request::post(format!("http://{addr}{path}"))
        .header(header::CONTENT_TYPE, rpcseal_tower::CONTENT_TYPE)
        .body(Full::new(Bytes::from(envelope)))
        .unwrap()
}

/// A request envelope exactly as the client layer seals it.
fn seal_by_hand(sealer: &mut Sealer, service: &Identity, route: &str, body: &str) -> Vec<u8> {
    let mut meta = Metadata::new();
    meta.insert(METHOD.into(), route.into());
    meta.insert(rpcseal::rpc::CONTENT_TYPE.into(), "application/json".into());
    sealer
        .seal_request(body.as_bytes(), &meta, service.public())
        .unwrap()
        .0
}

async fn status_of(req: Request<Full<Bytes>>) -> (StatusCode, Option<String>) {
    let resp = hyper_client().request(req).await.unwrap();
    let ct = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned());
    (resp.status(), ct)
}

#[tokio::test]
async fn call_opens_request_and_reply_sharing_one_session() {
    let (alice, svc) = (Identity::generate(), Identity::generate());
    let (addr, calls) = serve(&svc, &[&alice]).await;
    let mut client = sealing_client(&alice, &[&svc], &svc, &[&svc]).layer(hyper_client());

    let mut sessions = Vec::new();
    for sku in [7, 8, 9] {
        let resp = send(
            &mut client,
            json_post(addr, "/stock", &format!("{{\"sku\":{sku}}}")),
        )
        .await
        .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let stock: Stock = serde_json::from_slice(&body).unwrap();
        assert_eq!((stock.sku, stock.count), (sku, sku * 2));
        assert_eq!(stock.caller, alice.key_id().to_string());
        sessions.push(stock.session);
    }
    // One request session for every call: one public-key operation, not one per call.
    assert!(sessions.iter().all(|s| *s == sessions[0]));
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    // The handler's own status is sealed and restored.
    let resp = send(&mut client, json_post(addr, "/missing", "{}"))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"no such sku");
}

#[tokio::test]
async fn a_restarted_server_asks_for_the_block_and_gets_the_same_envelope() {
    let (alice, svc) = (Identity::generate(), Identity::generate());
    let (first, _) = serve(&svc, &[&alice]).await;
    // The same identity, with an empty session cache (a restart, another replica).
    let (second, calls) = serve(&svc, &[&alice]).await;
    let mut client = sealing_client(&alice, &[&svc], &svc, &[&svc]).layer(hyper_client());
    for addr in [first, second, second] {
        let resp = send(&mut client, json_post(addr, "/stock", "{\"sku\":1}"))
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    // By hand: the second envelope of a session, by reference, at a server that lacks the
    // session: 428 naming it, and nothing handled.
    let (third, calls) = serve(&svc, &[&alice]).await;
    let mut sealer =
        Sealer::new(&alice, &[Recipient::from(svc.public())], config(Mode::Mac)).unwrap();
    let _first = seal_by_hand(&mut sealer, &svc, "POST /stock", "{\"sku\":1}");
    let by_ref = seal_by_hand(&mut sealer, &svc, "POST /stock", "{\"sku\":1}");
    let resp = hyper_client()
        .request(sealed_post(third, "/stock", by_ref))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PRECONDITION_REQUIRED);
    assert_eq!(
        resp.headers()[rpcseal_tower::NEED_SESSION_HEADER],
        hex(&sealer.session_ref().unwrap())
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn tampered_request_is_400_and_never_handled() {
    let (alice, svc) = (Identity::generate(), Identity::generate());
    let (addr, calls) = serve(&svc, &[&alice]).await;
    let mut sealer =
        Sealer::new(&alice, &[Recipient::from(svc.public())], config(Mode::Mac)).unwrap();
    let envelope = seal_by_hand(&mut sealer, &svc, "POST /stock", "{\"sku\":3}");
    for i in [0, envelope.len() / 2, envelope.len() - 1] {
        let mut bad = envelope.clone();
        bad[i] ^= 0x01;
        let (status, ct) = status_of(sealed_post(addr, "/stock", bad)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "byte {i}");
        assert_eq!(ct, None, "a refusal says nothing");
    }
    // The same envelope sent to another route than the one it names.
    let (status, _) = status_of(sealed_post(addr, "/missing", envelope.clone())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    // None of it burnt the genuine request.
    let (status, ct) = status_of(sealed_post(addr, "/stock", envelope)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ct.as_deref(), Some(rpcseal_tower::CONTENT_TYPE));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn replayed_request_is_400_and_handled_once() {
    let (alice, svc) = (Identity::generate(), Identity::generate());
    let (addr, calls) = serve(&svc, &[&alice]).await;
    let mut sealer =
        Sealer::new(&alice, &[Recipient::from(svc.public())], config(Mode::Mac)).unwrap();
    let envelope = seal_by_hand(&mut sealer, &svc, "POST /stock", "{\"sku\":3}");
    let (status, _) = status_of(sealed_post(addr, "/stock", envelope.clone())).await;
    assert_eq!(status, StatusCode::OK);
    let (status, ct) = status_of(sealed_post(addr, "/stock", envelope)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(ct, None);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn untrusted_caller_is_400_and_never_handled() {
    let (alice, mallory, svc) = (
        Identity::generate(),
        Identity::generate(),
        Identity::generate(),
    );
    let (addr, calls) = serve(&svc, &[&alice]).await;
    let mut client = sealing_client(&mallory, &[&svc], &svc, &[&svc]).layer(hyper_client());
    let err = send(&mut client, json_post(addr, "/stock", "{\"sku\":1}"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::NotSealed { status } if status == StatusCode::BAD_REQUEST),
        "{err:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn plaintext_is_415_except_on_unsealed_routes() {
    let (alice, svc) = (Identity::generate(), Identity::generate());
    let (addr, calls) = serve(&svc, &[&alice]).await;
    let (status, _) = status_of(json_post(addr, "/stock", "{\"sku\":1}")).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let mut ct_with_params = sealed_post(addr, "/stock", vec![0x90]);
    ct_with_params.headers_mut().insert(
        header::CONTENT_TYPE,
        "application/rpcseal; charset=utf-8".parse().unwrap(),
    );
    assert_eq!(
        status_of(ct_with_params).await.0,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    let resp = hyper_client()
        .request(
            Request::get(format!("http://{addr}/health"))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        &resp.into_body().collect().await.unwrap().to_bytes()[..],
        b"ok"
    );
}

#[tokio::test]
async fn response_from_the_wrong_server_is_refused() {
    // The request is sealed to two services (both can open it); it reaches `other`, whose
    // reply is genuine, bound to the request, from an identity the client trusts, and still
    // not from the service the client addressed.
    let (alice, svc, other) = (
        Identity::generate(),
        Identity::generate(),
        Identity::generate(),
    );
    let (other_addr, other_calls) = serve(&other, &[&alice]).await;
    let mut client =
        sealing_client(&alice, &[&svc, &other], &svc, &[&svc, &other]).layer(hyper_client());
    let err = send(&mut client, json_post(other_addr, "/stock", "{\"sku\":1}"))
        .await
        .unwrap_err();
    match err {
        ClientError::Reply(e) => assert_eq!(e.kind(), "wrong_responder"),
        e => panic!("{e:?}"),
    }
    assert_eq!(other_calls.load(Ordering::SeqCst), 1);

    // A server without the layer answers in plaintext: refused.
    let plain = Router::new().route("/stock", post(|| async { "{\"count\": 1000}" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let plain_addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, plain).await.unwrap() });
    let err = send(&mut client, json_post(plain_addr, "/stock", "{\"sku\":1}"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::NotSealed { status } if status == StatusCode::OK),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_old_response_replayed_by_the_network_is_refused() {
    // Between the client layer and the connection, a hostile hop answers the second call
    // with the first call's (genuine, sealed) response.
    let (alice, svc) = (Identity::generate(), Identity::generate());
    let (addr, calls) = serve(&svc, &[&alice]).await;
    let stored: Arc<tokio::sync::Mutex<Option<(http::response::Parts, Bytes)>>> =
        Default::default();
    let hostile = tower::service_fn(move |req: Request<Full<Bytes>>| {
        let stored = stored.clone();
        async move {
            let mut stored = stored.lock().await;
            if let Some((parts, body)) = stored.clone() {
                return Ok::<_, hyper_util::client::legacy::Error>(http::Response::from_parts(
                    parts,
                    Full::new(body),
                ));
            }
            let resp = hyper_client().request(req).await?;
            let (parts, body) = resp.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            *stored = Some((parts.clone(), body.clone()));
            Ok(http::Response::from_parts(parts, Full::new(body)))
        }
    });
    let mut client = sealing_client(&alice, &[&svc], &svc, &[&svc]).layer(hostile);
    let resp = send(&mut client, json_post(addr, "/stock", "{\"sku\":1}"))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let err = send(&mut client, json_post(addr, "/stock", "{\"sku\":2}"))
        .await
        .unwrap_err();
    match err {
        ClientError::Reply(e) => assert!(
            ["replayed", "wrong_request"].contains(&e.kind()),
            "{}",
            e.kind()
        ),
        e => panic!("{e:?}"),
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_request_naming_a_reply_address_is_400() {
    // The reply travels on the connection; a request asking for it elsewhere is refused.
    let (alice, svc) = (Identity::generate(), Identity::generate());
    let (addr, calls) = serve(&svc, &[&alice]).await;
    let mut sealer =
        Sealer::new(&alice, &[Recipient::from(svc.public())], config(Mode::Mac)).unwrap();
    let mut meta = Metadata::new();
    meta.insert(METHOD.into(), "POST /stock".into());
    meta.insert(rpcseal::rpc::CONTENT_TYPE.into(), "application/json".into());
    meta.insert(rpcseal::rpc::REPLY_TO.into(), "http://elsewhere/".into());
    let (envelope, _) = sealer
        .seal_request(b"{\"sku\":1}", &meta, svc.public())
        .unwrap();
    let (status, _) = status_of(sealed_post(addr, "/stock", envelope)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}
