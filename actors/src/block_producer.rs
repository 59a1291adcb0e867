//! BlockProducer actor: the chain head's only writer.
//!
//! A timer plus messaging around `chain::build`: every `block_time` it takes up to
//! `max_transactions` (and at most the chain's per-block gas and transaction-byte limits, from
//! `ChainParams`) from the mempool, has the executor build the block (`executor::BuildBlock`:
//! execute on the parent's state, seal, sign), commits block, receipts and write set in one
//! storage write transaction (on the blocking pool), records the block (`chain::Recorder`) and
//! tells the mempool what was included and what was dropped. Empty blocks are produced too, so
//! a stalled producer shows in `accumen_blocks_produced_total` and the block height. It reaches
//! the mempool and the executor only through `supervisor::Port`s, so its tests use recording
//! fakes.
//!
//! Overlap: block N+1 is selected and executed while block N commits. Its parent is N's
//! header and its state is N's write set over the chain's state (`vm::Layered`), which reads
//! exactly what N's commit leaves, so the block is the one that would be built after the
//! commit. N+1 is committed only after N's commit succeeded and N's `BlockDone` is in the
//! mempool's mailbox; if N's commit fails, N+1 is discarded and everything in flight returns
//! to the mempool. The mempool keeps one in-flight set per attempt (`Pool::on_block` settles
//! the oldest), so N's settlement never frees N+1's selection.
//!
//! Invariants:
//! - One build and one commit at a time: a tick that finds a block being built does nothing;
//!   a block is built on the one being committed, never on one further back or ahead.
//! - A full block (`max_transactions`, or the block gas limit nearly reached) starts the next
//!   build as soon as it is built instead of at the next tick: a full block means a backlog,
//!   and the chain's capacity must not be `block_time`'s pace times one block (at 250 ms and
//!   20,000 calls a block that was 80,000 calls a second, below what this node verifies and
//!   executes). A chain that keeps up (blocks not full) is paced by `block_time`. A client
//!   filling blocks with declared gas gets more blocks, not fewer transactions for everyone.
//!   Blocks are still committed one by one in height order, each valid on its parent on its
//!   own, so the chain is the same whatever the timing.
//! - Restart-safe: a fresh instance reads the head from storage and asks the mempool to release
//!   anything a dead predecessor had in flight. Storage refuses a block that is not exactly
//!   head + 1 on the head's hash and any transaction id stored before, so even a predecessor
//!   whose commit lands late can never make a block or a transaction count twice; its
//!   transactions, selected again, are dropped for their used nonces.
//! - A failed attempt (execution or storage error) commits nothing and returns the transactions
//!   to the mempool; the next tick tries again, unless the store has failed (an I/O error such
//!   as a full disk): then no tick starts a block, and the node restarts to reopen storage.
//! - `Shutdown` stops new blocks and answers once the blocks being built and committed are
//!   committed; when nothing is in progress it first produces one last block with whatever is
//!   pending.
//! - The block's place in the executor queue is reserved: it takes the one place beyond
//!   `execution.queue_size` (only one block is ever being built), so queries filling the queue
//!   can never lock block production out; the place is given back however the request ends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::chain::{Built, ChainParams, Committed, Recorder};
use crate::executor::{BuildBlock, enqueue};
use crate::mempool::{BlockDone, Mempool, ReturnInFlight, Select};
use crate::metrics::{NodeMetrics, NodeStats, now_ms};
use crate::storage::Storage;
use crate::supervisor::{Port, Slot};
use crate::types::{BlockHeader, Keypair, ReceiptStatus, WriteSet};
use crate::vm::{Layered, StateView};

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
    /// Built on a block whose commit failed: discarded.
    #[error("the parent block was not committed")]
    ParentNotCommitted,
}

/// The block producer actor.
pub struct BlockProducer {
    deps: ProducerDeps,
    /// A block is being selected and built (its future runs).
    building: bool,
    /// The last built block while its storage commit runs.
    committing: Option<Committing>,
    stopping: bool,
    waiters: Vec<tokio::sync::oneshot::Sender<()>>,
}

/// A built block whose commit is under way: the next block may be selected and built on it.
#[derive(Debug, Clone)]
struct Committing {
    /// Its header: the next block's parent.
    header: BlockHeader,
    /// Its writes: laid over the chain's state for the next block (`vm::Layered`).
    writes: Arc<WriteSet>,
    /// `Some(committed)` once the commit has ended, and, when it succeeded, once the mempool
    /// has been sent the block's `BlockDone`.
    outcome: tokio::sync::watch::Receiver<Option<bool>>,
}

impl Committing {
    /// Whether the block was committed, once its commit has ended.
    async fn committed(mut self) -> bool {
        match self.outcome.wait_for(Option::is_some).await {
            Ok(v) => *v == Some(true),
            // The producer went away before the commit ended: nothing is known of it.
            Err(_) => false,
        }
    }
}

/// A block built and ready to commit, with what its report needs.
struct Ready {
    built: Built,
    full: bool,
    /// When its selection started, and its phases (`block phases` log line).
    started: Instant,
    select: Duration,
    build: Duration,
    /// Waiting for the parent's commit to end after the build.
    parent_wait: Duration,
}

impl std::fmt::Debug for BlockProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockProducer")
            .field("config", &self.deps.config)
            .field("building", &self.building)
            .field(
                "committing",
                &self.committing.as_ref().map(|c| c.header.height),
            )
            .finish_non_exhaustive()
    }
}

impl BlockProducer {
    pub fn new(deps: ProducerDeps) -> Self {
        BlockProducer {
            deps,
            building: false,
            committing: None,
            stopping: false,
            waiters: Vec::new(),
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        // A failed store cannot commit anything until the node restarts: stop trying instead of
        // failing (and logging) once per block time.
        if self.building || self.stopping || self.deps.storage.health().is_failed() {
            return;
        }
        self.start_block(ctx);
    }

    /// Selects and builds the next block, on the block being committed if there is one.
    fn start_block(&mut self, ctx: &mut Context<Self>) {
        self.building = true;
        let fut = build_next(self.deps.clone(), self.committing.clone());
        ctx.spawn(fut.into_actor(self).map(|result, act, ctx| {
            act.building = false;
            match result {
                Ok(ready) => {
                    let full = ready.full;
                    act.start_commit(ready, ctx);
                    if full && !act.stopping {
                        // More is waiting: the next block is selected and built now, while
                        // this one commits, instead of at the next tick (still one build and
                        // one commit at a time).
                        act.tick(ctx);
                    }
                }
                Err(ProduceError::ParentNotCommitted) => {
                    // The parent's failure was logged with its cause.
                    tracing::warn!("block discarded: its parent could not be committed");
                    act.deps.mempool.return_in_flight.do_send(ReturnInFlight);
                }
                Err(e) => {
                    tracing::error!(error = %e, "block production failed; transactions returned to the mempool");
                    act.deps.mempool.return_in_flight.do_send(ReturnInFlight);
                }
            }
            act.answer_waiters_if_done();
        }));
    }

    /// Commits `ready` on the blocking pool; then tells the mempool, records it and lets the
    /// next block (if one is being built on it) go on.
    fn start_commit(&mut self, ready: Ready, ctx: &mut Context<Self>) {
        let Ready {
            built,
            started,
            select,
            build,
            parent_wait,
            ..
        } = ready;
        report_dropped(&built);
        let Built {
            block,
            tx_ids,
            receipts,
            writes,
            dropped,
            gas_used,
            ..
        } = built;
        let writes = Arc::new(writes);
        let (tell, outcome) = tokio::sync::watch::channel(None);
        self.committing = Some(Committing {
            header: block.header.clone(),
            writes: writes.clone(),
            outcome,
        });
        let (storage, recorder) = (self.deps.storage.clone(), self.deps.recorder.clone());
        let nonces = writes.nonces.clone();
        let job = tokio::task::spawn_blocking(move || {
            let commit_started = Instant::now();
            storage.commit_block_with_ids(&block, &tx_ids, &receipts, &writes)?;
            // Recorded here, with the commit: the record always follows the store, even if
            // this producer is replaced before its continuation runs.
            recorder.record(Committed {
                block: &block,
                receipts: &receipts,
                gas_used,
                dropped: dropped.len(),
                elapsed: started.elapsed(),
            });
            tracing::debug!(
                height = block.header.height,
                txs = tx_ids.len(),
                select_us = select.as_micros() as u64,
                build_us = build.as_micros() as u64,
                parent_wait_us = parent_wait.as_micros() as u64,
                commit_us = commit_started.elapsed().as_micros() as u64,
                "block phases"
            );
            Ok::<_, crate::storage::StorageError>((tx_ids, dropped))
        });
        ctx.spawn(job.into_actor(self).map(
            move |joined, act, _ctx| {
                let committed = match joined {
                    Ok(Ok((included, dropped))) => {
                        act.deps.mempool.block_done.do_send(BlockDone {
                            included,
                            nonces,
                            dropped,
                        });
                        true
                    }
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "block production failed; transactions returned to the mempool");
                        false
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "block commit did not finish; transactions returned to the mempool");
                        false
                    }
                };
                act.committing = None;
                // After `BlockDone` was sent: the block built on this one sends nothing to the
                // mempool before this block's settlement is in its mailbox.
                let _ = tell.send(Some(committed));
                if !committed && !act.building {
                    // Nothing built on it: return its transactions now. (A block being built on
                    // it fails when it learns this, and returns everything in flight then.)
                    act.deps.mempool.return_in_flight.do_send(ReturnInFlight);
                }
                act.answer_waiters_if_done();
            },
        ));
    }

    /// After `Shutdown`, answers once nothing is being built or committed.
    fn answer_waiters_if_done(&mut self) {
        if self.stopping && !self.building && self.committing.is_none() {
            for w in self.waiters.drain(..) {
                let _ = w.send(());
            }
        }
    }
}

/// Selects the next block and builds it (on the executor), on `on`, the block being committed,
/// if any: its header is the parent and its writes lie over the chain's state. Returns once the
/// parent's commit has ended, whatever the build's outcome, so a failure is reported (and the
/// transactions returned) only once nothing of the parent is in doubt.
///
/// Consensus: the block is the same as if built after the parent's commit. Its parent header
/// is the parent's, and `vm::Layered` reads exactly the state that commit leaves. If the
/// parent is not committed, the block is discarded before it is committed
/// (`ParentNotCommitted`); storage refuses a block that is not on its head anyway.
async fn build_next(deps: ProducerDeps, on: Option<Committing>) -> Result<Ready, ProduceError> {
    let started = Instant::now();
    let result = select_and_build(&deps, on.as_ref()).await;
    let built_at = started.elapsed();
    if let Some(parent) = on
        && !parent.committed().await
    {
        return Err(ProduceError::ParentNotCommitted);
    }
    let (built, full, select) = result?;
    Ok(Ready {
        built,
        full,
        started,
        select,
        build: built_at - select,
        parent_wait: started.elapsed() - built_at,
    })
}

async fn select_and_build(
    deps: &ProducerDeps,
    on: Option<&Committing>,
) -> Result<(Built, bool, Duration), ProduceError> {
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
    let snapshot = deps.storage.snapshot()?;
    let head = snapshot.head()?;
    let (parent, base): (BlockHeader, Arc<dyn StateView>) = match on {
        // The parent's commit landed before the snapshot: it is the plain chain state.
        Some(c) if head.hash() == c.header.hash() => (c.header.clone(), Arc::new(snapshot)),
        Some(c) => (
            c.header.clone(),
            Arc::new(Layered::new(Arc::new(snapshot), c.writes.clone())),
        ),
        None => (head, Arc::new(snapshot)),
    };
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
    Ok((built, full, selected_at))
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
        if !already && !self.building && self.committing.is_none() {
            // Nothing in progress: one last block with whatever is pending.
            self.start_block(ctx);
        } else {
            self.answer_waiters_if_done();
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
    use crate::mempool::pool::Pool;
    use crate::types::{Address, Hash, VerifiedTx};
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
            let ports = MempoolPorts {
                select: Port::fixed(mempool.clone().recipient()),
                block_done: Port::fixed(mempool.clone().recipient()),
                return_in_flight: Port::fixed(mempool.recipient()),
            };
            self.start_on(block_time, 100, ports, executor)
        }

        /// A producer on its own arbiter talking to `mempool` and `executor`.
        fn start_on(
            &self,
            block_time: Duration,
            max_transactions: usize,
            mempool: MempoolPorts,
            executor: Port<BuildBlock>,
        ) -> Addr<BlockProducer> {
            let deps = ProducerDeps {
                storage: self.storage.clone(),
                key: Arc::new(Keypair::from_seed([42; 32])),
                params: Arc::new(params()),
                config: ProducerConfig {
                    block_time,
                    max_transactions,
                    queue_size: 4,
                },
                mempool,
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

    /// A mempool that is the real `Pool` (per-attempt in-flight sets and all) behind the
    /// producer's three messages; counts `ReturnInFlight`.
    struct PoolMempool {
        pool: Arc<Mutex<Pool>>,
        returned: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl Actor for PoolMempool {
        type Context = Context<Self>;
    }

    impl Handler<Select> for PoolMempool {
        type Result = MessageResult<Select>;
        fn handle(&mut self, m: Select, _: &mut Context<Self>) -> Self::Result {
            let limits = crate::mempool::pool::BlockLimits {
                txs: m.max,
                gas: m.max_gas,
                bytes: m.max_bytes,
            };
            let mut pool = self.pool.lock().unwrap();
            MessageResult(
                pool.select(limits, 0, &std::collections::HashMap::new())
                    .txs,
            )
        }
    }

    impl Handler<BlockDone> for PoolMempool {
        type Result = ();
        fn handle(&mut self, m: BlockDone, _: &mut Context<Self>) {
            let mut pool = self.pool.lock().unwrap();
            pool.on_block(&m.included, &m.nonces, &m.dropped);
            pool.check_invariants();
        }
    }

    impl Handler<ReturnInFlight> for PoolMempool {
        type Result = ();
        fn handle(&mut self, _: ReturnInFlight, _: &mut Context<Self>) {
            let mut pool = self.pool.lock().unwrap();
            pool.return_in_flight();
            pool.check_invariants();
            self.returned.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A counter deployed at height 1 (outside the producer), and `senders` accounts each
    /// holding `calls` increments of it in a real pool.
    fn backlog(f: &Fixture, senders: u8, calls: usize) -> (Arc<Mutex<Pool>>, Address, Vec<Hash>) {
        let mut deployer = Account::new(90);
        let (deploy, counter) = deployer.deploy(fixture("counter"));
        let head = f.storage.head().unwrap();
        let built = crate::chain::build(
            &vm(),
            &params(),
            &Keypair::from_seed([42; 32]),
            &head,
            Arc::new(f.storage.snapshot().unwrap()),
            head.timestamp_ms + 1,
            vec![deploy],
        )
        .unwrap();
        f.storage
            .commit_block_with_ids(&built.block, &built.tx_ids, &built.receipts, &built.writes)
            .unwrap();
        let mut pool = Pool::new(crate::mempool::pool::PoolConfig {
            chain_id: crate::testkit::CHAIN.into(),
            max_size: 10_000,
            max_bytes: 1 << 30,
            account_limit: 10_000,
            max_tx_gas: 50_000_000,
            max_future_nonces: 10_000,
            future_limit: 10,
            future_ttl_ms: 60_000,
        });
        let mut ids = Vec::new();
        for seed in 1..=senders {
            let mut a = Account::new(seed);
            for _ in 0..calls {
                let t = a.call_gas(counter, "increment", &[], 1_000_000);
                ids.push(t.id());
                pool.admit(t, 0, 0).unwrap();
            }
        }
        (Arc::new(Mutex::new(pool)), counter, ids)
    }

    fn ports_of(
        pool: &Arc<Mutex<Pool>>,
        returned: &Arc<std::sync::atomic::AtomicUsize>,
    ) -> MempoolPorts {
        let m = PoolMempool {
            pool: pool.clone(),
            returned: returned.clone(),
        }
        .start();
        MempoolPorts {
            select: Port::fixed(m.clone().recipient()),
            block_done: Port::fixed(m.clone().recipient()),
            return_in_flight: Port::fixed(m.recipient()),
        }
    }

    /// Re-verifies the chain from block 1 to the head the way a follower does (each block
    /// re-executed on its parent's committed state), on a second store.
    fn follower_accepts_the_chain(f: &Fixture) {
        let vm = vm();
        let p = params();
        let sequencer = Keypair::from_seed([42; 32]).public();
        let copy = Storage::in_memory_with(&p).unwrap();
        for h in 1..=f.height() {
            let block = f.storage.block_by_height(h).unwrap().unwrap();
            let parent = copy.head().unwrap();
            let v = crate::chain::verify(
                &vm,
                &p,
                &sequencer,
                &parent,
                Arc::new(copy.snapshot().unwrap()),
                &block,
            )
            .unwrap_or_else(|e| panic!("block {h}: {e}"));
            copy.commit_block(&block, &v.receipts, &v.writes).unwrap();
        }
        assert_eq!(
            copy.head().unwrap().hash(),
            f.storage.head().unwrap().hash()
        );
    }

    fn count_of(f: &Fixture, counter: &Address) -> u64 {
        let raw = f
            .storage
            .snapshot()
            .unwrap()
            .storage_get(counter, b"count")
            .unwrap()
            .unwrap();
        u64::from_le_bytes(raw.try_into().unwrap())
    }

    /// Block N+1 built on N's writes before N commits is the block built after N commits:
    /// same hash, receipts and writes. N+1 reads what N wrote (the counter), the contract N
    /// deployed (its record and code) and the nonces N used.
    #[test]
    fn a_block_built_while_its_parent_commits_is_the_block_built_after_it() {
        let storage = Storage::in_memory_with(&params()).unwrap();
        let (vm, p, key) = (vm(), params(), Keypair::from_seed([42; 32]));
        let mut a = Account::new(7);
        let mut b = Account::new(8);
        let (deploy, counter) = a.deploy(fixture("counter"));
        let n_txs = vec![
            deploy,
            a.call_gas(counter, "increment", &[], 1_000_000),
            b.call_gas(counter, "increment", &[], 1_000_000),
        ];
        let n1_txs = vec![
            a.call_gas(counter, "increment", &[], 1_000_000),
            b.call_gas(counter, "increment", &[], 1_000_000),
            a.call_gas(counter, "increment", &[], 1_000_000),
        ];
        let genesis = storage.head().unwrap();
        let before: Arc<dyn StateView> = Arc::new(storage.snapshot().unwrap());
        let ts = genesis.timestamp_ms + 10;
        let n = crate::chain::build(&vm, &p, &key, &genesis, before.clone(), ts, n_txs).unwrap();
        assert_eq!(n.receipts.len(), 3);
        let layered = Arc::new(Layered::new(before, Arc::new(n.writes.clone())));
        let early = crate::chain::build(
            &vm,
            &p,
            &key,
            &n.block.header,
            layered,
            ts + 1,
            n1_txs.clone(),
        )
        .unwrap();
        storage
            .commit_block_with_ids(&n.block, &n.tx_ids, &n.receipts, &n.writes)
            .unwrap();
        let after = Arc::new(storage.snapshot().unwrap());
        let late =
            crate::chain::build(&vm, &p, &key, &n.block.header, after, ts + 1, n1_txs).unwrap();
        assert_eq!(early.block.hash(), late.block.hash());
        assert_eq!(early.receipts, late.receipts);
        assert_eq!(early.writes, late.writes);
        assert!(early.dropped.is_empty());
        assert!(
            early
                .receipts
                .iter()
                .all(|r| r.status == ReceiptStatus::Success)
        );
        // The counter N left at 2, read through the layer, then three more increments.
        assert_eq!(early.receipts[2].output.0, 5u64.to_le_bytes().to_vec());
        storage
            .commit_block_with_ids(&early.block, &early.tx_ids, &early.receipts, &early.writes)
            .unwrap();
    }

    /// A backlog of full blocks: each is built as soon as the one before is built, while that
    /// one commits. Every transaction is committed once, in nonce order, and a follower
    /// re-executing the chain accepts every block.
    #[test]
    fn a_backlog_of_full_blocks_commits_every_transaction_once() {
        let f = Fixture::new();
        let (pool, counter, ids) = backlog(&f, 4, 60);
        let returned = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        System::new().block_on(async {
            let _producer = f.start_on(
                Duration::from_millis(20),
                40,
                ports_of(&pool, &returned),
                f.real_executor(),
            );
            wait_for("the backlog to be committed", || {
                pool.lock().unwrap().is_empty()
            })
            .await;
        });
        assert_eq!(count_of(&f, &counter), 240);
        for id in &ids {
            let r = f.storage.receipt(id).unwrap().expect("committed");
            assert_eq!(r.status, ReceiptStatus::Success);
        }
        // 1 deploy block, then at least 6 blocks of at most 40.
        assert!(f.height() >= 7, "height {}", f.height());
        follower_accepts_the_chain(&f);
    }

    /// The commit of a block fails while the next one is built on it: the next one is
    /// discarded, nothing is committed, every transaction goes back to the mempool, and once
    /// the store works again all are committed, once.
    #[test]
    fn a_failed_commit_discards_the_block_built_on_it() {
        let f = Fixture::new();
        let (pool, counter, _) = backlog(&f, 3, 40);
        let returned = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        f.storage.set_fail_before_commit(true);
        System::new().block_on(async {
            let _producer = f.start_on(
                Duration::from_millis(20),
                30,
                ports_of(&pool, &returned),
                f.real_executor(),
            );
            wait_for("failed attempts", || returned.load(Ordering::SeqCst) >= 4).await;
            assert_eq!(f.height(), 1, "nothing committed");
            f.storage.set_fail_before_commit(false);
            wait_for("the backlog to be committed", || {
                pool.lock().unwrap().is_empty()
            })
            .await;
        });
        assert_eq!(count_of(&f, &counter), 120);
        follower_accepts_the_chain(&f);
    }
}
