//! Request handlers. Each validates its input completely before touching any actor or storage,
//! so a bad request gets a specific error and changes nothing.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use accumen_actors::executor::{RunQuery, enqueue};
use accumen_actors::mempool::{AccountPending, Admission, Admit, IsPending, MempoolError};
use accumen_actors::metrics::NodeStats;
use accumen_actors::types::MAX_ARGS_LEN;
use accumen_actors::types::{
    Action, Address, BATCH_CHUNK, Block, Hash, IdentifiedTx, PublicKey, Receipt, ReceiptStatus,
    SignedTx, TxError, VerifiedTx,
};
use accumen_actors::vm::gas::MAX_KEY_LEN;
use accumen_actors::vm::{Query, VmError};
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::budget::{BodyBudget, Reservation};
use super::{ApiError, ApiResult, State};
use super::{batch, body};

const VERSION: &str = concat!("v", env!("CARGO_PKG_VERSION"));

fn get(v: &std::sync::atomic::AtomicU64) -> u64 {
    NodeStats::get(v)
}

/// "24h30m15s", as the runbook shows uptimes.
pub fn format_uptime(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}h{}m{}s", s / 3600, (s / 60) % 60, s % 60)
}

fn parse_hash(s: &str, what: &str) -> ApiResult<Hash> {
    Hash::from_hex(s).map_err(|e| ApiError::bad_request("invalid_hex", format!("{what}: {e}")))
}

fn parse_address(s: &str) -> ApiResult<Address> {
    Address::from_hex(s)
        .map_err(|e| ApiError::bad_request("invalid_hex", format!("contract address: {e}")))
}

/// An answer that refuses a request for a resource limit: counted in
/// `accumen_api_refused_total{reason}` as well as in the error total.
pub fn refuse(state: &State, status: u16, code: &'static str, msg: impl Into<String>) -> ApiError {
    refuse_as(state, code, status, code, msg)
}

/// [`refuse`] with a metric reason that differs from the error code.
fn refuse_as(
    state: &State,
    reason: &'static str,
    status: u16,
    code: &'static str,
    msg: impl Into<String>,
) -> ApiError {
    state.metrics.count_api_refusal(reason);
    ApiError::new(status, code, msg)
}

/// Longest error message echoed for one element of a batch: serde's messages quote the
/// offending value, and a batch answer must not grow with the garbage it refuses.
const MAX_ELEMENT_ERROR: usize = 200;

fn brief(mut msg: String) -> String {
    if msg.len() > MAX_ELEMENT_ERROR {
        msg.truncate(msg.floor_char_boundary(MAX_ELEMENT_ERROR));
        msg.push('…');
    }
    msg
}

/// Largest answer sent without being charged to the body budget: below it, connections ×
/// this bounds answer memory well enough.
const SMALL_ANSWER: usize = 64 * 1024;
/// Most bytes one element of a `POST /v1/txs` answer can take: hash, flags and code (about
/// 150 bytes) and a message cut by [`brief`] to 200 bytes, which JSON escaping can at most
/// double. The answer is charged this per element before anything is admitted.
pub const MAX_RESULT_BYTES: usize = 640;
/// Chunk size in which a charged answer is handed to actix, so its reservation lasts until the
/// client has taken (nearly) all of it.
const ANSWER_CHUNK: usize = 64 * 1024;

fn budget(req: &actix_web::HttpRequest) -> ApiResult<&web::Data<BodyBudget>> {
    req.app_data::<web::Data<BodyBudget>>()
        .ok_or_else(|| ApiError::internal("no body budget configured"))
}

pub(super) fn budget_exhausted(state: &State) -> ApiError {
    refuse(
        state,
        503,
        "body_budget_exhausted",
        format!(
            "request and answer bodies in flight would exceed api.max_body_bytes_in_flight = {} \
             bytes; retry later",
            state.settings.api.max_body_bytes_in_flight
        ),
    )
}

/// `bytes` more of the body budget, or 503 `body_budget_exhausted`.
fn reserve(
    state: &State,
    req: &actix_web::HttpRequest,
    mut r: Reservation,
    bytes: usize,
) -> ApiResult<Reservation> {
    if budget(req)?.grow(&mut r, bytes) {
        Ok(r)
    } else {
        Err(budget_exhausted(state))
    }
}

/// An answer body that holds its share of the body budget until actix has taken all of it
/// (answer memory of slow readers is bounded by the budget and, in time, by the idle watchdog).
struct HeldAnswer {
    bytes: web::Bytes,
    _held: Reservation,
}

impl actix_web::body::MessageBody for HeldAnswer {
    type Error = std::convert::Infallible;

    fn size(&self) -> actix_web::body::BodySize {
        actix_web::body::BodySize::Sized(self.bytes.len() as u64)
    }

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<web::Bytes, Self::Error>>> {
        let this = self.get_mut();
        if this.bytes.is_empty() {
            return std::task::Poll::Ready(None);
        }
        let n = this.bytes.len().min(ANSWER_CHUNK);
        std::task::Poll::Ready(Some(Ok(this.bytes.split_to(n))))
    }
}

fn json_bytes(v: &impl serde::Serialize) -> ApiResult<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| ApiError::internal(format!("encoding the answer: {e}")))
}

/// A JSON answer whose size depends on stored data (receipts, blocks, state values, query
/// output): charged to the body budget when it is large, 503 if the budget is exhausted.
///
/// Decoding a stored block or receipt needs no limit of its own: storage reads are synchronous
/// on the HTTP worker, so each worker decodes one at a time and drops it before the next await;
/// what outlives the handler is this answer, and it is charged.
pub(super) fn answer(
    state: &State,
    req: &actix_web::HttpRequest,
    status: actix_web::http::StatusCode,
    v: &impl serde::Serialize,
) -> ApiResult<HttpResponse> {
    let bytes = json_bytes(v)?;
    answer_bytes(state, req, status, "application/json", bytes)
}

/// [`answer`] for a body already encoded, of media type `content_type`.
pub(super) fn answer_bytes(
    state: &State,
    req: &actix_web::HttpRequest,
    status: actix_web::http::StatusCode,
    content_type: &'static str,
    bytes: Vec<u8>,
) -> ApiResult<HttpResponse> {
    let mut res = HttpResponse::build(status);
    res.content_type(content_type);
    if bytes.len() <= SMALL_ANSWER {
        return Ok(res.body(bytes));
    }
    let held = reserve(state, req, budget(req)?.reservation(), bytes.len())?;
    Ok(res.body(HeldAnswer {
        bytes: bytes.into(),
        _held: held,
    }))
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("malformed_json", brief(format!("request body: {e}"))))
}

fn tx_error(e: &TxError) -> ApiError {
    let code = match e {
        TxError::BadSignature | TxError::BadSender => "bad_signature",
        TxError::Decode(_) => "malformed_tx",
        _ => "invalid_tx",
    };
    ApiError::bad_request(code, e.to_string())
}

fn mempool_error(e: &MempoolError) -> ApiError {
    ApiError::from(e)
}

fn check_accepting(state: &State) -> ApiResult<()> {
    // A failed store can neither journal nor commit: acknowledging a transaction now would be a
    // promise the node cannot keep.
    if let Some(reason) = state.stats.storage_health.failure() {
        return Err(ApiError::unavailable(
            "storage_failed",
            format!("the node's storage failed ({reason}); no transactions until it restarts"),
        ));
    }
    if state.intake()?.accepting.load(Ordering::Relaxed) {
        Ok(())
    } else {
        Err(ApiError::unavailable(
            "shutting_down",
            "the node is shutting down and accepts no new transactions",
        ))
    }
}

/// Verifies a batch's signatures on the blocking pool (CPU work, kept off the HTTP worker),
/// batched (`types::verify_batch`: exactly single verification's decisions) with sender keys
/// decompressed once and cached; deploys also get the contract validation here, so invalid code
/// is refused before it costs its sender a nonce.
///
/// A large batch is split into one job per core ([`verify_parts`]), so one client's binary batch
/// is verified on every core instead of one; the answers are concatenated in order, and each
/// item's answer is its own single verification whatever the split (the chunking never changes
/// a decision).
async fn verify_all(
    state: &State,
    txs: Vec<IdentifiedTx>,
) -> ApiResult<Vec<ApiResult<VerifiedTx>>> {
    let nice = state.settings.api.admission_nice;
    let jobs = verify_parts(txs, cores()).into_iter().map(|part| {
        let keys = state.keys.clone();
        let vm = state.vm.clone();
        web::block(move || {
            // Behind block production under a flood (see `priority`).
            crate::api::priority::lower_this_thread(nice);
            accumen_actors::types::verify_identified(part, &keys)
                .into_iter()
                .map(|r| {
                    let v = r.map_err(|e| tx_error(&e))?;
                    if let Action::Deploy { code } = &v.tx().action {
                        vm.validate(code.as_ref()).map_err(|e| {
                            ApiError::bad_request(
                                "invalid_contract",
                                format!("invalid contract: {e}"),
                            )
                        })?;
                    }
                    Ok(v)
                })
                .collect::<Vec<_>>()
        })
    });
    let parts = futures_util::future::join_all(jobs).await;
    let mut out = Vec::new();
    for part in parts {
        out.extend(part.map_err(|e| ApiError::internal(format!("verification pool: {e}")))?);
    }
    Ok(out)
}

/// The cores this process may use, read once: `available_parallelism` reads the cgroup's CPU
/// quota files on every call, which is file I/O that does not belong on every submission.
fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, usize::from))
}

/// Splits `txs`, in order, into at most `cores` parts of whole [`BATCH_CHUNK`]s (at least two
/// chunks before splitting at all), so every part keeps full batch equations.
fn verify_parts<T>(mut txs: Vec<T>, cores: usize) -> Vec<Vec<T>> {
    let chunks = txs.len().div_ceil(BATCH_CHUNK);
    let parts = cores.clamp(1, chunks.max(1));
    let per_part = chunks.div_ceil(parts) * BATCH_CHUNK;
    let mut out = Vec::with_capacity(parts);
    while txs.len() > per_part {
        let rest = txs.split_off(per_part);
        out.push(txs);
        txs = rest;
    }
    out.push(txs);
    out
}

/// Whether admission journals what it admits: only then are the bytes transactions came in
/// copied for it (`admit`'s `encoded`), since nothing else uses them.
fn journals(state: &State) -> ApiResult<bool> {
    Ok(state
        .intake()?
        .admission
        .as_ref()
        .is_some_and(Admission::journals))
}

/// Admits `txs`; `encoded` as for `Admission::admit_encoded` (the bytes each was received in,
/// where at hand).
async fn admit(
    state: &State,
    txs: Vec<VerifiedTx>,
    encoded: Vec<Option<Vec<u8>>>,
) -> ApiResult<Vec<Result<Hash, MempoolError>>> {
    let intake = state.intake()?;
    if let Some(admission) = intake.admission.clone() {
        // On the blocking pool: admission waits for its journal write (shared with concurrent
        // requests' batches, one fsync for all), which must not stall an HTTP worker.
        let nice = state.settings.api.admission_nice;
        return web::block(move || {
            crate::api::priority::lower_this_thread(nice);
            admission.admit_encoded(txs, encoded)
        })
        .await
        .map_err(|e| ApiError::internal(format!("admission pool: {e}")));
    }
    intake
        .admit
        .send(Admit(txs))
        .timeout(Duration::from_secs(10))
        .await
        .map_err(|e| ApiError::unavailable("mempool_unavailable", format!("mempool: {e}")))
}

/// How a transaction body is encoded, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// `application/json` (or any `+json` type), or no `Content-Type` at all (as before the
    /// binary format existed, so existing clients keep working).
    Json,
    /// `application/octet-stream`: canonical binary (`SignedTx::encode`); for `/v1/txs` in the
    /// framing of `batch::split_binary`.
    Binary,
}

/// The body format a transaction request declares, or 415 `unsupported_media_type`.
fn body_format(req: &actix_web::HttpRequest) -> ApiResult<Format> {
    let Some(value) = req.headers().get(actix_web::http::header::CONTENT_TYPE) else {
        return Ok(Format::Json);
    };
    let unsupported = |shown: &str| {
        ApiError::new(
            415,
            "unsupported_media_type",
            brief(format!(
                "Content-Type {shown:?} is not supported here: send application/json (a JSON \
                 transaction or array) or {} (canonical binary transactions)",
                batch::BINARY_CONTENT_TYPE
            )),
        )
    };
    let text = value
        .to_str()
        .map_err(|_| unsupported("(not visible ASCII)"))?;
    // Parameters (`; charset=utf-8`) do not change the format; media types are case-insensitive.
    let essence = text
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/json" => Ok(Format::Json),
        t if t.starts_with("application/") && t.ends_with("+json") => Ok(Format::Json),
        t if t == batch::BINARY_CONTENT_TYPE => Ok(Format::Binary),
        _ => Err(unsupported(text)),
    }
}

fn malformed_tx(what: &str, e: &TxError) -> ApiError {
    ApiError::bad_request("malformed_tx", brief(format!("{what}: {e}")))
}

pub async fn submit_tx(
    state: State,
    req: actix_web::HttpRequest,
    body: Result<web::Bytes, actix_web::Error>,
) -> ApiResult<HttpResponse> {
    let body = body::accept(&state, body)?;
    let format = body_format(&req)?;
    check_accepting(&state)?;
    let (tx, encoded) = match format {
        Format::Json => (IdentifiedTx::new(parse_json::<SignedTx>(&body)?), None),
        // One transaction's canonical bytes, unframed (the batch framing is for /v1/txs).
        Format::Binary => (
            SignedTx::decode_identified(&body).map_err(|e| malformed_tx("request body", &e))?,
            Some(&body[..]),
        ),
    };
    let journals = journals(&state)?;
    let encoded = encoded.filter(|_| journals).map(<[u8]>::to_vec);
    let verified = verify_all(&state, vec![tx])
        .await?
        .pop()
        .ok_or_else(|| ApiError::internal("verification returned nothing"))??;
    let result = admit(&state, vec![verified], vec![encoded])
        .await?
        .pop()
        .ok_or_else(|| ApiError::internal("admission returned nothing"))?;
    let id = result.map_err(|e| mempool_error(&e))?;
    Ok(HttpResponse::Accepted().json(json!({"tx_hash": id, "status": "pending"})))
}

pub async fn submit_txs(
    state: State,
    req: actix_web::HttpRequest,
    body: Result<web::Bytes, actix_web::Error>,
) -> ApiResult<HttpResponse> {
    let body = body::accept(&state, body)?;
    let format = body_format(&req)?;
    check_accepting(&state)?;
    let max = state.settings.api.max_batch;
    let too_long = |max: usize| {
        refuse(
            &state,
            413,
            "batch_too_large",
            format!("more than {max} transactions in one batch (api.max_batch)"),
        )
    };
    // Counted while parsing: element max + 1 ends the parse (for the binary framing, a count
    // above max is refused from the first 4 bytes), so an over-long batch costs one scan of at
    // most the body, never a value per element.
    let items = match format {
        Format::Json => match batch::split(&body, max) {
            Ok(items) => Items::Json(items),
            Err(batch::BatchError::TooLong { max }) => return Err(too_long(max)),
            Err(batch::BatchError::Malformed(e)) => {
                return Err(ApiError::bad_request(
                    "malformed_json",
                    brief(format!("request body: {e}")),
                ));
            }
        },
        Format::Binary => match batch::split_binary(&body, max) {
            Ok(frames) => Items::Binary(frames),
            Err(batch::FrameError::TooLong { max, .. }) => return Err(too_long(max)),
            Err(e) => {
                return Err(ApiError::bad_request(
                    "malformed_batch",
                    format!("binary batch body: {e}"),
                ));
            }
        },
    };
    // The answer grows with the element count, not the body (`[{},{},…]` is 3 bytes an
    // element, its answer a hundred): charge it now, before anything has an effect, so a
    // refusal changes nothing and an accepted batch always gets its answer.
    let answer_held = reserve(
        &state,
        &req,
        budget(&req)?.reservation(),
        items.len().saturating_mul(MAX_RESULT_BYTES),
    )?;
    // Each element stands alone: a malformed one is rejected with its own reason.
    let mut results: Vec<ElementResult> = Vec::with_capacity(items.len());
    results.resize_with(items.len(), ElementResult::default);
    // Parsed elements: position in the batch, the transaction with its id, and (binary) the
    // bytes it came in, which the journal stores as they are.
    let mut positions = Vec::with_capacity(items.len());
    let mut txs = Vec::with_capacity(items.len());
    let mut frames = Vec::with_capacity(items.len());
    for (i, tx) in items.parse().into_iter().enumerate() {
        match tx {
            Ok((tx, frame)) => {
                positions.push(i);
                txs.push(tx);
                frames.push(frame);
            }
            Err(err) => results[i] = ElementResult::rejected(None, err),
        }
    }
    let ids: Vec<Hash> = txs.iter().map(IdentifiedTx::id).collect();
    let verified = verify_all(&state, txs).await?;
    let journals = journals(&state)?;
    let mut good = Vec::new();
    let mut good_pos = Vec::new();
    let mut encoded = Vec::new();
    for (((pos, id), v), frame) in positions.iter().zip(&ids).zip(verified).zip(frames) {
        match v {
            Ok(t) => {
                good.push(t);
                good_pos.push((*pos, *id));
                encoded.push(frame.filter(|_| journals).map(<[u8]>::to_vec));
            }
            Err(e) => results[*pos] = ElementResult::rejected(Some(*id), e),
        }
    }
    drop(items);
    if !good.is_empty() {
        let admitted = admit(&state, good, encoded).await?;
        for ((pos, id), r) in good_pos.into_iter().zip(admitted) {
            results[pos] = match r {
                Ok(_) => ElementResult {
                    tx_hash: Some(id),
                    accepted: true,
                    error: None,
                },
                Err(e) => ElementResult::rejected(Some(id), mempool_error(&e)),
            };
        }
    }
    // Binary when the client asks for it (`batch::encode_answer`): the same results without
    // the JSON around them, so neither side writes or reads 64 hex digits an id.
    let (bytes, content_type) = if crate::api::sync::wants_binary(&req) {
        let bytes = batch::encode_answer(results.iter().map(|r| {
            // Every element was answered above; an accepted one always carries its id.
            let error = (!r.accepted).then(|| {
                r.error
                    .as_ref()
                    .map_or(("internal", "no answer"), |e| (e.code, e.message.as_str()))
            });
            (r.tx_hash.as_ref(), error)
        }));
        (bytes, batch::BINARY_CONTENT_TYPE)
    } else {
        let accepted = results.iter().filter(|r| r.accepted).count();
        let bytes = json_bytes(&BatchAnswer {
            accepted,
            rejected: results.len() - accepted,
            results: &results,
        })?;
        (bytes, "application/json")
    };
    drop(results);
    drop(body);
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((
            actix_web::http::header::VARY,
            actix_web::http::header::HeaderValue::from_static("accept"),
        ))
        .body(HeldAnswer {
            bytes: bytes.into(),
            _held: answer_held,
        }))
}

/// One parsed element: the transaction with its id, and (binary) the bytes it came in.
type Parsed<'a> = (IdentifiedTx, Option<&'a [u8]>);

/// The elements of a batch body, split but not yet parsed.
enum Items<'a> {
    Json(Vec<&'a serde_json::value::RawValue>),
    Binary(Vec<&'a [u8]>),
}

impl Items<'_> {
    fn len(&self) -> usize {
        match self {
            Items::Json(v) => v.len(),
            Items::Binary(v) => v.len(),
        }
    }

    /// Each element parsed on its own: a malformed one gets its own reason (`malformed_json`,
    /// or `malformed_tx` for binary bytes that are not one canonical transaction). A binary
    /// element comes with its bytes, which are its canonical encoding (checked by the decode):
    /// its id is hashed from them, and the journal stores them, so neither encodes it again.
    fn parse(&self) -> Vec<ApiResult<Parsed<'_>>> {
        match self {
            Items::Json(v) => v
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    serde_json::from_str::<SignedTx>(item.get())
                        .map(|t| (IdentifiedTx::new(t), None))
                        .map_err(|e| {
                            ApiError::bad_request("malformed_json", format!("transaction {i}: {e}"))
                        })
                })
                .collect(),
            Items::Binary(v) => v
                .iter()
                .enumerate()
                .map(|(i, frame)| {
                    SignedTx::decode_identified(frame)
                        .map(|t| (t, Some(*frame)))
                        .map_err(|e| malformed_tx(&format!("transaction {i}"), &e))
                })
                .collect(),
        }
    }
}

/// One element of a `POST /v1/txs` answer. Serialized straight from this struct: a JSON `Value`
/// per element costs several times its text for the largest batches.
#[derive(Debug, Default, serde::Serialize)]
struct ElementResult {
    tx_hash: Option<Hash>,
    accepted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ElementError>,
}

#[derive(Debug, serde::Serialize)]
struct ElementError {
    code: &'static str,
    message: String,
}

impl ElementResult {
    /// A refused element; its message cut by [`brief`] so the answer stays within
    /// [`MAX_RESULT_BYTES`] an element.
    fn rejected(tx_hash: Option<Hash>, e: ApiError) -> Self {
        ElementResult {
            tx_hash,
            accepted: false,
            error: Some(ElementError {
                code: e.code,
                message: brief(e.message),
            }),
        }
    }
}

#[derive(Debug, serde::Serialize)]
struct BatchAnswer<'a> {
    accepted: usize,
    rejected: usize,
    results: &'a [ElementResult],
}

/// Puts a failed status's message (reverted) or trap kind (trapped) beside its label.
fn status_details(v: &mut Value, status: &ReceiptStatus) {
    match status {
        ReceiptStatus::Reverted { message } => v["message"] = json!(message),
        ReceiptStatus::Trapped { kind } => v["kind"] = json!(kind),
        _ => {}
    }
}

/// A receipt as the API shows it: the status label with its message or trap kind beside it.
pub fn receipt_json(r: &Receipt) -> Value {
    let mut v = json!({
        "tx_hash": r.tx_id,
        "contract": r.contract,
        "status": r.status.label(),
        "gas_used": r.gas_used,
        "output": r.output,
        "events": r.events,
        "logs": r.logs,
    });
    status_details(&mut v, &r.status);
    v
}

fn storage_err(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(format!("storage: {e}"))
}

pub async fn tx_status(
    state: State,
    path: web::Path<String>,
    req: actix_web::HttpRequest,
) -> ApiResult<HttpResponse> {
    let id = parse_hash(&path, "transaction hash")?;
    if let Some(((height, index), receipt)) =
        state.storage.located_receipt(&id).map_err(storage_err)?
    {
        return answer(
            &state,
            &req,
            actix_web::http::StatusCode::OK,
            &json!({
                "tx_hash": id,
                "status": "included",
                "block_height": height,
                "index": index,
                "receipt": receipt_json(&receipt),
            }),
        );
    }
    // A role without a mempool has nothing pending: what is not included is unknown to it.
    let pending = match &state.intake {
        Some(intake) => intake
            .is_pending
            .send(IsPending(id))
            .timeout(Duration::from_secs(5))
            .await
            .map_err(|e| ApiError::unavailable("mempool_unavailable", format!("mempool: {e}")))?,
        None => false,
    };
    if pending {
        return Ok(HttpResponse::Ok().json(json!({"tx_hash": id, "status": "pending"})));
    }
    Err(ApiError::not_found(format!(
        "transaction {id} is neither pending nor included"
    )))
}

fn block_json(b: &Block) -> Value {
    let h = &b.header;
    let txs: Vec<Hash> = b.txs.iter().map(|t| t.tx.id()).collect();
    json!({
        "height": h.height,
        "hash": b.hash(),
        "parent_hash": h.parent_hash,
        "timestamp_ms": h.timestamp_ms,
        "tx_root": h.tx_root,
        "receipts_root": h.receipts_root,
        "state_root": h.state_root,
        "sequencer": h.sequencer,
        "signature": b.signature,
        "tx_count": txs.len(),
        "txs": txs,
    })
}

pub async fn latest_block(state: State, req: actix_web::HttpRequest) -> ApiResult<HttpResponse> {
    let head = state.storage.head().map_err(storage_err)?;
    let block = state
        .storage
        .block_by_height(head.height)
        .map_err(storage_err)?
        .ok_or_else(|| ApiError::internal("head block missing"))?;
    answer(
        &state,
        &req,
        actix_web::http::StatusCode::OK,
        &block_json(&block),
    )
}

pub async fn block(
    state: State,
    path: web::Path<String>,
    req: actix_web::HttpRequest,
) -> ApiResult<HttpResponse> {
    let digits = !path.is_empty() && path.bytes().all(|b| b.is_ascii_digit());
    let height: u64 = path.parse().ok().filter(|_| digits).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_height",
            format!("block height must be a number, got {:?}", path.as_str()),
        )
    })?;
    match state.storage.block_by_height(height).map_err(storage_err)? {
        Some(b) => answer(
            &state,
            &req,
            actix_web::http::StatusCode::OK,
            &block_json(&b),
        ),
        None => Err(ApiError::not_found(format!("no block at height {height}"))),
    }
}

/// The chain: identity, head, and its parameters as recorded at genesis (the ones this node runs
/// with), with the config values they override (`chain::params`: the chain's value rules).
pub async fn chain(state: State) -> ApiResult<HttpResponse> {
    let head = state.storage.head().map_err(storage_err)?;
    let genesis = state
        .storage
        .block_by_height(0)
        .map_err(storage_err)?
        .map(|b| b.hash());
    let params = state.storage.params();
    let overridden = params.overrides(&state.settings.chain_params());
    Ok(HttpResponse::Ok().json(json!({
        "chain_id": state.settings.chain_id,
        "sequencer": state.sequencer,
        "genesis_hash": genesis,
        "height": head.height,
        "head_hash": head.hash(),
        "params": params,
        "params_hash": params.hash(),
        "overridden": overridden,
    })))
}

pub async fn account(state: State, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let key = PublicKey::from_hex(&path)
        .map_err(|e| ApiError::bad_request("invalid_hex", format!("public key: {e}")))?;
    let next_nonce = state.storage.nonce(&key).map_err(storage_err)?;
    let (pending, pending_nonce) = match &state.intake {
        Some(intake) => intake
            .account_pending
            .send(AccountPending {
                sender: key,
                state_nonce: next_nonce,
            })
            .timeout(Duration::from_secs(5))
            .await
            .map_err(|e| ApiError::unavailable("mempool_unavailable", format!("mempool: {e}")))?,
        // No mempool: nothing pending, the next nonce is the committed one.
        None => (0, next_nonce),
    };
    Ok(HttpResponse::Ok().json(json!({
        "public_key": key,
        "next_nonce": next_nonce,
        "pending": pending,
        "pending_nonce": pending_nonce,
    })))
}

pub async fn contract(state: State, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let addr = parse_address(&path)?;
    let info = state
        .storage
        .contract(&addr)
        .map_err(storage_err)?
        .ok_or_else(|| ApiError::not_found(format!("no contract at {addr}")))?;
    let code_size = state
        .storage
        .code(&info.code_hash)
        .map_err(storage_err)?
        .map(|c| c.len());
    Ok(HttpResponse::Ok().json(json!({
        "address": info.address,
        "code_hash": info.code_hash,
        "deployer": info.deployer,
        "height": info.height,
        "tx_id": info.tx_id,
        "code_size": code_size,
    })))
}

pub async fn contract_state(
    state: State,
    path: web::Path<(String, String)>,
    req: actix_web::HttpRequest,
) -> ApiResult<HttpResponse> {
    let (addr, key) = path.into_inner();
    let addr = parse_address(&addr)?;
    // No stored key is longer than MAX_KEY_LEN: refuse before decoding or looking anything up.
    if key.len() > 2 * MAX_KEY_LEN {
        return Err(ApiError::bad_request(
            "key_too_long",
            format!(
                "state key is {} bytes, no key is longer than {MAX_KEY_LEN}",
                key.len().div_ceil(2)
            ),
        ));
    }
    let key = hex::decode(&key)
        .map_err(|e| ApiError::bad_request("invalid_hex", format!("state key: {e}")))?;
    if state
        .storage
        .contract(&addr)
        .map_err(storage_err)?
        .is_none()
    {
        return Err(ApiError::not_found(format!("no contract at {addr}")));
    }
    let value = state
        .storage
        .storage_get(&addr, &key)
        .map_err(storage_err)?;
    answer(
        &state,
        &req,
        actix_web::http::StatusCode::OK,
        &json!({"value": value.map(hex::encode)}),
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryBody {
    entry: String,
    #[serde(default)]
    args: Option<String>,
    #[serde(default)]
    sender: Option<String>,
    #[serde(default)]
    gas_limit: Option<u64>,
}

pub async fn query(
    state: State,
    path: web::Path<String>,
    req: actix_web::HttpRequest,
    body: Result<web::Bytes, actix_web::Error>,
) -> ApiResult<HttpResponse> {
    let body = body::accept(&state, body)?;
    let addr = parse_address(&path)?;
    let q: QueryBody = parse_json(&body)?;
    if !accumen_actors::types::valid_entry(&q.entry) {
        return Err(ApiError::bad_request(
            "invalid_entry",
            format!("entry name {:?} is not a valid identifier", q.entry),
        ));
    }
    let args = match q.args.as_deref() {
        // The same cap as a call's args, checked before decoding anything.
        Some(a) if a.len() > 2 * MAX_ARGS_LEN => {
            return Err(refuse(
                &state,
                400,
                "args_too_large",
                format!(
                    "query args are {} bytes, limit {MAX_ARGS_LEN}",
                    a.len().div_ceil(2)
                ),
            ));
        }
        Some(a) => hex::decode(a)
            .map_err(|e| ApiError::bad_request("invalid_hex", brief(format!("args: {e}"))))?,
        None => Vec::new(),
    };
    let sender = match q.sender.as_deref() {
        Some(s) => PublicKey::from_hex(s)
            .map_err(|e| ApiError::bad_request("invalid_hex", format!("sender: {e}")))?,
        None => PublicKey::ZERO,
    };
    // Queries are free and unlimited in number: their gas is capped far below a
    // transaction's (api.query_gas_limit), which is also what a query that names none gets.
    let max_gas = state.settings.api.query_gas_limit;
    let gas_limit = q.gas_limit.unwrap_or(max_gas);
    if gas_limit == 0 {
        return Err(ApiError::bad_request(
            "invalid_gas_limit",
            "gas limit must be greater than zero",
        ));
    }
    if gas_limit > max_gas {
        return Err(refuse_as(
            &state,
            "query_gas_limit",
            400,
            "gas_limit",
            format!("query gas limit {gas_limit} exceeds api.query_gas_limit {max_gas}"),
        ));
    }
    if state
        .storage
        .contract(&addr)
        .map_err(storage_err)?
        .is_none()
    {
        return Err(ApiError::not_found(format!("no contract at {addr}")));
    }
    let head = state.storage.head().map_err(storage_err)?;
    let snapshot = Arc::new(state.storage.snapshot().map_err(storage_err)?);
    // Queries get only a few places of the executor queue: a block waits behind every query
    // queued before it, so this bounds how long queries can hold blocks back.
    let settings = &state.settings;
    let places = settings
        .execution
        .queue_size
        .min(settings.api.max_queued_queries);
    let Some(slot) = enqueue(&state.stats, &state.metrics, places) else {
        state.metrics.count_api_refusal("executor_busy");
        return Err(ApiError::unavailable(
            "execution_queue_full",
            "the executor already has api.max_queued_queries (or execution.queue_size) \
             requests waiting; retry later",
        ));
    };
    // Held until the answer: a client that hangs up drops this future and with it the place.
    let waiting = slot.clone();
    let result = state
        .query
        .send(RunQuery {
            base: snapshot,
            query: Query {
                contract: addr,
                entry: q.entry,
                args,
                sender,
                gas_limit,
                height: head.height,
                time_ms: head.timestamp_ms,
            },
            slot,
        })
        .timeout(state.settings.execution.timeout + Duration::from_secs(5))
        .await
        .map_err(|e| ApiError::unavailable("executor_unavailable", format!("executor: {e}")))?;
    drop(waiting);
    let r = match result {
        Ok(r) => r,
        Err(VmError::Timeout) => {
            return Err(ApiError::unavailable(
                "execution_timeout",
                "the query hit execution.timeout",
            ));
        }
        Err(VmError::Busy(n)) => {
            return Err(ApiError::unavailable(
                "execution_busy",
                format!("all {n} instance slots are busy; retry later"),
            ));
        }
        Err(e) => return Err(ApiError::internal(format!("execution: {e}"))),
    };
    let mut v = json!({
        "status": r.status.label(),
        "gas_used": r.gas_used,
        "output": r.output,
        "logs": r.logs,
    });
    status_details(&mut v, &r.status);
    answer(&state, &req, actix_web::http::StatusCode::OK, &v)
}

/// Health: the node's one health rule (`accumen_actors::health`) for its role, the same verdict
/// the systemd watchdog and `STATUS=` lines use. An unhealthy answer says why in `reason` (the
/// first problem, storage first).
pub async fn health(state: State) -> HttpResponse {
    let s = &state.stats;
    let verdict = state.verdict();
    let checks: serde_json::Map<String, Value> = verdict
        .checks
        .iter()
        .map(|(name, ok)| ((*name).to_owned(), json!(ok)))
        .collect();
    let mut body = json!({
        "status": verdict.status(),
        "role": verdict.role.as_str(),
        "timestamp": humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        "uptime": format_uptime(s.started.elapsed()),
        "version": VERSION,
        "checks": checks,
    });
    if let Some(reason) = verdict.reason() {
        body["reason"] = json!(reason.to_string());
    }
    // Degraded (a bridge backlog) still serves: 200, with the status and reason saying so.
    if verdict.serving() {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

pub async fn stats(state: State) -> HttpResponse {
    let s = &state.stats;
    let mut body = json!({
        "role": state.health.role.as_str(),
        "running": s.running.load(Ordering::Relaxed),
        "block_height": get(&s.block_height),
        "blocks_produced": get(&s.blocks_produced),
        "txs_processed": get(&s.txs_processed),
        "uptime": format_uptime(s.started.elapsed()),
    });
    if let Some(f) = state.sync.stats(get(&s.block_height)) {
        body["follower"] = f.clone();
        // The runbook's fields, at the top level too (`curl .../stats | jq .lag_blocks`).
        for k in [
            "height",
            "sequencer_height",
            "lag_blocks",
            "state",
            "anchored_height",
        ] {
            body[k] = f[k].clone();
        }
        body["replay_rate"] = f["replay_rate"].clone();
    }
    // Only a role with a mempool has mempool numbers.
    if state.intake.is_some() {
        body["mempool_stats"] = json!({
            "size": get(&s.mempool_size),
            "accounts": get(&s.mempool_accounts),
        });
    }
    HttpResponse::Ok().json(body)
}

pub async fn mempool_stats(state: State) -> HttpResponse {
    let s = &state.stats;
    let m = &state.settings.mempool;
    HttpResponse::Ok().json(json!({
        "size": get(&s.mempool_size),
        "accounts": get(&s.mempool_accounts),
        "max_size": m.max_size,
        "account_limit": m.account_limit,
        "persist": m.persist,
        "admitted": get(&s.mempool_admitted),
        "rejected": get(&s.mempool_rejected),
        "expired": get(&s.mempool_expired),
    }))
}

pub async fn execution_stats(state: State) -> HttpResponse {
    let s = &state.stats;
    let e = &state.settings.execution;
    HttpResponse::Ok().json(json!({
        "workers": e.workers,
        "queue_depth": get(&s.exec_queue_depth),
        "queue_size": e.queue_size,
        // The chain's values, which execution uses (they may override the config's; see
        // `GET /v1/chain`).
        "gas_limit": state.storage.params().max_tx_gas,
        "memory_limit_mb": e.memory_limit,
        "max_memory_pages": state.storage.params().max_memory_pages,
        "instance_slots": state.vm.slots(),
        "cached_modules": state.vm.cached_modules(),
        "blocks_executed": get(&s.exec_blocks),
        "txs_executed": get(&s.exec_txs),
        "txs_dropped": get(&s.exec_dropped),
        "timeouts": get(&s.exec_timeouts),
        "queries": get(&s.exec_queries),
        "last_block_exec_ms": get(&s.last_exec_ms),
        "last_block_ms": get(&s.last_block_ms),
        "gas_used": get(&s.gas_used),
        "tx_failures": get(&s.tx_failures),
    }))
}

/// The bridge's numbers: watermarks and counters from storage (true numbers even with the
/// bridge off: the backlog then is every committed block), `in_flight`, the last error and
/// the endpoint from the running bridge (`null` with it off).
pub async fn bridge_stats(state: State) -> ApiResult<HttpResponse> {
    let s = state.storage.bridge_stats().map_err(storage_err)?;
    let (last_error, endpoint) = match &state.bridge {
        Some(b) => (b.last_error(), Some(b.endpoint.clone())),
        None => (None, None),
    };
    Ok(HttpResponse::Ok().json(json!({
        "enabled": state.bridge.is_some(),
        "head_height": s.head_height,
        "last_anchored_height": s.last_anchored_height,
        "last_staged_height": s.last_staged_height,
        "backlog_blocks": s.backlog_blocks,
        "in_flight": s.in_flight,
        "delivered_total": s.delivered_total,
        "failed_total": s.failed_total,
        "last_error": last_error,
        "endpoint": endpoint,
    })))
}

/// Prometheus text 0.0.4 by default (what promtool lints); OpenMetrics when asked for.
pub async fn metrics(state: State, req: actix_web::HttpRequest) -> ApiResult<HttpResponse> {
    state.metrics.refresh_process();
    let wants_openmetrics = req
        .headers()
        .get(actix_web::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    let mut out = String::new();
    if wants_openmetrics {
        prometheus_client::encoding::text::encode(&mut out, &state.registry)
            .map_err(|e| ApiError::internal(format!("metrics encoding: {e}")))?;
        Ok(HttpResponse::Ok()
            .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
            .body(out))
    } else {
        prometheus_client::encoding::prometheus_text::encode(&mut out, &state.registry)
            .map_err(|e| ApiError::internal(format!("metrics encoding: {e}")))?;
        Ok(HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(out))
    }
}

/// `test-hooks` builds only: make an actor hang or panic, to prove supervision in tests.
#[cfg(feature = "test-hooks")]
pub async fn inject_fault(
    state: State,
    path: web::Path<(String, String)>,
    q: web::Query<std::collections::HashMap<String, String>>,
) -> ApiResult<HttpResponse> {
    use accumen_actors::supervisor::{InjectFault, TestHook};
    let (name, fault) = path.into_inner();
    let hook = match fault.as_str() {
        "panic" => TestHook::Panic,
        "hang" => {
            let ms = q.get("ms").and_then(|m| m.parse().ok()).unwrap_or(3_000);
            TestHook::Hang(Duration::from_millis(ms))
        }
        other => {
            return Err(ApiError::bad_request(
                "invalid_fault",
                format!("fault {other:?} is not hang or panic"),
            ));
        }
    };
    let found = state
        .supervisor
        .send(InjectFault {
            actor: name.clone(),
            hook,
        })
        .await
        .map_err(|e| ApiError::internal(format!("supervisor: {e}")))?;
    if !found {
        return Err(ApiError::not_found(format!(
            "no supervised actor named {name:?}"
        )));
    }
    Ok(HttpResponse::Accepted().json(json!({"actor": name, "fault": fault})))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn verify_parts_keeps_order_and_whole_chunks() {
        use accumen_actors::types::{Keypair, Signature};
        let kp = Keypair::from_seed([1; 32]);
        let call = accumen_actors::testkit::call(Address([0; 32]), "e", &[]);
        let tx = |nonce: u64| SignedTx {
            tx: accumen_actors::testkit::body("c", kp.public(), nonce, call.clone(), 1),
            signature: Signature([0; 64]),
        };
        for (len, cores, want) in [
            (0, 2, vec![0]),
            (1, 2, vec![1]),
            (BATCH_CHUNK, 2, vec![BATCH_CHUNK]),
            (BATCH_CHUNK + 1, 2, vec![BATCH_CHUNK, 1]),
            (1000, 2, vec![512, 488]),
            (1000, 1, vec![1000]),
            (1000, 8, vec![256, 256, 256, 232]),
            (4 * BATCH_CHUNK, 3, vec![512, 512]),
        ] {
            let txs: Vec<SignedTx> = (0..len as u64).map(tx).collect();
            let parts = verify_parts(txs, cores);
            let sizes: Vec<usize> = parts.iter().map(Vec::len).collect();
            assert_eq!(sizes, want, "{len} on {cores}");
            let nonces: Vec<u64> = parts.iter().flatten().map(|t| t.tx.nonce).collect();
            assert_eq!(nonces, (0..len as u64).collect::<Vec<_>>());
        }
    }

    #[test]
    fn brief_cuts_long_messages_on_a_char_boundary() {
        assert_eq!(brief("short".into()), "short");
        let cut = brief("é".repeat(300));
        assert!(cut.len() <= MAX_ELEMENT_ERROR + '…'.len_utf8());
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn one_batch_result_fits_max_result_bytes() {
        // The worst element: a hash, a long code and a cut message of characters that JSON
        // escaping doubles.
        let worst = ElementResult::rejected(
            Some(Hash([0xab; 32])),
            ApiError::bad_request("a_code_longer_than_any_we_use", "\"".repeat(10_000)),
        );
        let bytes = serde_json::to_vec(&worst).unwrap().len() + 1; // and its comma
        assert!(bytes <= MAX_RESULT_BYTES, "{bytes} bytes");
    }
}
