//! The Accumen daemon shell: command line, settings, telemetry, the HTTP API, node wiring and
//! the client subcommands. Everything that runs inside the node lives in `accumen-actors`.

pub mod api;
pub mod client;
pub mod dbtool;
pub mod devnet;
pub mod keyfile;
pub mod node;
pub mod settings;
pub mod telemetry;
