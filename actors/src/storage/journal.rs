//! The mempool journal's own redb file (`data_dir/journal.redb`): pending transactions that
//! were acknowledged and not yet known to be settled, so a restart re-admits them.
//!
//! Role: the journal used to live in the chain's database, so every admission waited for redb's
//! single writer while a block committed, and every block commit removed its transactions'
//! journal rows (issue 10). Here it is a separate `Database`: journal writes and block commits
//! never wait for each other, and block commits never touch journal rows.
//!
//! Layout (version 2) and invariants:
//! - `rows`: one row per write, keyed by the arrival sequence of its first transaction,
//!   holding every transaction that write journaled in sequence order, each framed as its id,
//!   its sequence and its canonical encoding (`frame`). A write of a thousand transactions is
//!   one B-tree insert of one large value, and one delete once they have all left, where a row
//!   per transaction (version 1) cost an insert and a delete per transaction. Sequences are the
//!   mempool's (`Pool`'s arrival sequence), handed out in increasing order, and every put is
//!   above every row already in the file, so rows cover disjoint sequence ranges and the row of
//!   a sequence is the last row starting at or below it.
//! - Removals name a sequence, not an id, so the journal keeps no index by id (a map as large
//!   as the backlog, whose lookups missed the CPU caches: two thirds of the journal's CPU):
//!   in memory it keeps, per row, each entry's offset from the row's key and its framed size
//!   (0 once removed), about 8 bytes per entry still in the file.
//! - `dropped`: the sequence of each entry whose transaction was removed while other entries of
//!   its row are still live, so a restart does not bring it back. Only removals that restore
//!   would not refuse by itself need one (`JournalOp::Remove`: evicted, expired, dropped); a
//!   transaction a committed block included (`JournalOp::Settle`) needs none, since
//!   re-admitting it against committed state refuses it (its nonce is used). A row's marks go
//!   with the row.
//! - A row whose live entries reach zero is deleted, marks and all. The file holds at most four
//!   times the bytes of its live entries, plus their marks: a row whose live bytes fall below
//!   a quarter of its bytes is rewritten with its live entries only by the write that makes it
//!   so. A row is rewritten only after three quarters of its bytes left it, so the bytes
//!   rewritten are at most a third of the bytes removed before them: O(1) amortized per byte
//!   journaled, whatever mix of long- and short-lived transactions a client sends.
//! - One write (`write`) is one redb transaction with immediate durability: once it returns
//!   `Ok`, every put in it survives a crash (the mempool acknowledges only after that).
//!   Operations are applied in the order given, so a put followed by a removal of its sequence
//!   (admitted, then evicted by a later batch of the same group) leaves nothing. The in-memory
//!   state changes only once the write has committed, so a failed write leaves it as the file
//!   is.
//! - Removals are allowed to be late or lost (a crash between a block commit and the removal of
//!   its transactions): restore re-admits every live entry against committed state, which
//!   refuses a committed transaction (its nonce is used). Restore then rewrites the journal
//!   (`JournalOp::Clear` and a put of every transaction it re-admitted, under the pool's new
//!   sequences, in one write), so the file may hold committed transactions only between a
//!   crash and the next start; `check` counts them instead of calling them damage.
//! - The file records the chain id and its layout version; opening a journal of another chain
//!   is refused, and a version 1 file is converted in place on open (one write: its rows
//!   become one row).
//! - I/O errors on the journal file mark the `StorageHealth` it is opened with: the node passes
//!   the chain store's, so a failed journal disk is handled like a failed chain disk (admission
//!   refused, `/health` unhealthy, exit 74 so the node is restarted, which repairs both files),
//!   as when the journal lived in the chain database; and the journal refuses writes once the
//!   chain store has failed.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use redb::backends::InMemoryBackend;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableError};

use super::health::StorageHealth;
use super::{Ctx, Storage, StorageError};
use crate::types::{Hash, SignedTx, decode_trusted, encode};

/// First sequence of a row -> the framed entries of one write (`frame`), in sequence order.
const ROWS: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("rows");
/// Sequence of a removed entry of a live row.
const DROPPED: TableDefinition<'static, u64, ()> = TableDefinition::new("dropped");
/// Version 1: arrival sequence -> `encode(SignedTx)`, one row per transaction.
const PENDING_V1: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("pending");
/// `"chain_id"` -> the chain id as UTF-8 bytes; `"version"` -> `JOURNAL_VERSION` (u32 LE).
const JOURNAL_META: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("journal_meta");
/// Layout version of this file; version 1 is converted on open, others are refused.
const JOURNAL_VERSION: u32 = 2;

/// The file name under `data_dir`.
pub const JOURNAL_FILE: &str = "journal.redb";

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
    /// Journal a transaction under its arrival sequence, which must be above every sequence
    /// in the file and every earlier put of the write (since the last `Clear`).
    Put { seq: u64, id: Hash, bytes: Vec<u8> },
    /// Forget the transaction at a sequence; it must not come back on restart (evicted,
    /// expired, dropped). A sequence not journaled is ignored.
    Remove(u64),
    /// Forget the transaction at a sequence that a committed block included: restore would
    /// refuse it anyway, so nothing is written for it unless its row empties. A sequence not
    /// journaled is ignored.
    Settle(u64),
    /// Forget everything journaled before (restore, which then puts what it re-admitted).
    Clear,
}

/// What `JournalStore::check` found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct JournalCheck {
    /// Transactions journaled (live entries).
    pub rows: u64,
    /// Of those, transactions already committed (a lazy removal not yet written).
    pub committed: u64,
    /// Entries that do not decode, do not match their id, or repeat a transaction, and rows
    /// that do not parse: `(sequence, what)`.
    pub problems: Vec<(u64, String)>,
}

/// A row's bookkeeping: its entries and the framed size of each live one.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    /// `(sequence - first, framed size)` of every entry of the file's row, in order; size 0
    /// once removed (a frame is never empty). One per entry in the file, so bounded like the
    /// file (a dense array over the row's range would not be: sequences skipped between puts
    /// would count).
    entries: Vec<(u32, u32)>,
    live: u64,
    live_bytes: u64,
    /// The row's size in the file.
    bytes: u64,
    /// Marks in `dropped` for it.
    marks: u64,
}

impl Row {
    /// The position in `entries` of the entry at `seq`.
    fn find(&self, first: u64, seq: u64) -> Option<usize> {
        let off = u32::try_from(seq.checked_sub(first)?).ok()?;
        self.entries.binary_search_by_key(&off, |e| e.0).ok()
    }

    /// The framed size of the live entry at `seq`, 0 if there is none.
    fn size_of(&self, first: u64, seq: u64) -> u32 {
        self.find(first, seq).map_or(0, |i| self.entries[i].1)
    }

    /// The last sequence the row covers.
    fn last(&self, first: u64) -> u64 {
        first.saturating_add(self.entries.last().map_or(0, |e| u64::from(e.0)))
    }

    /// A row of `found` (`(sequence, framed size)`, in order, starting at `first`), whose
    /// file row is `bytes` long; sequences in `dead` are not live.
    fn of(first: u64, found: &[(u64, u32)], bytes: u64, dead: &[u64]) -> Result<Row, StorageError> {
        let mut row = Row {
            entries: Vec::with_capacity(found.len()),
            live: 0,
            live_bytes: 0,
            bytes,
            marks: 0,
        };
        for &(seq, size) in found {
            let off = u32::try_from(seq - first).map_err(|_| {
                StorageError::Corrupt(format!("journal row {first} spans to sequence {seq}"))
            })?;
            let live = dead.binary_search(&seq).is_err();
            row.entries.push((off, if live { size } else { 0 }));
            if live {
                row.live += 1;
                row.live_bytes += u64::from(size);
            }
        }
        Ok(row)
    }
}

/// What the journal knows of its file: every row by its first sequence.
#[derive(Debug, Default)]
struct State {
    rows: BTreeMap<u64, Row>,
}

impl State {
    /// The row holding a live entry at `seq`: its first sequence, the entry's position in
    /// its `entries`, and the entry's size.
    fn live(&self, seq: u64) -> Option<(u64, usize, u32)> {
        let (first, row) = self.rows.range(..=seq).next_back()?;
        let pos = row.find(*first, seq)?;
        let size = row.entries[pos].1;
        (size > 0).then_some((*first, pos, size))
    }

    /// The last sequence in the file, if any row is.
    fn last_seq(&self) -> Option<u64> {
        self.rows.last_key_value().map(|(first, r)| r.last(*first))
    }
}

/// A row `write` is about to put: its entries in sequence order, each with its frame's size
/// (0 once removed within the same write).
struct NewRow<'a> {
    entries: Vec<(u64, &'a Hash, &'a [u8], u32)>,
}

impl NewRow<'_> {
    fn kill(&mut self, seq: u64) -> bool {
        match self.entries.binary_search_by_key(&seq, |e| e.0) {
            Ok(i) => {
                self.entries[i].3 = 0;
                true
            }
            Err(_) => false,
        }
    }
}

/// The journal database; see the module comment.
pub struct JournalStore {
    db: Database,
    path: Option<PathBuf>,
    health: Arc<StorageHealth>,
    /// The rows; the lock also serializes writes. Changed only after a write commits.
    state: Mutex<State>,
}

impl std::fmt::Debug for JournalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournalStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// A frame's size as the state keeps it; a transaction too large for a `u32` frame is refused.
fn frame_size(seq: u64, bytes: &[u8]) -> Result<u32, StorageError> {
    u32::try_from(FRAME_HEADER + bytes.len()).map_err(|_| {
        StorageError::Corrupt(format!(
            "the transaction at sequence {seq} is {} bytes, too large to journal",
            bytes.len()
        ))
    })
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

    /// The in-memory state (tests): per row, its first sequence, live entries, live bytes,
    /// bytes, marks and live sequences.
    #[cfg(test)]
    pub(crate) fn state_rows(&self) -> Vec<(u64, [u64; 4], Vec<u64>)> {
        self.state()
            .rows
            .iter()
            .map(|(first, r)| {
                let live = r
                    .entries
                    .iter()
                    .filter(|e| e.1 > 0)
                    .map(|e| first + u64::from(e.0))
                    .collect();
                (*first, [r.live, r.live_bytes, r.bytes, r.marks], live)
            })
            .collect()
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
        // The state changes only after a commit, in steps that cannot fail halfway, so a
        // poisoned lock still holds a state that matches the file.
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
        self.state().rows.values().map(|r| r.live as usize).sum()
    }

    /// True when the journal holds nothing.
    pub fn is_empty(&self) -> bool {
        self.state().rows.is_empty()
    }

    /// Rows in the file (each write adds at most one).
    pub fn row_count(&self) -> usize {
        self.state().rows.len()
    }

    /// Applies `ops` in order in one durable transaction, all or nothing (see `JournalOp`).
    pub fn write(&self, ops: &[JournalOp]) -> Result<(), StorageError> {
        if ops.is_empty() {
            return Ok(());
        }
        if let Some(reason) = self.health.failure() {
            return Err(StorageError::FailedEarlier(reason.to_owned()));
        }
        let mut state = self.state();
        // The plan, made against the state as it is (nothing changes until the commit).
        let mut clear = false;
        let mut new = NewRow {
            entries: Vec::new(),
        };
        // Removals of entries of rows in the file: (row, sequence, position in the row's
        // `entries`, size, marked).
        let mut kills: Vec<(u64, u64, usize, u32, bool)> = Vec::new();
        let mut floor = state.last_seq();
        for op in ops {
            let (seq, mark) = match op {
                JournalOp::Clear => {
                    clear = true;
                    new.entries.clear();
                    kills.clear();
                    floor = None;
                    continue;
                }
                JournalOp::Put { seq, id, bytes } => {
                    if floor.is_some_and(|f| *seq <= f) {
                        return Err(StorageError::Corrupt(format!(
                            "journal write puts {id} at sequence {seq}, not above the journal's \
                             last sequence {floor:?}"
                        )));
                    }
                    floor = Some(*seq);
                    new.entries
                        .push((*seq, id, bytes.as_slice(), frame_size(*seq, bytes)?));
                    continue;
                }
                JournalOp::Remove(seq) => (*seq, true),
                JournalOp::Settle(seq) => (*seq, false),
            };
            if new.kill(seq) || clear {
                continue;
            }
            if let Some((row, pos, size)) = state.live(seq) {
                kills.push((row, seq, pos, size, mark));
            }
        }
        // Each sequence once (a removal repeated within the write), grouped by row.
        // A removal and a settlement of one sequence: the removal's mark wins (sorted first).
        kills.sort_unstable_by_key(|k| (k.0, k.1, !k.4));
        kills.dedup_by_key(|k| k.1);

        let txn = self.db.begin_write().ctx("beginning journal write")?;
        // What changes in the state once committed: rows gone, rows changed (their new
        // bookkeeping), and the new row.
        let mut gone: Vec<u64> = Vec::new();
        let mut changed: Vec<(u64, Row)> = Vec::new();
        let mut added: Option<(u64, Row)> = None;
        {
            let mut rows = txn.open_table(ROWS).ctx("opening journal rows")?;
            let mut dropped = txn.open_table(DROPPED).ctx("opening journal dropped")?;
            if clear {
                rows.retain(|_, _| false).ctx("writing journal")?;
                dropped.retain(|_, _| false).ctx("writing journal")?;
            }
            for group in kills.chunk_by(|a, b| a.0 == b.0) {
                let first = group[0].0;
                let Some(old) = state.rows.get(&first) else {
                    continue;
                };
                let mut row = old.clone();
                // Positions found in this same state (`State::live`), so they name the entry.
                for &(_, _, pos, size, _) in group {
                    if let Some(e) = row.entries.get_mut(pos) {
                        e.1 = 0;
                    }
                    row.live = row.live.saturating_sub(1);
                    row.live_bytes = row.live_bytes.saturating_sub(u64::from(size));
                }
                let emptied = row.live == 0;
                let sparse = row.live_bytes.saturating_mul(COMPACT_RATIO) < row.bytes;
                if (emptied || sparse) && row.marks > 0 {
                    // The row goes, or is rewritten without its removed entries.
                    dropped
                        .retain_in(first..=row.last(first), |_, _| false)
                        .ctx("writing journal")?;
                }
                if emptied {
                    rows.remove(first).ctx("writing journal")?;
                    gone.push(first);
                    continue;
                }
                if sparse {
                    // Mostly dead: rewritten with its live entries only, marks gone.
                    let value = rows
                        .get(first)
                        .ctx("reading journal")?
                        .map(|g| g.value().to_vec())
                        .ok_or_else(|| {
                            StorageError::Corrupt(format!("journal row {first} is missing"))
                        })?;
                    let mut kept = Vec::with_capacity(row.live_bytes as usize);
                    for e in entries(&value) {
                        let e = e.map_err(|msg| {
                            StorageError::Corrupt(format!("journal row {first}: {msg}"))
                        })?;
                        if row.size_of(first, e.seq) > 0 {
                            kept.extend_from_slice(e.framed);
                        }
                    }
                    rows.insert(first, kept.as_slice()).ctx("writing journal")?;
                    row.entries.retain(|e| e.1 > 0);
                    row.bytes = kept.len() as u64;
                    row.marks = 0;
                } else {
                    for &(_, seq, _, _, mark) in group {
                        if mark {
                            dropped.insert(seq, ()).ctx("writing journal")?;
                            row.marks += 1;
                        }
                    }
                }
                changed.push((first, row));
            }
            // This write's row: its puts still live.
            let live: Vec<&(u64, &Hash, &[u8], u32)> =
                new.entries.iter().filter(|e| e.3 > 0).collect();
            if let Some(head) = live.first() {
                let first = head.0;
                let mut value = Vec::with_capacity(live.iter().map(|e| e.3 as usize).sum());
                let mut found = Vec::with_capacity(live.len());
                for &&(seq, id, bytes, size) in &live {
                    frame(&mut value, id, seq, bytes)?;
                    found.push((seq, size));
                }
                let row = Row::of(first, &found, value.len() as u64, &[])?;
                rows.insert(first, value.as_slice())
                    .ctx("writing journal")?;
                added = Some((first, row));
            }
        }
        txn.commit().ctx("committing journal")?;
        if clear {
            state.rows.clear();
        }
        for first in gone {
            state.rows.remove(&first);
        }
        for (first, row) in changed {
            state.rows.insert(first, row);
        }
        if let Some((first, row)) = added {
            state.rows.insert(first, row);
        }
        Ok(())
    }

    /// Every live entry's transaction, in arrival order.
    pub fn load(&self) -> Result<Vec<(u64, SignedTx)>, StorageError> {
        let state = self.state();
        let rtx = self.db.begin_read().ctx("beginning journal read")?;
        let t = rtx.open_table(ROWS).ctx("opening journal rows")?;
        let mut out = Vec::with_capacity(state.rows.values().map(|r| r.live as usize).sum());
        for row in t.iter().ctx("reading journal")? {
            let (k, v) = row.ctx("reading journal")?;
            let first = k.value();
            let Some(r) = state.rows.get(&first) else {
                continue;
            };
            for e in entries(v.value()) {
                let e =
                    e.map_err(|msg| StorageError::Corrupt(format!("journal row {first}: {msg}")))?;
                if r.size_of(first, e.seq) == 0 {
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
        let here: std::collections::HashSet<Hash> =
            self.load()?.iter().map(|(_, t)| t.tx.id()).collect();
        let mut next = self.next_seq();
        let ops: Vec<JournalOp> = old
            .iter()
            .map(|(_, t)| (t.tx.id(), t))
            .filter(|(id, _)| !here.contains(id))
            .map(|(id, t)| {
                let seq = next;
                next += 1;
                JournalOp::Put {
                    seq,
                    id,
                    bytes: encode(t),
                }
            })
            .collect();
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

    /// One past the last sequence in the file (0 for an empty journal): the least sequence a
    /// put may use.
    pub fn next_seq(&self) -> u64 {
        self.state().last_seq().map_or(0, |s| s.saturating_add(1))
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
        let marked = match rtx.open_table(DROPPED) {
            Ok(t) => read_marks(&t)?,
            Err(TableError::TableDoesNotExist(_)) => return Err(missing("dropped")),
            Err(e) => return Err(e).ctx("opening journal dropped"),
        };
        let mut out = JournalCheck::default();
        let mut seen: HashMap<Hash, u64> = HashMap::new();
        for row in rows.iter().ctx("reading journal")? {
            let (k, v) = row.ctx("reading journal")?;
            let first = k.value();
            for e in entries(v.value()) {
                let e = match e {
                    Ok(e) => e,
                    Err(msg) => {
                        out.problems
                            .push((first, format!("row {first} does not parse: {msg}")));
                        continue;
                    }
                };
                if marked.binary_search(&e.seq).is_ok() {
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

/// Every sequence marked dropped, in ascending order (the table's key order).
fn read_marks(t: &redb::ReadOnlyTable<u64, ()>) -> Result<Vec<u64>, StorageError> {
    t.iter()
        .ctx("reading journal")?
        .map(|m| Ok(m.ctx("reading journal")?.0.value()))
        .collect()
}

/// The in-memory state of the file in `db`: every entry not marked dropped is live.
fn read_state(db: &Database) -> Result<State, StorageError> {
    let rtx = db.begin_read().ctx("beginning journal read")?;
    let rows = rtx.open_table(ROWS).ctx("opening journal rows")?;
    let marks = read_marks(&rtx.open_table(DROPPED).ctx("opening journal dropped")?)?;
    let mut state = State::default();
    let mut prev_last: Option<u64> = None;
    for row in rows.iter().ctx("reading journal")? {
        let (k, v) = row.ctx("reading journal")?;
        let first = k.value();
        let value = v.value();
        let mut found: Vec<(u64, u32)> = Vec::new();
        for e in entries(value) {
            let e =
                e.map_err(|msg| StorageError::Corrupt(format!("journal row {first}: {msg}")))?;
            // A rewritten row keeps its key, so its first entry may be above it.
            let in_order = found.last().map_or(e.seq >= first, |(s, _)| e.seq > *s);
            if !in_order || prev_last.is_some_and(|p| e.seq <= p) {
                return Err(StorageError::Corrupt(format!(
                    "journal row {first}: sequence {} out of order",
                    e.seq
                )));
            }
            found.push((e.seq, e.framed.len() as u32));
        }
        let Some(&(last, _)) = found.last() else {
            continue;
        };
        prev_last = Some(last);
        let lo = marks.partition_point(|m| *m < first);
        let hi = marks.partition_point(|m| *m <= last);
        let mut row = Row::of(first, &found, value.len() as u64, &marks[lo..hi])?;
        row.marks = (hi - lo) as u64;
        state.rows.insert(first, row);
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
        let mut first = None;
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
                    first.get_or_insert(k.value());
                    n += 1;
                }
            }
            Err(e) => return Err(e).ctx("opening journal pending"),
        }
        let mut rows = txn.open_table(ROWS).ctx("creating journal rows")?;
        txn.open_table(DROPPED).ctx("creating journal dropped")?;
        if let Some(first) = first {
            rows.insert(first, value.as_slice())
                .ctx("writing journal")?;
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
    use std::collections::BTreeMap;

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
    /// bytes live, and the live entries `ids` gives.
    fn assert_bounded(j: &JournalStore) {
        let rows = j.state_rows();
        let mut live: Vec<u64> = Vec::new();
        for (first, [n, live_bytes, bytes, _], seqs) in &rows {
            assert!(*n >= 1, "row {first} is empty but kept");
            assert!(
                live_bytes * COMPACT_RATIO >= *bytes,
                "row {first}: {live_bytes} of {bytes}"
            );
            assert_eq!(*n as usize, seqs.len());
            live.extend(seqs);
        }
        let loaded: Vec<u64> = ids(j).into_iter().map(|(s, _)| s).collect();
        assert_eq!(live, loaded);
    }

    /// Writes of puts, removals, settlements and clears (removals of what the same write
    /// put, of unknown and repeated sequences, rows emptied, rewritten or left sparse) leave
    /// exactly the transactions applying each op in its place would, with every row at least
    /// a quarter live; after a reopen the file gives back those, plus only settled ones whose
    /// row was still live.
    #[test]
    fn writes_keep_exactly_the_live_transactions_and_a_reopen_only_adds_settled_ones() {
        use proptest::prelude::*;
        use proptest::test_runner::{Config, TestRunner};
        let txs: Vec<SignedTx> = (0..40).map(|i| tx(i as u8 + 1, 0)).collect();
        // An op: (kind, n); kind 0..=3 put txs[n] at the next sequence (skipping `kind`
        // sequences), 4..=5 remove and 6..=7 settle the n-th sequence handed out so far
        // (or an unknown one), 8 clear (rarely: n == 0).
        let ops = prop::collection::vec(prop::collection::vec((0u8..9, 0usize..40), 1..60), 1..8);
        TestRunner::new(Config::with_cases(64))
            .run(&ops, |writes| {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join(JOURNAL_FILE);
                let j = JournalStore::open(&path, CHAIN, Arc::default()).unwrap();
                let mut model: BTreeMap<u64, Hash> = BTreeMap::new();
                // Settled entries may come back on a reopen (restore refuses them, as
                // committed); a clear takes them too.
                let mut settled: BTreeMap<u64, Hash> = BTreeMap::new();
                let mut handed: Vec<u64> = Vec::new();
                let mut next = 0u64;
                for write in writes {
                    let mut batch = Vec::new();
                    for (kind, n) in write {
                        match kind {
                            0..=3 => {
                                let t = &txs[n];
                                model.insert(next, t.tx.id());
                                batch.push(put(next, t));
                                handed.push(next);
                                next += 1 + u64::from(kind);
                            }
                            4..=7 => {
                                let seq = handed.get(n).copied().unwrap_or(next + 1000);
                                if let Some(id) = model.remove(&seq)
                                    && kind >= 6
                                {
                                    settled.insert(seq, id);
                                }
                                batch.push(if kind <= 5 {
                                    JournalOp::Remove(seq)
                                } else {
                                    JournalOp::Settle(seq)
                                });
                            }
                            _ if n == 0 => {
                                model.clear();
                                settled.clear();
                                batch.push(JournalOp::Clear);
                            }
                            _ => {}
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
                        model.get(seq) == Some(id) || settled.get(seq) == Some(id),
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
    /// leaves the file with its marks, and one left sparse is rewritten with its live entries
    /// by the write that made it so.
    #[test]
    fn a_write_is_one_row_and_a_sparse_row_is_rewritten() {
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
        let dropped_rows = |j: &JournalStore| {
            use redb::ReadableTableMetadata;
            let rtx = j.db.begin_read().unwrap();
            rtx.open_table(DROPPED).unwrap().len().unwrap()
        };
        // Ten removed (marked), sixty settled (not): the row is still more than a quarter
        // live, so it stays, with ten marks.
        let mut ops: Vec<JournalOp> = (0..10).map(JournalOp::Remove).collect();
        ops.extend((10..70).map(JournalOp::Settle));
        j.write(&ops).unwrap();
        let rows = j.state_rows();
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].1[0], rows[0].1[3]), (30, 10));
        assert_eq!(dropped_rows(&j), 10);
        // Six more settled: 24 of 100 equal entries live, below a quarter. The row is
        // rewritten with them alone, and its marks go.
        j.write(&(70..76).map(JournalOp::Settle).collect::<Vec<_>>())
            .unwrap();
        let rows = j.state_rows();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].1, [24, rows[0].1[2], rows[0].1[2], 0]);
        assert_eq!(rows[0].2, (76..100).collect::<Vec<u64>>());
        let want: Vec<(u64, Hash)> = (76..100).map(|i| (i as u64, many[i].tx.id())).collect();
        assert_eq!(ids(&j), want);
        assert_eq!(dropped_rows(&j), 0);
        // The file says the same after a reopen: the settled entries went with the rewrite.
        drop(j);
        let j = JournalStore::open(&path, CHAIN, Arc::default()).unwrap();
        assert_eq!(ids(&j), want);
        assert_eq!(j.state_rows().len(), 1);
        // The rest settle: the journal is empty, in memory and in the file.
        j.write(&(76..100).map(JournalOp::Settle).collect::<Vec<_>>())
            .unwrap();
        assert!(j.is_empty() && j.row_count() == 0);
        drop(j);
        let j = JournalStore::open(&path, CHAIN, Arc::default()).unwrap();
        assert!(j.is_empty() && ids(&j).is_empty());
        assert_eq!(j.next_seq(), 0);
    }

    /// What a client can make the file hold: one long-lived transaction in each write among
    /// many that settle. Each write's row is rewritten once its short-lived entries leave, so
    /// the file holds the long-lived ones alone, and the memory kept per row is its live
    /// entries, not the sequences its write spanned.
    #[test]
    fn long_lived_transactions_do_not_pin_their_writes_rows() {
        let j = JournalStore::in_memory(CHAIN).unwrap();
        let mut seq = 0u64;
        let mut pinned = Vec::new();
        for w in 0..50u64 {
            let long = tx(200, w);
            let mut ops = vec![put(seq, &long)];
            pinned.push((seq, long.tx.id()));
            seq += 1;
            let first_short = seq;
            for n in 0..40u64 {
                ops.push(put(seq, &tx((w % 100) as u8 + 1, n)));
                // Sequences skipped between puts (admissions evicted in their own batch).
                seq += 3;
            }
            j.write(&ops).unwrap();
            let settle: Vec<JournalOp> = (first_short..seq)
                .step_by(3)
                .map(JournalOp::Settle)
                .collect();
            j.write(&settle).unwrap();
            assert_bounded(&j);
        }
        assert_eq!(ids(&j), pinned);
        let rows = j.state_rows();
        assert_eq!(rows.len(), 50);
        for (first, [live, live_bytes, bytes, marks], seqs) in rows {
            assert_eq!((live, marks, seqs), (1, 0, vec![first]));
            assert_eq!(
                live_bytes, bytes,
                "rewritten with the long-lived entry alone"
            );
        }
        assert!(
            j.state().rows.values().all(|r| r.entries.len() == 1),
            "memory per row is its live entries"
        );
    }

    /// A put must be above every sequence in the file and the write's earlier puts, unless a
    /// clear came first; a write that breaks this is refused before anything changes.
    #[test]
    fn puts_out_of_order_are_refused_and_change_nothing() {
        let j = JournalStore::in_memory(CHAIN).unwrap();
        let (a, b) = (tx(1, 0), tx(2, 0));
        j.write(&[put(5, &a)]).unwrap();
        let before = j.state_rows();
        for bad in [
            vec![put(5, &b)],
            vec![put(2, &b)],
            vec![put(7, &b), put(7, &a)],
            vec![JournalOp::Remove(5), put(8, &b), put(6, &a)],
        ] {
            let e = j.write(&bad).unwrap_err();
            assert!(matches!(e, StorageError::Corrupt(_)), "{e}");
            assert_eq!(j.state_rows(), before);
            assert_eq!(ids(&j), vec![(5, a.tx.id())]);
        }
        // After a clear any sequence may start again (restore renumbers).
        j.write(&[JournalOp::Clear, put(0, &b), put(1, &a)])
            .unwrap();
        assert_eq!(ids(&j), vec![(0, b.tx.id()), (1, a.tx.id())]);
    }

    #[test]
    fn ops_apply_in_order_and_removal_is_by_sequence() {
        let j = JournalStore::in_memory(CHAIN).unwrap();
        let (a, b, c) = (tx(1, 0), tx(2, 0), tx(3, 0));
        j.write(&[put(0, &a), put(1, &b)]).unwrap();
        // A put then a removal of its sequence in one write leaves nothing of it.
        j.write(&[put(2, &c), JournalOp::Remove(2)]).unwrap();
        assert_eq!(ids(&j), vec![(0, a.tx.id()), (1, b.tx.id())]);
        // Unknown and repeated sequences are ignored.
        j.write(&[
            JournalOp::Remove(99),
            JournalOp::Remove(0),
            JournalOp::Settle(0),
            JournalOp::Remove(0),
        ])
        .unwrap();
        assert_eq!(ids(&j), vec![(1, b.tx.id())]);
        assert_eq!(j.len(), 1);
        assert_eq!(j.next_seq(), 2);
        j.write(&[]).unwrap();
        // A clear forgets everything before it, removals of old sequences after it included.
        j.write(&[JournalOp::Clear, JournalOp::Remove(1), put(0, &c)])
            .unwrap();
        assert_eq!(ids(&j), vec![(0, c.tx.id())]);
        assert_eq!((j.len(), j.row_count()), (1, 1));
    }

    #[test]
    fn the_file_keeps_rows_and_refuses_another_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JOURNAL_FILE);
        let (a, b) = (tx(1, 0), tx(1, 1));
        {
            let j = JournalStore::open(&path, CHAIN, Arc::default()).unwrap();
            j.write(&[put(3, &a), put(4, &b)]).unwrap();
            j.write(&[JournalOp::Remove(3)]).unwrap();
        }
        let j = JournalStore::open(&path, CHAIN, Arc::default()).unwrap();
        assert_eq!(ids(&j), vec![(4, b.tx.id())]);
        // The rows came back with the file: removal by sequence works after a reopen.
        j.write(&[JournalOp::Remove(4)]).unwrap();
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
        j.write(&[JournalOp::Remove(1)]).unwrap();
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
                rows.insert(7, v.as_slice()).unwrap();
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
        j.write(&[JournalOp::Remove(9)]).unwrap();
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
