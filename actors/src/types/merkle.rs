//! Binary Merkle root over 32-byte hashes (transaction ids, receipt hashes).
//!
//! Leaves and inner nodes are domain-separated (`0x00 || leaf`, `0x01 || left || right`) so a leaf
//! can never be passed off as an inner node; an odd node at the end of a level is promoted
//! unchanged rather than paired with itself, so two different lists never share a root (the
//! duplicated-last-leaf ambiguity). The root of no leaves is SHA-256 of the empty string.

use super::bytes::Hash;
use super::codec::{sha256, sha256_parts};

/// The Merkle root of `leaves`, in order.
pub fn merkle_root(leaves: &[Hash]) -> Hash {
    if leaves.is_empty() {
        return sha256(b"");
    }
    let mut level: Vec<Hash> = leaves
        .iter()
        .map(|l| sha256_parts(&[&[0x00], &l.0]))
        .collect();
    while level.len() > 1 {
        let mut next = Vec::with_capacity(level.len().div_ceil(2));
        for pair in level.chunks(2) {
            match pair {
                [l, r] => next.push(sha256_parts(&[&[0x01], &l.0, &r.0])),
                [single] => next.push(*single),
                _ => {}
            }
        }
        level = next;
    }
    level[0]
}

#[cfg(test)]
mod tests {
    use super::*;

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
