//! What the VM reads from the chain: the `StateView` trait, an in-memory implementation for
//! tests, benchmarks and read-only queries, and `Layered`, a parent's state made of the state
//! before it and its write set (a block built while its parent is still being committed).
//!
//! Invariant: the VM never writes through a `StateView`. Writes are collected in overlays and
//! returned as a `WriteSet`, which the block producer commits in one storage transaction. A view
//! must be a consistent snapshot: every read of one block's execution sees the same parent state.

use std::collections::BTreeMap;

use crate::types::{Address, Bytes, ContractInfo, Hash, PublicKey, WriteSet};

/// A storage failure while executing: a node fault, never a contract result. It keeps the
/// store's own error as its `source` (shared, so the error stays `Clone` for the engine, which
/// copies it out of a trapped call); `Display` repeats it for `%e` log lines.
#[derive(Debug, Clone)]
pub struct StateError {
    source: std::sync::Arc<dyn std::error::Error + Send + Sync + 'static>,
}

impl std::fmt::Display for StateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "state read failed: {}", self.source)
    }
}

// Written out rather than derived: `source()` must return the store's error itself (so callers
// can downcast it), not the `Arc` around it.
impl std::error::Error for StateError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

impl StateError {
    /// Wraps the store's error (or a message, for views without a typed one).
    pub fn new(source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        Self {
            source: std::sync::Arc::from(source.into()),
        }
    }
}

/// Read access to the parent state of a block.
pub trait StateView: Send + Sync {
    /// A contract's storage value.
    fn storage_get(&self, contract: &Address, key: &[u8]) -> Result<Option<Vec<u8>>, StateError>;
    /// A deployed contract.
    fn contract(&self, address: &Address) -> Result<Option<ContractInfo>, StateError>;
    /// Contract code by its SHA-256.
    fn code(&self, code_hash: &Hash) -> Result<Option<Vec<u8>>, StateError>;
    /// A sender's next nonce (0 for a new sender).
    fn nonce(&self, sender: &PublicKey) -> Result<u64, StateError>;
}

/// State held in memory: for tests, benchmarks and tools.
#[derive(Debug, Default, Clone)]
pub struct MemState {
    pub storage: BTreeMap<(Address, Vec<u8>), Vec<u8>>,
    pub contracts: BTreeMap<Address, ContractInfo>,
    pub code: BTreeMap<Hash, Vec<u8>>,
    pub nonces: BTreeMap<PublicKey, u64>,
}

impl MemState {
    /// Applies a block's write set, as committing it would.
    pub fn apply(&mut self, writes: &crate::types::WriteSet) {
        for ((addr, key), value) in &writes.storage {
            match value {
                Some(v) => {
                    self.storage.insert((*addr, key.0.clone()), v.0.clone());
                }
                None => {
                    self.storage.remove(&(*addr, key.0.clone()));
                }
            }
        }
        for (addr, info) in &writes.contracts {
            self.contracts.insert(*addr, info.clone());
        }
        for (hash, code) in &writes.code {
            self.code.insert(*hash, code.0.clone());
        }
        for (sender, nonce) in &writes.nonces {
            self.nonces.insert(*sender, *nonce);
        }
    }
}

impl StateView for MemState {
    fn storage_get(&self, contract: &Address, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self.storage.get(&(*contract, key.to_vec())).cloned())
    }
    fn contract(&self, address: &Address) -> Result<Option<ContractInfo>, StateError> {
        Ok(self.contracts.get(address).cloned())
    }
    fn code(&self, code_hash: &Hash) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self.code.get(code_hash).cloned())
    }
    fn nonce(&self, sender: &PublicKey) -> Result<u64, StateError> {
        Ok(self.nonces.get(sender).copied().unwrap_or(0))
    }
}

/// The state after a block that is built but not yet committed: that block's write set over
/// the state before it. The block producer executes block N+1 on it while N's commit runs.
///
/// Reads the same values as the state N's commit leaves, because a commit applies exactly the
/// write set (`Storage::commit_block`: every storage, contract, code and nonce entry, a `None`
/// storage value removing the key) and nothing else the VM can read. `base` may already include
/// N (the commit landed before the snapshot was taken): the write set then repeats what `base`
/// holds, which reads the same.
pub struct Layered {
    base: std::sync::Arc<dyn StateView>,
    writes: std::sync::Arc<WriteSet>,
}

impl Layered {
    /// `writes` (block N's) over `base` (the state before N, or already after it).
    pub fn new(base: std::sync::Arc<dyn StateView>, writes: std::sync::Arc<WriteSet>) -> Self {
        Layered { base, writes }
    }
}

impl std::fmt::Debug for Layered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Layered")
            .field("storage_writes", &self.writes.storage.len())
            .field("nonces", &self.writes.nonces.len())
            .finish_non_exhaustive()
    }
}

impl StateView for Layered {
    fn storage_get(&self, contract: &Address, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        // The write set keys own their bytes; one copy of the key per read is the price of
        // looking it up (the engine caches what a block reads).
        match self.writes.storage.get(&(*contract, Bytes(key.to_vec()))) {
            Some(written) => Ok(written.as_ref().map(|v| v.0.clone())),
            None => self.base.storage_get(contract, key),
        }
    }
    fn contract(&self, address: &Address) -> Result<Option<ContractInfo>, StateError> {
        match self.writes.contracts.get(address) {
            Some(info) => Ok(Some(info.clone())),
            None => self.base.contract(address),
        }
    }
    fn code(&self, code_hash: &Hash) -> Result<Option<Vec<u8>>, StateError> {
        match self.writes.code.get(code_hash) {
            Some(code) => Ok(Some(code.0.clone())),
            None => self.base.code(code_hash),
        }
    }
    fn nonce(&self, sender: &PublicKey) -> Result<u64, StateError> {
        match self.writes.nonces.get(sender) {
            Some(n) => Ok(*n),
            None => self.base.nonce(sender),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn addr(n: u8) -> Address {
        Address([n; 32])
    }

    fn key(n: u8) -> PublicKey {
        crate::types::Keypair::from_seed([n; 32]).public()
    }

    /// A state with a little of everything, and a write set that sets, removes and adds.
    fn before_and_writes() -> (MemState, WriteSet) {
        let mut before = MemState::default();
        let info = |n: u8| ContractInfo {
            address: addr(n),
            code_hash: Hash([n; 32]),
            deployer: key(n),
            height: u64::from(n),
            tx_id: Hash([n + 100; 32]),
        };
        before
            .storage
            .insert((addr(1), b"kept".to_vec()), b"old".to_vec());
        before
            .storage
            .insert((addr(1), b"changed".to_vec()), b"old".to_vec());
        before
            .storage
            .insert((addr(1), b"removed".to_vec()), b"old".to_vec());
        before.contracts.insert(addr(1), info(1));
        before.code.insert(Hash([1; 32]), b"code one".to_vec());
        before.nonces.insert(key(1), 4);
        before.nonces.insert(key(2), 9);
        let mut writes = WriteSet::default();
        let b = |s: &[u8]| Bytes(s.to_vec());
        writes
            .storage
            .insert((addr(1), b(b"changed")), Some(b(b"new")));
        writes.storage.insert((addr(1), b(b"removed")), None);
        writes.storage.insert((addr(2), b(b"fresh")), Some(b(b"v")));
        writes.contracts.insert(addr(2), info(2));
        writes.code.insert(Hash([2; 32]), b(b"code two"));
        writes.nonces.insert(key(1), 7);
        writes.nonces.insert(key(3), 1);
        (before, writes)
    }

    #[test]
    fn layered_reads_what_the_committed_block_leaves() {
        let (before, writes) = before_and_writes();
        let mut after = before.clone();
        after.apply(&writes);
        let writes = Arc::new(writes);
        // Whether the snapshot under the layer was taken before the commit landed or after it,
        // the reads are the committed state's.
        for base in [before, after.clone()] {
            let layered = Layered::new(Arc::new(base), writes.clone());
            for (a, k) in [
                (1, &b"kept"[..]),
                (1, b"changed"),
                (1, b"removed"),
                (2, b"fresh"),
                (3, b"never"),
            ] {
                assert_eq!(
                    layered.storage_get(&addr(a), k).unwrap(),
                    after.storage_get(&addr(a), k).unwrap(),
                    "storage {a} {k:?}"
                );
            }
            for a in 1..=3 {
                assert_eq!(
                    layered.contract(&addr(a)).unwrap(),
                    after.contract(&addr(a)).unwrap()
                );
            }
            for h in 1..=3 {
                assert_eq!(
                    layered.code(&Hash([h; 32])).unwrap(),
                    after.code(&Hash([h; 32])).unwrap()
                );
            }
            for s in 1..=4 {
                assert_eq!(
                    layered.nonce(&key(s)).unwrap(),
                    after.nonce(&key(s)).unwrap()
                );
            }
        }
    }
}
