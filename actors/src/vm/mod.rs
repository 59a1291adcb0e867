//! The contract engine: wasmtime with metered gas, the ABI v1 host functions, deploy-time
//! validation, the compiled-module cache and block execution. No actix and no redb: the chain
//! is read through the `StateView` trait and changes come back as a `WriteSet`.
//!
//! The contract ABI for authors is documented in `actors/CONTRACT_ABI.md`.

mod block;
mod cache;
mod engine;
pub mod gas;
mod host;
mod state;
mod validate;

// `pub(crate)`: `chain`'s tests reuse its senders and fixtures.
#[cfg(test)]
pub(crate) mod tests;

pub use block::{
    BlockContext, BlockLimit, BlockOutcome, DropReason, Query, QueryResult, ReplayError,
    VERIFY_ATTEMPTS, VERIFY_DEADLINE_FACTOR,
};
pub use engine::{ConfigError, PAGE_BYTES, Vm, VmConfig, VmError};
pub use state::{Layered, MemState, StateError, StateView};
pub use validate::{ABI_IMPORTS, ModuleInfo, ValidationError, validate};
