//! The strict MessagePack subset of spec/envelope-v3.md §3.
//!
//! Only the types the format uses exist here: unsigned integers, nil, byte strings,
//! UTF-8 strings, arrays and maps. Every value has exactly one valid encoding (the
//! shortest one), so a decoder that accepts a byte string and an encoder that writes it
//! agree byte for byte. Nothing here allocates on a length the input claims: every length
//! is checked against the bytes actually present before anything is sliced.

use crate::error::{Error, ErrorKind};

// MessagePack type bytes (the MessagePack specification, "Formats").
const NIL: u8 = 0xc0;
const BIN8: u8 = 0xc4;
const BIN16: u8 = 0xc5;
const BIN32: u8 = 0xc6;
const UINT8: u8 = 0xcc;
const UINT16: u8 = 0xcd;
const UINT32: u8 = 0xce;
const UINT64: u8 = 0xcf;
const STR8: u8 = 0xd9;
const STR16: u8 = 0xda;
const STR32: u8 = 0xdb;
const ARRAY16: u8 = 0xdc;
const ARRAY32: u8 = 0xdd;
const MAP16: u8 = 0xde;
const MAP32: u8 = 0xdf;

/// Appends the shortest encoding of an unsigned integer.
pub(crate) fn put_uint(out: &mut Vec<u8>, v: u64) {
    if v < 0x80 {
        out.push(v as u8);
    } else if v <= u64::from(u8::MAX) {
        out.extend_from_slice(&[UINT8, v as u8]);
    } else if v <= u64::from(u16::MAX) {
        out.push(UINT16);
        out.extend_from_slice(&(v as u16).to_be_bytes());
    } else if v <= u64::from(u32::MAX) {
        out.push(UINT32);
        out.extend_from_slice(&(v as u32).to_be_bytes());
    } else {
        out.push(UINT64);
        out.extend_from_slice(&v.to_be_bytes());
    }
}

/// Appends the header of a byte string of `len` bytes (the bytes follow).
pub(crate) fn put_bin_header(out: &mut Vec<u8>, len: usize) {
    if len <= usize::from(u8::MAX) {
        out.extend_from_slice(&[BIN8, len as u8]);
    } else if len <= usize::from(u16::MAX) {
        out.push(BIN16);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        // Callers bound every length below 4 GiB before encoding (the sealer caps payloads
        // at MAX_WIRE_PAYLOAD); a larger one would be written truncated.
        debug_assert!(u32::try_from(len).is_ok(), "bin32 length out of range");
        out.push(BIN32);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
}

/// Appends a byte string.
pub(crate) fn put_bin(out: &mut Vec<u8>, bytes: &[u8]) {
    put_bin_header(out, bytes.len());
    out.extend_from_slice(bytes);
}

/// Appends a UTF-8 string.
pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) {
    let len = s.len();
    if len < 32 {
        out.push(0xa0 | len as u8);
    } else if len <= usize::from(u8::MAX) {
        out.extend_from_slice(&[STR8, len as u8]);
    } else if len <= usize::from(u16::MAX) {
        out.push(STR16);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(STR32);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
    out.extend_from_slice(s.as_bytes());
}

/// Appends an array header for `n` elements.
pub(crate) fn put_array(out: &mut Vec<u8>, n: usize) {
    if n < 16 {
        out.push(0x90 | n as u8);
    } else if n <= usize::from(u16::MAX) {
        out.push(ARRAY16);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(ARRAY32);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

/// Appends a map header for `n` pairs.
pub(crate) fn put_map(out: &mut Vec<u8>, n: usize) {
    if n < 16 {
        out.push(0x80 | n as u8);
    } else if n <= usize::from(u16::MAX) {
        out.push(MAP16);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(MAP32);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

/// Appends nil.
pub(crate) fn put_nil(out: &mut Vec<u8>) {
    out.push(NIL);
}

fn malformed(detail: &'static str) -> Error {
    Error::new(ErrorKind::Malformed, detail)
}

/// A cursor over untrusted bytes. Every read either returns a value whose encoding was
/// the canonical one, or an error; it never reads past the end.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// The input from `start` up to the current position.
    pub(crate) fn since(&self, start: usize) -> &'a [u8] {
        &self.buf[start..self.pos]
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn byte(&mut self) -> Result<u8, Error> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or_else(|| malformed("input ends in the middle of a value"))?;
        self.pos += 1;
        Ok(b)
    }

    fn peek(&self) -> Result<u8, Error> {
        self.buf
            .get(self.pos)
            .copied()
            .ok_or_else(|| malformed("input ends in the middle of a value"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if n > self.remaining() {
            return Err(malformed(
                "a length prefix claims more bytes than the input holds",
            ));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn be(&mut self, n: usize) -> Result<u64, Error> {
        let bytes = self.take(n)?;
        Ok(bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    /// Reads an unsigned integer in its shortest encoding.
    pub(crate) fn uint(&mut self) -> Result<u64, Error> {
        let t = self.byte()?;
        let (v, min) = match t {
            0x00..=0x7f => return Ok(u64::from(t)),
            UINT8 => (self.be(1)?, 0x80),
            UINT16 => (self.be(2)?, 0x100),
            UINT32 => (self.be(4)?, 0x1_0000),
            UINT64 => (self.be(8)?, 0x1_0000_0000),
            // tests/mutants.rs: a reader that coerces booleans, negative and float numbers.
            0xc2 | 0xc3 if crate::mutant::is(crate::mutant::Mutant::CoercingReader) => {
                return Ok(u64::from(t & 1))
            }
            0xe0..=0xff if crate::mutant::is(crate::mutant::Mutant::CoercingReader) => {
                return Ok(i64::from(t as i8) as u64)
            }
            0xcb if crate::mutant::is(crate::mutant::Mutant::CoercingReader) => {
                return Ok(f64::from_bits(self.be(8)?) as u64)
            }
            _ => return Err(malformed("expected an unsigned integer")),
        };
        if v < min && !crate::mutant::is(crate::mutant::Mutant::NonShortestAccepted) {
            return Err(malformed("integer not in its shortest encoding"));
        }
        Ok(v)
    }

    fn bin_len(&mut self) -> Result<usize, Error> {
        let t = self.byte()?;
        let (len, min) = match t {
            BIN8 => (self.be(1)?, 0),
            BIN16 => (self.be(2)?, 0x100),
            BIN32 => (self.be(4)?, 0x1_0000),
            0xa0..=0xbf if crate::mutant::is(crate::mutant::Mutant::StrAsBin) => {
                (u64::from(t & 0x1f), 0)
            }
            STR8 if crate::mutant::is(crate::mutant::Mutant::StrAsBin) => (self.be(1)?, 32),
            STR16 if crate::mutant::is(crate::mutant::Mutant::StrAsBin) => (self.be(2)?, 0x100),
            _ => return Err(malformed("expected a byte string")),
        };
        if len < min && !crate::mutant::is(crate::mutant::Mutant::NonShortestAccepted) {
            return Err(malformed("byte string length not in its shortest encoding"));
        }
        usize::try_from(len).map_err(|_| malformed("byte string too long"))
    }

    /// Reads a byte string, borrowing it from the input.
    pub(crate) fn bin(&mut self) -> Result<&'a [u8], Error> {
        let len = self.bin_len()?;
        self.take(len)
    }

    /// Reads a byte string that must be exactly `N` bytes long.
    pub(crate) fn bin_exact<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let b = self.bin()?;
        <[u8; N]>::try_from(b).map_err(|_| malformed("a fixed-length field has the wrong length"))
    }

    /// Reads nil (returns `None`) or a byte string.
    pub(crate) fn nil_or_bin(&mut self) -> Result<Option<&'a [u8]>, Error> {
        if self.peek()? == NIL {
            self.pos += 1;
            Ok(None)
        } else {
            self.bin().map(Some)
        }
    }

    /// Reads a UTF-8 string in its shortest encoding.
    pub(crate) fn str(&mut self) -> Result<&'a str, Error> {
        let t = self.byte()?;
        let (len, min) = match t {
            0xa0..=0xbf => (u64::from(t & 0x1f), 0),
            STR8 => (self.be(1)?, 32),
            STR16 => (self.be(2)?, 0x100),
            STR32 => (self.be(4)?, 0x1_0000),
            _ => return Err(malformed("expected a text string")),
        };
        if len < min && !crate::mutant::is(crate::mutant::Mutant::NonShortestAccepted) {
            return Err(malformed("string length not in its shortest encoding"));
        }
        let len = usize::try_from(len).map_err(|_| malformed("string too long"))?;
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes).map_err(|_| malformed("string is not valid UTF-8"))
    }

    fn container_len(
        &mut self,
        fix_base: u8,
        c16: u8,
        c32: u8,
        what: &'static str,
    ) -> Result<usize, Error> {
        let t = self.byte()?;
        let (n, min) = if t & 0xf0 == fix_base {
            (u64::from(t & 0x0f), 0)
        } else if t == c16 {
            (self.be(2)?, 16)
        } else if t == c32 {
            (self.be(4)?, 0x1_0000)
        } else {
            return Err(malformed(what));
        };
        if n < min && !crate::mutant::is(crate::mutant::Mutant::NonShortestAccepted) {
            return Err(malformed("container length not in its shortest encoding"));
        }
        let n = usize::try_from(n).map_err(|_| malformed("container too long"))?;
        // Every element takes at least one byte: a count beyond the remaining input is a lie,
        // caught here before any caller sizes a buffer by it.
        if n > self.remaining() {
            return Err(malformed(
                "a container claims more elements than the input holds",
            ));
        }
        Ok(n)
    }

    /// Reads an array header and returns the element count.
    pub(crate) fn array(&mut self) -> Result<usize, Error> {
        self.container_len(0x90, ARRAY16, ARRAY32, "expected an array")
    }

    /// Reads a map header and returns the number of pairs.
    pub(crate) fn map(&mut self) -> Result<usize, Error> {
        self.container_len(0x80, MAP16, MAP32, "expected a map")
    }

    /// Reads the array header and the version field that open every versioned structure
    /// (spec §1.1): the version is checked before the field count, so an unknown version is
    /// reported as such whatever its layout.
    pub(crate) fn versioned(
        &mut self,
        version: u64,
        fields: usize,
        what: &'static str,
    ) -> Result<(), Error> {
        let n = self.array()?;
        let found = self.uint()?;
        if found != version && !crate::mutant::is(crate::mutant::Mutant::AnyVersionAccepted) {
            return Err(Error::new(
                ErrorKind::UnsupportedVersion,
                format!("{what} version {found}"),
            ));
        }
        if n != fields {
            return Err(Error::new(
                ErrorKind::Malformed,
                format!("{what} has the wrong number of fields"),
            ));
        }
        Ok(())
    }

    /// Fails unless every byte of the input was consumed.
    pub(crate) fn finish(&self) -> Result<(), Error> {
        if self.remaining() != 0 && !crate::mutant::is(crate::mutant::Mutant::TrailingBytesAccepted)
        {
            return Err(malformed("trailing bytes after the end of the value"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip_uint(v: u64) {
        let mut out = Vec::new();
        put_uint(&mut out, v);
        let mut r = Reader::new(&out);
        assert_eq!(r.uint().unwrap(), v);
        r.finish().unwrap();
    }

    #[test]
    fn uints_roundtrip_at_every_boundary() {
        for v in [
            0,
            0x7f,
            0x80,
            0xff,
            0x100,
            0xffff,
            0x1_0000,
            0xffff_ffff,
            0x1_0000_0000,
            u64::MAX,
        ] {
            roundtrip_uint(v);
        }
    }

    #[test]
    fn non_shortest_encodings_are_rejected() {
        for bad in [
            &[UINT8, 0x05][..],
            &[UINT16, 0x00, 0xff],
            &[UINT32, 0x00, 0x00, 0xff, 0xff],
            &[UINT64, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff],
        ] {
            assert_eq!(
                Reader::new(bad).uint().unwrap_err().kind(),
                ErrorKind::Malformed
            );
        }
        assert!(Reader::new(&[BIN16, 0x00, 0x01, 0xaa]).bin().is_err());
        assert!(Reader::new(&[STR8, 0x01, b'a']).str().is_err());
        assert!(Reader::new(&[ARRAY16, 0x00, 0x01, 0x00]).array().is_err());
    }

    #[test]
    fn lengths_beyond_the_input_are_rejected_without_allocating() {
        assert!(Reader::new(&[BIN32, 0xff, 0xff, 0xff, 0xff]).bin().is_err());
        assert!(Reader::new(&[ARRAY32, 0xff, 0xff, 0xff, 0xff])
            .array()
            .is_err());
        assert!(Reader::new(&[MAP32, 0x7f, 0xff, 0xff, 0xff]).map().is_err());
        assert!(Reader::new(&[STR32, 0x7f, 0xff, 0xff, 0xff]).str().is_err());
    }

    #[test]
    fn type_confusion_is_rejected() {
        let mut s = Vec::new();
        put_str(&mut s, "abc");
        assert!(Reader::new(&s).bin().is_err());
        let mut b = Vec::new();
        put_bin(&mut b, b"abc");
        assert!(Reader::new(&b).str().is_err());
        assert!(Reader::new(&[0xa1, 0xff]).str().is_err(), "invalid UTF-8");
    }

    #[test]
    fn bins_strs_and_containers_roundtrip() {
        for len in [0usize, 1, 255, 256, 65535, 65536] {
            let data = vec![0x5a; len];
            let mut out = Vec::new();
            put_bin(&mut out, &data);
            let mut r = Reader::new(&out);
            assert_eq!(r.bin().unwrap(), &data[..]);
            r.finish().unwrap();

            let text = "x".repeat(len);
            let mut out = Vec::new();
            put_str(&mut out, &text);
            let mut r = Reader::new(&out);
            assert_eq!(r.str().unwrap(), text);
            r.finish().unwrap();
        }
        for n in [0usize, 15, 16, 65535] {
            let mut out = Vec::new();
            put_array(&mut out, n);
            out.resize(out.len() + n, 0);
            assert_eq!(Reader::new(&out).array().unwrap(), n);
            let mut out = Vec::new();
            put_map(&mut out, n);
            out.resize(out.len() + n, 0);
            assert_eq!(Reader::new(&out).map().unwrap(), n);
        }
    }
}
