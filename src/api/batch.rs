//! Splitting a `POST /v1/txs` body into its elements without building them.
//!
//! Role: find the top-level elements of a JSON array as raw slices of the body, refusing the
//! batch the moment it has more than `max` elements. Nothing is parsed into values here: each
//! element is only scanned (serde_json's iterative skip, linear in its bytes, no recursion), so
//! a body of a million tiny elements costs one pass and at most `max` slice references, never a
//! value tree many times the size of the body.
//!
//! Invariants:
//! - Work and memory are bounded by the body length and by `max`: element `max + 1` ends the
//!   parse with [`BatchError::TooLong`]; whatever follows it is never looked at.
//! - A batch of at most `max` elements gets each element back in order, as written, so the
//!   caller can parse and refuse each one with its own reason.
//! - Anything that is not one JSON array (trailing bytes included) is [`BatchError::Malformed`].

use std::cell::Cell;
use std::fmt;

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
}
