//! What the VM reads from the chain: the `StateView` trait, and an in-memory implementation
//! for tests, benchmarks and read-only queries.
//!
//! Invariant: the VM never writes through a `StateView`. Writes are collected in overlays and
//! returned as a `WriteSet`, which the block producer commits in one storage transaction. A view
//! must be a consistent snapshot: every read of one block's execution sees the same parent state.

use std::collections::BTreeMap;

use crate::types::{Address, ContractInfo, Hash, PublicKey};

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
