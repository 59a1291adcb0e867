//! A failed store: a backend that runs out of space after a byte budget proves that the I/O error
//! is detected (health marked, with the OS error), classified apart from logical errors, refused
//! quickly afterwards, and that reopening the file recovers every committed block.

use std::io;
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use redb::backends::FileBackend;
use redb::{BackendError, StorageBackend};

use super::*;
use crate::types::{Action, Bytes, Keypair, Tx};

const CHAIN: &str = "accumen-test";

fn params() -> ChainParams {
    ChainParams::with_defaults(CHAIN)
}
/// Linux's ENOSPC: what a full disk answers.
const ENOSPC: i32 = 28;

/// The file backend, with a budget of bytes it may still write; past it every write fails with
/// ENOSPC, like a disk that has filled up.
#[derive(Debug)]
struct FullDisk {
    inner: FileBackend,
    budget: Arc<AtomicU64>,
}

impl StorageBackend for FullDisk {
    fn len(&self) -> Result<u64, io::Error> {
        self.inner.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.inner.read(offset, out)
    }
    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> Result<(), io::Error> {
        self.inner.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        let n = data.len() as u64;
        let took = self
            .budget
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| b.checked_sub(n));
        match took {
            Ok(_) => self.inner.write(offset, data),
            Err(_) => Err(io::Error::from_raw_os_error(ENOSPC)),
        }
    }
    fn close(&self) -> Result<(), io::Error> {
        self.inner.close()
    }
    fn try_lock_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_range(s, e)
    }
    fn try_lock_shared_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_shared_range(s, e)
    }
    fn lock_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_range(s, e)
    }
    fn lock_shared_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_shared_range(s, e)
    }
    fn unlock_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<(), BackendError> {
        self.inner.unlock_range(s, e)
    }
    fn query_lock_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.query_lock_range(s, e)
    }
}

/// A block of `n` calls with `arg_len` bytes of arguments each, on top of `parent`.
fn block(parent: &BlockHeader, n: usize, arg_len: usize) -> (Block, Vec<Receipt>, WriteSet) {
    let key = Keypair::from_seed([9; 32]);
    let mut writes = WriteSet::default();
    let txs: Vec<SignedTx> = (0..n)
        .map(|i| {
            let nonce = parent.height * 1_000 + i as u64;
            writes.nonces.insert(key.public(), nonce + 1);
            key.sign(Tx {
                chain_id: CHAIN.into(),
                sender: key.public(),
                nonce,
                gas_limit: 1_000,
                priority: 0,
                expiry: None,
                action: Action::Call {
                    contract: Address([0xa1; 32]),
                    entry: "inc".into(),
                    args: Bytes(vec![i as u8; arg_len]),
                },
            })
        })
        .collect();
    let (b, receipts) = super::tests::make_block(parent, txs, &writes);
    (b, receipts, writes)
}

fn open_full_disk(path: &Path, budget: Arc<AtomicU64>) -> Storage {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .unwrap();
    let inner = FileBackend::new(file).unwrap();
    Storage::with_backend(FullDisk { inner, budget }, CHAIN).unwrap()
}

#[test]
fn disk_full_fails_the_store_and_a_reopen_recovers_every_committed_block() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("accumen.redb");
    let budget = Arc::new(AtomicU64::new(u64::MAX));
    let s = open_full_disk(&path, budget.clone());
    let health = s.health();

    // Two good blocks.
    let mut committed = Vec::new();
    let mut parent = s.head().unwrap();
    for _ in 0..2 {
        let (b, r, w) = block(&parent, 20, 100);
        s.commit_block(&b, &r, &w).unwrap();
        parent = b.header.clone();
        committed.push(b);
    }

    // A logical error is not a failure: the store goes on.
    let (stale, r, w) = block(&params().genesis().header, 1, 10);
    let e = s.commit_block(&stale, &r, &w).unwrap_err();
    assert!(matches!(e, StorageError::NotNextBlock { .. }), "{e}");
    assert!(!e.is_failure());
    assert!(!health.is_failed());
    assert_eq!(health.failure(), None);

    // The disk fills up: the next block (about 1 MB) cannot be written.
    budget.store(64 * 1024, Ordering::SeqCst);
    let (big, r, w) = block(&parent, 16, 64 * 1024);
    let e = s.commit_block(&big, &r, &w).unwrap_err();
    assert!(
        e.is_failure(),
        "an I/O error must be classified as a failure: {e:?}"
    );
    // The redb error is kept as the typed source, not flattened to text.
    assert!(
        std::error::Error::source(&e)
            .and_then(|s| s.downcast_ref::<redb::Error>())
            .is_some(),
        "{e:?}"
    );
    assert!(health.is_failed());
    let reason = health.failure().unwrap().to_string();
    assert!(
        reason.contains("writing test backend") && reason.contains("os error 28"),
        "{reason}"
    );

    // From now on every write is refused at once, as a failure, naming the first error.
    let (next, r, w) = block(&parent, 1, 10);
    let e = s.commit_block(&next, &r, &w).unwrap_err();
    assert!(e.is_failure(), "{e:?}");
    assert!(e.to_string().contains("os error 28"), "{e}");
    let e = s.journal_put(&next.txs).unwrap_err();
    assert!(e.is_failure(), "{e:?}");
    // Reads either still answer from what redb holds or fail as a failure; never a logical error.
    if let Err(e) = s.head() {
        assert!(e.is_failure(), "{e:?}");
    }
    // The first reason is kept even if more failures follow.
    assert!(!health.mark_failed("later".into()));
    assert_eq!(health.failure(), Some(reason.as_str()));
    drop(s);

    // Space is back: reopening repairs the file to its last commit, which is intact, and the
    // chain goes on from there.
    let s = Storage::open(&path, &params()).unwrap();
    assert!(!s.health().is_failed());
    assert_eq!(s.head().unwrap(), committed[1].header);
    for b in &committed {
        assert_eq!(
            s.block_by_height(b.header.height).unwrap().as_ref(),
            Some(b)
        );
        for t in &b.txs {
            assert!(s.receipt(&t.tx.id()).unwrap().is_some());
        }
    }
    assert_eq!(s.block_by_height(3).unwrap(), None);
    assert_eq!(s.tx_location(&big.txs[0].tx.id()).unwrap(), None);
    let (b3, r, w) = block(&committed[1].header, 16, 64 * 1024);
    s.commit_block(&b3, &r, &w).unwrap();
    assert_eq!(s.head().unwrap(), b3.header);
}

#[test]
fn a_failed_journal_write_fails_the_store_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("accumen.redb");
    let budget = Arc::new(AtomicU64::new(u64::MAX));
    let s = open_full_disk(&path, budget.clone());
    let (b, _, _) = block(&s.head().unwrap(), 16, 64 * 1024);
    budget.store(0, Ordering::SeqCst);
    let e = s.journal_put(&b.txs).unwrap_err();
    assert!(e.is_failure(), "{e:?}");
    assert!(s.health().is_failed());
    // Nothing of the failed write is visible after a reopen.
    drop(s);
    let s = Storage::open(&path, &params()).unwrap();
    assert!(s.journal_all().unwrap().is_empty());
    assert_eq!(s.head().unwrap().height, 0);
}

#[test]
fn in_memory_and_healthy_stores_report_no_failure() {
    let s = Storage::in_memory(CHAIN).unwrap();
    assert!(!s.health().is_failed());
    let (b, r, w) = block(&s.head().unwrap(), 2, 10);
    s.commit_block(&b, &r, &w).unwrap();
    assert_eq!(s.health().failure(), None);
    // Logical errors never mark the store.
    let e = s.commit_block(&b, &r, &w).unwrap_err();
    assert!(!e.is_failure(), "{e:?}");
    assert!(!s.health().is_failed());
}

#[test]
fn a_failed_outbox_write_fails_the_store_and_a_reopen_shows_none_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("accumen.redb");
    let budget = Arc::new(AtomicU64::new(u64::MAX));
    let s = open_full_disk(&path, budget.clone());
    let (b, r, w) = block(&s.head().unwrap(), 1, 10);
    s.commit_block(&b, &r, &w).unwrap();
    let before = s.bridge_stats().unwrap();

    // A batch whose envelope cannot be written: the disk is full.
    budget.store(0, Ordering::SeqCst);
    let ts = s.next_signature_timestamp(1_000).unwrap();
    let batch = SignedBatch {
        first: 1,
        last: 1,
        envelope: vec![7; 64 * 1024],
        tx_hash: Hash([1; 32]),
        signature_timestamp: ts,
    };
    let e = s.stage_batch(&batch).unwrap_err();
    assert!(e.is_failure(), "{e:?}");
    assert!(s.health().is_failed());
    drop(s);

    // Reopened: nothing staged, the timestamp not consumed, and the same batch stages now.
    let s = Storage::open(&path, &params()).unwrap();
    assert_eq!(s.bridge_stats().unwrap(), before);
    assert_eq!(s.outbox_len().unwrap(), 0);
    assert_eq!(s.next_signature_timestamp(1_000).unwrap(), ts);
    s.stage_batch(&batch).unwrap();
    assert_eq!(s.bridge_stats().unwrap().last_staged_height, 1);
}

#[test]
fn a_journal_write_that_does_not_commit_leaves_the_state_as_the_file_is() {
    use crate::storage::journal::{JournalOp, JournalStore};
    let dir = tempfile::tempdir().unwrap();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.path().join("journal.redb"))
        .unwrap();
    let budget = Arc::new(AtomicU64::new(u64::MAX));
    let disk = FullDisk {
        inner: FileBackend::new(file).unwrap(),
        budget: budget.clone(),
    };
    let j = JournalStore::with_backend(disk, CHAIN).unwrap();
    let (b, _, _) = block(&Storage::in_memory(CHAIN).unwrap().head().unwrap(), 3, 10);
    let put = |seq: u64, t: &SignedTx| JournalOp::Put {
        seq,
        id: t.tx.id(),
        bytes: encode(t),
    };
    j.write(&[put(0, &b.txs[0]), put(1, &b.txs[1])]).unwrap();
    let before = j.state_rows();
    assert_eq!(j.len(), 2);

    // A write that removes an entry, puts two and removes one of them, then fails to commit:
    // the state is as before it (it changes only after a commit).
    budget.store(0, Ordering::SeqCst);
    let failed = j.write(&[
        JournalOp::Remove(0),
        put(2, &b.txs[2]),
        put(3, &b.txs[1]),
        JournalOp::Remove(2),
    ]);
    assert!(failed.is_err());
    assert_eq!(j.state_rows(), before);
    assert_eq!(j.len(), 2);
}
