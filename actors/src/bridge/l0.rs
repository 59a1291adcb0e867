//! What the bridge asks of an Accumulate L0 node, as a trait ([`L0Api`]), and how every failure
//! is classified ([`L0Error`], [`ErrorClass`]). The JSON-RPC client (`client::L0Client`) is the
//! production implementation; the stager and submitter logic is written against the trait so it
//! is unit tested with an in-memory fake, and the local stand-in (`accumen devnet-l0`) serves the
//! same methods over HTTP.
//!
//! Invariants:
//! - Every failure carries exactly one class, decided here and nowhere else, by status code and
//!   transport facts, never by message text (L0 document §1: "branch on `code`"):
//!   - [`ErrorClass::Retryable`]: the request may not have reached the L0 or the L0 could not
//!     answer now (connection refused or reset, timeout, HTTP 5xx, an unparsable answer,
//!     `notReady`, `internalError`, `unknownError`, `fatalError`, `noPeer`, `streamAborted`,
//!     `wrongPartition`). The same bytes may be sent again later.
//!   - [`ErrorClass::Final`]: the L0 refused these bytes for good (`badRequest`,
//!     `unauthenticated`, `insufficientCredits`, `unauthorized`, `notFound` on submit,
//!     `notAllowed`, `rejected`, `expired`, `conflict`, `badSignerVersion`, `badTimestamp`,
//!     `badUrlLength`, `encodingError`, `wrongType`, `invalidRecord`, `insufficientBalance`, any
//!     other status >= 300). Resending them cannot help; only a re-signed envelope can.
//!   - [`ErrorClass::AlreadyKnown`]: the L0 already has this very transaction (a resubmission
//!     of delivered bytes, or a copy still in its mempool cache). The caller confirms with a
//!     query, never treats it as a failure.
//! - `params` is always a JSON object (`json::params`), `{}` included.
//! - A "not found" answer to a query is not an error: it is `Ok(None)`.

use std::future::Future;

use super::encoding::{AccUrl, TxId};
use super::json::{
    AccountRecord, ChainEntryRecord, Envelope, MessageRecord, NetworkStatus, RecordRange, Status,
    Submission,
};
use crate::types::Hash;

/// How a caller must treat a failure (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Try the same request again later (with backoff).
    Retryable,
    /// These bytes will never be accepted.
    Final,
    /// The L0 already has this transaction: confirm it with a query.
    AlreadyKnown,
}

impl ErrorClass {
    /// A stable label for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            Self::Retryable => "retryable",
            Self::Final => "final",
            Self::AlreadyKnown => "already_known",
        }
    }

    /// The class of a status code (module docs); `None` for a success (< 300).
    pub fn of_status(status: &Status) -> Option<ErrorClass> {
        if status.is_success() {
            return None;
        }
        Some(match status {
            Status::NotReady
            | Status::InternalError
            | Status::UnknownError
            | Status::FatalError
            | Status::NoPeer
            | Status::StreamAborted
            | Status::WrongPartition => ErrorClass::Retryable,
            _ => ErrorClass::Final,
        })
    }
}

/// A failed L0 call: its class, the status the L0 gave (if it gave one) and a message for
/// operators (the L0's own text, or the transport's).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct L0Error {
    pub class: ErrorClass,
    pub status: Option<Status>,
    pub message: String,
}

impl L0Error {
    /// A failure with no L0 status (transport, timeout, HTTP status, bad answer): retryable.
    pub fn transport(message: impl Into<String>) -> Self {
        Self {
            class: ErrorClass::Retryable,
            status: None,
            message: message.into(),
        }
    }

    /// A failure the L0 reported with `status`, classified by it (a success status here is a
    /// caller bug reported as final, so it is never retried forever).
    pub fn from_status(status: Status, message: impl Into<String>) -> Self {
        Self {
            class: ErrorClass::of_status(&status).unwrap_or(ErrorClass::Final),
            status: Some(status),
            message: message.into(),
        }
    }

    /// The L0 already has this transaction.
    pub fn already_known(message: impl Into<String>) -> Self {
        Self {
            class: ErrorClass::AlreadyKnown,
            status: None,
            message: message.into(),
        }
    }

    pub fn is_retryable(&self) -> bool {
        self.class == ErrorClass::Retryable
    }

    pub fn is_final(&self) -> bool {
        self.class == ErrorClass::Final
    }
}

/// The L0 methods the bridge and the follower use (L0 document §2). Futures need not be `Send`:
/// callers run on one actix Arbiter.
pub trait L0Api {
    /// `submit {envelope}`: CheckTx only, not delivery. `Ok` holds one `Submission` per message
    /// (transaction first, then signature). An envelope whose submissions report a status >= 300
    /// is an `Err` classified by that status (the signature's status when the transaction's is
    /// `ok`); a transaction the L0 reports as already delivered is `AlreadyKnown`.
    fn submit(&self, envelope: &Envelope)
    -> impl Future<Output = Result<Vec<Submission>, L0Error>>;

    /// `query {scope: id}` for a transaction or signature id: `Ok(None)` if the L0 does not know
    /// it (`notFound`).
    fn query_message(
        &self,
        id: &TxId,
    ) -> impl Future<Output = Result<Option<MessageRecord>, L0Error>>;

    /// `query {scope: account}` (default query): the key page or data account; `Ok(None)` if it
    /// does not exist.
    fn query_account(
        &self,
        url: &AccUrl,
    ) -> impl Future<Output = Result<Option<AccountRecord>, L0Error>>;

    /// `query {scope: account, query: {queryType: data, range: {start, count}}}`: data entries
    /// `start..start+count` (0-based, count at most 100), expanded.
    fn query_data_range(
        &self,
        account: &AccUrl,
        start: u64,
        count: u64,
    ) -> impl Future<Output = Result<RecordRange<ChainEntryRecord>, L0Error>>;

    /// `query {scope: account, query: {queryType: data, entry: hash}}`: `Ok(None)` if the
    /// account has no entry with that hash.
    fn query_data_entry(
        &self,
        account: &AccUrl,
        entry_hash: &Hash,
    ) -> impl Future<Output = Result<Option<ChainEntryRecord>, L0Error>>;

    /// `network-status {}`.
    fn network_status(&self) -> impl Future<Output = Result<NetworkStatus, L0Error>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_follow_the_status_code() {
        assert_eq!(ErrorClass::of_status(&Status::Ok), None);
        assert_eq!(ErrorClass::of_status(&Status::Delivered), None);
        assert_eq!(
            ErrorClass::of_status(&Status::NotReady),
            Some(ErrorClass::Retryable)
        );
        assert_eq!(
            ErrorClass::of_status(&Status::InternalError),
            Some(ErrorClass::Retryable)
        );
        for s in [
            Status::BadRequest,
            Status::InsufficientCredits,
            Status::Unauthorized,
            Status::BadTimestamp,
            Status::BadSignerVersion,
            Status::NotFound,
            Status::Other("someFutureCode".into()),
        ] {
            assert_eq!(ErrorClass::of_status(&s), Some(ErrorClass::Final), "{s:?}");
        }
        assert!(L0Error::transport("connection refused").is_retryable());
        assert!(L0Error::from_status(Status::Ok, "odd").is_final());
    }
}
