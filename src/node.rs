//! The node: the one place that starts and stops every actor.
//!
//! Start order: storage (schema and chain checked), sequencer key, contract engine, metrics,
//! mempool (journal re-admitted), executor, block producer, supervisor, then the HTTP listeners;
//! READY is sent to systemd only once all three listeners are bound. Stop order (SIGTERM or
//! SIGINT): refuse new transactions, let the producer finish its block (and one last block with
//! what is pending), stop the listeners, exit 0 — all within 30 s. A restart storm stops the
//! actix System with a non-zero code instead, and the process exits with it.
//!
//! A failed store (an I/O error such as a full disk; see `storage::health`) cannot be repaired
//! in-process: redb refuses every later operation until the file is reopened. So from the moment
//! it is detected the node is unhealthy (`/health` 503 naming the failure), refuses transactions
//! (503 `storage_failed`), makes no blocks, stops petting the systemd watchdog, and after
//! `STORAGE_FAILURE_GRACE` exits with `EXIT_STORAGE_FAILED` so that systemd (or any supervisor)
//! restarts it at once; the restart reopens and repairs the file to its last committed block.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use accumen_actors::block_producer::{
    BlockProducer, MempoolPorts, ProducerConfig, ProducerDeps, Shutdown,
};
use accumen_actors::chain::{ChainParams, Recorder};
use accumen_actors::executor::Executor;
use accumen_actors::mempool::pool::{Pool, PoolConfig};
use accumen_actors::mempool::{Mempool, Shared};
use accumen_actors::metrics::{NodeMetrics, NodeStats, now_ms};
use accumen_actors::storage::Storage;
use accumen_actors::supervisor::{Child, ChildSpec, Slot, Supervisor, SupervisorConfig};
use accumen_actors::types::Keypair;
use accumen_actors::vm::Vm;
use actix::{Actor, Arbiter};
use actix_web::web;
use anyhow::Context as _;
use prometheus_client::registry::Registry;

use crate::api::{self, AppState};
use crate::settings::{Settings, StorageKind};

/// What the process runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    Sequencer,
    Follower,
}

/// Exit code for "this configuration or role cannot run here".
pub const EXIT_UNSUPPORTED: i32 = 2;

/// Exit code after the store failed (EX_IOERR of sysexits.h): restart to reopen storage.
pub const EXIT_STORAGE_FAILED: i32 = 74;

/// How long a node with a failed store stays up before exiting: long enough for a health probe
/// on a 10 s period to see why, short next to systemd's `WatchdogSec=30`. Exiting at all (rather
/// than waiting for the watchdog) gets the node restarted at once, also where no watchdog runs.
const STORAGE_FAILURE_GRACE: Duration = Duration::from_secs(10);

/// How often the node checks whether the store has failed.
const STORAGE_CHECK_INTERVAL: Duration = Duration::from_millis(250);

/// Longest a graceful stop may take before the process exits anyway.
const STOP_BUDGET: Duration = Duration::from_secs(25);

/// Runs the node until it is stopped; returns the process exit code.
pub fn run(settings: Settings, role: Role) -> anyhow::Result<i32> {
    crate::telemetry::init(&settings.logging.level);
    if role == Role::Follower {
        eprintln!(
            "accumen: the follower role is not supported yet: this build can only run a \
             sequencer (--role=sequencer)"
        );
        return Ok(EXIT_UNSUPPORTED);
    }
    if settings.bridge.enable_bridge {
        eprintln!(
            "accumen: bridge.enable_bridge is true, but this build has no L0 bridge yet and \
             would not anchor any block; set bridge.enable_bridge: false to run without anchoring"
        );
        return Ok(EXIT_UNSUPPORTED);
    }
    let system = actix::System::new();
    let node = system.block_on(start(settings))?;
    let code = system.run_with_code().context("actix system")?;
    drop(node);
    tracing::info!(code, "node stopped");
    Ok(code)
}

/// Everything that must live as long as the node.
struct Node {
    _supervisor_arbiter: Arbiter,
}

fn open_storage(settings: &Settings) -> anyhow::Result<Storage> {
    match settings.storage {
        StorageKind::Memory => Ok(Storage::in_memory(&settings.chain_id)?),
        StorageKind::Persistent => {
            let dir = &settings.data_dir;
            fs::create_dir_all(dir)
                .with_context(|| format!("creating data_dir {}", dir.display()))?;
            let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
            let path = dir.join("accumen.redb");
            Storage::open(&path, &settings.chain_id)
                .with_context(|| format!("opening storage {}", path.display()))
        }
    }
}

fn read_key(path: &Path) -> anyhow::Result<Keypair> {
    let text = fs::read_to_string(path)
        .with_context(|| format!("reading sequencer key {}", path.display()))?;
    if let Ok(meta) = fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(path = %path.display(), "sequencer key file is readable by others; chmod 600 it");
    }
    Keypair::from_seed_hex(&text).with_context(|| format!("sequencer key {}", path.display()))
}

fn load_key(settings: &Settings) -> anyhow::Result<Keypair> {
    if let Some(path) = &settings.sequencer_key {
        return read_key(path);
    }
    match settings.storage {
        StorageKind::Memory => {
            tracing::warn!(
                "no sequencer_key configured: using an ephemeral key (fine for in-memory development chains)"
            );
            Ok(Keypair::generate()?)
        }
        StorageKind::Persistent => {
            let path = settings.data_dir.join("sequencer.key");
            if path.exists() {
                return read_key(&path);
            }
            let key = Keypair::generate()?;
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("creating sequencer key {}", path.display()))?;
            writeln!(f, "{}", key.seed_hex())?;
            f.sync_all()?;
            tracing::info!(path = %path.display(), public_key = %key.public(), "generated a new sequencer key");
            Ok(key)
        }
    }
}

/// The chain's consensus parameters as this node's configuration gives them (what a new chain's
/// genesis records; the `params` part of issue 7 makes a stored chain's values rule).
fn chain_params(settings: &Settings) -> ChainParams {
    use accumen_actors::vm::gas;
    ChainParams {
        chain_id: settings.chain_id.clone(),
        abi_version: 1,
        gas_schedule: 1,
        max_tx_gas: settings.execution.gas_limit,
        max_memory_pages: settings.wasm.max_memory_pages,
        max_wasm_stack: 512 * 1024,
        max_block_gas: gas::MAX_BLOCK_GAS,
        max_block_tx_bytes: gas::MAX_BLOCK_TX_BYTES,
        max_block_result_bytes: gas::MAX_BLOCK_RESULT_BYTES,
    }
}

async fn start(settings: Settings) -> anyhow::Result<Node> {
    let settings = Arc::new(settings);
    let storage = Arc::new(open_storage(&settings)?);
    let key = Arc::new(load_key(&settings)?);
    let vm = Arc::new(Vm::new(settings.vm_config()).context("contract engine")?);
    let head = storage.head()?;
    tracing::info!(
        chain_id = %settings.chain_id,
        height = head.height,
        sequencer = %key.public(),
        storage = ?settings.storage,
        "starting sequencer"
    );

    let metrics = NodeMetrics::default();
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    let registry = Arc::new(registry);
    let stats = Arc::new(NodeStats {
        storage_health: storage.health(),
        ..NodeStats::default()
    });
    stats.block_height.store(head.height, Ordering::Relaxed);

    let pool = Arc::new(Mutex::new(Shared::new(Pool::new(PoolConfig {
        chain_id: settings.chain_id.clone(),
        max_size: settings.mempool.max_size,
        max_bytes: settings.mempool.max_bytes,
        account_limit: settings.mempool.account_limit,
        // A transaction asking for more than a whole block's gas could never be selected.
        max_tx_gas: settings
            .execution
            .gas_limit
            .min(accumen_actors::vm::gas::MAX_BLOCK_GAS),
        max_future_nonces: settings.mempool.account_limit as u64,
        future_limit: settings
            .mempool
            .future_limit
            .min(settings.mempool.account_limit),
        future_ttl_ms: u64::try_from(settings.mempool.future_ttl.as_millis()).unwrap_or(u64::MAX),
    }))));
    let persist = settings.mempool.persist;
    let restored = Mempool::new(
        pool.clone(),
        storage.clone(),
        persist,
        stats.clone(),
        metrics.clone(),
    )
    .restore()
    .context("restoring the mempool journal")?;
    if restored > 0 {
        tracing::info!(
            restored,
            "journaled transactions re-admitted to the mempool"
        );
    }

    let mempool = {
        let (pool, storage, stats, metrics) = (
            pool.clone(),
            storage.clone(),
            stats.clone(),
            metrics.clone(),
        );
        ChildSpec::start("mempool", move || {
            Mempool::new(
                pool.clone(),
                storage.clone(),
                persist,
                stats.clone(),
                metrics.clone(),
            )
        })
    };
    let executor = {
        let (vm, stats, metrics) = (vm.clone(), stats.clone(), metrics.clone());
        let progress = Executor::progress_source(vm.clone());
        ChildSpec::start("executor", move || {
            Executor::new(vm.clone(), stats.clone(), metrics.clone())
        })
        .with_progress(progress)
    };
    let mempool_slot = mempool.slot();
    let executor_slot = executor.slot();
    let recorder = Arc::new(Recorder::new(stats.clone(), metrics.clone(), &head));
    let producer = {
        let deps = ProducerDeps {
            storage: storage.clone(),
            key: key.clone(),
            params: Arc::new(chain_params(&settings)),
            config: ProducerConfig {
                block_time: settings.block_time,
                max_transactions: settings.max_transactions,
                queue_size: settings.execution.queue_size,
            },
            mempool: MempoolPorts::of(&mempool_slot),
            executor: executor_slot.port(),
            recorder,
            stats: stats.clone(),
            metrics: metrics.clone(),
        };
        ChildSpec::start("block_producer", move || BlockProducer::new(deps.clone()))
    };
    let producer_slot: Slot<BlockProducer> = producer.slot();
    let children: Vec<Box<dyn Child>> =
        vec![Box::new(mempool), Box::new(executor), Box::new(producer)];
    let sup = &settings.supervisor;
    let supervisor = Supervisor::new(
        children,
        SupervisorConfig {
            heartbeat_interval: sup.heartbeat_interval,
            heartbeat_timeout: sup.heartbeat_timeout,
            max_restarts: sup.max_restarts,
            restart_window: sup.restart_window,
        },
        metrics.clone(),
        stats.clone(),
    );
    let supervisor_arbiter = Arbiter::new();
    let supervisor_addr =
        Supervisor::start_in_arbiter(&supervisor_arbiter.handle(), move |_| supervisor);
    #[cfg(not(feature = "test-hooks"))]
    let _ = &supervisor_addr;

    let accepting = Arc::new(AtomicBool::new(true));
    let state = web::Data::new(AppState {
        settings: settings.clone(),
        storage: storage.clone(),
        vm,
        mempool: mempool_slot,
        executor: executor_slot,
        stats: stats.clone(),
        metrics,
        registry,
        accepting: accepting.clone(),
        sequencer: key.public(),
        keys: Arc::new(accumen_actors::types::KeyCache::new(100_000)),
        #[cfg(feature = "test-hooks")]
        supervisor: supervisor_addr,
    });
    let servers = api::bind(state).context("binding the HTTP listeners")?;
    // Before "listening" is announced (tests and operators act on it), so an early SIGTERM
    // still stops the node cleanly.
    let signals = install_signals();
    tracing::info!(
        api = %servers.api_addr,
        health = %servers.health_addr,
        metrics = %servers.metrics_addr,
        "listening"
    );
    let handles = [
        servers.api.handle(),
        servers.health.handle(),
        servers.metrics.handle(),
    ];
    spawn_storage_monitor(stats.clone(), handles.clone());
    actix::spawn(servers.api);
    actix::spawn(servers.health);
    actix::spawn(servers.metrics);
    stats.running.store(true, Ordering::Relaxed);
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    if let Some(period) = sd_notify::watchdog_enabled() {
        spawn_watchdog(
            stats.clone(),
            period,
            settings.supervisor.heartbeat_interval,
        );
    }

    actix::spawn(async move {
        let reason = wait_for_signal(signals).await;
        tracing::info!(
            signal = reason,
            "stopping: no new transactions, finishing the current block"
        );
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
        accepting.store(false, Ordering::Relaxed);
        match producer_slot
            .get()
            .send(Shutdown)
            .timeout(STOP_BUDGET)
            .await
        {
            Ok(()) => tracing::info!("block producer finished"),
            Err(e) => tracing::error!(error = %e, "block producer did not finish in time"),
        }
        stats.running.store(false, Ordering::Relaxed);
        for h in handles {
            h.stop(true).await;
        }
        // A node whose store failed still says so when asked to stop.
        let code = if stats.storage_health.is_failed() {
            EXIT_STORAGE_FAILED
        } else {
            0
        };
        actix::System::current().stop_with_code(code);
    });

    Ok(Node {
        _supervisor_arbiter: supervisor_arbiter,
    })
}

/// SIGTERM and SIGINT streams, registered at once: a signal that arrives before anyone awaits
/// them is still delivered (registration replaces the default action, which would kill the
/// process without a clean stop).
struct Signals(Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>);

fn install_signals() -> Signals {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(term), Ok(int)) => Signals(Some((term, int))),
        _ => {
            tracing::error!("cannot install signal handlers; the node can only be killed");
            Signals(None)
        }
    }
}

async fn wait_for_signal(signals: Signals) -> &'static str {
    match signals.0 {
        Some((mut term, mut int)) => tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        },
        None => std::future::pending().await,
    }
}

/// Waits for the store to fail; then tells systemd why, and after `STORAGE_FAILURE_GRACE` stops
/// the listeners and exits `EXIT_STORAGE_FAILED` (see the module comment).
fn spawn_storage_monitor(stats: Arc<NodeStats>, handles: [actix_web::dev::ServerHandle; 3]) {
    actix::spawn(async move {
        let mut tick = tokio::time::interval(STORAGE_CHECK_INTERVAL);
        let reason = loop {
            tick.tick().await;
            if let Some(reason) = stats.storage_health.failure() {
                break reason.to_owned();
            }
        };
        tracing::error!(
            reason = %reason,
            exit_code = EXIT_STORAGE_FAILED,
            grace_s = STORAGE_FAILURE_GRACE.as_secs(),
            "storage failed: refusing transactions, no more blocks; exiting so the node restarts \
             and reopens storage (free disk space first)"
        );
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Status(&format!(
            "storage failed: {reason}"
        ))]);
        tokio::time::sleep(STORAGE_FAILURE_GRACE).await;
        stats.running.store(false, Ordering::Relaxed);
        for h in handles {
            h.stop(true).await;
        }
        actix::System::current().stop_with_code(EXIT_STORAGE_FAILED);
    });
}

/// Sends WATCHDOG=1 at half the systemd period, only while the supervisor is heartbeating and
/// the store works: a wedged node, or one whose storage failed, stops petting the watchdog and
/// systemd restarts it.
fn spawn_watchdog(stats: Arc<NodeStats>, period: Duration, heartbeat: Duration) {
    actix::spawn(async move {
        let mut tick = tokio::time::interval(period / 2);
        loop {
            tick.tick().await;
            if stats.storage_health.is_failed() {
                // Said once by the storage monitor; nothing more to log here.
                continue;
            }
            let age = now_ms().saturating_sub(stats.last_heartbeat_ms.load(Ordering::Relaxed));
            if age <= 3 * heartbeat.as_millis().max(1000) as u64 {
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
            } else {
                tracing::error!(
                    heartbeat_age_ms = age,
                    "supervisor stalled: not pinging the systemd watchdog"
                );
            }
        }
    });
}
