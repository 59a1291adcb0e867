//! The bridge to the Accumulate L0, actix-free: Accumulate's binary encoding ([`encoding`]),
//! the `WriteData` transaction, its hashes, Ed25519 signing and the envelope checks a node
//! applies ([`codec`]), the JSON shapes of the API v3 methods ([`json`]), and the Accumen anchor
//! format ([`anchor`]); the stager's and submitter's logic over the [`L0Api`] trait ([`stage`],
//! [`submit`]; the actors in `bridge_stager`/`bridge_submitter` are thin over them). Nothing
//! here does I/O except through an `L0Api` and `Storage`.
//!
//! Invariants: the rules are those of `shared/docs/accumulate-l0.md` (§ numbers in the docs
//! below refer to it), checked byte for byte against its test vectors A and B and its Merkle
//! vector (`bridge::tests`); every hash is recomputed from the encoding, never trusted.
//!
//! Choices where the document leaves room (its §3.1 and §9), checked against Accumulate's Go
//! source (`pkg/url/url.go`, `internal/core/execute/v2/block/sig_user.go`):
//! - URLs: `acc://` required (Go adds a missing scheme; we refuse, so a config typo is caught),
//!   only `[A-Za-z0-9._-]` and `/` (nothing Go would percent-escape), no empty path segment, a
//!   trailing `/` dropped; case preserved, as Go hashes it. Transaction ids must use lowercase hex.
//! - One transaction and one initiating `ed25519` signature per envelope, always carrying
//!   `transactionHash`: all the bridge sends. A signature that is valid but not the initiator is
//!   refused (`CheckError::Initiator`) where a node would leave the transaction pending forever.
//! - Request JSON (transaction, body, entry, signature, envelope) refuses unknown members, so a
//!   member this subset would not hash is an error rather than a different transaction hash;
//!   result JSON ignores unknown members, and unknown status names are kept (`Status::Other`).
//! - The timestamp is the caller's (the stager's persisted counter, §3.6); signing refuses 0.

pub mod anchor;
pub mod client;
pub mod codec;
pub mod devnet;
pub mod encoding;
#[cfg(any(test, feature = "test-hooks"))]
pub mod fake_l0;
pub mod json;
pub mod l0;
pub mod stage;
pub mod status;
pub mod submit;

#[cfg(test)]
pub(crate) mod bridge_tests;
#[cfg(test)]
mod tests;

pub use anchor::{ANCHOR_MAGIC, Anchor, AnchorError};
pub use client::L0Client;
pub use codec::{
    CheckError, Checked, DoubleHashEntry, Ed25519Signature, L0Key, SignedWriteData, Transaction,
    TransactionHeader, WriteData, WriteDataRequest, accumulate_merkle_root, sign_write_data,
    signer_fee_units,
};
pub use encoding::{AccUrl, DecodeError, TxId, UrlError};
pub use json::{Envelope, Status, Submission, SubmitRequest, params};
pub use l0::{ErrorClass, L0Api, L0Error};
