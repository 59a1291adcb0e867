//! The L0 bridge in a whole node, without an L0: with the bridge on and its L0 unreachable,
//! blocks keep coming, the backlog grows, `/bridge/stats`, the error metric and the runbook's
//! log line say why, `/health` is degraded (200) past `bridge.max_backlog`, and SIGTERM still
//! stops the node cleanly. With the bridge off, `/bridge/stats` shows true numbers. (Anchoring
//! against a local L0 is tested once `accumen devnet-l0` is merged.)

use std::process::Command;
use std::time::Duration;

use crate::harness::*;

fn bridge_config(key_file: &std::path::Path) -> String {
    format!(
        r#"bridge:
  enable_bridge: true
  max_backlog: 3
  stager:
    batch_size: 1
    flush_interval: "100ms"
  l0:
    endpoint: "http://127.0.0.1:1/v3"
    data_account: "acc://accumen.acme/anchors"
    key_page: "acc://accumen.acme/book/1"
    key_file: {:?}
    request_timeout: "500ms"
"#,
        key_file.display().to_string()
    )
}

#[test]
fn an_unreachable_l0_degrades_the_node_but_blocks_keep_coming() {
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("l0.key");
    let out = Command::new(BIN)
        .args(["key", "generate", "--out", key.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let mut node = TestNode::start_in(tmp.path(), &bridge_config(&key), &[]);

    let stats = wait_for("a growing backlog", Duration::from_secs(30), || {
        let (code, v) = node.get("/bridge/stats");
        assert_eq!(code, 200, "{v}");
        (v["backlog_blocks"].as_u64().unwrap_or(0) >= 5 && v["last_error"].is_string()).then_some(v)
    });
    assert_eq!(stats["enabled"], true, "{stats}");
    assert_eq!(stats["endpoint"], "http://127.0.0.1:1/v3", "{stats}");
    assert_eq!(stats["last_anchored_height"], 0, "{stats}");
    for field in [
        "last_staged_height",
        "in_flight",
        "delivered_total",
        "failed_total",
    ] {
        assert!(
            stats[field].is_u64(),
            "/bridge/stats lacks {field}: {stats}"
        );
    }
    assert!(
        stats["last_error"].as_str().unwrap().contains("L0"),
        "{stats}"
    );

    // Blocks keep coming while nothing is anchored.
    let h = node.height();
    wait_for("more blocks", Duration::from_secs(10), || {
        (node.height() > h + 2).then_some(())
    });

    // Degraded, not unhealthy: 200, the bridge check failing, the backlog as the reason.
    let health = accumen::client::HttpClient::new(&node.health).unwrap();
    let (code, v) = health.get("/health").unwrap();
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["status"], "degraded", "{v}");
    assert_eq!(v["checks"]["bridge"], false, "{v}");
    assert!(
        v["reason"].as_str().unwrap().contains("bridge backlog"),
        "{v}"
    );

    // The error metric and the runbook's log pattern `ERROR.*bridge.*failed`.
    let text = node.metrics_text();
    let errors: f64 = text
        .lines()
        .find(|l| l.starts_with("accumen_bridge_errors_total "))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0);
    assert!(errors >= 1.0, "{text}");
    assert!(text.contains("accumen_bridge_backlog_blocks "), "{text}");
    let logs = node.logs();
    assert!(
        logs.lines()
            .any(|l| l.contains("ERROR") && l.contains("bridge") && l.contains("failed")),
        "{logs}"
    );

    // The stop order still finishes (the bridge's flush is bounded) and exits 0.
    let status = node.terminate();
    assert_eq!(status.code(), Some(0), "{}", node.logs());
}

#[test]
fn with_the_bridge_off_bridge_stats_still_shows_true_numbers() {
    let node = TestNode::start("");
    wait_for("a few blocks", Duration::from_secs(20), || {
        (node.height() >= 3).then_some(())
    });
    let (code, v) = node.get("/bridge/stats");
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["enabled"], false, "{v}");
    assert!(v["endpoint"].is_null() && v["last_error"].is_null(), "{v}");
    assert_eq!(v["last_anchored_height"], 0, "{v}");
    let backlog = v["backlog_blocks"].as_u64().unwrap();
    assert!(
        backlog >= 3 && backlog == v["head_height"].as_u64().unwrap(),
        "{v}"
    );
    let health = accumen::client::HttpClient::new(&node.health).unwrap();
    let (code, h) = health.get("/health").unwrap();
    assert_eq!((code, h["status"].as_str()), (200, Some("healthy")), "{h}");
    assert!(h["checks"].get("bridge").is_none(), "{h}");
}
