//! Typed payloads (feature `serde`; normative text: `spec/rpc.md` §9): seal any
//! `T: Serialize`, open into any `T: DeserializeOwned`, as MessagePack (rmp-serde) or JSON.
//!
//! The format travels in the authenticated metadata ([`CONTENT_TYPE`]), and a receiver
//! decodes only when it names the format the receiver asked for: bytes are never decoded
//! as the wrong format. Decoding errors ([`DecodeError`]) are distinct from rejections of
//! the envelope ([`crate::Error`]).
//!
//! ```
//! use rpcseal::typed::{Format, TypedError};
//! use rpcseal::{Identity, Metadata, Mode, Opener, Recipient, Sealer, SealerConfig};
//!
//! #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
//! struct Get { sku: u32 }
//!
//! let (alice, bob) = (Identity::generate(), Identity::generate());
//! let mut sealer = Sealer::new(&alice, &[Recipient::from(bob.public())], SealerConfig::new(Mode::Mac))?;
//! let opener = Opener::builder().identity(&bob).trust(alice.public()).build()?;
//!
//! let envelope = sealer.seal_typed(&Get { sku: 42 }, Format::MessagePack, &Metadata::new())?;
//! let (value, opened) = opener.open_typed::<Get>(&envelope, Format::MessagePack)?;
//! assert_eq!(value, Get { sku: 42 });
//! assert_eq!(opened.metadata["rpc.content-type"], "application/msgpack");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Misuse};
use crate::open::{Opened, Opener};
use crate::rpc::CONTENT_TYPE;
use crate::seal::Sealer;
use crate::Metadata;

/// The deepest nesting a MessagePack payload may have (serde_json's limit for JSON).
const MAX_DEPTH: usize = 128;

/// How a typed payload is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Format {
    /// MessagePack, structs as maps with field names (rmp-serde's `to_vec_named`), so that
    /// other languages' MessagePack libraries read them as dictionaries.
    MessagePack,
    /// JSON (RFC 8259), UTF-8.
    Json,
}

impl Format {
    /// The [`CONTENT_TYPE`] value: `application/msgpack` or `application/json`.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::MessagePack => "application/msgpack",
            Format::Json => "application/json",
        }
    }

    /// The format a [`CONTENT_TYPE`] value names, compared byte for byte.
    pub fn from_content_type(value: &str) -> Option<Format> {
        [Format::MessagePack, Format::Json]
            .into_iter()
            .find(|f| f.content_type() == value)
    }

    /// Encodes `value` (no envelope).
    pub fn encode<T: Serialize + ?Sized>(self, value: &T) -> Result<Vec<u8>, EncodeError> {
        match self {
            Format::MessagePack => {
                rmp_serde::to_vec_named(value).map_err(|e| EncodeError::Serialize(e.to_string()))
            }
            Format::Json => {
                serde_json::to_vec(value).map_err(|e| EncodeError::Serialize(e.to_string()))
            }
        }
    }

    /// Decodes `bytes` (no envelope): the whole input is one value, trailing bytes are an
    /// error.
    pub fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T, DecodeError> {
        let invalid = |reason: String| DecodeError::Invalid {
            format: self,
            reason,
        };
        match self {
            Format::MessagePack => {
                let mut rest = bytes;
                let mut de = rmp_serde::Deserializer::new(&mut rest);
                // As serde_json's limit: deep enough for any real message, shallow enough
                // for a small thread stack.
                de.set_max_depth(MAX_DEPTH);
                let value = T::deserialize(&mut de).map_err(|e| invalid(e.to_string()))?;
                if !rest.is_empty() {
                    return Err(invalid("trailing bytes after the value".into()));
                }
                Ok(value)
            }
            Format::Json => serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string())),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.content_type())
    }
}

/// A value could not be sealed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// The value does not serialize (for example a map with non-string keys as JSON).
    Serialize(String),
    /// The sealer refused (payload too large, metadata invalid, ...).
    Misuse(Misuse),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::Serialize(r) => write!(f, "the value could not be encoded: {r}"),
            EncodeError::Misuse(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for EncodeError {}

impl From<Misuse> for EncodeError {
    fn from(m: Misuse) -> Self {
        EncodeError::Misuse(m)
    }
}

/// An authenticated payload could not be decoded as the type asked for. Distinct from
/// [`crate::Error`]: the envelope was fine, its content is not what the receiver expects.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The authenticated [`CONTENT_TYPE`] is absent or names another format: the payload
    /// is not decoded at all.
    WrongContentType {
        /// The format the receiver asked for.
        expected: Format,
        /// The content type the message carries, if any.
        found: Option<String>,
    },
    /// The payload is not a valid encoding of the type in this format.
    Invalid {
        /// The format.
        format: Format,
        /// What the decoder reported (about the payload's structure, never its bytes).
        reason: String,
    },
}

impl DecodeError {
    /// A stable snake_case name: `wrong_content_type` or `invalid_payload`.
    pub fn kind(&self) -> &'static str {
        match self {
            DecodeError::WrongContentType { .. } => "wrong_content_type",
            DecodeError::Invalid { .. } => "invalid_payload",
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::WrongContentType {
                expected,
                found: Some(found),
            } => write!(
                f,
                "the payload's content type is {found:?}, not {expected} (wrong_content_type)"
            ),
            DecodeError::WrongContentType {
                expected,
                found: None,
            } => write!(
                f,
                "the payload carries no content type; {expected} was expected (wrong_content_type)"
            ),
            DecodeError::Invalid { format, reason } => {
                write!(
                    f,
                    "the payload is not valid {format}: {reason} (invalid_payload)"
                )
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// Why [`Opener::open_typed`] failed: the envelope, or its content.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TypedError {
    /// The envelope was rejected ([`crate::Error::kind`] says why).
    Rejected(Error),
    /// The envelope was fine; its payload is not the type asked for.
    Decode(DecodeError),
}

impl fmt::Display for TypedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TypedError::Rejected(e) => write!(f, "{e}"),
            TypedError::Decode(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for TypedError {}

impl From<Error> for TypedError {
    fn from(e: Error) -> Self {
        TypedError::Rejected(e)
    }
}

impl From<DecodeError> for TypedError {
    fn from(e: DecodeError) -> Self {
        TypedError::Decode(e)
    }
}

/// `metadata` with [`CONTENT_TYPE`] set to `format`'s. Refuses metadata that already names
/// another content type.
pub fn with_content_type(metadata: &Metadata, format: Format) -> Result<Metadata, Misuse> {
    match metadata.get(CONTENT_TYPE) {
        Some(v) if v != format.content_type() => Err(Misuse::InvalidMetadata(
            "rpc.content-type names another format than the one sealed",
        )),
        _ => {
            let mut m = metadata.clone();
            m.insert(CONTENT_TYPE.into(), format.content_type().into());
            Ok(m)
        }
    }
}

/// Decodes a payload whose authenticated metadata is `metadata`: first the content type
/// must name `format` ([`DecodeError::WrongContentType`]), then the bytes must decode.
pub fn decode<T: DeserializeOwned>(
    payload: &[u8],
    metadata: &Metadata,
    format: Format,
) -> Result<T, DecodeError> {
    match metadata.get(CONTENT_TYPE) {
        Some(v) if v == format.content_type() => format.decode(payload),
        other => Err(DecodeError::WrongContentType {
            expected: format,
            found: other.cloned(),
        }),
    }
}

/// Decodes an opened message's payload: [`decode`] on its payload and metadata.
pub fn decode_opened<T: DeserializeOwned>(
    opened: &Opened,
    format: Format,
) -> Result<T, DecodeError> {
    decode(&opened.payload, &opened.metadata, format)
}

impl Sealer {
    /// Encodes `value` in `format` and seals it, with [`CONTENT_TYPE`] added to `metadata`.
    pub fn seal_typed<T: Serialize + ?Sized>(
        &mut self,
        value: &T,
        format: Format,
        metadata: &Metadata,
    ) -> Result<Vec<u8>, EncodeError> {
        let m = with_content_type(metadata, format)?;
        let payload = format.encode(value)?;
        Ok(self.seal(&payload, &m)?)
    }
}

impl Opener {
    /// Opens `envelope` and decodes its payload as `T` in `format`. The message is marked
    /// as seen only once it decoded: one that does not ([`TypedError::Decode`]) changes no
    /// replay state.
    pub fn open_typed<T: DeserializeOwned>(
        &self,
        envelope: &[u8],
        format: Format,
    ) -> Result<(T, Opened), TypedError> {
        let (opened, mark) = self.open_unmarked(envelope)?;
        let value = decode_opened(&opened, format)?;
        self.mark(mark)?;
        Ok((value, opened))
    }
}
