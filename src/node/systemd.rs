//! The node's conversation with its service manager: signals in; READY, STOPPING, WATCHDOG and
//! `STATUS=` out; and the exit after a failed store.
//!
//! Signals: SIGTERM and SIGINT stop the node (the stop order in `node`); SIGHUP
//! (`systemctl reload`, `ExecReload=/bin/kill -HUP $MAINPID`) rereads the API's TLS certificate
//! and key and the bearer token file ([`spawn_reload`]). A reload never stops the node: a bad
//! new file is logged at ERROR and the old material stays in use.
//!
//! Every health judgement here is the node's one health rule (`AppState::verdict`, i.e.
//! `accumen_actors::health`), the same one `/health` answers with: the watchdog is petted only
//! while no problem is one a restart fixes (failed store, stalled supervisor), and the `STATUS=`
//! line is the verdict's status line. All of it is a no-op where no service manager listens
//! (`NOTIFY_SOCKET` unset).

use std::sync::atomic::Ordering;
use std::time::Duration;

use accumen_actors::health::Problem;
use actix_web::dev::ServerHandle;
use actix_web::web;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::signal::unix::Signal;

use super::EXIT_STORAGE_FAILED;
use crate::api::{AppState, RELOAD_TLS, RELOAD_TOKENS, Security};

/// How long a node with a failed store stays up before exiting: long enough for a health probe
/// on a 10 s period to see why, short next to systemd's `WatchdogSec=30`. Exiting at all (rather
/// than waiting for the watchdog) gets the node restarted at once, also where no watchdog runs.
const STORAGE_FAILURE_GRACE: Duration = Duration::from_secs(10);

/// How often the node checks whether the store has failed.
const STORAGE_CHECK_INTERVAL: Duration = Duration::from_millis(250);

/// How often a `STATUS=` line is sent.
const STATUS_INTERVAL: Duration = Duration::from_secs(5);

/// SIGTERM, SIGINT and SIGHUP streams, registered at once: a signal that arrives before anyone
/// awaits them is still delivered (registration replaces the default action, which for all
/// three would kill the process without a clean stop).
pub(super) struct Signals {
    stop: Option<(Signal, Signal)>,
    hangup: Option<Signal>,
}

pub(super) fn install_signals() -> Signals {
    use tokio::signal::unix::{SignalKind, signal};
    let stop = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(term), Ok(int)) => Some((term, int)),
        _ => {
            tracing::error!("cannot install signal handlers; the node can only be killed");
            None
        }
    };
    let hangup = match signal(SignalKind::hangup()) {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::error!(error = %e, "cannot install the SIGHUP handler; reload needs a restart");
            None
        }
    };
    Signals { stop, hangup }
}

impl Signals {
    /// No signal streams (what is left behind once they are awaited).
    pub(super) fn none() -> Self {
        Signals {
            stop: None,
            hangup: None,
        }
    }

    /// The SIGHUP stream, for [`spawn_reload`].
    pub(super) fn take_hangup(&mut self) -> Option<Signal> {
        self.hangup.take()
    }

    /// The name of the first stop signal received; never returns without streams.
    pub(super) async fn wait(self) -> &'static str {
        match self.stop {
            Some((mut term, mut int)) => tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            },
            None => std::future::pending().await,
        }
    }
}

/// READY=1 with the first status line.
pub(super) fn ready(state: &AppState) {
    let status = state.verdict().status_line();
    let _ = sd_notify::notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(&status),
    ]);
}

/// Sends the health rule's status line every `STATUS_INTERVAL` (`systemctl status` shows it).
pub(super) fn spawn_status(state: web::Data<AppState>) {
    actix::spawn(async move {
        let mut tick = tokio::time::interval(STATUS_INTERVAL);
        loop {
            tick.tick().await;
            let status = state.verdict().status_line();
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Status(&status)]);
        }
    });
}

/// Waits for the store to fail; then tells systemd why, and after `STORAGE_FAILURE_GRACE` stops
/// the listeners and exits `EXIT_STORAGE_FAILED` (see the node's module comment).
pub(super) fn spawn_storage_monitor(state: web::Data<AppState>, handles: [ServerHandle; 4]) {
    actix::spawn(async move {
        let stats = &state.stats;
        let mut tick = tokio::time::interval(STORAGE_CHECK_INTERVAL);
        let reason = loop {
            tick.tick().await;
            if let Some(reason) = stats.storage_health.failure() {
                break reason.to_owned();
            }
        };
        tracing::error!(
            reason = %reason,
            exit_code = EXIT_STORAGE_FAILED,
            grace_s = STORAGE_FAILURE_GRACE.as_secs(),
            "storage failed: refusing transactions, no more blocks; exiting so the node restarts \
             and reopens storage (free disk space first)"
        );
        let status = state.verdict().status_line();
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Status(&status)]);
        tokio::time::sleep(STORAGE_FAILURE_GRACE).await;
        stats.running.store(false, Ordering::Relaxed);
        for h in handles {
            h.stop(true).await;
        }
        actix::System::current().stop_with_code(EXIT_STORAGE_FAILED);
    });
}

/// Sends WATCHDOG=1 at half the systemd period while the health rule finds no problem that a
/// restart fixes: a wedged node, or one whose storage failed, stops petting the watchdog and
/// systemd restarts it.
pub(super) fn spawn_watchdog(state: web::Data<AppState>, period: Duration) {
    actix::spawn(async move {
        let mut tick = tokio::time::interval(period / 2);
        loop {
            tick.tick().await;
            let verdict = state.verdict();
            if verdict.watchdog_ok() {
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
                continue;
            }
            // A failed store is said once by the storage monitor; a stall is said here.
            if verdict
                .problems
                .iter()
                .any(|p| matches!(p, Problem::StorageFailed(_)))
            {
                continue;
            }
            for p in &verdict.problems {
                if let Problem::SupervisorStalled { for_ms } = p {
                    tracing::error!(
                        heartbeat_age_ms = for_ms,
                        "supervisor stalled: not pinging the systemd watchdog"
                    );
                }
            }
        }
    });
}

/// `accumen_config_reloads_total{what,result}`: SIGHUP reloads by what was reloaded (`tls`,
/// `tokens`) and how it went (`ok`, `error`). Every pair is exported at 0 from start-up, so an
/// alert on `result="error"` works before the first failure.
#[derive(Debug, Clone, Default)]
pub(crate) struct ReloadMetrics(Family<Vec<(String, String)>, Counter>);

impl ReloadMetrics {
    pub(crate) fn register(&self, registry: &mut Registry) {
        for what in [RELOAD_TLS, RELOAD_TOKENS] {
            for result in ["ok", "error"] {
                let _ = self.0.get_or_create(&labels(what, result));
            }
        }
        registry.sub_registry_with_prefix("accumen").register(
            "config_reloads",
            "SIGHUP reloads of the API's TLS certificate and bearer token file, by result",
            self.0.clone(),
        );
    }

    fn count(&self, what: &str, result: &str) {
        self.0.get_or_create(&labels(what, result)).inc();
    }
}

fn labels(what: &str, result: &str) -> Vec<(String, String)> {
    vec![
        ("what".to_owned(), what.to_owned()),
        ("result".to_owned(), result.to_owned()),
    ]
}

/// On every SIGHUP, rereads the configured TLS pair and token file (on the blocking pool: file
/// reads), logs what was reloaded (INFO) or why not (ERROR, old material kept) and counts it.
/// Signals that arrive during a reload coalesce into one more reload, so a burst of SIGHUPs
/// costs at most two.
pub(super) fn spawn_reload(security: Security, metrics: ReloadMetrics, hangup: Option<Signal>) {
    let Some(mut hangup) = hangup else { return };
    actix::spawn(async move {
        while hangup.recv().await.is_some() {
            let s = security.clone();
            let results = match actix_web::rt::task::spawn_blocking(move || s.reload()).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "SIGHUP: reload failed; nothing changed");
                    continue;
                }
            };
            if results.is_empty() {
                tracing::info!(
                    "SIGHUP: nothing to reload (neither api.tls nor api.auth.token_file is set; \
                     other settings take effect on restart)"
                );
            }
            for (what, result) in results {
                match result {
                    Ok(summary) => {
                        metrics.count(what, "ok");
                        tracing::info!(what, %summary, "SIGHUP: reloaded");
                    }
                    Err(e) => {
                        metrics.count(what, "error");
                        tracing::error!(
                            what,
                            error = %format!("{e:#}"),
                            "SIGHUP: reload failed; keeping the previous {what}"
                        );
                    }
                }
            }
        }
    });
}
