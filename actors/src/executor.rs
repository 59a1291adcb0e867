//! Executor actor: builds blocks (`chain::build`, sequencer), verifies them (`chain::verify`,
//! follower) and runs read-only queries on the contract engine, each on its own thread so a long
//! block never blocks another actor.
//!
//! The actor owns nothing but a handle to the shared `Vm` (engine, pool of instance slots,
//! compiled-module cache), so a restarted executor keeps the warm cache. Block execution spreads
//! a block's contract groups over `execution.workers` threads inside `Vm::execute_block`; the
//! actor itself handles one request at a time on its own Arbiter.
//!
//! Queue bound: `execution.queue_size` requests may wait (tracked in
//! `NodeStats::exec_queue_depth` and the `accumen_execution_queue_depth` gauge); beyond that the
//! API answers 503 instead of queueing. The block producer may take one place beyond that (it has
//! one block in flight at most), so queries can never lock block production out. A place in the queue is a [`QueueSlot`]: `enqueue` hands
//! one out, the request message carries one copy and the caller keeps another, and the place is
//! given back exactly once, when the first copy is dropped. That covers every way a request can
//! end (stack-notes §8): the handler starts (it drops the message's copy first thing); the
//! caller stops waiting (a `.timeout()` fired or an HTTP client hung up: actix will then skip the
//! message without running it, so it no longer occupies the executor); or the message is lost
//! with the mailbox of an executor that was stopped or replaced. A counter raised by the sender
//! and lowered only in the handler leaked on the last two and halted the chain once full.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use actix::prelude::*;
use prometheus_client::metrics::gauge::Gauge;

use crate::chain::{self, Built, ChainParams, Verified, VerifyError};
use crate::metrics::{NodeMetrics, NodeStats};
use crate::types::{Block, BlockHeader, Keypair, PublicKey, VerifiedTx};
use crate::vm::{DropReason, Query, QueryResult, StateView, Vm, VmError};

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

    /// What the supervisor reads to tell a busy executor from a stuck one: contract calls
    /// finished by the engine. Read without a message, since a busy executor's mailbox waits
    /// behind the block it is running.
    pub fn progress_source(vm: Arc<Vm>) -> impl Fn() -> u64 + Send + Sync + 'static {
        move || vm.progress()
    }
}

impl Actor for Executor {
    type Context = Context<Self>;
}

crate::supervised!(Executor);

/// A place in the executor queue. Clones share the place; it is given back once, when the first
/// clone is dropped (see the module comment for why that is every path a request can take).
#[derive(Debug, Clone)]
pub struct QueueSlot(Arc<SlotInner>);

#[derive(Debug)]
struct SlotInner {
    released: AtomicBool,
    stats: Arc<NodeStats>,
    gauge: Gauge,
}

impl SlotInner {
    fn release(&self) {
        // Exactly once, whichever copy goes first, so the depth can never be lowered twice.
        if !self.released.swap(true, Ordering::AcqRel) {
            self.stats.exec_queue_depth.fetch_sub(1, Ordering::AcqRel);
            // inc/dec rather than set(depth): concurrent set() calls can leave a stale value.
            self.gauge.dec();
        }
    }
}

impl Drop for QueueSlot {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// Reserves a place in the executor queue; `None` when `limit` requests already wait. Put one
/// clone of the slot in the request message and hold the other until the answer arrives.
pub fn enqueue(stats: &Arc<NodeStats>, metrics: &NodeMetrics, limit: usize) -> Option<QueueSlot> {
    let depth = stats.exec_queue_depth.fetch_add(1, Ordering::AcqRel) + 1;
    if depth > limit as u64 {
        stats.exec_queue_depth.fetch_sub(1, Ordering::AcqRel);
        return None;
    }
    metrics.execution_queue_depth.inc();
    Some(QueueSlot(Arc::new(SlotInner {
        released: AtomicBool::new(false),
        stats: stats.clone(),
        gauge: metrics.execution_queue_depth.clone(),
    })))
}

/// Builds and signs the next block (`chain::build`) from `txs` on top of `parent`, executing
/// them against `base` (the parent's state). `slot` is the request's place in the queue (from
/// `enqueue`).
#[derive(Message)]
#[rtype(result = "Result<Built, VmError>")]
pub struct BuildBlock {
    pub params: Arc<ChainParams>,
    pub key: Arc<Keypair>,
    pub parent: BlockHeader,
    pub base: Arc<dyn StateView>,
    /// The sequencer's clock (`chain::build` keeps the block no earlier than its parent).
    pub timestamp_ms: u64,
    pub txs: Vec<VerifiedTx>,
    pub slot: QueueSlot,
}

impl std::fmt::Debug for BuildBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuildBlock")
            .field("parent", &self.parent.height)
            .field("txs", &self.txs.len())
            .finish_non_exhaustive()
    }
}

impl Handler<BuildBlock> for Executor {
    type Result = Result<Built, VmError>;

    fn handle(&mut self, msg: BuildBlock, _: &mut Context<Self>) -> Self::Result {
        let BuildBlock {
            params,
            key,
            parent,
            base,
            timestamp_ms,
            txs,
            slot,
        } = msg;
        // No longer waiting: the place goes back as the work starts.
        drop(slot);
        let started = Instant::now();
        let result = chain::build(&self.vm, &params, &key, &parent, base, timestamp_ms, txs);
        let elapsed = self.took(started);
        match &result {
            Ok(built) => {
                let timeouts = built
                    .dropped
                    .iter()
                    .filter(|(_, r)| *r == DropReason::Timeout)
                    .count() as u64;
                // Transactions the engine could not run (vm::DropReason::Fault) are node-side
                // execution errors too; vm/block.rs logs them.
                let faults = built
                    .dropped
                    .iter()
                    .filter(|(_, r)| matches!(r, DropReason::Fault(_)))
                    .count() as u64;
                self.executed(
                    elapsed,
                    built.receipts.len(),
                    built.dropped.len(),
                    timeouts,
                    faults,
                );
            }
            Err(e) => {
                self.metrics.execution_errors.inc();
                tracing::error!(height = parent.height + 1, error = %e, "block execution failed");
            }
        }
        result
    }
}

/// Verifies `block` as the child of `parent` (`chain::verify`), re-executing it against `base`
/// (the parent's state); `sequencer` is the chain's pinned sequencer key. `slot` is the
/// request's place in the queue (from `enqueue`).
#[derive(Message)]
#[rtype(result = "Result<Verified, VerifyError>")]
pub struct VerifyBlock {
    pub params: Arc<ChainParams>,
    pub sequencer: PublicKey,
    pub parent: BlockHeader,
    pub base: Arc<dyn StateView>,
    pub block: Arc<Block>,
    pub slot: QueueSlot,
}

impl std::fmt::Debug for VerifyBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyBlock")
            .field("height", &self.block.header.height)
            .field("txs", &self.block.txs.len())
            .finish_non_exhaustive()
    }
}

impl Handler<VerifyBlock> for Executor {
    type Result = Result<Verified, VerifyError>;

    fn handle(&mut self, msg: VerifyBlock, _: &mut Context<Self>) -> Self::Result {
        let VerifyBlock {
            params,
            sequencer,
            parent,
            base,
            block,
            slot,
        } = msg;
        drop(slot);
        let started = Instant::now();
        let result = chain::verify(&self.vm, &params, &sequencer, &parent, base, &block);
        let elapsed = self.took(started);
        match &result {
            Ok(v) => self.executed(elapsed, v.receipts.len(), 0, 0, 0),
            Err(e) => {
                if !e.is_invalid_block() {
                    self.metrics.execution_errors.inc();
                }
                tracing::error!(height = block.header.height, error = %e, "block verification failed");
            }
        }
        result
    }
}

impl Executor {
    /// How long a block request took since `started`, shown whatever its outcome.
    fn took(&self, started: Instant) -> Duration {
        let elapsed = started.elapsed();
        self.stats
            .last_exec_ms
            .store(elapsed.as_millis() as u64, Ordering::Relaxed);
        elapsed
    }

    /// Counts one executed block (built or verified).
    fn executed(&self, elapsed: Duration, txs: usize, dropped: usize, timeouts: u64, faults: u64) {
        self.stats.exec_blocks.fetch_add(1, Ordering::Relaxed);
        self.stats.exec_txs.fetch_add(txs as u64, Ordering::Relaxed);
        self.stats
            .exec_dropped
            .fetch_add(dropped as u64, Ordering::Relaxed);
        if timeouts > 0 {
            self.stats
                .exec_timeouts
                .fetch_add(timeouts, Ordering::Relaxed);
            self.metrics.execution_errors.inc_by(timeouts);
        }
        if faults > 0 {
            self.metrics.execution_errors.inc_by(faults);
        }
        if txs > 0 {
            self.metrics
                .transaction_execution_duration
                .observe(elapsed.as_secs_f64() / txs as f64);
        }
    }
}

/// Runs a read-only query. `slot` is the request's place in the queue (from `enqueue`).
#[derive(Message)]
#[rtype(result = "Result<QueryResult, VmError>")]
pub struct RunQuery {
    pub base: Arc<dyn StateView>,
    pub query: Query,
    pub slot: QueueSlot,
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
        let RunQuery { base, query, slot } = msg;
        drop(slot);
        self.stats.exec_queries.fetch_add(1, Ordering::Relaxed);
        let result = self.vm.query(base, query);
        if let Err(VmError::Timeout) = &result {
            tracing::error!("execution timeout: read-only query stopped by execution.timeout");
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::{Child, ChildSpec, TestHook};
    use crate::types::{Address, PublicKey};
    use crate::vm::{MemState, VmConfig};
    use std::time::Duration;

    fn vm() -> Arc<Vm> {
        Arc::new(
            Vm::new(VmConfig {
                workers: 1,
                memory_limit_mb: 8,
                max_memory_pages: 8,
                ..VmConfig::default()
            })
            .unwrap(),
        )
    }

    /// A query the executor answers at once (there is no such contract to run).
    fn query(slot: QueueSlot) -> RunQuery {
        RunQuery {
            base: Arc::new(MemState::default()),
            query: Query {
                contract: Address([7; 32]),
                entry: "run".into(),
                args: Vec::new(),
                sender: PublicKey::ZERO,
                gas_limit: 1_000,
                height: 1,
                time_ms: 0,
            },
            slot,
        }
    }

    struct Fixture {
        stats: Arc<NodeStats>,
        metrics: NodeMetrics,
    }

    impl Fixture {
        fn new() -> Self {
            Fixture {
                stats: Arc::default(),
                metrics: NodeMetrics::default(),
            }
        }
        /// An executor on its own thread, as in the node, so a hang blocks only the executor.
        fn start(&self) -> Addr<Executor> {
            let (v, stats, metrics) = (vm(), self.stats.clone(), self.metrics.clone());
            Executor::start_in_arbiter(&Arbiter::new().handle(), move |_| {
                Executor::new(v, stats, metrics)
            })
        }
        fn slot(&self) -> QueueSlot {
            enqueue(&self.stats, &self.metrics, 100).unwrap()
        }
        /// Depth in the stats and in the gauge, which must agree.
        fn depth(&self) -> u64 {
            let d = self.stats.exec_queue_depth.load(Ordering::Acquire);
            assert_eq!(self.metrics.execution_queue_depth.get(), d as i64);
            d
        }
    }

    async fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ok() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            actix::clock::sleep(Duration::from_millis(10)).await;
        }
    }

    #[test]
    fn builds_and_verifies_blocks_and_releases_their_slots() {
        use crate::vm::tests::{Account, fixture};
        let f = Fixture::new();
        let key = Arc::new(Keypair::from_seed([42; 32]));
        let params = Arc::new(crate::chain::tests::params());
        let mut a = Account::new(1);
        let (deploy, counter) = a.deploy(fixture("counter"));
        let call = a.call_gas(counter, "increment", &[], 1_000_000);
        // Sender 1's deploy again: its nonce is used by then, so building drops it.
        let replay = deploy.clone();
        let parent = params.genesis().header;
        let base: Arc<dyn StateView> = Arc::new(MemState::default());
        System::new().block_on(async {
            let exec = f.start();
            let slot = f.slot();
            let waiting = slot.clone();
            let built = exec
                .send(BuildBlock {
                    params: params.clone(),
                    key: key.clone(),
                    parent: parent.clone(),
                    base: base.clone(),
                    timestamp_ms: 1,
                    txs: vec![deploy, call, replay.clone()],
                    slot,
                })
                .await
                .unwrap()
                .unwrap();
            assert_eq!(f.depth(), 0, "released by the handler");
            drop(waiting);
            assert_eq!(built.block.header.height, 1);
            assert_eq!(built.block.txs.len(), 2);
            assert_eq!(built.dropped.len(), 1);
            assert_eq!(built.dropped[0].0, replay.id());
            assert_eq!(f.stats.exec_blocks.load(Ordering::Relaxed), 1);
            assert_eq!(f.stats.exec_txs.load(Ordering::Relaxed), 2);
            assert_eq!(f.stats.exec_dropped.load(Ordering::Relaxed), 1);

            let block = Arc::new(built.block.clone());
            let verify = |block: Arc<crate::types::Block>| VerifyBlock {
                params: params.clone(),
                sequencer: key.public(),
                parent: parent.clone(),
                base: base.clone(),
                block,
                slot: f.slot(),
            };
            let verified = exec.send(verify(block.clone())).await.unwrap().unwrap();
            assert_eq!(verified.receipts, built.receipts);
            assert_eq!(verified.writes, built.writes);
            assert_eq!(f.depth(), 0);
            assert_eq!(f.stats.exec_blocks.load(Ordering::Relaxed), 2);

            let mut tampered = built.block.clone();
            tampered.header.state_root = crate::types::Hash([9; 32]);
            let refused = exec.send(verify(Arc::new(tampered))).await.unwrap();
            assert!(
                matches!(&refused, Err(e @ VerifyError::Block(crate::types::BlockError::BadSignature(_))) if e.is_invalid_block()),
                "{refused:?}"
            );
            assert_eq!(f.depth(), 0);
            assert_eq!(
                f.stats.exec_blocks.load(Ordering::Relaxed),
                2,
                "not counted"
            );
        });
    }

    #[test]
    fn queue_is_bounded_and_a_slot_is_released_once() {
        let f = Fixture::new();
        let a = enqueue(&f.stats, &f.metrics, 2).unwrap();
        let b = enqueue(&f.stats, &f.metrics, 2).unwrap();
        assert!(enqueue(&f.stats, &f.metrics, 2).is_none(), "limit is 2");
        assert_eq!(f.depth(), 2, "a refused request holds nothing");
        let a2 = a.clone();
        drop(a);
        assert_eq!(f.depth(), 1, "the first copy dropped gives the place back");
        drop(a2);
        assert_eq!(f.depth(), 1, "the second copy does not give it back again");
        drop(b);
        assert_eq!(f.depth(), 0);
        assert!(enqueue(&f.stats, &f.metrics, 2).is_some());
    }

    #[test]
    fn handled_request_releases_its_slot() {
        let f = Fixture::new();
        System::new().block_on(async {
            let exec = f.start();
            let slot = f.slot();
            let waiting = slot.clone();
            let _answer = exec.send(query(slot)).await.unwrap();
            // Released by the handler, while the caller still holds its copy.
            assert_eq!(f.depth(), 0);
            drop(waiting);
            assert_eq!(f.depth(), 0);
            assert_eq!(f.stats.exec_queries.load(Ordering::Relaxed), 1);
        });
    }

    #[test]
    fn caller_that_stops_waiting_releases_its_slot_and_the_request_is_skipped() {
        let f = Fixture::new();
        System::new().block_on(async {
            let exec = f.start();
            // Keep the executor busy so the query waits in the mailbox.
            exec.do_send(TestHook::Hang(Duration::from_millis(300)));
            let slot = f.slot();
            let waiting = slot.clone();
            let gave_up = async move {
                let _waiting = waiting;
                exec.send(query(slot))
                    .timeout(Duration::from_millis(20))
                    .await
            };
            assert!(matches!(gave_up.await, Err(MailboxError::Timeout)));
            // Released as the caller gave up, long before the executor reaches the request.
            assert_eq!(f.depth(), 0);
            // actix skips the abandoned request: it never runs, and nothing is released twice.
            actix::clock::sleep(Duration::from_millis(400)).await;
            assert_eq!(f.stats.exec_queries.load(Ordering::Relaxed), 0);
            assert_eq!(f.depth(), 0);
        });
    }

    #[test]
    fn requests_lost_with_a_dead_executors_mailbox_release_their_slots() {
        let f = Fixture::new();
        System::new().block_on(async {
            let (v, stats, metrics) = (vm(), f.stats.clone(), f.metrics.clone());
            let mut spec = ChildSpec::start("executor", move || {
                Executor::new(v.clone(), stats.clone(), metrics.clone())
            });
            let old = spec.slot().get();
            // Busy, then dead: the requests queued behind are never handled; they go down with
            // the mailbox when the actor's task ends.
            old.do_send(TestHook::Hang(Duration::from_millis(300)));
            old.do_send(TestHook::Panic);
            // Their callers keep waiting, and keep their copies of the slots, throughout.
            let mut pending = Vec::new();
            for _ in 0..3 {
                let slot = f.slot();
                pending.push((slot.clone(), old.send(query(slot))));
            }
            assert_eq!(f.depth(), 3);
            wait_for("the lost requests to release their places", || {
                f.depth() == 0
            })
            .await;
            for (held, request) in pending {
                let r = request.await;
                assert!(
                    matches!(r, Err(MailboxError::Closed)),
                    "{:?}",
                    r.map(|r| r.is_ok())
                );
                drop(held);
            }
            assert_eq!(f.depth(), 0);
            assert_eq!(f.stats.exec_queries.load(Ordering::Relaxed), 0);
            // The supervisor's replacement serves the next request.
            assert!(!spec.alive());
            spec.restart();
            let slot = f.slot();
            let _answer = spec.slot().get().send(query(slot)).await.unwrap();
            assert_eq!(f.depth(), 0);
            assert_eq!(f.stats.exec_queries.load(Ordering::Relaxed), 1);
        });
    }
}
