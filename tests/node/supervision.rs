//! Supervision of the running node: a hung or panicking actor is rebuilt, production resumes,
//! nothing committed is lost, every restart is counted, and a restart storm exits non-zero.
//! Faults are injected through the `/debug/actors/{name}/{hang|panic}` hook, which only a binary
//! built with the `test-hooks` feature has (the test build turns it on; see Cargo.toml).

use std::time::Duration;

use serde_json::json;

use crate::harness::*;

/// Restarts of `actor` for any reason: a panicked actor is usually seen "dead", but a heartbeat
/// queued just before the panic may time out first and count it as "stuck".
fn any_restarts(node: &TestNode, actor: &str) -> u64 {
    restarts(node, actor, "dead") + restarts(node, actor, "stuck")
}

fn restarts(node: &TestNode, actor: &str, reason: &str) -> u64 {
    let needle = format!("accumen_actor_restarts_total{{actor=\"{actor}\",reason=\"{reason}\"}} ");
    node.metrics_text()
        .lines()
        .find_map(|l| l.strip_prefix(&needle).map(|v| v.trim().parse().unwrap()))
        .unwrap_or(0)
}

/// Every block from 1 to the head is there and links to its parent.
pub(crate) fn assert_chain_intact(node: &TestNode) {
    let height = node.height();
    let mut parent = node.get("/v1/blocks/0").1["hash"].clone();
    for h in 1..=height {
        let (code, b) = node.get(&format!("/v1/blocks/{h}"));
        assert_eq!(code, 200, "block {h} missing");
        assert_eq!(
            b["parent_hash"], parent,
            "block {h} does not link to its parent"
        );
        parent = b["hash"].clone();
    }
}

fn inject(node: &TestNode, actor: &str, fault: &str) {
    let (code, v) = node.post(
        &format!("/debug/actors/{actor}/{fault}?ms=3000"),
        &json!({}),
    );
    assert_eq!(code, 202, "{v}");
}

#[test]
fn a_hung_block_producer_is_replaced_and_blocks_resume() {
    let node = TestNode::start("");
    let mut s = Sender::new(40);
    let counter = deploy(&node, &mut s, fixture("counter"));
    inject(&node, "block_producer", "hang");
    wait_for("the stuck restart", Duration::from_secs(20), || {
        (restarts(&node, "block_producer", "stuck") == 1).then_some(())
    });
    let before = node.height();
    wait_for("blocks after the restart", Duration::from_secs(20), || {
        (node.height() > before + 2).then_some(())
    });
    let hash = submit_ok(&node, &s.call(counter, "increment", &[]));
    let v = node.wait_included(&hash);
    assert_eq!(v["receipt"]["output"], hex::encode(1u64.to_le_bytes()));
    assert_chain_intact(&node);
    let line = node.find_log("actor restarted").unwrap();
    assert!(
        line.contains("WARN") && line.contains("block_producer") && line.contains("stuck"),
        "{line}"
    );
    let (code, h) = node.get("/health");
    assert_eq!(code, 200, "{h}");
}

#[test]
fn panicking_actors_are_replaced_and_keep_their_state() {
    let node = TestNode::start("");
    let mut s = Sender::new(41);
    let counter = deploy(&node, &mut s, fixture("counter"));
    inject(&node, "executor", "panic");
    wait_for("the executor restart", Duration::from_secs(20), || {
        (any_restarts(&node, "executor") == 1).then_some(())
    });
    let first = submit_ok(&node, &s.call(counter, "increment", &[]));
    node.wait_included(&first);

    inject(&node, "mempool", "panic");
    wait_for("the mempool restart", Duration::from_secs(20), || {
        (any_restarts(&node, "mempool") == 1).then_some(())
    });
    let second = submit_ok(&node, &s.call(counter, "increment", &[]));
    let v = node.wait_included(&second);
    assert_eq!(v["receipt"]["output"], hex::encode(2u64.to_le_bytes()));
    assert_chain_intact(&node);
}

#[test]
fn a_restart_storm_exits_non_zero() {
    let mut node = TestNode::start(
        "supervisor:\n  heartbeat_interval: \"100ms\"\n  heartbeat_timeout: \"1s\"\n  max_restarts: 1\n  restart_window: \"1m\"",
    );
    inject(&node, "executor", "panic");
    wait_for("the first restart", Duration::from_secs(20), || {
        (any_restarts(&node, "executor") == 1).then_some(())
    });
    inject(&node, "executor", "panic");
    let status = wait_for("the process to exit", Duration::from_secs(20), || {
        node.child.try_wait().unwrap()
    });
    assert_eq!(status.code(), Some(70), "{}", node.logs());
    assert!(node.find_log("restart storm").is_some());
}
