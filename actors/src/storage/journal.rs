//! The mempool journal's own redb file (`data_dir/journal.redb`): pending transactions that
//! were acknowledged and not yet known to be settled, so a restart re-admits them.
//!
//! Role: the journal used to live in the chain's database, so every admission waited for redb's
//! single writer while a block committed, and every block commit removed its transactions'
//! journal rows (issue 10). Here it is a separate `Database`: journal writes and block commits
//! never wait for each other, and block commits never touch journal rows.
//!
//! Layout (version 2) and invariants:
//! - `rows`: one row per write, under a row number handed out in increasing order, holding
//!   every transaction that write journaled, each framed as its id, its arrival sequence and
//!   its canonical encoding (`frame`). A write of a thousand transactions is one B-tree insert
//!   of one large value and one delete once they have all left, where a row per transaction
//!   (version 1) cost an insert and a delete per transaction: with the journal on, the node
//!   committed about a tenth fewer transactions per second than with it off.
//! - `dropped`: `(row, sequence)` of each entry whose transaction was removed while other
//!   entries of its row are still live, so a restart does not bring it back. Only removals
//!   that restore would not refuse by itself need one (`JournalOp::Remove`: evicted, expired,
//!   dropped, replaced); a transaction a committed block included (`JournalOp::Settle`) needs
//!   none, since re-admitting it against committed state refuses it (its nonce is used). A
//!   row's marks go with the row.
//! - In memory (`State`, loaded on open): the live entries by id (row, sequence, framed
//!   size), and per row its live entries and bytes. An entry is live iff the index names it;
//!   a row whose live count reaches zero is deleted, marks and all.
//! - The file holds at most four times the bytes of its live entries, plus their marks: a row
//!   whose live bytes fall below a quarter of its bytes is compacted by the write that makes
//!   it so (its live entries move, framed as they are, into that write's row, with their own
//!   sequences, and the old row goes). A row is compacted only after three quarters of its
//!   bytes left it, so the bytes moved are at most a third of the bytes removed before them:
//!   O(1) amortized per byte journaled, whatever mix of long- and short-lived transactions a
//!   client sends.
//! - One write (`write`) is one redb transaction with immediate durability: once it returns
//!   `Ok`, every put in it survives a crash (the mempool acknowledges only after that).
//!   Operations are applied in the order given, so a put followed by a removal of the same id
//!   (admitted, then evicted by a later batch of the same group) leaves nothing, and a put of
//!   an id already journaled marks its old entry dropped. The in-memory state is changed as the
//!   operations apply and changed back if the write does not commit (`StateUndo`), so a failed
//!   write leaves it as the file is.
//! - Removals are allowed to be late or lost (a crash between a block commit and the removal of
//!   its transactions): restore re-admits every live entry against committed state, which
//!   refuses a committed transaction (its nonce is used) and the mempool then removes it. So
//!   the file may hold committed transactions; `check` counts them instead of calling them
//!   damage.
//! - Sequences are unique within a row (each write puts a sequence once); restore orders the
//!   entries by sequence, which is arrival order.
//! - The file records the chain id and its layout version; opening a journal of another chain
//!   is refused, and a version 1 file is converted in place on open (one write: its rows
//!   become one row).
//! - I/O errors on the journal file mark the `StorageHealth` it is opened with: the node passes
//!   the chain store's, so a failed journal disk is handled like a failed chain disk (admission
//!   refused, `/health` unhealthy, exit 74 so the node is restarted, which repairs both files),
//!   as when the journal lived in the chain database; and the journal refuses writes once the
//!   chain store has failed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use redb::backends::InMemoryBackend;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableError};

use super::health::StorageHealth;
use super::{Ctx, Storage, StorageError};
use crate::types::{FastMap, Hash, SignedTx, decode_trusted, encode, shrink_sparse};

/// Row number -> the framed entries of one write (`frame`).
const ROWS: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("rows");
/// `(row, sequence)` of a removed entry of a live row.
const DROPPED: TableDefinition<'static, (u64, u64), ()> = TableDefinition::new("dropped");
/// Version 1: arrival sequence -> `encode(SignedTx)`, one row per transaction.
const PENDING_V1: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("pending");
/// `"chain_id"` -> the chain id as UTF-8 bytes; `"version"` -> `JOURNAL_VERSION` (u32 LE).
const JOURNAL_META: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("journal_meta");
/// Layout version of this file; version 1 is converted on open, others are refused.
const JOURNAL_VERSION: u32 = 2;

/// The file name under `data_dir`.
pub const JOURNAL_FILE: &str = "journal.redb";

/// Below this many entries the in-memory index is never shrunk (`types::shrink_sparse`); an
/// index that held a 100,000-transaction backlog kept 5.4 MiB of empty buckets after it
/// drained (heaptrack), at this floor an empty one keeps about 80 KiB.
const INDEX_SHRINK_FLOOR: usize = 1024;

/// redb's page cache for the journal: it holds at most the pending set (`mempool.max_bytes`).
const CACHE_BYTES: usize = 32 * 1024 * 1024;

/// An entry's frame before the transaction: id (32 bytes), sequence (u64 LE), length (u32 LE).
const FRAME_HEADER: usize = 32 + 8 + 4;

/// A row is compacted once its live bytes are below `1 / COMPACT_RATIO` of its bytes.
const COMPACT_RATIO: u64 = 4;

/// Appends one entry's frame to `out`.
fn frame(out: &mut Vec<u8>, id: &Hash, seq: u64, bytes: &[u8]) -> Result<(), StorageError> {
    let len = u32::try_from(bytes.len()).map_err(|_| {
        StorageError::Corrupt(format!(
            "transaction {id} is {} bytes, too large to journal",
            bytes.len()
        ))
    })?;
    out.extend_from_slice(&id.0);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

/// One framed entry of a row, borrowed from it.
#[derive(Debug, Clone, Copy)]
struct Entry<'a> {
    id: Hash,
    seq: u64,
    /// The transaction's canonical encoding.
    tx: &'a [u8],
    /// The whole frame, header included (what a compaction copies).
    framed: &'a [u8],
}

/// The entries of a row, in order; a frame cut short is an error naming where.
fn entries(row: &[u8]) -> impl Iterator<Item = Result<Entry<'_>, String>> {
    let mut rest = row;
    let mut at = 0usize;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let parsed = (|| {
            let header = rest
                .get(..FRAME_HEADER)
                .ok_or_else(|| format!("a frame header cut short at byte {at}"))?;
            let (id, tail) = header.split_at(32);
            let (seq, len) = tail.split_at(8);
            let id = Hash(<[u8; 32]>::try_from(id).map_err(|e| e.to_string())?);
            let seq = u64::from_le_bytes(<[u8; 8]>::try_from(seq).map_err(|e| e.to_string())?);
            let len = u32::from_le_bytes(<[u8; 4]>::try_from(len).map_err(|e| e.to_string())?);
            let end = FRAME_HEADER
                .checked_add(len as usize)
                .filter(|end| *end <= rest.len())
                .ok_or_else(|| format!("a transaction cut short at byte {at}"))?;
            let framed = &rest[..end];
            Ok(Entry {
                id,
                seq,
                tx: &framed[FRAME_HEADER..],
                framed,
            })
        })();
        match parsed {
            Ok(e) => {
                rest = &rest[e.framed.len()..];
                at += e.framed.len();
                Some(Ok(e))
            }
            Err(msg) => {
                rest = &[];
                Some(Err(msg))
            }
        }
    })
}

/// One journal change, applied in order within a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JournalOp {
    /// Journal a transaction: its arrival sequence, id and canonical encoding.
    Put { seq: u64, id: Hash, bytes: Vec<u8> },
    /// Forget a transaction that must not come back on restart (evicted, expired, dropped,
    /// or refused on restore); an id not journaled is ignored.
    Remove(Hash),
    /// Forget a transaction a committed block included: restore would refuse it anyway, so
    /// nothing is written for it unless its row empties. An id not journaled is ignored.
    Settle(Hash),
}

/// What `JournalStore::check` found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct JournalCheck {
    /// Transactions journaled (live entries).
    pub rows: u64,
    /// Of those, transactions already committed (a lazy removal not yet written).
    pub committed: u64,
    /// Entries that do not decode, do not match their id, or repeat a transaction, and rows
    /// that do not parse: `(sequence, or row number for a row, what)`.
    pub problems: Vec<(u64, String)>,
}

/// Where a live entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Loc {
    row: u64,
    seq: u64,
    /// Its frame's size.
    bytes: u64,
}

/// A row's bookkeeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RowMeta {
    /// Live entries.
    live: u64,
    /// Their frames' sizes.
    live_bytes: u64,
    /// The row's size.
    bytes: u64,
    /// Marks in `dropped` for it.
    marks: u64,
}

/// What the journal knows of its file; see the module comment.
#[derive(Debug, Default)]
struct State {
    index: FastMap<Hash, Loc>,
    rows: FastMap<u64, RowMeta>,
    /// The next row number.
    next_row: u64,
    /// One past the largest sequence in the file (dead entries included).
    next_seq: u64,
}

/// One in-memory change, with the value before it.
enum Undo {
    Index(Hash, Option<Loc>),
    Row(u64, Option<RowMeta>),
}

/// The state changes of one `write`, undone when it is dropped before the write committed (an
/// error, or a panic: the lock's state then still matches the file).
struct StateUndo<'a> {
    state: &'a mut State,
    undo: Vec<Undo>,
    committed: bool,
}

fn set_loc(index: &mut FastMap<Hash, Loc>, id: Hash, loc: Option<Loc>) -> Option<Loc> {
    match loc {
        Some(l) => index.insert(id, l),
        None => index.remove(&id),
    }
}

fn set_row(rows: &mut FastMap<u64, RowMeta>, row: u64, meta: Option<RowMeta>) -> Option<RowMeta> {
    match meta {
        Some(m) => rows.insert(row, m),
        None => rows.remove(&row),
    }
}

impl StateUndo<'_> {
    /// Sets `id`'s entry (`None`: removes it); its entry before.
    fn set_loc(&mut self, id: Hash, loc: Option<Loc>) -> Option<Loc> {
        let old = set_loc(&mut self.state.index, id, loc);
        if old != loc {
            self.undo.push(Undo::Index(id, old));
        }
        old
    }

    fn set_row(&mut self, row: u64, meta: Option<RowMeta>) {
        let old = set_row(&mut self.state.rows, row, meta);
        if old != meta {
            self.undo.push(Undo::Row(row, old));
        }
    }

    /// The entry at `loc`, of an earlier write's row, left (its id was removed or put
    /// again): its row counts one live entry less, and is `touched`. False if the row is not
    /// known (nothing to count).
    fn kill(&mut self, loc: Loc, touched: &mut Vec<u64>) -> bool {
        let Some(mut m) = self.state.rows.get(&loc.row).copied() else {
            return false;
        };
        m.live = m.live.saturating_sub(1);
        m.live_bytes = m.live_bytes.saturating_sub(loc.bytes);
        self.set_row(loc.row, Some(m));
        touched.push(loc.row);
        true
    }
}

impl Drop for StateUndo<'_> {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        for u in self.undo.drain(..).rev() {
            match u {
                Undo::Index(id, old) => {
                    set_loc(&mut self.state.index, id, old);
                }
                Undo::Row(row, old) => {
                    set_row(&mut self.state.rows, row, old);
                }
            }
        }
    }
}

/// `JournalStore::state_rows` (tests).
#[cfg(test)]
pub(crate) type StateRows = (Vec<(Hash, u64, u64)>, Vec<(u64, [u64; 4])>);

/// The journal database; see the module comment.
pub struct JournalStore {
    db: Database,
    path: Option<PathBuf>,
    health: Arc<StorageHealth>,
    /// The live entries and rows; the lock also serializes writes. Changed during a write and
    /// restored if the write does not commit (`StateUndo`).
    state: Mutex<State>,
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

    /// The in-memory state, sorted (tests): `(id, row, sequence)` of every live entry, and
    /// `(row, live, live bytes, bytes, marks)` of every row.
    #[cfg(test)]
    pub(crate) fn state_rows(&self) -> StateRows {
        let s = self.state();
        let mut index: Vec<(Hash, u64, u64)> =
            s.index.iter().map(|(h, l)| (*h, l.row, l.seq)).collect();
        index.sort();
        let mut rows: Vec<(u64, [u64; 4])> = s
            .rows
            .iter()
            .map(|(r, m)| (*r, [m.live, m.live_bytes, m.bytes, m.marks]))
            .collect();
        rows.sort();
        (index, rows)
    }

    fn init(
        db: Database,
        path: Option<PathBuf>,
        health: Arc<StorageHealth>,
        chain_id: &str,
    ) -> Result<Self, StorageError> {
        // Read first: opening an existing journal (also `accumen db check`) writes nothing,
        // except to convert a version 1 file.
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
                    txn.open_table(ROWS).ctx("creating journal rows")?;
                    txn.open_table(DROPPED).ctx("creating journal dropped")?;
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
                match version {
                    Some(JOURNAL_VERSION) => {}
                    Some(1) => convert_v1(&db)?,
                    _ => {
                        return Err(StorageError::Corrupt(format!(
                            "mempool journal layout version {version:?}, this node needs \
                             {JOURNAL_VERSION}: move {} away (its pending transactions are \
                             lost) or run the version that wrote it",
                            path.as_deref()
                                .map_or("the journal".into(), |p| p.display().to_string())
                        )));
                    }
                }
            }
        }
        let state = read_state(&db)?;
        Ok(JournalStore {
            db,
            path,
            health,
            state: Mutex::new(state),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A write that does not commit restores the state, even when it panics (`StateUndo`),
        // so a poisoned lock still holds a state that matches the file.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The file, if on disk.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The journal's health: failed for good after its first I/O error.
    pub fn health(&self) -> Arc<StorageHealth> {
        self.health.clone()
    }

    /// Transactions journaled (live entries).
    pub fn len(&self) -> usize {
        self.state().index.len()
    }

    /// True when the journal holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Rows in the file (tests and figures: each write adds at most one).
    pub fn row_count(&self) -> usize {
        self.state().rows.len()
    }

    /// Applies `ops` in order in one durable transaction, all or nothing. The sequences of
    /// the puts must increase within a write (the mempool hands them out in order).
    pub fn write(&self, ops: &[JournalOp]) -> Result<(), StorageError> {
        if ops.is_empty() {
            return Ok(());
        }
        if let Some(reason) = self.health.failure() {
            return Err(StorageError::FailedEarlier(reason.to_owned()));
        }
        let mut last_put: Option<u64> = None;
        for op in ops {
            if let JournalOp::Put { seq, id, .. } = op {
                if last_put.is_some_and(|l| l >= *seq) {
                    return Err(StorageError::Corrupt(format!(
                        "journal write puts {id} at sequence {seq}, not above the write's \
                         previous put"
                    )));
                }
                last_put = Some(*seq);
            }
        }
        let mut state = self.state();
        let row = state.next_row;
        // The state is changed as the operations apply (one map operation for each: the index
        // is as large as the backlog, and each lookup of it misses the CPU caches), and
        // changed back by the guard unless the transaction commits.
        let mut st = StateUndo {
            state: &mut state,
            undo: Vec::with_capacity(ops.len()),
            committed: false,
        };
        // This write's puts, in order; those no longer live at the end are left out.
        let mut fresh: Vec<(Hash, u64, &[u8])> = Vec::new();
        // Rows that lost entries, and the marks their removals want.
        let mut touched: Vec<u64> = Vec::new();
        let mut marks: Vec<(u64, u64)> = Vec::new();
        for op in ops {
            let (old, mark) = match op {
                JournalOp::Put { seq, id, bytes } => {
                    let loc = Loc {
                        row,
                        seq: *seq,
                        bytes: (FRAME_HEADER + bytes.len()) as u64,
                    };
                    fresh.push((*id, *seq, bytes.as_slice()));
                    // The same id journaled again (it was removed and re-admitted): its old
                    // entry must not come back.
                    (st.set_loc(*id, Some(loc)), true)
                }
                JournalOp::Remove(id) => (st.set_loc(*id, None), true),
                JournalOp::Settle(id) => (st.set_loc(*id, None), false),
            };
            if let Some(old) = old
                && old.row != row
                && st.kill(old, &mut touched)
                && mark
            {
                marks.push((old.row, old.seq));
            }
        }
        let txn = self.db.begin_write().ctx("beginning journal write")?;
        let wrote_row = {
            let mut rows = txn.open_table(ROWS).ctx("opening journal rows")?;
            let mut dropped = txn.open_table(DROPPED).ctx("opening journal dropped")?;
            touched.sort_unstable();
            touched.dedup();
            // Emptied rows go; rows now mostly dead move their live entries into this
            // write's row and go too.
            let mut moved: Vec<u8> = Vec::new();
            let mut moved_live = 0u64;
            for &r in &touched {
                let Some(m) = st.state.rows.get(&r).copied() else {
                    continue;
                };
                if m.live > 0 && m.live_bytes.saturating_mul(COMPACT_RATIO) >= m.bytes {
                    continue;
                }
                if m.live > 0 {
                    let value = rows
                        .get(r)
                        .ctx("reading journal")?
                        .map(|g| g.value().to_vec())
                        .ok_or_else(|| {
                            StorageError::Corrupt(format!("journal row {r} is missing"))
                        })?;
                    for e in entries(&value) {
                        let e = e.map_err(|msg| {
                            StorageError::Corrupt(format!("journal row {r}: {msg}"))
                        })?;
                        let live = st
                            .state
                            .index
                            .get(&e.id)
                            .is_some_and(|l| l.row == r && l.seq == e.seq);
                        if live {
                            moved.extend_from_slice(e.framed);
                            moved_live += 1;
                            let bytes = e.framed.len() as u64;
                            st.set_loc(
                                e.id,
                                Some(Loc {
                                    row,
                                    seq: e.seq,
                                    bytes,
                                }),
                            );
                        }
                    }
                }
                rows.remove(r).ctx("writing journal")?;
                if m.marks > 0 {
                    dropped
                        .retain_in((r, 0)..=(r, u64::MAX), |_, _| false)
                        .ctx("writing journal")?;
                }
                st.set_row(r, None);
            }
            // Marks for rows that stay.
            for (r, seq) in marks {
                if let Some(mut m) = st.state.rows.get(&r).copied() {
                    dropped.insert((r, seq), ()).ctx("writing journal")?;
                    m.marks += 1;
                    st.set_row(r, Some(m));
                }
            }
            // This write's row: its puts still live, and what compaction moved.
            let mut value: Vec<u8> = Vec::new();
            let mut live = moved_live;
            for (id, seq, bytes) in &fresh {
                if st
                    .state
                    .index
                    .get(id)
                    .is_some_and(|l| l.row == row && l.seq == *seq)
                {
                    frame(&mut value, id, *seq, bytes)?;
                    live += 1;
                }
            }
            value.extend_from_slice(&moved);
            if value.is_empty() {
                false
            } else {
                rows.insert(row, value.as_slice()).ctx("writing journal")?;
                let bytes = value.len() as u64;
                st.set_row(
                    row,
                    Some(RowMeta {
                        live,
                        live_bytes: bytes,
                        bytes,
                        marks: 0,
                    }),
                );
                true
            }
        };
        txn.commit().ctx("committing journal")?;
        st.committed = true;
        if wrote_row {
            st.state.next_row = row + 1;
        }
        if let Some(top) = last_put {
            st.state.next_seq = st.state.next_seq.max(top.saturating_add(1));
        }
        shrink_sparse(&mut st.state.index, INDEX_SHRINK_FLOOR);
        Ok(())
    }

    /// Every live entry's transaction, in arrival order.
    pub fn load(&self) -> Result<Vec<(u64, SignedTx)>, StorageError> {
        let state = self.state();
        let rtx = self.db.begin_read().ctx("beginning journal read")?;
        let t = rtx.open_table(ROWS).ctx("opening journal rows")?;
        let mut out = Vec::with_capacity(state.index.len());
        for row in t.iter().ctx("reading journal")? {
            let (k, v) = row.ctx("reading journal")?;
            let r = k.value();
            for e in entries(v.value()) {
                let e =
                    e.map_err(|msg| StorageError::Corrupt(format!("journal row {r}: {msg}")))?;
                let live = state
                    .index
                    .get(&e.id)
                    .is_some_and(|l| l.row == r && l.seq == e.seq);
                if !live {
                    continue;
                }
                let tx: SignedTx = decode_trusted(e.tx).map_err(|source| StorageError::Decode {
                    table: "journal",
                    key: e.seq.to_string(),
                    source,
                })?;
                out.push((e.seq, tx));
            }
        }
        out.sort_by_key(|(seq, _)| *seq);
        Ok(out)
    }

    /// Moves transactions journaled in the chain database by an older version
    /// (`mempool_journal` / `mempool_order`) into this file, once: they are appended in the
    /// order the old restore used (known arrival sequence first, then sender and nonce) after
    /// every entry here, skipping ids already here (a move cut short by a crash and repeated),
    /// and only then cleared from the chain database. Returns how many were moved.
    pub fn migrate_from(&self, storage: &Storage) -> Result<usize, StorageError> {
        let mut old = storage.journal_all_ordered()?;
        if old.is_empty() {
            return Ok(0);
        }
        old.sort_by_key(|(seq, t)| (seq.unwrap_or(u64::MAX), t.tx.sender, t.tx.nonce));
        let mut next = self.next_seq();
        let ops: Vec<JournalOp> = {
            let state = self.state();
            old.iter()
                .map(|(_, t)| (t.tx.id(), t))
                .filter(|(id, _)| !state.index.contains_key(id))
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

    /// One past the largest sequence in the file, or put since it was opened (0 for an empty
    /// journal).
    pub fn next_seq(&self) -> u64 {
        self.state().next_seq
    }

    /// `accumen db check` for the journal: every row parses, and every live entry decodes,
    /// matches its id and holds a transaction no other live entry holds; entries already
    /// committed in `storage` are counted, not reported (lazy removal, see the module
    /// comment).
    pub fn check(&self, storage: &Storage) -> Result<JournalCheck, StorageError> {
        let rtx = self.db.begin_read().ctx("beginning journal read")?;
        let missing =
            |what: &str| StorageError::Corrupt(format!("the journal has no {what} table"));
        let rows = match rtx.open_table(ROWS) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Err(missing("rows")),
            Err(e) => return Err(e).ctx("opening journal rows"),
        };
        let marked: std::collections::HashSet<(u64, u64)> = match rtx.open_table(DROPPED) {
            Ok(t) => {
                let mut set = std::collections::HashSet::new();
                for m in t.iter().ctx("reading journal")? {
                    set.insert(m.ctx("reading journal")?.0.value());
                }
                set
            }
            Err(TableError::TableDoesNotExist(_)) => return Err(missing("dropped")),
            Err(e) => return Err(e).ctx("opening journal dropped"),
        };
        let mut out = JournalCheck::default();
        let mut seen: HashMap<Hash, u64> = HashMap::new();
        for row in rows.iter().ctx("reading journal")? {
            let (k, v) = row.ctx("reading journal")?;
            let r = k.value();
            for e in entries(v.value()) {
                let e = match e {
                    Ok(e) => e,
                    Err(msg) => {
                        out.problems
                            .push((r, format!("row {r} does not parse: {msg}")));
                        continue;
                    }
                };
                if marked.contains(&(r, e.seq)) {
                    continue;
                }
                out.rows += 1;
                match decode_trusted::<SignedTx>(e.tx) {
                    Err(err) => out
                        .problems
                        .push((e.seq, format!("does not decode: {err}"))),
                    Ok(tx) => {
                        let id = tx.tx.id();
                        if id != e.id {
                            out.problems.push((
                                e.seq,
                                format!("holds transaction {id} under the id {}", e.id),
                            ));
                        }
                        if let Some(first) = seen.insert(id, e.seq) {
                            out.problems.push((
                                e.seq,
                                format!("repeats transaction {id} of sequence {first}"),
                            ));
                        }
                        if storage.tx_location(&id)?.is_some() {
                            out.committed += 1;
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

/// The in-memory state of the file in `db`: every entry not marked dropped is live, except
/// that of two entries of one id (damage: `write` never leaves two) the later one is.
fn read_state(db: &Database) -> Result<State, StorageError> {
    let rtx = db.begin_read().ctx("beginning journal read")?;
    let rows = rtx.open_table(ROWS).ctx("opening journal rows")?;
    let dropped = rtx.open_table(DROPPED).ctx("opening journal dropped")?;
    let mut marks: FastMap<u64, Vec<u64>> = FastMap::default();
    for m in dropped.iter().ctx("reading journal")? {
        let (r, seq) = m.ctx("reading journal")?.0.value();
        marks.entry(r).or_default().push(seq);
    }
    let mut state = State::default();
    for row in rows.iter().ctx("reading journal")? {
        let (k, v) = row.ctx("reading journal")?;
        let r = k.value();
        let value = v.value();
        let row_marks = marks.get(&r).map_or(&[][..], Vec::as_slice);
        state.next_row = state.next_row.max(r.saturating_add(1));
        state.rows.insert(
            r,
            RowMeta {
                live: 0,
                live_bytes: 0,
                bytes: value.len() as u64,
                marks: row_marks.len() as u64,
            },
        );
        for e in entries(value) {
            let e = e.map_err(|msg| StorageError::Corrupt(format!("journal row {r}: {msg}")))?;
            state.next_seq = state.next_seq.max(e.seq.saturating_add(1));
            if row_marks.contains(&e.seq) {
                continue;
            }
            let loc = Loc {
                row: r,
                seq: e.seq,
                bytes: e.framed.len() as u64,
            };
            let slot = state.index.entry(e.id).or_insert(loc);
            if slot.seq < loc.seq {
                *slot = loc;
            }
        }
    }
    for loc in state.index.values() {
        if let Some(m) = state.rows.get_mut(&loc.row) {
            m.live += 1;
            m.live_bytes += loc.bytes;
        }
    }
    Ok(state)
}

/// Converts a version 1 file (a row per transaction, `pending`) in one write: its
/// transactions become one row, in their sequences, and the version becomes 2. A crash
/// before the commit leaves the version 1 file, converted again on the next open.
fn convert_v1(db: &Database) -> Result<(), StorageError> {
    let txn = db.begin_write().ctx("beginning journal write")?;
    let converted = {
        let mut value = Vec::new();
        let mut n = 0usize;
        match txn.open_table(PENDING_V1) {
            Ok(old) => {
                for row in old.iter().ctx("reading journal")? {
                    let (k, v) = row.ctx("reading journal")?;
                    let tx: SignedTx =
                        decode_trusted(v.value()).map_err(|source| StorageError::Decode {
                            table: "journal",
                            key: k.value().to_string(),
                            source,
                        })?;
                    frame(&mut value, &tx.tx.id(), k.value(), v.value())?;
                    n += 1;
                }
            }
            Err(e) => return Err(e).ctx("opening journal pending"),
        }
        let mut rows = txn.open_table(ROWS).ctx("creating journal rows")?;
        txn.open_table(DROPPED).ctx("creating journal dropped")?;
        if !value.is_empty() {
            rows.insert(0, value.as_slice()).ctx("writing journal")?;
        }
        let mut meta = txn.open_table(JOURNAL_META).ctx("opening journal_meta")?;
        meta.insert("version", JOURNAL_VERSION.to_le_bytes().as_slice())
            .ctx("writing journal_meta")?;
        n
    };
    txn.delete_table(PENDING_V1).ctx("writing journal")?;
    txn.commit().ctx("committing journal")?;
    tracing::info!(
        transactions = converted,
        "converted the mempool journal to layout version {JOURNAL_VERSION}"
    );
    Ok(())
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

    /// Every row's bookkeeping as the file bounds it: live entries, at least a quarter of its
    /// bytes live, and the index's entries counted in their rows.
    fn assert_bounded(j: &JournalStore) {
        let (index, rows) = j.state_rows();
        let mut live = 0;
        for (r, [n, live_bytes, bytes, _]) in &rows {
            assert!(*n >= 1, "row {r} is empty but kept");
            assert!(
                live_bytes * COMPACT_RATIO >= *bytes,
                "row {r}: {live_bytes} of {bytes}"
            );
            live += n;
        }
        assert_eq!(live as usize, index.len());
    }

    /// Writes of puts, removals and settlements (re-puts of a removed id under a new
    /// sequence, removals of what the same write put, unknown ids, rows emptied, compacted or
    /// left sparse) leave exactly the transactions applying each op in its place would, with
    /// every row at least a quarter live; after a reopen the file gives back those, plus
    /// only settled ones whose row was still live.
    #[test]
    fn writes_keep_exactly_the_live_transactions_and_a_reopen_only_adds_settled_ones() {
        use proptest::prelude::*;
        use proptest::test_runner::{Config, TestRunner};
        let txs: Vec<SignedTx> = (0..40).map(|i| tx(i as u8 + 1, 0)).collect();
        // An op: (kind, tx index); kind 0..=2 put (with the next sequence), 3..=4 remove,
        // 5..=6 settle.
        let ops = prop::collection::vec(prop::collection::vec((0u8..7, 0usize..40), 1..60), 1..8);
        TestRunner::new(Config::with_cases(64))
            .run(&ops, |writes| {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join(JOURNAL_FILE);
                let j = JournalStore::open(&path, CHAIN, Arc::default()).unwrap();
                let mut model: BTreeMap<u64, Hash> = BTreeMap::new();
                let mut at: HashMap<Hash, u64> = HashMap::new();
                // Settled entries: they may come back on a reopen (restore refuses them, as
                // committed), whatever happens to their id later.
                let mut settled: std::collections::HashSet<(u64, Hash)> = Default::default();
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
                            // Sometimes skip sequences.
                            next += 1 + u64::from(kind);
                        } else {
                            if let Some(old) = at.remove(&id) {
                                model.remove(&old);
                                if kind >= 5 {
                                    settled.insert((old, id));
                                }
                            }
                            if kind <= 4 {
                                batch.push(JournalOp::Remove(id));
                            } else {
                                batch.push(JournalOp::Settle(id));
                            }
                        }
                    }
                    j.write(&batch).unwrap();
                    let want: Vec<(u64, Hash)> = model.iter().map(|(s, id)| (*s, *id)).collect();
                    prop_assert_eq!(ids(&j), want);
                    prop_assert_eq!(j.len(), model.len());
                    assert_bounded(&j);
                }
                drop(j);
                let j = JournalStore::open(&path, CHAIN, Arc::default()).unwrap();
                let back = ids(&j);
                for (seq, id) in &model {
                    prop_assert!(back.contains(&(*seq, *id)), "{} lost", seq);
                }
                for (seq, id) in &back {
                    prop_assert!(
                        model.get(seq) == Some(id) || settled.contains(&(*seq, *id)),
                        "{} came back",
                        seq
                    );
                }
                assert_bounded(&j);
                Ok(())
            })
            .unwrap();
    }

    /// A write is one row, whatever its size; a row emptied by removals and settlements
    /// leaves the file with its marks, and one left sparse moves its live entries into the
    /// write that made it so.
    #[test]
    fn a_write_is_one_row_and_a_sparse_row_moves_its_live_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JOURNAL_FILE);
        let j = JournalStore::open(&path, CHAIN, Arc::default()).unwrap();
        let many: Vec<SignedTx> = (0..100u64).map(|n| tx(1, n)).collect();
        let puts: Vec<JournalOp> = many
            .iter()
            .enumerate()
            .map(|(i, t)| put(i as u64, t))
            .collect();
        j.write(&puts).unwrap();
        assert_eq!((j.len(), j.row_count()), (100, 1));
        // Ten removed (marked), sixty settled (not): the row is still more than a quarter
        // live, so it stays, with ten marks.
        let mut ops: Vec<JournalOp> = (0..10)
            .map(|i| JournalOp::Remove(many[i].tx.id()))
            .collect();
        ops.extend((10..70).map(|i| JournalOp::Settle(many[i].tx.id())));
        j.write(&ops).unwrap();
        let (_, rows) = j.state_rows();
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].1[0], rows[0].1[3]), (30, 10));
        // Six more settled: 24 of 100 equal entries live, below a quarter. They move, with
        // their sequences, into a new row, and the old row and its marks go.
        let ops: Vec<JournalOp> = (70..76)
            .map(|i| JournalOp::Settle(many[i].tx.id()))
            .collect();
        j.write(&ops).unwrap();
        let (index, rows) = j.state_rows();
        assert_eq!(rows.len(), 1);
        assert_ne!(rows[0].0, 0, "a new row");
        assert_eq!(rows[0].1, [24, rows[0].1[2], rows[0].1[2], 0]);
        assert!(index.iter().all(|(_, r, _)| *r == rows[0].0));
        let want: Vec<(u64, Hash)> = (76..100).map(|i| (i as u64, many[i].tx.id())).collect();
        assert_eq!(ids(&j), want);
        // The marks went with the old row; the file says the same after a reopen, and the
        // settled entries went with it.
        drop(j);
        let j = JournalStore::open(&path, CHAIN, Arc::default()).unwrap();
        assert_eq!(ids(&j), want);
        assert_eq!(j.state_rows().1.len(), 1);
        {
            let rtx = j.db.begin_read().unwrap();
            use redb::ReadableTableMetadata;
            assert_eq!(rtx.open_table(DROPPED).unwrap().len().unwrap(), 0);
        }
        // The rest settle: the journal is empty, in memory and in the file.
        let ops: Vec<JournalOp> = (76..100)
            .map(|i| JournalOp::Settle(many[i].tx.id()))
            .collect();
        j.write(&ops).unwrap();
        assert!(j.is_empty() && j.row_count() == 0);
        drop(j);
        let j = JournalStore::open(&path, CHAIN, Arc::default()).unwrap();
        assert!(j.is_empty() && ids(&j).is_empty());
    }

    /// What a client can make the file hold: one long-lived transaction in each write among
    /// many that settle. Each write's row is compacted once its short-lived entries leave, so
    /// the file stays within a bounded multiple of what is pending, instead of a row per write.
    #[test]
    fn long_lived_transactions_do_not_pin_their_writes_rows() {
        let j = JournalStore::in_memory(CHAIN).unwrap();
        let mut seq = 0u64;
        let mut pinned = Vec::new();
        for w in 0..50u64 {
            let long = tx(200, w);
            let mut ops = vec![put(seq, &long)];
            seq += 1;
            pinned.push((seq - 1, long.tx.id()));
            let short: Vec<SignedTx> = (0..40u64).map(|n| tx((w % 100) as u8 + 1, n)).collect();
            for t in &short {
                ops.push(put(seq, t));
                seq += 1;
            }
            j.write(&ops).unwrap();
            let settle: Vec<JournalOp> =
                short.iter().map(|t| JournalOp::Settle(t.tx.id())).collect();
            j.write(&settle).unwrap();
            assert_bounded(&j);
        }
        assert_eq!(ids(&j), pinned);
        let (_, rows) = j.state_rows();
        let bytes: u64 = rows.iter().map(|(_, m)| m[2]).sum();
        let live: u64 = rows.iter().map(|(_, m)| m[1]).sum();
        // Every write's row was compacted by the write that settled its short-lived
        // entries, so the file holds the long-lived ones alone (not all 2,050).
        assert_eq!(bytes, live);
    }

    /// A put must be above the write's previous put: two puts of one sequence in a write are
    /// refused before anything changes.
    #[test]
    fn puts_out_of_order_are_refused_and_change_nothing() {
        let j = JournalStore::in_memory(CHAIN).unwrap();
        let (a, b) = (tx(1, 0), tx(2, 0));
        j.write(&[put(0, &a)]).unwrap();
        let before = j.state_rows();
        for bad in [[put(3, &b), put(3, &b)], [put(4, &b), put(2, &a)]] {
            let e = j.write(&bad).unwrap_err();
            assert!(matches!(e, StorageError::Corrupt(_)), "{e}");
            assert_eq!(j.state_rows(), before);
        }
        assert_eq!(ids(&j), vec![(0, a.tx.id())]);
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
        // Re-journaled under a new sequence: one entry, the new one.
        j.write(&[put(5, &b)]).unwrap();
        assert_eq!(ids(&j), vec![(5, b.tx.id())]);
        assert_eq!(j.len(), 1);
        assert_eq!(j.next_seq(), 6);
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
        let full = j.state().index.capacity();
        assert!(full >= 20_000);
        // All but the last transaction leave: the index shrinks, and the one left is still
        // removable by id (the index still names its entry).
        let removes: Vec<JournalOp> = txs[..19_999]
            .iter()
            .map(|t| JournalOp::Remove(t.tx.id()))
            .collect();
        j.write(&removes).unwrap();
        let shrunk = j.state().index.capacity();
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
    fn check_counts_committed_entries_and_reports_damage() {
        let storage = Storage::in_memory(CHAIN).unwrap();
        let j = JournalStore::in_memory(CHAIN).unwrap();
        let (a, b) = (tx(1, 0), tx(2, 0));
        j.write(&[put(0, &a), put(1, &b)]).unwrap();
        j.write(&[JournalOp::Remove(b.tx.id())]).unwrap();
        let r = j.check(&storage).unwrap();
        assert_eq!(
            (r.rows, r.committed),
            (1, 0),
            "the removed entry is not counted"
        );
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        // Damage only (`write` never leaves these): a repeated transaction, an entry under
        // another transaction's id, one that does not decode, and a row cut short.
        {
            let txn = j.db.begin_write().unwrap();
            {
                let mut rows = txn.open_table(ROWS).unwrap();
                let mut v = Vec::new();
                frame(&mut v, &a.tx.id(), 7, &encode(&a)).unwrap();
                frame(&mut v, &Hash([5; 32]), 8, &encode(&b)).unwrap();
                frame(&mut v, &Hash([6; 32]), 9, &[1, 2, 3]).unwrap();
                rows.insert(10, v.as_slice()).unwrap();
                rows.insert(11, [0u8; 20].as_slice()).unwrap();
            }
            txn.commit().unwrap();
        }
        let r = j.check(&storage).unwrap();
        assert_eq!(r.rows, 4);
        let what: Vec<&str> = r.problems.iter().map(|(_, w)| w.as_str()).collect();
        assert_eq!(r.problems.len(), 4, "{what:?}");
        assert!(what[0].contains("repeats"), "{what:?}");
        assert!(what[1].contains("under the id"), "{what:?}");
        assert!(what[2].contains("does not decode"), "{what:?}");
        assert!(what[3].contains("does not parse"), "{what:?}");
    }

    /// A version 1 file (a row per transaction) is converted on open, keeping every
    /// transaction with its sequence; the converted file opens as version 2.
    #[test]
    fn a_version_1_file_is_converted_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JOURNAL_FILE);
        let (a, b, c) = (tx(1, 0), tx(2, 0), tx(1, 1));
        {
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut meta = txn.open_table(JOURNAL_META).unwrap();
                meta.insert("chain_id", CHAIN.as_bytes()).unwrap();
                meta.insert("version", 1u32.to_le_bytes().as_slice())
                    .unwrap();
                let mut old = txn.open_table(PENDING_V1).unwrap();
                for (seq, t) in [(4u64, &a), (9, &b), (12, &c)] {
                    old.insert(seq, encode(t).as_slice()).unwrap();
                }
            }
            txn.commit().unwrap();
        }
        let want = vec![(4, a.tx.id()), (9, b.tx.id()), (12, c.tx.id())];
        let j = JournalStore::open(&path, CHAIN, Arc::default()).unwrap();
        assert_eq!(ids(&j), want);
        assert_eq!(j.next_seq(), 13);
        j.write(&[JournalOp::Remove(b.tx.id())]).unwrap();
        drop(j);
        let j = JournalStore::open(&path, CHAIN, Arc::default()).unwrap();
        assert_eq!(ids(&j), vec![want[0], want[2]]);
        let rtx = j.db.begin_read().unwrap();
        let version = rtx
            .open_table(JOURNAL_META)
            .unwrap()
            .get("version")
            .unwrap()
            .map(|g| g.value().to_vec());
        assert_eq!(version, Some(JOURNAL_VERSION.to_le_bytes().to_vec()));
        assert!(matches!(
            rtx.open_table(PENDING_V1),
            Err(TableError::TableDoesNotExist(_))
        ));
    }
}
