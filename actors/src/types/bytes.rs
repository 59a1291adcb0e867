//! Byte newtypes shared by every chain type: fixed-size hashes, keys, signatures and addresses,
//! and variable-length byte strings.
//!
//! Invariant: one type serves both wire forms. In the canonical binary encoding (postcard, not
//! human readable) a fixed-size value is exactly its N raw bytes and a byte string is a varint
//! length followed by its bytes; in JSON (human readable) both are lowercase hex strings without
//! `0x`. Parsing hex is strict: wrong length or a non-hex digit is a typed error.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a hex string was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HexError {
    #[error("invalid hex: {0}")]
    Invalid(#[source] hex::FromHexError),
    #[error("expected {expected} bytes ({} hex digits), got {got} bytes", expected * 2)]
    Length { expected: usize, got: usize },
}

fn decode_hex(s: &str) -> Result<Vec<u8>, HexError> {
    hex::decode(s).map_err(HexError::Invalid)
}

macro_rules! fixed_bytes {
    ($(#[$meta:meta])* $name:ident, $len:expr) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// Length in bytes.
            pub const LEN: usize = $len;
            /// All zero bytes.
            pub const ZERO: Self = Self([0u8; $len]);

            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// Lowercase hex, no prefix.
            pub fn to_hex(&self) -> String {
                self.with_hex(str::to_string)
            }

            /// Calls `f` with the lowercase hex, written on the stack: Display and JSON use it,
            /// so an id in an answer costs no allocation (a `POST /v1/txs` answer holds up to
            /// `api.max_batch` of them), and `encode_to_slice` writes by table where
            /// `hex::encode` goes through a char iterator.
            pub fn with_hex<R>(&self, f: impl FnOnce(&str) -> R) -> R {
                let mut buf = [0u8; 2 * $len];
                // The buffer is exactly twice the input, the only way this can fail.
                let ok = hex::encode_to_slice(self.0, &mut buf).is_ok();
                debug_assert!(ok);
                // Hex digits are ASCII, so this never fails either.
                f(std::str::from_utf8(&buf).unwrap_or_default())
            }

            /// Parses exactly `2 * LEN` hex digits.
            pub fn from_hex(s: &str) -> Result<Self, HexError> {
                Self::from_slice(&decode_hex(s)?)
            }

            /// Copies a slice of exactly `LEN` bytes.
            pub fn from_slice(b: &[u8]) -> Result<Self, HexError> {
                let arr: [u8; $len] = b
                    .try_into()
                    .map_err(|_| HexError::Length { expected: $len, got: b.len() })?;
                Ok(Self(arr))
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::ZERO
            }
        }

        impl From<[u8; $len]> for $name {
            fn from(b: [u8; $len]) -> Self {
                Self(b)
            }
        }

        impl AsRef<[u8]> for $name {
            fn as_ref(&self) -> &[u8] {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.with_hex(|h| f.write_str(h))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }

        impl FromStr for $name {
            type Err = HexError;
            fn from_str(s: &str) -> Result<Self, HexError> {
                Self::from_hex(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() {
                    self.with_hex(|h| s.serialize_str(h))
                } else {
                    let mut t = s.serialize_tuple($len)?;
                    for b in &self.0 {
                        t.serialize_element(b)?;
                    }
                    t.end()
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                if d.is_human_readable() {
                    d.deserialize_str(HexVisitor::<$len>).map(Self)
                } else {
                    d.deserialize_tuple($len, ArrayVisitor::<$len>).map(Self)
                }
            }
        }
    };
}

struct HexVisitor<const N: usize>;

impl<const N: usize> Visitor<'_> for HexVisitor<N> {
    type Value = [u8; N];
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a hex string of {} digits", N * 2)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<[u8; N], E> {
        let bytes = decode_hex(v).map_err(E::custom)?;
        bytes.as_slice().try_into().map_err(|_| {
            E::custom(HexError::Length {
                expected: N,
                got: bytes.len(),
            })
        })
    }
}

struct ArrayVisitor<const N: usize>;

impl<'de, const N: usize> Visitor<'de> for ArrayVisitor<N> {
    type Value = [u8; N];
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{N} bytes")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<[u8; N], A::Error> {
        let mut out = [0u8; N];
        for (i, slot) in out.iter_mut().enumerate() {
            *slot = seq
                .next_element()?
                .ok_or_else(|| de::Error::invalid_length(i, &self))?;
        }
        Ok(out)
    }
}

fixed_bytes!(
    /// A SHA-256 digest: transaction ids, block hashes, Merkle and state roots, code hashes.
    Hash,
    32
);
fixed_bytes!(
    /// An Ed25519 public key (32 bytes): transaction senders and the sequencer.
    PublicKey,
    32
);
fixed_bytes!(
    /// An Ed25519 signature (64 bytes).
    Signature,
    64
);
fixed_bytes!(
    /// A contract address, derived from the deployer, its nonce and the code hash.
    Address,
    32
);

/// A variable-length byte string: hex in JSON, length-prefixed bytes on the wire.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bytes(pub Vec<u8>);

impl Bytes {
    /// Lowercase hex, no prefix.
    pub fn to_hex(&self) -> String {
        hex::encode(&self.0)
    }

    /// Parses any even number of hex digits.
    pub fn from_hex(s: &str) -> Result<Self, HexError> {
        decode_hex(s).map(Self)
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(v: Vec<u8>) -> Self {
        Self(v)
    }
}

impl From<&[u8]> for Bytes {
    fn from(v: &[u8]) -> Self {
        Self(v.to_vec())
    }
}

impl AsRef<[u8]> for Bytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.len() <= 64 {
            write!(f, "Bytes({})", self.to_hex())
        } else {
            write!(
                f,
                "Bytes({}..; {} bytes)",
                hex::encode(&self.0[..32]),
                self.0.len()
            )
        }
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.to_hex())
        } else {
            s.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("bytes, or a hex string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<u8>, E> {
                decode_hex(v).map_err(E::custom)
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
        }
        if d.is_human_readable() {
            d.deserialize_str(V).map(Bytes)
        } else {
            d.deserialize_byte_buf(V).map(Bytes)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_errors() {
        let h = Hash([7u8; 32]);
        assert_eq!(Hash::from_hex(&h.to_hex()), Ok(h));
        assert_eq!(
            Hash::from_hex("abcd"),
            Err(HexError::Length {
                expected: 32,
                got: 2
            })
        );
        assert!(matches!(Hash::from_hex("zz"), Err(HexError::Invalid(_))));
        assert!(matches!(Bytes::from_hex("abc"), Err(HexError::Invalid(_))));
    }

    #[test]
    fn json_is_hex_and_binary_is_raw() {
        let s = Signature([1u8; 64]);
        let json = serde_json::to_string(&s).unwrap_or_default();
        assert_eq!(json, format!("\"{}\"", "01".repeat(64)));
        let bin = postcard::to_stdvec(&s).unwrap_or_default();
        assert_eq!(bin, vec![1u8; 64]);
        let b = Bytes(vec![1, 2, 3]);
        assert_eq!(
            postcard::to_stdvec(&b).unwrap_or_default(),
            vec![3, 1, 2, 3]
        );
        assert_eq!(serde_json::to_string(&b).unwrap_or_default(), "\"010203\"");
        let back: Result<Signature, _> = serde_json::from_str("\"0102\"");
        assert!(back.is_err());
    }
}
