//! The happy path: deploy the counter and call it 100 times from each of 3 senders.

use std::collections::BTreeSet;

use serde_json::json;

use crate::harness::*;

#[test]
fn counter_takes_300_calls_from_3_senders() {
    let node = TestNode::start("");
    let mut deployer = Sender::new(1);
    let counter = deploy(&node, &mut deployer, fixture("counter"));

    let mut senders: Vec<Sender> = (10..13).map(Sender::new).collect();
    let mut last = Vec::new();
    // Interleave the senders in batches, as a busy client would.
    for round in 0..10 {
        let mut batch = Vec::new();
        for s in senders.iter_mut() {
            for _ in 0..10 {
                batch.push(s.call(counter, "increment", &[]));
            }
        }
        let (code, v) = node.post("/v1/txs", &json_txs(&batch));
        assert_eq!(code, 200, "{v}");
        assert_eq!(v["accepted"], 30, "round {round}: {v}");
        if round == 9 {
            last = v["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["tx_hash"].as_str().unwrap().to_string())
                .collect();
        }
    }
    for hash in &last {
        node.wait_included(hash);
    }

    // Every call succeeded and saw a distinct count: 1..=300 exactly once.
    let mut seen = BTreeSet::new();
    let height = node.height();
    let mut included = 0;
    for h in 1..=height {
        let (_, block) = node.get(&format!("/v1/blocks/{h}"));
        for tx in block["txs"].as_array().unwrap() {
            let (_, v) = node.get(&format!("/v1/tx/{}", tx.as_str().unwrap()));
            let r = &v["receipt"];
            assert_eq!(r["status"], "success", "{v}");
            if r["contract"] == json!(counter.to_hex()) && r["output"] != "" {
                let out = hex::decode(r["output"].as_str().unwrap()).unwrap();
                assert!(seen.insert(u64::from_le_bytes(out.try_into().unwrap())));
            }
            included += 1;
        }
    }
    assert_eq!(included, 301);
    assert_eq!(seen, (1..=300).collect::<BTreeSet<u64>>());

    let key = hex::encode(b"count");
    let (code, v) = node.get(&format!("/v1/contracts/{counter}/state/{key}"));
    assert_eq!(code, 200);
    assert_eq!(v["value"], hex::encode(300u64.to_le_bytes()));
    for s in &senders {
        let (_, acct) = node.get(&format!("/v1/accounts/{}", s.key.public()));
        assert_eq!(acct["next_nonce"], 100);
        assert_eq!(acct["pending"], 0);
    }
    let (_, stats) = node.get("/stats");
    assert_eq!(stats["txs_processed"], 301);
    assert_eq!(stats["mempool_stats"]["size"], 0);

    // A read-only query sees the state and writes nothing.
    let (code, q) = node.post(
        &format!("/v1/contracts/{counter}/query"),
        &json!({"entry": "increment"}),
    );
    assert_eq!(code, 200, "{q}");
    assert_eq!(q["output"], hex::encode(301u64.to_le_bytes()));
    let (_, v) = node.get(&format!("/v1/contracts/{counter}/state/{key}"));
    assert_eq!(v["value"], hex::encode(300u64.to_le_bytes()));
}

#[test]
fn kv_contract_events_and_reverts_over_http() {
    let node = TestNode::start("");
    let mut s = Sender::new(2);
    let kv = deploy(&node, &mut s, fixture("kv"));
    let mut args = vec![3u8];
    args.extend_from_slice(b"keyvalue");
    let set = submit_ok(&node, &s.call(kv, "set", &args));
    let bad = submit_ok(&node, &s.call(kv, "set_then_revert", &[1, b'x', b'y']));
    let v = node.wait_included(&set);
    let r = &v["receipt"];
    assert_eq!(r["status"], "success");
    assert_eq!(r["events"][0]["topic"], hex::encode(b"set"));
    assert_eq!(r["events"][0]["data"], hex::encode(b"key"));
    assert_eq!(r["logs"][0], "kv: set called");
    let v = node.wait_included(&bad);
    assert_eq!(v["receipt"]["status"], "reverted");
    assert_eq!(v["receipt"]["message"], "reverted on purpose");
    assert_eq!(v["receipt"]["events"], json!([]));
    let (_, st) = node.get(&format!("/v1/contracts/{kv}/state/{}", hex::encode(b"x")));
    assert_eq!(st["value"], json!(null));
    let (_, st) = node.get(&format!("/v1/contracts/{kv}/state/{}", hex::encode(b"key")));
    assert_eq!(st["value"], hex::encode(b"value"));
}

#[test]
fn a_call_may_follow_its_pending_deploy() {
    let node = TestNode::start("block_time: \"500ms\"");
    let mut s = Sender::new(3);
    let (deploy_tx, counter) = s.deploy(fixture("counter"));
    let call = s.call(counter, "increment", &[]);
    // One batch: the call is admitted because the deploy before it creates the contract.
    let (code, v) = node.post("/v1/txs", &json_txs(&[deploy_tx, call]));
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["accepted"], 2, "{v}");
    let hash = v["results"][1]["tx_hash"].as_str().unwrap().to_string();
    let r = node.wait_included(&hash);
    assert_eq!(r["receipt"]["output"], hex::encode(1u64.to_le_bytes()));
}
