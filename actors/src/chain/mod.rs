//! The chain's rules without actix: the parameters every node of a chain shares
//! ([`ChainParams`]), building a block (sequencer) and verifying one (follower).
//!
//! Invariant: both roles build and check blocks with the same functions here, so the
//! sequencer can never produce a block that a follower built from the same source would reject.

pub mod params;

pub use params::ChainParams;
