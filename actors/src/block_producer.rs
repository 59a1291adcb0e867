//! BlockProducer actor: the chain head's only writer.
//!
//! Every `block_time` it takes up to `max_transactions` (and at most the chain's per-block gas
//! and transaction-byte limits) from the mempool, has the executor run
//! them against a storage snapshot of the head, builds and signs the header, and commits block,
//! receipts and write set in one storage write transaction; then it tells the mempool what was
//! included and what was dropped. Empty blocks are produced too, so a stalled producer shows in
//! `accumen_blocks_produced_total` and the block height.
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
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::executor::{ExecuteBlock, Executor, enqueue};
use crate::mempool::{BlockDone, Mempool, ReturnInFlight, Select};
use crate::metrics::{NodeMetrics, NodeStats, now_ms};
use crate::storage::Storage;
use crate::supervisor::Slot;
use crate::types::{Block, BlockHeader, Hash, Keypair, SignedTx};
use crate::vm::BlockContext;

static OUT_OF_GAS_LOG: crate::ratelimit::LogLimiter =
    crate::ratelimit::LogLimiter::new(Duration::from_secs(10));

/// Producer settings.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    pub chain_id: String,
    pub block_time: Duration,
    pub max_transactions: usize,
    /// `execution.gas_limit`.
    pub max_tx_gas: u64,
    /// `execution.queue_size`: the block request waits in the same queue as queries, with one
    /// place beyond it reserved for the block.
    pub queue_size: usize,
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
    Mempool(MailboxError),
    #[error("executor unavailable: {0}")]
    Executor(MailboxError),
    #[error("executor queue is full")]
    QueueFull,
    #[error("execution: {0}")]
    Vm(#[from] crate::vm::VmError),
    #[error("storage: {0}")]
    Storage(#[from] crate::storage::StorageError),
}

/// The block producer actor.
pub struct BlockProducer {
    storage: Arc<Storage>,
    key: Arc<Keypair>,
    config: ProducerConfig,
    mempool: Slot<Mempool>,
    executor: Slot<Executor>,
    metrics: NodeMetrics,
    stats: Arc<NodeStats>,
    producing: bool,
    stopping: bool,
    waiters: Vec<tokio::sync::oneshot::Sender<()>>,
}

impl std::fmt::Debug for BlockProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockProducer")
            .field("config", &self.config)
            .field("producing", &self.producing)
            .finish_non_exhaustive()
    }
}

impl BlockProducer {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        storage: Arc<Storage>,
        key: Arc<Keypair>,
        config: ProducerConfig,
        mempool: Slot<Mempool>,
        executor: Slot<Executor>,
        metrics: NodeMetrics,
        stats: Arc<NodeStats>,
    ) -> Self {
        BlockProducer {
            storage,
            key,
            config,
            mempool,
            executor,
            metrics,
            stats,
            producing: false,
            stopping: false,
            waiters: Vec::new(),
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        // A failed store cannot commit anything until the node restarts: stop trying instead of
        // failing (and logging) once per block time.
        if self.producing || self.stopping || self.storage.health().is_failed() {
            return;
        }
        self.start_block(ctx);
    }

    fn start_block(&mut self, ctx: &mut Context<Self>) {
        self.producing = true;
        let fut = produce(
            self.storage.clone(),
            self.key.clone(),
            self.config.clone(),
            self.mempool.get(),
            self.executor.get(),
            self.stats.clone(),
            self.metrics.clone(),
        );
        ctx.spawn(fut.into_actor(self).map(|result, act, _| {
            act.producing = false;
            if let Err(e) = result {
                tracing::error!(error = %e, "block production failed; transactions returned to the mempool");
                act.mempool.get().do_send(ReturnInFlight);
            }
            if act.stopping {
                for w in act.waiters.drain(..) {
                    let _ = w.send(());
                }
            }
        }));
    }
}

async fn produce(
    storage: Arc<Storage>,
    key: Arc<Keypair>,
    config: ProducerConfig,
    mempool: Addr<Mempool>,
    executor: Addr<Executor>,
    stats: Arc<NodeStats>,
    metrics: NodeMetrics,
) -> Result<Produced, ProduceError> {
    let started = Instant::now();
    let txs = mempool
        .send(Select {
            max: config.max_transactions,
            // The chain's per-block limits: the VM would leave out whatever goes beyond them.
            max_gas: crate::vm::gas::MAX_BLOCK_GAS,
            max_bytes: crate::vm::gas::MAX_BLOCK_TX_BYTES,
        })
        .await
        .map_err(ProduceError::Mempool)?;
    let head = storage.head()?;
    let snapshot = Arc::new(storage.snapshot()?);
    let bctx = BlockContext {
        chain_id: config.chain_id.clone(),
        height: head.height + 1,
        timestamp_ms: now_ms().max(head.timestamp_ms),
        max_tx_gas: config.max_tx_gas,
    };
    // One place beyond `queue_size`, which only the producer uses (one block at a time): queries
    // alone can fill `queue_size` but never lock the block out ("executor queue is full").
    let Some(slot) = enqueue(&stats, &metrics, config.queue_size.max(1) + 1) else {
        return Err(ProduceError::QueueFull);
    };
    // Our copy of the queue place: should this future be dropped (the producer replaced), the
    // place is given back at once rather than when the executor reaches the abandoned request.
    let waiting = slot.clone();
    let outcome = executor
        .send(ExecuteBlock {
            base: snapshot,
            ctx: bctx.clone(),
            txs,
            slot,
        })
        .await
        .map_err(ProduceError::Executor)??;
    drop(waiting);

    let signed: Vec<SignedTx> = outcome.txs.iter().map(|t| t.signed().clone()).collect();
    let header = BlockHeader::child(
        &head,
        bctx.timestamp_ms,
        &signed,
        &outcome.receipts,
        &outcome.writes,
    );
    let block = Block::seal(header, signed, &key);
    storage.commit_block(&block, &outcome.receipts, &outcome.writes)?;

    let included: Vec<Hash> = outcome.txs.iter().map(|t| t.id()).collect();
    let failures = outcome
        .receipts
        .iter()
        .filter(|r| !r.status.is_success())
        .count() as u64;
    let dropped: Vec<(Hash, crate::vm::DropReason)> = outcome
        .dropped
        .iter()
        .map(|(t, r)| (t.id(), r.clone()))
        .collect();
    let out_of_gas = outcome
        .receipts
        .iter()
        .filter(|r| r.status == crate::types::ReceiptStatus::OutOfGas)
        .count();
    if out_of_gas > 0
        && let Some(suppressed) = OUT_OF_GAS_LOG.allow()
    {
        tracing::warn!(
            height = bctx.height,
            out_of_gas,
            suppressed,
            "transactions ran out of gas: their gas limit was too low"
        );
    }
    for (id, reason) in &dropped {
        if !reason.is_retryable() {
            tracing::debug!(tx = %id, %reason, "transaction dropped from block");
        }
    }
    mempool.do_send(BlockDone {
        included: included.clone(),
        nonces: outcome.writes.nonces.clone(),
        dropped: dropped.clone(),
    });

    let elapsed = started.elapsed();
    let n = included.len() as u64;
    stats.block_height.store(bctx.height, Ordering::Relaxed);
    stats.blocks_produced.fetch_add(1, Ordering::Relaxed);
    stats.txs_processed.fetch_add(n, Ordering::Relaxed);
    stats.tx_failures.fetch_add(failures, Ordering::Relaxed);
    stats
        .gas_used
        .fetch_add(outcome.gas_used, Ordering::Relaxed);
    stats
        .last_block_ms
        .store(elapsed.as_millis() as u64, Ordering::Relaxed);
    stats.last_block_at_ms.store(now_ms(), Ordering::Relaxed);
    metrics.blocks_produced.inc();
    metrics.transactions_processed.inc_by(n);
    metrics.transaction_failures.inc_by(failures);
    metrics.gas_used.inc_by(outcome.gas_used);
    metrics.block_height.set(bctx.height as i64);
    metrics.block_production_duration.set(elapsed.as_secs_f64());
    tracing::info!(
        height = bctx.height,
        txs = n,
        dropped = dropped.len(),
        gas = outcome.gas_used,
        ms = elapsed.as_millis() as u64,
        "block committed"
    );
    Ok(Produced {
        height: bctx.height,
        hash: block.hash(),
        txs: included.len(),
        dropped: dropped.len(),
    })
}

impl Actor for BlockProducer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // A predecessor may have died with transactions in flight.
        self.mempool.get().do_send(ReturnInFlight);
        if let Ok(head) = self.storage.head() {
            self.stats
                .block_height
                .store(head.height, Ordering::Relaxed);
            self.metrics.block_height.set(head.height as i64);
        }
        ctx.run_interval(self.config.block_time, |act, ctx| act.tick(ctx));
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
