//! `accumen`: runs the node (`--role=sequencer --config=FILE`) or acts as its client
//! (`key`, `tx`, `query`, `status`, `config check`, `admin actors|restart`), works on a data
//! dir's database (`backup`, `restore`, `db check`), or runs a local L0 stand-in (`devnet-l0`).
//! Client commands print JSON to stdout and errors to stderr; exit codes: 0 success, 1 failure,
//! 2 bad usage or unsupported role (`backup`, `restore` and `db check` have their own: see
//! `dbtool`).

use std::path::PathBuf;
use std::process::ExitCode;

use accumen::client::{self, AdminCmd, KeyCmd, QueryCmd, TxCmd};
use accumen::node::{self, Role};
use accumen::settings::{self, Settings};
use clap::{Parser, Subcommand};

/// The process's allocator: jemalloc, so that memory freed after a backlog drains goes back to
/// the OS (issue 10; RUNBOOK "Performance", memory). With glibc's malloc the node's RSS stayed
/// at ~380 MiB after a 100,000-transaction backlog drained, with ~95 MiB still allocated: the
/// rest was freed heap that glibc's per-thread arenas keep (only `malloc_trim`, which needs
/// `unsafe`, would hand it back). jemalloc is built with `background_thread:true`, so freed
/// pages are purged after `dirty_decay_ms` (10 s by default) by its own thread, even when the
/// node is idle. Operators can tune it at start with `_RJEM_MALLOC_CONF` (the variable of this
/// prefixed build, not `MALLOC_CONF`). Off with `--no-default-features` (glibc's malloc), which
/// heaptrack and valgrind need: they only see malloc.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Debug, Parser)]
#[command(
    name = "accumen",
    version,
    about = "Accumen L1 sequencer node and its client"
)]
struct Cli {
    /// Run the node in this role.
    #[arg(long, value_parser = node::role_parser())]
    role: Option<Role>,
    /// The node's YAML configuration (defaults < file < ACCUMEN_* environment).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Base URL of the node's API, for client commands.
    #[arg(
        long,
        global = true,
        env = "ACCUMEN_API",
        default_value = "http://127.0.0.1:8080"
    )]
    api: String,
    /// Bearer token for a node with `api.auth.token_file` (writes, admin; reads if protected).
    #[arg(long, global = true, env = "ACCUMEN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// For an https:// API: trust only the CA certificates in this PEM file (e.g. a private CA
    /// that signed the node's `api.tls.cert_file`) instead of the system's.
    #[arg(long, global = true, env = "ACCUMEN_CA_CERT")]
    ca_cert: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        command: ConfigCmd,
    },
    /// API bearer tokens.
    Token {
        #[command(subcommand)]
        command: TokenCmd,
    },
    /// Signing keys.
    Key {
        #[command(subcommand)]
        command: KeyCmd,
    },
    /// Build, sign and submit transactions.
    Tx {
        #[command(subcommand)]
        command: TxCmd,
    },
    /// Read blocks, transactions, contracts and state.
    Query {
        #[command(subcommand)]
        command: QueryCmd,
    },
    /// The node's /stats.
    Status,
    /// Operate a running node through its admin listener (`admin_addr`, loopback by default):
    /// list actors, restart one.
    Admin {
        /// Read `admin_addr` from this configuration file (also accepted before `admin`).
        #[arg(long, global = true)]
        config: Option<PathBuf>,
        /// Base URL of the admin listener; overrides --config (default http://127.0.0.1:8083).
        #[arg(long, global = true, env = "ACCUMEN_ADMIN")]
        admin: Option<String>,
        #[command(subcommand)]
        command: AdminCmd,
    },
    /// Copy a node's database consistently (`--data-dir` with the node stopped).
    Backup(accumen::dbtool::BackupArgs),
    /// Check a backup, then put it into a data dir (one without a database, or `--force`).
    Restore(accumen::dbtool::RestoreArgs),
    /// Database tools.
    Db {
        #[command(subcommand)]
        command: DbCmd,
    },
    /// Run a local stand-in of the Accumulate L0 (JSON-RPC `POST /v3`) for development and tests.
    #[command(name = "devnet-l0")]
    DevnetL0(accumen::devnet::DevnetArgs),
}

#[derive(Debug, Subcommand)]
enum ConfigCmd {
    /// Print the effective settings of a configuration file, or its errors.
    Check {
        #[arg(long)]
        config: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCmd {
    /// Print a fresh random token and the line for `api.auth.token_file` (its SHA-256).
    Generate,
}

#[derive(Debug, Subcommand)]
enum DbCmd {
    /// Verify a data dir offline: schema, chain links, signatures, receipts and state roots
    /// recomputed by re-executing the chain, state, nonces, journal and outbox. Exit 0 clean,
    /// 1 problems found, 2 bad usage, 3 could not check.
    Check(accumen::dbtool::CheckArgs),
}

fn main() -> ExitCode {
    // First, before any TLS object exists (stack-notes §2): ring is the only provider compiled
    // in, and this makes it the process default too, so nothing can ever ask for another. The
    // node's and the client's TLS configs also name ring explicitly. Err only means a provider
    // is already installed, which can only be this same one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    if let Some(path) = &cli.ca_cert
        && let Err(e) = client::trust_ca_file(path)
    {
        eprintln!("accumen: {e:#}");
        return ExitCode::from(2);
    }
    match cli.command {
        Some(Command::Config {
            command: ConfigCmd::Check { config },
        }) => ExitCode::from(settings::config_check(&config).clamp(0, 255) as u8),
        Some(Command::Key { command }) => print(client::run_key(command)),
        Some(Command::Token {
            command: TokenCmd::Generate,
        }) => print(generate_token()),
        Some(Command::Tx { command }) => {
            print(client::run_tx(&cli.api, cli.token.as_deref(), command))
        }
        Some(Command::Query { command }) => {
            print(client::run_query(&cli.api, cli.token.as_deref(), command))
        }
        Some(Command::Status) => print(client::run_status(&cli.api, cli.token.as_deref())),
        Some(Command::Admin {
            config,
            admin,
            command,
        }) => print(
            client::admin_url(config.or(cli.config).as_deref(), admin.as_deref())
                .and_then(|url| client::run_admin(&url, cli.token.as_deref(), command)),
        ),
        Some(Command::Backup(args)) => ExitCode::from(accumen::dbtool::run_backup(args)),
        Some(Command::Restore(args)) => ExitCode::from(accumen::dbtool::run_restore(args)),
        Some(Command::Db {
            command: DbCmd::Check(args),
        }) => ExitCode::from(accumen::dbtool::run_check(args)),
        Some(Command::DevnetL0(args)) => match accumen::devnet::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("accumen: devnet-l0: {e:#}");
                ExitCode::FAILURE
            }
        },
        None => run_node(cli.role, cli.config),
    }
}

/// A token is 32 bytes of OS randomness in hex (an Ed25519 seed is exactly that); the node keeps
/// only its hash line.
fn generate_token() -> anyhow::Result<serde_json::Value> {
    let token = accumen_actors::types::Keypair::generate()?.seed_hex();
    Ok(serde_json::json!({
        "token": token,
        "token_file_line": accumen::api::auth::hash_line(&token),
    }))
}

fn print(result: anyhow::Result<serde_json::Value>) -> ExitCode {
    match result {
        Ok(v) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&v).unwrap_or_else(|_| v.to_string())
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("accumen: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_node(role: Option<Role>, config: Option<PathBuf>) -> ExitCode {
    let (Some(role), Some(config)) = (role, config) else {
        eprintln!(
            "accumen: to run the node give --role=sequencer|follower and --config=FILE (see --help)"
        );
        return ExitCode::from(2);
    };
    let settings = match Settings::load(&config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("accumen: {e}");
            return ExitCode::from(2);
        }
    };
    match node::run(settings, role) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("accumen: {e:#}");
            ExitCode::from(1)
        }
    }
}
