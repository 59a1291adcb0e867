//! What the bridge's two actors share at run time, outside storage: the wake-ups between them
//! and the last error for `/bridge/stats`. Everything durable is in storage (`storage::outbox`);
//! this is rebuilt empty at start and survives actor restarts (the node holds it, the actors'
//! factories clone the `Arc`).
//!
//! Invariants: the wake-ups are `tokio::sync::Notify` (a permit is kept if nobody waits, so a
//! wake-up sent while the other actor restarts is not lost); reading the status never blocks on
//! an actor.

use std::sync::Mutex;
use std::sync::atomic::Ordering;

use tokio::sync::Notify;

use crate::metrics::{NodeMetrics, NodeStats};
use crate::storage::{BridgeStats, Storage, StorageError};

/// The bridge's shared run-time status.
#[derive(Debug, Default)]
pub struct BridgeShared {
    /// The L0 endpoint, as configured (shown by `/bridge/stats`).
    pub endpoint: String,
    last_error: Mutex<Option<String>>,
    /// The stager stored or re-signed rows: the submitter has work.
    pub outbox_changed: Notify,
    /// The submitter marked a row failed: the stager must re-sign it.
    pub resign_needed: Notify,
}

impl BridgeShared {
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            ..Self::default()
        }
    }

    /// The last failure either actor saw (`None`: none since start).
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn set_last_error(&self, e: impl Into<String>) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.into());
    }
}

/// Reads the bridge's numbers from storage and publishes them: the gauges
/// (`bridge_backlog_blocks`, `bridge_anchored_height`, `bridge_staged_height`) and the backlog
/// the health rule reads (`NodeStats::bridge_backlog`). Called after every stage and delivery.
pub fn publish_stats(
    storage: &Storage,
    metrics: &NodeMetrics,
    stats: &NodeStats,
) -> Result<BridgeStats, StorageError> {
    let s = storage.bridge_stats()?;
    let g = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    metrics.bridge_backlog_blocks.set(g(s.backlog_blocks));
    metrics
        .bridge_anchored_height
        .set(g(s.last_anchored_height));
    metrics.bridge_staged_height.set(g(s.last_staged_height));
    stats
        .bridge_backlog
        .store(s.backlog_blocks, Ordering::Relaxed);
    Ok(s)
}
