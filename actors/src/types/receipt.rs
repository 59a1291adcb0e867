//! Receipts: the deterministic outcome of one transaction in a block.
//!
//! Invariant: everything in a receipt is a pure function of the block, the parent state and the
//! engine version, so every node computes the same receipts root. Wall-clock timeouts are node
//! failures, not receipt statuses: such a transaction is dropped from the block instead.
//!
//! Stable codes: the strings the node itself puts in a receipt (trap kinds in `trap_kind`,
//! refusals in `revert_reason`) are fixed here and never come from wasmtime or wasmparser, whose
//! wording changes between versions and would change receipts roots. Only a contract's own
//! `revert` message is free text.

use serde::{Deserialize, Serialize};

use super::bytes::{Address, Bytes, Hash};
use super::codec::hash_of;

/// How a transaction ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptStatus {
    /// Returned normally; writes and events kept.
    Success,
    /// Stopped by `revert`, or refused by the node at execution (unknown contract, invalid code);
    /// writes discarded, gas charged.
    Reverted { message: String },
    /// Ran out of gas; writes discarded, the whole gas limit charged.
    OutOfGas,
    /// A WebAssembly trap or a broken host-call rule; writes discarded, gas charged.
    Trapped { kind: String },
}

impl ReceiptStatus {
    /// True for `Success`.
    pub fn is_success(&self) -> bool {
        matches!(self, ReceiptStatus::Success)
    }

    /// Short lowercase label: success, reverted, out_of_gas, trapped.
    pub fn label(&self) -> &'static str {
        match self {
            ReceiptStatus::Success => "success",
            ReceiptStatus::Reverted { .. } => "reverted",
            ReceiptStatus::OutOfGas => "out_of_gas",
            ReceiptStatus::Trapped { .. } => "trapped",
        }
    }
}

/// The `kind` of a `Trapped` receipt: one of these, or `HOST_PREFIX` followed by the host rule
/// the call broke (our own words, see `vm/host.rs`).
pub mod trap_kind {
    pub const STACK_OVERFLOW: &str = "stack overflow";
    pub const MEMORY_OUT_OF_BOUNDS: &str = "memory out of bounds";
    pub const TABLE_OUT_OF_BOUNDS: &str = "table out of bounds";
    pub const INDIRECT_CALL_TO_NULL: &str = "indirect call to null";
    pub const BAD_SIGNATURE: &str = "indirect call type mismatch";
    pub const INTEGER_OVERFLOW: &str = "integer overflow";
    pub const DIVISION_BY_ZERO: &str = "integer division by zero";
    pub const BAD_CONVERSION: &str = "invalid conversion to integer";
    pub const UNREACHABLE: &str = "unreachable";
    pub const HEAP_MISALIGNED: &str = "unaligned atomic";
    pub const NULL_REFERENCE: &str = "null reference";
    pub const ALLOCATION_TOO_LARGE: &str = "allocation too large";
    /// A trap of a proposal the engine has switched off (cannot happen with validated code).
    pub const OTHER: &str = "trap";
    /// Prefix of a broken host-call rule, e.g. `host: storage key is 300 bytes, limit 256`.
    pub const HOST_PREFIX: &str = "host: ";

    /// Every fixed kind (without the host-rule ones).
    pub const ALL: &[&str] = &[
        STACK_OVERFLOW,
        MEMORY_OUT_OF_BOUNDS,
        TABLE_OUT_OF_BOUNDS,
        INDIRECT_CALL_TO_NULL,
        BAD_SIGNATURE,
        INTEGER_OVERFLOW,
        DIVISION_BY_ZERO,
        BAD_CONVERSION,
        UNREACHABLE,
        HEAP_MISALIGNED,
        NULL_REFERENCE,
        ALLOCATION_TOO_LARGE,
        OTHER,
    ];
}

/// The `message` of a `Reverted` receipt that the node, not the contract, produced.
pub mod revert_reason {
    /// A call to an address with no contract (followed by the address).
    pub const UNKNOWN_CONTRACT: &str = "unknown contract";
    /// A call naming an entry the contract does not export (followed by the name).
    pub const UNKNOWN_ENTRY: &str = "contract has no entry point";
    /// A call of `init`.
    pub const INIT_ONLY_AT_DEPLOY: &str = "init runs only at deploy";
    /// A deploy to an address that already holds a contract (followed by the address).
    pub const ALREADY_EXISTS: &str = "a contract already exists at";
    /// A deploy refused by validation; followed by `: ` and the rule, in our words, with the
    /// parser's own text left out (see `vm::block::invalid_contract`).
    pub const INVALID_CONTRACT: &str = "invalid contract";
}

/// An event a contract emitted with `emit`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub contract: Address,
    pub topic: Bytes,
    pub data: Bytes,
}

/// The outcome of one transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The transaction this is for.
    pub tx_id: Hash,
    /// The contract called, or the address the deploy created (even when the deploy failed).
    pub contract: Address,
    pub status: ReceiptStatus,
    /// Gas charged: instructions executed plus host-call and intrinsic charges.
    pub gas_used: u64,
    /// Return data set with `output` (empty unless the call succeeded).
    pub output: Bytes,
    /// Events, kept only when the call succeeded.
    pub events: Vec<Event>,
    /// Debug lines written with `log`, kept whatever the status (they help explain failures).
    pub logs: Vec<String>,
}

impl Receipt {
    /// SHA-256 of the canonical encoding: the leaf of the receipts root.
    pub fn hash(&self) -> Hash {
        hash_of(self)
    }
}
