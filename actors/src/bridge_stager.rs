//! BridgeStager actor: thin over `bridge::stage` (read its module doc for the batching,
//! write-ahead and re-signing rules).
//!
//! Role: wakes on the committed head (`chain::Recorder::subscribe`, a watch: one wake-up per new
//! head, no polling), on the submitter's "re-sign needed" notification, on the flush deadline of
//! a partial batch, and on a retry timer after an error; each wake-up runs `Stager::run` once.
//! Stored or re-signed rows wake the submitter (`BridgeShared::outbox_changed`).
//!
//! Invariants:
//! - The mailbox stays free: a run (which may wait on the L0 for the key page version, bounded
//!   by the client's request timeout) is a spawned future, so heartbeats are answered during it.
//!   Runs never overlap (one `tokio::sync::Mutex` around the stager), and wake-ups during a run
//!   coalesce into one more run.
//! - Restart-safe: everything is in storage (the watermarks, the outbox, the timestamp counter);
//!   a fresh instance only relearns the key page version. It runs once at start, so heights
//!   committed while it was down (or before the bridge was enabled) are staged at once.
//! - Errors (storage, the L0 unreachable for the version query, a missing block) count in
//!   `accumen_bridge_errors_total`, are kept as `/bridge/stats` `last_error`, log a rate-limited
//!   `ERROR … bridge staging failed` line, and are retried with a capped backoff.
//! - [`Flush`] (the graceful stop) stages every committed height, whatever the batch size and
//!   flush interval, and answers when done.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::watch;

use crate::bridge::L0Api;
use crate::bridge::codec::L0Key;
use crate::bridge::stage::{MAX_BATCHES_PER_RUN, StageError, StageReport, Stager, StagerConfig};
use crate::bridge::status::{BridgeShared, SharedSignal, forward_wakeups, publish_stats};
use crate::chain::Head;
use crate::metrics::{NodeMetrics, NodeStats, now_ms};
use crate::storage::Storage;
use crate::supervisor::Heartbeat;

static STAGE_ERROR_LOG: crate::ratelimit::LogLimiter =
    crate::ratelimit::LogLimiter::new(Duration::from_secs(10));

/// The first retry after an error; doubled up to [`MAX_RETRY`].
const MIN_RETRY: Duration = Duration::from_millis(500);
const MAX_RETRY: Duration = Duration::from_secs(30);

/// Builds the L0 client of one incarnation.
pub type MakeL0<L> = Arc<dyn Fn() -> L + Send + Sync>;

/// Everything a stager works with; cloned into each incarnation by the supervisor's factory.
pub struct StagerDeps<L> {
    pub storage: Arc<Storage>,
    pub key: Arc<L0Key>,
    pub config: StagerConfig,
    pub make_l0: MakeL0<L>,
    /// The committed head (`Recorder::subscribe`).
    pub head: watch::Receiver<Head>,
    pub shared: Arc<BridgeShared>,
    pub metrics: NodeMetrics,
    pub stats: Arc<NodeStats>,
}

impl<L> std::fmt::Debug for StagerDeps<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StagerDeps")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<L> Clone for StagerDeps<L> {
    fn clone(&self) -> Self {
        Self {
            storage: self.storage.clone(),
            key: self.key.clone(),
            config: self.config.clone(),
            make_l0: self.make_l0.clone(),
            head: self.head.clone(),
            shared: self.shared.clone(),
            metrics: self.metrics.clone(),
            stats: self.stats.clone(),
        }
    }
}

/// Runs the stager now (coalesced with a run in progress).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Stage;

/// Stages every committed height now and answers when done (the graceful stop).
#[derive(Debug, Message)]
#[rtype(result = "Result<StageReport, String>")]
pub struct Flush;

/// The stager actor.
pub struct BridgeStager<L: L0Api + 'static> {
    deps: StagerDeps<L>,
    inner: Rc<tokio::sync::Mutex<(Stager, L)>>,
    running: bool,
    again: bool,
    timer: Option<SpawnHandle>,
    retry: Duration,
}

impl<L: L0Api + 'static> std::fmt::Debug for BridgeStager<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BridgeStager")
            .field("config", &self.deps.config)
            .field("running", &self.running)
            .finish_non_exhaustive()
    }
}

impl<L: L0Api + 'static> BridgeStager<L> {
    pub fn new(deps: StagerDeps<L>) -> Self {
        let stager = Stager::new(deps.config.clone(), deps.key.clone(), deps.storage.clone());
        let l0 = (deps.make_l0)();
        Self {
            deps,
            inner: Rc::new(tokio::sync::Mutex::new((stager, l0))),
            running: false,
            again: false,
            timer: None,
            retry: Duration::ZERO,
        }
    }

    fn kick(&mut self, ctx: &mut Context<Self>) {
        if self.running {
            self.again = true;
            return;
        }
        self.running = true;
        if let Some(t) = self.timer.take() {
            ctx.cancel_future(t);
        }
        let fut = run(self.inner.clone(), false);
        ctx.spawn(fut.into_actor(self).map(|res, act, ctx| {
            act.running = false;
            act.done(res, ctx);
            if std::mem::take(&mut act.again) {
                act.kick(ctx);
            }
        }));
    }

    fn done(&mut self, res: Result<StageReport, StageError>, ctx: &mut Context<Self>) {
        match res {
            Ok(r) => {
                self.retry = Duration::ZERO;
                self.after_success(&r);
                if r.staged >= MAX_BATCHES_PER_RUN {
                    self.again = true;
                } else if let Some(d) = r.next_due_in {
                    self.timer = Some(ctx.run_later(d, |_, ctx| ctx.notify(Stage)));
                }
            }
            Err(e) => {
                self.report_error(&e);
                // The backlog grows exactly while staging fails (an unreachable L0): keep the
                // gauges and the backlog health reads current (one run per new head at least).
                if let Err(e) =
                    publish_stats(&self.deps.storage, &self.deps.metrics, &self.deps.stats)
                {
                    tracing::warn!(error = %e, "bridge stats could not be read");
                }
                self.retry = if self.retry.is_zero() {
                    MIN_RETRY
                } else {
                    (self.retry * 2).min(MAX_RETRY)
                };
                self.timer = Some(ctx.run_later(self.retry, |_, ctx| ctx.notify(Stage)));
            }
        }
    }

    fn after_success(&self, r: &StageReport) {
        if r.staged + r.resigned > 0 {
            self.deps.shared.outbox_changed.notify_one();
            tracing::debug!(
                staged = r.staged,
                resigned = r.resigned,
                "bridge batches staged"
            );
        }
        if let Err(e) = publish_stats(&self.deps.storage, &self.deps.metrics, &self.deps.stats) {
            tracing::warn!(error = %e, "bridge stats could not be read");
        }
    }

    fn report_error(&self, e: &StageError) {
        self.deps.metrics.bridge_errors.inc();
        self.deps.shared.set_last_error(e.to_string());
        if let Some(suppressed) = STAGE_ERROR_LOG.allow() {
            tracing::error!(error = %e, suppressed, "bridge staging failed; retrying");
        }
    }
}

/// One run under the lock (runs never overlap).
async fn run<L: L0Api>(
    inner: Rc<tokio::sync::Mutex<(Stager, L)>>,
    force: bool,
) -> Result<StageReport, StageError> {
    let mut guard = inner.lock().await;
    let (stager, l0) = &mut *guard;
    stager.run(l0, now_ms(), force).await
}

impl<L: L0Api + 'static> Actor for BridgeStager<L> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        forward_wakeups(ctx, self.deps.head.clone(), || Stage);
        forward_wakeups(
            ctx,
            SharedSignal(self.deps.shared.clone(), |s| &s.resign_needed),
            || Stage,
        );
        // Catch up with whatever was committed while no stager ran.
        self.kick(ctx);
    }
}

impl<L: L0Api + 'static> Handler<Stage> for BridgeStager<L> {
    type Result = ();
    fn handle(&mut self, _: Stage, ctx: &mut Context<Self>) {
        self.kick(ctx);
    }
}

impl<L: L0Api + 'static> Handler<Flush> for BridgeStager<L> {
    type Result = ResponseActFuture<Self, Result<StageReport, String>>;
    fn handle(&mut self, _: Flush, _ctx: &mut Context<Self>) -> Self::Result {
        let inner = self.inner.clone();
        Box::pin(
            async move {
                let mut total = StageReport::default();
                // Each run stages at most MAX_BATCHES_PER_RUN; the caller's timeout bounds it.
                loop {
                    let r = run(inner.clone(), true).await?;
                    total.staged += r.staged;
                    total.resigned += r.resigned;
                    if r.staged < MAX_BATCHES_PER_RUN {
                        return Ok(total);
                    }
                }
            }
            .into_actor(self)
            .map(|res: Result<StageReport, StageError>, act, _| match res {
                Ok(r) => {
                    act.after_success(&r);
                    Ok(r)
                }
                Err(e) => {
                    act.report_error(&e);
                    Err(e.to_string())
                }
            }),
        )
    }
}

impl<L: L0Api + 'static> Handler<Heartbeat> for BridgeStager<L> {
    type Result = ();
    fn handle(&mut self, _: Heartbeat, _: &mut Context<Self>) {}
}

#[cfg(any(test, feature = "test-hooks"))]
impl<L: L0Api + 'static> Handler<crate::supervisor::TestHook> for BridgeStager<L> {
    type Result = ();
    fn handle(&mut self, hook: crate::supervisor::TestHook, _: &mut Context<Self>) {
        crate::supervisor::apply_test_hook("BridgeStager", hook);
    }
}
