//! The JSON shapes of the L0 API v3 methods the bridge uses (L0 document §1–§2): `submit`,
//! `query` and `network-status` requests and results, status codes and the error object, shared
//! by the client and the local stand-in server.
//!
//! Invariants: field names are camelCase and absent/zero fields are omitted, as Go's generated
//! `MarshalJSON` does; hashes and bytes are lowercase hex. Request types refuse unknown members
//! only where a silently ignored member would change what is hashed (the transaction, its body
//! and the signature, in `codec`); result types ignore unknown members, because a real node adds
//! fields we do not need. A missing `success` is false (Go omits `false`).

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};

use super::codec::{Ed25519Signature, Transaction};
use super::encoding::{AccUrl, TxId};
use crate::types::Hash;

/// Accepts a JSON list or a single object (Go `JsonList`). Goes through `Value` so that the
/// element's own error (e.g. "unknown field `expire`") reaches the caller unchanged.
fn one_or_many<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: de::DeserializeOwned,
{
    let v = serde_json::Value::deserialize(d)?;
    let out = match v {
        serde_json::Value::Array(items) => items
            .into_iter()
            .map(serde_json::from_value)
            .collect::<Result<Vec<T>, _>>(),
        one => serde_json::from_value(one).map(|t| vec![t]),
    };
    out.map_err(de::Error::custom)
}

/// Serialises request params as a JSON object, never absent: a real node answers a missing
/// `params` with `-33400 empty request`, and jsonrpsee leaves out an empty `ObjectParams`
/// (L0 document §1), so the client passes this map instead.
pub fn params<T: Serialize>(
    request: &T,
) -> Result<serde_json::Map<String, serde_json::Value>, ParamsError> {
    match serde_json::to_value(request).map_err(ParamsError::Json)? {
        serde_json::Value::Object(map) => Ok(map),
        other => Err(ParamsError::NotAnObject(other.to_string())),
    }
}

/// Why request params could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ParamsError {
    #[error("params: {0}")]
    Json(#[source] serde_json::Error),
    #[error("params must be a JSON object, got {0}")]
    NotAnObject(String),
}

/// `messaging.Envelope`: what `submit` carries. `messages` is not supported (refused).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Envelope {
    #[serde(default, deserialize_with = "one_or_many")]
    pub signatures: Vec<Ed25519Signature>,
    #[serde(default, deserialize_with = "one_or_many")]
    pub transaction: Vec<Transaction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx_hash: Option<Hash>,
}

/// `submit` params. The client sends no `type`; a server accepts `"type":"submitRequest"`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubmitRequest {
    pub envelope: Envelope,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<bool>,
}

/// One element of the `submit` result (one per message: transactions first, then signatures).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Submission {
    pub status: TransactionStatus,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub success: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// `TransactionStatus` as `submit` reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransactionStatus {
    #[serde(rename = "txID")]
    pub tx_id: TxId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<Status>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delivered: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pending: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub remote: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub failed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_num: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorObject>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<WriteDataResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received: Option<u64>,
}

/// The `writeData` transaction result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WriteDataResult {
    /// `"writeData"`; other result types are kept as their name.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_hash: Option<Hash>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_url: Option<AccUrl>,
    #[serde(rename = "accountID", default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<Hash>,
}

/// The error object (`data` of a JSON-RPC error, `error` of a status). The top level has no
/// `codeID`; nested causes do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorObject {
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<Status>,
    #[serde(rename = "codeID", default, skip_serializing_if = "Option::is_none")]
    pub code_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<Box<ErrorObject>>,
}

/// `query` params. `query` absent = `{"queryType":"default"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryRequest {
    /// An account URL or a transaction id.
    pub scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<Query>,
}

/// The query union, keyed by `queryType` (the subset the bridge needs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "queryType", rename_all = "camelCase")]
pub enum Query {
    Default {
        #[serde(
            rename = "includeReceipt",
            default,
            skip_serializing_if = "Option::is_none"
        )]
        include_receipt: Option<serde_json::Value>,
    },
    /// Exactly one of `index`, `entry`, `range`, or none for the latest entry.
    Data {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        index: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        entry: Option<Hash>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        range: Option<RangeOptions>,
    },
}

/// `RangeOptions`. Server defaults: `count` 50 (max 100), `expand` true for data ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RangeOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expand: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_end: Option<bool>,
}

/// A message inside a `MessageRecord`: the bridge's own transaction or `ed25519` signature.
/// Other message or signature types (which the bridge never queries) fail to parse.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Message {
    Transaction {
        transaction: Transaction,
    },
    Signature {
        signature: Ed25519Signature,
        #[serde(rename = "txID", default, skip_serializing_if = "Option::is_none")]
        tx_id: Option<TxId>,
    },
}

/// `MessageRecord`: the answer to `query {scope: <txid>}`. `status` is absent while the
/// message is recorded without a code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageRecord {
    /// `"message"`.
    pub record_type: String,
    pub id: TxId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Message>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_no: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorObject>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<WriteDataResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received: Option<u64>,
    /// Kept opaque: the bridge does not need them, a stand-in may send minimal ranges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub produced: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signatures: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_block_time: Option<String>,
}

/// `ChainEntryRecord` of a data query: `name` `"data"`, `type` `"transaction"`, `entry` the
/// entry hash, `value` the write transaction's record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChainEntryRecord {
    /// `"chainEntry"`.
    pub record_type: String,
    #[serde(default)]
    pub name: String,
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub index: u64,
    pub entry: Hash,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<MessageRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_block_time: Option<String>,
}

/// `RecordRange<T>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordRange<T> {
    /// `"range"`.
    pub record_type: String,
    #[serde(default = "Vec::new", skip_serializing_if = "Vec::is_empty")]
    pub records: Vec<T>,
    #[serde(default)]
    pub start: u64,
    #[serde(default)]
    pub total: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_block_time: Option<String>,
}

/// `AccountRecord`: the default query on an account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountRecord {
    /// `"account"`.
    pub record_type: String,
    pub account: Account,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_block_time: Option<String>,
}

/// The accounts the bridge looks at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Account {
    #[serde(rename_all = "camelCase")]
    KeyPage {
        key_book: AccUrl,
        url: AccUrl,
        #[serde(default)]
        credit_balance: u64,
        #[serde(default)]
        accept_threshold: u64,
        #[serde(default)]
        version: u64,
        #[serde(default)]
        keys: Vec<KeySpec>,
    },
    #[serde(rename_all = "camelCase")]
    DataAccount {
        url: AccUrl,
        #[serde(default)]
        authorities: Vec<AuthorityEntry>,
    },
}

/// A key of a key page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeySpec {
    pub public_key_hash: Hash,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_on: Option<u64>,
}

/// An account authority.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorityEntry {
    pub url: AccUrl,
}

/// `network-status` params (`{}` or `{partition}`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkStatusRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
}

/// `NetworkStatus`; `globals` and `routing` kept opaque (a stand-in may send fixed values).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkStatus {
    pub oracle: Oracle,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub globals: Option<serde_json::Value>,
    pub network: NetworkDefinition,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub executor_version: String,
    #[serde(default)]
    pub directory_height: u64,
    #[serde(default)]
    pub major_block_height: u64,
}

/// The ACME oracle: USD per ACME × 10⁴.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Oracle {
    pub price: u64,
}

/// The network definition (partitions and validators; validators kept opaque).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkDefinition {
    pub network_name: String,
    #[serde(default)]
    pub version: u64,
    #[serde(default)]
    pub partitions: Vec<PartitionInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validators: Option<serde_json::Value>,
}

/// A partition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionInfo {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
}

macro_rules! statuses {
    ($($variant:ident = $num:literal, $name:literal;)*) => {
        /// A status (Go `pkg/errors/status.yml`): a camelCase name on the wire, a number in
        /// `codeNum`/`statusNo`/`codeID`. A name this list lacks is kept as `Other`.
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub enum Status {
            $($variant,)*
            /// A status name this build does not know.
            Other(String),
        }

        impl Status {
            /// The wire name.
            pub fn name(&self) -> &str {
                match self {
                    $(Status::$variant => $name,)*
                    Status::Other(s) => s,
                }
            }

            /// The number, if known.
            pub fn number(&self) -> Option<u64> {
                match self {
                    $(Status::$variant => Some($num),)*
                    Status::Other(_) => None,
                }
            }

            /// From a wire name.
            pub fn from_name(s: &str) -> Status {
                match s {
                    $($name => Status::$variant,)*
                    other => Status::Other(other.to_string()),
                }
            }

            /// From a number (`None` if unknown).
            pub fn from_number(n: u64) -> Option<Status> {
                match n {
                    $($num => Some(Status::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

statuses! {
    Ok = 200, "ok";
    Delivered = 201, "delivered";
    Pending = 202, "pending";
    Remote = 203, "remote";
    WrongPartition = 301, "wrongPartition";
    BadRequest = 400, "badRequest";
    Unauthenticated = 401, "unauthenticated";
    InsufficientCredits = 402, "insufficientCredits";
    Unauthorized = 403, "unauthorized";
    NotFound = 404, "notFound";
    NotAllowed = 405, "notAllowed";
    Rejected = 406, "rejected";
    Expired = 407, "expired";
    Conflict = 409, "conflict";
    BadSignerVersion = 411, "badSignerVersion";
    BadTimestamp = 412, "badTimestamp";
    BadUrlLength = 413, "badUrlLength";
    IncompleteChain = 414, "incompleteChain";
    InsufficientBalance = 415, "insufficientBalance";
    InternalError = 500, "internalError";
    UnknownError = 501, "unknownError";
    EncodingError = 502, "encodingError";
    FatalError = 503, "fatalError";
    NotReady = 504, "notReady";
    WrongType = 505, "wrongType";
    NoPeer = 506, "noPeer";
    PeerMisbehaved = 507, "peerMisbehaved";
    InvalidRecord = 508, "invalidRecord";
    StreamAborted = 509, "streamAborted";
}

impl Status {
    /// `< 300`: success (including pending and delivered).
    pub fn is_success(&self) -> bool {
        self.number().is_some_and(|n| n < 300)
    }

    /// The JSON-RPC error code for this status: `-33000 - number` (§1).
    pub fn json_rpc_code(&self) -> Option<i64> {
        self.number()
            .and_then(|n| i64::try_from(n).ok())
            .map(|n| -33_000 - n)
    }

    /// The status of a JSON-RPC error code, if it is a protocol error (`-33000 - number`).
    pub fn from_json_rpc_code(code: i64) -> Option<Status> {
        let n = (-33_000i64).checked_sub(code)?;
        u64::try_from(n).ok().and_then(Status::from_number)
    }
}

impl Serialize for Status {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Status {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(Status::from_name(&s))
    }
}
