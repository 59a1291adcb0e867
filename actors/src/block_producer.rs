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
//! - One block at a time: a tick that finds a block in progress does nothing. A full block
//!   (`max_transactions`, or the block gas limit nearly reached) that took a block time or more
//!   starts the next one as soon as it is committed instead of waiting for the next tick, so a
//!   backlog is never served with idle gaps; blocks are still made and committed one by one, so
//!   the chain is the same whatever the timing (each block is valid on its parent on its own).
//! - Restart-safe: a fresh instance reads the head from storage and asks the mempool to release
//!   anything a dead predecessor had in flight. Storage refuses a block that is not exactly
//!   head + 1 on the head's hash and any transaction id stored before, so even a predecessor
//!   that wakes up late can never make a block or a transaction count twice.
//! - A failed attempt (execution or storage error) commits nothing and returns the transactions
//!   to the mempool; the next tick tries again, unless the store has failed (an I/O error such
//!   as a full disk): then no tick starts a block, and the node restarts to reopen storage.
//! - `Shutdown` stops new blocks and answers once the block in progress is committed; when no
//!   block is in progress it first produces one last block with whatever is pending.
//! - The block's place in the executor queue is reserved: it takes the one place beyond
//!   `execution.queue_size` (only one block is ever in flight), so queries filling the queue can
//!   never lock block production out; the place is given back however the request ends.

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
    /// The selection reached `max_transactions` or the chain's per-block gas limit: more may
    /// be waiting.
    pub full: bool,
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
        let started = Instant::now();
        let fut = produce(self.deps.clone());
        ctx.spawn(fut.into_actor(self).map(move |result, act, ctx| {
            act.producing = false;
            let overran = match result {
                Ok(p) => start_next_now(&p, started.elapsed(), act.deps.config.block_time),
                Err(e) => {
                    tracing::error!(error = %e, "block production failed; transactions returned to the mempool");
                    act.deps.mempool.return_in_flight.do_send(ReturnInFlight);
                    false
                }
            };
            if act.stopping {
                for w in act.waiters.drain(..) {
                    let _ = w.send(());
                }
            } else if overran {
                // A full block that took a whole block time or more: the ticks that fell in it
                // were skipped, and waiting for the next one would leave the executor idle
                // while transactions wait. Start the next block now (still one at a time).
                act.tick(ctx);
            }
        }));
    }
}

/// Whether the next block should start as soon as `produced` is committed rather than at the
/// next tick: it was full (more may be waiting) and it took at least `block_time`, so the ticks
/// that fell while it was built were skipped. A block that took less waits for its tick, so
/// `block_time` stays the pace of a chain that keeps up.
fn start_next_now(produced: &Produced, took: Duration, block_time: Duration) -> bool {
    produced.full && took >= block_time
}

/// One block: select, build (on the executor), commit, tell the mempool, record.
async fn produce(deps: ProducerDeps) -> Result<Produced, ProduceError> {
    let started = Instant::now();
    let selected = deps
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
    let selected_at = started.elapsed();
    // Full when the count, or the declared gas, left no room for another counter-sized call:
    // either way the mempool may hold more than this block could take.
    let declared: u64 = selected.iter().map(|t| t.tx().gas_limit).sum();
    let full = selected.len() >= deps.config.max_transactions
        || declared.saturating_mul(100) >= deps.params.max_block_gas.saturating_mul(95);
    let txs = selected;
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
    let built_at = started.elapsed();

    deps.storage.commit_block_with_ids(
        &built.block,
        &built.tx_ids,
        &built.receipts,
        &built.writes,
    )?;
    // Where a block's time goes (RUNBOOK "Performance"): waiting for the mempool's selection,
    // execution, the storage commit.
    tracing::debug!(
        height = built.block.header.height,
        txs = built.tx_ids.len(),
        select_us = selected_at.as_micros() as u64,
        build_us = (built_at - selected_at).as_micros() as u64,
        commit_us = (started.elapsed() - built_at).as_micros() as u64,
        "block phases"
    );
    report_dropped(&built);
    let Built {
        block,
        tx_ids: included,
        receipts,
        writes,
        dropped,
        gas_used,
        ..
    } = built;
    let produced = Produced {
        height: block.header.height,
        hash: block.hash(),
        txs: included.len(),
        dropped: dropped.len(),
        full,
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::chain::tests::params;
    use crate::executor::Executor;
    use crate::types::VerifiedTx;
    use crate::vm::tests::{Account, fixture};
    use crate::vm::{DropReason, Vm, VmConfig, VmError};

    fn vm() -> Arc<Vm> {
        Arc::new(
            Vm::new(VmConfig {
                workers: 1,
                ..VmConfig::default()
            })
            .unwrap(),
        )
    }

    /// One `BlockDone`: included ids, dropped ids with the reason.
    type Done = (Vec<Hash>, Vec<(Hash, DropReason)>);

    /// What the fake mempool was told.
    #[derive(Debug, Default)]
    struct MempoolLog {
        selects: usize,
        done: Vec<Done>,
        returned: usize,
    }

    /// A recording mempool: answers the first `Select` with `txs`, later ones with nothing.
    struct FakeMempool {
        txs: Vec<VerifiedTx>,
        log: Arc<Mutex<MempoolLog>>,
    }

    impl Actor for FakeMempool {
        type Context = Context<Self>;
    }

    impl Handler<Select> for FakeMempool {
        type Result = MessageResult<Select>;
        fn handle(&mut self, _: Select, _: &mut Context<Self>) -> Self::Result {
            self.log.lock().unwrap().selects += 1;
            MessageResult(std::mem::take(&mut self.txs))
        }
    }

    impl Handler<BlockDone> for FakeMempool {
        type Result = ();
        fn handle(&mut self, msg: BlockDone, _: &mut Context<Self>) {
            self.log
                .lock()
                .unwrap()
                .done
                .push((msg.included, msg.dropped));
        }
    }

    impl Handler<ReturnInFlight> for FakeMempool {
        type Result = ();
        fn handle(&mut self, _: ReturnInFlight, _: &mut Context<Self>) {
            self.log.lock().unwrap().returned += 1;
        }
    }

    /// An executor whose every block fails (a node error).
    struct FailingExecutor;

    impl Actor for FailingExecutor {
        type Context = Context<Self>;
    }

    impl Handler<BuildBlock> for FailingExecutor {
        type Result = Result<Built, VmError>;
        fn handle(&mut self, _: BuildBlock, _: &mut Context<Self>) -> Self::Result {
            Err(VmError::Engine("injected".into()))
        }
    }

    /// An executor that builds for real, but only once the test opens the gate; it says when
    /// a request has arrived.
    struct GatedExecutor {
        vm: Arc<Vm>,
        arrived: Arc<tokio::sync::Notify>,
        gate: Arc<tokio::sync::Notify>,
    }

    impl Actor for GatedExecutor {
        type Context = Context<Self>;
    }

    impl Handler<BuildBlock> for GatedExecutor {
        type Result = ResponseFuture<Result<Built, VmError>>;
        fn handle(&mut self, m: BuildBlock, _: &mut Context<Self>) -> Self::Result {
            let (vm, arrived, gate) = (self.vm.clone(), self.arrived.clone(), self.gate.clone());
            Box::pin(async move {
                arrived.notify_one();
                gate.notified().await;
                crate::chain::build(
                    &vm,
                    &m.params,
                    &m.key,
                    &m.parent,
                    m.base,
                    m.timestamp_ms,
                    m.txs,
                )
            })
        }
    }

    struct Fixture {
        storage: Arc<Storage>,
        stats: Arc<NodeStats>,
        metrics: NodeMetrics,
        recorder: Arc<Recorder>,
        log: Arc<Mutex<MempoolLog>>,
    }

    impl Fixture {
        fn new() -> Fixture {
            let storage =
                Arc::new(Storage::in_memory_with(&crate::chain::tests::params()).unwrap());
            let stats = Arc::new(NodeStats::default());
            let metrics = NodeMetrics::default();
            let head = storage.head().unwrap();
            Fixture {
                recorder: Arc::new(Recorder::new(stats.clone(), metrics.clone(), &head)),
                storage,
                stats,
                metrics,
                log: Arc::default(),
            }
        }

        /// A producer on its own arbiter talking to a fake mempool holding `txs` and to
        /// `executor`.
        fn start(
            &self,
            block_time: Duration,
            txs: Vec<VerifiedTx>,
            executor: Port<BuildBlock>,
        ) -> Addr<BlockProducer> {
            let mempool = FakeMempool {
                txs,
                log: self.log.clone(),
            }
            .start();
            let deps = ProducerDeps {
                storage: self.storage.clone(),
                key: Arc::new(Keypair::from_seed([42; 32])),
                params: Arc::new(params()),
                config: ProducerConfig {
                    block_time,
                    max_transactions: 100,
                    queue_size: 4,
                },
                mempool: MempoolPorts {
                    select: Port::fixed(mempool.clone().recipient()),
                    block_done: Port::fixed(mempool.clone().recipient()),
                    return_in_flight: Port::fixed(mempool.recipient()),
                },
                executor,
                recorder: self.recorder.clone(),
                stats: self.stats.clone(),
                metrics: self.metrics.clone(),
            };
            BlockProducer::start_in_arbiter(&Arbiter::new().handle(), move |_| {
                BlockProducer::new(deps)
            })
        }

        fn real_executor(&self) -> Port<BuildBlock> {
            let (v, stats, metrics) = (vm(), self.stats.clone(), self.metrics.clone());
            let addr = Executor::start_in_arbiter(&Arbiter::new().handle(), move |_| {
                Executor::new(v, stats, metrics)
            });
            Port::fixed(addr.recipient())
        }

        fn height(&self) -> u64 {
            self.storage.head().unwrap().height
        }
    }

    async fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ok() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            actix::clock::sleep(Duration::from_millis(10)).await;
        }
    }

    #[test]
    fn only_a_full_block_that_overran_starts_the_next_at_once() {
        let produced = |full| Produced {
            height: 1,
            hash: Hash([0; 32]),
            txs: 1,
            dropped: 0,
            full,
        };
        let bt = Duration::from_millis(250);
        assert!(start_next_now(&produced(true), bt, bt));
        assert!(start_next_now(&produced(true), bt * 3, bt));
        assert!(
            !start_next_now(&produced(true), bt - Duration::from_millis(1), bt),
            "kept up: wait for the tick"
        );
        assert!(
            !start_next_now(&produced(false), bt * 3, bt),
            "not full: nothing is known to wait"
        );
    }

    #[test]
    fn produces_blocks_and_reports_included_and_dropped_to_the_mempool() {
        let f = Fixture::new();
        let mut a = Account::new(1);
        let (deploy, counter) = a.deploy(fixture("counter"));
        let call = a.call_gas(counter, "increment", &[], 1_000_000);
        // Sender 1's deploy again: its nonce is used by then, so the block drops it.
        let replay = deploy.clone();
        let ids = [deploy.id(), call.id()];
        System::new().block_on(async {
            let mut heads = f.recorder.subscribe();
            let _producer = f.start(
                Duration::from_millis(20),
                vec![deploy, call, replay.clone()],
                f.real_executor(),
            );
            wait_for("two blocks", || f.height() >= 2).await;
            let block = f.storage.block_by_height(1).unwrap().unwrap();
            let got: Vec<Hash> = block.txs.iter().map(|t| t.tx.id()).collect();
            assert_eq!(got, ids);
            let receipts = f.storage.receipt(&ids[1]).unwrap().unwrap();
            assert_eq!(receipts.status, ReceiptStatus::Success);
            assert_eq!(
                f.storage.block_by_height(2).unwrap().unwrap().txs.len(),
                0,
                "empty blocks are produced too"
            );
            wait_for("the mempool to hear of both blocks", || {
                f.log.lock().unwrap().done.len() >= 2
            })
            .await;
            let log = f.log.lock().unwrap();
            assert_eq!(
                log.returned, 1,
                "only the start-up release, no failed attempt"
            );
            let (included, dropped) = &log.done[0];
            assert_eq!(included, &ids.to_vec());
            assert_eq!(dropped.len(), 1);
            assert_eq!(dropped[0].0, replay.id());
            assert!(matches!(
                dropped[0].1,
                DropReason::Nonce {
                    expected: 2,
                    got: 0
                }
            ));
            // Recorded: the stats and the head subscribers saw it.
            assert!(f.stats.blocks_produced.load(Ordering::Relaxed) >= 2);
            assert_eq!(f.stats.txs_processed.load(Ordering::Relaxed), 2);
            assert!(heads.borrow_and_update().height >= 2);
            assert_eq!(f.stats.exec_queue_depth.load(Ordering::Relaxed), 0);
        });
    }

    #[test]
    fn a_failed_execution_returns_the_transactions_and_commits_nothing() {
        let f = Fixture::new();
        let mut a = Account::new(2);
        let (deploy, _) = a.deploy(fixture("counter"));
        System::new().block_on(async {
            let failing = FailingExecutor.start();
            let _producer = f.start(
                Duration::from_millis(20),
                vec![deploy],
                Port::fixed(failing.recipient()),
            );
            // One release at start-up, then one per failed attempt.
            wait_for("two failed attempts", || {
                f.log.lock().unwrap().returned >= 3
            })
            .await;
            let log = f.log.lock().unwrap();
            assert!(log.done.is_empty(), "no block reported");
            assert!(log.selects >= 2, "each tick tries again");
            assert_eq!(f.height(), 0, "nothing committed");
            assert_eq!(f.stats.blocks_produced.load(Ordering::Relaxed), 0);
            assert_eq!(f.stats.exec_queue_depth.load(Ordering::Relaxed), 0);
        });
    }

    #[test]
    fn shutdown_finishes_the_block_in_progress_and_no_more() {
        let f = Fixture::new();
        let mut a = Account::new(3);
        let (deploy, _) = a.deploy(fixture("counter"));
        System::new().block_on(async {
            let arrived = Arc::new(tokio::sync::Notify::new());
            let gate = Arc::new(tokio::sync::Notify::new());
            let exec = GatedExecutor {
                vm: vm(),
                arrived: arrived.clone(),
                gate: gate.clone(),
            }
            .start();
            let producer = f.start(
                Duration::from_millis(20),
                vec![deploy],
                Port::fixed(exec.recipient()),
            );
            // A block is in progress (the executor holds it) when Shutdown arrives.
            arrived.notified().await;
            // `send` queues the message at once; the heartbeat behind it answers only after
            // the producer has taken Shutdown (one mailbox, in order) with the block in flight.
            let stopped = producer.send(Shutdown);
            producer.send(crate::supervisor::Heartbeat).await.unwrap();
            assert_eq!(f.height(), 0, "the block is still held by the executor");
            gate.notify_one();
            stopped.await.unwrap();
            // The answer came once that block was committed, and no last block was added.
            assert_eq!(f.height(), 1);
            // The mempool hears of it asynchronously (a message to another arbiter).
            wait_for("the mempool to hear of the block", || {
                f.log.lock().unwrap().done.len() == 1
            })
            .await;
            assert_eq!(f.storage.block_by_height(1).unwrap().unwrap().txs.len(), 1);
            // Stopped: a second Shutdown answers at once and starts nothing.
            producer.send(Shutdown).await.unwrap();
            assert_eq!(f.height(), 1);
            assert_eq!(f.log.lock().unwrap().selects, 1);
        });
    }

    #[test]
    fn shutdown_with_nothing_in_progress_makes_one_last_block() {
        let f = Fixture::new();
        let mut a = Account::new(4);
        let (deploy, _) = a.deploy(fixture("counter"));
        let id = deploy.id();
        System::new().block_on(async {
            // No tick within the test: only Shutdown starts a block.
            let producer = f.start(Duration::from_secs(3600), vec![deploy], f.real_executor());
            producer.send(Shutdown).await.unwrap();
            assert_eq!(f.height(), 1);
            let block = f.storage.block_by_height(1).unwrap().unwrap();
            assert_eq!(block.txs[0].tx.id(), id);
            // The mempool hears of it asynchronously (a message to another arbiter).
            wait_for("the mempool to hear of the block", || {
                f.log.lock().unwrap().done.len() == 1
            })
            .await;
            producer.send(Shutdown).await.unwrap();
            assert_eq!(f.height(), 1, "one last block only");
        });
    }
}
