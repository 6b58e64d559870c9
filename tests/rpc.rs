//! Request and reply (spec/rpc.md): replies bound to their request and to the addressed
//! service, the reply address the client authenticated, the request for a session block,
//! and the responder's reply sessions. Hostile cases first.

use rpcseal::rpc::{
    self, NeedSession, PendingReply, RequestContext, Responder, RpcError, IN_REPLY_TO, REPLY_TO,
};
use rpcseal::{
    inspect, ErrorKind, Identity, Inline, Metadata, Misuse, Mode, Opened, Opener, Recipient,
    Sealer, SealerConfig,
};

struct World {
    client: Identity,
    service: Identity,
    mallory: Identity,
    /// The client's sealer of requests to the service.
    requests: Sealer,
    /// The client's opener of replies: trusts the service and, to show that trust is not
    /// enough, mallory too.
    replies: Opener,
    /// The service's opener of requests.
    incoming: Opener,
    responder: Responder,
}

fn config() -> SealerConfig {
    SealerConfig::new(Mode::Mac).inline(Inline::FirstMessage)
}

fn world() -> World {
    let client = Identity::generate();
    let service = Identity::generate();
    let mallory = Identity::generate();
    World {
        requests: Sealer::new(&client, &[Recipient::from(service.public())], config()).unwrap(),
        replies: Opener::builder()
            .identity(&client)
            .trust(service.public())
            .trust(mallory.public())
            .build()
            .unwrap(),
        incoming: Opener::builder()
            .identity(&service)
            .trust(client.public())
            .build()
            .unwrap(),
        responder: Responder::new(&service, config(), 100).unwrap(),
        client,
        service,
        mallory,
    }
}

fn meta(pairs: &[(&str, &str)]) -> Metadata {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl World {
    fn call(&mut self, payload: &[u8]) -> (Vec<u8>, PendingReply) {
        let m = meta(&[(rpc::METHOD, "inventory.get"), (REPLY_TO, "_INBOX.c.1")]);
        self.requests
            .seal_request(payload, &m, self.service.public())
            .unwrap()
    }

    /// The service opens a request and replies `answer`.
    fn serve(&self, request: &[u8], answer: &[u8]) -> Vec<u8> {
        let opened = self.incoming.open(request).unwrap();
        let ctx = RequestContext::new(&self.incoming, &opened).unwrap();
        self.responder
            .seal_reply(&ctx, answer, &Metadata::new())
            .unwrap()
    }
}

#[test]
fn a_reply_to_another_request_is_refused_and_changes_nothing() {
    let mut w = world();
    let (req1, pending1) = w.call(b"one");
    let (req2, pending2) = w.call(b"two");
    let reply1 = w.serve(&req1, b"answer one");
    let reply2 = w.serve(&req2, b"answer two");
    // A broker delivers reply 1 to call 2's inbox, and reply 2 to call 1's.
    assert_eq!(
        pending2.open_reply(&w.replies, &reply1).unwrap_err(),
        RpcError::WrongRequest
    );
    assert_eq!(
        pending1.open_reply(&w.replies, &reply2).unwrap_err(),
        RpcError::WrongRequest
    );
    // Nothing was marked: the genuine replies still open, each once.
    assert_eq!(
        pending1.open_reply(&w.replies, &reply1).unwrap().payload,
        b"answer one"
    );
    assert_eq!(
        pending2.open_reply(&w.replies, &reply2).unwrap().payload,
        b"answer two"
    );
    assert_eq!(RpcError::WrongRequest.kind(), "wrong_request");
}

#[test]
fn a_reply_from_anyone_but_the_addressed_service_is_refused() {
    let mut w = world();
    let (req, pending) = w.call(b"q");
    // Mallory, trusted by the client's opener for other reasons, answers in the service's
    // place with a correct binding (the request id is no secret).
    let mut forger =
        Sealer::new(&w.mallory, &[Recipient::from(w.client.public())], config()).unwrap();
    let forged = forger
        .seal(
            b"forged",
            &meta(&[(IN_REPLY_TO, &pending.request_id_hex())]),
        )
        .unwrap();
    let e = pending.open_reply(&w.replies, &forged).unwrap_err();
    assert_eq!(
        e,
        RpcError::WrongResponder {
            expected: w.service.key_id(),
            found: w.mallory.key_id()
        }
    );
    assert_eq!(e.kind(), "wrong_responder");
    // The genuine reply still opens.
    let reply = w.serve(&req, b"genuine");
    assert_eq!(
        pending.open_reply(&w.replies, &reply).unwrap().payload,
        b"genuine"
    );
}

#[test]
fn a_replayed_reply_is_refused() {
    let mut w = world();
    let (req, pending) = w.call(b"q");
    let reply = w.serve(&req, b"a");
    pending.open_reply(&w.replies, &reply).unwrap();
    let e = pending.open_reply(&w.replies, &reply).unwrap_err();
    assert_eq!(e.rejection().map(|e| e.kind()), Some(ErrorKind::Replayed));
    assert_eq!(e.kind(), "replayed");
}

#[test]
fn a_message_without_a_binding_is_not_a_reply() {
    let mut w = world();
    let (_req, pending) = w.call(b"q");
    let mut s = Sealer::new(&w.service, &[Recipient::from(w.client.public())], config()).unwrap();
    let unbound = s.seal(b"hello", &Metadata::new()).unwrap();
    assert_eq!(
        pending.open_reply(&w.replies, &unbound).unwrap_err(),
        RpcError::NotAReply
    );
    // Not marked: it still opens as an ordinary message.
    w.replies.open(&unbound).unwrap();
    // A binding that is not 64 lowercase hex digits names no request.
    for bad in [
        pending.request_id_hex().to_uppercase(),
        pending.request_id_hex()[..63].to_string(),
        String::new(),
    ] {
        let m = s.seal(b"x", &meta(&[(IN_REPLY_TO, &bad)])).unwrap();
        assert_eq!(
            pending.open_reply(&w.replies, &m).unwrap_err(),
            RpcError::WrongRequest,
            "{bad:?}"
        );
    }
}

#[test]
fn a_rejected_envelope_is_reported_with_its_kind() {
    let mut w = world();
    let (req, pending) = w.call(b"q");
    let mut reply = w.serve(&req, b"a");
    let last = reply.len() - 1;
    reply[last] ^= 1;
    let e = pending.open_reply(&w.replies, &reply).unwrap_err();
    assert_eq!(e.kind(), "bad_authenticator");
    reply[last] ^= 1;
    pending.open_reply(&w.replies, &reply).unwrap();
}

#[test]
fn a_reply_cannot_be_handled_as_a_request() {
    let mut w = world();
    let (req, _pending) = w.call(b"q");
    let reply = w.serve(&req, b"a");
    // The client is a service too: the service's reply is offered to its request handler.
    let client_incoming = Opener::builder()
        .identity(&w.client)
        .trust(w.service.public())
        .build()
        .unwrap();
    let opened = client_incoming.open(&reply).unwrap();
    assert_eq!(
        RequestContext::new(&client_incoming, &opened).unwrap_err(),
        RpcError::NotARequest
    );
}

#[test]
fn the_reply_address_is_the_authenticated_one() {
    let mut w = world();
    let (req, _) = w.call(b"q");
    let opened = w.incoming.open(&req).unwrap();
    let ctx = RequestContext::new(&w.incoming, &opened).unwrap();
    assert_eq!(ctx.reply_to(), Some("_INBOX.c.1"));
    ctx.check_reply_to(Some("_INBOX.c.1")).unwrap();
    for delivered in [Some("_INBOX.attacker"), Some("_INBOX.c.1 "), None] {
        assert_eq!(
            ctx.check_reply_to(delivered).unwrap_err(),
            RpcError::ReplyToMismatch
        );
    }
    // A request that names no reply address matches only a delivery without one.
    let (req, _) = w
        .requests
        .seal_request(b"cast", &Metadata::new(), w.service.public())
        .unwrap();
    let ctx = RequestContext::new(&w.incoming, &w.incoming.open(&req).unwrap()).unwrap();
    assert_eq!(ctx.reply_to(), None);
    ctx.check_reply_to(None).unwrap();
    assert_eq!(
        ctx.check_reply_to(Some("_INBOX.x")).unwrap_err(),
        RpcError::ReplyToMismatch
    );
}

#[test]
fn reserved_metadata_keys_are_refused_where_they_do_not_belong() {
    let mut w = world();
    let svc = w.service.public();
    for (k, v) in [(IN_REPLY_TO, "00"), ("rpc.unknown", "x")] {
        assert!(matches!(
            w.requests.seal_request(b"q", &meta(&[(k, v)]), svc),
            Err(Misuse::InvalidMetadata(_))
        ));
    }
    let (req, _) = w.call(b"q");
    let ctx = RequestContext::new(&w.incoming, &w.incoming.open(&req).unwrap()).unwrap();
    assert!(matches!(
        ctx.reply_metadata(&meta(&[(IN_REPLY_TO, "00")])),
        Err(Misuse::InvalidMetadata(_))
    ));
    let m = ctx.reply_metadata(&meta(&[("app", "1")])).unwrap();
    assert_eq!(m["app"], "1");
    assert_eq!(m[IN_REPLY_TO].len(), 64);
}

#[test]
fn a_reply_is_sealed_to_the_client_alone() {
    let mut w = world();
    let (req, _) = w.call(b"q");
    let ctx = RequestContext::new(&w.incoming, &w.incoming.open(&req).unwrap()).unwrap();
    let to_mallory =
        &mut Sealer::new(&w.service, &[Recipient::from(w.mallory.public())], config()).unwrap();
    let to_both = &mut Sealer::new(
        &w.service,
        &[
            Recipient::from(w.client.public()),
            Recipient::from(w.mallory.public()),
        ],
        config(),
    )
    .unwrap();
    for s in [to_mallory, to_both] {
        assert!(matches!(
            ctx.seal_reply(s, b"a", &Metadata::new()),
            Err(Misuse::InvalidConfig(_))
        ));
    }
}

#[test]
fn no_reply_is_sealed_to_a_client_revoked_since() {
    let mut w = world();
    let (req, _) = w.call(b"q");
    let opened = w.incoming.open(&req).unwrap();
    w.incoming.revoke(w.client.key_id());
    assert_eq!(
        RequestContext::new(&w.incoming, &opened).unwrap_err(),
        RpcError::UntrustedClient
    );
}

fn carries_block(envelope: &[u8]) -> bool {
    inspect(envelope).unwrap().session.is_some()
}

#[test]
fn replies_carry_their_block_only_when_the_client_may_lack_it() {
    let mut w = world();
    let mut replies = Vec::new();
    for i in 0..3u8 {
        let (req, pending) = w.call(&[i]);
        let reply = w.serve(&req, &[i]);
        replies.push(carries_block(&reply));
        pending.open_reply(&w.replies, &reply).unwrap();
    }
    assert_eq!(replies, [true, false, false], "steady state: by reference");

    // The client restarts: a new request sealer (a new request session) and a new opener
    // with an empty session cache. Its first reply carries the block, with no round trip.
    let mut requests =
        Sealer::new(&w.client, &[Recipient::from(w.service.public())], config()).unwrap();
    let replies2 = Opener::builder()
        .identity(&w.client)
        .trust(w.service.public())
        .build()
        .unwrap();
    for (i, block) in [(0u8, true), (1, false)] {
        let (req, pending) = requests
            .seal_request(&[i], &Metadata::new(), w.service.public())
            .unwrap();
        let reply = w.serve(&req, b"after restart");
        assert_eq!(carries_block(&reply), block, "reply {i}");
        pending.open_reply(&replies2, &reply).unwrap();
    }
    // The first process, still running beside the second (one identity, two processes),
    // keeps getting replies it can open.
    let (req, pending) = w.call(b"again");
    let reply = w.serve(&req, b"a");
    assert!(!carries_block(&reply));
    pending.open_reply(&w.replies, &reply).unwrap();
    assert_eq!(
        w.responder_sessions(),
        1,
        "one reply session for the client"
    );
}

impl World {
    fn responder_sessions(&self) -> u64 {
        // The replies' session references: all equal when one reply session served all.
        let mut refs = std::collections::BTreeSet::new();
        for _ in 0..2 {
            let (req, _) = {
                let mut s = Sealer::new(
                    &self.client,
                    &[Recipient::from(self.service.public())],
                    config(),
                )
                .unwrap();
                s.seal_request(b"x", &Metadata::new(), self.service.public())
                    .unwrap()
            };
            refs.insert(inspect(&self.serve(&req, b"y")).unwrap().session_ref);
        }
        refs.len() as u64
    }
}

#[test]
fn a_receiver_lacking_the_session_asks_for_the_block_and_opens_the_same_envelope() {
    let mut w = world();
    let (first, _) = w.call(b"0");
    w.incoming.open(&first).unwrap();
    let (second, pending) = w.call(b"1");
    assert!(!carries_block(&second));

    // The service restarts (or a queue-group replica that never saw the session gets it).
    let replica = Opener::builder()
        .identity(&w.service)
        .trust(w.client.public())
        .build()
        .unwrap();
    let e = replica.open(&second).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UnknownSession);
    let ask = NeedSession::from_rejection(&second, &e).expect("a request for the block");
    assert_eq!(Some(ask.session_ref()), w.requests.session_ref());
    // What travels back to the client, and is parsed there.
    let ask = NeedSession::parse(&ask.to_string()).unwrap();
    let block = w
        .requests
        .session_block_for(&ask.session_ref())
        .unwrap()
        .to_vec();

    // The client sends the block beside the unchanged envelope: the same message opens,
    // once, so it is neither lost nor duplicated.
    replica.import_session(&block).unwrap();
    let opened = replica.open(&second).unwrap();
    assert_eq!(opened.payload, b"1");
    assert_eq!(
        replica.open(&second).unwrap_err().kind(),
        ErrorKind::Replayed
    );
    let ctx = RequestContext::new(&replica, &opened).unwrap();
    let reply = w
        .responder
        .seal_reply(&ctx, b"r", &Metadata::new())
        .unwrap();
    pending.open_reply(&w.replies, &reply).unwrap();

    // Only unknown_session asks for a block. (The replica has a replay store of its own
    // here, so the first request is new to it; a fleet shares one.)
    replica.open(&first).unwrap();
    let other = replica.open(&first).unwrap_err();
    assert_eq!(other.kind(), ErrorKind::Replayed);
    assert_eq!(NeedSession::from_rejection(&first, &other), None);
    // Garbage never parses.
    for bad in ["", "zz", &"A".repeat(32), &"0".repeat(31), &"0".repeat(33)] {
        assert_eq!(NeedSession::parse(bad), None, "{bad:?}");
    }
}

#[test]
fn a_sealer_gives_the_blocks_of_its_current_and_previous_session_only() {
    let w = world();
    let mut s = Sealer::new(&w.client, &[Recipient::from(w.service.public())], config()).unwrap();
    assert_eq!(s.session_ref(), None);
    s.seal(b"a", &Metadata::new()).unwrap();
    let r1 = s.session_ref().unwrap();
    let b1 = s.session_block_for(&r1).unwrap().to_vec();
    s.rotate();
    assert_eq!(s.session_block_for(&r1), Some(&b1[..]), "just rotated");
    s.seal(b"b", &Metadata::new()).unwrap();
    let r2 = s.session_ref().unwrap();
    assert_ne!(r1, r2);
    assert!(s.session_block_for(&r2).is_some());
    assert_eq!(s.session_block_for(&r1), Some(&b1[..]));
    s.rotate();
    s.seal(b"c", &Metadata::new()).unwrap();
    assert_eq!(s.session_block_for(&r1), None, "two rotations ago");
    assert_eq!(s.session_block_for(&[0u8; 16]), None);
}

#[test]
fn inline_next_makes_exactly_the_next_envelope_carry_the_block() {
    let w = world();
    let mut s = Sealer::new(&w.client, &[Recipient::from(w.service.public())], config()).unwrap();
    let seen: Vec<bool> = (0..5)
        .map(|i| {
            if i == 2 {
                s.inline_next();
            }
            carries_block(&s.seal(b"m", &Metadata::new()).unwrap())
        })
        .collect();
    assert_eq!(seen, [true, false, true, false, false]);
    // A fresh receiver opens the forced one.
    let o = Opener::builder()
        .identity(&w.service)
        .trust(w.client.public())
        .build()
        .unwrap();
    s.inline_next();
    o.open(&s.seal(b"m", &Metadata::new()).unwrap()).unwrap();
}

#[test]
fn the_request_id_is_the_message_hash_both_sides_see() {
    let mut w = world();
    let (req, pending) = w.call(b"q");
    let opened: Opened = w.incoming.open(&req).unwrap();
    assert_eq!(opened.message_hash, pending.request_id());
    let ctx = RequestContext::new(&w.incoming, &opened).unwrap();
    assert_eq!(ctx.request_id(), pending.request_id());
    assert_eq!(ctx.client().key_id(), w.client.key_id());
    assert_eq!(pending.responder(), w.service.key_id());
    let hex: String = pending
        .request_id()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(pending.request_id_hex(), hex);
}

#[test]
fn the_rpc_types_cross_threads_and_await_points() {
    fn send_static<T: Send + 'static>() {}
    fn shared<T: Send + Sync + 'static>() {}
    send_static::<rpcseal::DeferredMark>();
    shared::<PendingReply>();
    shared::<RequestContext>();
    shared::<Responder>();
    shared::<RpcError>();
    shared::<NeedSession>();
}

#[test]
fn a_block_of_another_session_does_not_open_the_envelope() {
    let mut w = world();
    let (first, _) = w.call(b"0");
    w.incoming.open(&first).unwrap();
    let (second, _) = w.call(b"1");
    // Another session of the same client, whose block a hostile party sends instead.
    let mut other =
        Sealer::new(&w.client, &[Recipient::from(w.service.public())], config()).unwrap();
    other.seal(b"x", &Metadata::new()).unwrap();
    let wrong_block = other
        .session_block_for(&other.session_ref().unwrap())
        .unwrap()
        .to_vec();
    let replica = Opener::builder()
        .identity(&w.service)
        .trust(w.client.public())
        .build()
        .unwrap();
    replica.import_session(&wrong_block).unwrap();
    assert_eq!(
        replica.open(&second).unwrap_err().kind(),
        ErrorKind::UnknownSession
    );
    // Garbage as a block is rejected and changes nothing.
    assert!(replica.import_session(b"\x93garbage").is_err());
    let right = w
        .requests
        .session_block_for(&w.requests.session_ref().unwrap())
        .unwrap();
    replica.import_session(right).unwrap();
    replica.open(&second).unwrap();
}

#[test]
fn after_the_reply_session_rotates_the_next_reply_carries_the_new_block() {
    let mut w = world();
    w.responder = Responder::new(&w.service, config().max_messages(2), 10).unwrap();
    let mut seen = Vec::new();
    for i in 0..5u8 {
        let (req, pending) = w.call(&[i]);
        let reply = w.serve(&req, &[i]);
        seen.push(carries_block(&reply));
        pending.open_reply(&w.replies, &reply).unwrap();
    }
    assert_eq!(seen, [true, false, true, false, true]);
}

/// Parks every signature made on a thread named `parked` inside signing until the test
/// releases it: `entered` is passed once the thread is in, `release` lets it go on.
struct Parking {
    entered: std::sync::Arc<std::sync::Barrier>,
    release: std::sync::Arc<std::sync::Barrier>,
}

impl Parking {
    fn install() -> Parking {
        use std::sync::{Arc, Barrier};
        let entered = Arc::new(Barrier::new(2));
        let release = Arc::new(Barrier::new(2));
        let (e, r) = (entered.clone(), release.clone());
        rpcseal::mutant::set_sign_hook(Some(Arc::new(move || {
            if std::thread::current().name() == Some("parked") {
                e.wait();
                r.wait();
            }
        })));
        Parking { entered, release }
    }
}

/// Runs `other` on its own thread while the `parked` thread is inside a signature, and
/// says whether it finished before the parked one was released (a generous bound: it
/// decides only between passing and hanging, nothing is timed).
fn runs_while_parked<A, B>(parked: A, other: B) -> bool
where
    A: FnOnce() + Send + 'static,
    B: FnOnce() + Send + 'static,
{
    let p = Parking::install();
    let a = std::thread::Builder::new()
        .name("parked".into())
        .spawn(parked)
        .unwrap();
    p.entered.wait();
    let (tx, rx) = std::sync::mpsc::channel();
    let b = std::thread::spawn(move || {
        other();
        let _ = tx.send(());
    });
    let finished = rx.recv_timeout(std::time::Duration::from_secs(30)).is_ok();
    p.release.wait();
    a.join().unwrap();
    b.join().unwrap();
    rpcseal::mutant::set_sign_hook(None);
    finished
}

/// issues 16 and 18: the responder's per-client sealer is not held while a reply is
/// signed, so two replies to one client are signed at the same time; each still gets its
/// own sequence number and opens at the client.
#[test]
fn replies_to_one_client_are_signed_concurrently() {
    use std::sync::Arc;
    let signed = || SealerConfig::new(Mode::Signed).inline(Inline::FirstMessage);
    let client = Identity::generate();
    let service = Identity::generate();
    let mut requests =
        Sealer::new(&client, &[Recipient::from(service.public())], signed()).unwrap();
    let incoming = Opener::builder()
        .identity(&service)
        .trust(client.public())
        .build()
        .unwrap();
    let replies = Opener::builder()
        .identity(&client)
        .trust(service.public())
        .build()
        .unwrap();
    let responder = Arc::new(Responder::new(&service, signed(), 4).unwrap());
    let mut calls = Vec::new();
    for i in 0..3 {
        let (env, pending) = requests
            .seal_request(
                format!("q{i}").as_bytes(),
                &Metadata::new(),
                service.public(),
            )
            .unwrap();
        let ctx = RequestContext::new(&incoming, &incoming.open(&env).unwrap()).unwrap();
        calls.push((ctx, pending));
    }
    // The reply session exists before the race (its block signature is the session's).
    let first = responder
        .seal_reply(&calls[0].0, b"r0", &Metadata::new())
        .unwrap();
    let out = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (r1, c1, o1) = (responder.clone(), calls[1].0.clone(), out.clone());
    let (r2, c2, o2) = (responder.clone(), calls[2].0.clone(), out.clone());
    let concurrent = runs_while_parked(
        move || {
            let e = r1.seal_reply(&c1, b"r1", &Metadata::new()).unwrap();
            o1.lock().unwrap().push((1, e));
        },
        move || {
            let e = r2.seal_reply(&c2, b"r2", &Metadata::new()).unwrap();
            o2.lock().unwrap().push((2, e));
        },
    );
    assert!(
        concurrent,
        "a reply to the same client waited for another reply's signature"
    );
    let mut envs = std::mem::take(&mut *out.lock().unwrap());
    envs.push((0, first));
    envs.sort();
    let mut seqs = Vec::new();
    for (i, e) in envs {
        let opened = calls[i].1.open_reply(&replies, &e).unwrap();
        assert_eq!(opened.payload, format!("r{i}").into_bytes());
        seqs.push(opened.seq);
    }
    seqs.sort();
    seqs.dedup();
    assert_eq!(seqs.len(), 3, "every reply has its own sequence number");
}

/// The reply's binding is written into the metadata map in its sorted place without
/// building that map: the reply's metadata is exactly the caller's plus the binding, for
/// keys sorting before, between and after `rpc.in-reply-to`, at the 64-entry limit too.
#[test]
fn the_reply_metadata_is_the_callers_plus_the_binding_in_order() {
    let mut w = world();
    for keys in [
        vec![],
        vec!["a"],
        vec!["zz"],
        vec!["a", "rpc.id", "rpc.method", "zz", "\u{e9}"],
    ] {
        let (req, pending) = w
            .requests
            .seal_request(b"q", &Metadata::new(), w.service.public())
            .unwrap();
        let ctx = RequestContext::new(&w.incoming, &w.incoming.open(&req).unwrap()).unwrap();
        let m = meta(&keys.iter().map(|k| (*k, "v")).collect::<Vec<_>>());
        let reply = w.responder.seal_reply(&ctx, b"r", &m).unwrap();
        let opened = pending.open_reply(&w.replies, &reply).unwrap();
        assert_eq!(opened.metadata, ctx.reply_metadata(&m).unwrap(), "{keys:?}");
    }
    let (req, _) = w
        .requests
        .seal_request(b"q", &Metadata::new(), w.service.public())
        .unwrap();
    let ctx = RequestContext::new(&w.incoming, &w.incoming.open(&req).unwrap()).unwrap();
    let full: Metadata = (0..64).map(|i| (format!("k{i:02}"), "v".into())).collect();
    assert!(matches!(
        w.responder.seal_reply(&ctx, b"r", &full),
        Err(Misuse::InvalidMetadata(_))
    ));
    let fits: Metadata = (0..63).map(|i| (format!("k{i:02}"), "v".into())).collect();
    assert!(w.responder.seal_reply(&ctx, b"r", &fits).is_ok());
}

// spec/rpc.md §6.3: the client acknowledges the reply session it holds (`rpc.reply-session`);
// until a request acknowledges the current reply session, its reply carries the block.

#[test]
fn concurrent_first_calls_open_whatever_order_their_replies_arrive_in() {
    let mut w = world();
    let (req1, pending1) = w.call(b"one");
    let (req2, pending2) = w.call(b"two");
    let reply1 = w.serve(&req1, b"1");
    let reply2 = w.serve(&req2, b"2");
    assert!(carries_block(&reply1) && carries_block(&reply2));
    // The second reply is delivered first (another HTTP/2 stream, another connection).
    assert_eq!(
        pending2.open_reply(&w.replies, &reply2).unwrap().payload,
        b"2"
    );
    assert_eq!(
        pending1.open_reply(&w.replies, &reply1).unwrap().payload,
        b"1"
    );
}

#[test]
fn after_an_acknowledging_request_replies_go_by_reference() {
    let mut w = world();
    let (req, pending) = w.call(b"q");
    let opened = w.incoming.open(&req).unwrap();
    assert!(!opened.metadata.contains_key(rpc::REPLY_SESSION));
    let ctx = RequestContext::new(&w.incoming, &opened).unwrap();
    assert!(ctx.reply_sessions().is_empty());
    let first = w
        .responder
        .seal_reply(&ctx, b"a", &Metadata::new())
        .unwrap();
    let reply_session = inspect(&first).unwrap().session_ref;
    pending.open_reply(&w.replies, &first).unwrap();
    for i in 0..3u8 {
        let (req, pending) = w.call(&[i]);
        let opened = w.incoming.open(&req).unwrap();
        let hex: String = reply_session.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(opened.metadata[rpc::REPLY_SESSION], hex);
        let ctx = RequestContext::new(&w.incoming, &opened).unwrap();
        assert_eq!(ctx.reply_sessions(), [reply_session]);
        let reply = w
            .responder
            .seal_reply(&ctx, &[i], &Metadata::new())
            .unwrap();
        assert!(!carries_block(&reply), "reply {i} goes by reference");
        pending.open_reply(&w.replies, &reply).unwrap();
    }
    // A request sealed without the client's state (`seal` alone, an older client) names
    // no reply session, and its reply carries the block again.
    let req = w.requests.seal(b"old", &Metadata::new()).unwrap();
    assert!(carries_block(&w.serve(&req, b"a")));
}

#[test]
fn a_lost_first_reply_does_not_break_later_replies() {
    let mut w = world();
    let (req, _cancelled) = w.call(b"lost");
    let lost = w.serve(&req, b"never delivered");
    assert!(carries_block(&lost));
    for i in 0..3u8 {
        let (req, pending) = w.call(&[i]);
        let reply = w.serve(&req, &[i]);
        // Until one reply opened, every reply carries the block; then by reference.
        assert_eq!(carries_block(&reply), i == 0, "reply {i}");
        assert_eq!(pending.open_reply(&w.replies, &reply).unwrap().payload, [i]);
    }
}

#[test]
fn a_client_that_lost_the_reply_session_stops_acknowledging_it() {
    let mut w = world();
    let (req, pending) = w.call(b"q");
    pending
        .open_reply(&w.replies, &w.serve(&req, b"a"))
        .unwrap();
    // The client's opener loses the reply session (eviction, a new opener).
    w.replies = Opener::builder()
        .identity(&w.client)
        .trust(w.service.public())
        .build()
        .unwrap();
    let (req, pending) = w.call(b"q");
    let reply = w.serve(&req, b"a");
    assert!(!carries_block(&reply));
    let err = pending.open_reply(&w.replies, &reply).unwrap_err();
    assert_eq!(err.kind(), "unknown_session");
    // The failed call withdrew the acknowledgement: the next reply carries the block.
    let (req, pending) = w.call(b"q");
    let reply = w.serve(&req, b"a");
    assert!(carries_block(&reply));
    pending.open_reply(&w.replies, &reply).unwrap();
}

#[test]
fn a_malformed_reply_session_is_refused_and_cannot_be_set_by_the_caller() {
    let mut w = world();
    let svc = w.service.public();
    // The caller cannot set the key: the sealer sets it from what the client holds.
    assert!(matches!(
        w.requests
            .seal_request(b"q", &meta(&[(rpc::REPLY_SESSION, &"0".repeat(32))]), svc),
        Err(Misuse::InvalidMetadata(_))
    ));
    let (req, _) = w.call(b"q");
    let ctx = RequestContext::new(&w.incoming, &w.incoming.open(&req).unwrap()).unwrap();
    assert!(matches!(
        ctx.reply_metadata(&meta(&[(rpc::REPLY_SESSION, &"0".repeat(32))])),
        Err(Misuse::InvalidMetadata(_))
    ));
    // A request sealed by hand with a malformed value: a typed refusal, no context.
    let good = "0123456789abcdef0123456789abcdef";
    for bad in [
        "",
        "0123456789ABCDEF0123456789ABCDEF",
        &good[..31],
        &format!("{good}0"),
        "0123456789abcdef0123456789abcdeg",
        &format!("{} ", &good[..31]),
        &format!("{good},"),
        &format!(",{good}"),
        &format!("{good}, {}", &good[..31]),
        &format!("{good};{good}"),
        &[good; 9].join(","),
    ] {
        let req = w
            .requests
            .seal(b"q", &meta(&[(rpc::REPLY_SESSION, bad)]))
            .unwrap();
        let opened = w.incoming.open(&req).unwrap();
        let err = RequestContext::new(&w.incoming, &opened).unwrap_err();
        assert_eq!(err, RpcError::InvalidReplySession, "{bad:?}");
        assert_eq!(err.kind(), "invalid_reply_session");
    }
    // Well-formed values naming sessions the service never used: the block is inlined.
    for v in [good.to_string(), [good; 8].join(",")] {
        let req = w
            .requests
            .seal(b"q", &meta(&[(rpc::REPLY_SESSION, &v)]))
            .unwrap();
        let opened = w.incoming.open(&req).unwrap();
        let ctx = RequestContext::new(&w.incoming, &opened).unwrap();
        assert_eq!(ctx.reply_sessions().len(), v.len() / 33 + 1);
        assert!(carries_block(
            &w.responder
                .seal_reply(&ctx, b"a", &Metadata::new())
                .unwrap()
        ));
    }
}

#[test]
fn replicas_of_one_service_each_send_by_reference_once_acknowledged() {
    // A queue group: replicas with the service's identity, each with its own responder
    // and so its own reply session for the client, answering requests in turn.
    let mut w = world();
    let replicas: Vec<Responder> = (0..3)
        .map(|_| Responder::new(&w.service, config(), 10).unwrap())
        .collect();
    let mut seen = Vec::new();
    for round in 0..3 {
        for r in &replicas {
            let (req, pending) = w.call(&[round]);
            let opened = w.incoming.open(&req).unwrap();
            let ctx = RequestContext::new(&w.incoming, &opened).unwrap();
            let reply = r.seal_reply(&ctx, b"a", &Metadata::new()).unwrap();
            seen.push(carries_block(&reply));
            pending.open_reply(&w.replies, &reply).unwrap();
        }
    }
    assert_eq!(
        seen,
        [true, true, true, false, false, false, false, false, false]
    );
}
