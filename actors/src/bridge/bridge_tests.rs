//! The stager and submitter logic against the in-memory L0 (`fake_l0`): batching, write-ahead,
//! outages, final failures and re-signing, already-known, hidden statuses, restarts. Time is
//! virtual (an `Instant` and a wall clock in ms moved by the test), so nothing sleeps.
//!
//! Its fixtures (configurations, a fake L0 every incarnation shares, committing blocks, the
//! exactly-once anchor check) are `pub(crate)`: the actor tests (`bridge_submitter`) use the same.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::anchor::Anchor;
use super::codec::L0Key;
use super::encoding::AccUrl;
use super::fake_l0::FakeL0;
use super::json::Status;
use super::stage::{Stager, StagerConfig, decode_envelope};
use super::submit::{Event, Submitter, SubmitterConfig};
use crate::bridge_stager::MakeL0;
use crate::chain::Head;
use crate::storage::tests::make_block;
use crate::storage::{OutboxState, Storage};
use crate::testkit::CHAIN;
use crate::types::WriteSet;

pub(crate) const KEY_PAGE: &str = "acc://accumen.acme/book/1";
pub(crate) const DATA_ACCOUNT: &str = "acc://accumen.acme/anchors";

pub(crate) fn url(s: &str) -> AccUrl {
    AccUrl::parse(s).unwrap()
}

pub(crate) fn stager_config(batch_size: u64, flush_interval: Duration) -> StagerConfig {
    StagerConfig {
        chain_id: CHAIN.to_string(),
        data_account: url(DATA_ACCOUNT),
        key_page: url(KEY_PAGE),
        batch_size,
        flush_interval,
    }
}

/// `confirm_interval` is `tick`, the backoff runs from 2 to 20 ticks, resends after 5 s.
pub(crate) fn submitter_config(workers: usize, tick: Duration) -> SubmitterConfig {
    SubmitterConfig {
        workers,
        confirm_interval: tick,
        resend_after: Duration::from_secs(5),
        backoff_min: tick * 2,
        backoff_max: tick * 20,
    }
}

/// A fake L0 holding `KEY_PAGE` at version 1, and the factory that hands every actor
/// incarnation a handle on that same L0 (so a restart talks to the same "network").
pub(crate) fn fake_l0() -> (FakeL0, MakeL0<FakeL0>) {
    let l0 = FakeL0::new(url(KEY_PAGE), 1);
    let shared = l0.clone();
    (l0, Arc::new(move || shared.clone()))
}

/// Commits `n` empty blocks on top of the head; returns the new head.
pub(crate) fn commit_empty_blocks(storage: &Storage, n: u64) -> Head {
    let mut head = storage.head().unwrap();
    for _ in 0..n {
        let (b, r) = make_block(&head, Vec::new(), &WriteSet::default());
        storage.commit_block(&b, &r, &WriteSet::default()).unwrap();
        head = storage.head().unwrap();
    }
    Head {
        height: head.height,
        hash: head.hash(),
        timestamp_ms: head.timestamp_ms,
    }
}

/// Exactly once: the L0's entries are anchors covering 1..=head without gap or overlap, each
/// matching the stored blocks; the bridge says everything is anchored and the outbox is empty.
pub(crate) fn check_anchors(storage: &Storage, l0: &FakeL0) {
    let mut anchors: Vec<Anchor> = l0
        .entries()
        .iter()
        .map(|e| Anchor::parse(&e.parts).unwrap())
        .collect();
    anchors.sort_by_key(|a| a.first_height);
    let mut next = 1;
    for a in &anchors {
        assert_eq!(a.first_height, next, "gap or overlap: {anchors:?}");
        let headers: Vec<_> = (a.first_height..=a.last_height)
            .map(|h| storage.block_by_height(h).unwrap().unwrap().header)
            .collect();
        a.check(CHAIN, &headers).unwrap();
        next = a.last_height + 1;
    }
    let head = storage.head().unwrap().height;
    assert_eq!(next, head + 1, "not every height anchored");
    let st = storage.bridge_stats().unwrap();
    assert_eq!(st.last_anchored_height, head);
    assert_eq!(st.outbox_rows, 0);
}

/// The harness's confirmation interval (virtual time).
const TICK: Duration = Duration::from_millis(100);

/// A storage, a fake L0 and both halves of the bridge, on a virtual clock.
struct Harness {
    storage: Arc<Storage>,
    l0: FakeL0,
    stager: Stager,
    sub: Submitter,
    now: Instant,
    workers: usize,
    events: Vec<Event>,
}

impl Harness {
    fn new(batch_size: u64, workers: usize) -> Self {
        let storage = Arc::new(Storage::in_memory(CHAIN).unwrap());
        let cfg = stager_config(batch_size, Duration::from_secs(60));
        let (l0, _) = fake_l0();
        Harness {
            stager: Stager::new(cfg, Arc::new(L0Key::from_seed([7; 32])), storage.clone()),
            sub: Submitter::new(submitter_config(workers, TICK), storage.clone()),
            storage,
            l0,
            now: Instant::now(),
            workers,
            events: Vec::new(),
        }
    }

    fn commit(&self, n: u64) {
        commit_empty_blocks(&self.storage, n);
    }

    /// Wall clock: the head's timestamp plus `extra` ms.
    fn now_ms(&self, extra: u64) -> u64 {
        self.storage.head().unwrap().timestamp_ms + extra
    }

    async fn stage(&mut self, force: bool) -> super::stage::StageReport {
        let now_ms = self.now_ms(0);
        self.stager.run(&self.l0, now_ms, force).await.unwrap()
    }

    /// One submitter step; virtual time then moves to when the next one has work.
    async fn step(&mut self) -> Option<Duration> {
        let r = self.sub.step(&self.l0, self.now).await.unwrap();
        self.events.extend(r.events);
        if let Some(d) = r.next_in {
            self.now += d;
        }
        r.next_in
    }

    /// Stages (forced) and steps until every committed height is anchored (bounded).
    async fn drain(&mut self) {
        for _ in 0..500 {
            self.stage(true).await;
            self.step().await;
            let st = self.storage.bridge_stats().unwrap();
            if st.backlog_blocks == 0 {
                return;
            }
        }
        panic!(
            "not drained: {:?} {:?}",
            self.storage.bridge_stats().unwrap(),
            self.storage.outbox_rows().unwrap()
        );
    }

    /// A new submitter over the same storage (a restart).
    fn restart_submitter(&mut self) {
        self.sub = Submitter::new(submitter_config(self.workers, TICK), self.storage.clone());
    }

    fn check_anchors(&self) {
        check_anchors(&self.storage, &self.l0);
    }
}

#[tokio::test]
async fn batches_are_cut_by_size_then_by_interval() {
    let mut h = Harness::new(4, 1);
    h.commit(10);
    let r = h.stage(false).await;
    assert_eq!(r.staged, 2, "two full batches");
    let rows = h.storage.outbox_rows().unwrap();
    assert_eq!(
        rows.iter().map(|r| (r.first, r.last)).collect::<Vec<_>>(),
        vec![(1, 4), (5, 8)]
    );
    // 9..=10 wait for the oldest (block 9) to be flush_interval old.
    let wait = r.next_due_in.expect("a partial batch waits");
    assert_eq!(wait, Duration::from_secs(60) - Duration::from_secs(1));
    let now = h.now_ms(0);
    let r = h.stager.run(&h.l0, now + 58_999, false).await.unwrap();
    assert_eq!(r.staged, 0);
    let r = h.stager.run(&h.l0, now + 59_000, false).await.unwrap();
    assert_eq!(r.staged, 1);
    let rows = h.storage.outbox_rows().unwrap();
    assert_eq!((rows[2].first, rows[2].last), (9, 10));
    assert_eq!(h.storage.bridge_unstaged().unwrap(), None);
    // Timestamps strictly increase, and nothing was sent while staging.
    assert!(
        rows.windows(2)
            .all(|w| w[0].signature_timestamp < w[1].signature_timestamp)
    );
    assert_eq!(h.l0.submits(), 0);
}

#[tokio::test]
async fn the_row_is_stored_before_its_bytes_are_sent_and_only_those_bytes_are_sent() {
    let mut h = Harness::new(5, 1);
    h.commit(5);
    h.stage(false).await;
    let row = h.storage.outbox_row(1).unwrap().unwrap();
    assert_eq!(row.state, OutboxState::Staged);
    assert_eq!(h.l0.submits(), 0);
    // The stored bytes decode to an envelope whose transaction hash is the stored one.
    let env = decode_envelope(&row.envelope.0).unwrap();
    assert_eq!(env.transaction[0].hash(), row.tx_hash);
    h.l0.set_auto_execute(false);
    h.step().await;
    assert_eq!(h.l0.submitted(), vec![row.tx_hash]);
    let row = h.storage.outbox_row(1).unwrap().unwrap();
    assert_eq!((row.state, row.attempts), (OutboxState::Submitted, 1));
    h.l0.execute(false);
    h.drain().await;
    h.check_anchors();
}

#[tokio::test]
async fn an_unreachable_l0_backs_off_then_the_backlog_drains_in_order() {
    let mut h = Harness::new(3, 2);
    h.commit(6);
    h.stage(false).await;
    h.l0.set_down(true);
    let mut backoffs = Vec::new();
    for _ in 0..8 {
        h.commit(3);
        h.stage(false).await; // the version is cached: staging goes on while the L0 is down
        h.step().await;
    }
    for e in &h.events {
        if let Event::Retried { backoff, error } = e {
            assert!(error.is_retryable());
            backoffs.push(*backoff);
        }
    }
    assert_eq!(backoffs.len(), 8, "{:?}", h.events);
    assert!(
        backoffs.iter().all(|b| *b <= Duration::from_secs(2)),
        "capped: {backoffs:?}"
    );
    assert!(
        backoffs.last().unwrap() >= &Duration::from_secs(1),
        "grows: {backoffs:?}"
    );
    let st = h.storage.bridge_stats().unwrap();
    assert_eq!(st.last_anchored_height, 0);
    assert_eq!(st.backlog_blocks, 30, "blocks kept coming");
    assert_eq!(h.l0.entries().len(), 0);
    h.l0.set_down(false);
    h.drain().await;
    h.check_anchors();
    // Each transaction accepted once: no resend was needed.
    let sent = h.l0.submitted();
    let mut unique = sent.clone();
    unique.dedup();
    assert_eq!(sent, unique);
}

#[tokio::test]
async fn a_final_failure_is_re_signed_with_a_new_timestamp_and_old_bytes_never_resent() {
    let mut h = Harness::new(4, 1);
    h.commit(4);
    h.stage(false).await;
    let old = h.storage.outbox_row(1).unwrap().unwrap();
    h.l0.set_no_credits_at_execution(true);
    h.step().await; // sent
    h.step().await; // confirmed: the signature failed at execution
    let failed = h.storage.outbox_row(1).unwrap().unwrap();
    assert_eq!(failed.state, OutboxState::Failed);
    assert!(
        failed
            .last_error
            .as_deref()
            .unwrap()
            .contains("insufficientCredits"),
        "{failed:?}"
    );
    assert!(h.sub.last_error().unwrap().contains("insufficient credits"));
    // Nothing more is sent for a failed row until it is re-signed.
    let before = h.l0.submits();
    h.step().await;
    assert_eq!(h.l0.submits(), before);
    h.l0.set_no_credits_at_execution(false);
    let r = h.stage(false).await;
    assert_eq!(r.resigned, 1);
    let new = h.storage.outbox_row(1).unwrap().unwrap();
    assert_eq!((new.state, new.resigns), (OutboxState::Staged, 1));
    assert!(new.signature_timestamp > old.signature_timestamp);
    assert_ne!(new.tx_hash, old.tx_hash);
    h.drain().await;
    h.check_anchors();
    let sent = h.l0.submitted();
    assert_eq!(sent.iter().filter(|t| **t == old.tx_hash).count(), 1);
    assert_eq!(sent.last(), Some(&new.tx_hash));
}

#[tokio::test]
async fn a_changed_key_page_version_is_learnt_again_after_bad_signer_version() {
    let mut h = Harness::new(2, 1);
    h.commit(2);
    h.stage(false).await;
    assert_eq!(h.stager.signer_version(), Some(1));
    h.l0.set_version(2);
    h.step().await;
    let row = h.storage.outbox_row(1).unwrap().unwrap();
    assert_eq!(row.state, OutboxState::Failed);
    assert!(row.last_error.unwrap().contains("invalid version"));
    h.drain().await;
    assert_eq!(h.stager.signer_version(), Some(2));
    h.check_anchors();
}

#[tokio::test]
async fn envelopes_executed_out_of_order_fail_bad_timestamp_and_are_re_signed_once() {
    let mut h = Harness::new(2, 3);
    h.commit(6);
    h.stage(false).await;
    h.l0.set_auto_execute(false);
    h.step().await;
    assert_eq!(h.l0.mempool_len(), 3, "three in flight");
    // The §3.6 hazard: the highest timestamp executes first; the two lower ones fail.
    h.l0.execute(true);
    h.l0.set_auto_execute(true);
    h.drain().await;
    h.check_anchors();
    let failed = h
        .events
        .iter()
        .filter(|e| matches!(e, Event::Failed { error, .. } if error.contains("badTimestamp")))
        .count();
    assert_eq!(failed, 2, "{:?}", h.events);
    assert_eq!(h.l0.entries().len(), 3);
}

#[tokio::test]
async fn already_known_is_confirmed_by_query_not_failed() {
    let mut h = Harness::new(3, 1);
    h.commit(3);
    h.stage(false).await;
    h.l0.set_auto_execute(false);
    h.step().await;
    // A restart while the L0 hides what it has: the new instance finds nothing, resends the
    // same bytes, and the L0 says it already has them.
    h.restart_submitter();
    h.l0.set_hidden(true);
    h.step().await;
    assert!(
        h.events
            .iter()
            .any(|e| matches!(e, Event::AlreadyKnown { first: 1 })),
        "{:?}",
        h.events
    );
    h.l0.set_hidden(false);
    h.l0.execute(false);
    h.drain().await;
    h.check_anchors();
    assert_eq!(h.l0.submitted().len(), 1, "the L0 accepted it once");
}

#[tokio::test]
async fn a_hidden_status_is_waited_for_then_resent_identically() {
    let mut h = Harness::new(3, 1);
    h.commit(3);
    h.stage(false).await;
    let row = h.storage.outbox_row(1).unwrap().unwrap();
    h.l0.set_hidden(true);
    // Delivered at once, but queries see nothing: keep polling, no resend before resend_after.
    let started = h.now;
    while h.now.duration_since(started) < Duration::from_secs(4) {
        h.step().await;
    }
    assert_eq!(h.l0.submits(), 1);
    while h.now.duration_since(started) < Duration::from_secs(6) {
        h.step().await;
    }
    assert_eq!(h.l0.submits(), 2, "resent after resend_after");
    assert!(
        h.events
            .iter()
            .any(|e| matches!(e, Event::AlreadyKnown { .. }))
    );
    h.l0.set_hidden(false);
    h.drain().await;
    h.check_anchors();
    assert_eq!(h.l0.submitted(), vec![row.tx_hash]);
    assert_eq!(h.storage.bridge_stats().unwrap().delivered_total, 1);
}

#[tokio::test]
async fn a_restart_mid_flight_resumes_from_the_outbox_without_duplicates() {
    let mut h = Harness::new(2, 2);
    h.commit(6);
    h.stage(false).await;
    h.l0.set_auto_execute(false);
    // Rows 1 and 3 sent; then "crash".
    h.step().await;
    assert_eq!(h.l0.mempool_len(), 2);
    // Row 5: marked submitted, then the process died before the send.
    h.storage.outbox_mark_submitted(5).unwrap();
    h.restart_submitter();
    h.l0.set_auto_execute(true);
    h.l0.execute(false);
    h.drain().await;
    h.check_anchors();
    let sent = h.l0.submitted();
    assert_eq!(sent.len(), 3, "each batch accepted once: {sent:?}");
    assert_eq!(h.l0.entries().len(), 3);
}

#[tokio::test]
async fn a_refused_resend_of_bytes_that_may_have_landed_is_not_re_signed_early() {
    let mut h = Harness::new(2, 1);
    h.commit(2);
    h.stage(false).await;
    let row = h.storage.outbox_row(1).unwrap().unwrap();
    h.l0.set_hidden(true);
    h.step().await; // sent, executed, hidden
    // A restart; the resend is refused as a node refuses a replayed signature.
    h.l0.fail_next_submits([Status::BadTimestamp]);
    h.restart_submitter();
    let started = h.now;
    while h.now.duration_since(started) < Duration::from_secs(3) {
        h.step().await;
    }
    let now = h.storage.outbox_row(1).unwrap().unwrap();
    assert_eq!(
        now.state,
        OutboxState::Submitted,
        "not re-signed while the L0 may have it"
    );
    h.l0.set_hidden(false);
    h.drain().await;
    h.check_anchors();
    assert_eq!(h.l0.submitted(), vec![row.tx_hash]);
}

#[tokio::test]
async fn a_refused_resend_the_l0_never_shows_fails_after_resend_after() {
    let mut h = Harness::new(2, 1);
    h.commit(2);
    h.stage(false).await;
    h.l0.set_auto_execute(false);
    h.step().await;
    // The L0 lost it (dropped from its mempool), and a later signature used the key.
    h.l0 = {
        let (fresh, _) = fake_l0();
        fresh.fail_next_submits([Status::BadTimestamp]);
        fresh
    };
    h.restart_submitter();
    let started = h.now;
    while h.storage.outbox_row(1).unwrap().unwrap().state != OutboxState::Failed {
        h.step().await;
        assert!(h.now.duration_since(started) < Duration::from_secs(60));
    }
    assert!(h.now.duration_since(started) >= Duration::from_secs(5));
    h.drain().await;
    h.check_anchors();
}

#[tokio::test]
async fn final_failures_are_paced_by_a_growing_backoff_reset_by_a_delivery() {
    let mut h = Harness::new(2, 1);
    h.commit(2);
    h.stage(false).await;
    // An L0 that refuses every anchor (the key not on the page) twelve times running.
    h.l0.fail_next_submits(std::iter::repeat_n(Status::Unauthorized, 12));
    // Virtual time between consecutive sends to the L0, failure by failure.
    let mut sends = Vec::new();
    for _ in 0..60 {
        let before = h.l0.submits();
        h.stage(false).await; // re-signs a failed row at once
        let t = h.now;
        h.step().await;
        if h.l0.submits() > before {
            sends.push(t);
        }
        if h.storage.bridge_stats().unwrap().last_anchored_height == 2 {
            break;
        }
    }
    let failed = |h: &Harness| {
        h.events
            .iter()
            .filter(|e| matches!(e, Event::Failed { .. }))
            .count()
    };
    assert_eq!(failed(&h), 12, "{:?}", h.events);
    assert_eq!(sends.len(), 13, "twelve refused, one delivered: {sends:?}");
    let gaps: Vec<Duration> = sends.windows(2).map(|w| w[1] - w[0]).collect();
    // backoff_min 200 ms doubling to backoff_max 2 s, each jittered to [d/2, d].
    assert!(
        gaps.iter().all(|g| *g >= Duration::from_millis(100)),
        "{gaps:?}"
    );
    assert!(
        gaps.iter().all(|g| *g <= Duration::from_secs(2)),
        "{gaps:?}"
    );
    assert!(
        gaps[gaps.len() - 3..]
            .iter()
            .all(|g| *g >= Duration::from_secs(1)),
        "grows: {gaps:?}"
    );
    h.check_anchors();

    // The delivery reset the pace: the next refusal waits backoff_min again, not backoff_max.
    h.commit(2);
    h.stage(true).await;
    h.l0.fail_next_submits([Status::Unauthorized]);
    let t = h.now;
    h.step().await;
    assert_eq!(failed(&h), 13);
    assert!(h.now - t <= Duration::from_millis(200), "{:?}", h.now - t);
    h.drain().await;
    h.check_anchors();
}

#[tokio::test]
async fn a_re_signed_batch_waits_for_the_batches_signed_before_it_so_no_other_fails() {
    let mut h = Harness::new(1, 2);
    h.commit(8);
    h.stage(true).await;
    assert_eq!(h.storage.outbox_rows().unwrap().len(), 8);
    // The lowest batch is refused once (credits): re-signed, it has the newest timestamp. Sent
    // before batches 2..=8 (signed earlier), it would make each of them fail badTimestamp.
    h.l0.fail_next_submits([Status::InsufficientCredits]);
    h.drain().await;
    h.check_anchors();
    let failed: Vec<&Event> = h
        .events
        .iter()
        .filter(|e| matches!(e, Event::Failed { .. }))
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(h.l0.entries().len(), 8);
}
