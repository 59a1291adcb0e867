//! `accumen-crash-check`: after a crash and restart, are all acknowledged transactions still
//! there? The crash loop's (`deploy/crash-loop.sh`) loss check, against a running node.
//!
//! It reads transaction ids (hex, one a line, as `accumen-stress --acked-out` writes them) from
//! one or more `--acked` files, scans the chain's blocks from `--from` to the head through
//! `GET /v1/sync/blocks`, and asks `GET /v1/tx/{id}` about every id not found in a block. Each
//! id ends up `included` (in a scanned block, or the node says included), `pending` (the node
//! still holds it: mempool, restored from its journal after a crash) or `lost` (404: the node
//! acknowledged it and then forgot it). An id included in two blocks of the scanned range is
//! reported too: a replay after a crash must never execute a transaction twice.
//!
//! Invariants: a file's last line without a newline is a line its writer was killed while
//! writing; it is skipped and counted (`partial_lines`), never guessed at. Any other line that
//! is not a 64-digit hex id is an error (exit 2), as is a missing file: a check that read
//! less than it was given must not pass. The scan is incremental: `--from` lets each round scan
//! only the blocks made since the last one (`scanned_to` + 1 of the previous answer), with the
//! ids still pending then given again (`--pending-out`).
//!
//! Output: one JSON object on stdout (`acked`, `included`, `pending`, `lost`, `lost_ids` (at
//! most 20), `included_twice`, `scanned_from`, `scanned_to`, `blocks_scanned`,
//! `partial_lines`). Exit codes: 0 nothing lost, 1 a loss or a double inclusion, 2 bad usage
//! or input, 3 the node could not be asked (unreachable, malformed answers).
//!
//! Only for your own nodes: it reads every block of the range and asks once per unresolved id.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use accumen::client::HttpClient;
use accumen_actors::chain::sync::parse_batch;
use accumen_actors::types::Hash;
use anyhow::{Context, bail};
use clap::Parser;
use serde_json::json;

/// Blocks asked for per sync request (the endpoint's own cap applies too).
const SCAN_BLOCKS: u32 = 64;
/// Concurrent `GET /v1/tx` lookups for ids not found in the scanned blocks.
const LOOKUP_THREADS: usize = 4;
/// Lost ids listed in the answer (the count is always complete).
const LIST_MAX: usize = 20;

#[derive(Debug, Parser)]
#[command(
    name = "accumen-crash-check",
    about = "Checks that a node still holds every acknowledged transaction (pending or included)"
)]
struct Args {
    /// The node's API.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    api: String,
    /// A file of acknowledged ids, one hex id a line (repeat for several files).
    #[arg(long = "acked", value_name = "FILE", required = true)]
    acked: Vec<PathBuf>,
    /// First block height to scan (earlier blocks are taken as already checked).
    #[arg(long, default_value_t = 1)]
    from: u64,
    /// Write the ids still pending here (one a line), for the next round's `--acked`.
    #[arg(long, value_name = "FILE")]
    pending_out: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Unknown,
    Included(u64),
    Pending,
    Lost,
}

/// Input the check cannot trust (exit 2), apart from the node's failures (exit 3).
#[derive(Debug)]
struct BadInput(anyhow::Error);

fn main() -> ExitCode {
    let args = Args::parse();
    let ids = match read_ids(&args.acked) {
        Ok(ids) => ids,
        Err(BadInput(e)) => {
            eprintln!("accumen-crash-check: {e:#}");
            return ExitCode::from(2);
        }
    };
    match check(&args, ids) {
        Ok((report, ok)) => {
            println!("{report}");
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("accumen-crash-check: {e:#}");
            ExitCode::from(3)
        }
    }
}

/// The ids of every file (duplicates merged) and the number of partial last lines skipped.
fn read_ids(files: &[PathBuf]) -> Result<(Vec<Hash>, u64), BadInput> {
    let mut ids = Vec::new();
    let mut partial = 0;
    for path in files {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--acked {}", path.display()))
            .map_err(BadInput)?;
        let mut lines: Vec<&str> = text.split('\n').collect();
        // split leaves "" after a final newline; anything else there was cut mid-write.
        if lines.pop().is_some_and(|last| !last.is_empty()) {
            partial += 1;
        }
        for (n, line) in lines.iter().enumerate() {
            let id = Hash::from_hex(line.trim_end_matches('\r'))
                .map_err(|e| {
                    anyhow::anyhow!(
                        "--acked {} line {}: not a transaction id ({e})",
                        path.display(),
                        n + 1
                    )
                })
                .map_err(BadInput)?;
            ids.push(id);
        }
    }
    Ok((ids, partial))
}

fn check(args: &Args, (ids, partial): (Vec<Hash>, u64)) -> anyhow::Result<(String, bool)> {
    let client = HttpClient::new(&args.api)?;
    let mut seen: HashMap<Hash, Seen> = ids.iter().map(|id| (*id, Seen::Unknown)).collect();

    let (status, stats) = client.get("/stats")?;
    if status != 200 {
        bail!("GET /stats answered {status}: {stats}");
    }
    let head = stats["block_height"]
        .as_u64()
        .context("GET /stats has no block_height")?;

    // Every block from --from to the head (as of the start; later blocks are left to the
    // lookups below and to the next round's scan).
    let mut included_twice = Vec::new();
    let mut height = args.from.max(1);
    let mut blocks_scanned = 0u64;
    while height <= head {
        let path = format!("/v1/sync/blocks?from={height}&limit={SCAN_BLOCKS}");
        let (status, body) = client.get_raw(&path)?;
        if status != 200 {
            bail!("GET {path} answered {status}");
        }
        let batch = parse_batch(&body, height, SCAN_BLOCKS)
            .with_context(|| format!("GET {path}: malformed answer"))?;
        if batch.blocks.is_empty() {
            bail!("GET {path}: no block at height {height}, below the head {head}");
        }
        for block in &batch.blocks {
            let h = block.header.height;
            for tx in &block.txs {
                let Some(state) = seen.get_mut(&tx.tx.id()) else {
                    continue;
                };
                if let Seen::Included(first) = *state {
                    included_twice.push(json!({
                        "id": tx.tx.id().to_hex(), "heights": [first, h]
                    }));
                } else {
                    *state = Seen::Included(h);
                }
            }
            blocks_scanned += 1;
        }
        height += batch.blocks.len() as u64;
    }
    let scanned_to = height - 1;

    lookup_unresolved(&client, &mut seen)?;

    let count = |want: fn(&Seen) -> bool| seen.values().filter(|s| want(s)).count();
    let included = count(|s| matches!(s, Seen::Included(_)));
    let pending: Vec<Hash> = ids
        .iter()
        .filter(|id| seen.get(id) == Some(&Seen::Pending))
        .copied()
        .collect();
    let mut lost_ids: Vec<String> = seen
        .iter()
        .filter(|(_, s)| **s == Seen::Lost)
        .map(|(id, _)| id.to_hex())
        .collect();
    lost_ids.sort();
    let lost = lost_ids.len();
    lost_ids.truncate(LIST_MAX);

    if let Some(path) = &args.pending_out {
        // Deduplicated, in the order first given.
        let mut written = std::collections::HashSet::new();
        let text: String = pending
            .iter()
            .filter(|id| written.insert(**id))
            .map(|id| format!("{}\n", id.to_hex()))
            .collect();
        std::fs::write(path, text).with_context(|| format!("--pending-out {}", path.display()))?;
    }
    let ok = lost == 0 && included_twice.is_empty();
    let report = json!({
        "acked": seen.len(),
        "included": included,
        "pending": count(|s| matches!(s, Seen::Pending)),
        "lost": lost,
        "lost_ids": lost_ids,
        "included_twice": included_twice,
        "scanned_from": args.from.max(1),
        "scanned_to": scanned_to,
        "blocks_scanned": blocks_scanned,
        "partial_lines": partial,
    });
    Ok((report.to_string(), ok))
}

/// Asks the node about every id no scanned block held, on a few threads.
fn lookup_unresolved(client: &HttpClient, seen: &mut HashMap<Hash, Seen>) -> anyhow::Result<()> {
    let todo: Vec<Hash> = seen
        .iter()
        .filter(|(_, s)| **s == Seen::Unknown)
        .map(|(id, _)| *id)
        .collect();
    if todo.is_empty() {
        return Ok(());
    }
    let todo = Arc::new(Mutex::new(todo));
    let answers: Arc<Mutex<Vec<(Hash, Seen)>>> = Arc::default();
    let mut threads = Vec::new();
    for _ in 0..LOOKUP_THREADS {
        let (todo, answers) = (todo.clone(), answers.clone());
        let client = HttpClient::new(client.base_url())?
            .with_timeouts(Duration::from_secs(5), Duration::from_secs(30));
        threads.push(std::thread::spawn(move || -> anyhow::Result<()> {
            loop {
                let Some(id) = todo.lock().unwrap_or_else(|p| p.into_inner()).pop() else {
                    return Ok(());
                };
                let answer = lookup(&client, &id)?;
                answers
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((id, answer));
            }
        }));
    }
    for t in threads {
        t.join()
            .map_err(|_| anyhow::anyhow!("a lookup thread panicked"))??;
    }
    for (id, answer) in answers.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
        seen.insert(id, answer);
    }
    Ok(())
}

/// One `GET /v1/tx/{id}`: pending, included (in a block after the scan), or lost (404).
fn lookup(client: &HttpClient, id: &Hash) -> anyhow::Result<Seen> {
    let path = format!("/v1/tx/{}", id.to_hex());
    let (status, v) = client.get(&path)?;
    match (status, v["status"].as_str()) {
        (200, Some("pending")) => Ok(Seen::Pending),
        (200, Some("included")) => Ok(Seen::Included(v["block_height"].as_u64().unwrap_or(0))),
        (404, _) => Ok(Seen::Lost),
        _ => bail!("GET {path} answered {status}: {v}"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn file(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn reads_ids_across_files_and_skips_only_a_cut_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = ("11".repeat(32), "22".repeat(32));
        let files = [
            file(&dir, "one", &format!("{a}\n{b}\r\n")),
            file(&dir, "empty", ""),
            // The writer was killed in the middle of its third line.
            file(&dir, "cut", &format!("{a}\n{}", &b[..10])),
        ];
        let Ok((ids, partial)) = read_ids(&files) else {
            panic!("valid files refused");
        };
        let hex: Vec<String> = ids.iter().map(Hash::to_hex).collect();
        assert_eq!(hex, [a.clone(), b, a]);
        assert_eq!(partial, 1);
    }

    #[test]
    fn refuses_a_bad_line_anywhere_but_last_and_a_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let a = "11".repeat(32);
        for (name, text) in [
            ("short", format!("{}\n{a}\n", &a[..62])),
            ("nothex", format!("{a}\n{}\n", "zz".repeat(32))),
            ("blank", format!("{a}\n\n{a}\n")),
        ] {
            let f = file(&dir, name, &text);
            let Err(BadInput(e)) = read_ids(&[f]) else {
                panic!("{name} was accepted");
            };
            assert!(
                e.to_string().contains("not a transaction id"),
                "{name}: {e}"
            );
        }
        assert!(read_ids(&[dir.path().join("missing")]).is_err());
    }
}
