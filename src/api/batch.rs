//! Splitting a `POST /v1/txs` body into its elements without building them: a JSON array
//! ([`split`]) or the binary framing ([`split_binary`], `Content-Type: application/octet-stream`).
//!
//! Role: find the top-level elements of a batch as raw slices of the body, refusing the batch
//! the moment it has more than `max` elements. Nothing is parsed into values here: each JSON
//! element is only scanned (serde_json's iterative skip, linear in its bytes, no recursion), and
//! each binary frame is only measured, so a body of a million tiny elements costs one pass and
//! at most `max` slice references, never a value tree many times the size of the body.
//!
//! Binary framing (documented for clients in actors/CONTRACT_ABI.md, "Binary submission"):
//!
//! ```text
//! body  = count:u32-le  frame * count
//! frame = len:u32-le    bytes[len]      1 <= len; bytes = SignedTx::encode() (canonical postcard)
//! ```
//!
//! The count comes first so an over-long batch is refused from its first four bytes, and every
//! transaction is length-prefixed so one undecodable transaction is refused on its own (like a
//! malformed JSON element) without losing the position of the ones after it.
//!
//! The answer to a batch is JSON unless the request's `Accept` names `application/octet-stream`;
//! then it is binary ([`encode_answer`], [`parse_answer`]), the same results in the same order:
//!
//! ```text
//! answer  = count:u32-le  element * count
//! element = flags:u8  id:32 (if flags & 2)  code:u8-len-prefixed  message:u16-le-len-prefixed
//!                                           (the last two only if !(flags & 1): refused)
//! flags   = bit 0 accepted, bit 1 id present (an accepted element always has its id); others 0
//! ```
//!
//! Invariants:
//! - Work and memory are bounded by the body length and by `max`: element `max + 1` ends the
//!   parse with [`BatchError::TooLong`] (for the binary framing: a declared count above `max`,
//!   before any frame is looked at); whatever follows it is never looked at.
//! - A batch of at most `max` elements gets each element back in order, as written, so the
//!   caller can parse and refuse each one with its own reason.
//! - Anything that is not one JSON array (trailing bytes included) is [`BatchError::Malformed`];
//!   a binary body whose framing does not add up exactly (count missing, a length running past
//!   the end, an empty frame, bytes after the last frame) is a [`FrameError`]. Either refuses
//!   the whole batch: nothing of it is admitted.

use std::cell::Cell;
use std::fmt;

use accumen_actors::types::Hash;
use serde::Deserializer as _;
use serde::de::{DeserializeSeed, Error as _, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// Why a body is not a usable batch.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// More than `max` elements; parsing stopped at the first element over.
    #[error("more than {max} transactions in one batch")]
    TooLong { max: usize },
    /// Not a JSON array of JSON values.
    #[error("{0}")]
    Malformed(serde_json::Error),
}

/// The top-level elements of the JSON array in `body`, as raw JSON slices of it.
pub fn split(body: &[u8], max: usize) -> Result<Vec<&RawValue>, BatchError> {
    let over = Cell::new(false);
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = de
        .deserialize_seq(Elements { max, over: &over })
        .and_then(|items| de.end().map(|()| items));
    match parsed {
        Ok(items) => Ok(items),
        // The flag, not the message, tells the two apart: a malformed element after the limit
        // is never reached, and a malformed one before it is reported as malformed.
        Err(_) if over.get() => Err(BatchError::TooLong { max }),
        Err(e) => Err(BatchError::Malformed(e)),
    }
}

/// Visits the array, keeping slices until one too many.
struct Elements<'a> {
    max: usize,
    over: &'a Cell<bool>,
}

impl<'de> Visitor<'de> for Elements<'_> {
    type Value = Vec<&'de RawValue>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array of transactions")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // No size hint from a JSON array; grow as elements come, never past `max`.
        let mut out = Vec::new();
        while let Some(item) = seq.next_element::<&'de RawValue>()? {
            if out.len() == self.max {
                self.over.set(true);
                return Err(A::Error::custom(format!(
                    "more than {} transactions in one batch",
                    self.max
                )));
            }
            out.push(item);
        }
        Ok(out)
    }
}

impl<'de> DeserializeSeed<'de> for Elements<'_> {
    type Value = Vec<&'de RawValue>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

/// The media type of the binary framing.
pub const BINARY_CONTENT_TYPE: &str = "application/octet-stream";

/// Bytes of the count and of each frame's length.
const PREFIX: usize = 4;

/// Why a binary body is not a well-framed batch (the whole batch is refused).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A declared count above `max`: refused before any frame is read.
    #[error("{count} transactions declared, more than {max} in one batch")]
    TooLong { count: u64, max: usize },
    #[error("the body is {len} bytes: too short for the 4-byte transaction count")]
    NoCount { len: usize },
    #[error("transaction {index}: the body ends inside its 4-byte length")]
    TruncatedLength { index: usize },
    #[error("transaction {index} declares {declared} bytes but only {remaining} remain")]
    Overrun {
        index: usize,
        declared: u64,
        remaining: usize,
    },
    #[error("transaction {index} has length 0")]
    Empty { index: usize },
    #[error("{bytes} bytes after the last of the {count} declared transactions")]
    Trailing { count: usize, bytes: usize },
}

fn read_u32(bytes: &[u8]) -> Option<u32> {
    let b: [u8; PREFIX] = bytes.get(..PREFIX)?.try_into().ok()?;
    Some(u32::from_le_bytes(b))
}

/// The frames of a binary batch body, as slices of it (each the bytes of one transaction,
/// not yet decoded).
pub fn split_binary(body: &[u8], max: usize) -> Result<Vec<&[u8]>, FrameError> {
    let count = read_u32(body).ok_or(FrameError::NoCount { len: body.len() })?;
    // u32 always fits usize on the targets we build for; a failed conversion is "too many".
    let count = match usize::try_from(count) {
        Ok(c) if c <= max => c,
        _ => {
            return Err(FrameError::TooLong {
                count: u64::from(count),
                max,
            });
        }
    };
    let mut rest = &body[PREFIX..];
    // Bounded by `max`, and by the body: every frame takes at least 5 bytes.
    let mut out = Vec::with_capacity(count.min(rest.len() / (PREFIX + 1)));
    for index in 0..count {
        let len = read_u32(rest).ok_or(FrameError::TruncatedLength { index })?;
        rest = &rest[PREFIX..];
        if len == 0 {
            return Err(FrameError::Empty { index });
        }
        let frame = usize::try_from(len)
            .ok()
            .and_then(|n| rest.get(..n))
            .ok_or(FrameError::Overrun {
                index,
                declared: u64::from(len),
                remaining: rest.len(),
            })?;
        rest = &rest[frame.len()..];
        out.push(frame);
    }
    if !rest.is_empty() {
        return Err(FrameError::Trailing {
            count,
            bytes: rest.len(),
        });
    }
    Ok(out)
}

/// A transaction too large for a frame's 4-byte length (no chain transaction comes close:
/// they are at most `MAX_TX_BYTES`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("transaction {index} encodes to {len} bytes, more than a frame can carry")]
pub struct FrameTooLarge {
    pub index: usize,
    pub len: usize,
}

/// Frames already-encoded transactions (`SignedTx::encode()` each) into one binary batch body.
pub fn frame_encoded<T: AsRef<[u8]>>(encoded: &[T]) -> Result<Vec<u8>, FrameTooLarge> {
    let count = u32::try_from(encoded.len()).map_err(|_| FrameTooLarge {
        index: encoded.len(),
        len: 0,
    })?;
    let total: usize = encoded.iter().map(|e| e.as_ref().len() + PREFIX).sum();
    let mut out = Vec::with_capacity(PREFIX + total);
    out.extend_from_slice(&count.to_le_bytes());
    for (index, e) in encoded.iter().enumerate() {
        let e = e.as_ref();
        let len = u32::try_from(e.len()).map_err(|_| FrameTooLarge {
            index,
            len: e.len(),
        })?;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(e);
    }
    Ok(out)
}

/// The binary batch body of `txs`, in order.
pub fn encode_binary(txs: &[accumen_actors::types::SignedTx]) -> Result<Vec<u8>, FrameTooLarge> {
    let encoded: Vec<Vec<u8>> = txs.iter().map(|t| t.encode()).collect();
    frame_encoded(&encoded)
}

/// One element of a batch answer as the binary answer carries it: the transaction's id where
/// the node could read one, and the error (its code and message) of a refused one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElementAnswer {
    pub id: Option<Hash>,
    /// `None`: accepted.
    pub error: Option<(String, String)>,
}

impl ElementAnswer {
    pub fn accepted(&self) -> bool {
        self.error.is_none()
    }
}

/// What [`encode_answer`] takes of one element: its id if known, and a refused one's error
/// code and message.
pub type AnswerItem<'a> = (Option<&'a Hash>, Option<(&'a str, &'a str)>);

const ACCEPTED: u8 = 1;
const HAS_ID: u8 = 2;

/// The binary answer (module comment) to a batch whose elements came out as `elements`: each
/// its id if known and, if refused, its error code and message. A message longer than 65,535
/// bytes (none is: the API cuts them to a few hundred) is cut on a character boundary.
pub fn encode_answer<'a>(elements: impl ExactSizeIterator<Item = AnswerItem<'a>>) -> Vec<u8> {
    let mut out = Vec::with_capacity(PREFIX + elements.len() * 33);
    // Lossless: a batch has at most `api.max_batch` elements, far below u32::MAX.
    out.extend_from_slice(&(elements.len() as u32).to_le_bytes());
    for (id, error) in elements {
        let flags = (u8::from(error.is_none()) * ACCEPTED) | (u8::from(id.is_some()) * HAS_ID);
        out.push(flags);
        if let Some(id) = id {
            out.extend_from_slice(&id.0);
        }
        if let Some((code, message)) = error {
            let code = &code[..code.floor_char_boundary(usize::from(u8::MAX))];
            let message = &message[..message.floor_char_boundary(usize::from(u16::MAX))];
            // Lossless: both cut to their prefix's range just above.
            out.push(code.len() as u8);
            out.extend_from_slice(code.as_bytes());
            out.extend_from_slice(&(message.len() as u16).to_le_bytes());
            out.extend_from_slice(message.as_bytes());
        }
    }
    out
}

/// Why bytes are not a binary batch answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    #[error("the answer ends inside element {index} (or its count)")]
    Truncated { index: usize },
    #[error("element {index} has flags {flags:#04x}: unknown bits, or accepted without an id")]
    Flags { index: usize, flags: u8 },
    #[error("element {index}'s error code or message is not UTF-8")]
    NotUtf8 { index: usize },
    #[error("{bytes} bytes after the last of the {count} elements")]
    Trailing { count: usize, bytes: usize },
}

/// Reads a binary batch answer (module comment) back into its elements, in order. The count is
/// checked against the bytes as they are read, so a forged count costs nothing.
pub fn parse_answer(bytes: &[u8]) -> Result<Vec<ElementAnswer>, AnswerError> {
    let count = read_u32(bytes).ok_or(AnswerError::Truncated { index: 0 })? as usize;
    let mut rest = &bytes[PREFIX..];
    // Every element takes at least one byte.
    let mut out = Vec::with_capacity(count.min(rest.len()));
    for index in 0..count {
        let truncated = AnswerError::Truncated { index };
        let (&flags, tail) = rest.split_first().ok_or(truncated.clone())?;
        rest = tail;
        if flags & !(ACCEPTED | HAS_ID) != 0 || flags == ACCEPTED {
            return Err(AnswerError::Flags { index, flags });
        }
        let id = if flags & HAS_ID != 0 {
            let (id, tail) = rest.split_first_chunk::<32>().ok_or(truncated.clone())?;
            rest = tail;
            Some(Hash(*id))
        } else {
            None
        };
        let error = if flags & ACCEPTED == 0 {
            let (&len, tail) = rest.split_first().ok_or(truncated.clone())?;
            let (code, tail) = tail
                .split_at_checked(usize::from(len))
                .ok_or(truncated.clone())?;
            let (len, tail) = tail.split_first_chunk::<2>().ok_or(truncated.clone())?;
            let len = usize::from(u16::from_le_bytes(*len));
            let (message, tail) = tail.split_at_checked(len).ok_or(truncated)?;
            rest = tail;
            let text = |b: &[u8]| {
                std::str::from_utf8(b)
                    .map(str::to_string)
                    .map_err(|_| AnswerError::NotUtf8 { index })
            };
            Some((text(code)?, text(message)?))
        } else {
            None
        };
        out.push(ElementAnswer { id, error });
    }
    if !rest.is_empty() {
        return Err(AnswerError::Trailing {
            count,
            bytes: rest.len(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn texts(body: &str, max: usize) -> Vec<String> {
        split(body.as_bytes(), max)
            .unwrap()
            .iter()
            .map(|r| r.get().to_owned())
            .collect()
    }

    #[test]
    fn elements_come_back_as_written_in_order() {
        assert_eq!(
            texts(r#" [ {"a": [1, 2]}, 3, "x" ,null ] "#, 4),
            [r#"{"a": [1, 2]}"#, "3", r#""x""#, "null"]
        );
        assert!(texts("[]", 1).is_empty());
    }

    #[test]
    fn exactly_max_is_accepted_one_more_is_too_long() {
        assert_eq!(texts("[0,0,0]", 3).len(), 3);
        assert!(matches!(
            split(b"[0,0,0,0]", 3),
            Err(BatchError::TooLong { max: 3 })
        ));
    }

    #[test]
    fn too_long_wins_over_what_follows_the_limit() {
        // Garbage after element max+1 is never read: the answer is "too long", not "malformed".
        assert!(matches!(
            split(b"[[0],[0],[0],{{{{ not json", 2),
            Err(BatchError::TooLong { max: 2 })
        ));
        // A huge body of tiny elements stops at max + 1.
        let mut body = String::from("[");
        for _ in 0..1_000_000 {
            body.push_str("[0],");
        }
        body.push_str("[0]]");
        assert!(matches!(
            split(body.as_bytes(), 10_000),
            Err(BatchError::TooLong { max: 10_000 })
        ));
    }

    #[test]
    fn malformed_before_the_limit_is_malformed() {
        for bad in [
            "",
            "{}",
            "0",
            "[0,",
            "[0,]",
            "[0] [1]",
            "[0] x",
            r#"["unterminated]"#,
            "[{\"a\":}]",
        ] {
            assert!(
                matches!(split(bad.as_bytes(), 10), Err(BatchError::Malformed(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn deep_nesting_is_scanned_without_recursion() {
        // 200,000 levels would overflow a recursive parser's stack; the skip is iterative.
        let depth = 200_000;
        let body = format!("[{}{}]", "[".repeat(depth), "]".repeat(depth));
        assert_eq!(split(body.as_bytes(), 1).unwrap().len(), 1);
        let unclosed = format!("[{}]", "[".repeat(depth));
        assert!(matches!(
            split(unclosed.as_bytes(), 1),
            Err(BatchError::Malformed(_))
        ));
    }

    fn framed(frames: &[&[u8]]) -> Vec<u8> {
        frame_encoded(frames).unwrap()
    }

    #[test]
    fn binary_frames_come_back_as_written_in_order() {
        let body = framed(&[b"abc", b"d", &[0; 300]]);
        let frames = split_binary(&body, 3).unwrap();
        assert_eq!(frames, [&b"abc"[..], b"d", &[0; 300]]);
        // The layout is the documented one: count, then length-prefixed frames, little endian.
        assert_eq!(&body[..11], &[3, 0, 0, 0, 3, 0, 0, 0, b'a', b'b', b'c']);
        // An empty batch is a count of 0 and nothing else (like `[]`).
        assert!(split_binary(&[0, 0, 0, 0], 1).unwrap().is_empty());
    }

    #[test]
    fn binary_count_over_max_is_refused_before_any_frame() {
        assert_eq!(split_binary(&framed(&[b"a", b"b"]), 2).unwrap().len(), 2);
        assert_eq!(
            split_binary(&framed(&[b"a", b"b", b"c"]), 2),
            Err(FrameError::TooLong { count: 3, max: 2 })
        );
        // A huge declared count with nothing behind it: refused from the first 4 bytes, no
        // allocation proportional to the claim.
        assert_eq!(
            split_binary(&u32::MAX.to_le_bytes(), 10_000),
            Err(FrameError::TooLong {
                count: u64::from(u32::MAX),
                max: 10_000
            })
        );
        // Within max but more than the body could hold: the first missing frame is reported.
        let mut body = 9_000u32.to_le_bytes().to_vec();
        body.extend_from_slice(&framed(&[b"x"])[4..]);
        assert_eq!(
            split_binary(&body, 10_000),
            Err(FrameError::TruncatedLength { index: 1 })
        );
    }

    #[test]
    fn binary_bad_framing_is_refused_with_its_position() {
        assert_eq!(split_binary(b"", 5), Err(FrameError::NoCount { len: 0 }));
        assert_eq!(
            split_binary(&[1, 0, 0], 5),
            Err(FrameError::NoCount { len: 3 })
        );
        // Count says 2, only one frame.
        let mut body = framed(&[b"ab"]);
        body[0] = 2;
        assert_eq!(
            split_binary(&body, 5),
            Err(FrameError::TruncatedLength { index: 1 })
        );
        // A length cut short.
        let mut body = framed(&[b"ab"]);
        body[0] = 2;
        body.extend_from_slice(&[7, 0]);
        assert_eq!(
            split_binary(&body, 5),
            Err(FrameError::TruncatedLength { index: 1 })
        );
        // A declared length past the end of the body (truncated frame, or a lie).
        let mut body = framed(&[b"abcdef"]);
        body.truncate(body.len() - 2);
        assert_eq!(
            split_binary(&body, 5),
            Err(FrameError::Overrun {
                index: 0,
                declared: 6,
                remaining: 4
            })
        );
        let mut body = framed(&[b"a", b"b"]);
        body[9..13].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            split_binary(&body, 5),
            Err(FrameError::Overrun {
                index: 1,
                declared: u64::from(u32::MAX),
                remaining: 1
            })
        );
        // A zero-length frame.
        let body = framed(&[b"a", b"", b"c"]);
        assert_eq!(split_binary(&body, 5), Err(FrameError::Empty { index: 1 }));
        // Bytes after the last declared frame.
        let mut body = framed(&[b"a", b"b"]);
        body.push(0);
        assert_eq!(
            split_binary(&body, 5),
            Err(FrameError::Trailing { count: 2, bytes: 1 })
        );
        let mut body = framed(&[]);
        body.extend_from_slice(&framed(&[b"a"]));
        assert_eq!(
            split_binary(&body, 5),
            Err(FrameError::Trailing { count: 0, bytes: 9 })
        );
    }

    #[test]
    fn binary_round_trips_signed_transactions() {
        use accumen_actors::testkit::Signer;
        use accumen_actors::types::{Address, SignedTx};
        let mut s = Signer::new(5);
        let txs: Vec<SignedTx> = (0..4)
            .map(|_| s.call(Address([1; 32]), "increment", &[7; 33]))
            .collect();
        let body = encode_binary(&txs).unwrap();
        let back: Vec<SignedTx> = split_binary(&body, 4)
            .unwrap()
            .into_iter()
            .map(|f| SignedTx::decode(f).unwrap())
            .collect();
        assert_eq!(back, txs);
    }

    #[test]
    fn binary_split_never_panics_on_arbitrary_bytes() {
        // Every prefix of a valid body, and every single-byte corruption of it, gives an answer
        // (Ok or a FrameError), never a panic or an out-of-bounds slice.
        let body = framed(&[b"abc", b"de", b"f"]);
        for cut in 0..body.len() {
            let r = split_binary(&body[..cut], 10);
            assert!(r.is_err(), "prefix {cut}");
        }
        for i in 0..body.len() {
            for v in [0u8, 1, 0x7f, 0xff] {
                let mut b = body.clone();
                b[i] = v;
                if let Ok(frames) = split_binary(&b, 10) {
                    let total: usize = frames.iter().map(|f| f.len() + 4).sum();
                    assert_eq!(total + 4, b.len());
                }
            }
        }
    }

    #[test]
    fn binary_answer_round_trips_every_kind_of_element() {
        let id = Hash([7; 32]);
        let other = Hash([8; 32]);
        let long = "é".repeat(40_000);
        let elements: Vec<AnswerItem<'_>> = vec![
            (Some(&id), None),
            (
                Some(&other),
                Some(("nonce_taken", "another pending transaction…")),
            ),
            (None, Some(("malformed_tx", "transaction 2: decode"))),
            (Some(&id), Some(("", ""))),
            (None, Some(("long", long.as_str()))),
        ];
        let bytes = encode_answer(elements.clone().into_iter());
        let back = parse_answer(&bytes).unwrap();
        assert_eq!(back.len(), elements.len());
        for (b, (id, error)) in back.iter().zip(&elements) {
            assert_eq!(b.id.as_ref(), *id);
            assert_eq!(b.accepted(), error.is_none());
            if let (Some((code, message)), Some((c, m))) = (error, &b.error) {
                assert_eq!(c, code);
                if message.len() <= usize::from(u16::MAX) {
                    assert_eq!(m, message);
                } else {
                    // Cut on a character boundary, never past the prefix's range.
                    assert!(m.len() <= usize::from(u16::MAX) && message.starts_with(m.as_str()));
                }
            }
        }
        assert_eq!(
            parse_answer(&encode_answer(std::iter::empty())).unwrap(),
            vec![]
        );
    }

    #[test]
    fn a_damaged_binary_answer_is_refused_not_misread() {
        let id = Hash([7; 32]);
        let bytes = encode_answer(
            vec![
                (Some(&id), None),
                (None, Some(("account_limit", "sender already has…"))),
            ]
            .into_iter(),
        );
        // Cut anywhere: an error, never a shorter answer.
        for cut in 0..bytes.len() {
            assert!(
                matches!(
                    parse_answer(&bytes[..cut]),
                    Err(AnswerError::Truncated { .. })
                ),
                "cut at {cut}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            parse_answer(&longer),
            Err(AnswerError::Trailing { count: 2, bytes: 1 })
        );
        // Accepted without an id, and an unknown flag bit.
        for flags in [ACCEPTED, 4 | HAS_ID] {
            let mut bad = bytes.clone();
            bad[4] = flags;
            assert_eq!(
                parse_answer(&bad),
                Err(AnswerError::Flags { index: 0, flags })
            );
        }
        // A forged count far above what the bytes hold costs no allocation of that size.
        let mut forged = bytes.clone();
        forged[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            parse_answer(&forged),
            Err(AnswerError::Truncated { index: 2 })
        ));
        // A message that is not UTF-8.
        let mut bad = bytes.clone();
        let last = bad.len() - 1;
        bad[last] = 0xff;
        assert_eq!(parse_answer(&bad), Err(AnswerError::NotUtf8 { index: 1 }));
    }
}
