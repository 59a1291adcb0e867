//! An in-memory L0 for the stager and submitter tests (test builds and the `test-hooks`
//! feature only). It keeps what a node keeps for the bridge: the key page (version, the key's
//! `lastUsedOn`, credits), a mempool of accepted envelopes, executed transactions and the data
//! account's entries, and it applies the node's rules that matter here: CheckTx verifies the
//! envelope, the signer version and the timestamp; execution refuses a timestamp not above
//! `lastUsedOn` (on the signature's record, leaving the transaction without a status), so the
//! §3.6 invalidation is reproduced.
//!
//! Fault switches: unreachable ([`FakeL0::set_down`]), answering only after a delay then timing
//! out like a client would ([`FakeL0::set_hang`]), fail the next submits with a status
//! ([`FakeL0::fail_next_submits`]), hide statuses ([`FakeL0::set_hidden`]), execute only when
//! told ([`FakeL0::set_auto_execute`]), and insufficient credits at execution.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::codec::{
    DoubleHashEntry, SignedWriteData, Transaction, TransactionHeader, WriteData, WriteDataRequest,
};
use super::encoding::{AccUrl, TxId};
use super::json::{
    Account, AccountRecord, ChainEntryRecord, Envelope, ErrorObject, Message, MessageRecord,
    NetworkStatus, RecordRange, Status, Submission, TransactionStatus,
};
use super::l0::{L0Api, L0Error};
use crate::types::Hash;

/// One data entry written by an executed transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub tx_hash: Hash,
    pub parts: Vec<Vec<u8>>,
}

#[derive(Default)]
struct State {
    key_page: Option<AccUrl>,
    version: u64,
    last_used_on: u64,
    down: bool,
    hang: Option<Duration>,
    hidden: bool,
    auto_execute: bool,
    no_credits_at_execution: bool,
    fail_submits: VecDeque<Status>,
    mempool: Vec<SignedWriteData>,
    /// Message id hash → (status, error message) of executed messages.
    records: HashMap<Hash, (Option<Status>, String)>,
    entries: Vec<Entry>,
    submits: u64,
    submitted_tx: Vec<Hash>,
}

/// A cheaply clonable handle, shareable across threads: the test keeps one to flip switches and
/// read state, the code under test (or each actor incarnation) holds another.
#[derive(Clone, Default)]
pub struct FakeL0(Arc<Mutex<State>>);

impl std::fmt::Debug for FakeL0 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.lock();
        f.debug_struct("FakeL0")
            .field("entries", &s.entries.len())
            .field("mempool", &s.mempool.len())
            .field("submits", &s.submits)
            .finish()
    }
}

impl FakeL0 {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Test code: a poisoned lock still holds consistent state for the assertions.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An L0 with the key page `key_page` at `version`, executing every accepted envelope at
    /// once.
    pub fn new(key_page: AccUrl, version: u64) -> Self {
        let l0 = FakeL0::default();
        {
            let mut s = l0.lock();
            s.key_page = Some(key_page);
            s.version = version;
            s.auto_execute = true;
        }
        l0
    }

    pub fn set_down(&self, down: bool) {
        self.lock().down = down;
    }
    /// Every call waits `d` and then fails as a client timeout does (`None`: answer at once).
    pub fn set_hang(&self, d: Option<Duration>) {
        self.lock().hang = d;
    }
    /// Queries answer "not found" for everything.
    pub fn set_hidden(&self, hidden: bool) {
        self.lock().hidden = hidden;
    }
    pub fn set_auto_execute(&self, on: bool) {
        self.lock().auto_execute = on;
    }
    pub fn set_no_credits_at_execution(&self, on: bool) {
        self.lock().no_credits_at_execution = on;
    }
    /// The next submits are refused at CheckTx with these statuses, in order.
    pub fn fail_next_submits(&self, statuses: impl IntoIterator<Item = Status>) {
        self.lock().fail_submits.extend(statuses);
    }
    /// Changes the key page version (a key page update).
    pub fn set_version(&self, v: u64) {
        self.lock().version = v;
    }
    /// The data entries written, in order.
    pub fn entries(&self) -> Vec<Entry> {
        self.lock().entries.clone()
    }
    /// Appends a data entry as if a transaction had written it (tests of readers).
    pub fn write_entry(&self, parts: Vec<Vec<u8>>) {
        self.lock().entries.push(Entry {
            tx_hash: Hash::default(),
            parts,
        });
    }
    /// `submit` calls that reached the L0.
    pub fn submits(&self) -> u64 {
        self.lock().submits
    }
    /// The transaction hash of every envelope accepted at CheckTx, in order (resends repeat).
    pub fn submitted(&self) -> Vec<Hash> {
        self.lock().submitted_tx.clone()
    }
    /// Accepted envelopes not executed yet.
    pub fn mempool_len(&self) -> usize {
        self.lock().mempool.len()
    }

    /// Executes the mempool in arrival order (`reverse`: newest first, the §3.6 hazard).
    pub fn execute(&self, reverse: bool) {
        let mut s = self.lock();
        let mut pool = std::mem::take(&mut s.mempool);
        if reverse {
            pool.reverse();
        }
        for signed in pool {
            Self::execute_one(&mut s, signed);
        }
    }

    fn execute_one(s: &mut State, signed: SignedWriteData) {
        let tx = signed.transaction.hash();
        let sig = signed.signature.message_hash();
        if s.records.contains_key(&tx) {
            return;
        }
        let ts = signed.signature.timestamp;
        let refusal = if ts <= s.last_used_on {
            Some((
                Status::BadTimestamp,
                format!("invalid timestamp: have {}, got {ts}", s.last_used_on),
            ))
        } else if s.no_credits_at_execution {
            Some((
                Status::InsufficientCredits,
                "insufficient credits: have 0.05, want 0.10".to_string(),
            ))
        } else {
            None
        };
        match refusal {
            Some((status, msg)) => {
                // The signature failed; the transaction stays without a final status.
                s.records.insert(sig, (Some(status), msg));
                s.records.insert(tx, (None, String::new()));
            }
            None => {
                s.last_used_on = ts;
                s.records
                    .insert(sig, (Some(Status::Delivered), String::new()));
                s.records
                    .insert(tx, (Some(Status::Delivered), String::new()));
                s.entries.push(Entry {
                    tx_hash: tx,
                    parts: signed
                        .transaction
                        .body
                        .entry
                        .data
                        .iter()
                        .map(|b| b.0.clone())
                        .collect(),
                });
            }
        }
    }

    async fn gate(&self) -> Result<(), L0Error> {
        let (down, hang) = {
            let s = self.lock();
            (s.down, s.hang)
        };
        if let Some(d) = hang {
            tokio::time::sleep(d).await;
            return Err(L0Error::transport("request timed out"));
        }
        if down {
            return Err(L0Error::transport("connection refused"));
        }
        Ok(())
    }
}

/// A request for tests that sign by hand.
pub fn request(principal: &AccUrl, signer: &AccUrl, version: u64, ts: u64) -> WriteDataRequest {
    WriteDataRequest {
        principal: principal.clone(),
        signer: signer.clone(),
        signer_version: version,
        timestamp: ts,
        memo: String::new(),
        metadata: Vec::new(),
        parts: vec![b"x".to_vec()],
    }
}

fn message(id: &TxId, status: Option<Status>, msg: String) -> MessageRecord {
    MessageRecord {
        record_type: "message".into(),
        id: id.clone(),
        message: None,
        error: (!msg.is_empty()).then(|| ErrorObject {
            message: msg,
            code: status.clone(),
            code_id: status.as_ref().and_then(Status::number),
            cause: None,
        }),
        status_no: status.as_ref().and_then(Status::number),
        status,
        result: None,
        received: None,
        produced: None,
        cause: None,
        signatures: None,
        last_block_time: None,
    }
}

impl L0Api for FakeL0 {
    async fn submit(&self, envelope: &Envelope) -> Result<Vec<Submission>, L0Error> {
        self.gate().await?;
        let mut s = self.lock();
        s.submits += 1;
        if let Some(status) = s.fail_submits.pop_front() {
            return Err(L0Error::from_status(status, "injected failure"));
        }
        let signed = SignedWriteData::from_envelope(envelope)
            .map_err(|e| L0Error::from_status(e.status(), e.to_string()))?;
        signed
            .check()
            .map_err(|e| L0Error::from_status(e.status(), e.to_string()))?;
        let tx = signed.transaction.hash();
        if matches!(s.records.get(&tx), Some((Some(Status::Delivered), _)))
            || s.mempool.iter().any(|m| m.transaction.hash() == tx)
        {
            return Err(L0Error::already_known("transaction already known"));
        }
        if signed.signature.signer_version != s.version {
            return Err(L0Error::from_status(
                Status::BadSignerVersion,
                format!(
                    "invalid version: have {}, got {}",
                    s.version, signed.signature.signer_version
                ),
            ));
        }
        if signed.signature.timestamp <= s.last_used_on {
            return Err(L0Error::from_status(
                Status::BadTimestamp,
                format!(
                    "invalid timestamp: have {}, got {}",
                    s.last_used_on, signed.signature.timestamp
                ),
            ));
        }
        s.submitted_tx.push(tx);
        let statuses = vec![
            Submission {
                status: TransactionStatus {
                    tx_id: signed.transaction.id(),
                    code: Some(Status::Ok),
                    delivered: false,
                    pending: false,
                    remote: false,
                    failed: false,
                    code_num: Some(200),
                    error: None,
                    result: None,
                    received: None,
                },
                success: true,
                message: String::new(),
            };
            2
        ];
        if s.auto_execute {
            Self::execute_one(&mut s, signed);
        } else {
            s.mempool.push(signed);
        }
        Ok(statuses)
    }

    async fn query_message(&self, id: &TxId) -> Result<Option<MessageRecord>, L0Error> {
        self.gate().await?;
        let s = self.lock();
        if s.hidden {
            return Ok(None);
        }
        if let Some((status, msg)) = s.records.get(&id.hash) {
            return Ok(Some(message(id, status.clone(), msg.clone())));
        }
        let in_pool = s
            .mempool
            .iter()
            .any(|m| m.transaction.hash() == id.hash || m.signature.message_hash() == id.hash);
        Ok(in_pool.then(|| message(id, None, String::new())))
    }

    async fn query_account(&self, url: &AccUrl) -> Result<Option<AccountRecord>, L0Error> {
        self.gate().await?;
        let s = self.lock();
        if s.key_page.as_ref() != Some(url) {
            return Ok(None);
        }
        Ok(Some(AccountRecord {
            record_type: "account".into(),
            account: Account::KeyPage {
                key_book: url.clone(),
                url: url.clone(),
                credit_balance: 1_000_000,
                accept_threshold: 1,
                version: s.version,
                keys: Vec::new(),
            },
            pending: None,
            last_block_time: None,
        }))
    }

    async fn query_data_range(
        &self,
        account: &AccUrl,
        start: u64,
        count: u64,
    ) -> Result<RecordRange<ChainEntryRecord>, L0Error> {
        self.gate().await?;
        let s = self.lock();
        let total = s.entries.len() as u64;
        let records = s
            .entries
            .iter()
            .enumerate()
            .skip(start as usize)
            .take(count.min(100) as usize)
            .map(|(i, e)| {
                // The transaction is rebuilt from the entry's parts: all a data query reader
                // looks at.
                let transaction = Transaction {
                    header: TransactionHeader {
                        principal: account.clone(),
                        initiator: Hash::default(),
                        memo: String::new(),
                        metadata: Default::default(),
                    },
                    body: WriteData {
                        entry: DoubleHashEntry::new(e.parts.clone()),
                        ..WriteData::default()
                    },
                };
                ChainEntryRecord {
                    record_type: "chainEntry".into(),
                    name: "data".into(),
                    kind: "transaction".into(),
                    index: i as u64,
                    entry: transaction.body.entry.hash(),
                    value: Some(MessageRecord {
                        record_type: "message".into(),
                        id: transaction.id(),
                        message: Some(Message::Transaction { transaction }),
                        status: Some(Status::Delivered),
                        status_no: None,
                        error: None,
                        result: None,
                        received: None,
                        produced: None,
                        cause: None,
                        signatures: None,
                        last_block_time: None,
                    }),
                    last_block_time: None,
                }
            })
            .collect();
        Ok(RecordRange {
            record_type: "range".into(),
            records,
            start,
            total,
            last_block_time: None,
        })
    }

    async fn query_data_entry(
        &self,
        _account: &AccUrl,
        _entry_hash: &Hash,
    ) -> Result<Option<ChainEntryRecord>, L0Error> {
        Err(L0Error::transport("not supported by the fake L0"))
    }

    async fn network_status(&self) -> Result<NetworkStatus, L0Error> {
        Err(L0Error::transport("not supported by the fake L0"))
    }
}
