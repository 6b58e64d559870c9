//! `rpcseal keygen`, `rpcseal pubkey`, and reading key files and key arguments.
//!
//! A secret key file is what `keygen` writes: comment lines starting with `#`, then one
//! secret key line. Recipients and trusted senders are public key strings, given on the
//! command line or in files of one key per line. A secret key file is never accepted where
//! a public key is expected: that would invite copying secret files around, and the
//! `# public key:` comment in a secret file is not covered by any checksum.

use std::fs::{self, OpenOptions};
use std::io::{self, IsTerminal, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use rpcseal::{GroupKey, Identity, PublicIdentity, Recipient, SymmetricKey};
use zeroize::Zeroizing;

use super::{now, rfc3339, Failure, Result};

/// The stem of every secret key string, present and future kinds alike (spec/envelope-v3.md
/// §2.4). An argument or a line that contains it anywhere is refused where a public key is
/// expected, and never quoted.
const SECRET_STEM: &str = "RPCSEAL-SECRET-";

/// `--dangerous-allow-readable-key-files`: use secret key files that other users can read.
static ALLOW_READABLE_KEY_FILES: AtomicBool = AtomicBool::new(false);

/// Sets `--dangerous-allow-readable-key-files` for this run.
pub fn allow_readable_key_files(allow: bool) {
    ALLOW_READABLE_KEY_FILES.store(allow, Ordering::Relaxed);
}

/// A secret key read from a file.
pub enum SecretKey {
    Identity(Box<Identity>),
    Group(GroupKey),
    Symmetric(SymmetricKey),
}

/// What `keygen` makes.
#[derive(Clone, Copy)]
pub enum KeyKind {
    Identity,
    Group,
    Symmetric,
}

/// `rpcseal keygen [-o FILE] [--group | --symmetric] [--pq] [--force]`.
pub fn keygen(output: Option<&Path>, kind: KeyKind, pq: bool, force: bool) -> Result<()> {
    let (public, secret, what) = if let KeyKind::Symmetric = kind {
        // A symmetric key has no public half: its key id stands in the comment instead.
        let k = SymmetricKey::generate();
        (
            format!("none (symmetric key, key id {})", k.key_id()),
            k.to_secret_string(),
            "symmetric key",
        )
    } else if let KeyKind::Group = kind {
        let g = if pq {
            GroupKey::generate_post_quantum()
        } else {
            GroupKey::generate()
        };
        let what = if pq {
            "post-quantum group key"
        } else {
            "group key"
        };
        (g.public().to_string(), g.to_secret_string(), what)
    } else {
        let id = if pq {
            Identity::generate_post_quantum()
        } else {
            Identity::generate()
        };
        let what = if pq {
            "post-quantum identity"
        } else {
            "identity"
        };
        (id.public().to_string(), id.to_secret_string(), what)
    };
    let mut text = Zeroizing::new(String::new());
    text.push_str(&format!(
        "# rpcseal {what}\n# created: {}\n# public key: {public}\n",
        rfc3339(now())
    ));
    text.push_str(&secret);
    text.push('\n');

    match output {
        Some(path) => {
            write_secret_file(path, text.as_bytes(), force)?;
            eprintln!("Public key: {public}");
        }
        None => {
            let stdout = io::stdout();
            // As age-keygen: the public key goes to stderr too when the file content is
            // being redirected, so it is not lost in the file.
            if !stdout.is_terminal() {
                eprintln!("Public key: {public}");
            }
            let mut out = stdout.lock();
            out.write_all(text.as_bytes())
                .and_then(|()| out.flush())
                .map_err(|e| Failure::file(format!("cannot write to standard output: {e}")))?;
        }
    }
    Ok(())
}

/// Creates `path` readable and writable by its owner only, refusing an existing file
/// unless `force`. The mode is set when the file is created, so the secret is never
/// readable by others, not even for a moment.
fn write_secret_file(path: &Path, bytes: &[u8], force: bool) -> Result<()> {
    let shown = path.display();
    if force {
        match fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Failure::file(format!("cannot replace {shown}: {e}"))),
        }
    }
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            Failure::file(format!(
                "{shown} exists already: not overwriting a key file (use --force to replace it)"
            ))
        } else {
            Failure::file(format!("cannot create {shown}: {e}"))
        }
    })?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| Failure::file(format!("cannot write {shown}: {e}")))
}

/// `rpcseal pubkey FILE`.
pub fn pubkey(path: &Path) -> Result<()> {
    let public = match read_secret_key(path)? {
        SecretKey::Identity(id) => id.public().to_string(),
        SecretKey::Group(g) => g.public().to_string(),
        SecretKey::Symmetric(_) => {
            return Err(Failure::usage(format!(
                "{} holds a symmetric key: it has no public half (give the key file itself to \
                 `seal --to-symmetric` and `open --key`)",
                path.display()
            )))
        }
    };
    println!("{public}");
    Ok(())
}

/// Reads a secret key file: an identity, a group key or a symmetric key. A file that
/// other users can read (any group or other permission bit) is refused, unless
/// `--dangerous-allow-readable-key-files` was given (then it is used, with a warning). The
/// permissions are those of the file opened, not of a path looked at before.
pub fn read_secret_key(path: &Path) -> Result<SecretKey> {
    let shown = path.display();
    let cannot = |e: io::Error| Failure::file(format!("cannot read key file {shown}: {e}"));
    let mut file = fs::File::open(path).map_err(cannot)?;
    check_private(path, &file)?;
    let mut text = Zeroizing::new(String::new());
    file.read_to_string(&mut text).map_err(cannot)?;
    let mut lines = key_lines(&text);
    let line = lines
        .next()
        .ok_or_else(|| Failure::file(format!("key file {shown} holds no key")))?;
    if lines.next().is_some() {
        return Err(Failure::file(format!(
            "key file {shown} holds more than one key line"
        )));
    }
    let bad = |e: rpcseal::KeyError| Failure::file(format!("key file {shown}: {e}"));
    if line.starts_with("RPCSEAL-SECRET-GROUP:") || line.starts_with("RPCSEAL-SECRET-GROUP-XWING:")
    {
        GroupKey::from_secret_string(line)
            .map(SecretKey::Group)
            .map_err(bad)
    } else if line.starts_with("RPCSEAL-SECRET-SYM:") {
        SymmetricKey::from_secret_string(line)
            .map(SecretKey::Symmetric)
            .map_err(bad)
    } else {
        Identity::from_secret_string(line)
            .map(|id| SecretKey::Identity(Box::new(id)))
            .map_err(bad)
    }
}

/// Reads a symmetric key file (for `seal --to-symmetric`).
pub fn read_symmetric(path: &Path) -> Result<SymmetricKey> {
    match read_secret_key(path)? {
        SecretKey::Symmetric(k) => Ok(k),
        _ => Err(Failure::file(format!(
            "{} does not hold a symmetric key (make one with `rpcseal keygen --symmetric`)",
            path.display()
        ))),
    }
}

/// Reads an identity file (a group key cannot sign).
pub fn read_identity(path: &Path) -> Result<Identity> {
    match read_secret_key(path)? {
        SecretKey::Identity(id) => Ok(*id),
        SecretKey::Group(_) | SecretKey::Symmetric(_) => Err(Failure::file(format!(
            "{} holds a group or symmetric key, but an identity is needed here (such a key \
             proves membership, not who sent a message)",
            path.display()
        ))),
    }
}

/// The non-empty, non-comment lines of a key file, trimmed.
fn key_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// Refuses a secret key file whose group or other permission bits are set (as ssh does),
/// unless `--dangerous-allow-readable-key-files`, which warns instead.
#[cfg(unix)]
fn check_private(path: &Path, file: &fs::File) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display();
    let meta = file
        .metadata()
        .map_err(|e| Failure::file(format!("cannot read key file {shown}: {e}")))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 == 0 {
        return Ok(());
    }
    if ALLOW_READABLE_KEY_FILES.load(Ordering::Relaxed) {
        eprintln!(
            "rpcseal: warning: secret key file {shown} can be read by other users (mode \
             {mode:03o}), used because of --dangerous-allow-readable-key-files; run: chmod 600 \
             {shown}"
        );
        return Ok(());
    }
    Err(Failure::file(format!(
        "secret key file {shown} can be read by other users (mode {mode:03o}): refusing to use \
         it. Run: chmod 600 {shown} (and consider the key exposed), or pass \
         --dangerous-allow-readable-key-files"
    )))
}

#[cfg(not(unix))]
fn check_private(_: &Path, _: &fs::File) -> Result<()> {
    Ok(())
}

/// How an argument that was not understood is named in a message: the argument itself
/// when it looks like a file name (one line of printable characters, not too long), so the
/// user sees which path failed; otherwise only its length. Secret key material never
/// reaches this point (arguments containing the secret stem are refused first).
fn shown_arg(arg: &str) -> String {
    let plausible_path = !arg.is_empty()
        && arg.len() <= 256
        && !arg.chars().any(|c| c.is_control() || c.is_whitespace());
    if plausible_path {
        format!("{arg:?}")
    } else {
        format!("(an argument of {} bytes, not shown)", arg.len())
    }
}

/// The public keys an argument names: the argument itself when it is a key string,
/// otherwise the lines of the file it names.
fn public_key_lines(arg: &str, what: &str) -> Result<Vec<String>> {
    // Anywhere in the argument: `--to "$(cat bob.key)"` starts with a comment line.
    if arg.contains(SECRET_STEM) {
        return Err(Failure::file(format!(
            "a secret key was given as {what}: give its public key instead (rpcseal pubkey FILE)"
        )));
    }
    let trimmed = arg.trim();
    if trimmed.starts_with("rpcseal-") {
        return Ok(vec![trimmed.to_owned()]);
    }
    let path = Path::new(arg);
    let text = fs::read_to_string(path).map_err(|e| {
        Failure::file(format!(
            "{what} {} is neither a public key string nor a readable file: {e}",
            shown_arg(arg)
        ))
    })?;
    let text = Zeroizing::new(text);
    if text.contains(SECRET_STEM) {
        return Err(Failure::file(format!(
            "{} is a secret key file; give its public key instead ({what}s are public): \
             rpcseal pubkey {} > {}.pub",
            path.display(),
            path.display(),
            path.display()
        )));
    }
    let lines: Vec<String> = key_lines(&text).map(str::to_owned).collect();
    if lines.is_empty() {
        return Err(Failure::file(format!(
            "{} holds no public key",
            path.display()
        )));
    }
    Ok(lines)
}

/// `--to` arguments to recipients.
pub fn recipients(args: &[String]) -> Result<Vec<Recipient>> {
    let mut out = Vec::new();
    for arg in args {
        let from_file = !arg.trim().starts_with("rpcseal-");
        for line in public_key_lines(arg, "recipient")? {
            let r =
                Recipient::parse(&line).map_err(|e| key_failure("recipient", arg, from_file, e))?;
            out.push(r);
        }
    }
    Ok(out)
}

/// `--trust` arguments to trusted senders.
pub fn senders(args: &[String]) -> Result<Vec<PublicIdentity>> {
    let mut out = Vec::new();
    for arg in args {
        let from_file = !arg.trim().starts_with("rpcseal-");
        for line in public_key_lines(arg, "trusted sender")? {
            if line.starts_with("rpcseal-pub-group:")
                || line.starts_with("rpcseal-pub-group-xwing:")
            {
                return Err(Failure::file(format!(
                    "a group key cannot be a trusted sender ({}): trust the senders' identities",
                    if from_file {
                        arg.as_str()
                    } else {
                        "a rpcseal-pub-group: key"
                    }
                )));
            }
            let p = PublicIdentity::parse(&line)
                .map_err(|e| key_failure("trusted sender", arg, from_file, e))?;
            out.push(p);
        }
    }
    Ok(out)
}

/// A bad public key, named by where it came from (never echoing the key).
fn key_failure(what: &str, arg: &str, from_file: bool, e: rpcseal::KeyError) -> Failure {
    if from_file {
        Failure::file(format!("{what} file {arg}: {e}"))
    } else {
        Failure::file(format!("{what} key string: {e}"))
    }
}
