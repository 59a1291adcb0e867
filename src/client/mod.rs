//! The command-line client: `key`, `tx`, `query`, `status` and `admin` subcommands that talk to a running
//! node over its HTTP API.
//!
//! Role: a thin shell over the chain types in `accumen-actors`. Keys, transaction bodies and
//! signatures are built with the same types the node verifies with, so a transaction the client
//! signs is byte-for-byte what the node hashes. `main` parses the command line, calls one `run_*`
//! function and prints the JSON it returns.
//!
//! Invariants:
//! - Input is validated locally before any request; errors name the argument or file at fault.
//! - No panics on user input or node answers: every failure is an `anyhow::Error` for `main`.

mod admin;
mod commands;
mod http;

#[cfg(test)]
mod tests;

pub use admin::{AdminCmd, DEFAULT_ADMIN_URL, admin_url, run_admin};
pub use commands::{KeyCmd, QueryCmd, TxCmd, load_key, run_key, run_query, run_status, run_tx};
pub use http::{HttpClient, MAX_RESPONSE_BYTES, tls_config_for, trust_ca_file};
