//! What the bridge's two actors share at run time, outside storage: the wake-ups between them
//! and the last error for `/bridge/stats`. Everything durable is in storage (`storage::outbox`);
//! this is rebuilt empty at start and survives actor restarts (the node holds it, the actors'
//! factories clone the `Arc`).
//!
//! Invariants: the wake-ups are `tokio::sync::Notify` (a permit is kept if nobody waits, so a
//! wake-up sent while the other actor restarts is not lost); reading the status never blocks on
//! an actor. [`forward_wakeups`] is the one way an actor turns such a signal (or the committed
//! head's watch) into messages to itself.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use actix::{Actor, AsyncContext, Context, Handler, Message};
use tokio::sync::{Notify, watch};

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

/// Something an actor waits on to be woken: the next wake-up, or `false` once it can never come
/// again (the sender is gone).
pub trait WakeSource: 'static {
    fn wake(&mut self) -> impl Future<Output = bool>;
}

/// The committed head: a wake-up per change (changes while nobody looked coalesce into one).
impl<T: 'static> WakeSource for watch::Receiver<T> {
    async fn wake(&mut self) -> bool {
        self.changed().await.is_ok()
    }
}

/// One of [`BridgeShared`]'s signals, e.g. `SharedSignal(shared, |s| &s.outbox_changed)`.
#[derive(Debug, Clone)]
pub struct SharedSignal(pub Arc<BridgeShared>, pub fn(&BridgeShared) -> &Notify);

impl WakeSource for SharedSignal {
    async fn wake(&mut self) -> bool {
        (self.1)(&self.0).notified().await;
        true
    }
}

/// Spawns on the actor's own context a loop that sends it `make()` at every wake-up of
/// `source`. The loop is part of this incarnation: it stops with the actor, and a restarted
/// incarnation (whose `started` calls this again) gets its own, so no wake-up is delivered
/// twice. `do_send`, not `send`: the actor is the loop's owner, waiting for its answer could
/// only deadlock, and a wake-up carries no data, so the mailbox capacity need not apply.
pub fn forward_wakeups<A, M>(
    ctx: &mut Context<A>,
    mut source: impl WakeSource,
    make: impl Fn() -> M + 'static,
) where
    A: Actor<Context = Context<A>> + Handler<M>,
    M: Message + Send + 'static,
    M::Result: Send,
{
    let addr = ctx.address();
    ctx.spawn(actix::fut::wrap_future(async move {
        while source.wake().await {
            addr.do_send(make());
        }
    }));
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
