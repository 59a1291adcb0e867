//! The bridge to the Accumulate L0, actix-free: Accumulate's binary encoding ([`encoding`]),
//! the `WriteData` transaction, its hashes, Ed25519 signing and the envelope checks a node
//! applies ([`codec`]), the JSON shapes of the API v3 methods ([`json`]), and the Accumen anchor
//! format ([`anchor`]). The follow-up actors (stager, submitter), the JSON-RPC client and the
//! local L0 stand-in build on these; nothing here does I/O.
//!
//! Invariants: the rules are those of `shared/docs/accumulate-l0.md` (§ numbers in the docs
//! below refer to it), checked byte for byte against its test vectors A and B and its Merkle
//! vector (`bridge::tests`); every hash is recomputed from the encoding, never trusted.

pub mod anchor;
pub mod codec;
pub mod encoding;
pub mod json;

#[cfg(test)]
mod tests;

pub use anchor::{ANCHOR_MAGIC, Anchor, AnchorError};
pub use codec::{
    CheckError, Checked, DoubleHashEntry, Ed25519Signature, L0Key, SignedWriteData, Transaction,
    TransactionHeader, WriteData, WriteDataRequest, accumulate_merkle_root, sign_write_data,
    signer_fee_units,
};
pub use encoding::{AccUrl, DecodeError, TxId, UrlError};
pub use json::{Envelope, Status, Submission, SubmitRequest};
