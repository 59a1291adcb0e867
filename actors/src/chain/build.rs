//! Building a block (the sequencer's side): execute a selection of transactions on the parent's
//! state, seal the header with `BlockHeader::child` and sign it.
//!
//! Invariants:
//! - Every consensus value comes from the chain's `ChainParams` (through [`context`]), never
//!   from this node's configuration, so a follower re-executing with the same params computes
//!   the same receipts and state.
//! - A built block always passes `chain::verify` on the same parent state: the header comes
//!   from the one header rule (`BlockHeader::child`), the timestamp is never before the
//!   parent's, and the block holds exactly the transactions execution included, in order.
//! - Nothing here writes: committing the block and recording it are the caller's
//!   (`Storage::commit_block`, then `chain::Recorder::record`).

use std::sync::Arc;

use super::ChainParams;
use crate::types::{Block, BlockHeader, Hash, Keypair, Receipt, SignedTx, VerifiedTx, WriteSet};
use crate::vm::{BlockContext, DropReason, StateView, Vm, VmError};

/// The execution context of the block at `height` on the chain with `params`.
pub fn context(params: &ChainParams, height: u64, timestamp_ms: u64) -> BlockContext {
    BlockContext {
        chain_id: params.chain_id.clone(),
        height,
        timestamp_ms,
        max_tx_gas: params.max_tx_gas,
        max_block_gas: params.max_block_gas,
        max_block_tx_bytes: params.max_block_tx_bytes,
        max_block_result_bytes: params.max_block_result_bytes,
    }
}

/// A sealed block and everything committing and reporting it needs.
#[derive(Debug, Clone)]
pub struct Built {
    pub block: Block,
    /// The ids of `block.txs`, in order: carried from the `VerifiedTx`s (hashed once, at
    /// admission) so that sealing, committing and telling the mempool never hash them again.
    pub tx_ids: Vec<Hash>,
    /// One receipt per transaction of the block, in order.
    pub receipts: Vec<Receipt>,
    /// Everything the block changes.
    pub writes: WriteSet,
    /// Transactions of the selection left out, with the reason (for the mempool).
    pub dropped: Vec<(Hash, DropReason)>,
    /// Sum of the receipts' gas.
    pub gas_used: u64,
    /// Transaction runs the execution took, re-runs included (metrics; not part of the block).
    pub executions: u64,
}

impl Built {
    /// Ids of the block's transactions, in order.
    pub fn included(&self) -> &[Hash] {
        &self.tx_ids
    }

    /// Receipts that did not succeed (reverted, trapped, out of gas).
    pub fn failures(&self) -> usize {
        self.receipts
            .iter()
            .filter(|r| !r.status.is_success())
            .count()
    }
}

/// Builds and signs the block on top of `parent` from `txs` (a selection, in the order the
/// block should have them), executing them against `base`, the parent's state.
///
/// `timestamp_ms` is the sequencer's clock; the block gets the parent's timestamp if the clock
/// is behind it. `Err` only for node errors (storage, engine): nothing is built, and the
/// caller returns the transactions to the mempool.
pub fn build(
    vm: &Vm,
    params: &ChainParams,
    key: &Keypair,
    parent: &BlockHeader,
    base: Arc<dyn StateView>,
    timestamp_ms: u64,
    txs: Vec<VerifiedTx>,
) -> Result<Built, VmError> {
    let timestamp_ms = timestamp_ms.max(parent.timestamp_ms);
    let ctx = context(params, parent.height.saturating_add(1), timestamp_ms);
    let outcome = vm.execute_block(base, &ctx, txs)?;
    // Moved, not copied: the included transactions are the block's from here on. Their ids
    // were computed when they were verified; the tx root is the same Merkle root of the same
    // ids `BlockHeader::child` would recompute (it is the one header rule, by ids).
    let (tx_ids, signed): (Vec<Hash>, Vec<SignedTx>) = outcome
        .txs
        .into_iter()
        .map(|t| (t.id(), t.into_signed()))
        .unzip();
    let header = BlockHeader::child_of_ids(
        parent,
        timestamp_ms,
        &tx_ids,
        &outcome.receipts,
        &outcome.writes,
    );
    Ok(Built {
        block: Block::seal(header, signed, key),
        tx_ids,
        receipts: outcome.receipts,
        writes: outcome.writes,
        dropped: outcome
            .dropped
            .into_iter()
            .map(|(t, r)| (t.id(), r))
            .collect(),
        gas_used: outcome.gas_used,
        executions: outcome.executions,
    })
}
