//! Accumen node internals.
pub mod metrics;
pub mod storage;
pub mod supervisor;
pub mod types;
pub mod vm;
pub mod executor;
pub mod mempool;
pub mod block_producer;
pub mod ratelimit;
