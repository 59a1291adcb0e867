//! `accumen-stress`: an end-to-end load generator for a running sequencer.
//!
//! It deploys `--contracts` counters, then pre-signs the calls (counter `increment`, carrying
//! `--payload-bytes` of args, which the counter ignores) from `--senders` keys, on every core,
//! and encodes the request bodies (`--format binary`: the framing of `POST /v1/txs` with
//! `application/octet-stream`; `--format json`: a JSON array) before the measured window. It
//! then posts them in batches of `--batch` from `--connections` threads, open loop at `--rate`
//! transactions per second (0 = as fast as the node answers), until `--txs` are sent or
//! `--duration` has passed, and waits up to `--deadline` for the accepted ones to commit.
//!
//! Commits are seen by one watcher that long-polls `GET /v1/sync/blocks` (several blocks per
//! request, answered the moment a block commits), so watching costs a few requests a second
//! whatever the transaction rate, and each transaction's submit-to-commit latency is the time
//! from the start of its batch's request to the watcher receiving its block. The watcher finds
//! its transactions by sender and nonce (transaction `g` is sender `g % senders`'s nonce
//! `g / senders`), not by id: it trusts the node it measures, so it neither re-encodes blocks
//! to check them (as a follower must) nor hashes every transaction. Parsing blocks and hashing
//! ids had been about 70% of this tool's CPU at 35,000 tx/s, CPU the node did not get. It asks
//! for the binary sync answer and, for binary bodies, the binary `/v1/txs` answer (no hex for the
//! node to write or for the tool to read), and reads blocks through a borrowing view. Every second a
//! progress line goes to stderr (offered, accepted, committed, p50/p99 so far, errors); at the
//! end a summary goes to stdout, human-readable or, with `--json`, one JSON object:
//! `committed_tps`, `p50_ms`, `p95_ms`, `p99_ms`, `max_ms`, `errors` (refused transactions by
//! error code, whole failed requests by their code or `http_<status>`, `transport`), the counts
//! `offered` >= `accepted` >= `committed`, the timings, `client_cpu_seconds` (this tool's own
//! CPU during the run, so its share of a shared machine is known) and the `config`.
//!
//! With `--acked-out FILE` every transaction the node acknowledged (answered `accepted`, the
//! deploys included) is appended to FILE, one id in hex a line, as soon as its answer is read:
//! one `write` per answer, no buffering in the process, so after the tool (or the node) is
//! killed the file holds every acknowledged id whose answer had been read, with at most a
//! partial last line. `deploy/crash-loop.sh` checks after each SIGKILL of the node that none of
//! them was lost (`accumen-crash-check`).
//!
//! Only for loopback or your own test hosts: the request loops are bounded by `--txs`,
//! `--duration` and `--deadline`, and the tool stops by itself. It shares the machine with the
//! node when run locally: its own CPU (signing before the window; encoding nothing during it)
//! is kept out of the measured window as far as it can be.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use accumen::api::batch::{BINARY_CONTENT_TYPE, frame_encoded, parse_answer};
use accumen::client::HttpClient;
use accumen_actors::chain::sync::{
    BINARY_ANSWER, SyncAnswer, decode_hex_block, is_binary_answer, split_binary_answer,
};
use accumen_actors::types::{
    Action, Address, Bytes, FastMap, Hash, Keypair, MAX_ARGS_LEN, PublicKey, SignedTx, Tx,
    decode_trusted,
};
use accumen_actors::vm::gas::TX_ARGS_BYTE;
use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use serde_json::{Value, json};

/// jemalloc, as the node has (`src/main.rs`, feature `jemalloc`): with glibc's malloc, the
/// allocations of reading answers and blocks were about a fifth of this tool's CPU during the
/// window, CPU taken from the node it shares the machine with.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Gas each counter call declares before its args (`MAX_BLOCK_GAS` / 25,000 = 20,000 calls a
/// block). An increment uses about 14,600; the block gas limit counts what a transaction
/// declares, so declaring close to it packs the most calls a block.
const CALL_GAS: u64 = 25_000;
/// Blocks asked for per watcher request.
const WATCH_BLOCKS: u32 = 64;
/// How long one watcher request may wait for the next block.
const WATCH_WAIT_MS: u64 = 1_000;
/// Latency histogram for the progress line: 1 ms buckets up to this (the last catches more).
const HIST_MS: usize = 60_000;
/// Transactions a second pre-signed for `--duration` without `--rate` or `--txs`.
const UNTHROTTLED_PER_SEC: u64 = 30_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// `application/octet-stream`: the canonical binary framing.
    Binary,
    /// `application/json`: a JSON array of transactions.
    Json,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Binary => "binary",
            Format::Json => "json",
        }
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "accumen-stress",
    about = "End-to-end load generator for an Accumen sequencer"
)]
struct Args {
    /// The node's API.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    api: String,
    /// Transactions to send in total [default: --rate × --duration with both, 30,000 a second
    /// of --duration without --rate, else 50,000].
    #[arg(long)]
    txs: Option<u64>,
    /// Stop sending after this long (e.g. 60s), even if transactions are left.
    #[arg(long)]
    duration: Option<humantime::Duration>,
    /// Target submit rate in transactions per second (0 = as fast as the node answers).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Distinct sender keys (each has its own nonce sequence).
    #[arg(long, default_value_t = 500)]
    senders: u64,
    /// Counter contracts the calls are spread over (parallel execution groups).
    #[arg(long, default_value_t = 8)]
    contracts: u64,
    /// Bytes of args each call carries (the counter ignores them; they cost gas and bytes).
    #[arg(long, default_value_t = 0)]
    payload_bytes: usize,
    /// Request body format.
    #[arg(long, value_enum, default_value_t = Format::Binary)]
    format: Format,
    /// Transactions per POST /v1/txs.
    #[arg(long, default_value_t = 500)]
    batch: u64,
    /// Concurrent HTTP connections sending.
    #[arg(long, default_value_t = 2)]
    connections: usize,
    /// After sending, wait at most this long for accepted transactions to commit.
    #[arg(long, default_value = "60s")]
    deadline: humantime::Duration,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// Append the id (hex) of every transaction the node acknowledged to this file, one a line,
    /// as each answer is read (created if missing).
    #[arg(long, value_name = "FILE")]
    acked_out: Option<PathBuf>,
}

impl Args {
    fn total_txs(&self) -> u64 {
        match (self.txs, self.duration) {
            (Some(n), _) => n,
            (None, Some(d)) if self.rate > 0 => (self.rate as f64 * d.as_secs_f64()).ceil() as u64,
            (None, Some(d)) => UNTHROTTLED_PER_SEC * d.as_secs().max(1),
            (None, None) => 50_000,
        }
    }

    fn check(&self) -> anyhow::Result<()> {
        if self.senders == 0 || self.contracts == 0 || self.batch == 0 || self.connections == 0 {
            bail!("--senders, --contracts, --batch and --connections must be at least 1");
        }
        if self.payload_bytes > MAX_ARGS_LEN {
            bail!(
                "--payload-bytes {} is more than a call's args may be ({MAX_ARGS_LEN})",
                self.payload_bytes
            );
        }
        if self.total_txs() == 0 {
            bail!("nothing to send: --txs (or --rate × --duration) must be at least 1");
        }
        if self.total_txs() > u64::from(u32::MAX) {
            bail!("at most {} transactions per run", u32::MAX);
        }
        Ok(())
    }
}

fn counter_wasm() -> anyhow::Result<Vec<u8>> {
    // The same counter the tests use, embedded so the tool runs from any directory.
    Ok(wat::parse_str(include_str!(
        "../../tests/fixtures/counter.wat"
    ))?)
}

/// What a lock guards here is counters: a panicked holder leaves them usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// `--acked-out`: where acknowledged ids go. Unbuffered, one `write` per answer, so a kill at
/// any point loses at most ids whose line was being written (a partial last line).
struct AckLog(Option<Mutex<std::fs::File>>);

impl AckLog {
    fn open(path: Option<&PathBuf>) -> anyhow::Result<Self> {
        let Some(path) = path else {
            return Ok(AckLog(None));
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("--acked-out {}", path.display()))?;
        Ok(AckLog(Some(Mutex::new(file))))
    }

    /// Appends the ids. A failed write is reported on stderr (the crash loop fails on that
    /// line): silently missing ids would make a loss check pass on less than was acknowledged.
    fn record<'a>(&self, ids: impl Iterator<Item = &'a Hash>) {
        let Some(file) = &self.0 else { return };
        let mut lines = String::new();
        for id in ids {
            lines.push_str(&id.to_hex());
            lines.push('\n');
        }
        if lines.is_empty() {
            return;
        }
        if let Err(e) = lock(file).write_all(lines.as_bytes()) {
            eprintln!("cannot record acknowledged ids in --acked-out: {e}");
        }
    }
}

/// The pre-signed run: request bodies, and the id of every transaction in send order.
struct Plan {
    /// One encoded request body per batch; batch `k` holds transactions `k*batch..`.
    bodies: Vec<Vec<u8>>,
    ids: Vec<Hash>,
    /// The senders' keys, sender `i` at `i`.
    senders: Vec<PublicKey>,
    sign_seconds: f64,
    threads: usize,
}

/// Latencies in 1 ms buckets, for the progress line's percentiles.
struct Histogram {
    buckets: Vec<u64>,
    count: u64,
}

impl Histogram {
    fn new() -> Self {
        Histogram {
            buckets: vec![0; HIST_MS + 1],
            count: 0,
        }
    }

    fn record(&mut self, ms: f64) {
        let i = (ms.max(0.0) as usize).min(HIST_MS);
        self.buckets[i] += 1;
        self.count += 1;
    }

    /// The upper edge of the bucket holding quantile `q` (0 with no samples).
    fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let want = ((self.count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= want {
                return i as u64 + 1;
            }
        }
        HIST_MS as u64
    }
}

/// Everything the sender threads, the watcher and the progress line share.
struct Run {
    started: Instant,
    batch: usize,
    total: usize,
    /// Sender key -> its number: transaction `g` is sender `g % senders`'s nonce `g / senders`.
    senders: FastMap<PublicKey, u64>,
    /// Per batch: nanoseconds from `started` to the start of its request, plus 1 (0 = unsent).
    sent_ns: Vec<AtomicU64>,
    /// Per transaction: the node accepted it.
    accepted: Vec<AtomicBool>,
    /// Per transaction: nanoseconds from `started` to seeing it committed, plus 1 (0 = not yet).
    committed_ns: Vec<AtomicU64>,
    offered: AtomicU64,
    accepted_n: AtomicU64,
    committed_n: AtomicU64,
    blocks: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
    hist: Mutex<Histogram>,
    /// In send order, like `accepted`; only read to write `--acked-out`.
    ids: Vec<Hash>,
    acked_out: AckLog,
    next_batch: AtomicUsize,
    /// Sending is over (all sent, or --duration passed).
    sending_done: AtomicBool,
    /// The run is over: the watcher and the progress line stop.
    done: AtomicBool,
}

impl Run {
    fn since_start_ns(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64 + 1
    }

    fn error(&self, kind: &str, n: u64) {
        *lock(&self.errors).entry(kind.to_string()).or_default() += n;
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    args.check()?;
    let client = HttpClient::new(&args.api)?;
    let (status, chain) = client.get("/v1/chain")?;
    if status != 200 {
        bail!("GET /v1/chain answered {status}: {chain}");
    }
    let chain_id = chain["chain_id"]
        .as_str()
        .context("GET /v1/chain has no chain_id: is this an Accumen node?")?
        .to_string();

    let acked_out = AckLog::open(args.acked_out.as_ref())?;
    let contracts = deploy_counters(&client, &chain_id, args.contracts, &acked_out)?;
    eprintln!("deployed {} counters", contracts.len());

    let plan = presign(&args, &chain_id, &contracts)?;
    eprintln!(
        "signed and encoded {} transactions ({} requests of up to {}, {}) in {:.1}s on {} threads",
        plan.ids.len(),
        plan.bodies.len(),
        args.batch,
        args.format.name(),
        plan.sign_seconds,
        plan.threads
    );

    let start_height = client.get("/stats")?.1["block_height"]
        .as_u64()
        .context("GET /stats has no block_height")?;
    let total = plan.ids.len();
    let senders: FastMap<PublicKey, u64> = plan
        .senders
        .iter()
        .enumerate()
        .map(|(i, key)| (*key, i as u64))
        .collect();
    let cpu_at_start = process_cpu_seconds();
    let run = Arc::new(Run {
        started: Instant::now(),
        batch: args.batch as usize,
        total,
        senders,
        sent_ns: plan.bodies.iter().map(|_| AtomicU64::new(0)).collect(),
        accepted: (0..total).map(|_| AtomicBool::new(false)).collect(),
        committed_ns: (0..total).map(|_| AtomicU64::new(0)).collect(),
        offered: AtomicU64::new(0),
        accepted_n: AtomicU64::new(0),
        committed_n: AtomicU64::new(0),
        blocks: AtomicU64::new(0),
        errors: Mutex::new(BTreeMap::new()),
        hist: Mutex::new(Histogram::new()),
        ids: plan.ids,
        acked_out,
        next_batch: AtomicUsize::new(0),
        sending_done: AtomicBool::new(false),
        done: AtomicBool::new(false),
    });
    let bodies = Arc::new(plan.bodies);

    let watcher = {
        let (client, run) = (HttpClient::new(&args.api)?, run.clone());
        std::thread::spawn(move || watch_blocks(&client, start_height + 1, &run))
    };
    let progress = {
        let run = run.clone();
        std::thread::spawn(move || progress(&run))
    };

    let mut senders = Vec::new();
    for _ in 0..args.connections {
        let (run, bodies) = (run.clone(), bodies.clone());
        let client = HttpClient::new(&args.api)?;
        let (rate, duration, format) = (args.rate, args.duration.map(Into::into), args.format);
        senders.push(std::thread::spawn(move || {
            send(&client, &run, &bodies, rate, duration, format)
        }));
    }
    for s in senders {
        if s.join().is_err() {
            bail!("a sender thread panicked");
        }
    }
    run.sending_done.store(true, Ordering::Relaxed);
    let send_seconds = run.started.elapsed().as_secs_f64();
    eprintln!(
        "sent for {send_seconds:.2}s: {} offered, {} accepted; waiting up to {} for commits",
        run.offered.load(Ordering::Relaxed),
        run.accepted_n.load(Ordering::Relaxed),
        args.deadline
    );

    // Drain: until every accepted transaction is seen committed, or the deadline.
    let deadline = Instant::now() + *args.deadline;
    while Instant::now() < deadline && !all_committed(&run) {
        std::thread::sleep(Duration::from_millis(50));
    }
    run.done.store(true, Ordering::Relaxed);
    let _ = watcher.join();
    let _ = progress.join();

    let client_cpu = cpu_at_start
        .zip(process_cpu_seconds())
        .map(|(a, b)| round2(b - a));
    let mut summary = summarize(&args, &run, send_seconds, plan.sign_seconds, plan.threads);
    // The tool's own CPU from the first request to the end of the drain (signing excluded).
    summary["client_cpu_seconds"] = json!(client_cpu);
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        print_human(&summary);
    }
    Ok(())
}

/// Every accepted transaction has been seen in a block.
fn all_committed(run: &Run) -> bool {
    (0..run.total).all(|i| {
        !run.accepted[i].load(Ordering::Relaxed) || run.committed_ns[i].load(Ordering::Relaxed) > 0
    })
}

/// Deploys `n` counters from a fresh key and waits until the last is included.
fn deploy_counters(
    client: &HttpClient,
    chain_id: &str,
    n: u64,
    acked_out: &AckLog,
) -> anyhow::Result<Vec<Address>> {
    let deployer = Keypair::generate()?;
    let code = counter_wasm()?;
    let deploys: Vec<SignedTx> = (0..n)
        .map(|nonce| {
            deployer.sign(Tx {
                chain_id: chain_id.to_string(),
                sender: deployer.public(),
                nonce,
                gas_limit: 50_000_000,
                priority: 0,
                expiry: None,
                action: Action::Deploy {
                    code: Bytes(code.clone()),
                },
            })
        })
        .collect();
    let (status, v) = client.post("/v1/txs", &json!(deploys))?;
    // Recorded before judging the answer: a deploy the node accepted is acknowledged even if
    // another one of the batch was refused.
    let ids: Vec<Hash> = deploys.iter().map(|t| t.tx.id()).collect();
    if status == 200
        && let Some(results) = v["results"].as_array()
    {
        acked_out.record(
            results
                .iter()
                .zip(&ids)
                .filter(|(r, _)| r["accepted"] == json!(true))
                .map(|(_, id)| id),
        );
    }
    if status != 200 || v["accepted"] != json!(deploys.len()) {
        bail!("deploys were not accepted: {status} {v}");
    }
    if let Some(last) = deploys.last() {
        wait_included(client, &last.tx.id().to_hex(), Duration::from_secs(60))?;
    }
    Ok(deploys.iter().map(|t| t.tx.target()).collect())
}

/// Signs every call up front on all cores, and encodes each batch's request body.
///
/// Transaction `g` (in send order) is sender `g % senders`'s call number `g / senders`, so each
/// sender's nonces are sent in order, a batch holds each sender at most once per `senders`
/// transactions, and the senders' calls spread over the contracts (`sender % contracts`).
fn presign(args: &Args, chain_id: &str, contracts: &[Address]) -> anyhow::Result<Plan> {
    let t0 = Instant::now();
    let total = args.total_txs() as usize;
    let batch = args.batch as usize;
    let senders = args.senders as usize;
    let keys: Arc<Vec<Keypair>> = Arc::new(
        (0..senders)
            .map(|_| Keypair::generate())
            .collect::<Result<_, _>>()?,
    );
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let batches = total.div_ceil(batch);
    // Whole batches per thread, so each thread encodes the bodies of what it signed.
    let per_thread = batches.div_ceil(threads).max(1);
    let gas_limit = CALL_GAS + TX_ARGS_BYTE * args.payload_bytes as u64;
    let args_bytes = Bytes(vec![0xa5; args.payload_bytes]);
    let mut handles = Vec::new();
    for t in 0..threads {
        let first_batch = t * per_thread;
        let last_batch = ((t + 1) * per_thread).min(batches);
        if first_batch >= last_batch {
            break;
        }
        let (keys, contracts, chain_id, args_bytes) = (
            keys.clone(),
            contracts.to_vec(),
            chain_id.to_string(),
            args_bytes.clone(),
        );
        let format = args.format;
        handles.push(std::thread::spawn(
            move || -> anyhow::Result<(Vec<Vec<u8>>, Vec<Hash>)> {
                let mut bodies = Vec::with_capacity(last_batch - first_batch);
                let mut ids = Vec::new();
                for k in first_batch..last_batch {
                    let txs: Vec<SignedTx> = (k * batch..((k + 1) * batch).min(total))
                        .map(|g| {
                            let sender = g % senders;
                            let key = &keys[sender];
                            key.sign(Tx {
                                chain_id: chain_id.clone(),
                                sender: key.public(),
                                nonce: (g / senders) as u64,
                                gas_limit,
                                priority: 0,
                                expiry: None,
                                action: Action::Call {
                                    contract: contracts[sender % contracts.len()],
                                    entry: "increment".into(),
                                    args: args_bytes.clone(),
                                },
                            })
                        })
                        .collect();
                    ids.extend(txs.iter().map(|t| t.tx.id()));
                    bodies.push(match format {
                        Format::Binary => {
                            let encoded: Vec<Vec<u8>> = txs.iter().map(SignedTx::encode).collect();
                            frame_encoded(&encoded)?
                        }
                        Format::Json => serde_json::to_vec(&txs)?,
                    });
                }
                Ok((bodies, ids))
            },
        ));
    }
    let mut bodies = Vec::with_capacity(batches);
    let mut ids = Vec::with_capacity(total);
    for h in handles {
        let (b, i) = h
            .join()
            .map_err(|_| anyhow::anyhow!("signing thread panicked"))??;
        bodies.extend(b);
        ids.extend(i);
    }
    Ok(Plan {
        bodies,
        ids,
        senders: keys.iter().map(Keypair::public).collect(),
        sign_seconds: t0.elapsed().as_secs_f64(),
        threads,
    })
}

/// One sender connection: takes the next batch, waits for its slot in the schedule (open loop:
/// batch `k` is due at `k × batch / rate` seconds, however the earlier ones went), posts it
/// and records what the node said about each transaction.
fn send(
    client: &HttpClient,
    run: &Run,
    bodies: &[Vec<u8>],
    rate: u64,
    duration: Option<Duration>,
    format: Format,
) {
    let over = |run: &Run| duration.is_some_and(|d| run.started.elapsed() >= d);
    loop {
        let k = run.next_batch.fetch_add(1, Ordering::Relaxed);
        let Some(body) = bodies.get(k) else { return };
        if rate > 0 {
            let due = Duration::from_secs_f64((k * run.batch) as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(run.started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        if over(run) {
            return;
        }
        let first = k * run.batch;
        let n = run.batch.min(run.total - first);
        run.sent_ns[k].store(run.since_start_ns(), Ordering::Relaxed);
        run.offered.fetch_add(n as u64, Ordering::Relaxed);
        // Binary bodies ask for the binary answer (a node without it answers JSON, read below).
        let (content_type, accept) = match format {
            Format::Binary => (BINARY_CONTENT_TYPE, BINARY_CONTENT_TYPE),
            Format::Json => ("application/json", "application/json"),
        };
        match client.post_accepting("/v1/txs", content_type, body, accept) {
            Ok((200, answer_type, answer)) => {
                let Some(outcomes) = outcomes(&answer_type, &answer).filter(|o| o.len() == n)
                else {
                    run.error("bad_answer", n as u64);
                    continue;
                };
                let mut accepted = 0;
                for (i, refused) in outcomes.iter().enumerate() {
                    match refused {
                        None => {
                            run.accepted[first + i].store(true, Ordering::Relaxed);
                            accepted += 1;
                        }
                        Some(code) => run.error(code, 1),
                    }
                }
                run.accepted_n.fetch_add(accepted, Ordering::Relaxed);
                run.acked_out.record(
                    outcomes
                        .iter()
                        .zip(&run.ids[first..first + n])
                        .filter(|(refused, _)| refused.is_none())
                        .map(|(_, id)| id),
                );
            }
            Ok((status, _, answer)) => {
                let v: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
                let code = v["error"]["code"]
                    .as_str()
                    .map_or_else(|| format!("http_{status}"), str::to_string);
                run.error(&code, n as u64);
            }
            Err(_) => run.error("transport", n as u64),
        }
    }
}

/// Each element of a `POST /v1/txs` answer, binary (as `send` asks for binary bodies) or JSON:
/// `None` if accepted, else its error code. `None` for an answer that is neither.
fn outcomes(content_type: &str, answer: &[u8]) -> Option<Vec<Option<String>>> {
    if is_binary_answer(content_type) {
        let elements = parse_answer(answer).ok()?;
        return Some(
            elements
                .into_iter()
                .map(|e| e.error.map(|(code, _)| code))
                .collect(),
        );
    }
    let view = serde_json::from_slice::<AnswerView<'_>>(answer).ok()?;
    Some(
        view.results
            .into_iter()
            .map(|r| {
                (!r.accepted).then(|| r.error.map_or_else(|| "unknown".into(), |e| e.code.into()))
            })
            .collect(),
    )
}

/// What `send` reads of a JSON `POST /v1/txs` answer: each element's `accepted` and error code.
/// Parsed into these borrowing structs (the ids, which the tool already knows, are skipped)
/// rather than a `serde_json::Value`, whose map and strings per element were about a fifth of
/// this tool's CPU at 100,000 tx/s: CPU the node it shares the machine with did not get.
#[derive(serde::Deserialize)]
struct AnswerView<'a> {
    #[serde(borrow)]
    results: Vec<ResultView<'a>>,
}

#[derive(serde::Deserialize)]
struct ResultView<'a> {
    accepted: bool,
    #[serde(borrow, default)]
    error: Option<ErrorView<'a>>,
}

#[derive(serde::Deserialize)]
struct ErrorView<'a> {
    /// `Cow`: a code with an escape in it cannot be borrowed from the body.
    #[serde(borrow)]
    code: std::borrow::Cow<'a, str>,
}

/// Long-polls `/v1/sync/blocks` from `from` and stamps every transaction of ours it sees.
fn watch_blocks(client: &HttpClient, mut from: u64, run: &Run) {
    let n_senders = run.senders.len() as u64;
    while !run.done.load(Ordering::Relaxed) {
        let path =
            format!("/v1/sync/blocks?from={from}&limit={WATCH_BLOCKS}&wait_ms={WATCH_WAIT_MS}");
        let blocks = match client.get_accepting(&path, BINARY_ANSWER) {
            Ok((200, content_type, body)) => committed_blocks(&body, &content_type, from),
            _ => {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let Ok(blocks) = blocks else {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        let now = run.since_start_ns();
        let mut hist = lock(&run.hist);
        for block in &blocks {
            run.blocks.fetch_add(1, Ordering::Relaxed);
            for (sender, nonce) in block {
                let Some(&sender) = run.senders.get(sender) else {
                    continue;
                };
                let g = nonce.saturating_mul(n_senders).saturating_add(sender);
                let Some(g) = usize::try_from(g).ok().filter(|g| *g < run.total) else {
                    continue;
                };
                if run.committed_ns[g].swap(now, Ordering::Relaxed) != 0 {
                    continue;
                }
                run.committed_n.fetch_add(1, Ordering::Relaxed);
                let sent = run.sent_ns[g / run.batch].load(Ordering::Relaxed);
                if sent != 0 {
                    hist.record(now.saturating_sub(sent) as f64 / 1e6);
                }
            }
        }
        from += blocks.len() as u64;
    }
}

/// What the watcher reads of a committed block: each transaction's sender and nonce, in order.
type Seen = Vec<(PublicKey, u64)>;

/// A block as the watcher reads it: the layout of `Block` (postcard is positional, so these
/// mirror its fields in order), with the strings and byte strings of each transaction borrowed
/// from the answer instead of allocated. Decoding whole `Block`s (three allocations per
/// transaction) was about a fifth of this tool's CPU at 100,000 tx/s. `tests::block_view_*`
/// check that it reads what `Block` reads.
#[derive(serde::Deserialize)]
struct BlockView<'a> {
    header: accumen_actors::types::BlockHeader,
    #[expect(dead_code, reason = "read only to mirror `Block`'s layout")]
    signature: accumen_actors::types::Signature,
    #[serde(borrow)]
    txs: Vec<SignedTxView<'a>>,
}

#[derive(serde::Deserialize)]
#[expect(dead_code, reason = "read only to mirror `SignedTx`'s layout")]
struct SignedTxView<'a> {
    #[serde(borrow)]
    tx: TxView<'a>,
    signature: accumen_actors::types::Signature,
}

#[derive(serde::Deserialize)]
#[expect(dead_code, reason = "read only to mirror `Tx`'s layout")]
struct TxView<'a> {
    chain_id: &'a str,
    sender: PublicKey,
    nonce: u64,
    gas_limit: u64,
    priority: u64,
    expiry: Option<u64>,
    #[serde(borrow)]
    action: ActionView<'a>,
}

#[derive(serde::Deserialize)]
#[expect(dead_code, reason = "read only to mirror `Action`'s layout")]
enum ActionView<'a> {
    Deploy {
        code: &'a [u8],
    },
    Call {
        contract: Address,
        entry: &'a str,
        args: &'a [u8],
    },
}

/// One block's canonical bytes as the watcher reads them (see [`BlockView`]): its height and
/// what it saw.
fn seen_in(bytes: &[u8]) -> anyhow::Result<(u64, Seen)> {
    let block: BlockView<'_> = decode_trusted(bytes)?;
    let seen = block
        .txs
        .iter()
        .map(|t| (t.tx.sender, t.tx.nonce))
        .collect();
    Ok((block.header.height, seen))
}

/// The blocks of a sync answer that starts at height `from`, binary (as the watcher asks) or
/// JSON (a node without the binary answer). The watcher trusts the node it measures:
/// `decode_trusted` skips the canonical re-encoding that `chain::sync::parse_answer` (a
/// follower's check) does, and only the framing and the heights are checked.
fn committed_blocks(body: &[u8], content_type: &str, from: u64) -> anyhow::Result<Vec<Seen>> {
    let blocks: Vec<(u64, Seen)> = if is_binary_answer(content_type) {
        let (_, frames) = split_binary_answer(body, WATCH_BLOCKS)?;
        frames
            .into_iter()
            .map(seen_in)
            .collect::<anyhow::Result<_>>()?
    } else {
        let answer: SyncAnswer = serde_json::from_slice(body)?;
        answer
            .blocks
            .iter()
            .map(|hex_block| seen_in(&decode_hex_block(hex_block)?))
            .collect::<anyhow::Result<_>>()?
    };
    blocks
        .into_iter()
        .enumerate()
        .map(|(i, (height, seen))| {
            let expected = from + i as u64;
            if height != expected {
                bail!("block {i} of the answer is at height {height}, expected {expected}");
            }
            Ok(seen)
        })
        .collect()
}

/// One line a second on stderr until the run is over.
fn progress(run: &Run) {
    let mut last_committed = 0;
    let mut tick = 1u64;
    while !run.done.load(Ordering::Relaxed) {
        let due = Duration::from_secs(tick);
        match due.checked_sub(run.started.elapsed()) {
            // Short naps so the thread notices the end of the run promptly.
            Some(wait) => {
                std::thread::sleep(wait.min(Duration::from_millis(100)));
                continue;
            }
            None => tick += 1,
        }
        let committed = run.committed_n.load(Ordering::Relaxed);
        let (p50, p99) = {
            let h = lock(&run.hist);
            (h.quantile(0.50), h.quantile(0.99))
        };
        let errors: u64 = lock(&run.errors).values().sum();
        eprintln!(
            "[{:>4}s] offered {} accepted {} committed {} (+{}/s) p50 {}ms p99 {}ms errors {}{}",
            tick - 1,
            run.offered.load(Ordering::Relaxed),
            run.accepted_n.load(Ordering::Relaxed),
            committed,
            committed - last_committed,
            p50,
            p99,
            errors,
            if run.sending_done.load(Ordering::Relaxed) {
                " (draining)"
            } else {
                ""
            }
        );
        last_committed = committed;
    }
}

/// CPU time this process has used so far (user + system, all threads), from /proc/self/stat;
/// `None` where there is no /proc. Reported so a run on the node's own machine shows what the
/// load generator took from it.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces, hence the last ')'): state is
    // field 3, utime 14 and stime 15, in clock ticks of USER_HZ (100 on every Linux ABI).
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The run's figures. Only transactions the node acknowledged as accepted count as accepted
/// and committed, so `offered >= accepted >= committed` always holds.
fn summarize(
    args: &Args,
    run: &Run,
    send_seconds: f64,
    sign_seconds: f64,
    threads: usize,
) -> Value {
    let mut latencies = Vec::new();
    let mut last_commit_ns = 0;
    let mut unacknowledged = 0u64;
    for g in 0..run.total {
        let committed = run.committed_ns[g].load(Ordering::Relaxed);
        if committed == 0 {
            continue;
        }
        if !run.accepted[g].load(Ordering::Relaxed) {
            // Committed although its request failed on the way back (a transport error).
            unacknowledged += 1;
            continue;
        }
        let sent = run.sent_ns[g / run.batch].load(Ordering::Relaxed);
        latencies.push(committed.saturating_sub(sent) as f64 / 1e6);
        last_commit_ns = last_commit_ns.max(committed);
    }
    latencies.sort_by(f64::total_cmp);
    let offered = run.offered.load(Ordering::Relaxed);
    let accepted = run.accepted_n.load(Ordering::Relaxed);
    let committed = latencies.len() as u64;
    // From the first request to the last commit seen.
    let run_seconds = last_commit_ns as f64 / 1e9;
    let per_sec = |n: u64, secs: f64| {
        if secs > 0.0 {
            round2(n as f64 / secs)
        } else {
            0.0
        }
    };
    let errors = lock(&run.errors).clone();
    json!({
        "committed_tps": per_sec(committed, run_seconds),
        "p50_ms": round2(percentile(&latencies, 0.50)),
        "p95_ms": round2(percentile(&latencies, 0.95)),
        "p99_ms": round2(percentile(&latencies, 0.99)),
        "max_ms": round2(percentile(&latencies, 1.0)),
        "errors": errors,
        "errors_total": errors.values().sum::<u64>(),
        "offered": offered,
        "accepted": accepted,
        "committed": committed,
        "committed_unacknowledged": unacknowledged,
        "offered_tps": per_sec(offered, send_seconds),
        "accepted_tps": per_sec(accepted, send_seconds),
        "send_seconds": round2(send_seconds),
        "run_seconds": round2(run_seconds),
        "sign_seconds": round2(sign_seconds),
        "blocks": run.blocks.load(Ordering::Relaxed),
        "config": {
            "api": args.api,
            "format": args.format.name(),
            "txs": run.total,
            "duration_s": args.duration.map(|d| d.as_secs_f64()),
            "rate": args.rate,
            "senders": args.senders,
            "contracts": args.contracts,
            "payload_bytes": args.payload_bytes,
            "batch": args.batch,
            "connections": args.connections,
            "signing_threads": threads,
        },
    })
}

fn print_human(s: &Value) {
    println!(
        "committed {} of {} accepted ({} offered) in {}s: {} tx/s committed",
        s["committed"], s["accepted"], s["offered"], s["run_seconds"], s["committed_tps"]
    );
    println!(
        "submit-to-commit latency: p50 {} ms, p95 {} ms, p99 {} ms, max {} ms",
        s["p50_ms"], s["p95_ms"], s["p99_ms"], s["max_ms"]
    );
    println!(
        "offered {} tx/s, accepted {} tx/s over {}s of sending; {} blocks; this tool used {} s \
         of CPU meanwhile",
        s["offered_tps"],
        s["accepted_tps"],
        s["send_seconds"],
        s["blocks"],
        s["client_cpu_seconds"]
    );
    println!("errors: {}", s["errors"]);
    println!("config: {}", s["config"]);
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

#[cfg(test)]
mod tests {
    use super::*;
    use accumen_actors::types::{Block, BlockHeader, Hash};

    /// A sealed block of deploys and calls with every optional field both ways, at `height`.
    fn block(height: u64) -> Block {
        let txs = (0..6u64)
            .map(|i| {
                let key = Keypair::from_seed([i as u8 + 1; 32]);
                let action = if i % 3 == 0 {
                    Action::Deploy {
                        code: Bytes(vec![0, 0x61, 0x73, 0x6d, i as u8]),
                    }
                } else {
                    Action::Call {
                        contract: Address([i as u8; 32]),
                        entry: format!("entry_{i}"),
                        args: Bytes(vec![7; i as usize * 50]),
                    }
                };
                key.sign(Tx {
                    chain_id: "accumen-test-ü".into(),
                    sender: key.public(),
                    nonce: i * 1_000_003,
                    gas_limit: 1 << (i * 9),
                    priority: i,
                    expiry: (i % 2 == 0).then_some(u64::MAX - i),
                    action,
                })
            })
            .collect();
        let header = BlockHeader {
            height,
            parent_hash: Hash([3; 32]),
            timestamp_ms: 1_700_000_000_000,
            tx_root: Hash([4; 32]),
            receipts_root: Hash([5; 32]),
            state_root: Hash([6; 32]),
            sequencer: PublicKey([0; 32]),
        };
        Block::seal(header, txs, &Keypair::from_seed([9; 32]))
    }

    #[test]
    fn block_view_reads_what_block_reads() {
        let block = block(42);
        let (height, seen) = seen_in(&block.encode()).unwrap();
        assert_eq!(height, 42);
        let want: Seen = block
            .txs
            .iter()
            .map(|t| (t.tx.sender, t.tx.nonce))
            .collect();
        assert_eq!(seen, want);
        assert_eq!(seen.len(), 6);
    }

    #[test]
    fn block_view_refuses_what_block_refuses() {
        let bytes = block(1).encode();
        // Cut anywhere, or with a byte more, the bytes are no block for either reader.
        for cut in [0, 1, 40, bytes.len() / 2, bytes.len() - 1] {
            assert!(decode_trusted::<Block>(&bytes[..cut]).is_err());
            assert!(seen_in(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_trusted::<Block>(&longer).is_err());
        assert!(seen_in(&longer).is_err());
    }

    #[test]
    fn committed_blocks_checks_heights_in_both_answers() {
        let blocks = [block(7), block(8)];
        let binary = accumen_actors::chain::sync::encode_binary_answer(
            9,
            blocks.iter().map(Block::encode),
            usize::MAX,
        );
        let json = serde_json::to_vec(&json!({
            "sequencer_height": 9,
            "blocks": blocks.iter().map(|b| hex::encode(b.encode())).collect::<Vec<_>>(),
        }))
        .unwrap();
        for (body, content_type) in [(&binary, BINARY_ANSWER), (&json, "application/json")] {
            let seen = committed_blocks(body, content_type, 7).unwrap();
            assert_eq!(seen.len(), 2, "{content_type}");
            assert_eq!(seen[1][5], (blocks[1].txs[5].tx.sender, 5 * 1_000_003));
            assert!(
                committed_blocks(body, content_type, 6).is_err(),
                "{content_type}"
            );
        }
    }
}
