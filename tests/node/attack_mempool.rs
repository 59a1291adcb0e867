//! Attacks on the mempool through the public API (issue 6 §5, §6, §8): nonce-gap lock-out,
//! eviction for executable transactions, the byte bound, a free-priority flood, and journal
//! restore order after a crash. Each shows blocks keep coming and an honest transaction gets in.

use std::time::Duration;

use accumen_actors::types::{Action, Address, Bytes, SignedTx};
use serde_json::Value;

use crate::harness::*;

/// Signs `action` from `s` at an explicit nonce and priority (the counter is left alone).
fn signed(s: &Sender, nonce: u64, priority: u64, action: Action, gas_limit: u64) -> SignedTx {
    s.sign_at(nonce, priority, action, gas_limit)
}

fn increment(contract: Address) -> Action {
    Action::Call {
        contract,
        entry: "increment".into(),
        args: Bytes(vec![]),
    }
}

/// A valid module of about `bytes` bytes: one active data segment of that size.
fn big_module(bytes: usize) -> Vec<u8> {
    let data = "a".repeat(bytes);
    wat::parse_str(format!(
        "(module (memory (export \"memory\") 8) (data (i32.const 0) \"{data}\") (func (export \"run\")))"
    ))
    .unwrap()
}

/// The value of a counter series with these labels (0 if absent).
fn metric(node: &TestNode, series: &str) -> f64 {
    node.metrics_text()
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

fn mempool_size(node: &TestNode) -> u64 {
    node.get("/mempool/stats").1["size"].as_u64().unwrap()
}

/// Posts a batch and asserts every element was accepted.
fn submit_all(node: &TestNode, txs: &[SignedTx]) {
    let (code, v) = node.post("/v1/txs", &json_txs(txs));
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["accepted"].as_u64(), Some(txs.len() as u64), "{v}");
}

fn included_height(v: &Value) -> u64 {
    v["block_height"]
        .as_u64()
        .or_else(|| v["height"].as_u64())
        .unwrap_or_else(|| panic!("no height in {v}"))
}

/// §5: two keys send nonces 1..=N (a gap at 0) and fill the pool; blocks used to stay empty
/// and every honest transaction got 503. Now the honest one evicts a future transaction,
/// is included, and the futures leave after their TTL.
#[test]
fn nonce_gap_flood_cannot_lock_the_pool() {
    let node = TestNode::start(
        "mempool:\n  max_size: 20\n  account_limit: 10\n  future_limit: 10\n  future_ttl: \"10s\"",
    );
    let mut honest = Sender::new(60);
    let counter = deploy(&node, &mut honest, fixture("counter"));
    for seed in [61, 62] {
        let s = Sender::new(seed);
        let txs: Vec<SignedTx> = (1..=10)
            .map(|n| signed(&s, n, u64::MAX, increment(counter), 1_000_000))
            .collect();
        submit_all(&node, &txs);
    }
    assert_eq!(mempool_size(&node), 20);
    let height = node.height();
    // Full of futures: an honest tx behind its own gap is refused, an executable one is not.
    let gap = signed(&honest, honest.nonce + 1, 0, increment(counter), 1_000_000);
    let (code, v) = submit(&node, &gap);
    assert_eq!(
        (code, error_code(&v).as_str()),
        (503, "mempool_full"),
        "{v}"
    );
    let hash = submit_ok(&node, &honest.call(counter, "increment", &[]));
    let v = node.wait_included(&hash);
    assert_eq!(v["receipt"]["status"], "success", "{v}");
    assert!(node.height() > height);
    assert!(metric(&node, "accumen_mempool_evictions_total{reason=\"future\"}") >= 1.0);
    // The futures never become executable; the TTL clears them and counts them.
    wait_for("futures to expire", Duration::from_secs(30), || {
        (mempool_size(&node) == 0).then_some(())
    });
    assert!(
        metric(
            &node,
            "accumen_mempool_evictions_total{reason=\"future_ttl\"}"
        ) >= 19.0
    );
}

/// §5: a pool full of low-value executable transactions evicts for a more useful one (higher
/// band, or a sender holding less), and the eviction metric moves. Blocks are an hour apart so
/// the pool stays full; SIGTERM makes the last block, and a restart shows what it included.
#[test]
fn full_pool_evicts_low_value_for_useful() {
    let dir = tempfile::tempdir().unwrap();
    let slow =
        "storage: persistent\nblock_time: \"1h\"\nmempool:\n  max_size: 10\n  account_limit: 10";
    let mut node = TestNode::start_in(dir.path(), slow, &[]);
    let mut hog = Sender::new(63);
    let (d, contract) = hog.deploy(fixture("counter"));
    let mut txs = vec![d];
    txs.extend((0..9).map(|_| hog.call(contract, "increment", &[])));
    submit_all(&node, &txs);
    assert_eq!(mempool_size(&node), 10);
    // Another sender at priority 0 holding nothing: the hog holds 10 >= 0 + 2, so its tail goes.
    let mut other = Sender::new(64);
    let fair = submit_ok(&node, &other.call(contract, "increment", &[]));
    assert_eq!(mempool_size(&node), 10);
    assert_eq!(
        metric(
            &node,
            "accumen_mempool_evictions_total{reason=\"fair_share\"}"
        ),
        1.0
    );
    let (_, evicted) = node.get(&format!("/v1/tx/{}", txs[9].tx.id()));
    assert_ne!(evicted["status"], "pending", "{evicted}");
    // A higher band evicts the lowest band first.
    let third = Sender::new(65);
    let high = submit_ok(&node, &signed(&third, 0, 3, increment(contract), 1_000_000));
    assert_eq!(
        metric(
            &node,
            "accumen_mempool_evictions_total{reason=\"priority\"}"
        ),
        1.0
    );
    let bytes = metric(&node, "accumen_mempool_bytes");
    assert!(bytes > 0.0, "mempool bytes gauge");
    assert_eq!(node.terminate().code(), Some(0), "{}", node.logs());

    let node = TestNode::start_in(dir.path(), "storage: persistent", &[]);
    for hash in [&fair, &high] {
        let (code, v) = node.get(&format!("/v1/tx/{hash}"));
        assert_eq!(code, 200, "{v}");
        assert_eq!(v["status"], "included", "{v}");
        assert_eq!(v["receipt"]["status"], "success", "{v}");
    }
}

/// §5: the pool is bounded in bytes. Big deploys behind a gap are evicted for big executable
/// ones, big executable ones are refused once nothing less useful is left, and small honest
/// transactions still get in, evicting a big deploy when the pool is full.
#[test]
fn max_bytes_bounds_big_deploys_and_small_txs_still_get_in() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = "storage: persistent\nblock_time: \"1h\"\nmempool:\n  max_bytes: 600000\n  max_size: 3\n  account_limit: 3";
    let mut node = TestNode::start_in(dir.path(), cfg, &[]);
    let module = big_module(250_000);
    let deploy_at = |s: &Sender, nonce: u64| {
        signed(
            s,
            nonce,
            0,
            Action::Deploy {
                code: Bytes(module.clone()),
            },
            50_000_000,
        )
    };
    let (x, y, z, w) = (
        Sender::new(66),
        Sender::new(67),
        Sender::new(68),
        Sender::new(69),
    );
    // Two big futures from x fill most of the pool's bytes.
    submit_all(&node, &[deploy_at(&x, 1), deploy_at(&x, 2)]);
    // Executable big deploys from y and z each evict one of x's futures.
    let y0 = submit_ok(&node, &deploy_at(&y, 0));
    let z0 = submit_ok(&node, &deploy_at(&z, 0));
    assert_eq!(
        metric(&node, "accumen_mempool_evictions_total{reason=\"future\"}"),
        2.0
    );
    assert!(metric(&node, "accumen_mempool_bytes") <= 600_000.0);
    // A third big executable deploy has nothing less useful to evict: refused, 503.
    let (code, v) = submit(&node, &deploy_at(&w, 0));
    assert_eq!(
        (code, error_code(&v).as_str()),
        (503, "mempool_full"),
        "{v}"
    );
    // A small honest deploy still fits in what is left.
    let mut honest = Sender::new(70);
    let (small, _) = honest.deploy(fixture("counter"));
    let small = submit_ok(&node, &small);
    assert_eq!(mempool_size(&node), 3);
    // The pool is full (3 of 3): the next small one evicts the largest big deploy, the oldest
    // of the two (y's), because it is more than twice its size.
    let (small2, _) = honest.deploy(fixture("counter"));
    let small2 = submit_ok(&node, &small2);
    assert_eq!(
        metric(&node, "accumen_mempool_evictions_total{reason=\"size\"}"),
        1.0
    );
    assert!(metric(&node, "accumen_mempool_bytes") <= 600_000.0);
    assert_eq!(node.terminate().code(), Some(0), "{}", node.logs());

    let node = TestNode::start_in(dir.path(), "storage: persistent", &[]);
    for hash in [&z0, &small, &small2] {
        let (code, v) = node.get(&format!("/v1/tx/{hash}"));
        assert_eq!(code, 200, "{v}");
        assert_eq!(v["status"], "included", "{v}");
    }
    let (code, v) = node.get(&format!("/v1/tx/{y0}"));
    assert_eq!(code, 404, "the evicted deploy: {v}");
}

/// §6: several keys flood at priority 2^64-1 with blocks of 5; a priority-0 transaction sent
/// into the flood is included within a few blocks instead of waiting behind all of it.
#[test]
fn priority_flood_from_several_keys_does_not_starve_priority_zero() {
    let node = TestNode::start("max_transactions: 5\nblock_time: \"300ms\"");
    let mut honest = Sender::new(71);
    let counter = deploy(&node, &mut honest, fixture("counter"));
    let flooders: Vec<Sender> = (72..78).map(Sender::new).collect();
    let mut batch = Vec::new();
    for n in 0..100 {
        for f in &flooders {
            batch.push(signed(f, n, u64::MAX, increment(counter), 1_000_000));
        }
    }
    submit_all(&node, &batch);
    let hash = submit_ok(&node, &honest.call(counter, "increment", &[]));
    let sent_at = node.height();
    let v = node.wait_included(&hash);
    let at = included_height(&v);
    // 600 flood txs are 120 full blocks of 5, made one after another; the honest one waits for
    // at most one round of the senders already ahead of it (6 txs): two blocks, after the one
    // being built.
    assert!(
        at <= sent_at + 3,
        "sent at height {sent_at}, included at {at}: starved behind the flood"
    );
    // Not vacuous: the flood was still there, and went on after the honest transaction.
    let last = batch
        .iter()
        .map(|t| included_height(&node.wait_included(&t.tx.id().to_hex())))
        .max()
        .unwrap();
    assert!(
        last > at + 10,
        "the flood ended at {last}, the honest tx at {at}"
    );
}

/// §8: a call from key B to the contract key A's pending deploy creates, both journaled; after
/// SIGKILL the restart used to restore B's call first (by sender order), refuse it as
/// `unknown_contract` and delete it. Restore follows arrival order now: both commit.
#[test]
fn journal_restore_keeps_a_call_behind_another_senders_deploy() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = "storage: persistent\nblock_time: \"1h\"\nmempool:\n  persist: true";
    let mut node = TestNode::start_in(dir.path(), cfg, &[]);
    // The caller's key must sort before the deployer's for the old order to fail.
    let (mut a, mut b) = (Sender::new(80), Sender::new(81));
    if b.key.public() > a.key.public() {
        std::mem::swap(&mut a, &mut b);
    }
    let (deploy_tx, contract) = a.deploy(fixture("counter"));
    let deploy_hash = submit_ok(&node, &deploy_tx);
    let call_hash = submit_ok(&node, &b.call(contract, "increment", &[]));
    assert_eq!(mempool_size(&node), 2);
    node.kill();

    let node = TestNode::start_in(
        dir.path(),
        "storage: persistent\nmempool:\n  persist: true",
        &[],
    );
    for hash in [&deploy_hash, &call_hash] {
        let v = node.wait_included(hash);
        assert_eq!(v["receipt"]["status"], "success", "{v}");
    }
    let key = hex::encode(b"count");
    let (_, v) = node.get(&format!("/v1/contracts/{contract}/state/{key}"));
    assert_eq!(v["value"], hex::encode(1u64.to_le_bytes()), "{v}");
}
