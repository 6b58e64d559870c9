//! The four envelope operations of one request/reply call, each run `N` times in steady
//! state, for an instruction-count profile (load-independent on a shared machine):
//!
//! ```text
//! cargo build --release --example rpc_ops
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/rpc.cg target/release/examples/rpc_ops reply 20000
//! callgrind_annotate /tmp/rpc.cg | head -60
//! ```
//!
//! The first argument picks what runs: `seal` (a plain `Sealer::seal`), `open`
//! (`Opener::open`), `request` (`Sealer::seal_request` and the service's `open_unmarked`,
//! `RequestContext::new`, `mark`), `reply` (`Responder::seal_reply` and
//! `PendingReply::open_reply`), or `call` (a whole call: all four). `MODE=signed` for signed
//! mode (MAC by default).

use rpcseal::rpc::{self, RequestContext, Responder};
use rpcseal::{Identity, Inline, Metadata, Mode, Opener, Recipient, Sealer, SealerConfig};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let what = args.first().map(String::as_str).unwrap_or("call");
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let mode = match std::env::var("MODE").as_deref() {
        Ok("signed") => Mode::Signed,
        _ => Mode::Mac,
    };
    let config = SealerConfig::new(mode).inline(Inline::FirstMessage);
    let (client, service) = (Identity::generate(), Identity::generate());
    let mut requests = Sealer::new(
        &client,
        &[Recipient::from(service.public())],
        config.clone(),
    )
    .unwrap();
    let replies = Opener::builder()
        .identity(&client)
        .trust(service.public())
        .build()
        .unwrap();
    let incoming = Opener::builder()
        .identity(&service)
        .trust(client.public())
        .build()
        .unwrap();
    let responder = Responder::new(&service, config, 100).unwrap();
    let body = vec![0x5a; 256];
    let mut meta = Metadata::new();
    meta.insert(rpc::METHOD.into(), "echo".into());
    meta.insert(
        rpc::REPLY_TO.into(),
        "_INBOX.abcdefghijklmnopqrstuv.17".into(),
    );
    let empty = Metadata::new();

    // One call to reach steady state (both sessions known on both sides).
    let call = |requests: &mut Sealer| {
        let (req, pending) = requests
            .seal_request(&body, &meta, service.public())
            .unwrap();
        let (opened, mark) = incoming.open_unmarked(&req).unwrap();
        let ctx = RequestContext::new(&incoming, &opened).unwrap();
        incoming.mark(mark).unwrap();
        let reply = responder.seal_reply(&ctx, &opened.payload, &empty).unwrap();
        pending.open_reply(&replies, &reply).unwrap();
    };
    call(&mut requests);
    call(&mut requests);

    let mut sum = 0usize;
    match what {
        "seal" => {
            for _ in 0..n {
                sum += requests.seal(&body, &meta).unwrap().len();
            }
        }
        "open" => {
            let envs: Vec<Vec<u8>> = (0..n)
                .map(|_| requests.seal(&body, &meta).unwrap())
                .collect();
            let start = std::time::Instant::now();
            for e in &envs {
                sum += incoming.open(e).unwrap().payload.len();
            }
            eprintln!("open: {:?} per op", start.elapsed() / n as u32);
        }
        "request" => {
            for _ in 0..n {
                let (req, _) = requests
                    .seal_request(&body, &meta, service.public())
                    .unwrap();
                let (opened, mark) = incoming.open_unmarked(&req).unwrap();
                let ctx = RequestContext::new(&incoming, &opened).unwrap();
                incoming.mark(mark).unwrap();
                sum += ctx.request_id()[0] as usize;
            }
        }
        "reply" => {
            let mut calls = Vec::with_capacity(n);
            for _ in 0..n {
                let (req, pending) = requests
                    .seal_request(&body, &meta, service.public())
                    .unwrap();
                let (opened, mark) = incoming.open_unmarked(&req).unwrap();
                let ctx = RequestContext::new(&incoming, &opened).unwrap();
                incoming.mark(mark).unwrap();
                calls.push((ctx, opened.payload, pending));
            }
            let start = std::time::Instant::now();
            let sealed: Vec<_> = calls
                .iter()
                .map(|(ctx, p, _)| responder.seal_reply(ctx, p, &empty).unwrap())
                .collect();
            let mid = std::time::Instant::now();
            for ((_, _, pending), r) in calls.iter().zip(&sealed) {
                sum += pending.open_reply(&replies, r).unwrap().payload.len();
            }
            eprintln!(
                "seal_reply: {:?} per op, open_reply: {:?} per op",
                (mid - start) / n as u32,
                mid.elapsed() / n as u32
            );
        }
        _ => {
            for _ in 0..n {
                call(&mut requests);
            }
        }
    }
    println!("{sum}");
}
