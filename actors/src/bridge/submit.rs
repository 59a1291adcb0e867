//! The submitter's logic, actix-free: send the outbox's stored envelopes to the L0, confirm
//! their delivery, and record the outcome in the outbox. Generic over [`L0Api`], so it is unit
//! tested with an in-memory L0 (`bridge::submit_tests`).
//!
//! Invariants:
//! - Only stored bytes are sent: every send decodes the outbox row's envelope bytes as they are;
//!   nothing here signs. A resend is the same bytes, hence the same transaction (no second data
//!   entry can come from it).
//! - Write-ahead on send: a row is marked `Submitted` (`outbox_mark_submitted`) before its bytes
//!   go out, so after a crash a row that may have landed is never treated as unsent.
//! - Delivery is confirmed by `query_message` on the transaction id; the signature id is queried
//!   too (L0 document §4.2 step 3), because a signature that failed at execution (credits,
//!   timestamp) leaves the transaction without a final status. `delivered` →
//!   `outbox_mark_delivered`; a final failure status on either → `outbox_mark_failed` (the
//!   stager then re-signs it; this module never does).
//! - Resume: a row found `Submitted` that this instance did not send (a restart, a new instance
//!   after a hang) is queried first and resent only if the L0 does not know it. A row this
//!   instance sent that the L0 still does not know after `resend_after` is resent (same bytes).
//! - Failures by class (`L0Error::class`, the one classification): retryable → back off with
//!   jitter (doubling from `backoff_min`, capped at `backoff_max`) and try again later, same bytes;
//!   already known → confirm by query; final on submit → query first (an identical resubmission
//!   of executed bytes is refused with `badTimestamp`), and only if the L0 does not know the
//!   transaction is the row marked failed. A `badTimestamp` refusal of bytes sent before is
//!   ambiguous (they may have executed while the L0 hides their status), so the row is marked
//!   failed only if the L0 still does not know them `resend_after` later: re-signing bytes that
//!   landed would anchor those heights twice.
//!
//! # Final failures are paced
//!
//! After a final failure the submitter sends nothing for a backoff of its own (from
//! `backoff_min`, doubling with each further final failure up to `backoff_max`, jittered; reset
//! by a delivery). The re-signed batch goes out after it. An L0 that refuses every anchor (no
//! credits, the key not on the page, no data account) so costs one signature, one outbox write
//! and a few calls per `backoff_max`, not as many as the L0 can answer, and the backlog still
//! goes out as soon as the cause is fixed (within one backoff). A one-off failure (a changed key
//! page version, §3.6 below) costs one `backoff_min`.
//!
//! # The in-flight rule (L0 document §3.6)
//!
//! At most `workers` rows, the lowest signature timestamps not `Failed`, are worked on at a time
//! (sent and awaiting confirmation). Calls are issued one at a time, and within that window rows
//! are sent in signature timestamp order, so the L0 receives the key's signatures in increasing
//! timestamp order and, executing them in arrival order, never sees a lower one after a higher
//! one. The window follows timestamps, not heights, because a re-signed batch carries the newest
//! timestamp: sent before the batches signed earlier (at higher heights), it would make each of
//! them fail `badTimestamp` in turn and be re-signed, the whole staged backlog after an outage of
//! credits. A re-signed low batch therefore waits for the batches signed before it, and
//! `last_anchored_height` (contiguous from 1) moves once it lands. If the L0 reorders anyway
//! (its mempool), the lower one fails `badTimestamp` at execution: a final failure seen on its
//! signature record, so that row is marked failed and re-signed with a new, highest timestamp.
//! Its old bytes never executed and are never sent again, so nothing is lost or doubled; the
//! cost is one extra signature. `workers = 1` serialises submissions fully.
//!
//! Every call is bounded by the client's request timeout; one step makes at most a few calls
//! per window row, and stops at the first retryable failure (the L0 is down: no point asking it
//! about the other rows now).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::codec::SignedWriteData;
use super::encoding::TxId;
use super::json::{Envelope, MessageRecord, Status};
use super::l0::{ErrorClass, L0Api, L0Error};
use super::stage::decode_envelope;
use crate::storage::{OutboxRow, OutboxState, Storage, StorageError};
use crate::types::Hash;

/// How the submitter paces itself.
#[derive(Debug, Clone)]
pub struct SubmitterConfig {
    /// Rows worked on at once (sent and not yet confirmed); at least 1.
    pub workers: usize,
    /// Between two confirmation queries of one row.
    pub confirm_interval: Duration,
    /// A row this instance sent that the L0 still does not know after this long is resent.
    pub resend_after: Duration,
    /// First backoff after a retryable failure.
    pub backoff_min: Duration,
    /// Longest backoff.
    pub backoff_max: Duration,
}

impl Default for SubmitterConfig {
    fn default() -> Self {
        Self {
            workers: 4,
            confirm_interval: Duration::from_secs(1),
            resend_after: Duration::from_secs(30),
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
        }
    }
}

/// A step that could not record what happened (the L0's answers are not errors here: they
/// become [`Event`]s).
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("bridge submitter storage error: {0}")]
    Storage(#[from] StorageError),
}

/// What happened to one row, for metrics and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The row's bytes were sent (`resend`: not the first time).
    Sent { first: u64, resend: bool },
    /// The L0 already had the transaction.
    AlreadyKnown { first: u64 },
    /// Delivered; `anchored` is the new anchored height.
    Delivered {
        first: u64,
        last: u64,
        anchored: u64,
    },
    /// Finally failed: the stager re-signs it.
    Failed {
        first: u64,
        last: u64,
        error: String,
    },
    /// A retryable L0 failure: backing off for `backoff`.
    Retried { error: L0Error, backoff: Duration },
}

/// What a step did.
#[derive(Debug, Default)]
pub struct StepReport {
    pub events: Vec<Event>,
    /// When the next step has something to do (`None`: the outbox is idle).
    pub next_in: Option<Duration>,
    /// A row is `Failed`: the stager must re-sign it.
    pub need_resign: bool,
}

/// What this instance knows of a row it works on.
#[derive(Debug)]
struct Track {
    tx_hash: Hash,
    envelope: Envelope,
    tx_id: TxId,
    sig_id: TxId,
    /// When this instance last sent the bytes (`None`: not by this instance).
    sent_at: Option<Instant>,
    /// Not worked on before this.
    next_at: Instant,
    /// A resend of these bytes was refused with `badTimestamp` (when, and the L0's message):
    /// the bytes may have executed already, with the L0 not showing it yet. Marked failed only
    /// if the L0 still does not know them `resend_after` later.
    refused: Option<(Instant, String)>,
}

/// The submitter's state between steps. A new instance over the same storage resumes from the
/// outbox alone.
#[derive(Debug)]
pub struct Submitter {
    cfg: SubmitterConfig,
    storage: Arc<Storage>,
    tracks: BTreeMap<u64, Track>,
    backoff: Duration,
    /// Pause after a final failure, doubling with each one until a delivery resets it.
    fail_backoff: Duration,
    not_before: Option<Instant>,
    last_error: Option<String>,
}

enum Confirm {
    Delivered,
    Failed(String),
    /// Known to the L0, no final status yet.
    Waiting,
    /// The L0 knows neither the transaction nor its signature.
    Unknown,
}

impl Submitter {
    pub fn new(cfg: SubmitterConfig, storage: Arc<Storage>) -> Self {
        Self {
            cfg,
            storage,
            tracks: BTreeMap::new(),
            backoff: Duration::ZERO,
            fail_backoff: Duration::ZERO,
            not_before: None,
            last_error: None,
        }
    }

    /// The last L0 or row failure seen (for `/bridge/stats`).
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// One round over the window (module docs).
    pub async fn step<L: L0Api>(
        &mut self,
        l0: &L,
        now: Instant,
    ) -> Result<StepReport, SubmitError> {
        let mut report = StepReport::default();
        if let Some(t) = self.not_before.filter(|t| *t > now) {
            report.next_in = Some(t - now);
            return Ok(report);
        }
        self.not_before = None;
        let pending = self.storage.outbox_pending()?;
        report.need_resign = pending.iter().any(|r| r.state == OutboxState::Failed);
        // The lowest signature timestamps, not the lowest heights (module docs, the in-flight
        // rule): a re-signed batch goes after every batch signed before it.
        let mut window: Vec<OutboxRow> = pending
            .into_iter()
            .filter(|r| r.state != OutboxState::Failed)
            .collect();
        window.sort_by_key(|r| r.signature_timestamp);
        window.truncate(self.cfg.workers.max(1));
        // Forget rows no longer pending, or re-signed since (new bytes, new transaction).
        self.tracks.retain(|first, t| {
            window
                .iter()
                .any(|r| r.first == *first && r.tx_hash == t.tx_hash)
        });
        for row in window {
            let track = match self.tracks.get(&row.first) {
                Some(t) => t,
                None => match Self::track(&row, now) {
                    Ok(t) => self.tracks.entry(row.first).or_insert(t),
                    Err(why) => {
                        self.fail(&row, why, now, &mut report)?;
                        continue;
                    }
                },
            };
            if track.next_at > now {
                continue;
            }
            let outcome = if row.state == OutboxState::Staged {
                self.send(l0, &row, now, &mut report).await?
            } else {
                self.confirm_row(l0, &row, now, &mut report).await?
            };
            if !outcome {
                // A retryable failure: the L0 is down or busy; stop asking it for now.
                break;
            }
        }
        // A delivery or failure freed a place in the window for a row not worked on yet:
        // the next step is due at once.
        let waiting = self
            .storage
            .outbox_pending()?
            .iter()
            .filter(|r| r.state != OutboxState::Failed)
            .count();
        let free = self.tracks.len() < self.cfg.workers.max(1);
        report.next_in = if free && waiting > self.tracks.len() && self.not_before.is_none() {
            Some(Duration::ZERO)
        } else {
            self.next_in(now)
        };
        Ok(report)
    }

    /// When the next step has work.
    fn next_in(&self, now: Instant) -> Option<Duration> {
        if let Some(t) = self.not_before {
            return Some(t.saturating_duration_since(now));
        }
        self.tracks
            .values()
            .map(|t| t.next_at.saturating_duration_since(now))
            .min()
    }

    fn track(row: &OutboxRow, now: Instant) -> Result<Track, String> {
        let envelope = decode_envelope(&row.envelope.0)
            .map_err(|e| format!("stored envelope is unreadable: {e}"))?;
        let signed = SignedWriteData::from_envelope(&envelope)
            .map_err(|e| format!("stored envelope is malformed: {e}"))?;
        Ok(Track {
            tx_hash: row.tx_hash,
            tx_id: signed.transaction.id(),
            sig_id: signed.signature.id(),
            envelope,
            sent_at: None,
            next_at: now,
            refused: None,
        })
    }

    /// Sends the row's stored bytes (marked submitted first). False on a retryable failure.
    async fn send<L: L0Api>(
        &mut self,
        l0: &L,
        row: &OutboxRow,
        now: Instant,
        report: &mut StepReport,
    ) -> Result<bool, SubmitError> {
        let Some(track) = self.tracks.get(&row.first) else {
            return Ok(true);
        };
        let envelope = track.envelope.clone();
        let resend = row.attempts > 0;
        self.storage.outbox_mark_submitted(row.first)?;
        let result = l0.submit(&envelope).await;
        let confirm_interval = self.cfg.confirm_interval;
        match result {
            Ok(_) => {
                self.backoff = Duration::ZERO;
                report.events.push(Event::Sent {
                    first: row.first,
                    resend,
                });
                if let Some(t) = self.tracks.get_mut(&row.first) {
                    t.sent_at = Some(now);
                    t.next_at = now + confirm_interval;
                }
                Ok(true)
            }
            Err(e) => match e.class {
                ErrorClass::AlreadyKnown => {
                    report.events.push(Event::AlreadyKnown { first: row.first });
                    // Confirmed by query on the next step (now): it is known, so never resent
                    // before `resend_after`.
                    if let Some(t) = self.tracks.get_mut(&row.first) {
                        t.sent_at = Some(now);
                        t.next_at = now;
                    }
                    Ok(true)
                }
                ErrorClass::Retryable => {
                    self.retry(e, now, report);
                    Ok(false)
                }
                ErrorClass::Final => {
                    // The same bytes may have executed already (a resend is refused with
                    // badTimestamp): the L0's record decides, not the refusal.
                    match self.confirm(l0, row.first).await {
                        Err(q) => {
                            self.retry(q, now, report);
                            Ok(false)
                        }
                        Ok(Confirm::Unknown)
                            if row.attempts > 0 && e.status == Some(Status::BadTimestamp) =>
                        {
                            // Sent before: an executed copy of these very bytes is refused the
                            // same way. Give the L0 `resend_after` to show it (confirm_row).
                            if let Some(t) = self.tracks.get_mut(&row.first) {
                                t.refused.get_or_insert((now, e.message));
                                t.sent_at = Some(now);
                            }
                            self.wait(row.first, now);
                            Ok(true)
                        }
                        Ok(Confirm::Unknown) => {
                            self.fail(row, e.message, now, report)?;
                            Ok(true)
                        }
                        Ok(c) => {
                            if let Some(t) = self.tracks.get_mut(&row.first) {
                                t.sent_at = Some(now);
                            }
                            self.settle(row, c, now, report)
                        }
                    }
                }
            },
        }
    }

    /// Queries the row's transaction and signature and acts on the answer. False on a
    /// retryable failure.
    async fn confirm_row<L: L0Api>(
        &mut self,
        l0: &L,
        row: &OutboxRow,
        now: Instant,
        report: &mut StepReport,
    ) -> Result<bool, SubmitError> {
        match self.confirm(l0, row.first).await {
            Err(e) => {
                self.retry(e, now, report);
                Ok(false)
            }
            Ok(Confirm::Unknown) => {
                let refused = self.tracks.get(&row.first).and_then(|t| t.refused.clone());
                if let Some((at, why)) = refused {
                    if now.saturating_duration_since(at) >= self.cfg.resend_after {
                        self.fail(row, why, now, report)?;
                    } else {
                        self.wait(row.first, now);
                    }
                    return Ok(true);
                }
                let due = match self.tracks.get(&row.first).and_then(|t| t.sent_at) {
                    // Not sent by this instance (a restart): the L0 does not know it, send.
                    None => true,
                    Some(at) => now.saturating_duration_since(at) >= self.cfg.resend_after,
                };
                if due {
                    self.send(l0, row, now, report).await
                } else {
                    self.wait(row.first, now);
                    Ok(true)
                }
            }
            Ok(c) => self.settle(row, c, now, report),
        }
    }

    /// Records a confirmation outcome other than `Unknown`.
    fn settle(
        &mut self,
        row: &OutboxRow,
        c: Confirm,
        now: Instant,
        report: &mut StepReport,
    ) -> Result<bool, SubmitError> {
        match c {
            Confirm::Delivered => {
                let anchored = self.storage.outbox_mark_delivered(row.first)?;
                self.tracks.remove(&row.first);
                self.backoff = Duration::ZERO;
                self.fail_backoff = Duration::ZERO;
                report.events.push(Event::Delivered {
                    first: row.first,
                    last: row.last,
                    anchored,
                });
            }
            Confirm::Failed(why) => self.fail(row, why, now, report)?,
            Confirm::Waiting | Confirm::Unknown => self.wait(row.first, now),
        }
        Ok(true)
    }

    fn wait(&mut self, first: u64, now: Instant) {
        if let Some(t) = self.tracks.get_mut(&first) {
            t.next_at = now + self.cfg.confirm_interval;
        }
    }

    fn fail(
        &mut self,
        row: &OutboxRow,
        why: String,
        now: Instant,
        report: &mut StepReport,
    ) -> Result<(), SubmitError> {
        self.storage.outbox_mark_failed(row.first, &why)?;
        self.tracks.remove(&row.first);
        // Paced like a retry (module docs, "Final failures are paced"): without it an L0 that
        // refuses every anchor makes the node re-sign, store and resend as fast as the L0
        // answers.
        self.fail_backoff = if self.fail_backoff.is_zero() {
            self.cfg.backoff_min
        } else {
            (self.fail_backoff * 2).min(self.cfg.backoff_max)
        };
        let until = now + jitter(self.fail_backoff);
        self.not_before = Some(self.not_before.map_or(until, |t| t.max(until)));
        self.last_error = Some(format!(
            "batch {}..={} failed on the L0: {why}",
            row.first, row.last
        ));
        report.need_resign = true;
        report.events.push(Event::Failed {
            first: row.first,
            last: row.last,
            error: why,
        });
        Ok(())
    }

    fn retry(&mut self, error: L0Error, now: Instant, report: &mut StepReport) {
        self.backoff = if self.backoff.is_zero() {
            self.cfg.backoff_min
        } else {
            (self.backoff * 2).min(self.cfg.backoff_max)
        };
        let wait = jitter(self.backoff);
        self.not_before = Some(now + wait);
        self.last_error = Some(format!("L0 call failed: {error}"));
        report.events.push(Event::Retried {
            error,
            backoff: wait,
        });
    }

    /// What the L0 says of the row's transaction and signature.
    async fn confirm<L: L0Api>(&self, l0: &L, first: u64) -> Result<Confirm, L0Error> {
        let Some(track) = self.tracks.get(&first) else {
            return Ok(Confirm::Waiting);
        };
        let tx = l0.query_message(&track.tx_id).await?;
        if let Some(c) = tx.as_ref().and_then(final_outcome) {
            return Ok(c);
        }
        let sig = l0.query_message(&track.sig_id).await?;
        if let Some(Confirm::Failed(why)) = sig.as_ref().and_then(final_outcome) {
            return Ok(Confirm::Failed(why));
        }
        Ok(if tx.is_none() && sig.is_none() {
            Confirm::Unknown
        } else {
            Confirm::Waiting
        })
    }
}

/// `Delivered`, or `Failed` for a final failure status; `None` while not final.
fn final_outcome(record: &MessageRecord) -> Option<Confirm> {
    let status = record.status.as_ref()?;
    if *status == Status::Delivered {
        return Some(Confirm::Delivered);
    }
    match ErrorClass::of_status(status) {
        Some(ErrorClass::Final) => {
            let message = record
                .error
                .as_ref()
                .map(|e| e.message.clone())
                .unwrap_or_default();
            Some(Confirm::Failed(format!("{}: {message}", status.name())))
        }
        _ => None,
    }
}

/// A random duration in `[d/2, d]`, so many nodes (or workers) do not retry in step.
fn jitter(d: Duration) -> Duration {
    let mut b = [0u8; 8];
    // Without entropy the full backoff is still a valid wait.
    if getrandom::fill(&mut b).is_err() {
        return d;
    }
    let half = d / 2;
    let extra = u64::from_le_bytes(b) % (u64::try_from(half.as_nanos()).unwrap_or(u64::MAX) + 1);
    half + Duration::from_nanos(extra)
}
