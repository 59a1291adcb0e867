//! The operator surface the runbook promises: every metric name it lists is exported, the
//! restart series exist at 0 before any restart (so `increase()` alerts fire on the first one),
//! the stats endpoints carry the runbook's fields, and the health listener answers.

use crate::harness::*;

/// The seed runbook's metric names, plus the supervisor's.
const RUNBOOK_METRICS: &[&str] = &[
    "accumen_blocks_produced_total",
    "accumen_transactions_processed_total",
    "accumen_block_production_duration_seconds",
    "accumen_transaction_execution_duration_seconds",
    "accumen_gas_used_total",
    "accumen_mempool_size",
    "accumen_mempool_accounts",
    "accumen_execution_queue_depth",
    "accumen_memory_usage_bytes",
    "accumen_goroutines",
    "accumen_transaction_failures_total",
    "accumen_execution_errors_total",
    "accumen_bridge_errors_total",
    "accumen_api_errors_total",
    "accumen_actor_restarts_total",
];

#[test]
fn runbook_metrics_and_stats_fields_are_there() {
    let node = TestNode::start("");
    let text = node.metrics_text();
    for name in RUNBOOK_METRICS {
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "metric {name} missing from /metrics:\n{text}"
        );
    }
    for actor in ["mempool", "executor", "block_producer"] {
        for reason in ["stuck", "dead"] {
            let series =
                format!("accumen_actor_restarts_total{{actor=\"{actor}\",reason=\"{reason}\"}} 0");
            assert!(text.contains(&series), "{series} missing:\n{text}");
        }
    }
    let (code, stats) = node.get("/stats");
    assert_eq!(code, 200);
    for field in [
        "running",
        "block_height",
        "blocks_produced",
        "txs_processed",
        "uptime",
    ] {
        assert!(stats.get(field).is_some(), "/stats lacks {field}: {stats}");
    }
    assert!(stats["mempool_stats"].get("size").is_some());
    assert!(stats["mempool_stats"].get("accounts").is_some());
    let health = accumen::client::HttpClient::new(&node.health).unwrap();
    let (code, h) = health.get("/health").unwrap();
    assert_eq!(code, 200, "{h}");
    for field in ["status", "timestamp", "uptime", "version"] {
        assert!(h.get(field).is_some(), "/health lacks {field}: {h}");
    }
    assert_eq!(h["status"], "healthy");
    for path in ["/mempool/stats", "/execution/stats", "/bridge/stats"] {
        let (code, v) = node.get(path);
        assert_eq!(code, 200, "{path}: {v}");
    }
}
