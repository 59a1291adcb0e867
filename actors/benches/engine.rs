//! Benchmarks of the contract engine and chain types (criterion). Figures are reported in
//! closing notes, never asserted in tests.
//!
//! - `execute/counter_increment_1_thread`: a block of counter `increment` calls on one worker;
//!   each call gets a fresh Store and does its storage read and write. Goal: ≥ 100,000 calls/s.
//! - `execute/block_5000_counter_calls_{1,2}_workers`: 5,000 calls spread over 8 counters.
//! - `block/execute_and_commit_5000_{memory,file}`: the same block executed against a redb
//!   snapshot, sealed and committed in one write transaction. Goal: < 100 ms on 2 cores.
//! - `tx/verify` and `tx/decode`: signature verification (with id hashing) and canonical decode.
//! - `fuel/*`: the gas rate behind `MAX_BLOCK_GAS` and `MEMORY_GROW_PAGE`: one call burning 50M
//!   gas of a tight loop (`loop`), of back-to-back host calls (`host_calls`), of storage writes
//!   (`storage_writes`) and of slow divisions (`slow_divisions`), reported as gas per second;
//!   and a call growing memory by 60 pages and touching every 4 KiB of them (`grow_60_pages`);
//!   and a whole block of `MAX_BLOCK_GAS` of loops or host calls (`full_block_*`, one worker).

use std::hint::black_box;
use std::sync::Arc;

use std::time::{Duration, Instant};

use accumen_actors::chain::ChainParams;
use accumen_actors::storage::Storage;
use accumen_actors::testkit;
use accumen_actors::types::{
    Action, Address, Block, BlockHeader, Bytes, Keypair, SignedTx, VerifiedTx,
};
use accumen_actors::vm::{BlockContext, MemState, Query, Vm, VmConfig};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

const CHAIN: &str = "accumen-bench";

fn counter() -> Vec<u8> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/counter.wat");
    match wat::parse_file(path) {
        Ok(w) => w,
        Err(e) => panic!("{path}: {e}"),
    }
}

fn signed(key: &Keypair, nonce: u64, action: Action) -> SignedTx {
    // Enough for an increment (about 10k gas), and 5,000 of them fit in `MAX_BLOCK_GAS`.
    key.sign(testkit::body(CHAIN, key.public(), nonce, action, 50_000))
}

fn ctx(height: u64) -> BlockContext {
    BlockContext {
        chain_id: CHAIN.into(),
        height,
        timestamp_ms: 1_700_000_000_000,
        max_tx_gas: 50_000_000,
        max_block_gas: accumen_actors::vm::gas::MAX_BLOCK_GAS,
        max_block_tx_bytes: accumen_actors::vm::gas::MAX_BLOCK_TX_BYTES,
        max_block_result_bytes: accumen_actors::vm::gas::MAX_BLOCK_RESULT_BYTES,
    }
}

/// Deploys `n` counters from one deployer; returns the state and their addresses.
fn setup(vm: &Vm, n: usize) -> (MemState, Vec<Address>) {
    let deployer = Keypair::from_seed([200; 32]);
    let mut st = MemState::default();
    let mut txs = Vec::new();
    for i in 0..n {
        let mut t = signed(
            &deployer,
            i as u64,
            Action::Deploy {
                code: Bytes(counter()),
            },
        );
        t.tx.gas_limit = 50_000_000;
        let t = deployer.sign(t.tx);
        txs.push(t.verify().unwrap_or_else(|e| panic!("{e}")));
    }
    let addrs = txs.iter().map(|t| t.tx().target()).collect();
    let out = vm
        .execute_block(Arc::new(st.clone()), &ctx(1), txs)
        .unwrap_or_else(|e| panic!("{e}"));
    st.apply(&out.writes);
    (st, addrs)
}

/// `n` increment calls round-robin over `contracts`, from 100 senders.
fn calls(contracts: &[Address], n: usize) -> Vec<VerifiedTx> {
    let keys: Vec<Keypair> = (0..100u8).map(|i| Keypair::from_seed([i; 32])).collect();
    (0..n)
        .map(|i| {
            let action = testkit::call(contracts[i % contracts.len()], "increment", &[]);
            signed(&keys[i % 100], (i / 100) as u64, action)
                .verify()
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect()
}

fn execute(c: &mut Criterion) {
    let mut g = c.benchmark_group("execute");
    g.sample_size(20);

    let vm = Vm::new(VmConfig {
        workers: 1,
        ..VmConfig::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let (st, addrs) = setup(&vm, 1);
    let base: Arc<MemState> = Arc::new(st);
    let txs = calls(&addrs, 2_000);
    g.throughput(Throughput::Elements(txs.len() as u64));
    g.bench_function("counter_increment_1_thread", |b| {
        b.iter_batched(
            || txs.clone(),
            |txs| black_box(vm.execute_block(base.clone(), &ctx(2), txs)),
            BatchSize::LargeInput,
        )
    });

    for workers in [1usize, 2] {
        let vm = Vm::new(VmConfig {
            workers,
            ..VmConfig::default()
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let (st, addrs) = setup(&vm, 8);
        let base: Arc<MemState> = Arc::new(st);
        let txs = calls(&addrs, 5_000);
        g.throughput(Throughput::Elements(txs.len() as u64));
        g.bench_function(format!("block_5000_counter_calls_{workers}_workers"), |b| {
            b.iter_batched(
                || txs.clone(),
                |txs| black_box(vm.execute_block(base.clone(), &ctx(2), txs)),
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

/// Contracts whose `run` burns gas in one way until the limit stops it.
const FUEL_CONTRACTS: &[(&str, &str)] = &[
    (
        "loop",
        r#"(module (memory (export "memory") 1)
          (func (export "run") (loop $l (br $l))))"#,
    ),
    (
        "host_calls",
        r#"(module (import "accumen" "gas_left" (func $g (result i64)))
          (memory (export "memory") 1)
          (func (export "run") (loop $l (drop (call $g)) (br $l))))"#,
    ),
    (
        "storage_writes",
        r#"(module (import "accumen" "storage_write" (func $w (param i32 i32 i32 i32)))
          (memory (export "memory") 1)
          (func (export "run")
            (loop $l (call $w (i32.const 0) (i32.const 8) (i32.const 8) (i32.const 8)) (br $l))))"#,
    ),
    (
        "slow_divisions",
        r#"(module (memory (export "memory") 1)
          (data (i32.const 8) "\03\00\00\00\00\00\00\00")
          (func (export "run") (local $x i64) (local $d i64)
            (local.set $x (i64.const -1))
            (loop $l
              (local.set $d (i64.load (i32.const 8)))
              (local.set $x (i64.div_u (i64.div_u (i64.div_u (i64.div_u
                (i64.or (local.get $x) (i64.const 0x7fffffffffffffff))
                (local.get $d)) (local.get $d)) (local.get $d)) (local.get $d)))
              (br $l))))"#,
    ),
    (
        "grow_60_pages",
        r#"(module (memory (export "memory") 1)
          (func (export "run") (local $p i32)
            (drop (memory.grow (i32.const 60)))
            (local.set $p (i32.const 65536))
            (loop $l
              (i32.store8 (local.get $p) (i32.const 1))
              (local.set $p (i32.add (local.get $p) (i32.const 4096)))
              (br_if $l (i32.lt_u (local.get $p) (i32.const 3997696))))))"#,
    ),
];

fn fuel(c: &mut Criterion) {
    const GAS: u64 = 50_000_000;
    let mut g = c.benchmark_group("fuel");
    g.sample_size(10);
    let vm = Vm::new(VmConfig {
        workers: 1,
        ..VmConfig::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let deployer = Keypair::from_seed([201; 32]);
    let txs: Vec<VerifiedTx> = FUEL_CONTRACTS
        .iter()
        .enumerate()
        .map(|(i, (_, src))| {
            let code = wat::parse_str(src).unwrap_or_else(|e| panic!("{e}"));
            let mut t = signed(&deployer, i as u64, Action::Deploy { code: Bytes(code) });
            t.tx.gas_limit = GAS;
            deployer
                .sign(t.tx)
                .verify()
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect();
    let addrs: Vec<Address> = txs.iter().map(|t| t.tx().target()).collect();
    let mut st = MemState::default();
    let out = vm
        .execute_block(Arc::new(st.clone()), &ctx(1), txs)
        .unwrap_or_else(|e| panic!("{e}"));
    st.apply(&out.writes);
    let base: Arc<MemState> = Arc::new(st);
    let addrs_for_blocks = addrs.clone();
    for ((name, _), addr) in FUEL_CONTRACTS.iter().zip(addrs) {
        let query = Query {
            contract: addr,
            entry: "run".into(),
            args: Vec::new(),
            sender: deployer.public(),
            gas_limit: GAS,
            height: 1,
            time_ms: 0,
        };
        let used = vm
            .query(base.clone(), query.clone())
            .unwrap_or_else(|e| panic!("{e}"))
            .gas_used;
        // Throughput in gas (elements/s = gas/s); for the grow call, in pages.
        let per = if *name == "grow_60_pages" { 60 } else { used };
        eprintln!("fuel/{name}: {used} gas per call");
        g.throughput(Throughput::Elements(per));
        g.bench_function(*name, |b| {
            b.iter(|| black_box(vm.query(base.clone(), query.clone())))
        });
    }
    // A full block (MAX_BLOCK_GAS of 50M-gas calls to one contract: one group, one worker) of
    // the tight loop and of host calls: the wall time a block can take.
    for (i, name) in [(0usize, "full_block_loop"), (1, "full_block_host_calls")] {
        let n = (accumen_actors::vm::gas::MAX_BLOCK_GAS / GAS) as usize;
        let txs: Vec<VerifiedTx> = (0..n)
            .map(|k| {
                let key = Keypair::from_seed([150 + k as u8; 32]);
                let action = Action::Call {
                    contract: addrs_for_blocks[i],
                    entry: "run".into(),
                    args: Bytes::default(),
                };
                let mut t = signed(&key, 0, action);
                t.tx.gas_limit = GAS;
                key.sign(t.tx).verify().unwrap_or_else(|e| panic!("{e}"))
            })
            .collect();
        g.throughput(Throughput::Elements(accumen_actors::vm::gas::MAX_BLOCK_GAS));
        g.bench_function(name, |b| {
            b.iter_batched(
                || txs.clone(),
                |txs| black_box(vm.execute_block(base.clone(), &ctx(2), txs)),
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

fn tx(c: &mut Criterion) {
    let mut g = c.benchmark_group("tx");
    let key = Keypair::from_seed([1; 32]);
    let t = signed(
        &key,
        7,
        Action::Call {
            contract: Address([3; 32]),
            entry: "increment".into(),
            args: Bytes(vec![0; 32]),
        },
    );
    let bytes = t.encode();
    g.throughput(Throughput::Elements(1));
    g.bench_function("verify", |b| b.iter(|| black_box(t.clone().verify())));
    let cache = accumen_actors::types::KeyCache::new(16);
    g.bench_function("verify_cached_key", |b| {
        b.iter(|| black_box(t.clone().verify_cached(&cache)))
    });
    g.bench_function("decode", |b| b.iter(|| black_box(SignedTx::decode(&bytes))));
    g.finish();
}

/// Executes `txs` on top of the storage head, seals the block and commits it.
fn produce(vm: &Vm, storage: &Storage, key: &Keypair, txs: Vec<VerifiedTx>) -> usize {
    let head = storage.head().unwrap_or_else(|e| panic!("{e}"));
    let bctx = ctx(head.height + 1);
    let snapshot = Arc::new(storage.snapshot().unwrap_or_else(|e| panic!("{e}")));
    let out = vm
        .execute_block(snapshot, &bctx, txs)
        .unwrap_or_else(|e| panic!("{e}"));
    let txs: Vec<SignedTx> = out.txs.iter().map(|t| t.signed().clone()).collect();
    let header = BlockHeader::child(&head, bctx.timestamp_ms, &txs, &out.receipts, &out.writes);
    let n = txs.len();
    let block = Block::seal(header, txs, key);
    storage
        .commit_block(&block, &out.receipts, &out.writes)
        .unwrap_or_else(|e| panic!("{e}"));
    n
}

fn block(c: &mut Criterion) {
    let mut g = c.benchmark_group("block");
    g.sample_size(10);
    let vm = Vm::new(VmConfig {
        workers: 2,
        ..VmConfig::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let seq = Keypair::from_seed([250; 32]);
    let deployer = Keypair::from_seed([200; 32]);
    let deploys: Vec<VerifiedTx> = (0..8u64)
        .map(|i| {
            let mut t = signed(
                &deployer,
                i,
                Action::Deploy {
                    code: Bytes(counter()),
                },
            );
            t.tx.gas_limit = 50_000_000;
            deployer
                .sign(t.tx)
                .verify()
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect();
    let addrs: Vec<Address> = deploys.iter().map(|t| t.tx().target()).collect();
    let txs = calls(&addrs, 5_000);
    g.throughput(Throughput::Elements(txs.len() as u64));
    for backend in ["memory", "file"] {
        g.bench_function(format!("execute_and_commit_5000_{backend}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
                    let storage = match backend {
                        "memory" => Storage::in_memory_with(&ChainParams::with_defaults(CHAIN)),
                        _ => Storage::open(
                            &dir.path().join("bench.redb"),
                            &ChainParams::with_defaults(CHAIN),
                        ),
                    }
                    .unwrap_or_else(|e| panic!("{e}"));
                    produce(&vm, &storage, &seq, deploys.clone());
                    let batch = txs.clone();
                    let started = Instant::now();
                    let n = produce(&vm, &storage, &seq, batch);
                    total += started.elapsed();
                    assert_eq!(n, 5_000);
                }
                total
            })
        });
    }
    g.finish();
}

criterion_group!(benches, execute, fuel, block, tx);
criterion_main!(benches);
