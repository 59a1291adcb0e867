//! The dispatcher and the ledger without HTTP: framing, every check's status, blocks, queries,
//! levers, faults and persistence.

use serde_json::{Value, json};

use super::*;
use crate::bridge::codec::{L0Key, SignedWriteData, WriteDataRequest, sign_write_data};

const PAGE: &str = "acc://accumen.acme/book/1";
const DATA: &str = "acc://accumen.acme/anchors";

fn key() -> L0Key {
    L0Key::from_seed([9; 32])
}

fn config(credits: u64) -> DevnetConfig {
    DevnetConfig {
        key_page: AccUrl::parse(PAGE).unwrap(),
        public_keys: vec![key().public()],
        data_account: AccUrl::parse(DATA).unwrap(),
        credits,
    }
}

fn devnet() -> Devnet {
    Devnet::open(&config(1_000), None).unwrap()
}

fn request(principal: &str, version: u64, timestamp: u64, parts: usize) -> WriteDataRequest {
    WriteDataRequest {
        principal: AccUrl::parse(principal).unwrap(),
        signer: AccUrl::parse(PAGE).unwrap(),
        signer_version: version,
        timestamp,
        memo: "accumen anchor".into(),
        metadata: Vec::new(),
        parts: (0..parts).map(|i| vec![i as u8; 4]).collect(),
    }
}

fn signed(timestamp: u64) -> SignedWriteData {
    sign_write_data(&key(), &request(DATA, 1, timestamp, 2)).unwrap()
}

fn rpc(d: &Devnet, method: &str, params: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params});
    let answer = d.handle(body.to_string().as_bytes()).unwrap();
    serde_json::from_slice(&answer).unwrap()
}

fn raw(d: &Devnet, body: &str) -> Value {
    serde_json::from_slice(&d.handle(body.as_bytes()).unwrap()).unwrap()
}

fn submit(d: &Devnet, s: &SignedWriteData) -> Value {
    rpc(d, "submit", json!({"envelope": s.envelope()}))
}

/// The (transaction, signature) codes of a submit result.
fn codes(v: &Value) -> (String, String) {
    let r = &v["result"];
    (
        r[0]["status"]["code"].as_str().unwrap_or_default().into(),
        r[1]["status"]["code"].as_str().unwrap_or_default().into(),
    )
}

#[test]
fn framing_errors_use_the_library_codes() {
    let d = devnet();
    assert_eq!(raw(&d, "not json")["error"]["code"], -32700);
    assert_eq!(raw(&d, "[]")["error"]["code"], -32600);
    let v = raw(
        &d,
        r#"{"jsonrpc":"2.0","id":1,"method":"query","params":{},"extra":1}"#,
    );
    assert_eq!(v["error"]["code"], -32600);
    let v = raw(
        &d,
        r#"{"jsonrpc":"1.0","id":1,"method":"query","params":{}}"#,
    );
    assert_eq!(v["error"]["code"], -32600);
    let v = raw(
        &d,
        r#"{"jsonrpc":"2.0","id":1,"method":"faucet","params":{}}"#,
    );
    assert_eq!(v["error"]["code"], -32601);
    // Params: missing → empty request; not an object → unmarshal error.
    let v = raw(&d, r#"{"jsonrpc":"2.0","id":1,"method":"network-status"}"#);
    assert_eq!(v["error"]["code"], -33400);
    assert_eq!(v["error"]["data"]["code"], "badRequest");
    let v = raw(
        &d,
        r#"{"jsonrpc":"2.0","id":1,"method":"query","params":["x"]}"#,
    );
    assert_eq!(v["error"]["code"], -33502);
    let v = rpc(&d, "submit", json!({"envelope": {"transaction": "nope"}}));
    assert_eq!(v["error"]["code"], -33502);
    // `type` is accepted when it names the request, refused otherwise.
    let v = rpc(
        &d,
        "network-status",
        json!({"type": "networkStatusRequest"}),
    );
    assert_eq!(v["result"]["oracle"]["price"], 5000);
    let v = rpc(&d, "network-status", json!({"type": "queryRequest"}));
    assert_eq!(v["error"]["code"], -33400);
    // A notification runs and gets no answer.
    assert!(
        d.handle(br#"{"jsonrpc":"2.0","method":"network-status","params":{}}"#)
            .is_none()
    );
}

#[test]
fn an_envelope_is_accepted_then_delivered_at_the_next_block() {
    let d = devnet();
    let s = signed(1_000);
    let v = submit(&d, &s);
    assert_eq!(codes(&v), ("ok".into(), "ok".into()), "{v}");
    assert_eq!(v["result"][0]["success"], true);
    let entry = s.check().unwrap().entry_hash;
    assert_eq!(
        v["result"][0]["status"]["result"]["entryHash"],
        entry.to_hex()
    );
    // Not queryable before the block, as on a real node.
    let tx_id = s.transaction.id().to_string();
    let q = rpc(&d, "query", json!({"scope": tx_id}));
    assert_eq!(q["error"]["code"], -33404);

    let report = d.block().unwrap();
    assert_eq!(report.delivered, vec![s.transaction.hash()]);
    let q = rpc(&d, "query", json!({"scope": tx_id}));
    assert_eq!(q["result"]["status"], "delivered", "{q}");
    assert_eq!(q["result"]["statusNo"], 201);
    let q = rpc(&d, "query", json!({"scope": s.signature.id().to_string()}));
    assert_eq!(q["result"]["status"], "delivered");

    // Fee charged (10 units), lastUsedOn moved.
    let page = rpc(&d, "query", json!({"scope": PAGE}));
    assert_eq!(page["result"]["account"]["creditBalance"], 990);
    assert_eq!(page["result"]["account"]["keys"][0]["lastUsedOn"], 1_000);

    // Readable as data entries: range, index, entry hash, latest.
    let r = rpc(
        &d,
        "query",
        json!({"scope": DATA, "query": {"queryType": "data", "range": {"start": 0, "count": 10}}}),
    );
    assert_eq!(r["result"]["total"], 1);
    assert_eq!(r["result"]["records"][0]["entry"], entry.to_hex());
    assert_eq!(r["result"]["records"][0]["value"]["id"], tx_id);
    let by_index = rpc(
        &d,
        "query",
        json!({"scope": DATA, "query": {"queryType": "data", "index": 0}}),
    );
    assert_eq!(by_index["result"]["entry"], entry.to_hex());
    let by_hash = rpc(
        &d,
        "query",
        json!({"scope": DATA, "query": {"queryType": "data", "entry": entry.to_hex()}}),
    );
    assert_eq!(by_hash["result"]["value"]["status"], "delivered");
    let latest = rpc(
        &d,
        "query",
        json!({"scope": DATA, "query": {"queryType": "data"}}),
    );
    assert_eq!(latest["result"]["index"], 0);
    let missing = rpc(
        &d,
        "query",
        json!({"scope": DATA, "query": {"queryType": "data", "index": 5}}),
    );
    assert_eq!(missing["error"]["code"], -33404);
}

#[test]
fn resubmissions_follow_the_document() {
    let d = devnet();
    let s = signed(5);
    submit(&d, &s);
    // Still pending: the mempool cache refuses the copy.
    let v = submit(&d, &s);
    assert_eq!(v["error"]["code"], -33500, "{v}");
    d.block().unwrap();
    // Delivered: its recorded status, the signature's replayed timestamp; nothing charged.
    let v = submit(&d, &s);
    assert_eq!(
        codes(&v),
        ("delivered".into(), "badTimestamp".into()),
        "{v}"
    );
    assert!(v["result"][0].get("success").is_none());
    d.block().unwrap();
    let page = rpc(&d, "query", json!({"scope": PAGE}));
    assert_eq!(page["result"]["account"]["creditBalance"], 990);
}

#[test]
fn every_check_fails_with_its_status() {
    let d = devnet();
    let other = L0Key::from_seed([1; 32]);
    let good = signed(10);

    let mut bad_sig = good.clone();
    bad_sig.signature.signature.0[0] ^= 1;
    let mut wrong_init = good.clone();
    wrong_init.signature.timestamp += 1;
    // A valid signature whose metadata hash is not the header's initiator.
    let mut other_init = good.clone();
    other_init.transaction.header.initiator = Hash([5; 32]);
    let tx_hash = other_init.transaction.hash();
    other_init.signature.transaction_hash = tx_hash;
    let digest = other_init.signature.signing_digest(&tx_hash);
    other_init.signature.signature = key().sign_digest(&digest);
    let foreign = sign_write_data(&other, &request(DATA, 1, 10, 1)).unwrap();
    let version = sign_write_data(&key(), &request(DATA, 2, 10, 1)).unwrap();
    let missing =
        sign_write_data(&key(), &request("acc://accumen.acme/nothing", 1, 10, 1)).unwrap();
    let cases: Vec<(&str, SignedWriteData, (&str, &str))> = vec![
        ("bad signature", bad_sig, ("ok", "unauthenticated")),
        // Changing the timestamp after signing breaks the signature first (node order).
        ("altered timestamp", wrong_init, ("ok", "unauthenticated")),
        ("wrong initiator", other_init, ("ok", "badRequest")),
        ("foreign key", foreign, ("ok", "unauthorized")),
        ("signer version", version, ("ok", "badSignerVersion")),
        ("missing account", missing, ("notFound", "ok")),
    ];
    for (what, s, (tx, sig)) in cases {
        let v = submit(&d, &s);
        assert_eq!(codes(&v), (tx.into(), sig.into()), "{what}: {v}");
        assert!(v["result"][1].get("success").is_none(), "{what}");
        assert!(
            v["result"][0]["message"]
                .as_str()
                .unwrap()
                .starts_with("envelope("),
            "{what}: {v}"
        );
    }
    // Too many parts is refused on the transaction.
    let mut many = good.clone();
    many.transaction.body.entry.data = (0..101).map(|_| vec![1].into()).collect();
    let v = submit(&d, &many);
    assert_eq!(v["result"][0]["status"]["code"], "badRequest", "{v}");

    // Replayed timestamp: deliver at 10, then sign again at 10 (different content).
    submit(&d, &good);
    d.block().unwrap();
    let replay = sign_write_data(&key(), &request(DATA, 1, 10, 3)).unwrap();
    let v = submit(&d, &replay);
    assert_eq!(codes(&v), ("ok".into(), "badTimestamp".into()), "{v}");
    // Nothing was changed by the refusals.
    assert_eq!(d.block().unwrap().delivered.len(), 0);
    let r = rpc(
        &d,
        "query",
        json!({"scope": DATA, "query": {"queryType": "data", "range": {}}}),
    );
    assert_eq!(r["result"]["total"], 1);

    // Malformed envelopes are JSON-RPC errors.
    let v = rpc(
        &d,
        "submit",
        json!({"envelope": {"signatures": [], "transaction": []}}),
    );
    assert_eq!(v["error"]["code"], -33400);
}

#[test]
fn credits_are_checked_at_submission_and_charged_at_execution() {
    let d = Devnet::open(&config(0), None).unwrap();
    let v = submit(&d, &signed(1));
    assert_eq!(codes(&v), ("ok".into(), "insufficientCredits".into()));
    // Enough to submit, not to execute: one unit charged, the failure on the signature.
    d.control("POST", "/page/credits", br#"{"credits": 5}"#);
    let s = signed(2);
    assert_eq!(codes(&submit(&d, &s)), ("ok".into(), "ok".into()));
    let r = d.block().unwrap();
    assert_eq!(r.failed, 1);
    let q = rpc(&d, "query", json!({"scope": s.signature.id().to_string()}));
    assert_eq!(q["result"]["status"], "insufficientCredits", "{q}");
    assert!(
        q["result"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("have 0.05, want 0.10")
    );
    let page = rpc(&d, "query", json!({"scope": PAGE}));
    assert_eq!(page["result"]["account"]["creditBalance"], 4);
    // The transaction is recorded without a status (§4.2 step 3).
    let q = rpc(
        &d,
        "query",
        json!({"scope": s.transaction.id().to_string()}),
    );
    assert!(q["result"].get("status").is_none(), "{q}");
}

#[test]
fn levers_fix_a_wrong_key_and_a_missing_account() {
    let d = devnet();
    let other = L0Key::from_seed([3; 32]);
    let s = sign_write_data(&other, &request(DATA, 1, 1, 1)).unwrap();
    assert_eq!(codes(&submit(&d, &s)).1, "unauthorized");
    let body = json!({"public_key": other.public().to_hex()}).to_string();
    assert_eq!(d.control("POST", "/page/keys", body.as_bytes()).0, 200);
    assert_eq!(codes(&submit(&d, &s)), ("ok".into(), "ok".into()));

    let url = "acc://accumen.acme/more";
    let s = sign_write_data(&key(), &request(url, 1, 1, 1)).unwrap();
    assert_eq!(codes(&submit(&d, &s)).0, "notFound");
    let body = json!({"url": url}).to_string();
    assert_eq!(d.control("POST", "/data-accounts", body.as_bytes()).0, 200);
    assert_eq!(d.control("POST", "/data-accounts", body.as_bytes()).0, 409);
    assert_eq!(codes(&submit(&d, &s)), ("ok".into(), "ok".into()));
    assert_eq!(d.block().unwrap().delivered.len(), 2);

    // Bad lever input changes nothing.
    assert_eq!(
        d.control("POST", "/page/keys", b"{\"public_key\": \"zz\"}")
            .0,
        400
    );
    assert_eq!(
        d.control("POST", "/page/credits", b"{\"credits\": -1}").0,
        400
    );
    assert_eq!(
        d.control("POST", "/faults", b"{\"delay_ms\": 99999999}").0,
        400
    );
    assert_eq!(
        d.control("POST", "/faults", b"{\"fail_status\": \"ok\"}").0,
        400
    );
    assert_eq!(d.control("POST", "/faults", b"{\"bogus\": 1}").0, 400);
    assert_eq!(d.control("GET", "/nope", b"").0, 404);
    assert_eq!(d.control("DELETE", "/faults", b"").0, 405);
    assert_eq!(d.faults(), Faults::default());
}

#[test]
fn fault_switches_fail_calls_and_hide_deliveries() {
    let d = devnet();
    let (code, v) = d.control("POST", "/faults", br#"{"fail_status": "notReady"}"#);
    assert_eq!(code, 200, "{v}");
    let v = submit(&d, &signed(1));
    assert_eq!(v["error"]["code"], -33504);
    d.control(
        "POST",
        "/faults",
        br#"{"fail_status": null, "hide_ms": 600000}"#,
    );
    let s = signed(2);
    submit(&d, &s);
    d.block().unwrap();
    let q = rpc(
        &d,
        "query",
        json!({"scope": s.transaction.id().to_string()}),
    );
    assert_eq!(q["error"]["code"], -33404);
    d.control("POST", "/faults", br#"{"hide_ms": 0}"#);
    let q = rpc(
        &d,
        "query",
        json!({"scope": s.transaction.id().to_string()}),
    );
    assert_eq!(q["result"]["status"], "delivered");
}

#[test]
fn the_ledger_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let s = signed(42);
    {
        let d = Devnet::open(&config(1_000), Some(dir.path())).unwrap();
        submit(&d, &s);
        d.block().unwrap();
    }
    let d = Devnet::open(&config(7), Some(dir.path())).unwrap();
    let page = rpc(&d, "query", json!({"scope": PAGE}));
    assert_eq!(page["result"]["account"]["keys"][0]["lastUsedOn"], 42);
    assert_eq!(page["result"]["account"]["creditBalance"], 990);
    let q = rpc(
        &d,
        "query",
        json!({"scope": s.transaction.id().to_string()}),
    );
    assert_eq!(q["result"]["status"], "delivered");
    assert!(!dir.path().join("devnet-l0.json.tmp").exists());

    // A corrupt file is an error naming it, not a fresh ledger.
    std::fs::write(dir.path().join(STATE_FILE), b"{").unwrap();
    let err = Devnet::open(&config(7), Some(dir.path())).unwrap_err();
    assert!(err.to_string().contains(STATE_FILE), "{err}");
}

#[test]
fn pending_submissions_are_bounded() {
    let d = devnet();
    let first = signed(1);
    assert_eq!(codes(&submit(&d, &first)).1, "ok");
    {
        // Fill the block's queue without signing a thousand envelopes (slow in debug builds).
        let mut state = lock(&d.state);
        let template = state.pending[0].clone();
        for n in 1..state::MAX_PENDING {
            let mut p = template.clone();
            p.tx_hash = Hash([
                (n % 251) as u8 + 1,
                (n / 251) as u8 + 1,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
            ]);
            state.pending.push(p);
        }
    }
    let v = submit(&d, &signed(2));
    assert_eq!(v["error"]["code"], -33500, "{v}");
    assert_eq!(lock(&d.state).pending.len(), state::MAX_PENDING);
}
