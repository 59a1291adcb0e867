//! Syncing a follower (actix-free): the wire format of `GET /v1/sync/blocks`, the checks on an
//! answer before anything is verified, the follower's sync state as `/stats` and `/health` see
//! it, and the retry backoff.
//!
//! Wire format (both roles share these types, RUNBOOK "Follower"), in two encodings of the same
//! answer:
//! - JSON (the default): `{"sequencer_height": H, "blocks": ["<hex of Block::encode()>", ...]}`.
//! - Binary, when the request says `Accept: application/octet-stream` ([`BINARY_ANSWER`]): the
//!   sequencer height (u64 little-endian), the block count (u32 LE), then each block as its
//!   length (u32 LE) and its bytes. Half the size and no hex to write or read: serving the
//!   stress tool's watcher as JSON took about 2% of the sequencer's CPU at the peak, and a
//!   follower decoded twice the bytes. A node that does not know it answers JSON (its
//!   `Content-Type` says which), so followers ask for it and read either.
//!
//! Each block is in its canonical bytes (header, signature and its transactions), in height
//! order from the requested `from`: canonical bytes rather than the display JSON of
//! `/v1/blocks`, so the follower decodes exactly what the sequencer signed (`Block::decode`
//! refuses non-canonical bytes) and no field can be reinterpreted on the way. Both encodings
//! carry the same blocks for the same request (the byte bound counts hex bytes in both).
//!
//! Invariants:
//! - An answer is accepted only whole: every block decodes, and the heights are exactly
//!   `from, from + 1, ...` ([`parse_batch`], [`parse_binary_batch`]); any other answer is a
//!   [`SyncError`] and nothing of it is committed. Such an answer, like a block that fails
//!   `chain::verify`, is a verdict on the sequencer ([`SyncError::is_verdict`]): the follower
//!   halts and stays halted.
//! - An answer is bounded before it is parsed (the fetcher caps the body at
//!   [`MAX_ANSWER_BYTES`], a binary one at [`MAX_BINARY_ANSWER_BYTES`]: the same blocks at most,
//!   without hex) and both parsers refuse more than the blocks asked for (the binary one before
//!   reading any frame), so one sequencer answer cannot make a follower hold or compute more
//!   than one batch.
//! - Transport trouble (no connection, a timeout, a 5xx) is never a verdict: the follower is
//!   `stale` and retries with [`Backoff`].

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::VerifyError;
use crate::types::Block;

/// Hex bytes of blocks a sequencer puts in one answer, except that a single larger block is
/// sent alone (so the chain can always be followed).
pub const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;

/// Largest answer body a follower reads: the largest possible block (its transactions are at
/// most `MAX_BLOCK_TX_BYTES`) in hex, with room for its header and the JSON framing.
pub const MAX_ANSWER_BYTES: usize = 2 * crate::vm::gas::MAX_BLOCK_TX_BYTES as usize + 1024 * 1024;

/// Largest binary answer body a follower reads: the same largest block, not hex, with the same
/// room for its header and the framing. (A binary answer carries what a JSON one of half its
/// hex would: `MAX_ANSWER_BYTES` would let a sequencer send twice the blocks' bytes.)
pub const MAX_BINARY_ANSWER_BYTES: usize =
    crate::vm::gas::MAX_BLOCK_TX_BYTES as usize + 1024 * 1024;

/// `GET /v1/sync/blocks` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncAnswer {
    /// The sequencer's committed height when it answered.
    pub sequencer_height: u64,
    /// Canonical block bytes, hex, from the requested height on.
    pub blocks: Vec<String>,
}

/// The media type of the binary answer (module comment).
pub const BINARY_ANSWER: &str = "application/octet-stream";

/// Whether an answer's `Content-Type` value names the binary answer (parameters ignored).
pub fn is_binary_answer(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|m| m.trim().eq_ignore_ascii_case(BINARY_ANSWER))
}

/// A fetched answer's body, in the encoding its `Content-Type` named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerBody {
    Json(Vec<u8>),
    Binary(Vec<u8>),
}

/// A parsed answer.
#[derive(Debug)]
pub struct Batch {
    pub sequencer_height: u64,
    pub blocks: Vec<Block>,
}

/// Why sync stopped or paused.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("the sequencer's answer is not a sync answer: {0}")]
    Malformed(String),
    #[error("block {index} of the answer (height {height}) does not decode: {reason}")]
    Undecodable {
        index: usize,
        height: u64,
        reason: String,
    },
    #[error("block {index} of the answer is at height {got}, expected {expected}")]
    SkippedHeight {
        index: usize,
        expected: u64,
        got: u64,
    },
    #[error("the answer holds {got} blocks, more than the {asked} asked for")]
    TooMany { asked: u32, got: usize },
    #[error("block {height} does not verify: {source}")]
    Verify {
        height: u64,
        #[source]
        source: VerifyError,
    },
}

impl SyncError {
    /// Whether this says the sequencer served a chain this node refuses (halt for good), rather
    /// than this node being unable to check it now (retry).
    pub fn is_verdict(&self) -> bool {
        match self {
            SyncError::Verify { source, .. } => source.is_invalid_block(),
            _ => true,
        }
    }
}

/// Parses and checks an answer in either encoding (see [`parse_batch`]).
pub fn parse_answer(body: &AnswerBody, from: u64, asked: u32) -> Result<Batch, SyncError> {
    match body {
        AnswerBody::Json(b) => parse_batch(b, from, asked),
        AnswerBody::Binary(b) => parse_binary_batch(b, from, asked),
    }
}

/// Parses and checks a JSON answer to a request for at most `asked` blocks from height `from`.
pub fn parse_batch(body: &[u8], from: u64, asked: u32) -> Result<Batch, SyncError> {
    let answer: SyncAnswer =
        serde_json::from_slice(body).map_err(|e| SyncError::Malformed(e.to_string()))?;
    if answer.blocks.len() > asked as usize {
        return Err(SyncError::TooMany {
            asked,
            got: answer.blocks.len(),
        });
    }
    let mut blocks = Vec::with_capacity(answer.blocks.len());
    for (index, hex_block) in answer.blocks.iter().enumerate() {
        let bytes = decode_hex_block(hex_block).map_err(|e| SyncError::Undecodable {
            index,
            height: from + index as u64,
            reason: format!("hex: {e}"),
        })?;
        blocks.push(check_block(&bytes, from, index)?);
    }
    Ok(Batch {
        sequencer_height: answer.sequencer_height,
        blocks,
    })
}

/// Parses and checks a binary answer ([`BINARY_ANSWER`]) to a request for at most `asked`
/// blocks from height `from`: the same checks as [`parse_batch`], and the framing must be
/// exact (no bytes after the last block).
pub fn parse_binary_batch(body: &[u8], from: u64, asked: u32) -> Result<Batch, SyncError> {
    if body.len() > MAX_BINARY_ANSWER_BYTES {
        return Err(SyncError::Malformed(format!(
            "binary answer of {} bytes, more than {MAX_BINARY_ANSWER_BYTES}",
            body.len()
        )));
    }
    let (sequencer_height, frames) = split_binary_answer(body, asked)?;
    let blocks = frames
        .iter()
        .enumerate()
        .map(|(index, bytes)| check_block(bytes, from, index))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Batch {
        sequencer_height,
        blocks,
    })
}

/// The sequencer height and the block frames of a binary answer, not decoded: exact framing,
/// and a declared count above `asked` is refused before any frame is read (so a count cannot
/// make the reader allocate). The stress tool, which trusts the node it measures, decodes the
/// frames itself.
pub fn split_binary_answer(body: &[u8], asked: u32) -> Result<(u64, Vec<&[u8]>), SyncError> {
    let malformed = |what: String| SyncError::Malformed(format!("binary answer: {what}"));
    let (height, rest) = body
        .split_first_chunk::<8>()
        .ok_or_else(|| malformed(format!("{} bytes, too short for the height", body.len())))?;
    let (count, mut rest) = rest
        .split_first_chunk::<4>()
        .ok_or_else(|| malformed("no block count".into()))?;
    let count = u32::from_le_bytes(*count);
    if count > asked {
        return Err(SyncError::TooMany {
            asked,
            got: count as usize,
        });
    }
    // At most one frame per 4 bytes left, whatever `asked` allows.
    let mut frames = Vec::with_capacity((count as usize).min(rest.len() / 4));
    for index in 0..count {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| malformed(format!("block {index}: the body ends inside its length")))?;
        let len = u32::from_le_bytes(*len) as usize;
        if len > tail.len() {
            return Err(malformed(format!(
                "block {index} declares {len} bytes but only {} remain",
                tail.len()
            )));
        }
        let (frame, tail) = tail.split_at(len);
        frames.push(frame);
        rest = tail;
    }
    if !rest.is_empty() {
        return Err(malformed(format!(
            "{} bytes after the last of the {count} blocks",
            rest.len()
        )));
    }
    Ok((u64::from_le_bytes(*height), frames))
}

/// Block `index` of an answer from `from`: canonical bytes of a block at height `from + index`.
fn check_block(bytes: &[u8], from: u64, index: usize) -> Result<Block, SyncError> {
    let expected = from + index as u64;
    let block = Block::decode(bytes).map_err(|e| SyncError::Undecodable {
        index,
        height: expected,
        reason: e.to_string(),
    })?;
    if block.header.height != expected {
        return Err(SyncError::SkippedHeight {
            index,
            expected,
            got: block.header.height,
        });
    }
    Ok(block)
}

/// The leading blocks of `encoded` an answer carries: stopping before `max_bytes` of hex once
/// at least one block is in. Both encodings take the same blocks.
fn answer_blocks<B: AsRef<[u8]>>(encoded: impl IntoIterator<Item = B>, max_bytes: usize) -> Vec<B> {
    let mut out = Vec::new();
    let mut total = 0usize;
    for bytes in encoded {
        total += bytes.as_ref().len() * 2;
        if !out.is_empty() && total > max_bytes {
            break;
        }
        out.push(bytes);
    }
    out
}

/// Encodes blocks as a [`SyncAnswer`] (the sequencer's side), stopping before `max_bytes` of
/// hex once at least one block is in. The blocks come in their canonical encoding, as storage
/// keeps them (`Storage::block_bytes`), so serving one costs no decode and re-encode.
pub fn encode_answer<B: AsRef<[u8]>>(
    sequencer_height: u64,
    encoded: impl IntoIterator<Item = B>,
    max_bytes: usize,
) -> SyncAnswer {
    SyncAnswer {
        sequencer_height,
        blocks: answer_blocks(encoded, max_bytes)
            .iter()
            .map(|b| hex_string(b.as_ref()))
            .collect(),
    }
}

/// [`encode_answer`] in the binary encoding (module comment): the same blocks, framed.
pub fn encode_binary_answer<B: AsRef<[u8]>>(
    sequencer_height: u64,
    encoded: impl IntoIterator<Item = B>,
    max_bytes: usize,
) -> Vec<u8> {
    let blocks = answer_blocks(encoded, max_bytes);
    let len: usize = blocks.iter().map(|b| 4 + b.as_ref().len()).sum();
    let mut out = Vec::with_capacity(12 + len);
    out.extend_from_slice(&sequencer_height.to_le_bytes());
    // Lossless: at most MAX_SYNC_BATCH blocks are asked for, and a block is at most a few MiB
    // (`MAX_BLOCK_TX_BYTES`), far below u32::MAX.
    out.extend_from_slice(&(blocks.len() as u32).to_le_bytes());
    for b in &blocks {
        let b = b.as_ref();
        out.extend_from_slice(&(b.len() as u32).to_le_bytes());
        out.extend_from_slice(b);
    }
    out
}

/// Lower-case hex, by table: the `hex` crate's `encode` goes through a char iterator, which was
/// a visible share of the sequencer's CPU while followers (or the stress tool) fetched blocks
/// of thousands of transactions.
fn hex_string(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// The bytes of one hex block of an answer. `hex::decode_to_slice` rather than `hex::decode`:
/// the latter collects through a `Result` iterator and cost a follower (and the stress tool's
/// watcher, which parses the same answers) several times more than the decoding itself.
pub fn decode_hex_block(hex_block: &str) -> Result<Vec<u8>, hex::FromHexError> {
    // An odd length is refused by `decode_to_slice` itself (`OddLength`, before it compares
    // lengths), as by `hex::decode`.
    let mut bytes = vec![0u8; hex_block.len() / 2];
    hex::decode_to_slice(hex_block, &mut bytes)?;
    Ok(bytes)
}

/// A follower's sync state, as `/stats` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum SyncState {
    /// Behind the sequencer and fetching.
    Syncing = 0,
    /// At the sequencer's height (waiting on its next block).
    CaughtUp = 1,
    /// The sequencer cannot be reached (or answers errors): retrying with backoff.
    Stale = 2,
    /// The sequencer served a chain that does not verify: stopped until an operator acts.
    Halted = 3,
}

impl SyncState {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncState::Syncing => "syncing",
            SyncState::CaughtUp => "caught_up",
            SyncState::Stale => "stale",
            SyncState::Halted => "halted",
        }
    }

    fn from_u8(v: u8) -> SyncState {
        match v {
            1 => SyncState::CaughtUp,
            2 => SyncState::Stale,
            3 => SyncState::Halted,
            _ => SyncState::Syncing,
        }
    }
}

/// What the follower shows about its sync, read from atomics by `/stats` and `/health` (never
/// through the Syncer's mailbox, so it answers while a block is being verified).
#[derive(Debug, Default)]
pub struct SyncStatus {
    state: AtomicU8,
    /// The sequencer's height as of its last answer.
    pub sequencer_height: AtomicU64,
    /// Blocks and transactions replayed (verified and committed) since start.
    pub blocks_replayed: AtomicU64,
    pub txs_replayed: AtomicU64,
    /// Microseconds spent verifying and committing them (replay rate = replayed / time).
    pub replay_us: AtomicU64,
    /// Whether the L0 anchor checks run (`bridge.l0.endpoint` and `data_account` configured);
    /// without them `anchored_height` is unknown.
    pub anchor_checks: AtomicBool,
    /// Highest height both verified and covered by checked L0 anchors (`anchor_check`).
    pub anchored_height: AtomicU64,
    /// Why the follower halted, once it has (sticky).
    halt_reason: Mutex<Option<String>>,
}

impl SyncStatus {
    pub fn state(&self) -> SyncState {
        SyncState::from_u8(self.state.load(Ordering::Relaxed))
    }

    /// Sets the state; a halted follower stays halted.
    pub fn set_state(&self, s: SyncState) {
        let _ = self
            .state
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |cur| {
                (cur != SyncState::Halted as u8).then_some(s as u8)
            });
    }

    /// Halts for good with `reason`.
    pub fn halt(&self, reason: String) {
        if let Ok(mut r) = self.halt_reason.lock()
            && r.is_none()
        {
            *r = Some(reason);
        }
        self.state.store(SyncState::Halted as u8, Ordering::Relaxed);
    }

    pub fn halt_reason(&self) -> Option<String> {
        self.halt_reason.lock().ok().and_then(|r| r.clone())
    }

    /// Blocks and transactions per second of replay so far (0 before the first block).
    pub fn replay_rate(&self) -> (f64, f64) {
        let us = self.replay_us.load(Ordering::Relaxed);
        if us == 0 {
            return (0.0, 0.0);
        }
        let secs = us as f64 / 1e6;
        (
            self.blocks_replayed.load(Ordering::Relaxed) as f64 / secs,
            self.txs_replayed.load(Ordering::Relaxed) as f64 / secs,
        )
    }
}

/// Exponential backoff between failed fetches: `min`, doubled per failure, capped at `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max: max.max(min),
            next: min,
        }
    }

    /// The wait before the next attempt after a failure.
    pub fn failed(&mut self) -> Duration {
        let wait = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        wait
    }

    /// A success resets the wait.
    pub fn succeeded(&mut self) {
        self.next = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::tests::params;
    use crate::types::{BlockHeader, Keypair, WriteSet};

    fn chain(n: u64) -> Vec<Block> {
        let key = Keypair::generate().unwrap();
        let mut parent = params().genesis().header;
        let mut out = Vec::new();
        for _ in 0..n {
            let header = BlockHeader::child(
                &parent,
                parent.timestamp_ms + 1,
                &[],
                &[],
                &WriteSet::default(),
            );
            let block = Block::seal(header, vec![], &key);
            parent = block.header.clone();
            out.push(block);
        }
        out
    }

    fn body(a: &SyncAnswer) -> Vec<u8> {
        serde_json::to_vec(a).unwrap()
    }

    #[test]
    fn an_answer_round_trips() {
        let blocks = chain(3);
        let a = encode_answer(7, blocks.iter().map(Block::encode), MAX_BATCH_BYTES);
        let b = parse_batch(&body(&a), 1, 3).unwrap();
        assert_eq!(b.sequencer_height, 7);
        assert_eq!(b.blocks, blocks);
    }

    #[test]
    fn hex_is_the_hex_crates() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(hex_string(&bytes), hex::encode(&bytes));
        assert_eq!(hex_string(&[]), "");
    }

    #[test]
    fn decode_hex_block_is_the_hex_crates_decode() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(decode_hex_block(&hex_string(&bytes)), Ok(bytes));
        assert_eq!(decode_hex_block(""), Ok(vec![]));
        for bad in ["abc", "zz", "0g", "é1"] {
            assert_eq!(decode_hex_block(bad), hex::decode(bad), "{bad}");
        }
    }

    #[test]
    fn the_byte_bound_keeps_at_least_one_block() {
        let a = encode_answer(3, chain(3).iter().map(Block::encode), 1);
        assert_eq!(a.blocks.len(), 1);
    }

    #[test]
    fn a_skipped_height_is_refused() {
        let mut blocks = chain(3);
        blocks.remove(1);
        let a = encode_answer(3, blocks.iter().map(Block::encode), MAX_BATCH_BYTES);
        let e = parse_batch(&body(&a), 1, 3).unwrap_err();
        assert!(
            matches!(
                e,
                SyncError::SkippedHeight {
                    index: 1,
                    expected: 2,
                    got: 3
                }
            ),
            "{e}"
        );
        assert!(e.is_verdict());
        // Starting elsewhere than asked is a skip too.
        let a = encode_answer(3, chain(3).iter().map(Block::encode), MAX_BATCH_BYTES);
        assert!(matches!(
            parse_batch(&body(&a), 2, 3),
            Err(SyncError::SkippedHeight { index: 0, .. })
        ));
    }

    #[test]
    fn undecodable_oversized_and_malformed_answers_are_refused() {
        let mut a = encode_answer(3, chain(2).iter().map(Block::encode), MAX_BATCH_BYTES);
        let mut bytes = hex::decode(&a.blocks[1]).unwrap();
        bytes.push(0);
        a.blocks[1] = hex::encode(bytes);
        assert!(matches!(
            parse_batch(&body(&a), 1, 2),
            Err(SyncError::Undecodable { index: 1, .. })
        ));
        a.blocks[1] = "zz".into();
        assert!(matches!(
            parse_batch(&body(&a), 1, 2),
            Err(SyncError::Undecodable { index: 1, .. })
        ));
        let a = encode_answer(3, chain(3).iter().map(Block::encode), MAX_BATCH_BYTES);
        assert!(matches!(
            parse_batch(&body(&a), 1, 2),
            Err(SyncError::TooMany { asked: 2, got: 3 })
        ));
        assert!(matches!(
            parse_batch(b"{\"blocks\":[]}", 1, 2),
            Err(SyncError::Malformed(_))
        ));
    }

    #[test]
    fn a_binary_answer_carries_what_the_json_one_does() {
        let blocks = chain(3);
        let bin = encode_binary_answer(7, blocks.iter().map(Block::encode), MAX_BATCH_BYTES);
        let b = parse_binary_batch(&bin, 1, 3).unwrap();
        assert_eq!(b.sequencer_height, 7);
        assert_eq!(b.blocks, blocks);
        // The framing, byte for byte: height, count, then length and bytes of each block.
        let mut want = 7u64.to_le_bytes().to_vec();
        want.extend_from_slice(&3u32.to_le_bytes());
        for block in &blocks {
            let bytes = block.encode();
            want.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            want.extend_from_slice(&bytes);
        }
        assert_eq!(bin, want);
        // The same blocks under the byte bound as the JSON answer, and through parse_answer.
        let one = blocks[0].encode().len() * 2;
        for max in [1, one, one + 1, 2 * one + 1, MAX_BATCH_BYTES] {
            let json = encode_answer(7, blocks.iter().map(Block::encode), max);
            let bin = encode_binary_answer(7, blocks.iter().map(Block::encode), max);
            let via_json = parse_answer(&AnswerBody::Json(body(&json)), 1, 3).unwrap();
            let via_bin = parse_answer(&AnswerBody::Binary(bin), 1, 3).unwrap();
            assert_eq!(via_json.blocks, via_bin.blocks, "max {max}");
            assert!(!via_bin.blocks.is_empty());
        }
        // No blocks (a long poll that ended empty).
        let empty = encode_binary_answer(9, Vec::<Vec<u8>>::new(), MAX_BATCH_BYTES);
        let b = parse_binary_batch(&empty, 10, 3).unwrap();
        assert_eq!((b.sequencer_height, b.blocks.len()), (9, 0));
    }

    #[test]
    fn the_binary_content_type_is_recognized_with_any_parameters() {
        for t in [
            BINARY_ANSWER,
            "Application/Octet-Stream",
            " application/octet-stream; x=1",
        ] {
            assert!(is_binary_answer(t), "{t}");
        }
        for t in [
            "",
            "application/json",
            "application/octet-streamx",
            "text/plain; application/octet-stream",
        ] {
            assert!(!is_binary_answer(t), "{t}");
        }
    }

    #[test]
    fn bad_binary_answers_are_refused_as_verdicts() {
        let blocks = chain(2);
        let good = encode_binary_answer(3, blocks.iter().map(Block::encode), MAX_BATCH_BYTES);
        let malformed = |body: &[u8]| {
            let e = parse_binary_batch(body, 1, 2).unwrap_err();
            assert!(e.is_verdict());
            matches!(e, SyncError::Malformed(_))
        };
        // Too short for the height or the count; a body that ends inside a length or a block;
        // bytes after the last block.
        assert!(malformed(&good[..7]));
        assert!(malformed(&good[..10]));
        assert!(malformed(&good[..14]));
        assert!(malformed(&good[..good.len() - 1]));
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(malformed(&trailing));
        // More blocks declared than asked for: refused before any frame is read, even when the
        // count is absurd and nothing follows it.
        assert!(matches!(
            parse_binary_batch(&good, 1, 1),
            Err(SyncError::TooMany { asked: 1, got: 2 })
        ));
        let mut huge = 3u64.to_le_bytes().to_vec();
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            parse_binary_batch(&huge, 1, 256),
            Err(SyncError::TooMany { asked: 256, .. })
        ));
        // A length beyond the body.
        let mut overrun = 3u64.to_le_bytes().to_vec();
        overrun.extend_from_slice(&1u32.to_le_bytes());
        overrun.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(malformed(&overrun));
        // A frame that is not a canonical block, and a skipped height.
        let mut extra = blocks[1].encode();
        extra.push(0);
        let bad = encode_binary_answer(3, [blocks[0].encode(), extra], MAX_BATCH_BYTES);
        assert!(matches!(
            parse_binary_batch(&bad, 1, 2),
            Err(SyncError::Undecodable { index: 1, .. })
        ));
        assert!(matches!(
            parse_binary_batch(&good, 2, 2),
            Err(SyncError::SkippedHeight { index: 0, .. })
        ));
    }

    #[test]
    fn halted_is_sticky_and_keeps_the_first_reason() {
        let s = SyncStatus::default();
        assert_eq!(s.state(), SyncState::Syncing);
        s.set_state(SyncState::Stale);
        assert_eq!(s.state(), SyncState::Stale);
        s.halt("first".into());
        s.halt("second".into());
        s.set_state(SyncState::CaughtUp);
        assert_eq!(s.state(), SyncState::Halted);
        assert_eq!(s.halt_reason().as_deref(), Some("first"));
    }

    #[test]
    fn backoff_doubles_to_its_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let waits: Vec<_> = (0..4).map(|_| b.failed().as_millis()).collect();
        assert_eq!(waits, [100, 200, 350, 350]);
        b.succeeded();
        assert_eq!(b.failed().as_millis(), 100);
    }
}
