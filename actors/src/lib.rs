//! Accumen node internals.
pub mod metrics;
pub mod storage;
pub mod supervisor;
pub mod types;
pub mod vm;
