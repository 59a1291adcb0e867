//! The stager's logic, actix-free: turn committed, unstaged heights into signed `WriteData`
//! envelopes stored in the outbox, and re-sign batches whose bytes finally failed.
//!
//! Invariants:
//! - Write-ahead: a batch is signed and stored (`Storage::stage_batch`) before anything can send
//!   it; the submitter only ever sends stored bytes. The stored envelope bytes are the JSON of
//!   `SignedWriteData::envelope` ([`encode_envelope`]), the exact `envelope` member `submit`
//!   carries.
//! - Batches: the next batch always starts at `staged + 1` and holds at most `batch_size`
//!   heights. A batch is cut when `batch_size` heights are unstaged, or when the oldest unstaged
//!   block is `flush_interval` old by its own header timestamp (so a restart does not reset the
//!   wait), or when the caller forces it (the graceful stop). Storage refuses any other batch.
//! - Timestamps come from the persisted counter (`next_signature_timestamp(now_ms)`): strictly
//!   increasing across restarts, never reused by a re-signed batch.
//! - This is the only place a batch is re-signed, and only a `Failed` row (these bytes will never
//!   land) is: `replace_failed` swaps it for new bytes with a new timestamp in one transaction.
//! - The key page version is learnt from the L0 (`query_account`) and cached; every re-sign
//!   refreshes it first, since a `badSignerVersion` (or any final failure) may mean the page
//!   changed. Without a known version nothing is signed: staging waits for the L0.
//! - Bounded work per call: at most [`MAX_BATCHES_PER_RUN`] batches, so one call after a long
//!   outage does not hold the storage or the actor for the whole backlog.

use std::sync::Arc;
use std::time::Duration;

use super::anchor::{Anchor, AnchorError};
use super::codec::{CheckError, L0Key, SignedWriteData, WriteDataRequest, sign_write_data};
use super::encoding::AccUrl;
use super::json::{Account, Envelope};
use super::l0::{L0Api, L0Error};
use crate::storage::{OutboxState, SignedBatch, Storage, StorageError};

/// Batches one [`Stager::run`] stages at most (the caller runs again when more is due).
pub const MAX_BATCHES_PER_RUN: usize = 64;

/// What the stager signs for and how it cuts batches.
#[derive(Debug, Clone)]
pub struct StagerConfig {
    pub chain_id: String,
    /// The data account anchors are written to.
    pub data_account: AccUrl,
    /// The key page that signs.
    pub key_page: AccUrl,
    /// Heights per batch (at least 1).
    pub batch_size: u64,
    /// Longest the oldest unstaged block waits for its batch to fill.
    pub flush_interval: Duration,
}

/// A staging step that did not complete. Nothing half-written: every storage write is one
/// transaction.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("bridge stager storage error: {0}")]
    Storage(#[from] StorageError),
    #[error("bridge stager could not read the key page from the L0: {0}")]
    L0(#[from] L0Error),
    #[error("bridge key page {0} does not exist on the L0")]
    NoKeyPage(AccUrl),
    #[error("bridge key page {0} is not a key page on the L0")]
    NotAKeyPage(AccUrl),
    #[error("committed block {0} is missing from storage")]
    MissingBlock(u64),
    #[error("bridge anchor could not be built: {0}")]
    Anchor(#[from] AnchorError),
    #[error("bridge envelope could not be signed: {0}")]
    Sign(#[from] CheckError),
}

/// What a run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageReport {
    /// New batches stored.
    pub staged: usize,
    /// Failed batches re-signed.
    pub resigned: usize,
    /// When more becomes due without a new block (the flush deadline of a partial batch), in
    /// milliseconds from the run's `now_ms`; `None` when nothing waits.
    pub next_due_in: Option<Duration>,
}

/// The envelope bytes stored in the outbox and sent as-is.
pub fn encode_envelope(envelope: &Envelope) -> Vec<u8> {
    // Serializing these plain structs cannot fail (no maps with non-string keys, no custom
    // errors); an empty vector would be refused by the submitter's decode, never sent.
    serde_json::to_vec(envelope).unwrap_or_default()
}

/// The stored bytes back as the envelope to submit.
pub fn decode_envelope(bytes: &[u8]) -> Result<Envelope, serde_json::Error> {
    serde_json::from_slice(bytes)
}

/// The stager's state between runs: its configuration, key and the cached key page version.
#[derive(Debug)]
pub struct Stager {
    cfg: StagerConfig,
    key: Arc<L0Key>,
    storage: Arc<Storage>,
    signer_version: Option<u64>,
}

impl Stager {
    pub fn new(cfg: StagerConfig, key: Arc<L0Key>, storage: Arc<Storage>) -> Self {
        Self {
            cfg,
            key,
            storage,
            signer_version: None,
        }
    }

    /// The cached key page version (`None` until learnt from the L0).
    pub fn signer_version(&self) -> Option<u64> {
        self.signer_version
    }

    /// Forgets the cached key page version: the next signature queries it again.
    pub fn forget_signer_version(&mut self) {
        self.signer_version = None;
    }

    /// Re-signs every `Failed` row, then stages every batch that is due (all unstaged heights
    /// when `force`), up to [`MAX_BATCHES_PER_RUN`]. `now_ms` is the wall clock (Unix ms): the
    /// flush deadline and the signature timestamp counter both use it.
    pub async fn run<L: L0Api>(
        &mut self,
        l0: &L,
        now_ms: u64,
        force: bool,
    ) -> Result<StageReport, StageError> {
        let mut report = StageReport::default();
        let failed: Vec<_> = self
            .storage
            .outbox_pending()?
            .into_iter()
            .filter(|r| r.state == OutboxState::Failed)
            .collect();
        if !failed.is_empty() {
            // A final failure may be a changed key page (badSignerVersion): ask again.
            self.signer_version = None;
        }
        for row in failed {
            let batch = self.sign(l0, row.first, row.last, now_ms).await?;
            self.storage.replace_failed(&batch)?;
            report.resigned += 1;
        }
        while report.staged < MAX_BATCHES_PER_RUN {
            let Some(range) = self.storage.bridge_unstaged()? else {
                break;
            };
            let (first, head) = (*range.start(), *range.end());
            let count = head - first + 1;
            let oldest = self.header_time(first)?;
            let deadline = oldest.saturating_add(millis(self.cfg.flush_interval));
            if !force && count < self.cfg.batch_size && now_ms < deadline {
                report.next_due_in = Some(Duration::from_millis(deadline - now_ms));
                break;
            }
            let last = head.min(first + self.cfg.batch_size - 1);
            let batch = self.sign(l0, first, last, now_ms).await?;
            self.storage.stage_batch(&batch)?;
            report.staged += 1;
        }
        Ok(report)
    }

    /// The header timestamp of committed block `h`.
    fn header_time(&self, h: u64) -> Result<u64, StageError> {
        Ok(self
            .storage
            .block_by_height(h)?
            .ok_or(StageError::MissingBlock(h))?
            .header
            .timestamp_ms)
    }

    /// Builds and signs the anchor of `first..=last` with the next timestamp.
    async fn sign<L: L0Api>(
        &mut self,
        l0: &L,
        first: u64,
        last: u64,
        now_ms: u64,
    ) -> Result<SignedBatch, StageError> {
        let version = self.version(l0).await?;
        let mut headers = Vec::with_capacity((last - first + 1) as usize);
        for h in first..=last {
            headers.push(
                self.storage
                    .block_by_height(h)?
                    .ok_or(StageError::MissingBlock(h))?
                    .header,
            );
        }
        let anchor = Anchor::from_headers(&self.cfg.chain_id, &headers)?;
        let timestamp = self.storage.next_signature_timestamp(now_ms)?;
        let signed: SignedWriteData = sign_write_data(
            &self.key,
            &WriteDataRequest {
                principal: self.cfg.data_account.clone(),
                signer: self.cfg.key_page.clone(),
                signer_version: version,
                timestamp,
                memo: String::new(),
                metadata: Vec::new(),
                parts: anchor.parts(),
            },
        )?;
        Ok(SignedBatch {
            first,
            last,
            envelope: encode_envelope(&signed.envelope()),
            tx_hash: signed.transaction.hash(),
            signature_timestamp: timestamp,
        })
    }

    /// The key page version, from the cache or the L0.
    async fn version<L: L0Api>(&mut self, l0: &L) -> Result<u64, StageError> {
        if let Some(v) = self.signer_version {
            return Ok(v);
        }
        let page = &self.cfg.key_page;
        let record = l0
            .query_account(page)
            .await?
            .ok_or_else(|| StageError::NoKeyPage(page.clone()))?;
        match record.account {
            Account::KeyPage { version, .. } => {
                self.signer_version = Some(version);
                Ok(version)
            }
            _ => Err(StageError::NotAKeyPage(page.clone())),
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
