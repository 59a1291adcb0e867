//! `accumen backup`, `accumen restore` and `accumen db check`: the operator's tools for a data
//! dir's database (the work itself is `accumen_actors::storage`'s `backup_to`, `restore` and
//! `check`; this is the command line around it).
//!
//! Exit codes (RUNBOOK.md "Backup and recovery"): 0 done (check: no problem); 1 the check found
//! problems, or the database is damaged beyond opening or reading (in the data dir, or in the
//! backup a restore was given, which then restores nothing); 2 bad usage (missing or contradictory arguments, a configuration that does not
//! load); 3 could not do it (no database, the database is held by a running node, an I/O error,
//! a target that already holds a database without `--force`).
//!
//! Invariants: `db check` and `backup` never change the data they read beyond what opening a
//! database does (redb's recovery of an uncleanly closed file); `restore` checks the backup
//! fully before touching the target and leaves the target unchanged when it refuses.

use std::path::{Path, PathBuf};

use accumen_actors::storage::{self, CheckReport, DB_FILE, Storage, StorageError};
use accumen_actors::types::PublicKey;
use accumen_actors::vm::{Vm, VmConfig};
use anyhow::Context;
use clap::Args;

use crate::settings::Settings;

/// Process exit codes of these commands.
pub const EXIT_OK: u8 = 0;
pub const EXIT_PROBLEMS: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_FAILED: u8 = 3;

/// Where the data dir is: given directly, or the `data_dir` of a node configuration (which also
/// gives the sequencer key to check blocks against and the engine limits).
#[derive(Debug, Clone, Args)]
pub struct Target {
    /// The node's configuration; its data_dir and sequencer key are used.
    #[arg(long, conflicts_with = "data_dir")]
    pub config: Option<PathBuf>,
    /// The data dir (holding accumen.redb), with the node stopped.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub target: Target,
    /// The backup file to write; must not exist.
    #[arg(long)]
    pub out: PathBuf,
    /// Base URL of the running node's admin listener (default: the configuration's
    /// `admin_addr`); the node makes the copy (`GET /admin/backup`).
    #[arg(long)]
    pub admin: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct RestoreArgs {
    /// The backup file (from `accumen backup`, or a stopped node's accumen.redb).
    #[arg(long)]
    pub from: PathBuf,
    #[command(flatten)]
    pub target: Target,
    /// Replace a database the data dir already holds (the node must be stopped; the old file is
    /// kept as accumen.redb.replaced-<unix seconds>).
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub target: Target,
}

/// A failure with the exit code it maps to.
struct Fail(u8, anyhow::Error);

impl<E: Into<anyhow::Error>> From<E> for Fail {
    fn from(e: E) -> Self {
        Fail(EXIT_FAILED, e.into())
    }
}

fn usage(msg: impl Into<String>) -> Fail {
    Fail(EXIT_USAGE, anyhow::anyhow!(msg.into()))
}

/// What a `Target` resolves to.
struct Resolved {
    data_dir: PathBuf,
    settings: Option<Settings>,
}

impl Target {
    fn resolve(&self) -> Result<Resolved, Fail> {
        match (&self.config, &self.data_dir) {
            (Some(config), None) => {
                let settings = Settings::load(config).map_err(|e| usage(e.to_string()))?;
                Ok(Resolved {
                    data_dir: settings.data_dir.clone(),
                    settings: Some(settings),
                })
            }
            (None, Some(dir)) => Ok(Resolved {
                data_dir: dir.clone(),
                settings: None,
            }),
            _ => Err(usage("give --data-dir DIR or --config FILE")),
        }
    }
}

impl Resolved {
    fn db(&self) -> PathBuf {
        self.data_dir.join(DB_FILE)
    }

    /// The sequencer key blocks are checked against: the configured key file's, if a
    /// configuration was given and its key file exists.
    fn sequencer(&self) -> Result<Option<PublicKey>, Fail> {
        let Some(path) = self.settings.as_ref().and_then(|s| s.sequencer_key_path()) else {
            return Ok(None);
        };
        if !path.exists() {
            return Ok(None);
        }
        let key = crate::keyfile::read(&path)
            .with_context(|| format!("reading the sequencer key {}", path.display()))?;
        Ok(Some(key.public()))
    }

    /// An engine for re-executing `storage`'s chain: the configuration's limits (without its
    /// module cache: a check must compile what it runs) or this build's defaults.
    fn vm(&self, storage: &Storage) -> Result<Vm, Fail> {
        let node = match &self.settings {
            Some(s) => VmConfig {
                cache_dir: None,
                ..s.vm_config()
            },
            None => VmConfig::default(),
        };
        let config = storage.params().vm_config(&node);
        Ok(Vm::new(config).context("contract engine")?)
    }
}

/// Opens an existing database for a tool, with an error saying what to do.
fn open(path: &Path) -> Result<Storage, Fail> {
    match Storage::open_existing(path) {
        Ok(s) => Ok(s),
        Err(StorageError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Err(Fail(
                EXIT_FAILED,
                anyhow::anyhow!("no database at {}", path.display()),
            ))
        }
        Err(e @ StorageError::Locked(_)) => Err(Fail(EXIT_FAILED, anyhow::anyhow!("{e}"))),
        Err(e) => Err(Fail(
            damage_code(&e),
            anyhow::Error::new(e).context(format!("opening {}", path.display())),
        )),
    }
}

/// Exit code for a storage error: damaged data is a problem found (1), anything else (I/O, a
/// lock) means the tool could not do its work (3).
fn damage_code(e: &StorageError) -> u8 {
    if e.is_damage() || matches!(e, StorageError::SchemaMismatch { .. }) {
        EXIT_PROBLEMS
    } else {
        EXIT_FAILED
    }
}

fn finish(result: Result<(u8, serde_json::Value), Fail>) -> u8 {
    match result {
        Ok((code, v)) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&v).unwrap_or_else(|_| v.to_string())
            );
            code
        }
        Err(Fail(code, e)) => {
            eprintln!("accumen: {e:#}");
            code
        }
    }
}

/// `accumen db check`: prints the report as JSON and each problem on stderr.
pub fn run_check(args: CheckArgs) -> u8 {
    finish((|| {
        let r = args.target.resolve()?;
        let storage = open(&r.db())?;
        let mut report = check(&r, &storage)?;
        check_journal(&r.db(), &storage, &mut report)?;
        let code = if report.ok() { EXIT_OK } else { EXIT_PROBLEMS };
        Ok((code, serde_json::to_value(&report)?))
    })())
}

/// The mempool journal file beside the database, if there is one (a sequencer with
/// `mempool.persist`): every row decodes, none repeats; committed rows are counted (removal is
/// lazy). It is not part of a backup (RUNBOOK "Backup and recovery").
fn check_journal(db: &Path, storage: &Storage, report: &mut CheckReport) -> Result<(), Fail> {
    let path = db.with_file_name(storage::JOURNAL_FILE);
    if !path.exists() {
        return Ok(());
    }
    let result = storage::JournalStore::open(&path, storage.chain_id(), Default::default())
        .and_then(|j| j.check(storage));
    let found = result.map_err(|e| {
        Fail(
            damage_code(&e),
            anyhow::Error::new(e).context(format!("checking {}", path.display())),
        )
    })?;
    for (seq, what) in &found.problems {
        eprintln!("accumen: db check: table journal, key {seq}: {what}");
    }
    report.add_journal(found);
    Ok(())
}

fn check(r: &Resolved, storage: &Storage) -> Result<CheckReport, Fail> {
    let vm = r.vm(storage)?;
    let report = storage.check(&vm, r.sequencer()?).map_err(|e| {
        Fail(
            damage_code(&e),
            anyhow::Error::new(e).context("checking the database"),
        )
    })?;
    for p in &report.problems {
        eprintln!("accumen: db check: {p}");
    }
    if report.problem_count > report.problems.len() as u64 {
        eprintln!(
            "accumen: db check: … and {} more problems",
            report.problem_count - report.problems.len() as u64
        );
    }
    Ok(report)
}

/// `accumen backup`: a copy from one read transaction; made by the running node over its admin
/// listener when the database is in use (or `--admin` is given), else offline.
pub fn run_backup(args: BackupArgs) -> u8 {
    finish((|| {
        if args.out.exists() {
            return Err(Fail(
                EXIT_FAILED,
                storage::BackupError::OutExists(args.out.clone()).into(),
            ));
        }
        if let Some(admin) = &args.admin {
            return fetch_backup(admin, &args.out);
        }
        let r = args.target.resolve()?;
        let storage = match Storage::open_existing(&r.db()) {
            Ok(s) => s,
            Err(StorageError::Locked(_)) => {
                let Some(settings) = &r.settings else {
                    return Err(Fail(
                        EXIT_FAILED,
                        anyhow::anyhow!(
                            "{} is in use by a running node: give --config FILE (or --admin URL) \
                             so the node makes the copy; a byte copy of a running node's database \
                             is not safe (RUNBOOK.md \"Backup and recovery\")",
                            r.db().display()
                        ),
                    ));
                };
                let addr = settings.admin_addr.0;
                if addr.port() == 0 {
                    return Err(usage(
                        "the node is running and admin_addr has port 0: pass --admin URL (the \
                         address in its \"listening\" log line)",
                    ));
                }
                return fetch_backup(&format!("http://{addr}"), &args.out);
            }
            Err(_) => open(&r.db())?,
        };
        let stats = storage.backup_to(&args.out)?;
        Ok((
            EXIT_OK,
            serde_json::json!({ "backup": args.out, "source": "offline", "stats": stats }),
        ))
    })())
}

/// Streams `GET {admin}/admin/backup` to `out` (through `out.partial`), then checks that the
/// file opens at the head the node announced.
fn fetch_backup(admin: &str, out: &Path) -> Result<(u8, serde_json::Value), Fail> {
    let url = format!("{}/admin/backup", admin.trim_end_matches('/'));
    let client = reqwest::blocking::Client::builder()
        // ring, never a process default (stack-notes §2); see `client::tls_config_for`.
        .tls_backend_preconfigured(crate::client::tls_config_for(&url, None)?)
        .timeout(None)
        .build()
        .context("HTTP client")?;
    let mut res = client
        .get(&url)
        .send()
        .with_context(|| format!("asking the node for a backup at {url}"))?;
    if !res.status().is_success() {
        let status = res.status();
        let body = res.text().unwrap_or_default();
        return Err(Fail(
            EXIT_FAILED,
            anyhow::anyhow!("{url} answered {status}: {body}"),
        ));
    }
    let header = |name: &str| {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (height, hash) = (
        header("x-accumen-head-height"),
        header("x-accumen-head-hash"),
    );
    let mut partial = out.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let written = (|| -> anyhow::Result<u64> {
        let mut f = std::fs::File::create_new(&partial)
            .with_context(|| format!("creating {}", partial.display()))?;
        let n = res.copy_to(&mut f).context("receiving the backup")?;
        f.sync_all().context("syncing the backup")?;
        drop(f);
        let copy = Storage::open_existing(&partial).context("opening the received backup")?;
        let head = copy.head()?;
        if Some(head.hash().to_string()) != hash || Some(head.height.to_string()) != height {
            anyhow::bail!(
                "the received backup's head ({} at {}) is not the one the node announced ({hash:?} at {height:?})",
                head.hash(),
                head.height
            );
        }
        drop(copy);
        std::fs::hard_link(&partial, out)
            .with_context(|| format!("moving the backup to {}", out.display()))?;
        Ok(n)
    })();
    let _ = std::fs::remove_file(&partial);
    let bytes = written.map_err(|e| Fail(EXIT_FAILED, e))?;
    Ok((
        EXIT_OK,
        serde_json::json!({
            "backup": out,
            "source": url,
            "stats": {
                "head_height": height.and_then(|h| h.parse::<u64>().ok()),
                "head_hash": hash,
                "bytes": bytes,
            },
        }),
    ))
}

/// `accumen restore`: checks the backup, then puts it into the data dir.
pub fn run_restore(args: RestoreArgs) -> u8 {
    finish((|| {
        let r = args.target.resolve()?;
        {
            let backup = open(&args.from)?;
            let report = check(&r, &backup)?;
            if !report.ok() {
                return Err(Fail(
                    EXIT_PROBLEMS,
                    anyhow::anyhow!(
                        "the backup {} has {} problem(s) (listed above); nothing restored",
                        args.from.display(),
                        report.problem_count
                    ),
                ));
            }
        }
        let stats = storage::restore(&args.from, &r.data_dir, args.force)?;
        Ok((EXIT_OK, serde_json::json!({ "restored": stats })))
    })())
}
