//! Whole-node tests: each starts the real `accumen` binary on port 0 with a temporary data dir
//! and talks to it over HTTP like a client would. One test crate with modules, so the binary
//! that links wasmtime is built once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

mod admin;
mod anchors;
mod apisec;
mod attack_api;
mod attack_blocks;
mod attack_compile;
mod attack_disk;
mod attack_exec;
mod attack_mempool;
mod backup;
mod binary;
mod bridge;
mod bridge_faults;
mod chain_params;
mod cli;
mod crash;
mod devnet;
mod errors;
mod flow;
mod follower;
mod lifecycle;
mod ops;
mod sigrule;
mod stress;
mod supervision;
mod tls;
