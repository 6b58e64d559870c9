//! `rpcseal`: make keys, seal and open envelopes, and look inside one without keys.
//!
//! The `rpcseal-cli` crate of the workspace (`cargo install rpcseal-cli` gives this binary).
//! It depends on the `rpcseal` library at the repository root, never the reverse, and is a
//! thin layer over the library's public API: every check is the library's. What lives here:
//!
//! - `src/main.rs`: the arguments (clap derive) and the dispatch;
//! - `src/cli/`: one module per subcommand (`keys`, `seal`, `open`, `inspect`, `demo`,
//!   `vectors` over the library's hidden `vectors` feature, `bench`), and `measure`, the
//!   measuring sticks that `rpcseal bench` shares with the criterion benches in `../benches`;
//! - `tests/`: the tool tested as a user sees it (arguments in, exit code and output out),
//!   including the README's walkthrough executed as written.
//!
//! Exit codes: 0 success, 1 envelope rejected, 2 usage error, 3 key or file problem, 4 an
//! unauthenticated legacy payload was written (`open --allow-legacy`).

#![forbid(unsafe_code)]

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Signed and encrypted RPC envelopes.
///
/// Exit codes: 0 success (for open: verified), 1 envelope rejected (the failure class is
/// printed on stderr), 2 usage error, 3 key or file problem (for open: also a replay store
/// that cannot answer or cannot prove an envelope new), 4 open --allow-legacy wrote the
/// payload of a legacy envelope that nothing authenticates.
#[derive(Parser)]
#[command(name = "rpcseal", version, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Use secret key files that other users can read (group or other permission bits
    /// set), with a warning. Without it such a file is refused (exit 3): run chmod 600 on
    /// it instead, and consider the key exposed.
    #[arg(long, global = true)]
    dangerous_allow_readable_key_files: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Make a new identity (or, with --group, a group key) and write it to a file.
    ///
    /// The file is created readable by its owner only. Its comment lines give the public
    /// key to hand to peers; `rpcseal pubkey FILE` prints it again later.
    Keygen {
        /// Where to write the secret key (default: standard output).
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Make a group key (one X25519 key that every member of a group holds) instead of
        /// an identity.
        #[arg(long, conflicts_with = "symmetric")]
        group: bool,
        /// Make a 256-bit symmetric recipient key (with its key id) instead of an identity:
        /// for a service that encrypts what it stores, or keys handed out by a key server.
        #[arg(long)]
        symmetric: bool,
        /// Add an X-Wing (ML-KEM-768 + X25519) receiving key to the identity or group key:
        /// sessions to it use the post-quantum suite 2 whenever every other identity or
        /// group recipient has one too. Its key strings are rpcseal-pub-id-xwing: /
        /// RPCSEAL-SECRET-ID-XWING: (group: -group-xwing:); older key files keep working.
        #[arg(long, conflicts_with = "symmetric")]
        pq: bool,
        /// Replace FILE if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Print the public key of an identity or group key file.
    Pubkey {
        /// A secret key file written by `rpcseal keygen`.
        file: PathBuf,
    },
    /// Seal a payload from one identity to one or more recipients.
    ///
    /// The envelope is self-contained: it carries its session block, so a receiver needs
    /// nothing but its own key and the sender's public identity.
    Seal {
        /// The sender's identity file (from `rpcseal keygen`).
        #[arg(long, value_name = "IDENTITY_FILE")]
        from: PathBuf,
        /// A recipient: a public key string (`rpcseal-pub-id:...` or
        /// `rpcseal-pub-group:...`) or a file of them, one per line (`#` starts a comment).
        /// Repeat for more recipients. Secret key files are refused: give their public key.
        #[arg(long, value_name = "RECIPIENT", required_unless_present = "to_symmetric", num_args = 1..)]
        to: Vec<String>,
        /// A symmetric recipient key file (from `rpcseal keygen --symmetric`). Repeatable.
        /// Every holder of the key can open the envelope.
        #[arg(long, value_name = "KEY_FILE", num_args = 1..)]
        to_symmetric: Vec<PathBuf>,
        /// signed: encrypted, every message signed (non-repudiable; the default).
        /// mac: encrypted, per-recipient MACs (cheaper, repudiable).
        /// sign-only: signed, not encrypted.
        #[arg(long, value_enum, default_value_t = ModeArg::Signed)]
        mode: ModeArg,
        /// Authenticated cleartext metadata, KEY=VALUE (repeatable). Anyone can read it.
        #[arg(long, value_name = "KEY=VALUE", value_parser = cli::parse_meta)]
        meta: Vec<(String, String)>,
        /// Allow MAC mode to a group key or a symmetric key. Any holder of such a key (a
        /// group member, a service the symmetric key was given to, the key server) can then
        /// forge messages that the other holders accept as yours.
        #[arg(long)]
        dangerous_allow_mac_to_group: bool,
        /// Refuse to seal unless the session is post-quantum (suite 2): every identity and
        /// group recipient must have an X-Wing key. Without it, suite 2 is used exactly
        /// when they all have one.
        #[arg(long)]
        require_pq: bool,
        /// The payload (default: standard input).
        #[arg(short, long, value_name = "IN")]
        input: Option<PathBuf>,
        /// Where to write the envelope (default: standard output).
        #[arg(short, long, value_name = "OUT")]
        output: Option<PathBuf>,
    },
    /// Check and open an envelope, and write its payload.
    Open {
        /// One of our secret key files: an identity, a group key or a symmetric key.
        /// Repeatable.
        #[arg(long, value_name = "KEY_FILE", required = true, num_args = 1..)]
        key: Vec<PathBuf>,
        /// A sender we accept messages from: a public identity string or a file of them.
        /// Repeatable.
        #[arg(long, value_name = "SENDER", required_unless_present = "keyring", num_args = 1..)]
        trust: Vec<String>,
        /// A keyring file of trusted senders (names, validity periods, revocations; see
        /// spec/keyring.md).
        #[arg(long, value_name = "FILE")]
        keyring: Option<PathBuf>,
        /// Also accept legacy v2 (oslo.messaging) envelopes. They are NOT authenticated:
        /// anyone on the path can forge them. The payload is still written, with a warning
        /// on stderr ("authenticated": false with --json), and the exit code is 4, never 0.
        #[arg(long)]
        allow_legacy: bool,
        /// Keep replay state in FILE across runs, so the same envelope is accepted once.
        /// The file must exist (see --replay-state-new); locked while in use, in a
        /// directory only its owner can write. Without any replay option each run
        /// remembers nothing and cannot detect a replay.
        #[arg(long, value_name = "FILE", conflicts_with = "replay_redis")]
        replay_state: Option<PathBuf>,
        /// The --replay-state FILE is brand new: create it (refused if it exists). Never use
        /// it for a state file that was lost: a new, empty one would accept again every
        /// envelope the lost one had seen.
        #[arg(long, requires = "replay_state")]
        replay_state_new: bool,
        /// Keep replay state in Redis (needs a build with Redis support). Every receiver
        /// sharing replay state must use the same server and key prefix. The URL may hold a
        /// password, which other users can read on a command line: prefer
        /// --replay-redis-url-file or --replay-redis-url-env.
        #[arg(long, value_name = "URL", conflicts_with_all = ["replay_redis_url_file", "replay_redis_url_env"])]
        replay_redis: Option<String>,
        /// Keep replay state in Redis, at the URL on the first line of FILE.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["replay_state", "replay_redis_url_env"])]
        replay_redis_url_file: Option<PathBuf>,
        /// Keep replay state in Redis, at the URL held by the environment variable VAR.
        #[arg(long, value_name = "VAR", conflicts_with = "replay_state")]
        replay_redis_url_env: Option<String>,
        /// Key prefix of the Redis replay state. Default: "rpcseal:replay:" and the key id
        /// of our identity key (the same on every replica, different for unrelated
        /// services); required when no --key is an identity.
        #[arg(long, value_name = "PREFIX")]
        replay_redis_prefix: Option<String>,
        /// The Redis key prefix has never accepted a message: start it without a loss
        /// watermark. Without it a new prefix rejects every message for 5 minutes (fail
        /// closed, "cannot prove it is new"). Never use it once Redis may have lost state:
        /// replays of the last minutes could then be accepted.
        #[arg(long)]
        replay_redis_new_prefix: bool,
        /// Accept MAC-mode messages that reach us through a group key or a symmetric key.
        /// Any other holder of that key can forge those.
        #[arg(long)]
        dangerous_accept_mac_via_group: bool,
        /// Accept only post-quantum sessions (suite 2): a classical session is refused as
        /// suite_not_allowed. For one sender only, use `require=pq` in a keyring.
        #[arg(long)]
        require_pq: bool,
        /// Print one JSON object (payload in base64, metadata, sender, session facts)
        /// instead of the raw payload.
        #[arg(long)]
        json: bool,
        /// The envelope (default: standard input).
        #[arg(short, long, value_name = "IN")]
        input: Option<PathBuf>,
        /// Where to write the payload (default: standard output). A new file is created
        /// readable by its owner only, never through a symlink; an existing file is
        /// replaced only with --force, except a device or FIFO (such as /dev/null), which
        /// is written as it is.
        #[arg(short, long, value_name = "OUT")]
        output: Option<PathBuf>,
        /// Replace an existing -o file.
        #[arg(long, requires = "output")]
        force: bool,
    },
    /// Wrap a JSON object in a legacy v2 (oslo.messaging) envelope, for peers that are not
    /// upgraded yet. The result is neither signed nor encrypted.
    LegacySeal {
        /// The message, a JSON object (default: standard input).
        #[arg(short, long, value_name = "IN")]
        input: Option<PathBuf>,
        /// Where to write the envelope (default: standard output).
        #[arg(short, long, value_name = "OUT")]
        output: Option<PathBuf>,
    },
    /// Show an envelope's cleartext header without any key. Nothing shown is verified.
    Inspect {
        /// The envelope (default: standard input).
        #[arg(short, long, value_name = "IN")]
        input: Option<PathBuf>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Walk through key generation, 1:1 and group exchanges and rejected envelopes, with no
    /// setup and no files.
    Demo,
    /// Check or regenerate the test vectors.
    Vectors {
        #[command(subcommand)]
        command: VectorsCommand,
    },
    /// Measure seal and open against the raw primitives.
    Bench {
        /// A short run.
        #[arg(long)]
        quick: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum VectorsCommand {
    /// Check every vector in DIR against this implementation.
    Verify {
        /// The vectors directory.
        dir: PathBuf,
    },
    /// Write the vectors to DIR.
    Generate {
        /// The vectors directory.
        dir: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ModeArg {
    Signed,
    Mac,
    SignOnly,
}

impl From<ModeArg> for rpcseal::Mode {
    fn from(m: ModeArg) -> rpcseal::Mode {
        match m {
            ModeArg::Signed => rpcseal::Mode::Signed,
            ModeArg::Mac => rpcseal::Mode::Mac,
            ModeArg::SignOnly => rpcseal::Mode::SignOnly,
        }
    }
}

fn main() -> ExitCode {
    let args = Cli::parse();
    cli::keys::allow_readable_key_files(args.dangerous_allow_readable_key_files);
    let result = match args.command {
        Command::Keygen {
            output,
            group,
            symmetric,
            pq,
            force,
        } => {
            let kind = match (group, symmetric) {
                (true, _) => cli::keys::KeyKind::Group,
                (_, true) => cli::keys::KeyKind::Symmetric,
                _ => cli::keys::KeyKind::Identity,
            };
            cli::keys::keygen(output.as_deref(), kind, pq, force)
        }
        Command::Pubkey { file } => cli::keys::pubkey(&file),
        Command::Seal {
            from,
            to,
            to_symmetric,
            mode,
            meta,
            dangerous_allow_mac_to_group,
            require_pq,
            input,
            output,
        } => cli::seal::run(cli::seal::Args {
            from,
            to,
            to_symmetric,
            mode: mode.into(),
            meta,
            dangerous_allow_mac_to_group,
            require_pq,
            input,
            output,
        }),
        Command::Open {
            key,
            trust,
            keyring,
            allow_legacy,
            replay_state,
            replay_state_new,
            replay_redis,
            replay_redis_url_file,
            replay_redis_url_env,
            replay_redis_prefix,
            replay_redis_new_prefix,
            dangerous_accept_mac_via_group,
            require_pq,
            json,
            input,
            output,
            force,
        } => cli::open::run(cli::open::Args {
            keys: key,
            trust,
            keyring,
            allow_legacy,
            replay_state,
            replay_state_new,
            replay_redis: match (replay_redis, replay_redis_url_file, replay_redis_url_env) {
                (Some(url), _, _) => Some(cli::open::RedisUrl::Arg(url)),
                (_, Some(file), _) => Some(cli::open::RedisUrl::File(file)),
                (_, _, Some(var)) => Some(cli::open::RedisUrl::Env(var)),
                _ => None,
            },
            replay_redis_prefix,
            replay_redis_new_prefix,
            dangerous_accept_mac_via_group,
            require_pq,
            json,
            input,
            output,
            force,
        }),
        Command::LegacySeal { input, output } => {
            cli::seal::legacy(input.as_deref(), output.as_deref())
        }
        Command::Inspect { input, json } => cli::inspect::run(input.as_deref(), json),
        Command::Demo => cli::demo::run(),
        Command::Vectors { command } => {
            return match command {
                VectorsCommand::Verify { dir } => cli::vectors::verify(&dir),
                VectorsCommand::Generate { dir } => cli::vectors::generate(&dir),
            }
        }
        Command::Bench { quick, json } => return cli::bench::run(quick, json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(),
    }
}
