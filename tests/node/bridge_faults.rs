//! The bridge against `accumen devnet-l0` through the faults of issue 8, each ending with the
//! same check: every height anchored exactly once, each anchor matching the node's blocks
//! (`bridge::check_anchors`).
//! - SIGKILL at a chosen point: between the outbox write and the send (the L0 refusing
//!   connections, so batches are staged and nothing is delivered), and between the send and the
//!   confirmation (the L0 hiding the status of delivered anchors, so they landed and the node
//!   does not know it); the restarted node resends nothing as a new transaction.
//! - The L0 refusing anchors (no credits, the node's key not on the page, no data account): the
//!   node keeps producing blocks, says why (`/bridge/stats` `last_error` naming the L0 status,
//!   the error and `failed` metrics, the runbook's `ERROR.*bridge.*failed` log line), and
//!   anchors the backlog once the L0 side is fixed, without a restart.
//! - A hung L0 (answers later than `bridge.l0.request_timeout`): retried, nothing lost or
//!   doubled, no supervisor restart of the bridge actors.
//! - SIGTERM with anchors pending on a hung L0: exit 0; the next start finishes anchoring.
//!
//! Every node here has `storage: persistent` (a restart continues the same chain) and small
//! batches, so each test runs in seconds.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use accumen_actors::bridge::codec::L0Key;
use accumen_actors::types::Keypair;
use serde_json::{Value, json};

use crate::bridge::{BridgeYaml, anchors_on, check_anchors};
use crate::devnet::{DATA, L0};
use crate::harness::*;

const WAIT: Duration = Duration::from_secs(60);
/// The key devnet-l0 puts on the page (`devnet::key`).
const PAGE_SEED: u8 = 11;

/// A devnet L0 and a node in a temp dir anchoring to it with the page key (1 s request
/// timeout), once its first anchors landed; `config` starts the same node again.
fn anchoring_node() -> (L0, tempfile::TempDir, String, TestNode) {
    let l0 = L0::start(None, &[]);
    let tmp = tempfile::tempdir().unwrap();
    let config = config(&l0, &key_file(tmp.path(), PAGE_SEED), DATA, "1s");
    let node = TestNode::start_in(tmp.path(), &config, &[]);
    wait_anchored(&node, 2, "the first anchors");
    (l0, tmp, config, node)
}

/// A key file for the seed `[seed; 32]` in `dir`.
fn key_file(dir: &Path, seed: u8) -> PathBuf {
    let path = dir.join(format!("l0-{seed}.key"));
    accumen::keyfile::create(&path, &Keypair::from_seed([seed; 32])).unwrap();
    path
}

fn config(l0: &L0, key_file: &Path, data: &str, request_timeout: &str) -> String {
    BridgeYaml::new(&l0.v3, key_file)
        .persistent()
        .data_account(data)
        .request_timeout(request_timeout)
        .yaml()
}

fn stats(node: &TestNode) -> Value {
    let (code, v) = node.get("/bridge/stats");
    assert_eq!(code, 200, "{v}");
    v
}

fn num(v: &Value, field: &str) -> u64 {
    v[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} missing: {v}"))
}

/// The value of one metric series (`name{labels}` as exported), 0 when absent.
fn metric(node: &TestNode, series: &str) -> f64 {
    node.metrics_text()
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// Supervisor restarts of the bridge actors, all reasons.
fn bridge_restarts(node: &TestNode) -> f64 {
    node.metrics_text()
        .lines()
        .filter(|l| l.starts_with("accumen_actor_restarts_total{") && l.contains("bridge"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

const ERRORS: &str = "accumen_bridge_errors_total";
const FAILED: &str = "accumen_bridge_submissions_total{outcome=\"failed\"}";
const RETRIED: &str = "accumen_bridge_submissions_total{outcome=\"retried\"}";

/// A stderr line matching the runbook's `ERROR.*bridge.*failed`.
fn error_line(node: &TestNode) -> Option<String> {
    node.logs()
        .lines()
        .find(|l| {
            l.find("ERROR")
                .map(|i| &l[i..])
                .and_then(|r| r.find("bridge").map(|j| &r[j..]))
                .is_some_and(|r| r.contains("failed"))
        })
        .map(str::to_string)
}

fn wait_anchored(node: &TestNode, height: u64, what: &str) {
    wait_for(what, WAIT, || {
        (num(&stats(node), "last_anchored_height") >= height).then_some(())
    });
}

/// Waits until every block up to the current head is anchored, then checks the L0's data
/// account `data` holds each height once, matching the node's blocks.
fn drained_and_checked(node: &TestNode, l0: &L0, data: &str) {
    let target = node.height();
    wait_anchored(node, target, "the backlog anchored");
    let next = check_anchors(node, l0, data);
    assert!(next > target, "{:?}", anchors_on(l0, data));
}

fn keeps_producing(node: &TestNode) {
    let h = node.height();
    wait_for("more blocks", WAIT, || {
        (node.height() >= h + 3).then_some(())
    });
}

#[test]
fn sigkill_between_outbox_write_and_send_then_restart_anchors_each_height_once() {
    let (l0, tmp, config, mut node) = anchoring_node();

    // Connections refused: batches are signed and stored, none can be delivered.
    l0.control("/faults", json!({"refuse": true}));
    let s = wait_for("batches staged while the L0 refuses", WAIT, || {
        let s = stats(&node);
        (s["last_error"].is_string()
            && num(&s, "last_staged_height") >= num(&s, "last_anchored_height") + 4)
            .then_some(s)
    });
    let s2 = wait_for("another batch staged", WAIT, || {
        let s2 = stats(&node);
        (num(&s2, "last_staged_height") > num(&s, "last_staged_height")).then_some(s2)
    });
    assert_eq!(
        num(&s2, "delivered_total"),
        num(&s, "delivered_total"),
        "delivered while refused: {s} {s2}"
    );
    node.kill();

    l0.control("/faults", json!({"refuse": false}));
    let node = TestNode::start_in(tmp.path(), &config, &[]);
    drained_and_checked(&node, &l0, DATA);
}

#[test]
fn sigkill_between_send_and_confirmation_then_restart_resigns_nothing_that_landed() {
    let (l0, tmp, config, mut node) = anchoring_node();

    // Delivered anchors answer `notFound` to status queries: they land, the node cannot
    // confirm them.
    l0.control("/faults", json!({"hide_ms": 600_000}));
    let s = wait_for(
        "an anchor on the L0 the node has not confirmed",
        WAIT,
        || {
            let s = stats(&node);
            let landed = anchors_on(&l0, DATA).last().map_or(0, |a| a.last_height);
            (num(&s, "in_flight") > 0 && landed > num(&s, "last_anchored_height")).then_some(s)
        },
    );
    node.kill();

    // Still hidden for a moment after the restart (counted from each delivery): the restarted
    // node finds the landed anchors unknown and resends their stored bytes, which the L0
    // refuses; it must wait for their status, not re-sign them.
    l0.control("/faults", json!({"hide_ms": 3_000}));
    let node = TestNode::start_in(tmp.path(), &config, &[]);
    drained_and_checked(&node, &l0, DATA);
    let after = stats(&node);
    assert_eq!(
        num(&after, "failed_total"),
        num(&s, "failed_total"),
        "a batch was re-signed: {s} {after}\n{}",
        node.logs()
    );
}

/// What the L0 refuses, and how an operator fixes it there.
enum Refusal {
    Credits,
    WrongKey,
    MissingAccount,
}

fn refused_then_fixed_without_restart(refusal: Refusal) {
    let l0 = L0::start(None, &[]);
    let tmp = tempfile::tempdir().unwrap();
    let other = "acc://accumen.acme/anchors-2";
    let (seed, data, status) = match refusal {
        Refusal::Credits => (PAGE_SEED, DATA, "insufficientCredits"),
        Refusal::WrongKey => (12, DATA, "unauthorized"),
        Refusal::MissingAccount => (PAGE_SEED, other, "notFound"),
    };
    let config = config(&l0, &key_file(tmp.path(), seed), data, "1s");
    let mut node = TestNode::start_in(tmp.path(), &config, &[]);
    if let Refusal::Credits = refusal {
        wait_anchored(&node, 2, "the first anchors");
        l0.control("/page/credits", json!({"credits": 0}));
    }
    let (errors, failed) = (metric(&node, ERRORS), metric(&node, FAILED));

    let s = wait_for("the refusal in /bridge/stats", WAIT, || {
        let s = stats(&node);
        s["last_error"]
            .as_str()
            .is_some_and(|e| e.contains(status))
            .then_some(s)
    });
    keeps_producing(&node);
    assert!(num(&stats(&node), "failed_total") > 0, "{s}");
    assert!(metric(&node, ERRORS) > errors, "{}", node.metrics_text());
    assert!(metric(&node, FAILED) > failed, "{}", node.metrics_text());
    assert!(error_line(&node).is_some(), "{}", node.logs());
    let failed_total = num(&stats(&node), "failed_total");

    match refusal {
        Refusal::Credits => {
            l0.control("/page/credits", json!({"credits": 1_000_000}));
        }
        Refusal::WrongKey => {
            let public = L0Key::from_seed([seed; 32]).public().to_hex();
            l0.control(
                "/page/keys",
                json!({"public_key": public, "bump_version": false}),
            );
        }
        Refusal::MissingAccount => {
            l0.control("/data-accounts", json!({ "url": other }));
        }
    }
    drained_and_checked(&node, &l0, data);
    // The same process throughout (no restart needed), and once fixed at most the anchors in
    // flight at the fix fail (one per worker): the re-signed ones do not make others fail.
    assert!(node.child.try_wait().unwrap().is_none());
    let after = num(&stats(&node), "failed_total");
    eprintln!("{status}: failed_total {failed_total} at the fix, {after} after");
    assert!(after <= failed_total + 2, "{failed_total} then {after}");
}

#[test]
fn no_credits_is_reported_and_anchoring_resumes_once_credited() {
    refused_then_fixed_without_restart(Refusal::Credits);
}

#[test]
fn a_key_not_on_the_page_is_reported_and_anchoring_resumes_once_added() {
    refused_then_fixed_without_restart(Refusal::WrongKey);
}

#[test]
fn a_missing_data_account_is_reported_and_anchoring_resumes_once_created() {
    refused_then_fixed_without_restart(Refusal::MissingAccount);
}

#[test]
fn a_hung_l0_is_retried_without_loss_duplicate_or_restart() {
    let l0 = L0::start(None, &[]);
    let tmp = tempfile::tempdir().unwrap();
    let config = config(&l0, &key_file(tmp.path(), PAGE_SEED), DATA, "300ms");
    let node = TestNode::start_in(tmp.path(), &config, &[]);
    wait_anchored(&node, 2, "the first anchors");
    let (errors, retried) = (metric(&node, ERRORS), metric(&node, RETRIED));

    // Every answer comes 2 s late, well after the node's 300 ms timeout.
    l0.control("/faults", json!({"delay_ms": 2_000}));
    wait_for("timeouts counted and retried", WAIT, || {
        (metric(&node, RETRIED) >= retried + 3.0).then_some(())
    });
    keeps_producing(&node);
    assert!(metric(&node, ERRORS) >= errors + 3.0);
    assert!(stats(&node)["last_error"].is_string());

    l0.control("/faults", json!({"delay_ms": 0}));
    drained_and_checked(&node, &l0, DATA);
    assert_eq!(bridge_restarts(&node), 0.0, "{}", node.metrics_text());
}

#[test]
fn sigterm_with_anchors_pending_exits_0_and_the_next_start_finishes() {
    let (l0, tmp, config, mut node) = anchoring_node();

    // Anchors landed and unconfirmed, and an L0 that answers nothing in time: the stop's bridge
    // flush cannot finish and must give up within its budget.
    l0.control("/faults", json!({"hide_ms": 600_000}));
    wait_for("anchors in flight", WAIT, || {
        let s = stats(&node);
        (num(&s, "in_flight") > 0 && num(&s, "backlog_blocks") >= 4).then_some(())
    });
    l0.control("/faults", json!({"delay_ms": 5_000}));
    let t = Instant::now();
    let status = node.terminate();
    eprintln!("stopped in {:?} with anchors pending", t.elapsed());
    assert_eq!(status.code(), Some(0), "{}", node.logs());

    l0.control("/faults", json!({"delay_ms": 0, "hide_ms": 0}));
    let node = TestNode::start_in(tmp.path(), &config, &[]);
    drained_and_checked(&node, &l0, DATA);
}
