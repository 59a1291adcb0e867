//! The follower's check of the sequencer against its L0 anchors (actix-free; the actor is
//! `anchor_watcher`): read the data account's entries in order with `query_data_range`, keep the
//! Accumen anchors of this chain, and check each against the locally verified blocks
//! (`Anchor::check` on the headers). A sequencer that shows followers a chain different from the
//! one it anchored is caught here.
//!
//! Invariants and choices:
//! - Only verified blocks are compared: an anchor is checked once its last height is at or
//!   below the committed head (on a follower, everything committed was verified). Anchors ahead
//!   of it wait, in memory, until sync reaches them.
//! - A contradiction ([`AnchorCheckError::Contradiction`]) is a verdict on the sequencer: the
//!   caller halts sync exactly like a failed verification. Nothing else is: an L0 that cannot
//!   be reached or answers nonsense only delays the checks (`AnchorCheckError::L0`, retried).
//! - Entries that are not Accumen anchors of this chain (another format, another chain id, an
//!   entry whose transaction the L0 no longer returns, an entry hash that does not match its
//!   parts, a span wider than [`MAX_ANCHOR_SPAN`]) are skipped and counted, never halt.
//! - The entries are read in data-account order, but the sequencer's submitter may deliver
//!   concurrent batches out of height order, so coverage is tracked as ranges: `anchored` is the
//!   end of the run 1..=anchored covered by checked anchors (`Anchor::check_follows` along that
//!   run). A height never anchored (a gap) stops `anchored` there for good, which `/stats` shows;
//!   an anchor overlapping checked heights is still checked (a contradiction is one all the same).
//! - Trust: the L0 endpoint is trusted to report the data account truthfully (no L0 receipts
//!   are checked). A lying endpoint can halt a follower with a false contradiction, never make
//!   it accept a block: acceptance is `chain::verify`'s alone.
//! - Bounded: one page (≤ [`PAGE`] entries) per L0 call; at most [`MAX_HELD`] anchors held
//!   (waiting for sync plus checked beyond a gap); no further page is read while that many are
//!   held. One check reads at most [`MAX_ANCHOR_SPAN`] headers.
//! - The cursor (next entry index) lives in memory: at start every anchor is read and checked
//!   again from entry 0 (cheap next to sync: one L0 call per 100 anchors, one header read per
//!   block), so no state can disagree with the chain after a crash.

use std::collections::BTreeMap;

use crate::bridge::json::{ChainEntryRecord, Message};
use crate::bridge::{AccUrl, Anchor, AnchorError, L0Api, L0Error};
use crate::storage::StorageError;
use crate::types::{BlockHeader, Hash};

/// Entries asked for per `query_data_range` (the L0's maximum).
pub const PAGE: u64 = 100;
/// Most anchors held at once (waiting for sync, or checked beyond a gap).
pub const MAX_HELD: usize = 1_000;
/// Widest anchor checked (blocks); wider ones are skipped. The sequencer's
/// `bridge.stager.batch_size` (default 200) sets its anchors' width.
pub const MAX_ANCHOR_SPAN: u64 = 10_000;

/// What one entry came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An anchor of this chain that matches the verified blocks.
    Ok,
    /// Not an Accumen anchor of this chain (or not checkable): ignored.
    Skipped,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Skipped => "skipped",
        }
    }
}

/// An anchor that does not match the verified blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contradiction {
    /// Index of the entry in the data account.
    pub entry_index: u64,
    pub anchor: Anchor,
    /// Hash of the local verified block at `anchor.last_height`.
    pub local_last_hash: Hash,
    pub reason: AnchorError,
}

/// Why a round stopped.
#[derive(Debug, thiserror::Error)]
pub enum AnchorCheckError {
    /// The L0 could not answer now: retry later.
    #[error("reading the L0 anchors: {0}")]
    L0(#[from] L0Error),
    #[error("reading verified blocks: {0}")]
    Storage(#[from] StorageError),
    /// A verdict: the sequencer anchored a chain other than the one it served.
    #[error(
        "L0 anchor (data entry {}) for heights {}..={} contradicts the verified blocks: {} \
         (anchored block {} hash {}, verified block hash {})",
        .0.entry_index, .0.anchor.first_height, .0.anchor.last_height, .0.reason,
        .0.anchor.last_height, .0.anchor.last_block_hash, .0.local_last_hash
    )]
    Contradiction(Box<Contradiction>),
}

/// An anchor read from the L0, with where it was read.
#[derive(Debug, Clone)]
struct Held {
    index: u64,
    anchor: Anchor,
}

/// The check's state (module docs).
#[derive(Debug)]
pub struct AnchorChecker {
    chain_id: String,
    account: AccUrl,
    /// Next data entry index to read.
    cursor: u64,
    /// Read, not yet checked (their last height is above the verified head), in read order.
    waiting: Vec<Held>,
    /// Checked anchors not joined to the run from 1 yet, by first height.
    beyond: BTreeMap<u64, Anchor>,
    /// The checked anchor ending the run 1..=anchored (`None` before the first).
    run_end: Option<Anchor>,
}

impl AnchorChecker {
    pub fn new(chain_id: impl Into<String>, account: AccUrl) -> AnchorChecker {
        AnchorChecker {
            chain_id: chain_id.into(),
            account,
            cursor: 0,
            waiting: Vec::new(),
            beyond: BTreeMap::new(),
            run_end: None,
        }
    }

    /// Highest height `h` such that 1..=h are verified and covered by checked anchors.
    pub fn anchored(&self) -> u64 {
        self.run_end.as_ref().map_or(0, |a| a.last_height)
    }

    /// Entries read so far.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// Anchors read but waiting for sync to reach them.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// One round: checks the waiting anchors that sync has reached, then reads at most one page
    /// of new entries and checks those it can. `head` is the verified head; `header(h)` reads
    /// the verified header at height `h` (`None` if not committed). Every entry's outcome goes
    /// to `tally`. Returns how many entries were read (0: nothing new on the L0, or too many
    /// held).
    pub async fn round<L: L0Api>(
        &mut self,
        l0: &L,
        head: u64,
        header: &impl Fn(u64) -> Result<Option<BlockHeader>, StorageError>,
        tally: &mut impl FnMut(Outcome),
    ) -> Result<u64, AnchorCheckError> {
        self.check_waiting(head, header, tally)?;
        let room = MAX_HELD.saturating_sub(self.waiting.len() + self.beyond.len()) as u64;
        if room == 0 {
            return Ok(0);
        }
        let range = l0
            .query_data_range(&self.account, self.cursor, room.min(PAGE))
            .await?;
        // Only what was asked for: an L0 answering more is not trusted with our memory.
        let mut read = 0;
        for record in range.records.iter().take(room.min(PAGE) as usize) {
            let index = self.cursor;
            self.cursor += 1;
            read += 1;
            match self.anchor_of(record) {
                None => tally(Outcome::Skipped),
                Some(anchor) if anchor.last_height <= head => {
                    self.check_one(Held { index, anchor }, header, tally)?
                }
                Some(anchor) => self.waiting.push(Held { index, anchor }),
            }
        }
        Ok(read)
    }

    fn check_waiting(
        &mut self,
        head: u64,
        header: &impl Fn(u64) -> Result<Option<BlockHeader>, StorageError>,
        tally: &mut impl FnMut(Outcome),
    ) -> Result<(), AnchorCheckError> {
        if self.waiting.iter().all(|h| h.anchor.last_height > head) {
            return Ok(());
        }
        let (ready, rest): (Vec<Held>, Vec<Held>) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|h| h.anchor.last_height <= head);
        self.waiting = rest;
        for held in ready {
            self.check_one(held, header, tally)?;
        }
        Ok(())
    }

    /// The anchor an entry holds, if it is a well-formed Accumen anchor of this chain.
    fn anchor_of(&self, record: &ChainEntryRecord) -> Option<Anchor> {
        let Some(Message::Transaction { transaction }) =
            record.value.as_ref().and_then(|v| v.message.as_ref())
        else {
            return None;
        };
        let entry = &transaction.body.entry;
        // The entry hash is what the L0 indexes; parts that do not hash to it are not that entry.
        if entry.hash() != record.entry {
            return None;
        }
        let anchor =
            Anchor::parse(&entry.data.iter().map(|b| &b.0[..]).collect::<Vec<_>>()).ok()?;
        (anchor.chain_id == self.chain_id
            && anchor.last_height - anchor.first_height < MAX_ANCHOR_SPAN)
            .then_some(anchor)
    }

    fn check_one(
        &mut self,
        held: Held,
        header: &impl Fn(u64) -> Result<Option<BlockHeader>, StorageError>,
        tally: &mut impl FnMut(Outcome),
    ) -> Result<(), AnchorCheckError> {
        let a = &held.anchor;
        let mut headers = Vec::with_capacity((a.last_height - a.first_height + 1) as usize);
        for h in a.first_height..=a.last_height {
            match header(h)? {
                Some(hd) => headers.push(hd),
                // Not verified after all (the caller's head was ahead of storage): wait.
                None => {
                    self.waiting.push(held);
                    return Ok(());
                }
            }
        }
        if let Err(reason) = a.check(&self.chain_id, &headers) {
            let local_last_hash = headers.last().map(BlockHeader::hash).unwrap_or_default();
            return Err(AnchorCheckError::Contradiction(Box::new(Contradiction {
                entry_index: held.index,
                anchor: held.anchor,
                local_last_hash,
                reason,
            })));
        }
        tally(Outcome::Ok);
        self.cover(held.anchor);
        Ok(())
    }

    /// Records checked coverage and extends the run from height 1 as far as it now reaches.
    fn cover(&mut self, anchor: Anchor) {
        let end = self.anchored();
        if anchor.last_height <= end {
            // Heights already covered, and it matched: nothing new.
            return;
        }
        if anchor.first_height > end + 1 {
            // Beyond a gap (perhaps one a later entry fills): kept until the run reaches it.
            match self.beyond.get(&anchor.first_height) {
                Some(b) if b.last_height >= anchor.last_height => {}
                _ => {
                    self.beyond.insert(anchor.first_height, anchor);
                }
            }
            return;
        }
        self.extend(anchor);
        loop {
            let next_height = self.anchored() + 1;
            let Some(entry) = self.beyond.first_entry() else {
                break;
            };
            if *entry.key() > next_height {
                break;
            }
            let next = entry.remove();
            if next.last_height > self.anchored() {
                self.extend(next);
            }
        }
    }

    /// `anchor` starts at or below `anchored + 1` and ends above it.
    fn extend(&mut self, anchor: Anchor) {
        if anchor.check_follows(self.run_end.as_ref()).is_err() {
            tracing::warn!(
                first = anchor.first_height,
                last = anchor.last_height,
                anchored = self.anchored(),
                "follower: an L0 anchor overlaps heights already anchored (it matched the blocks)"
            );
        }
        self.run_end = Some(anchor);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bridge::fake_l0::FakeL0;
    use crate::chain::tests::params;
    use crate::types::WriteSet;

    const CHAIN: &str = "accumen-test";

    /// Headers 0..=n of a chain (index = height).
    fn chain(n: u64) -> Vec<BlockHeader> {
        let mut p = params();
        p.chain_id = CHAIN.into();
        let mut out = vec![p.genesis().header];
        for _ in 0..n {
            let parent = out.last().unwrap().clone();
            out.push(BlockHeader::child(
                &parent,
                parent.timestamp_ms + 1,
                &[],
                &[],
                &WriteSet::default(),
            ));
        }
        out
    }

    fn anchor(c: &[BlockHeader], first: u64, last: u64) -> Anchor {
        Anchor::from_headers(CHAIN, &c[first as usize..=last as usize]).unwrap()
    }

    fn account() -> AccUrl {
        AccUrl::parse("acc://accumen.acme/anchors").unwrap()
    }

    /// Runs rounds until one reads nothing; returns the tallies (ok, skipped).
    async fn settle(
        ch: &mut AnchorChecker,
        l0: &FakeL0,
        c: &[BlockHeader],
        head: u64,
    ) -> Result<(u64, u64), AnchorCheckError> {
        let header = |h: u64| Ok((h <= head).then(|| c.get(h as usize).cloned()).flatten());
        let (mut ok, mut skipped) = (0, 0);
        let mut tally = |o: Outcome| match o {
            Outcome::Ok => ok += 1,
            Outcome::Skipped => skipped += 1,
        };
        while ch.round(l0, head, &header, &mut tally).await? > 0 {}
        Ok((ok, skipped))
    }

    #[tokio::test]
    async fn matching_anchors_advance_the_anchored_height_only_over_verified_blocks() {
        let c = chain(10);
        let l0 = FakeL0::default();
        for (f, l) in [(1, 3), (4, 6), (7, 10)] {
            l0.write_entry(anchor(&c, f, l).parts());
        }
        let mut ch = AnchorChecker::new(CHAIN, account());
        // Only 1..=5 verified: the second anchor waits, the third too.
        assert_eq!(settle(&mut ch, &l0, &c, 5).await.unwrap(), (1, 0));
        assert_eq!((ch.anchored(), ch.waiting(), ch.cursor()), (3, 2, 3));
        // Sync reaches 10: both are checked without reading the L0 again.
        assert_eq!(settle(&mut ch, &l0, &c, 10).await.unwrap(), (2, 0));
        assert_eq!((ch.anchored(), ch.waiting()), (10, 0));
    }

    #[tokio::test]
    async fn a_contradicting_anchor_is_a_contradiction_naming_both_hashes() {
        let c = chain(6);
        let l0 = FakeL0::default();
        l0.write_entry(anchor(&c, 1, 3).parts());
        let mut bad = anchor(&c, 4, 6);
        bad.last_block_hash = Hash([7; 32]);
        l0.write_entry(bad.parts());
        let mut ch = AnchorChecker::new(CHAIN, account());
        // Not verified yet: no verdict.
        assert_eq!(settle(&mut ch, &l0, &c, 5).await.unwrap(), (1, 0));
        let e = settle(&mut ch, &l0, &c, 6).await.unwrap_err();
        let AnchorCheckError::Contradiction(x) = &e else {
            panic!("{e}");
        };
        assert_eq!((x.entry_index, x.anchor.last_height), (1, 6));
        assert_eq!(x.local_last_hash, c[6].hash());
        let text = e.to_string();
        assert!(text.contains(&Hash([7; 32]).to_string()), "{text}");
        assert!(text.contains(&c[6].hash().to_string()), "{text}");
        // A wrong state root or blocks root is a contradiction too.
        for field in 0..2 {
            let l0 = FakeL0::default();
            let mut bad = anchor(&c, 1, 6);
            if field == 0 {
                bad.state_root = Hash([1; 32]);
            } else {
                bad.blocks_root = Hash([1; 32]);
            }
            l0.write_entry(bad.parts());
            let mut ch = AnchorChecker::new(CHAIN, account());
            assert!(matches!(
                settle(&mut ch, &l0, &c, 6).await,
                Err(AnchorCheckError::Contradiction(_))
            ));
        }
    }

    #[tokio::test]
    async fn junk_and_foreign_entries_are_skipped() {
        let c = chain(4);
        let l0 = FakeL0::default();
        l0.write_entry(vec![b"hello".to_vec()]);
        let mut other = anchor(&c, 1, 2);
        other.chain_id = "another-chain".into();
        l0.write_entry(other.parts());
        let mut parts = anchor(&c, 1, 2).parts();
        parts[2] = vec![0; 7];
        l0.write_entry(parts);
        let mut genesis = anchor(&c, 1, 2).parts();
        genesis[2] = 0u64.to_be_bytes().to_vec();
        l0.write_entry(genesis);
        let mut wide = anchor(&c, 1, 2);
        wide.last_height = wide.first_height + MAX_ANCHOR_SPAN;
        l0.write_entry(wide.parts());
        l0.write_entry(anchor(&c, 1, 4).parts());
        let mut ch = AnchorChecker::new(CHAIN, account());
        assert_eq!(settle(&mut ch, &l0, &c, 4).await.unwrap(), (1, 5));
        assert_eq!(ch.anchored(), 4);
    }

    #[tokio::test]
    async fn out_of_order_batches_join_and_a_gap_stops_the_anchored_height() {
        let c = chain(12);
        let l0 = FakeL0::default();
        // Delivered out of order (concurrent submissions): 4..=6 before 1..=3.
        l0.write_entry(anchor(&c, 4, 6).parts());
        l0.write_entry(anchor(&c, 1, 3).parts());
        // A duplicate of heights already covered, then a gap (7..=8 never anchored).
        l0.write_entry(anchor(&c, 2, 5).parts());
        l0.write_entry(anchor(&c, 9, 12).parts());
        let mut ch = AnchorChecker::new(CHAIN, account());
        assert_eq!(settle(&mut ch, &l0, &c, 12).await.unwrap(), (4, 0));
        assert_eq!(ch.anchored(), 6);
        // The gap filled later: the run reaches the end.
        l0.write_entry(anchor(&c, 7, 8).parts());
        assert_eq!(settle(&mut ch, &l0, &c, 12).await.unwrap(), (1, 0));
        assert_eq!(ch.anchored(), 12);
    }

    #[tokio::test]
    async fn an_unreachable_l0_is_an_l0_error_and_the_check_resumes() {
        let c = chain(3);
        let l0 = FakeL0::default();
        l0.write_entry(anchor(&c, 1, 3).parts());
        l0.set_down(true);
        let mut ch = AnchorChecker::new(CHAIN, account());
        assert!(matches!(
            settle(&mut ch, &l0, &c, 3).await,
            Err(AnchorCheckError::L0(_))
        ));
        assert_eq!((ch.anchored(), ch.cursor()), (0, 0));
        l0.set_down(false);
        assert_eq!(settle(&mut ch, &l0, &c, 3).await.unwrap(), (1, 0));
        assert_eq!(ch.anchored(), 3);
    }

    #[tokio::test]
    async fn reading_stops_while_too_many_anchors_wait() {
        let c = chain(2);
        let l0 = FakeL0::default();
        // One-block anchors far ahead of sync (heights 1..=MAX_HELD + 50, only 2 verified).
        let mut prev = c[2].clone();
        let mut far = c.clone();
        for _ in 3..=(MAX_HELD as u64 + 50) {
            let next =
                BlockHeader::child(&prev, prev.timestamp_ms + 1, &[], &[], &WriteSet::default());
            far.push(next.clone());
            prev = next;
        }
        for h in 1..=(MAX_HELD as u64 + 50) {
            l0.write_entry(anchor(&far, h, h).parts());
        }
        let mut ch = AnchorChecker::new(CHAIN, account());
        assert_eq!(settle(&mut ch, &l0, &c, 2).await.unwrap(), (2, 0));
        assert_eq!(ch.waiting(), MAX_HELD);
        assert_eq!(ch.cursor(), MAX_HELD as u64 + 2);
    }
}
