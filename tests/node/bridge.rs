//! The L0 bridge in a whole node, without an L0: with the bridge on and its L0 unreachable,
//! blocks keep coming, the backlog grows, `/bridge/stats`, the error metric and the runbook's
//! log line say why, `/health` is degraded (200) past `bridge.max_backlog`, and SIGTERM still
//! stops the node cleanly. With the bridge off, `/bridge/stats` shows true numbers. Against
//! `accumen devnet-l0`: every block anchored exactly once, through an outage, each anchor
//! matching the node's blocks.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use accumen_actors::bridge::codec::L0Key;
use accumen_actors::bridge::json::Message;
use accumen_actors::bridge::{AccUrl, Anchor, L0Api};
use accumen_actors::types::{Hash, Keypair, merkle_root};

use crate::devnet::{DATA, L0, PAGE, key, rt};
use crate::harness::*;

/// The YAML of a node whose bridge anchors to `endpoint`, signing with `key_file`: the one
/// place the bridge tests (here, `bridge_faults`, `admin`) write a bridge configuration.
/// Defaults: memory storage, `max_backlog` 1000, 2 submitter workers, batches of 2 blocks
/// flushed after 200 ms, the devnet's data account and key page, a 1 s request timeout.
#[derive(Debug, Clone)]
pub(crate) struct BridgeYaml {
    endpoint: String,
    key_file: PathBuf,
    persistent: bool,
    max_backlog: u64,
    batch_size: u64,
    flush_interval: String,
    data_account: String,
    request_timeout: String,
}

impl BridgeYaml {
    pub(crate) fn new(endpoint: &str, key_file: &Path) -> Self {
        BridgeYaml {
            endpoint: endpoint.to_string(),
            key_file: key_file.to_path_buf(),
            persistent: false,
            max_backlog: 1000,
            batch_size: 2,
            flush_interval: "200ms".into(),
            data_account: DATA.into(),
            request_timeout: "1s".into(),
        }
    }

    /// `storage: persistent`: a restart continues the same chain.
    pub(crate) fn persistent(mut self) -> Self {
        self.persistent = true;
        self
    }

    pub(crate) fn max_backlog(mut self, blocks: u64) -> Self {
        self.max_backlog = blocks;
        self
    }

    pub(crate) fn batches(mut self, size: u64, flush_interval: &str) -> Self {
        self.batch_size = size;
        self.flush_interval = flush_interval.into();
        self
    }

    pub(crate) fn data_account(mut self, url: &str) -> Self {
        self.data_account = url.into();
        self
    }

    pub(crate) fn request_timeout(mut self, timeout: &str) -> Self {
        self.request_timeout = timeout.into();
        self
    }

    pub(crate) fn yaml(&self) -> String {
        let storage = if self.persistent {
            "storage: persistent\n"
        } else {
            ""
        };
        format!(
            r#"{storage}bridge:
  enable_bridge: true
  max_backlog: {}
  submitter:
    workers: 2
  stager:
    batch_size: {}
    flush_interval: "{}"
  l0:
    endpoint: "{}"
    data_account: "{}"
    key_page: "{PAGE}"
    key_file: {:?}
    request_timeout: "{}"
"#,
            self.max_backlog,
            self.batch_size,
            self.flush_interval,
            self.endpoint,
            self.data_account,
            self.key_file.display().to_string(),
            self.request_timeout,
        )
    }
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
    let config = BridgeYaml::new("http://127.0.0.1:1/v3", &key)
        .max_backlog(3)
        .batches(1, "100ms")
        .request_timeout("500ms")
        .yaml();
    let mut node = TestNode::start_in(tmp.path(), &config, &[]);

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
    for outcome in ["delivered", "failed", "already_known"] {
        let series = format!("accumen_bridge_submissions_total{{outcome=\"{outcome}\"}} 0");
        assert!(text.contains(&series), "{series} missing:\n{text}");
    }
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

/// Every anchor in the L0's data account `data`, parsed, lowest first.
/// Writes `dir/l0.key` holding the key devnet-l0 puts on the page (`devnet::key`, seed 11).
pub(crate) fn page_key_file(dir: &Path) -> PathBuf {
    let key_file = dir.join("l0.key");
    accumen::keyfile::create(&key_file, &Keypair::from_seed([11; 32])).unwrap();
    assert_eq!(
        L0Key::from_keypair(&Keypair::from_seed([11; 32]))
            .unwrap()
            .public(),
        key().public()
    );
    key_file
}

pub(crate) fn anchors_on(l0: &L0, data: &str) -> Vec<Anchor> {
    let rt = rt();
    let client = l0.client();
    let account = AccUrl::parse(data).unwrap();
    let mut out = Vec::new();
    let mut start = 0;
    loop {
        let range = rt
            .block_on(client.query_data_range(&account, start, 100))
            .unwrap();
        for r in &range.records {
            let Some(Message::Transaction { transaction }) =
                r.value.as_ref().and_then(|v| v.message.as_ref())
            else {
                panic!("entry without its transaction: {r:?}");
            };
            let parts: Vec<&[u8]> = transaction
                .body
                .entry
                .data
                .iter()
                .map(|b| b.0.as_slice())
                .collect();
            out.push(Anchor::parse(&parts).unwrap());
        }
        start += range.records.len() as u64;
        if range.records.is_empty() || start >= range.total {
            break;
        }
    }
    out.sort_by_key(|a| a.first_height);
    out
}

/// The anchors in `data` on the L0 cover heights 1, 2, 3, … each exactly once (no gap, no
/// duplicate), in `node`'s chain, each matching the node's blocks (hash of the last block, Merkle
/// root of the block hashes, state root). Returns one above the highest anchored height.
pub(crate) fn check_anchors(node: &TestNode, l0: &L0, data: &str) -> u64 {
    let anchors = anchors_on(l0, data);
    let mut next = 1;
    for a in &anchors {
        assert_eq!(a.first_height, next, "gap or duplicate: {anchors:?}");
        assert_eq!(a.chain_id, CHAIN);
        let hashes: Vec<Hash> = (a.first_height..=a.last_height)
            .map(|h| {
                let (code, b) = node.get(&format!("/v1/blocks/{h}"));
                assert_eq!(code, 200, "{b}");
                serde_json::from_value(b["hash"].clone()).unwrap()
            })
            .collect();
        assert_eq!(a.blocks_root, merkle_root(&hashes), "{a:?}");
        assert_eq!(Some(&a.last_block_hash), hashes.last());
        let (_, last) = node.get(&format!("/v1/blocks/{}", a.last_height));
        assert_eq!(
            serde_json::to_value(a.state_root).unwrap(),
            last["state_root"]
        );
        next = a.last_height + 1;
    }
    next
}

#[test]
fn every_block_is_anchored_once_on_devnet_l0_through_an_outage() {
    let l0 = L0::start(None, &[]);
    let tmp = tempfile::tempdir().unwrap();
    let key_file = page_key_file(tmp.path());
    let config = BridgeYaml::new(&l0.v3, &key_file)
        .batches(3, "300ms")
        .yaml();
    let mut node = TestNode::start_in(tmp.path(), &config, &[]);
    let stats = |node: &TestNode| node.get("/bridge/stats").1;
    wait_for("10 blocks anchored", Duration::from_secs(60), || {
        (stats(&node)["last_anchored_height"].as_u64().unwrap() >= 10).then_some(())
    });

    // The L0 goes away: blocks keep coming, the backlog grows, errors are counted.
    l0.control("/faults", serde_json::json!({"refuse": true}));
    let down_at = node.height();
    wait_for(
        "a backlog while the L0 is down",
        Duration::from_secs(30),
        || {
            let s = stats(&node);
            (node.height() >= down_at + 10 && s["backlog_blocks"].as_u64().unwrap() >= 10)
                .then_some(())
        },
    );
    assert!(stats(&node)["last_error"].is_string());
    // It comes back: everything drains.
    l0.control("/faults", serde_json::json!({"refuse": false}));
    let target = node.height();
    wait_for("the backlog drained", Duration::from_secs(60), || {
        (stats(&node)["last_anchored_height"].as_u64().unwrap() >= target).then_some(())
    });

    // Each height exactly once, in order, each anchor matching the node's blocks.
    let anchored = stats(&node)["last_anchored_height"].as_u64().unwrap();
    let next = check_anchors(&node, &l0, DATA);
    assert!(next > anchored, "the L0 holds every anchored height");
    let text = node.metrics_text();
    assert!(
        text.contains("accumen_bridge_submissions_total{outcome=\"delivered\"}"),
        "{text}"
    );
    assert_eq!(node.terminate().code(), Some(0), "{}", node.logs());
}

#[test]
fn a_sigkilled_node_resumes_from_its_outbox_without_gap_or_duplicate() {
    // Anchors stay in flight (sent, not confirmed) up to a confirmation interval (1 s): the node
    // is killed while some are.
    let l0 = L0::start(None, &[]);
    let tmp = tempfile::tempdir().unwrap();
    let key_file = page_key_file(tmp.path());
    let config = BridgeYaml::new(&l0.v3, &key_file).persistent().yaml();
    let stats = |node: &TestNode| node.get("/bridge/stats").1;
    let mut node = TestNode::start_in(tmp.path(), &config, &[]);
    for round in 0..2 {
        wait_for("anchors in flight", Duration::from_secs(60), || {
            let s = stats(&node);
            (s["last_anchored_height"].as_u64().unwrap() >= 2 + round * 4
                && s["in_flight"].as_u64().unwrap() > 0)
                .then_some(())
        });
        node.kill();
        node = TestNode::start_in(tmp.path(), &config, &[]);
    }
    let target = node.height();
    wait_for(
        "every block anchored after the restarts",
        Duration::from_secs(60),
        || (stats(&node)["last_anchored_height"].as_u64().unwrap() >= target).then_some(()),
    );
    let next = check_anchors(&node, &l0, DATA);
    assert!(next > target, "{:?}", anchors_on(&l0, DATA));
}
