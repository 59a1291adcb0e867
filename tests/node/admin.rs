//! The admin listener (`admin_addr`) on a real node: the actor list shows every actor of the
//! role, an operator restart replaces one exactly as the supervisor would (counted as
//! `reason="operator"`, logged at WARN), the chain keeps going and nothing is lost or done
//! twice, also for the bridge against `accumen devnet-l0`; unknown names are 404 with the list;
//! and the `accumen admin` CLI prints the same.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use accumen::client::HttpClient;
use serde_json::{Value, json};

use crate::bridge::{BridgeYaml, check_anchors, page_key_file};
use crate::devnet::{DATA, L0};
use crate::harness::*;
use crate::supervision::assert_chain_intact;

fn admin(node: &TestNode) -> HttpClient {
    HttpClient::new(&node.admin).unwrap()
}

fn actors(node: &TestNode) -> Vec<Value> {
    let (code, v) = admin(node).get("/admin/actors").unwrap();
    assert_eq!(code, 200, "{v}");
    v["actors"].as_array().unwrap().clone()
}

fn names(list: &[Value]) -> Vec<String> {
    list.iter()
        .map(|a| a["name"].as_str().unwrap().to_string())
        .collect()
}

/// Waits until every actor has answered a heartbeat since its last (re)start.
fn wait_all_running(node: &TestNode) -> Vec<Value> {
    wait_for("every actor running", Duration::from_secs(20), || {
        let list = actors(node);
        list.iter().all(|a| a["state"] == "running").then_some(list)
    })
}

/// An operator restart of `name`; returns its answer after the new incarnation is running.
fn restart(node: &TestNode, name: &str) -> Value {
    let started = std::time::Instant::now();
    let (code, v) = admin(node)
        .post(&format!("/admin/actors/{name}/restart"), &json!(null))
        .unwrap();
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["restarted"]["name"], name);
    assert_eq!(v["restarted"]["last_restart_reason"], "operator");
    wait_all_running(node);
    eprintln!(
        "{name}: restarted and running again in {:?}",
        started.elapsed()
    );
    v
}

fn operator_restarts(node: &TestNode, actor: &str) -> Option<u64> {
    let needle = format!("accumen_actor_restarts_total{{actor=\"{actor}\",reason=\"operator\"}} ");
    node.metrics_text()
        .lines()
        .find_map(|l| l.strip_prefix(&needle).map(|v| v.trim().parse().unwrap()))
}

fn accumen_admin(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("ACCUMEN_ADMIN")
        .output()
        .unwrap()
}

#[test]
fn operator_restarts_of_executor_and_mempool_mid_load_lose_and_double_nothing() {
    let node = TestNode::start("");
    let list = wait_all_running(&node);
    assert_eq!(names(&list), ["mempool", "executor", "block_producer"]);
    for a in &list {
        assert_eq!(a["incarnation"], 0, "{a}");
        assert!(a["last_heartbeat_ms_ago"].is_u64(), "{a}");
        assert_eq!(
            operator_restarts(&node, a["name"].as_str().unwrap()),
            Some(0)
        );
    }
    // The API listener does not serve admin routes.
    assert_eq!(node.get("/admin/actors").0, 404);

    let mut s = Sender::new(60);
    let counter = deploy(&node, &mut s, fixture("counter"));

    // Load: increments submitted back to back from another thread while the actors restart.
    // A refused submission (the mempool between incarnations) is retried with the same tx, so
    // nonces stay contiguous and every increment is acknowledged exactly once.
    let stop = Arc::new(AtomicBool::new(false));
    let loader = {
        let (stop, api) = (stop.clone(), node.api.clone());
        std::thread::spawn(move || {
            let client = HttpClient::new(&api).unwrap();
            let mut hashes = Vec::new();
            while !stop.load(Ordering::Relaxed) || hashes.len() < 20 {
                let tx = serde_json::to_value(s.call(counter, "increment", &[])).unwrap();
                let hash = wait_for("the tx accepted", Duration::from_secs(20), || {
                    let (code, v) = client.post("/v1/tx", &tx).unwrap();
                    (code == 202).then(|| v["tx_hash"].as_str().unwrap().to_string())
                });
                hashes.push(hash);
            }
            (hashes, s)
        })
    };
    let before = node.height();
    restart(&node, "executor");
    restart(&node, "mempool");
    let after = restart(&node, "executor");
    assert_eq!(after["restarted"]["incarnation"], 2);
    stop.store(true, Ordering::Relaxed);
    let (hashes, mut s) = loader.join().unwrap();

    // Every acknowledged increment included once: the next one reads n + 1.
    for h in &hashes {
        let v = node.wait_included(h);
        assert_eq!(v["receipt"]["status"], "success", "{v}");
    }
    let last = submit_ok(&node, &s.call(counter, "increment", &[]));
    let v = node.wait_included(&last);
    let expected = hashes.len() as u64 + 1;
    eprintln!("{} increments submitted across the restarts", hashes.len());
    assert_eq!(v["receipt"]["output"], hex::encode(expected.to_le_bytes()));
    assert!(node.height() > before);
    assert_chain_intact(&node);

    assert_eq!(operator_restarts(&node, "executor"), Some(2));
    assert_eq!(operator_restarts(&node, "mempool"), Some(1));
    assert_eq!(operator_restarts(&node, "block_producer"), Some(0));
    let line = node.find_log("actor restarted by operator").unwrap();
    assert!(line.contains("WARN") && line.contains("executor"), "{line}");

    // Unknown name: 404 naming every actor; nothing restarted.
    let (code, v) = admin(&node)
        .post("/admin/actors/bridge_submitter/restart", &json!(null))
        .unwrap();
    assert_eq!(code, 404, "{v}");
    assert_eq!(error_code(&v), "unknown_actor");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("mempool, executor, block_producer"), "{msg}");
    // Wrong method, unknown route: JSON 404, nothing restarted.
    assert_eq!(
        admin(&node)
            .get("/admin/actors/executor/restart")
            .unwrap()
            .0,
        404
    );
    assert_eq!(
        admin(&node).post("/admin/actors", &json!(null)).unwrap().0,
        404
    );
    let list = actors(&node);
    let incarnations: Vec<_> = list.iter().map(|a| a["incarnation"].clone()).collect();
    assert_eq!(incarnations, [json!(1), json!(2), json!(0)]);
}

#[test]
fn the_admin_cli_lists_restarts_and_says_when_the_node_is_not_running() {
    let node = TestNode::start("");
    wait_all_running(&node);
    let out = accumen_admin(&["admin", "--admin", &node.admin, "actors"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        names(v["actors"].as_array().unwrap()),
        ["mempool", "executor", "block_producer"]
    );

    // --config: the node's own file names the listener (the harness bound it to port 0, so a
    // copy names the port it got).
    let config = node.dir.join("admin.yaml");
    let port = node.admin.rsplit(':').next().unwrap();
    std::fs::write(&config, format!("admin_addr: \"127.0.0.1:{port}\"\n")).unwrap();
    let config = config.to_str().unwrap();
    let out = accumen_admin(&["admin", "restart", "block_producer", "--config", config]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["restarted"]["name"], "block_producer");
    assert_eq!(v["restarted"]["incarnation"], 1);
    wait_all_running(&node);
    assert_eq!(operator_restarts(&node, "block_producer"), Some(1));

    let out = accumen_admin(&["--config", config, "admin", "restart", "nobody"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot restart nobody") && err.contains("mempool, executor, block_producer"),
        "{err}"
    );

    let out = accumen_admin(&["admin", "--admin", "http://127.0.0.1:1", "actors"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is it running?"), "{err}");
}

#[test]
fn restarting_the_bridge_actors_anchors_every_block_exactly_once() {
    let l0 = L0::start(None, &[]);
    let tmp = tempfile::tempdir().unwrap();
    let key_file = page_key_file(tmp.path());
    let config = BridgeYaml::new(&l0.v3, &key_file).yaml();
    let mut node = TestNode::start_in(tmp.path(), &config, &[]);
    let list = wait_all_running(&node);
    assert_eq!(
        names(&list),
        [
            "mempool",
            "executor",
            "block_producer",
            "bridge_stager",
            "bridge_submitter"
        ]
    );
    let anchored = |node: &TestNode| {
        node.get("/bridge/stats").1["last_anchored_height"]
            .as_u64()
            .unwrap()
    };
    wait_for("5 blocks anchored", Duration::from_secs(60), || {
        (anchored(&node) >= 5).then_some(())
    });
    restart(&node, "bridge_submitter");
    restart(&node, "bridge_stager");
    restart(&node, "bridge_submitter");
    let target = node.height() + 5;
    wait_for(
        "anchoring past the restarts",
        Duration::from_secs(60),
        || (anchored(&node) >= target).then_some(()),
    );
    assert_eq!(operator_restarts(&node, "bridge_submitter"), Some(2));
    assert_eq!(operator_restarts(&node, "bridge_stager"), Some(1));

    // Each height exactly once, in order, each anchor matching the node's blocks.
    let next = check_anchors(&node, &l0, DATA);
    assert!(next > target, "the L0 holds every anchored height");
    assert_eq!(node.terminate().code(), Some(0), "{}", node.logs());
}

/// The admin listener has no authentication: a node told to bind it beyond loopback refuses to
/// start (exit 2, naming the key and the opt-in), and starts with the opt-in.
#[test]
fn a_non_loopback_admin_addr_is_refused_unless_opted_in() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("node.yaml");
    let base =
        base_config(tmp.path()).replace("admin_addr: \"127.0.0.1:0\"", "admin_addr: \"0.0.0.0:0\"");
    std::fs::write(&config, &base).unwrap();
    let out = Command::new(BIN)
        .arg("--role=sequencer")
        .arg(format!("--config={}", config.display()))
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("admin_addr 0.0.0.0:0 is not a loopback address")
            && err.contains("admin_allow_non_loopback"),
        "{err}"
    );

    let node = TestNode::start_in(
        tmp.path(),
        "admin_addr: \"0.0.0.0:0\"\nadmin_allow_non_loopback: true",
        &[],
    );
    let port = node.admin.rsplit(':').next().unwrap();
    let client = HttpClient::new(&format!("http://127.0.0.1:{port}")).unwrap();
    assert_eq!(client.get("/admin/actors").unwrap().0, 200);
}
