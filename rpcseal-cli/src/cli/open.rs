//! `rpcseal open`: check one envelope and write its payload, through [`rpcseal::Opener`].

use std::path::PathBuf;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rpcseal::replay::file::{FileReplayError, FileReplayStore};
use rpcseal::{
    ErrorKind, Keyring, Opened, Opener, OpenerBuilder, Policy, Received, DEFAULT_MAX_PAYLOAD,
};
use serde_json::json;

use super::keys::{self, SecretKey};
use super::{hex, read_input, write_private_output, Failure, Result};

pub struct Args {
    pub keys: Vec<PathBuf>,
    pub trust: Vec<String>,
    pub keyring: Option<PathBuf>,
    pub allow_legacy: bool,
    pub replay_state: Option<PathBuf>,
    pub replay_state_new: bool,
    pub replay_redis: Option<RedisUrl>,
    pub replay_redis_prefix: Option<String>,
    pub replay_redis_new_prefix: bool,
    pub dangerous_accept_mac_via_group: bool,
    pub require_pq: bool,
    pub json: bool,
    pub input: Option<PathBuf>,
    pub output: Option<PathBuf>,
    pub force: bool,
}

/// Where the Redis URL comes from: the command line, a file, or an environment variable.
///
/// Built without the `redis` feature, the tool refuses the Redis flags as a usage error
/// before the URL is read, so the fields are then never read.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub enum RedisUrl {
    Arg(String),
    File(PathBuf),
    Env(String),
}

/// The default policy's largest envelope: the largest payload plus 1 MiB for the rest.
const MAX_ENVELOPE: usize = DEFAULT_MAX_PAYLOAD + 1024 * 1024;

pub fn run(args: Args) -> Result<()> {
    let mut builder = Opener::builder();
    let mut identities = Vec::new();
    for path in &args.keys {
        builder = match keys::read_secret_key(path)? {
            SecretKey::Identity(id) => {
                identities.push(id.public().key_id());
                builder.identity(&id)
            }
            SecretKey::Group(g) => builder.group_key(&g),
            SecretKey::Symmetric(k) => builder.symmetric_key(&k),
        };
    }
    // The same smallest id whatever the order of --key: replicas agree on the prefix.
    identities.sort_by_key(|id| *id.as_bytes());
    builder = with_redis(builder, &args, identities.first())?;
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
    if args.require_pq {
        policy = policy.require_post_quantum();
    }
    builder = builder.policy(policy);
    let mut file_store = None;
    if let Some(path) = &args.replay_state {
        // spec/replay.md §7.1: a missing state file is an error, never an empty store.
        let store = if args.replay_state_new {
            FileReplayStore::create(path).map_err(|e| {
                let hint = match e {
                    FileReplayError::Exists { .. } => " (drop --replay-state-new to use it)",
                    _ => "",
                };
                Failure::file(format!("cannot create the replay state: {e}{hint}"))
            })?
        } else {
            FileReplayStore::open(path).map_err(|e| {
                let hint = match e {
                    FileReplayError::Missing { .. } => {
                        " (--replay-state-new creates it, for a state file that is brand new)"
                    }
                    _ => "",
                };
                Failure::file(format!("cannot use the replay state: {e}{hint}"))
            })?
        };
        let store = Arc::new(store);
        builder = builder.replay_store(store.clone());
        file_store = Some(store);
    } else if args.replay_redis.is_none() {
        eprintln!(
            "rpcseal: warning: no replay state (--replay-state FILE or --replay-redis URL): \
             this run cannot detect a replayed envelope"
        );
    }
    let opener = builder
        .build()
        .map_err(|e| Failure::usage(format!("cannot open: {e}")))?;

    // One byte past the limit is enough for the opener to reject it as too large.
    let (envelope, _) = read_input(args.input.as_deref(), MAX_ENVELOPE)?;
    let received = opener.open_any(&envelope);
    if let Some(store) = &file_store {
        if store.losses_detected() > 0 {
            let watermark = store
                .watermark()
                .map_or_else(|_| "now + 300 s".to_owned(), |w| w.to_string());
            eprintln!(
                "rpcseal: warning: the replay state file {} cannot prove it is the latest copy \
                 (restored, copied or moved into place, or the clock stepped back): envelopes \
                 dated up to {watermark} (unix seconds) are refused as unprovable",
                store.path().display()
            );
        }
    }
    let received = received.map_err(|e| {
        if e.kind() == ErrorKind::ReplayUnavailable {
            // Not the envelope's fault: the replay state is damaged, locked, full,
            // unreachable, or cannot prove the envelope new. It was not accepted (fail
            // closed).
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
            write_private_output(args.output.as_deref(), out.as_bytes(), args.force)?;
            // Exit 4, never 0: a pipeline that loses stderr still sees it (0 is "verified").
            return Err(Failure::unauthenticated(
                "the payload written is from a legacy v2 envelope that nothing authenticates \
                 (exit code 4)",
            ));
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
        write_private_output(args.output.as_deref(), text.as_bytes(), args.force)
    } else {
        write_private_output(args.output.as_deref(), &opened.payload, args.force)
    }
}

#[cfg(feature = "redis")]
fn with_redis(
    builder: OpenerBuilder,
    args: &Args,
    identity: Option<&rpcseal::KeyId>,
) -> Result<OpenerBuilder> {
    use rpcseal::replay::{RedisReplayConfig, RedisReplayStore};
    let Some(url) = &args.replay_redis else {
        if args.replay_redis_prefix.is_some() || args.replay_redis_new_prefix {
            return Err(Failure::usage(
                "--replay-redis-prefix and --replay-redis-new-prefix need --replay-redis URL \
                 (or --replay-redis-url-file, --replay-redis-url-env)",
            ));
        }
        return Ok(builder);
    };
    // The URL may hold a password: it is never printed (the config's Debug redacts it).
    let mut config = match url {
        RedisUrl::Arg(url) => RedisReplayConfig::new(url.as_str()),
        RedisUrl::File(path) => RedisReplayConfig::from_url_file(path)
            .map_err(|e| Failure::file(format!("cannot use the Redis replay store: {e}")))?,
        RedisUrl::Env(var) => RedisReplayConfig::from_env(var)
            .map_err(|e| Failure::usage(format!("cannot use the Redis replay store: {e}")))?,
    };
    // spec/replay.md §6.2: no prefix shared by unrelated services. Derived from our identity
    // (every replica holds the same one) unless given.
    match (&args.replay_redis_prefix, identity) {
        (Some(prefix), _) => config.key_prefix.clone_from(prefix),
        (None, Some(id)) => {
            config.key_prefix = RedisReplayConfig::for_receiver("", id).key_prefix;
        }
        (None, None) => {
            return Err(Failure::usage(
                "--replay-redis needs --replay-redis-prefix when no --key is an identity key: \
                 the default prefix is derived from the receiver's identity",
            ))
        }
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
fn with_redis(
    builder: OpenerBuilder,
    args: &Args,
    _identity: Option<&rpcseal::KeyId>,
) -> Result<OpenerBuilder> {
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
        "legacy": false,
        "authenticated": true,
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
