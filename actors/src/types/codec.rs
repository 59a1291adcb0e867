//! Canonical binary encoding and hashing.
//!
//! The encoding is postcard (serde, varint integers, length-prefixed sequences): deterministic
//! for the chain types because none of them holds a hash map or a float, and maps are BTreeMaps.
//! Invariant: anything decoded from outside must re-encode to exactly the bytes it came from
//! (`decode_canonical`), so one value has one encoding and one hash; trailing bytes, truncation
//! and over-long varints are typed errors, never panics.

use postcard::ser_flavors::Flavor;
use serde::Serialize;
use serde::de::{Deserialize, DeserializeOwned};
use sha2::{Digest, Sha256};

use super::bytes::Hash;

/// Why bytes from outside were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("input too large: {len} bytes, limit {limit}")]
    TooLarge { len: usize, limit: usize },
    #[error("malformed encoding: {0}")]
    Malformed(#[source] postcard::Error),
    #[error("{0} trailing bytes after the value")]
    TrailingBytes(usize),
    #[error("non-canonical encoding: re-encoding the value gives different bytes")]
    NonCanonical,
}

/// Encodes a value canonically.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    // postcard into a Vec only fails for sequences of unknown length or a failing Serialize
    // impl; the chain types have neither, so a failure here is a programming error.
    #[allow(clippy::expect_used)]
    postcard::to_stdvec(value).expect("chain types always encode")
}

/// Decodes bytes that must be the canonical encoding of one `T` and nothing else.
pub fn decode_canonical<T: Serialize + DeserializeOwned>(
    bytes: &[u8],
    limit: usize,
) -> Result<T, DecodeError> {
    if bytes.len() > limit {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            limit,
        });
    }
    let (value, rest): (T, &[u8]) =
        postcard::take_from_bytes(bytes).map_err(DecodeError::Malformed)?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes(rest.len()));
    }
    if !encodes_to(&value, bytes) {
        return Err(DecodeError::NonCanonical);
    }
    Ok(value)
}

/// Whether `encode(value) == bytes`, found by comparing the encoding byte by byte as it is
/// produced: no buffer is allocated, and the first differing byte ends it.
fn encodes_to<T: Serialize + ?Sized>(value: &T, bytes: &[u8]) -> bool {
    /// A postcard output that checks each byte against the expected ones instead of storing it.
    struct Compare<'a> {
        expected: &'a [u8],
        at: usize,
    }
    impl Flavor for Compare<'_> {
        type Output = bool;
        fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
            self.try_extend(&[byte])
        }
        fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
            let end = self.at.saturating_add(data.len());
            if self.expected.get(self.at..end) != Some(data) {
                // Any error stops the serializer; which one does not matter here.
                return Err(postcard::Error::SerializeBufferFull);
            }
            self.at = end;
            Ok(())
        }
        fn finalize(self) -> postcard::Result<bool> {
            Ok(self.at == self.expected.len())
        }
    }
    postcard::serialize_with_flavor(
        value,
        Compare {
            expected: bytes,
            at: 0,
        },
    )
    .unwrap_or(false)
}

/// Decodes bytes this node wrote itself (storage); skips the canonical re-encoding check. `T`
/// may borrow from `bytes` (a view that reads a few fields without allocating the rest).
pub fn decode_trusted<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, DecodeError> {
    let (value, rest): (T, &[u8]) =
        postcard::take_from_bytes(bytes).map_err(DecodeError::Malformed)?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes(rest.len()));
    }
    Ok(value)
}

/// SHA-256 of some bytes.
pub fn sha256(bytes: &[u8]) -> Hash {
    Hash(Sha256::digest(bytes).into())
}

/// SHA-256 over several parts, as if concatenated.
pub fn sha256_parts(parts: &[&[u8]]) -> Hash {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    Hash(h.finalize().into())
}

/// SHA-256 of a value's canonical encoding: `sha256(&encode(value))`, with the encoding fed to
/// the hasher as it is produced (through a small buffer, since postcard writes fixed-size arrays
/// byte by byte) instead of collected in a `Vec` first. Block hashing encodes every receipt and a
/// block's whole write set this way.
pub fn hash_of<T: Serialize + ?Sized>(value: &T) -> Hash {
    /// A postcard output that hashes what it is given, `BUF` bytes at a time.
    struct Hasher {
        sha: Sha256,
        buf: [u8; BUF],
        len: usize,
    }
    const BUF: usize = 128;
    impl Hasher {
        fn drain(&mut self) {
            self.sha.update(&self.buf[..self.len]);
            self.len = 0;
        }
    }
    impl Flavor for Hasher {
        type Output = Hash;
        fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
            if self.len == BUF {
                self.drain();
            }
            self.buf[self.len] = byte;
            self.len += 1;
            Ok(())
        }
        fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
            if self.len + data.len() <= BUF {
                self.buf[self.len..self.len + data.len()].copy_from_slice(data);
                self.len += data.len();
            } else {
                self.drain();
                self.sha.update(data);
            }
            Ok(())
        }
        fn finalize(mut self) -> postcard::Result<Hash> {
            self.drain();
            Ok(Hash(self.sha.finalize().into()))
        }
    }
    let hasher = Hasher {
        sha: Sha256::new(),
        buf: [0; BUF],
        len: 0,
    };
    // Hashing never fails and the chain types always serialize (see `encode`).
    #[allow(clippy::expect_used)]
    postcard::serialize_with_flavor(value, hasher).expect("chain types always encode")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_trailing_truncated_and_overlong() {
        let v: u64 = 300;
        let mut bytes = encode(&v);
        assert_eq!(decode_canonical::<u64>(&bytes, 100), Ok(300));
        bytes.push(0);
        assert_eq!(
            decode_canonical::<u64>(&bytes, 100),
            Err(DecodeError::TrailingBytes(1))
        );
        assert!(matches!(
            decode_canonical::<u64>(&[0x80], 100),
            Err(DecodeError::Malformed(_))
        ));
        // 1 encoded with a redundant continuation byte decodes but is not canonical.
        let overlong = [0x81, 0x00];
        assert!(decode_canonical::<u64>(&overlong, 100).is_err());
        assert_eq!(
            decode_canonical::<u64>(&[1, 2, 3], 2),
            Err(DecodeError::TooLarge { len: 3, limit: 2 })
        );
    }

    #[test]
    fn sha256_known_vector() {
        assert_eq!(
            sha256(b"abc").to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(sha256_parts(&[b"a", b"bc"]), sha256(b"abc"));
    }
}
