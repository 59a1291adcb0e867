//! AnchorWatcher actor (follower role, with `bridge.l0.endpoint` and `data_account` set): runs
//! `anchor_check::AnchorChecker` against the L0 in a loop beside the Syncer. Read-only: it never
//! sends anything to the L0 and needs no key.
//!
//! Invariants:
//! - A contradiction is a verdict like a failed verification: `ERROR` log with the height and
//!   both hashes, the shared `SyncStatus` halted (sticky; `/health` unhealthy; the Syncer commits
//!   nothing more), `accumen_follower_halted` 1, `anchor_checks{result="contradiction"}` raised.
//! - An unreachable or failing L0 only delays the checks: `WARN` log, exponential backoff
//!   between `retry_min` and `retry_max`; it never halts and never crashes the actor.
//! - It wakes on the committed head (`Recorder::subscribe`) when anchors wait for sync, and
//!   polls the L0 every `poll` when it has read everything, so a check follows both quickly.
//! - A restarted incarnation starts over from entry 0 (`anchor_check` module docs).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::watch;

use crate::anchor_check::{AnchorCheckError, AnchorChecker, Outcome};
use crate::bridge::{AccUrl, L0Client};
use crate::chain::Head;
use crate::chain::sync::{Backoff, SyncState, SyncStatus};
use crate::storage::Storage;
use crate::syncer::SyncMetrics;

/// Everything an AnchorWatcher is built from.
#[derive(Clone)]
pub struct AnchorWatcherDeps {
    pub storage: Arc<Storage>,
    pub chain_id: String,
    pub account: AccUrl,
    /// A fresh client per incarnation (its connections live on this actor's Arbiter).
    pub make_l0: Arc<dyn Fn() -> L0Client + Send + Sync>,
    pub head: watch::Receiver<Head>,
    pub status: Arc<SyncStatus>,
    pub metrics: SyncMetrics,
    /// Wait between reads once everything on the L0 is read.
    pub poll: Duration,
    pub retry_min: Duration,
    pub retry_max: Duration,
}

impl std::fmt::Debug for AnchorWatcherDeps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnchorWatcherDeps")
            .field("chain_id", &self.chain_id)
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

/// The actor: one check loop, started and stopped with it.
#[derive(Debug)]
pub struct AnchorWatcher {
    deps: AnchorWatcherDeps,
}

impl AnchorWatcher {
    pub fn new(deps: AnchorWatcherDeps) -> AnchorWatcher {
        AnchorWatcher { deps }
    }
}

impl Actor for AnchorWatcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let deps = self.deps.clone();
        ctx.spawn(run(deps).into_actor(self));
    }
}

crate::supervised!(AnchorWatcher);

async fn run(mut deps: AnchorWatcherDeps) {
    let l0 = (deps.make_l0)();
    let mut checker = AnchorChecker::new(deps.chain_id.clone(), deps.account.clone());
    let mut backoff = Backoff::new(deps.retry_min, deps.retry_max);
    let storage = deps.storage.clone();
    let header = move |h: u64| storage.block_by_height(h).map(|b| b.map(|b| b.header));
    loop {
        if deps.status.state() == SyncState::Halted {
            return;
        }
        let head = deps.head.borrow_and_update().height;
        let metrics = deps.metrics.clone();
        let mut tally = |o: Outcome| {
            metrics
                .anchor_checks
                .get_or_create(&SyncMetrics::anchor_label(o.label()))
                .inc();
        };
        let result = checker.round(&l0, head, &header, &mut tally).await;
        let anchored = checker.anchored();
        deps.status
            .anchored_height
            .store(anchored, Ordering::Relaxed);
        deps.metrics.anchored_height.set(anchored as i64);
        match result {
            Ok(read) => {
                backoff.succeeded();
                if read > 0 {
                    continue;
                }
                // Nothing new to read: wait for the next block (anchors may be waiting for it)
                // or the next poll of the L0, whichever comes first.
                if let Ok(Err(_)) = tokio::time::timeout(deps.poll, deps.head.changed()).await {
                    // The node is stopping (no more heads): just poll.
                    tokio::time::sleep(deps.poll).await;
                }
            }
            Err(AnchorCheckError::Contradiction(c)) => {
                // The runbook greps this line ("Follower"): height and both hashes.
                tracing::error!(
                    height = c.anchor.last_height,
                    first_height = c.anchor.first_height,
                    anchored_hash = %c.anchor.last_block_hash,
                    verified_hash = %c.local_last_hash,
                    entry_index = c.entry_index,
                    reason = %c.reason,
                    "follower halted: an L0 anchor of the sequencer contradicts verified blocks; \
                     nothing more is committed"
                );
                deps.metrics
                    .anchor_checks
                    .get_or_create(&SyncMetrics::anchor_label("contradiction"))
                    .inc();
                deps.metrics.halted.set(1);
                deps.status
                    .halt(AnchorCheckError::Contradiction(c).to_string());
                return;
            }
            Err(e) => {
                let wait = backoff.failed();
                tracing::warn!(
                    error = %e,
                    retry_in_ms = wait.as_millis() as u64,
                    anchored_height = anchored,
                    "follower: cannot check the L0 anchors now, retrying (sync goes on)"
                );
                tokio::time::sleep(wait).await;
            }
        }
    }
}
