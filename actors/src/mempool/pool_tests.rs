//! Unit tests of `Pool`: admission rules, ordering, in-flight bookkeeping, block results,
//! expiry, and a property test over random operation sequences.

use super::*;
use crate::types::{Action, Address, Bytes, Keypair, Signature, SignedTx, Tx};
use proptest::prelude::*;

const CHAIN: &str = "accumen-test";

fn config() -> PoolConfig {
    PoolConfig {
        chain_id: CHAIN.into(),
        max_size: 100,
        account_limit: 10,
        max_tx_gas: 1_000_000,
        max_future_nonces: 5,
    }
}

fn key(n: u8) -> Keypair {
    Keypair::from_seed([n; 32])
}

fn body(kp: &Keypair, nonce: u64, priority: u64) -> Tx {
    Tx {
        chain_id: CHAIN.into(),
        sender: kp.public(),
        nonce,
        gas_limit: 1_000,
        priority,
        expiry: None,
        action: Action::Call {
            contract: Address([9; 32]),
            entry: "increment".into(),
            args: Bytes(vec![]),
        },
    }
}

fn sign(kp: &Keypair, tx: Tx) -> VerifiedTx {
    kp.sign(tx).verify().unwrap()
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
fn codes_and_statuses() {
    let h = Hash([1; 32]);
    let cases = [
        (
            AdmitError::WrongChain {
                expected: "a".into(),
                got: "b".into(),
            },
            "wrong_chain",
            400,
        ),
        (AdmitError::GasLimit { limit: 2, max: 1 }, "gas_limit", 400),
        (AdmitError::Expired { expiry: 1, now: 2 }, "expired", 400),
        (
            AdmitError::NonceTooLow {
                expected: 2,
                got: 1,
            },
            "nonce_too_low",
            409,
        ),
        (
            AdmitError::NonceTooFar {
                next: 0,
                got: 9,
                max_ahead: 5,
            },
            "nonce_too_far",
            400,
        ),
        (AdmitError::Duplicate(h), "duplicate", 409),
        (AdmitError::NonceTaken { nonce: 3 }, "nonce_taken", 409),
        (AdmitError::PoolFull { max_size: 7 }, "mempool_full", 503),
        (AdmitError::AccountFull { limit: 4 }, "account_limit", 429),
    ];
    for (err, code, status) in cases {
        assert_eq!(err.code(), code, "{err:?}");
        assert_eq!(err.http_status(), status, "{err:?}");
        assert!(!err.to_string().is_empty());
    }
    let msg = AdmitError::NonceTaken { nonce: 3 }.to_string();
    assert!(
        msg.contains("nonce 3") && msg.contains("not supported"),
        "{msg}"
    );
    let msg = AdmitError::NonceTooFar {
        next: 0,
        got: 9,
        max_ahead: 5,
    }
    .to_string();
    assert!(msg.contains('9') && msg.contains('5'), "{msg}");
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
        (tx(&c, 0, 0), 0, AdmitError::PoolFull { max_size: 4 }),
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
    assert!(pool.select(10, 0).is_empty(), "held behind the gap 2..7");
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
        Err(AdmitError::PoolFull { max_size: 5 })
    );
    // In-flight txs still count: selecting frees no room.
    assert_eq!(pool.select(5, 0).len(), 5);
    assert_eq!(pool.len(), 5);
    assert_eq!(
        pool.admit(tx(&keys[2], 1, 0), 0, 0),
        Err(AdmitError::PoolFull { max_size: 5 })
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
    let got = order(&pool.select(10, 0));
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
    let got = order(&pool.select(10, 0));
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
    let first = order(&pool.select(2, 0));
    assert_eq!(first, vec![(a.public(), 0), (a.public(), 1)]);
    let rest = order(&pool.select(10, 0));
    assert_eq!(
        rest,
        vec![
            (a.public(), 2),
            (b.public(), 0),
            (b.public(), 1),
            (b.public(), 2)
        ]
    );
    assert!(
        pool.select(10, 0).is_empty(),
        "in-flight txs are not selected twice"
    );
    assert_eq!(pool.len(), 6);
    assert_eq!(pool.in_flight(), 6);
    assert!(pool.select(0, 0).is_empty());
    pool.check_invariants();
}

#[test]
fn future_nonce_waits_for_the_gap() {
    let a = key(1);
    let mut pool = Pool::new(config());
    pool.admit(tx(&a, 0, 0), 0, 0).unwrap();
    pool.admit(tx(&a, 2, 0), 0, 0).unwrap();
    assert_eq!(order(&pool.select(10, 0)), vec![(a.public(), 0)]);
    assert!(pool.select(10, 0).is_empty());
    // Filling the gap while 0 is in flight makes 1 and then 2 selectable.
    pool.admit(tx(&a, 1, 0), 0, 0).unwrap();
    pool.check_invariants();
    assert_eq!(
        order(&pool.select(10, 0)),
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
    let sel = pool.select(10, 0);
    assert_eq!(ids(&sel), vec![t.id()]);
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
    let sel = pool.select(5, 0);
    assert_eq!(ids(&sel), vec![a0.id(), a1.id(), b0.id(), b1.id(), c0.id()]);

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
    assert_eq!(ids(&pool.select(10, 0)), vec![b1.id(), c1.id()]);

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
    assert_eq!(pool.select(10, 0).len(), 3);
    // Only a0 made it (the caller's nonce map is empty: inclusion alone advances a).
    let removed = pool.on_block(&[a0.id()], &BTreeMap::new(), &[]);
    assert!(removed.is_empty());
    pool.check_invariants();
    assert_eq!(ids(&pool.select(10, 0)), vec![b0.id(), a1.id()]);
    assert_eq!(pool.pending_nonce(&a.public(), 0), 2);
}

#[test]
fn return_in_flight_restores_old_order() {
    let (a, b) = (key(1), key(2));
    let mut pool = Pool::new(config());
    for n in 0..3 {
        pool.admit(tx(&a, n, 1), 0, 0).unwrap();
        pool.admit(tx(&b, n, 1), 0, 0).unwrap();
    }
    let first = ids(&pool.select(4, 0));
    pool.return_in_flight();
    pool.check_invariants();
    assert_eq!(pool.in_flight(), 0);
    assert_eq!(pool.len(), 6);
    let again = ids(&pool.select(4, 0));
    assert_eq!(first, again);
    pool.return_in_flight();
    let all = pool.select(10, 0);
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
    let sel = pool.select(10, 150);
    assert_eq!(ids(&sel), vec![b0.id()]);
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
    pool.select(1, 0);
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
    assert_eq!(order(&pool.select(10, 0)), vec![(a.public(), 2)]);
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
        let sel = pool.select(5_000, 0);
        assert!(!sel.is_empty());
        let mut nonces = BTreeMap::new();
        for t in &sel {
            let n = next.entry(t.tx().sender).or_insert(0);
            assert_eq!(t.tx().nonce, *n);
            *n += 1;
            nonces.insert(t.tx().sender, *n);
        }
        let removed = pool.on_block(&ids(&sel), &nonces, &[]);
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
    Select(u8),
    /// Execute the in-flight txs like the block executor: include those at the sender's next
    /// nonce, drop the rest; `fail` turns it into a failed attempt instead.
    Block {
        fail: bool,
    },
    Expire,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0u8..4, 0u8..4, 0u8..4).prop_map(|(sender, ahead, priority)| Op::Admit {
            sender,
            ahead,
            priority
        }),
        2 => (0u8..6).prop_map(Op::Select),
        2 => any::<bool>().prop_map(|fail| Op::Block { fail }),
        1 => Just(Op::Expire),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn random_sequences_keep_nonce_order_and_counts(ops in prop::collection::vec(op(), 1..60)) {
        let keys: Vec<Keypair> = (1..=4).map(key).collect();
        let mut pool = Pool::new(PoolConfig { max_size: 12, account_limit: 5, ..config() });
        // Committed next nonce per sender (the chain), and the pending ids the pool should hold.
        let mut state: BTreeMap<PublicKey, u64> = BTreeMap::new();
        let mut pending: BTreeSet<Hash> = BTreeSet::new();
        // Selected since the last settlement, in selection order.
        let mut flying: Vec<VerifiedTx> = Vec::new();
        for op in ops {
            match op {
                Op::Admit { sender, ahead, priority } => {
                    let kp = &keys[sender as usize];
                    let committed = *state.get(&kp.public()).unwrap_or(&0);
                    let next = pool.pending_nonce(&kp.public(), committed);
                    let t = tx(kp, next + u64::from(ahead), u64::from(priority));
                    if pool.admit(t.clone(), committed, 0).is_ok() {
                        pending.insert(t.id());
                    }
                }
                Op::Select(max) => {
                    let sel = pool.select(usize::from(max), 0);
                    prop_assert!(sel.len() <= usize::from(max));
                    flying.extend(sel);
                    // Per sender, everything selected since the last block runs from the
                    // committed nonce without a gap.
                    let mut expect = state.clone();
                    for t in &flying {
                        let n = expect.entry(t.tx().sender).or_insert(0);
                        prop_assert_eq!(t.tx().nonce, *n, "out of order");
                        *n += 1;
                    }
                }
                Op::Block { fail: true } => {
                    pool.return_in_flight();
                    flying.clear();
                }
                Op::Block { fail: false } => {
                    let mut included = Vec::new();
                    let mut dropped = Vec::new();
                    let mut nonces = BTreeMap::new();
                    for t in flying.drain(..) {
                        let s = t.tx().sender;
                        let expected = *state.get(&s).unwrap_or(&0);
                        if t.tx().nonce == expected {
                            state.insert(s, expected + 1);
                            nonces.insert(s, expected + 1);
                            included.push(t.id());
                        } else {
                            dropped.push((t.id(), DropReason::Nonce { expected, got: t.tx().nonce }));
                        }
                    }
                    for id in &included {
                        pending.remove(id);
                    }
                    for id in pool.on_block(&included, &nonces, &dropped) {
                        prop_assert!(pending.remove(&id), "removed an unknown id");
                    }
                }
                Op::Expire => {
                    // Nothing here expires; it must be a no-op.
                    prop_assert!(pool.expire(u64::MAX).is_empty());
                }
            }
            pool.check_invariants();
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
