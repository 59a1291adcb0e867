//! The follower role against a real sequencer: catching up on a busy chain and agreeing byte for
//! byte (blocks, receipts, state), whatever its own workers and limits; refusing tampered
//! answers (served through a small tampering proxy, in the binary and the JSON answer) and
//! halting with nothing committed;
//! resuming after SIGKILL; going stale while the sequencer is down and catching up after.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use accumen::client::HttpClient;
use accumen_actors::chain::sync::{
    BINARY_ANSWER, encode_binary_answer, parse_binary_batch, split_binary_answer,
};
use accumen_actors::testkit::call;
use accumen_actors::types::{Address, Block, Keypair};
use serde_json::{Value, json};

use crate::harness::*;

const SYNC: &str = "/v1/sync/blocks";

/// The sequencer's public key, as a follower pins it.
pub(crate) fn sequencer_key(seq: &TestNode) -> String {
    seq.get("/v1/chain").1["sequencer"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// YAML for a follower of the sequencer at `api` with `key`, plus `extra`.
pub(crate) fn follower_yaml(api: &str, key: &str, extra: &str) -> String {
    format!(
        "follower:\n  sequencer_api: \"{api}\"\n  sequencer_key: \"{key}\"\n  retry_min: \"50ms\"\n  retry_max: \"200ms\"\n  long_poll: \"1s\"\n{extra}"
    )
}

pub(crate) fn start_follower(dir: &Path, api: &str, key: &str, extra: &str) -> TestNode {
    TestNode::start_role_in(dir, "follower", &follower_yaml(api, key, extra), &[])
}

pub(crate) fn stats(node: &TestNode) -> Value {
    match HttpClient::new(&node.health).unwrap().get("/stats") {
        Ok((_, v)) => v,
        Err(e) => panic!("{e:#}\n{}", node.logs()),
    }
}

/// Waits until `f` reports `caught_up` at height `height` or above.
pub(crate) fn wait_caught_up(f: &TestNode, height: u64, timeout: Duration) {
    wait_for(&format!("the follower to reach {height}"), timeout, || {
        let s = stats(f);
        (s["state"] == "caught_up" && s["height"].as_u64().unwrap() >= height).then_some(())
    });
}

pub(crate) fn wait_state(f: &TestNode, state: &str) -> Value {
    wait_for(
        &format!("follower state {state}"),
        Duration::from_secs(30),
        || {
            let s = stats(f);
            (s["state"] == state).then_some(s)
        },
    )
}

/// Every block 1..=height as both nodes serve it to followers (canonical bytes).
fn raw_blocks(node: &TestNode, height: u64) -> Vec<String> {
    let mut out = Vec::new();
    while (out.len() as u64) < height {
        let from = out.len() as u64 + 1;
        let (code, v) = node.get(&format!("{SYNC}?from={from}&limit=256"));
        assert_eq!(code, 200, "{v}");
        let blocks = v["blocks"].as_array().unwrap();
        assert!(!blocks.is_empty(), "no block at {from}");
        out.extend(blocks.iter().map(|b| b.as_str().unwrap().to_owned()));
    }
    out.truncate(height as usize);
    out
}

/// A chain of deploys, calls, reverts, out-of-gas and traps from `senders` senders.
struct Workload {
    contracts: Vec<Address>,
    senders: Vec<Sender>,
    kv_keys: Vec<Vec<u8>>,
    txs: usize,
}

fn kv_set(key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut v = vec![key.len() as u8];
    v.extend_from_slice(key);
    v.extend_from_slice(value);
    v
}

fn workload(seq: &TestNode, senders: u8, per_sender: usize) -> Workload {
    let mut deployer = Sender::new(1);
    let kv = deploy(seq, &mut deployer, fixture("kv"));
    let counter = deploy(seq, &mut deployer, fixture("counter"));
    let trap = deploy(seq, &mut deployer, fixture("trap"));
    let looping = deploy(seq, &mut deployer, fixture("loop"));
    let mut contracts = vec![kv, counter, trap, looping];
    let kv_keys: Vec<Vec<u8>> = (0..40).map(|i| format!("k{i}").into_bytes()).collect();
    let mut senders: Vec<Sender> = (0..senders).map(|s| Sender::new(100 + s)).collect();
    let mut txs = 4;
    let mut last = String::new();
    for round in 0..per_sender.div_ceil(25) {
        let mut batch = Vec::new();
        for (s, sender) in senders.iter_mut().enumerate() {
            for j in 0..25 {
                let i = round * 25 + j;
                if i >= per_sender {
                    break;
                }
                let key = &kv_keys[(s * 7 + i) % kv_keys.len()];
                let tx = match i % 7 {
                    0 => sender.call(kv, "set", &kv_set(key, &[s as u8, i as u8])),
                    1 => sender.call(counter, "increment", &[]),
                    2 => sender.call(kv, "set_then_revert", &kv_set(key, b"gone")),
                    3 => sender.call(trap, "run", &[]),
                    // Out of gas: the loop never ends, its gas does.
                    4 => sender.sign(call(looping, "run", &[]), 200_000),
                    5 if i % 35 == 5 => {
                        let (tx, addr) = sender.deploy(fixture("kv"));
                        contracts.push(addr);
                        tx
                    }
                    5 => sender.call(kv, "get", key),
                    _ => sender.call(kv, "remove", key),
                };
                batch.push(tx);
            }
        }
        txs += batch.len();
        let (code, v) = seq.post("/v1/txs", &json_txs(&batch));
        assert_eq!(code, 200, "{v}");
        assert_eq!(v["accepted"].as_u64().unwrap() as usize, batch.len(), "{v}");
        last = v["results"].as_array().unwrap().last().unwrap()["tx_hash"]
            .as_str()
            .unwrap()
            .to_owned();
    }
    seq.wait_included(&last);
    Workload {
        contracts,
        senders,
        kv_keys,
        txs,
    }
}

/// Both nodes agree on every block (bytes), every key the workload touched and, with
/// `receipts`, every receipt (each is one request per node: the slow part).
fn assert_agree(seq: &TestNode, f: &TestNode, w: &Workload, height: u64, receipts: bool) {
    let a = raw_blocks(seq, height);
    let b = raw_blocks(f, height);
    for (h, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_eq!(x, y, "block {} differs", h + 1);
    }
    let mut statuses = std::collections::BTreeMap::<String, usize>::new();
    for raw in a.iter().filter(|_| receipts) {
        let block = Block::decode(&hex::decode(raw).unwrap()).unwrap();
        for t in &block.txs {
            let path = format!("/v1/tx/{}", t.tx.id());
            let (x, y) = (seq.get(&path), f.get(&path));
            assert_eq!(x, y, "{path}");
            let status = x.1["receipt"]["status"].as_str().unwrap().to_owned();
            *statuses.entry(status).or_default() += 1;
        }
    }
    // The chain really holds every kind of outcome.
    for kind in ["success", "reverted", "out_of_gas", "trapped"]
        .into_iter()
        .filter(|_| receipts)
    {
        assert!(
            statuses.get(kind).copied().unwrap_or(0) > 0,
            "no {kind} receipt: {statuses:?}"
        );
    }
    for c in &w.contracts {
        let path = format!("/v1/contracts/{}", c.to_hex());
        assert_eq!(seq.get(&path), f.get(&path), "{path}");
        for key in w.kv_keys.iter().map(Vec::as_slice).chain([&b"count"[..]]) {
            let path = format!("/v1/contracts/{}/state/{}", c.to_hex(), hex::encode(key));
            assert_eq!(seq.get(&path), f.get(&path), "{path}");
        }
    }
    for s in &w.senders {
        let path = format!("/v1/accounts/{}", s.public());
        assert_eq!(
            seq.get(&path).1["next_nonce"],
            f.get(&path).1["next_nonce"],
            "{path}"
        );
    }
    let (x, y) = (
        seq.get(&format!("/v1/blocks/{height}")),
        f.get(&format!("/v1/blocks/{height}")),
    );
    assert_eq!(x, y);
}

#[test]
fn followers_catch_up_on_a_busy_chain_and_agree_byte_for_byte() {
    // Blocks of at most 50: the workload's batches of 500 fill them, so the sequencer builds
    // each next block on the previous one's writes while that one commits (`vm::Layered`),
    // deploys, kv removals and reverts included, and the followers re-execute every block on
    // committed state: any difference between the two shows as a differing block.
    let seq = TestNode::start("block_time: \"100ms\"\nmax_transactions: 50\n");
    let key = sequencer_key(&seq);
    // One follower tails the chain while it is built, with more workers than the sequencer.
    let live_dir = tempfile::tempdir().unwrap();
    let live = start_follower(
        live_dir.path(),
        &seq.api,
        &key,
        "execution:\n  workers: 4\n  timeout: \"500ms\"\n",
    );
    let started = Instant::now();
    let w = workload(&seq, 20, 150);
    let produced_in = started.elapsed();
    let height = seq.height();
    assert!(w.txs >= 3000, "{}", w.txs);

    // Another starts from nothing once the chain is there, with one worker and its own gas and
    // memory limits (below the chain's: the chain's rule).
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let f = start_follower(
        dir.path(),
        &seq.api,
        &key,
        "execution:\n  workers: 1\n  timeout: \"500ms\"\n  gas_limit: 1000000\nwasm:\n  max_memory_pages: 16\napi:\n  query_gas_limit: 1000000\n",
    );
    wait_caught_up(&f, height, Duration::from_secs(120));
    let replayed_in = started.elapsed();
    wait_caught_up(&live, height, Duration::from_secs(60));
    let s = stats(&f);
    // Figures for the report, not asserted.
    eprintln!(
        "replay: {} txs in {height} blocks: sequencer produced them in {produced_in:?} \
         ({:.0} tx/s); a new follower replayed them in {replayed_in:?} ({:.0} tx/s, {:.0} \
         blocks/s, start-up included); /stats replay_rate {}",
        w.txs,
        w.txs as f64 / produced_in.as_secs_f64(),
        w.txs as f64 / replayed_in.as_secs_f64(),
        height as f64 / replayed_in.as_secs_f64(),
        s["replay_rate"]
    );
    assert!(
        f.find_log("execution.gas_limit").is_some(),
        "override not reported"
    );
    let full = raw_blocks(&seq, height)
        .iter()
        .filter(|raw| Block::decode(&hex::decode(raw).unwrap()).unwrap().txs.len() == 50)
        .count();
    assert!(
        full >= 30,
        "only {full} full blocks: the overlap was hardly exercised"
    );
    assert_agree(&seq, &f, &w, height, true);
    // Receipts are committed to by the blocks' receipts roots, which the live follower
    // recomputed and matched before committing each block.
    assert_agree(&seq, &live, &w, height, false);

    // The follower is healthy, answers reads, and refuses transactions naming the sequencer.
    let (code, v) = f.get("/health");
    assert_eq!(code, 200, "{v}");
    assert_eq!(s["role"], "follower");
    assert_eq!(s["anchored_height"], Value::Null);
    let (code, v) = f.post("/v1/tx", &json!({}));
    assert_eq!(code, 405, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains(&seq.api),
        "{v}"
    );
    let metrics = f.metrics_text();
    assert!(metrics.contains("accumen_follower_verification_failures_total 0"));
    assert!(metrics.contains("accumen_follower_lag_blocks"));
}

/// How the proxy alters the sequencer's sync answers.
#[derive(Clone, Copy, Debug)]
enum Tamper {
    None,
    /// A flipped byte in block `h`'s bytes.
    FlipByte(u64),
    /// Block `h` with another state root, signed with the sequencer's real key.
    StateRoot(u64),
    /// Block `h` with another receipts root, signed with the sequencer's real key.
    ReceiptsRoot(u64),
    /// Block `h` signed by another key.
    Foreign(u64),
    /// Block `h` left out of the answer.
    Skip(u64),
    /// The answer holding block `h` cut short by one byte (its framing no longer adds up).
    Truncate(u64),
}

/// A forwarding HTTP server in front of a sequencer (whose address can change) that alters its
/// sync answers as `tamper` says.
struct Proxy {
    url: String,
    target: Arc<Mutex<String>>,
    tamper: Arc<Mutex<Tamper>>,
    /// Sync answers go out in the binary encoding (as the sequencer answers followers) rather
    /// than JSON (as a sequencer without the binary answer would).
    binary: Arc<AtomicBool>,
}

impl Proxy {
    fn start(target: &str, key: Option<Keypair>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let target = Arc::new(Mutex::new(target.to_owned()));
        let tamper = Arc::new(Mutex::new(Tamper::None));
        let binary = Arc::new(AtomicBool::new(false));
        let key = Arc::new(key);
        let (t, tm, bin) = (target.clone(), tamper.clone(), binary.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let (t, tm, key, bin) = (t.clone(), tm.clone(), key.clone(), bin.clone());
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(conn.try_clone().unwrap());
                    let mut line = String::new();
                    if reader.read_line(&mut line).is_err() {
                        return;
                    }
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                            break;
                        }
                    }
                    let path = line.split(' ').nth(1).unwrap_or("/").to_owned();
                    let target = t.lock().unwrap().clone();
                    let (code, mut body) = match HttpClient::new(&target).unwrap().get_raw(&path) {
                        Ok(r) => r,
                        Err(_) => (502, b"{}".to_vec()),
                    };
                    let mut content_type = "application/json";
                    if code == 200 && path.starts_with(SYNC) {
                        let tamper = *tm.lock().unwrap();
                        body = alter(&body, tamper, key.as_ref().as_ref());
                        let cut = matches!(tamper, Tamper::Truncate(h) if covers(&path, &body, h));
                        if bin.load(Ordering::Relaxed) {
                            body = to_binary(&body);
                            content_type = BINARY_ANSWER;
                        }
                        if cut {
                            body.pop();
                        }
                    }
                    let head = format!(
                        "HTTP/1.1 {code} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = conn.write_all(head.as_bytes());
                    let _ = conn.write_all(&body);
                });
            }
        });
        Proxy {
            url,
            target,
            tamper,
            binary,
        }
    }
}

/// Whether the JSON sync answer to the request `path` holds block `h`.
fn covers(path: &str, json_body: &[u8], h: u64) -> bool {
    let from: u64 = path
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("from="))
        .and_then(|f| f.parse().ok())
        .unwrap();
    let v: Value = serde_json::from_slice(json_body).unwrap();
    let n = v["blocks"].as_array().unwrap().len() as u64;
    (from..from + n).contains(&h)
}

/// A JSON sync answer in the binary encoding, block bytes as they are (altered or not).
fn to_binary(json_body: &[u8]) -> Vec<u8> {
    let v: Value = serde_json::from_slice(json_body).unwrap();
    let blocks = v["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| hex::decode(b.as_str().unwrap()).unwrap());
    encode_binary_answer(v["sequencer_height"].as_u64().unwrap(), blocks, usize::MAX)
}

fn alter(body: &[u8], tamper: Tamper, key: Option<&Keypair>) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(body).unwrap();
    let blocks = v["blocks"].as_array_mut().unwrap();
    let mut out = Vec::new();
    for b in blocks.drain(..) {
        let raw = hex::decode(b.as_str().unwrap()).unwrap();
        let block = Block::decode(&raw).unwrap();
        let h = block.header.height;
        let reseal = |mut header: accumen_actors::types::BlockHeader, k: &Keypair| {
            header.sequencer = k.public();
            hex::encode(Block::seal(header, block.txs.clone(), k).encode())
        };
        let new = match tamper {
            Tamper::FlipByte(t) if t == h => {
                let mut raw = raw.clone();
                let i = raw.len() / 2;
                raw[i] ^= 0x01;
                Some(hex::encode(raw))
            }
            Tamper::StateRoot(t) if t == h => {
                let mut header = block.header.clone();
                header.state_root.0[0] ^= 0xff;
                Some(reseal(header, key.unwrap()))
            }
            Tamper::ReceiptsRoot(t) if t == h => {
                let mut header = block.header.clone();
                header.receipts_root.0[0] ^= 0xff;
                Some(reseal(header, key.unwrap()))
            }
            Tamper::Foreign(t) if t == h => {
                Some(reseal(block.header.clone(), &Keypair::generate().unwrap()))
            }
            Tamper::Skip(t) if t == h => continue,
            _ => None,
        };
        out.push(Value::String(new.unwrap_or_else(|| hex::encode(&raw))));
    }
    *blocks = out;
    serde_json::to_vec(&v).unwrap()
}

#[test]
fn tampered_answers_halt_the_follower_with_nothing_committed() {
    let seq_dir = tempfile::tempdir().unwrap();
    let mut seq = TestNode::start_in(
        seq_dir.path(),
        "storage: persistent\nblock_time: \"100ms\"\n",
        &[],
    );
    let key_file = seq_dir.path().join("sequencer.key");
    let key = accumen::keyfile::read(&key_file).unwrap();
    let mut sender = Sender::new(7);
    let kv = deploy(&seq, &mut sender, fixture("kv"));
    let hash = submit_ok(&seq, &sender.call(kv, "set", &kv_set(b"a", b"1")));
    let target = seq.wait_included(&hash)["block_height"].as_u64().unwrap();
    wait_for("a few blocks more", Duration::from_secs(10), || {
        (seq.height() > target + 3).then_some(())
    });
    // Every tamper in the binary answer followers ask for; two also in JSON, as a sequencer
    // without the binary answer sends.
    for (tamper, binary) in [
        (Tamper::FlipByte(target), true),
        (Tamper::StateRoot(target), true),
        (Tamper::ReceiptsRoot(target), true),
        (Tamper::Foreign(target), true),
        (Tamper::Skip(target), true),
        (Tamper::Truncate(target), true),
        (Tamper::FlipByte(target), false),
        (Tamper::Skip(target), false),
    ] {
        let proxy = Proxy::start(&seq.api, Some(accumen::keyfile::read(&key_file).unwrap()));
        *proxy.tamper.lock().unwrap() = tamper;
        proxy.binary.store(binary, Ordering::Relaxed);
        let dir = tempfile::tempdir().unwrap();
        let f = start_follower(dir.path(), &proxy.url, &key.public().to_string(), "");
        let s = wait_state(&f, "halted");
        // Blocks before the tampered one may be committed (those of earlier answers, and of
        // the same answer for a block that fails verification); none from it on.
        let h = s["height"].as_u64().unwrap();
        assert!(h < target, "{tamper:?}: {s}");
        let (code, v) = f.get(&format!("/v1/blocks/{target}"));
        assert_eq!(code, 404, "{tamper:?}: {v}");
        let (code, v) = f.get("/health");
        assert_eq!(code, 503, "{tamper:?}: {v}");
        assert_eq!(v["checks"]["sync"], false, "{v}");
        let line = f.find_log("follower halted").expect("no halt line");
        assert!(line.contains("ERROR"), "{line}");
        if let Tamper::Truncate(_) = tamper {
            // A malformed answer names no block: the error says what did not add up.
            assert!(line.contains("binary answer"), "{line}");
        } else {
            assert!(
                line.contains(&format!("height={target}")),
                "{tamper:?}: {line}"
            );
        }
        if let Tamper::StateRoot(_) = tamper {
            assert!(line.contains("state root mismatch: header"), "{line}");
        }
        assert!(
            f.metrics_text()
                .contains("accumen_follower_verification_failures_total 1"),
            "{tamper:?}"
        );
        // Sticky: it stays halted, whatever the sequencer answers now.
        *proxy.tamper.lock().unwrap() = Tamper::None;
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(stats(&f)["state"], "halted");
        assert_eq!(stats(&f)["height"], h);
    }
    seq.terminate();
}

#[test]
fn a_follower_resumes_after_sigkill_and_rides_out_a_sequencer_outage() {
    let seq_dir = tempfile::tempdir().unwrap();
    let mut seq = TestNode::start_in(
        seq_dir.path(),
        "storage: persistent\nblock_time: \"50ms\"\n",
        &[],
    );
    let key = sequencer_key(&seq);
    let mut sender = Sender::new(9);
    let kv = deploy(&seq, &mut sender, fixture("kv"));
    let proxy = Proxy::start(&seq.api, None);
    wait_for("150 blocks", Duration::from_secs(60), || {
        (seq.height() >= 150).then_some(())
    });

    // SIGKILL mid-sync (one block per fetch, so it is still syncing), then resume.
    let dir = tempfile::tempdir().unwrap();
    let yaml = |api: &str, batch: u32| {
        format!(
            "storage: persistent\nfollower:\n  sequencer_api: \"{api}\"\n  sequencer_key: \"{key}\"\n  batch_size: {batch}\n  retry_min: \"50ms\"\n  retry_max: \"200ms\"\n  long_poll: \"1s\"\n"
        )
    };
    let mut f = TestNode::start_role_in(dir.path(), "follower", &yaml(&proxy.url, 1), &[]);
    wait_for(
        "the follower to be mid-sync",
        Duration::from_secs(60),
        || (stats(&f)["height"].as_u64().unwrap() >= 50).then_some(()),
    );
    f.kill();
    let f = TestNode::start_role_in(dir.path(), "follower", &yaml(&proxy.url, 64), &[]);
    let line = f.find_log("starting follower").unwrap();
    assert!(!line.contains(" height=0 "), "did not resume: {line}");
    let height = seq.height();
    wait_caught_up(&f, height, Duration::from_secs(120));
    let path = format!("/v1/blocks/{height}");
    assert_eq!(seq.get(&path), f.get(&path));

    // The sequencer stops: the follower goes stale, stays up, and catches up when it is back.
    seq.terminate();
    let s = wait_state(&f, "stale");
    assert!(s["height"].as_u64().unwrap() >= height);
    assert_eq!(f.get("/v1/blocks/1").0, 200, "reads still served");
    let seq = TestNode::start_in(
        seq_dir.path(),
        "storage: persistent\nblock_time: \"50ms\"\n",
        &[],
    );
    *proxy.target.lock().unwrap() = seq.api.clone();
    let hash = submit_ok(&seq, &sender.call(kv, "set", &kv_set(b"b", b"2")));
    let at = seq.wait_included(&hash)["block_height"].as_u64().unwrap();
    wait_caught_up(&f, at, Duration::from_secs(60));
    let path = format!("/v1/tx/{hash}");
    assert_eq!(seq.get(&path), f.get(&path));
}

#[test]
fn the_sync_endpoint_bounds_what_it_serves_and_waits_for_new_blocks() {
    let seq = TestNode::start("block_time: \"50ms\"\n");
    wait_for("a few blocks", Duration::from_secs(10), || {
        (seq.height() >= 3).then_some(())
    });
    for bad in [
        "",
        "?from=0",
        "?from=abc",
        "?from=1&limit=0",
        "?from=1&colour=red",
        "?from=-1",
    ] {
        let (code, v) = seq.get(&format!("{SYNC}{bad}"));
        assert_eq!(code, 400, "{bad}: {v}");
        assert_eq!(error_code(&v), "invalid_query", "{bad}: {v}");
    }
    wait_for("300 blocks", Duration::from_secs(60), || {
        (seq.height() >= 300).then_some(())
    });
    // A larger limit is capped, never an error.
    let (code, v) = seq.get(&format!("{SYNC}?from=1&limit=100000"));
    assert_eq!(code, 200);
    assert_eq!(v["blocks"].as_array().unwrap().len(), 256);
    // Beyond the head without waiting: no blocks, and the head.
    let (_, v) = seq.get(&format!("{SYNC}?from=1000000"));
    assert_eq!(v["blocks"], json!([]));
    assert!(v["sequencer_height"].as_u64().unwrap() >= 300);
    // Waiting for the next block: the answer brings it (wait_ms is capped at 10 s).
    let next = seq.height() + 1;
    let (code, v) = seq.get(&format!("{SYNC}?from={next}&wait_ms=600000"));
    assert_eq!(code, 200, "{v}");
    let blocks = v["blocks"].as_array().unwrap();
    assert!(!blocks.is_empty(), "{v}");
    let b = Block::decode(&hex::decode(blocks[0].as_str().unwrap()).unwrap()).unwrap();
    assert_eq!(b.header.height, next);

    // The binary answer (Accept: application/octet-stream, with parameters or among other
    // types) carries the same blocks as the JSON one; anything else gets JSON.
    let client = HttpClient::new(&seq.api).unwrap();
    let path = format!("{SYNC}?from=10&limit=20");
    let (_, json) = seq.get(&path);
    let want: Vec<Vec<u8>> = json["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| hex::decode(b.as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(want.len(), 20);
    for accept in [
        BINARY_ANSWER,
        "application/octet-stream; q=1",
        "application/json;q=0.5, Application/Octet-Stream",
    ] {
        let (code, content_type, body) = client.get_accepting(&path, accept).unwrap();
        assert_eq!(
            (code, content_type.as_str()),
            (200, BINARY_ANSWER),
            "{accept}"
        );
        let batch = parse_binary_batch(&body, 10, 20).unwrap();
        assert!(batch.sequencer_height >= next);
        let got: Vec<Vec<u8>> = batch.blocks.iter().map(Block::encode).collect();
        assert_eq!(got, want, "{accept}");
        let (_, frames) = split_binary_answer(&body, 20).unwrap();
        assert_eq!(frames, want, "stored bytes as they are");
    }
    for accept in [
        "application/json",
        "*/*",
        "text/plain",
        "application/octet-stream;q=0",
    ] {
        let (code, content_type, body) = client.get_accepting(&path, accept).unwrap();
        assert_eq!(
            (code, content_type.as_str()),
            (200, "application/json"),
            "{accept}"
        );
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["blocks"], json["blocks"], "{accept}");
    }
    // Bad queries are refused the same way whatever the answer's encoding.
    let (code, content_type, body) = client
        .get_accepting(&format!("{SYNC}?from=0"), BINARY_ANSWER)
        .unwrap();
    assert_eq!(code, 400);
    assert_eq!(content_type, "application/json");
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error_code(&v), "invalid_query", "{v}");
}
