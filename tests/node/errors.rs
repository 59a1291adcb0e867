//! Bad input, over HTTP: every rejection has the right status and a specific code, and changes
//! nothing (the sender's nonces, the mempool and the contracts stay as they were). Hostile
//! contracts end as clean receipts and the node keeps producing blocks.

use std::time::Duration;

use accumen::client::HttpClient;
use accumen_actors::types::{Action, Address, Bytes, Keypair, SignedTx};
use serde_json::{Value, json};

use crate::harness::*;

/// What a rejection must not change.
#[derive(Debug, PartialEq)]
struct Snapshot {
    next_nonce: Value,
    pending: Value,
    pending_nonce: Value,
    mempool_size: Value,
}

fn snapshot(node: &TestNode, sender: &Sender) -> Snapshot {
    let (code, acct) = node.get(&format!("/v1/accounts/{}", sender.key.public()));
    assert_eq!(code, 200, "{acct}");
    let (code, pool) = node.get("/mempool/stats");
    assert_eq!(code, 200, "{pool}");
    Snapshot {
        next_nonce: acct["next_nonce"].clone(),
        pending: acct["pending"].clone(),
        pending_nonce: acct["pending_nonce"].clone(),
        mempool_size: pool["size"].clone(),
    }
}

/// Asserts an error answer: status, code, and a non-empty message.
fn assert_error((status, body): (u16, Value), want_status: u16, want_code: &str, what: &str) {
    assert_eq!(status, want_status, "{what}: {body}");
    assert_eq!(error_code(&body), want_code, "{what}: {body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "{what}: no message in {body}");
}

/// A signed transaction with every field chosen by the caller.
#[allow(clippy::too_many_arguments)]
fn tx_with(
    signer: &Keypair,
    sender: &Keypair,
    chain: &str,
    nonce: u64,
    gas_limit: u64,
    expiry: Option<u64>,
    action: Action,
) -> SignedTx {
    let mut tx = accumen_actors::testkit::body(chain, sender.public(), nonce, action, gas_limit);
    tx.expiry = expiry;
    signer.sign(tx)
}

/// The counter that `node_with_counter` deploys: sender seed 99, nonce 0.
fn known_contract() -> Address {
    Sender::new(99).deploy(fixture("counter")).1
}

/// A node started with `extra` whose chain already holds `known_contract()`: a first run on the
/// same data dir deploys and commits it, so no pending deploy sits in the mempool.
fn node_with_counter(extra: &str) -> (TestNode, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut first = TestNode::start_in(dir.path(), "storage: persistent", &[]);
    let mut deployer = Sender::new(99);
    assert_eq!(
        deploy(&first, &mut deployer, fixture("counter")),
        known_contract()
    );
    assert_eq!(first.terminate().code(), Some(0));
    let node = TestNode::start_in(dir.path(), &format!("storage: persistent\n{extra}"), &[]);
    (node, dir)
}

/// A cheap call every test can make: the known counter's `increment`.
fn noop_call() -> Action {
    Action::Call {
        contract: known_contract(),
        entry: "increment".into(),
        args: Bytes(Vec::new()),
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// The signature's hex with its first byte flipped.
fn flip_signature(tx: &SignedTx) -> Value {
    let mut v = serde_json::to_value(tx).unwrap();
    let mut sig = hex::decode(v["signature"].as_str().unwrap()).unwrap();
    sig[0] ^= 0x01;
    v["signature"] = json!(hex::encode(sig));
    v
}

fn raw_post(node: &TestNode, path: &str, body: &[u8]) -> (u16, Value) {
    let (status, bytes) = node
        .client()
        .post_raw(path, "application/json", body)
        .unwrap();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{path}: answer {status} is not JSON ({e}): {bytes:?}"));
    (status, v)
}

#[test]
fn rejected_transactions_are_specific_and_change_nothing() {
    let (node, _dir) = node_with_counter("");
    let mut s = Sender::new(40);
    let other = Keypair::from_seed([41; 32]);

    // One included transaction first, so the sender has state to protect and a tx to replay.
    let first = s.call(known_contract(), "increment", &[]);
    let hash = submit_ok(&node, &first);
    node.wait_included(&hash);
    let before = snapshot(&node, &s);
    assert_eq!(before.next_nonce, 1);
    assert_eq!(before.pending, 0);
    let n = s.nonce;

    let check = |resp: (u16, Value), status: u16, code: &str, what: &str| {
        assert_error(resp, status, code, what);
        assert_eq!(snapshot(&node, &s), before, "{what} changed something");
    };

    // Not JSON at all.
    check(
        raw_post(&node, "/v1/tx", b"{\"tx\": {"),
        400,
        "malformed_json",
        "truncated JSON",
    );
    check(
        raw_post(&node, "/v1/tx", b"not json"),
        400,
        "malformed_json",
        "not JSON",
    );
    // JSON of the wrong shape: the message names the field.
    let good = tx_with(&s.key, &s.key, CHAIN, n, 1_000_000, None, noop_call());
    let mut missing = serde_json::to_value(&good).unwrap();
    missing.as_object_mut().unwrap().remove("signature");
    let resp = node.post("/v1/tx", &missing);
    assert!(
        resp.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("signature"),
        "{}",
        resp.1
    );
    check(resp, 400, "malformed_json", "missing field");
    let mut unknown = serde_json::to_value(&good).unwrap();
    unknown["tx"]["surprise"] = json!(1);
    let resp = node.post("/v1/tx", &unknown);
    assert!(
        resp.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("surprise"),
        "{}",
        resp.1
    );
    check(resp, 400, "malformed_json", "unknown field");
    check(
        node.post("/v1/tx", &json!([1, 2, 3])),
        400,
        "malformed_json",
        "an array on /v1/tx",
    );

    // Signatures.
    check(
        node.post("/v1/tx", &flip_signature(&good)),
        400,
        "bad_signature",
        "flipped signature byte",
    );
    let forged = tx_with(&other, &s.key, CHAIN, n, 1_000_000, None, noop_call());
    check(
        submit(&node, &forged),
        400,
        "bad_signature",
        "signed by another key",
    );

    // Admission rules.
    let wrong_chain = tx_with(
        &s.key,
        &s.key,
        "other-chain",
        n,
        1_000_000,
        None,
        noop_call(),
    );
    check(
        submit(&node, &wrong_chain),
        400,
        "wrong_chain",
        "wrong chain id",
    );
    let too_much_gas = tx_with(&s.key, &s.key, CHAIN, n, 50_000_001, None, noop_call());
    check(
        submit(&node, &too_much_gas),
        400,
        "gas_limit",
        "gas above execution.gas_limit",
    );
    let no_gas = tx_with(&s.key, &s.key, CHAIN, n, 0, None, noop_call());
    check(submit(&node, &no_gas), 400, "invalid_tx", "zero gas limit");
    let expired = tx_with(
        &s.key,
        &s.key,
        CHAIN,
        n,
        1_000_000,
        Some(now_ms() - 60_000),
        noop_call(),
    );
    check(submit(&node, &expired), 400, "expired", "expired");
    let far = tx_with(
        &s.key,
        &s.key,
        CHAIN,
        n + 1_000_000,
        1_000_000,
        None,
        noop_call(),
    );
    check(
        submit(&node, &far),
        400,
        "nonce_too_far",
        "nonce too far ahead",
    );
    check(
        submit(&node, &first),
        409,
        "nonce_too_low",
        "replay of an included tx",
    );
    let bad_entry = tx_with(
        &s.key,
        &s.key,
        CHAIN,
        n,
        1_000_000,
        None,
        Action::Call {
            contract: Address([7; 32]),
            entry: "no-such entry!".into(),
            args: Bytes(Vec::new()),
        },
    );
    check(
        submit(&node, &bad_entry),
        400,
        "invalid_tx",
        "bad entry name",
    );

    // The good transaction is still accepted afterwards: nothing above used its nonce.
    let hash = submit_ok(&node, &good);
    node.wait_included(&hash);
    let (_, acct) = node.get(&format!("/v1/accounts/{}", s.key.public()));
    assert_eq!(acct["next_nonce"], 2, "{acct}");
}

#[test]
fn mixed_batch_rejects_each_bad_element_with_its_own_reason() {
    let (node, _dir) = node_with_counter("");
    let mut s = Sender::new(42);
    let other = Keypair::from_seed([43; 32]);
    let first = s.call(known_contract(), "increment", &[]);
    node.wait_included(&submit_ok(&node, &first));
    let before = snapshot(&node, &s);

    let good0 = s.call(known_contract(), "increment", &[]);
    let good1 = s.call(known_contract(), "increment", &[]);
    let n = s.nonce;
    let batch = json!([
        serde_json::to_value(&good0).unwrap(),
        {"not": "a transaction"},
        flip_signature(&tx_with(&s.key, &s.key, CHAIN, n, 1_000_000, None, noop_call())),
        serde_json::to_value(tx_with(&s.key, &s.key, "other-chain", n, 1_000_000, None, noop_call())).unwrap(),
        serde_json::to_value(&good1).unwrap(),
        serde_json::to_value(&first).unwrap(),
        serde_json::to_value(tx_with(&other, &s.key, CHAIN, n, 1_000_000, None, noop_call())).unwrap(),
        serde_json::to_value(tx_with(&s.key, &s.key, CHAIN, n, 0, None, noop_call())).unwrap(),
        serde_json::to_value(&good0).unwrap(),
    ]);
    let (code, v) = node.post("/v1/txs", &batch);
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["accepted"], 2, "{v}");
    assert_eq!(v["rejected"], 7, "{v}");
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 9, "{v}");
    let expect: [Option<&str>; 9] = [
        None,
        Some("malformed_json"),
        Some("bad_signature"),
        Some("wrong_chain"),
        None,
        Some("nonce_too_low"),
        Some("bad_signature"),
        Some("invalid_tx"),
        Some("duplicate"),
    ];
    for (i, (r, want)) in results.iter().zip(expect).enumerate() {
        match want {
            None => {
                assert_eq!(r["accepted"], true, "element {i}: {r}");
                assert!(r["tx_hash"].is_string(), "element {i}: {r}");
            }
            Some(c) => {
                assert_eq!(r["accepted"], false, "element {i}: {r}");
                assert_eq!(r["error"]["code"], c, "element {i}: {r}");
                assert!(
                    !r["error"]["message"]
                        .as_str()
                        .unwrap_or_default()
                        .is_empty(),
                    "element {i}: {r}"
                );
            }
        }
    }
    assert_eq!(results[0]["tx_hash"], json!(good0.tx.id().to_hex()));
    assert_eq!(results[4]["tx_hash"], json!(good1.tx.id().to_hex()));

    // Only the two good ones were admitted and included; the sender's nonce moved by two.
    node.wait_included(results[0]["tx_hash"].as_str().unwrap());
    node.wait_included(results[4]["tx_hash"].as_str().unwrap());
    let after = snapshot(&node, &s);
    assert_eq!(before.next_nonce, 1);
    assert_eq!(after.next_nonce, 3, "{after:?}");
    assert_eq!(after.pending, 0, "{after:?}");
}

#[test]
fn pending_duplicates_and_account_limit() {
    let (node, _dir) =
        node_with_counter("block_time: \"1h\"\nmempool:\n  max_size: 10\n  account_limit: 2");
    let mut s = Sender::new(44);
    let a = s.call(known_contract(), "increment", &[]);
    submit_ok(&node, &a);
    let before = snapshot(&node, &s);
    assert_eq!(before.pending, 1, "{before:?}");
    assert_eq!(before.mempool_size, 1, "{before:?}");

    // The same transaction again while it is pending.
    let resp = submit(&node, &a);
    assert_error(resp, 409, "duplicate", "same tx twice while pending");
    assert_eq!(snapshot(&node, &s), before);
    // Another transaction with the same nonce.
    let same_nonce = tx_with(&s.key, &s.key, CHAIN, 0, 2_000_000, None, noop_call());
    assert_error(
        submit(&node, &same_nonce),
        409,
        "nonce_taken",
        "same nonce while pending",
    );
    assert_eq!(snapshot(&node, &s), before);

    let b = s.call(known_contract(), "increment", &[]);
    submit_ok(&node, &b);
    let before = snapshot(&node, &s);
    assert_eq!(before.pending, 2, "{before:?}");
    let c = s.call(known_contract(), "increment", &[]);
    assert_error(
        submit(&node, &c),
        429,
        "account_limit",
        "third tx with account_limit 2",
    );
    assert_eq!(snapshot(&node, &s), before);

    // Another sender is not affected by this sender's limit.
    let mut t = Sender::new(45);
    submit_ok(&node, &t.call(known_contract(), "increment", &[]));
    let (_, pool) = node.get("/mempool/stats");
    assert_eq!(pool["size"], 3, "{pool}");
    assert_eq!(pool["accounts"], 2, "{pool}");
}

#[test]
fn full_mempool_is_503_and_logged() {
    let (node, _dir) =
        node_with_counter("block_time: \"1h\"\nmempool:\n  max_size: 3\n  account_limit: 3");
    let mut senders: Vec<Sender> = (46..50).map(Sender::new).collect();
    for s in senders.iter_mut().take(3) {
        submit_ok(&node, &s.call(known_contract(), "increment", &[]));
    }
    let fourth = &mut senders[3];
    let before = snapshot(&node, fourth);
    assert_eq!(before.mempool_size, 3, "{before:?}");
    let tx = fourth.call(known_contract(), "increment", &[]);
    assert_error(
        submit(&node, &tx),
        503,
        "mempool_full",
        "4th tx, max_size 3",
    );
    assert_eq!(snapshot(&node, fourth), before);
    // The same through a batch: its own reason per element.
    let (code, v) = node.post("/v1/txs", &json_txs(&[tx]));
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["accepted"], 0, "{v}");
    assert_eq!(v["results"][0]["error"]["code"], "mempool_full", "{v}");
    assert_eq!(snapshot(&node, fourth), before);

    // The runbook greps for `ERROR.*mempool.*full`.
    let line = wait_for("the mempool-full log line", Duration::from_secs(10), || {
        node.logs()
            .lines()
            .find(|l| {
                l.find("ERROR").is_some_and(|i| {
                    let rest = &l[i..];
                    rest.find("mempool")
                        .is_some_and(|j| rest[j..].contains("full"))
                })
            })
            .map(str::to_string)
    });
    assert!(line.contains("mempool"), "{line}");
}

#[test]
fn oversized_body_and_batch_are_413() {
    let (node, _dir) = node_with_counter("api:\n  max_body_bytes: 2048\n  max_batch: 5");
    let mut s = Sender::new(50);
    let before = snapshot(&node, &s);

    // A deploy whose code alone is bigger than the body limit.
    let (big, addr) = s.deploy(vec![0u8; 4096]);
    assert_error(
        submit(&node, &big),
        413,
        "body_too_large",
        "deploy over api.max_body_bytes",
    );
    assert_eq!(snapshot(&node, &s), before);
    let (code, _) = node.get(&format!("/v1/contracts/{addr}"));
    assert_eq!(code, 404);
    // The batch endpoint has the same limit.
    let (code, v) = node.post("/v1/txs", &json!([serde_json::to_value(&big).unwrap()]));
    assert_error(
        (code, v),
        413,
        "body_too_large",
        "batch over max_body_bytes",
    );
    assert_eq!(snapshot(&node, &s), before);

    // Six small elements, under the body limit but over api.max_batch = 5.
    let resp = node.post("/v1/txs", &json!([{}, {}, {}, {}, {}, {}]));
    assert_error(resp, 413, "batch_too_large", "6 elements, max_batch 5");
    assert_eq!(snapshot(&node, &s), before);

    // A body announced as too large is refused before it is sent.
    {
        use std::io::{Read, Write};
        let addr = node.api.trim_start_matches("http://");
        let mut conn = std::net::TcpStream::connect(addr).unwrap();
        conn.set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .unwrap();
        write!(
            conn,
            "POST /v1/tx HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\n\r\n"
        )
        .unwrap();
        let mut answer = vec![0u8; 4096];
        let n = conn.read(&mut answer).unwrap();
        let head = String::from_utf8_lossy(&answer[..n]);
        assert!(head.starts_with("HTTP/1.1 413"), "{head}");
        assert!(head.contains("body_too_large"), "{head}");
    }

    // Within both limits, a transaction is still accepted.
    s.nonce = 0;
    submit_ok(&node, &s.call(known_contract(), "increment", &[]));
}

fn assert_metric_positive(node: &TestNode, name: &str) {
    let text = node.metrics_text();
    let value: f64 = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"));
    assert!(value > 0.0, "{name} = {value}");
}

#[test]
fn bad_reads_are_specific_errors() {
    let node = TestNode::start("");
    let mut s = Sender::new(51);
    let counter = deploy(&node, &mut s, fixture("counter"));
    let unknown = Address([9; 32]);
    let zero = "0".repeat(64);

    let cases: Vec<(String, u16, &str)> = vec![
        (format!("/v1/tx/{zero}"), 404, "not_found"),
        ("/v1/tx/xyz".into(), 400, "invalid_hex"),
        ("/v1/tx/abcd".into(), 400, "invalid_hex"),
        ("/v1/blocks/abc".into(), 400, "invalid_height"),
        ("/v1/blocks/-1".into(), 400, "invalid_height"),
        ("/v1/blocks/+1".into(), 400, "invalid_height"),
        ("/v1/blocks/999999".into(), 404, "not_found"),
        (format!("/v1/contracts/{unknown}"), 404, "not_found"),
        ("/v1/contracts/nothex".into(), 400, "invalid_hex"),
        (
            format!("/v1/contracts/{unknown}/state/{}", hex::encode(b"count")),
            404,
            "not_found",
        ),
        (
            format!("/v1/contracts/{counter}/state/zz"),
            400,
            "invalid_hex",
        ),
        ("/v1/accounts/nothex".into(), 400, "invalid_hex"),
        ("/v1/no/such/route".into(), 404, "not_found"),
        ("/nothing".into(), 404, "not_found"),
    ];
    for (path, status, code) in cases {
        assert_error(node.get(&path), status, code, &format!("GET {path}"));
    }
    // A wrong method is a JSON error too.
    assert_error(
        node.post("/v1/blocks/latest", &json!({})),
        404,
        "not_found",
        "POST /v1/blocks/latest",
    );

    // Queries.
    let q = |addr: &Address, body: Value| node.post(&format!("/v1/contracts/{addr}/query"), &body);
    assert_error(
        q(&unknown, json!({"entry": "get"})),
        404,
        "not_found",
        "query of an unknown contract",
    );
    assert_error(
        q(&counter, json!({"entry": "no such-entry"})),
        400,
        "invalid_entry",
        "query with a bad entry name",
    );
    assert_error(
        q(
            &counter,
            json!({"entry": "get", "gas_limit": 50_000_001u64}),
        ),
        400,
        "gas_limit",
        "query gas above execution.gas_limit",
    );
    assert_error(
        q(&counter, json!({"entry": "get", "gas_limit": 0})),
        400,
        "invalid_gas_limit",
        "query with zero gas",
    );
    assert_error(
        q(&counter, json!({"entry": "get", "args": "xyz"})),
        400,
        "invalid_hex",
        "query args not hex",
    );
    assert_error(
        q(&counter, json!({"entry": "get", "bogus": 1})),
        400,
        "malformed_json",
        "query with an unknown field",
    );
    assert_error(
        q(&counter, json!({})),
        400,
        "malformed_json",
        "query without entry",
    );

    // None of the above wrote anything: the counter is still 0 and a query still works.
    let (code, v) = node.get(&format!(
        "/v1/contracts/{counter}/state/{}",
        hex::encode(b"count")
    ));
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["value"], hex::encode(0u64.to_le_bytes()));
    let (code, v) = q(&counter, json!({"entry": "get"}));
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["output"], hex::encode(0u64.to_le_bytes()));

    assert_metric_positive(&node, "accumen_api_errors_total");
}

/// Submits `tx`, waits for it, returns its receipt.
fn receipt(node: &TestNode, tx: &SignedTx) -> Value {
    let hash = submit_ok(node, tx);
    node.wait_included(&hash)["receipt"].clone()
}

fn next_nonce(node: &TestNode, s: &Sender) -> u64 {
    let (_, acct) = node.get(&format!("/v1/accounts/{}", s.key.public()));
    acct["next_nonce"].as_u64().unwrap()
}

fn assert_alive(node: &TestNode) {
    let h = node.height();
    wait_for("the height to rise", Duration::from_secs(30), || {
        (node.height() > h).then_some(())
    });
    let (code, v) = HttpClient::new(&node.health)
        .unwrap()
        .get("/health")
        .unwrap();
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["status"], "healthy", "{v}");
}

#[test]
fn hostile_contracts_end_cleanly_and_the_node_goes_on() {
    let node = TestNode::start("");
    let mut s = Sender::new(52);

    let expected = [
        ("loop", "out_of_gas", None),
        ("memory_bomb", "trapped", Some("unreachable")),
        ("trap", "trapped", Some("unreachable")),
        ("recursion", "trapped", Some("stack overflow")),
    ];
    for (name, status, kind) in expected {
        let addr = deploy(&node, &mut s, fixture(name));
        let nonce = s.nonce;
        let call = s.sign(
            Action::Call {
                contract: addr,
                entry: "run".into(),
                args: Bytes(Vec::new()),
            },
            10_000_000,
        );
        let r = receipt(&node, &call);
        assert_eq!(r["status"], status, "{name}: {r}");
        if let Some(kind) = kind {
            assert_eq!(r["kind"], kind, "{name}: {r}");
        }
        if status == "out_of_gas" {
            assert_eq!(r["gas_used"], 10_000_000, "{name}: {r}");
        }
        assert_eq!(next_nonce(&node, &s), nonce + 1, "{name}: nonce not used");
        assert_alive(&node);
    }

    // Refused at admission: invalid code never reaches a block and uses no nonce.
    for name in ["unknown_import", "huge_data"] {
        let before = next_nonce(&node, &s);
        let (tx, addr) = s.deploy(fixture(name));
        assert_error(submit(&node, &tx), 400, "invalid_contract", name);
        s.nonce -= 1;
        let (code, v) = node.get(&format!("/v1/contracts/{addr}"));
        assert_eq!(code, 404, "{name}: {v}");
        assert_eq!(next_nonce(&node, &s), before, "{name}: nonce used");
        // Calling the address that was never created.
        let call = s.call(addr, "run", &[]);
        assert_error(submit(&node, &call), 404, "unknown_contract", name);
        s.nonce -= 1;
    }
    let (tx, _) = s.deploy(fixture("unknown_import"));
    let (code, body) = submit(&node, &tx);
    s.nonce -= 1;
    assert!(
        code == 400
            && body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("env::abort"),
        "{body}"
    );

    // A contract that was never deployed at all.
    let call = s.call(Address([0xab; 32]), "run", &[]);
    assert_error(
        submit(&node, &call),
        404,
        "unknown_contract",
        "never deployed",
    );
    s.nonce -= 1;

    // A missing entry of a real contract: only execution can tell, so it is a receipt.
    let counter = deploy(&node, &mut s, fixture("counter"));
    let r = receipt(&node, &s.call(counter, "no_such_entry", &[]));
    assert_eq!(r["status"], "reverted", "{r}");
    let msg = r["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("no entry point") && msg.contains("no_such_entry"),
        "{r}"
    );

    // WebAssembly text sent as code, not compiled.
    let text = std::fs::read(fixture_path("counter")).unwrap();
    let (tx, addr) = s.deploy(text);
    let (code, body) = submit(&node, &tx);
    s.nonce -= 1;
    assert_eq!(code, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("not a WebAssembly binary"),
        "{body}"
    );
    let (code, _) = node.get(&format!("/v1/contracts/{addr}"));
    assert_eq!(code, 404);

    assert_eq!(next_nonce(&node, &s), s.nonce);
    assert_alive(&node);
}
