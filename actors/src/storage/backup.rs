//! Backups of a live database and restoring one into a data dir.
//!
//! Why not copy the file: redb's commit protocol makes a file it writes in place crash-safe, but
//! a byte copy (`cp`, `tar`) of a file that is being committed to reads its pages at different
//! moments, so the copy can hold half of one commit and half of another (torn pages, a root that
//! points at pages the copy took before they were written). Only a copy of a stopped node's file
//! is safe. A backup here instead reads every table through ONE read transaction: redb gives it
//! the view of the last commit before it began, whatever commits happen meanwhile, so the copy
//! is exactly the database at one block height.
//!
//! Invariants:
//! - Consistent: every table is copied from the same read transaction; the copy is a new redb
//!   file written by redb itself (not a byte copy), then reopened with `Storage::open_existing`
//!   and its head compared with the one the read transaction saw.
//! - Complete: every table the file holds is copied; a table this build does not know refuses
//!   the backup instead of leaving it out silently.
//! - Never blocks commits: a read transaction takes no lock writers wait for (redb is MVCC); the
//!   cost is that pages freed meanwhile are kept until the backup ends, so the live file may
//!   grow by what the chain writes during the backup.
//! - Never half a file: the copy is written to `<out>.partial` and renamed to `out` only once
//!   complete and synced; an existing `out` is never overwritten.
//! - Restore puts a file into a data dir only when it holds no database, or with `force` when no
//!   process has the database open; the replaced file is kept aside, never deleted.
//!   Checking the backup (`Storage::check`) is the caller's job, before `restore`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use redb::{Database, Key, ReadTransaction, TableDefinition, TableError, TableHandle, Value};

use super::tables::{
    BLOCK_INDEX, BLOCKS, BRIDGE, CODE, CONTRACT_STATE, CONTRACTS, MEMPOOL_JOURNAL, MEMPOOL_ORDER,
    META, NONCES, OUTBOX, RECEIPTS, TX_LOCATIONS,
};
use super::{Ctx, Storage, StorageError, read_head};
use crate::types::Hash;

/// The database file's name in a data dir.
pub const DB_FILE: &str = "accumen.redb";

/// Why a backup or restore was refused or failed. Nothing is left behind: a partial copy is
/// removed and the target data dir is unchanged.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{} already exists; a backup never overwrites a file: choose a new name", .0.display())]
    OutExists(PathBuf),
    #[error(
        "data dir {} already holds a database ({}); restore only into a data dir without one, or \
         pass --force (with the node stopped) to replace it (the old file is kept aside)",
        .0.display(), .1.display()
    )]
    TargetNotEmpty(PathBuf, PathBuf),
    #[error("{} is not a file", .0.display())]
    NotAFile(PathBuf),
    #[error(
        "table {0:?} is not known to this build; refusing a backup that would leave it out (use \
         the accumen version that wrote this data dir)"
    )]
    UnknownTable(String),
    #[error("the copy does not reopen at the backed-up head: {0}")]
    CopyMismatch(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> StorageError {
    move |source| StorageError::Io { what, source }
}

/// What a backup copied.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BackupStats {
    /// The head of the copy: the last block committed before the backup's read transaction.
    pub head_height: u64,
    pub head_hash: Hash,
    /// Tables and entries copied.
    pub tables: usize,
    pub entries: u64,
    /// Size of the backup file.
    pub bytes: u64,
    #[serde(with = "millis")]
    pub elapsed: Duration,
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RestoreStats {
    /// The database file written.
    pub path: PathBuf,
    pub bytes: u64,
    /// Where the replaced database was moved (`force` over an existing one).
    pub replaced: Option<PathBuf>,
}

mod millis {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
}

/// Copies one table from `rtx` into `dst` in its own write transaction; `None` when the source
/// has no such table (an older file may lack an additive table, e.g. `mempool_order`).
fn copy_table<K: Key + 'static, V: Value + 'static>(
    rtx: &ReadTransaction,
    dst: &Database,
    def: TableDefinition<'static, K, V>,
) -> Result<Option<u64>, StorageError> {
    let name = def.name();
    let src = match rtx.open_table(def) {
        Ok(t) => t,
        Err(TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(e).ctx(&format!("opening {name}")),
    };
    let wtx = dst.begin_write().ctx("beginning backup write")?;
    let mut n = 0u64;
    {
        let mut t = wtx
            .open_table(def)
            .ctx(&format!("creating {name} in the backup"))?;
        for item in redb::ReadableTable::iter(&src).ctx(&format!("reading {name}"))? {
            let (k, v) = item.ctx(&format!("reading {name}"))?;
            t.insert(k.value(), v.value())
                .ctx(&format!("writing {name} to the backup"))?;
            n += 1;
        }
    }
    wtx.commit().ctx("committing backup table")?;
    Ok(Some(n))
}

/// Syncs a directory so a rename in it survives a crash.
fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(format!("syncing {}", dir.display())))
}

fn parent(p: &Path) -> &Path {
    p.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// `path` with `suffix` appended to its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

impl Storage {
    /// Writes a consistent copy of the whole database, as of one read transaction, to the new
    /// file `out` (see the module docs). Runs for as long as the copy takes; call it off any
    /// actor's thread. Commits go on meanwhile.
    pub fn backup_to(&self, out: &Path) -> Result<BackupStats, BackupError> {
        let started = Instant::now();
        if out.exists() {
            return Err(BackupError::OutExists(out.to_path_buf()));
        }
        let partial = with_suffix(out, ".partial");
        let result = self.write_backup(&partial, started);
        let stats = match result {
            Ok(s) => s,
            Err(e) => {
                let _ = std::fs::remove_file(&partial);
                return Err(e);
            }
        };
        // `hard_link` + remove instead of `rename`: rename silently replaces a file that
        // appeared at `out` meanwhile; a link fails instead.
        let linked = std::fs::hard_link(&partial, out);
        let _ = std::fs::remove_file(&partial);
        linked.map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                BackupError::OutExists(out.to_path_buf())
            } else {
                io(format!("moving the backup to {}", out.display()))(e).into()
            }
        })?;
        sync_dir(parent(out))?;
        Ok(BackupStats {
            elapsed: started.elapsed(),
            ..stats
        })
    }

    fn write_backup(&self, partial: &Path, started: Instant) -> Result<BackupStats, BackupError> {
        let _ = std::fs::remove_file(partial);
        let rtx = self.begin_read()?;
        let head = read_head(&rtx.open_table(META).ctx("opening meta")?)?;
        let known: BTreeSet<&str> = [
            META.name(),
            BLOCKS.name(),
            BLOCK_INDEX.name(),
            TX_LOCATIONS.name(),
            RECEIPTS.name(),
            CONTRACTS.name(),
            CODE.name(),
            CONTRACT_STATE.name(),
            NONCES.name(),
            MEMPOOL_JOURNAL.name(),
            MEMPOOL_ORDER.name(),
            OUTBOX.name(),
            BRIDGE.name(),
        ]
        .into();
        for t in rtx.list_tables().ctx("listing tables")? {
            if !known.contains(t.name()) {
                return Err(BackupError::UnknownTable(t.name().to_owned()));
            }
        }
        let dst = Database::create(partial).ctx(&format!("creating {}", partial.display()))?;
        let copied = [
            copy_table(&rtx, &dst, META)?,
            copy_table(&rtx, &dst, BLOCKS)?,
            copy_table(&rtx, &dst, BLOCK_INDEX)?,
            copy_table(&rtx, &dst, TX_LOCATIONS)?,
            copy_table(&rtx, &dst, RECEIPTS)?,
            copy_table(&rtx, &dst, CONTRACTS)?,
            copy_table(&rtx, &dst, CODE)?,
            copy_table(&rtx, &dst, CONTRACT_STATE)?,
            copy_table(&rtx, &dst, NONCES)?,
            copy_table(&rtx, &dst, MEMPOOL_JOURNAL)?,
            copy_table(&rtx, &dst, MEMPOOL_ORDER)?,
            copy_table(&rtx, &dst, OUTBOX)?,
            copy_table(&rtx, &dst, BRIDGE)?,
        ];
        drop(rtx);
        drop(dst);
        std::fs::File::open(partial)
            .and_then(|f| f.sync_all())
            .map_err(io(format!("syncing {}", partial.display())))?;
        // The copy must open as a node would open it, at the head the read transaction saw.
        let reopened = Storage::open_existing(partial)?;
        let got = reopened.head()?;
        if got != head || reopened.params() != self.params() {
            return Err(BackupError::CopyMismatch(format!(
                "head {} at height {} in the copy, {} at height {} in the source",
                got.hash(),
                got.height,
                head.hash(),
                head.height
            )));
        }
        drop(reopened);
        let bytes = std::fs::metadata(partial)
            .map_err(io(format!("reading {}", partial.display())))?
            .len();
        Ok(BackupStats {
            head_height: head.height,
            head_hash: head.hash(),
            tables: copied.iter().flatten().count(),
            entries: copied.iter().flatten().sum(),
            bytes,
            elapsed: started.elapsed(),
        })
    }
}

/// Puts the backup `from` into `data_dir` as its database (see the module docs): refused when
/// the data dir already has one, unless `force`; even then refused while a process holds it.
/// The backup is copied to a temporary name, synced, then renamed, so a crash leaves either no
/// database or the whole one. Check `from` first (`Storage::check`).
pub fn restore(from: &Path, data_dir: &Path, force: bool) -> Result<RestoreStats, BackupError> {
    let meta = std::fs::metadata(from).map_err(io(format!("reading {}", from.display())))?;
    if !meta.is_file() {
        return Err(BackupError::NotAFile(from.to_path_buf()));
    }
    std::fs::create_dir_all(data_dir).map_err(io(format!("creating {}", data_dir.display())))?;
    let target = data_dir.join(DB_FILE);
    let mut replaced = None;
    if target.exists() {
        if !force {
            return Err(BackupError::TargetNotEmpty(data_dir.to_path_buf(), target));
        }
        // A running node holds the file open: replacing it under the node would be lost at its
        // next commit, or worse. Opening it takes redb's lock, so it tells.
        match Storage::open_existing(&target) {
            Err(e @ StorageError::Locked(_)) => return Err(e.into()),
            Ok(s) => drop(s),
            // A damaged file is exactly what a forced restore replaces.
            Err(_) => {}
        }
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let aside = with_suffix(&target, &format!(".replaced-{secs}"));
        std::fs::rename(&target, &aside).map_err(io(format!(
            "moving {} aside to {}",
            target.display(),
            aside.display()
        )))?;
        replaced = Some(aside);
    }
    let tmp = with_suffix(&target, ".restoring");
    let copied = std::fs::copy(from, &tmp).and_then(|n| {
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map(|()| n)
    });
    let bytes = match copied {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(io(format!("copying {} to {}", from.display(), tmp.display()))(e).into());
        }
    };
    std::fs::rename(&tmp, &target).map_err(io(format!("renaming {}", tmp.display())))?;
    sync_dir(data_dir)?;
    Ok(RestoreStats {
        path: target,
        bytes,
        replaced,
    })
}
