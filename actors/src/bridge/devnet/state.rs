//! The stand-in's ledger: one key page, its data accounts, the executed messages and the
//! submissions waiting for the next simulated block; the checks of L0 document §3.5 at
//! submission and the execution of §7 step 5 (fees per §5) at each block.
//!
//! Invariants:
//! - A submission changes nothing but the pending list; only [`State::execute_block`] charges
//!   credits, moves `lastUsedOn` and appends data entries, in submission order.
//! - Messages become queryable only once executed (before that a query answers `notFound`, as a
//!   real node's does until the block).
//! - Every hash comes from `SignedWriteData::check` (recomputed from the encoding).
//! - Bounded: at most [`MAX_PENDING`] submissions wait for one block and at most
//!   [`MAX_MESSAGES`] messages are kept; beyond either, submit answers `internalError`
//!   (retryable) and nothing is stored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::bridge::codec::{CheckError, Ed25519Signature, SignedWriteData, Transaction};
use crate::bridge::encoding::{AccUrl, TxId};
use crate::bridge::json::{
    Account, AccountRecord, AuthorityEntry, ChainEntryRecord, Envelope, ErrorObject, KeySpec,
    Message, MessageRecord, Query, QueryRequest, RecordRange, Status, Submission,
    TransactionStatus, WriteDataResult,
};
use crate::types::{Hash, PublicKey, sha256};

/// Most submissions waiting for one block.
pub const MAX_PENDING: usize = 1_000;
/// Most executed messages kept (two per transaction).
pub const MAX_MESSAGES: usize = 50_000;
/// Most data entries one range query returns (§2.2).
pub const MAX_RANGE: u64 = 100;
/// Default range count (§2.2).
pub const DEFAULT_RANGE: u64 = 50;

/// A failure answered as a JSON-RPC error `-33000 - status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcFail {
    pub status: Status,
    pub message: String,
}

impl RpcFail {
    pub fn new(status: Status, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

/// A key of the page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageKey {
    pub key_hash: Hash,
    pub last_used_on: u64,
}

/// The key page that signs (its book is the data accounts' authority).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    pub url: AccUrl,
    pub book: AccUrl,
    pub version: u64,
    /// Credit units (0.01 credit each).
    pub credits: u64,
    pub keys: Vec<PageKey>,
}

/// A data entry of an account: what the query reads back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryRef {
    pub entry_hash: Hash,
    pub tx_hash: Hash,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataAccount {
    pub url: AccUrl,
    pub authority: AccUrl,
    pub entries: Vec<EntryRef>,
}

/// An executed message and its outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    pub id: TxId,
    pub message: Message,
    pub status: Option<Status>,
    pub error: Option<String>,
    pub result: Option<WriteDataResult>,
    pub received: Option<u64>,
}

/// A submission accepted at CheckTx, executed at the next block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// The transaction's hash (kept so a duplicate check does not rehash every pending one).
    pub tx_hash: Hash,
    pub transaction: Transaction,
    pub signature: Ed25519Signature,
}

/// Everything the stand-in persists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub height: u64,
    pub page: Page,
    pub data_accounts: BTreeMap<AccUrl, DataAccount>,
    pub messages: BTreeMap<Hash, Recorded>,
    pub pending: Vec<Pending>,
}

/// What one block did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlockReport {
    pub height: u64,
    /// Transactions delivered (their hashes).
    pub delivered: Vec<Hash>,
    /// Transactions whose execution failed.
    pub failed: usize,
}

/// `acc://a/b/c` → `acc://a/b`; `None` for a URL without a path.
pub fn parent(url: &AccUrl) -> Option<AccUrl> {
    let s = url.as_str();
    let cut = s.rfind('/')?;
    if cut <= "acc://".len() {
        return None;
    }
    AccUrl::parse(&s[..cut]).ok()
}

/// Credit units as the node prints them (`0.05`).
fn credits_text(units: u64) -> String {
    format!("{}.{:02}", units / 100, units % 100)
}

/// Go's account id: SHA-256 of the lowercased URL without the scheme.
fn account_id(url: &AccUrl) -> Hash {
    sha256(url.without_scheme().to_lowercase().as_bytes())
}

fn write_data_result(principal: &AccUrl, entry_hash: Hash) -> WriteDataResult {
    WriteDataResult {
        kind: "writeData".into(),
        entry_hash: Some(entry_hash),
        account_url: Some(principal.clone()),
        account_id: Some(account_id(principal)),
    }
}

fn status_ok(id: TxId, result: Option<WriteDataResult>) -> TransactionStatus {
    TransactionStatus {
        tx_id: id,
        code: Some(Status::Ok),
        delivered: false,
        pending: false,
        remote: false,
        failed: false,
        code_num: Some(200),
        error: None,
        result,
        received: None,
    }
}

fn status_failed(id: TxId, status: Status, message: &str) -> TransactionStatus {
    TransactionStatus {
        tx_id: id,
        code_num: status.number(),
        delivered: true,
        failed: true,
        error: Some(ErrorObject {
            message: message.to_string(),
            code: Some(status.clone()),
            code_id: status.number(),
            cause: None,
        }),
        code: Some(status),
        pending: false,
        remote: false,
        result: None,
        received: None,
    }
}

/// Where a failed check is reported: on the transaction or on the signature.
enum Blame {
    Transaction,
    Signature,
}

fn blame_of(e: &CheckError) -> Blame {
    match e {
        CheckError::TooManyParts { .. } => Blame::Transaction,
        CheckError::TooLarge { what, .. } if *what != "signature" => Blame::Transaction,
        _ => Blame::Signature,
    }
}

impl State {
    /// A fresh ledger: the page with `keys` and `credits`, and one data account whose authority
    /// is the page's book.
    pub fn new(
        page_url: AccUrl,
        keys: &[PublicKey],
        credits: u64,
        data_account: AccUrl,
    ) -> Result<State, String> {
        let book = parent(&page_url).ok_or_else(|| {
            format!("key page {page_url} has no key book (expected acc://<adi>/<book>/<n>)")
        })?;
        let mut page = Page {
            url: page_url,
            book,
            version: 1,
            credits,
            keys: Vec::new(),
        };
        for k in keys {
            let key_hash = sha256(&k.0);
            if !page.keys.iter().any(|x| x.key_hash == key_hash) {
                page.keys.push(PageKey {
                    key_hash,
                    last_used_on: 0,
                });
            }
        }
        let mut state = State {
            height: 0,
            page,
            data_accounts: BTreeMap::new(),
            messages: BTreeMap::new(),
            pending: Vec::new(),
        };
        state.create_data_account(data_account)?;
        Ok(state)
    }

    /// Adds a data account under the page's book (control lever).
    pub fn create_data_account(&mut self, url: AccUrl) -> Result<(), String> {
        if self.data_accounts.contains_key(&url) || url == self.page.url {
            return Err(format!("account {url} already exists"));
        }
        let authority = self.page.book.clone();
        self.data_accounts.insert(
            url.clone(),
            DataAccount {
                url,
                authority,
                entries: Vec::new(),
            },
        );
        Ok(())
    }

    /// Adds a key to the page (control lever); `bump_version` as a real `updateKeyPage` does.
    pub fn add_key(&mut self, key: &PublicKey, bump_version: bool) -> bool {
        let key_hash = sha256(&key.0);
        let added = !self.page.keys.iter().any(|k| k.key_hash == key_hash);
        if added {
            self.page.keys.push(PageKey {
                key_hash,
                last_used_on: 0,
            });
        }
        if bump_version {
            self.page.version += 1;
        }
        added
    }

    /// The page-level checks of the signature (§3.5), in the node's order.
    fn check_signer(&self, sig: &Ed25519Signature, key_hash: &Hash) -> Result<(), RpcFail> {
        let page = &self.page;
        if sig.signer != page.url {
            return Err(RpcFail::new(
                Status::NotFound,
                format!("{} not found", sig.signer),
            ));
        }
        if sig.signer_version != page.version {
            return Err(RpcFail::new(
                Status::BadSignerVersion,
                format!(
                    "invalid version: have {}, got {}",
                    page.version, sig.signer_version
                ),
            ));
        }
        let Some(key) = page.keys.iter().find(|k| k.key_hash == *key_hash) else {
            return Err(RpcFail::new(
                Status::Unauthorized,
                "key does not belong to signer",
            ));
        };
        if sig.timestamp <= key.last_used_on {
            return Err(RpcFail::new(
                Status::BadTimestamp,
                format!(
                    "invalid timestamp: have {}, got {}",
                    key.last_used_on, sig.timestamp
                ),
            ));
        }
        Ok(())
    }

    /// The principal checks (§3.5): an existing data account the page's book has authority over.
    fn check_principal(&self, principal: &AccUrl) -> Result<(), RpcFail> {
        let Some(account) = self.data_accounts.get(principal) else {
            return Err(RpcFail::new(
                Status::NotFound,
                format!("{principal} not found"),
            ));
        };
        if account.authority != self.page.book {
            return Err(RpcFail::new(
                Status::Unauthorized,
                format!(
                    "{} is not authorized to sign for {principal}",
                    self.page.url
                ),
            ));
        }
        Ok(())
    }

    /// `submit` (CheckTx): per-message statuses in a result, or a JSON-RPC error (§2.1, §7).
    pub fn submit(&mut self, envelope: &Envelope) -> Result<Vec<Submission>, RpcFail> {
        let signed = SignedWriteData::from_envelope(envelope)
            .map_err(|e| RpcFail::new(Status::BadRequest, format!("verify: {e}")))?;
        let tx_hash = signed.transaction.hash();
        let tx_id = signed.transaction.id();
        let sig_id = signed.signature.id();

        let checked = match signed.check() {
            Ok(c) => c,
            Err(e) => {
                let (tx_status, sig_status) = match blame_of(&e) {
                    Blame::Transaction => (
                        status_failed(tx_id, e.status(), &e.to_string()),
                        status_ok(sig_id, None),
                    ),
                    Blame::Signature => (
                        status_ok(tx_id, None),
                        status_failed(sig_id, e.status(), &e.to_string()),
                    ),
                };
                return Ok(refused(tx_status, sig_status));
            }
        };

        // Delivered bytes again (§4.3): the transaction's recorded status; the signature is
        // refused by the replay check (its timestamp is the key's lastUsedOn now).
        if let Some(rec) = self.messages.get(&tx_hash)
            && rec.status == Some(Status::Delivered)
        {
            let mut tx_status = status_ok(tx_id, rec.result.clone());
            tx_status.code = Some(Status::Delivered);
            tx_status.code_num = Status::Delivered.number();
            tx_status.delivered = true;
            tx_status.received = rec.received;
            let sig_status = match self.check_signer(&signed.signature, &checked.key_hash) {
                Ok(()) => status_ok(sig_id, None),
                Err(f) => status_failed(sig_id, f.status, &f.message),
            };
            return Ok(refused(tx_status, sig_status));
        }
        if self.pending.iter().any(|p| p.tx_hash == tx_hash) {
            // What CometBFT says for a copy still in its mempool cache (L0 document §4.3).
            return Err(RpcFail::new(
                Status::InternalError,
                "broadcast: tx already exists in cache",
            ));
        }
        if self.pending.len() >= MAX_PENDING {
            return Err(RpcFail::new(
                Status::InternalError,
                "broadcast: mempool is full",
            ));
        }
        if self.messages.len() + 2 * (self.pending.len() + 1) > MAX_MESSAGES {
            return Err(RpcFail::new(
                Status::InternalError,
                format!(
                    "devnet-l0 keeps at most {MAX_MESSAGES} messages; start it on a fresh --data-dir"
                ),
            ));
        }

        if let Err(f) = self.check_signer(&signed.signature, &checked.key_hash) {
            return Ok(refused(
                status_ok(tx_id, None),
                status_failed(sig_id, f.status, &f.message),
            ));
        }
        if self.page.credits < 1 {
            return Ok(refused(
                status_ok(tx_id, None),
                status_failed(
                    sig_id,
                    Status::InsufficientCredits,
                    &format!(
                        "insufficient credits: have {}, want 0.01",
                        credits_text(self.page.credits)
                    ),
                ),
            ));
        }
        if let Err(f) = self.check_principal(&signed.transaction.header.principal) {
            return Ok(refused(
                status_failed(tx_id, f.status, &f.message),
                status_ok(sig_id, None),
            ));
        }

        let result = write_data_result(&signed.transaction.header.principal, checked.entry_hash);
        self.pending.push(Pending {
            tx_hash,
            transaction: signed.transaction,
            signature: signed.signature,
        });
        Ok(vec![
            Submission {
                status: status_ok(tx_id, Some(result)),
                success: true,
                message: String::new(),
            },
            Submission {
                status: status_ok(sig_id, None),
                success: true,
                message: String::new(),
            },
        ])
    }

    /// One simulated block: executes the pending submissions in order (§7 step 5, §5).
    pub fn execute_block(&mut self) -> BlockReport {
        self.height += 1;
        let height = self.height;
        let mut report = BlockReport {
            height,
            ..BlockReport::default()
        };
        for p in std::mem::take(&mut self.pending) {
            let signed = SignedWriteData {
                transaction: p.transaction,
                signature: p.signature,
            };
            let tx_id = signed.transaction.id();
            let sig_id = signed.signature.id();
            let tx_message = Message::Transaction {
                transaction: signed.transaction.clone(),
            };
            let sig_message = Message::Signature {
                signature: signed.signature.clone(),
                tx_id: Some(tx_id.clone()),
            };
            let record = |id: &TxId,
                          message: Message,
                          status: Option<Status>,
                          error: Option<String>,
                          result: Option<WriteDataResult>| Recorded {
                id: id.clone(),
                message,
                status,
                error,
                result,
                received: Some(height),
            };
            // Checked at submission; checked again because state may have moved since
            // (another envelope from the same key with a higher timestamp, a lever).
            let outcome = signed
                .check()
                .map_err(|e| RpcFail::new(e.status(), e.to_string()))
                .and_then(|c| {
                    self.check_signer(&signed.signature, &c.key_hash)?;
                    Ok(c)
                });
            let checked = match outcome {
                Ok(c) => c,
                Err(f) => {
                    self.messages.insert(
                        sig_id.hash,
                        record(&sig_id, sig_message, Some(f.status), Some(f.message), None),
                    );
                    self.messages
                        .entry(tx_id.hash)
                        .or_insert_with(|| record(&tx_id, tx_message, None, None, None));
                    report.failed += 1;
                    continue;
                }
            };
            if checked.fee_units > self.page.credits {
                let message = format!(
                    "{} has insufficient credits: have {}, want {}",
                    self.page.url,
                    credits_text(self.page.credits),
                    credits_text(checked.fee_units)
                );
                // The node charges one unit anyway (§5).
                self.page.credits = self.page.credits.saturating_sub(1);
                self.messages.insert(
                    sig_id.hash,
                    record(
                        &sig_id,
                        sig_message,
                        Some(Status::InsufficientCredits),
                        Some(message),
                        None,
                    ),
                );
                self.messages
                    .entry(tx_id.hash)
                    .or_insert_with(|| record(&tx_id, tx_message, None, None, None));
                report.failed += 1;
                continue;
            }
            let principal = signed.transaction.header.principal.clone();
            if let Err(f) = self.check_principal(&principal) {
                self.messages.insert(
                    tx_id.hash,
                    record(&tx_id, tx_message, Some(f.status), Some(f.message), None),
                );
                self.messages.insert(
                    sig_id.hash,
                    record(&sig_id, sig_message, Some(Status::Delivered), None, None),
                );
                report.failed += 1;
                continue;
            }
            self.page.credits -= checked.fee_units;
            if let Some(k) = self
                .page
                .keys
                .iter_mut()
                .find(|k| k.key_hash == checked.key_hash)
            {
                k.last_used_on = signed.signature.timestamp;
            }
            if let Some(account) = self.data_accounts.get_mut(&principal) {
                account.entries.push(EntryRef {
                    entry_hash: checked.entry_hash,
                    tx_hash: tx_id.hash,
                });
            }
            let result = write_data_result(&principal, checked.entry_hash);
            self.messages.insert(
                tx_id.hash,
                record(
                    &tx_id,
                    tx_message,
                    Some(Status::Delivered),
                    None,
                    Some(result),
                ),
            );
            self.messages.insert(
                sig_id.hash,
                record(&sig_id, sig_message, Some(Status::Delivered), None, None),
            );
            report.delivered.push(tx_id.hash);
        }
        report
    }

    fn message_record(&self, rec: &Recorded) -> MessageRecord {
        MessageRecord {
            record_type: "message".into(),
            id: rec.id.clone(),
            message: Some(rec.message.clone()),
            status: rec.status.clone(),
            status_no: rec.status.as_ref().and_then(Status::number),
            error: rec.error.as_ref().map(|m| ErrorObject {
                message: m.clone(),
                code: rec.status.clone(),
                code_id: rec.status.as_ref().and_then(Status::number),
                cause: None,
            }),
            result: rec.result.clone(),
            received: rec.received,
            produced: Some(json!({"recordType": "range", "start": 0, "total": 0})),
            cause: None,
            signatures: None,
            last_block_time: None,
        }
    }

    fn entry_record(&self, index: u64, e: &EntryRef, expand: bool) -> ChainEntryRecord {
        ChainEntryRecord {
            record_type: "chainEntry".into(),
            name: "data".into(),
            kind: "transaction".into(),
            index,
            entry: e.entry_hash,
            value: if expand {
                self.messages
                    .get(&e.tx_hash)
                    .map(|r| self.message_record(r))
            } else {
                None
            },
            last_block_time: None,
        }
    }

    fn account_record(&self, url: &AccUrl) -> Option<AccountRecord> {
        let account = if *url == self.page.url {
            Account::KeyPage {
                key_book: self.page.book.clone(),
                url: self.page.url.clone(),
                credit_balance: self.page.credits,
                accept_threshold: 1,
                version: self.page.version,
                keys: self
                    .page
                    .keys
                    .iter()
                    .map(|k| KeySpec {
                        public_key_hash: k.key_hash,
                        last_used_on: (k.last_used_on > 0).then_some(k.last_used_on),
                    })
                    .collect(),
            }
        } else {
            let d = self.data_accounts.get(url)?;
            Account::DataAccount {
                url: d.url.clone(),
                authorities: vec![AuthorityEntry {
                    url: d.authority.clone(),
                }],
            }
        };
        Some(AccountRecord {
            record_type: "account".into(),
            account,
            pending: Some(json!({"recordType": "range", "start": 0, "total": 0})),
            last_block_time: None,
        })
    }

    /// `query` (§2.2). `hidden` says whether a message's status is hidden by the fault switch.
    pub fn query(
        &self,
        request: &QueryRequest,
        hidden: impl Fn(&Hash) -> bool,
    ) -> Result<Value, RpcFail> {
        let to_value = |v: Result<Value, serde_json::Error>| {
            v.map_err(|e| RpcFail::new(Status::InternalError, format!("encoding: {e}")))
        };
        if request.scope.contains('@') {
            let id = TxId::parse(&request.scope)
                .map_err(|e| RpcFail::new(Status::BadRequest, format!("invalid scope: {e}")))?;
            if !matches!(request.query, None | Some(Query::Default { .. })) {
                return Err(RpcFail::new(
                    Status::BadRequest,
                    "only the default query applies to a message id",
                ));
            }
            return match self.messages.get(&id.hash) {
                Some(rec) if !hidden(&id.hash) => {
                    to_value(serde_json::to_value(self.message_record(rec)))
                }
                _ => Err(RpcFail::new(
                    Status::NotFound,
                    format!("message {id} not found"),
                )),
            };
        }
        let url = AccUrl::parse(&request.scope)
            .map_err(|e| RpcFail::new(Status::BadRequest, format!("invalid scope: {e}")))?;
        let not_found = || RpcFail::new(Status::NotFound, format!("{url} not found"));
        match &request.query {
            None | Some(Query::Default { .. }) => {
                let record = self.account_record(&url).ok_or_else(not_found)?;
                to_value(serde_json::to_value(record))
            }
            Some(Query::Data {
                index,
                entry,
                range,
            }) => {
                let account = match self.data_accounts.get(&url) {
                    Some(a) => a,
                    None if url == self.page.url => {
                        return Err(RpcFail::new(
                            Status::BadRequest,
                            format!("{url} is not a data account"),
                        ));
                    }
                    None => return Err(not_found()),
                };
                let given = usize::from(index.is_some())
                    + usize::from(entry.is_some())
                    + usize::from(range.is_some());
                if given > 1 {
                    return Err(RpcFail::new(
                        Status::BadRequest,
                        "give at most one of index, entry and range",
                    ));
                }
                let entries = &account.entries;
                let total = entries.len() as u64;
                if let Some(r) = range {
                    let count = r.count.unwrap_or(DEFAULT_RANGE).min(MAX_RANGE);
                    let start = r.start.unwrap_or(0);
                    let first = if r.from_end.unwrap_or(false) {
                        total.saturating_sub(start.saturating_add(count))
                    } else {
                        start
                    };
                    let last = first.saturating_add(count).min(total);
                    let expand = r.expand.unwrap_or(true);
                    let records = (first..last)
                        .filter_map(|i| {
                            let e = entries.get(usize::try_from(i).ok()?)?;
                            Some(self.entry_record(i, e, expand))
                        })
                        .collect();
                    return to_value(serde_json::to_value(RecordRange {
                        record_type: "range".into(),
                        records,
                        start: first,
                        total,
                        last_block_time: None,
                    }));
                }
                let found = if let Some(i) = index {
                    usize::try_from(*i)
                        .ok()
                        .and_then(|n| entries.get(n))
                        .map(|e| self.entry_record(*i, e, true))
                } else if let Some(h) = entry {
                    // The server reports index 0 for a lookup by hash (L0 document §2.2).
                    entries
                        .iter()
                        .find(|e| e.entry_hash == *h)
                        .map(|e| self.entry_record(0, e, true))
                } else {
                    entries
                        .last()
                        .map(|e| self.entry_record(total.saturating_sub(1), e, true))
                };
                match found {
                    Some(r) => to_value(serde_json::to_value(r)),
                    None if total == 0 && index.is_none() && entry.is_none() => Err(RpcFail::new(
                        Status::NotFound,
                        "account has no data entries",
                    )),
                    None => Err(RpcFail::new(Status::NotFound, "data entry not found")),
                }
            }
        }
    }

    /// `network-status` (§2.3): fixed values, the block height as the directory height.
    pub fn network_status(&self) -> Value {
        json!({
            "oracle": {"price": 5000},
            "globals": {
                "operatorAcceptThreshold": {"numerator": 2, "denominator": 3},
                "validatorAcceptThreshold": {"numerator": 2, "denominator": 3},
                "majorBlockSchedule": "0 */12 * * *",
                "limits": {"dataEntryParts": 100, "accountAuthorities": 20, "bookPages": 20,
                           "pageEntries": 100, "identityAccounts": 100}
            },
            "network": {
                "networkName": "DevNet",
                "version": 1,
                "partitions": [
                    {"id": "Directory", "type": "directory"},
                    {"id": "BVN0", "type": "blockValidator"}
                ]
            },
            "executorVersion": "v2-vandenberg",
            "directoryHeight": self.height,
            "majorBlockHeight": 0
        })
    }
}

/// A refused envelope: both statuses, `success` omitted, the failing message's text on both
/// (§2.1's shape).
fn refused(tx: TransactionStatus, sig: TransactionStatus) -> Vec<Submission> {
    let failing = [&tx, &sig]
        .into_iter()
        .enumerate()
        .find(|(_, s)| s.code.as_ref().is_some_and(|c| !c.is_success()));
    let message = failing
        .map(|(i, s)| {
            let code = s.code.as_ref().map(Status::name).unwrap_or("unknown");
            let text = s.error.as_ref().map(|e| e.message.as_str()).unwrap_or("");
            format!("envelope({i}/{code}) {text};")
        })
        .unwrap_or_default();
    [tx, sig]
        .into_iter()
        .map(|status| Submission {
            status,
            success: false,
            message: message.clone(),
        })
        .collect()
}
