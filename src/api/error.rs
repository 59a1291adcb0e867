//! The API's error type: every failure is an HTTP status plus `{"error":{"code","message"}}`.
//!
//! Codes are stable snake_case strings clients can branch on; messages are for people.
//!
//! Domain errors (the mempool's refusals, ...) carry no HTTP knowledge: their code and status
//! are decided here, in the API layer, and their message is their `Display` followed by their
//! `source()` chain, so a node fault's cause reaches the client without being flattened into
//! the domain error.

use accumen_actors::mempool::MempoolError;
use accumen_actors::mempool::pool::AdmitError;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Close the connection after this answer: the request's body was not read to its end,
    /// and reading (or draining) the rest is exactly the work the refusal avoids.
    pub close: bool,
    /// Seconds for a `Retry-After` header, when waiting that long is the remedy.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code,
            message: message.into(),
            close: false,
            retry_after: None,
        }
    }

    /// The same answer, closing the connection after it.
    pub fn closing(mut self) -> Self {
        self.close = true;
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "not_found", message)
    }

    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(503, code, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "internal_error", message)
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        json!({"error": {"code": self.code, "message": self.message}})
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status);
        if self.close {
            res.force_close();
        }
        if self.status == StatusCode::UNAUTHORIZED {
            res.insert_header((
                actix_web::http::header::WWW_AUTHENTICATE,
                "Bearer realm=\"accumen\"",
            ));
        }
        if let Some(secs) = self.retry_after {
            res.insert_header((actix_web::http::header::RETRY_AFTER, secs.to_string()));
        } else if self.code == "body_budget_exhausted" {
            // Bodies in flight finish within api.body_timeout at worst, usually at once.
            res.insert_header((actix_web::http::header::RETRY_AFTER, "1"));
        }
        res.json(self.body())
    }
}

/// An error's message followed by its causes: `"outer: cause: root cause"`.
pub fn with_causes(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        msg.push_str(": ");
        msg.push_str(&c.to_string());
        cause = c.source();
    }
    msg
}

/// Status and stable snake_case code of an admission refusal (clients match on the code, so
/// never rename one): 400 for a transaction that can never be admitted as sent, 409 for a
/// conflict with the chain or the pool, 413 for one larger than the whole pool, 503/429 for
/// capacity (retrying later may work).
pub fn admit_status(e: &AdmitError) -> (u16, &'static str) {
    match e {
        AdmitError::WrongChain { .. } => (400, "wrong_chain"),
        AdmitError::GasLimit { .. } => (400, "gas_limit"),
        AdmitError::Expired { .. } => (400, "expired"),
        AdmitError::NonceTooFar { .. } => (400, "nonce_too_far"),
        AdmitError::NonceTooLow { .. } => (409, "nonce_too_low"),
        AdmitError::Duplicate(_) => (409, "duplicate"),
        AdmitError::NonceTaken { .. } => (409, "nonce_taken"),
        AdmitError::TooLarge { .. } => (413, "too_large_for_mempool"),
        AdmitError::PoolFull { .. } => (503, "mempool_full"),
        AdmitError::AccountFull { .. } => (429, "account_limit"),
        AdmitError::FutureFull { .. } => (429, "future_limit"),
    }
}

/// Status and stable code of a mempool refusal.
pub fn mempool_status(e: &MempoolError) -> (u16, &'static str) {
    match e {
        MempoolError::Rejected(e) => admit_status(e),
        MempoolError::UnknownContract(_) => (404, "unknown_contract"),
        MempoolError::Storage(_) => (500, "storage_error"),
        MempoolError::Journal(_) => (503, "journal_unavailable"),
    }
}

impl From<&MempoolError> for ApiError {
    fn from(e: &MempoolError) -> Self {
        let (status, code) = mempool_status(e);
        ApiError::new(status, code, with_causes(e))
    }
}

/// Result of an API handler.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use accumen_actors::storage::StorageError;
    use accumen_actors::types::{Address, Hash};

    use super::*;

    #[test]
    fn admission_codes_and_statuses() {
        let h = Hash([1; 32]);
        let cases = [
            (
                AdmitError::WrongChain {
                    expected: "a".into(),
                    got: "b".into(),
                },
                "wrong_chain",
                400,
            ),
            (AdmitError::GasLimit { limit: 2, max: 1 }, "gas_limit", 400),
            (AdmitError::Expired { expiry: 1, now: 2 }, "expired", 400),
            (
                AdmitError::NonceTooLow {
                    expected: 2,
                    got: 1,
                },
                "nonce_too_low",
                409,
            ),
            (
                AdmitError::NonceTooFar {
                    next: 0,
                    got: 9,
                    max_ahead: 5,
                },
                "nonce_too_far",
                400,
            ),
            (AdmitError::Duplicate(h), "duplicate", 409),
            (AdmitError::NonceTaken { nonce: 3 }, "nonce_taken", 409),
            (
                AdmitError::PoolFull {
                    max_size: 7,
                    max_bytes: 9,
                },
                "mempool_full",
                503,
            ),
            (
                AdmitError::FutureFull { limit: 2, gap: 4 },
                "future_limit",
                429,
            ),
            (
                AdmitError::TooLarge {
                    bytes: 10,
                    max_bytes: 9,
                },
                "too_large_for_mempool",
                413,
            ),
            (AdmitError::AccountFull { limit: 4 }, "account_limit", 429),
        ];
        for (err, code, status) in cases {
            assert_eq!(admit_status(&err), (status, code), "{err:?}");
            assert!(!err.to_string().is_empty());
        }
        let msg = AdmitError::NonceTaken { nonce: 3 }.to_string();
        assert!(
            msg.contains("nonce 3") && msg.contains("not supported"),
            "{msg}"
        );
        let msg = AdmitError::NonceTooFar {
            next: 0,
            got: 9,
            max_ahead: 5,
        }
        .to_string();
        assert!(msg.contains('9') && msg.contains('5'), "{msg}");
    }

    #[test]
    fn mempool_faults_keep_their_cause_in_the_message() {
        let journal = MempoolError::Journal(Arc::new(StorageError::TooManyTxs));
        let e = ApiError::from(&journal);
        assert_eq!((e.status.as_u16(), e.code), (503, "journal_unavailable"));
        assert!(
            e.message
                .starts_with("the mempool journal could not be written")
                && e.message
                    .ends_with(": block has more than u32::MAX transactions"),
            "{}",
            e.message
        );
        let storage = MempoolError::Storage(Arc::new(StorageError::DuplicateTx(Hash([2; 32]))));
        let e = ApiError::from(&storage);
        assert_eq!((e.status.as_u16(), e.code), (500, "storage_error"));
        assert!(e.message.contains("is already stored"), "{}", e.message);
        let unknown = MempoolError::UnknownContract(Address([7; 32]));
        let e = ApiError::from(&unknown);
        assert_eq!((e.status.as_u16(), e.code), (404, "unknown_contract"));
        let dup = MempoolError::Rejected(AdmitError::Duplicate(Hash([1; 32])));
        assert_eq!(ApiError::from(&dup).code, "duplicate");
    }
}
