//! Accumen node internals.
pub mod storage;
pub mod types;
pub mod vm;
