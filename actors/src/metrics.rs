//! Node metrics and live statistics shared by the actors and the HTTP API.
//!
//! Two views of the same facts: `NodeMetrics` holds the Prometheus series under the names the
//! operations runbook lists (they are a contract with dashboards and alerts, so they never change
//! name), and `NodeStats` holds plain atomics that `/stats`, `/health` and friends read without
//! sending a message to any actor, so those endpoints stay cheap and answer even while an actor
//! is stuck. Counters are registered without their `_total` suffix: prometheus-client adds it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of `accumen_actor_restarts_total`.
pub type RestartLabels = Vec<(String, String)>;
/// Labels of `accumen_api_refused_total` (`reason`).
pub type RefusalLabels = Vec<(String, String)>;

/// Every Prometheus series of the node.
#[derive(Debug, Clone)]
pub struct NodeMetrics {
    pub blocks_produced: Counter,
    pub transactions_processed: Counter,
    /// Seconds the last block took from selection to commit (a gauge, so the runbook's
    /// `accumen_block_production_duration_seconds > 30` alert works as written).
    pub block_production_duration: Gauge<f64, AtomicU64>,
    pub transaction_execution_duration: Histogram,
    pub gas_used: Counter,
    pub mempool_size: Gauge,
    pub mempool_accounts: Gauge,
    /// Canonical encoded bytes of the pending transactions (bounded by `mempool.max_bytes`).
    pub mempool_bytes: Gauge,
    /// Transactions the mempool evicted, by reason (`EvictReason::label`).
    pub mempool_evictions: Family<Vec<(String, String)>, Counter>,
    pub execution_queue_depth: Gauge,
    pub memory_usage_bytes: Gauge,
    /// OS threads of the process (the runbook's name predates the Rust implementation).
    pub goroutines: Gauge,
    pub transaction_failures: Counter,
    pub execution_errors: Counter,
    /// Bridge failures of any kind (an L0 call that failed, a batch that could not be staged).
    pub bridge_errors: Counter,
    /// Committed heights not anchored on the L0 yet (`head - last anchored`).
    pub bridge_backlog_blocks: Gauge,
    /// Every height up to this one is anchored on the L0.
    pub bridge_anchored_height: Gauge,
    /// Every height up to this one is staged (signed into the outbox) or anchored.
    pub bridge_staged_height: Gauge,
    /// Anchor submissions by outcome: `delivered`, `failed` (final, to be re-signed),
    /// `retried` (retryable error, same bytes sent again later), `already_known`.
    pub bridge_submissions: Family<Vec<(String, String)>, Counter>,
    pub api_errors: Counter,
    /// API requests and connections refused by a resource limit, by reason (the error code, or
    /// `idle_timeout` for a connection the API closed).
    pub api_refused: Family<RefusalLabels, Counter>,
    /// Open connections on the API listener.
    pub api_connections: Gauge,
    /// Request body bytes the API holds right now (bounded by `api.max_body_bytes_in_flight`).
    pub api_body_bytes_in_flight: Gauge,
    pub actor_restarts: Family<RestartLabels, Counter>,
    pub block_height: Gauge,
}

impl Default for NodeMetrics {
    fn default() -> Self {
        Self {
            blocks_produced: Counter::default(),
            transactions_processed: Counter::default(),
            block_production_duration: Gauge::default(),
            transaction_execution_duration: Histogram::new(exponential_buckets(0.00001, 4.0, 12)),
            gas_used: Counter::default(),
            mempool_size: Gauge::default(),
            mempool_accounts: Gauge::default(),
            mempool_bytes: Gauge::default(),
            mempool_evictions: Family::default(),
            execution_queue_depth: Gauge::default(),
            memory_usage_bytes: Gauge::default(),
            goroutines: Gauge::default(),
            transaction_failures: Counter::default(),
            execution_errors: Counter::default(),
            bridge_errors: Counter::default(),
            bridge_backlog_blocks: Gauge::default(),
            bridge_anchored_height: Gauge::default(),
            bridge_staged_height: Gauge::default(),
            bridge_submissions: Family::default(),
            api_errors: Counter::default(),
            api_refused: Family::default(),
            api_connections: Gauge::default(),
            api_body_bytes_in_flight: Gauge::default(),
            actor_restarts: Family::default(),
            block_height: Gauge::default(),
        }
    }
}

impl NodeMetrics {
    /// Registers every series under the `accumen_` prefix.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("accumen");
        r.register(
            "blocks_produced",
            "Total blocks produced",
            self.blocks_produced.clone(),
        );
        r.register(
            "transactions_processed",
            "Total transactions included in blocks",
            self.transactions_processed.clone(),
        );
        r.register(
            "block_production_duration_seconds",
            "Seconds the last block took from transaction selection to commit",
            self.block_production_duration.clone(),
        );
        r.register(
            "transaction_execution_duration_seconds",
            "Average execution time per transaction of each block, in seconds",
            self.transaction_execution_duration.clone(),
        );
        r.register(
            "gas_used",
            "Total gas consumed by included transactions",
            self.gas_used.clone(),
        );
        r.register(
            "mempool_size",
            "Pending transactions in the mempool",
            self.mempool_size.clone(),
        );
        r.register(
            "mempool_accounts",
            "Distinct senders with pending transactions",
            self.mempool_accounts.clone(),
        );
        r.register(
            "mempool_bytes",
            "Encoded bytes of the pending transactions in the mempool",
            self.mempool_bytes.clone(),
        );
        r.register(
            "mempool_evictions",
            "Pending transactions the mempool evicted, by reason",
            self.mempool_evictions.clone(),
        );
        r.register(
            "execution_queue_depth",
            "Execution requests waiting for the executor",
            self.execution_queue_depth.clone(),
        );
        r.register(
            "memory_usage_bytes",
            "Resident memory of the node process in bytes",
            self.memory_usage_bytes.clone(),
        );
        r.register(
            "goroutines",
            "OS threads of the node process (name kept from the runbook)",
            self.goroutines.clone(),
        );
        r.register(
            "transaction_failures",
            "Included transactions whose receipt is not success",
            self.transaction_failures.clone(),
        );
        r.register(
            "execution_errors",
            "Node-side execution errors (timeouts, engine or state failures)",
            self.execution_errors.clone(),
        );
        r.register(
            "bridge_errors",
            "Bridge submission errors",
            self.bridge_errors.clone(),
        );
        r.register(
            "bridge_backlog_blocks",
            "Committed blocks not anchored on the L0 yet",
            self.bridge_backlog_blocks.clone(),
        );
        r.register(
            "bridge_anchored_height",
            "Every height up to this one is anchored on the L0",
            self.bridge_anchored_height.clone(),
        );
        r.register(
            "bridge_staged_height",
            "Every height up to this one is signed into the outbox or anchored",
            self.bridge_staged_height.clone(),
        );
        r.register(
            "bridge_submissions",
            "Anchor submissions to the L0, by outcome",
            self.bridge_submissions.clone(),
        );
        r.register(
            "api_errors",
            "API requests answered with an error",
            self.api_errors.clone(),
        );
        r.register(
            "api_refused",
            "API requests and connections refused by a resource limit, by reason",
            self.api_refused.clone(),
        );
        r.register(
            "api_connections",
            "Open connections on the API listener",
            self.api_connections.clone(),
        );
        r.register(
            "api_body_bytes_in_flight",
            "Request body bytes held by the API right now",
            self.api_body_bytes_in_flight.clone(),
        );
        r.register(
            "actor_restarts",
            "Actors restarted by the supervisor (stuck, dead) or by an operator, by actor and reason",
            self.actor_restarts.clone(),
        );
        r.register(
            "block_height",
            "Height of the chain head",
            self.block_height.clone(),
        );
    }

    /// Counts one restart of `actor` for `reason` (`supervisor::RESTART_REASONS`).
    pub fn restarted(&self, actor: &str, reason: &str) {
        self.actor_restarts
            .get_or_create(&vec![
                ("actor".to_string(), actor.to_string()),
                ("reason".to_string(), reason.to_string()),
            ])
            .inc();
    }

    /// Counts one API refusal for `reason`.
    pub fn count_api_refusal(&self, reason: &str) {
        self.api_refused
            .get_or_create(&vec![("reason".to_string(), reason.to_string())])
            .inc();
    }

    /// Exports `accumen_api_refused_total` at 0 for each reason, so the first refusal already
    /// shows as an increase to alerts.
    pub fn init_api_refusals(&self, reasons: &[&str]) {
        for reason in reasons {
            let _ = self
                .api_refused
                .get_or_create(&vec![("reason".to_string(), (*reason).to_string())]);
        }
    }

    /// Counts `n` mempool evictions for `reason`.
    pub fn evicted(&self, reason: &str, n: u64) {
        self.mempool_evictions
            .get_or_create(&vec![("reason".to_string(), reason.to_string())])
            .inc_by(n);
    }

    /// Refreshes the process gauges from /proc (Linux); leaves them as they are elsewhere.
    pub fn refresh_process(&self) {
        if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
            for line in status.lines() {
                let mut parts = line.split_whitespace();
                match (parts.next(), parts.next()) {
                    (Some("VmRSS:"), Some(kb)) => {
                        if let Ok(kb) = kb.parse::<i64>() {
                            self.memory_usage_bytes.set(kb * 1024);
                        }
                    }
                    (Some("Threads:"), Some(n)) => {
                        if let Ok(n) = n.parse::<i64>() {
                            self.goroutines.set(n);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Live numbers for `/stats` and the component stats endpoints.
#[derive(Debug)]
pub struct NodeStats {
    pub started: Instant,
    pub running: AtomicBool,
    pub block_height: AtomicU64,
    pub blocks_produced: AtomicU64,
    pub txs_processed: AtomicU64,
    pub tx_failures: AtomicU64,
    pub gas_used: AtomicU64,
    pub mempool_size: AtomicU64,
    pub mempool_accounts: AtomicU64,
    pub mempool_admitted: AtomicU64,
    pub mempool_rejected: AtomicU64,
    pub mempool_expired: AtomicU64,
    pub exec_blocks: AtomicU64,
    pub exec_txs: AtomicU64,
    pub exec_dropped: AtomicU64,
    pub exec_timeouts: AtomicU64,
    pub exec_queue_depth: AtomicU64,
    pub exec_queries: AtomicU64,
    pub last_block_ms: AtomicU64,
    pub last_exec_ms: AtomicU64,
    pub last_block_at_ms: AtomicU64,
    /// Unix ms of the supervisor's last completed heartbeat round (health and watchdog).
    pub last_heartbeat_ms: AtomicU64,
    /// The store's health, the same one `Storage::health` returns (the node links them at
    /// start): failed for good after an I/O error such as a full disk. `/health`, the systemd
    /// watchdog, admission and the block producer read it.
    pub storage_health: Arc<crate::storage::StorageHealth>,
    /// Committed blocks not anchored yet, as the bridge last saw them (health reads it when the
    /// bridge is on; 0 otherwise).
    pub bridge_backlog: AtomicU64,
}

impl Default for NodeStats {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            running: AtomicBool::new(false),
            block_height: AtomicU64::new(0),
            blocks_produced: AtomicU64::new(0),
            txs_processed: AtomicU64::new(0),
            tx_failures: AtomicU64::new(0),
            gas_used: AtomicU64::new(0),
            mempool_size: AtomicU64::new(0),
            mempool_accounts: AtomicU64::new(0),
            mempool_admitted: AtomicU64::new(0),
            mempool_rejected: AtomicU64::new(0),
            mempool_expired: AtomicU64::new(0),
            exec_blocks: AtomicU64::new(0),
            exec_txs: AtomicU64::new(0),
            exec_dropped: AtomicU64::new(0),
            exec_timeouts: AtomicU64::new(0),
            exec_queue_depth: AtomicU64::new(0),
            exec_queries: AtomicU64::new(0),
            last_block_ms: AtomicU64::new(0),
            last_exec_ms: AtomicU64::new(0),
            last_block_at_ms: AtomicU64::new(0),
            last_heartbeat_ms: AtomicU64::new(0),
            storage_health: Arc::default(),
            bridge_backlog: AtomicU64::new(0),
        }
    }
}

impl NodeStats {
    /// Reads a counter.
    pub fn get(v: &AtomicU64) -> u64 {
        v.load(Ordering::Relaxed)
    }
}

/// Milliseconds since the Unix epoch (0 if the clock is before 1970).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
