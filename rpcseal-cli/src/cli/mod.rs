//! The command-line tool's subcommands and what they share: exit codes, reading inputs,
//! writing outputs, printing times and ids.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, IsTerminal, Read, Write};
use std::path::Path;
use std::process::ExitCode;

pub mod bench;
pub mod demo;
pub mod inspect;
pub mod keys;
pub mod measure;
pub mod open;
pub mod seal;
pub mod vectors;

/// `rpcseal seal` hashes payloads from this size on on a second thread while it encrypts
/// them ([`rpcseal::SealerConfig::parallel_hash_from`]); below it, the thread costs more
/// than it saves. Measured crossover on the reference machine: README.perf.md.
pub const SEAL_PARALLEL_HASH_FROM: usize = 512 * 1024;
/// `rpcseal open` hashes envelopes with payloads from this size on on a second thread while
/// it decrypts them ([`rpcseal::Policy::parallel_hash_from`]). README.perf.md.
pub const OPEN_PARALLEL_HASH_FROM: usize = 256 * 1024;

/// Exit code: the envelope was rejected (tampered, not for us, replayed, ...).
pub const EXIT_REJECTED: u8 = 1;
/// Exit code: the command line or the request is wrong (clap uses 2 for its own errors).
pub const EXIT_USAGE: u8 = 2;
/// Exit code: a key or file could not be read, written or used.
pub const EXIT_KEY_OR_FILE: u8 = 3;
/// Exit code: `open --allow-legacy` wrote the payload of a legacy v2 envelope, which nothing
/// authenticates. 0 always means "verified".
pub const EXIT_UNAUTHENTICATED: u8 = 4;

/// A failed command: an exit code and a sentence for stderr (never key material).
#[derive(Debug)]
pub struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    pub fn rejected(message: impl Into<String>) -> Failure {
        Failure {
            code: EXIT_REJECTED,
            message: message.into(),
        }
    }

    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: EXIT_USAGE,
            message: message.into(),
        }
    }

    pub fn file(message: impl Into<String>) -> Failure {
        Failure {
            code: EXIT_KEY_OR_FILE,
            message: message.into(),
        }
    }

    /// The payload was written, but nothing authenticates it (exit 4).
    pub fn unauthenticated(message: impl Into<String>) -> Failure {
        Failure {
            code: EXIT_UNAUTHENTICATED,
            message: message.into(),
        }
    }

    /// Prints the message on stderr and returns the exit code.
    pub fn report(self) -> ExitCode {
        if self.code == EXIT_UNAUTHENTICATED {
            eprintln!("rpcseal: warning: {}", self.message);
        } else {
            eprintln!("rpcseal: error: {}", self.message);
        }
        ExitCode::from(self.code)
    }
}

pub type Result<T> = std::result::Result<T, Failure>;

/// Parses `--meta KEY=VALUE`.
pub fn parse_meta(s: &str) -> std::result::Result<(String, String), String> {
    match s.split_once('=') {
        Some(("", _)) => Err("the key before '=' is empty".into()),
        Some((k, v)) => Ok((k.to_owned(), v.to_owned())),
        None => Err("expected KEY=VALUE".into()),
    }
}

/// Reads a file, or standard input for `None` or `-`, refusing more than `limit` bytes
/// (memory stays bounded whatever is piped in). Returns the bytes and whether the limit
/// was crossed (then `limit + 1` bytes were read).
pub fn read_input(path: Option<&Path>, limit: usize) -> Result<(Vec<u8>, bool)> {
    let mut buf = Vec::new();
    let cap = limit as u64 + 1;
    let res = match path {
        None => io::stdin().lock().take(cap).read_to_end(&mut buf),
        Some(p) if p == Path::new("-") => io::stdin().lock().take(cap).read_to_end(&mut buf),
        Some(p) => File::open(p)
            .and_then(|f| f.take(cap).read_to_end(&mut buf))
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", p.display()))),
    };
    res.map_err(|e| Failure::file(format!("cannot read the input {e}")))?;
    let over = buf.len() > limit;
    Ok((buf, over))
}

/// Writes to a file (created or replaced) or to standard output for `None` or `-`.
/// `binary` refuses to write to a terminal, as age does.
pub fn write_output(path: Option<&Path>, bytes: &[u8], binary: bool) -> Result<()> {
    match path {
        Some(p) if p != Path::new("-") => OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(p)
            .and_then(|mut f| f.write_all(bytes).and_then(|()| f.flush()))
            .map_err(|e| Failure::file(format!("cannot write {}: {e}", p.display()))),
        _ => {
            let stdout = io::stdout();
            if binary && stdout.is_terminal() {
                return Err(Failure::usage(
                    "refusing to write a binary envelope to a terminal: use -o FILE or redirect \
                     standard output",
                ));
            }
            let mut out = stdout.lock();
            out.write_all(bytes)
                .and_then(|()| out.flush())
                .map_err(|e| Failure::file(format!("cannot write to standard output: {e}")))
        }
    }
}

/// Writes a decrypted payload to standard output (`None` or `-`) or to a file, privately:
/// a new file is created with mode 0600 and never through a symlink; an existing regular
/// file is replaced only with `force` (by a new private file renamed over it); an existing
/// file that is not a regular file (`/dev/null`, a FIFO, a terminal, also behind a symlink
/// such as `/dev/stdout`) is written as it is.
pub fn write_private_output(path: Option<&Path>, bytes: &[u8], force: bool) -> Result<()> {
    let p = match path {
        Some(p) if p != Path::new("-") => p,
        _ => return write_output(None, bytes, false),
    };
    let fail = |e: io::Error| Failure::file(format!("cannot write {}: {e}", p.display()));
    let write = |mut f: File| f.write_all(bytes).and_then(|()| f.flush());
    match std::fs::symlink_metadata(p) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // O_CREAT|O_EXCL: a file or link planted in between makes this fail.
            private_new_file().open(p).and_then(write).map_err(fail)
        }
        Err(e) => Err(fail(e)),
        Ok(m) => {
            let target = if m.file_type().is_symlink() {
                std::fs::metadata(p).ok()
            } else {
                Some(m.clone())
            };
            match target {
                Some(t) if !t.is_file() && !t.is_dir() => OpenOptions::new()
                    .write(true)
                    .open(p)
                    .and_then(write)
                    .map_err(fail),
                _ if m.file_type().is_symlink() => Err(Failure::file(format!(
                    "refusing to write the payload through the symlink {}",
                    p.display()
                ))),
                Some(t) if t.is_dir() => Err(Failure::file(format!(
                    "cannot write {}: it is a directory",
                    p.display()
                ))),
                _ if !force => Err(Failure::file(format!(
                    "{} exists: refusing to overwrite it (use --force)",
                    p.display()
                ))),
                _ => replace_privately(p, bytes).map_err(fail),
            }
        }
    }
}

/// Options for a new file readable by its owner only, created exclusively, never through a
/// symlink.
fn private_new_file() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    o
}

/// Replaces the regular file `p` by a new private file with `bytes`: written beside it under
/// a random name, then renamed over it.
fn replace_privately(p: &Path, bytes: &[u8]) -> io::Result<()> {
    use getrandom::SysRng;
    use rand_core::{Rng, UnwrapErr};
    let mut tmp = p.as_os_str().to_owned();
    tmp.push(format!(".rpcseal-{:016x}", UnwrapErr(SysRng).next_u64()));
    let tmp = std::path::PathBuf::from(tmp);
    let written = private_new_file()
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, p));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Unix seconds as RFC 3339 UTC (`2026-11-26T09:30:00Z`).
pub fn rfc3339(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date: count 400-year eras of 146 097
/// days from 0000-03-01, so leap days fall at the end of each computed year.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = z / 146_097;
    let doe = z % 146_097; // day of era, 0..146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // year of era
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of year from March 1st
    let mp = (5 * doy + 2) / 153; // month from March, 0..11
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// The current time in unix seconds.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_matches_known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_800_000_000), "2027-01-15T08:00:00Z");
        assert_eq!(rfc3339(4_102_444_799), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn meta_needs_a_key_and_an_equals_sign() {
        assert_eq!(parse_meta("a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert_eq!(parse_meta("a=").unwrap(), ("a".into(), String::new()));
        assert!(parse_meta("=b").is_err());
        assert!(parse_meta("ab").is_err());
    }
}
