//! Block-level attacks through the public API: rounds of maximum-gas loops from several keys
//! (a block's work is bounded by `MAX_BLOCK_GAS`, so blocks keep coming and an honest call gets
//! in), and calls that try to emit or write past the per-call caps (a clean receipt failure).
//!
//! The supervisor's heartbeat timeout is raised to 30 s here: a legal block of `MAX_BLOCK_GAS`
//! runs for about a second of one core, longer on a loaded test machine, and telling a busy
//! executor from a stuck one is the supervisor's own fix, tested with it.

use std::time::Duration;

use accumen_actors::types::SignedTx;
use serde_json::Value;

use crate::harness::*;

const CONFIG: &str = r#"execution:
  workers: 2
  gas_limit: 50000000
  timeout: "10s"
supervisor:
  heartbeat_interval: "100ms"
  heartbeat_timeout: "30s"
"#;

const MAX_GAS: u64 = 50_000_000;

fn submit_batch(node: &TestNode, txs: &[SignedTx]) -> Vec<String> {
    let (code, v) = node.post("/v1/txs", &json_txs(txs));
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["accepted"].as_u64(), Some(txs.len() as u64), "{v}");
    v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["tx_hash"].as_str().unwrap().to_string())
        .collect()
}

fn call_gas(s: &mut Sender, contract: accumen_actors::types::Address, gas: u64) -> SignedTx {
    s.sign(
        accumen_actors::types::Action::Call {
            contract,
            entry: "run".into(),
            args: accumen_actors::types::Bytes::default(),
        },
        gas,
    )
}

fn included(node: &TestNode, hash: &str) -> Option<Value> {
    let (code, v) = node.get(&format!("/v1/tx/{hash}"));
    (code == 200 && v["status"] == "included").then_some(v)
}

#[test]
fn max_gas_loops_from_many_keys_do_not_stop_blocks() {
    let mut node = TestNode::start(CONFIG);
    let mut deployer = Sender::new(120);
    let spin = deploy(&node, &mut deployer, fixture("loop"));
    let counter = deploy(&node, &mut deployer, fixture("counter"));
    let start = node.height();
    let mut attackers: Vec<Sender> = (121..127).map(Sender::new).collect();
    let mut honest = Sender::new(130);
    let mut attack = Vec::new();
    let mut honest_tx = None;
    for round in 0..3 {
        // 18 calls of 50M gas: nearly two full blocks of work per round.
        let txs: Vec<SignedTx> = attackers
            .iter_mut()
            .flat_map(|a| {
                (0..3)
                    .map(|_| call_gas(a, spin, MAX_GAS))
                    .collect::<Vec<_>>()
            })
            .collect();
        attack.extend(submit_batch(&node, &txs));
        if round == 0 {
            let h = node.height();
            honest_tx = Some((h, submit_ok(&node, &honest.call(counter, "increment", &[]))));
        }
    }
    let (submitted_at, honest_hash) = honest_tx.unwrap();
    let v = node.wait_included(&honest_hash);
    assert_eq!(v["receipt"]["status"], "success", "{v}");
    // Behind one round of the attack (18 × 50M gas) and nothing else: within a few blocks.
    let at = v["block_height"].as_u64().unwrap();
    assert!(
        at <= submitted_at + 4,
        "submitted at height {submitted_at}, included at {at}"
    );
    // Every attack call is executed in turn (out of gas at its limit): none is lost or
    // retried forever, and blocks kept coming while they ran.
    for hash in &attack {
        let v = wait_for(
            "an attack call to be included",
            Duration::from_secs(120),
            || included(&node, hash),
        );
        assert_eq!(v["receipt"]["status"], "out_of_gas", "{v}");
        assert_eq!(v["receipt"]["gas_used"].as_u64(), Some(MAX_GAS));
    }
    let blocks = node.height() - start;
    // 54 × 50M gas is 5.4 × MAX_BLOCK_GAS: at least 6 blocks.
    assert!(blocks >= 6, "{blocks} blocks");
    // No block carries more than MAX_BLOCK_GAS of declared gas: at most 10 attack calls.
    let attack_set: std::collections::HashSet<&str> = attack.iter().map(String::as_str).collect();
    for h in start + 1..=node.height() {
        let (code, b) = node.get(&format!("/v1/blocks/{h}"));
        assert_eq!(code, 200);
        let n = b["txs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| attack_set.contains(t.as_str().unwrap()))
            .count();
        assert!(n <= 10, "block {h} has {n} calls of 50M gas");
    }
    assert!(node.child.try_wait().unwrap().is_none(), "the node exited");
    let restarts: u64 = node
        .metrics_text()
        .lines()
        .filter(|l| l.starts_with("accumen_actor_restarts_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(restarts, 0, "an actor was restarted");
    let (code, h) = node.get("/health");
    assert_eq!(code, 200, "{h}");
    assert_eq!(node.terminate().code(), Some(0));
}

/// Input of `big_results.wat`: [writes, value_len, events, output_len].
fn big_args(writes: u32, value_len: u32, events: u32, output_len: u32) -> Vec<u8> {
    [writes, value_len, events, output_len]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect()
}

#[test]
fn calls_past_the_result_caps_fail_cleanly() {
    let node = TestNode::start(CONFIG);
    let mut s = Sender::new(131);
    let big = deploy(&node, &mut s, fixture("big_results"));
    let counter = deploy(&node, &mut s, fixture("counter"));
    let cases = [
        (
            big_args(0, 0, 5, 0),
            "host: events of one call exceed 65536 bytes",
        ),
        (
            big_args(257, 1, 0, 0),
            "host: more than 256 storage keys written in one call",
        ),
        (
            big_args(5, 65_536, 0, 0),
            "host: storage writes of one call exceed 262144 bytes",
        ),
    ];
    let txs: Vec<SignedTx> = cases
        .iter()
        .map(|(args, _)| {
            s.sign(
                accumen_actors::types::Action::Call {
                    contract: big,
                    entry: "run".into(),
                    args: accumen_actors::types::Bytes(args.clone()),
                },
                40_000_000,
            )
        })
        .collect();
    let hashes = submit_batch(&node, &txs);
    for (hash, (_, kind)) in hashes.iter().zip(&cases) {
        let v = node.wait_included(hash);
        assert_eq!(v["receipt"]["status"], "trapped", "{v}");
        assert_eq!(v["receipt"]["kind"], *kind, "{v}");
        assert_eq!(v["receipt"]["events"], serde_json::json!([]), "{v}");
    }
    // Nothing was written, and the chain goes on.
    let (code, v) = node.get(&format!("/v1/contracts/{big}/state/00000000"));
    assert!(code == 404 || v["value"].is_null(), "{code} {v}");
    let hash = submit_ok(&node, &s.call(counter, "increment", &[]));
    let v = node.wait_included(&hash);
    assert_eq!(v["receipt"]["status"], "success", "{v}");
}
