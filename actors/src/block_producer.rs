//! BlockProducer actor: the chain head's only writer.
//!
//! A timer plus messaging around `chain::build`: every `block_time` it takes up to
//! `max_transactions` (and at most the chain's per-block gas and transaction-byte limits, from
//! `ChainParams`) from the mempool, has the executor build the block (`executor::BuildBlock`:
//! execute on a storage snapshot of the head, seal, sign), commits block, receipts and write set
//! in one storage write transaction, tells the mempool what was included and what was dropped,
//! and records the block (`chain::Recorder`). Empty blocks are produced too, so a stalled
//! producer shows in `accumen_blocks_produced_total` and the block height. It reaches the mempool
//! and the executor only through `supervisor::Port`s, so its tests use recording fakes.
//!
//! Invariants:
//! - One block at a time: a tick that finds a block in progress does nothing.
//! - Restart-safe: a fresh instance reads the head from storage and asks the mempool to release
//!   anything a dead predecessor had in flight. Storage refuses a block that is not exactly
//!   head + 1 on the head's hash and any transaction id stored before, so even a predecessor
//!   that wakes up late can never make a block or a transaction count twice.
//! - A failed attempt (execution or storage error) commits nothing and returns the transactions
//!   to the mempool; the next tick tries again, unless the store has failed (an I/O error such
//!   as a full disk): then no tick starts a block, and the node restarts to reopen storage.
//! - `Shutdown` stops new blocks and answers once the block in progress is committed; when no
//!   block is in progress it first produces one last block with whatever is pending.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::chain::{Built, ChainParams, Committed, Recorder};
use crate::executor::{BuildBlock, enqueue};
use crate::mempool::{BlockDone, Mempool, ReturnInFlight, Select};
use crate::metrics::{NodeMetrics, NodeStats, now_ms};
use crate::storage::Storage;
use crate::supervisor::{Port, Slot};
use crate::types::{Hash, Keypair, ReceiptStatus};

static OUT_OF_GAS_LOG: crate::ratelimit::LogLimiter =
    crate::ratelimit::LogLimiter::new(Duration::from_secs(10));

/// Producer settings: this node's, not the chain's (those are in `ChainParams`).
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    pub block_time: Duration,
    pub max_transactions: usize,
    /// `execution.queue_size`: the block request waits in the same queue as queries, with one
    /// place beyond it reserved for the block.
    pub queue_size: usize,
}

/// The mempool messages the producer sends.
#[derive(Debug, Clone)]
pub struct MempoolPorts {
    pub select: Port<Select>,
    pub block_done: Port<BlockDone>,
    pub return_in_flight: Port<ReturnInFlight>,
}

impl MempoolPorts {
    /// Ports to the current incarnation of a supervised mempool.
    pub fn of(slot: &Slot<Mempool>) -> MempoolPorts {
        MempoolPorts {
            select: slot.port(),
            block_done: slot.port(),
            return_in_flight: slot.port(),
        }
    }
}

/// Everything a producer works with; cloned into each incarnation by the supervisor's factory.
#[derive(Debug, Clone)]
pub struct ProducerDeps {
    pub storage: Arc<Storage>,
    /// The sequencer key that signs blocks.
    pub key: Arc<Keypair>,
    /// The chain's consensus parameters (they rule over this node's configuration).
    pub params: Arc<ChainParams>,
    pub config: ProducerConfig,
    pub mempool: MempoolPorts,
    pub executor: Port<BuildBlock>,
    /// Records each committed block (stats, metrics, log line, head subscribers).
    pub recorder: Arc<Recorder>,
    /// For the executor queue (`executor::enqueue`).
    pub stats: Arc<NodeStats>,
    pub metrics: NodeMetrics,
}

/// What one produced block looked like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Produced {
    pub height: u64,
    pub hash: Hash,
    pub txs: usize,
    pub dropped: usize,
}

/// Why a block attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    #[error("mempool unavailable: {0}")]
    Mempool(#[source] MailboxError),
    #[error("executor unavailable: {0}")]
    Executor(#[source] MailboxError),
    #[error("executor queue is full")]
    QueueFull,
    #[error("execution: {0}")]
    Vm(#[from] crate::vm::VmError),
    #[error("storage: {0}")]
    Storage(#[from] crate::storage::StorageError),
}

/// The block producer actor.
pub struct BlockProducer {
    deps: ProducerDeps,
    producing: bool,
    stopping: bool,
    waiters: Vec<tokio::sync::oneshot::Sender<()>>,
}

impl std::fmt::Debug for BlockProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockProducer")
            .field("config", &self.deps.config)
            .field("producing", &self.producing)
            .finish_non_exhaustive()
    }
}

impl BlockProducer {
    pub fn new(deps: ProducerDeps) -> Self {
        BlockProducer {
            deps,
            producing: false,
            stopping: false,
            waiters: Vec::new(),
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        // A failed store cannot commit anything until the node restarts: stop trying instead of
        // failing (and logging) once per block time.
        if self.producing || self.stopping || self.deps.storage.health().is_failed() {
            return;
        }
        self.start_block(ctx);
    }

    fn start_block(&mut self, ctx: &mut Context<Self>) {
        self.producing = true;
        let fut = produce(self.deps.clone());
        ctx.spawn(fut.into_actor(self).map(|result, act, _| {
            act.producing = false;
            if let Err(e) = result {
                tracing::error!(error = %e, "block production failed; transactions returned to the mempool");
                act.deps.mempool.return_in_flight.do_send(ReturnInFlight);
            }
            if act.stopping {
                for w in act.waiters.drain(..) {
                    let _ = w.send(());
                }
            }
        }));
    }
}

/// One block: select, build (on the executor), commit, tell the mempool, record.
async fn produce(deps: ProducerDeps) -> Result<Produced, ProduceError> {
    let started = Instant::now();
    let txs = deps
        .mempool
        .select
        .send(Select {
            max: deps.config.max_transactions,
            // The chain's per-block limits: execution would leave out whatever goes beyond them.
            max_gas: deps.params.max_block_gas,
            max_bytes: deps.params.max_block_tx_bytes,
        })
        .await
        .map_err(ProduceError::Mempool)?;
    let parent = deps.storage.head()?;
    let base = Arc::new(deps.storage.snapshot()?);
    // One place beyond `queue_size`, which only the producer uses (one block at a time): queries
    // alone can fill `queue_size` but never lock the block out ("executor queue is full").
    let Some(slot) = enqueue(
        &deps.stats,
        &deps.metrics,
        deps.config.queue_size.max(1) + 1,
    ) else {
        return Err(ProduceError::QueueFull);
    };
    // Our copy of the queue place: should this future be dropped (the producer replaced), the
    // place is given back at once rather than when the executor reaches the abandoned request.
    let waiting = slot.clone();
    let built = deps
        .executor
        .send(BuildBlock {
            params: deps.params.clone(),
            key: deps.key.clone(),
            parent,
            base,
            timestamp_ms: now_ms(),
            txs,
            slot,
        })
        .await
        .map_err(ProduceError::Executor)??;
    drop(waiting);

    deps.storage
        .commit_block(&built.block, &built.receipts, &built.writes)?;
    report_dropped(&built);
    let Built {
        block,
        receipts,
        writes,
        dropped,
        gas_used,
        ..
    } = built;
    let included: Vec<Hash> = block.txs.iter().map(|t| t.tx.id()).collect();
    let produced = Produced {
        height: block.header.height,
        hash: block.hash(),
        txs: included.len(),
        dropped: dropped.len(),
    };
    deps.mempool.block_done.do_send(BlockDone {
        included,
        nonces: writes.nonces,
        dropped,
    });
    deps.recorder.record(Committed {
        block: &block,
        receipts: &receipts,
        gas_used,
        dropped: produced.dropped,
        elapsed: started.elapsed(),
    });
    Ok(produced)
}

/// Sequencer-side logs about a committed block's transactions: clients whose gas limit was too
/// low, and transactions dropped for good.
fn report_dropped(built: &Built) {
    let out_of_gas = built
        .receipts
        .iter()
        .filter(|r| r.status == ReceiptStatus::OutOfGas)
        .count();
    if out_of_gas > 0
        && let Some(suppressed) = OUT_OF_GAS_LOG.allow()
    {
        tracing::warn!(
            height = built.block.header.height,
            out_of_gas,
            suppressed,
            "transactions ran out of gas: their gas limit was too low"
        );
    }
    for (id, reason) in &built.dropped {
        if !reason.is_retryable() {
            tracing::debug!(tx = %id, %reason, "transaction dropped from block");
        }
    }
}

impl Actor for BlockProducer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // A predecessor may have died with transactions in flight.
        self.deps.mempool.return_in_flight.do_send(ReturnInFlight);
        if let Ok(head) = self.deps.storage.head() {
            self.deps.recorder.resume(&head);
        }
        ctx.run_interval(self.deps.config.block_time, |act, ctx| act.tick(ctx));
    }
}

crate::supervised!(BlockProducer);

/// Stop producing: finish the block in progress (or, if none, make one last block), then answer.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Shutdown;

impl Handler<Shutdown> for BlockProducer {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.waiters.push(tx);
        let already = self.stopping;
        self.stopping = true;
        if !self.producing && !already {
            // Nothing in progress: one last block with whatever is pending.
            self.start_block(ctx);
        } else if !self.producing {
            for w in self.waiters.drain(..) {
                let _ = w.send(());
            }
        }
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}
