//! The node's conversation with its service manager: signals in; READY, STOPPING, WATCHDOG and
//! `STATUS=` out; and the exit after a failed store.
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

use super::EXIT_STORAGE_FAILED;
use crate::api::AppState;

/// How long a node with a failed store stays up before exiting: long enough for a health probe
/// on a 10 s period to see why, short next to systemd's `WatchdogSec=30`. Exiting at all (rather
/// than waiting for the watchdog) gets the node restarted at once, also where no watchdog runs.
const STORAGE_FAILURE_GRACE: Duration = Duration::from_secs(10);

/// How often the node checks whether the store has failed.
const STORAGE_CHECK_INTERVAL: Duration = Duration::from_millis(250);

/// How often a `STATUS=` line is sent.
const STATUS_INTERVAL: Duration = Duration::from_secs(5);

/// SIGTERM and SIGINT streams, registered at once: a signal that arrives before anyone awaits
/// them is still delivered (registration replaces the default action, which would kill the
/// process without a clean stop).
pub(super) struct Signals(Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>);

pub(super) fn install_signals() -> Signals {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(term), Ok(int)) => Signals(Some((term, int))),
        _ => {
            tracing::error!("cannot install signal handlers; the node can only be killed");
            Signals(None)
        }
    }
}

impl Signals {
    /// No signal streams (what is left behind once they are awaited).
    pub(super) fn none() -> Self {
        Signals(None)
    }

    /// The name of the first signal received; never returns without streams.
    pub(super) async fn wait(self) -> &'static str {
        match self.0 {
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
