//! Bridge state tests: the watermarks, the outbox's transitions and refusals, the signature
//! timestamp counter, reopen, and all-or-nothing writes under the commit fail-point.

use super::tests::make_block;
use super::*;
use crate::testkit::CHAIN;

fn params() -> ChainParams {
    ChainParams::with_defaults(CHAIN)
}

/// Commits `n` empty blocks on top of the head.
fn commit_blocks(s: &Storage, n: u64) {
    for _ in 0..n {
        let (b, r) = make_block(&s.head().unwrap(), Vec::new(), &WriteSet::default());
        s.commit_block(&b, &r, &WriteSet::default()).unwrap();
    }
}

/// A batch as a signer would make it: bytes and hash derived from the heights and a tag, so two
/// signatures of one batch differ.
fn batch(first: u64, last: u64, ts: u64, tag: u8) -> SignedBatch {
    SignedBatch {
        first,
        last,
        envelope: vec![tag; (first + last) as usize % 7 + 3],
        tx_hash: Hash([tag ^ first as u8; 32]),
        signature_timestamp: ts,
    }
}

/// Stages the next batch up to `last` with the next timestamp for clock `now`.
fn stage(s: &Storage, last: u64, now: u64, tag: u8) -> OutboxRow {
    let first = s.bridge_stats().unwrap().last_staged_height + 1;
    let ts = s.next_signature_timestamp(now).unwrap();
    s.stage_batch(&batch(first, last, ts, tag)).unwrap()
}

/// Everything the bridge API shows, as one comparable value.
fn observe(s: &Storage) -> String {
    format!(
        "{:?}\n{:?}\n{:?}\nnext ts {}\nlen {}",
        s.bridge_stats().unwrap(),
        s.outbox_rows().unwrap(),
        s.bridge_unstaged().unwrap(),
        s.next_signature_timestamp(0).unwrap(),
        s.outbox_len().unwrap(),
    )
}

/// The counters kept in the bridge table agree with the rows, and the ranges are contiguous.
fn check_invariants(s: &Storage) {
    let st = s.bridge_stats().unwrap();
    let rows = s.outbox_rows().unwrap();
    let submitted = rows
        .iter()
        .filter(|r| r.state == OutboxState::Submitted)
        .count() as u64;
    assert_eq!(st.in_flight, submitted, "{st:?} {rows:?}");
    assert_eq!(st.outbox_rows, rows.len() as u64);
    let mut next = st.last_anchored_height + 1;
    for r in &rows {
        assert_eq!(
            r.first, next,
            "rows must be contiguous from anchored + 1: {rows:?}"
        );
        next = r.last + 1;
    }
    assert_eq!(next - 1, st.last_staged_height, "{st:?} {rows:?}");
    assert!(st.last_staged_height <= st.head_height);
    for r in rows.iter().filter(|r| r.state == OutboxState::Staged) {
        assert!(r.signature_timestamp <= st.last_signature_timestamp);
    }
}

fn outbox_err(r: Result<impl std::fmt::Debug, StorageError>) -> OutboxError {
    match r {
        Err(StorageError::Outbox(e)) => e,
        other => panic!("expected an outbox error, got {other:?}"),
    }
}

#[test]
fn a_new_store_has_nothing_to_anchor() {
    let s = Storage::in_memory(CHAIN).unwrap();
    assert_eq!(
        s.bridge_stats().unwrap(),
        BridgeStats::default(),
        "genesis is never anchored: nothing is pending"
    );
    assert_eq!(s.bridge_unstaged().unwrap(), None);
    assert!(s.outbox_rows().unwrap().is_empty());
    assert_eq!(s.outbox_len().unwrap(), 0);
    assert_eq!(s.next_signature_timestamp(1_000).unwrap(), 1_000);
    assert_eq!(s.next_signature_timestamp(0).unwrap(), 1);
}

#[test]
fn committed_blocks_are_unanchored_without_writing_any_row() {
    let s = Storage::in_memory(CHAIN).unwrap();
    commit_blocks(&s, 5);
    let st = s.bridge_stats().unwrap();
    assert_eq!(st.head_height, 5);
    assert_eq!(st.backlog_blocks, 5);
    assert_eq!(st.unstaged_blocks, 5);
    assert_eq!((st.last_anchored_height, st.last_staged_height), (0, 0));
    assert_eq!(s.bridge_unstaged().unwrap(), Some(1..=5));
    // With the bridge disabled nothing accumulates: no outbox row, no per-block record.
    assert_eq!(s.outbox_len().unwrap(), 0);
    check_invariants(&s);
}

#[test]
fn batches_are_staged_in_order_with_no_gap_and_no_overlap() {
    let s = Storage::in_memory(CHAIN).unwrap();
    commit_blocks(&s, 6);
    let row = stage(&s, 2, 1_000, 1);
    assert_eq!(row.heights(), 1..=2);
    assert_eq!(row.state, OutboxState::Staged);
    assert_eq!(
        (row.attempts, row.resigns, row.last_error.clone()),
        (0, 0, None)
    );
    assert_eq!(s.outbox_row(1).unwrap(), Some(row.clone()));
    assert_eq!(s.bridge_unstaged().unwrap(), Some(3..=6));
    let before = observe(&s);

    // Every refusal changes nothing.
    let ts = s.next_signature_timestamp(2_000).unwrap();
    assert_eq!(
        outbox_err(s.stage_batch(&batch(2, 4, ts, 2))),
        OutboxError::NotNextBatch { staged: 2, got: 2 },
        "overlap"
    );
    assert_eq!(
        outbox_err(s.stage_batch(&batch(1, 2, ts, 2))),
        OutboxError::NotNextBatch { staged: 2, got: 1 },
        "the same batch again"
    );
    let e = outbox_err(s.stage_batch(&batch(4, 5, ts, 2)));
    assert_eq!(e, OutboxError::NotNextBatch { staged: 2, got: 4 }, "gap");
    assert!(e.to_string().contains("must start at 3"), "{e}");
    assert_eq!(
        outbox_err(s.stage_batch(&batch(3, 7, ts, 2))),
        OutboxError::BeyondHead { last: 7, head: 6 }
    );
    assert_eq!(
        outbox_err(s.stage_batch(&batch(3, 2, ts, 2))),
        OutboxError::BadRange { first: 3, last: 2 }
    );
    assert_eq!(
        outbox_err(s.stage_batch(&batch(0, 2, ts, 2))),
        OutboxError::BadRange { first: 0, last: 2 }
    );
    assert_eq!(
        outbox_err(s.stage_batch(&batch(3, 4, row.signature_timestamp, 2))),
        OutboxError::StaleTimestamp {
            last: row.signature_timestamp,
            got: row.signature_timestamp
        }
    );
    assert_eq!(observe(&s), before);

    // The next batch, then one up to the head.
    stage(&s, 3, 2_000, 3);
    stage(&s, 6, 3_000, 4);
    assert_eq!(s.bridge_unstaged().unwrap(), None);
    let rows = s.outbox_rows().unwrap();
    let ranges: Vec<_> = rows.iter().map(OutboxRow::heights).collect();
    assert_eq!(ranges, vec![1..=2, 3..=3, 4..=6]);
    assert_eq!(s.outbox_pending().unwrap(), rows);
    assert_eq!(s.outbox_len().unwrap(), 3);
    let st = s.bridge_stats().unwrap();
    assert_eq!((st.last_staged_height, st.unstaged_blocks), (6, 0));
    assert_eq!((st.last_anchored_height, st.backlog_blocks), (0, 6));
    check_invariants(&s);
    // A block committed after staging is simply the next unstaged height.
    commit_blocks(&s, 1);
    assert_eq!(s.bridge_unstaged().unwrap(), Some(7..=7));
}

#[test]
fn delivery_advances_the_anchored_height_only_over_a_contiguous_run() {
    let s = Storage::in_memory(CHAIN).unwrap();
    commit_blocks(&s, 5);
    stage(&s, 2, 10, 1);
    stage(&s, 3, 10, 2);
    stage(&s, 5, 10, 3);

    let r = s.outbox_mark_submitted(1).unwrap();
    assert_eq!((r.state, r.attempts), (OutboxState::Submitted, 1));
    // A resend of the same bytes: one more attempt, still one in flight.
    let r = s.outbox_mark_submitted(1).unwrap();
    assert_eq!((r.state, r.attempts), (OutboxState::Submitted, 2));
    s.outbox_mark_submitted(4).unwrap();
    assert_eq!(s.bridge_stats().unwrap().in_flight, 2);
    check_invariants(&s);

    // Batch 4..=5 is confirmed first: nothing below it is, so nothing is anchored yet and the
    // row stays (delivered), out of the pending list.
    assert_eq!(s.outbox_mark_delivered(4).unwrap(), 0);
    let st = s.bridge_stats().unwrap();
    assert_eq!(
        (st.last_anchored_height, st.delivered_total, st.in_flight),
        (0, 1, 1)
    );
    assert_eq!(
        s.outbox_row(4).unwrap().map(|r| r.state),
        Some(OutboxState::Delivered)
    );
    let pending: Vec<u64> = s
        .outbox_pending()
        .unwrap()
        .iter()
        .map(|r| r.first)
        .collect();
    assert_eq!(pending, vec![1, 3]);
    check_invariants(&s);

    assert_eq!(s.outbox_mark_delivered(1).unwrap(), 2);
    assert_eq!(s.outbox_row(1).unwrap(), None, "anchored rows are removed");
    check_invariants(&s);
    // A staged row found delivered (e.g. after a restart, by querying its hash) needs no
    // submission first; it closes the run up to 5.
    assert_eq!(s.outbox_mark_delivered(3).unwrap(), 5);
    let st = s.bridge_stats().unwrap();
    assert_eq!(st.last_anchored_height, 5);
    assert_eq!(st.backlog_blocks, 0);
    assert_eq!(st.delivered_total, 3);
    assert_eq!(st.in_flight, 0);
    assert_eq!(s.outbox_len().unwrap(), 0);
    assert!(s.outbox_pending().unwrap().is_empty());
    check_invariants(&s);

    // The delivered rows are gone: marking them again is refused and changes nothing.
    let before = observe(&s);
    assert_eq!(
        outbox_err(s.outbox_mark_delivered(1)),
        OutboxError::NoSuchBatch(1)
    );
    assert_eq!(
        outbox_err(s.outbox_mark_submitted(3)),
        OutboxError::NoSuchBatch(3)
    );
    assert_eq!(observe(&s), before);
}

#[test]
fn a_failed_batch_is_replaced_by_a_resigned_one_for_the_same_heights() {
    let s = Storage::in_memory(CHAIN).unwrap();
    commit_blocks(&s, 4);
    let first = stage(&s, 2, 100, 1);
    stage(&s, 4, 100, 2);
    s.outbox_mark_submitted(1).unwrap();
    let failed = s.outbox_mark_failed(1, "insufficientCredits").unwrap();
    assert_eq!(failed.state, OutboxState::Failed);
    assert_eq!(failed.last_error.as_deref(), Some("insufficientCredits"));
    let st = s.bridge_stats().unwrap();
    assert_eq!(
        (st.failed_total, st.in_flight, st.last_anchored_height),
        (1, 0, 0)
    );
    // A failed row still needs work: it is pending, and nothing is anchored past it.
    assert_eq!(s.outbox_pending().unwrap()[0], failed);
    assert_eq!(s.outbox_mark_delivered(3).unwrap(), 0);
    check_invariants(&s);

    let before = observe(&s);
    // Other heights, a used timestamp, a row that is not failed, no row: refused, unchanged.
    let ts = s.next_signature_timestamp(50).unwrap();
    assert!(ts > first.signature_timestamp);
    assert_eq!(
        outbox_err(s.replace_failed(&batch(1, 3, ts, 9))),
        OutboxError::HeightsMismatch {
            first: 1,
            stored_last: 2,
            got_last: 3
        }
    );
    assert_eq!(
        outbox_err(s.replace_failed(&batch(1, 2, first.signature_timestamp, 9))),
        OutboxError::StaleTimestamp {
            last: ts - 1,
            got: first.signature_timestamp
        }
    );
    assert_eq!(
        outbox_err(s.replace_failed(&batch(3, 4, ts, 9))),
        OutboxError::Transition {
            first: 3,
            from: OutboxState::Delivered,
            to: OutboxState::Staged
        }
    );
    assert_eq!(
        outbox_err(s.replace_failed(&batch(5, 5, ts, 9))),
        OutboxError::NoSuchBatch(5)
    );
    // A failed row is never submitted, delivered or failed again as is.
    for e in [
        outbox_err(s.outbox_mark_submitted(1)),
        outbox_err(s.outbox_mark_delivered(1)),
        outbox_err(s.outbox_mark_failed(1, "again")),
    ] {
        assert!(
            matches!(
                e,
                OutboxError::Transition {
                    first: 1,
                    from: OutboxState::Failed,
                    ..
                }
            ),
            "{e:?}"
        );
    }
    assert_eq!(observe(&s), before);

    let resigned = s.replace_failed(&batch(1, 2, ts, 9)).unwrap();
    assert_eq!(resigned.heights(), 1..=2);
    assert_eq!(resigned.state, OutboxState::Staged);
    assert_eq!((resigned.attempts, resigned.resigns), (0, 1));
    assert_eq!(resigned.envelope.0, batch(1, 2, ts, 9).envelope);
    assert_ne!(resigned.tx_hash, first.tx_hash);
    assert_eq!(resigned.signature_timestamp, ts);
    assert_eq!(resigned.last_error, None);
    assert_eq!(s.outbox_row(1).unwrap(), Some(resigned.clone()));
    let st = s.bridge_stats().unwrap();
    assert_eq!(st.last_signature_timestamp, ts);
    assert_eq!(st.last_staged_height, 4, "re-signing stages nothing new");
    check_invariants(&s);

    // The new bytes land: everything up to 4 is anchored.
    s.outbox_mark_submitted(1).unwrap();
    assert_eq!(s.outbox_mark_delivered(1).unwrap(), 4);
    let st = s.bridge_stats().unwrap();
    assert_eq!((st.delivered_total, st.failed_total), (2, 1));
    check_invariants(&s);
}

#[test]
fn rows_that_are_delivered_cannot_fail_or_be_resubmitted() {
    let s = Storage::in_memory(CHAIN).unwrap();
    commit_blocks(&s, 2);
    stage(&s, 1, 1, 1);
    stage(&s, 2, 1, 2);
    s.outbox_mark_delivered(2).unwrap();
    let before = observe(&s);
    for (e, to) in [
        (
            outbox_err(s.outbox_mark_submitted(2)),
            OutboxState::Submitted,
        ),
        (
            outbox_err(s.outbox_mark_failed(2, "x")),
            OutboxState::Failed,
        ),
        (
            outbox_err(s.outbox_mark_delivered(2)),
            OutboxState::Delivered,
        ),
    ] {
        assert_eq!(
            e,
            OutboxError::Transition {
                first: 2,
                from: OutboxState::Delivered,
                to
            }
        );
        assert!(
            e.to_string().contains("is delivered; it cannot become"),
            "{e}"
        );
    }
    assert_eq!(observe(&s), before);
    // A logical refusal is not a failure of the store.
    assert!(!StorageError::from(OutboxError::NoSuchBatch(9)).is_failure());
}

#[test]
fn signature_timestamps_strictly_increase_even_when_the_clock_goes_back() {
    let s = Storage::in_memory(CHAIN).unwrap();
    commit_blocks(&s, 3);
    let a = stage(&s, 1, 5_000, 1).signature_timestamp;
    assert_eq!(a, 5_000);
    // Proposing does not consume: the same proposal until a row uses it.
    assert_eq!(s.next_signature_timestamp(5_000).unwrap(), 5_001);
    assert_eq!(s.next_signature_timestamp(5_000).unwrap(), 5_001);
    // The clock went back an hour: still above the last one.
    let b = stage(&s, 2, 5_000 - 3_600, 2).signature_timestamp;
    assert_eq!(b, 5_001);
    // The clock is ahead: it is used as is.
    let c = stage(&s, 3, 9_000, 3).signature_timestamp;
    assert_eq!(c, 9_000);
    assert_eq!(s.bridge_stats().unwrap().last_signature_timestamp, 9_000);
}

#[test]
fn the_bridge_state_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("accumen.redb");
    let before = {
        let s = Storage::open(&path, &params()).unwrap();
        commit_blocks(&s, 6);
        stage(&s, 2, 7_000, 1);
        stage(&s, 4, 7_000, 2);
        s.outbox_mark_submitted(1).unwrap();
        s.outbox_mark_delivered(1).unwrap();
        s.outbox_mark_submitted(3).unwrap();
        check_invariants(&s);
        observe(&s)
    };
    let s = Storage::open(&path, &params()).unwrap();
    assert_eq!(observe(&s), before);
    let st = s.bridge_stats().unwrap();
    assert_eq!(
        (st.last_anchored_height, st.last_staged_height, st.in_flight),
        (2, 4, 1)
    );
    let pending = s.outbox_pending().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(
        (pending[0].first, pending[0].state),
        (3, OutboxState::Submitted)
    );
    // A clock that went back across the restart never reuses a timestamp.
    assert_eq!(s.next_signature_timestamp(0).unwrap(), 7_002);
    // And the bridge goes on from where it was.
    stage(&s, 6, 0, 3);
    assert_eq!(s.outbox_mark_delivered(3).unwrap(), 4);
    assert_eq!(s.outbox_mark_delivered(5).unwrap(), 6);
    check_invariants(&s);
}

#[test]
fn a_failed_bridge_write_leaves_nothing_behind() {
    let s = Storage::in_memory(CHAIN).unwrap();
    commit_blocks(&s, 6);
    stage(&s, 2, 100, 1);
    stage(&s, 4, 100, 2);
    s.outbox_mark_submitted(3).unwrap();
    s.outbox_mark_failed(3, "badTimestamp").unwrap();
    s.outbox_mark_submitted(1).unwrap();
    let before = observe(&s);

    // Every write does all of its work, then the commit fails: nothing of it is visible.
    s.set_fail_before_commit(true);
    let ts = s.next_signature_timestamp(100).unwrap();
    let injected = |r: Result<(), StorageError>| {
        assert!(matches!(r, Err(StorageError::Injected)), "{r:?}");
    };
    injected(s.stage_batch(&batch(5, 6, ts, 3)).map(drop));
    injected(s.outbox_mark_submitted(1).map(drop));
    injected(s.outbox_mark_delivered(1).map(drop));
    injected(s.outbox_mark_failed(1, "x").map(drop));
    injected(s.replace_failed(&batch(3, 4, ts, 4)).map(drop));
    assert_eq!(observe(&s), before);
    // In particular the timestamp was not consumed by the failed stage.
    assert_eq!(s.next_signature_timestamp(100).unwrap(), ts);

    // The same writes then succeed: nothing stale was left to collide with.
    s.set_fail_before_commit(false);
    s.stage_batch(&batch(5, 6, ts, 3)).unwrap();
    s.replace_failed(&batch(3, 4, ts + 1, 4)).unwrap();
    assert_eq!(s.outbox_mark_delivered(1).unwrap(), 2);
    check_invariants(&s);
}

#[test]
fn a_schema_2_file_without_the_bridge_table_gets_it_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("accumen.redb");
    {
        // What a data dir from an earlier schema-2 build holds: blocks, no bridge table.
        let s = Storage::open(&path, &params()).unwrap();
        commit_blocks(&s, 3);
        let txn = s.db.begin_write().unwrap();
        assert!(txn.delete_table(tables::BRIDGE).unwrap());
        txn.commit().unwrap();
    }
    let s = Storage::open(&path, &params()).unwrap();
    let st = s.bridge_stats().unwrap();
    assert_eq!(
        (st.head_height, st.backlog_blocks, st.last_anchored_height),
        (3, 3, 0)
    );
    assert_eq!(s.bridge_unstaged().unwrap(), Some(1..=3));
    stage(&s, 3, 1, 1);
    check_invariants(&s);
}
