//! The chain's signature rule (ZIP-215) end to end: transactions whose signatures are valid
//! under ZIP-215 but were refused by the old strict rule (small-order keys and R, canonical and
//! not) are admitted by the API's batch verification exactly as single verification decides,
//! committed, and replayed by a follower (whose `chain::verify` re-checks every signature in
//! batches) to the same blocks and receipts; the invalid ones next to them are refused with
//! `bad_signature` and change nothing.

use std::time::Duration;

use crate::follower::{sequencer_key, start_follower, wait_caught_up};
use crate::harness::*;
use accumen_actors::testkit::{body, call};
use accumen_actors::types::{PublicKey, Signature, SignedTx};

/// The identity point, canonical and with the sign bit set (non-canonical); a point of order 4
/// (canonical and with y + p, non-canonical).
const SMALL_ORDER: [&str; 4] = [
    "0100000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000080",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
];
/// The group order l, little-endian hex: as `s` it is a non-canonical zero.
const L_HEX: &str = "edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010";

fn bytes32(h: &str) -> [u8; 32] {
    hex::decode(h).unwrap().try_into().unwrap()
}

/// A call "signed" for small-order key `a` with small-order `r` and `s` (hex).
fn forged(
    a: &str,
    r: &str,
    s: &str,
    nonce: u64,
    contract: accumen_actors::types::Address,
) -> SignedTx {
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(&bytes32(r));
    sig[32..].copy_from_slice(&bytes32(s));
    SignedTx {
        tx: body(
            CHAIN,
            PublicKey(bytes32(a)),
            nonce,
            call(contract, "increment", &[]),
            1_000_000,
        ),
        signature: Signature(sig),
    }
}

#[test]
fn zip215_only_signatures_are_admitted_committed_and_replayed_alike() {
    let seq = TestNode::start("");
    let mut deployer = Sender::new(60);
    let counter = deploy(&seq, &mut deployer, fixture("counter"));
    let zero = "00".repeat(32);

    let mut honest = Sender::new(61);
    let mut txs = Vec::new();
    let mut expect_ok = Vec::new();
    // ZIP-215-only: each small-order key sends two calls, R alternating over the encodings.
    for (k, a) in SMALL_ORDER.iter().enumerate() {
        for nonce in 0..2u64 {
            txs.push(forged(
                a,
                SMALL_ORDER[(k + nonce as usize + 1) % 4],
                &zero,
                nonce,
                counter,
            ));
            expect_ok.push(true);
        }
    }
    // Honest calls between them, so the batch mixes both.
    for _ in 0..3 {
        txs.push(honest.call(counter, "increment", &[]));
        expect_ok.push(true);
    }
    // Refused: s = l (non-canonical; the equation itself would hold), a small-order key with
    // s = 1, and an honest signature whose R is swapped for a small-order point.
    txs.push(forged(SMALL_ORDER[0], SMALL_ORDER[2], L_HEX, 2, counter));
    expect_ok.push(false);
    let mut one = "00".repeat(32);
    one.replace_range(0..2, "01");
    txs.push(forged(SMALL_ORDER[2], SMALL_ORDER[0], &one, 2, counter));
    expect_ok.push(false);
    let mut swapped = honest.call(counter, "increment", &[]);
    honest.nonce -= 1;
    swapped.signature.0[..32].copy_from_slice(&bytes32(SMALL_ORDER[3]));
    txs.push(swapped);
    expect_ok.push(false);

    // The API's batch decision is single verification's, item by item.
    for (t, ok) in txs.iter().zip(&expect_ok) {
        assert_eq!(t.clone().verify().is_ok(), *ok, "{:?}", t.tx.sender);
    }
    let (code, v) = seq.post("/v1/txs", &json_txs(&txs));
    assert_eq!(code, 200, "{v}");
    let results = v["results"].as_array().unwrap();
    let mut accepted = Vec::new();
    for (i, (r, ok)) in results.iter().zip(&expect_ok).enumerate() {
        assert_eq!(r["accepted"].as_bool().unwrap(), *ok, "item {i}: {r}");
        if *ok {
            accepted.push(r["tx_hash"].as_str().unwrap().to_owned());
        } else {
            assert_eq!(r["error"]["code"], "bad_signature", "item {i}: {r}");
        }
    }
    // The single-transaction route decides the same for a refused one.
    let (code, v) = submit(&seq, &txs[txs.len() - 3]);
    assert_eq!((code, error_code(&v)), (400, "bad_signature".into()), "{v}");

    let mut receipts = Vec::new();
    for h in &accepted {
        let v = seq.wait_included(h);
        assert_eq!(v["receipt"]["status"], "success", "{v}");
        receipts.push(v);
    }
    // Every accepted increment counted; the refused ones changed nothing.
    let (_, c) = seq.get(&format!(
        "/v1/contracts/{}/state/{}",
        counter.to_hex(),
        hex::encode(b"count")
    ));
    assert_eq!(c["value"], hex::encode(11u64.to_le_bytes()), "{c}");
    for a in SMALL_ORDER {
        let (_, acct) = seq.get(&format!("/v1/accounts/{a}"));
        assert_eq!(acct["next_nonce"], 2, "{a}: {acct}");
    }

    // A follower re-verifies every signature of the chain (in batches) and agrees.
    let height = seq.height();
    let dir = tempfile::tempdir().unwrap();
    let f = start_follower(dir.path(), &seq.api, &sequencer_key(&seq), "");
    wait_caught_up(&f, height, Duration::from_secs(60));
    for (h, v) in accepted.iter().zip(&receipts) {
        let (code, fv) = f.get(&format!("/v1/tx/{h}"));
        assert_eq!(code, 200, "{fv}");
        assert_eq!(&fv, v, "{h}");
    }
    for a in SMALL_ORDER {
        let path = format!("/v1/accounts/{a}");
        assert_eq!(seq.get(&path).1["next_nonce"], f.get(&path).1["next_nonce"]);
    }
}
