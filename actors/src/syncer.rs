//! Syncer actor (follower role): fetches the sequencer's blocks in height order, verifies each
//! on the executor pool (`executor::VerifyBlock`, i.e. `chain::verify`), commits only what
//! verifies, one block per write transaction (`Storage::commit_block`, the sequencer's path),
//! and records it with the shared `chain::Recorder`. It never produces blocks.
//!
//! Invariants:
//! - Nothing unverified is committed: a block is committed only after `chain::verify` accepted
//!   it as the child of the stored head, with the receipts and writes the follower computed
//!   itself. A whole answer is checked (`chain::sync::parse_answer`) before its first block is
//!   verified.
//! - The stored head is the only progress marker: every fetch starts at `head + 1`, so a
//!   restarted Syncer (supervisor restart or a new process after SIGKILL) resumes exactly where
//!   the last committed block left off.
//! - A verdict (`SyncError::is_verdict`: undecodable, skipped height, failed verification) halts
//!   sync for good: `ERROR` log with the height and what differed, `SyncStatus` halted (sticky
//!   across Syncer restarts, since the status is shared), `/health` unhealthy, the metric
//!   `accumen_follower_verification_failures_total` raised. Only an operator restart clears it.
//! - Transport trouble (the sequencer down, a timeout, an error status) is `stale` with
//!   exponential backoff; it never crashes the actor.
//! - The optional L0 anchor checks run beside it (`anchor_watcher`): a contradiction halts the
//!   shared `SyncStatus` like a failed verification, and the Syncer checks the halt once more
//!   right before each commit, so nothing is committed after it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use actix::prelude::*;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::chain::sync::{
    AnswerBody, Backoff, Batch, SyncError, SyncState, SyncStatus, parse_answer,
};
use crate::chain::{ChainParams, Committed, Recorder};
use crate::executor::{VerifyBlock, enqueue};
use crate::metrics::{NodeMetrics, NodeStats};
use crate::storage::{Storage, StorageError};
use crate::supervisor::Port;
use crate::types::{Block, PublicKey};

/// Why a fetch failed (transport, never a verdict on the chain).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(pub String);

/// A fetch's future.
pub type Fetch = Pin<Box<dyn Future<Output = Result<AnswerBody, SourceError>>>>;

/// Where blocks come from: the body of `GET /v1/sync/blocks?from=..&limit=..&wait_ms=..` on the
/// sequencer (at most `chain::sync::MAX_ANSWER_BYTES`), in the encoding its `Content-Type`
/// names. The daemon implements it over HTTP; tests can serve anything.
pub trait BlockSource: Send + Sync + 'static {
    fn fetch(&self, from: u64, limit: u32, wait: Duration) -> Fetch;
}

/// The follower's metric families (`accumen_follower_*`).
#[derive(Debug, Clone, Default)]
pub struct SyncMetrics {
    pub lag_blocks: Gauge,
    pub sequencer_height: Gauge,
    pub halted: Gauge,
    pub blocks_replayed: Counter,
    pub txs_replayed: Counter,
    pub verification_failures: Counter,
    pub fetch_errors: Counter,
    /// L0 anchor checks by `result` (`ok`, `contradiction`, `skipped`).
    pub anchor_checks: Family<Vec<(String, String)>, Counter>,
    pub anchored_height: Gauge,
}

impl SyncMetrics {
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("accumen_follower");
        r.register(
            "lag_blocks",
            "Blocks the follower is behind the sequencer's last reported height",
            self.lag_blocks.clone(),
        );
        r.register(
            "sequencer_height",
            "The sequencer's height as of its last answer",
            self.sequencer_height.clone(),
        );
        r.register(
            "halted",
            "1 once the sequencer served a chain that does not verify (sync stopped)",
            self.halted.clone(),
        );
        r.register(
            "blocks_replayed",
            "Blocks verified by re-execution and committed",
            self.blocks_replayed.clone(),
        );
        r.register(
            "transactions_replayed",
            "Transactions of replayed blocks",
            self.txs_replayed.clone(),
        );
        r.register(
            "verification_failures",
            "Sequencer answers refused: undecodable, skipped height or failed verification",
            self.verification_failures.clone(),
        );
        r.register(
            "fetch_errors",
            "Failed fetches from the sequencer (unreachable, timeout, error status)",
            self.fetch_errors.clone(),
        );
        // Every series exists at 0 from the start, so `increase()` alerts see the first one.
        for result in ["ok", "contradiction", "skipped"] {
            let _ = self
                .anchor_checks
                .get_or_create(&Self::anchor_label(result));
        }
        r.register(
            "anchor_checks",
            "L0 anchor entries checked against verified blocks, by result (ok, contradiction, \
             skipped: not an Accumen anchor of this chain)",
            self.anchor_checks.clone(),
        );
        r.register(
            "anchored_height",
            "Highest height both verified and covered by checked L0 anchors",
            self.anchored_height.clone(),
        );
    }
}

impl SyncMetrics {
    /// The label set of `anchor_checks` for `result`.
    pub fn anchor_label(result: &str) -> Vec<(String, String)> {
        vec![("result".to_string(), result.to_string())]
    }
}

/// How the Syncer fetches.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    pub batch_size: u32,
    pub long_poll: Duration,
    pub retry_min: Duration,
    pub retry_max: Duration,
    /// `execution.queue_size`: the executor places a verification may take.
    pub queue_size: usize,
}

/// Everything a Syncer is built from (shared or durable, so a restart loses nothing).
#[derive(Clone)]
pub struct SyncerDeps {
    pub storage: Arc<Storage>,
    pub params: Arc<ChainParams>,
    pub sequencer: PublicKey,
    pub executor: Port<VerifyBlock>,
    pub recorder: Arc<Recorder>,
    pub status: Arc<SyncStatus>,
    pub stats: Arc<NodeStats>,
    pub metrics: NodeMetrics,
    pub sync_metrics: SyncMetrics,
    pub source: Arc<dyn BlockSource>,
    pub config: SyncConfig,
}

impl std::fmt::Debug for SyncerDeps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncerDeps")
            .field("sequencer", &self.sequencer)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The actor: one sync loop, started with the actor and stopped with it.
#[derive(Debug)]
pub struct Syncer {
    deps: SyncerDeps,
}

impl Syncer {
    pub fn new(deps: SyncerDeps) -> Syncer {
        Syncer { deps }
    }
}

impl Actor for Syncer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // The loop is a future of this actor's context: it runs between the supervisor's
        // heartbeats (it awaits the network and the executor, never blocks) and is dropped with
        // the actor, so a replacement Syncer never races an old one.
        let deps = self.deps.clone();
        ctx.spawn(run(deps).into_actor(self));
    }
}

crate::supervised!(Syncer);

/// Why one round did not commit everything it fetched.
#[derive(Debug, thiserror::Error)]
enum RoundError {
    #[error("fetching from the sequencer: {0}")]
    Source(#[from] SourceError),
    #[error(transparent)]
    Sync(#[from] SyncError),
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("executor: {0}")]
    Executor(String),
    #[error("sync halted")]
    Halted,
}

/// The sync loop: fetch from `head + 1`, verify and commit in order, until halted.
async fn run(deps: SyncerDeps) {
    let mut backoff = Backoff::new(deps.config.retry_min, deps.config.retry_max);
    if let Ok(head) = deps.storage.head() {
        deps.recorder.resume(&head);
    }
    loop {
        if deps.status.state() == SyncState::Halted {
            // Sticky: a replacement Syncer after a halt does nothing either.
            deps.sync_metrics.halted.set(1);
            return;
        }
        match round(&deps).await {
            Ok(()) => backoff.succeeded(),
            Err(RoundError::Halted) => {
                deps.sync_metrics.halted.set(1);
                return;
            }
            Err(RoundError::Sync(e)) if e.is_verdict() => {
                halt(&deps, &e);
                return;
            }
            Err(e) => {
                let wait = backoff.failed();
                if matches!(e, RoundError::Source(_)) {
                    deps.sync_metrics.fetch_errors.inc();
                    deps.status.set_state(SyncState::Stale);
                    tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "follower: sequencer unavailable, retrying");
                } else {
                    tracing::error!(error = %e, retry_in_ms = wait.as_millis() as u64, "follower: could not apply a block, retrying");
                }
                tokio::time::sleep(wait).await;
            }
        }
    }
}

fn halt(deps: &SyncerDeps, e: &SyncError) {
    let height = match e {
        SyncError::Verify { height, .. } | SyncError::Undecodable { height, .. } => Some(*height),
        SyncError::SkippedHeight { expected, .. } => Some(*expected),
        _ => None,
    };
    // The runbook greps this line ("Follower"): it names the height and what differed (both
    // roots, for a root mismatch, are in the error's text).
    tracing::error!(
        height,
        error = %e,
        "follower halted: the sequencer's chain does not verify; nothing of it was committed"
    );
    deps.sync_metrics.verification_failures.inc();
    deps.sync_metrics.halted.set(1);
    deps.status.halt(format!("{e}"));
}

/// One fetch and the blocks it brought.
async fn round(deps: &SyncerDeps) -> Result<(), RoundError> {
    let head = deps.storage.head()?;
    let from = head.height + 1;
    let limit = deps.config.batch_size;
    let body = deps
        .source
        .fetch(from, limit, deps.config.long_poll)
        .await?;
    let Batch {
        sequencer_height,
        blocks,
    } = parse_answer(&body, from, limit)?;
    show_progress(deps, head.height, sequencer_height);
    if blocks.is_empty() {
        // A long poll that ended without a block: at the sequencer's head, or it is behind us
        // (then it is the sequencer that lags; nothing to fetch).
        deps.status.set_state(SyncState::CaughtUp);
        return Ok(());
    }
    let mut parent = head;
    for block in blocks {
        let block = Arc::new(block);
        let started = Instant::now();
        apply(deps, &parent, block.clone()).await?;
        let took = started.elapsed();
        let n = block.txs.len() as u64;
        deps.status.blocks_replayed.fetch_add(1, Ordering::Relaxed);
        deps.status.txs_replayed.fetch_add(n, Ordering::Relaxed);
        deps.status
            .replay_us
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        deps.sync_metrics.blocks_replayed.inc();
        deps.sync_metrics.txs_replayed.inc_by(n);
        parent = block.header.clone();
        show_progress(deps, parent.height, sequencer_height);
    }
    Ok(())
}

fn show_progress(deps: &SyncerDeps, height: u64, sequencer_height: u64) {
    let seen = deps
        .status
        .sequencer_height
        .fetch_max(sequencer_height, Ordering::Relaxed)
        .max(sequencer_height);
    let lag = seen.saturating_sub(height);
    deps.sync_metrics.sequencer_height.set(seen as i64);
    deps.sync_metrics.lag_blocks.set(lag as i64);
    deps.status.set_state(if lag == 0 {
        SyncState::CaughtUp
    } else {
        SyncState::Syncing
    });
}

/// Verifies `block` as the child of `parent` on the executor pool and commits it.
async fn apply(
    deps: &SyncerDeps,
    parent: &crate::types::BlockHeader,
    block: Arc<Block>,
) -> Result<(), RoundError> {
    let height = block.header.height;
    let base = Arc::new(deps.storage.snapshot()?);
    // Like the producer: one place beyond `queue_size`, so queries alone cannot lock sync out.
    let slot = enqueue(
        &deps.stats,
        &deps.metrics,
        deps.config.queue_size.max(1) + 1,
    )
    .ok_or_else(|| RoundError::Executor("executor queue is full".into()))?;
    let waiting = slot.clone();
    let started = Instant::now();
    let verified = deps
        .executor
        .send(VerifyBlock {
            params: deps.params.clone(),
            sequencer: deps.sequencer,
            parent: parent.clone(),
            base,
            block: block.clone(),
            slot,
        })
        .await
        .map_err(|e| RoundError::Executor(e.to_string()))?
        .map_err(|source| SyncError::Verify { height, source })?;
    drop(waiting);
    // The last check of a verified block: a halt decided meanwhile (an L0 anchor contradicted
    // an earlier block, `anchor_watcher`) commits nothing more.
    if deps.status.state() == SyncState::Halted {
        return Err(RoundError::Halted);
    }
    deps.storage
        .commit_block(&block, &verified.receipts, &verified.writes)?;
    deps.recorder.record(Committed {
        block: &block,
        receipts: &verified.receipts,
        gas_used: verified.gas_used,
        dropped: 0,
        elapsed: started.elapsed(),
    });
    Ok(())
}
