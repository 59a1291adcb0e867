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
        let anchor = Anchor::parse(&entry.data.iter().map(|b| &b.0[..]).collect::<Vec<_>>()).ok()?;
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
