//! Canonical binary encoding and hashing.
//!
//! The encoding is postcard (serde, varint integers, length-prefixed sequences): deterministic
//! for the chain types because none of them holds a hash map or a float, and maps are BTreeMaps.
//! Invariant: anything decoded from outside must re-encode to exactly the bytes it came from
//! (`decode_canonical`), so one value has one encoding and one hash; trailing bytes, truncation
//! and over-long varints are typed errors, never panics.

use serde::Serialize;
use serde::de::DeserializeOwned;
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
    if encode(&value) != bytes {
        return Err(DecodeError::NonCanonical);
    }
    Ok(value)
}

/// Decodes bytes this node wrote itself (storage); skips the canonical re-encoding check.
pub fn decode_trusted<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
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

/// SHA-256 of a value's canonical encoding.
pub fn hash_of<T: Serialize + ?Sized>(value: &T) -> Hash {
    sha256(&encode(value))
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
