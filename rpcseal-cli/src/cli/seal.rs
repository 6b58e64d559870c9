//! `rpcseal seal`: one envelope from an identity to recipients, through [`rpcseal::Sealer`].

use std::path::PathBuf;

use std::path::Path;

use rpcseal::{
    seal_legacy_v2, Metadata, Misuse, Mode, Recipient, Sealer, SealerConfig, DEFAULT_MAX_PAYLOAD,
};

use super::{keys, read_input, write_output, Failure, Result};

pub struct Args {
    pub from: PathBuf,
    pub to: Vec<String>,
    pub to_symmetric: Vec<PathBuf>,
    pub mode: Mode,
    pub meta: Vec<(String, String)>,
    pub dangerous_allow_mac_to_group: bool,
    pub require_pq: bool,
    pub input: Option<PathBuf>,
    pub output: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    let identity = keys::read_identity(&args.from)?;
    let mut recipients = keys::recipients(&args.to)?;
    for path in &args.to_symmetric {
        recipients.push(Recipient::Symmetric(keys::read_symmetric(path)?));
    }

    let mut metadata = Metadata::new();
    for (k, v) in args.meta {
        if metadata.insert(k.clone(), v).is_some() {
            return Err(Failure::usage(format!("--meta {k} is given twice")));
        }
    }

    // The default config carries the session block in every envelope (Inline::Always), so
    // an envelope written by this command opens on its own.
    let mut config =
        SealerConfig::new(args.mode).parallel_hash_from(Some(super::SEAL_PARALLEL_HASH_FROM));
    if args.dangerous_allow_mac_to_group {
        config = config.dangerous_allow_mac_to_group();
    }
    if args.require_pq {
        config = config.require_post_quantum();
    }
    let mut sealer = Sealer::new(&identity, &recipients, config).map_err(misuse)?;

    let (payload, too_large) = read_input(args.input.as_deref(), DEFAULT_MAX_PAYLOAD)?;
    if too_large {
        return Err(Failure::usage(format!(
            "the payload is larger than the limit of {DEFAULT_MAX_PAYLOAD} bytes"
        )));
    }
    let envelope = sealer.seal(&payload, &metadata).map_err(misuse)?;
    write_output(args.output.as_deref(), &envelope, true)
}

/// `rpcseal legacy-seal`: a legacy v2 envelope around a JSON object.
pub fn legacy(input: Option<&Path>, output: Option<&Path>) -> Result<()> {
    let (payload, too_large) = read_input(input, DEFAULT_MAX_PAYLOAD)?;
    if too_large {
        return Err(Failure::usage(format!(
            "the message is larger than the limit of {DEFAULT_MAX_PAYLOAD} bytes"
        )));
    }
    let text = std::str::from_utf8(&payload)
        .map_err(|_| Failure::usage("the message is not UTF-8 text"))?;
    let mut envelope = seal_legacy_v2(text.trim_end()).map_err(misuse)?;
    envelope.push('\n');
    eprintln!("rpcseal: warning: a legacy v2 envelope is neither signed nor encrypted");
    write_output(output, envelope.as_bytes(), false)
}

fn misuse(e: Misuse) -> Failure {
    match e {
        Misuse::MacToGroup => Failure::usage(
            "MAC mode to a group key or a symmetric key cannot tell the key's holders apart: \
             any holder could forge messages the others accept as yours. Use --mode signed, \
             or pass --dangerous-allow-mac-to-group if every holder is as trusted as you",
        ),
        Misuse::NotPostQuantum => Failure::usage(
            "--require-pq: a recipient has no X-Wing key (give its rpcseal-pub-id-xwing: or \
             rpcseal-pub-group-xwing: key, made with rpcseal keygen --pq)",
        ),
        other => Failure::usage(format!("cannot seal: {other}")),
    }
}
