//! The local L0 stand-in behind `accumen devnet-l0`, actix-free: JSON-RPC 2.0 framing and method
//! dispatch ([`Devnet::handle`]) over the ledger in [`state`], simulated blocks
//! ([`Devnet::block`]), fault switches and test levers ([`Devnet::control`]), and persistence.
//! The HTTP shell (`src/devnet.rs`) only moves bytes, applies the transport faults (refuse,
//! delay) and ticks blocks.
//!
//! Invariants (L0 document §1, §7):
//! - Framing is strict: a body that is not JSON → `-32700`; not one request object, unknown
//!   top-level members, `jsonrpc` not `"2.0"`, a missing method → `-32600`; an unknown method →
//!   `-32601`; `params` missing or null → `-33400 empty request`; `params` not an object or not
//!   the method's shape → `-33502 unmarshal request`; a `type` member, if present, must name the
//!   method's request. A request without `id` is a notification: executed, not answered.
//! - Every protocol error is `-33000 - status` with `data: {message, code}`.
//! - Persistence (`--data-dir`): the whole ledger as one JSON file, replaced atomically (temp
//!   file, fsync, rename) after every block that changed it and after every lever. A crash loses
//!   at most the submissions of the current block, like a real node's mempool.
//! - Fault switches are not persisted: a restart starts healthy.

pub mod state;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

pub use state::{BlockReport, RpcFail, State};

use super::encoding::AccUrl;
use super::json::{QueryRequest, Status, SubmitRequest};
use crate::types::{Hash, PublicKey};

/// The state file inside `--data-dir`.
pub const STATE_FILE: &str = "devnet-l0.json";
/// Longest delay the control API accepts.
pub const MAX_DELAY_MS: u64 = 60_000;
/// Longest hide window the control API accepts.
pub const MAX_HIDE_MS: u64 = 600_000;

/// What the stand-in starts with (the command line).
#[derive(Clone, Debug)]
pub struct DevnetConfig {
    pub key_page: AccUrl,
    pub public_keys: Vec<PublicKey>,
    pub data_account: AccUrl,
    /// Credit units (0.01 credit each) on the page.
    pub credits: u64,
}

/// Why the stand-in cannot start or save.
#[derive(Debug, thiserror::Error)]
pub enum DevnetError {
    #[error("{0}")]
    Config(String),
    #[error("cannot read devnet state {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("devnet state {path} is not valid: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot write devnet state {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The fault switches (control API `/faults`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// Close every `/v3` connection at once.
    #[serde(default)]
    pub refuse: bool,
    /// Answer every `/v3` request this many ms late.
    #[serde(default)]
    pub delay_ms: u64,
    /// Fail every call with this status (a JSON-RPC error `-33000 - status`).
    #[serde(default)]
    pub fail_status: Option<Status>,
    /// Queries of a message delivered less than this many ms ago answer `notFound`.
    #[serde(default)]
    pub hide_ms: u64,
}

/// A partial update of [`Faults`]: members left out keep their value; `fail_status: null`
/// clears it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultsPatch {
    refuse: Option<bool>,
    delay_ms: Option<u64>,
    #[serde(default, deserialize_with = "some_or_null")]
    fail_status: Option<Option<Status>>,
    hide_ms: Option<u64>,
}

fn some_or_null<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<Status>>, D::Error> {
    Ok(Some(Option::deserialize(d)?))
}

/// The stand-in: ledger, switches, delivery times (for hiding) and where it saves.
#[derive(Debug)]
pub struct Devnet {
    state: Mutex<State>,
    faults: Mutex<Faults>,
    delivered_at: Mutex<HashMap<Hash, Instant>>,
    store: Option<PathBuf>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave the ledger half-written (every mutation is a
    // plain field update), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Devnet {
    /// A stand-in seeded from `config`, or loaded from `data_dir` if it holds a saved ledger
    /// (then the saved ledger rules; `config` only seeds a fresh one).
    pub fn open(config: &DevnetConfig, data_dir: Option<&Path>) -> Result<Devnet, DevnetError> {
        let store = data_dir.map(|d| d.join(STATE_FILE));
        let saved = match &store {
            Some(path) if path.exists() => {
                let bytes = fs::read(path).map_err(|source| DevnetError::Read {
                    path: path.clone(),
                    source,
                })?;
                Some(serde_json::from_slice::<State>(&bytes).map_err(|source| {
                    DevnetError::Parse {
                        path: path.clone(),
                        source,
                    }
                })?)
            }
            _ => None,
        };
        let state = match saved {
            Some(s) => s,
            None => State::new(
                config.key_page.clone(),
                &config.public_keys,
                config.credits,
                config.data_account.clone(),
            )
            .map_err(DevnetError::Config)?,
        };
        let devnet = Devnet {
            state: Mutex::new(state),
            faults: Mutex::new(Faults::default()),
            delivered_at: Mutex::new(HashMap::new()),
            store,
        };
        if let Some(dir) = data_dir {
            fs::create_dir_all(dir).map_err(|source| DevnetError::Write {
                path: dir.to_path_buf(),
                source,
            })?;
            devnet.save()?;
        }
        Ok(devnet)
    }

    /// The current switches (the shell applies `refuse` and `delay_ms`).
    pub fn faults(&self) -> Faults {
        lock(&self.faults).clone()
    }

    /// The block height.
    pub fn height(&self) -> u64 {
        lock(&self.state).height
    }

    /// Writes the ledger atomically (no-op without `--data-dir`).
    pub fn save(&self) -> Result<(), DevnetError> {
        let Some(path) = &self.store else {
            return Ok(());
        };
        let bytes = {
            let state = lock(&self.state);
            serde_json::to_vec(&*state).map_err(|e| DevnetError::Write {
                path: path.clone(),
                source: std::io::Error::other(e),
            })?
        };
        let tmp = path.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, path)?;
            if let Some(dir) = path.parent() {
                fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        };
        write().map_err(|source| DevnetError::Write {
            path: path.clone(),
            source,
        })
    }

    /// One simulated block; saves the ledger if the block changed it.
    pub fn block(&self) -> Result<BlockReport, DevnetError> {
        let (report, changed) = {
            let mut state = lock(&self.state);
            let had_work = !state.pending.is_empty();
            (state.execute_block(), had_work)
        };
        if !report.delivered.is_empty() {
            let now = Instant::now();
            let mut at = lock(&self.delivered_at);
            // Only the hide window needs these; forget old ones so the map stays small.
            let window = Duration::from_millis(MAX_HIDE_MS);
            at.retain(|_, t| now.duration_since(*t) < window);
            for h in &report.delivered {
                at.insert(*h, now);
            }
        }
        if changed {
            self.save()?;
        }
        Ok(report)
    }

    fn hidden(&self, hash: &Hash, hide_ms: u64) -> bool {
        if hide_ms == 0 {
            return false;
        }
        lock(&self.delivered_at)
            .get(hash)
            .is_some_and(|t| t.elapsed() < Duration::from_millis(hide_ms))
    }

    /// One JSON-RPC request body → the response body; `None` for a notification.
    pub fn handle(&self, body: &[u8]) -> Option<Vec<u8>> {
        let request: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => {
                return Some(error_body(
                    &Value::Null,
                    -32700,
                    &format!("parse error: {e}"),
                    None,
                ));
            }
        };
        let Value::Object(mut request) = request else {
            return Some(error_body(
                &Value::Null,
                -32600,
                "invalid request: expected one request object (batches are not supported)",
                None,
            ));
        };
        let id = request.get("id").cloned();
        let reply_id = id.clone().unwrap_or(Value::Null);
        if let Some(k) = request
            .keys()
            .find(|k| !matches!(k.as_str(), "jsonrpc" | "id" | "method" | "params"))
        {
            return Some(error_body(
                &reply_id,
                -32600,
                &format!("invalid request: unknown member {k:?}"),
                None,
            ));
        }
        if !matches!(
            &id,
            None | Some(Value::Null | Value::Number(_) | Value::String(_))
        ) {
            return Some(error_body(
                &Value::Null,
                -32600,
                "invalid request: bad id",
                None,
            ));
        }
        if request.get("jsonrpc") != Some(&Value::String("2.0".into())) {
            return Some(error_body(
                &reply_id,
                -32600,
                "invalid request: jsonrpc must be \"2.0\"",
                None,
            ));
        }
        let Some(Value::String(method)) = request.remove("method") else {
            return Some(error_body(
                &reply_id,
                -32600,
                "invalid request: missing method",
                None,
            ));
        };
        let answer = self.call(&method, request.remove("params"));
        id.as_ref()?;
        Some(match answer {
            Ok(result) => {
                serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": reply_id, "result": result}))
                    .unwrap_or_default()
            }
            Err(Call::Library(code, message)) => error_body(&reply_id, code, &message, None),
            Err(Call::Protocol(f)) => {
                let code = f.status.json_rpc_code().unwrap_or(-33_500);
                error_body(&reply_id, code, &f.message, Some(&f.status))
            }
        })
    }

    fn call(&self, method: &str, params: Option<Value>) -> Result<Value, Call> {
        let type_name = match method {
            "submit" => "submitRequest",
            "query" => "queryRequest",
            "network-status" => "networkStatusRequest",
            _ => {
                return Err(Call::Library(-32601, format!("method not found: {method}")));
            }
        };
        let mut params = match params {
            None | Some(Value::Null) => {
                return Err(Call::Protocol(RpcFail::new(
                    Status::BadRequest,
                    "empty request",
                )));
            }
            Some(Value::Object(m)) => m,
            Some(_) => {
                return Err(Call::Protocol(RpcFail::new(
                    Status::EncodingError,
                    "unmarshal request: params must be a JSON object",
                )));
            }
        };
        match params.remove("type") {
            None => {}
            Some(Value::String(t)) if t == type_name => {}
            Some(other) => {
                return Err(Call::Protocol(RpcFail::new(
                    Status::BadRequest,
                    format!("request type {other} is not {type_name}"),
                )));
            }
        }
        let faults = self.faults();
        if let Some(status) = faults.fail_status {
            return Err(Call::Protocol(RpcFail::new(
                status.clone(),
                format!(
                    "devnet-l0 fault switch: every call fails with {}",
                    status.name()
                ),
            )));
        }
        match method {
            "submit" => {
                let req: SubmitRequest = parse(params)?;
                let subs = lock(&self.state)
                    .submit(&req.envelope)
                    .map_err(Call::Protocol)?;
                serde_json::to_value(subs).map_err(|e| internal(&e))
            }
            "query" => {
                let req: QueryRequest = parse(params)?;
                let state = lock(&self.state);
                state
                    .query(&req, |h| self.hidden(h, faults.hide_ms))
                    .map_err(Call::Protocol)
            }
            _ => Ok(lock(&self.state).network_status()),
        }
    }

    /// The control API (module docs of `src/devnet.rs` and RUNBOOK "Local L0"): `method` and
    /// `path` of the HTTP request, its body → HTTP status and JSON answer.
    pub fn control(&self, method: &str, path: &str, body: &[u8]) -> (u16, Value) {
        let bad = |m: String| (400, json!({"error": m}));
        let body_json = || -> Result<Value, (u16, Value)> {
            serde_json::from_slice(body).map_err(|e| bad(format!("body is not JSON: {e}")))
        };
        match (method, path) {
            ("GET", "/faults") => (200, json!(self.faults())),
            ("POST", "/faults") => {
                let patch: FaultsPatch = match body_json().and_then(|v| {
                    serde_json::from_value(v).map_err(|e| bad(format!("faults: {e}")))
                }) {
                    Ok(p) => p,
                    Err(e) => return e,
                };
                let mut next = self.faults();
                if let Some(r) = patch.refuse {
                    next.refuse = r;
                }
                if let Some(d) = patch.delay_ms {
                    if d > MAX_DELAY_MS {
                        return bad(format!("delay_ms {d} is above {MAX_DELAY_MS}"));
                    }
                    next.delay_ms = d;
                }
                if let Some(s) = patch.fail_status {
                    if let Some(st) = &s
                        && (st.number().is_none() || st.is_success())
                    {
                        return bad(format!(
                            "fail_status {:?} is not a known failure status (>= 300)",
                            st.name()
                        ));
                    }
                    next.fail_status = s;
                }
                if let Some(h) = patch.hide_ms {
                    if h > MAX_HIDE_MS {
                        return bad(format!("hide_ms {h} is above {MAX_HIDE_MS}"));
                    }
                    next.hide_ms = h;
                }
                *lock(&self.faults) = next.clone();
                (200, json!(next))
            }
            ("GET", "/state") => {
                let state = lock(&self.state);
                (
                    200,
                    json!({
                        "height": state.height,
                        "page": state.page,
                        "data_accounts": state.data_accounts.values().map(|d| json!({
                            "url": d.url, "authority": d.authority, "entries": d.entries.len()
                        })).collect::<Vec<_>>(),
                        "messages": state.messages.len(),
                        "pending": state.pending.len(),
                    }),
                )
            }
            ("POST", "/page/credits") => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Req {
                    credits: u64,
                }
                let req: Req = match body_json()
                    .and_then(|v| serde_json::from_value(v).map_err(|e| bad(format!("{e}"))))
                {
                    Ok(r) => r,
                    Err(e) => return e,
                };
                lock(&self.state).page.credits = req.credits;
                self.saved(json!({"credits": req.credits}))
            }
            ("POST", "/page/keys") => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Req {
                    public_key: String,
                    #[serde(default)]
                    bump_version: bool,
                }
                let req: Req = match body_json()
                    .and_then(|v| serde_json::from_value(v).map_err(|e| bad(format!("{e}"))))
                {
                    Ok(r) => r,
                    Err(e) => return e,
                };
                let key = match PublicKey::from_hex(&req.public_key) {
                    Ok(k) => k,
                    Err(e) => return bad(format!("public_key: {e}")),
                };
                let (added, version) = {
                    let mut state = lock(&self.state);
                    let added = state.add_key(&key, req.bump_version);
                    (added, state.page.version)
                };
                self.saved(json!({"added": added, "version": version}))
            }
            ("POST", "/data-accounts") => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Req {
                    url: AccUrl,
                }
                let req: Req = match body_json()
                    .and_then(|v| serde_json::from_value(v).map_err(|e| bad(format!("{e}"))))
                {
                    Ok(r) => r,
                    Err(e) => return e,
                };
                if let Err(e) = lock(&self.state).create_data_account(req.url.clone()) {
                    return (409, json!({"error": e}));
                }
                self.saved(json!({"created": req.url}))
            }
            (_, "/faults" | "/state" | "/page/credits" | "/page/keys" | "/data-accounts") => (
                405,
                json!({"error": format!("{method} not allowed on {path}")}),
            ),
            _ => (404, json!({"error": format!("no control endpoint {path}")})),
        }
    }

    fn saved(&self, answer: Value) -> (u16, Value) {
        match self.save() {
            Ok(()) => (200, answer),
            Err(e) => (500, json!({"error": e.to_string()})),
        }
    }
}

enum Call {
    /// A JSON-RPC library error (`-32xxx`).
    Library(i64, String),
    /// A protocol error (`-33000 - status`).
    Protocol(RpcFail),
}

fn internal(e: &serde_json::Error) -> Call {
    Call::Protocol(RpcFail::new(
        Status::InternalError,
        format!("encoding: {e}"),
    ))
}

fn parse<T: serde::de::DeserializeOwned>(params: Map<String, Value>) -> Result<T, Call> {
    serde_json::from_value(Value::Object(params)).map_err(|e| {
        Call::Protocol(RpcFail::new(
            Status::EncodingError,
            format!("unmarshal request: {e}"),
        ))
    })
}

fn error_body(id: &Value, code: i64, message: &str, status: Option<&Status>) -> Vec<u8> {
    let mut error = json!({"code": code, "message": message});
    if let Some(s) = status {
        error["data"] = json!({"message": message, "code": s.name()});
    }
    serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": id, "error": error})).unwrap_or_default()
}
