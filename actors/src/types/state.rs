//! Contract metadata, a block's write set and the chained state root.
//!
//! Invariant: a write set is made of BTreeMaps, so its canonical encoding (and hence the state
//! root) depends only on its contents, never on the order in which execution produced them or on
//! how many worker threads ran. `state_root = SHA-256("accumen/state/v1" || parent_root ||
//! SHA-256(encode(write_set)))`: a chained commitment, identical on every node.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::bytes::{Address, Bytes, Hash, PublicKey};
use super::codec::{hash_of, sha256_parts};

/// What the chain records about a deployed contract.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractInfo {
    pub address: Address,
    pub code_hash: Hash,
    pub deployer: PublicKey,
    /// Height of the block that deployed it.
    pub height: u64,
    /// The deploy transaction.
    pub tx_id: Hash,
}

/// Everything a block changes in state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteSet {
    /// Contract storage: `Some(value)` sets, `None` removes.
    pub storage: BTreeMap<(Address, Bytes), Option<Bytes>>,
    /// Contracts deployed by this block.
    pub contracts: BTreeMap<Address, ContractInfo>,
    /// Code first stored by this block, by code hash.
    pub code: BTreeMap<Hash, Bytes>,
    /// Each sender's next nonce after this block.
    pub nonces: BTreeMap<PublicKey, u64>,
}

impl WriteSet {
    /// True when the block changed nothing.
    pub fn is_empty(&self) -> bool {
        self.storage.is_empty()
            && self.contracts.is_empty()
            && self.code.is_empty()
            && self.nonces.is_empty()
    }
}

/// The state root after applying `writes` on top of `parent_root`.
pub fn state_root(parent_root: &Hash, writes: &WriteSet) -> Hash {
    sha256_parts(&[b"accumen/state/v1", &parent_root.0, &hash_of(writes).0])
}

/// The state root of an empty chain with this id.
pub fn genesis_state_root(chain_id: &str) -> Hash {
    sha256_parts(&[b"accumen/genesis-state/v1", chain_id.as_bytes()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_ignores_insertion_order_and_chains() {
        let mut a = WriteSet::default();
        let mut b = WriteSet::default();
        let k1 = (Address([1; 32]), Bytes(vec![1]));
        let k2 = (Address([2; 32]), Bytes(vec![2]));
        a.storage.insert(k1.clone(), Some(Bytes(vec![9])));
        a.storage.insert(k2.clone(), None);
        b.storage.insert(k2, None);
        b.storage.insert(k1, Some(Bytes(vec![9])));
        let parent = genesis_state_root("c");
        assert_eq!(state_root(&parent, &a), state_root(&parent, &b));
        assert_ne!(state_root(&parent, &a), state_root(&Hash([0; 32]), &a));
        assert_ne!(
            state_root(&parent, &a),
            state_root(&parent, &WriteSet::default())
        );
    }
}
