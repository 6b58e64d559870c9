//! `rpcseal open`: check one envelope and write its payload, through [`rpcseal::Opener`].

use std::path::PathBuf;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rpcseal::replay::file::FileReplayStore;
use rpcseal::{
    ErrorKind, Keyring, Opened, Opener, OpenerBuilder, Policy, Received, DEFAULT_MAX_PAYLOAD,
};
use serde_json::json;

use super::keys::{self, SecretKey};
use super::{hex, read_input, write_output, Failure, Result};

pub struct Args {
    pub keys: Vec<PathBuf>,
    pub trust: Vec<String>,
    pub keyring: Option<PathBuf>,
    pub allow_legacy: bool,
    pub replay_state: Option<PathBuf>,
    pub replay_redis: Option<String>,
    pub replay_redis_prefix: Option<String>,
    pub replay_redis_new_prefix: bool,
    pub dangerous_accept_mac_via_group: bool,
    pub json: bool,
    pub input: Option<PathBuf>,
    pub output: Option<PathBuf>,
}

/// The default policy's largest envelope: the largest payload plus 1 MiB for the rest.
const MAX_ENVELOPE: usize = DEFAULT_MAX_PAYLOAD + 1024 * 1024;

pub fn run(args: Args) -> Result<()> {
    let mut builder = Opener::builder();
    builder = with_redis(builder, &args)?;
    for path in &args.keys {
        builder = match keys::read_secret_key(path)? {
            SecretKey::Identity(id) => builder.identity(&id),
            SecretKey::Group(g) => builder.group_key(&g),
            SecretKey::Symmetric(k) => builder.symmetric_key(&k),
        };
    }
    for sender in keys::senders(&args.trust)? {
        builder = builder.trust(&sender);
    }
    if let Some(path) = &args.keyring {
        let ring = Keyring::load(path)
            .map_err(|e| Failure::file(format!("cannot use the keyring: {e}")))?;
        builder = builder.keyring(ring);
    }
    let mut policy = Policy::default().parallel_hash_from(Some(super::OPEN_PARALLEL_HASH_FROM));
    if args.dangerous_accept_mac_via_group {
        policy = policy.dangerous_accept_mac_via_group_key();
    }
    if args.allow_legacy {
        policy = policy.dangerous_accept_unauthenticated_legacy_v2();
    }
    builder = builder.policy(policy);
    if let Some(path) = &args.replay_state {
        let (store, created) = FileReplayStore::open_or_create(path)
            .map_err(|e| Failure::file(format!("cannot use the replay state: {e}")))?;
        if created {
            eprintln!(
                "rpcseal: note: created a new replay state file {}",
                path.display()
            );
        }
        builder = builder.replay_store(Arc::new(store));
    }
    let opener = builder
        .build()
        .map_err(|e| Failure::usage(format!("cannot open: {e}")))?;

    // One byte past the limit is enough for the opener to reject it as too large.
    let (envelope, _) = read_input(args.input.as_deref(), MAX_ENVELOPE)?;
    let received = opener.open_any(&envelope).map_err(|e| {
        if e.kind() == ErrorKind::ReplayUnavailable {
            // Not the envelope's fault: the state file is damaged, locked or full. The
            // envelope was not accepted (fail closed).
            Failure::file(format!("envelope not accepted: {e}"))
        } else {
            Failure::rejected(format!("envelope rejected: {e}"))
        }
    })?;
    let opened = match received {
        Received::Verified(o) => o,
        Received::UnauthenticatedLegacy(m) => {
            eprintln!(
                "rpcseal: warning: a legacy v2 envelope (oslo.version {}.{}): NOT authenticated, \
                 anyone could have written it",
                m.version().0,
                m.version().1
            );
            let out = if args.json {
                let mut t = json!({"legacy": true, "authenticated": false, "unauthenticated_message": m.unauthenticated_message()}).to_string();
                t.push('\n');
                t
            } else {
                m.unauthenticated_message().to_owned()
            };
            return write_output(args.output.as_deref(), out.as_bytes(), false);
        }
        // Received is non-exhaustive: a kind this build does not know is not accepted.
        _ => {
            return Err(Failure::rejected(
                "envelope rejected: an unknown kind of result",
            ))
        }
    };

    if args.json {
        let mut text = to_json(&opened).to_string();
        text.push('\n');
        write_output(args.output.as_deref(), text.as_bytes(), false)
    } else {
        write_output(args.output.as_deref(), &opened.payload, false)
    }
}

#[cfg(feature = "redis")]
fn with_redis(builder: OpenerBuilder, args: &Args) -> Result<OpenerBuilder> {
    use rpcseal::replay::{RedisReplayConfig, RedisReplayStore};
    let Some(url) = args.replay_redis.as_deref() else {
        return Ok(builder);
    };
    let mut config = RedisReplayConfig::new(url);
    if let Some(prefix) = &args.replay_redis_prefix {
        config.key_prefix.clone_from(prefix);
    }
    // `create_marker_if_absent` only on request (--replay-redis-new-prefix): each run of
    // the CLI connects anew, so with it always on, a run starting after Redis lost its
    // state would re-create the marker without watermark before any check could notice
    // the loss, and replays of the last minutes would be accepted. Without it a missing
    // marker is treated as a loss: the first check re-creates it with a watermark, and a
    // brand-new prefix rejects messages for `loss_margin_secs` (fails closed).
    config.create_marker_if_absent = args.replay_redis_new_prefix;
    // The URL may hold a password: it is never printed.
    let store = RedisReplayStore::connect(config)
        .map_err(|e| Failure::file(format!("cannot use the Redis replay store: {e}")))?;
    Ok(builder.replay_store(Arc::new(store)))
}

#[cfg(not(feature = "redis"))]
fn with_redis(builder: OpenerBuilder, args: &Args) -> Result<OpenerBuilder> {
    if args.replay_redis.is_none()
        && (args.replay_redis_prefix.is_some() || args.replay_redis_new_prefix)
    {
        return Err(Failure::usage(
            "--replay-redis-prefix and --replay-redis-new-prefix need --replay-redis URL",
        ));
    }
    match args.replay_redis {
        None => Ok(builder),
        Some(_) => Err(Failure::usage(
            "--replay-redis is not available in this build (built without the `redis` \
             feature); use --replay-state FILE",
        )),
    }
}

fn to_json(o: &Opened) -> serde_json::Value {
    let s = &o.session;
    json!({
        "payload_base64": STANDARD.encode(&o.payload),
        "payload_len": o.payload.len(),
        "metadata": o.metadata,
        "sender": o.sender.to_string(),
        "sender_name": &*o.sender_name,
        "seq": o.seq,
        "timestamp": o.timestamp,
        "session": {
            "session_id": hex(&s.session_id),
            "session_ref": hex(&s.session_ref),
            "mode": s.mode.as_str(),
            "suite": { "id": s.suite.id(), "name": s.suite.name() },
            "not_before": s.not_before,
            "expires": s.expires,
            "max_messages": s.max_messages,
            "max_bytes": s.max_bytes,
            "recipient_index": s.recipient_index,
            "recipients": s.recipients,
            "via_key": s.via_key.to_string(),
            "via_group": s.via_group,
        },
    })
}
