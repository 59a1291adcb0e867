//! Chain parameters: every value that changes receipts, state or what a block accepts.
//!
//! Invariant: all nodes of one chain execute with the same `ChainParams`, whatever their own
//! configuration says. The values are fixed when the chain is created (genesis) and recorded
//! with it; a node's configuration only supplies them for a new chain.

use serde::{Deserialize, Serialize};

use crate::types::{Hash, hash_of};

/// The consensus parameters of one chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainParams {
    /// The chain id every transaction names.
    pub chain_id: String,
    /// Contract ABI version (imports and calling convention), see `CONTRACT_ABI.md`.
    pub abi_version: u32,
    /// Version of the gas schedule in `vm::gas` (prices and limits).
    pub gas_schedule: u32,
    /// Most gas one transaction may declare (`execution.gas_limit` at genesis).
    pub max_tx_gas: u64,
    /// Most 64 KiB pages one call's linear memory may have (`wasm.max_memory_pages` at genesis):
    /// deploy validation and execution both use it.
    pub max_memory_pages: u32,
    /// Wasm stack limit of one call, bytes.
    pub max_wasm_stack: u64,
    /// Sum of declared gas limits in one block.
    pub max_block_gas: u64,
    /// Sum of canonical transaction bytes in one block.
    pub max_block_tx_bytes: u64,
    /// Sum of receipt and write bytes in one block.
    pub max_block_result_bytes: u64,
}

impl ChainParams {
    /// SHA-256 of the canonical encoding: what a chain commits to at genesis.
    pub fn hash(&self) -> Hash {
        hash_of(self)
    }
}
