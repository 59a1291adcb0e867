//! The production [`L0Api`]: JSON-RPC 2.0 over HTTP to an Accumulate node's `POST /v3`
//! (L0 document §1–§2), on `jsonrpsee-http-client`.
//!
//! Invariants:
//! - `params` is always a JSON object built by `json::params` (never jsonrpsee's
//!   `ObjectParams`, which drops an empty object and earns `-33400 empty request`, §1).
//! - One L0 answer is bounded: the request timeout covers connect, send and the whole answer,
//!   and the response body is capped at [`MAX_RESPONSE_BYTES`]; anything larger is a retryable
//!   transport failure, never an allocation the L0 chooses.
//! - Failures are classified only through `L0Error` (`l0.rs`), by code, never by message text:
//!   a protocol error `-33000 - status` → `L0Error::from_status`; `-33404` on a query → `Ok(None)`;
//!   transport failures, timeouts, HTTP errors, library codes (`-32xxx`) and unparsable answers →
//!   retryable.
//! - `submit` results (§2.1): a missing `success` is false. The transaction's status `delivered`
//!   means the L0 already executed these bytes → `AlreadyKnown` (a resubmission of delivered
//!   bytes also carries `badTimestamp` on its signature, §4.3, which must not make it final).
//!   Otherwise the first message with a status >= 300 (transaction first, then signature)
//!   classifies the failure. `success` absent with no failing status is retryable: the
//!   consensus engine refused the envelope without a user-level reason (§4.3 names a mempool
//!   duplicate as one such case); resending identical bytes is idempotent, so retrying is safe.
//! - A JSON-RPC `-33500` (`internalError`, e.g. "broadcast: tx already exists in cache") stays
//!   retryable: the document does not verify the duplicate's error (§4.3, §9 "exact error text
//!   not verified"), and telling it from a real internal error would mean reading message text.
//!   Retrying identical bytes later resolves it either way (delivered → `AlreadyKnown`).

use std::time::Duration;

use jsonrpsee_core::client::{ClientT, Error as RpcError};
use jsonrpsee_http_client::{HttpClient, HttpClientBuilder};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::encoding::{AccUrl, TxId};
use super::json::{
    self, AccountRecord, ChainEntryRecord, Envelope, MessageRecord, NetworkStatus,
    NetworkStatusRequest, Query, QueryRequest, RangeOptions, RecordRange, Status, Submission,
    SubmitRequest,
};
use super::l0::{L0Api, L0Error};
use crate::types::Hash;

/// The largest response body accepted from the L0: the largest legal answer is a 100-record
/// expanded data range of maximal entries (100 × 20 480 B, hex-encoded: ~4.1 MB), so 8 MiB.
pub const MAX_RESPONSE_BYTES: u32 = 8 * 1024 * 1024;

/// The largest request body sent (an envelope is at most ~21 KiB of data, hex doubles it).
const MAX_REQUEST_BYTES: u32 = 1024 * 1024;

/// Most data entries one range query may ask for (§2.2: server max 100).
pub const MAX_RANGE_COUNT: u64 = 100;

/// A JSON-RPC client for one L0 endpoint (module docs).
#[derive(Clone, Debug)]
pub struct L0Client {
    endpoint: String,
    http: HttpClient,
}

impl L0Client {
    /// A client for `endpoint` (the full URL including `/v3`, e.g.
    /// `http://127.0.0.1:26660/v3`). Every call is bounded by `request_timeout`. Fails on a
    /// malformed URL or a zero timeout, classified final (a configuration error).
    pub fn new(endpoint: &str, request_timeout: Duration) -> Result<L0Client, L0Error> {
        if request_timeout.is_zero() {
            return Err(L0Error::from_status(
                Status::BadRequest,
                "L0 request timeout must be greater than zero",
            ));
        }
        let http = HttpClientBuilder::default()
            .request_timeout(request_timeout)
            .connect_timeout(request_timeout)
            .max_response_size(MAX_RESPONSE_BYTES)
            .max_request_size(MAX_REQUEST_BYTES)
            .build(endpoint)
            .map_err(|e| {
                L0Error::from_status(
                    Status::BadRequest,
                    format!("L0 endpoint {endpoint:?} is not usable: {e}"),
                )
            })?;
        Ok(L0Client {
            endpoint: endpoint.to_string(),
            http,
        })
    }

    /// The endpoint this client talks to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// One call: `params` serialised as an object, the answer parsed as `R`.
    async fn call<P: Serialize, R: DeserializeOwned>(
        &self,
        method: &str,
        params: &P,
    ) -> Result<R, RpcError> {
        let params = json::params(params).map_err(|e| RpcError::Custom(e.to_string()))?;
        self.http.request(method, params).await
    }

    /// A query whose `notFound` means "absent" (`Ok(None)`).
    async fn query_opt<R: DeserializeOwned>(
        &self,
        request: &QueryRequest,
    ) -> Result<Option<R>, L0Error> {
        match self.call("query", request).await {
            Ok(r) => Ok(Some(r)),
            Err(e) => match classify(&e) {
                Classified::NotFound => Ok(None),
                Classified::Err(err) => Err(err),
            },
        }
    }

    /// A query for which `notFound` is an error like any other.
    async fn query_req<R: DeserializeOwned>(&self, request: &QueryRequest) -> Result<R, L0Error> {
        self.call("query", request)
            .await
            .map_err(|e| match classify(&e) {
                Classified::NotFound => L0Error::from_status(Status::NotFound, rpc_message(&e)),
                Classified::Err(err) => err,
            })
    }
}

enum Classified {
    NotFound,
    Err(L0Error),
}

fn rpc_message(e: &RpcError) -> String {
    match e {
        RpcError::Call(obj) => obj.message().to_string(),
        other => other.to_string(),
    }
}

/// The one mapping from a jsonrpsee failure to an `L0Error` (module docs).
fn classify(e: &RpcError) -> Classified {
    match e {
        RpcError::Call(obj) => match Status::from_json_rpc_code(i64::from(obj.code())) {
            Some(Status::NotFound) => Classified::NotFound,
            Some(status) => Classified::Err(L0Error::from_status(
                status,
                format!("L0 error {}: {}", obj.code(), obj.message()),
            )),
            // -32700/-32600/-32601/-32602/-32603 and anything unknown: the request may be fine
            // and the server confused or not yet upgraded; never a verdict on these bytes.
            None => Classified::Err(L0Error::transport(format!(
                "L0 JSON-RPC error {}: {}",
                obj.code(),
                obj.message()
            ))),
        },
        RpcError::RequestTimeout => Classified::Err(L0Error::transport("L0 request timed out")),
        RpcError::ParseError(p) => {
            Classified::Err(L0Error::transport(format!("unparsable L0 answer: {p}")))
        }
        other => Classified::Err(L0Error::transport(format!("L0 transport: {other}"))),
    }
}

/// Maps a `submit` result to the trait's contract (module docs).
pub fn classify_submissions(
    envelope: &Envelope,
    submissions: Vec<Submission>,
) -> Result<Vec<Submission>, L0Error> {
    if submissions.is_empty() {
        return Err(L0Error::transport("L0 answered submit with no submissions"));
    }
    let tx_hash = envelope.transaction.first().map(|t| t.hash());
    let tx_delivered = submissions
        .iter()
        .any(|s| Some(s.status.tx_id.hash) == tx_hash && s.status.code == Some(Status::Delivered));
    if tx_delivered {
        return Err(L0Error::already_known(
            "L0 reports the transaction as already delivered",
        ));
    }
    // Transactions first, then signatures (§2.1): a failing transaction status wins.
    let mut ordered: Vec<&Submission> = submissions
        .iter()
        .filter(|s| Some(s.status.tx_id.hash) == tx_hash)
        .collect();
    ordered.extend(
        submissions
            .iter()
            .filter(|s| Some(s.status.tx_id.hash) != tx_hash),
    );
    for s in ordered {
        if let Some(code) = &s.status.code
            && !code.is_success()
        {
            let detail = s
                .status
                .error
                .as_ref()
                .map(|e| e.message.clone())
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| s.message.clone());
            return Err(L0Error::from_status(
                code.clone(),
                format!("L0 refused {}: {}: {detail}", s.status.tx_id, code.name()),
            ));
        }
    }
    if submissions.iter().any(|s| !s.success) {
        let message = submissions
            .iter()
            .map(|s| s.message.as_str())
            .find(|m| !m.is_empty())
            .unwrap_or("no reason given");
        return Err(L0Error::transport(format!(
            "L0 did not accept the envelope: {message}"
        )));
    }
    Ok(submissions)
}

impl L0Api for L0Client {
    async fn submit(&self, envelope: &Envelope) -> Result<Vec<Submission>, L0Error> {
        let request = SubmitRequest {
            envelope: envelope.clone(),
            verify: None,
            wait: None,
        };
        let subs: Vec<Submission> =
            self.call("submit", &request)
                .await
                .map_err(|e| match classify(&e) {
                    // `notFound` on submit is a verdict (missing account or signer), final.
                    Classified::NotFound => L0Error::from_status(Status::NotFound, rpc_message(&e)),
                    Classified::Err(err) => err,
                })?;
        classify_submissions(envelope, subs)
    }

    async fn query_message(&self, id: &TxId) -> Result<Option<MessageRecord>, L0Error> {
        self.query_opt(&QueryRequest {
            scope: id.to_string(),
            query: None,
        })
        .await
    }

    async fn query_account(&self, url: &AccUrl) -> Result<Option<AccountRecord>, L0Error> {
        self.query_opt(&QueryRequest {
            scope: url.to_string(),
            query: None,
        })
        .await
    }

    async fn query_data_range(
        &self,
        account: &AccUrl,
        start: u64,
        count: u64,
    ) -> Result<RecordRange<ChainEntryRecord>, L0Error> {
        self.query_req(&QueryRequest {
            scope: account.to_string(),
            query: Some(Query::Data {
                index: None,
                entry: None,
                range: Some(RangeOptions {
                    start: Some(start),
                    count: Some(count.min(MAX_RANGE_COUNT)),
                    expand: Some(true),
                    from_end: None,
                }),
            }),
        })
        .await
    }

    async fn query_data_entry(
        &self,
        account: &AccUrl,
        entry_hash: &Hash,
    ) -> Result<Option<ChainEntryRecord>, L0Error> {
        self.query_opt(&QueryRequest {
            scope: account.to_string(),
            query: Some(Query::Data {
                index: None,
                entry: Some(*entry_hash),
                range: None,
            }),
        })
        .await
    }

    async fn network_status(&self) -> Result<NetworkStatus, L0Error> {
        self.call("network-status", &NetworkStatusRequest { partition: None })
            .await
            .map_err(|e| match classify(&e) {
                Classified::NotFound => L0Error::from_status(Status::NotFound, rpc_message(&e)),
                Classified::Err(err) => err,
            })
    }
}

#[cfg(test)]
mod tests {
    //! Against a raw HTTP responder on a std thread that serves canned answers, one per
    //! connection (`Connection: close`), so every class is seen exactly as the wire carries it.

    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::mpsc;
    use std::thread;

    use super::*;
    use crate::bridge::codec::{L0Key, SignedWriteData, WriteDataRequest, sign_write_data};
    use crate::bridge::l0::ErrorClass;

    enum Canned {
        /// HTTP status and body.
        Http(u16, String),
        /// A JSON-RPC result (the `id` is copied from the request).
        Result(serde_json::Value),
        /// A JSON-RPC error with this code.
        RpcError(i64, &'static str),
        /// Accept, read, close without answering.
        Close,
        /// Read, then answer nothing until the client gives up.
        Hang,
    }

    fn read_request(stream: &mut TcpStream) -> Vec<u8> {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = stream.read(&mut chunk).unwrap_or(0);
            if n == 0 {
                return buf;
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                while buf.len() < end + 4 + len {
                    let n = stream.read(&mut chunk).unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                return buf[end + 4..].to_vec();
            }
        }
    }

    /// Serves `answers` in order; returns the endpoint and a channel of the request bodies seen.
    fn responder(answers: Vec<Canned>) -> (String, mpsc::Receiver<serde_json::Value>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for answer in answers {
                let Ok((mut stream, _)) = listener.accept() else {
                    return;
                };
                let body = read_request(&mut stream);
                let request: serde_json::Value =
                    serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                let id = request
                    .get("id")
                    .cloned()
                    .unwrap_or(serde_json::Value::Null);
                let _ = tx.send(request);
                let (status, text) = match answer {
                    Canned::Http(status, text) => (status, text),
                    Canned::Result(result) => (
                        200,
                        serde_json::json!({"jsonrpc": "2.0", "id": id, "result": result})
                            .to_string(),
                    ),
                    Canned::RpcError(code, message) => (
                        200,
                        serde_json::json!({"jsonrpc": "2.0", "id": id,
                            "error": {"code": code, "message": message}})
                        .to_string(),
                    ),
                    Canned::Close => continue,
                    Canned::Hang => {
                        thread::sleep(Duration::from_secs(3));
                        continue;
                    }
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                    text.len()
                );
            }
        });
        (format!("http://{addr}/v3"), rx)
    }

    fn client(endpoint: &str) -> L0Client {
        L0Client::new(endpoint, Duration::from_millis(500)).unwrap()
    }

    fn signed() -> SignedWriteData {
        let key = L0Key::from_seed([7; 32]);
        sign_write_data(
            &key,
            &WriteDataRequest {
                principal: AccUrl::parse("acc://accumen.acme/anchors").unwrap(),
                signer: AccUrl::parse("acc://accumen.acme/book/1").unwrap(),
                signer_version: 1,
                timestamp: 1_735_689_600_000,
                memo: "accumen anchor 42".into(),
                metadata: b"{}".to_vec(),
                parts: vec![b"accumen/v1".to_vec()],
            },
        )
        .unwrap()
    }

    fn sub(id: &TxId, code: &str, success: bool) -> serde_json::Value {
        let mut s = serde_json::json!({"status": {"txID": id.to_string(), "code": code}});
        if success {
            s["success"] = true.into();
        }
        s
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    fn submit_with(answer: Canned) -> Result<Vec<Submission>, L0Error> {
        let (endpoint, _rx) = responder(vec![answer]);
        let w = signed();
        rt().block_on(client(&endpoint).submit(&w.envelope()))
    }

    #[test]
    fn submit_ok_returns_the_submissions_and_sends_object_params() {
        let w = signed();
        let (endpoint, rx) = responder(vec![Canned::Result(serde_json::json!([
            sub(&w.transaction.id(), "ok", true),
            sub(&w.signature.id(), "ok", true)
        ]))]);
        let subs = rt()
            .block_on(client(&endpoint).submit(&w.envelope()))
            .unwrap();
        assert_eq!(subs.len(), 2);
        let req = rx.recv().unwrap();
        assert_eq!(req["method"], "submit");
        assert!(req["params"]["envelope"].is_object());
        assert!(req["params"].get("type").is_none());
    }

    #[test]
    fn submit_failure_is_classified_by_the_failing_message_status() {
        let w = signed();
        let mut sig = sub(&w.signature.id(), "insufficientCredits", false);
        sig["status"]["error"] =
            serde_json::json!({"message": "insufficient credits: have 0.00, want 0.01"});
        let err = submit_with(Canned::Result(serde_json::json!([
            sub(&w.transaction.id(), "ok", false),
            sig
        ])))
        .unwrap_err();
        assert_eq!(err.class, ErrorClass::Final);
        assert_eq!(err.status, Some(Status::InsufficientCredits));
        assert!(err.message.contains("have 0.00"), "{}", err.message);

        // A retryable status on the signature stays retryable.
        let err = submit_with(Canned::Result(serde_json::json!([
            sub(&w.transaction.id(), "ok", false),
            sub(&w.signature.id(), "notReady", false)
        ])))
        .unwrap_err();
        assert_eq!(err.class, ErrorClass::Retryable);
    }

    #[test]
    fn submit_of_delivered_bytes_is_already_known() {
        let w = signed();
        // §4.3: the delivered transaction's recorded status, the signature's replayed timestamp.
        let err = submit_with(Canned::Result(serde_json::json!([
            sub(&w.transaction.id(), "delivered", false),
            sub(&w.signature.id(), "badTimestamp", false)
        ])))
        .unwrap_err();
        assert_eq!(err.class, ErrorClass::AlreadyKnown);
    }

    #[test]
    fn submit_without_success_and_without_reason_is_retryable() {
        let w = signed();
        let err = submit_with(Canned::Result(serde_json::json!([
            sub(&w.transaction.id(), "ok", false),
            sub(&w.signature.id(), "ok", false)
        ])))
        .unwrap_err();
        assert_eq!(err.class, ErrorClass::Retryable);
        let err = submit_with(Canned::Result(serde_json::json!([]))).unwrap_err();
        assert_eq!(err.class, ErrorClass::Retryable);
    }

    #[test]
    fn protocol_errors_map_through_their_status() {
        let err = submit_with(Canned::RpcError(-33400, "verify: bad")).unwrap_err();
        assert_eq!(err.class, ErrorClass::Final);
        assert_eq!(err.status, Some(Status::BadRequest));
        let err = submit_with(Canned::RpcError(-33502, "unmarshal request")).unwrap_err();
        assert_eq!(err.status, Some(Status::EncodingError));
        assert_eq!(err.class, ErrorClass::Final);
        let err = submit_with(Canned::RpcError(
            -33500,
            "broadcast: tx already exists in cache",
        ))
        .unwrap_err();
        assert_eq!(err.class, ErrorClass::Retryable);
        let err = submit_with(Canned::RpcError(-33504, "not ready")).unwrap_err();
        assert_eq!(err.class, ErrorClass::Retryable);
        let err = submit_with(Canned::RpcError(-33404, "signer not found")).unwrap_err();
        assert_eq!(err.class, ErrorClass::Final);
        assert_eq!(err.status, Some(Status::NotFound));
        for code in [-32700, -32600, -32601, -32603] {
            let err = submit_with(Canned::RpcError(code, "library")).unwrap_err();
            assert_eq!(err.class, ErrorClass::Retryable, "{code}");
        }
    }

    #[test]
    fn transport_failures_are_retryable() {
        for answer in [
            Canned::Http(500, "boom".into()),
            Canned::Http(503, String::new()),
            Canned::Http(200, "not json".into()),
            Canned::Result(serde_json::json!({"unexpected": "shape"})),
            Canned::Close,
            Canned::Hang,
        ] {
            let err = submit_with(answer).unwrap_err();
            assert_eq!(err.class, ErrorClass::Retryable, "{err}");
            assert_eq!(err.status, None);
        }
        // Nothing listening at all.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let w = signed();
        let err = rt()
            .block_on(client(&format!("http://{addr}/v3")).submit(&w.envelope()))
            .unwrap_err();
        assert_eq!(err.class, ErrorClass::Retryable);
    }

    #[test]
    fn an_oversized_answer_is_refused_as_retryable() {
        let big = "a".repeat(MAX_RESPONSE_BYTES as usize + 16);
        let err = submit_with(Canned::Result(serde_json::json!([big]))).unwrap_err();
        assert_eq!(err.class, ErrorClass::Retryable);
    }

    #[test]
    fn queries_map_not_found_to_none() {
        let w = signed();
        let id = w.transaction.id();
        let (endpoint, rx) = responder(vec![
            Canned::RpcError(-33404, "not found"),
            Canned::Result(serde_json::json!({
                "recordType": "message", "id": id.to_string(), "status": "delivered",
                "statusNo": 201, "someFutureField": 1
            })),
            Canned::RpcError(-33404, "no such entry"),
            Canned::RpcError(-33404, "account not found"),
            Canned::RpcError(-33500, "internal"),
        ]);
        let c = client(&endpoint);
        let rt = rt();
        assert_eq!(rt.block_on(c.query_message(&id)).unwrap(), None);
        let rec = rt.block_on(c.query_message(&id)).unwrap().unwrap();
        assert_eq!(rec.status, Some(Status::Delivered));
        let account = id.account.clone();
        assert_eq!(
            rt.block_on(c.query_data_entry(&account, &Hash::ZERO))
                .unwrap(),
            None
        );
        // A data range on a missing account is an error, not an empty range.
        let err = rt
            .block_on(c.query_data_range(&account, 0, 1000))
            .unwrap_err();
        assert_eq!(err.status, Some(Status::NotFound));
        let err = rt.block_on(c.query_account(&account)).unwrap_err();
        assert_eq!(err.class, ErrorClass::Retryable);

        let reqs: Vec<serde_json::Value> = rx.try_iter().collect();
        assert_eq!(
            reqs[0]["params"],
            serde_json::json!({"scope": id.to_string()})
        );
        assert_eq!(
            reqs[2]["params"]["query"],
            serde_json::json!({"queryType": "data", "entry": Hash::ZERO.to_hex()})
        );
        // The range count is capped at the server's maximum.
        assert_eq!(reqs[3]["params"]["query"]["range"]["count"], 100);
    }

    #[test]
    fn network_status_sends_an_empty_object() {
        let (endpoint, rx) = responder(vec![Canned::Result(serde_json::json!({
            "oracle": {"price": 5000},
            "network": {"networkName": "DevNet", "partitions": []},
            "executorVersion": "v2-vandenberg", "directoryHeight": 3, "majorBlockHeight": 0
        }))]);
        let status = rt().block_on(client(&endpoint).network_status()).unwrap();
        assert_eq!(status.oracle.price, 5000);
        let req = rx.recv().unwrap();
        assert_eq!(req["params"], serde_json::json!({}));
    }

    #[test]
    fn bad_construction_is_refused() {
        assert!(L0Client::new("not a url", Duration::from_secs(1)).is_err());
        assert!(L0Client::new("http://127.0.0.1:1/v3", Duration::ZERO).is_err());
        let c = L0Client::new("http://127.0.0.1:1/v3", Duration::from_secs(1)).unwrap();
        assert_eq!(c.endpoint(), "http://127.0.0.1:1/v3");
    }
}
