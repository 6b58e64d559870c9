//! The legacy v2 envelope of OpenStack oslo.messaging (spec/legacy-v2.md): unsigned,
//! unencrypted JSON, read only by explicit opt-in and never mistaken for a verified message.

use std::fmt;

use serde_json::Value;

use crate::error::{Error, ErrorKind, Misuse};

/// The oslo.messaging envelope version this implementation speaks: 2.0.
pub const OSLO_VERSION: (u64, u64) = (2, 0);

const KEY_VERSION: &str = "oslo.version";
const KEY_MESSAGE: &str = "oslo.message";

/// A legacy v2 message. **Nothing about it is authenticated**: anyone on the path could
/// have written or changed it. Its type is distinct from [`crate::Opened`] on purpose, and
/// it offers no sender, no session and no replay guarantee.
#[derive(Clone, PartialEq, Eq)]
pub struct LegacyMessage {
    version: (u64, u64),
    message: String,
}

impl LegacyMessage {
    /// The envelope's `oslo.version`: (2, 0), or (1, 0) for a bare JSON object.
    pub fn version(&self) -> (u64, u64) {
        self.version
    }

    /// The message, a JSON object as text: `oslo.message` exactly as a 2.0 envelope carried
    /// it, or the whole (trimmed) input of a 1.0 message.
    /// Unauthenticated: treat as hostile input.
    pub fn unauthenticated_message(&self) -> &str {
        &self.message
    }
}

impl fmt::Debug for LegacyMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "LegacyMessage {{ version: {}.{}, unauthenticated, {} bytes }}",
            self.version.0,
            self.version.1,
            self.message.len()
        )
    }
}

/// Writes a legacy v2 envelope around `message_json`, which must be a JSON object. For peers
/// that are not upgraded yet: the result is neither signed nor encrypted.
pub fn seal_legacy_v2(message_json: &str) -> Result<String, Misuse> {
    let v: Value = serde_json::from_str(message_json)
        .map_err(|_| Misuse::InvalidLegacyMessage("the message is not valid JSON"))?;
    if !v.is_object() {
        return Err(Misuse::InvalidLegacyMessage(
            "the message must be a JSON object",
        ));
    }
    let mut envelope = serde_json::Map::new();
    envelope.insert(
        KEY_VERSION.into(),
        Value::String(format!("{}.{}", OSLO_VERSION.0, OSLO_VERSION.1)),
    );
    envelope.insert(KEY_MESSAGE.into(), Value::String(message_json.to_owned()));
    Ok(Value::Object(envelope).to_string())
}

fn malformed(detail: &'static str) -> Error {
    Error::new(ErrorKind::Malformed, detail)
}

/// True when the input, after JSON whitespace, starts like a JSON object: the legacy path
/// (spec/legacy-v2.md §2). A v3 envelope starts with a MessagePack array header instead.
pub(crate) fn looks_like_json(bytes: &[u8]) -> bool {
    if crate::mutant::is(crate::mutant::Mutant::LegacyBraceFirstOnly) {
        return bytes.first() == Some(&b'{');
    }
    bytes
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .is_some_and(|b| *b == b'{')
}

/// Parses "MAJOR.MINOR" (digits only, as oslo writes it).
fn parse_version(s: &str) -> Option<(u64, u64)> {
    let (major, minor) = s.split_once('.')?;
    let num = |p: &str| {
        (!p.is_empty() && p.len() <= 9 && p.bytes().all(|b| b.is_ascii_digit()))
            .then(|| p.parse().ok())
            .flatten()
    };
    Some((num(major)?, num(minor)?))
}

/// Decodes a legacy envelope (spec/legacy-v2.md §3). The caller has checked the size.
pub(crate) fn decode(bytes: &[u8]) -> Result<LegacyMessage, Error> {
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|_| malformed("legacy envelope is not valid JSON"))?;
    let Value::Object(obj) = v else {
        return Err(malformed("legacy envelope is not a JSON object"));
    };
    let (Some(version), Some(message)) = (obj.get(KEY_VERSION), obj.get(KEY_MESSAGE)) else {
        // oslo.messaging: a JSON object without both envelope keys is a 1.0 message, the
        // object itself (deserialize_msg returns it unchanged).
        let text =
            std::str::from_utf8(bytes).map_err(|_| malformed("legacy message is not UTF-8"))?;
        return Ok(LegacyMessage {
            version: (1, 0),
            message: text.trim().to_owned(),
        });
    };
    if obj.len() != 2 && !crate::mutant::is(crate::mutant::Mutant::LegacyExtraMembersIgnored) {
        return Err(malformed(
            "legacy envelope has fields besides oslo.version and oslo.message",
        ));
    }
    let version = version
        .as_str()
        .and_then(parse_version)
        .or(
            crate::mutant::is(crate::mutant::Mutant::LegacyVersionUnchecked)
                .then_some(OSLO_VERSION),
        )
        .ok_or_else(|| malformed("oslo.version is not a MAJOR.MINOR string"))?;
    // oslo.messaging's version_is_compatible: same major, minor no newer than ours.
    if (version.0 != OSLO_VERSION.0 || version.1 > OSLO_VERSION.1)
        && !crate::mutant::is(crate::mutant::Mutant::LegacyVersionUnchecked)
    {
        return Err(Error::new(
            ErrorKind::UnsupportedVersion,
            format!(
                "legacy envelope version {}.{} is not compatible with {}.{}",
                version.0, version.1, OSLO_VERSION.0, OSLO_VERSION.1
            ),
        ));
    }
    let message = message
        .as_str()
        .ok_or_else(|| malformed("oslo.message is not a JSON string"))?;
    let inner: Value = serde_json::from_str(message)
        .map_err(|_| malformed("oslo.message does not hold valid JSON"))?;
    if !inner.is_object() {
        return Err(malformed("oslo.message does not hold a JSON object"));
    }
    Ok(LegacyMessage {
        version,
        message: message.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_what_oslo_reads_and_reads_it_back() {
        let env = seal_legacy_v2(r#"{"method": "ping", "args": {"n": 1}}"#).unwrap();
        let v: Value = serde_json::from_str(&env).unwrap();
        assert_eq!(v["oslo.version"], "2.0");
        let inner: Value = serde_json::from_str(v["oslo.message"].as_str().unwrap()).unwrap();
        assert_eq!(inner["method"], "ping");
        let m = decode(env.as_bytes()).unwrap();
        assert_eq!(m.version(), (2, 0));
        assert_eq!(
            m.unauthenticated_message(),
            r#"{"method": "ping", "args": {"n": 1}}"#
        );
        assert!(seal_legacy_v2("[1, 2]").is_err());
        assert!(seal_legacy_v2("{").is_err());
    }

    #[test]
    fn follows_oslo_version_rules() {
        let env = |v: &str| format!(r#"{{"oslo.version": "{v}", "oslo.message": "{{}}"}}"#);
        assert!(decode(env("2.0").as_bytes()).is_ok());
        for (v, kind) in [
            ("2.1", ErrorKind::UnsupportedVersion),
            ("3.0", ErrorKind::UnsupportedVersion),
            ("1.0", ErrorKind::UnsupportedVersion),
            ("1.9", ErrorKind::UnsupportedVersion),
            ("2", ErrorKind::Malformed),
            ("2.x", ErrorKind::Malformed),
            ("", ErrorKind::Malformed),
        ] {
            assert_eq!(decode(env(v).as_bytes()).unwrap_err().kind(), kind, "{v}");
        }
        let v1 = decode(br#" {"method": "ping"} "#).unwrap();
        assert_eq!(v1.version(), (1, 0));
        assert_eq!(v1.unauthenticated_message(), r#"{"method": "ping"}"#);
        assert_eq!(
            decode(br#"{"oslo.version": "2.0", "oslo.message": "{}", "x": 1}"#)
                .unwrap_err()
                .kind(),
            ErrorKind::Malformed
        );
        assert_eq!(
            decode(br#"{"oslo.version": "2.0", "oslo.message": "not json"}"#)
                .unwrap_err()
                .kind(),
            ErrorKind::Malformed
        );
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "[".repeat(100_000);
        let env = format!(r#"{{"oslo.version": "2.0", "oslo.message": "{deep}"}}"#);
        assert_eq!(
            decode(env.as_bytes()).unwrap_err().kind(),
            ErrorKind::Malformed
        );
        let outer = format!("{{\"a\": {}", "[".repeat(100_000));
        assert_eq!(
            decode(outer.as_bytes()).unwrap_err().kind(),
            ErrorKind::Malformed
        );
    }
}
