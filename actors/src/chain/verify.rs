//! Verifying a block (a follower's side): check the sequencer's signature and the link to the
//! parent, re-execute the block's transactions in order on the parent's state with the same
//! execution code as `build`, and accept only if every root matches.
//!
//! Invariants:
//! - The same rules as building: the header is recomputed with `BlockHeader::child` and the
//!   transactions run through `Vm::verify_block`, which shares admission, grouping, calls and
//!   merge with `Vm::execute_block`; consensus values come from the chain's `ChainParams`.
//! - Nothing is dropped: a transaction the block contains that building would have left out
//!   (bad nonce, expired, another chain, over a gas or size limit, an engine fault) makes the
//!   block invalid. A call that runs past `execution.timeout` is retried with a larger deadline
//!   (`vm/block.rs` says why that is deterministic); one that never finishes is
//!   [`VerifyError::Timeout`], which says nothing about the block, so sync stops instead of
//!   committing a result the sequencer did not have.
//! - Nothing here writes: a verified block is committed by the caller with the receipts and
//!   write set returned, then recorded (`chain::Recorder::record`).
//! - Deterministic: every check is a pure function of the block, the parent header, the parent
//!   state and the chain's params; execution gives the same result on every machine and worker
//!   count (`vm/block.rs`).

use std::sync::Arc;
use std::time::Duration;

use super::ChainParams;
use super::build::context;
use crate::types::{
    BATCH_CHUNK, Block, BlockError, BlockHeader, Hash, KeyCache, PublicKey, Receipt, SignedTx,
    TxError, VerifiedTx, WriteSet, verify_batch,
};
use crate::vm::{DropReason, ReplayError, StateView, Vm, VmError};

/// Why a block was refused, naming what differed.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("block is signed by {got}, not by this chain's sequencer {expected}")]
    Sequencer { expected: PublicKey, got: PublicKey },
    /// The sequencer's signature or the tx root (`Block::verify`, the block's own checks).
    #[error(transparent)]
    Block(#[from] BlockError),
    #[error("block height is {got}, expected {expected} (parent + 1)")]
    Height { expected: u64, got: u64 },
    #[error("parent hash is {got}, expected {expected}")]
    Parent { expected: Hash, got: Hash },
    #[error("timestamp {got} ms is before the parent's {parent} ms")]
    Timestamp { parent: u64, got: u64 },
    #[error("transaction {index} ({tx}) is invalid: {source}")]
    Tx {
        index: usize,
        tx: Hash,
        #[source]
        source: TxError,
    },
    #[error("transaction {index} ({tx}) is not executable in this block: {reason}")]
    NotExecutable {
        index: usize,
        tx: Hash,
        reason: DropReason,
    },
    #[error("receipts root mismatch: header {header}, computed {computed}")]
    ReceiptsRoot { header: Hash, computed: Hash },
    #[error("state root mismatch: header {header}, computed {computed}")]
    StateRoot { header: Hash, computed: Hash },
    #[error("header {header} is not the header its contents give ({computed})")]
    Header { header: Hash, computed: Hash },
    /// Not a verdict on the block: a call never finished within the largest deadline.
    #[error(
        "transaction {index} ({tx}) still ran past its deadline after {attempts} runs (last \
         deadline {last:?}): this node cannot re-execute the block; raise execution.timeout or \
         move to a faster machine"
    )]
    Timeout {
        index: usize,
        tx: Hash,
        attempts: u32,
        last: Duration,
    },
    /// Not a verdict on the block: a node error (storage, engine) while re-executing it.
    #[error("re-executing the block")]
    Vm(#[source] VmError),
}

impl VerifyError {
    /// True when the block itself is wrong (it must never be committed, by any node); false
    /// when this node could not decide (a timeout or node error: try again or stop).
    pub fn is_invalid_block(&self) -> bool {
        !matches!(self, VerifyError::Timeout { .. } | VerifyError::Vm(_))
    }
}

impl From<ReplayError> for VerifyError {
    fn from(e: ReplayError) -> Self {
        match e {
            ReplayError::NotExecutable { index, tx, reason } => {
                VerifyError::NotExecutable { index, tx, reason }
            }
            ReplayError::Timeout {
                index,
                tx,
                attempts,
                last,
            } => VerifyError::Timeout {
                index,
                tx,
                attempts,
                last,
            },
            ReplayError::Vm(e) => VerifyError::Vm(e),
        }
    }
}

/// Signatures checked per progress note: one batch chunk, well under `execution.timeout`.
const SIGNATURES_PER_NOTE: usize = BATCH_CHUNK;

/// Checks every transaction's signature, spread over the engine's workers (a follower replays
/// blocks signed long ago, so nothing checked them at admission here), in batches
/// (`types::verify_batch`, whose decisions are exactly single verification's), noting progress
/// as it goes. The first invalid transaction by index is the error, whatever the split, so the
/// verdict does not depend on the worker count.
fn verify_signatures(vm: &Vm, txs: &[SignedTx]) -> Result<Vec<VerifiedTx>, VerifyError> {
    let check = |offset: usize, part: &[SignedTx]| -> Vec<Result<VerifiedTx, VerifyError>> {
        // Per thread: senders repeat within a block, and no lock is shared between threads.
        let keys = KeyCache::new(part.len());
        let mut out = Vec::with_capacity(part.len());
        for (n, chunk) in part.chunks(SIGNATURES_PER_NOTE).enumerate() {
            let start = offset + n * SIGNATURES_PER_NOTE;
            let results = verify_batch(chunk.to_vec(), &keys);
            out.extend(results.into_iter().enumerate().map(|(i, r)| {
                r.map_err(|source| VerifyError::Tx {
                    index: start + i,
                    tx: chunk[i].tx.id(),
                    source,
                })
            }));
            vm.note_progress();
        }
        out
    };
    let workers = vm.config().workers.max(1);
    let results: Vec<Result<VerifiedTx, VerifyError>> = if workers == 1 || txs.len() < 64 {
        check(0, txs)
    } else {
        let size = txs.len().div_ceil(workers);
        std::thread::scope(|s| {
            let handles: Vec<_> = txs
                .chunks(size)
                .enumerate()
                .map(|(n, chunk)| s.spawn(move || check(n * size, chunk)))
                .collect();
            handles
                .into_iter()
                .flat_map(|h| match h.join() {
                    Ok(r) => r,
                    // A panic in a signature check is a bug; re-raise it on this thread.
                    Err(p) => std::panic::resume_unwind(p),
                })
                .collect()
        })
    };
    results.into_iter().collect()
}

/// What committing a verified block needs.
#[derive(Debug, Clone)]
pub struct Verified {
    /// One receipt per transaction of the block, in order.
    pub receipts: Vec<Receipt>,
    /// Everything the block changes.
    pub writes: WriteSet,
    /// Sum of the receipts' gas.
    pub gas_used: u64,
    /// Transaction runs, deadline retries included (metrics; not part of the block).
    pub executions: u64,
    /// Calls run again with a larger deadline after hitting theirs.
    pub deadline_retries: u64,
}

/// Verifies `block` as the child of `parent` on the chain with `params` whose sequencer key is
/// `sequencer`, re-executing it against `base`, the parent's state.
///
/// The cheap checks come first (key, signature and tx root, height, parent, timestamp, each
/// transaction's signature), so a forged block costs no execution.
pub fn verify(
    vm: &Vm,
    params: &ChainParams,
    sequencer: &PublicKey,
    parent: &BlockHeader,
    base: Arc<dyn StateView>,
    block: &Block,
) -> Result<Verified, VerifyError> {
    let h = &block.header;
    if h.sequencer != *sequencer {
        return Err(VerifyError::Sequencer {
            expected: *sequencer,
            got: h.sequencer,
        });
    }
    // Signed by that key, and the header commits to these transactions.
    block.verify()?;
    let expected = parent.height.saturating_add(1);
    if h.height != expected {
        return Err(VerifyError::Height {
            expected,
            got: h.height,
        });
    }
    let expected = parent.hash();
    if h.parent_hash != expected {
        return Err(VerifyError::Parent {
            expected,
            got: h.parent_hash,
        });
    }
    if h.timestamp_ms < parent.timestamp_ms {
        return Err(VerifyError::Timestamp {
            parent: parent.timestamp_ms,
            got: h.timestamp_ms,
        });
    }
    let txs = verify_signatures(vm, &block.txs)?;

    let ctx = context(params, h.height, h.timestamp_ms);
    let outcome = vm.verify_block(base, &ctx, txs)?;

    // The one header rule, as `build` used it: everything the header commits to must match.
    let computed = BlockHeader {
        sequencer: *sequencer,
        ..BlockHeader::child(
            parent,
            h.timestamp_ms,
            &block.txs,
            &outcome.receipts,
            &outcome.writes,
        )
    };
    if computed.receipts_root != h.receipts_root {
        return Err(VerifyError::ReceiptsRoot {
            header: h.receipts_root,
            computed: computed.receipts_root,
        });
    }
    if computed.state_root != h.state_root {
        return Err(VerifyError::StateRoot {
            header: h.state_root,
            computed: computed.state_root,
        });
    }
    // Every field is checked above; this catches a field added to the header later and
    // forgotten here.
    if computed != *h {
        return Err(VerifyError::Header {
            header: h.hash(),
            computed: computed.hash(),
        });
    }
    Ok(Verified {
        receipts: outcome.receipts,
        writes: outcome.writes,
        gas_used: outcome.gas_used,
        executions: outcome.executions,
        deadline_retries: outcome.deadline_retries,
    })
}
