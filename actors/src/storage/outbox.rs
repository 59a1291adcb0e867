//! The bridge's durable state: which heights are anchored on the L0, the outbox of signed
//! envelopes, and the signature timestamp counter. Plain bytes, hashes and heights only: the
//! Accumulate codec (building, signing, hashing envelopes) lives elsewhere and hands this module
//! opaque envelope bytes and the 32-byte L0 transaction hash.
//!
//! # Two watermarks instead of a "to anchor" list
//!
//! Every committed height `h >= 1` is in exactly one of three ranges, ordered by height:
//!
//! ```text
//!   1 ..= anchored      anchored: delivered on the L0, its outbox rows are gone
//!   anchored+1 ..= staged   staged: covered by outbox rows (staged, submitted, failed, or
//!                           delivered but waiting for a batch below it)
//!   staged+1 ..= head       to stage: committed, nothing built for it yet
//! ```
//!
//! `anchored` and `staged` are two integers in the `bridge` table (`BRIDGE_ANCHORED`,
//! `BRIDGE_STAGED`); `head` is the committed head. So "to anchor" needs no row of its own: the
//! block commit that moves the head IS the record that a height must be anchored, written in the
//! same redb transaction as the block by construction. Why this design:
//! - No gap, no overlap: a batch is staged only at `staged + 1` (and at most up to the head), in
//!   the same write transaction that moves `staged` to its last height, so two rows never cover
//!   one height and no height is skipped. `anchored` only moves across a contiguous run of
//!   delivered rows starting at `anchored + 1`, removing them in the same transaction.
//! - Crash safety: each step is one write transaction; a crash between any two leaves the
//!   ranges consistent, and the unanchored range `(anchored, head]` is recomputed from them.
//! - `commit_block` and the block producer know nothing of the bridge: they move the head, which
//!   they do anyway. A block committed by a node with the bridge disabled, or by an older binary,
//!   is simply unanchored until a bridge stages it.
//! - Nothing grows while the bridge is disabled: no row is written per block, only the head
//!   moves. Enabling the bridge later anchors every height from 1 (`staged + 1`) on; the outbox
//!   holds rows only for staged, not yet anchored batches.
//!
//! # Outbox rows
//!
//! One row per batch, keyed by its first height (batches never overlap), holding the signed
//! envelope bytes, the L0 transaction hash and the signature timestamp, written BEFORE anything
//! is sent (write-ahead). Row states and the only transitions allowed:
//!
//! ```text
//!   Staged --submitted--> Submitted --submitted--> Submitted   (a resend of the same bytes)
//!   Staged|Submitted --delivered--> Delivered   (then removed once every batch below it is)
//!   Staged|Submitted --failed--> Failed --replace_failed--> Staged (new bytes, new timestamp)
//! ```
//!
//! Only the stored bytes are ever resent; a batch is re-signed only after a final failure, by
//! replacing its `Failed` row with one for the same heights (`replace_failed`).
//!
//! # Signature timestamps
//!
//! The L0 accepts a signature only if its timestamp is strictly above the key's last one, and a
//! re-signed envelope must never reuse a timestamp. `next_signature_timestamp(now)` proposes
//! `max(now, last + 1)`; the row that uses it persists it as the new last in the same
//! transaction, and a row whose timestamp is not above the stored last is refused. So a restart
//! never reuses a timestamp or goes back, even if the clock does. The unit is the caller's
//! (Accumulate uses Unix milliseconds); it must not change on a data dir already used.
//!
//! Every write here is one redb write transaction: all of it or nothing (tested with the same
//! fail-point and full-disk backends as `commit_block`). Counters for `bridge_stats` are kept in
//! the `bridge` table in those transactions, so stats cost a few point reads.

use std::ops::RangeInclusive;

use redb::{ReadableTable, ReadableTableMetadata, Table};
use serde::{Deserialize, Serialize};

use super::tables::{
    BRIDGE, BRIDGE_ANCHORED, BRIDGE_DELIVERED_TOTAL, BRIDGE_FAILED_TOTAL, BRIDGE_IN_FLIGHT,
    BRIDGE_LAST_TIMESTAMP, BRIDGE_STAGED, META, OUTBOX,
};
use super::{Ctx, Storage, StorageError, decode, read_head};
use crate::types::{Bytes, Hash, encode};

/// Where an outbox row is in its life (see the module docs for the transitions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutboxState {
    /// Signed and stored; not sent yet (or not known to have been sent).
    Staged,
    /// Sent to the L0 at least once; delivery not confirmed yet.
    Submitted,
    /// Confirmed delivered on the L0; kept only until every batch below it is delivered too.
    Delivered,
    /// Finally failed on the L0 (these bytes will never land): to be re-signed.
    Failed,
}

impl std::fmt::Display for OutboxState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Staged => "staged",
            Self::Submitted => "submitted",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        })
    }
}

/// A batch as signed by the stager, before it is stored: heights `first..=last`, the envelope
/// bytes exactly as they will be sent, the L0 transaction hash, and the signature timestamp the
/// envelope was signed with (from `next_signature_timestamp`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedBatch {
    pub first: u64,
    pub last: u64,
    pub envelope: Vec<u8>,
    pub tx_hash: Hash,
    pub signature_timestamp: u64,
}

/// One stored outbox row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxRow {
    /// First height of the batch (also the row's key).
    pub first: u64,
    /// Last height of the batch.
    pub last: u64,
    /// The signed envelope bytes; opaque here, resent as-is.
    pub envelope: Bytes,
    /// The L0 transaction hash of `envelope`: what delivery is checked by.
    pub tx_hash: Hash,
    /// The timestamp `envelope` was signed with.
    pub signature_timestamp: u64,
    pub state: OutboxState,
    /// Times these bytes were marked submitted.
    pub attempts: u32,
    /// Times this batch was re-signed after a final failure (0 for the first signature).
    pub resigns: u32,
    /// Why the row failed (state `Failed`).
    pub last_error: Option<String>,
}

impl OutboxRow {
    /// The heights this row covers.
    pub fn heights(&self) -> RangeInclusive<u64> {
        self.first..=self.last
    }
}

/// The bridge's numbers, read in one read transaction (a few point reads).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct BridgeStats {
    /// The committed head.
    pub head_height: u64,
    /// Every height up to this is anchored (0: none).
    pub last_anchored_height: u64,
    /// Every height up to this is staged or anchored (0: none).
    pub last_staged_height: u64,
    /// Committed heights not anchored yet: `head - last_anchored`.
    pub backlog_blocks: u64,
    /// Committed heights not staged yet: `head - last_staged`.
    pub unstaged_blocks: u64,
    /// Rows in the outbox (`outbox_len`).
    pub outbox_rows: u64,
    /// Rows submitted and not yet confirmed delivered or failed.
    pub in_flight: u64,
    /// Batches delivered, ever.
    pub delivered_total: u64,
    /// Batches finally failed, ever (each re-signed batch counts again if it fails again).
    pub failed_total: u64,
    /// The largest signature timestamp stored (0: none yet).
    pub last_signature_timestamp: u64,
}

/// A bridge write refused because it would break an outbox invariant. Logical errors: the store
/// is unchanged and goes on working.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboxError {
    #[error("batch {first}..={last} is empty or starts at genesis (batches cover heights >= 1)")]
    BadRange { first: u64, last: u64 },
    #[error(
        "batch starting at {got} is not the next one: heights up to {staged} are staged, the \
         next batch must start at {}", .staged + 1
    )]
    NotNextBatch { staged: u64, got: u64 },
    #[error("batch ends at {last}, above the committed head {head}")]
    BeyondHead { last: u64, head: u64 },
    #[error(
        "signature timestamp {got} is not above the last one stored ({last}); take it from \
         next_signature_timestamp"
    )]
    StaleTimestamp { last: u64, got: u64 },
    #[error("no outbox row for a batch starting at height {0}")]
    NoSuchBatch(u64),
    #[error("the outbox row at {first} covers {first}..={stored_last}, not {first}..={got_last}")]
    HeightsMismatch {
        first: u64,
        stored_last: u64,
        got_last: u64,
    },
    #[error("outbox row at {first} is {from}; it cannot become {to}")]
    Transition {
        first: u64,
        from: OutboxState,
        to: OutboxState,
    },
}

impl From<OutboxError> for StorageError {
    fn from(e: OutboxError) -> Self {
        StorageError::Outbox(e)
    }
}

type BridgeTable<'t> = Table<'t, &'static str, u64>;
type OutboxTable<'t> = Table<'t, u64, &'static [u8]>;

fn get(t: &impl ReadableTable<&'static str, u64>, key: &str) -> Result<u64, StorageError> {
    Ok(t.get(key).ctx("reading bridge")?.map_or(0, |g| g.value()))
}

fn put(t: &mut BridgeTable<'_>, key: &str, value: u64) -> Result<(), StorageError> {
    t.insert(key, value).ctx("writing bridge").map(drop)
}

fn add(t: &mut BridgeTable<'_>, key: &'static str, delta: i64) -> Result<(), StorageError> {
    let now = get(t, key)?;
    let next = now
        .checked_add_signed(delta)
        .ok_or_else(|| StorageError::Corrupt(format!("bridge counter {key} = {now} {delta:+}")))?;
    put(t, key, next)
}

fn read_row(
    t: &impl ReadableTable<u64, &'static [u8]>,
    first: u64,
) -> Result<Option<OutboxRow>, StorageError> {
    match t.get(first).ctx("reading outbox")? {
        Some(g) => Ok(Some(decode_row(first, g.value())?)),
        None => Ok(None),
    }
}

fn decode_row(key: u64, bytes: &[u8]) -> Result<OutboxRow, StorageError> {
    let row: OutboxRow = decode("outbox", key, bytes)?;
    if row.first != key || row.last < row.first {
        return Err(StorageError::Corrupt(format!(
            "outbox row under key {key} covers {}..={}",
            row.first, row.last
        )));
    }
    Ok(row)
}

fn write_row(t: &mut OutboxTable<'_>, row: &OutboxRow) -> Result<(), StorageError> {
    t.insert(row.first, encode(row).as_slice())
        .ctx("writing outbox")
        .map(drop)
}

/// Checks a batch's signature timestamp against the stored last one and stores it as the new
/// last: the counter moves in the transaction of the row that uses it.
fn take_timestamp(bridge: &mut BridgeTable<'_>, got: u64) -> Result<(), StorageError> {
    let last = get(bridge, BRIDGE_LAST_TIMESTAMP)?;
    if got <= last {
        return Err(OutboxError::StaleTimestamp { last, got }.into());
    }
    put(bridge, BRIDGE_LAST_TIMESTAMP, got)
}

impl Storage {
    /// The bridge's watermarks and counters (see `BridgeStats`).
    pub fn bridge_stats(&self) -> Result<BridgeStats, StorageError> {
        let rtx = self.begin_read()?;
        let head = read_head(&rtx.open_table(META).ctx("opening meta")?)?.height;
        let b = rtx.open_table(BRIDGE).ctx("opening bridge")?;
        let anchored = get(&b, BRIDGE_ANCHORED)?;
        let staged = get(&b, BRIDGE_STAGED)?;
        let outbox_rows = rtx
            .open_table(OUTBOX)
            .ctx("opening outbox")?
            .len()
            .ctx("reading outbox")?;
        Ok(BridgeStats {
            head_height: head,
            last_anchored_height: anchored,
            last_staged_height: staged,
            backlog_blocks: head.saturating_sub(anchored),
            unstaged_blocks: head.saturating_sub(staged),
            outbox_rows,
            in_flight: get(&b, BRIDGE_IN_FLIGHT)?,
            delivered_total: get(&b, BRIDGE_DELIVERED_TOTAL)?,
            failed_total: get(&b, BRIDGE_FAILED_TOTAL)?,
            last_signature_timestamp: get(&b, BRIDGE_LAST_TIMESTAMP)?,
        })
    }

    /// The committed heights no batch covers yet, `staged + 1 ..= head`; `None` when every
    /// committed height is staged or anchored. The stager builds its next batch from the start
    /// of this range.
    pub fn bridge_unstaged(&self) -> Result<Option<RangeInclusive<u64>>, StorageError> {
        let s = self.bridge_stats()?;
        Ok(
            (s.last_staged_height < s.head_height)
                .then(|| s.last_staged_height + 1..=s.head_height),
        )
    }

    /// The signature timestamp to sign the next envelope with: `max(now, last + 1)`, where `last`
    /// is the largest one ever stored with an outbox row. Reads only: the value becomes the new
    /// `last` when the row signed with it is stored (`stage_batch`, `replace_failed`).
    pub fn next_signature_timestamp(&self, now: u64) -> Result<u64, StorageError> {
        let rtx = self.begin_read()?;
        let last = get(
            &rtx.open_table(BRIDGE).ctx("opening bridge")?,
            BRIDGE_LAST_TIMESTAMP,
        )?;
        let next = last.checked_add(1).ok_or(OutboxError::StaleTimestamp {
            last,
            got: u64::MAX,
        })?;
        Ok(now.max(next))
    }

    /// Stores a newly signed batch as a `Staged` row and moves "staged up to" to its last height,
    /// with its signature timestamp as the new last one, in one transaction. Refused (nothing
    /// written) unless `first` is `staged + 1`, `1 <= first <= last <= head`, and the timestamp is
    /// above the last one stored.
    pub fn stage_batch(&self, batch: &SignedBatch) -> Result<OutboxRow, StorageError> {
        self.write_all("committing outbox stage", |txn| {
            let head = read_head(&txn.open_table(META).ctx("opening meta")?)?.height;
            let mut bridge = txn.open_table(BRIDGE).ctx("opening bridge")?;
            let mut outbox = txn.open_table(OUTBOX).ctx("opening outbox")?;
            let (first, last) = (batch.first, batch.last);
            if first == 0 || last < first {
                return Err(OutboxError::BadRange { first, last }.into());
            }
            let staged = get(&bridge, BRIDGE_STAGED)?;
            if Some(first) != staged.checked_add(1) {
                return Err(OutboxError::NotNextBatch { staged, got: first }.into());
            }
            if last > head {
                return Err(OutboxError::BeyondHead { last, head }.into());
            }
            take_timestamp(&mut bridge, batch.signature_timestamp)?;
            let row = OutboxRow {
                first,
                last,
                envelope: Bytes(batch.envelope.clone()),
                tx_hash: batch.tx_hash,
                signature_timestamp: batch.signature_timestamp,
                state: OutboxState::Staged,
                attempts: 0,
                resigns: 0,
                last_error: None,
            };
            // `staged + 1` is above every stored row, so this key is new; a row there means the
            // watermark and the table disagree.
            if outbox.get(first).ctx("reading outbox")?.is_some() {
                return Err(StorageError::Corrupt(format!(
                    "outbox already holds a row at {first}, above staged_up_to {staged}"
                )));
            }
            write_row(&mut outbox, &row)?;
            put(&mut bridge, BRIDGE_STAGED, last)?;
            Ok(row)
        })
    }

    /// One outbox row by the first height of its batch.
    pub fn outbox_row(&self, first: u64) -> Result<Option<OutboxRow>, StorageError> {
        let rtx = self.begin_read()?;
        read_row(&rtx.open_table(OUTBOX).ctx("opening outbox")?, first)
    }

    /// Every outbox row, in height order (delivered rows still waiting for a batch below them
    /// included).
    pub fn outbox_rows(&self) -> Result<Vec<OutboxRow>, StorageError> {
        self.outbox_scan(|_| true)
    }

    /// The rows that still need work (staged, submitted or failed), in height order: what the
    /// submitter resumes from after a restart.
    pub fn outbox_pending(&self) -> Result<Vec<OutboxRow>, StorageError> {
        self.outbox_scan(|r| r.state != OutboxState::Delivered)
    }

    fn outbox_scan(
        &self,
        keep: impl Fn(&OutboxRow) -> bool,
    ) -> Result<Vec<OutboxRow>, StorageError> {
        let rtx = self.begin_read()?;
        let t = rtx.open_table(OUTBOX).ctx("opening outbox")?;
        let mut out = Vec::new();
        for entry in t.iter().ctx("reading outbox")? {
            let (k, v) = entry.ctx("reading outbox")?;
            let row = decode_row(k.value(), v.value())?;
            if keep(&row) {
                out.push(row);
            }
        }
        Ok(out)
    }

    /// Records that the row's stored bytes were sent (again): `Staged` or `Submitted` becomes
    /// `Submitted`, one more attempt. Call it before sending, so a crash after the send still
    /// knows the bytes may have landed.
    pub fn outbox_mark_submitted(&self, first: u64) -> Result<OutboxRow, StorageError> {
        self.transition(first, OutboxState::Submitted, |row| {
            row.attempts = row.attempts.saturating_add(1);
        })
    }

    /// Records a final failure of the row's bytes on the L0 (`Staged`/`Submitted` → `Failed`),
    /// with why; the batch is then re-signed with `replace_failed`.
    pub fn outbox_mark_failed(&self, first: u64, error: &str) -> Result<OutboxRow, StorageError> {
        self.transition(first, OutboxState::Failed, |row| {
            row.last_error = Some(error.to_owned());
        })
    }

    /// Records that the row's transaction is delivered on the L0 (`Staged`/`Submitted` →
    /// `Delivered`), then moves "anchored up to" across every delivered row contiguous from
    /// it and removes those rows, in one transaction. Returns the new anchored height (unchanged
    /// if a batch below this one is not delivered yet).
    pub fn outbox_mark_delivered(&self, first: u64) -> Result<u64, StorageError> {
        self.write_all("committing outbox delivery", |txn| {
            let mut bridge = txn.open_table(BRIDGE).ctx("opening bridge")?;
            let mut outbox = txn.open_table(OUTBOX).ctx("opening outbox")?;
            Self::move_row(
                &mut bridge,
                &mut outbox,
                first,
                OutboxState::Delivered,
                |_| {},
            )?;
            let mut anchored = get(&bridge, BRIDGE_ANCHORED)?;
            let mut done = Vec::new();
            for entry in outbox.iter().ctx("reading outbox")? {
                let (k, v) = entry.ctx("reading outbox")?;
                let row = decode_row(k.value(), v.value())?;
                if row.first != anchored + 1 {
                    return Err(StorageError::Corrupt(format!(
                        "outbox row at {} does not follow anchored_up_to {anchored}",
                        row.first
                    )));
                }
                if row.state != OutboxState::Delivered {
                    break;
                }
                anchored = row.last;
                done.push(row.first);
            }
            for key in done {
                outbox.remove(key).ctx("writing outbox")?;
            }
            put(&mut bridge, BRIDGE_ANCHORED, anchored)?;
            Ok(anchored)
        })
    }

    /// Replaces a `Failed` row by the same batch re-signed (new envelope, hash and a timestamp
    /// above every one stored), as a fresh `Staged` row, in one transaction. Refused (nothing
    /// written) unless the row at `batch.first` is `Failed` and covers exactly the same heights.
    pub fn replace_failed(&self, batch: &SignedBatch) -> Result<OutboxRow, StorageError> {
        self.write_all("committing outbox re-sign", |txn| {
            let mut bridge = txn.open_table(BRIDGE).ctx("opening bridge")?;
            let mut outbox = txn.open_table(OUTBOX).ctx("opening outbox")?;
            let old =
                read_row(&outbox, batch.first)?.ok_or(OutboxError::NoSuchBatch(batch.first))?;
            if old.last != batch.last {
                return Err(OutboxError::HeightsMismatch {
                    first: old.first,
                    stored_last: old.last,
                    got_last: batch.last,
                }
                .into());
            }
            if old.state != OutboxState::Failed {
                return Err(OutboxError::Transition {
                    first: old.first,
                    from: old.state,
                    to: OutboxState::Staged,
                }
                .into());
            }
            take_timestamp(&mut bridge, batch.signature_timestamp)?;
            let row = OutboxRow {
                first: old.first,
                last: old.last,
                envelope: Bytes(batch.envelope.clone()),
                tx_hash: batch.tx_hash,
                signature_timestamp: batch.signature_timestamp,
                state: OutboxState::Staged,
                attempts: 0,
                resigns: old.resigns.saturating_add(1),
                last_error: None,
            };
            write_row(&mut outbox, &row)?;
            Ok(row)
        })
    }

    /// One state transition of one row, with its counters, in its own transaction.
    fn transition(
        &self,
        first: u64,
        to: OutboxState,
        edit: impl FnOnce(&mut OutboxRow),
    ) -> Result<OutboxRow, StorageError> {
        self.write_all("committing outbox update", |txn| {
            let mut bridge = txn.open_table(BRIDGE).ctx("opening bridge")?;
            let mut outbox = txn.open_table(OUTBOX).ctx("opening outbox")?;
            Self::move_row(&mut bridge, &mut outbox, first, to, edit)
        })
    }

    /// Moves the row at `first` to `to` if that transition is allowed, keeping `in_flight`,
    /// `delivered_total` and `failed_total` in step.
    fn move_row(
        bridge: &mut BridgeTable<'_>,
        outbox: &mut OutboxTable<'_>,
        first: u64,
        to: OutboxState,
        edit: impl FnOnce(&mut OutboxRow),
    ) -> Result<OutboxRow, StorageError> {
        use OutboxState::{Delivered, Failed, Staged, Submitted};
        let mut row = read_row(outbox, first)?.ok_or(OutboxError::NoSuchBatch(first))?;
        let from = row.state;
        let allowed = matches!(
            (from, to),
            (Staged | Submitted, Submitted) | (Staged | Submitted, Delivered | Failed)
        );
        if !allowed {
            return Err(OutboxError::Transition { first, from, to }.into());
        }
        let in_flight = i64::from(to == Submitted) - i64::from(from == Submitted);
        if in_flight != 0 {
            add(bridge, BRIDGE_IN_FLIGHT, in_flight)?;
        }
        match to {
            Delivered => add(bridge, BRIDGE_DELIVERED_TOTAL, 1)?,
            Failed => add(bridge, BRIDGE_FAILED_TOTAL, 1)?,
            Staged | Submitted => {}
        }
        row.state = to;
        edit(&mut row);
        write_row(outbox, &row)?;
        Ok(row)
    }
}
