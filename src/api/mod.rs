//! The HTTP surface of the node (actix-web): the API listener (`api_addr`), the health listener
//! (`health_addr`), the metrics listener (`metrics_addr`) and the admin listener (`admin_addr`,
//! loopback unless deliberately exposed; see `admin`).
//!
//! Role-aware: every role has storage, the VM, stats and an executor for queries
//! ([`AppState::query`]); only a role with a mempool has transaction intake ([`Intake`]), and
//! without it the write endpoints answer 405 `not_a_sequencer`. Actors are reached only through
//! `supervisor::Port`s for the messages the API sends, never through their concrete types.
//!
//! Invariants:
//! - Handlers never block an HTTP worker on heavy work: signature checks run on actix's blocking
//!   pool, execution and admission go to their actors, and the stats endpoints read atomics only,
//!   so `/health` stays cheap under load and answers even while an actor is stuck.
//! - Every error is JSON `{"error":{"code","message"}}` with a fitting status, counted in
//!   `accumen_api_errors_total`; a rejected request changes nothing.
//! - What one anonymous client can make the API hold or wait for is bounded (RUNBOOK "API
//!   limits"): a body by `api.max_body_bytes` and `api.body_timeout`, all bodies together by
//!   `api.max_body_bytes_in_flight` (503 beyond; large answers are charged to it too, until
//!   actix has taken them), a batch by `api.max_batch` counted while it is parsed,
//!   connections by `api.max_connections` (more wait in the backlog), silent or stalled
//!   connections by `api.request_timeout`, `api.keep_alive` and the idle watchdog
//!   (`api.idle_timeout`, see `conn`), a query by `api.query_gas_limit` and `MAX_ARGS_LEN`.
//!   Optionally, requests per client IP by `api.rate_limit.*` (429 `rate_limited` with
//!   `Retry-After`, see `ratelimit`). Every such refusal is counted in
//!   `accumen_api_refused_total{reason}`.
//! - With `api.auth.token_file`, writes and the admin listener (and reads with
//!   `api.auth.protect_reads`) need a bearer token (see `auth`).
//! - With `api.tls.*`, the API listener speaks only HTTPS (see `tls`); a handshake is bounded
//!   by `api.tls.handshake_timeout` and `tls::MAX_CONCURRENT_HANDSHAKES` per worker, and a
//!   connection in its handshake counts against `api.max_connections`. The other listeners stay
//!   plain HTTP. Certificate and token file are read before anything binds ([`Security::load`])
//!   and again on SIGHUP ([`Security::reload`]); a bad new file keeps the old material.
//! - The health, metrics and admin listeners have their own accept loops and workers, so a
//!   saturated API listener does not stop `/health` from answering or an operator from
//!   restarting an actor. The admin listener takes no request bodies (its routes have none:
//!   any body is refused beyond `ADMIN_MAX_BODY_BYTES`) and holds at most
//!   `ADMIN_MAX_CONNECTIONS` connections; the health and metrics listeners hold at most
//!   `OBSERVABILITY_MAX_CONNECTIONS` each (more wait in the backlog).

pub mod admin;
pub mod auth;
pub mod backup;
pub mod batch;
mod body;
mod budget;
mod conn;
mod error;
mod handlers;
mod http_metrics;
pub mod priority;
pub mod ratelimit;
pub mod sync;
#[cfg(test)]
pub(crate) mod tests;
pub mod tls;

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use accumen_actors::executor::RunQuery;
use accumen_actors::health::{HealthRule, Observation, Verdict};
use accumen_actors::mempool::{AccountPending, Admit, IsPending};
use accumen_actors::metrics::{NodeMetrics, NodeStats, now_ms};
use accumen_actors::storage::Storage;
use accumen_actors::supervisor::Port;
use accumen_actors::types::PublicKey;
use accumen_actors::vm::Vm;
use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{App, HttpServer, web};
use prometheus_client::registry::Registry;

use budget::BodyBudget;
pub use error::{ApiError, ApiResult};
pub use handlers::MAX_RESULT_BYTES;

use crate::settings::Settings;

/// What every handler can reach. Role-aware: the shared services every role has, and the
/// role's actors only through ports for the messages the API sends (they survive restarts and
/// do not name the actor types), so a role without a mempool simply has no `intake`.
pub struct AppState {
    pub settings: Arc<Settings>,
    pub storage: Arc<Storage>,
    pub vm: Arc<Vm>,
    pub stats: Arc<NodeStats>,
    pub metrics: NodeMetrics,
    pub registry: Arc<Registry>,
    /// The node's one health rule (role and thresholds): `/health`, the watchdog, `STATUS=`.
    pub health: HealthRule,
    /// Read-only contract calls: every role has an executor.
    pub query: Port<RunQuery>,
    /// Transaction intake: the sequencer's mempool; `None` for a role without one.
    pub intake: Option<Intake>,
    pub sequencer: PublicKey,
    /// Decompressed sender keys for signature checks.
    pub keys: Arc<accumen_actors::types::KeyCache>,
    /// The running bridge's shared status (`/bridge/stats`); `None` with the bridge off.
    pub bridge: Option<Arc<accumen_actors::bridge::status::BridgeShared>>,
    /// `/v1/sync/blocks` (every role) and, on a follower, its sync state.
    pub sync: sync::SyncApi,
    /// The supervisor: the admin listener lists and restarts actors through it.
    pub supervisor: actix::Addr<accumen_actors::supervisor::Supervisor>,
}

/// The mempool messages the API sends, and the switch that closes intake at shutdown.
#[derive(Debug, Clone)]
pub struct Intake {
    pub admit: Port<Admit>,
    /// Admission run on the API's blocking pool, concurrently with the mempool actor (issue
    /// 10); `None` sends `Admit` to the actor instead (the API's own tests use a fake actor).
    pub admission: Option<accumen_actors::mempool::Admission>,
    pub is_pending: Port<IsPending>,
    pub account_pending: Port<AccountPending>,
    /// False once shutdown began: new transactions get 503.
    pub accepting: Arc<AtomicBool>,
}

impl AppState {
    /// The health rule's verdict now (atomics only: answers while an actor is stuck).
    pub fn verdict(&self) -> Verdict {
        let accepting = self
            .intake
            .as_ref()
            .map(|i| i.accepting.load(Ordering::Relaxed));
        let mut o = Observation::read(&self.stats, accepting, now_ms());
        o.sync_halted = self.sync.halted();
        self.health.assess(&o)
    }

    /// The transaction intake, or the answer for a role that takes no transactions.
    pub fn intake(&self) -> ApiResult<&Intake> {
        self.intake.as_ref().ok_or_else(|| {
            if let Some(f) = &self.sync.follower {
                // Refused, not forwarded (RUNBOOK "Follower"): the client learns where to send.
                return ApiError::new(
                    405,
                    "not_a_sequencer",
                    format!(
                        "this node is a follower: it takes no transactions; send them to the \
                         sequencer at {}",
                        f.sequencer_api
                    ),
                );
            }
            ApiError::new(
                405,
                "not_a_sequencer",
                format!(
                    "this node is a {}: it takes no transactions; send them to the sequencer",
                    self.health.role
                ),
            )
        })
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

type State = web::Data<AppState>;

/// Reasons of `accumen_api_refused_total`, exported at 0 from start-up.
pub const REFUSAL_REASONS: &[&str] = &[
    "body_too_large",
    "body_budget_exhausted",
    "body_timeout",
    "batch_too_large",
    "args_too_large",
    "query_gas_limit",
    "executor_busy",
    conn::IDLE_TIMEOUT,
    ratelimit::RATE_LIMITED,
    auth::UNAUTHORIZED,
];

/// Marks the request's connection busy while the request is in the handler stack, so the idle
/// watchdog never closes a connection whose request is being worked on.
async fn mark_busy(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let _busy = req.conn_data::<Rc<conn::Conn>>().map(conn::Busy::new);
    next.call(req).await
}

/// Counts every error answer in `accumen_api_errors_total`.
async fn count_errors(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let metrics = req.app_data::<State>().map(|s| s.metrics.clone());
    let res = next.call(req).await?;
    if (res.status().is_client_error() || res.status().is_server_error())
        && let Some(m) = metrics
    {
        m.api_errors.inc();
    }
    Ok(res)
}

/// JSON answer for unknown routes and wrong methods.
async fn no_route() -> ApiResult<web::Json<()>> {
    Err(ApiError::not_found("no such endpoint"))
}

fn api_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(handlers::health))
        .route("/stats", web::get().to(handlers::stats))
        .route("/mempool/stats", web::get().to(handlers::mempool_stats))
        .route("/execution/stats", web::get().to(handlers::execution_stats))
        .route("/bridge/stats", web::get().to(handlers::bridge_stats))
        .route("/v1/chain", web::get().to(handlers::chain))
        .route("/v1/sync/blocks", web::get().to(sync::blocks))
        .route("/v1/tx", web::post().to(handlers::submit_tx))
        .route("/v1/txs", web::post().to(handlers::submit_txs))
        .route("/v1/tx/{hash}", web::get().to(handlers::tx_status))
        .route("/v1/blocks/latest", web::get().to(handlers::latest_block))
        .route("/v1/blocks/{height}", web::get().to(handlers::block))
        .route("/v1/accounts/{key}", web::get().to(handlers::account))
        .route("/v1/contracts/{address}", web::get().to(handlers::contract))
        .route(
            "/v1/contracts/{address}/state/{key}",
            web::get().to(handlers::contract_state),
        )
        .route(
            "/v1/contracts/{address}/query",
            web::post().to(handlers::query),
        );
    #[cfg(feature = "test-hooks")]
    cfg.route(
        "/debug/actors/{name}/{fault}",
        web::post().to(handlers::inject_fault),
    );
}

/// Connections the admin listener holds at once: an operator's CLI, a script, never a crowd.
pub const ADMIN_MAX_CONNECTIONS: usize = 16;
/// Connections the health listener, and apart the metrics listener, hold at once: probes and
/// scrapers, a few each. Beyond it connections wait in the backlog, so a client that opens
/// many cannot exhaust the node's file descriptors through them.
pub const OBSERVABILITY_MAX_CONNECTIONS: usize = 64;
/// Largest request body the admin listener reads: its routes take none.
pub const ADMIN_MAX_BODY_BYTES: usize = 1024;

/// The API's reloadable security material: the TLS certificate (`api.tls.*`) and the bearer
/// tokens (`api.auth.token_file`), each only when configured.
#[derive(Debug, Clone, Default)]
pub struct Security {
    pub tls: Option<Arc<tls::CertStore>>,
    pub tokens: Option<Arc<auth::TokenStore>>,
}

/// What a SIGHUP reloaded, for the log and `accumen_config_reloads_total{what}`.
pub const RELOAD_TLS: &str = "tls";
pub const RELOAD_TOKENS: &str = "tokens";

impl Security {
    /// Reads the configured files; an error names the setting and file (the node refuses to
    /// start with it).
    pub fn load(settings: &Settings) -> anyhow::Result<Self> {
        let tls = match (&settings.api.tls.cert_file, &settings.api.tls.key_file) {
            (Some(cert), Some(key)) => Some(Arc::new(tls::CertStore::load(cert, key)?)),
            // Settings validation refuses one without the other.
            _ => None,
        };
        let tokens = match &settings.api.auth.token_file {
            Some(path) => Some(Arc::new(auth::TokenStore::load(path)?)),
            None => None,
        };
        Ok(Self { tls, tokens })
    }

    /// Reads every configured file again; each store keeps its old material if its new file is
    /// bad. One result per configured store, in a fixed order: (what, Ok(summary) or Err).
    pub fn reload(&self) -> Vec<(&'static str, anyhow::Result<String>)> {
        let mut out = Vec::new();
        if let Some(t) = &self.tls {
            out.push((
                RELOAD_TLS,
                t.reload()
                    .map(|fp| format!("certificate sha256 {fp}"))
                    .map_err(anyhow::Error::from),
            ));
        }
        if let Some(t) = &self.tokens {
            out.push((
                RELOAD_TOKENS,
                t.reload().map(|n| format!("{n} token hashes")),
            ));
        }
        out
    }
}

/// The four listeners, bound and ready to run.
pub struct Servers {
    pub api: Server,
    pub health: Server,
    pub metrics: Server,
    pub admin: Server,
    pub api_addr: SocketAddr,
    pub health_addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub admin_addr: SocketAddr,
}

impl std::fmt::Debug for Servers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Servers")
            .field("api", &self.api_addr)
            .field("health", &self.health_addr)
            .field("metrics", &self.metrics_addr)
            .field("admin", &self.admin_addr)
            .finish()
    }
}

/// Binds the API (HTTPS with `security.tls`), health, metrics and admin listeners.
pub fn bind(state: web::Data<AppState>, security: &Security) -> std::io::Result<Servers> {
    let settings = state.settings.clone();
    // Two cores: one HTTP worker per listener keeps threads for the actors and the executor.
    let api_workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(1, 4);

    let limits = &settings.api;
    state.metrics.init_api_refusals(REFUSAL_REASONS);
    let budget = web::Data::new(BodyBudget::new(
        limits.max_body_bytes_in_flight,
        state.metrics.api_body_bytes_in_flight.clone(),
    ));
    // actix caps connections per worker; split the total so the whole listener holds at most
    // api.max_connections (rounded up to a multiple of the worker count).
    let per_worker = limits.max_connections.div_ceil(api_workers).max(1);
    let (idle_timeout, conn_metrics) = (limits.idle_timeout, state.metrics.clone());
    let (max_body_bytes, body_timeout) = (limits.max_body_bytes, limits.body_timeout);
    let api_metrics = state.metrics.clone();
    // One table for all workers: a client's connections may land on any of them.
    let rate_limits = ratelimit::Limits::from_settings(&limits.rate_limit);
    let tokens = security.tokens.clone();
    let api_auth = auth::Auth {
        tokens: tokens.clone(),
        protect_reads: limits.auth.protect_reads,
        protect_all: false,
    };
    let admin_auth = auth::Auth {
        tokens,
        protect_reads: true,
        protect_all: true,
    };

    let s = state.clone();
    let api = HttpServer::new(move || {
        let m = api_metrics.clone();
        App::new()
            .app_data(s.clone())
            .app_data(budget.clone())
            // actix reads bodies up to api.max_body_bytes (413 announced or streamed);
            // `body::guard_bodies` adds the shared budget and the whole-body deadline.
            .app_data(web::PayloadConfig::new(max_body_bytes))
            .wrap(actix_web::middleware::from_fn(move |req, next| {
                body::guard_bodies(req, next, body_timeout)
            }))
            // Inside the rate limit, so token guessing is rate limited too.
            .wrap(actix_web::middleware::from_fn({
                let a = api_auth.clone();
                move |req, next| auth::require(req, next, a.clone())
            }))
            // Before the body guards: a refused client's body is never read or charged.
            .wrap(actix_web::middleware::from_fn({
                let l = rate_limits.clone();
                move |req, next| ratelimit::limit(req, next, l.clone())
            }))
            .wrap(actix_web::middleware::from_fn(count_errors))
            // Outermost, so a request is "busy" for the whole time it is in the handlers.
            .wrap(actix_web::middleware::from_fn(mark_busy))
            .wrap(actix_web::middleware::from_fn(move |req, next| {
                http_metrics::track(req, next, m.clone(), "api")
            }))
            .configure(api_routes)
            .default_service(web::to(no_route))
    })
    .workers(api_workers)
    .max_connections(per_worker)
    .client_request_timeout(limits.request_timeout)
    .keep_alive(limits.keep_alive)
    // A refused connection gets this long to take its answer and close before it is dropped.
    .client_disconnect_timeout(Duration::from_secs(1))
    .on_connect(move |io, ext| conn::on_connect(io, ext, idle_timeout, &conn_metrics))
    .disable_signals()
    .shutdown_timeout(5);
    let api = match &security.tls {
        Some(store) => {
            let config = store.server_config().map_err(std::io::Error::other)?;
            // A client that connects and sends nothing (or half a ClientHello) is dropped after
            // the handshake timeout; actix's request timers start only after the handshake.
            api.tls_handshake_timeout(limits.tls.handshake_timeout)
                .max_connection_rate(tls::MAX_CONCURRENT_HANDSHAKES)
                .bind_rustls_0_23(settings.api_addr.0, config)?
        }
        None => api.bind(settings.api_addr.0)?,
    };
    let api_addr = first_addr(&api.addrs())?;
    let api = api.run();

    let s = state.clone();
    let health = HttpServer::new(move || {
        let m = s.metrics.clone();
        App::new()
            .app_data(s.clone())
            .wrap(actix_web::middleware::from_fn(move |req, next| {
                http_metrics::track(req, next, m.clone(), "health")
            }))
            .route("/health", web::get().to(handlers::health))
            .route("/stats", web::get().to(handlers::stats))
            .default_service(web::to(no_route))
    })
    .workers(1)
    .max_connections(OBSERVABILITY_MAX_CONNECTIONS)
    .client_request_timeout(limits.request_timeout)
    .keep_alive(limits.keep_alive)
    .client_disconnect_timeout(Duration::from_secs(1))
    .disable_signals()
    .shutdown_timeout(1)
    .bind(settings.health_addr.0)?;
    let health_addr = first_addr(&health.addrs())?;
    let health = health.run();

    let s = state.clone();
    let metrics = HttpServer::new(move || {
        let m = s.metrics.clone();
        App::new()
            .app_data(s.clone())
            .wrap(actix_web::middleware::from_fn(move |req, next| {
                http_metrics::track(req, next, m.clone(), "metrics")
            }))
            .route("/metrics", web::get().to(handlers::metrics))
            .default_service(web::to(no_route))
    })
    .workers(1)
    .max_connections(OBSERVABILITY_MAX_CONNECTIONS)
    .client_request_timeout(limits.request_timeout)
    .keep_alive(limits.keep_alive)
    .client_disconnect_timeout(Duration::from_secs(1))
    .disable_signals()
    .shutdown_timeout(1)
    .bind(settings.metrics_addr.0)?;
    let metrics_addr = first_addr(&metrics.addrs())?;
    let metrics = metrics.run();

    let s = state;
    let admin = HttpServer::new(move || {
        App::new()
            .app_data(s.clone())
            .app_data(web::PayloadConfig::new(ADMIN_MAX_BODY_BYTES))
            .wrap(actix_web::middleware::from_fn({
                let a = admin_auth.clone();
                move |req, next| auth::require(req, next, a.clone())
            }))
            // Not counted in accumen_api_errors_total: that series is about the public API.
            .configure(admin::configure)
            .configure(backup::configure)
            .default_service(web::to(no_route))
    })
    .workers(1)
    .max_connections(ADMIN_MAX_CONNECTIONS)
    .client_request_timeout(limits.request_timeout)
    .keep_alive(limits.keep_alive)
    .client_disconnect_timeout(Duration::from_secs(1))
    .disable_signals()
    .shutdown_timeout(1)
    .bind(settings.admin_addr.0)?;
    let admin_addr = first_addr(&admin.addrs())?;
    let admin = admin.run();

    Ok(Servers {
        api,
        health,
        metrics,
        admin,
        api_addr,
        health_addr,
        metrics_addr,
        admin_addr,
    })
}

fn first_addr(addrs: &[SocketAddr]) -> std::io::Result<SocketAddr> {
    addrs
        .first()
        .copied()
        .ok_or_else(|| std::io::Error::other("listener bound to no address"))
}
