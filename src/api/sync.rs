//! Sync: `GET /v1/sync/blocks?from=H&limit=N&wait_ms=W` (what a follower fetches, served by
//! every role), and the follower's view that `/stats` and `/health` read.
//!
//! The answer is `chain::sync::SyncAnswer`: blocks `from..` in canonical bytes (hex), with the
//! node's height; or the same blocks in the binary framing (`chain::sync::BINARY_ANSWER`) when
//! the request's `Accept` names `application/octet-stream`, as followers and the stress tool's
//! watcher ask (no hex and no JSON to write: half the bytes). If `from` is above the head and
//! `wait_ms > 0`, the request waits on the Recorder's head watch until a block at `from` is
//! committed or `wait_ms` passes (then the answer has no blocks), so a caught-up follower sees a
//! block as soon as it is committed.
//!
//! What one client can cause (attacker's view):
//! - At most `MAX_SYNC_BATCH` blocks and about `MAX_BATCH_BYTES` of answer per request (blocks
//!   are read one at a time and reading stops at the byte bound); the answer is charged to the
//!   API's body budget like every large answer.
//! - A wait is at most `MAX_SYNC_WAIT`, costs no thread (a watch receiver on the HTTP worker's
//!   event loop), and at most `MAX_WAITERS` requests wait at once: beyond that a request is
//!   answered at once, as if `wait_ms` were 0. Each waiter also holds one of the listener's
//!   `api.max_connections` connections, which bounds them anyway.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use accumen_actors::chain::Head;
use accumen_actors::chain::sync::{
    BINARY_ANSWER, MAX_BATCH_BYTES, SyncState, SyncStatus, encode_answer, encode_binary_answer,
    is_binary_answer,
};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::{ApiError, ApiResult, State};
use crate::settings::{MAX_SYNC_BATCH, MAX_SYNC_WAIT};

/// Requests that may long-poll at once.
pub const MAX_WAITERS: usize = 1024;

/// What `/v1/sync/blocks`, `/stats` and `/health` need about sync.
#[derive(Debug)]
pub struct SyncApi {
    /// The committed head (the Recorder's watch).
    heads: watch::Receiver<Head>,
    waiters: AtomicUsize,
    /// Set on a follower.
    pub follower: Option<FollowerView>,
}

/// A follower's sync, as its API shows it.
#[derive(Debug, Clone)]
pub struct FollowerView {
    pub status: Arc<SyncStatus>,
    /// `follower.sequencer_api`: named in `/stats` and in the refusal of transactions.
    pub sequencer_api: String,
}

impl SyncApi {
    pub fn new(heads: watch::Receiver<Head>, follower: Option<FollowerView>) -> SyncApi {
        SyncApi {
            heads,
            waiters: AtomicUsize::new(0),
            follower,
        }
    }

    /// Why sync halted, on a halted follower.
    pub fn halted(&self) -> Option<String> {
        let f = self.follower.as_ref()?;
        (f.status.state() == SyncState::Halted).then(|| f.status.halt_reason().unwrap_or_default())
    }

    /// The follower's part of `/stats` (`None` on a sequencer).
    pub fn stats(&self, height: u64) -> Option<Value> {
        let f = self.follower.as_ref()?;
        let s = &f.status;
        let seq = s.sequencer_height.load(Ordering::Relaxed);
        let (blocks_per_sec, txs_per_sec) = s.replay_rate();
        Some(json!({
            "height": height,
            "sequencer_api": f.sequencer_api,
            "sequencer_height": seq,
            "lag_blocks": seq.saturating_sub(height),
            "state": s.state().as_str(),
            "halt_reason": s.halt_reason(),
            // Unknown (null) without the L0 anchor checks configured.
            "anchored_height": s
                .anchor_checks
                .load(Ordering::Relaxed)
                .then(|| s.anchored_height.load(Ordering::Relaxed)),
            "blocks_replayed": s.blocks_replayed.load(Ordering::Relaxed),
            "txs_replayed": s.txs_replayed.load(Ordering::Relaxed),
            "replay_rate": {
                "blocks_per_sec": (blocks_per_sec * 10.0).round() / 10.0,
                "txs_per_sec": (txs_per_sec * 10.0).round() / 10.0,
            },
        }))
    }
}

/// Counts a waiter while it lives.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    from: u64,
    limit: Option<u32>,
    wait_ms: Option<u64>,
}

/// `GET /v1/sync/blocks` (module comment).
pub async fn blocks(state: State, req: HttpRequest) -> ApiResult<HttpResponse> {
    let p = web::Query::<Params>::from_query(req.query_string())
        .map_err(|e| {
            ApiError::bad_request(
                "invalid_query",
                format!("expected ?from=HEIGHT[&limit=N][&wait_ms=MS]: {e}"),
            )
        })?
        .into_inner();
    if p.from == 0 {
        return Err(ApiError::bad_request(
            "invalid_query",
            "from must be at least 1: the genesis block follows from the chain's parameters \
             (GET /v1/chain)",
        ));
    }
    let limit = p.limit.unwrap_or(MAX_SYNC_BATCH);
    if limit == 0 {
        return Err(ApiError::bad_request(
            "invalid_query",
            "limit must be at least 1",
        ));
    }
    let limit = limit.min(MAX_SYNC_BATCH);
    let wait = Duration::from_millis(p.wait_ms.unwrap_or(0)).min(MAX_SYNC_WAIT);
    let sync = &state.sync;
    let mut heads = sync.heads.clone();
    if heads.borrow().height < p.from && !wait.is_zero() {
        let n = sync.waiters.fetch_add(1, Ordering::AcqRel);
        let _waiting = Waiting(&sync.waiters);
        if n < MAX_WAITERS {
            // A closed watch (the node stopping) or the deadline both just end the wait.
            let _ = tokio::time::timeout(wait, heads.wait_for(|h| h.height >= p.from)).await;
        }
    }
    let head = heads.borrow().height;
    let last = head.min(p.from.saturating_add(u64::from(limit) - 1));
    let storage = state.storage.clone();
    // The stored bytes as they are: the canonical encoding, checked when the block was
    // committed; decoding and re-encoding them cost more than the rest of the answer.
    let blocks = (p.from..=last).map_while(|h| storage.block_bytes(h).ok().flatten());
    let ok = actix_web::http::StatusCode::OK;
    let mut res = if wants_binary(&req) {
        let answer = encode_binary_answer(head, blocks, MAX_BATCH_BYTES);
        super::handlers::answer_bytes(&state, &req, ok, BINARY_ANSWER, answer)?
    } else {
        let answer = encode_answer(head, blocks, MAX_BATCH_BYTES);
        super::handlers::answer(&state, &req, ok, &answer)?
    };
    // The encoding depends on `Accept`: a cache in front must not serve one for the other.
    res.headers_mut().insert(
        actix_web::http::header::VARY,
        actix_web::http::header::HeaderValue::from_static("accept"),
    );
    Ok(res)
}

/// Whether the request's `Accept` names the binary answer (any parameters, but not `q=0`,
/// which says "not this one"); JSON for everything else, as before the binary answer existed.
pub(crate) fn wants_binary(req: &HttpRequest) -> bool {
    req.headers()
        .get_all(actix_web::http::header::ACCEPT)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|range| {
            // The media type as a `Content-Type` names it; then its parameters, after the type.
            let refused = range.split(';').skip(1).any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            is_binary_answer(range) && !refused
        })
}
