//! Binary Merkle root over 32-byte hashes (transaction ids, receipt hashes).
//!
//! Leaves and inner nodes are domain-separated (`0x00 || leaf`, `0x01 || left || right`) so a leaf
//! can never be passed off as an inner node; an odd node at the end of a level is promoted
//! unchanged rather than paired with itself, so two different lists never share a root (the
//! duplicated-last-leaf ambiguity). The root of no leaves is SHA-256 of the empty string.

use sha2::block_api::compress256;

use super::bytes::Hash;
use super::codec::sha256;

/// The Merkle root of `leaves`, in order.
///
/// Every hash here is SHA-256 of a 33-byte (leaf) or 65-byte (node) message, so it is computed
/// with the raw compression function on blocks padded here, instead of through a `Digest`
/// (whose buffering and padding, per hash, cost about as much as the compressions: the roots
/// were 2.3% of the sequencer's CPU at 100,000 tx/s). The result is SHA-256 itself, bit for
/// bit: `tests::same_as_digest` compares both on many inputs, and `shapes` the whole rule.
pub fn merkle_root(leaves: &[Hash]) -> Hash {
    if leaves.is_empty() {
        return sha256(b"");
    }
    let mut level: Vec<Hash> = leaves.iter().map(leaf).collect();
    while level.len() > 1 {
        // In place: pair `i` of this level becomes entry `i` of the next.
        let pairs = level.len() / 2;
        for i in 0..pairs {
            level[i] = node(&level[2 * i], &level[2 * i + 1]);
        }
        let odd = level.len() % 2 == 1;
        if odd {
            level[pairs] = level[level.len() - 1];
        }
        level.truncate(pairs + usize::from(odd));
    }
    level[0]
}

/// SHA-256's initial state.
const IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// `sha256(0x00 || h)`: 33 bytes, one padded block (then `0x80`, zeros, and the bit length 264
/// big-endian in the last 8 bytes).
fn leaf(h: &Hash) -> Hash {
    let mut block = [0u8; 64];
    block[1..33].copy_from_slice(&h.0);
    block[33] = 0x80;
    block[56..].copy_from_slice(&(33u64 * 8).to_be_bytes());
    digest(&[block])
}

/// `sha256(0x01 || l || r)`: 65 bytes, two blocks (the second holds `r`'s last byte, `0x80`,
/// zeros and the bit length 520).
fn node(l: &Hash, r: &Hash) -> Hash {
    let mut blocks = [[0u8; 64]; 2];
    blocks[0][0] = 0x01;
    blocks[0][1..33].copy_from_slice(&l.0);
    blocks[0][33..].copy_from_slice(&r.0[..31]);
    blocks[1][0] = r.0[31];
    blocks[1][1] = 0x80;
    blocks[1][56..].copy_from_slice(&(65u64 * 8).to_be_bytes());
    digest(&blocks)
}

/// The digest of blocks that are already padded: the state after them, big-endian.
fn digest(blocks: &[[u8; 64]]) -> Hash {
    let mut state = IV;
    compress256(&mut state, blocks);
    let mut out = [0u8; 32];
    for (chunk, word) in out.chunks_exact_mut(4).zip(state) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    Hash(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::codec::sha256_parts;

    /// The rule as first written, through `Digest`: what `merkle_root` must equal.
    fn reference_root(leaves: &[Hash]) -> Hash {
        if leaves.is_empty() {
            return sha256(b"");
        }
        let mut level: Vec<Hash> = leaves
            .iter()
            .map(|l| sha256_parts(&[&[0x00], &l.0]))
            .collect();
        while level.len() > 1 {
            level = level
                .chunks(2)
                .map(|pair| match pair {
                    [l, r] => sha256_parts(&[&[0x01], &l.0, &r.0]),
                    [single] => *single,
                    _ => unreachable!("chunks of two"),
                })
                .collect();
        }
        level[0]
    }

    #[test]
    fn same_as_digest() {
        // Hashes that vary in every byte, and roots of every length up to 70 (each shape of
        // odd promotion, several levels deep) plus a few large ones.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            let mut b = [0u8; 32];
            for chunk in b.chunks_exact_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                chunk.copy_from_slice(&x.to_le_bytes());
            }
            Hash(b)
        };
        let hashes: Vec<Hash> = (0..1100).map(|_| next()).collect();
        for w in hashes.windows(2) {
            assert_eq!(leaf(&w[0]), sha256_parts(&[&[0x00], &w[0].0]));
            assert_eq!(
                node(&w[0], &w[1]),
                sha256_parts(&[&[0x01], &w[0].0, &w[1].0])
            );
        }
        for n in (0..=70).chain([127, 128, 129, 255, 1024, 1100]) {
            assert_eq!(
                merkle_root(&hashes[..n]),
                reference_root(&hashes[..n]),
                "n = {n}"
            );
        }
    }

    fn h(b: u8) -> Hash {
        Hash([b; 32])
    }

    #[test]
    fn shapes() {
        let leaf = |x: Hash| sha256_parts(&[&[0], &x.0]);
        let node = |l: Hash, r: Hash| sha256_parts(&[&[1], &l.0, &r.0]);
        assert_eq!(merkle_root(&[]), sha256(b""));
        assert_eq!(merkle_root(&[h(1)]), leaf(h(1)));
        assert_eq!(merkle_root(&[h(1), h(2)]), node(leaf(h(1)), leaf(h(2))));
        assert_eq!(
            merkle_root(&[h(1), h(2), h(3)]),
            node(node(leaf(h(1)), leaf(h(2))), leaf(h(3)))
        );
        // No second-preimage by duplicating the last leaf.
        assert_ne!(
            merkle_root(&[h(1), h(2), h(3)]),
            merkle_root(&[h(1), h(2), h(3), h(3)])
        );
        // Order matters.
        assert_ne!(merkle_root(&[h(1), h(2)]), merkle_root(&[h(2), h(1)]));
    }
}
