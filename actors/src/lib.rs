//! Accumen node internals.
pub mod types;
