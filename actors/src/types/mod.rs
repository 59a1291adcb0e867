//! Chain data types: transactions, blocks, receipts, state commitments and their canonical
//! encoding. No actix, no storage, no VM: everything here is pure data and pure functions, so
//! every node (sequencer or follower) computes the same bytes and hashes from the same values.

mod block;
mod bytes;
mod codec;
mod merkle;
mod receipt;
mod sig;
mod state;
mod tx;

#[cfg(test)]
mod proptests;

pub use block::{Block, BlockError, BlockHeader, MAX_BLOCK_BYTES, receipts_root, tx_root};
pub use bytes::{Address, Bytes, Hash, HexError, PublicKey, Signature};
pub use codec::{
    DecodeError, decode_canonical, decode_trusted, encode, hash_of, sha256, sha256_parts,
};
pub use merkle::merkle_root;
pub use receipt::{Event, Receipt, ReceiptStatus, revert_reason, trap_kind};
pub use sig::{
    BATCH_CHUNK, verify_batch, verify_batch_chunked, verify_identified, verify_identified_chunked,
};
pub use state::{ContractInfo, WriteSet, genesis_state_root, state_root};
pub use tx::{
    Action, IdentifiedTx, KeyCache, KeyError, Keypair, MAX_ARGS_LEN, MAX_CHAIN_ID_LEN,
    MAX_CODE_LEN, MAX_ENTRY_LEN, MAX_TX_BYTES, SigDomain, SigMessage, SignedTx, Tx, TxError,
    VerifiedTx, contract_address, valid_entry, verify_hash,
};

/// A `HashMap` for the hot per-transaction maps (mempool entries and accounts, the journal's
/// index), keyed by tx ids and public keys: foldhash with a random per-map seed instead of
/// SipHash, which was about 2% of the node's CPU at 25,000 tx/s. Still seeded, so keys an
/// attacker grinds (ids are hashes of what they sign) cannot be aimed at one bucket chain;
/// iteration order is as unspecified as with `RandomState`, and nothing relies on it.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Gives back a hash map's spare room once it is sparse; returns whether it did. A map keeps
/// its largest capacity after its entries leave, so a map that once held a 100,000-transaction
/// backlog would hold its empty buckets for the rest of the process (heaptrack, RUNBOOK
/// "Performance", memory).
///
/// Shrinks only when the capacity exceeds 4 times `max(len, floor)`, and then to room for twice
/// that: a shrunk map is not shrunk again until it has grown and emptied once more, so the
/// O(len) rehash is paid for by the at least `len` removals since the map was last that large
/// (amortized O(1) per removal). Below `floor` entries a map is never shrunk, which spares a
/// busy map the re-growth after every time it empties. Only capacity changes, never contents.
pub fn shrink_sparse<K: std::hash::Hash + Eq, V, S: std::hash::BuildHasher>(
    map: &mut std::collections::HashMap<K, V, S>,
    floor: usize,
) -> bool {
    let keep = map.len().max(floor);
    if map.capacity() <= keep.saturating_mul(4) {
        return false;
    }
    map.shrink_to(keep.saturating_mul(2));
    true
}

#[cfg(test)]
mod shrink_tests {
    use super::{FastMap, shrink_sparse};

    #[test]
    fn only_a_sparse_map_above_the_floor_is_shrunk_and_keeps_its_entries() {
        let mut m: FastMap<u64, u64> = (0..10_000).map(|i| (i, i)).collect();
        let full = m.capacity();
        // More than a quarter full: left alone. (`capacity` is not compared here: removals
        // leave tombstones, which hashbrown does not count as room.)
        m.retain(|k, _| *k < 4_000);
        assert!(!shrink_sparse(&mut m, 100));
        // Sparse: shrunk to room for twice what is left, contents untouched; asking again
        // does nothing.
        m.retain(|k, _| *k < 500);
        assert!(shrink_sparse(&mut m, 100));
        assert!(m.capacity() >= 1_000 && m.capacity() < full);
        assert!((0..500).all(|k| m.get(&k) == Some(&k)) && m.len() == 500);
        let once = m.capacity();
        assert!(!shrink_sparse(&mut m, 100));
        assert_eq!(m.capacity(), once);
        // Below the floor: never shrunk, however empty.
        m.clear();
        assert!(!shrink_sparse(&mut m, 1_000));
        assert!(m.capacity() >= once);
    }
}
