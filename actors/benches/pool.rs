//! Benchmark of the mempool's data structure (`mempool::pool::Pool`, criterion): what one
//! transaction costs the pool over its whole stay at the peak's shape, without verification,
//! journal or actors around it. Figures are reported in closing notes, never asserted in tests.
//!
//! - `pool/lifecycle_100k`: 100,000 calls from 2,000 senders (50 nonces each), arriving in
//!   batches of 1,000 as the stress tool sends them (each batch 1,000 senders' same nonce):
//!   each batch admitted pending (`admit_pending`) and then made durable (`mark_durable`), as
//!   after its journal write; then blocks of 20,000 selected (`select`) and settled
//!   (`on_block`) until the pool is empty. Throughput is per transaction.

use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;

use accumen_actors::mempool::pool::{BlockLimits, Pool, PoolConfig};
use accumen_actors::testkit;
use accumen_actors::types::{Address, Keypair, PublicKey, VerifiedTx};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

const CHAIN: &str = "accumen-bench";
const SENDERS: usize = 2_000;
const TXS: usize = 100_000;
const BATCH: usize = 1_000;
const BLOCK: usize = 20_000;

fn config() -> PoolConfig {
    PoolConfig {
        chain_id: CHAIN.into(),
        max_size: 200_000,
        max_bytes: 1 << 30,
        account_limit: 1_000,
        max_tx_gas: 10_000_000,
        max_future_nonces: 1_000,
        future_limit: 64,
        future_ttl_ms: 600_000,
    }
}

/// Transaction `g` is sender `g % SENDERS`'s nonce `g / SENDERS`, in arrival order.
fn txs() -> Vec<VerifiedTx> {
    let keys: Vec<Keypair> = (0..SENDERS)
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
            Keypair::from_seed(seed)
        })
        .collect();
    let contract = Address([7; 32]);
    (0..TXS)
        .map(|g| {
            let key = &keys[g % SENDERS];
            let body = testkit::body(
                CHAIN,
                key.public(),
                (g / SENDERS) as u64,
                testkit::call(contract, "increment", &[]),
                100_000,
            );
            match key.sign(body).verify() {
                Ok(v) => v,
                Err(e) => panic!("{e}"),
            }
        })
        .collect()
}

fn lifecycle(txs: Vec<VerifiedTx>) -> usize {
    let mut pool = Pool::new(config());
    let mut txs = txs.into_iter();
    loop {
        let batch: Vec<VerifiedTx> = txs.by_ref().take(BATCH).collect();
        if batch.is_empty() {
            break;
        }
        let mut admitted = Vec::with_capacity(batch.len());
        for tx in batch {
            let id = tx.id();
            if pool.admit_pending(tx, 0, 0).is_ok()
                && let Some(a) = pool.admitted(&id)
            {
                admitted.push(a);
            }
        }
        pool.mark_durable(&admitted);
    }
    let limits = BlockLimits {
        txs: BLOCK,
        gas: u64::MAX,
        bytes: u64::MAX,
    };
    let deploys = HashMap::new();
    let mut committed = 0;
    while !pool.is_empty() {
        let sel = pool.select(limits, 0, &deploys);
        if sel.txs.is_empty() {
            break;
        }
        let mut nonces: BTreeMap<PublicKey, u64> = BTreeMap::new();
        for t in &sel.txs {
            let n = nonces.entry(t.tx().sender).or_default();
            *n = (*n).max(t.tx().nonce + 1);
        }
        let ids: Vec<_> = sel.txs.iter().map(VerifiedTx::id).collect();
        committed += ids.len();
        black_box(pool.on_block(&ids, &nonces, &[]));
    }
    committed
}

fn bench(c: &mut Criterion) {
    let all = txs();
    assert_eq!(lifecycle(all.clone()), TXS, "every transaction commits");
    let mut g = c.benchmark_group("pool");
    g.sample_size(10);
    g.throughput(Throughput::Elements(TXS as u64));
    g.bench_function("lifecycle_100k", |b| {
        b.iter_batched(|| all.clone(), lifecycle, BatchSize::LargeInput)
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
