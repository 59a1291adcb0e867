//! Recording a committed block: the one place that turns "this block is in storage" into what
//! the rest of the node sees: the height and counters in `NodeStats`, the Prometheus metrics,
//! the `block committed` INFO line operators grep for, and the committed head published to
//! whoever subscribes (a bridge, a follower's long-poll).
//!
//! Invariants:
//! - Called once per committed block, after `Storage::commit_block` returned, by whichever role
//!   committed it (the sequencer's producer today, the follower's sync later), so both roles
//!   report blocks alike.
//! - Subscribers see heads in commit order and always the latest one (a `tokio::sync::watch`
//!   channel: a slow subscriber skips to the newest head, it never holds the producer back).
//! - Nothing here decides anything about the chain: it only reports.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::watch;

use crate::metrics::{NodeMetrics, NodeStats, now_ms};
use crate::types::{Block, BlockHeader, Hash, Receipt};

/// The committed head as subscribers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub height: u64,
    pub hash: Hash,
    pub timestamp_ms: u64,
}

impl Head {
    pub fn of(header: &BlockHeader) -> Head {
        Head {
            height: header.height,
            hash: header.hash(),
            timestamp_ms: header.timestamp_ms,
        }
    }
}

/// One committed block, as [`Recorder::record`] reports it.
#[derive(Debug, Clone, Copy)]
pub struct Committed<'a> {
    pub block: &'a Block,
    pub receipts: &'a [Receipt],
    /// Sum of the receipts' gas.
    pub gas_used: u64,
    /// Transactions left out of the block (0 for a verified block).
    pub dropped: usize,
    /// How long the block took, from selection (or receipt) to commit.
    pub elapsed: Duration,
}

/// Records committed blocks; shared by the actors that commit them.
#[derive(Debug)]
pub struct Recorder {
    stats: Arc<NodeStats>,
    metrics: NodeMetrics,
    head: watch::Sender<Head>,
}

impl Recorder {
    /// A recorder whose head starts at `head` (the stored head when the node starts); the
    /// height is shown at once, without counting a block.
    pub fn new(stats: Arc<NodeStats>, metrics: NodeMetrics, head: &BlockHeader) -> Recorder {
        let recorder = Recorder {
            stats,
            metrics,
            head: watch::Sender::new(Head::of(head)),
        };
        recorder.show_height(head.height);
        recorder
    }

    /// Shows the stored head `header` without counting a block (an actor that restarted reads
    /// the head from storage, which may be ahead of what was last recorded); never goes back.
    pub fn resume(&self, header: &BlockHeader) {
        // Only forward: a late reader of an older head must not move the shown height back.
        if header.height < self.head.borrow().height {
            return;
        }
        self.show_height(header.height);
        self.head.send_if_modified(|h| {
            let newer = header.height > h.height;
            if newer {
                *h = Head::of(header);
            }
            newer
        });
    }

    /// The latest committed head.
    pub fn head(&self) -> Head {
        self.head.borrow().clone()
    }

    /// A receiver of every newly committed head (it sees the current one as already seen).
    pub fn subscribe(&self) -> watch::Receiver<Head> {
        self.head.subscribe()
    }

    fn show_height(&self, height: u64) {
        self.stats.block_height.store(height, Ordering::Relaxed);
        self.metrics.block_height.set(height as i64);
    }

    /// Records one committed block: stats, metrics, the INFO line, and the new head for
    /// subscribers.
    pub fn record(&self, c: Committed<'_>) {
        let header = &c.block.header;
        let n = c.block.txs.len() as u64;
        let failures = c.receipts.iter().filter(|r| !r.status.is_success()).count() as u64;
        let stats = &self.stats;
        self.show_height(header.height);
        stats.blocks_produced.fetch_add(1, Ordering::Relaxed);
        stats.txs_processed.fetch_add(n, Ordering::Relaxed);
        stats.tx_failures.fetch_add(failures, Ordering::Relaxed);
        stats.gas_used.fetch_add(c.gas_used, Ordering::Relaxed);
        stats
            .last_block_ms
            .store(c.elapsed.as_millis() as u64, Ordering::Relaxed);
        stats.last_block_at_ms.store(now_ms(), Ordering::Relaxed);
        let m = &self.metrics;
        m.blocks_produced.inc();
        m.transactions_processed.inc_by(n);
        m.transaction_failures.inc_by(failures);
        m.gas_used.inc_by(c.gas_used);
        m.block_production_duration.set(c.elapsed.as_secs_f64());
        // The runbook greps this line and its fields: keep both.
        tracing::info!(
            height = header.height,
            txs = n,
            dropped = c.dropped,
            gas = c.gas_used,
            ms = c.elapsed.as_millis() as u64,
            "block committed"
        );
        self.head.send_replace(Head::of(header));
    }
}
