//! The mempool journal's own redb file (`data_dir/journal.redb`): pending transactions that
//! were acknowledged and not yet known to be settled, so a restart re-admits them.
//!
//! Role: the journal used to live in the chain's database, so every admission waited for redb's
//! single writer while a block committed, and every block commit removed its transactions'
//! journal rows (issue 10). Here it is a separate `Database`: journal writes and block commits
//! never wait for each other, and block commits never touch journal rows.
//!
//! Layout and invariants:
//! - One table, arrival sequence (`u64`) -> the canonical encoding of the `SignedTx`. Keys are
//!   handed out in increasing order by the mempool, so an admission appends at the B-tree's right
//!   edge (few pages copied per commit) and the lazy removals of committed transactions, which
//!   arrive roughly in arrival order, cluster at its left edge.
//! - An in-memory index id -> sequence, loaded on open, changed as a write applies its operations
//!   and changed back if the write does not commit, so a removal by id costs one lookup and a
//!   failed write leaves the index as the file is.
//! - One write (`write`) is one redb transaction with immediate durability: once it returns `Ok`,
//!   every put in it survives a crash (the mempool acknowledges only after that). Operations are
//!   applied in the order given, so a put followed by a removal of the same id (admitted, then
//!   evicted by a later batch of the same group) leaves nothing.
//! - Removals are allowed to be late or lost (a crash between a block commit and the removal of
//!   its transactions): restore re-admits every row against committed state, which refuses a
//!   committed transaction (its nonce is used) and the mempool then removes it. So the file may
//!   hold committed transactions; `check` counts them instead of calling them damage.
//! - The file records the chain id; opening a journal of another chain is refused.
//! - I/O errors on the journal file mark the `StorageHealth` it is opened with: the node passes
//!   the chain store's, so a failed journal disk is handled like a failed chain disk (admission
//!   refused, `/health` unhealthy, exit 74 so the node is restarted, which repairs both files),
//!   as when the journal lived in the chain database; and the journal refuses writes once the
//!   chain store has failed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use redb::backends::InMemoryBackend;
use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, TableError,
};

use super::health::StorageHealth;
use super::{Ctx, Storage, StorageError};
use crate::types::{FastMap, Hash, SignedTx, decode_trusted, encode, shrink_sparse};

/// Arrival sequence -> `encode(SignedTx)`.
const PENDING: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("pending");
/// `"chain_id"` -> the chain id as UTF-8 bytes; `"version"` -> `JOURNAL_VERSION` (u32 LE).
const JOURNAL_META: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("journal_meta");
/// Layout version of this file; a file with another version is refused on open.
const JOURNAL_VERSION: u32 = 1;

/// The file name under `data_dir`.
pub const JOURNAL_FILE: &str = "journal.redb";

/// Below this many rows the in-memory index is never shrunk (`types::shrink_sparse`); an index
/// that held a 100,000-transaction backlog kept 5.4 MiB of empty buckets after it drained
/// (heaptrack), at this floor an empty one keeps about 80 KiB.
const INDEX_SHRINK_FLOOR: usize = 1024;

/// redb's page cache for the journal: it holds at most the pending set (`mempool.max_bytes`).
const CACHE_BYTES: usize = 32 * 1024 * 1024;

/// Sequences at most this far apart are deleted by one scan (`delete_rows`).
const RUN_GAP: u64 = 8;

/// Deletes the rows at `seqs` (absent ones are ignored). Committed transactions leave in runs
/// of nearly consecutive sequences (blocks take senders' oldest transactions, fairly, so
/// roughly in arrival order): each run of sequences at most `RUN_GAP` apart is deleted by one
/// cursor scan (`retain_in`), which removes a leaf's rows together, instead of one root-to-leaf
/// descent and a returned copy of the value per row (those removals were a third of the
/// journal's CPU at the peak). A scan visits at most `RUN_GAP` rows per row it deletes, so a
/// scattered set costs no more than deleting its rows one by one; a run of one is a plain
/// `remove`.
fn delete_rows(
    t: &mut redb::Table<'_, u64, &[u8]>,
    mut seqs: Vec<u64>,
) -> Result<(), StorageError> {
    seqs.sort_unstable();
    seqs.dedup();
    let mut rest = seqs.as_slice();
    while let Some(&first) = rest.first() {
        let len = 1 + rest
            .windows(2)
            .take_while(|w| w[1] - w[0] <= RUN_GAP)
            .count();
        let (run, tail) = rest.split_at(len);
        rest = tail;
        match run {
            [_] => {
                t.remove(first).ctx("writing journal")?;
            }
            [.., last] => {
                t.retain_in(first..=*last, |seq, _| run.binary_search(&seq).is_err())
                    .ctx("writing journal")?;
            }
            [] => {}
        }
    }
    Ok(())
}

/// One journal change, applied in order within a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JournalOp {
    /// Journal a transaction: its arrival sequence, id and canonical encoding.
    Put { seq: u64, id: Hash, bytes: Vec<u8> },
    /// Forget a transaction; an id not journaled is ignored.
    Remove(Hash),
}

/// What `JournalStore::check` found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct JournalCheck {
    /// Rows in the file.
    pub rows: u64,
    /// Rows whose transaction is already committed (a lazy removal not yet written).
    pub committed: u64,
    /// Rows that do not decode, or that repeat a transaction: `(sequence, what)`.
    pub problems: Vec<(u64, String)>,
}

/// The index changes of one `write`, undone when it is dropped before the write committed (an
/// error, or a panic: the lock's map then still matches the file).
struct IndexUndo<'a> {
    index: &'a mut FastMap<Hash, u64>,
    /// Each changed id with its value before the change, in order.
    undo: Vec<(Hash, Option<u64>)>,
    committed: bool,
}

/// Sets `id`'s sequence in `index` (`None`: removes it); its value before.
fn set_seq(index: &mut FastMap<Hash, u64>, id: Hash, seq: Option<u64>) -> Option<u64> {
    match seq {
        Some(s) => index.insert(id, s),
        None => index.remove(&id),
    }
}

impl IndexUndo<'_> {
    /// Sets `id`'s sequence (`None`: removes it), remembering the value before; returns it.
    fn set(&mut self, id: Hash, seq: Option<u64>) -> Option<u64> {
        let old = set_seq(self.index, id, seq);
        if old != seq {
            self.undo.push((id, old));
        }
        old
    }
}

impl Drop for IndexUndo<'_> {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        for (id, old) in self.undo.drain(..).rev() {
            set_seq(self.index, id, old);
        }
    }
}

/// The journal database; see the module comment.
pub struct JournalStore {
    db: Database,
    path: Option<PathBuf>,
    health: Arc<StorageHealth>,
    /// Id -> sequence of every row; the lock also serializes writes. Changed during a write and
    /// restored if the write does not commit (`IndexUndo`).
    index: Mutex<FastMap<Hash, u64>>,
}

impl std::fmt::Debug for JournalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournalStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl JournalStore {
    /// Opens (creating if missing) the journal file at `path` for `chain_id`; I/O errors on it
    /// mark `health` failed (see the module comment).
    pub fn open(
        path: &Path,
        chain_id: &str,
        health: Arc<StorageHealth>,
    ) -> Result<Self, StorageError> {
        let db = Storage::open_watched(path, true, CACHE_BYTES, &health)?;
        Self::init(db, Some(path.to_path_buf()), health, chain_id)
    }

    /// A journal in memory (tests, and `storage: memory` nodes with `mempool.persist`).
    pub fn in_memory(chain_id: &str) -> Result<Self, StorageError> {
        let db = Database::builder()
            .create_with_backend(InMemoryBackend::new())
            .ctx("creating in-memory journal")?;
        Self::init(db, None, Arc::default(), chain_id)
    }

    /// A journal on `backend` (tests: a backend that fails on demand).
    #[cfg(test)]
    pub(crate) fn with_backend(
        backend: impl redb::StorageBackend,
        chain_id: &str,
    ) -> Result<Self, StorageError> {
        let db = Database::builder()
            .create_with_backend(backend)
            .ctx("creating journal")?;
        Self::init(db, None, Arc::default(), chain_id)
    }

    /// The index's rows, sorted (tests).
    #[cfg(test)]
    pub(crate) fn index_rows(&self) -> Vec<(Hash, u64)> {
        let mut rows: Vec<(Hash, u64)> = self.index().iter().map(|(h, s)| (*h, *s)).collect();
        rows.sort();
        rows
    }

    fn init(
        db: Database,
        path: Option<PathBuf>,
        health: Arc<StorageHealth>,
        chain_id: &str,
    ) -> Result<Self, StorageError> {
        // Read first: opening an existing journal (also `accumen db check`) writes nothing.
        let found: Option<(Vec<u8>, Option<u32>)> = {
            let rtx = db.begin_read().ctx("beginning journal read")?;
            match rtx.open_table(JOURNAL_META) {
                Ok(meta) => {
                    let chain = meta
                        .get("chain_id")
                        .ctx("reading journal_meta")?
                        .map(|g| g.value().to_vec());
                    let version = meta
                        .get("version")
                        .ctx("reading journal_meta")?
                        .and_then(|g| <[u8; 4]>::try_from(g.value()).ok())
                        .map(u32::from_le_bytes);
                    chain.map(|c| (c, version))
                }
                Err(TableError::TableDoesNotExist(_)) => None,
                Err(e) => return Err(e).ctx("opening journal_meta"),
            }
        };
        match found {
            None => {
                let txn = db.begin_write().ctx("beginning journal write")?;
                {
                    let mut meta = txn.open_table(JOURNAL_META).ctx("creating journal_meta")?;
                    meta.insert("chain_id", chain_id.as_bytes())
                        .ctx("writing journal_meta")?;
                    meta.insert("version", JOURNAL_VERSION.to_le_bytes().as_slice())
                        .ctx("writing journal_meta")?;
                    txn.open_table(PENDING).ctx("creating journal pending")?;
                }
                txn.commit().ctx("committing journal_meta")?;
            }
            Some((found, version)) => {
                if found != chain_id.as_bytes() {
                    return Err(StorageError::ChainMismatch {
                        found: String::from_utf8_lossy(&found).into_owned(),
                        expected: chain_id.to_owned(),
                    });
                }
                if version != Some(JOURNAL_VERSION) {
                    return Err(StorageError::Corrupt(format!(
                        "mempool journal layout version {version:?}, this node needs \
                         {JOURNAL_VERSION}: move {} away (its pending transactions are lost) or \
                         run the version that wrote it",
                        path.as_deref()
                            .map_or("the journal".into(), |p| p.display().to_string())
                    )));
                }
            }
        }
        let store = JournalStore {
            db,
            path,
            health,
            index: Mutex::new(FastMap::default()),
        };
        let mut index = FastMap::default();
        for (seq, tx) in store.load()? {
            index.insert(tx.tx.id(), seq);
        }
        *store.index() = index;
        Ok(store)
    }

    fn index(&self) -> std::sync::MutexGuard<'_, FastMap<Hash, u64>> {
        // A write that does not commit restores the map, even when it panics (`IndexUndo`), so
        // a poisoned lock still holds a map that matches the file.
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The file, if on disk.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The journal's health: failed for good after its first I/O error.
    pub fn health(&self) -> Arc<StorageHealth> {
        self.health.clone()
    }

    /// Rows in the journal.
    pub fn len(&self) -> usize {
        self.index().len()
    }

    /// True when the journal holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies `ops` in order in one durable transaction, all or nothing.
    pub fn write(&self, ops: &[JournalOp]) -> Result<(), StorageError> {
        if ops.is_empty() {
            return Ok(());
        }
        if let Some(reason) = self.health.failure() {
            return Err(StorageError::FailedEarlier(reason.to_owned()));
        }
        let mut index = self.index();
        // The index is changed as the operations are applied (one map operation each: the
        // map is as large as the backlog, and each lookup of it misses the CPU caches), and
        // changed back by the guard unless the transaction commits.
        let mut index = IndexUndo {
            index: &mut index,
            undo: Vec::with_capacity(ops.len()),
            committed: false,
        };
        // Rows to delete, deleted after the puts (`delete_rows`). The same as deleting each in
        // its place: sequences are unique and never reused, so no put of this write lands on a
        // row deleted here, except a row put and then removed in this same write, which must
        // go, and does.
        let mut doomed: Vec<u64> = Vec::new();
        let txn = self.db.begin_write().ctx("beginning journal write")?;
        {
            let mut t = txn.open_table(PENDING).ctx("opening journal pending")?;
            for op in ops {
                match op {
                    JournalOp::Put { seq, id, bytes } => {
                        t.insert(*seq, bytes.as_slice()).ctx("writing journal")?;
                        // The same id journaled again (it was removed and re-admitted) under a
                        // new sequence: the old row goes.
                        if let Some(old) = index.set(*id, Some(*seq)).filter(|o| o != seq) {
                            doomed.push(old);
                        }
                    }
                    JournalOp::Remove(id) => {
                        if let Some(seq) = index.set(*id, None) {
                            doomed.push(seq);
                        }
                    }
                }
            }
            delete_rows(&mut t, doomed)?;
        }
        txn.commit().ctx("committing journal")?;
        index.committed = true;
        shrink_sparse(index.index, INDEX_SHRINK_FLOOR);
        Ok(())
    }

    /// Every row in arrival order.
    pub fn load(&self) -> Result<Vec<(u64, SignedTx)>, StorageError> {
        let rtx = self.db.begin_read().ctx("beginning journal read")?;
        let t = rtx.open_table(PENDING).ctx("opening journal pending")?;
        let mut out = Vec::with_capacity(t.len().ctx("reading journal")? as usize);
        for entry in t.iter().ctx("reading journal")? {
            let (k, v) = entry.ctx("reading journal")?;
            let tx: SignedTx =
                decode_trusted(v.value()).map_err(|source| StorageError::Decode {
                    table: "journal",
                    key: k.value().to_string(),
                    source,
                })?;
            out.push((k.value(), tx));
        }
        Ok(out)
    }

    /// Moves transactions journaled in the chain database by an older version
    /// (`mempool_journal` / `mempool_order`) into this file, once: they are appended in the
    /// order the old restore used (known arrival sequence first, then sender and nonce) after
    /// every row here, skipping ids already here (a move cut short by a crash and repeated),
    /// and only then cleared from the chain database. Returns how many were moved.
    pub fn migrate_from(&self, storage: &Storage) -> Result<usize, StorageError> {
        let mut old = storage.journal_all_ordered()?;
        if old.is_empty() {
            return Ok(0);
        }
        old.sort_by_key(|(seq, t)| (seq.unwrap_or(u64::MAX), t.tx.sender, t.tx.nonce));
        let mut next = self.next_seq()?;
        let ops: Vec<JournalOp> = {
            let index = self.index();
            old.iter()
                .map(|(_, t)| (t.tx.id(), t))
                .filter(|(id, _)| !index.contains_key(id))
                .map(|(id, t)| {
                    let seq = next;
                    next += 1;
                    JournalOp::Put {
                        seq,
                        id,
                        bytes: encode(t),
                    }
                })
                .collect()
        };
        let moved = ops.len();
        self.write(&ops)?;
        // Durable here first: a crash before the clear below repeats the move, which skips
        // what is already here.
        let ids: Vec<Hash> = old.iter().map(|(_, t)| t.tx.id()).collect();
        storage.journal_remove(&ids)?;
        tracing::info!(
            moved,
            "moved the mempool journal out of the chain database into its own file"
        );
        Ok(moved)
    }

    /// One past the largest sequence stored (0 for an empty journal).
    pub fn next_seq(&self) -> Result<u64, StorageError> {
        let rtx = self.db.begin_read().ctx("beginning journal read")?;
        let t = rtx.open_table(PENDING).ctx("opening journal pending")?;
        Ok(t.last()
            .ctx("reading journal")?
            .map_or(0, |(k, _)| k.value().saturating_add(1)))
    }

    /// `accumen db check` for the journal: every row decodes and holds a transaction not held
    /// by another row; rows already committed in `storage` are counted, not reported (lazy
    /// removal, see the module comment).
    pub fn check(&self, storage: &Storage) -> Result<JournalCheck, StorageError> {
        let rtx = self.db.begin_read().ctx("beginning journal read")?;
        let t = match rtx.open_table(PENDING) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => {
                return Err(StorageError::Corrupt(
                    "the journal has no pending table".into(),
                ));
            }
            Err(e) => return Err(e).ctx("opening journal pending"),
        };
        let mut out = JournalCheck::default();
        let mut seen: HashMap<Hash, u64> = HashMap::new();
        for entry in t.iter().ctx("reading journal")? {
            let (k, v) = entry.ctx("reading journal")?;
            let seq = k.value();
            out.rows += 1;
            match decode_trusted::<SignedTx>(v.value()) {
                Err(e) => out.problems.push((seq, format!("does not decode: {e}"))),
                Ok(tx) => {
                    let id = tx.tx.id();
                    if let Some(first) = seen.insert(id, seq) {
                        out.problems
                            .push((seq, format!("repeats transaction {id} of row {first}")));
                    }
                    if storage.tx_location(&id)?.is_some() {
                        out.committed += 1;
                    }
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use super::*;
    use crate::testkit::{self, CHAIN};
    use crate::types::Keypair;

    fn tx(seed: u8, nonce: u64) -> SignedTx {
        let kp = Keypair::from_seed([seed; 32]);
        kp.sign(testkit::body(
            CHAIN,
            kp.public(),
            nonce,
            testkit::call(crate::types::Address([7; 32]), "increment", &[]),
            1_000,
        ))
    }

    fn put(seq: u64, t: &SignedTx) -> JournalOp {
        JournalOp::Put {
            seq,
            id: t.tx.id(),
            bytes: encode(t),
        }
    }

    fn ids(j: &JournalStore) -> Vec<(u64, Hash)> {
        j.load()
            .unwrap()
            .into_iter()
            .map(|(s, t)| (s, t.tx.id()))
            .collect()
    }

    /// Writes of puts and removals (runs, scattered ones, re-puts of a removed id under a new
    /// sequence, removals of what the same write put, unknown ids) leave exactly the rows that
    /// applying each op in its place would: a model applies them one by one.
    #[test]
    fn grouped_row_deletions_equal_deleting_each_in_its_place() {
        use proptest::prelude::*;
        use proptest::test_runner::{Config, TestRunner};
        let txs: Vec<SignedTx> = (0..40).map(|i| tx(i as u8 + 1, 0)).collect();
        // An op: (kind, tx index); kind 0..=2 put (with the next sequence), 3..=5 remove.
        let ops = prop::collection::vec(prop::collection::vec((0u8..6, 0usize..40), 1..60), 1..8);
        TestRunner::new(Config::with_cases(64))
            .run(&ops, |writes| {
                let j = JournalStore::in_memory(CHAIN).unwrap();
                let mut model: BTreeMap<u64, Hash> = BTreeMap::new();
                let mut at: HashMap<Hash, u64> = HashMap::new();
                let mut next = 0u64;
                for write in writes {
                    let mut batch = Vec::new();
                    for (kind, i) in write {
                        let t = &txs[i];
                        let id = t.tx.id();
                        if kind <= 2 {
                            if let Some(old) = at.insert(id, next) {
                                model.remove(&old);
                            }
                            model.insert(next, id);
                            batch.push(put(next, t));
                            // Sometimes skip sequences, so runs have gaps of every size.
                            next += 1 + u64::from(kind);
                        } else {
                            if let Some(old) = at.remove(&id) {
                                model.remove(&old);
                            }
                            batch.push(JournalOp::Remove(id));
                        }
                    }
                    j.write(&batch).unwrap();
                    let want: Vec<(u64, Hash)> = model.iter().map(|(s, id)| (*s, *id)).collect();
                    prop_assert_eq!(ids(&j), want);
                    prop_assert_eq!(j.len(), model.len());
                }
                Ok(())
            })
            .unwrap();
        // Long runs and a scattered tail, removed in one write, in no particular order.
        let j = JournalStore::in_memory(CHAIN).unwrap();
        let many: Vec<SignedTx> = (0..300u64).map(|n| tx(1, n)).collect();
        let puts: Vec<JournalOp> = many
            .iter()
            .enumerate()
            .map(|(i, t)| put(i as u64 * 3, t))
            .collect();
        j.write(&puts).unwrap();
        // 10..150 whole, every other one of 150..250 (the scan keeps the rows between), 205,
        // and 250..300 given backwards.
        let gone: Vec<usize> = (250..300)
            .rev()
            .chain(10..150)
            .chain((150..250).step_by(2))
            .chain([205])
            .collect();
        let removals: Vec<JournalOp> = gone
            .iter()
            .map(|i| JournalOp::Remove(many[*i].tx.id()))
            .collect();
        j.write(&removals).unwrap();
        let left: Vec<(u64, Hash)> = (0..300)
            .filter(|i| !gone.contains(i))
            .map(|i| (i as u64 * 3, many[i].tx.id()))
            .collect();
        assert_eq!(ids(&j), left);
    }

    #[test]
    fn ops_apply_in_order_and_removal_is_by_id() {
        let j = JournalStore::in_memory(CHAIN).unwrap();
        let (a, b, c) = (tx(1, 0), tx(2, 0), tx(3, 0));
        j.write(&[put(0, &a), put(1, &b)]).unwrap();
        // Put then removal of the same id in one write leaves nothing of it.
        j.write(&[put(2, &c), JournalOp::Remove(c.tx.id())])
            .unwrap();
        assert_eq!(ids(&j), vec![(0, a.tx.id()), (1, b.tx.id())]);
        // Unknown ids are ignored; removal by id finds the row's sequence.
        j.write(&[
            JournalOp::Remove(Hash([9; 32])),
            JournalOp::Remove(a.tx.id()),
        ])
        .unwrap();
        assert_eq!(ids(&j), vec![(1, b.tx.id())]);
        // Re-journaled under a new sequence: one row, the new one.
        j.write(&[put(5, &b)]).unwrap();
        assert_eq!(ids(&j), vec![(5, b.tx.id())]);
        assert_eq!(j.len(), 1);
        assert_eq!(j.next_seq().unwrap(), 6);
        j.write(&[]).unwrap();
    }

    #[test]
    fn a_drained_index_gives_its_room_back_and_still_finds_what_is_left() {
        let j = JournalStore::in_memory(CHAIN).unwrap();
        let txs: Vec<SignedTx> = (0..20_000u64).map(|n| tx(1, n)).collect();
        let puts: Vec<JournalOp> = txs
            .iter()
            .enumerate()
            .map(|(i, t)| put(i as u64, t))
            .collect();
        j.write(&puts).unwrap();
        let full = j.index().capacity();
        assert!(full >= 20_000);
        // All but the last row leave: the index shrinks, and the one left is still removable
        // by id (the index still names its sequence).
        let removes: Vec<JournalOp> = txs[..19_999]
            .iter()
            .map(|t| JournalOp::Remove(t.tx.id()))
            .collect();
        j.write(&removes).unwrap();
        let shrunk = j.index().capacity();
        assert!(shrunk <= 4 * INDEX_SHRINK_FLOOR, "{shrunk} of {full}");
        assert_eq!(ids(&j), vec![(19_999, txs[19_999].tx.id())]);
        j.write(&[JournalOp::Remove(txs[19_999].tx.id())]).unwrap();
        assert!(j.is_empty() && ids(&j).is_empty());
    }

    #[test]
    fn the_file_keeps_rows_and_refuses_another_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JOURNAL_FILE);
        let (a, b) = (tx(1, 0), tx(1, 1));
        {
            let j = JournalStore::open(&path, CHAIN, Arc::default()).unwrap();
            j.write(&[put(3, &a), put(4, &b)]).unwrap();
            j.write(&[JournalOp::Remove(a.tx.id())]).unwrap();
        }
        let j = JournalStore::open(&path, CHAIN, Arc::default()).unwrap();
        assert_eq!(ids(&j), vec![(4, b.tx.id())]);
        // The index came back with the file: removal by id works after a reopen.
        j.write(&[JournalOp::Remove(b.tx.id())]).unwrap();
        assert!(j.is_empty() && j.load().unwrap().is_empty());
        drop(j);
        let e = JournalStore::open(&path, "other-chain", Arc::default()).unwrap_err();
        assert!(matches!(e, StorageError::ChainMismatch { .. }), "{e}");
    }

    #[test]
    fn old_journal_rows_move_once_in_the_old_restore_order() {
        let storage = Storage::in_memory(CHAIN).unwrap();
        let (a0, a1, b0) = (tx(1, 0), tx(1, 1), tx(2, 0));
        // An older version's rows: two with arrival sequences (b0 first), one without.
        storage.journal_write(&[(8, &b0), (9, &a0)], &[]).unwrap();
        storage.journal_put(std::slice::from_ref(&a1)).unwrap();
        let j = JournalStore::in_memory(CHAIN).unwrap();
        let existing = tx(3, 0);
        j.write(&[put(0, &existing)]).unwrap();
        assert_eq!(j.migrate_from(&storage).unwrap(), 3);
        assert_eq!(
            ids(&j),
            vec![
                (0, existing.tx.id()),
                (1, b0.tx.id()),
                (2, a0.tx.id()),
                (3, a1.tx.id())
            ]
        );
        assert!(storage.journal_all().unwrap().is_empty(), "cleared");
        assert_eq!(j.migrate_from(&storage).unwrap(), 0, "only once");

        // A move cut short after the journal write (the chain database not yet cleared) is
        // repeated without duplicating anything.
        storage.journal_write(&[(1, &b0)], &[]).unwrap();
        assert_eq!(j.migrate_from(&storage).unwrap(), 0);
        assert_eq!(j.len(), 4);
        assert!(storage.journal_all().unwrap().is_empty());
    }

    #[test]
    fn check_counts_committed_rows_and_reports_repeats() {
        let storage = Storage::in_memory(CHAIN).unwrap();
        let j = JournalStore::in_memory(CHAIN).unwrap();
        let a = tx(1, 0);
        j.write(&[put(0, &a)]).unwrap();
        let r = j.check(&storage).unwrap();
        assert_eq!((r.rows, r.committed), (1, 0));
        assert!(r.problems.is_empty());
        // A repeated row can only come from damage (write() replaces by id).
        {
            let txn = j.db.begin_write().unwrap();
            txn.open_table(PENDING)
                .unwrap()
                .insert(7, encode(&a).as_slice())
                .unwrap();
            txn.open_table(PENDING)
                .unwrap()
                .insert(8, [1u8, 2, 3].as_slice())
                .unwrap();
            txn.commit().unwrap();
        }
        let r = j.check(&storage).unwrap();
        assert_eq!(r.rows, 3);
        assert_eq!(r.problems.len(), 2, "{:?}", r.problems);
    }
}
