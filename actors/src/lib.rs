//! Accumen node internals: chain types, storage, the contract engine, and the actors that run
//! them (mempool, executor, block producer, supervisor). Logic lives in actix-free modules
//! (`types`, `storage`, `vm`, `mempool::pool`, `chain`, `health`) that are unit tested alone;
//! each actor module holds the actor, its messages and its handlers. `testkit` (test
//! transactions) exists only for tests and under the `test-hooks` feature; `fuzz_tests` (the fuzz
//! targets the seeded harnesses and the libFuzzer crate `fuzz/` share) only for tests and under
//! `fuzzing`. `bridge` holds the
//! actix-free Accumulate L0 codec (encoding, hashing, signing, envelope checks, API JSON shapes)
//! and the Accumen anchor format.

pub mod anchor_check;
pub mod anchor_watcher;
pub mod block_producer;
pub mod bridge;
pub mod bridge_stager;
pub mod bridge_submitter;
pub mod chain;
pub mod executor;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzz_tests;
pub mod health;
pub mod mempool;
pub mod metrics;
pub mod process;
pub mod ratelimit;
pub mod storage;
pub mod supervisor;
pub mod syncer;
#[cfg(any(test, feature = "test-hooks"))]
pub mod testkit;
pub mod types;
pub mod vm;
