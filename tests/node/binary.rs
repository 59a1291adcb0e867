//! The binary submission format (`Content-Type: application/octet-stream`, RUNBOOK "Endpoints"):
//! a binary batch is admitted and committed like a JSON one, the same transaction has the same
//! id in both formats, and every malformed body is refused with a clear error and admits
//! nothing. Also the `Content-Type` rules (415 for anything that is neither JSON nor binary).

use accumen::api::batch::{encode_binary, frame_encoded};
use accumen_actors::types::SignedTx;
use serde_json::Value;

use crate::harness::*;

fn post_binary(node: &TestNode, path: &str, body: &[u8]) -> (u16, Value) {
    node.client().post_binary(path, body).unwrap()
}

fn post_typed(node: &TestNode, path: &str, content_type: &str, body: &[u8]) -> (u16, Value) {
    let (status, bytes) = node.client().post_raw(path, content_type, body).unwrap();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{path}: answer {status} is not JSON ({e}): {bytes:?}"));
    (status, v)
}

fn assert_error((status, body): (u16, Value), want_status: u16, want_code: &str, what: &str) {
    assert_eq!(status, want_status, "{what}: {body}");
    assert_eq!(error_code(&body), want_code, "{what}: {body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "{what}: no message in {body}");
}

/// The sender's pending count and the mempool's size: what a refused body must not change.
fn pending(node: &TestNode, s: &Sender) -> (Value, Value) {
    let (_, acct) = node.get(&format!("/v1/accounts/{}", s.key.public()));
    let (_, pool) = node.get("/mempool/stats");
    (acct["pending"].clone(), pool["size"].clone())
}

fn hashes(v: &Value) -> Vec<String> {
    v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["tx_hash"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn binary_batch_is_committed_with_the_same_ids_as_json() {
    // Blocks every 2 s: a resubmission a few milliseconds after the first submission must find
    // the transaction still pending (409 duplicate), not already committed (nonce_too_low).
    let node = TestNode::start("block_time: \"2s\"");
    let mut deployer = Sender::new(60);
    let counter = deploy(&node, &mut deployer, fixture("counter"));
    let mut senders: Vec<Sender> = (61..64).map(Sender::new).collect();

    // A binary batch of 30 calls from 3 senders: all accepted, ids as the client computes them.
    let batch: Vec<SignedTx> = (0..10)
        .flat_map(|_| {
            senders
                .iter_mut()
                .map(|s| s.call(counter, "increment", &[1, 2, 3]))
                .collect::<Vec<_>>()
        })
        .collect();
    let (code, v) = node.client().submit_txs_binary(&batch).unwrap();
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["accepted"], 30, "{v}");
    assert_eq!(v["rejected"], 0, "{v}");
    let ids: Vec<String> = batch.iter().map(|t| t.tx.id().to_hex()).collect();
    assert_eq!(hashes(&v), ids);
    for id in &ids {
        let r = node.wait_included(id);
        assert_eq!(r["receipt"]["status"], "success", "{r}");
    }
    let key = hex::encode(b"count");
    let (_, st) = node.get(&format!("/v1/contracts/{counter}/state/{key}"));
    assert_eq!(st["value"], hex::encode(30u64.to_le_bytes()));

    // One transaction, binary on /v1/tx: 202 with its id; the same bytes as JSON are the same
    // transaction (409 duplicate), and so is its JSON form inside a binary batch's twin.
    let s = &mut senders[0];
    let one = s.call(counter, "increment", &[]);
    let (code, v) = post_binary(&node, "/v1/tx", &one.encode());
    assert_eq!(code, 202, "{v}");
    assert_eq!(v["tx_hash"], one.tx.id().to_hex());
    let (code, v) = submit(&node, &one);
    assert_eq!(code, 409, "{v}");
    assert_eq!(error_code(&v), "duplicate", "{v}");

    // And the other way round: JSON first, then binary (batch) of the same transaction.
    let two = s.call(counter, "increment", &[]);
    let json_id = submit_ok(&node, &two);
    assert_eq!(json_id, two.tx.id().to_hex());
    let (code, v) = node.client().submit_txs_binary(&[two]).unwrap();
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["results"][0]["tx_hash"], json_id, "{v}");
    assert_eq!(v["results"][0]["error"]["code"], "duplicate", "{v}");
    node.wait_included(&json_id);

    // A JSON content type with parameters is still JSON; a +json type too.
    let three = s.call(counter, "increment", &[]);
    let body = serde_json::to_vec(&three).unwrap();
    let (code, v) = post_typed(&node, "/v1/tx", "Application/JSON; charset=utf-8", &body);
    assert_eq!(code, 202, "{v}");
    assert_eq!(v["tx_hash"], three.tx.id().to_hex());
}

#[test]
fn bad_binary_bodies_are_refused_and_admit_nothing() {
    let node = TestNode::start("api:\n  max_batch: 4");
    let mut deployer = Sender::new(70);
    let counter = deploy(&node, &mut deployer, fixture("counter"));
    let mut s = Sender::new(71);
    let good: Vec<SignedTx> = (0..2).map(|_| s.call(counter, "increment", &[])).collect();
    let before = pending(&node, &s);
    assert_eq!(before.0, 0);

    // Each framing fault, with good transactions in front of it: refused whole.
    let valid = encode_binary(&good).unwrap();
    let with_count = |count: u32, rest: &[u8]| {
        let mut b = count.to_le_bytes().to_vec();
        b.extend_from_slice(rest);
        b
    };
    let frames_of_good = &valid[4..];
    let mut overrun = valid.clone();
    let last_len_at = 4 + 4 + good[0].encode().len();
    overrun[last_len_at..last_len_at + 4].copy_from_slice(&10_000u32.to_le_bytes());
    let mut trailing = valid.clone();
    trailing.extend_from_slice(&[0, 0]);
    let mut zero = with_count(3, frames_of_good);
    zero.extend_from_slice(&0u32.to_le_bytes());
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("an empty body", Vec::new()),
        ("a body shorter than the count", vec![2, 0]),
        (
            "more frames declared than sent",
            with_count(3, frames_of_good),
        ),
        ("a length cut short", {
            let mut b = with_count(3, frames_of_good);
            b.extend_from_slice(&[5, 0]);
            b
        }),
        ("a length past the end of the body", overrun),
        ("a zero-length frame", zero),
        ("bytes after the last frame", trailing),
        ("a truncated last frame", valid[..valid.len() - 1].to_vec()),
    ];
    for (what, body) in &cases {
        let answer = post_binary(&node, "/v1/txs", body);
        assert_error(answer, 400, "malformed_batch", what);
        assert_eq!(pending(&node, &s), before, "{what} changed something");
    }

    // More than api.max_batch (4): 413 batch_too_large like the JSON batch, also when only
    // the count claims it.
    let five: Vec<SignedTx> = (0..5).map(|_| s.call(counter, "increment", &[])).collect();
    s.nonce -= 5;
    assert_error(
        node.client().submit_txs_binary(&five).unwrap(),
        413,
        "batch_too_large",
        "five transactions",
    );
    assert_error(
        post_binary(&node, "/v1/txs", &u32::MAX.to_le_bytes()),
        413,
        "batch_too_large",
        "a count of 2^32-1 and no frames",
    );
    assert_eq!(pending(&node, &s), before);

    // A single binary transaction that is not one canonical encoding: 400 malformed_tx.
    let one = &good[0].encode();
    let mut one_trailing = one.clone();
    one_trailing.push(0);
    for (what, body) in [
        ("garbage", b"not a transaction".to_vec()),
        ("an empty body", Vec::new()),
        ("trailing bytes", one_trailing),
        ("a truncated transaction", one[..one.len() - 3].to_vec()),
    ] {
        assert_error(
            post_binary(&node, "/v1/tx", &body),
            400,
            "malformed_tx",
            what,
        );
    }
    assert_eq!(pending(&node, &s), before);

    // Unknown content types: 415 on both routes, nothing admitted, even for a valid body.
    let json_body = serde_json::to_vec(&good[0]).unwrap();
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/cbor",
        "octet-stream",
    ] {
        assert_error(
            post_typed(&node, "/v1/tx", ct, &json_body),
            415,
            "unsupported_media_type",
            ct,
        );
        assert_error(
            post_typed(&node, "/v1/txs", ct, &valid),
            415,
            "unsupported_media_type",
            ct,
        );
    }
    assert_eq!(pending(&node, &s), before);

    // Inside a well-framed batch each element stands alone: a frame that is not a canonical
    // transaction and a bad signature are refused with their reasons, the good one admitted.
    let mut bad_sig = good[1].clone();
    bad_sig.signature.0[0] ^= 1;
    let mut non_canonical = good[1].encode();
    // The first byte is the chain id's length (a one-byte varint); spelling it with a
    // redundant continuation byte decodes to the same value but is not canonical.
    let len = non_canonical[0];
    non_canonical.splice(0..1, [len | 0x80, 0]);
    let body = frame_encoded(&[
        good[0].encode(),
        b"garbage".to_vec(),
        non_canonical,
        bad_sig.encode(),
    ])
    .unwrap();
    let (code, v) = post_binary(&node, "/v1/txs", &body);
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["accepted"], 1, "{v}");
    assert_eq!(v["rejected"], 3, "{v}");
    let codes: Vec<&str> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["error"]["code"].as_str().unwrap_or("accepted"))
        .collect();
    assert_eq!(
        codes,
        ["accepted", "malformed_tx", "malformed_tx", "bad_signature"],
        "{v}"
    );
    assert_eq!(v["results"][0]["tx_hash"], good[0].tx.id().to_hex());
    assert_eq!(v["results"][3]["tx_hash"], good[1].tx.id().to_hex());
    node.wait_included(&good[0].tx.id().to_hex());
}
