//! The node: the one place that starts and stops every actor, assembled per role.
//!
//! Assembly ([`start`]): open storage (schema checked; the chain's recorded parameters
//! reconciled with the config, see `chain::params`: they rule, and a chain this node cannot
//! honour exits 2) and the services every role shares (contract engine,
//! metrics and their registry, live stats), then the role's actors (`sequencer::start` or
//! `follower::start`), then the supervisor over those actors, then the HTTP
//! listeners. READY is sent to systemd only once all four listeners (api, health, metrics,
//! admin) are bound. Everything that
//! runs is owned by one [`NodeHandle`], whose [`NodeHandle::shutdown`] is the stop order.
//!
//! A role contributes only [`RoleParts`]: its supervised actors, the ports the API uses, the
//! sequencer's public key, and its part of a graceful stop. Adding a role means writing its
//! actors and its start function; storage, services, supervision, listeners, health, systemd
//! and the stop order are shared.
//!
//! Stop order (SIGTERM or SIGINT), within `STOP_BUDGET` and so within systemd's 30 s: the role
//! drains (the sequencer refuses new transactions and lets the producer finish its block, and
//! one last block with what is pending, then flushes the bridge when it runs one), the node stops running, the listeners stop, the
//! supervisor stops supervising and every actor's Arbiter stops, exit 0. A restart storm stops
//! the actix System with `RESTART_STORM_EXIT` (70) instead, and the process exits with it.
//!
//! SIGHUP (`systemctl reload`) rereads the API's TLS certificate and key and the bearer token
//! file (`api::Security`), each kept as it was if its new file is bad; nothing else is reloaded
//! (see `systemd::spawn_reload`).
//!
//! A failed store (an I/O error such as a full disk; see `storage::health`) cannot be repaired
//! in-process: redb refuses every later operation until the file is reopened. So from the moment
//! it is detected the node is unhealthy (`/health` 503 naming the failure), refuses transactions
//! (503 `storage_failed`), makes no blocks, stops petting the systemd watchdog, and after
//! `STORAGE_FAILURE_GRACE` exits with `EXIT_STORAGE_FAILED` (74) so that systemd (or any
//! supervisor) restarts it at once; the restart reopens and repairs the file to its last
//! committed block. A node asked to stop after its store failed also exits 74.

mod bridge;
mod follower;
mod sequencer;
mod systemd;

use std::fs;
use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use accumen_actors::chain::params::ParamsError;
use accumen_actors::chain::{ChainParams, Recorder};
use accumen_actors::executor::{Executor, RunQuery};
use accumen_actors::health::HealthRule;
pub use accumen_actors::health::Role;
use accumen_actors::metrics::{NodeMetrics, NodeStats};
use accumen_actors::storage::Storage;
use accumen_actors::supervisor::{Child, ChildSpec, Port, StopSupervision, Supervisor};
use accumen_actors::syncer::SyncMetrics;
use accumen_actors::types::PublicKey;
use accumen_actors::vm::Vm;
use actix::{Actor, Addr, Arbiter};
use actix_web::dev::ServerHandle;
use actix_web::web;
use anyhow::Context as _;
use prometheus_client::registry::Registry;

use crate::api::sync::{FollowerView, SyncApi};
use crate::api::{self, AppState, Intake};
use crate::settings::{Settings, StorageKind};

/// Exit code for "this configuration or role cannot run here".
pub const EXIT_UNSUPPORTED: i32 = 2;

/// Exit code after the store failed (EX_IOERR of sysexits.h): restart to reopen storage.
pub const EXIT_STORAGE_FAILED: i32 = 74;

/// Longest a graceful stop may take before the process exits anyway.
const STOP_BUDGET: Duration = Duration::from_secs(25);

/// `--role` values (`clap`): the role type is the health rule's, so one enum names roles
/// everywhere.
pub fn role_parser() -> impl clap::builder::TypedValueParser<Value = Role> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new([Role::Sequencer.as_str(), Role::Follower.as_str()])
        .map(|s| {
            if s == Role::Follower.as_str() {
                Role::Follower
            } else {
                Role::Sequencer
            }
        })
}

/// Runs the node until it is stopped; returns the process exit code.
pub fn run(settings: Settings, role: Role) -> anyhow::Result<i32> {
    crate::telemetry::init(&settings.logging.level, settings.logging.format);
    // The follower's sequencer and its HTTP client (an https sequencer's CA file is read here).
    if role == Role::Follower
        && let Err(e) = follower::sequencer(&settings).and_then(|_| follower::client(&settings))
    {
        eprintln!("accumen: {e:#}");
        return Ok(EXIT_UNSUPPORTED);
    }
    // TLS material and token file are read before anything starts: an unreadable or broken
    // file is a configuration error like a bad key, said once with the file named.
    let security = match api::Security::load(&settings) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("accumen: {e:#}");
            return Ok(EXIT_UNSUPPORTED);
        }
    };
    let system = actix::System::new();
    let started = system.block_on(async {
        let node = start(settings, role, security).await?;
        // The task owns the node (every actor, Arbiter and server) until the System stops,
        // whether by the stop order or by a restart storm or a failed store.
        actix::spawn(node.stop_on_signal());
        anyhow::Ok(())
    });
    match started {
        Ok(()) => {}
        // A chain whose parameters this node cannot honour is a configuration/build problem,
        // like the refusals above: say why and exit EXIT_UNSUPPORTED.
        Err(e) if e.downcast_ref::<ParamsError>().is_some() => {
            eprintln!("accumen: {e:#}");
            return Ok(EXIT_UNSUPPORTED);
        }
        Err(e) => return Err(e),
    }
    let code = system.run_with_code().context("actix system")?;
    tracing::info!(code, "node stopped");
    Ok(code)
}

/// Storage and the services every role shares.
pub(crate) struct Services {
    pub settings: Arc<Settings>,
    pub storage: Arc<Storage>,
    /// The chain's parameters (recorded at genesis; they rule over the config).
    pub params: Arc<ChainParams>,
    pub vm: Arc<Vm>,
    /// The one place that records a committed block (whichever role commits it).
    pub recorder: Arc<Recorder>,
    pub metrics: NodeMetrics,
    pub registry: Arc<Registry>,
    pub stats: Arc<NodeStats>,
    /// The follower's metric families (registered only on a follower).
    pub sync_metrics: SyncMetrics,
    /// `accumen_config_reloads_total` (SIGHUP).
    pub reloads: systemd::ReloadMetrics,
}

impl Services {
    /// The supervised executor (both roles run one; its progress keeps a busy one from being
    /// judged stuck).
    pub(crate) fn executor_spec(&self) -> ChildSpec<Executor> {
        let (vm, stats, metrics) = (self.vm.clone(), self.stats.clone(), self.metrics.clone());
        let progress = Executor::progress_source(vm.clone());
        ChildSpec::start("executor", move || {
            Executor::new(vm.clone(), stats.clone(), metrics.clone())
        })
        .with_progress(progress)
    }
}

/// Opens storage (schema and chain checked), reconciles the chain's recorded parameters with
/// the config (`chain::params`: the chain's values rule; a chain this node cannot honour stops
/// the start here and `run` exits `EXIT_UNSUPPORTED`), and builds the shared services with the
/// chain's parameters.
///
/// `genesis` is the chain a new store is created with (a follower's, from its sequencer);
/// `None` creates it from the config.
fn open_services(
    settings: Settings,
    role: Role,
    genesis: Option<ChainParams>,
) -> anyhow::Result<Services> {
    let settings = Arc::new(settings);
    let genesis = genesis.unwrap_or_else(|| settings.chain_params());
    let storage = Arc::new(open_storage(&settings, &genesis)?);
    let chain = settings.reconcile_chain(storage.params())?;
    chain.log_overrides();
    let params = Arc::new(chain.params);
    let vm = Arc::new(Vm::new(settings.vm_config_for(&params)).context("contract engine")?);
    let metrics = NodeMetrics::default();
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    let sync_metrics = SyncMetrics::default();
    if role == Role::Follower {
        sync_metrics.register(&mut registry);
    }
    let reloads = systemd::ReloadMetrics::default();
    reloads.register(&mut registry);
    let stats = Arc::new(NodeStats {
        storage_health: storage.health(),
        ..NodeStats::default()
    });
    let recorder = Arc::new(Recorder::new(
        stats.clone(),
        metrics.clone(),
        &storage.head()?,
    ));
    Ok(Services {
        settings,
        storage,
        params,
        vm,
        recorder,
        metrics,
        registry: Arc::new(registry),
        stats,
        sync_metrics,
        reloads,
    })
}

fn open_storage(settings: &Settings, genesis: &ChainParams) -> anyhow::Result<Storage> {
    match settings.storage {
        StorageKind::Memory => Ok(Storage::in_memory_with(genesis)?),
        StorageKind::Persistent => {
            let dir = &settings.data_dir;
            fs::create_dir_all(dir)
                .with_context(|| format!("creating data_dir {}", dir.display()))?;
            let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
            let path = dir.join("accumen.redb");
            // The config's chain parameters are used only if this creates the chain.
            let cache_bytes = usize::try_from(settings.storage_cache_mb.saturating_mul(1 << 20))
                .unwrap_or(usize::MAX);
            Storage::open_with_cache(&path, genesis, cache_bytes)
                .with_context(|| format!("opening storage {}", path.display()))
        }
    }
}

/// A role's part of a graceful stop, run first (see the module comment).
pub(crate) type Drain = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()>>>>;

/// What a role adds to the shared services.
pub(crate) struct RoleParts {
    /// The role's actors, supervised in this order.
    pub children: Vec<Box<dyn Child>>,
    /// What the API reaches of them.
    pub query: Port<RunQuery>,
    /// Transaction intake (the sequencer's mempool); `None` for a role without one.
    pub intake: Option<Intake>,
    /// The chain's sequencer, served at `/v1/chain`.
    pub sequencer: PublicKey,
    /// The role's part of the stop order.
    pub drain: Drain,
    /// The running L0 bridge's shared status (`/bridge/stats`); `None` with the bridge off.
    pub bridge: Option<Arc<accumen_actors::bridge::status::BridgeShared>>,
    /// A follower's sync, as the API shows it; `None` for the sequencer.
    pub follower: Option<FollowerView>,
}

/// Everything that runs: owned here until the process ends.
pub(crate) struct NodeHandle {
    state: web::Data<AppState>,
    servers: [ServerHandle; 4],
    supervisor: Addr<Supervisor>,
    supervisor_arbiter: Arbiter,
    drain: Drain,
    signals: systemd::Signals,
}

/// Starts a node of `role`: shared services, the role's actors, supervision, listeners (with
/// `security`, loaded from the same settings).
async fn start(
    settings: Settings,
    role: Role,
    security: api::Security,
) -> anyhow::Result<NodeHandle> {
    let genesis = if role == Role::Follower && follower::needs_genesis(&settings) {
        Some(follower::genesis_params(&settings).await?)
    } else {
        None
    };
    let services = open_services(settings, role, genesis)?;
    let parts = match role {
        Role::Sequencer => sequencer::start(&services)?,
        Role::Follower => follower::start(&services, services.sync_metrics.clone())?,
    };
    let settings = services.settings.clone();

    let supervisor = Supervisor::new(
        parts.children,
        settings.supervisor.clone(),
        services.metrics.clone(),
        services.stats.clone(),
    );
    let supervisor_arbiter = Arbiter::new();
    let supervisor_addr =
        Supervisor::start_in_arbiter(&supervisor_arbiter.handle(), move |_| supervisor);

    let state = web::Data::new(AppState {
        settings: settings.clone(),
        storage: services.storage,
        vm: services.vm,
        stats: services.stats.clone(),
        metrics: services.metrics,
        registry: services.registry,
        health: {
            let rule = HealthRule::new(
                role,
                settings.supervisor.heartbeat_interval,
                settings.block_time,
            );
            match parts.bridge {
                Some(_) => rule.with_bridge(settings.bridge.max_backlog),
                None => rule,
            }
        },
        bridge: parts.bridge.clone(),
        query: parts.query,
        intake: parts.intake,
        sequencer: parts.sequencer,
        keys: Arc::new(accumen_actors::types::KeyCache::new(100_000)),
        sync: SyncApi::new(services.recorder.subscribe(), parts.follower),
        supervisor: supervisor_addr.clone(),
    });
    let servers = api::bind(state.clone(), &security).context("binding the HTTP listeners")?;
    // Before "listening" is announced (tests and operators act on it), so an early SIGTERM
    // still stops the node cleanly and an early SIGHUP reloads instead of killing it.
    let mut signals = systemd::install_signals();
    systemd::spawn_reload(security, services.reloads.clone(), signals.take_hangup());
    tracing::info!(
        api = %servers.api_addr,
        health = %servers.health_addr,
        metrics = %servers.metrics_addr,
        admin = %servers.admin_addr,
        "listening"
    );
    let handles = [
        servers.api.handle(),
        servers.health.handle(),
        servers.metrics.handle(),
        servers.admin.handle(),
    ];
    systemd::spawn_storage_monitor(state.clone(), handles.clone());
    actix::spawn(servers.api);
    actix::spawn(servers.health);
    actix::spawn(servers.metrics);
    actix::spawn(servers.admin);
    services.stats.running.store(true, Ordering::Relaxed);
    systemd::ready(&state);
    systemd::spawn_status(state.clone());
    if let Some(period) = sd_notify::watchdog_enabled() {
        systemd::spawn_watchdog(state.clone(), period);
    }
    Ok(NodeHandle {
        state,
        servers: handles,
        supervisor: supervisor_addr,
        supervisor_arbiter,
        drain: parts.drain,
        signals,
    })
}

impl NodeHandle {
    /// Waits for SIGTERM or SIGINT, runs the stop order, and stops the System with its code.
    async fn stop_on_signal(mut self) {
        let signals = std::mem::replace(&mut self.signals, systemd::Signals::none());
        let reason = signals.wait().await;
        tracing::info!(
            signal = reason,
            "stopping: no new transactions, finishing the current block"
        );
        let code = self.shutdown().await;
        actix::System::current().stop_with_code(code);
    }

    /// The stop order (module comment); returns the exit code: 0, or `EXIT_STORAGE_FAILED` for
    /// a node whose store failed (it still says so when asked to stop).
    pub(crate) async fn shutdown(self) -> i32 {
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
        (self.drain)().await;
        let stats = &self.state.stats;
        stats.running.store(false, Ordering::Relaxed);
        for h in self.servers {
            h.stop(true).await;
        }
        if let Err(e) = self.supervisor.send(StopSupervision).await {
            tracing::warn!(error = %e, "supervisor already stopped");
        }
        self.supervisor_arbiter.stop();
        if stats.storage_health.is_failed() {
            EXIT_STORAGE_FAILED
        } else {
            0
        }
    }
}
