//! Blocks built with `build` pass `verify` on a follower with any worker count and give it the
//! same chain; tampered blocks are refused with an error naming what differed; a call past a
//! follower's `execution.timeout` is retried with a larger deadline, and one that never finishes
//! stops verification with a clear error.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::storage::Storage;
use crate::types::{
    Action, Block, BlockError, BlockHeader, Bytes, Hash, Keypair, ReceiptStatus, SignedTx, Tx,
    TxError, merkle_root, tx_root,
};
use crate::vm::tests::{Account, CHAIN, fixture, vm, vm_with};
use crate::vm::{DropReason, StateView, VERIFY_ATTEMPTS, Vm};

/// Block times: fixed, so blocks built twice are the same.
const T0: u64 = 1_700_000_000_000;

/// The test chain's parameters (the node's defaults, on `vm::tests::CHAIN`).
pub(crate) fn params() -> ChainParams {
    ChainParams::with_defaults(CHAIN)
}

pub(crate) fn sequencer() -> Keypair {
    Keypair::from_seed([42; 32])
}

fn store() -> Storage {
    Storage::in_memory_with(&params()).unwrap()
}

fn base(s: &Storage) -> Arc<dyn StateView> {
    Arc::new(s.snapshot().unwrap())
}

/// Builds the next block on `s` from `txs` and commits it.
pub(crate) fn build_next(
    vm: &Vm,
    params: &ChainParams,
    key: &Keypair,
    s: &Storage,
    txs: Vec<crate::types::VerifiedTx>,
) -> Built {
    let head = s.head().unwrap();
    let built = build(vm, params, key, &head, base(s), T0 + head.height + 1, txs).unwrap();
    s.commit_block(&built.block, &built.receipts, &built.writes)
        .unwrap();
    built
}

/// Verifies `block` on top of `s`'s head.
fn verify_next(
    vm: &Vm,
    params: &ChainParams,
    key: &Keypair,
    s: &Storage,
    block: &Block,
) -> Result<Verified, VerifyError> {
    verify(
        vm,
        params,
        &key.public(),
        &s.head().unwrap(),
        base(s),
        block,
    )
}

/// Verifies `block` on top of `s`'s head and commits it, as a follower would.
fn follow(vm: &Vm, params: &ChainParams, key: &Keypair, s: &Storage, block: &Block) -> Verified {
    let v = verify_next(vm, params, key, s, block).unwrap_or_else(|e| panic!("{e}"));
    s.commit_block(block, &v.receipts, &v.writes).unwrap();
    v
}

/// The sequencer's three blocks: two deploys, calls from three senders to both contracts (some
/// failing), then an empty block.
pub(crate) fn sequencer_chain(vm: &Vm, s: &Storage) -> Vec<Built> {
    sequencer_chain_with(vm, s, &params())
}

/// `sequencer_chain` on a chain with parameters `p` (`s` holds its genesis, `vm` runs it).
fn sequencer_chain_with(vm: &Vm, s: &Storage, p: &ChainParams) -> Vec<Built> {
    let key = sequencer();
    let mut a = Account::new(1);
    let mut b = Account::new(2);
    let mut c = Account::new(3);
    let (d1, counter) = a.deploy(fixture("counter"));
    let (d2, trap) = b.deploy(fixture("trap"));
    let b1 = build_next(vm, p, &key, s, vec![d1, d2]);
    let mut txs = Vec::new();
    for _ in 0..4 {
        txs.push(a.call_gas(counter, "increment", &[], 1_000_000));
        txs.push(b.call_gas(counter, "increment", &[], 1_000_000));
        txs.push(c.call_gas(trap, "run", &[], 1_000_000));
    }
    // Out of gas before it runs: still included, still uses its nonce.
    txs.push(c.call_gas(counter, "increment", &[], 10));
    let b2 = build_next(vm, p, &key, s, txs);
    let b3 = build_next(vm, p, &key, s, Vec::new());
    vec![b1, b2, b3]
}

#[test]
fn built_blocks_verify_on_followers_of_any_worker_count_and_give_the_same_chain() {
    let (p, key) = (params(), sequencer());
    let seq = store();
    let chain = sequencer_chain(&vm(2), &seq);
    let b2 = &chain[1];
    assert!(
        chain.iter().all(|b| b.dropped.is_empty()),
        "nothing dropped"
    );
    assert_eq!(b2.block.txs.len(), 13);
    let statuses: Vec<_> = b2.receipts.iter().map(|r| &r.status).collect();
    assert!(statuses.contains(&&ReceiptStatus::Success));
    assert!(
        statuses
            .iter()
            .any(|s| matches!(s, ReceiptStatus::Trapped { .. }))
    );
    assert!(statuses.contains(&&ReceiptStatus::OutOfGas));
    assert_eq!(chain[2].block.txs.len(), 0);

    for workers in [1, 2, 4] {
        let follower = store();
        let fvm = vm(workers);
        for built in &chain {
            let v = follow(&fvm, &p, &key, &follower, &built.block);
            assert_eq!(v.receipts, built.receipts, "workers = {workers}");
            assert_eq!(v.writes, built.writes, "workers = {workers}");
            assert_eq!(v.gas_used, built.gas_used);
            assert_eq!(v.deadline_retries, 0);
        }
        assert_eq!(
            follower.head().unwrap(),
            seq.head().unwrap(),
            "workers = {workers}"
        );
    }

    // Built again from the same selections with another worker count: the same blocks.
    let again = store();
    let rebuilt = sequencer_chain(&vm(4), &again);
    for (x, y) in chain.iter().zip(&rebuilt) {
        assert_eq!(x.block, y.block);
    }
}

/// `sequencer_chain` on a gas schedule 1 chain, against what the build before schedule 2 produced
/// for the same chain (it was the only schedule then, so these are that build's default-chain
/// figures, printed by it at commit 5312fba): the same parameter hash, receipts' gas and block
/// hashes (each commits to its parent, transactions, receipts and state root). A node keeps
/// running its schedule 1 chains exactly as before; under schedule 2 the same deploys pay the
/// module base and a follower refuses the schedule 1 blocks.
#[test]
fn a_schedule_1_chain_replays_exactly_as_the_build_before_schedule_2() {
    use crate::vm::{VmConfig, gas};

    let p1 = ChainParams {
        gas_schedule: 1,
        ..params()
    };
    let vm1 = |workers| {
        Vm::new(p1.vm_config(&VmConfig {
            workers,
            ..VmConfig::default()
        }))
        .unwrap()
    };
    assert_eq!(vm1(1).gas_schedule(), gas::GasSchedule::V1);
    assert_eq!(
        p1.hash().to_hex(),
        "12a94f96b410c8a631aec23c934fc855c3b4f01582e1246f98c2c5757dc0c292"
    );
    let seq = Storage::in_memory_with(&p1).unwrap();
    let chain = sequencer_chain_with(&vm1(2), &seq, &p1);
    let gas: Vec<Vec<u64>> = chain
        .iter()
        .map(|b| b.receipts.iter().map(|r| r.gas_used).collect())
        .collect();
    let (call, trap) = (14_616, 7_255);
    assert_eq!(
        gas,
        [
            vec![350_497, 87_700],
            vec![
                call, call, trap, call, call, trap, call, call, trap, call, call, trap, 10
            ],
            vec![]
        ]
    );
    let hashes: Vec<String> = chain.iter().map(|b| b.block.hash().to_hex()).collect();
    assert_eq!(
        hashes,
        [
            "d71bcb53adee32860ab5dbc117b6ca7059e51afacab561de48f31100c725e3fe",
            "3395db83a579cb9f5ddd13a0197a3cc282fdb814f73ca96c1afc5008909cd2a1",
            "361ab1b93080399db4cd652e58481412766790114df4b35b4b7804e7313d6974",
        ]
    );
    assert_eq!(
        seq.head().unwrap().state_root.to_hex(),
        "be7a72b2064748223eb40b3f172e2788e66c0000cef861da83d7c42c7a127909"
    );

    // A follower of the schedule 1 chain (any worker count) replays it to the same head.
    for workers in [1, 4] {
        let follower = Storage::in_memory_with(&p1).unwrap();
        let fvm = vm1(workers);
        for built in &chain {
            let v = follow(&fvm, &p1, &sequencer(), &follower, &built.block);
            assert_eq!(v.receipts, built.receipts);
        }
        assert_eq!(follower.head().unwrap(), seq.head().unwrap());
    }

    // The same blocks under schedule 2: the deploys' receipts differ (the module base), so a
    // schedule 2 engine refuses block 1. The schedule is what the chain recorded, never the
    // build's default.
    let follower = Storage::in_memory_with(&p1).unwrap();
    let e = verify_next(&vm(1), &p1, &sequencer(), &follower, &chain[0].block).unwrap_err();
    assert!(e.to_string().contains("receipts"), "{e}");
}

/// Seals `header` (as changed by `change`) and `txs` with `key`: what a faulty or hostile
/// sequencer can publish.
fn reseal(
    block: &Block,
    key: &Keypair,
    change: impl FnOnce(&mut BlockHeader, &mut Vec<SignedTx>),
) -> Block {
    let mut header = block.header.clone();
    let mut txs = block.txs.clone();
    change(&mut header, &mut txs);
    Block::seal(header, txs, key)
}

#[test]
fn tampered_blocks_are_refused_naming_what_differed() {
    let (p, key) = (params(), sequencer());
    let fvm = vm(2);
    let chain = sequencer_chain(&vm(2), &store());
    let follower = store();
    follow(&fvm, &p, &key, &follower, &chain[0].block);
    let good = &chain[1].block;
    let parent = follower.head().unwrap();
    let check = |block: &Block| {
        let r = verify_next(&fvm, &p, &key, &follower, block);
        if let Err(e) = &r {
            assert!(e.is_invalid_block(), "{e}");
        }
        r.map(|_| ())
    };

    // A transaction altered after sealing: the header no longer commits to it.
    let mut altered = good.clone();
    altered.txs[0].tx.gas_limit += 1;
    assert!(matches!(
        check(&altered),
        Err(VerifyError::Block(BlockError::TxRoot { .. }))
    ));
    // ... and re-sealed with a matching tx root: its own signature no longer holds.
    let resealed = reseal(good, &key, |h, txs| {
        txs[0].tx.gas_limit += 1;
        h.tx_root = tx_root(txs);
    });
    assert!(matches!(
        check(&resealed),
        Err(VerifyError::Tx {
            index: 0,
            source: TxError::BadSignature,
            ..
        })
    ));
    // Two transactions swapped (each validly signed, tx root matching): the receipts differ.
    let swapped = reseal(good, &key, |h, txs| {
        txs.swap(0, 1);
        h.tx_root = tx_root(txs);
    });
    assert!(matches!(
        check(&swapped),
        Err(VerifyError::ReceiptsRoot { .. })
    ));

    // Roots the execution does not give.
    let wrong = Hash([9; 32]);
    let receipts = reseal(good, &key, |h, _| h.receipts_root = wrong);
    match check(&receipts) {
        Err(VerifyError::ReceiptsRoot { header, computed }) => {
            assert_eq!(header, wrong);
            assert_eq!(computed, good.header.receipts_root);
        }
        other => panic!("{other:?}"),
    }
    let state = reseal(good, &key, |h, _| h.state_root = wrong);
    match check(&state) {
        Err(VerifyError::StateRoot { header, computed }) => {
            assert_eq!(header, wrong);
            assert_eq!(computed, good.header.state_root);
        }
        other => panic!("{other:?}"),
    }

    // The signature: a changed header not signed again, and a signature of another key.
    let mut unsigned = good.clone();
    unsigned.header.state_root = wrong;
    assert!(matches!(
        check(&unsigned),
        Err(VerifyError::Block(BlockError::BadSignature(_)))
    ));
    let mut borrowed = good.clone();
    borrowed.signature = Block::seal(
        good.header.clone(),
        Vec::new(),
        &Keypair::from_seed([7; 32]),
    )
    .signature;
    assert!(matches!(
        check(&borrowed),
        Err(VerifyError::Block(BlockError::BadSignature(_)))
    ));
    // A whole block sealed by a key that is not the chain's sequencer.
    let stranger = Keypair::from_seed([7; 32]);
    let foreign = reseal(good, &stranger, |_, _| {});
    match check(&foreign) {
        Err(VerifyError::Sequencer { expected, got }) => {
            assert_eq!(expected, key.public());
            assert_eq!(got, stranger.public());
        }
        other => panic!("{other:?}"),
    }

    // The link to the parent.
    let orphan = reseal(good, &key, |h, _| h.parent_hash = wrong);
    match check(&orphan) {
        Err(VerifyError::Parent { expected, got }) => {
            assert_eq!(expected, parent.hash());
            assert_eq!(got, wrong);
        }
        other => panic!("{other:?}"),
    }
    let skipped = reseal(good, &key, |h, _| h.height = 3);
    assert!(matches!(
        check(&skipped),
        Err(VerifyError::Height {
            expected: 2,
            got: 3
        })
    ));
    let early = reseal(good, &key, |h, _| h.timestamp_ms = parent.timestamp_ms - 1);
    assert!(matches!(check(&early), Err(VerifyError::Timestamp { .. })));
    // Block 1 again on top of block 1.
    assert!(matches!(
        check(&chain[0].block),
        Err(VerifyError::Height {
            expected: 2,
            got: 1
        })
    ));

    // Nothing was committed, and the good block still verifies.
    assert_eq!(follower.head().unwrap(), parent);
    assert_eq!(check(good).map_err(|e| e.to_string()), Ok(()));
}

/// A block holding `txs` on top of `s`'s head, sealed by `key` with roots as if each ran: what
/// a sequencer that skipped the admission rules would publish.
fn unchecked_block(key: &Keypair, s: &Storage, txs: Vec<SignedTx>) -> Block {
    let parent = s.head().unwrap();
    let header = BlockHeader {
        height: parent.height + 1,
        parent_hash: parent.hash(),
        timestamp_ms: T0 + parent.height + 1,
        tx_root: tx_root(&txs),
        receipts_root: merkle_root(&[]),
        state_root: parent.state_root,
        sequencer: key.public(),
    };
    Block::seal(header, txs, key)
}

#[test]
fn a_transaction_building_would_drop_makes_the_block_invalid() {
    let (p, key) = (params(), sequencer());
    let fvm = vm(2);
    let chain = sequencer_chain(&vm(2), &store());
    let follower = store();
    follow(&fvm, &p, &key, &follower, &chain[0].block);

    let counter = chain[0].block.txs[0].tx.target();
    let mut fresh = Account::new(9);
    let ok = fresh
        .call_gas(counter, "increment", &[], 1_000_000)
        .signed()
        .clone();
    // Sender 1's first transaction again (its deploy, nonce 0): the nonce is used.
    let replayed = chain[0].block.txs[0].clone();
    let signer = Keypair::from_seed([9; 32]);
    let custom = |change: &dyn Fn(&mut Tx)| {
        let mut tx = Tx {
            chain_id: CHAIN.into(),
            sender: signer.public(),
            nonce: 1,
            gas_limit: 1_000_000,
            priority: 0,
            expiry: None,
            action: Action::Call {
                contract: counter,
                entry: "increment".into(),
                args: Bytes::default(),
            },
        };
        change(&mut tx);
        signer.sign(tx)
    };
    let expired = custom(&|t| t.expiry = Some(T0));
    let over_cap = custom(&|t| t.gas_limit = p.max_tx_gas + 1);
    let other_chain = custom(&|t| t.chain_id = "another-chain".into());
    let gap = custom(&|t| t.nonce = 5);

    type Expect = fn(&DropReason) -> bool;
    let cases: Vec<(SignedTx, Expect)> = vec![
        (replayed, |r| {
            matches!(
                r,
                DropReason::Nonce {
                    expected: 1,
                    got: 0
                }
            )
        }),
        (expired, |r| matches!(r, DropReason::Expired { .. })),
        (over_cap, |r| matches!(r, DropReason::GasLimit { .. })),
        (other_chain, |r| matches!(r, DropReason::WrongChain(_))),
        (gap, |r| {
            matches!(
                r,
                DropReason::Nonce {
                    expected: 1,
                    got: 5
                }
            )
        }),
    ];
    for (bad, expected) in cases {
        let id = bad.tx.id();
        let block = unchecked_block(&key, &follower, vec![ok.clone(), bad]);
        let e = verify_next(&fvm, &p, &key, &follower, &block).map(|_| ());
        match &e {
            Err(VerifyError::NotExecutable {
                index: 1,
                tx,
                reason,
            }) => {
                assert_eq!(*tx, id);
                assert!(expected(reason), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        assert!(e.is_err_and(|e| e.is_invalid_block()));
    }

    // Past the block gas limit: each transaction is fine alone, the sum is not.
    let tight = ChainParams {
        max_block_gas: 1_500_000,
        ..params()
    };
    let mut x = Account::new(11);
    let txs = vec![
        x.call_gas(counter, "increment", &[], 1_000_000)
            .signed()
            .clone(),
        x.call_gas(counter, "increment", &[], 1_000_000)
            .signed()
            .clone(),
    ];
    let block = unchecked_block(&key, &follower, txs);
    assert!(matches!(
        verify_next(&fvm, &tight, &key, &follower, &block),
        Err(VerifyError::NotExecutable {
            index: 1,
            reason: DropReason::BlockFull(_),
            ..
        })
    ));
    // Each block proper passes with the same params.
    assert_eq!(follower.head().unwrap().height, 1);
}

/// Gas for a call to `slow.wat` that must outlast the first deadline of a follower with a 20 ms
/// timeout (20–30 ms) and end within the last (64 times that): slow divisions ran at 283M gas/s
/// on a loaded machine and above 700M gas/s on a quiet one, so 150M gas takes about 0.1–0.6 s,
/// at least three times away from either bound.
const SLOW_GAS: u64 = 150_000_000;

#[test]
fn a_call_past_the_followers_timeout_is_retried_with_a_larger_deadline() {
    let key = sequencer();
    let p = ChainParams {
        max_tx_gas: SLOW_GAS,
        ..params()
    };
    let seq = store();
    let svm = vm(2);
    let mut a = Account::new(20);
    let (d, slow) = a.deploy(fixture("slow"));
    let b1 = build_next(&svm, &p, &key, &seq, vec![d]);
    let call = a.call_gas(slow, "run", &[], SLOW_GAS);
    let b2 = build_next(&svm, &p, &key, &seq, vec![call]);
    assert_eq!(
        b2.receipts[0].status,
        ReceiptStatus::OutOfGas,
        "the sequencer ran it to the end"
    );

    // A follower whose timeout is far too short for that call: verification runs it again with
    // a larger deadline instead of dropping it, and gets the sequencer's result.
    let follower = store();
    let fvm = vm_with(2, Duration::from_millis(20));
    follow(&fvm, &p, &key, &follower, &b1.block);
    let v = follow(&fvm, &p, &key, &follower, &b2.block);
    assert!(v.deadline_retries >= 1, "the first run hit the deadline");
    assert_eq!(v.receipts, b2.receipts);
    assert_eq!(follower.head().unwrap(), seq.head().unwrap());
}

#[test]
fn a_call_that_never_finishes_in_time_stops_verification_with_a_clear_error() {
    let (key, fvm) = (sequencer(), vm_with(1, Duration::from_millis(10)));
    // Gas enough for at least 16 s of slow divisions on any machine, far past the last retry's
    // deadline (10 ms x 4^3 plus a tick): each run is cut by its deadline, so the test takes
    // about 1.7 s whatever the gas.
    const NEVER: u64 = 20_000_000_000;
    let p = ChainParams {
        max_tx_gas: NEVER,
        max_block_gas: NEVER,
        ..params()
    };
    let follower = store();
    let mut a = Account::new(21);
    let (d, slow) = a.deploy(fixture("slow"));
    let b1 = build_next(&vm(1), &p, &key, &store(), vec![d]);
    follow(&fvm, &p, &key, &follower, &b1.block);
    let call = a.call_gas(slow, "run", &[], NEVER).signed().clone();
    let id = call.tx.id();
    let block = unchecked_block(&key, &follower, vec![call]);
    let progress_before = fvm.progress();
    match verify_next(&fvm, &p, &key, &follower, &block) {
        Err(
            e @ VerifyError::Timeout {
                index: 0,
                tx,
                attempts,
                ..
            },
        ) => {
            assert_eq!(tx, id);
            assert_eq!(attempts, VERIFY_ATTEMPTS);
            assert!(!e.is_invalid_block(), "no verdict on the block");
            assert!(e.to_string().contains("execution.timeout"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(follower.head().unwrap().height, 1, "nothing committed");
    // The supervisor must see a call running within its longer verification deadline as busy:
    // each `execution.timeout` slice of it counts as progress, not only the four finished runs.
    let progress = fvm.progress() - progress_before;
    assert!(
        progress > u64::from(VERIFY_ATTEMPTS),
        "progress {progress} counts only finished runs"
    );
}

#[test]
fn the_recorder_counts_a_committed_block_and_tells_subscribers() {
    let stats = Arc::new(crate::metrics::NodeStats::default());
    let metrics = crate::metrics::NodeMetrics::default();
    let s = store();
    let genesis = s.head().unwrap();
    let recorder = Recorder::new(stats.clone(), metrics.clone(), &genesis);
    let mut heads = recorder.subscribe();
    assert_eq!(recorder.head(), Head::of(&genesis));

    let chain = sequencer_chain(&vm(1), &s);
    let b2 = &chain[1];
    recorder.record(Committed {
        block: &b2.block,
        receipts: &b2.receipts,
        gas_used: b2.gas_used,
        dropped: 0,
        elapsed: Duration::from_millis(3),
    });
    assert!(heads.has_changed().unwrap());
    assert_eq!(*heads.borrow_and_update(), Head::of(&b2.block.header));
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(stats.block_height.load(Relaxed), 2);
    assert_eq!(stats.blocks_produced.load(Relaxed), 1);
    assert_eq!(stats.txs_processed.load(Relaxed), 13);
    assert_eq!(stats.tx_failures.load(Relaxed), b2.failures() as u64);
    assert!(b2.failures() >= 5, "four traps and one out of gas");
    assert_eq!(stats.gas_used.load(Relaxed), b2.gas_used);
    assert_eq!(metrics.block_height.get(), 2);
    assert_eq!(metrics.blocks_produced.get(), 1);

    // A restarted actor shows a newer stored head without counting a block; an older one
    // changes nothing.
    recorder.resume(&chain[2].block.header);
    assert_eq!(stats.block_height.load(Relaxed), 3);
    assert_eq!(stats.blocks_produced.load(Relaxed), 1);
    assert_eq!(heads.borrow_and_update().height, 3);
    recorder.resume(&genesis);
    assert!(!heads.has_changed().unwrap());
}
