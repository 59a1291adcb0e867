//! `accumen-stress`: an end-to-end load generator for a running sequencer.
//!
//! It deploys `--contracts` counters, pre-signs `--txs` counter `increment` calls spread over
//! `--senders` keys (signing is kept out of the measured window), then posts them in batches of
//! `--batch` to `POST /v1/txs` from `--connections` threads at up to `--rate` transactions per
//! second (0 = as fast as the node accepts). A watcher polls new blocks and records when each
//! transaction was seen committed. It prints one JSON report: committed transactions per second
//! over the run, submit-to-commit latency percentiles, and rejections by code.
//!
//! Only for loopback or your own test hosts: the request loops are bounded by `--txs` and by
//! `--deadline`, and the tool stops by itself.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use accumen::client::HttpClient;
use accumen_actors::types::{Action, Address, Bytes, Keypair, SignedTx, Tx};
use anyhow::{Context, bail};
use clap::Parser;
use serde_json::{Value, json};

/// Gas each counter call declares (`MAX_BLOCK_GAS` / 25,000 = 20,000 calls a block).
const CALL_GAS: u64 = 25_000;

#[derive(Debug, Parser)]
#[command(
    name = "accumen-stress",
    about = "End-to-end load generator for an Accumen sequencer"
)]
struct Args {
    /// The node's API.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    api: String,
    /// Transactions to send in total.
    #[arg(long, default_value_t = 50_000)]
    txs: usize,
    /// Distinct sender keys.
    #[arg(long, default_value_t = 500)]
    senders: usize,
    /// Counter contracts the calls are spread over (parallel execution groups).
    #[arg(long, default_value_t = 8)]
    contracts: usize,
    /// Transactions per POST /v1/txs.
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Concurrent HTTP connections.
    #[arg(long, default_value_t = 2)]
    connections: usize,
    /// Target submit rate in transactions per second (0 = unthrottled).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Give up waiting for commits after this long.
    #[arg(long, default_value = "120s")]
    deadline: humantime::Duration,
}

fn counter_wasm() -> anyhow::Result<Vec<u8>> {
    // The same counter the tests use, embedded so the tool runs from any directory.
    Ok(wat::parse_str(include_str!(
        "../../tests/fixtures/counter.wat"
    ))?)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let client = HttpClient::new(&args.api)?;
    let (_, chain) = client.get("/v1/chain")?;
    let chain_id = chain["chain_id"]
        .as_str()
        .context("GET /v1/chain has no chain_id: is this an Accumen node?")?
        .to_string();

    // Deploy the counters and wait for them.
    let deployer = Keypair::generate()?;
    let code = counter_wasm()?;
    let mut contracts = Vec::new();
    let mut deploys = Vec::new();
    for nonce in 0..args.contracts as u64 {
        let tx = deployer.sign(Tx {
            chain_id: chain_id.clone(),
            sender: deployer.public(),
            nonce,
            gas_limit: 50_000_000,
            priority: 0,
            expiry: None,
            action: Action::Deploy {
                code: Bytes(code.clone()),
            },
        });
        contracts.push(tx.tx.target());
        deploys.push(tx);
    }
    let (code_, v) = client.post("/v1/txs", &json!(deploys))?;
    if code_ != 200 || v["accepted"] != json!(deploys.len()) {
        bail!("deploys were not accepted: {code_} {v}");
    }
    let last = deploys
        .last()
        .map(|t| t.tx.id().to_hex())
        .unwrap_or_default();
    wait_included(&client, &last, Duration::from_secs(60))?;
    eprintln!("deployed {} counters", contracts.len());

    let batches = presign(&args, &chain_id, &contracts)?;
    eprintln!(
        "signed {} transactions in {} batches",
        args.txs,
        batches.len()
    );

    let start_height = client.get("/stats")?.1["block_height"]
        .as_u64()
        .unwrap_or(0);
    let submitted: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let committed: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let rejected: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));

    let watcher = {
        let (client, committed, done) =
            (HttpClient::new(&args.api)?, committed.clone(), done.clone());
        std::thread::spawn(move || watch_blocks(&client, start_height, &committed, &done))
    };

    let started = Instant::now();
    let queue = Arc::new(Mutex::new(
        batches.into_iter().enumerate().collect::<Vec<_>>(),
    ));
    queue
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .reverse();
    let mut workers = Vec::new();
    for _ in 0..args.connections.max(1) {
        let (queue, submitted, rejected, sent) = (
            queue.clone(),
            submitted.clone(),
            rejected.clone(),
            sent.clone(),
        );
        let client = HttpClient::new(&args.api)?;
        let rate = args.rate;
        workers.push(std::thread::spawn(move || -> anyhow::Result<()> {
            loop {
                let Some((_, batch)) = queue.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.pop()
                else {
                    return Ok(());
                };
                if rate > 0 {
                    // Open loop: hold back until the schedule allows this batch.
                    let due =
                        Duration::from_secs_f64(sent.load(Ordering::Relaxed) as f64 / rate as f64);
                    if let Some(wait) = due.checked_sub(started.elapsed()) {
                        std::thread::sleep(wait);
                    }
                }
                let body = json!(batch);
                let at = Instant::now();
                let (code, v) = client.post("/v1/txs", &body)?;
                sent.fetch_add(batch.len() as u64, Ordering::Relaxed);
                if code != 200 {
                    bail!("POST /v1/txs answered {code}: {v}");
                }
                let results = v["results"].as_array().cloned().unwrap_or_default();
                let mut sub = submitted.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
                let mut rej = rejected.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
                for r in results {
                    if r["accepted"] == json!(true) {
                        if let Some(h) = r["tx_hash"].as_str() {
                            sub.insert(h.to_string(), at);
                        }
                    } else {
                        let code = r["error"]["code"].as_str().unwrap_or("unknown").to_string();
                        *rej.entry(code).or_default() += 1;
                    }
                }
            }
        }));
    }
    for w in workers {
        w.join()
            .map_err(|_| anyhow::anyhow!("sender thread panicked"))??;
    }
    let submit_secs = started.elapsed().as_secs_f64();
    let accepted = submitted
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .len();
    eprintln!("submitted in {submit_secs:.2}s ({accepted} accepted); waiting for commits");

    let deadline = Instant::now() + *args.deadline;
    loop {
        let n = committed
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .len();
        if n >= accepted || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    done.store(true, Ordering::Relaxed);
    let blocks = watcher.join().unwrap_or(0);

    let sub = submitted.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    let com = committed.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    let mut latencies: Vec<f64> = sub
        .iter()
        .filter_map(|(h, at)| {
            com.get(h)
                .map(|c| c.duration_since(*at).as_secs_f64() * 1000.0)
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    let last_commit = sub
        .keys()
        .filter_map(|h| com.get(h))
        .max()
        .map(|c| c.duration_since(started).as_secs_f64())
        .unwrap_or(0.0);
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let i = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        latencies[i]
    };
    let report = json!({
        "sent": args.txs,
        "accepted": accepted,
        "committed": latencies.len(),
        "rejected": *rejected.lock().map_err(|_| anyhow::anyhow!("poisoned"))?,
        "submit_seconds": submit_secs,
        "run_seconds": last_commit,
        "committed_tps": if last_commit > 0.0 { latencies.len() as f64 / last_commit } else { 0.0 },
        "submit_to_commit_ms": {"p50": pct(0.50), "p90": pct(0.90), "p99": pct(0.99), "max": pct(1.0)},
        "blocks": blocks,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// Signs every call up front, on all cores; each batch keeps every sender's nonces in order.
fn presign(
    args: &Args,
    chain_id: &str,
    contracts: &[Address],
) -> anyhow::Result<Vec<Vec<SignedTx>>> {
    let keys: Vec<Keypair> = (0..args.senders.max(1))
        .map(|_| Keypair::generate())
        .collect::<Result<_, _>>()?;
    let per_sender = args.txs.div_ceil(keys.len());
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let chunks: Vec<Vec<(usize, Keypair)>> = {
        let mut c: Vec<Vec<(usize, Keypair)>> = (0..threads).map(|_| Vec::new()).collect();
        for (i, k) in keys.into_iter().enumerate() {
            c[i % threads].push((i, k));
        }
        c
    };
    let mut handles = Vec::new();
    for chunk in chunks {
        let chain_id = chain_id.to_string();
        let contracts = contracts.to_vec();
        let total = args.txs;
        let senders = args.senders.max(1);
        handles.push(std::thread::spawn(move || {
            let mut out = Vec::new();
            for (i, key) in chunk {
                for nonce in 0..per_sender as u64 {
                    // Sender i's n-th call is transaction number n * senders + i overall.
                    let global = nonce as usize * senders + i;
                    if global >= total {
                        break;
                    }
                    let tx = key.sign(Tx {
                        chain_id: chain_id.clone(),
                        sender: key.public(),
                        nonce,
                        // An increment uses ~14,600 gas; the block gas limit counts what a
                        // transaction declares, so declaring close to it packs 20,000 a block.
                        gas_limit: CALL_GAS,
                        priority: 0,
                        expiry: None,
                        action: Action::Call {
                            contract: contracts[i % contracts.len()],
                            entry: "increment".into(),
                            args: Bytes::default(),
                        },
                    });
                    out.push((global, tx));
                }
            }
            out
        }));
    }
    let mut all = Vec::with_capacity(args.txs);
    for h in handles {
        all.extend(
            h.join()
                .map_err(|_| anyhow::anyhow!("signing thread panicked"))?,
        );
    }
    all.sort_by_key(|(g, _)| *g);
    let txs: Vec<SignedTx> = all.into_iter().map(|(_, t)| t).collect();
    Ok(txs
        .chunks(args.batch.max(1))
        .map(<[SignedTx]>::to_vec)
        .collect())
}

fn wait_included(client: &HttpClient, hash: &str, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let (code, v) = client.get(&format!("/v1/tx/{hash}"))?;
        if code == 200 && v["status"] == "included" {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("transaction {hash} was not included within {timeout:?}")
}

/// Polls for new blocks and stamps each of their transactions with the time it was seen.
fn watch_blocks(
    client: &HttpClient,
    mut height: u64,
    committed: &Mutex<HashMap<String, Instant>>,
    done: &AtomicBool,
) -> u64 {
    let mut blocks = 0;
    while !done.load(Ordering::Relaxed) {
        let (code, block): (u16, Value) = match client.get(&format!("/v1/blocks/{}", height + 1)) {
            Ok(r) => r,
            Err(_) => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        if code != 200 {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        let now = Instant::now();
        height += 1;
        blocks += 1;
        if let (Some(txs), Ok(mut c)) = (block["txs"].as_array(), committed.lock()) {
            for t in txs {
                if let Some(h) = t.as_str() {
                    c.insert(h.to_string(), now);
                }
            }
        }
    }
    blocks
}
