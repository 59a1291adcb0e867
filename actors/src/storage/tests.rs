//! Storage tests: round trips, all-or-nothing commits, reopen, open-time checks, the journal and
//! snapshot isolation. Every test runs against the in-memory backend or a temp file.

use std::sync::atomic::Ordering;

use super::*;
use crate::testkit;
use crate::types::{
    Action, Bytes, Keypair, ReceiptStatus, Signature, Tx, receipts_root, sha256, state_root,
    tx_root,
};

use crate::testkit::CHAIN;

fn params() -> ChainParams {
    ChainParams::with_defaults(CHAIN)
}

impl Storage {
    /// Test fail-point: make `commit_block` fail after all writes, before the commit.
    pub(crate) fn set_fail_before_commit(&self, on: bool) {
        self.fail_before_commit.store(on, Ordering::SeqCst);
    }

    /// Writes a raw meta entry (to fake a file from another version).
    fn write_meta_raw(&self, key: &str, value: &[u8]) {
        let txn = self.db.begin_write().unwrap();
        txn.open_table(META).unwrap().insert(key, value).unwrap();
        txn.commit().unwrap();
    }

    fn schema_version(&self) -> u32 {
        let rtx = self.db.begin_read().unwrap();
        let meta = rtx.open_table(META).unwrap();
        decode_trusted(meta.get(META_SCHEMA_VERSION).unwrap().unwrap().value()).unwrap()
    }

    fn has_table(&self, name: &str) -> bool {
        let rtx = self.db.begin_read().unwrap();
        rtx.list_tables().unwrap().any(|t| t.name() == name)
    }

    /// Removes a raw meta entry (to fake a file from another version).
    fn remove_meta_raw(&self, key: &str) {
        let txn = self.db.begin_write().unwrap();
        txn.open_table(META).unwrap().remove(key).unwrap();
        txn.commit().unwrap();
    }
}

fn kp(n: u8) -> Keypair {
    Keypair::from_seed([n; 32])
}

fn call_tx(k: &Keypair, nonce: u64) -> SignedTx {
    let action = testkit::call(contract_a(), "inc", &nonce.to_le_bytes());
    k.sign(testkit::body(CHAIN, k.public(), nonce, action, 1_000))
}

fn receipt_for(tx: &SignedTx) -> Receipt {
    Receipt {
        tx_id: tx.tx.id(),
        contract: tx.tx.target(),
        status: ReceiptStatus::Success,
        gas_used: 7,
        output: Bytes(vec![1, 2]),
        events: Vec::new(),
        logs: vec!["hello".into()],
    }
}

/// A child of `parent` holding `txs` (each with a success receipt) and `writes`, sealed.
pub(crate) fn make_block(
    parent: &BlockHeader,
    txs: Vec<SignedTx>,
    writes: &WriteSet,
) -> (Block, Vec<Receipt>) {
    let receipts: Vec<Receipt> = txs.iter().map(receipt_for).collect();
    let header = BlockHeader {
        height: parent.height + 1,
        parent_hash: parent.hash(),
        timestamp_ms: parent.timestamp_ms + 1_000,
        tx_root: tx_root(&txs),
        receipts_root: receipts_root(&receipts),
        state_root: state_root(&parent.state_root, writes),
        sequencer: PublicKey::ZERO,
    };
    (Block::seal(header, txs, &kp(200)), receipts)
}

fn contract_a() -> Address {
    Address([0xa1; 32])
}
fn contract_b() -> Address {
    Address([0xb2; 32])
}
const CODE_A: &[u8] = b"\0asm fake code";
const LONG_KEY: [u8; 200] = [7; 200];

fn key(s: &str) -> (Address, Bytes) {
    (contract_a(), Bytes(s.as_bytes().to_vec()))
}

/// Block 1's writes: deploy contract A, set k1 and k2, sender 1 has used nonces 0 and 1.
fn writes1() -> WriteSet {
    let mut w = WriteSet::default();
    let code_hash = sha256(CODE_A);
    w.code.insert(code_hash, Bytes(CODE_A.to_vec()));
    w.contracts.insert(
        contract_a(),
        ContractInfo {
            address: contract_a(),
            code_hash,
            deployer: kp(1).public(),
            height: 1,
            tx_id: Hash([3; 32]),
        },
    );
    w.storage.insert(key("k1"), Some(Bytes(b"v1".to_vec())));
    w.storage.insert(key("k2"), Some(Bytes(b"v2".to_vec())));
    w.nonces.insert(kp(1).public(), 2);
    w
}

/// Block 2's writes: remove k1, overwrite k2, set a long key, bump sender 1.
fn writes2() -> WriteSet {
    let mut w = WriteSet::default();
    w.storage.insert(key("k1"), None);
    w.storage.insert(key("k2"), Some(Bytes(b"v2'".to_vec())));
    w.storage.insert(
        (contract_a(), Bytes(LONG_KEY.to_vec())),
        Some(Bytes(b"long".to_vec())),
    );
    w.nonces.insert(kp(1).public(), 3);
    w
}

/// Commits blocks 1 (txs nonce 0, 1) and 2 (tx nonce 2); returns them with their receipts.
fn commit_two(s: &Storage) -> Vec<(Block, Vec<Receipt>)> {
    let k = kp(1);
    let (b1, r1) = make_block(
        &s.head().unwrap(),
        vec![call_tx(&k, 0), call_tx(&k, 1)],
        &writes1(),
    );
    s.commit_block(&b1, &r1, &writes1()).unwrap();
    let (b2, r2) = make_block(&b1.header, vec![call_tx(&k, 2)], &writes2());
    s.commit_block(&b2, &r2, &writes2()).unwrap();
    vec![(b1, r1), (b2, r2)]
}

/// Everything observable through the public API for the fixtures above, as one comparable value.
fn observe(s: &Storage) -> String {
    let k = kp(1);
    let ids: Vec<Hash> = (0..5).map(|n| call_tx(&k, n).tx.id()).collect();
    let mut out = Vec::new();
    out.push(format!("head {:?}", s.head().unwrap()));
    for h in 0..5 {
        let b = s.block_by_height(h).unwrap();
        if let Some(b) = &b {
            out.push(format!("by hash {:?}", s.block_by_hash(&b.hash()).unwrap()));
        }
        out.push(format!(
            "block {h} {b:?} receipts {:?}",
            s.block_receipts(h).unwrap()
        ));
    }
    for id in &ids {
        out.push(format!(
            "tx {id} {:?} {:?}",
            s.tx_location(id).unwrap(),
            s.receipt(id).unwrap()
        ));
    }
    for a in [contract_a(), contract_b()] {
        out.push(format!("contract {:?}", s.contract(&a).unwrap()));
        for key in [&b"k1"[..], b"k2", b"k3", &LONG_KEY] {
            out.push(format!("state {:?}", s.storage_get(&a, key).unwrap()));
        }
    }
    out.push(format!("code {:?}", s.code(&sha256(CODE_A)).unwrap()));
    for n in [1, 2] {
        out.push(format!("nonce {}", s.nonce(&kp(n).public()).unwrap()));
    }
    out.push(format!("journal {:?}", s.journal_all().unwrap()));
    out.push(format!("outbox {}", s.outbox_len().unwrap()));
    out.join("\n")
}

#[test]
fn genesis_on_create() {
    let s = Storage::in_memory(CHAIN).unwrap();
    let g = params().genesis();
    assert_eq!(s.chain_id(), CHAIN);
    assert_eq!(s.head().unwrap(), g.header);
    assert_eq!(s.block_by_height(0).unwrap(), Some(g.clone()));
    assert_eq!(s.block_by_hash(&g.hash()).unwrap(), Some(g));
    assert_eq!(s.block_receipts(0).unwrap(), Vec::new());
    assert_eq!(s.outbox_len().unwrap(), 0);
    assert!(s.path().is_none());
}

#[test]
fn commit_and_read_back() {
    let s = Storage::in_memory(CHAIN).unwrap();
    let k = kp(1);
    let w1 = writes1();
    let (b1, r1) = make_block(
        &s.head().unwrap(),
        vec![call_tx(&k, 0), call_tx(&k, 1)],
        &w1,
    );
    s.commit_block(&b1, &r1, &w1).unwrap();

    assert_eq!(s.head().unwrap(), b1.header);
    assert_eq!(s.block_by_height(1).unwrap().as_ref(), Some(&b1));
    assert_eq!(s.block_by_hash(&b1.hash()).unwrap().as_ref(), Some(&b1));
    assert_eq!(s.block_by_hash(&Hash([9; 32])).unwrap(), None);
    assert_eq!(s.block_by_height(2).unwrap(), None);
    let id0 = b1.txs[0].tx.id();
    let id1 = b1.txs[1].tx.id();
    assert_eq!(s.tx_location(&id0).unwrap(), Some((1, 0)));
    assert_eq!(s.tx_location(&id1).unwrap(), Some((1, 1)));
    assert_eq!(s.tx_location(&Hash([9; 32])).unwrap(), None);
    assert_eq!(s.receipt(&id1).unwrap().as_ref(), Some(&r1[1]));
    assert_eq!(s.receipt(&Hash([9; 32])).unwrap(), None);
    assert_eq!(s.block_receipts(1).unwrap(), r1);
    assert_eq!(s.block_receipts(7).unwrap(), Vec::new());
    assert_eq!(
        s.contract(&contract_a()).unwrap().as_ref(),
        w1.contracts.get(&contract_a())
    );
    assert_eq!(s.contract(&contract_b()).unwrap(), None);
    assert_eq!(s.code(&sha256(CODE_A)).unwrap(), Some(CODE_A.to_vec()));
    assert_eq!(s.code(&Hash([9; 32])).unwrap(), None);
    assert_eq!(
        s.storage_get(&contract_a(), b"k1").unwrap(),
        Some(b"v1".to_vec())
    );
    assert_eq!(
        s.storage_get(&contract_a(), b"k2").unwrap(),
        Some(b"v2".to_vec())
    );
    // Keys are per contract: the same key under another address is a different slot.
    assert_eq!(s.storage_get(&contract_b(), b"k1").unwrap(), None);
    assert_eq!(s.nonce(&k.public()).unwrap(), 2);
    assert_eq!(s.nonce(&kp(2).public()).unwrap(), 0);

    let w2 = writes2();
    let (b2, r2) = make_block(&b1.header, vec![call_tx(&k, 2)], &w2);
    s.commit_block(&b2, &r2, &w2).unwrap();
    assert_eq!(s.head().unwrap(), b2.header);
    assert_eq!(
        s.storage_get(&contract_a(), b"k1").unwrap(),
        None,
        "removed"
    );
    assert_eq!(
        s.storage_get(&contract_a(), b"k2").unwrap(),
        Some(b"v2'".to_vec())
    );
    assert_eq!(
        s.storage_get(&contract_a(), &LONG_KEY).unwrap(),
        Some(b"long".to_vec())
    );
    assert_eq!(s.nonce(&k.public()).unwrap(), 3);
    assert_eq!(s.tx_location(&b2.txs[0].tx.id()).unwrap(), Some((2, 0)));
    // Earlier blocks are untouched by later ones.
    assert_eq!(s.block_by_height(1).unwrap().as_ref(), Some(&b1));
    assert_eq!(s.code(&sha256(CODE_A)).unwrap(), Some(CODE_A.to_vec()));

    // A snapshot reads the same state.
    let snap = s.snapshot().unwrap();
    assert_eq!(snap.head().unwrap(), b2.header);
    assert_eq!(snap.nonce(&k.public()).unwrap(), 3);
    assert_eq!(snap.storage_get(&contract_a(), b"k1").unwrap(), None);
    assert_eq!(
        snap.storage_get(&contract_a(), &LONG_KEY).unwrap(),
        Some(b"long".to_vec())
    );
    assert_eq!(
        snap.contract(&contract_a()).unwrap(),
        s.contract(&contract_a()).unwrap()
    );
    assert_eq!(snap.code(&sha256(CODE_A)).unwrap(), Some(CODE_A.to_vec()));
}

#[test]
fn failed_commits_leave_nothing_behind() {
    let s = Storage::in_memory(CHAIN).unwrap();
    let k = kp(1);
    let w1 = writes1();
    let (b1, r1) = make_block(
        &s.head().unwrap(),
        vec![call_tx(&k, 0), call_tx(&k, 1)],
        &w1,
    );
    s.commit_block(&b1, &r1, &w1).unwrap();
    let pending = call_tx(&k, 2);
    s.journal_put(std::slice::from_ref(&pending)).unwrap();
    let before = observe(&s);
    let w2 = writes2();

    // A tx already committed in block 1: found only after the block row, its index entry and the
    // first tx's location were written inside the transaction.
    let (dup, dup_r) = make_block(&b1.header, vec![pending.clone(), call_tx(&k, 1)], &w2);
    match s.commit_block(&dup, &dup_r, &w2) {
        Err(StorageError::DuplicateTx(id)) => assert_eq!(id, call_tx(&k, 1).tx.id()),
        other => panic!("expected DuplicateTx, got {other:?}"),
    }
    assert_eq!(observe(&s), before);
    assert_eq!(s.block_by_hash(&dup.hash()).unwrap(), None);

    // The same tx twice in one block.
    let (twice, twice_r) = make_block(&b1.header, vec![pending.clone(), pending.clone()], &w2);
    assert!(matches!(
        s.commit_block(&twice, &twice_r, &w2),
        Err(StorageError::DuplicateTx(_))
    ));
    assert_eq!(observe(&s), before);

    // Wrong height.
    let (mut skip, skip_r) = make_block(&b1.header, vec![pending.clone()], &w2);
    skip.header.height = 3;
    assert!(matches!(
        s.commit_block(&skip, &skip_r, &w2),
        Err(StorageError::NotNextBlock {
            expected: 2,
            got: 3
        })
    ));
    // Re-committing the current head's height is also refused.
    assert!(matches!(
        s.commit_block(&b1, &r1, &w1),
        Err(StorageError::NotNextBlock {
            expected: 2,
            got: 1
        })
    ));
    // Wrong parent.
    let (mut fork, fork_r) = make_block(&b1.header, vec![pending.clone()], &w2);
    fork.header.parent_hash = Hash([5; 32]);
    match s.commit_block(&fork, &fork_r, &w2) {
        Err(StorageError::ParentMismatch { expected, got }) => {
            assert_eq!(expected, b1.hash());
            assert_eq!(got, Hash([5; 32]));
        }
        other => panic!("expected ParentMismatch, got {other:?}"),
    }
    // Receipts that do not match the txs.
    let (b2, r2) = make_block(&b1.header, vec![pending.clone()], &w2);
    assert!(matches!(
        s.commit_block(&b2, &[], &w2),
        Err(StorageError::ReceiptCount {
            txs: 1,
            receipts: 0
        })
    ));
    let wrong = vec![receipt_for(&call_tx(&k, 9))];
    assert!(matches!(
        s.commit_block(&b2, &wrong, &w2),
        Err(StorageError::ReceiptMismatch { index: 0, .. })
    ));
    assert_eq!(observe(&s), before);

    // Fail-point: every write done, then an error instead of the commit.
    s.set_fail_before_commit(true);
    assert!(matches!(
        s.commit_block(&b2, &r2, &w2),
        Err(StorageError::Injected)
    ));
    assert_eq!(observe(&s), before);
    assert_eq!(s.snapshot().unwrap().head().unwrap(), b1.header);

    // The same block then commits cleanly: nothing stale was left to collide with.
    s.set_fail_before_commit(false);
    s.commit_block(&b2, &r2, &w2).unwrap();
    assert_eq!(s.head().unwrap(), b2.header);
    // The chain database's (legacy) journal is not the block's business any more: the
    // mempool's own file forgets committed rows lazily.
    assert_eq!(s.journal_all().unwrap(), vec![pending.clone()]);
    assert_eq!(s.nonce(&k.public()).unwrap(), 3);
    assert_ne!(observe(&s), before);
}

#[test]
fn persistent_reopen_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    // A missing parent directory is created.
    let path = dir.path().join("data").join("accumen.redb");
    let (before, blocks) = {
        let s = Storage::open(&path, &params()).unwrap();
        assert_eq!(s.path(), Some(path.as_path()));
        let blocks = commit_two(&s);
        s.journal_put(&[call_tx(&kp(2), 0), call_tx(&kp(2), 1)])
            .unwrap();
        (observe(&s), blocks)
    };
    let s = Storage::open(&path, &params()).unwrap();
    assert_eq!(observe(&s), before);
    assert_eq!(s.head().unwrap(), blocks[1].0.header);
    assert_eq!(s.journal_all().unwrap().len(), 2);
    // And the chain continues from the reopened head.
    let (b3, r3) = make_block(
        &blocks[1].0.header,
        vec![call_tx(&kp(2), 0)],
        &WriteSet::default(),
    );
    s.commit_block(&b3, &r3, &WriteSet::default()).unwrap();
    assert_eq!(
        s.journal_all().unwrap().len(),
        2,
        "a commit leaves the journal alone"
    );
}

#[test]
fn open_checks_schema_version_and_chain_id() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("accumen.redb");
    {
        let s = Storage::open(&path, &params()).unwrap();
        // While it is open, a second opener is told the file is in use.
        assert!(matches!(
            Storage::open(&path, &params()),
            Err(StorageError::Locked(_))
        ));
        drop(s);
    }
    match Storage::open(&path, &ChainParams::with_defaults("other-chain")) {
        Err(e @ StorageError::ChainMismatch { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("other-chain") && msg.contains(CHAIN), "{msg}");
        }
        other => panic!("expected ChainMismatch, got {other:?}"),
    }
    {
        let s = Storage::open(&path, &params()).unwrap();
        s.write_meta_raw(tables::META_SCHEMA_VERSION, &encode(&99u32));
    }
    match Storage::open(&path, &params()) {
        Err(
            e @ StorageError::SchemaMismatch {
                found: 99,
                expected: SCHEMA_VERSION,
            },
        ) => {
            let msg = e.to_string();
            assert!(
                msg.contains("version 99 found, this node needs 4") && msg.contains("newer"),
                "{msg}"
            );
            assert!(msg.contains("data_dir"), "{msg}");
        }
        other => panic!("expected SchemaMismatch, got {other:?}"),
    }
}

#[test]
fn corrupt_values_are_typed_errors() {
    let s = Storage::in_memory(CHAIN).unwrap();
    s.write_meta_raw(tables::META_HEAD, &[0xff]);
    match s.head() {
        Err(e @ StorageError::Decode { table: "meta", .. }) => {
            // The decode error is kept as the source, not flattened into a string.
            let source = std::error::Error::source(&e).expect("a source");
            assert!(source.downcast_ref::<DecodeError>().is_some(), "{source}");
            assert!(e.to_string().contains("table meta"), "{e}");
        }
        other => panic!("expected Decode, got {other:?}"),
    }
}

#[test]
fn journal_put_remove_all_and_commit_leaves_it_alone() {
    let s = Storage::in_memory(CHAIN).unwrap();
    let k = kp(1);
    let txs: Vec<SignedTx> = (0..3).map(|n| call_tx(&k, n)).collect();
    assert_eq!(s.journal_all().unwrap(), Vec::new());
    s.journal_put(&txs).unwrap();
    s.journal_put(&txs[..1]).unwrap(); // idempotent
    let mut expected = txs.clone();
    expected.sort_by_key(|t| t.tx.id());
    assert_eq!(s.journal_all().unwrap(), expected);

    s.journal_remove(&[txs[2].tx.id(), Hash([9; 32])]).unwrap();
    let mut expected: Vec<SignedTx> = txs[..2].to_vec();
    expected.sort_by_key(|t| t.tx.id());
    assert_eq!(s.journal_all().unwrap(), expected);
    s.journal_put(&txs[2..]).unwrap();

    // Committing a block does not touch these (legacy) rows: the journal moved to its own file
    // (`storage::journal`), whose committed rows go lazily.
    let (b1, r1) = make_block(&s.head().unwrap(), txs[..2].to_vec(), &WriteSet::default());
    s.commit_block(&b1, &r1, &WriteSet::default()).unwrap();
    let mut all = txs.clone();
    all.sort_by_key(|t| t.tx.id());
    assert_eq!(s.journal_all().unwrap(), all);
    s.journal_remove(&[]).unwrap();
    s.journal_put(&[]).unwrap();
}

#[test]
fn snapshot_does_not_see_later_commits() {
    let s = Storage::in_memory(CHAIN).unwrap();
    let genesis = s.head().unwrap();
    let snap = s.snapshot().unwrap();
    let w1 = writes1();
    let (b1, r1) = make_block(&genesis, vec![call_tx(&kp(1), 0), call_tx(&kp(1), 1)], &w1);
    s.commit_block(&b1, &r1, &w1).unwrap();

    assert_eq!(snap.head().unwrap(), genesis);
    assert_eq!(snap.nonce(&kp(1).public()).unwrap(), 0);
    assert_eq!(snap.storage_get(&contract_a(), b"k1").unwrap(), None);
    assert_eq!(snap.contract(&contract_a()).unwrap(), None);
    assert_eq!(snap.code(&sha256(CODE_A)).unwrap(), None);

    let fresh = s.snapshot().unwrap();
    assert_eq!(fresh.head().unwrap(), b1.header);
    assert_eq!(fresh.nonce(&kp(1).public()).unwrap(), 2);

    // Snapshots are handed to executor threads.
    let from_thread = std::thread::spawn(move || snap.head().unwrap())
        .join()
        .unwrap();
    assert_eq!(from_thread, genesis);
}

/// Builds a block of `n` txs (unsigned: storage does not verify signatures) with `n` receipts
/// and about `n` state writes.
fn big_block(parent: &BlockHeader, n: usize) -> (Block, Vec<Receipt>, WriteSet) {
    let mut txs = Vec::with_capacity(n);
    let mut w = WriteSet::default();
    for i in 0..n {
        let mut sender = [0u8; 32];
        sender[..8].copy_from_slice(&((i % 1_000) as u64).to_le_bytes());
        let sender = PublicKey(sender);
        let nonce = (i / 1_000) as u64 + parent.height * 10;
        txs.push(SignedTx {
            tx: Tx {
                chain_id: CHAIN.into(),
                sender,
                nonce,
                gas_limit: 100_000,
                priority: 0,
                expiry: None,
                action: Action::Call {
                    contract: Address([(i % 16) as u8; 32]),
                    entry: "transfer".into(),
                    args: Bytes(vec![0x5a; 64]),
                },
            },
            signature: Signature([1; 64]),
        });
        w.nonces.insert(sender, nonce + 1);
        if i % 5 != 0 {
            w.storage.insert(
                (
                    Address([(i % 16) as u8; 32]),
                    Bytes((i as u64).to_be_bytes().to_vec()),
                ),
                Some(Bytes(vec![0x33; 32])),
            );
        }
    }
    let (block, receipts) = make_block(parent, txs, &w);
    (block, receipts, w)
}

fn big_commits(s: &Storage) {
    let mut parent = s.head().unwrap();
    for _ in 0..3 {
        let (b, r, w) = big_block(&parent, 5_000);
        s.commit_block(&b, &r, &w).unwrap();
        // Everything of the big block is there (timing lives in the criterion benchmark).
        assert_eq!(s.block_receipts(b.header.height).unwrap(), r);
        let last = b.txs[4_999].tx.id();
        assert_eq!(
            s.tx_location(&last).unwrap(),
            Some((b.header.height, 4_999))
        );
        parent = b.header;
    }
    assert_eq!(s.head().unwrap(), parent);
}

#[test]
fn blocks_of_5000_txs_commit_whole() {
    big_commits(&Storage::in_memory(CHAIN).unwrap());
    let dir = tempfile::tempdir().unwrap();
    big_commits(&Storage::open(&dir.path().join("accumen.redb"), &params()).unwrap());
}

#[test]
fn journal_write_keeps_arrival_order_and_every_removal_clears_it() {
    let s = Storage::in_memory(CHAIN).unwrap();
    let k = kp(1);
    let txs: Vec<SignedTx> = (0..3).map(|n| call_tx(&k, n)).collect();
    s.journal_write(&[(5, &txs[0]), (6, &txs[1])], &[]).unwrap();
    s.journal_put(&txs[2..]).unwrap(); // journaled without a sequence
    let sorted = |s: &Storage| {
        let mut all = s.journal_all_ordered().unwrap();
        all.sort_by_key(|(seq, t)| (*seq, t.tx.nonce));
        all
    };
    assert_eq!(
        sorted(&s),
        vec![
            (None, txs[2].clone()),
            (Some(5), txs[0].clone()),
            (Some(6), txs[1].clone())
        ]
    );
    // Put and remove in one write.
    s.journal_write(&[(7, &txs[2])], &[txs[0].tx.id()]).unwrap();
    assert_eq!(
        sorted(&s),
        vec![(Some(6), txs[1].clone()), (Some(7), txs[2].clone())]
    );
    // Removal clears the order entry with the journal entry: journaling the same tx again
    // without a sequence shows none left behind.
    s.journal_remove(&[txs[1].tx.id()]).unwrap();
    assert_eq!(sorted(&s), vec![(Some(7), txs[2].clone())]);
    s.journal_put(std::slice::from_ref(&txs[1])).unwrap();
    assert_eq!(sorted(&s)[0], (None, txs[1].clone()));
    // journal_remove clears it too.
    s.journal_remove(&[txs[2].tx.id()]).unwrap();
    s.journal_put(std::slice::from_ref(&txs[2])).unwrap();
    assert!(sorted(&s).iter().all(|(seq, _)| seq.is_none()));
    s.journal_write(&[], &[]).unwrap();
}

#[test]
fn chain_params_are_recorded_at_genesis_and_rule_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("accumen.redb");
    let created = ChainParams::new(CHAIN, 1_234_567, 32);
    let genesis = {
        let s = Storage::open(&path, &created).unwrap();
        assert_eq!(s.params(), &created);
        let head = s.head().unwrap();
        assert_eq!(head, created.genesis().header);
        commit_two(&s);
        head.hash()
    };
    // Reopened with the parameters another configuration would choose: the recorded ones rule,
    // and the chain (its genesis) is the same.
    let other = ChainParams::with_defaults(CHAIN);
    assert_ne!(other, created);
    let s = Storage::open(&path, &other).unwrap();
    assert_eq!(s.params(), &created);
    assert_eq!(s.block_by_height(0).unwrap().unwrap().hash(), genesis);
    assert_eq!(s.head().unwrap().height, 2);

    // In memory, the passed parameters are the new chain's.
    let m = Storage::in_memory_with(&created).unwrap();
    assert_eq!(m.params(), &created);
    assert_eq!(Storage::in_memory(CHAIN).unwrap().params(), &params());
}

#[test]
fn genesis_differs_with_params() {
    let a = Storage::in_memory_with(&ChainParams::new(CHAIN, 1_000_000, 64)).unwrap();
    let b = Storage::in_memory_with(&ChainParams::new(CHAIN, 2_000_000, 64)).unwrap();
    let (ga, gb) = (a.head().unwrap(), b.head().unwrap());
    assert_eq!(ga.height, 0);
    assert_ne!(ga.hash(), gb.hash());
    // So the same transactions make a different block 1 on each: a block of one chain is never
    // next on the other.
    let (b1, r1) = make_block(&ga, vec![call_tx(&kp(1), 0)], &writes1());
    a.commit_block(&b1, &r1, &writes1()).unwrap();
    assert!(matches!(
        b.commit_block(&b1, &r1, &writes1()),
        Err(StorageError::ParentMismatch { .. })
    ));
}

#[test]
fn schema_v1_data_dir_is_refused_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("accumen.redb");
    {
        // What a version-1 file holds: schema 1, chain id and head, no chain parameters.
        let s = Storage::open(&path, &params()).unwrap();
        s.write_meta_raw(tables::META_SCHEMA_VERSION, &encode(&1u32));
        s.remove_meta_raw(tables::META_CHAIN_PARAMS);
    }
    match Storage::open(&path, &params()) {
        Err(
            e @ StorageError::SchemaMismatch {
                found: 1,
                expected: SCHEMA_VERSION,
            },
        ) => {
            let msg = e.to_string();
            for part in [
                "storage schema version 1 found, this node needs 4",
                "cannot be upgraded in place",
                "accumen version that wrote it",
                "start a new chain",
                "data_dir",
            ] {
                assert!(msg.contains(part), "{part:?} missing from: {msg}");
            }
        }
        other => panic!("expected SchemaMismatch, got {other:?}"),
    }
    // Refusing changed nothing: the file is still version 1.
    assert!(matches!(
        Storage::open(&path, &params()),
        Err(StorageError::SchemaMismatch { found: 1, .. })
    ));
}

/// A data file with `commit_two`'s blocks whose receipts `receipts_to_v2(keep)` moved back to
/// schema 2's table; with what `observe` saw before, and the file's path.
fn v2_file(dir: &tempfile::TempDir, keep: Option<u32>) -> (std::path::PathBuf, String) {
    let path = dir.path().join("accumen.redb");
    let s = Storage::open(&path, &params()).unwrap();
    commit_two(&s);
    let before = observe(&s);
    s.receipts_to_schema_2(keep).unwrap();
    if keep.is_none() {
        assert_eq!(s.schema_version(), 2);
        assert!(!s.has_table(RECEIPTS.name()));
    } else {
        assert_eq!(s.schema_version(), SCHEMA_VERSION);
    }
    assert!(s.has_table(RECEIPTS_BY_ID.name()));
    (path, before)
}

#[test]
fn a_schema_2_data_dir_is_migrated_to_receipts_by_position_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let (path, before) = v2_file(&dir, None);
    {
        let s = Storage::open_existing(&path).unwrap();
        assert_eq!(s.schema_version(), SCHEMA_VERSION, "opening migrated it");
    }
    let s = Storage::open(&path, &params()).unwrap();
    assert_eq!(s.schema_version(), SCHEMA_VERSION);
    assert!(!s.has_table(RECEIPTS_BY_ID.name()), "the old table is gone");
    assert_eq!(
        observe(&s),
        before,
        "every receipt, block and state as before"
    );
    assert_eq!(s.block_receipts(1).unwrap().len(), 2);
    // The chain goes on in the new layout.
    let head = s.head().unwrap();
    let (b3, r3) = make_block(&head, vec![call_tx(&kp(2), 0)], &WriteSet::default());
    s.commit_block(&b3, &r3, &WriteSet::default()).unwrap();
    assert_eq!(s.receipt(&b3.txs[0].tx.id()).unwrap(), Some(r3[0].clone()));
}

#[test]
fn a_migration_cut_short_is_finished_on_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    // What a crash after the first chunk leaves: version 3 recorded, block 1's first receipt
    // moved, the others still keyed by id.
    let (path, before) = v2_file(&dir, Some(1));
    let s = Storage::open(&path, &params()).unwrap();
    assert!(!s.has_table(RECEIPTS_BY_ID.name()));
    assert_eq!(observe(&s), before);
}

#[test]
fn the_migration_moves_receipts_chunk_by_chunk() {
    let s = Storage::in_memory(CHAIN).unwrap();
    commit_two(&s);
    let before = observe(&s);
    s.receipts_to_schema_2(None).unwrap();
    // One receipt per write transaction: three chunks and an empty one that ends it.
    s.migrate_receipts(1).unwrap();
    assert_eq!(s.schema_version(), SCHEMA_VERSION);
    assert!(!s.has_table(RECEIPTS_BY_ID.name()));
    assert_eq!(observe(&s), before);
}

#[test]
fn a_schema_2_receipt_without_a_location_stops_the_migration_as_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("accumen.redb");
    {
        let s = Storage::open(&path, &params()).unwrap();
        commit_two(&s);
        s.receipts_to_schema_2(None).unwrap();
        let txn = s.db.begin_write().unwrap();
        let id = call_tx(&kp(1), 0).tx.id();
        txn.open_table(TX_LOCATIONS).unwrap().remove(&id.0).unwrap();
        txn.commit().unwrap();
    }
    match Storage::open(&path, &params()) {
        Err(StorageError::Corrupt(msg)) => assert!(msg.contains("tx_locations"), "{msg}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn missing_or_damaged_params_are_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("accumen.redb");
    {
        let s = Storage::open(&path, &params()).unwrap();
        s.remove_meta_raw(tables::META_CHAIN_PARAMS);
    }
    match Storage::open(&path, &params()) {
        Err(StorageError::Corrupt(msg)) => assert!(msg.contains("chain_params"), "{msg}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    {
        // Write a damaged value with a fresh file, then reopen.
        std::fs::remove_file(&path).unwrap();
        let s = Storage::open(&path, &params()).unwrap();
        s.write_meta_raw(tables::META_CHAIN_PARAMS, &[0xff]);
    }
    assert!(matches!(
        Storage::open(&path, &params()),
        Err(StorageError::Decode { table: "meta", .. })
    ));
}

#[test]
fn redb_and_io_errors_keep_their_source() {
    let dir = tempfile::tempdir().unwrap();
    // A data file path whose parent is a regular file: creating the directory fails with I/O.
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    match Storage::open(&file.join("accumen.redb"), &params()) {
        Err(e @ StorageError::Io { .. }) => {
            let source = std::error::Error::source(&e).expect("a source");
            assert!(
                source.downcast_ref::<std::io::Error>().is_some(),
                "{source}"
            );
            assert!(e.to_string().contains("not-a-dir"), "{e}");
        }
        other => panic!("expected Io, got {other:?}"),
    }
    // A state read through the VM's view keeps the storage error as its source.
    let s = Storage::in_memory(CHAIN).unwrap();
    s.write_meta_raw(tables::META_HEAD, &[0xff]);
    let e = crate::vm::StateError::new(s.head().unwrap_err());
    let source = std::error::Error::source(&e).expect("a source");
    assert!(source.downcast_ref::<StorageError>().is_some(), "{source}");
}

// Locations written late (`locations`, schema 4).

fn table_locations(s: &Storage) -> u64 {
    let rtx = s.db.begin_read().unwrap();
    rtx.open_table(TX_LOCATIONS).unwrap().len().unwrap()
}

/// Commits a block at the head with a call from each of `senders` (sender `n` at nonce `nonce`);
/// returns each tx's id, location and receipt.
fn commit_calls(s: &Storage, senders: u8, nonce: u64) -> Vec<(Hash, TxLocation, Receipt)> {
    let txs: Vec<SignedTx> = (1..=senders).map(|n| call_tx(&kp(n), nonce)).collect();
    let (b, r) = make_block(&s.head().unwrap(), txs, &WriteSet::default());
    s.commit_block(&b, &r, &WriteSet::default()).unwrap();
    let h = b.header.height;
    b.txs
        .iter()
        .zip(r)
        .enumerate()
        .map(|(i, (t, r))| (t.tx.id(), (h, i as u32), r))
        .collect()
}

fn assert_all_found(s: &Storage, all: &[(Hash, TxLocation, Receipt)]) {
    for (id, at, receipt) in all {
        assert_eq!(
            s.located_receipt(id).unwrap(),
            Some((*at, receipt.clone())),
            "tx {id} at {at:?}"
        );
        assert_eq!(s.tx_location(id).unwrap(), Some(*at));
    }
}

#[test]
fn locations_are_found_before_and_after_they_are_written_and_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("accumen.redb");
    let s = Storage::open(&path, &params()).unwrap();
    let mut all = Vec::new();
    let heights = 2 * locations::RANGES + 5;
    for h in 1..=heights {
        all.extend(commit_calls(&s, 6, h));
        assert_all_found(&s, &all);
        // The table holds exactly the locations due by now, memory the rest.
        let written = all
            .iter()
            .filter(|(id, (bh, _), _)| locations::is_written(*bh, id, h))
            .count();
        assert_eq!(table_locations(&s), written as u64, "height {h}");
        assert_eq!(s.recent().len(), all.len() - written, "height {h}");
        assert!(
            all.len() - written > 0,
            "some are always held at height {h}"
        );
    }
    assert_eq!(s.tx_location(&call_tx(&kp(9), 0).tx.id()).unwrap(), None);
    let held = s.recent().len();
    drop(s);

    // A reopen rebuilds memory from the receipts: the same answers.
    let s = Storage::open(&path, &params()).unwrap();
    assert_eq!(s.recent().len(), held);
    assert_all_found(&s, &all);
    // RANGES more blocks (empty ones too) write every location of the earlier ones.
    for h in 0..locations::RANGES {
        let (b, r) = make_block(&s.head().unwrap(), Vec::new(), &WriteSet::default());
        s.commit_block(&b, &r, &WriteSet::default()).unwrap();
        assert_all_found(&s, &all);
        assert!(s.recent().len() < held || h == 0 || held == 0);
    }
    assert_eq!(s.recent().len(), 0, "memory gives everything back");
    assert_eq!(table_locations(&s), all.len() as u64);
}

/// A call of sender `n` whose id is not written by the commit of `height` (its range is
/// another): it stays in memory for at least one more block.
fn held_call(n: u8, height: u64) -> SignedTx {
    (0..)
        .map(|nonce| call_tx(&kp(n), nonce))
        .find(|t| !locations::is_written(height, &t.tx.id(), height))
        .unwrap()
}

#[test]
fn an_id_held_in_memory_or_written_is_never_stored_twice() {
    let s = Storage::in_memory(CHAIN).unwrap();
    let a = held_call(1, 1);
    // As execution does: including `a` raises its sender's next nonce past it (the table is
    // searched only for transactions below that nonce; see `write_block`).
    let mut w1 = WriteSet::default();
    w1.nonces.insert(a.tx.sender, a.tx.nonce + 1);
    let (b1, r1) = make_block(&s.head().unwrap(), vec![a.clone()], &w1);
    s.commit_block(&b1, &r1, &w1).unwrap();
    let id = a.tx.id();
    assert_eq!(s.recent().get(&id), Some((1, 0)), "held in memory");
    let head = s.head().unwrap();
    let b = call_tx(&kp(2), 0);

    // Again in the next block, after another tx: refused, and nothing of the block is kept.
    let (b2, r2) = make_block(&head, vec![b.clone(), a.clone()], &WriteSet::default());
    assert!(matches!(
        s.commit_block(&b2, &r2, &WriteSet::default()),
        Err(StorageError::DuplicateTx(d)) if d == id
    ));
    // Twice in one block.
    let (b2, r2) = make_block(&head, vec![b.clone(), b.clone()], &WriteSet::default());
    assert!(matches!(
        s.commit_block(&b2, &r2, &WriteSet::default()),
        Err(StorageError::DuplicateTx(d)) if d == b.tx.id()
    ));
    assert_eq!(s.head().unwrap(), head);
    assert_eq!(s.tx_location(&b.tx.id()).unwrap(), None);
    assert_eq!(s.recent().len(), 1);
    assert_eq!(
        s.located_receipt(&id).unwrap(),
        Some(((1, 0), r1[0].clone()))
    );

    // Once written to the table, still refused.
    while s.recent().get(&id).is_some() {
        let (e, r) = make_block(&s.head().unwrap(), Vec::new(), &WriteSet::default());
        s.commit_block(&e, &r, &WriteSet::default()).unwrap();
    }
    let head = s.head().unwrap();
    let (again, r) = make_block(&head, vec![a], &WriteSet::default());
    assert!(matches!(
        s.commit_block(&again, &r, &WriteSet::default()),
        Err(StorageError::DuplicateTx(d)) if d == id
    ));
    assert_eq!(s.head().unwrap(), head);
    assert_eq!(s.tx_location(&id).unwrap(), Some((1, 0)));
}

#[test]
fn a_failed_commit_leaves_no_location_in_memory_and_writes_none() {
    let s = Storage::in_memory(CHAIN).unwrap();
    let mut all = Vec::new();
    for h in 1..=3 {
        all.extend(commit_calls(&s, 8, h));
    }
    let (held, written) = (s.recent().len(), table_locations(&s));
    let head = s.head().unwrap();
    let txs: Vec<SignedTx> = (1..=8).map(|n| call_tx(&kp(n), 4)).collect();
    let (b, r) = make_block(&head, txs, &WriteSet::default());
    s.set_fail_before_commit(true);
    assert!(matches!(
        s.commit_block(&b, &r, &WriteSet::default()),
        Err(StorageError::Injected)
    ));
    s.set_fail_before_commit(false);
    assert_eq!(
        s.recent().len(),
        held,
        "the failed block's ids are gone again"
    );
    assert_eq!(table_locations(&s), written);
    for t in &b.txs {
        assert_eq!(s.tx_location(&t.tx.id()).unwrap(), None);
    }
    assert_all_found(&s, &all);
    // The same block then commits.
    s.commit_block(&b, &r, &WriteSet::default()).unwrap();
    assert_eq!(s.tx_location(&b.txs[7].tx.id()).unwrap(), Some((4, 7)));
}

#[test]
fn a_schema_3_file_is_recorded_as_4_and_its_locations_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("accumen.redb");
    let mut all = Vec::new();
    {
        let s = Storage::open(&path, &params()).unwrap();
        for h in 1..=locations::RANGES + 3 {
            all.extend(commit_calls(&s, 4, h));
        }
        // What schema 3 left: every location in the table.
        s.write_all_locations().unwrap();
        s.write_meta_raw(tables::META_SCHEMA_VERSION, &encode(&3u32));
        assert_eq!(table_locations(&s), all.len() as u64);
    }
    let s = Storage::open(&path, &params()).unwrap();
    assert_eq!(s.schema_version(), SCHEMA_VERSION);
    assert_all_found(&s, &all);
    // Writing a location the table has already (at the same place) is no error.
    for h in 0..locations::RANGES + 2 {
        all.extend(commit_calls(&s, 4, locations::RANGES + 4 + h));
        assert_all_found(&s, &all);
    }
    assert_eq!(
        table_locations(&s) + s.recent().len() as u64,
        all.len() as u64
    );
}
