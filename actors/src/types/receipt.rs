//! Receipts: the deterministic outcome of one transaction in a block.
//!
//! Invariant: everything in a receipt is a pure function of the block, the parent state and the
//! engine version, so every node computes the same receipts root. Wall-clock timeouts are node
//! failures, not receipt statuses: such a transaction is dropped from the block instead.

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
