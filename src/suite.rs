//! Algorithm suites and modes (spec/envelope-v3.md §1.2 and §6).

use std::fmt;

use crate::error::{Error, ErrorKind};

/// An algorithm suite id. Only suites listed in the spec exist; an unknown id is reported
/// as [`ErrorKind::UnknownSuite`], never guessed at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Suite(u16);

impl Suite {
    /// Suite 1: HPKE base mode DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / ChaCha20Poly1305
    /// for wraps, ChaCha20-Poly1305 for payloads, BLAKE3 for hashes and MACs, Ed25519 for
    /// signatures.
    pub const X25519_CHACHA20POLY1305_BLAKE3_ED25519: Suite = Suite(1);

    /// Suite 2, the post-quantum suite: as suite 1, but session keys are wrapped to
    /// asymmetric recipients with HPKE base mode X-Wing (ML-KEM-768 + X25519, KEM 0x647a) /
    /// HKDF-SHA256 / ChaCha20Poly1305 (spec §1.2, §5.4). Per-message work is suite 1's.
    pub const XWING_CHACHA20POLY1305_BLAKE3_ED25519: Suite = Suite(2);

    /// Every suite this implementation knows.
    pub const KNOWN: &'static [Suite] = &[
        Suite::X25519_CHACHA20POLY1305_BLAKE3_ED25519,
        Suite::XWING_CHACHA20POLY1305_BLAKE3_ED25519,
    ];

    /// The suites whose every wrap resists a future quantum computer (spec §1.2, §10.9).
    pub const POST_QUANTUM: &'static [Suite] = &[Suite::XWING_CHACHA20POLY1305_BLAKE3_ED25519];

    /// True for a post-quantum suite (suite 2).
    pub fn is_post_quantum(self) -> bool {
        Suite::POST_QUANTUM.contains(&self)
    }

    /// The numeric id on the wire.
    pub fn id(self) -> u16 {
        self.0
    }

    /// Looks up a numeric id; `UnknownSuite` for anything not in [`Suite::KNOWN`].
    pub fn from_id(id: u64) -> Result<Suite, Error> {
        Suite::KNOWN
            .iter()
            .copied()
            .find(|s| {
                u64::from(s.0) == id
                    || crate::mutant::is(crate::mutant::Mutant::UnknownSuitesAccepted)
            })
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::UnknownSuite,
                    format!("suite id {id} is not defined"),
                )
            })
    }

    /// The spec's name for the suite.
    pub fn name(self) -> &'static str {
        match self.0 {
            1 => "RPCSEAL-V3-X25519-CHACHA20POLY1305-BLAKE3-ED25519",
            2 => "RPCSEAL-V3-XWING-CHACHA20POLY1305-BLAKE3-ED25519",
            _ => "unknown",
        }
    }
}

impl fmt::Display for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.0, self.name())
    }
}

/// How a session's messages are protected (spec §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Encrypted, and each message signed with the session's Ed25519 key, which the
    /// sender's identity certified in the session block: non-repudiable. The default, and
    /// the only sound choice for groups.
    Signed,
    /// Encrypted, and each message authenticated with one BLAKE3 MAC per recipient under
    /// pairwise keys: no public-key work per message, repudiable, and no recipient can forge
    /// a message another recipient accepts.
    Mac,
    /// Not encrypted: the payload travels in clear, signed as in [`Mode::Signed`].
    SignOnly,
}

impl Mode {
    pub(crate) fn to_wire(self) -> u64 {
        match self {
            Mode::Signed => 1,
            Mode::Mac => 2,
            Mode::SignOnly => 3,
        }
    }

    pub(crate) fn from_wire(v: u64) -> Result<Mode, Error> {
        match v {
            1 => Ok(Mode::Signed),
            2 => Ok(Mode::Mac),
            3 => Ok(Mode::SignOnly),
            _ => Err(Error::new(ErrorKind::Malformed, "unknown session mode")),
        }
    }

    /// True when payloads are encrypted.
    pub fn encrypts(self) -> bool {
        !matches!(self, Mode::SignOnly)
    }

    /// True when messages carry an Ed25519 signature.
    pub fn signs(self) -> bool {
        !matches!(self, Mode::Mac)
    }

    /// Lower-case name: `signed`, `mac`, `sign-only`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Signed => "signed",
            Mode::Mac => "mac",
            Mode::SignOnly => "sign-only",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Mode {
    type Err = &'static str;
    fn from_str(s: &str) -> Result<Mode, &'static str> {
        match s {
            "signed" => Ok(Mode::Signed),
            "mac" => Ok(Mode::Mac),
            "sign-only" => Ok(Mode::SignOnly),
            _ => Err("expected one of: signed, mac, sign-only"),
        }
    }
}
