//! The chain's rules without actix: the parameters every node of a chain shares
//! ([`ChainParams`]), building a block ([`build()`], sequencer), verifying one ([`verify()`],
//! follower) and recording a committed one ([`Recorder`], both roles).
//!
//! Invariants: both roles build and check blocks with the same functions here (one header rule,
//! `BlockHeader::child`; one execution code, `vm/block.rs`), so the sequencer can never produce a
//! block that a follower with the same parent state rejects. Nothing here imports actix or the
//! actors; the actors call in.

pub mod build;
pub mod params;
pub mod record;
pub mod sync;
pub mod verify;

pub use build::{Built, build, context};
pub use params::ChainParams;
pub use record::{Committed, Head, Recorder};
pub use verify::{Verified, VerifyError, verify};

// `pub(crate)`: the actors' tests reuse its chain parameters.
#[cfg(test)]
pub(crate) mod tests;
