//! Node settings: the typed view of the operator's YAML file and `ACCUMEN_*` environment
//! variables, and `accumen config check`.
//!
//! Role: turn what an operator wrote (keys exactly as the runbook spells them) into one
//! validated [`Settings`] value that the rest of the node reads, and explain precisely what is
//! wrong when that is impossible.
//!
//! Invariants:
//! - Precedence is fixed: built-in defaults, then the YAML file, then environment variables
//!   `ACCUMEN_<KEY>` with `__` between sections (`ACCUMEN_EXECUTION__WORKERS=4`).
//! - A key may be written nested (`execution:` / `  workers: 8`) or dotted
//!   (`execution.workers: 8`, as in the runbook); both mean the same. One key given twice in the
//!   same file is an error, never a silent last-one-wins.
//! - Nothing is ignored: an unknown key, in the file or in an `ACCUMEN_*` variable, is an error
//!   that names the full dotted key and where it came from (file path or variable name).
//! - A `Settings` returned by [`Settings::load`] has passed [`Settings::validate`], including the
//!   contract engine's own memory rule, so a node never starts with settings the VM would reject
//!   later.

use std::fmt;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use accumen_actors::chain::ChainParams;
use accumen_actors::chain::params::{
    DEFAULT_MAX_MEMORY_PAGES, DEFAULT_MAX_TX_GAS, ParamsError, Reconciled, reconcile,
};
use accumen_actors::supervisor::SupervisorConfig;
use accumen_actors::types::MAX_TX_BYTES;
use accumen_actors::vm::{ConfigError as VmConfigError, VmConfig};
use serde::{Deserialize, Serialize};

mod source;
#[cfg(test)]
mod tests;

pub use source::Origin;

/// Environment variables that override settings start with this, then `_`.
pub const ENV_PREFIX: &str = "ACCUMEN";
/// Shortest interval or timeout that still makes sense: the engine's epoch tick is 10 ms, and
/// anything faster would turn timers into busy loops.
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);
/// The chain id is hashed into every transaction; keep it short and bounded.
pub const MAX_CHAIN_ID_BYTES: usize = 64;

const MIB: usize = 1024 * 1024;

/// Everything the node reads from its configuration. Field names are the operator contract
/// (runbook "Key Configuration Parameters"): renaming one breaks deployed config files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Identifies the chain; transactions signed for another chain are rejected.
    pub chain_id: String,
    /// Block production interval.
    #[serde(with = "humantime_serde")]
    pub block_time: Duration,
    /// Most transactions in one block.
    pub max_transactions: usize,
    /// Where chain state lives.
    pub storage: StorageKind,
    /// Directory for persistent state, the key file and the compiled-module cache.
    pub data_dir: PathBuf,
    /// redb's page cache for the chain's data file (`storage: persistent`), in MiB: memory the
    /// node keeps once it has written blocks, traded against a little speed (RUNBOOK
    /// "Performance", memory). Read at start.
    pub storage_cache_mb: u64,
    /// Sequencer signing key file (hex seed). See [`Settings::sequencer_key_path`].
    pub sequencer_key: Option<PathBuf>,
    /// HTTP API listener.
    pub api_addr: ListenAddr,
    /// `/health` listener, kept separate so probes work while the API is saturated.
    pub health_addr: ListenAddr,
    /// Prometheus `/metrics` listener.
    pub metrics_addr: ListenAddr,
    /// Admin listener (`/admin/...`: list and restart actors). It has no authentication, so
    /// it must be a loopback address unless `admin_allow_non_loopback` is set.
    pub admin_addr: ListenAddr,
    /// Explicit opt-in to bind `admin_addr` beyond loopback (e.g. a private management
    /// network behind a firewall). Off by default: anyone who reaches the admin listener can
    /// restart the node's actors, so exposing it must be a deliberate choice, never a typo.
    pub admin_allow_non_loopback: bool,
    pub api: ApiSettings,
    pub execution: ExecutionSettings,
    pub wasm: WasmSettings,
    pub mempool: MempoolSettings,
    pub bridge: BridgeSettings,
    pub follower: FollowerSettings,
    pub logging: LoggingSettings,
    /// `supervisor.*`: the actor watchdog; the supervisor's own config type (one definition
    /// of the keys and defaults).
    pub supervisor: SupervisorConfig,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            chain_id: "accumen-local".to_owned(),
            block_time: Duration::from_secs(1),
            max_transactions: 1000,
            storage: StorageKind::Memory,
            data_dir: PathBuf::from("data"),
            storage_cache_mb: accumen_actors::storage::DEFAULT_CACHE_MB,
            sequencer_key: None,
            api_addr: ListenAddr::localhost(8080),
            health_addr: ListenAddr::localhost(8082),
            metrics_addr: ListenAddr::localhost(8081),
            admin_addr: ListenAddr::localhost(8083),
            admin_allow_non_loopback: false,
            api: ApiSettings::default(),
            execution: ExecutionSettings::default(),
            wasm: WasmSettings::default(),
            mempool: MempoolSettings::default(),
            bridge: BridgeSettings::default(),
            follower: FollowerSettings::default(),
            logging: LoggingSettings::default(),
            supervisor: SupervisorConfig::default(),
        }
    }
}

/// `storage_cache_mb` bounds. Below 4 MiB every block commit re-reads most of the pages it
/// rewrites (measured earlier: 4 MiB cost 18% more per transaction committed than 64); above
/// 4 GiB is more than any hot set of this node and is a typo for a memory budget.
pub const MIN_STORAGE_CACHE_MB: u64 = 4;
pub const MAX_STORAGE_CACHE_MB: u64 = 4096;

/// Where chain state is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    /// Lost on exit: development and tests.
    Memory,
    /// redb files under `data_dir`.
    Persistent,
}

// By hand rather than derived: config's enum support answers a typo with "enum StorageKind does
// not have variant constructor disk", which does not tell the operator the valid values.
impl<'de> Deserialize<'de> for StorageKind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match String::deserialize(deserializer)?.as_str() {
            "memory" => Ok(Self::Memory),
            "persistent" => Ok(Self::Persistent),
            other => Err(serde::de::Error::custom(format!(
                "unknown storage {other:?}, expected \"memory\" or \"persistent\""
            ))),
        }
    }
}

/// Largest `api.max_body_bytes` accepted: a block decodes to at most 64 MiB, so a bigger body
/// could never be useful, and the body budget counts in `u32` permits.
pub const MAX_BODY_BYTES_LIMIT: usize = 64 * MIB;

/// `api.*`: what one client may make the API hold, wait for or compute. Every limit here is a
/// bound on work an anonymous client causes before it is refused (RUNBOOK "API limits").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiSettings {
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Most transactions in one `POST /v1/txs`; a longer batch is refused while it is parsed.
    pub max_batch: usize,
    /// Bytes of request bodies all API connections may hold at once; a body that would go over
    /// gets 503 `body_budget_exhausted`. Bounds request memory whatever the number of clients.
    pub max_body_bytes_in_flight: usize,
    /// Most open API connections, all HTTP workers together; further connections wait in the
    /// listen backlog until one closes.
    pub max_connections: usize,
    /// Time a new connection has to send its first request head (actix answers 408).
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Time a request body has to arrive completely once its head is in (408 `body_timeout`).
    #[serde(with = "humantime_serde")]
    pub body_timeout: Duration,
    /// Idle time after an answer before a keep-alive connection is closed.
    #[serde(with = "humantime_serde")]
    pub keep_alive: Duration,
    /// A connection with no request being handled for this long is closed, whatever the client
    /// is doing: a second request head sent byte by byte, an answer not read, a body still
    /// trickling in after its refusal. Covers what actix's own timers leave open.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Gas of a query that does not ask for less, and the most it may ask for. Queries are free
    /// and unlimited in number, so this is far below `execution.gas_limit`.
    pub query_gas_limit: u64,
    /// Most queries that may wait for the executor at once (within `execution.queue_size`).
    /// Queries share the executor with block execution, and a block waits behind the queries
    /// queued before it: this bounds that wait to a few queries, whatever clients send.
    pub max_queued_queries: usize,
    /// Nice value (0 to 19) the threads that verify and admit submissions take, so that block
    /// production gets the cores first under a flood (`api::priority`); 0 leaves them at the
    /// node's own priority. Read at start.
    pub admission_nice: i32,
    /// Per-client rate limits (`api.rate_limit.*`); off by default.
    pub rate_limit: RateLimitSettings,
    /// Optional bearer tokens (`api.auth.*`); off by default.
    pub auth: AuthSettings,
    /// Optional TLS on the API listener (`api.tls.*`); plain HTTP by default.
    pub tls: TlsSettings,
}

/// `api.tls.*`: HTTPS on the API listener. Both files or neither; both are read again on
/// SIGHUP (`systemctl reload`), a bad new pair keeps the old one (see `api::tls`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM certificate chain, leaf first.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of the leaf (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
    /// Time a new connection has to finish its TLS handshake before it is dropped.
    #[serde(with = "humantime_serde")]
    pub handshake_timeout: Duration,
}

impl Default for TlsSettings {
    fn default() -> Self {
        Self {
            cert_file: None,
            key_file: None,
            // A handshake is two round trips and a signature: milliseconds on any sane link.
            handshake_timeout: Duration::from_secs(3),
        }
    }
}

impl TlsSettings {
    /// Whether the API listener speaks TLS.
    pub fn enabled(&self) -> bool {
        self.cert_file.is_some() && self.key_file.is_some()
    }
}

/// `api.auth.*`: bearer tokens for writes and the admin listener (and reads if asked).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// File of accepted token hashes (`sha256:<hex>` a line); unset: no authentication.
    pub token_file: Option<PathBuf>,
    /// Reads on the API listener need a token too.
    pub protect_reads: bool,
}

/// `api.rate_limit.*`: token buckets per client IP, writes (`POST /v1/tx[s]`) and reads (every
/// other API request) counted apart. Off by default: the client is the TCP peer, and behind a
/// reverse proxy or load balancer that is one address for everyone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Clients each table remembers at most; a new client at a full table evicts (see
    /// `api::ratelimit`), so many source addresses cannot grow memory.
    pub max_clients: usize,
    pub writes: RateSettings,
    pub reads: RateSettings,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            max_clients: 16_384,
            writes: RateSettings::default(),
            reads: RateSettings::default(),
        }
    }
}

/// One token bucket: `per_second` requests on average (0 = no limit), `burst` at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateSettings {
    pub per_second: u32,
    pub burst: u32,
}

impl Default for RateSettings {
    fn default() -> Self {
        Self {
            per_second: 0,
            burst: 20,
        }
    }
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            max_body_bytes: 4 * MIB,
            max_batch: 10_000,
            max_body_bytes_in_flight: 32 * MIB,
            max_connections: 512,
            request_timeout: Duration::from_secs(5),
            body_timeout: Duration::from_secs(20),
            keep_alive: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(10),
            query_gas_limit: 10_000_000,
            max_queued_queries: 8,
            admission_nice: crate::api::priority::ADMISSION_NICE,
            rate_limit: RateLimitSettings::default(),
            auth: AuthSettings::default(),
            tls: TlsSettings::default(),
        }
    }
}

/// `execution.*`: the contract engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExecutionSettings {
    /// Contract calls that run at once.
    pub workers: usize,
    /// Gas limit per transaction: a chain parameter, taken from here only when a new chain is
    /// created (`Settings::chain_params`); an existing chain's recorded value rules.
    pub gas_limit: u64,
    /// MB of linear memory all concurrent calls may hold together.
    pub memory_limit: u64,
    /// Calls waiting for a worker before new ones are refused.
    pub queue_size: usize,
    /// Wall-clock backstop per call. Must stay below `supervisor.heartbeat_timeout` (see
    /// [`SupervisorConfig::heartbeat_timeout`]).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for ExecutionSettings {
    fn default() -> Self {
        Self {
            workers: 2,
            gas_limit: DEFAULT_MAX_TX_GAS,
            memory_limit: 128,
            queue_size: 1000,
            // A 50M-gas call (the largest allowed) finishes in well under a second; 2 s is the
            // backstop for calls that burn wall time without burning gas, and what one such call
            // can hold a worker for.
            timeout: Duration::from_secs(2),
        }
    }
}

/// `wasm.*`: limits on one contract instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WasmSettings {
    /// Most 64 KiB pages one call's memory may grow to: a chain parameter like
    /// `execution.gas_limit` (used for a new chain only).
    pub max_memory_pages: u32,
}

impl Default for WasmSettings {
    fn default() -> Self {
        Self {
            max_memory_pages: DEFAULT_MAX_MEMORY_PAGES,
        }
    }
}

/// `mempool.*`: pending transactions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MempoolSettings {
    /// Most pending transactions in total.
    pub max_size: usize,
    /// Most bytes of pending transactions in total (their canonical encoding), so a pool of
    /// big deploys cannot take the node's memory or disk (the journal holds the same bytes).
    pub max_bytes: u64,
    /// Most pending transactions from one account, so one sender cannot fill the pool.
    pub account_limit: usize,
    /// Most transactions one account may hold behind a nonce gap (not executable until the
    /// missing nonce arrives); `mempool.account_limit` caps it too.
    pub future_limit: usize,
    /// How long a transaction may wait behind a nonce gap after it arrived before it is
    /// evicted.
    #[serde(with = "humantime_serde")]
    pub future_ttl: Duration,
    /// Keep pending transactions across restarts.
    pub persist: bool,
}

impl Default for MempoolSettings {
    fn default() -> Self {
        Self {
            max_size: 50_000,
            max_bytes: 128 * 1024 * 1024,
            account_limit: 1000,
            future_limit: 16,
            future_ttl: Duration::from_secs(60),
            persist: false,
        }
    }
}

/// `bridge.*`: anchoring every block on the Accumulate L0.
///
/// The `bridge.l0.*` keys are checked (well-formed URLs, a readable key file) only when
/// `enable_bridge` is true: a node that does not anchor does not need an L0, and the development
/// profile leaves them unset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BridgeSettings {
    /// Anchor blocks to the L0. Accepted here; whether this build can honour it is the node's
    /// decision, not the settings layer's.
    pub enable_bridge: bool,
    /// Committed blocks not yet anchored beyond which `/health` reports degraded. At least
    /// `stager.batch_size`: a batch filling up is normal, not a backlog.
    pub max_backlog: u64,
    pub submitter: SubmitterSettings,
    pub stager: StagerSettings,
    pub l0: L0Settings,
}

impl Default for BridgeSettings {
    fn default() -> Self {
        Self {
            enable_bridge: false,
            // 1000 blocks: 17 minutes of 1 s blocks, almost 3 hours of 10 s blocks; far above a
            // healthy backlog (one batch plus the ones in flight).
            max_backlog: 1000,
            submitter: SubmitterSettings::default(),
            stager: StagerSettings::default(),
            l0: L0Settings::default(),
        }
    }
}

/// `bridge.l0.*`: where and as whom anchors are written. No defaults: each deployment has its
/// own network, data account and key, and a wrong default would write anchors somewhere else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct L0Settings {
    /// The L0 node's JSON-RPC API v3 URL: `http://` or `https://`, path ending in `/v3`
    /// (`https://mainnet.accumulatenetwork.io/v3`).
    pub endpoint: Option<String>,
    /// The data account anchors are written to (`acc://accumen.acme/anchors`).
    pub data_account: Option<String>,
    /// The key page that signs (and pays for) anchors (`acc://accumen.acme/book/1`).
    pub key_page: Option<String>,
    /// The Ed25519 key of `key_page`, in the file format of `accumen key generate`.
    pub key_file: Option<PathBuf>,
    /// Longest one L0 call (connect, send, whole answer) may take before it counts as a
    /// retryable failure: what an L0 that accepts the connection and never answers costs.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
}

impl Default for L0Settings {
    fn default() -> Self {
        Self {
            endpoint: None,
            data_account: None,
            key_page: None,
            key_file: None,
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// The longest `bridge.l0.request_timeout`: a graceful stop gives the bridge a few seconds, and
/// an L0 slower than this is down for the bridge's purposes.
pub const MAX_L0_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The Accumulate JSON-RPC path every endpoint must end with.
pub const L0_API_PATH: &str = "/v3";

impl L0Settings {
    /// The endpoint, parsed; `None` if unset or invalid (validation refuses both when the bridge
    /// is enabled, so a loaded `Settings` with the bridge on always has one).
    pub fn endpoint_url(&self) -> Option<reqwest::Url> {
        self.endpoint
            .as_deref()
            .and_then(|e| check_endpoint(e).ok())
    }

    /// Reads the signing key from `key_file` (`None` when unset).
    pub fn read_key(&self) -> Option<anyhow::Result<accumen_actors::types::Keypair>> {
        self.key_file.as_deref().map(crate::keyfile::read)
    }
}

/// Checks an L0 endpoint: an absolute `http`/`https` URL with a host, no credentials, query or
/// fragment, whose path ends in `/v3`. The error says what is wrong, without the key's name.
pub fn check_endpoint(endpoint: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(endpoint).map_err(|e| format!("not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("scheme {:?} is not http or https", url.scheme()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("it has no host".to_owned());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("it holds credentials; the L0 API takes none".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("it has a query or fragment".to_owned());
    }
    if !url.path().ends_with(L0_API_PATH) {
        return Err(format!(
            "its path {:?} does not end in {L0_API_PATH}",
            url.path()
        ));
    }
    Ok(url)
}

/// Checks an Accumulate account URL in the form Accumen uses (the L0 document, section 3.1):
/// `acc://` + an identity + a path of one or more segments, all lowercase `[a-z0-9._-]`, with
/// no empty segment, trailing slash, query, fragment or `@` (that would be a transaction id).
/// Restricting to this form keeps the URL canonical, so the bytes hashed and signed are those
/// the L0 recomputes. The error says what is wrong, without the key's name.
pub fn check_acc_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("acc://")
        .ok_or_else(|| "it does not start with acc://".to_owned())?;
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c);
    let (identity, path) = rest.split_once('/').unwrap_or((rest, ""));
    if identity.is_empty() {
        return Err("it names no identity after acc://".to_owned());
    }
    if let Some(c) = rest.chars().find(|&c| c != '/' && !allowed(c)) {
        return Err(format!(
            "character {c:?} is not allowed (only lowercase a-z, 0-9, '.', '_', '-' and '/')"
        ));
    }
    if identity.starts_with('.') || identity.ends_with('.') {
        return Err(format!("identity {identity:?} starts or ends with a dot"));
    }
    // No '/' at all names the identity itself; a '/' with nothing (or an empty segment) after
    // it is a malformed path.
    if !rest.contains('/') {
        return Err(format!(
            "it names the identity {identity:?} itself, not an account under it \
             (such as acc://{identity}/anchors)"
        ));
    }
    if path.split('/').any(str::is_empty) {
        return Err("it has an empty path segment or a trailing slash".to_owned());
    }
    Ok(())
}

/// `bridge.submitter.*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SubmitterSettings {
    /// Concurrent submissions to the L0.
    pub workers: usize,
}

impl Default for SubmitterSettings {
    fn default() -> Self {
        Self { workers: 4 }
    }
}

/// `bridge.stager.*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StagerSettings {
    /// Entries per staged batch.
    pub batch_size: usize,
    /// Longest a partial batch waits before it is flushed anyway.
    #[serde(with = "humantime_serde")]
    pub flush_interval: Duration,
}

impl Default for StagerSettings {
    fn default() -> Self {
        Self {
            batch_size: 200,
            flush_interval: Duration::from_secs(1),
        }
    }
}

/// Most blocks one `GET /v1/sync/blocks` answers (`follower.batch_size` may not exceed it).
pub const MAX_SYNC_BATCH: u32 = 256;
/// Longest a sync request may wait for a new block (`follower.long_poll` may not exceed it).
pub const MAX_SYNC_WAIT: Duration = Duration::from_secs(10);

/// `follower.*`: which sequencer a follower follows and how it fetches. Ignored by a sequencer;
/// a follower refuses to start without `sequencer_api` and `sequencer_key` (RUNBOOK "Follower").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FollowerSettings {
    /// The sequencer's API URL, `http://host:port` or `https://host:port`.
    pub sequencer_api: Option<String>,
    /// For an https `sequencer_api`: trust only the CA certificates of this PEM file (the CA of
    /// the sequencer's `api.tls.cert_file`) instead of the system's.
    pub ca_cert_file: Option<PathBuf>,
    /// The sequencer's public key (hex, as `accumen key` prints it): blocks signed by any other
    /// key are refused.
    pub sequencer_key: Option<String>,
    /// Blocks asked for per request (at most `MAX_SYNC_BATCH`).
    pub batch_size: u32,
    /// How long a caught-up follower's request waits on the sequencer for the next block.
    #[serde(with = "humantime_serde")]
    pub long_poll: Duration,
    /// Whole-request timeout of one fetch (above `long_poll`).
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// First wait after a failed fetch; doubled on each further failure up to `retry_max`.
    #[serde(with = "humantime_serde")]
    pub retry_min: Duration,
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
}

impl Default for FollowerSettings {
    fn default() -> Self {
        Self {
            sequencer_api: None,
            ca_cert_file: None,
            sequencer_key: None,
            batch_size: 64,
            long_poll: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            retry_min: Duration::from_millis(200),
            retry_max: Duration::from_secs(10),
        }
    }
}

impl FollowerSettings {
    /// The pinned sequencer key, if set and well-formed.
    pub fn pinned_key(&self) -> Option<Result<accumen_actors::types::PublicKey, String>> {
        self.sequencer_key.as_deref().map(|k| {
            let k = k.trim();
            accumen_actors::types::PublicKey::from_hex(k.strip_prefix("0x").unwrap_or(k))
                .map_err(|e| e.to_string())
        })
    }

    fn problems(&self, rule: &mut impl FnMut(bool, &'static str, String)) {
        if let Some(url) = &self.sequencer_api {
            let ok = reqwest::Url::parse(url)
                .map(|u| (u.scheme() == "http" || u.scheme() == "https") && u.host().is_some())
                .unwrap_or(false);
            rule(
                ok,
                "follower.sequencer_api",
                format!(
                    "follower.sequencer_api {url:?} is not a sequencer API URL: expected http://HOST:PORT or https://HOST:PORT, such as http://10.0.0.1:8080"
                ),
            );
        }
        let https = self
            .sequencer_api
            .as_deref()
            .is_some_and(|u| u.trim().to_ascii_lowercase().starts_with("https://"));
        rule(
            self.ca_cert_file.is_none() || https,
            "follower.ca_cert_file",
            "follower.ca_cert_file is set but follower.sequencer_api is not an https:// URL"
                .to_owned(),
        );
        if let Some(Err(why)) = self.pinned_key() {
            rule(
                false,
                "follower.sequencer_key",
                format!(
                    "follower.sequencer_key is not a public key ({why}): expected 64 hex digits, as `accumen key` prints"
                ),
            );
        }
        rule(
            (1..=MAX_SYNC_BATCH).contains(&self.batch_size),
            "follower.batch_size",
            format!(
                "follower.batch_size must be between 1 and {MAX_SYNC_BATCH}, got {}",
                self.batch_size
            ),
        );
        rule(
            self.long_poll <= MAX_SYNC_WAIT,
            "follower.long_poll",
            format!(
                "follower.long_poll must be at most {MAX_SYNC_WAIT:?}, got {:?}",
                self.long_poll
            ),
        );
        rule(
            self.request_timeout >= self.long_poll + Duration::from_secs(1),
            "follower.request_timeout",
            format!(
                "follower.request_timeout ({:?}) must exceed follower.long_poll ({:?}) by at least 1s",
                self.request_timeout, self.long_poll
            ),
        );
        rule(
            self.retry_min >= MIN_INTERVAL,
            "follower.retry_min",
            min_interval_msg("follower.retry_min", self.retry_min),
        );
        rule(
            self.retry_max >= self.retry_min,
            "follower.retry_max",
            format!(
                "follower.retry_max ({:?}) must be at least follower.retry_min ({:?})",
                self.retry_max, self.retry_min
            ),
        );
    }
}

/// `logging.*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingSettings {
    /// A level (`info`) or an `EnvFilter` directive list (`info,accumen=debug`).
    pub level: String,
    /// Line format on stderr.
    pub format: LogFormat,
}

impl Default for LoggingSettings {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
            format: LogFormat::Text,
        }
    }
}

/// `logging.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `TIMESTAMP LEVEL target: message key=value ...`: the runbook's grep patterns match it.
    #[default]
    Text,
    /// One JSON object per line (`telemetry` lists the fields).
    Json,
}

// By hand, like `StorageKind`, so a typo names the valid values.
impl<'de> Deserialize<'de> for LogFormat {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match String::deserialize(deserializer)?.as_str() {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(serde::de::Error::custom(format!(
                "unknown format {other:?}, expected \"text\" or \"json\""
            ))),
        }
    }
}

/// A listen address. Accepts `ip:port`, `[ipv6]:port`, `localhost:port` and the runbook's
/// `:port` (all IPv4 interfaces); written back as `ip:port`. Host names other than `localhost`
/// are refused: resolving DNS while loading settings would make startup depend on the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenAddr(pub SocketAddr);

impl ListenAddr {
    fn localhost(port: u16) -> Self {
        Self(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))
    }
}

/// A listen address that [`ListenAddr`] cannot parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid listen address {input:?}: expected ip:port, [ipv6]:port, localhost:port or :port")]
pub struct ListenAddrError {
    pub input: String,
}

impl FromStr for ListenAddr {
    type Err = ListenAddrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ListenAddrError {
            input: s.to_owned(),
        };
        if let Some(port) = s.strip_prefix(':') {
            let port = port.parse::<u16>().map_err(|_| err())?;
            return Ok(Self(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                port,
            )));
        }
        if let Ok(addr) = s.parse::<SocketAddr>() {
            return Ok(Self(addr));
        }
        match s.rsplit_once(':') {
            Some((host, port)) if host.eq_ignore_ascii_case("localhost") => {
                let port = port.parse::<u16>().map_err(|_| err())?;
                Ok(Self::localhost(port))
            }
            _ => Err(err()),
        }
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for ListenAddr {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ListenAddr {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Why settings could not be loaded. Every variant names where the problem is: the file, or the
/// environment variable, and the dotted key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    #[error("{}: not found", path.display())]
    NotFound { path: PathBuf },
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: invalid YAML: {message}", path.display())]
    Syntax { path: PathBuf, message: String },
    #[error("{origin}: unknown key `{key}`")]
    UnknownKey { origin: Origin, key: String },
    #[error(
        "{origin}: `{key}` is given more than once (nested and dotted forms name the same key)"
    )]
    Duplicate { origin: Origin, key: String },
    /// A value of the wrong type or form for its key (`workers: many`, `block_time: soon`).
    #[error("{origin}: {key}: {message}")]
    Value {
        origin: Origin,
        key: String,
        message: String,
    },
    /// A well-formed value that breaks a rule; `message` names the key itself, so rules that
    /// involve several keys read naturally.
    #[error("{origin}: {message}")]
    Invalid {
        origin: Origin,
        key: String,
        message: String,
    },
    /// More than one of the above; reported together so an operator fixes them in one pass.
    #[error("{}", join_lines(.0))]
    Several(Vec<SettingsError>),
}

fn join_lines(errors: &[SettingsError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl SettingsError {
    /// The individual errors, with `Several` flattened.
    pub fn errors(&self) -> Vec<&SettingsError> {
        match self {
            Self::Several(all) => all.iter().flat_map(Self::errors).collect(),
            one => vec![one],
        }
    }

    /// One error stays itself; several become `Several`. `None` when there are none.
    fn from_list(mut errors: Vec<SettingsError>) -> Option<Self> {
        match errors.len() {
            0 => None,
            1 => errors.pop(),
            _ => Some(Self::Several(errors)),
        }
    }
}

/// A broken rule found by validation, before we know which source to blame.
struct Problem {
    key: &'static str,
    message: String,
}

impl Settings {
    /// Built-in defaults, then the YAML file at `path`, then `ACCUMEN_*` variables from the
    /// process environment; validated.
    pub fn load(path: &Path) -> Result<Settings, SettingsError> {
        // vars_os, not vars: vars() panics on any non-UTF-8 variable, even one that is not ours.
        let env = std::env::vars_os().filter_map(|(k, v)| {
            let k = k.into_string().ok()?;
            Some((k, v.to_string_lossy().into_owned()))
        });
        Self::load_from(path, env)
    }

    /// [`Settings::load`] with an explicit environment, so tests and tools do not depend on the
    /// process environment. Variables without the `ACCUMEN_` prefix are ignored.
    pub fn load_from(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, SettingsError> {
        let tree = source::Tree::read(path, env)?;
        let settings = tree.deserialize()?;
        let problems = settings.problems();
        let errors: Vec<_> = problems
            .into_iter()
            .map(|p| SettingsError::Invalid {
                origin: tree.origin_for_rule(p.key),
                key: p.key.to_owned(),
                message: p.message,
            })
            .collect();
        match SettingsError::from_list(errors) {
            Some(e) => Err(e),
            None => Ok(settings),
        }
    }

    /// Checks every rule the rest of the node relies on; reports all broken rules at once.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let errors: Vec<_> = self
            .problems()
            .into_iter()
            .map(|p| SettingsError::Invalid {
                origin: Origin::Settings,
                key: p.key.to_owned(),
                message: p.message,
            })
            .collect();
        match SettingsError::from_list(errors) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut rule = |ok: bool, key: &'static str, message: String| {
            if !ok {
                out.push(Problem { key, message });
            }
        };

        let len = self.chain_id.len();
        rule(
            (1..=MAX_CHAIN_ID_BYTES).contains(&len),
            "chain_id",
            format!("chain_id must be 1 to {MAX_CHAIN_ID_BYTES} bytes, got {len}"),
        );
        rule(
            self.block_time >= MIN_INTERVAL,
            "block_time",
            min_interval_msg("block_time", self.block_time),
        );
        rule(
            self.max_transactions >= 1,
            "max_transactions",
            "max_transactions must be at least 1".to_owned(),
        );
        rule(
            (MIN_STORAGE_CACHE_MB..=MAX_STORAGE_CACHE_MB).contains(&self.storage_cache_mb),
            "storage_cache_mb",
            format!(
                "storage_cache_mb = {} must be {MIN_STORAGE_CACHE_MB} to {MAX_STORAGE_CACHE_MB} \
                 (MiB of redb page cache for the chain's data file)",
                self.storage_cache_mb
            ),
        );
        if let Some(key) = &self.sequencer_key {
            rule(
                !key.as_os_str().is_empty(),
                "sequencer_key",
                "sequencer_key must not be empty (leave it unset for the default)".to_owned(),
            );
        }
        self.api_problems(&mut rule);
        rule(
            self.admin_addr.0.ip().is_loopback() || self.admin_allow_non_loopback,
            "admin_addr",
            format!(
                "admin_addr {} is not a loopback address: the admin listener has no \
                 authentication and can restart actors; bind it to 127.0.0.1 or [::1], or set \
                 admin_allow_non_loopback: true to expose it deliberately",
                self.admin_addr
            ),
        );

        // The engine checks these three too, but only reports the first; checking them here
        // lets one pass report them all, and keeps the engine's check for the memory rule.
        let workers_ok = self.execution.workers >= 1;
        rule(
            workers_ok,
            "execution.workers",
            "execution.workers must be at least 1".to_owned(),
        );
        let timeout_ok = self.execution.timeout >= MIN_INTERVAL;
        rule(
            timeout_ok,
            "execution.timeout",
            min_interval_msg("execution.timeout", self.execution.timeout),
        );
        let pages = self.wasm.max_memory_pages;
        let pages_ok = (1..=65_536).contains(&pages);
        rule(
            pages_ok,
            "wasm.max_memory_pages",
            format!("wasm.max_memory_pages must be between 1 and 65536, got {pages}"),
        );
        rule(
            self.execution.gas_limit >= 1,
            "execution.gas_limit",
            "execution.gas_limit must be at least 1".to_owned(),
        );
        // A transaction may never ask for more than a whole block holds (a chain rule): such a
        // transaction could never be included.
        let block_gas = accumen_actors::vm::gas::MAX_BLOCK_GAS;
        rule(
            self.execution.gas_limit <= block_gas,
            "execution.gas_limit",
            format!(
                "execution.gas_limit = {} exceeds the chain's per-block gas limit {block_gas}",
                self.execution.gas_limit
            ),
        );
        rule(
            self.execution.queue_size >= 1,
            "execution.queue_size",
            "execution.queue_size must be at least 1".to_owned(),
        );
        if workers_ok
            && timeout_ok
            && pages_ok
            && let Err(e) = self.vm_config().check()
        {
            rule(false, vm_error_key(&e), e.to_string());
        }

        rule(
            self.mempool.max_size >= 1,
            "mempool.max_size",
            "mempool.max_size must be at least 1".to_owned(),
        );
        rule(
            self.mempool.account_limit >= 1,
            "mempool.account_limit",
            "mempool.account_limit must be at least 1".to_owned(),
        );
        rule(
            self.mempool.account_limit <= self.mempool.max_size,
            "mempool.account_limit",
            format!(
                "mempool.account_limit = {} exceeds mempool.max_size = {}",
                self.mempool.account_limit, self.mempool.max_size
            ),
        );
        rule(
            self.mempool.max_bytes >= MAX_TX_BYTES as u64,
            "mempool.max_bytes",
            format!(
                "mempool.max_bytes = {} is below the largest transaction ({MAX_TX_BYTES} bytes)",
                self.mempool.max_bytes
            ),
        );
        rule(
            self.mempool.future_ttl >= MIN_INTERVAL,
            "mempool.future_ttl",
            min_interval_msg("mempool.future_ttl", self.mempool.future_ttl),
        );

        rule(
            self.bridge.submitter.workers >= 1,
            "bridge.submitter.workers",
            "bridge.submitter.workers must be at least 1".to_owned(),
        );
        rule(
            self.bridge.stager.batch_size >= 1,
            "bridge.stager.batch_size",
            "bridge.stager.batch_size must be at least 1".to_owned(),
        );
        rule(
            self.bridge.stager.flush_interval >= MIN_INTERVAL,
            "bridge.stager.flush_interval",
            min_interval_msg(
                "bridge.stager.flush_interval",
                self.bridge.stager.flush_interval,
            ),
        );
        rule(
            self.bridge.max_backlog >= self.bridge.stager.batch_size as u64
                && self.bridge.max_backlog >= 1,
            "bridge.max_backlog",
            format!(
                "bridge.max_backlog = {} must be at least 1 and at least bridge.stager.batch_size = {}: a batch filling up is normal, not a backlog",
                self.bridge.max_backlog, self.bridge.stager.batch_size
            ),
        );
        rule(
            self.bridge.l0.request_timeout >= MIN_INTERVAL
                && self.bridge.l0.request_timeout <= MAX_L0_REQUEST_TIMEOUT,
            "bridge.l0.request_timeout",
            format!(
                "bridge.l0.request_timeout = {:?} must be between {MIN_INTERVAL:?} and \
                 {MAX_L0_REQUEST_TIMEOUT:?}",
                self.bridge.l0.request_timeout
            ),
        );
        // A node that neither anchors nor follows never uses `bridge.l0.*`: not looked at.
        if self.bridge.enable_bridge || self.reads_l0_only() {
            self.l0_problems(&mut rule);
        }
        self.follower.problems(&mut rule);

        if let Err(message) = check_log_level(&self.logging.level) {
            rule(false, "logging.level", message);
        }

        let sup = &self.supervisor;
        for (key, value) in [
            ("supervisor.heartbeat_interval", sup.heartbeat_interval),
            ("supervisor.heartbeat_timeout", sup.heartbeat_timeout),
            ("supervisor.restart_window", sup.restart_window),
        ] {
            rule(value >= MIN_INTERVAL, key, min_interval_msg(key, value));
        }
        // A heartbeat can wait behind a call that runs for up to execution.timeout; only a call
        // finishing before the deadline tells busy from stuck (supervisor module comment).
        rule(
            self.execution.timeout < sup.heartbeat_timeout,
            "execution.timeout",
            format!(
                "execution.timeout = {} must be below supervisor.heartbeat_timeout = {}: a \
                 busy executor is told from a stuck one by calls finishing before the heartbeat \
                 deadline, and one call may run for execution.timeout",
                humantime::format_duration(self.execution.timeout),
                humantime::format_duration(sup.heartbeat_timeout)
            ),
        );
        out
    }

    /// A configuration naming a sequencer to follow (`follower.sequencer_api`) is a follower's:
    /// it only reads the L0 (the sequencer's anchors), so it needs no key page or key file.
    fn reads_l0_only(&self) -> bool {
        self.follower.sequencer_api.is_some()
    }

    /// The `bridge.l0.*` rules. For a node that anchors (`enable_bridge`, not a follower): every
    /// key set and well-formed, and the key file readable and holding a key. For a follower
    /// (`reads_l0_only`): `endpoint` and `data_account` well-formed when set (both required
    /// with `enable_bridge`), the key never needed. Each message names its key.
    fn l0_problems(&self, rule: &mut impl FnMut(bool, &'static str, String)) {
        let l0 = &self.bridge.l0;
        let required = self.bridge.enable_bridge;
        let signs = required && !self.reads_l0_only();
        let unset = |key: &str, example: &str| {
            format!("{key} must be set when bridge.enable_bridge is true (such as {example})")
        };
        match l0.endpoint.as_deref() {
            None => rule(
                !required,
                "bridge.l0.endpoint",
                unset(
                    "bridge.l0.endpoint",
                    "https://mainnet.accumulatenetwork.io/v3",
                ),
            ),
            Some(e) => {
                if let Err(why) = check_endpoint(e) {
                    rule(
                        false,
                        "bridge.l0.endpoint",
                        format!(
                            "bridge.l0.endpoint {e:?} is not an L0 JSON-RPC URL: {why}; expected http(s)://HOST[:PORT]/.../v3, such as https://mainnet.accumulatenetwork.io/v3"
                        ),
                    );
                }
            }
        }
        for (key, value, example, needed) in [
            (
                "bridge.l0.data_account",
                &l0.data_account,
                "acc://accumen.acme/anchors",
                required,
            ),
            (
                "bridge.l0.key_page",
                &l0.key_page,
                "acc://accumen.acme/book/1",
                signs,
            ),
        ] {
            match value.as_deref() {
                None => rule(!needed, key, unset(key, example)),
                Some(v) => {
                    if let Err(why) = check_acc_url(v) {
                        rule(
                            false,
                            key,
                            format!(
                                "{key} {v:?} is not an Accumulate account URL: {why}; expected such as {example}"
                            ),
                        );
                    }
                }
            }
        }
        if !signs {
            return;
        }
        match l0.read_key() {
            None => rule(
                false,
                "bridge.l0.key_file",
                unset(
                    "bridge.l0.key_file",
                    "/var/lib/accumen/l0.key, made by accumen key generate",
                ),
            ),
            Some(Err(e)) => rule(
                false,
                "bridge.l0.key_file",
                format!("bridge.l0.key_file: {e:#}"),
            ),
            Some(Ok(_)) => {}
        }
    }

    fn api_problems(&self, rule: &mut impl FnMut(bool, &'static str, String)) {
        let api = &self.api;
        rule(
            (1..=MAX_BODY_BYTES_LIMIT).contains(&api.max_body_bytes),
            "api.max_body_bytes",
            format!(
                "api.max_body_bytes must be between 1 and {MAX_BODY_BYTES_LIMIT}, got {}",
                api.max_body_bytes
            ),
        );
        rule(
            api.max_batch >= 1,
            "api.max_batch",
            "api.max_batch must be at least 1".to_owned(),
        );
        // One largest batch and its answer (charged per element before admission) must fit,
        // or such a batch could never be accepted.
        let one_batch = api
            .max_body_bytes
            .saturating_add(api.max_batch.saturating_mul(crate::api::MAX_RESULT_BYTES));
        rule(
            api.max_body_bytes_in_flight >= one_batch,
            "api.max_body_bytes_in_flight",
            format!(
                "api.max_body_bytes_in_flight = {} cannot hold one largest request and its \
                 answer: api.max_body_bytes + api.max_batch × {} = {one_batch}",
                api.max_body_bytes_in_flight,
                crate::api::MAX_RESULT_BYTES
            ),
        );
        rule(
            api.max_connections >= 1,
            "api.max_connections",
            "api.max_connections must be at least 1".to_owned(),
        );
        for (key, value) in [
            ("api.request_timeout", api.request_timeout),
            ("api.body_timeout", api.body_timeout),
            ("api.keep_alive", api.keep_alive),
            ("api.idle_timeout", api.idle_timeout),
        ] {
            rule(value >= MIN_INTERVAL, key, min_interval_msg(key, value));
        }
        // The idle watchdog is the backstop behind actix's own timers; shorter, it would cut
        // honest keep-alive connections and slow first requests before those timers apply.
        rule(
            api.idle_timeout >= api.keep_alive && api.idle_timeout >= api.request_timeout,
            "api.idle_timeout",
            format!(
                "api.idle_timeout = {} must be at least api.keep_alive = {} and \
                 api.request_timeout = {}",
                humantime::format_duration(api.idle_timeout),
                humantime::format_duration(api.keep_alive),
                humantime::format_duration(api.request_timeout)
            ),
        );
        rule(
            api.max_queued_queries >= 1,
            "api.max_queued_queries",
            "api.max_queued_queries must be at least 1".to_owned(),
        );
        rule(
            (0..=19).contains(&api.admission_nice),
            "api.admission_nice",
            format!(
                "api.admission_nice = {} must be between 0 (off) and 19",
                api.admission_nice
            ),
        );
        rule(
            !api.auth.protect_reads || api.auth.token_file.is_some(),
            "api.auth.protect_reads",
            "api.auth.protect_reads needs api.auth.token_file".to_owned(),
        );
        let tls = &api.tls;
        rule(
            tls.cert_file.is_some() || tls.key_file.is_none(),
            "api.tls.cert_file",
            "api.tls.key_file is set but api.tls.cert_file is not: TLS needs both (or neither, \
             for plain HTTP)"
                .to_owned(),
        );
        rule(
            tls.key_file.is_some() || tls.cert_file.is_none(),
            "api.tls.key_file",
            "api.tls.cert_file is set but api.tls.key_file is not: TLS needs both (or neither, \
             for plain HTTP)"
                .to_owned(),
        );
        for (key, path) in [
            ("api.tls.cert_file", &tls.cert_file),
            ("api.tls.key_file", &tls.key_file),
        ] {
            rule(
                path.as_ref().is_none_or(|p| !p.as_os_str().is_empty()),
                key,
                format!("{key} must not be empty (leave it unset for plain HTTP)"),
            );
        }
        rule(
            tls.handshake_timeout >= MIN_INTERVAL,
            "api.tls.handshake_timeout",
            min_interval_msg("api.tls.handshake_timeout", tls.handshake_timeout),
        );
        let rl = &api.rate_limit;
        rule(
            (1..=1_000_000).contains(&rl.max_clients),
            "api.rate_limit.max_clients",
            format!(
                "api.rate_limit.max_clients must be between 1 and 1000000, got {}",
                rl.max_clients
            ),
        );
        for (key, r) in [
            ("api.rate_limit.writes.burst", &rl.writes),
            ("api.rate_limit.reads.burst", &rl.reads),
        ] {
            rule(
                r.per_second == 0 || r.burst >= 1,
                key,
                format!("{key} must be at least 1 when the limit is on (per_second > 0)"),
            );
        }
        rule(
            (1..=self.execution.gas_limit).contains(&api.query_gas_limit),
            "api.query_gas_limit",
            format!(
                "api.query_gas_limit must be between 1 and execution.gas_limit = {}, got {}",
                self.execution.gas_limit, api.query_gas_limit
            ),
        );
    }

    /// The parameters this configuration gives a NEW chain: `chain_id`, `execution.gas_limit`
    /// and `wasm.max_memory_pages`, and this build's constants for the rest. An existing chain
    /// keeps its recorded parameters; see `reconcile_chain`.
    pub fn chain_params(&self) -> ChainParams {
        ChainParams::new(
            self.chain_id.clone(),
            self.execution.gas_limit,
            self.wasm.max_memory_pages,
        )
    }

    /// Decides the parameters the node runs with for a chain that recorded `chain` at genesis
    /// (`Storage::params`): the chain's, checked against this build and this node's memory limit
    /// and workers. An error means the node must refuse to start; otherwise log the result's
    /// overrides (`Reconciled::log_overrides`) and build everything consensus-relevant (VM,
    /// mempool gas cap, block context) from `Reconciled::params`.
    pub fn reconcile_chain(&self, chain: &ChainParams) -> Result<Reconciled, ParamsError> {
        reconcile(chain, &self.chain_params(), &self.vm_config())
    }

    /// The engine configuration for running a chain with `params` (the effective ones): the
    /// chain's page and stack limits, this node's memory limit, workers, timeout and caches.
    pub fn vm_config_for(&self, params: &ChainParams) -> VmConfig {
        params.vm_config(&self.vm_config())
    }

    /// The contract engine's configuration from this configuration alone (what a new chain
    /// would use; validation checks it). A running node uses `vm_config_for` with its chain's
    /// parameters instead. Persistent nodes keep compiled modules under `data_dir/modules` so a
    /// restart does not recompile every contract.
    pub fn vm_config(&self) -> VmConfig {
        VmConfig {
            max_memory_pages: self.wasm.max_memory_pages,
            memory_limit_mb: self.execution.memory_limit,
            workers: self.execution.workers,
            timeout: self.execution.timeout,
            cache_dir: match self.storage {
                StorageKind::Persistent => Some(self.data_dir.join("modules")),
                StorageKind::Memory => None,
            },
            ..VmConfig::default()
        }
    }

    /// The sequencer key file to use: `sequencer_key` if set, else `data_dir/sequencer.key` for
    /// persistent storage. `None` means an in-memory node that should use an ephemeral key,
    /// since its chain does not outlive the process anyway.
    pub fn sequencer_key_path(&self) -> Option<PathBuf> {
        match (&self.sequencer_key, self.storage) {
            (Some(path), _) => Some(path.clone()),
            (None, StorageKind::Persistent) => Some(self.data_dir.join("sequencer.key")),
            (None, StorageKind::Memory) => None,
        }
    }

    /// The effective settings as pretty JSON, for `accumen config check`.
    pub fn to_pretty_json(&self) -> String {
        // Serialization only fails for a non-UTF-8 path, which YAML and the environment (read
        // lossily) cannot produce; report it in-band rather than panic.
        serde_json::to_string_pretty(self).unwrap_or_else(|e| {
            serde_json::json!({ "error": format!("cannot serialize settings: {e}") }).to_string()
        })
    }
}

fn min_interval_msg(key: &str, value: Duration) -> String {
    format!(
        "{key} must be at least {}ms, got {}",
        MIN_INTERVAL.as_millis(),
        humantime::format_duration(value)
    )
}

/// Which key an engine configuration error is about, so the right source gets blamed.
fn vm_error_key(e: &VmConfigError) -> &'static str {
    match e {
        VmConfigError::MemoryPages(_) => "wasm.max_memory_pages",
        VmConfigError::Workers => "execution.workers",
        VmConfigError::Timeout => "execution.timeout",
        VmConfigError::MemoryLimit { .. } => "execution.memory_limit",
        // The engine may grow new rules; blame the section rather than fail to build.
        #[allow(unreachable_patterns)]
        _ => "execution",
    }
}

/// A bare word must be a level: `EnvFilter` would accept `verbose` as a target name and
/// silently log nothing useful. Anything with directive syntax goes to `EnvFilter` itself.
fn check_log_level(level: &str) -> Result<(), String> {
    if level.trim().is_empty() {
        return Err("logging.level must not be empty".to_owned());
    }
    if level.contains(['=', ',', '[']) {
        return tracing_subscriber::EnvFilter::try_new(level)
            .map(drop)
            .map_err(|e| format!("logging.level {level:?} is not a valid filter directive: {e}"));
    }
    tracing::level_filters::LevelFilter::from_str(level)
        .map(drop)
        .map_err(|_| {
            format!(
                "logging.level {level:?} is not a level (trace, debug, info, warn, error, off) \
                 or a filter directive such as \"info,accumen=debug\""
            )
        })
}

/// `accumen config check --config FILE`: prints the effective settings as JSON to stdout and
/// returns 0, or prints every error to stderr and returns 1.
pub fn config_check(path: &Path) -> i32 {
    match Settings::load(path) {
        Ok(settings) => {
            let mut out = std::io::stdout().lock();
            match writeln!(out, "{}", settings.to_pretty_json()) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("error: cannot write to stdout: {e}");
                    1
                }
            }
        }
        Err(err) => {
            for e in err.errors() {
                eprintln!("error: {e}");
            }
            1
        }
    }
}
