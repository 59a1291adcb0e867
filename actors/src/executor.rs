//! Executor actor: runs blocks and read-only queries on the contract engine.
//!
//! The actor owns nothing but a handle to the shared `Vm` (engine, pool of instance slots,
//! compiled-module cache), so a restarted executor keeps the warm cache. Block execution spreads
//! a block's contract groups over `execution.workers` threads inside `Vm::execute_block`; the
//! actor itself handles one request at a time on its own Arbiter. Callers bound the queue:
//! `execution.queue_size` requests may wait (tracked in `NodeStats::exec_queue_depth` and the
//! `accumen_execution_queue_depth` gauge); beyond that the API answers 503 instead of queueing.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use actix::prelude::*;

use crate::metrics::{NodeMetrics, NodeStats};
use crate::types::VerifiedTx;
use crate::vm::{
    BlockContext, BlockOutcome, DropReason, Query, QueryResult, StateView, Vm, VmError,
};

/// The executor actor.
pub struct Executor {
    vm: Arc<Vm>,
    stats: Arc<NodeStats>,
    metrics: NodeMetrics,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor").field("vm", &self.vm).finish()
    }
}

impl Executor {
    pub fn new(vm: Arc<Vm>, stats: Arc<NodeStats>, metrics: NodeMetrics) -> Self {
        Executor { vm, stats, metrics }
    }

    fn dequeued(&self) {
        let depth = self
            .stats
            .exec_queue_depth
            .fetch_sub(1, Ordering::Relaxed)
            .saturating_sub(1);
        self.metrics.execution_queue_depth.set(depth as i64);
    }
}

impl Actor for Executor {
    type Context = Context<Self>;
}

crate::supervised!(Executor);

/// Reserves a place in the executor queue; `None` when `limit` requests already wait.
pub fn enqueue(stats: &NodeStats, metrics: &NodeMetrics, limit: usize) -> Option<()> {
    let depth = stats.exec_queue_depth.fetch_add(1, Ordering::Relaxed) + 1;
    if depth > limit as u64 {
        stats.exec_queue_depth.fetch_sub(1, Ordering::Relaxed);
        return None;
    }
    metrics.execution_queue_depth.set(depth as i64);
    Some(())
}

/// Executes a block's candidate transactions against `base` (the parent state). The sender must
/// have reserved a queue place with `enqueue`.
#[derive(Message)]
#[rtype(result = "Result<BlockOutcome, VmError>")]
pub struct ExecuteBlock {
    pub base: Arc<dyn StateView>,
    pub ctx: BlockContext,
    pub txs: Vec<VerifiedTx>,
}

impl std::fmt::Debug for ExecuteBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecuteBlock")
            .field("ctx", &self.ctx)
            .field("txs", &self.txs.len())
            .finish()
    }
}

impl Handler<ExecuteBlock> for Executor {
    type Result = Result<BlockOutcome, VmError>;

    fn handle(&mut self, msg: ExecuteBlock, _: &mut Context<Self>) -> Self::Result {
        self.dequeued();
        let started = Instant::now();
        let result = self.vm.execute_block(msg.base, &msg.ctx, msg.txs);
        let elapsed = started.elapsed();
        self.stats
            .last_exec_ms
            .store(elapsed.as_millis() as u64, Ordering::Relaxed);
        match &result {
            Ok(out) => {
                self.stats.exec_blocks.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .exec_txs
                    .fetch_add(out.receipts.len() as u64, Ordering::Relaxed);
                self.stats
                    .exec_dropped
                    .fetch_add(out.dropped.len() as u64, Ordering::Relaxed);
                let timeouts = out
                    .dropped
                    .iter()
                    .filter(|(_, r)| *r == DropReason::Timeout)
                    .count() as u64;
                if timeouts > 0 {
                    self.stats
                        .exec_timeouts
                        .fetch_add(timeouts, Ordering::Relaxed);
                    self.metrics.execution_errors.inc_by(timeouts);
                }
                // Transactions the engine could not run (vm::DropReason::Fault) are node-side
                // execution errors too; vm/block.rs logs them.
                let faults = out.faults() as u64;
                if faults > 0 {
                    self.metrics.execution_errors.inc_by(faults);
                }
                if !out.receipts.is_empty() {
                    self.metrics
                        .transaction_execution_duration
                        .observe(elapsed.as_secs_f64() / out.receipts.len() as f64);
                }
            }
            Err(e) => {
                self.metrics.execution_errors.inc();
                tracing::error!(height = msg.ctx.height, error = %e, "block execution failed");
            }
        }
        result
    }
}

/// Runs a read-only query. The sender must have reserved a queue place with `enqueue`.
#[derive(Message)]
#[rtype(result = "Result<QueryResult, VmError>")]
pub struct RunQuery {
    pub base: Arc<dyn StateView>,
    pub query: Query,
}

impl std::fmt::Debug for RunQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunQuery")
            .field("query", &self.query)
            .finish()
    }
}

impl Handler<RunQuery> for Executor {
    type Result = Result<QueryResult, VmError>;

    fn handle(&mut self, msg: RunQuery, _: &mut Context<Self>) -> Self::Result {
        self.dequeued();
        self.stats.exec_queries.fetch_add(1, Ordering::Relaxed);
        let result = self.vm.query(msg.base, msg.query);
        if let Err(VmError::Timeout) = &result {
            tracing::error!("execution timeout: read-only query stopped by execution.timeout");
        }
        result
    }
}
