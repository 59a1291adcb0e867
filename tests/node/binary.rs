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

/// `Accept: application/octet-stream` on `POST /v1/txs` gets the binary answer: the same
/// results as the JSON answer to the same batch (accepted with their ids, refused with their
/// code and message, and a malformed element without an id), for a binary body and a JSON one;
/// a refusal of the whole request stays JSON.
#[test]
fn the_binary_answer_says_what_the_json_answer_says() {
    use accumen::api::batch::{BINARY_CONTENT_TYPE, parse_answer};
    let node = TestNode::start("block_time: \"2s\"");
    let mut deployer = Sender::new(70);
    let counter = deploy(&node, &mut deployer, fixture("counter"));
    let mut s = Sender::new(71);
    let good = s.call(counter, "increment", &[]);
    let next = s.call(counter, "increment", &[]);
    // Accepted, accepted, malformed bytes (no id), and a duplicate of the first (refused, id).
    let frames: Vec<Vec<u8>> = vec![
        good.encode(),
        next.encode(),
        vec![0xff, 0x00],
        good.encode(),
    ];
    let body = frame_encoded(&frames).unwrap();
    let (status, content_type, answer) = node
        .client()
        .post_accepting("/v1/txs", BINARY_CONTENT_TYPE, &body, BINARY_CONTENT_TYPE)
        .unwrap();
    assert_eq!(status, 200, "{answer:?}");
    assert_eq!(content_type, BINARY_CONTENT_TYPE);
    let elements = parse_answer(&answer).unwrap();
    assert_eq!(elements.len(), 4);
    assert!(elements[0].accepted() && elements[1].accepted());
    assert_eq!(elements[0].id, Some(good.tx.id()));
    assert_eq!(elements[1].id, Some(next.tx.id()));
    assert_eq!(elements[2].id, None);
    assert_eq!(
        elements[2].error.as_ref().map(|(c, _)| c.as_str()),
        Some("malformed_tx")
    );
    assert_eq!(elements[3].id, Some(good.tx.id()));
    let (code, message) = elements[3].error.clone().unwrap();
    assert_eq!(code, "duplicate");

    // The same batch again as JSON answers with the same codes and messages: all refused now
    // (the first two are pending), each element as the binary answer says it.
    let (status, v) = post_binary(&node, "/v1/txs", &body);
    assert_eq!(status, 200, "{v}");
    let json_dup = &v["results"][3];
    assert_eq!(json_dup["error"]["code"], "duplicate", "{v}");
    assert_eq!(json_dup["error"]["message"], message.as_str(), "{v}");
    let (_, _, again) = node
        .client()
        .post_accepting("/v1/txs", BINARY_CONTENT_TYPE, &body, BINARY_CONTENT_TYPE)
        .unwrap();
    let again = parse_answer(&again).unwrap();
    for (i, (b, j)) in again
        .iter()
        .zip(v["results"].as_array().unwrap())
        .enumerate()
    {
        assert_eq!(b.accepted(), j["accepted"] == true, "element {i}: {v}");
        assert_eq!(
            b.id.map(|h| h.to_hex()).unwrap_or_default(),
            j["tx_hash"].as_str().unwrap_or_default(),
            "element {i}: {v}"
        );
        let (code, message) = b.error.clone().unwrap();
        assert_eq!(j["error"]["code"], code.as_str(), "element {i}: {v}");
        assert_eq!(j["error"]["message"], message.as_str(), "element {i}: {v}");
    }

    // A JSON body may ask for the binary answer too.
    let third = s.call(counter, "increment", &[]);
    let json = serde_json::to_vec(&[&third]).unwrap();
    let (status, content_type, answer) = node
        .client()
        .post_accepting("/v1/txs", "application/json", &json, BINARY_CONTENT_TYPE)
        .unwrap();
    assert_eq!((status, content_type.as_str()), (200, BINARY_CONTENT_TYPE));
    let elements = parse_answer(&answer).unwrap();
    assert_eq!(elements.len(), 1);
    assert!(elements[0].accepted());
    assert_eq!(elements[0].id, Some(third.tx.id()));

    // A malformed framing refuses the whole request, in JSON whatever was asked.
    let (status, content_type, answer) = node
        .client()
        .post_accepting("/v1/txs", BINARY_CONTENT_TYPE, &[1, 0], BINARY_CONTENT_TYPE)
        .unwrap();
    assert_eq!(status, 400);
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let v: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(error_code(&v), "malformed_batch", "{v}");
    node.wait_included(&third.tx.id().to_hex());
}
