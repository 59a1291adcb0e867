//! `accumen devnet-l0` as a process, driven by the production `L0Client`: delivery and data
//! queries, every check's status, resubmission, restart with `--data-dir`, and each fault switch
//! as the client classifies it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use accumen::client::HttpClient;
use accumen_actors::bridge::codec::{L0Key, SignedWriteData, WriteDataRequest, sign_write_data};
use accumen_actors::bridge::json::Status;
use accumen_actors::bridge::{AccUrl, ErrorClass, L0Api, L0Client, L0Error};
use accumen_actors::types::Hash;
use serde_json::{Value, json};

use crate::harness::{BIN, wait_for};

pub(crate) const PAGE: &str = "acc://accumen.acme/book/1";
pub(crate) const DATA: &str = "acc://accumen.acme/anchors";

pub(crate) fn key() -> L0Key {
    L0Key::from_seed([11; 32])
}

/// A running `accumen devnet-l0`.
pub(crate) struct L0 {
    child: Child,
    pub(crate) v3: String,
    control: String,
    logs: Arc<Mutex<Vec<String>>>,
}

impl L0 {
    pub(crate) fn start(dir: Option<&Path>, extra: &[&str]) -> L0 {
        let public = key().public().to_hex();
        let mut cmd = Command::new(BIN);
        cmd.args([
            "devnet-l0",
            "--listen",
            "127.0.0.1:0",
            "--control",
            "127.0.0.1:0",
            "--key-page",
            PAGE,
            "--public-key",
            &public,
            "--data-account",
            DATA,
            "--block-time",
            "100ms",
        ])
        .args(extra)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        if let Some(d) = dir {
            cmd.arg("--data-dir").arg(d);
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let line = wait_for("devnet-l0 to listen", Duration::from_secs(30), || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "devnet-l0 exited early with {status}:\n{}",
                    logs.lock().unwrap().join("\n")
                );
            }
            logs.lock()
                .unwrap()
                .iter()
                .find(|l| l.contains("listening"))
                .cloned()
        });
        let addr = |k: &str| -> String {
            let start = line.find(&format!("{k}=")).unwrap() + k.len() + 1;
            let rest = &line[start..];
            rest[..rest.find(' ').unwrap_or(rest.len())].to_string()
        };
        L0 {
            v3: format!("http://{}/v3", addr("v3")),
            control: format!("http://{}", addr("control")),
            child,
            logs,
        }
    }

    pub(crate) fn client(&self) -> L0Client {
        L0Client::new(&self.v3, Duration::from_millis(1_000)).unwrap()
    }

    pub(crate) fn control(&self, path: &str, body: Value) -> Value {
        let (code, v) = HttpClient::new(&self.control)
            .unwrap()
            .post(path, &body)
            .unwrap();
        assert_eq!(code, 200, "{path}: {v}");
        v
    }

    fn terminate(&mut self) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let status = wait_for("devnet-l0 to exit", Duration::from_secs(30), || {
            self.child.try_wait().unwrap()
        });
        assert!(
            status.success(),
            "{status}\n{}",
            self.logs.lock().unwrap().join("\n")
        );
    }
}

impl Drop for L0 {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub(crate) fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn req(principal: &str, version: u64, timestamp: u64) -> WriteDataRequest {
    WriteDataRequest {
        principal: AccUrl::parse(principal).unwrap(),
        signer: AccUrl::parse(PAGE).unwrap(),
        signer_version: version,
        timestamp,
        memo: "accumen anchor 42".into(),
        metadata: br#"{"height":42}"#.to_vec(),
        parts: vec![vec![0xf1; 32], b"accumen/v1".to_vec()],
    }
}

fn signed(timestamp: u64) -> SignedWriteData {
    sign_write_data(&key(), &req(DATA, 1, timestamp)).unwrap()
}

/// Polls the transaction until it is delivered.
pub(crate) fn wait_delivered(rt: &tokio::runtime::Runtime, c: &L0Client, s: &SignedWriteData) {
    let id = s.transaction.id();
    wait_for("delivery", Duration::from_secs(20), || {
        let rec = rt.block_on(c.query_message(&id)).unwrap()?;
        (rec.status == Some(Status::Delivered)).then_some(())
    });
}

fn refused(rt: &tokio::runtime::Runtime, c: &L0Client, s: &SignedWriteData) -> L0Error {
    rt.block_on(c.submit(&s.envelope())).unwrap_err()
}

#[test]
fn devnet_delivers_and_serves_data_queries() {
    let l0 = L0::start(None, &[]);
    let (rt, c) = (rt(), l0.client());
    let status = rt.block_on(c.network_status()).unwrap();
    assert_eq!(status.network.network_name, "DevNet");

    let s = signed(1_735_689_600_000);
    let subs = rt.block_on(c.submit(&s.envelope())).unwrap();
    assert_eq!(subs.len(), 2);
    assert_eq!(subs[0].status.tx_id, s.transaction.id());
    wait_delivered(&rt, &c, &s);

    let data = AccUrl::parse(DATA).unwrap();
    let entry = s.check().unwrap().entry_hash;
    let range = rt.block_on(c.query_data_range(&data, 0, 10)).unwrap();
    assert_eq!(range.total, 1);
    assert_eq!(range.records[0].entry, entry);
    let value = range.records[0].value.as_ref().unwrap();
    assert_eq!(value.id, s.transaction.id());
    let by_hash = rt.block_on(c.query_data_entry(&data, &entry)).unwrap();
    assert!(by_hash.is_some());
    assert_eq!(
        rt.block_on(c.query_data_entry(&data, &Hash([1; 32])))
            .unwrap(),
        None
    );
    let page = rt
        .block_on(c.query_account(&AccUrl::parse(PAGE).unwrap()))
        .unwrap()
        .unwrap();
    let account = serde_json::to_value(&page.account).unwrap();
    assert_eq!(account["keys"][0]["lastUsedOn"], 1_735_689_600_000u64);
    assert_eq!(account["creditBalance"], 1_000_000 - 10);
    assert_eq!(
        rt.block_on(c.query_account(&AccUrl::parse("acc://nobody.acme").unwrap()))
            .unwrap(),
        None
    );

    // Resubmitting the delivered bytes: already known, nothing charged or written twice.
    let err = refused(&rt, &c, &s);
    assert_eq!(err.class, ErrorClass::AlreadyKnown, "{err}");
    let range = rt.block_on(c.query_data_range(&data, 0, 10)).unwrap();
    assert_eq!(range.total, 1);
}

#[test]
fn devnet_refuses_each_bad_envelope_with_its_status() {
    let l0 = L0::start(None, &[]);
    let (rt, c) = (rt(), l0.client());
    let final_with = |s: &SignedWriteData, status: Status, what: &str| {
        let err = refused(&rt, &c, s);
        assert_eq!(err.class, ErrorClass::Final, "{what}: {err}");
        assert_eq!(err.status, Some(status), "{what}: {err}");
    };

    let mut bad_sig = signed(10);
    bad_sig.signature.signature.0[3] ^= 0x40;
    final_with(&bad_sig, Status::Unauthenticated, "bad signature");

    // A valid signature that does not hash to the header's initiator.
    let mut wrong_init = signed(10);
    wrong_init.transaction.header.initiator = Hash([5; 32]);
    let tx_hash = wrong_init.transaction.hash();
    wrong_init.signature.transaction_hash = tx_hash;
    let digest = wrong_init.signature.signing_digest(&tx_hash);
    wrong_init.signature.signature = key().sign_digest(&digest);
    final_with(&wrong_init, Status::BadRequest, "wrong initiator");

    let version = sign_write_data(&key(), &req(DATA, 2, 10)).unwrap();
    final_with(&version, Status::BadSignerVersion, "signer version");

    let foreign = sign_write_data(&L0Key::from_seed([12; 32]), &req(DATA, 1, 10)).unwrap();
    final_with(&foreign, Status::Unauthorized, "foreign key");

    let missing = sign_write_data(&key(), &req("acc://accumen.acme/gone", 1, 10)).unwrap();
    final_with(&missing, Status::NotFound, "missing data account");

    let mut many = signed(10);
    many.transaction.body.entry.data = (0..101).map(|i| vec![i as u8].into()).collect();
    final_with(&many, Status::BadRequest, "101 parts");

    // Replayed timestamp: 20 is delivered, then other content signed at 20 and at 19.
    let first = signed(20);
    rt.block_on(c.submit(&first.envelope())).unwrap();
    wait_delivered(&rt, &c, &first);
    let mut again = req(DATA, 1, 20);
    again.memo = "other".into();
    final_with(
        &sign_write_data(&key(), &again).unwrap(),
        Status::BadTimestamp,
        "same timestamp",
    );
    again.timestamp = 19;
    final_with(
        &sign_write_data(&key(), &again).unwrap(),
        Status::BadTimestamp,
        "older timestamp",
    );

    // No credits, then credits restored: the same bytes go through.
    l0.control("/page/credits", json!({"credits": 0}));
    let later = signed(30);
    final_with(&later, Status::InsufficientCredits, "no credits");
    l0.control("/page/credits", json!({"credits": 100}));
    rt.block_on(c.submit(&later.envelope())).unwrap();
    wait_delivered(&rt, &c, &later);
}

#[test]
fn devnet_keeps_its_ledger_across_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let s = signed(77);
    {
        let mut l0 = L0::start(Some(tmp.path()), &[]);
        let (rt, c) = (rt(), l0.client());
        rt.block_on(c.submit(&s.envelope())).unwrap();
        wait_delivered(&rt, &c, &s);
        l0.terminate();
    }
    // Different flags: the saved ledger rules.
    let l0 = L0::start(Some(tmp.path()), &["--credits", "5"]);
    let (rt, c) = (rt(), l0.client());
    let rec = rt.block_on(c.query_message(&s.transaction.id())).unwrap();
    assert_eq!(rec.unwrap().status, Some(Status::Delivered));
    let range = rt
        .block_on(c.query_data_range(&AccUrl::parse(DATA).unwrap(), 0, 10))
        .unwrap();
    assert_eq!(range.total, 1);
    let page = rt
        .block_on(c.query_account(&AccUrl::parse(PAGE).unwrap()))
        .unwrap()
        .unwrap();
    let account = serde_json::to_value(&page.account).unwrap();
    assert_eq!(account["keys"][0]["lastUsedOn"], 77);
    // The replay protection survived too.
    assert_eq!(refused(&rt, &c, &s).class, ErrorClass::AlreadyKnown);
}

#[test]
fn devnet_fault_switches_reach_the_client_classified() {
    let l0 = L0::start(None, &[]);
    let (rt, c) = (rt(), l0.client());
    let status = || rt.block_on(c.network_status());

    l0.control("/faults", json!({"refuse": true}));
    let err = status().unwrap_err();
    assert_eq!(
        (err.class, err.status.clone()),
        (ErrorClass::Retryable, None),
        "{err}"
    );
    l0.control("/faults", json!({"refuse": false}));
    status().unwrap();

    l0.control("/faults", json!({"delay_ms": 3000}));
    let err = status().unwrap_err();
    assert_eq!(err.class, ErrorClass::Retryable, "{err}");
    l0.control("/faults", json!({"delay_ms": 0}));

    l0.control("/faults", json!({"fail_status": "notReady"}));
    let err = status().unwrap_err();
    assert_eq!(err.class, ErrorClass::Retryable);
    assert_eq!(err.status, Some(Status::NotReady));
    l0.control("/faults", json!({"fail_status": "unauthorized"}));
    let err = refused(&rt, &c, &signed(1));
    assert_eq!(err.class, ErrorClass::Final);
    assert_eq!(err.status, Some(Status::Unauthorized));
    l0.control("/faults", json!({"fail_status": null}));

    // A delivered transaction hidden for a while: the client sees "not found yet".
    l0.control("/faults", json!({"hide_ms": 600000}));
    let s = signed(2);
    rt.block_on(c.submit(&s.envelope())).unwrap();
    wait_for("the entry", Duration::from_secs(20), || {
        let r = rt
            .block_on(c.query_data_range(&AccUrl::parse(DATA).unwrap(), 0, 10))
            .unwrap();
        (r.total == 1).then_some(())
    });
    assert_eq!(
        rt.block_on(c.query_message(&s.transaction.id())).unwrap(),
        None
    );
    l0.control("/faults", json!({"hide_ms": 0}));
    wait_delivered(&rt, &c, &s);
}

#[test]
fn devnet_refuses_bad_flags() {
    let out = Command::new(BIN)
        .args([
            "devnet-l0",
            "--listen",
            "127.0.0.1:0",
            "--key-page",
            "accumen.acme/book/1",
            "--public-key",
            "00",
            "--data-account",
            DATA,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--key-page"), "{err}");

    // The control API can change the ledger: loopback only.
    let public = key().public().to_hex();
    let out = Command::new(BIN)
        .args([
            "devnet-l0",
            "--listen",
            "127.0.0.1:0",
            "--control",
            "0.0.0.0:0",
            "--key-page",
            PAGE,
            "--public-key",
            &public,
            "--data-account",
            DATA,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("loopback"), "{err}");
}
