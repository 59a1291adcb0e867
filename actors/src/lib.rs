//! Accumen node internals.
pub mod mempool;
pub mod storage;
pub mod types;
pub mod vm;
