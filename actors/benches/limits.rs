//! `make bench-limits`: the bare-pipeline limit. Measures, on the same signed counter calls and
//! with nothing around them (no HTTP, no actors, no mempool), the cost of each stage a committed
//! transaction goes through, and prints the throughput ceiling they imply on this machine.
//!
//! Stages (per transaction, median of several timed rounds):
//! - `decode_binary` / `decode_json`: `SignedTx` from its canonical bytes / from JSON.
//! - `verify_single`: `SignedTx::verify_cached` (id hash + ZIP-215 check, key cache warm);
//!   `verify_single_nocache` for reference, and `ref_dalek_strict_nocache`, the previous rule
//!   (ed25519-dalek `verify_strict`), one signature at a time.
//! - `verify_batch_{64,256,1024}`: `types::verify_batch_chunked` with one batch equation per
//!   64/256/1024 signatures (the node uses `types::BATCH_CHUNK`), and at `BATCH_CHUNK` with a
//!   key cache that never hits (`_nocache`: what the cache saves).
//! - `attack_256_one_bad_per_chunk` / `attack_256_all_bad`: the batched path when an attacker
//!   puts one signature that fails only the equation in every chunk, or sends only such
//!   signatures (a failed chunk is bisected; not in the ceiling).
//! - `ref_consensus_single_nocache` / `ref_consensus_batch_256`: the previous ZIP-215 backend
//!   (`ed25519-consensus`, portable `curve25519-dalek-ng`) on the same signatures, for reference.
//! - `call_fresh_store`: one counter `increment` (tests/fixtures/counter.wat, as in
//!   accumen-stress), each call in a fresh wasmtime Store, one worker (`Vm::execute_block`).
//! - `commit_durable_{1000,5000}`: `Storage::commit_block` of a block of N such calls to a
//!   file-backed redb with the node's (immediate, fsync) durability; per transaction.
//!
//! Ceiling: a stage alone on 2 cores allows `2 / cost` tx/s (the commit, one writer, `1 / cost`).
//! The overall ceiling is `2 cores / (decode + verify + call + commit)`: every stage's CPU time
//! per transaction shared by two cores with perfect overlap and no other work, so a real node can
//! only approach it. It is computed with the binary decode, the node's batch size and the
//! 5000-transaction commit; the JSON variant is printed beside it.
//!
//! The `busy_` stages are decode, batched verification and the call again, timed on both cores
//! at once (one thread each, started together; each call thread with its own engine, as the
//! node's execution lanes): two busy virtual cores each ran 8 to 63% slower than one alone,
//! so `bare-pipeline ceiling, both cores busy` (the same sum over the busy costs) is what the
//! two cores deliver together, and the plain ceiling an upper bound no run reaches.
//!
//! Output: a table, then `bare-pipeline ceiling: N tx/s (2 cores)`; `-- --json` adds one JSON
//! line (`limits-json: {...}`). Figures depend on the machine's load: the load average is
//! printed before and after.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use accumen_actors::chain::ChainParams;
use accumen_actors::storage::Storage;
use accumen_actors::testkit;
use accumen_actors::types::{
    Action, Address, BATCH_CHUNK, Block, BlockHeader, Bytes, KeyCache, Keypair, SigDomain,
    SignedTx, VerifiedTx, verify_batch_chunked,
};
use accumen_actors::vm::{BlockContext, MemState, Vm, VmConfig};

const CHAIN: &str = "accumen-bench";
/// Distinct senders of the measured calls (the key cache holds them all, as in the node).
const SENDERS: usize = 1000;
/// Counters the calls go to.
const CONTRACTS: usize = 8;
/// Gas declared per call, as accumen-stress does.
const CALL_GAS: u64 = 25_000;
/// Timed rounds per stage; the median is reported.
const ROUNDS: usize = 7;
/// Threads of the `busy_` stages: the 2 cores the ceiling is stated for.
const BUSY_THREADS: usize = 2;

fn counter() -> Vec<u8> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/counter.wat");
    wat::parse_file(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn ctx(height: u64) -> BlockContext {
    BlockContext {
        chain_id: CHAIN.into(),
        height,
        timestamp_ms: 1_700_000_000_000 + height,
        max_tx_gas: 50_000_000,
        max_block_gas: accumen_actors::vm::gas::MAX_BLOCK_GAS,
        max_block_tx_bytes: accumen_actors::vm::gas::MAX_BLOCK_TX_BYTES,
        max_block_result_bytes: accumen_actors::vm::gas::MAX_BLOCK_RESULT_BYTES,
    }
}

fn deploys(n: usize) -> Vec<VerifiedTx> {
    let deployer = Keypair::from_seed([200; 32]);
    (0..n as u64)
        .map(|i| {
            let code = Action::Deploy {
                code: Bytes(counter()),
            };
            deployer
                .sign(testkit::body(CHAIN, deployer.public(), i, code, 50_000_000))
                .verify()
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect()
}

/// `n` signed increments over `contracts` from `keys`; `round` picks the nonces, so round r's
/// calls follow round r-1's for every sender.
fn calls(keys: &[Keypair], contracts: &[Address], n: usize, round: usize) -> Vec<SignedTx> {
    let per_sender = n.div_ceil(keys.len());
    (0..n)
        .map(|i| {
            let key = &keys[i % keys.len()];
            let nonce = (round * per_sender + i / keys.len()) as u64;
            let action = testkit::call(contracts[i % contracts.len()], "increment", &[]);
            key.sign(testkit::body(CHAIN, key.public(), nonce, action, CALL_GAS))
        })
        .collect()
}

/// Median time per item of `run` over `ROUNDS` rounds of `items` items each (after one warm-up
/// round). `prepare` builds each round's input outside the timing.
fn per_item<I>(items: usize, mut prepare: impl FnMut() -> I, mut run: impl FnMut(I)) -> Duration {
    run(prepare());
    let mut samples: Vec<Duration> = (0..ROUNDS)
        .map(|_| {
            let input = prepare();
            let t = Instant::now();
            run(input);
            t.elapsed() / items as u32
        })
        .collect();
    samples.sort();
    samples[ROUNDS / 2]
}

/// `per_item` on `threads` threads at once (started together; `run` gets its thread's index):
/// what a stage costs one thread while the other cores run it too. On this kind of machine
/// (virtual cores) two busy cores each ran a stage 8 to 63% slower than one core alone
/// (shared caches and memory bandwidth, the host's scheduling), so `2 / cost alone`
/// overstates what two cores deliver. The mean over the threads.
fn per_item_busy<I>(
    threads: usize,
    items: usize,
    prepare: impl Fn() -> I + Sync,
    run: impl Fn(usize, I) + Sync,
) -> Duration {
    let start = std::sync::Barrier::new(threads);
    let total: Duration = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (start, prepare, run) = (&start, &prepare, &run);
                s.spawn(move || {
                    start.wait();
                    per_item(items, prepare, |input| run(t, input))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| panic!("a bench thread panicked"))
            })
            .sum()
    });
    total / threads as u32
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "n/a".into())
}

struct Row {
    name: String,
    ns: f64,
    /// Cores the stage can use (the commit has one writer).
    cores: f64,
}

fn main() {
    let json = std::env::args().any(|a| a == "--json");
    let started = Instant::now();
    let load_before = loadavg();
    let keys: Vec<Keypair> = (0..SENDERS)
        .map(|i| {
            let mut seed = [7u8; 32];
            seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
            Keypair::from_seed(seed)
        })
        .collect();
    let vm = Vm::new(VmConfig {
        workers: 1,
        ..VmConfig::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let deploy_txs = deploys(CONTRACTS);
    let contracts: Vec<Address> = deploy_txs.iter().map(|t| t.tx().target()).collect();
    let sample = calls(&keys, &contracts, 5000, 0);
    let mut rows = Vec::new();
    let mut row = |name: &str, d: Duration, cores: f64| {
        rows.push(Row {
            name: name.into(),
            ns: d.as_nanos() as f64,
            cores,
        })
    };

    // Decode.
    let binary: Vec<Vec<u8>> = sample.iter().map(SignedTx::encode).collect();
    let jsons: Vec<Vec<u8>> = sample
        .iter()
        .map(|t| serde_json::to_vec(t).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    let decode_all = || {
        for b in &binary {
            black_box(SignedTx::decode(b).unwrap_or_else(|e| panic!("{e}")));
        }
    };
    let d = per_item(binary.len(), || (), |()| decode_all());
    row("decode_binary", d, 2.0);
    let d = per_item(
        jsons.len(),
        || (),
        |()| {
            for b in &jsons {
                black_box(serde_json::from_slice::<SignedTx>(b).unwrap_or_else(|e| panic!("{e}")));
            }
        },
    );
    row("decode_json", d, 2.0);

    // Signatures.
    let cache = KeyCache::new(2 * SENDERS);
    let few = &sample[..2048];
    let d = per_item(
        few.len(),
        || few.to_vec(),
        |txs| {
            for t in txs {
                black_box(t.verify_cached(&cache).unwrap_or_else(|e| panic!("{e}")));
            }
        },
    );
    row("verify_single", d, 2.0);
    let d = per_item(
        few.len(),
        || few.to_vec(),
        |txs| {
            for t in txs {
                black_box(t.verify().unwrap_or_else(|e| panic!("{e}")));
            }
        },
    );
    row("verify_single_nocache", d, 2.0);
    // Reference only (not in the ceiling): the old rule, ed25519-dalek `verify_strict`, on the
    // same id hash + message, to see what the rule change costs one signature at a time.
    let d = per_item(
        few.len(),
        || few.to_vec(),
        |txs| {
            for t in txs {
                let key = ed25519_dalek::VerifyingKey::from_bytes(&t.tx.sender.0)
                    .unwrap_or_else(|e| panic!("{e}"));
                let msg = SigDomain::Tx.message(&t.tx.id());
                let sig = ed25519_dalek::Signature::from_bytes(&t.signature.0);
                black_box(key.verify_strict(msg.as_ref(), &sig).is_ok());
            }
        },
    );
    row("ref_dalek_strict_nocache", d, 2.0);
    let verify_all = |txs: Vec<SignedTx>, chunk: usize| {
        let out = verify_batch_chunked(txs, &cache, chunk);
        assert!(out.iter().all(Result::is_ok));
        black_box(out);
    };
    let mut batched = Duration::ZERO;
    for chunk in [64usize, 256, 1024] {
        let d = per_item(few.len(), || few.to_vec(), |txs| verify_all(txs, chunk));
        row(&format!("verify_batch_{chunk}"), d, 2.0);
        if chunk == BATCH_CHUNK {
            batched = d;
        }
    }

    // Attackers (not in the ceiling): one bad signature in every chunk (at a different place
    // in each), and every signature bad. "Bad" here passes every parse check (R decodes, s < l)
    // and fails only the equation, the most expensive kind to refuse. A failed chunk is
    // bisected (types::sig); per signature, compare with verify_batch_{BATCH_CHUNK}.
    let tamper = |t: &mut SignedTx| t.signature.0[32] ^= 0x01;
    let one_bad: Vec<SignedTx> = few
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mut t = t.clone();
            if i % BATCH_CHUNK == (i / BATCH_CHUNK * 37 + 11) % BATCH_CHUNK {
                tamper(&mut t);
            }
            t
        })
        .collect();
    let all_bad: Vec<SignedTx> = few
        .iter()
        .map(|t| {
            let mut t = t.clone();
            tamper(&mut t);
            t
        })
        .collect();
    for (name, txs, bad) in [
        (
            "one_bad_per_chunk",
            &one_bad,
            few.len().div_ceil(BATCH_CHUNK),
        ),
        ("all_bad", &all_bad, few.len()),
    ] {
        let d = per_item(
            txs.len(),
            || txs.clone(),
            |txs| {
                let out = verify_batch_chunked(txs, &cache, BATCH_CHUNK);
                assert_eq!(out.iter().filter(|r| r.is_err()).count(), bad);
                black_box(out);
            },
        );
        row(&format!("attack_{BATCH_CHUNK}_{name}"), d, 2.0);
    }

    // Reference only: the previous ZIP-215 backend (ed25519-consensus on curve25519-dalek-ng,
    // portable u64), single and in batches of BATCH_CHUNK, on the same messages.
    let d = per_item(
        few.len(),
        || few.to_vec(),
        |txs| {
            for t in txs {
                let key = ed25519_consensus::VerificationKey::try_from(t.tx.sender.0)
                    .unwrap_or_else(|e| panic!("{e}"));
                let msg = SigDomain::Tx.message(&t.tx.id());
                let sig = ed25519_consensus::Signature::from(t.signature.0);
                black_box(key.verify(&sig, msg.as_ref()).is_ok());
            }
        },
    );
    row("ref_consensus_single_nocache", d, 2.0);
    let d = per_item(
        few.len(),
        || few.to_vec(),
        |txs| {
            for chunk in txs.chunks(BATCH_CHUNK) {
                let mut batch = ed25519_consensus::batch::Verifier::new();
                for t in chunk {
                    let msg = SigDomain::Tx.message(&t.tx.id());
                    batch.queue((
                        ed25519_consensus::VerificationKeyBytes::from(t.tx.sender.0),
                        ed25519_consensus::Signature::from(t.signature.0),
                        msg.as_ref(),
                    ));
                }
                assert!(batch.verify(rand_core::OsRng).is_ok());
            }
        },
    );
    row(&format!("ref_consensus_batch_{BATCH_CHUNK}"), d, 2.0);

    // What the key cache saves in the batched path: every key decompressed again (a cache
    // that never hits), against the warm cache above.
    let d = per_item(
        few.len(),
        || few.to_vec(),
        |txs| {
            let cold = KeyCache::new(1);
            black_box(verify_batch_chunked(txs, &cold, BATCH_CHUNK));
        },
    );
    row(&format!("verify_batch_{BATCH_CHUNK}_nocache"), d, 2.0);

    // One contract call with a fresh store.
    let mut base = MemState::default();
    let out = vm
        .execute_block(Arc::new(base.clone()), &ctx(1), deploy_txs.clone())
        .unwrap_or_else(|e| panic!("{e}"));
    base.apply(&out.writes);
    let base = Arc::new(base);
    let verified: Vec<VerifiedTx> = sample
        .iter()
        .take(2000)
        .map(|t| t.clone().verify().unwrap_or_else(|e| panic!("{e}")))
        .collect();
    let call_all = |vm: &Vm, txs: Vec<VerifiedTx>| {
        let out = vm
            .execute_block(base.clone(), &ctx(2), txs)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out.receipts.len(), 2000);
        black_box(out);
    };
    let d = per_item(
        verified.len(),
        || verified.clone(),
        |txs| call_all(&vm, txs),
    );
    row("call_fresh_store", d, 2.0);

    // The same CPU stages with both cores busy: each core runs the stage at the same time,
    // as the node runs them (verification on the API's threads, execution on two lanes, each
    // lane its own engine, as `Vm` does). The commit has one writer either way.
    let d = per_item_busy(BUSY_THREADS, binary.len(), || (), |_, ()| decode_all());
    row("busy_decode_binary", d, 2.0);
    let d = per_item_busy(
        BUSY_THREADS,
        few.len(),
        || few.to_vec(),
        |_, txs| verify_all(txs, BATCH_CHUNK),
    );
    row(&format!("busy_verify_batch_{BATCH_CHUNK}"), d, 2.0);
    let lanes: Vec<Vm> = (0..BUSY_THREADS)
        .map(|_| {
            Vm::new(VmConfig {
                workers: 1,
                ..VmConfig::default()
            })
            .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect();
    let d = per_item_busy(
        BUSY_THREADS,
        verified.len(),
        || verified.clone(),
        |t, txs| call_all(&lanes[t], txs),
    );
    row("busy_call_fresh_store", d, 2.0);

    // Durable commit of a block of N calls.
    let seq = Keypair::from_seed([250; 32]);
    let mut commit_5000 = Duration::ZERO;
    for n in [1000usize, 5000] {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let storage = Storage::open(
            &dir.path().join("limits.redb"),
            &ChainParams::with_defaults(CHAIN),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let mut round = 0usize;
        // Each round executes the next block on the head (untimed), then times its commit.
        let mut produce = || {
            let head = storage.head().unwrap_or_else(|e| panic!("{e}"));
            let bctx = ctx(head.height + 1);
            let txs: Vec<VerifiedTx> = if head.height == 0 {
                deploy_txs.clone()
            } else {
                round += 1;
                calls(&keys, &contracts, n, round - 1)
                    .into_iter()
                    .map(|t| t.verify().unwrap_or_else(|e| panic!("{e}")))
                    .collect()
            };
            let snapshot = Arc::new(storage.snapshot().unwrap_or_else(|e| panic!("{e}")));
            let out = vm
                .execute_block(snapshot, &bctx, txs)
                .unwrap_or_else(|e| panic!("{e}"));
            let txs: Vec<SignedTx> = out.txs.iter().map(|t| t.signed().clone()).collect();
            let header =
                BlockHeader::child(&head, bctx.timestamp_ms, &txs, &out.receipts, &out.writes);
            (Block::seal(header, txs, &seq), out.receipts, out.writes)
        };
        let (block, receipts, writes) = produce();
        storage
            .commit_block(&block, &receipts, &writes)
            .unwrap_or_else(|e| panic!("{e}"));
        let d = per_item(n, &mut produce, |(block, receipts, writes)| {
            assert_eq!(block.txs.len(), n);
            storage
                .commit_block(&block, &receipts, &writes)
                .unwrap_or_else(|e| panic!("{e}"));
        });
        row(&format!("commit_durable_{n}"), d, 1.0);
        if n == 5000 {
            commit_5000 = d;
        }
    }

    let get = |name: &str| rows.iter().find(|r| r.name == name).map_or(0.0, |r| r.ns);
    let call = get("call_fresh_store");
    let sum_binary =
        get("decode_binary") + batched.as_nanos() as f64 + call + commit_5000.as_nanos() as f64;
    let sum_json =
        get("decode_json") + batched.as_nanos() as f64 + call + commit_5000.as_nanos() as f64;
    let ceiling = 2.0e9 / sum_binary;
    let ceiling_json = 2.0e9 / sum_json;
    let sum_busy = get("busy_decode_binary")
        + get(&format!("busy_verify_batch_{BATCH_CHUNK}"))
        + get("busy_call_fresh_store")
        + commit_5000.as_nanos() as f64;
    let ceiling_busy = 2.0e9 / sum_busy;
    let load_after = loadavg();

    println!();
    println!("bare-pipeline limit: per-transaction cost of each stage, nothing around it");
    println!(
        "machine: {} cores online, load average before {load_before}, after {load_after}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:<24} {:>12} {:>16} {:>22}",
        "stage", "ns/tx", "tx/s per core", "ceiling tx/s (2 cores)"
    );
    for r in &rows {
        println!(
            "{:<24} {:>12.0} {:>16.0} {:>22.0}{}",
            r.name,
            r.ns,
            1e9 / r.ns,
            r.cores * 1e9 / r.ns,
            if r.cores < 2.0 { "  (one writer)" } else { "" }
        );
    }
    println!(
        "overall = 2 cores / (decode_binary + verify_batch_{BATCH_CHUNK} + call_fresh_store + \
         commit_durable_5000) = 2e9 / {sum_binary:.0} ns"
    );
    println!(
        "busy = 2 cores / (busy_decode_binary + busy_verify_batch_{BATCH_CHUNK} + \
         busy_call_fresh_store + commit_durable_5000) = 2e9 / {sum_busy:.0} ns"
    );
    println!("bare-pipeline ceiling (json decode): {ceiling_json:.0} tx/s (2 cores)");
    println!("bare-pipeline ceiling, both cores busy: {ceiling_busy:.0} tx/s (2 cores)");
    println!("bare-pipeline ceiling: {ceiling:.0} tx/s (2 cores)");
    if json {
        let stages: serde_json::Map<String, serde_json::Value> = rows
            .iter()
            .map(|r| (r.name.clone(), serde_json::json!(r.ns.round())))
            .collect();
        let out = serde_json::json!({
            "stages_ns_per_tx": stages,
            "batch_chunk": BATCH_CHUNK,
            "ceiling_tps": ceiling.round(),
            "ceiling_json_tps": ceiling_json.round(),
            "ceiling_busy_tps": ceiling_busy.round(),
            "cores": 2,
            "load_before": load_before,
            "load_after": load_after,
            "elapsed_s": started.elapsed().as_secs_f64(),
        });
        println!("limits-json: {out}");
    }
}
