//! The client subcommands: key files, signed transactions, and read-only queries against a
//! node's HTTP API. Each `run_*` function returns the JSON that `main` prints.
//!
//! Invariants:
//! - Every argument that can be checked locally (hex, lengths, entry names, code, the key file)
//!   is checked before the first request, so a typo never reaches the node or costs a nonce.
//! - A key file holds only the 32-byte seed as hex and is created with mode 0600 from the first
//!   byte written; it is never overwritten without `--force`.
//! - A non-2xx answer is always an error carrying the node's error code and message.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use accumen_actors::types::{
    Action, Address, Bytes, Hash, Keypair, MAX_ARGS_LEN, MAX_CODE_LEN, MAX_ENTRY_LEN, PublicKey,
    SignedTx, Tx, valid_entry,
};
use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};

use super::http::HttpClient;
use crate::keyfile;
/// Reads a key file written by `key generate` (the node's reader too: [`keyfile::read`]).
pub use crate::keyfile::read as load_key;

/// How often `--wait` asks whether a transaction is in a block.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// `accumen key ...`
#[derive(Debug, Clone, clap::Subcommand)]
pub enum KeyCmd {
    /// Create a new Ed25519 key and write its secret seed (hex) to a file readable only by you.
    Generate {
        /// File to write; its directory must exist.
        #[arg(long)]
        out: PathBuf,
        /// Overwrite the file if it exists (the old key is lost).
        #[arg(long)]
        force: bool,
    },
}

/// `accumen tx ...`
#[derive(Debug, Clone, clap::Subcommand)]
pub enum TxCmd {
    /// Deploy a contract: a .wasm binary or a .wat text module.
    Deploy {
        /// Key file of the sender (from `key generate`).
        #[arg(long)]
        key: PathBuf,
        /// Contract code: WebAssembly binary, or WebAssembly text (compiled here).
        #[arg(long)]
        code: PathBuf,
        /// Most gas the deploy may use.
        #[arg(long, default_value_t = 50_000_000)]
        gas: u64,
        /// Mempool priority; higher is served first.
        #[arg(long, default_value_t = 0)]
        priority: u64,
        /// Wait until the transaction is in a block and print its receipt.
        #[arg(long)]
        wait: bool,
        /// How long --wait waits (e.g. 30s, 2m).
        #[arg(long, default_value = "60s")]
        timeout: humantime::Duration,
    },
    /// Call an entry point of a deployed contract.
    Call {
        /// Key file of the sender (from `key generate`).
        #[arg(long)]
        key: PathBuf,
        /// Contract address (64 hex digits).
        #[arg(long)]
        contract: String,
        /// Entry point (exported function) to call.
        #[arg(long)]
        entry: String,
        /// Call input as hex (default: empty).
        #[arg(long)]
        args: Option<String>,
        /// Most gas the call may use.
        #[arg(long, default_value_t = 10_000_000)]
        gas: u64,
        /// Mempool priority; higher is served first.
        #[arg(long, default_value_t = 0)]
        priority: u64,
        /// Wait until the transaction is in a block and print its receipt.
        #[arg(long)]
        wait: bool,
        /// How long --wait waits (e.g. 30s, 2m).
        #[arg(long, default_value = "60s")]
        timeout: humantime::Duration,
    },
}

/// `accumen query ...`
#[derive(Debug, Clone, clap::Subcommand)]
pub enum QueryCmd {
    /// A block by height, or the latest one.
    Block {
        /// Height; the latest block if absent.
        height: Option<u64>,
    },
    /// A transaction by hash: pending, or included with its receipt.
    Tx {
        /// Transaction hash (64 hex digits).
        hash: String,
    },
    /// One storage value of a contract.
    State {
        /// Contract address (64 hex digits).
        #[arg(long)]
        contract: String,
        /// Storage key as hex.
        #[arg(long)]
        key: String,
    },
    /// A deployed contract's metadata.
    Contract {
        /// Contract address (64 hex digits).
        address: String,
    },
    /// An account's nonces.
    Account {
        /// Ed25519 public key (64 hex digits).
        public_key: String,
    },
    /// Run a contract entry point read-only: nothing is signed, stored or charged.
    Call {
        /// Contract address (64 hex digits).
        #[arg(long)]
        contract: String,
        /// Entry point to run.
        #[arg(long)]
        entry: String,
        /// Input as hex (default: empty).
        #[arg(long)]
        args: Option<String>,
        /// Gas limit (default: the node's).
        #[arg(long)]
        gas: Option<u64>,
    },
}

/// Runs `key generate`: returns `{"public_key", "file"}`.
pub fn run_key(cmd: KeyCmd) -> anyhow::Result<Value> {
    match cmd {
        KeyCmd::Generate { out, force } => {
            let kp = Keypair::generate().context("generating a key")?;
            write_key_file(&out, &kp, force)?;
            Ok(json!({
                "public_key": kp.public().to_hex(),
                "file": out.display().to_string(),
            }))
        }
    }
}

/// Writes the seed so that the file is never readable by others, not even for an instant: the
/// mode is set by the `open` that creates it. `--force` writes a fresh file beside the old one
/// and renames it over, because reopening an existing file would keep its (maybe wider) mode.
fn write_key_file(out: &Path, kp: &Keypair, force: bool) -> anyhow::Result<()> {
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        bail!(
            "cannot write key file {}: directory {} does not exist",
            out.display(),
            parent.display()
        );
    }
    if out.is_dir() {
        bail!("cannot write key file {}: it is a directory", out.display());
    }
    if !force {
        return keyfile::create(out, kp).map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                anyhow!(
                    "refusing to overwrite existing file {} (use --force to replace it)",
                    out.display()
                )
            } else {
                anyhow!("cannot write key file {}: {e}", out.display())
            }
        });
    }
    let file_name = out
        .file_name()
        .ok_or_else(|| anyhow!("key file path {} has no file name", out.display()))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = parent.join(tmp_name);
    keyfile::create(&tmp, kp)
        .with_context(|| format!("cannot write temporary key file {}", tmp.display()))?;
    if let Err(e) = fs::rename(&tmp, out) {
        let _ = fs::remove_file(&tmp);
        bail!("cannot replace key file {}: {e}", out.display());
    }
    Ok(())
}

/// Runs `tx deploy` or `tx call`: returns `{"tx_hash", "contract", "nonce"}`, plus
/// `"block_height"`, `"index"` and `"receipt"` with `--wait`.
pub fn run_tx(api: &str, token: Option<&str>, cmd: TxCmd) -> anyhow::Result<Value> {
    // Everything local first: a bad argument must not cost a round trip.
    let (key, action, gas, priority, wait, timeout) = match cmd {
        TxCmd::Deploy {
            key,
            code,
            gas,
            priority,
            wait,
            timeout,
        } => {
            let code = read_code(&code)?;
            (
                key,
                Action::Deploy { code: Bytes(code) },
                gas,
                priority,
                wait,
                timeout,
            )
        }
        TxCmd::Call {
            key,
            contract,
            entry,
            args,
            gas,
            priority,
            wait,
            timeout,
        } => {
            let contract = parse_address(&contract)?;
            check_entry(&entry)?;
            let args = parse_args(args.as_deref())?;
            let action = Action::Call {
                contract,
                entry,
                args,
            };
            (key, action, gas, priority, wait, timeout)
        }
    };
    if gas == 0 {
        bail!("--gas must be greater than zero");
    }
    let kp = load_key(&key)?;
    let client = HttpClient::new(api)?.with_token(token);

    let chain_id = fetch_chain_id(&client)?;
    let sender = kp.public();
    let nonce = fetch_pending_nonce(&client, &sender)?;
    let tx = Tx {
        chain_id,
        sender,
        nonce,
        gas_limit: gas,
        priority,
        expiry: None,
        action,
    };
    // The node checks the same limits; checking here gives the reason without a round trip.
    tx.check_shape()
        .map_err(|e| anyhow!("transaction is not valid: {e}"))?;
    let contract = tx.target();
    let signed = kp.sign(tx);
    let tx_hash = signed.tx.id().to_hex();
    submit(&client, &signed, &tx_hash)?;

    let mut out = json!({
        "tx_hash": tx_hash,
        "contract": contract.to_hex(),
        "nonce": nonce,
    });
    if wait {
        let included = wait_for_inclusion(&client, &tx_hash, *timeout)?;
        for field in ["block_height", "index", "receipt"] {
            if let Some(v) = included.get(field) {
                out[field] = v.clone();
            }
        }
    }
    Ok(out)
}

/// Contract code from a file: WebAssembly binary as is, anything else compiled as WebAssembly
/// text (so `.wat` files and text modules without the extension both work).
fn read_code(path: &Path) -> anyhow::Result<Vec<u8>> {
    // WebAssembly text is several times larger than the binary it compiles to, hence the slack.
    let bytes = keyfile::read_bounded(path, 32 * MAX_CODE_LEN as u64)
        .map_err(|e| anyhow!("cannot read contract code {}: {e}", path.display()))?;
    let code = if bytes.starts_with(b"\0asm") {
        bytes
    } else {
        wat::Parser::new()
            .parse_bytes(Some(path), &bytes)
            .map_err(|e| {
                anyhow!(
                    "{} is neither a WebAssembly binary nor valid WebAssembly text: {e}",
                    path.display()
                )
            })?
            .into_owned()
    };
    if code.is_empty() {
        bail!("contract code {} is empty", path.display());
    }
    if code.len() > MAX_CODE_LEN {
        bail!(
            "contract code {} is {} bytes, the limit is {MAX_CODE_LEN}",
            path.display(),
            code.len()
        );
    }
    Ok(code)
}

fn fetch_chain_id(client: &HttpClient) -> anyhow::Result<String> {
    let body = expect_ok(client.get("/v1/chain")?, "chain info")?;
    body.get("chain_id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| anyhow!("the node's /v1/chain answer has no chain_id: {body}"))
}

/// The nonce for a new transaction: `pending_nonce` already counts the sender's transactions
/// waiting in the mempool, so several can be sent back to back.
fn fetch_pending_nonce(client: &HttpClient, sender: &PublicKey) -> anyhow::Result<u64> {
    let what = format!("account {sender}");
    let body = expect_ok(client.get(&format!("/v1/accounts/{sender}"))?, &what)?;
    body.get("pending_nonce")
        .and_then(Value::as_u64)
        .ok_or_else(|| anyhow!("the node's answer for {what} has no pending_nonce: {body}"))
}

fn submit(client: &HttpClient, signed: &SignedTx, tx_hash: &str) -> anyhow::Result<()> {
    let body = serde_json::to_value(signed).context("encoding the transaction as JSON")?;
    let (status, answer) = client.post("/v1/tx", &body)?;
    if !(200..300).contains(&status) {
        let (code, message) = error_parts(&answer);
        bail!("node rejected the transaction ({status} {code}): {message}");
    }
    // The hash is what --wait and the user look the transaction up by; if the node hashed it
    // differently, client and node disagree on the encoding and every lookup would miss.
    match answer.get("tx_hash").and_then(Value::as_str) {
        Some(h) if !h.eq_ignore_ascii_case(tx_hash) => bail!(
            "the node accepted the transaction but reports hash {h}, not {tx_hash}: \
             client and node disagree on the transaction encoding"
        ),
        _ => Ok(()),
    }
}

/// Polls until the transaction is in a block. Network errors and 404s are retried until the
/// deadline: the node may be restarting, and a 404 right after acceptance can be a follower or
/// a cache that has not caught up.
fn wait_for_inclusion(
    client: &HttpClient,
    tx_hash: &str,
    timeout: Duration,
) -> anyhow::Result<Value> {
    let deadline = Instant::now() + timeout;
    let path = format!("/v1/tx/{tx_hash}");
    loop {
        let last = match client.get(&path) {
            Ok((status, body)) if (200..300).contains(&status) => {
                match body.get("status").and_then(Value::as_str) {
                    Some("included") => return Ok(body),
                    Some(s @ ("dropped" | "rejected" | "expired" | "failed")) => {
                        bail!("transaction {tx_hash} was {s}: {body}")
                    }
                    Some(s) => format!("status {s}"),
                    None => format!("answer without a status: {body}"),
                }
            }
            Ok((status, body)) => {
                let (code, message) = error_parts(&body);
                format!("{status} {code}: {message}")
            }
            Err(e) => format!("{e:#}"),
        };
        let now = Instant::now();
        if now >= deadline {
            bail!(
                "transaction {tx_hash} is still pending after {} (last answer: {last}); \
                 query it later with `query tx {tx_hash}`",
                humantime::format_duration(timeout)
            );
        }
        std::thread::sleep(POLL_INTERVAL.min(deadline - now));
    }
}

/// Runs a read-only query and returns the node's JSON answer unchanged.
pub fn run_query(api: &str, token: Option<&str>, cmd: QueryCmd) -> anyhow::Result<Value> {
    // Validate before building the client so bad input fails first and without a request.
    match cmd {
        QueryCmd::Block { height } => {
            let client = HttpClient::new(api)?.with_token(token);
            let (path, what) = match height {
                None => ("/v1/blocks/latest".to_string(), "latest block".to_string()),
                Some(h) => (format!("/v1/blocks/{h}"), format!("block {h}")),
            };
            expect_ok(client.get(&path)?, &what)
        }
        QueryCmd::Tx { hash } => {
            let hash = Hash::from_hex(strip_0x(&hash))
                .map_err(|e| anyhow!("bad transaction hash {hash:?}: {e}"))?;
            let client = HttpClient::new(api)?.with_token(token);
            expect_ok(
                client.get(&format!("/v1/tx/{hash}"))?,
                &format!("transaction {hash}"),
            )
        }
        QueryCmd::State { contract, key } => {
            let contract = parse_address(&contract)?;
            let key_bytes = Bytes::from_hex(strip_0x(&key))
                .map_err(|e| anyhow!("bad storage key {key:?}: {e}"))?;
            if key_bytes.is_empty() {
                bail!("storage key must not be empty");
            }
            let client = HttpClient::new(api)?.with_token(token);
            expect_ok(
                client.get(&format!(
                    "/v1/contracts/{contract}/state/{}",
                    key_bytes.to_hex()
                ))?,
                &format!("contract {contract}"),
            )
        }
        QueryCmd::Contract { address } => {
            let contract = parse_address(&address)?;
            let client = HttpClient::new(api)?.with_token(token);
            expect_ok(
                client.get(&format!("/v1/contracts/{contract}"))?,
                &format!("contract {contract}"),
            )
        }
        QueryCmd::Account { public_key } => {
            let pk = PublicKey::from_hex(strip_0x(&public_key))
                .map_err(|e| anyhow!("bad public key {public_key:?}: {e}"))?;
            let client = HttpClient::new(api)?.with_token(token);
            expect_ok(
                client.get(&format!("/v1/accounts/{pk}"))?,
                &format!("account {pk}"),
            )
        }
        QueryCmd::Call {
            contract,
            entry,
            args,
            gas,
        } => {
            let contract = parse_address(&contract)?;
            check_entry(&entry)?;
            let args = parse_args(args.as_deref())?;
            let mut body = json!({ "entry": entry, "args": args.to_hex() });
            if let Some(gas) = gas {
                if gas == 0 {
                    bail!("--gas must be greater than zero");
                }
                body["gas_limit"] = json!(gas);
            }
            let client = HttpClient::new(api)?.with_token(token);
            expect_ok(
                client.post(&format!("/v1/contracts/{contract}/query"), &body)?,
                &format!("contract {contract}"),
            )
        }
    }
}

/// Runs `status`: the node's `/stats`.
pub fn run_status(api: &str, token: Option<&str>) -> anyhow::Result<Value> {
    let client = HttpClient::new(api)?.with_token(token);
    expect_ok(client.get("/stats")?, "node stats")
}

/// Passes a 2xx answer through; turns anything else into an error with the node's code and
/// message. `what` names the thing asked for, so a 404 reads "block 7 not found".
fn expect_ok((status, body): (u16, Value), what: &str) -> anyhow::Result<Value> {
    if (200..300).contains(&status) {
        return Ok(body);
    }
    let (code, message) = error_parts(&body);
    if status == 404 {
        bail!("{what} not found (404 {code}): {message}");
    }
    bail!("node answered {status} {code} for {what}: {message}")
}

/// The `{"error": {"code", "message"}}` parts of an error answer, or stand-ins when the body is
/// something else (a proxy's page, an empty body).
fn error_parts(body: &Value) -> (String, String) {
    let err = body.get("error");
    let code = err
        .and_then(|e| e.get("code"))
        .and_then(Value::as_str)
        .unwrap_or("unknown_error")
        .to_string();
    let message = match err.and_then(|e| e.get("message")).and_then(Value::as_str) {
        Some(m) => m.to_string(),
        None => match body {
            Value::Null => "(empty answer)".to_string(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        },
    };
    (code, message)
}

/// Users paste hex from many tools; a `0x` prefix is accepted and dropped.
fn strip_0x(s: &str) -> &str {
    let s = s.trim();
    s.strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s)
}

fn parse_address(s: &str) -> anyhow::Result<Address> {
    Address::from_hex(strip_0x(s)).map_err(|e| anyhow!("bad contract address {s:?}: {e}"))
}

fn parse_args(s: Option<&str>) -> anyhow::Result<Bytes> {
    let Some(s) = s else {
        return Ok(Bytes::default());
    };
    let args = Bytes::from_hex(strip_0x(s)).map_err(|e| anyhow!("bad --args {s:?}: {e}"))?;
    if args.len() > MAX_ARGS_LEN {
        bail!(
            "--args is {} bytes, the limit is {MAX_ARGS_LEN}",
            args.len()
        );
    }
    Ok(args)
}

fn check_entry(entry: &str) -> anyhow::Result<()> {
    if !valid_entry(entry) {
        bail!(
            "bad entry point {entry:?}: must be 1 to {MAX_ENTRY_LEN} ASCII letters, digits or '_'"
        );
    }
    Ok(())
}
