//! Durable node state in one redb database: blocks, receipts, contract state, nonces and the
//! bridge's state (watermarks, outbox, signature timestamps: see `outbox`). The mempool journal
//! lives in its own file (`journal`, `data_dir/journal.redb`) so admissions and block commits
//! never wait for each other; the chain database keeps the old `mempool_journal` tables only so
//! a data dir from an older version can be moved over once (`JournalStore::migrate_from`).
//!
//! Role: this module is the only code that declares (see `tables`) or opens redb tables. Every
//! other part of the node reads through `Storage` / `Snapshot` and writes through the few
//! methods below, so the invariants can be kept here:
//!
//! - One write transaction per block (`commit_block`): the block, its hash index, the tx
//!   locations due at its height (written late, see `locations`), receipts, every state write, the nonce updates and the new head are committed together or not at all. Every check runs inside that transaction and any error
//!   aborts it, so a failed or crashed commit leaves the previous head and state untouched.
//! - The chain is linear and gap-free: a block is accepted only at `head + 1` on top of the head's
//!   hash, and no transaction id is ever stored twice.
//! - A file belongs to one chain and one schema: both are written when the file is created and
//!   checked on every open, with an error that tells the operator what to do.
//! - A file records its chain's parameters (`ChainParams`, `META_CHAIN_PARAMS`) in the same
//!   transaction as the genesis block, which commits to their hash; they never change after.
//!   Opening an existing file loads them and they rule (`Storage::params`): the parameters passed
//!   to `open` are only used to create a new chain (see `chain::params` for the whole rule).
//! - Anchoring on the L0 (`outbox`): a committed block is "to anchor" because the head moved past
//!   the bridge's "anchored up to" watermark, in the very transaction that commits it, so
//!   `commit_block` writes nothing for the bridge and nothing grows while the bridge is off. The
//!   bridge's own writes (stage a batch, mark it, re-sign it) are one transaction each and never
//!   touch blocks or state.
//! - Persistent commits use redb's default (immediate) durability: once `commit_block` returns
//!   `Ok`, the block survives a crash. The in-memory backend runs the very same code.
//! - Everything stored is written by this node, so values are decoded with `decode_trusted`; a
//!   value that fails to decode is reported as `Corrupt`, naming the table and key.
//! - Errors are classified: an I/O error on the file, or redb refusing to go on after one
//!   (`PreviousIo`), is `StorageError::Failed`; everything else (a wrong height, a duplicate, a
//!   corrupt value) is a logical error that leaves the store usable. The first I/O error marks the
//!   store's `StorageHealth` failed (see `health`), for good: from then on every write is refused
//!   at once with `Failed`, because only reopening the file (a restart) repairs it, back to the
//!   last committed block.
//! - Errors keep their cause: redb, I/O and decode errors travel as `#[source]` of a typed
//!   variant (with what the store was doing), never flattened to a string. Their `Display`
//!   repeats the cause's text too, because actors log storage errors with `%e` and an operator
//!   must see the OS error there.

mod backup;
mod check;
mod health;
mod journal;
mod locations;
mod outbox;
mod tables;

#[cfg(test)]
mod backup_tests;
#[cfg(test)]
mod failure_tests;
#[cfg(test)]
mod outbox_tests;
#[cfg(test)]
pub(crate) mod tests;

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

use redb::backends::{FileBackend, InMemoryBackend};
use redb::{
    Database, DatabaseError, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable,
    ReadableTableMetadata, TableError, TableHandle, WriteTransaction,
};
use serde::de::DeserializeOwned;

use crate::chain::ChainParams;
use crate::types::{
    Address, Block, BlockHeader, ContractInfo, DecodeError, FastMap, Hash, PublicKey, Receipt,
    SignedTx, WriteSet, decode_trusted, encode,
};
use tables::{
    BLOCK_INDEX, BLOCKS, BRIDGE, CODE, CONTRACT_STATE, CONTRACTS, Key32, MEMPOOL_JOURNAL,
    MEMPOOL_ORDER, META, META_CHAIN_ID, META_CHAIN_PARAMS, META_HEAD, META_SCHEMA_VERSION, NONCES,
    OUTBOX, RECEIPTS, RECEIPTS_BY_ID, TX_LOCATIONS,
};

/// Version of the on-disk layout in `tables`. Bump it on any change to a table's name, key or
/// value format; a file with another version is refused on open.
///
/// History: 1, the first layout; 2, the chain's parameters recorded at genesis
/// (`META_CHAIN_PARAMS`) and a genesis block that commits to them; 3, receipts keyed by block
/// position (`RECEIPTS`) instead of by tx id. A version-2 file is migrated in place on open
/// (`Storage::migrate_receipts`); nothing else changed, so blocks, hashes and state are the same.
/// 4, `tx_locations` written late: the location of an id included at height `h` is written by
/// the commit of `locations::merge_height(h, id)`, at most 31 blocks later, and held in memory
/// until then (`locations`). A version-3 (or 2) file holds every location already, which is a
/// valid version-4 file: opening it only records version 4. The bump keeps an older binary
/// from opening a version-4 file and missing the recent locations.
///
/// The bridge's state (the `bridge` table, the outbox row format) was added within version 2
/// rather than as a version 3: version 2 was never released, the outbox table existed but no
/// build ever wrote a row to it, and the `bridge` table is purely additive (created on open when
/// missing; a missing key reads as 0, which is exactly "nothing anchored or staged yet"). A bump
/// would have refused every data dir made by this version's own development builds for no gain.
pub const SCHEMA_VERSION: u32 = 4;

/// Receipts moved per write transaction by the schema 2 -> 3 migration: bounds the memory one
/// transaction holds on a large chain, and a crash loses at most one chunk's work.
const MIGRATION_CHUNK: usize = 100_000;

pub use backup::{BackupError, BackupStats, DB_FILE, RestoreStats, restore};
pub use check::{CheckReport, MAX_PROBLEMS, Problem};
pub use health::StorageHealth;
pub use journal::{JOURNAL_FILE, JournalCheck, JournalOp, JournalStore};
pub use outbox::{BridgeStats, OutboxError, OutboxRow, OutboxState, SignedBatch};

/// Why a storage operation failed. Every variant leaves the database as it was before the call.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A redb error that is not an I/O failure, with what the node was doing when it happened.
    #[error("database error: {what}: {source}")]
    Db {
        what: String,
        #[source]
        source: redb::Error,
    },
    /// The database file could not be read or written (a full disk, an I/O error), or redb
    /// refuses to go on after such an error: the store is failed until the node reopens it.
    #[error("storage failed: {what}: {source}")]
    Failed {
        what: String,
        #[source]
        source: redb::Error,
    },
    /// A write refused because the store failed earlier (`Failed`, recorded in its health);
    /// the reason is that first failure's.
    #[error("storage failed: refusing to write: the store failed earlier ({0}); restart the node")]
    FailedEarlier(String),
    /// The data file (or its directory) could not be prepared.
    #[error("storage I/O error: {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// Another process holds the data file open.
    #[error(
        "data file {} is already open in another process; stop the other accumen node using this data_dir, or point data_dir elsewhere",
        .0.display()
    )]
    Locked(PathBuf),
    #[error("{}", schema_mismatch_message(*.found, *.expected))]
    SchemaMismatch { found: u32, expected: u32 },
    #[error(
        "data dir belongs to chain {found:?} but the node is configured for chain {expected:?}; fix chain_id in the config or point data_dir at this chain's data"
    )]
    ChainMismatch { found: String, expected: String },
    /// Stored data that this node must have written is missing or inconsistent.
    #[error("storage corrupt: {0}")]
    Corrupt(String),
    /// A stored value that does not decode: the file is damaged.
    #[error("storage corrupt: table {table}, key {key}: {source}")]
    Decode {
        table: &'static str,
        key: String,
        #[source]
        source: DecodeError,
    },
    /// Test fail-point (`fail_before_commit`): every write done, then no commit.
    #[cfg(test)]
    #[error("injected failure before commit")]
    Injected,
    #[error("block height {got} is not the next block (expected {expected})")]
    NotNextBlock { expected: u64, got: u64 },
    #[error("block parent hash {got} does not match the head hash {expected}")]
    ParentMismatch { expected: Hash, got: Hash },
    #[error("transaction {0} is already stored")]
    DuplicateTx(Hash),
    #[error("block has {txs} transactions but {receipts} receipts")]
    ReceiptCount { txs: usize, receipts: usize },
    #[error("receipt {index} is for tx {receipt_tx}, but the block's tx {index} is {block_tx}")]
    ReceiptMismatch {
        index: usize,
        block_tx: Hash,
        receipt_tx: Hash,
    },
    #[error("block has more than u32::MAX transactions")]
    TooManyTxs,
    /// A bridge write that would break an outbox invariant (see `outbox`).
    #[error("bridge outbox: {0}")]
    Outbox(#[source] OutboxError),
}

impl StorageError {
    /// True when stored data is damaged (a value or a redb page that does not decode, data the
    /// node must have written missing): what `accumen db check` reports as a problem found
    /// rather than as a failure to check.
    pub fn is_damage(&self) -> bool {
        matches!(
            self,
            StorageError::Corrupt(_)
                | StorageError::Decode { .. }
                | StorageError::Db {
                    source: redb::Error::Corrupted(_),
                    ..
                }
        )
    }

    /// True for the I/O class: the store itself has failed and only a restart can recover it.
    /// False for logical errors (a block that is not next, a duplicate transaction, corrupt or
    /// missing data), after which the store goes on working.
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            StorageError::Failed { .. } | StorageError::FailedEarlier(_)
        )
    }
}

/// What to tell an operator whose data dir has another schema version: which version it is,
/// which this build needs, and what they can do.
fn schema_mismatch_message(found: u32, expected: u32) -> String {
    let head = format!("storage schema version {found} found, this node needs {expected}");
    if found > expected {
        return format!(
            "{head}: the data dir was written by a newer accumen version; run that version (or a \
             newer one) on it, or point data_dir at an empty directory to start a fresh chain"
        );
    }
    if found < 2 {
        // Version 1 predates recorded chain parameters: its genesis block does not commit to
        // them, so no migration can turn it into a version-2 chain with the same block hashes.
        return format!(
            "{head}: version {found} data dirs predate chain parameters recorded at genesis \
             (schema 2), and cannot be upgraded in place because a version-2 genesis block commits \
             to those parameters. Keep running this data dir with the accumen version that wrote \
             it, or start a new chain: move the data dir away (or point data_dir at an empty \
             directory) and start this version"
        );
    }
    format!(
        "{head}: the data dir was written by an older accumen version and this build has no \
         migration from it; run the version that wrote it, or point data_dir at an empty \
         directory to start a fresh chain"
    )
}

/// Whether a redb error means the file or the database handle has failed (I/O class).
fn is_io_class(e: &redb::Error) -> bool {
    matches!(
        e,
        redb::Error::Io(_) | redb::Error::PreviousIo | redb::Error::Backend(_)
    )
}

/// Attaches "what we were doing" to any redb error, and sorts it into `Failed` (I/O class) or
/// `Db` (anything else).
trait Ctx<T> {
    fn ctx(self, what: &str) -> Result<T, StorageError>;
}

impl<T, E: Into<redb::Error>> Ctx<T> for Result<T, E> {
    fn ctx(self, what: &str) -> Result<T, StorageError> {
        self.map_err(|e| {
            let source: redb::Error = e.into();
            let what = what.to_owned();
            if is_io_class(&source) {
                StorageError::Failed { what, source }
            } else {
                StorageError::Db { what, source }
            }
        })
    }
}

/// Decodes a value this node wrote; a failure means the file is damaged.
fn decode<T: DeserializeOwned>(
    table: &'static str,
    key: impl Display,
    bytes: &[u8],
) -> Result<T, StorageError> {
    decode_trusted(bytes).map_err(|source| StorageError::Decode {
        table,
        key: key.to_string(),
        source,
    })
}

/// The contract-state key: 32-byte address followed by the contract's own key.
fn state_key(a: &Address, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(Address::LEN + key.len());
    k.extend_from_slice(&a.0);
    k.extend_from_slice(key);
    k
}

/// Runs `f` on the contract-state key without a heap allocation for the common short keys: the
/// VM calls `storage_get` on its hottest path.
fn with_state_key<R>(a: &Address, key: &[u8], f: impl FnOnce(&[u8]) -> R) -> R {
    const INLINE: usize = 96;
    if key.len() <= INLINE {
        let mut buf = [0u8; Address::LEN + INLINE];
        buf[..Address::LEN].copy_from_slice(&a.0);
        buf[Address::LEN..Address::LEN + key.len()].copy_from_slice(key);
        f(&buf[..Address::LEN + key.len()])
    } else {
        f(&state_key(a, key))
    }
}

// ---- reads shared by `Storage` (fresh read transaction) and `Snapshot` (held tables) ----

fn read_head(
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<BlockHeader, StorageError> {
    let guard = meta
        .get(META_HEAD)
        .ctx("reading head")?
        .ok_or_else(|| StorageError::Corrupt("table meta has no head".into()))?;
    decode("meta", META_HEAD, guard.value())
}

fn read_contract(
    t: &impl ReadableTable<Key32, &'static [u8]>,
    a: &Address,
) -> Result<Option<ContractInfo>, StorageError> {
    match t.get(&a.0).ctx("reading contracts")? {
        Some(g) => Ok(Some(decode("contracts", a, g.value())?)),
        None => Ok(None),
    }
}

fn read_code(
    t: &impl ReadableTable<Key32, &'static [u8]>,
    h: &Hash,
) -> Result<Option<Vec<u8>>, StorageError> {
    Ok(t.get(&h.0).ctx("reading code")?.map(|g| g.value().to_vec()))
}

fn read_state(
    t: &impl ReadableTable<&'static [u8], &'static [u8]>,
    a: &Address,
    key: &[u8],
) -> Result<Option<Vec<u8>>, StorageError> {
    with_state_key(a, key, |k| {
        Ok(t.get(k)
            .ctx("reading contract_state")?
            .map(|g| g.value().to_vec()))
    })
}

fn read_nonce(t: &impl ReadableTable<Key32, u64>, s: &PublicKey) -> Result<u64, StorageError> {
    Ok(t.get(&s.0).ctx("reading nonces")?.map_or(0, |g| g.value()))
}

fn read_block(
    t: &impl ReadableTable<u64, &'static [u8]>,
    h: u64,
) -> Result<Option<Block>, StorageError> {
    match t.get(h).ctx("reading blocks")? {
        Some(g) => Ok(Some(decode("blocks", h, g.value())?)),
        None => Ok(None),
    }
}

/// Where a committed transaction is: (block height, index in the block).
pub type TxLocation = (u64, u32);

/// Which redb backend a `Storage` runs on (for logs and `Debug`).
#[derive(Debug, Clone)]
enum Backend {
    File(PathBuf),
    Memory,
}

/// The node's database. Cheap to share: wrap it in an `Arc`; reads may run on any thread while
/// the block producer commits (redb gives every read transaction its own consistent view).
pub struct Storage {
    db: Database,
    /// The chain's parameters: as recorded at genesis (for a new file, as passed to `open`).
    params: ChainParams,
    backend: Backend,
    /// Marked failed by the backend on the first I/O error; shared with `NodeStats`.
    health: Arc<StorageHealth>,
    /// The tx locations committed but not yet written to `tx_locations` (`locations`): added by
    /// a block's commit just before it, forgotten once written (or if the commit fails).
    recent: RwLock<locations::Recent>,
    /// Test-only fail-point: when set, `commit_block` does every write and then fails instead of
    /// committing, to prove that a late failure leaves nothing behind.
    #[cfg(test)]
    fail_before_commit: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("chain_id", &self.params.chain_id)
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

/// A consistent read view of state at one point in time (one redb read transaction). The table
/// handles are opened once, so each read is a single B-tree lookup. Holding a snapshot pins the
/// pages it sees; drop it when done (e.g. after executing a block).
pub struct Snapshot {
    meta: ReadOnlyTable<&'static str, &'static [u8]>,
    contracts: ReadOnlyTable<Key32, &'static [u8]>,
    code: ReadOnlyTable<Key32, &'static [u8]>,
    state: ReadOnlyTable<&'static [u8], &'static [u8]>,
    nonces: ReadOnlyTable<Key32, u64>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot").finish_non_exhaustive()
    }
}

// Storage is shared across actor threads and snapshots are handed to executor workers.
const _: () = {
    const fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Storage>();
    assert_send_sync::<Snapshot>();
};

/// redb's page cache for the chain's data file, in MiB, unless the operator sets
/// `storage_cache_mb`. redb's default is 1 GiB, more than the node's whole memory goal
/// (RUNBOOK "Performance": RSS with 100,000 pending transactions); the hot set (head, nonces,
/// contract state and code) is far smaller. The cache fills as blocks are written and stays
/// full: after a backlog drains it is most of what the node holds above its cold baseline
/// (measured: 16 MiB instead of 64 left 60 instead of 117 MiB after a drain, for 1.5 to 3% of
/// the peak rate). Reads that miss it go to the OS page cache, not the disk, on a warm machine.
pub const DEFAULT_CACHE_MB: u64 = 64;

/// [`DEFAULT_CACHE_MB`] in bytes: what `open` and `open_existing` use.
const CACHE_BYTES: usize = DEFAULT_CACHE_MB as usize * 1024 * 1024;

/// A block's values in their stored form, made before its write transaction begins.
struct Encoded {
    block: Vec<u8>,
    /// One per receipt, in block order.
    receipts: Vec<Vec<u8>>,
}

impl Storage {
    /// Opens the database file at `path`, creating it if it does not exist: a new chain with
    /// `params` (recorded with its genesis block). An existing file must have this schema version
    /// and `params.chain_id`; its own recorded parameters then rule (`params()`), whatever
    /// `params` says: compare them with `chain::params::reconcile`.
    pub fn open(path: &Path, params: &ChainParams) -> Result<Self, StorageError> {
        Self::open_with_cache(path, params, CACHE_BYTES)
    }

    /// [`Storage::open`] with a page cache of `cache_bytes` (`storage_cache_mb`): what the
    /// cache holds changes only speed and memory, never what is read or written.
    pub fn open_with_cache(
        path: &Path,
        params: &ChainParams,
        cache_bytes: usize,
    ) -> Result<Self, StorageError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StorageError::Io {
                what: format!("creating {}", dir.display()),
                source,
            })?;
        }
        let (db, health) = Self::open_file(path, true, cache_bytes)?;
        Self::init(db, params, Backend::File(path.to_path_buf()), health)
    }

    /// Opens an existing database file with the chain parameters it recorded at genesis, for
    /// tools that work on a data dir without a node configuration (`backup`, `db check`).
    /// Never creates a file: a missing one is `Io` (`NotFound`), a file without recorded
    /// parameters is `Corrupt`.
    pub fn open_existing(path: &Path) -> Result<Self, StorageError> {
        let (db, health) = Self::open_file(path, false, CACHE_BYTES)?;
        let params = {
            let rtx = db.begin_read().ctx("beginning read transaction")?;
            let meta = match rtx.open_table(META) {
                Ok(t) => t,
                Err(TableError::TableDoesNotExist(_)) => {
                    return Err(StorageError::Corrupt(format!(
                        "{} has no meta table: not an accumen data file",
                        path.display()
                    )));
                }
                Err(e) => return Err(e).ctx("opening table meta"),
            };
            match meta.get(META_CHAIN_PARAMS).ctx("reading meta")? {
                Some(g) => decode::<ChainParams>("meta", META_CHAIN_PARAMS, g.value())?,
                None => return Err(StorageError::Corrupt("meta has no chain_params".into())),
            }
        };
        Self::init(db, &params, Backend::File(path.to_path_buf()), health)
    }

    /// What `Database::create` does, with the file backend wrapped so that its I/O errors mark
    /// the store failed. Opening an existing file repairs it if it was not closed cleanly (a
    /// crash, or a commit cut short by a full disk): back to its last commit.
    fn open_file(
        path: &Path,
        create: bool,
        cache_bytes: usize,
    ) -> Result<(Database, Arc<StorageHealth>), StorageError> {
        let health = Arc::new(StorageHealth::default());
        let db = Self::open_watched(path, create, cache_bytes, &health)?;
        Ok((db, health))
    }

    /// Opens the redb file at `path` (creating it if `create`) with its file backend wrapped so
    /// that I/O errors mark `health` failed; one place for the chain store and the mempool
    /// journal (`journal.rs`), which share one health. A second open of the same file is
    /// `StorageError::Locked`.
    pub(crate) fn open_watched(
        path: &Path,
        create: bool,
        cache_bytes: usize,
        health: &Arc<StorageHealth>,
    ) -> Result<Database, StorageError> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .open(path)
            .map_err(|source| StorageError::Io {
                what: format!("opening {}", path.display()),
                source,
            })?;
        let backend = health::Watched::new(
            FileBackend::new(file).ctx(&format!("locking {}", path.display()))?,
            health.clone(),
            path.display().to_string(),
        );
        match Database::builder()
            .set_cache_size(cache_bytes)
            .create_with_backend(backend)
        {
            Err(DatabaseError::DatabaseAlreadyOpen) => {
                Err(StorageError::Locked(path.to_path_buf()))
            }
            other => other.ctx(&format!("opening {}", path.display())),
        }
    }

    /// A new chain in memory with `params` (the node's `storage: memory`): same tables and code
    /// as `open`.
    pub fn in_memory_with(params: &ChainParams) -> Result<Self, StorageError> {
        let db = Database::builder()
            .create_with_backend(InMemoryBackend::new())
            .ctx("creating in-memory database")?;
        Self::init(db, params, Backend::Memory, Arc::default())
    }

    /// A new chain in memory with this build's default parameters
    /// (`ChainParams::with_defaults`), for this crate's tests. Test-only so that node code
    /// cannot create a chain without passing the configuration's parameters
    /// (`in_memory_with`).
    #[cfg(test)]
    pub fn in_memory(chain_id: &str) -> Result<Self, StorageError> {
        Self::in_memory_with(&ChainParams::with_defaults(chain_id))
    }

    /// A database on any backend, watched like a file (tests inject failing backends here).
    #[cfg(test)]
    pub(crate) fn with_backend(
        backend: impl redb::StorageBackend,
        chain_id: &str,
    ) -> Result<Self, StorageError> {
        let health = Arc::new(StorageHealth::default());
        let backend = health::Watched::new(backend, health.clone(), "test backend".into());
        let db = Database::builder()
            .create_with_backend(backend)
            .ctx("opening test database")?;
        Self::init(
            db,
            &ChainParams::with_defaults(chain_id),
            Backend::Memory,
            health,
        )
    }

    fn init(
        db: Database,
        params: &ChainParams,
        backend: Backend,
        health: Arc<StorageHealth>,
    ) -> Result<Self, StorageError> {
        let mut storage = Self {
            db,
            params: params.clone(),
            backend,
            health,
            recent: RwLock::new(locations::Recent::new()),
            #[cfg(test)]
            fail_before_commit: std::sync::atomic::AtomicBool::new(false),
        };
        let rtx = storage.begin_read()?;
        match rtx.open_table(META) {
            Ok(meta) => {
                let (params, version) = storage.check_meta(&meta)?;
                storage.params = params;
                let tables: Vec<String> = rtx
                    .list_tables()
                    .ctx("listing tables")?
                    .map(|t| t.name().to_owned())
                    .collect();
                let has = |name: &str| tables.iter().any(|t| t == name);
                let (has_bridge, old_receipts) = (has(BRIDGE.name()), has(RECEIPTS_BY_ID.name()));
                drop(meta);
                drop(rtx);
                if !has_bridge {
                    storage.create_bridge_table()?;
                }
                // Schema 2, or a migration to 3 that a crash or stop cut short.
                if version == 2 || old_receipts {
                    storage.migrate_receipts(MIGRATION_CHUNK)?;
                } else if version == 3 {
                    // Every location is written already: a valid version-4 file.
                    storage.write_all("recording schema 4", |txn| {
                        txn.open_table(META)
                            .ctx("opening meta")?
                            .insert(META_SCHEMA_VERSION, encode(&SCHEMA_VERSION).as_slice())
                            .ctx("writing meta")?;
                        Ok(())
                    })?;
                    tracing::info!("storage schema 3 recorded as 4: tx locations written late");
                }
            }
            Err(TableError::TableDoesNotExist(_)) => {
                // No meta table: a brand-new file, unless something else already lives in it.
                let existing = rtx.list_tables().ctx("listing tables")?.count();
                if existing > 0 {
                    return Err(StorageError::Corrupt(format!(
                        "{existing} tables but no meta table: not an accumen data file?"
                    )));
                }
                drop(rtx);
                storage.create_genesis()?;
            }
            Err(e) => return Err(e).ctx("opening table meta"),
        }
        let head = storage.head()?;
        storage.load_recent(head.height)?;
        tracing::info!(
            chain_id = %storage.params.chain_id,
            params_hash = %storage.params.hash(),
            backend = ?storage.backend,
            head_height = head.height,
            head_hash = %head.hash(),
            "storage opened"
        );
        Ok(storage)
    }

    /// Checks an existing file's schema version and chain id; returns its recorded parameters and
    /// its version (this one's, or 2 or 3, which `init` migrates).
    fn check_meta(
        &self,
        meta: &impl ReadableTable<&'static str, &'static [u8]>,
    ) -> Result<(ChainParams, u32), StorageError> {
        // Version first: a file from another schema may not even encode the chain id the same way.
        let version: u32 = match meta.get(META_SCHEMA_VERSION).ctx("reading meta")? {
            Some(g) => decode("meta", META_SCHEMA_VERSION, g.value())?,
            None => return Err(StorageError::Corrupt("meta has no schema_version".into())),
        };
        // Versions 2 and 3 differ only in how receipts are keyed and when locations are
        // written: `init` migrates them.
        if version != SCHEMA_VERSION && version != 2 && version != 3 {
            return Err(StorageError::SchemaMismatch {
                found: version,
                expected: SCHEMA_VERSION,
            });
        }
        let found: String = match meta.get(META_CHAIN_ID).ctx("reading meta")? {
            Some(g) => decode("meta", META_CHAIN_ID, g.value())?,
            None => return Err(StorageError::Corrupt("meta has no chain_id".into())),
        };
        if found != self.params.chain_id {
            return Err(StorageError::ChainMismatch {
                found,
                expected: self.params.chain_id.clone(),
            });
        }
        let params: ChainParams = match meta.get(META_CHAIN_PARAMS).ctx("reading meta")? {
            Some(g) => decode("meta", META_CHAIN_PARAMS, g.value())?,
            None => return Err(StorageError::Corrupt("meta has no chain_params".into())),
        };
        if params.chain_id != found {
            return Err(StorageError::Corrupt(format!(
                "meta chain_id {found:?} differs from the recorded chain parameters' {:?}",
                params.chain_id
            )));
        }
        Ok((params, version))
    }

    /// Creates every table and stores the chain parameters and the genesis block (which commits
    /// to them), in one transaction.
    fn create_genesis(&self) -> Result<(), StorageError> {
        let genesis = self.params.genesis();
        let txn = self.begin_write()?;
        {
            let mut meta = txn.open_table(META).ctx("creating meta")?;
            meta.insert(META_SCHEMA_VERSION, encode(&SCHEMA_VERSION).as_slice())
                .ctx("writing meta")?;
            meta.insert(META_CHAIN_ID, encode(&self.params.chain_id).as_slice())
                .ctx("writing meta")?;
            meta.insert(META_CHAIN_PARAMS, encode(&self.params).as_slice())
                .ctx("writing meta")?;
            meta.insert(META_HEAD, encode(&genesis.header).as_slice())
                .ctx("writing meta")?;
            txn.open_table(BLOCKS)
                .ctx("creating blocks")?
                .insert(0, genesis.encode().as_slice())
                .ctx("writing genesis")?;
            txn.open_table(BLOCK_INDEX)
                .ctx("creating block_index")?
                .insert(&genesis.hash().0, 0)
                .ctx("writing genesis")?;
            // The remaining tables start empty but must exist, so reads never meet a missing table.
            txn.open_table(TX_LOCATIONS).ctx("creating tx_locations")?;
            txn.open_table(RECEIPTS).ctx("creating block_receipts")?;
            txn.open_table(CONTRACTS).ctx("creating contracts")?;
            txn.open_table(CODE).ctx("creating code")?;
            txn.open_table(CONTRACT_STATE)
                .ctx("creating contract_state")?;
            txn.open_table(NONCES).ctx("creating nonces")?;
            txn.open_table(MEMPOOL_JOURNAL)
                .ctx("creating mempool_journal")?;
            txn.open_table(MEMPOOL_ORDER)
                .ctx("creating mempool_order")?;
            txn.open_table(OUTBOX).ctx("creating outbox")?;
            txn.open_table(BRIDGE).ctx("creating bridge")?;
        }
        txn.commit().ctx("committing genesis")?;
        tracing::info!(
            chain_id = %self.params.chain_id,
            hash = %genesis.hash(),
            params_hash = %self.params.hash(),
            "created new chain database with genesis block"
        );
        Ok(())
    }

    /// Schema 2 -> 3: moves every receipt from `receipts` (by tx id) to `block_receipts` (by
    /// the position `tx_locations` gives), then deletes the old table. In chunks of
    /// `chunk_size` receipts ([`MIGRATION_CHUNK`] on open), each its own write transaction;
    /// the first also records schema 3, so an older binary refuses a half-migrated file
    /// instead of missing receipts, and an open that finds the old table still there (a crash
    /// mid-way) carries on from where it stopped: each chunk removes the rows it moved.
    fn migrate_receipts(&self, chunk_size: usize) -> Result<(), StorageError> {
        let started = Instant::now();
        let mut moved = 0u64;
        tracing::info!("migrating storage schema 2 to 3: receipts keyed by block position");
        loop {
            let done = self.write_all("migrating receipts", |txn| {
                txn.open_table(META)
                    .ctx("opening meta")?
                    .insert(META_SCHEMA_VERSION, encode(&SCHEMA_VERSION).as_slice())
                    .ctx("writing meta")?;
                let locations = txn.open_table(TX_LOCATIONS).ctx("opening tx_locations")?;
                let mut old = txn.open_table(RECEIPTS_BY_ID).ctx("opening receipts")?;
                let mut new = txn.open_table(RECEIPTS).ctx("opening block_receipts")?;
                let mut chunk = Vec::with_capacity(chunk_size);
                for item in old.iter().ctx("reading receipts")?.take(chunk_size) {
                    let (k, v) = item.ctx("reading receipts")?;
                    chunk.push((*k.value(), v.value().to_vec()));
                }
                for (id, receipt) in &chunk {
                    let Some(at) = locations.get(id).ctx("reading tx_locations")? else {
                        return Err(StorageError::Corrupt(format!(
                            "receipts holds tx {} which tx_locations does not know",
                            Hash(*id)
                        )));
                    };
                    new.insert(at.value(), receipt.as_slice())
                        .ctx("writing block_receipts")?;
                    old.remove(id).ctx("removing receipts")?;
                }
                let done = chunk.len() < chunk_size;
                drop((old, new, locations));
                if done {
                    txn.delete_table(RECEIPTS_BY_ID).ctx("deleting receipts")?;
                }
                Ok((chunk.len() as u64, done))
            })?;
            moved += done.0;
            if done.1 {
                break;
            }
            tracing::info!(moved, "migrating receipts");
        }
        tracing::info!(
            receipts = moved,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "migrated storage schema 2 to 3"
        );
        Ok(())
    }

    /// Rebuilds the in-memory locations (`recent`) from the file: the ids of the last
    /// `RANGES - 1` blocks (read from their receipts, which name their tx) whose write height is
    /// above `head`. Older blocks are written whole. Ids of a file from schema 3 or older are in
    /// `tx_locations` already; holding them here too only means their write finds them there.
    fn load_recent(&self, head: u64) -> Result<(), StorageError> {
        let from = head
            .saturating_add(2)
            .saturating_sub(locations::RANGES)
            .max(1);
        let mut recent = locations::Recent::new();
        if from <= head {
            let rtx = self.begin_read()?;
            let t = rtx.open_table(RECEIPTS).ctx("opening block_receipts")?;
            for entry in t.range((from, 0)..).ctx("reading block_receipts")? {
                let (k, v) = entry.ctx("reading block_receipts")?;
                let (height, index) = k.value();
                let receipt: Receipt =
                    decode("block_receipts", format!("{height}/{index}"), v.value())?;
                if !locations::is_written(height, &receipt.tx_id, head) {
                    recent.insert(receipt.tx_id, (height, index));
                }
            }
        }
        tracing::debug!(ids = recent.len(), from, head, "recent tx locations loaded");
        *self.recent_mut() = recent;
        Ok(())
    }

    fn recent(&self) -> std::sync::RwLockReadGuard<'_, locations::Recent> {
        // A panic while holding the lock leaves at worst an id too many or too few in memory;
        // reads confirm every entry against the receipts, so go on rather than poison readers.
        self.recent.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn recent_mut(&self) -> std::sync::RwLockWriteGuard<'_, locations::Recent> {
        self.recent.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Test hook: writes every location held in memory to `tx_locations`, as schema 3 and older
    /// kept them (all of them), so a file can be turned into an older version's.
    #[cfg(any(test, feature = "test-hooks"))]
    pub fn write_all_locations(&self) -> Result<(), StorageError> {
        let held: Vec<(Hash, TxLocation)> = {
            let recent = self.recent();
            (0..locations::RANGES).flat_map(|r| recent.due(r)).collect()
        };
        self.write_all("writing every location", |txn| {
            let mut t = txn.open_table(TX_LOCATIONS).ctx("opening tx_locations")?;
            for (id, at) in &held {
                t.insert(&id.0, *at).ctx("writing tx_locations")?;
            }
            Ok(())
        })
    }

    /// Test hook: rewrites receipts as schema 2 kept them (by tx id, in `receipts`): all of
    /// them, with version 2 recorded (`keep: None`), or, to fake a migration cut short, only
    /// those at `index >= keep` of each block, leaving the rest where schema 3 keeps them. For
    /// the migration tests (unit and whole-node): a data dir as the previous version left it.
    #[cfg(any(test, feature = "test-hooks"))]
    pub fn receipts_to_schema_2(&self, keep: Option<u32>) -> Result<(), StorageError> {
        // Schema 2 and 3 wrote every location at once: the migration reads them.
        self.write_all_locations()?;
        self.write_all("rewriting receipts as schema 2", |txn| {
            {
                let mut new = txn.open_table(RECEIPTS).ctx("opening block_receipts")?;
                let mut old = txn.open_table(RECEIPTS_BY_ID).ctx("opening receipts")?;
                let mut rows: Vec<((u64, u32), Vec<u8>)> = Vec::new();
                for row in new.iter().ctx("reading block_receipts")? {
                    let (k, v) = row.ctx("reading block_receipts")?;
                    rows.push((k.value(), v.value().to_vec()));
                }
                for ((h, i), v) in rows {
                    if keep.is_some_and(|keep| i < keep) {
                        continue;
                    }
                    let r: Receipt = decode("block_receipts", h, &v)?;
                    old.insert(&r.tx_id.0, v.as_slice())
                        .ctx("writing receipts")?;
                    new.remove((h, i)).ctx("removing block_receipts")?;
                }
            }
            if keep.is_none() {
                txn.delete_table(RECEIPTS).ctx("deleting block_receipts")?;
                txn.open_table(META)
                    .ctx("opening meta")?
                    .insert(META_SCHEMA_VERSION, encode(&2u32).as_slice())
                    .ctx("writing meta")?;
            }
            Ok(())
        })
    }

    /// Adds the `bridge` table to a schema-2 file made before it existed (see `SCHEMA_VERSION`),
    /// so every read can rely on it.
    fn create_bridge_table(&self) -> Result<(), StorageError> {
        let txn = self.begin_write()?;
        txn.open_table(BRIDGE).ctx("creating bridge")?;
        txn.commit().ctx("committing bridge table")?;
        tracing::info!("added the bridge table to the data file");
        Ok(())
    }

    fn begin_read(&self) -> Result<ReadTransaction, StorageError> {
        self.db.begin_read().ctx("beginning read transaction")
    }

    fn begin_write(&self) -> Result<WriteTransaction, StorageError> {
        // A failed store takes no more writes: redb would refuse them anyway (or, after an error
        // it survived, write to a disk that just failed), and refusing here is immediate.
        if let Some(reason) = self.health.failure() {
            return Err(StorageError::FailedEarlier(reason.to_owned()));
        }
        self.db.begin_write().ctx("beginning write transaction")
    }

    /// The store's health, shared: failed for good after the first I/O error.
    pub fn health(&self) -> Arc<StorageHealth> {
        self.health.clone()
    }

    /// The chain id this database belongs to.
    pub fn chain_id(&self) -> &str {
        &self.params.chain_id
    }

    /// The chain's parameters, as recorded at genesis: the effective ones for this data, whatever
    /// a node's configuration says.
    pub fn params(&self) -> &ChainParams {
        &self.params
    }

    /// The database file, or `None` for the in-memory backend.
    pub fn path(&self) -> Option<&Path> {
        match &self.backend {
            Backend::File(p) => Some(p),
            Backend::Memory => None,
        }
    }

    /// The latest committed block header (genesis right after creation).
    pub fn head(&self) -> Result<BlockHeader, StorageError> {
        let rtx = self.begin_read()?;
        read_head(&rtx.open_table(META).ctx("opening meta")?)
    }

    /// The block at height `h`, if committed.
    pub fn block_by_height(&self, h: u64) -> Result<Option<Block>, StorageError> {
        let rtx = self.begin_read()?;
        read_block(&rtx.open_table(BLOCKS).ctx("opening blocks")?, h)
    }

    /// The block at height `h` in its canonical encoding, as stored (checked when it was
    /// committed), for answers that pass it on without looking inside (`/v1/sync/blocks`).
    pub fn block_bytes(&self, h: u64) -> Result<Option<Vec<u8>>, StorageError> {
        let rtx = self.begin_read()?;
        let t = rtx.open_table(BLOCKS).ctx("opening blocks")?;
        Ok(t.get(h).ctx("reading blocks")?.map(|g| g.value().to_vec()))
    }

    /// The block with this hash, if committed.
    pub fn block_by_hash(&self, h: &Hash) -> Result<Option<Block>, StorageError> {
        let rtx = self.begin_read()?;
        let index = rtx.open_table(BLOCK_INDEX).ctx("opening block_index")?;
        let Some(height) = index
            .get(&h.0)
            .ctx("reading block_index")?
            .map(|g| g.value())
        else {
            return Ok(None);
        };
        let block = read_block(&rtx.open_table(BLOCKS).ctx("opening blocks")?, height)?;
        match block {
            Some(b) => Ok(Some(b)),
            None => Err(StorageError::Corrupt(format!(
                "block_index maps {h} to height {height}, which has no block"
            ))),
        }
    }

    /// Where a committed transaction is: (block height, index in the block).
    pub fn tx_location(&self, id: &Hash) -> Result<Option<(u64, u32)>, StorageError> {
        Ok(self.located_receipt(id)?.map(|(at, _)| at))
    }

    /// The receipt of a committed transaction.
    pub fn receipt(&self, id: &Hash) -> Result<Option<Receipt>, StorageError> {
        Ok(self.located_receipt(id)?.map(|(_, r)| r))
    }

    /// Where a committed transaction is (block height, index) and its receipt, from one read
    /// transaction: the location is read once (it also keys the receipt).
    ///
    /// A location not yet written to `tx_locations` is held in memory (`recent`). That is read
    /// first, before the read transaction begins: a commit writes a location to the table before
    /// it forgets it in memory, so an id missing from memory was either never committed when
    /// memory was read or is in the table of any later read transaction. An id found in memory
    /// is confirmed by its receipt in the read transaction, because memory gets a block's ids
    /// just before its commit (or keeps them for a moment after a failed one).
    pub fn located_receipt(
        &self,
        id: &Hash,
    ) -> Result<Option<(TxLocation, Receipt)>, StorageError> {
        let held = self.recent().get(id);
        let rtx = self.begin_read()?;
        let receipts = rtx.open_table(RECEIPTS).ctx("opening block_receipts")?;
        if let Some(at) = held
            && let Some(g) = receipts.get(at).ctx("reading block_receipts")?
        {
            let receipt: Receipt = decode("block_receipts", id, g.value())?;
            if receipt.tx_id == *id {
                return Ok(Some((at, receipt)));
            }
        }
        let locations = rtx.open_table(TX_LOCATIONS).ctx("opening tx_locations")?;
        let Some((height, index)) = locations
            .get(&id.0)
            .ctx("reading tx_locations")?
            .map(|g| g.value())
        else {
            return Ok(None);
        };
        let receipt: Receipt = match receipts
            .get((height, index))
            .ctx("reading block_receipts")?
        {
            Some(g) => decode("block_receipts", id, g.value())?,
            None => {
                return Err(StorageError::Corrupt(format!(
                    "tx {id} is at height {height} index {index}, which has no receipt"
                )));
            }
        };
        if receipt.tx_id != *id {
            return Err(StorageError::Corrupt(format!(
                "the receipt at height {height} index {index} is tx {}'s, not {id}'s",
                receipt.tx_id
            )));
        }
        Ok(Some(((height, index), receipt)))
    }

    /// The receipts of the block at `height`, in block order; empty if there is no such block.
    pub fn block_receipts(&self, height: u64) -> Result<Vec<Receipt>, StorageError> {
        let rtx = self.begin_read()?;
        let Some(block) = read_block(&rtx.open_table(BLOCKS).ctx("opening blocks")?, height)?
        else {
            return Ok(Vec::new());
        };
        let t = rtx.open_table(RECEIPTS).ctx("opening block_receipts")?;
        block
            .txs
            .iter()
            .enumerate()
            .map(|(index, tx)| {
                let id = tx.tx.id();
                // A block holds at most u32::MAX transactions (`write_block` checks it).
                let at = (height, index as u32);
                let receipt: Receipt = match t.get(at).ctx("reading block_receipts")? {
                    Some(g) => decode("block_receipts", id, g.value())?,
                    None => {
                        return Err(StorageError::Corrupt(format!(
                            "block {height} holds tx {id} at index {index} but block_receipts \
                             has no entry there"
                        )));
                    }
                };
                if receipt.tx_id != id {
                    return Err(StorageError::Corrupt(format!(
                        "block {height} index {index} holds tx {id} but its receipt is tx {}'s",
                        receipt.tx_id
                    )));
                }
                Ok(receipt)
            })
            .collect()
    }

    /// A deployed contract's record.
    pub fn contract(&self, a: &Address) -> Result<Option<ContractInfo>, StorageError> {
        let rtx = self.begin_read()?;
        read_contract(&rtx.open_table(CONTRACTS).ctx("opening contracts")?, a)
    }

    /// Contract code by its hash.
    pub fn code(&self, code_hash: &Hash) -> Result<Option<Vec<u8>>, StorageError> {
        let rtx = self.begin_read()?;
        read_code(&rtx.open_table(CODE).ctx("opening code")?, code_hash)
    }

    /// One key of a contract's storage.
    pub fn storage_get(&self, a: &Address, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        let rtx = self.begin_read()?;
        read_state(
            &rtx.open_table(CONTRACT_STATE)
                .ctx("opening contract_state")?,
            a,
            key,
        )
    }

    /// The sender's next nonce (0 for a sender never seen).
    pub fn nonce(&self, sender: &PublicKey) -> Result<u64, StorageError> {
        let rtx = self.begin_read()?;
        read_nonce(&rtx.open_table(NONCES).ctx("opening nonces")?, sender)
    }

    /// A consistent view of the current head and state, unaffected by later commits.
    pub fn snapshot(&self) -> Result<Snapshot, StorageError> {
        let rtx = self.begin_read()?;
        // The table handles keep the read transaction's view alive on their own, so the
        // transaction itself can be dropped here.
        Ok(Snapshot {
            meta: rtx.open_table(META).ctx("opening meta")?,
            contracts: rtx.open_table(CONTRACTS).ctx("opening contracts")?,
            code: rtx.open_table(CODE).ctx("opening code")?,
            state: rtx
                .open_table(CONTRACT_STATE)
                .ctx("opening contract_state")?,
            nonces: rtx.open_table(NONCES).ctx("opening nonces")?,
        })
    }

    /// Commits one block with its receipts and state writes in a single write transaction.
    ///
    /// Checks (inside the transaction): `header.height == head + 1`, `parent_hash == head hash`,
    /// one receipt per transaction in the same order, and no transaction id already stored.
    /// Writes the block (by height, plus a hash -> height index), tx locations, receipts (by tx
    /// id), every `WriteSet` entry and moves the head (the mempool journal is another file;
    /// the mempool forgets committed transactions from it lazily). Any error aborts the transaction: nothing of the block becomes visible.
    pub fn commit_block(
        &self,
        block: &Block,
        receipts: &[Receipt],
        writes: &WriteSet,
    ) -> Result<(), StorageError> {
        let ids: Vec<Hash> = block.txs.iter().map(|t| t.tx.id()).collect();
        self.commit_block_with_ids(block, &ids, receipts, writes)
    }

    /// [`Storage::commit_block`] for a caller that already holds the ids of `block.txs`, in
    /// order (the sequencer carries them from verification: `chain::Built::tx_ids`), so the
    /// block's transactions are not hashed again. The caller answers for `tx_ids[i]` being
    /// `block.txs[i]`'s id; the count is checked, and every receipt must name its id as
    /// before. Everything is encoded before the write transaction begins: redb has one writer
    /// at a time (the bridge's writes wait for it), so the lock is held for the writes only.
    pub fn commit_block_with_ids(
        &self,
        block: &Block,
        tx_ids: &[Hash],
        receipts: &[Receipt],
        writes: &WriteSet,
    ) -> Result<(), StorageError> {
        let started = Instant::now();
        if tx_ids.len() != block.txs.len() {
            return Err(StorageError::Corrupt(format!(
                "block {} has {} transactions but {} ids were given",
                block.header.height,
                block.txs.len(),
                tx_ids.len()
            )));
        }
        #[cfg(any(test, feature = "test-hooks"))]
        for (t, id) in block.txs.iter().zip(tx_ids) {
            assert_eq!(
                t.tx.id(),
                *id,
                "commit_block_with_ids: an id is not its tx's"
            );
        }
        let encoded = Encoded {
            block: block.encode(),
            receipts: receipts.iter().map(encode).collect(),
        };
        // Whether `write_block` put this block's ids in `recent`: they must come out again if
        // the commit fails (and only then: a duplicate found before leaves `recent` as it was).
        let mut held = false;
        let written = self.write_all("committing block", |txn| {
            self.write_block(txn, block, tx_ids, receipts, &encoded, writes, &mut held)
        });
        let written = match written {
            Ok(written) => written,
            Err(e) => {
                if held {
                    self.recent_mut().remove(tx_ids);
                }
                return Err(e);
            }
        };
        // Only now, once they are in the table for every later read (see `located_receipt`).
        self.recent_mut().remove(written.iter().map(|(id, _)| id));
        tracing::debug!(
            height = block.header.height,
            txs = block.txs.len(),
            locations_written = written.len(),
            elapsed_us = started.elapsed().as_micros() as u64,
            "block committed to storage"
        );
        Ok(())
    }

    /// Runs `f` in one write transaction and commits it; any error (or the test fail-point)
    /// aborts it, so every write through here (a block, a bridge change) is all or nothing.
    fn write_all<T>(
        &self,
        what: &str,
        f: impl FnOnce(&WriteTransaction) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let txn = self.begin_write()?;
        let out = match f(&txn) {
            Ok(v) => v,
            Err(e) => {
                Self::abort(txn);
                return Err(e);
            }
        };
        #[cfg(test)]
        if self
            .fail_before_commit
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            Self::abort(txn);
            return Err(StorageError::Injected);
        }
        txn.commit().ctx(what)?;
        Ok(out)
    }

    fn abort(txn: WriteTransaction) {
        // Dropping would abort too; aborting explicitly lets us log if even that fails.
        if let Err(e) = txn.abort() {
            tracing::warn!(error = %e, "aborting storage write transaction failed");
        }
    }

    /// Writes `block` in `txn`; returns the locations it wrote to `tx_locations` (this height's
    /// range: see `locations`), for the caller to forget in `recent` once committed. Sets
    /// `held` once the block's ids are in `recent`.
    #[allow(clippy::too_many_arguments)]
    fn write_block(
        &self,
        txn: &WriteTransaction,
        block: &Block,
        ids: &[Hash],
        receipts: &[Receipt],
        encoded: &Encoded,
        writes: &WriteSet,
        held: &mut bool,
    ) -> Result<Vec<(Hash, TxLocation)>, StorageError> {
        let header = &block.header;
        let mut meta = txn.open_table(META).ctx("opening meta")?;
        let head = read_head(&meta)?;
        let expected = head
            .height
            .checked_add(1)
            .ok_or(StorageError::NotNextBlock {
                expected: u64::MAX,
                got: header.height,
            })?;
        if header.height != expected {
            return Err(StorageError::NotNextBlock {
                expected,
                got: header.height,
            });
        }
        let head_hash = head.hash();
        if header.parent_hash != head_hash {
            return Err(StorageError::ParentMismatch {
                expected: head_hash,
                got: header.parent_hash,
            });
        }
        if receipts.len() != block.txs.len() {
            return Err(StorageError::ReceiptCount {
                txs: block.txs.len(),
                receipts: receipts.len(),
            });
        }
        if u32::try_from(block.txs.len()).is_err() {
            return Err(StorageError::TooManyTxs);
        }
        for (index, (id, r)) in ids.iter().zip(receipts).enumerate() {
            if r.tx_id != *id {
                return Err(StorageError::ReceiptMismatch {
                    index,
                    block_tx: *id,
                    receipt_tx: r.tx_id,
                });
            }
        }

        let height = header.height;
        let hash = block.hash();
        {
            let mut blocks = txn.open_table(BLOCKS).ctx("opening blocks")?;
            if blocks
                .insert(height, encoded.block.as_slice())
                .ctx("writing blocks")?
                .is_some()
            {
                return Err(StorageError::Corrupt(format!(
                    "a block is already stored at height {height}, above head {}",
                    head.height
                )));
            }
        }
        txn.open_table(BLOCK_INDEX)
            .ctx("opening block_index")?
            .insert(&hash.0, height)
            .ctx("writing block_index")?;
        let written = {
            let mut locations = txn.open_table(TX_LOCATIONS).ctx("opening tx_locations")?;
            // No id stored twice: not in the table, not among the recent ones held in memory,
            // not twice in this block (`insert_block` refuses the last two). The table is only
            // searched for the transactions whose nonce is below their sender's stored next
            // nonce: a chain's blocks come from execution (`chain::build`, or `chain::verify`
            // on a follower), which includes a transaction only at its sender's next nonce and
            // raises that nonce past it, so a transaction at or above it was never stored (its
            // id commits to its sender and nonce). On a large chain the table outgrows the
            // page cache, and that search read a random leaf from the file per transaction:
            // 6% of the node's CPU at the peak (RUNBOOK "What bounds the node now").
            let stored = txn.open_table(NONCES).ctx("opening nonces")?;
            let mut next_nonces: FastMap<PublicKey, u64> = FastMap::default();
            for (t, id) in block.txs.iter().zip(ids) {
                let next = match next_nonces.entry(t.tx.sender) {
                    std::collections::hash_map::Entry::Occupied(e) => *e.get(),
                    std::collections::hash_map::Entry::Vacant(e) => {
                        *e.insert(read_nonce(&stored, &t.tx.sender)?)
                    }
                };
                if t.tx.nonce < next && locations.get(&id.0).ctx("reading tx_locations")?.is_some()
                {
                    return Err(StorageError::DuplicateTx(*id));
                }
            }
            drop(stored);
            self.recent_mut()
                .insert_block(height, ids)
                .map_err(StorageError::DuplicateTx)?;
            *held = true;
            // The locations due at this height: this range's ids of the last `RANGES` blocks,
            // this one's included, in key order.
            let due = self.recent().due(height);
            for (id, at) in &due {
                if let Some(prev) = locations.insert(&id.0, *at).ctx("writing tx_locations")?
                    && prev.value() != *at
                {
                    // Only a file from schema 3 or older has them already, at the same place.
                    let (h, i) = prev.value();
                    return Err(StorageError::Corrupt(format!(
                        "tx_locations has tx {id} at height {h} index {i}, the chain at {}/{}",
                        at.0, at.1
                    )));
                }
            }
            due
        };
        {
            let mut receipts_t = txn.open_table(RECEIPTS).ctx("opening block_receipts")?;
            // Receipts go in by position: appended at the right edge of their table.
            for (index, receipt) in encoded.receipts.iter().enumerate() {
                // Checked above that the count fits in u32.
                receipts_t
                    .insert((height, index as u32), receipt.as_slice())
                    .ctx("writing block_receipts")?;
            }
        }
        Self::apply_writes(txn, writes)?;
        meta.insert(META_HEAD, encode(header).as_slice())
            .ctx("writing head")?;
        Ok(written)
    }

    fn apply_writes(txn: &WriteTransaction, writes: &WriteSet) -> Result<(), StorageError> {
        if !writes.storage.is_empty() {
            let mut state = txn
                .open_table(CONTRACT_STATE)
                .ctx("opening contract_state")?;
            for ((addr, key), value) in &writes.storage {
                with_state_key(addr, key.as_ref(), |k| match value {
                    Some(v) => state.insert(k, v.as_ref()).map(drop),
                    None => state.remove(k).map(drop),
                })
                .ctx("writing contract_state")?;
            }
        }
        if !writes.contracts.is_empty() {
            let mut contracts = txn.open_table(CONTRACTS).ctx("opening contracts")?;
            for (addr, info) in &writes.contracts {
                contracts
                    .insert(&addr.0, encode(info).as_slice())
                    .ctx("writing contracts")?;
            }
        }
        if !writes.code.is_empty() {
            let mut code = txn.open_table(CODE).ctx("opening code")?;
            for (hash, bytes) in &writes.code {
                code.insert(&hash.0, bytes.as_ref()).ctx("writing code")?;
            }
        }
        if !writes.nonces.is_empty() {
            let mut nonces = txn.open_table(NONCES).ctx("opening nonces")?;
            for (sender, next) in &writes.nonces {
                nonces.insert(&sender.0, *next).ctx("writing nonces")?;
            }
        }
        Ok(())
    }

    /// Journals transactions (keyed by tx id) in the chain database's legacy journal table, as
    /// versions before `journal.redb` did: for migration tests. The node's journal is
    /// `JournalStore`.
    pub fn journal_put(&self, txs: &[SignedTx]) -> Result<(), StorageError> {
        if txs.is_empty() {
            return Ok(());
        }
        let txn = self.begin_write()?;
        {
            let mut j = txn
                .open_table(MEMPOOL_JOURNAL)
                .ctx("opening mempool_journal")?;
            for tx in txs {
                j.insert(&tx.tx.id().0, encode(tx).as_slice())
                    .ctx("writing mempool_journal")?;
            }
        }
        txn.commit().ctx("committing mempool_journal")
    }

    /// Forgets rows of the legacy journal table; unknown ids are ignored (the migration clears
    /// what it moved with this).
    pub fn journal_remove(&self, ids: &[Hash]) -> Result<(), StorageError> {
        self.journal_write(&[], ids)
    }

    /// One write transaction for the mempool: journals `put` (each with its arrival sequence)
    /// and forgets `remove` (evicted transactions), all or nothing. Ids in both are forgotten.
    pub fn journal_write(
        &self,
        put: &[(u64, &SignedTx)],
        remove: &[Hash],
    ) -> Result<(), StorageError> {
        let put: Vec<(u64, Hash, &SignedTx)> =
            put.iter().map(|(seq, t)| (*seq, t.tx.id(), *t)).collect();
        self.journal_write_ids(&put, remove)
    }

    /// [`Storage::journal_write`] with each transaction's id given (`VerifiedTx` carries it),
    /// so admission does not hash a transaction again. The transactions are encoded before the
    /// write transaction begins: redb has one writer at a time (block commits wait for it), so
    /// it is held for the writes only.
    pub fn journal_write_ids(
        &self,
        put: &[(u64, Hash, &SignedTx)],
        remove: &[Hash],
    ) -> Result<(), StorageError> {
        if put.is_empty() && remove.is_empty() {
            return Ok(());
        }
        let encoded: Vec<Vec<u8>> = put.iter().map(|(_, _, t)| encode(*t)).collect();
        let txn = self.begin_write()?;
        {
            let mut j = txn
                .open_table(MEMPOOL_JOURNAL)
                .ctx("opening mempool_journal")?;
            let mut order = txn.open_table(MEMPOOL_ORDER).ctx("opening mempool_order")?;
            for ((seq, id, _), bytes) in put.iter().zip(&encoded) {
                j.insert(&id.0, bytes.as_slice())
                    .ctx("writing mempool_journal")?;
                order.insert(&id.0, *seq).ctx("writing mempool_order")?;
            }
            for id in remove {
                j.remove(&id.0).ctx("writing mempool_journal")?;
                order.remove(&id.0).ctx("writing mempool_order")?;
            }
        }
        txn.commit().ctx("committing mempool_journal")
    }

    /// Every journaled transaction with its arrival sequence (`None` if it was journaled
    /// without one, by `journal_put` or an older version), ordered by tx id.
    pub fn journal_all_ordered(&self) -> Result<Vec<(Option<u64>, SignedTx)>, StorageError> {
        let rtx = self.begin_read()?;
        let order = match rtx.open_table(MEMPOOL_ORDER) {
            Ok(t) => Some(t),
            // A file from before the order table: no order known yet.
            Err(TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(e).ctx("opening mempool_order"),
        };
        let mut out = Vec::new();
        for tx in self.journal_all()? {
            let seq = match &order {
                Some(o) => o
                    .get(&tx.tx.id().0)
                    .ctx("reading mempool_order")?
                    .map(|v| v.value()),
                None => None,
            };
            out.push((seq, tx));
        }
        Ok(out)
    }

    /// Every journaled transaction, ordered by tx id (not arrival order: the mempool re-orders
    /// them by sender and nonce when it re-admits them).
    pub fn journal_all(&self) -> Result<Vec<SignedTx>, StorageError> {
        let rtx = self.begin_read()?;
        let j = rtx
            .open_table(MEMPOOL_JOURNAL)
            .ctx("opening mempool_journal")?;
        let mut out = Vec::new();
        for entry in j.iter().ctx("reading mempool_journal")? {
            let (k, v) = entry.ctx("reading mempool_journal")?;
            out.push(decode("mempool_journal", Hash(*k.value()), v.value())?);
        }
        Ok(out)
    }

    /// Number of rows in the bridge outbox: batches staged and not yet anchored (including
    /// delivered ones waiting for a batch below them). 0 while the bridge is disabled.
    pub fn outbox_len(&self) -> Result<u64, StorageError> {
        let rtx = self.begin_read()?;
        rtx.open_table(OUTBOX)
            .ctx("opening outbox")?
            .len()
            .ctx("reading outbox")
    }
}

impl Snapshot {
    /// The head header as of this snapshot.
    pub fn head(&self) -> Result<BlockHeader, StorageError> {
        read_head(&self.meta)
    }

    /// A deployed contract's record.
    pub fn contract(&self, a: &Address) -> Result<Option<ContractInfo>, StorageError> {
        read_contract(&self.contracts, a)
    }

    /// Contract code by its hash.
    pub fn code(&self, h: &Hash) -> Result<Option<Vec<u8>>, StorageError> {
        read_code(&self.code, h)
    }

    /// One key of a contract's storage.
    pub fn storage_get(&self, a: &Address, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        read_state(&self.state, a, key)
    }

    /// The sender's next nonce (0 for a sender never seen).
    pub fn nonce(&self, s: &PublicKey) -> Result<u64, StorageError> {
        read_nonce(&self.nonces, s)
    }
}

/// The VM reads a block's parent state through a snapshot: one consistent point in time.
impl crate::vm::StateView for Snapshot {
    fn storage_get(
        &self,
        contract: &Address,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, crate::vm::StateError> {
        Snapshot::storage_get(self, contract, key).map_err(crate::vm::StateError::new)
    }
    fn contract(&self, address: &Address) -> Result<Option<ContractInfo>, crate::vm::StateError> {
        Snapshot::contract(self, address).map_err(crate::vm::StateError::new)
    }
    fn code(&self, code_hash: &Hash) -> Result<Option<Vec<u8>>, crate::vm::StateError> {
        Snapshot::code(self, code_hash).map_err(crate::vm::StateError::new)
    }
    fn nonce(&self, sender: &PublicKey) -> Result<u64, crate::vm::StateError> {
        Snapshot::nonce(self, sender).map_err(crate::vm::StateError::new)
    }
}
