//! Accumulate's binary encoding (L0 document §3.1; Go `pkg/types/encoding/writer.go`): the
//! field writer and reader, `uvarint`, and canonical `acc://` URLs and transaction ids.
//!
//! Invariants: an object is its present fields in ascending field-number order, each
//! `uvarint(field) || value`; zero values are omitted except the union `type` field (written by
//! the caller with [`Writer::type_field`]); an object with no field is the single byte `0x80`.
//! The reader is strict: fields must ascend (a repeated field may repeat its number), varints
//! must fit in 64 bits, and every length must fit in the input. Callers re-encode what they
//! decoded and compare, so only canonical bytes are ever accepted (see `codec::decode_*`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::types::{Hash, HexError};

/// Appends `v` as unsigned LEB128 (Go `binary.PutUvarint`).
pub fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The encoding of an object with no field at all.
const EMPTY_OBJECT: u8 = 0x80;

/// Writes one object's fields. Call the methods in ascending field order.
#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty object.
    pub fn new() -> Self {
        Self::default()
    }

    fn field(&mut self, n: u32) {
        put_uvarint(&mut self.buf, u64::from(n));
    }

    /// The union `type` field: always written, even when zero.
    pub fn type_field(&mut self, n: u32, v: u64) {
        self.field(n);
        put_uvarint(&mut self.buf, v);
    }

    /// An unsigned integer, enum or bool; omitted when zero.
    pub fn uint(&mut self, n: u32, v: u64) {
        if v != 0 {
            self.type_field(n, v);
        }
    }

    /// A byte string (`uvarint(len) || raw`); omitted when empty.
    pub fn bytes(&mut self, n: u32, v: &[u8]) {
        if !v.is_empty() {
            self.repeated_bytes(n, v);
        }
    }

    /// One element of a repeated byte-string field: written even when empty (`n 00`).
    pub fn repeated_bytes(&mut self, n: u32, v: &[u8]) {
        self.field(n);
        put_uvarint(&mut self.buf, v.len() as u64);
        self.buf.extend_from_slice(v);
    }

    /// A string; omitted when empty.
    pub fn string(&mut self, n: u32, v: &str) {
        self.bytes(n, v.as_bytes());
    }

    /// A 32-byte hash, raw, no length; omitted when all zero.
    pub fn hash(&mut self, n: u32, v: &Hash) {
        if *v != Hash::ZERO {
            self.field(n);
            self.buf.extend_from_slice(&v.0);
        }
    }

    /// A nested object (its complete encoding), length-prefixed.
    pub fn nested(&mut self, n: u32, inner: &[u8]) {
        self.repeated_bytes(n, inner);
    }

    /// The object's bytes (`0x80` when no field was written).
    pub fn finish(self) -> Vec<u8> {
        if self.buf.is_empty() {
            vec![EMPTY_OBJECT]
        } else {
            self.buf
        }
    }
}

/// Why Accumulate binary could not be decoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error("{object}: input ends inside a value")]
    Truncated { object: &'static str },
    #[error("{object}: varint longer than 64 bits")]
    VarintOverflow { object: &'static str },
    #[error("{object}: field {field} after field {previous} (fields must ascend)")]
    FieldOrder {
        object: &'static str,
        field: u64,
        previous: u64,
    },
    #[error("{object}: field {field} is not supported")]
    UnsupportedField { object: &'static str, field: u64 },
    #[error("{object}: required field {field} is missing")]
    MissingField { object: &'static str, field: u64 },
    #[error("{object}: type {got} is not supported (expected {expected})")]
    UnsupportedType {
        object: &'static str,
        expected: u64,
        got: u64,
    },
    #[error("{object}: field {field} should be {expected} bytes, got {got}")]
    Length {
        object: &'static str,
        field: u64,
        expected: usize,
        got: usize,
    },
    #[error("{object}: field {field} is not UTF-8")]
    Utf8 { object: &'static str, field: u64 },
    #[error("{object}: field {field}: {source}")]
    Url {
        object: &'static str,
        field: u64,
        #[source]
        source: UrlError,
    },
    #[error("{object}: {extra} bytes after the object")]
    TrailingBytes { object: &'static str, extra: usize },
    #[error("{object}: bytes are not in canonical form (re-encoding differs)")]
    NonCanonical { object: &'static str },
}

/// Reads one object's fields in order.
#[derive(Debug)]
pub struct Reader<'a> {
    object: &'static str,
    input: &'a [u8],
    pos: usize,
    last: u64,
}

impl<'a> Reader<'a> {
    /// A reader over a complete object encoding (`0x80` is the empty object).
    pub fn new(object: &'static str, input: &'a [u8]) -> Self {
        let input = if input == [EMPTY_OBJECT] {
            &[][..]
        } else {
            input
        };
        Self {
            object,
            input,
            pos: 0,
            last: 0,
        }
    }

    /// The object name, for errors.
    pub fn object(&self) -> &'static str {
        self.object
    }

    fn uvarint(&mut self) -> Result<u64, DecodeError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = *self.input.get(self.pos).ok_or(DecodeError::Truncated {
                object: self.object,
            })?;
            self.pos += 1;
            let low = u64::from(b & 0x7f);
            if i == 9 && b > 1 {
                return Err(DecodeError::VarintOverflow {
                    object: self.object,
                });
            }
            v |= low << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError::VarintOverflow {
            object: self.object,
        })
    }

    /// The next field number, or `None` at the end. Fields must not descend.
    pub fn next_field(&mut self) -> Result<Option<u64>, DecodeError> {
        if self.pos == self.input.len() {
            return Ok(None);
        }
        let field = self.uvarint()?;
        if field == 0 || field < self.last {
            return Err(DecodeError::FieldOrder {
                object: self.object,
                field,
                previous: self.last,
            });
        }
        self.last = field;
        Ok(Some(field))
    }

    /// An unsigned integer value.
    pub fn uint(&mut self) -> Result<u64, DecodeError> {
        self.uvarint()
    }

    /// A bool value (0 or 1; anything else is not canonical).
    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.uvarint()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::NonCanonical {
                object: self.object,
            }),
        }
    }

    /// A length-prefixed byte string (or nested object).
    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.uvarint()?;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| self.pos.checked_add(l))
            .filter(|&e| e <= self.input.len())
            .ok_or(DecodeError::Truncated {
                object: self.object,
            })?;
        let out = &self.input[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// A UTF-8 string.
    pub fn string(&mut self, field: u64) -> Result<&'a str, DecodeError> {
        let b = self.bytes()?;
        std::str::from_utf8(b).map_err(|_| DecodeError::Utf8 {
            object: self.object,
            field,
        })
    }

    /// A canonical URL.
    pub fn url(&mut self, field: u64) -> Result<AccUrl, DecodeError> {
        let s = self.string(field)?;
        AccUrl::parse(s).map_err(|source| DecodeError::Url {
            object: self.object,
            field,
            source,
        })
    }

    /// A raw 32-byte hash.
    pub fn hash(&mut self) -> Result<Hash, DecodeError> {
        let end = self
            .pos
            .checked_add(32)
            .filter(|&e| e <= self.input.len())
            .ok_or(DecodeError::Truncated {
                object: self.object,
            })?;
        let mut h = [0u8; 32];
        h.copy_from_slice(&self.input[self.pos..end]);
        self.pos = end;
        Ok(Hash(h))
    }

    /// A fixed-size byte string (`uvarint(N) || N bytes`).
    pub fn fixed<const N: usize>(&mut self, field: u64) -> Result<[u8; N], DecodeError> {
        let b = self.bytes()?;
        b.try_into().map_err(|_| DecodeError::Length {
            object: self.object,
            field,
            expected: N,
            got: b.len(),
        })
    }

    /// The error for a field this object does not support.
    pub fn unsupported(&self, field: u64) -> DecodeError {
        DecodeError::UnsupportedField {
            object: self.object,
            field,
        }
    }
}

/// Why a URL was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UrlError {
    #[error("{0:?} does not start with acc://")]
    Scheme(String),
    #[error("{0:?} has no authority")]
    NoAuthority(String),
    #[error(
        "{0:?} has a character outside [A-Za-z0-9._-/] (Accumen keeps URLs free of escaping, L0 document §3.1)"
    )]
    Character(String),
    #[error("{0:?} has an empty path segment")]
    EmptySegment(String),
    #[error("transaction id {0:?} is not acc://<64 hex>@<account>")]
    TxId(String),
    #[error("transaction id hash: {0}")]
    TxIdHash(#[source] HexError),
}

/// An `acc://` URL in canonical form (Go `pkg/url/url.go` `String`): `acc://authority/path`,
/// path without leading, trailing or doubled `/`, case preserved.
///
/// Choice (the document leaves escaping open, §3.1): only `[A-Za-z0-9._-]` and `/` are
/// accepted, so the canonical string never needs percent-escaping and the hashed bytes are
/// exactly what the user wrote (minus a trailing `/`). The `acc://` scheme is required.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccUrl(String);

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')
}

impl AccUrl {
    /// Parses and canonicalises (a trailing `/` is dropped).
    pub fn parse(s: &str) -> Result<Self, UrlError> {
        let rest = s
            .strip_prefix("acc://")
            .ok_or_else(|| UrlError::Scheme(s.to_string()))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_matches('/')),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err(UrlError::NoAuthority(s.to_string()));
        }
        if !authority.chars().all(allowed) {
            return Err(UrlError::Character(s.to_string()));
        }
        let mut out = format!("acc://{authority}");
        if !path.is_empty() {
            for seg in path.split('/') {
                if seg.is_empty() {
                    return Err(UrlError::EmptySegment(s.to_string()));
                }
                if !seg.chars().all(allowed) {
                    return Err(UrlError::Character(s.to_string()));
                }
                out.push('/');
                out.push_str(seg);
            }
        }
        Ok(Self(out))
    }

    /// The canonical string, as hashed.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `authority/path`, without the scheme (the part after `@` in a transaction id).
    pub fn without_scheme(&self) -> &str {
        &self.0["acc://".len()..]
    }
}

impl fmt::Display for AccUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for AccUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccUrl({})", self.0)
    }
}

impl FromStr for AccUrl {
    type Err = UrlError;
    fn from_str(s: &str) -> Result<Self, UrlError> {
        Self::parse(s)
    }
}

impl Serialize for AccUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for AccUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A transaction (or signature) id: `acc://<64 lowercase hex>@<authority><path>` (Go
/// `pkg/url/txid.go`). The account is the principal for a transaction and the signer for a
/// signature.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TxId {
    pub hash: Hash,
    pub account: AccUrl,
}

impl TxId {
    /// Parses `acc://<hex>@<account>`.
    pub fn parse(s: &str) -> Result<Self, UrlError> {
        let rest = s
            .strip_prefix("acc://")
            .ok_or_else(|| UrlError::TxId(s.to_string()))?;
        let (hash, account) = rest
            .split_once('@')
            .ok_or_else(|| UrlError::TxId(s.to_string()))?;
        if hash.len() != 64 || hash.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(UrlError::TxId(s.to_string()));
        }
        let hash = Hash::from_hex(hash).map_err(UrlError::TxIdHash)?;
        let account = AccUrl::parse(&format!("acc://{account}"))?;
        Ok(Self { hash, account })
    }
}

impl fmt::Display for TxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "acc://{}@{}", self.hash, self.account.without_scheme())
    }
}

impl fmt::Debug for TxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TxId({self})")
    }
}

impl FromStr for TxId {
    type Err = UrlError;
    fn from_str(s: &str) -> Result<Self, UrlError> {
        Self::parse(s)
    }
}

impl Serialize for TxId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TxId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uvarint_matches_go() {
        let cases: [(u64, &str); 5] = [
            (0, "00"),
            (1, "01"),
            (0x80, "8001"),
            (1_735_689_600_000, "80f8a5f9c132"),
            (u64::MAX, "ffffffffffffffffff01"),
        ];
        for (v, hex_) in cases {
            let mut out = Vec::new();
            put_uvarint(&mut out, v);
            assert_eq!(hex::encode(&out), hex_);
            let mut w = Writer::new();
            w.type_field(1, v);
            let bytes = w.finish();
            let mut r = Reader::new("t", &bytes);
            assert_eq!(r.next_field(), Ok(Some(1)));
            assert_eq!(r.uint(), Ok(v));
            assert_eq!(r.next_field(), Ok(None));
        }
    }

    #[test]
    fn reader_refuses_bad_input() {
        // 11-byte varint.
        let mut r = Reader::new(
            "t",
            &[
                0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
            ],
        );
        assert_eq!(r.next_field(), Ok(Some(1)));
        assert_eq!(r.uint(), Err(DecodeError::VarintOverflow { object: "t" }));
        // Length beyond the input.
        let mut r = Reader::new("t", &[0x02, 0x05, 0x61]);
        assert_eq!(r.next_field(), Ok(Some(2)));
        assert_eq!(r.bytes(), Err(DecodeError::Truncated { object: "t" }));
        // Descending fields.
        let mut r = Reader::new("t", &[0x02, 0x00, 0x01, 0x00]);
        assert_eq!(r.next_field(), Ok(Some(2)));
        assert_eq!(r.uint(), Ok(0));
        assert!(matches!(
            r.next_field(),
            Err(DecodeError::FieldOrder { field: 1, .. })
        ));
        // Empty object.
        assert_eq!(Writer::new().finish(), vec![0x80]);
        assert_eq!(Reader::new("t", &[0x80]).next_field(), Ok(None));
    }

    #[test]
    fn urls_are_canonical_or_refused() {
        let u = AccUrl::parse("acc://accumen.acme/book/1/").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(u.as_str(), "acc://accumen.acme/book/1");
        assert_eq!(u.without_scheme(), "accumen.acme/book/1");
        assert!(matches!(
            AccUrl::parse("accumen.acme"),
            Err(UrlError::Scheme(_))
        ));
        assert!(matches!(
            AccUrl::parse("acc:///x"),
            Err(UrlError::NoAuthority(_))
        ));
        assert!(matches!(
            AccUrl::parse("acc://a.acme/b c"),
            Err(UrlError::Character(_))
        ));
        assert!(matches!(
            AccUrl::parse("acc://a.acme/b?x"),
            Err(UrlError::Character(_))
        ));
        assert!(matches!(
            AccUrl::parse("acc://a.acme/b//c"),
            Err(UrlError::EmptySegment(_))
        ));
        let id = "acc://06c85d5d27c599671154ee89bc0a9179e5f2712811a2f83b5013a5dce2f177a9@accumen.acme/anchors";
        let t = TxId::parse(id).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.to_string(), id);
        assert_eq!(t.account.as_str(), "acc://accumen.acme/anchors");
        assert!(TxId::parse("acc://06c8@accumen.acme").is_err());
        assert!(TxId::parse(&id.to_uppercase()).is_err());
        assert!(TxId::parse("acc://accumen.acme/anchors").is_err());
    }
}
