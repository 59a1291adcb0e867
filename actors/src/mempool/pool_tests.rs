//! Unit tests of `Pool`: admission rules, eviction, fair ordering, block limits, in-flight
//! bookkeeping, block results, expiry, and a property test over random operation sequences.

use super::*;
use crate::testkit;
use crate::types::{Action, Address, Bytes, Keypair, Signature, SignedTx, Tx};
use proptest::prelude::*;

use crate::testkit::CHAIN;

fn config() -> PoolConfig {
    PoolConfig {
        chain_id: CHAIN.into(),
        max_size: 100,
        max_bytes: 1 << 30,
        account_limit: 10,
        max_tx_gas: 1_000_000,
        max_future_nonces: 5,
        future_limit: 5,
        future_ttl_ms: 60_000,
    }
}

/// Limits that only count transactions.
fn count_only(txs: usize) -> BlockLimits {
    BlockLimits {
        txs,
        gas: u64::MAX,
        bytes: u64::MAX,
    }
}

/// Selects up to `max` txs with no gas or byte limit.
fn sel(pool: &mut Pool, max: usize, now: u64) -> Vec<VerifiedTx> {
    pool.select(count_only(max), now, &HashMap::new()).txs
}

fn key(n: u8) -> Keypair {
    Keypair::from_seed([n; 32])
}

fn body(kp: &Keypair, nonce: u64, priority: u64) -> Tx {
    let call = testkit::call(Address([9; 32]), "increment", &[]);
    let mut tx = testkit::body(CHAIN, kp.public(), nonce, call, 1_000);
    tx.priority = priority;
    tx
}

fn sign(kp: &Keypair, tx: Tx) -> VerifiedTx {
    testkit::verified(kp.sign(tx))
}

fn tx(kp: &Keypair, nonce: u64, priority: u64) -> VerifiedTx {
    sign(kp, body(kp, nonce, priority))
}

fn tx_expiring(kp: &Keypair, nonce: u64, expiry: u64) -> VerifiedTx {
    let mut b = body(kp, nonce, 0);
    b.expiry = Some(expiry);
    sign(kp, b)
}

/// (sender, nonce) of each selected tx, for readable assertions.
fn order(txs: &[VerifiedTx]) -> Vec<(PublicKey, u64)> {
    txs.iter().map(|t| (t.tx().sender, t.tx().nonce)).collect()
}

fn ids(txs: &[VerifiedTx]) -> Vec<Hash> {
    txs.iter().map(VerifiedTx::id).collect()
}

#[test]
fn every_rejection_is_specific_and_changes_nothing() {
    let a = key(1);
    let b = key(2);
    let mut pool = Pool::new(PoolConfig {
        max_size: 4,
        account_limit: 3,
        ..config()
    });
    // a: state nonce 10, pending 10, 11, 12 (account full); b: pending 0.
    for n in 10..13 {
        pool.admit(tx(&a, n, 0), 10, 0).unwrap();
    }
    pool.admit(tx(&b, 0, 0), 0, 0).unwrap();
    pool.check_invariants();
    let snapshot = |p: &Pool| {
        (
            p.len(),
            p.accounts(),
            p.pending_of(&a.public()),
            p.pending_of(&b.public()),
        )
    };
    let before = snapshot(&pool);

    let mut wrong_chain = body(&b, 1, 0);
    wrong_chain.chain_id = "other".into();
    let mut big_gas = body(&b, 1, 0);
    big_gas.gas_limit = 1_000_001;
    let dup = tx(&a, 10, 0);
    let c = key(3);
    let cases: Vec<(VerifiedTx, u64, AdmitError)> = vec![
        (
            sign(&b, wrong_chain),
            0,
            AdmitError::WrongChain {
                expected: CHAIN.into(),
                got: "other".into(),
            },
        ),
        (
            sign(&b, big_gas),
            0,
            AdmitError::GasLimit {
                limit: 1_000_001,
                max: 1_000_000,
            },
        ),
        (
            tx_expiring(&b, 1, 99),
            0,
            AdmitError::Expired {
                expiry: 99,
                now: 100,
            },
        ),
        (
            tx(&b, 0, 5),
            1,
            AdmitError::NonceTooLow {
                expected: 1,
                got: 0,
            },
        ),
        (
            tx(&b, 6, 0),
            0,
            AdmitError::NonceTooFar {
                next: 0,
                got: 6,
                max_ahead: 5,
            },
        ),
        (dup.clone(), 10, AdmitError::Duplicate(dup.id())),
        (tx(&b, 0, 7), 0, AdmitError::NonceTaken { nonce: 0 }),
        (tx(&a, 13, 0), 10, AdmitError::AccountFull { limit: 3 }),
        // Full, and a tx behind a gap never evicts anything.
        (
            tx(&c, 1, 0),
            0,
            AdmitError::PoolFull {
                max_size: 4,
                max_bytes: 1 << 30,
            },
        ),
    ];
    for (t, state_nonce, want) in cases {
        assert_eq!(pool.admit(t, state_nonce, 100), Err(want));
        assert_eq!(snapshot(&pool), before);
        pool.check_invariants();
    }
    // A stale state lookup cannot undercut the nonce the pool learned from a block.
    pool.on_block(&[], &BTreeMap::from([(a.public(), 11)]), &[]);
    assert_eq!(
        pool.admit(tx(&a, 10, 9), 0, 0),
        Err(AdmitError::NonceTooLow {
            expected: 11,
            got: 10
        })
    );
}

#[test]
fn max_future_nonce_boundary() {
    let a = key(1);
    let mut pool = Pool::new(config());
    pool.admit(tx(&a, 7, 0), 2, 0).unwrap(); // 2 + 5: the farthest allowed
    assert!(matches!(
        pool.admit(tx(&a, 8, 0), 2, 0),
        Err(AdmitError::NonceTooFar { .. })
    ));
    assert!(sel(&mut pool, 10, 0).is_empty(), "held behind the gap 2..7");
}

#[test]
fn size_and_account_limits_are_exact() {
    let mut pool = Pool::new(PoolConfig {
        max_size: 5,
        account_limit: 2,
        ..config()
    });
    let keys: Vec<Keypair> = (1..=3).map(key).collect();
    pool.admit(tx(&keys[0], 0, 0), 0, 0).unwrap();
    pool.admit(tx(&keys[0], 1, 0), 0, 0).unwrap();
    assert_eq!(
        pool.admit(tx(&keys[0], 2, 0), 0, 0),
        Err(AdmitError::AccountFull { limit: 2 })
    );
    pool.admit(tx(&keys[1], 0, 0), 0, 0).unwrap();
    pool.admit(tx(&keys[1], 1, 0), 0, 0).unwrap();
    pool.admit(tx(&keys[2], 0, 0), 0, 0).unwrap();
    assert_eq!(pool.len(), 5);
    assert_eq!(
        pool.admit(tx(&keys[2], 1, 0), 0, 0),
        Err(AdmitError::PoolFull {
            max_size: 5,
            max_bytes: 1 << 30
        })
    );
    // In-flight txs still count: selecting frees no room.
    assert_eq!(sel(&mut pool, 5, 0).len(), 5);
    assert_eq!(pool.len(), 5);
    assert_eq!(
        pool.admit(tx(&keys[2], 1, 0), 0, 0),
        Err(AdmitError::PoolFull {
            max_size: 5,
            max_bytes: 1 << 30
        })
    );
    // Including one frees one slot.
    let first = pool.get(&tx(&keys[0], 0, 0).id()).unwrap().id();
    pool.on_block(&[first], &BTreeMap::from([(keys[0].public(), 1)]), &[]);
    assert_eq!(pool.len(), 4);
    pool.admit(tx(&keys[2], 1, 0), 0, 0).unwrap();
    assert_eq!(pool.pending_of(&keys[2].public()), 2);
    pool.check_invariants();
}

#[test]
fn priority_then_arrival_across_senders() {
    let (a, b, c, d) = (key(1), key(2), key(3), key(4));
    let mut pool = Pool::new(config());
    pool.admit(tx(&a, 0, 1), 0, 0).unwrap();
    pool.admit(tx(&b, 0, 5), 0, 0).unwrap();
    pool.admit(tx(&c, 0, 1), 0, 0).unwrap();
    pool.admit(tx(&d, 0, 5), 0, 0).unwrap();
    let got = order(&sel(&mut pool, 10, 0));
    assert_eq!(
        got,
        vec![
            (b.public(), 0),
            (d.public(), 0),
            (a.public(), 0),
            (c.public(), 0)
        ]
    );
    pool.check_invariants();
}

#[test]
fn sender_nonce_order_even_when_later_nonce_pays_more() {
    let (a, b) = (key(1), key(2));
    let mut pool = Pool::new(config());
    // Admitted out of order, later nonces with higher priority.
    pool.admit(tx(&a, 2, 100), 0, 0).unwrap();
    pool.admit(tx(&a, 1, 50), 0, 0).unwrap();
    pool.admit(tx(&a, 0, 1), 0, 0).unwrap();
    pool.admit(tx(&b, 0, 10), 0, 0).unwrap();
    let got = order(&sel(&mut pool, 10, 0));
    // b (10) beats a's head (1); once a's head goes, its nonces follow in order.
    assert_eq!(
        got,
        vec![
            (b.public(), 0),
            (a.public(), 0),
            (a.public(), 1),
            (a.public(), 2)
        ]
    );
}

#[test]
fn select_respects_max_and_continues() {
    let (a, b) = (key(1), key(2));
    let mut pool = Pool::new(config());
    for n in 0..3 {
        pool.admit(tx(&a, n, 2), 0, 0).unwrap();
        pool.admit(tx(&b, n, 1), 0, 0).unwrap();
    }
    // Band 2 (a) costs 2 units of virtual time per tx, band 1 (b) 4: a gets twice b's share
    // but never all of it.
    let first = order(&sel(&mut pool, 2, 0));
    assert_eq!(first, vec![(a.public(), 0), (b.public(), 0)]);
    let rest = order(&sel(&mut pool, 10, 0));
    assert_eq!(
        rest,
        vec![
            (a.public(), 1),
            (a.public(), 2),
            (b.public(), 1),
            (b.public(), 2)
        ]
    );
    assert!(
        sel(&mut pool, 10, 0).is_empty(),
        "in-flight txs are not selected twice"
    );
    assert_eq!(pool.len(), 6);
    assert_eq!(pool.in_flight(), 6);
    assert!(sel(&mut pool, 0, 0).is_empty());
    pool.check_invariants();
}

#[test]
fn future_nonce_waits_for_the_gap() {
    let a = key(1);
    let mut pool = Pool::new(config());
    pool.admit(tx(&a, 0, 0), 0, 0).unwrap();
    pool.admit(tx(&a, 2, 0), 0, 0).unwrap();
    assert_eq!(order(&sel(&mut pool, 10, 0)), vec![(a.public(), 0)]);
    assert!(sel(&mut pool, 10, 0).is_empty());
    // Filling the gap while 0 is in flight makes 1 and then 2 selectable.
    pool.admit(tx(&a, 1, 0), 0, 0).unwrap();
    pool.check_invariants();
    assert_eq!(
        order(&sel(&mut pool, 10, 0)),
        vec![(a.public(), 1), (a.public(), 2)]
    );
    pool.check_invariants();
}

#[test]
fn in_flight_is_still_pending() {
    let a = key(1);
    let mut pool = Pool::new(config());
    let t = tx(&a, 0, 0);
    pool.admit(t.clone(), 0, 0).unwrap();
    let picked = sel(&mut pool, 10, 0);
    assert_eq!(ids(&picked), vec![t.id()]);
    assert!(pool.contains(&t.id()));
    assert_eq!(pool.get(&t.id()), Some(&t));
    assert_eq!(
        (pool.len(), pool.accounts(), pool.pending_of(&a.public())),
        (1, 1, 1)
    );
    assert_eq!(
        pool.admit(t.clone(), 0, 0),
        Err(AdmitError::Duplicate(t.id()))
    );
    assert_eq!(
        pool.admit(tx(&a, 0, 9), 0, 0),
        Err(AdmitError::NonceTaken { nonce: 0 })
    );
}

#[test]
fn on_block_settles_everything() {
    let (a, b, c) = (key(1), key(2), key(3));
    let mut pool = Pool::new(config());
    let a0 = tx(&a, 0, 9);
    let a1 = tx(&a, 1, 9);
    let a3 = tx(&a, 3, 9); // future: held back
    let b0 = tx(&b, 0, 5);
    let b1 = tx(&b, 1, 5);
    let c0 = tx(&c, 0, 1);
    let c1 = tx(&c, 1, 1);
    for t in [&a0, &a1, &a3, &b0, &b1, &c0, &c1] {
        pool.admit(t.clone(), 0, 0).unwrap();
    }
    let picked = sel(&mut pool, 5, 0);
    // Fair order: every sender once at tag 0 (higher band first), then again.
    assert_eq!(
        ids(&picked),
        vec![a0.id(), b0.id(), c0.id(), a1.id(), b1.id()]
    );

    // The block included a0, a1, c0; b0 was dropped for a stale nonce (b's nonce really
    // was 1, so b0 can never run), b1 with a future nonce (retryable). c1 was not selected.
    let nonces = BTreeMap::from([(a.public(), 2), (b.public(), 1), (c.public(), 1)]);
    let dropped = vec![
        (
            b0.id(),
            DropReason::Nonce {
                expected: 1,
                got: 0,
            },
        ),
        (
            b1.id(),
            DropReason::Nonce {
                expected: 0,
                got: 1,
            },
        ),
    ];
    let removed = pool.on_block(&[a0.id(), a1.id(), c0.id()], &nonces, &dropped);
    assert_eq!(removed, vec![b0.id()]);
    pool.check_invariants();
    assert!(!pool.contains(&a0.id()) && !pool.contains(&c0.id()));
    assert_eq!(pool.len(), 3); // a3, b1, c1
    assert_eq!(pool.in_flight(), 0);
    // b1 is b's next nonce now and selectable again; a3 still waits for a2.
    assert_eq!(ids(&sel(&mut pool, 10, 0)), vec![b1.id(), c1.id()]);

    // The next block commits b1 and c1 and reports a's next nonce as 5 (a2..a4 came in through
    // another path), so a3 is stale and purged although it was never in the block.
    let removed = pool.on_block(&[b1.id(), c1.id()], &BTreeMap::from([(a.public(), 5)]), &[]);
    assert_eq!(removed, vec![a3.id()]);
    assert!(pool.is_empty());
    assert_eq!(pool.accounts(), 0);
    pool.check_invariants();
}

#[test]
fn on_block_returns_unsettled_in_flight_and_infers_nonces() {
    let (a, b) = (key(1), key(2));
    let mut pool = Pool::new(config());
    let a0 = tx(&a, 0, 1);
    let a1 = tx(&a, 1, 1);
    let b0 = tx(&b, 0, 2);
    for t in [&a0, &a1, &b0] {
        pool.admit(t.clone(), 0, 0).unwrap();
    }
    assert_eq!(sel(&mut pool, 10, 0).len(), 3);
    // Only a0 made it (the caller's nonce map is empty: inclusion alone advances a).
    let removed = pool.on_block(&[a0.id()], &BTreeMap::new(), &[]);
    assert!(removed.is_empty());
    pool.check_invariants();
    assert_eq!(ids(&sel(&mut pool, 10, 0)), vec![b0.id(), a1.id()]);
    assert_eq!(pool.pending_nonce(&a.public(), 0), 2);
}

/// Block N+1 is selected while N commits: N's settlement must not free N+1's selection.
#[test]
fn settling_a_block_leaves_the_next_attempt_in_flight() {
    let (a, b) = (key(1), key(2));
    let mut pool = Pool::new(config());
    let a_txs: Vec<VerifiedTx> = (0..5).map(|n| tx(&a, n, 1)).collect();
    let b0 = tx(&b, 0, 1);
    for t in a_txs.iter().chain([&b0]) {
        pool.admit(t.clone(), 0, 0).unwrap();
    }
    let n = ids(&sel(&mut pool, 2, 0)); // a0, b0 (fair order)
    let n1 = ids(&sel(&mut pool, 2, 0)); // a1, a2
    assert_eq!(n, vec![a_txs[0].id(), b0.id()]);
    assert_eq!(n1, vec![a_txs[1].id(), a_txs[2].id()]);
    assert_eq!((pool.attempts(), pool.in_flight()), (2, 4));

    let nonces = BTreeMap::from([(a.public(), 1), (b.public(), 1)]);
    assert!(pool.on_block(&n, &nonces, &[]).is_empty());
    pool.check_invariants();
    assert_eq!((pool.attempts(), pool.in_flight()), (1, 2));
    // a1 and a2 are still in N+1: the next selection goes on after them.
    assert_eq!(
        ids(&sel(&mut pool, 10, 0)),
        vec![a_txs[3].id(), a_txs[4].id()]
    );
    pool.check_invariants();
    let nonces = BTreeMap::from([(a.public(), 3)]);
    assert!(pool.on_block(&n1, &nonces, &[]).is_empty());
    pool.check_invariants();
    assert_eq!((pool.attempts(), pool.len()), (1, 2));
}

/// Block N leaves out a sender's tx (a full block) while N+1 holds the sender's later ones:
/// it waits in flight until N+1 settles (N+1 cannot include them), then comes back in order.
#[test]
fn a_left_out_transaction_waits_for_its_senders_later_attempt() {
    let a = key(1);
    let mut pool = Pool::new(config());
    let t: Vec<VerifiedTx> = (0..3).map(|n| tx(&a, n, 1)).collect();
    for x in &t {
        pool.admit(x.clone(), 0, 0).unwrap();
    }
    assert_eq!(ids(&sel(&mut pool, 2, 0)), vec![t[0].id(), t[1].id()]);
    assert_eq!(ids(&sel(&mut pool, 2, 0)), vec![t[2].id()]);
    let full = DropReason::BlockFull(crate::vm::BlockLimit::Gas);
    let removed = pool.on_block(
        &[t[0].id()],
        &BTreeMap::from([(a.public(), 1)]),
        &[(t[1].id(), full)],
    );
    assert!(removed.is_empty());
    pool.check_invariants();
    assert_eq!(pool.in_flight(), 2, "t1 waits, in flight, for N+1");
    assert!(
        sel(&mut pool, 10, 0).is_empty(),
        "nothing of a's is selectable"
    );
    // N+1 (t2) runs on a's nonce 1: a future nonce.
    let future = DropReason::Nonce {
        expected: 1,
        got: 2,
    };
    // The second (empty) selection settles first in the mempool's order: N+1, then it.
    assert!(
        pool.on_block(&[], &BTreeMap::new(), &[(t[2].id(), future)])
            .is_empty()
    );
    pool.check_invariants();
    pool.on_block(&[], &BTreeMap::new(), &[]);
    pool.check_invariants();
    assert_eq!(pool.in_flight(), 0);
    assert_eq!(ids(&sel(&mut pool, 10, 0)), vec![t[1].id(), t[2].id()]);
}

/// A tx that block N drops for good while N+1 holds its sender's later txs is removed when
/// N+1 settles (or when everything in flight is returned), never while a later tx of its
/// sender is in flight.
#[test]
fn a_tx_dropped_for_good_leaves_once_its_senders_later_attempt_settles() {
    let a = key(1);
    for fail in [false, true] {
        let mut pool = Pool::new(config());
        let t: Vec<VerifiedTx> = (0..3).map(|n| tx(&a, n, 1)).collect();
        for x in &t {
            pool.admit(x.clone(), 0, 0).unwrap();
        }
        sel(&mut pool, 2, 0);
        sel(&mut pool, 2, 0);
        let removed = pool.on_block(
            &[t[0].id()],
            &BTreeMap::from([(a.public(), 1)]),
            &[(t[1].id(), DropReason::Timeout)],
        );
        assert!(removed.is_empty(), "t1 waits for N+1");
        assert!(pool.contains(&t[1].id()));
        pool.check_invariants();
        let removed = if fail {
            pool.return_in_flight()
        } else {
            let future = DropReason::Nonce {
                expected: 1,
                got: 2,
            };
            pool.on_block(&[], &BTreeMap::new(), &[(t[2].id(), future)])
        };
        assert_eq!(removed, vec![t[1].id()]);
        pool.check_invariants();
        assert_eq!(pool.in_flight(), 0);
        // t2 is behind the gap t1 left.
        assert_eq!(pool.futures_of(&a.public()), 1);
        assert!(sel(&mut pool, 10, 0).is_empty());
    }
}

#[test]
fn return_in_flight_restores_old_order() {
    let (a, b) = (key(1), key(2));
    let mut pool = Pool::new(config());
    for n in 0..3 {
        pool.admit(tx(&a, n, 1), 0, 0).unwrap();
        pool.admit(tx(&b, n, 1), 0, 0).unwrap();
    }
    let first = ids(&sel(&mut pool, 4, 0));
    pool.return_in_flight();
    pool.check_invariants();
    assert_eq!(pool.in_flight(), 0);
    assert_eq!(pool.len(), 6);
    let again = ids(&sel(&mut pool, 4, 0));
    assert_eq!(first, again);
    pool.return_in_flight();
    let all = sel(&mut pool, 10, 0);
    assert_eq!(ids(&all[..4]), first);
    assert_eq!(all.len(), 6);
}

#[test]
fn expiry() {
    let (a, b) = (key(1), key(2));
    let mut pool = Pool::new(config());
    let a0 = tx_expiring(&a, 0, 100);
    let a1 = tx(&a, 1, 0);
    let b0 = tx_expiring(&b, 0, 200);
    let b1 = tx_expiring(&b, 1, 50);
    for t in [&a0, &a1, &b0, &b1] {
        pool.admit(t.clone(), 0, 0).unwrap();
    }
    // Expiry equal to now is still valid.
    assert!(pool.expire(50).is_empty());
    // At 150, select skips and removes a0; a1 is then behind a gap. b0 is selected, b1 expired.
    let picked = sel(&mut pool, 10, 150);
    assert_eq!(ids(&picked), vec![b0.id()]);
    assert!(!pool.contains(&a0.id()) && !pool.contains(&b1.id()));
    assert!(pool.contains(&a1.id()));
    pool.check_invariants();
    // expire() leaves the in-flight b0 alone even past its expiry.
    assert!(pool.expire(1_000).is_empty());
    assert!(pool.contains(&b0.id()));
    pool.return_in_flight();
    assert_eq!(pool.expire(1_000), vec![b0.id()]);
    assert_eq!(pool.len(), 1);
    assert_eq!(pool.accounts(), 1);
    pool.check_invariants();

    // expire() reports exactly the expired ready txs.
    let c = key(3);
    let c0 = tx_expiring(&c, 0, 10);
    let c1 = tx_expiring(&c, 1, 20);
    pool.admit(c0.clone(), 0, 0).unwrap();
    pool.admit(c1.clone(), 0, 0).unwrap();
    assert_eq!(pool.expire(15), vec![c0.id()]);
    assert_eq!(pool.expire(25), vec![c1.id()]);
    assert_eq!(pool.pending_of(&c.public()), 0);
    pool.check_invariants();
}

#[test]
fn pending_nonce_counts_contiguous_txs() {
    let (a, b) = (key(1), key(2));
    let mut pool = Pool::new(config());
    assert_eq!(pool.pending_nonce(&a.public(), 4), 4);
    pool.admit(tx(&a, 4, 0), 4, 0).unwrap();
    pool.admit(tx(&a, 5, 0), 4, 0).unwrap();
    pool.admit(tx(&a, 7, 0), 4, 0).unwrap();
    assert_eq!(pool.pending_nonce(&a.public(), 4), 6);
    // In-flight txs count too.
    sel(&mut pool, 1, 0);
    assert_eq!(pool.pending_nonce(&a.public(), 4), 6);
    pool.admit(tx(&a, 6, 0), 4, 0).unwrap();
    assert_eq!(pool.pending_nonce(&a.public(), 4), 8);
    // A newer committed nonce wins over stale pending ones.
    assert_eq!(pool.pending_nonce(&a.public(), 9), 9);
    assert_eq!(pool.pending_nonce(&b.public(), 0), 0);
}

#[test]
fn admit_with_newer_state_nonce_skips_stale_head() {
    let a = key(1);
    let mut pool = Pool::new(config());
    pool.admit(tx(&a, 0, 0), 0, 0).unwrap();
    // A block this pool has not heard of yet used nonce 0 and 1.
    pool.admit(tx(&a, 2, 0), 2, 0).unwrap();
    pool.check_invariants();
    assert_eq!(order(&sel(&mut pool, 10, 0)), vec![(a.public(), 2)]);
    let removed = pool.on_block(&[], &BTreeMap::from([(a.public(), 2)]), &[]);
    assert_eq!(removed, vec![tx(&a, 0, 0).id()]);
    assert_eq!(pool.len(), 1);
    pool.check_invariants();
}

/// 100,000 txs from 1,000 senders: admit them all, then drain through blocks of 5,000.
/// Signatures are skipped (`from_trusted`): the pool never looks at them.
#[test]
fn handles_a_hundred_thousand_txs() {
    let mut pool = Pool::new(PoolConfig {
        max_size: 100_000,
        account_limit: 100,
        max_future_nonces: 1_000,
        future_limit: 100,
        ..config()
    });
    let senders: Vec<PublicKey> = (0..1_000u32)
        .map(|i| {
            let mut k = [0u8; 32];
            k[..4].copy_from_slice(&i.to_le_bytes());
            PublicKey(k)
        })
        .collect();
    let template = body(&key(1), 0, 0);
    let start = std::time::Instant::now();
    // Nonces descend so every sender's txs arrive with gaps first.
    for nonce in (0..100u64).rev() {
        for (i, s) in senders.iter().enumerate() {
            let mut b = template.clone();
            b.sender = *s;
            b.nonce = nonce;
            b.priority = (i as u64 * 7 + nonce) % 13;
            let t = VerifiedTx::from_trusted(SignedTx {
                tx: b,
                signature: Signature([0; 64]),
            });
            pool.admit(t, 0, 0).unwrap();
        }
    }
    assert_eq!(pool.len(), 100_000);
    assert_eq!(pool.accounts(), 1_000);
    let admitted = start.elapsed();
    let mut next: BTreeMap<PublicKey, u64> = BTreeMap::new();
    let mut blocks = 0;
    while !pool.is_empty() {
        let picked = sel(&mut pool, 5_000, 0);
        assert!(!picked.is_empty());
        let mut nonces = BTreeMap::new();
        for t in &picked {
            let n = next.entry(t.tx().sender).or_insert(0);
            assert_eq!(t.tx().nonce, *n);
            *n += 1;
            nonces.insert(t.tx().sender, *n);
        }
        let removed = pool.on_block(&ids(&picked), &nonces, &[]);
        assert!(removed.is_empty());
        blocks += 1;
    }
    assert_eq!(blocks, 20);
    eprintln!(
        "100k txs: admitted in {admitted:?}, drained in {:?}",
        start.elapsed() - admitted
    );
}

#[derive(Debug, Clone)]
enum Op {
    Admit {
        sender: u8,
        ahead: u8,
        priority: u8,
    },
    /// Select up to `.0` txs with room for `.1` txs' worth of gas (each declares 1,000).
    Select(u8, u8),
    /// Settle the oldest attempt like a committed block: include its txs at the sender's next
    /// nonce, drop the rest, and also drop the tx at position `drop.0` (if any) for good
    /// (a timeout) or, with `drop.1`, to retry (a full block). `fail` instead fails every
    /// attempt in flight (the producer discards them all).
    Block {
        fail: bool,
        drop: Option<(u8, bool)>,
    },
    Expire,
    /// Evict everything behind a gap (all txs arrive at time 0, the TTL is 60 s).
    FutureTtl,
}

/// The limits `Op::Select(max, gas)` selects with.
fn select_limits(max: u8, gas: u8) -> BlockLimits {
    BlockLimits {
        txs: usize::from(max),
        gas: u64::from(gas) * 1_000 + 500,
        bytes: u64::MAX,
    }
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0u8..4, 0u8..4, 0u8..4).prop_map(|(sender, ahead, priority)| Op::Admit {
            sender,
            ahead,
            priority
        }),
        2 => (0u8..6, 0u8..8).prop_map(|(n, g)| Op::Select(n, g)),
        2 => (prop::bool::weighted(0.2), prop::option::of((0u8..6, any::<bool>())))
            .prop_map(|(fail, drop)| Op::Block { fail, drop }),
        1 => Just(Op::Expire),
        1 => Just(Op::FutureTtl),
    ]
}

/// What a committed block makes of an attempt, as `Op::Block` describes it: each tx at its
/// sender's next nonce (in `state`, raised as it goes) is included, the one at position
/// `drop.0` is dropped for good or, with `drop.1`, to retry, and the rest are dropped for
/// their nonce.
fn settle(
    block: Vec<VerifiedTx>,
    drop: Option<(u8, bool)>,
    state: &mut BTreeMap<PublicKey, u64>,
) -> Settled {
    let mut included = Vec::new();
    let mut dropped = Vec::new();
    let mut nonces = BTreeMap::new();
    for (i, t) in block.into_iter().enumerate() {
        let s = t.tx().sender;
        let expected = *state.get(&s).unwrap_or(&0);
        if let Some((at, retry)) = drop
            && usize::from(at) == i
        {
            let reason = if retry {
                DropReason::BlockFull(crate::vm::BlockLimit::Gas)
            } else {
                DropReason::Timeout
            };
            dropped.push((t.id(), reason));
        } else if t.tx().nonce == expected {
            state.insert(s, expected + 1);
            nonces.insert(s, expected + 1);
            included.push(t.id());
        } else {
            dropped.push((
                t.id(),
                DropReason::Nonce {
                    expected,
                    got: t.tx().nonce,
                },
            ));
        }
    }
    Settled {
        included,
        nonces,
        dropped,
    }
}

/// A settled block as `Pool::on_block` takes it: the included ids, the senders' new next
/// nonces and the drops.
struct Settled {
    included: Vec<Hash>,
    nonces: BTreeMap<PublicKey, u64>,
    dropped: Vec<(Hash, DropReason)>,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn random_sequences_keep_nonce_order_and_counts(ops in prop::collection::vec(op(), 1..60)) {
        let keys: Vec<Keypair> = (1..=4).map(key).collect();
        let mut pool = Pool::new(PoolConfig {
            max_size: 12,
            account_limit: 5,
            future_limit: 2,
            ..config()
        });
        pool.track_departures();
        // Committed next nonce per sender (the chain), and the pending ids the pool should hold.
        let mut state: BTreeMap<PublicKey, u64> = BTreeMap::new();
        let mut pending: BTreeSet<Hash> = BTreeSet::new();
        // The pending transactions by arrival sequence, as the departures (what the journal
        // forgets) must leave them: each leaves once, flagged committed iff a block included it.
        let mut by_seq: BTreeMap<u64, Hash> = BTreeMap::new();
        // The selections not settled yet, oldest first: the producer selects block N+1 while
        // N commits (this goes deeper than it does).
        let mut attempts: std::collections::VecDeque<Vec<VerifiedTx>> = Default::default();
        for op in ops {
            let mut included_now: BTreeSet<Hash> = BTreeSet::new();
            match op {
                Op::Admit { sender, ahead, priority } => {
                    let kp = &keys[sender as usize];
                    let committed = *state.get(&kp.public()).unwrap_or(&0);
                    let next = pool.pending_nonce(&kp.public(), committed);
                    let t = tx(kp, next + u64::from(ahead), u64::from(priority));
                    let (len, bytes) = (pool.len(), pool.bytes());
                    match pool.admit(t.clone(), committed, 0) {
                        Ok(evicted) => {
                            pending.insert(t.id());
                            let seq = pool.admitted(&t.id()).map(|a| a.seq);
                            prop_assert!(seq.is_some_and(|s| by_seq.insert(s, t.id()).is_none()));
                            for e in &evicted {
                                prop_assert!(pending.remove(&e.id), "evicted an unknown id");
                                prop_assert!(
                                    !attempts.iter().flatten().any(|f| f.id() == e.id),
                                    "evicted in flight"
                                );
                            }
                        }
                        Err(_) => prop_assert_eq!((pool.len(), pool.bytes()), (len, bytes)),
                    }
                }
                Op::Select(max, gas) => {
                    let limits = select_limits(max, gas);
                    let picked = pool.select(limits, 0, &HashMap::new()).txs;
                    prop_assert!(picked.len() <= usize::from(max));
                    prop_assert!(picked.len() <= usize::from(gas));
                    attempts.push_back(picked);
                    // Per sender, the selections in flight run on without a gap, from at or
                    // above the committed nonce (above it when a settled block left txs out
                    // that wait, still in flight, for a later attempt of the same sender).
                    let mut last: BTreeMap<PublicKey, u64> = BTreeMap::new();
                    for t in attempts.iter().flatten() {
                        let s = t.tx().sender;
                        let committed = *state.get(&s).unwrap_or(&0);
                        match last.get(&s) {
                            Some(prev) => prop_assert_eq!(t.tx().nonce, prev + 1, "out of order"),
                            None => prop_assert!(t.tx().nonce >= committed, "stale selected"),
                        }
                        last.insert(s, t.tx().nonce);
                    }
                }
                Op::Block { fail: true, .. } => {
                    for id in pool.return_in_flight() {
                        prop_assert!(pending.remove(&id), "returned an unknown id as removed");
                    }
                    attempts.clear();
                }
                Op::Block { fail: false, drop } => {
                    let block = attempts.pop_front().unwrap_or_default();
                    let Settled { included, nonces, dropped } = settle(block, drop, &mut state);
                    for id in &included {
                        pending.remove(id);
                    }
                    included_now.extend(included.iter().copied());
                    for id in pool.on_block(&included, &nonces, &dropped) {
                        prop_assert!(pending.remove(&id), "removed an unknown id");
                    }
                }
                Op::Expire => {
                    // Nothing here expires; it must be a no-op.
                    prop_assert!(pool.expire(u64::MAX).is_empty());
                }
                Op::FutureTtl => {
                    for id in pool.evict_stale_futures(60_001) {
                        prop_assert!(pending.remove(&id), "ttl removed an unknown id");
                    }
                    for a in &keys {
                        prop_assert_eq!(pool.futures_of(&a.public()), 0);
                    }
                }
            }
            pool.check_invariants();
            for d in pool.take_departures() {
                let id = by_seq.remove(&d.seq);
                prop_assert!(id.is_some(), "sequence {} departed twice or never came", d.seq);
                prop_assert_eq!(d.committed, id.is_some_and(|id| included_now.contains(&id)));
            }
            prop_assert_eq!(by_seq.len(), pending.len(), "a departure not reported");
            prop_assert!(by_seq.values().all(|id| pending.contains(id)));
            prop_assert_eq!(pool.attempts(), attempts.len());
            if attempts.is_empty() {
                prop_assert_eq!(pool.in_flight(), 0, "settled, yet in flight");
            }
            prop_assert_eq!(pool.len(), pending.len());
            for id in &pending {
                prop_assert!(pool.contains(id));
            }
            let senders = pending
                .iter()
                .filter_map(|id| pool.get(id).map(|t| t.tx().sender))
                .collect::<BTreeSet<_>>();
            prop_assert_eq!(pool.accounts(), senders.len());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The eviction order is built only when an admission needs room and dropped when the
    /// pool runs low (`Pool::eviction_order`). A pool doing that answers every operation as one
    /// that kept the order all along: the same admissions, evictions (ids and reasons),
    /// selections and removals.
    #[test]
    fn an_eviction_order_built_on_demand_evicts_as_one_kept_all_along(
        ops in prop::collection::vec(op(), 1..80)
    ) {
        let keys: Vec<Keypair> = (1..=4).map(key).collect();
        let cfg = PoolConfig {
            max_size: 12,
            account_limit: 5,
            future_limit: 2,
            ..config()
        };
        let mut lazy = Pool::new(cfg.clone());
        let mut kept = Pool::new(cfg);
        kept.pin_eviction_order();
        let mut state: BTreeMap<PublicKey, u64> = BTreeMap::new();
        let mut attempts: std::collections::VecDeque<Vec<VerifiedTx>> = Default::default();
        for op in ops {
            match op {
                Op::Admit { sender, ahead, priority } => {
                    let kp = &keys[sender as usize];
                    let committed = *state.get(&kp.public()).unwrap_or(&0);
                    let next = lazy.pending_nonce(&kp.public(), committed);
                    prop_assert_eq!(next, kept.pending_nonce(&kp.public(), committed));
                    let t = tx(kp, next + u64::from(ahead), u64::from(priority));
                    let a = lazy.admit(t.clone(), committed, 0);
                    let b = kept.admit(t, committed, 0);
                    prop_assert_eq!(a, b);
                }
                Op::Select(max, gas) => {
                    let limits = select_limits(max, gas);
                    let a = lazy.select(limits, 0, &HashMap::new()).txs;
                    let b = kept.select(limits, 0, &HashMap::new()).txs;
                    prop_assert_eq!(ids(&a), ids(&b));
                    attempts.push_back(a);
                }
                Op::Block { fail: true, .. } => {
                    prop_assert_eq!(lazy.return_in_flight(), kept.return_in_flight());
                    attempts.clear();
                }
                Op::Block { fail: false, drop } => {
                    let block = attempts.pop_front().unwrap_or_default();
                    let Settled { included, nonces, dropped } = settle(block, drop, &mut state);
                    prop_assert_eq!(
                        lazy.on_block(&included, &nonces, &dropped),
                        kept.on_block(&included, &nonces, &dropped)
                    );
                }
                Op::Expire => prop_assert_eq!(lazy.expire(u64::MAX), kept.expire(u64::MAX)),
                Op::FutureTtl => prop_assert_eq!(
                    lazy.evict_stale_futures(60_001),
                    kept.evict_stale_futures(60_001)
                ),
            }
            lazy.check_invariants();
            kept.check_invariants();
            prop_assert!(kept.eviction_order);
        }
    }
}

/// Both switches of the eviction order: a full pool builds it, a drained one drops it, and a
/// full one builds it again.
#[test]
fn the_eviction_order_is_built_when_full_and_dropped_when_low() {
    let mut pool = Pool::new(PoolConfig {
        max_size: 8,
        ..config()
    });
    let keys: Vec<Keypair> = (1..=9).map(key).collect();
    for k in &keys[..8] {
        pool.admit(tx(k, 0, 0), 0, 0).unwrap();
    }
    assert!(!pool.eviction_order, "built before anything needed room");
    pool.check_invariants();
    // Full: a higher band evicts, and the order is built for it.
    let evicted = pool.admit(tx(&keys[8], 0, 3), 0, 0).unwrap();
    assert_eq!(evicted.len(), 1);
    assert!(pool.eviction_order);
    pool.check_invariants();
    // Drained below a quarter: dropped.
    let picked = sel(&mut pool, 7, 0);
    let mut nonces = BTreeMap::new();
    for t in &picked {
        nonces.insert(t.tx().sender, 1);
    }
    pool.on_block(&ids(&picked), &nonces, &[]);
    assert!(pool.len() < 2, "{}", pool.len());
    assert!(!pool.eviction_order);
    pool.check_invariants();
    // Full again: built again, and it evicts as before.
    let more: Vec<Keypair> = (20..=28).map(key).collect();
    for k in &more[..8 - pool.len()] {
        pool.admit(tx(k, 0, 0), 0, 0).unwrap();
    }
    assert!(!pool.eviction_order);
    assert_eq!(pool.admit(tx(&more[8], 0, 3), 0, 0).unwrap().len(), 1);
    assert!(pool.eviction_order);
    pool.check_invariants();
}

/// What happens to batches admitted with `admit_pending` while their journal writes are
/// under way (`batches_resolved_in_any_order_leave_acknowledged_durable_transactions`).
#[derive(Debug, Clone)]
enum BatchOp {
    /// A new batch admits, for each value `v`: below 4, a small transaction of a new sender
    /// at priority `v`; 4 to 7, one of the last four made again (the same id, resubmitted); 8 and
    /// 9, a big one (about three small ones' bytes) at priority `v - 8`.
    Admit(Vec<u8>),
    /// The oldest batch not written yet is written (the journal writes in that order).
    Write { ok: bool },
    /// One written batch's admission thread takes the pool lock again: `mark_durable` and
    /// `settle`, or `undo`. Threads wake in any order.
    Resolve(u8),
}

fn batch_op() -> impl Strategy<Value = BatchOp> {
    prop_oneof![
        3 => prop::collection::vec(0u8..10, 1..4).prop_map(BatchOp::Admit),
        // Mostly successes, so that many cases have no failed write and check the rows exactly.
        2 => prop::bool::weighted(0.95).prop_map(|ok| BatchOp::Write { ok }),
        2 => any::<u8>().prop_map(BatchOp::Resolve),
    ]
}

/// A batch as `Admission::admit_batch` holds it: its admissions and what they evicted.
struct Batch {
    admissions: Vec<Admitted>,
    evicted: Vec<Evicted>,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Batches evict one another's transactions while their writes are under way, the writes
    /// succeed or fail, and each batch's thread comes back in any order. Once every batch is
    /// resolved, every transaction the pool holds is selectable and has its journal row, and
    /// nothing is awaited; without a failed write the rows are exactly what the pool holds.
    /// After one, the journal may keep rows of acknowledged transactions the pool let go (an
    /// evicted one that no longer fits, or whose id another admission held): the store has
    /// failed, so the node exits (74) and restore re-admits them.
    #[test]
    fn batches_resolved_in_any_order_leave_acknowledged_durable_transactions(
        ops in prop::collection::vec(batch_op(), 1..40),
        last_ok in prop::bool::weighted(0.8),
    ) {
        // Full at 3 transactions or at a small and a big one: a big newcomer may evict an old
        // small one and then a big one, leaving room for a small one again in the same batch.
        let small = tx_bytes(&tx(&key(250), 0, 0));
        let big_bytes = tx_bytes(&big(&key(250), 0, 0, 300));
        let mut pool = Pool::new(PoolConfig {
            max_size: 3,
            max_bytes: small + big_bytes + 10,
            ..config()
        });
        let mut next_key = 10u8;
        let mut made: Vec<VerifiedTx> = Vec::new();
        let mut unwritten: std::collections::VecDeque<Batch> = Default::default();
        let mut written: Vec<(Batch, bool)> = Vec::new();
        // The journal's rows, by id, as the writes leave them.
        let mut rows: BTreeSet<Hash> = BTreeSet::new();
        // A failed write fails the store: every later write fails too (`FailedEarlier`), the
        // node exits (74) and restore re-admits the journal's rows.
        let mut store_failed = false;
        let resolve = |pool: &mut Pool, (batch, ok): (Batch, bool)| {
            if ok {
                pool.mark_durable(&batch.admissions);
                pool.settle(&batch.evicted);
            } else {
                // The node queues removals of what could not come back; the store has failed,
                // so they are never written.
                pool.undo(&batch.admissions, batch.evicted);
            }
        };
        // Writes `batch` if the store allows; returns whether it was written.
        let mut write = |rows: &mut BTreeSet<Hash>, batch: &Batch, ok: bool| {
            let ok = ok && !store_failed;
            store_failed |= !ok;
            if ok {
                // As `admit_batch` queues them: the removals, then what it admitted and did
                // not itself evict.
                for e in &batch.evicted {
                    rows.remove(&e.id);
                }
                for adm in &batch.admissions {
                    if !batch.evicted.iter().any(|e| e.seq() == adm.seq) {
                        rows.insert(adm.id);
                    }
                }
            }
            ok
        };
        for op in ops {
            match op {
                BatchOp::Admit(priorities) => {
                    let mut batch = Batch { admissions: Vec::new(), evicted: Vec::new() };
                    for v in priorities {
                        let t = if (4..8).contains(&v) && !made.is_empty() {
                            // One of the last four made: likely still pending, or just evicted.
                            made[made.len() - 1 - usize::from(v - 4) % made.len()].clone()
                        } else {
                            let kp = key(next_key);
                            next_key += 1;
                            let t = match v {
                                8.. => big(&kp, 0, u64::from(v - 8), 300),
                                _ => tx(&kp, 0, u64::from(v % 4)),
                            };
                            made.push(t.clone());
                            t
                        };
                        if let Ok(evicted) = pool.admit_pending(t.clone(), 0, 0) {
                            batch.evicted.extend(evicted);
                            if let Some(adm) = pool.admitted(&t.id()) {
                                batch.admissions.push(adm);
                            }
                        }
                    }
                    unwritten.push_back(batch);
                }
                BatchOp::Write { ok } => {
                    if let Some(batch) = unwritten.pop_front() {
                        let ok = write(&mut rows, &batch, ok);
                        written.push((batch, ok));
                    }
                }
                BatchOp::Resolve(i) => {
                    if !written.is_empty() {
                        let done = written.remove(usize::from(i) % written.len());
                        resolve(&mut pool, done);
                    }
                }
            }
            pool.check_invariants();
        }
        // The rest are written (all succeeding or all failing) and resolved.
        for batch in unwritten.drain(..) {
            let ok = write(&mut rows, &batch, last_ok);
            written.push((batch, ok));
        }
        for done in written.drain(..) {
            resolve(&mut pool, done);
            pool.check_invariants();
        }
        prop_assert_eq!(pool.awaiting(), 0);
        let held = pool.len();
        let picked = sel(&mut pool, 100, 0);
        prop_assert_eq!(picked.len(), held, "every pending transaction is durable");
        let picked: BTreeSet<Hash> = picked.iter().map(VerifiedTx::id).collect();
        prop_assert!(picked.is_subset(&rows), "held without its journal row");
        if !store_failed {
            prop_assert_eq!(&rows, &picked, "the journal holds exactly what the pool holds");
        }
    }
}

/// A call with `args` bytes of arguments, to make big transactions.
fn big(kp: &Keypair, nonce: u64, priority: u64, args: usize) -> VerifiedTx {
    let mut b = body(kp, nonce, priority);
    b.action = Action::Call {
        contract: Address([9; 32]),
        entry: "increment".into(),
        args: Bytes(vec![7; args]),
    };
    sign(kp, b)
}

fn evicted_ids(e: &[Evicted]) -> Vec<Hash> {
    e.iter().map(|e| e.id).collect()
}

#[test]
fn future_quota_per_sender() {
    let (a, b) = (key(1), key(2));
    let mut pool = Pool::new(PoolConfig {
        future_limit: 2,
        max_future_nonces: 10,
        ..config()
    });
    pool.admit(tx(&a, 0, 0), 0, 0).unwrap();
    pool.admit(tx(&a, 2, 0), 0, 0).unwrap();
    pool.admit(tx(&a, 3, 0), 0, 0).unwrap();
    assert_eq!(pool.futures_of(&a.public()), 2);
    assert_eq!(
        pool.admit(tx(&a, 5, 0), 0, 0),
        Err(AdmitError::FutureFull { limit: 2, gap: 1 })
    );
    // Filling the gap is always allowed and makes the futures executable, freeing the quota.
    pool.admit(tx(&a, 1, 0), 0, 0).unwrap();
    assert_eq!(pool.futures_of(&a.public()), 0);
    pool.admit(tx(&a, 5, 0), 0, 0).unwrap();
    pool.admit(tx(&a, 6, 0), 0, 0).unwrap();
    assert_eq!(pool.futures_of(&a.public()), 2);
    // Another sender has its own quota; one whose state nonce is ahead counts from there.
    pool.admit(tx(&b, 4, 0), 3, 0).unwrap();
    pool.admit(tx(&b, 5, 0), 3, 0).unwrap();
    assert!(matches!(
        pool.admit(tx(&b, 6, 0), 3, 0),
        Err(AdmitError::FutureFull { gap: 3, .. })
    ));
    pool.check_invariants();
}

#[test]
fn futures_expire_after_their_ttl_and_executable_txs_do_not() {
    let (a, b) = (key(1), key(2));
    let mut pool = Pool::new(config()); // ttl 60 s
    let a0 = tx(&a, 0, 0);
    let a2 = tx(&a, 2, 0);
    let b1 = tx(&b, 1, 0);
    pool.admit(a0.clone(), 0, 1_000).unwrap();
    pool.admit(a2.clone(), 0, 1_000).unwrap();
    pool.admit(b1.clone(), 0, 30_000).unwrap();
    assert!(
        pool.evict_stale_futures(61_000).is_empty(),
        "exactly the TTL"
    );
    assert_eq!(pool.evict_stale_futures(61_001), vec![a2.id()]);
    pool.check_invariants();
    assert_eq!(pool.evict_stale_futures(90_001), vec![b1.id()]);
    assert_eq!(pool.evict_stale_futures(1_000_000), Vec::<Hash>::new());
    assert!(pool.contains(&a0.id()), "executable txs have no TTL");
    assert_eq!(pool.accounts(), 1);
    // A future tx whose gap got filled is no longer subject to the TTL.
    let a1 = tx(&a, 1, 0);
    let a2 = tx(&a, 2, 0);
    pool.admit(a2.clone(), 0, 0).unwrap();
    pool.admit(a1, 0, 0).unwrap();
    assert!(pool.evict_stale_futures(u64::MAX).is_empty());
    assert_eq!(pool.len(), 3);
    pool.check_invariants();
}

/// The lock-out: two keys fill the pool with nonces 1.. (gap at 0); the pool used to
/// refuse every honest transaction. Now futures are evicted for executable txs, and a future tx
/// is never admitted by evicting.
#[test]
fn full_pool_of_futures_evicts_for_executable_txs() {
    let (x, y, honest) = (key(1), key(2), key(3));
    let mut pool = Pool::new(PoolConfig {
        max_size: 10,
        account_limit: 5,
        future_limit: 5,
        ..config()
    });
    let mut futures = Vec::new();
    for n in 1..=5 {
        for k in [&x, &y] {
            let t = tx(k, n, u64::MAX);
            pool.admit(t.clone(), 0, 0).unwrap();
            futures.push(t.id());
        }
    }
    assert_eq!(pool.len(), 10);
    assert!(sel(&mut pool, 10, 0).is_empty(), "all behind gaps");
    // A future tx from a new sender is refused and changes nothing.
    assert!(matches!(
        pool.admit(tx(&honest, 1, 0), 0, 0),
        Err(AdmitError::PoolFull { .. })
    ));
    assert_eq!(pool.len(), 10);
    // An executable one (priority 0!) gets in by evicting a future tail (highest nonce).
    for n in 0..3 {
        let evicted = pool.admit(tx(&honest, n, 0), 0, 0).unwrap();
        assert_eq!(evicted.len(), 1);
        assert_eq!(evicted[0].reason, EvictReason::Future);
        let victim = pool_get_evicted(&evicted[0]);
        assert_eq!(victim.1, 5 - n / 2, "tails go first: {victim:?}");
        pool.check_invariants();
    }
    assert_eq!(pool.len(), 10);
    assert_eq!(
        order(&sel(&mut pool, 10, 0)),
        vec![
            (honest.public(), 0),
            (honest.public(), 1),
            (honest.public(), 2)
        ]
    );
    // A sender filling its own gap turns its futures executable; they are not evicted for it.
    let x0 = pool.admit(tx(&x, 0, 0), 0, 0).unwrap();
    assert!(
        x0.iter().all(|e| pool_get_evicted(e).0 != x.public()),
        "{x0:?}"
    );
    pool.check_invariants();
}

/// (sender, nonce) of an evicted tx.
fn pool_get_evicted(e: &Evicted) -> (PublicKey, u64) {
    let t = e.entry.tx.tx();
    (t.sender, t.nonce)
}

#[test]
fn eviction_order_band_then_share_and_never_a_dependency_or_in_flight() {
    let (a, b, c, d) = (key(1), key(2), key(3), key(4));
    let mut pool = Pool::new(PoolConfig {
        max_size: 6,
        account_limit: 6,
        ..config()
    });
    // a: 3 txs at band 1; b: 2 at band 0; c: 1 at band 0.
    for n in 0..3 {
        pool.admit(tx(&a, n, 1), 0, 0).unwrap();
    }
    pool.admit(tx(&b, 0, 0), 0, 0).unwrap();
    pool.admit(tx(&b, 1, 0), 0, 0).unwrap();
    pool.admit(tx(&c, 0, 0), 0, 0).unwrap();
    // A band-0 newcomer: nothing is in a lower band, and no sender holds 2 more than d's 0...
    // except a (3) and b (2): the least useful is b's tail (band 0, bigger sender first).
    let e = pool.admit(tx(&d, 0, 0), 0, 0).unwrap();
    assert_eq!(e.len(), 1);
    assert_eq!(
        (pool_get_evicted(&e[0]), e[0].reason),
        ((b.public(), 1), EvictReason::FairShare)
    );
    pool.check_invariants();
    // Now b, c, d hold 1 each, a 3 (band 1). Another band-0 newcomer from c (holding 1):
    // nobody in band 0 holds 3, a is in a higher band: refused, nothing changed.
    let before = pool.len();
    assert!(matches!(
        pool.admit(tx(&c, 1, 0), 0, 0),
        Err(AdmitError::PoolFull { .. })
    ));
    assert_eq!(pool.len(), before);
    // A band-3 newcomer evicts the lowest band first, oldest first: c's tx (older than d's).
    let e = pool.admit(tx(&d, 1, 3), 0, 0).unwrap();
    assert_eq!(e[0].reason, EvictReason::Priority);
    assert_eq!(pool_get_evicted(&e[0]), (b.public(), 0));
    pool.check_invariants();
    // In-flight txs are never evicted, and a sender's own executable txs never are for it.
    sel(&mut pool, 10, 0);
    assert_eq!(pool.in_flight(), pool.len());
    assert!(matches!(
        pool.admit(tx(&key(5), 0, 3), 0, 0),
        Err(AdmitError::PoolFull { .. })
    ));
    pool.return_in_flight();
    let e = pool.admit(tx(&a, 3, 3), 0, 0).unwrap();
    assert!(
        e.iter().all(|e| pool_get_evicted(e).0 != a.public()),
        "{e:?}"
    );
    pool.check_invariants();
}

/// Two senders re-sending what the other evicted cannot evict each other back and forth.
#[test]
fn no_eviction_ping_pong() {
    let (a, b) = (key(1), key(2));
    let mut pool = Pool::new(PoolConfig {
        max_size: 4,
        account_limit: 4,
        ..config()
    });
    for n in 0..4 {
        pool.admit(tx(&a, n, 0), 0, 0).unwrap();
    }
    // b (0 pending) evicts a's tail: a holds 4 >= 0 + 2.
    let e = pool.admit(tx(&b, 0, 0), 0, 0).unwrap();
    assert_eq!(pool_get_evicted(&e[0]), (a.public(), 3));
    let e = pool.admit(tx(&b, 1, 0), 0, 0).unwrap();
    assert_eq!(pool_get_evicted(&e[0]), (a.public(), 2));
    // Now 2 and 2: neither may evict the other any more.
    assert!(matches!(
        pool.admit(tx(&a, 2, 0), 0, 0),
        Err(AdmitError::PoolFull { .. })
    ));
    assert!(matches!(
        pool.admit(tx(&b, 2, 0), 0, 0),
        Err(AdmitError::PoolFull { .. })
    ));
    assert_eq!(
        (pool.pending_of(&a.public()), pool.pending_of(&b.public())),
        (2, 2)
    );
    pool.check_invariants();
}

#[test]
fn pool_is_bounded_in_bytes_and_evicts_several_for_one() {
    let (a, b, honest) = (key(1), key(2), key(3));
    let small = tx_bytes(&tx(&a, 1, 0));
    let large = tx_bytes(&big(&a, 0, 0, 10_000));
    assert!(10 * small < large);
    let mut pool = Pool::new(PoolConfig {
        max_bytes: large,
        ..config()
    });
    assert_eq!(
        pool.admit(big(&a, 0, 0, 40_000), 0, 0),
        Err(AdmitError::TooLarge {
            bytes: tx_bytes(&big(&a, 0, 0, 40_000)),
            max_bytes: large
        })
    );
    // Ten small futures from a and b.
    for n in 1..=5 {
        pool.admit(tx(&a, n, 0), 0, 0).unwrap();
        pool.admit(tx(&b, n, 0), 0, 0).unwrap();
    }
    assert_eq!(pool.bytes(), 10 * small);
    // One big executable tx evicts as many futures as its bytes need: all ten.
    let e = pool.admit(big(&honest, 0, 0, 10_000), 0, 0).unwrap();
    assert_eq!(e.len(), 10);
    assert!(e.iter().all(|e| e.reason == EvictReason::Future));
    assert_eq!((pool.len(), pool.bytes()), (1, large));
    pool.check_invariants();
    // Full in bytes: a future is refused, and so is an executable one with nothing to evict
    // (the only tx is the newcomer's own predecessor).
    for t in [tx(&a, 1, 0), big(&honest, 1, 3, 10_000)] {
        assert!(matches!(
            pool.admit(t, 0, 0),
            Err(AdmitError::PoolFull { .. })
        ));
        assert_eq!((pool.len(), pool.bytes()), (1, large));
    }

    // Same band, one tx each: no eviction, refused and unchanged.
    let mut pool = Pool::new(PoolConfig {
        max_bytes: 2 * large + small,
        ..config()
    });
    pool.admit(big(&a, 0, 0, 10_000), 0, 0).unwrap();
    pool.admit(big(&b, 0, 0, 10_000), 0, 0).unwrap();
    pool.admit(tx(&key(4), 0, 0), 0, 0).unwrap();
    let before = (pool.len(), pool.bytes());
    assert!(matches!(
        pool.admit(big(&honest, 0, 0, 10_000), 0, 0),
        Err(AdmitError::PoolFull { .. })
    ));
    assert_eq!((pool.len(), pool.bytes()), before);
    // A higher band evicts a lower one, oldest first.
    let e = pool.admit(big(&honest, 0, 3, 10_000), 0, 0).unwrap();
    assert_eq!(
        e.iter().map(pool_get_evicted).collect::<Vec<_>>(),
        vec![(a.public(), 0)]
    );
    assert_eq!(e[0].reason, EvictReason::Priority);
    assert!(pool.bytes() <= 2 * large + small);
    pool.check_invariants();

    // Room needs two victims but only the first may go: refused, and nothing was evicted.
    let mut pool = Pool::new(PoolConfig {
        max_bytes: 2 * large + small,
        ..config()
    });
    pool.admit(tx(&key(4), 0, 0), 0, 0).unwrap();
    pool.admit(big(&a, 0, 3, 10_000), 0, 0).unwrap();
    pool.admit(big(&b, 0, 3, 10_000), 0, 0).unwrap();
    let before = (pool.len(), pool.bytes());
    assert!(matches!(
        pool.admit(big(&honest, 0, 1, 10_000), 0, 0),
        Err(AdmitError::PoolFull { .. })
    ));
    assert_eq!((pool.len(), pool.bytes()), before);
    pool.check_invariants();
}

#[test]
fn rollback_puts_the_pool_back_exactly() {
    let (a, b, c) = (key(1), key(2), key(3));
    let mut pool = Pool::new(PoolConfig {
        max_size: 4,
        ..config()
    });
    let a0 = tx(&a, 0, 0);
    pool.admit(a0.clone(), 0, 0).unwrap();
    pool.admit(tx(&a, 1, 0), 0, 0).unwrap();
    pool.admit(tx(&b, 3, 0), 0, 0).unwrap(); // future
    pool.admit(tx(&b, 4, 0), 0, 0).unwrap(); // future
    let snapshot = |p: &Pool| {
        let mut ids: Vec<Hash> = p.entries.keys().copied().collect();
        ids.sort();
        (ids, p.bytes(), p.pending_nonce(&a.public(), 0))
    };
    let before = snapshot(&pool);
    // A batch: a2 (evicts b4), c0 (evicts b3).
    let mut admitted = Vec::new();
    let mut evicted = Vec::new();
    for t in [tx(&a, 2, 0), tx(&c, 0, 0)] {
        let id = t.id();
        evicted.extend(pool.admit(t, 0, 0).unwrap());
        admitted.push(id);
    }
    assert_eq!(evicted.len(), 2);
    pool.check_invariants();
    pool.rollback(&admitted, evicted);
    pool.check_invariants();
    assert_eq!(snapshot(&pool), before);
    assert_eq!(pool.futures_of(&b.public()), 2);
    assert_eq!(
        order(&sel(&mut pool, 10, 0)),
        vec![(a.public(), 0), (a.public(), 1)]
    );
    // A tx admitted and evicted within the same batch stays out after a rollback.
    let mut pool = Pool::new(PoolConfig {
        max_size: 2,
        ..config()
    });
    pool.admit(a0.clone(), 0, 0).unwrap();
    let b5 = tx(&b, 5, 0);
    let mut evicted = pool.admit(b5.clone(), 0, 0).unwrap();
    evicted.extend(pool.admit(tx(&c, 0, 0), 0, 0).unwrap());
    assert_eq!(evicted_ids(&evicted), vec![b5.id()]);
    pool.rollback(&[b5.id(), tx(&c, 0, 0).id()], evicted);
    assert_eq!(pool.len(), 1);
    assert!(pool.contains(&a0.id()));
    pool.check_invariants();
}

/// A transaction whose journal write is under way holds its place (limits, duplicates, nonce)
/// but is not selectable, nor is its sender's next nonce; `mark_durable` releases both.
#[test]
fn pending_admissions_are_not_selectable_until_durable() {
    let (a, b) = (key(1), key(2));
    let mut pool = Pool::new(config());
    let (a0, a1, b0) = (tx(&a, 0, 0), tx(&a, 1, 0), tx(&b, 0, 0));
    pool.admit_pending(a0.clone(), 0, 0).unwrap();
    pool.admit(a1.clone(), 0, 0).unwrap(); // durable, but behind a0
    pool.admit(b0.clone(), 0, 0).unwrap();
    pool.check_invariants();
    assert_eq!(
        pool.admit(a0.clone(), 0, 0).unwrap_err(),
        AdmitError::Duplicate(a0.id())
    );
    assert_eq!(order(&sel(&mut pool, 10, 0)), vec![(b.public(), 0)]);
    pool.check_invariants();
    let a0_adm = pool.admitted(&a0.id()).unwrap();
    pool.mark_durable(&[
        Admitted {
            seq: a0_adm.seq + 1,
            ..a0_adm
        },
        Admitted {
            id: Hash([7; 32]),
            ..a0_adm
        },
    ]);
    assert_eq!(
        order(&sel(&mut pool, 10, 0)),
        vec![],
        "another admission's seq"
    );
    pool.mark_durable(&[a0_adm]);
    pool.check_invariants();
    assert_eq!(
        order(&sel(&mut pool, 10, 0)),
        vec![(a.public(), 0), (a.public(), 1)]
    );
    pool.check_invariants();
}

/// A failed journal write while other admissions went on: `undo` takes the batch out and puts
/// back what it evicted only where that still fits; the rest is reported as lost.
#[test]
fn undo_after_concurrent_changes_keeps_the_pool_bounded() {
    let (a, b, c, d) = (key(1), key(2), key(3), key(4));
    let mut pool = Pool::new(PoolConfig {
        max_size: 3,
        ..config()
    });
    pool.admit(tx(&a, 0, 0), 0, 0).unwrap();
    let b3 = tx(&b, 3, 0); // future: the first to be evicted
    let b4 = tx(&b, 4, 0);
    pool.admit(b3.clone(), 0, 0).unwrap();
    pool.admit(b4.clone(), 0, 0).unwrap();
    // Batch 1 (its write will fail): c0 evicts b4.
    let c0 = tx(&c, 0, 0);
    let evicted1 = pool.admit_pending(c0.clone(), 0, 0).unwrap();
    let c0_adm = pool.admitted(&c0.id()).unwrap();
    assert_eq!(evicted_ids(&evicted1), vec![b4.id()]);
    // Batch 2 (another thread, durable later): d0 evicts b3 and takes the last place.
    let d0 = tx(&d, 0, 0);
    let evicted2 = pool.admit_pending(d0.clone(), 0, 0).unwrap();
    let d0_adm = pool.admitted(&d0.id()).unwrap();
    assert_eq!(evicted_ids(&evicted2), vec![b3.id()]);
    pool.check_invariants();
    // Batch 1 fails: c0 goes; b4 would fit by count but is now behind a gap (b3 is gone)...
    let lost = pool.undo(&[c0_adm], evicted1);
    pool.check_invariants();
    assert!(!pool.contains(&c0.id()));
    // ...it still fits the pool (2 pending, max 3), so it comes back, as a future tx.
    assert!(lost.is_empty(), "{lost:?}");
    assert!(pool.contains(&b4.id()));
    assert_eq!(pool.len(), 3);
    // Batch 2 is durable: d0 is selectable; b4 stays behind its gap.
    pool.mark_durable(&[d0_adm]);
    let chosen = order(&sel(&mut pool, 10, 0));
    assert_eq!(chosen.len(), 2);
    assert!(chosen.contains(&(d.public(), 0)) && chosen.contains(&(a.public(), 0)));
    pool.check_invariants();

    // An undo whose evicted transaction no longer fits (its nonce was taken meanwhile) reports
    // it lost.
    let mut pool = Pool::new(PoolConfig {
        max_size: 2,
        ..config()
    });
    pool.track_departures();
    let (a0, b1) = (tx(&a, 0, 0), tx(&b, 1, 0)); // b1: future
    pool.admit(a0.clone(), 0, 0).unwrap();
    pool.admit(b1.clone(), 0, 0).unwrap();
    let (a0_seq, b1_seq) = (pool.admitted(&a0.id()).unwrap().seq, 1);
    let c0 = tx(&c, 0, 0);
    let evicted = pool.admit_pending(c0.clone(), 0, 0).unwrap();
    let c0_adm = pool.admitted(&c0.id()).unwrap();
    assert_eq!(evicted_ids(&evicted), vec![b1.id()]);
    assert_eq!(evicted[0].seq(), b1_seq);
    // Meanwhile a block takes a0 and b sends another transaction at nonce 1.
    assert_eq!(sel(&mut pool, 10, 0).len(), 1);
    pool.on_block(&[a0.id()], &BTreeMap::new(), &[]);
    let b1_again = tx(&b, 1, 1);
    pool.admit(b1_again.clone(), 0, 0).unwrap();
    let gone = |seq, committed| Departure { seq, committed };
    assert_eq!(
        pool.take_departures(),
        vec![gone(b1_seq, false), gone(a0_seq, true)]
    );
    let lost = pool.undo(&[c0_adm], evicted);
    assert_eq!(lost, vec![b1.id()]);
    // The journal forgets c0 (never written: the write failed) and b1 again (its removal
    // was in that failed write).
    assert_eq!(
        pool.take_departures(),
        vec![gone(c0_adm.seq, false), gone(b1_seq, false)]
    );
    assert!(pool.contains(&b1_again.id()) && !pool.contains(&c0.id()));
    assert_eq!(pool.len(), 1);
    pool.check_invariants();
}

/// A pool of one place where batch A admitted x (pending) and batch B's y (a higher band)
/// evicted it: the pool, x, A's admission, y, B's admission and what B evicted.
fn x_evicted_by_y() -> (
    Pool,
    VerifiedTx,
    Admitted,
    VerifiedTx,
    Admitted,
    Vec<Evicted>,
) {
    let mut pool = Pool::new(PoolConfig {
        max_size: 1,
        ..config()
    });
    let x = tx(&key(1), 0, 0);
    pool.admit_pending(x.clone(), 0, 0).unwrap();
    let x_by_a = pool.admitted(&x.id()).unwrap();
    let y = tx(&key(2), 0, 1);
    let evicted = pool.admit_pending(y.clone(), 0, 0).unwrap();
    let y_by_b = pool.admitted(&y.id()).unwrap();
    assert_eq!(evicted_ids(&evicted), vec![x.id()]);
    pool.check_invariants();
    (pool, x, x_by_a, y, y_by_b, evicted)
}

/// The same transaction admitted by batch A, evicted by batch B and admitted again by batch C
/// while A's journal write is still under way: A's failure must not take out C's admission,
/// and only C's own success makes it selectable.
#[test]
fn undo_and_mark_durable_touch_only_their_own_admission() {
    let (mut pool, x, x_by_a, y, y_by_b, evicted) = x_evicted_by_y();
    pool.mark_durable(&[y_by_b]);
    pool.settle(&evicted);
    assert_eq!(pool.awaiting(), 0);
    assert_eq!(ids(&sel(&mut pool, 10, 0)), vec![y.id()]);
    pool.on_block(&[y.id()], &BTreeMap::new(), &[]);
    pool.admit_pending(x.clone(), 0, 0).unwrap();
    let x_by_c = pool.admitted(&x.id()).unwrap();
    assert_ne!(x_by_a, x_by_c);
    // A's write fails: C's admission stays, still not selectable.
    assert!(pool.undo(&[x_by_a], Vec::new()).is_empty());
    assert!(pool.contains(&x.id()));
    pool.mark_durable(&[x_by_a]);
    assert!(sel(&mut pool, 10, 0).is_empty(), "A's answer is not C's");
    pool.mark_durable(&[x_by_c]);
    assert_eq!(ids(&sel(&mut pool, 10, 0)), vec![x.id()]);
    pool.check_invariants();
}

/// Batch A admits x (its write under way) and batch B evicts x; then A's write ends and B's
/// fails. B's `undo` puts x back as A's write left it: durable and selectable if that write
/// succeeded, not at all if it failed (A's acknowledgement was withdrawn). Before, x came back
/// not durable either way: unselectable for good after A's success, back unacknowledged after
/// A's failure. If B's `undo` runs before A's outcome reaches the pool, x comes back pending
/// and A's own `mark_durable` or `undo` decides.
#[test]
fn an_evicted_admission_comes_back_as_its_own_write_left_it() {
    let setup = || {
        let set = x_evicted_by_y();
        assert_eq!(set.0.awaiting(), 1);
        set
    };

    // A's write succeeded, then B's failed: x is back, durable.
    let (mut pool, x, x_by_a, y, y_by_b, evicted) = setup();
    pool.mark_durable(&[x_by_a]);
    assert!(!pool.contains(&x.id()));
    assert!(pool.undo(&[y_by_b], evicted).is_empty());
    assert!(!pool.contains(&y.id()));
    assert_eq!(pool.awaiting(), 0);
    pool.check_invariants();
    assert_eq!(ids(&sel(&mut pool, 10, 0)), vec![x.id()]);

    // A's write failed, then B's: x stays out, and is not reported lost (it has no row).
    let (mut pool, x, x_by_a, y, y_by_b, evicted) = setup();
    assert!(pool.undo(&[x_by_a], Vec::new()).is_empty());
    assert!(pool.undo(&[y_by_b], evicted).is_empty());
    assert!(!pool.contains(&x.id()));
    assert!(pool.is_empty() && !pool.contains(&y.id()));
    assert_eq!(pool.awaiting(), 0);
    pool.check_invariants();

    // B's undo runs first: x comes back pending, and A's outcome decides when it arrives.
    for a_succeeds in [true, false] {
        let (mut pool, x, x_by_a, _, y_by_b, evicted) = setup();
        assert!(pool.undo(&[y_by_b], evicted).is_empty());
        assert!(pool.contains(&x.id()));
        assert_eq!(pool.awaiting(), 0);
        assert!(sel(&mut pool, 10, 0).is_empty(), "not durable yet");
        if a_succeeds {
            pool.mark_durable(&[x_by_a]);
            assert_eq!(ids(&sel(&mut pool, 10, 0)), vec![x.id()]);
        } else {
            assert!(pool.undo(&[x_by_a], Vec::new()).is_empty());
            assert!(pool.is_empty());
        }
        pool.check_invariants();
    }

    // B's write succeeded: x stays out whatever A's write does, and nothing is awaited.
    let (mut pool, x, x_by_a, y, y_by_b, evicted) = setup();
    pool.mark_durable(&[y_by_b]);
    pool.settle(&evicted);
    assert_eq!(pool.awaiting(), 0);
    pool.mark_durable(&[x_by_a]);
    assert_eq!(pool.awaiting(), 0);
    assert!(!pool.contains(&x.id()));
    assert_eq!(ids(&sel(&mut pool, 10, 0)), vec![y.id()]);
    pool.check_invariants();
}

/// Batch B evicts A's pending x and then admits x again (resubmitted, in the room the eviction
/// left), and B's write fails. B's `undo` takes out its own admission of x and puts A's back
/// as A's write left it: the shared id must not make A's admission count as B's (by id, A's x
/// was skipped as "admitted and evicted within the batch" and silently lost).
#[test]
fn undo_tells_a_resubmitted_transaction_from_the_one_it_evicted() {
    let (a, b, c) = (key(1), key(2), key(3));
    let x = tx(&a, 0, 0);
    let w = big(&c, 0, 0, 400);
    let y = big(&b, 0, 1, 200); // a higher band; larger than the room x alone leaves
    let mut pool = Pool::new(PoolConfig {
        max_bytes: tx_bytes(&x) + tx_bytes(&w) + 10,
        ..config()
    });
    pool.admit_pending(x.clone(), 0, 0).unwrap();
    let x_by_a = pool.admitted(&x.id()).unwrap();
    pool.admit(w.clone(), 0, 0).unwrap();
    let mut evicted = pool.admit_pending(y.clone(), 0, 0).unwrap();
    let y_by_b = pool.admitted(&y.id()).unwrap();
    assert_eq!(evicted_ids(&evicted), vec![x.id(), w.id()]);
    evicted.extend(pool.admit_pending(x.clone(), 0, 0).unwrap());
    let x_by_b = pool.admitted(&x.id()).unwrap();
    assert_ne!(x_by_a, x_by_b);
    pool.check_invariants();
    // A's write succeeded (its slot is B's admission now, so the outcome is kept for B).
    pool.mark_durable(&[x_by_a]);
    let lost = pool.undo(&[y_by_b, x_by_b], evicted);
    assert!(lost.is_empty(), "{lost:?}");
    assert_eq!(pool.awaiting(), 0);
    pool.check_invariants();
    let mut held = ids(&sel(&mut pool, 10, 0));
    held.sort();
    let mut want = vec![x.id(), w.id()];
    want.sort();
    assert_eq!(held, want, "A's x and w are back, both durable");
}

/// Priority is free: several keys flooding at priority 2^64-1 must not starve a priority-0
/// sender. Blocks of 10 are taken from 6 flooders with 20 txs each and one honest sender who
/// arrives late: it is in the next block.
#[test]
fn priority_flood_from_several_keys_does_not_starve_priority_zero() {
    let flooders: Vec<Keypair> = (10..16).map(key).collect();
    let honest = key(1);
    let mut pool = Pool::new(PoolConfig {
        max_size: 200,
        account_limit: 20,
        max_future_nonces: 20,
        ..config()
    });
    for n in 0..20 {
        for f in &flooders {
            pool.admit(tx(f, n, u64::MAX), 0, 0).unwrap();
        }
    }
    // The flood has been going on for a while: a few blocks already went to it.
    let mut next: BTreeMap<PublicKey, u64> = BTreeMap::new();
    let block = |pool: &mut Pool, next: &mut BTreeMap<PublicKey, u64>| {
        let picked = sel(pool, 10, 0);
        let mut nonces = BTreeMap::new();
        for t in &picked {
            let n = next.entry(t.tx().sender).or_insert(0);
            *n += 1;
            nonces.insert(t.tx().sender, *n);
        }
        pool.on_block(&ids(&picked), &nonces, &[]);
        picked
    };
    for _ in 0..2 {
        block(&mut pool, &mut next);
    }
    let h = tx(&honest, 0, 0);
    pool.admit(h.clone(), 0, 0).unwrap();
    let picked = block(&mut pool, &mut next);
    assert!(ids(&picked).contains(&h.id()), "{:?}", order(&picked));
    // And a steady priority-0 sender keeps getting a share: 1 for every 8 of each band-3
    // sender, so its next tx waits at most 8 * 6 flooders = 48 slots, under 6 blocks of 10.
    for n in 1..4 {
        pool.admit(tx(&honest, n, 0), 1, 0).unwrap();
    }
    let mut served = 0;
    for _ in 0..6 {
        let picked = block(&mut pool, &mut next);
        served += picked
            .iter()
            .filter(|t| t.tx().sender == honest.public())
            .count();
    }
    assert!(served >= 1, "honest sender starved");
    pool.check_invariants();
}

#[test]
fn priorities_clamp_into_bands() {
    assert_eq!([0, 1, 2, 3, 4, u64::MAX].map(band), [0, 1, 2, 3, 3, 3]);
    let (a, b) = (key(1), key(2));
    let mut pool = Pool::new(config());
    // Priority 3 and u64::MAX are the same band: arrival decides.
    pool.admit(tx(&a, 0, 3), 0, 0).unwrap();
    pool.admit(tx(&b, 0, u64::MAX), 0, 0).unwrap();
    assert_eq!(
        order(&sel(&mut pool, 10, 0)),
        vec![(a.public(), 0), (b.public(), 0)]
    );
}

#[test]
fn selection_fills_gas_and_bytes_limits_past_a_sender_that_does_not_fit() {
    let (a, b, c) = (key(1), key(2), key(3));
    let mut pool = Pool::new(config());
    // a's next tx asks for 900,000 gas; b and c for 1,000 each.
    let mut heavy = body(&a, 0, 3);
    heavy.gas_limit = 900_000;
    pool.admit(sign(&a, heavy), 0, 0).unwrap();
    for n in 0..3 {
        pool.admit(tx(&b, n, 0), 0, 0).unwrap();
        pool.admit(tx(&c, n, 0), 0, 0).unwrap();
    }
    let limits = BlockLimits {
        txs: 100,
        gas: 5_000,
        bytes: u64::MAX,
    };
    let picked = pool.select(limits, 0, &HashMap::new()).txs;
    assert_eq!(picked.len(), 5, "{:?}", order(&picked));
    assert!(picked.iter().all(|t| t.tx().sender != a.public()));
    let gas: u64 = picked.iter().map(|t| t.tx().gas_limit).sum();
    assert!(gas <= 5_000);
    pool.check_invariants();
    // The passed-over sender keeps its place: first in the next block.
    pool.return_in_flight();
    let next = pool.select(count_only(1), 0, &HashMap::new()).txs;
    assert_eq!(order(&next), vec![(a.public(), 0)]);
    pool.return_in_flight();

    // Bytes: a big tx does not fit, small ones from others fill the block.
    let mut pool = Pool::new(config());
    let one = tx_bytes(&tx(&b, 0, 0));
    pool.admit(big(&a, 0, 3, 5_000), 0, 0).unwrap();
    for n in 0..3 {
        pool.admit(tx(&b, n, 0), 0, 0).unwrap();
    }
    let limits = BlockLimits {
        txs: 100,
        gas: u64::MAX,
        bytes: 3 * one,
    };
    let picked = pool.select(limits, 0, &HashMap::new()).txs;
    assert_eq!(
        order(&picked),
        vec![(b.public(), 0), (b.public(), 1), (b.public(), 2)]
    );
    let bytes: u64 = picked.iter().map(tx_bytes).sum();
    assert!(bytes <= 3 * one);
    pool.check_invariants();
    // Zero room selects nothing and changes nothing.
    pool.return_in_flight();
    let none = pool.select(
        BlockLimits {
            txs: 10,
            gas: 0,
            bytes: 10,
        },
        0,
        &HashMap::new(),
    );
    assert!(none.txs.is_empty());
    assert_eq!(pool.in_flight(), 0);
    pool.check_invariants();
}

#[test]
fn select_reports_expired_txs_it_removed() {
    let a = key(1);
    let mut pool = Pool::new(config());
    let a0 = tx_expiring(&a, 0, 10);
    pool.admit(a0.clone(), 0, 0).unwrap();
    let s = pool.select(count_only(10), 11, &HashMap::new());
    assert!(s.txs.is_empty());
    assert_eq!(s.expired, vec![a0.id()]);
    assert!(pool.is_empty());
    pool.check_invariants();
}

/// A call to the contract another sender's pending deploy creates waits until that deploy is
/// selected, even when fair order (here: a higher band) would put the call first.
#[test]
fn call_waits_for_the_pending_deploy_it_needs() {
    let (a, b) = (key(1), key(2));
    let mut pool = Pool::new(config());
    let mut d = body(&a, 0, 0);
    d.action = Action::Deploy {
        code: Bytes(vec![0, 97, 115, 109, 1, 0, 0, 0]),
    };
    let d = sign(&a, d);
    let contract = d.tx().target();
    let mut c = body(&b, 0, 3);
    c.action = Action::Call {
        contract,
        entry: "increment".into(),
        args: Bytes(vec![]),
    };
    let c = sign(&b, c);
    pool.admit(d.clone(), 0, 0).unwrap();
    pool.admit(c.clone(), 0, 0).unwrap();
    let deploys = HashMap::from([(contract, d.id())]);
    // Room for one: the call (band 3) would go first, but waits; the deploy goes.
    let one = pool.select(count_only(1), 0, &deploys).txs;
    assert_eq!(ids(&one), vec![d.id()]);
    // With the deploy in flight the call may follow, in a later position of the block order.
    let next = pool.select(count_only(10), 0, &deploys).txs;
    assert_eq!(ids(&next), vec![c.id()]);
    pool.return_in_flight();
    let all = pool.select(count_only(10), 0, &deploys).txs;
    assert_eq!(
        ids(&all),
        vec![d.id(), c.id()],
        "deploy first, call in the next round"
    );
    pool.check_invariants();
}

/// A pool full (in bytes) of big executable transactions in one band still takes a small one:
/// the largest other tail goes if it is at least twice the size and alone makes room. The big
/// one cannot come back by evicting the small one.
#[test]
fn big_transactions_cannot_keep_small_ones_out() {
    let (a, b, honest) = (key(1), key(2), key(3));
    let small = tx_bytes(&tx(&honest, 0, 0));
    let large = tx_bytes(&big(&a, 0, 0, 10_000));
    let mut pool = Pool::new(PoolConfig {
        max_bytes: 2 * large,
        ..config()
    });
    pool.admit(big(&a, 0, 0, 10_000), 0, 0).unwrap();
    pool.admit(big(&b, 0, 0, 10_000), 0, 0).unwrap();
    assert_eq!(pool.bytes(), 2 * large);
    let e = pool.admit(tx(&honest, 0, 0), 0, 0).unwrap();
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].reason, EvictReason::Size);
    assert_eq!(
        pool_get_evicted(&e[0]),
        (a.public(), 0),
        "largest, then oldest"
    );
    assert_eq!(pool.bytes(), large + small);
    pool.check_invariants();
    // Resending the big one: the small one is not twice its size, b's is not either.
    let before = (pool.len(), pool.bytes());
    assert!(matches!(
        pool.admit(big(&a, 0, 0, 10_000), 0, 0),
        Err(AdmitError::PoolFull { .. })
    ));
    assert_eq!((pool.len(), pool.bytes()), before);
    // Not for a newcomer of a higher band against a lower one's size rule either way: a band-3
    // big tx evicts by band instead.
    let e = pool.admit(big(&a, 0, 3, 10_000), 0, 0).unwrap();
    assert!(e.iter().all(|e| e.reason == EvictReason::Priority), "{e:?}");
    assert!(pool.bytes() <= 2 * large);
    pool.check_invariants();
}
