//! BridgeSubmitter actor: thin over `bridge::submit` (read its module doc for what is sent,
//! when, how delivery is confirmed and the in-flight rule).
//!
//! Role: steps the submitter when the stager stored rows (`BridgeShared::outbox_changed`), at
//! start (resume from the outbox), and when the last step said more is due (confirmation polls,
//! backoff); turns each step's events into metrics, logs and the shared status.
//!
//! Invariants:
//! - The mailbox stays free: a step (L0 calls, each bounded by the client's request timeout) is a
//!   spawned future, so heartbeats are answered while the L0 is slow. Steps never overlap (one
//!   `tokio::sync::Mutex`); wake-ups during a step coalesce into one more.
//! - Restart-safe: a fresh instance (after a hang or a panic) starts from the outbox alone,
//!   querying the L0 before resending anything it finds submitted, so nothing is lost or sent as
//!   a second transaction. A late step of a replaced incarnation can only resend identical bytes
//!   or repeat a transition storage refuses.
//! - Every outcome counts in `accumen_bridge_submissions_total{outcome}` (`delivered`, `failed`,
//!   `retried`, `already_known`); every failed L0 call and every final failure also counts in
//!   `accumen_bridge_errors_total`, sets `/bridge/stats` `last_error` and logs a rate-limited
//!   `ERROR … bridge … failed` line (the runbook's pattern). A final failure wakes the stager to
//!   re-sign (`BridgeShared::resign_needed`).

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::bridge::L0Api;
use crate::bridge::status::{BridgeShared, SharedSignal, forward_wakeups, publish_stats};
use crate::bridge::submit::{Event, StepReport, SubmitError, Submitter, SubmitterConfig};
use crate::bridge_stager::MakeL0;
use crate::metrics::{NodeMetrics, NodeStats};
use crate::storage::{OutboxState, Storage};
use crate::supervisor::Heartbeat;

static FAILED_LOG: crate::ratelimit::LogLimiter =
    crate::ratelimit::LogLimiter::new(Duration::from_secs(10));
static RETRY_LOG: crate::ratelimit::LogLimiter =
    crate::ratelimit::LogLimiter::new(Duration::from_secs(10));

/// After a storage error, the next step waits this long.
const STORAGE_RETRY: Duration = Duration::from_secs(1);

/// Everything a submitter works with; cloned into each incarnation by the supervisor's factory.
pub struct SubmitterDeps<L> {
    pub storage: Arc<Storage>,
    pub config: SubmitterConfig,
    pub make_l0: MakeL0<L>,
    pub shared: Arc<BridgeShared>,
    pub metrics: NodeMetrics,
    pub stats: Arc<NodeStats>,
}

impl<L> std::fmt::Debug for SubmitterDeps<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubmitterDeps")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<L> Clone for SubmitterDeps<L> {
    fn clone(&self) -> Self {
        Self {
            storage: self.storage.clone(),
            config: self.config.clone(),
            make_l0: self.make_l0.clone(),
            shared: self.shared.clone(),
            metrics: self.metrics.clone(),
            stats: self.stats.clone(),
        }
    }
}

/// Steps the submitter now (coalesced with a step in progress).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Wake;

/// Steps until no row is staged or in flight, or `within` has passed (the graceful stop's
/// bounded window); answers the number of rows still pending.
#[derive(Debug, Message)]
#[rtype(result = "u64")]
pub struct Settle {
    pub within: Duration,
}

/// The submitter actor.
pub struct BridgeSubmitter<L: L0Api + 'static> {
    deps: SubmitterDeps<L>,
    inner: Rc<tokio::sync::Mutex<(Submitter, L)>>,
    running: bool,
    again: bool,
    timer: Option<SpawnHandle>,
}

impl<L: L0Api + 'static> std::fmt::Debug for BridgeSubmitter<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BridgeSubmitter")
            .field("config", &self.deps.config)
            .field("running", &self.running)
            .finish_non_exhaustive()
    }
}

impl<L: L0Api + 'static> BridgeSubmitter<L> {
    pub fn new(deps: SubmitterDeps<L>) -> Self {
        let submitter = Submitter::new(deps.config.clone(), deps.storage.clone());
        let l0 = (deps.make_l0)();
        Self {
            deps,
            inner: Rc::new(tokio::sync::Mutex::new((submitter, l0))),
            running: false,
            again: false,
            timer: None,
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
        let fut = step(self.inner.clone());
        ctx.spawn(fut.into_actor(self).map(|res, act, ctx| {
            act.running = false;
            let next = act.done(res);
            if std::mem::take(&mut act.again) || next == Some(Duration::ZERO) {
                act.kick(ctx);
            } else if let Some(d) = next {
                act.timer = Some(ctx.run_later(d, |_, ctx| ctx.notify(Wake)));
            }
        }));
    }

    /// Publishes a step's outcome; returns when to step again.
    fn done(&self, res: Result<StepReport, SubmitError>) -> Option<Duration> {
        let report = match res {
            Ok(r) => r,
            Err(e) => {
                self.deps.metrics.bridge_errors.inc();
                self.deps.shared.set_last_error(e.to_string());
                if let Some(suppressed) = FAILED_LOG.allow() {
                    tracing::error!(error = %e, suppressed, "bridge submission failed: storage");
                }
                return Some(STORAGE_RETRY);
            }
        };
        record(&self.deps, &report);
        report.next_in
    }
}

/// Metrics, logs and shared status for one step's events.
fn record<L>(deps: &SubmitterDeps<L>, report: &StepReport) {
    let outcome = |o: &str| {
        deps.metrics
            .bridge_submissions
            .get_or_create(&vec![("outcome".to_string(), o.to_string())])
            .inc();
    };
    let mut moved = false;
    for e in &report.events {
        match e {
            Event::Sent { first, resend } => {
                tracing::debug!(first, resend, "bridge anchor sent");
            }
            Event::AlreadyKnown { first } => {
                outcome("already_known");
                tracing::info!(first, "bridge anchor already known to the L0; confirming");
            }
            Event::Delivered {
                first,
                last,
                anchored,
            } => {
                outcome("delivered");
                moved = true;
                tracing::info!(first, last, anchored, "bridge anchor delivered");
            }
            Event::Failed { first, last, error } => {
                outcome("failed");
                moved = true;
                deps.metrics.bridge_errors.inc();
                deps.shared
                    .set_last_error(format!("batch {first}..={last}: {error}"));
                if let Some(suppressed) = FAILED_LOG.allow() {
                    tracing::error!(
                        first,
                        last,
                        %error,
                        suppressed,
                        "bridge anchor failed on the L0; re-signing it"
                    );
                }
            }
            Event::Retried { error, backoff } => {
                outcome("retried");
                deps.metrics.bridge_errors.inc();
                deps.shared.set_last_error(error.to_string());
                if let Some(suppressed) = RETRY_LOG.allow() {
                    tracing::error!(
                        %error,
                        ?backoff,
                        suppressed,
                        "bridge L0 call failed; retrying with the same bytes"
                    );
                }
            }
        }
    }
    if report.need_resign {
        deps.shared.resign_needed.notify_one();
    }
    if moved && let Err(e) = publish_stats(&deps.storage, &deps.metrics, &deps.stats) {
        tracing::warn!(error = %e, "bridge stats could not be read");
    }
}

/// One step under the lock (steps never overlap).
async fn step<L: L0Api>(
    inner: Rc<tokio::sync::Mutex<(Submitter, L)>>,
) -> Result<StepReport, SubmitError> {
    let mut guard = inner.lock().await;
    let (submitter, l0) = &mut *guard;
    submitter.step(l0, Instant::now()).await
}

/// Rows staged or submitted (not delivered, not failed).
fn unsettled(storage: &Storage) -> u64 {
    storage
        .outbox_pending()
        .map(|rows| {
            rows.iter()
                .filter(|r| matches!(r.state, OutboxState::Staged | OutboxState::Submitted))
                .count() as u64
        })
        .unwrap_or(u64::MAX)
}

impl<L: L0Api + 'static> Actor for BridgeSubmitter<L> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        forward_wakeups(
            ctx,
            SharedSignal(self.deps.shared.clone(), |s| &s.outbox_changed),
            || Wake,
        );
        // Resume from the outbox.
        self.kick(ctx);
    }
}

impl<L: L0Api + 'static> Handler<Wake> for BridgeSubmitter<L> {
    type Result = ();
    fn handle(&mut self, _: Wake, ctx: &mut Context<Self>) {
        self.kick(ctx);
    }
}

impl<L: L0Api + 'static> Handler<Settle> for BridgeSubmitter<L> {
    type Result = ResponseFuture<u64>;
    fn handle(&mut self, msg: Settle, _: &mut Context<Self>) -> Self::Result {
        let inner = self.inner.clone();
        let deps = self.deps.clone();
        Box::pin(async move {
            let deadline = tokio::time::Instant::now() + msg.within;
            loop {
                let left = unsettled(&deps.storage);
                if left == 0 || tokio::time::Instant::now() >= deadline {
                    return left;
                }
                let next = match step(inner.clone()).await {
                    Ok(r) => {
                        record(&deps, &r);
                        r.next_in.unwrap_or(Duration::from_millis(50))
                    }
                    Err(_) => STORAGE_RETRY,
                };
                tokio::time::sleep_until(
                    (tokio::time::Instant::now()
                        + next.clamp(Duration::from_millis(10), Duration::from_millis(200)))
                    .min(deadline),
                )
                .await;
            }
        })
    }
}

impl<L: L0Api + 'static> Handler<Heartbeat> for BridgeSubmitter<L> {
    type Result = ();
    fn handle(&mut self, _: Heartbeat, _: &mut Context<Self>) {}
}

#[cfg(any(test, feature = "test-hooks"))]
impl<L: L0Api + 'static> Handler<crate::supervisor::TestHook> for BridgeSubmitter<L> {
    type Result = ();
    fn handle(&mut self, hook: crate::supervisor::TestHook, _: &mut Context<Self>) {
        crate::supervisor::apply_test_hook("BridgeSubmitter", hook);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use tokio::sync::watch;

    use super::*;
    use crate::bridge::bridge_tests::{
        check_anchors, commit_empty_blocks, fake_l0, stager_config, submitter_config,
    };
    use crate::bridge::codec::L0Key;
    use crate::bridge_stager::{BridgeStager, Flush, StagerDeps};
    use crate::chain::Head;
    use crate::supervisor::{ChildSpec, InjectFault, Supervisor, SupervisorConfig, TestHook};
    use crate::testkit::CHAIN;

    async fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ok() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            actix::clock::sleep(Duration::from_millis(20)).await;
        }
    }

    fn restarts(m: &NodeMetrics, actor: &str, reason: &str) -> u64 {
        m.actor_restarts
            .get_or_create(&vec![
                ("actor".to_string(), actor.to_string()),
                ("reason".to_string(), reason.to_string()),
            ])
            .get()
    }

    /// Commits `n` blocks and publishes the head, as the block producer does.
    fn commit(storage: &Storage, head: &watch::Sender<Head>, n: u64) {
        head.send_replace(commit_empty_blocks(storage, n));
    }

    #[test]
    fn a_hung_submitter_is_replaced_and_slow_l0_calls_do_not_block_heartbeats() {
        let sys = System::new();
        sys.block_on(async {
            let storage = Arc::new(Storage::in_memory(CHAIN).unwrap());
            let (head_tx, head_rx) = watch::channel(Head {
                height: 0,
                hash: storage.head().unwrap().hash(),
                timestamp_ms: 0,
            });
            let (l0, make_l0) = fake_l0();
            l0.set_auto_execute(false);
            let (metrics, stats) = (NodeMetrics::default(), Arc::new(NodeStats::default()));
            let shared = Arc::new(BridgeShared::new("http://fake/v3"));
            let stager_deps = StagerDeps {
                storage: storage.clone(),
                key: Arc::new(L0Key::from_seed([9; 32])),
                config: stager_config(3, Duration::from_millis(10)),
                make_l0: make_l0.clone(),
                head: head_rx,
                shared: shared.clone(),
                metrics: metrics.clone(),
                stats: stats.clone(),
            };
            let submitter_deps = SubmitterDeps {
                storage: storage.clone(),
                config: submitter_config(2, Duration::from_millis(20)),
                make_l0,
                shared: shared.clone(),
                metrics: metrics.clone(),
                stats: stats.clone(),
            };
            let stager = ChildSpec::start("bridge_stager", move || {
                BridgeStager::new(stager_deps.clone())
            });
            let stager_slot = stager.slot();
            let built = Arc::new(std::sync::atomic::AtomicU32::new(0));
            let b = built.clone();
            let submitter = ChildSpec::start("bridge_submitter", move || {
                b.fetch_add(1, Ordering::SeqCst);
                BridgeSubmitter::new(submitter_deps.clone())
            });
            let sup = Supervisor::new(
                vec![Box::new(stager), Box::new(submitter)],
                SupervisorConfig {
                    // Generous for a loaded test machine (a whole suite runs beside this
                    // test): only the injected hang and the slow L0 exceed it, by far.
                    heartbeat_interval: Duration::from_millis(100),
                    heartbeat_timeout: Duration::from_millis(400),
                    max_restarts: 10,
                    restart_window: Duration::from_secs(60),
                },
                metrics.clone(),
                stats.clone(),
            )
            .start();

            commit(&storage, &head_tx, 6);
            wait_for("two batches in the L0's mempool", || l0.mempool_len() == 2).await;

            // A hung submitter thread: replaced; the new one resumes from the outbox.
            assert!(
                sup.send(InjectFault {
                    actor: "bridge_submitter".into(),
                    hook: TestHook::Hang(Duration::from_secs(2)),
                })
                .await
                .unwrap()
            );
            wait_for("the submitter restart", || {
                restarts(&metrics, "bridge_submitter", "stuck") == 1
            })
            .await;
            wait_for("a second submitter built", || {
                built.load(Ordering::SeqCst) == 2
            })
            .await;

            // An L0 that takes longer than a heartbeat deadline to answer every call: the
            // actors keep answering heartbeats (no further restart) while it is slow.
            l0.set_hang(Some(Duration::from_millis(800)));
            commit(&storage, &head_tx, 3);
            actix::clock::sleep(Duration::from_millis(2400)).await;
            l0.set_hang(None);
            l0.set_auto_execute(true);
            l0.execute(false);
            commit(&storage, &head_tx, 4);
            stager_slot.get().send(Flush).await.unwrap().unwrap();
            let deadline = Instant::now() + Duration::from_secs(20);
            while storage.bridge_stats().unwrap().backlog_blocks != 0 {
                assert!(
                    Instant::now() < deadline,
                    "not anchored: {:?} {:?} {l0:?} {:?}",
                    storage.bridge_stats().unwrap(),
                    storage.outbox_rows().unwrap(),
                    shared.last_error()
                );
                actix::clock::sleep(Duration::from_millis(20)).await;
            }
            check_anchors(&storage, &l0);
            assert_eq!(
                restarts(&metrics, "bridge_submitter", "stuck")
                    + restarts(&metrics, "bridge_stager", "stuck"),
                1,
                "slow L0 calls must not look like a stuck actor"
            );
            let sent = l0.submitted();
            let mut unique = sent.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(sent.len(), unique.len(), "no transaction accepted twice");
            assert_eq!(stats.bridge_backlog.load(Ordering::Relaxed), 0);
            assert!(
                metrics.bridge_errors.get() > 0,
                "the slow L0 counted as errors"
            );
            assert!(shared.last_error().is_some());
            System::current().stop();
        });
    }
}
