//! Unit tests of `Pool::shrink_if_sparse`: after a backlog drains, the pool's hash maps give
//! their room back, and what is still pending (contents, per-sender order, indexes) is
//! untouched; a pool that is not sparse is left alone.

use super::*;
use crate::testkit::{self, CHAIN};
use crate::types::{Signature, SignedTx};

fn config(max_size: usize) -> PoolConfig {
    PoolConfig {
        chain_id: CHAIN.into(),
        max_size,
        max_bytes: 1 << 30,
        account_limit: 100,
        max_tx_gas: 1_000_000,
        max_future_nonces: 1_000,
        future_limit: 100,
        future_ttl_ms: 60_000,
    }
}

fn sender(i: u32) -> PublicKey {
    let mut k = [0u8; 32];
    k[..4].copy_from_slice(&i.to_le_bytes());
    PublicKey(k)
}

/// A pool holding `senders` x `per_sender` transactions (nonces from 0). Signatures are not
/// what is tested here, so the transactions are built trusted (as a journal reload does).
fn filled(senders: u32, per_sender: u64) -> Pool {
    let mut pool = Pool::new(config(senders as usize * per_sender as usize));
    let template = testkit::body(
        CHAIN,
        sender(0),
        0,
        testkit::call(Address([9; 32]), "increment", &[]),
        1_000,
    );
    for nonce in 0..per_sender {
        for i in 0..senders {
            let mut b = template.clone();
            b.sender = sender(i);
            b.nonce = nonce;
            let t = VerifiedTx::from_trusted(SignedTx {
                tx: b,
                signature: Signature([0; 64]),
            });
            assert!(pool.admit(t, 0, 0).is_ok());
        }
    }
    pool
}

/// Selects up to `n` transactions and commits them all as one block; returns their ids.
fn block(pool: &mut Pool, n: usize) -> Vec<Hash> {
    let picked = pool
        .select(
            BlockLimits {
                txs: n,
                gas: u64::MAX,
                bytes: u64::MAX,
            },
            0,
            &HashMap::new(),
        )
        .txs;
    let ids: Vec<Hash> = picked.iter().map(VerifiedTx::id).collect();
    let mut nonces = BTreeMap::new();
    for t in &picked {
        nonces.insert(t.tx().sender, t.tx().nonce + 1);
    }
    assert!(pool.on_block(&ids, &nonces, &[]).is_empty());
    ids
}

#[test]
fn a_drained_backlog_gives_its_room_back_and_keeps_what_is_pending() {
    // 60,000 pending from 20,000 senders: both maps grow well past the floor.
    let mut pool = filled(20_000, 3);
    assert_eq!(pool.len(), 60_000);
    let (full_entries, full_accounts) = pool.capacities();
    assert!(full_entries >= 60_000 && full_accounts >= 20_000);

    // A block of 20,000 leaves 40,000: not sparse (capacity <= 4 x len), so nothing is
    // rehashed while the backlog is still large. (A hash map's reported capacity drops by the
    // tombstones removals leave, at most one per removal; a rehash would clear them.)
    block(&mut pool, 20_000);
    assert_eq!(pool.len(), 40_000);
    let (e, a) = pool.capacities();
    assert!(e >= full_entries - 20_000, "{e} of {full_entries}");
    assert_eq!(a, full_accounts);
    assert!(!pool.shrink_if_sparse());

    // The next leaves 20,000 (every sender's nonce 2): `entries` is now sparse and shrinks
    // in this block's `on_block`; `accounts` still holds every sender and keeps its room.
    let mut before: Vec<Hash> = pool.entries.keys().copied().collect();
    let included = block(&mut pool, 20_000);
    let (entries_cap, accounts_cap) = pool.capacities();
    assert!(
        entries_cap < full_entries && entries_cap <= 4 * pool.len(),
        "entries kept {entries_cap} of {full_entries} for {}",
        pool.len()
    );
    assert_eq!(accounts_cap, full_accounts);

    // Contents intact: exactly the pending ones that were not included, every index
    // consistent, and each sender's last transaction is still its next to execute.
    pool.check_invariants();
    let included: std::collections::HashSet<Hash> = included.into_iter().collect();
    before.retain(|id| !included.contains(id));
    before.sort();
    let mut now: Vec<Hash> = pool.entries.keys().copied().collect();
    now.sort();
    assert_eq!(now, before);
    assert_eq!(pool.len(), 20_000);
    assert_eq!(pool.accounts(), 20_000);
    let rest = pool
        .select(
            BlockLimits {
                txs: 20_000,
                gas: u64::MAX,
                bytes: u64::MAX,
            },
            0,
            &HashMap::new(),
        )
        .txs;
    assert_eq!(rest.len(), 20_000);
    assert!(rest.iter().all(|t| t.tx().nonce == 2));
    pool.return_in_flight();
    pool.check_invariants();

    // Fully drained: both maps are back to the floor's room.
    block(&mut pool, 20_000);
    assert!(pool.is_empty());
    pool.check_invariants();
    let (e, a) = pool.capacities();
    assert!(
        e <= 4 * SHRINK_FLOOR && a <= 4 * SHRINK_FLOOR && a < full_accounts,
        "empty pool kept {e}/{a}"
    );
    assert_eq!(pool.bytes(), 0);
}

#[test]
fn a_busy_pool_is_not_shrunk_and_a_shrunk_one_is_stable() {
    // Below the floor nothing is ever shrunk, however empty.
    let mut small = filled(100, 10);
    assert!(!small.shrink_if_sparse());
    block(&mut small, 1_000);
    assert!(small.is_empty());
    assert!(!small.shrink_if_sparse());

    // A map more than a quarter full is left alone.
    let mut pool = filled(2_000, 10);
    let full = pool.capacities();
    block(&mut pool, 12_000);
    assert_eq!(pool.len(), 8_000);
    assert!(!pool.shrink_if_sparse());
    // Emptied, it shrinks to the floor's room; asking again then does nothing (no rehash per
    // block while the pool stays at the same size).
    block(&mut pool, 8_000);
    assert!(pool.is_empty());
    let shrunk = pool.capacities();
    assert!(
        shrunk.0 < full.0 && shrunk.0 <= 4 * SHRINK_FLOOR,
        "{shrunk:?} of {full:?}"
    );
    assert!(!pool.shrink_if_sparse());
    assert_eq!(pool.capacities(), shrunk);
}
