//! Accumen node internals.
pub mod types;
pub mod vm;
