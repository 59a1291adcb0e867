//! Backups of a real node: one taken over the admin listener while transactions flow restores
//! elsewhere and starts on the same chain and state; `db check` passes on a good data dir and
//! names a flipped byte; restore refuses a data dir that holds a database; a tar of a STOPPED
//! node's data dir (the seed runbook's way) restores too; a data dir left by the previous
//! storage schema (2) is migrated at start and serves the same chain and receipts.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;

const PERSISTENT: &str = "storage: persistent";

fn accumen(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn run_ok(args: &[&str]) -> Value {
    let out = accumen(args);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", describe(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Block hashes 0..=height as the node serves them.
fn hashes(node: &TestNode, height: u64) -> Vec<Value> {
    (0..=height)
        .map(|h| node.get(&format!("/v1/blocks/{h}")).1["hash"].clone())
        .collect()
}

/// Deploys the counter and calls it a few times; returns the counter's address.
fn some_chain(node: &TestNode) -> accumen_actors::types::Address {
    let mut deployer = Sender::new(1);
    let counter = deploy(node, &mut deployer, fixture("counter"));
    let mut last = String::new();
    for _ in 0..5 {
        last = submit_ok(node, &deployer.call(counter, "increment", &[]));
    }
    node.wait_included(&last);
    counter
}

fn count(node: &TestNode, counter: &accumen_actors::types::Address) -> Value {
    let key = hex::encode(b"count");
    node.get(&format!("/v1/contracts/{counter}/state/{key}")).1["value"].clone()
}

#[test]
fn a_backup_under_load_restores_elsewhere_to_the_same_chain_and_state() {
    let a = tempfile::tempdir().unwrap();
    let node = Arc::new(TestNode::start_in(a.path(), PERSISTENT, &[]));
    let counter = some_chain(&node);

    // Transactions flow from another thread for the whole backup.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (node, stop) = (node.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut s = Sender::new(7);
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let batch: Vec<_> = (0..20).map(|_| s.call(counter, "increment", &[])).collect();
                let (code, v) = node.post("/v1/txs", &json_txs(&batch));
                assert_eq!(code, 200, "{v}");
                sent += 20;
            }
            sent
        })
    };
    let start_height = node.height();
    wait_for("blocks under load", Duration::from_secs(30), || {
        (node.height() >= start_height + 3).then_some(())
    });
    let out = a.path().join("backup.redb");
    let started = Instant::now();
    let got = run_ok(&["backup", "--admin", &node.admin, "--out", s(&out)]);
    let took = started.elapsed();
    let during = node.height();
    stop.store(true, Ordering::Relaxed);
    let sent = load.join().unwrap();
    let backed_up = got["stats"]["head_height"].as_u64().unwrap();
    eprintln!(
        "backup under load: {} bytes at height {backed_up} in {took:?} ({sent} txs sent meanwhile, head {during} after)",
        got["stats"]["bytes"]
    );
    assert!(backed_up >= start_height + 3);
    let want = hashes(&node, backed_up);
    let sequencer = node.get("/v1/chain").1["sequencer"].clone();
    let mut node = Arc::into_inner(node).unwrap();
    node.terminate();

    // Restore elsewhere, with the chain's key (a backup holds the database, not the key).
    let b = tempfile::tempdir().unwrap();
    std::fs::copy(
        a.path().join("sequencer.key"),
        b.path().join("sequencer.key"),
    )
    .unwrap();
    let restored = run_ok(&["restore", "--from", s(&out), "--data-dir", s(b.path())]);
    assert!(restored["restored"]["replaced"].is_null(), "{restored}");
    // Same state: every block re-executes to its header's state root, and the state table is
    // the re-executed state.
    let check = run_ok(&["db", "check", "--data-dir", s(b.path())]);
    assert_eq!(check["head_height"], backed_up, "{check}");
    assert_eq!(check["problem_count"], 0, "{check}");
    assert_eq!(check["state_compared"], true, "{check}");

    let node_b = TestNode::start_in(b.path(), PERSISTENT, &[]);
    assert!(node_b.height() >= backed_up);
    assert_eq!(hashes(&node_b, backed_up), want);
    assert_eq!(node_b.get("/v1/chain").1["sequencer"], sequencer);
    // It goes on from there: a new call lands on top of the restored state.
    let mut s7 = Sender::new(8);
    let before = count(&node_b, &counter);
    let h = submit_ok(&node_b, &s7.call(counter, "increment", &[]));
    node_b.wait_included(&h);
    assert_ne!(count(&node_b, &counter), before);
}

/// Runs a node on `dir` until it has a small chain, then stops it (SIGTERM).
fn stopped_node_with_a_chain(dir: &Path) -> (Vec<Value>, u64) {
    let mut node = TestNode::start_in(dir, PERSISTENT, &[]);
    some_chain(&node);
    let height = node.height();
    let h = hashes(&node, height);
    node.terminate();
    (h, height)
}

#[test]
fn db_check_passes_on_a_good_data_dir_and_names_a_flipped_byte_in_a_block() {
    let a = tempfile::tempdir().unwrap();
    let (_, height) = stopped_node_with_a_chain(a.path());
    let config = a.path().join("node.yaml");
    let check = run_ok(&["db", "check", "--config", s(&config)]);
    assert_eq!(check["problem_count"], 0, "{check}");
    assert!(check["head_height"].as_u64().unwrap() >= height, "{check}");
    assert!(
        check["sequencer"].is_string(),
        "the configured key: {check}"
    );

    // Flip one byte in every stored copy of the sequencer's key (each block header holds it):
    // blocks no longer verify, and the check says at which height and in which table.
    let db = a.path().join("accumen.redb");
    let key = hex::decode(check["sequencer"].as_str().unwrap()).unwrap();
    let mut bytes = std::fs::read(&db).unwrap();
    let mut flipped = 0;
    let mut i = 0;
    while i + key.len() <= bytes.len() {
        if bytes[i..i + key.len()] == key[..] {
            bytes[i + 7] ^= 0x01;
            flipped += 1;
            i += key.len();
        } else {
            i += 1;
        }
    }
    assert!(flipped > 0);
    std::fs::write(&db, &bytes).unwrap();
    let out = accumen(&["db", "check", "--config", s(&config)]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("height 1: table blocks, key 1:"),
        "{}",
        describe(&out)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["state_compared"], false, "{report}");

    // A missing data dir, or none given: clear errors, other exit codes.
    let out = accumen(&["db", "check", "--data-dir", s(&a.path().join("nope"))]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no database at"));
    let out = accumen(&["db", "check"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
}

#[test]
fn restore_refuses_a_data_dir_that_holds_a_database_and_changes_nothing() {
    let a = tempfile::tempdir().unwrap();
    stopped_node_with_a_chain(a.path());
    let out = a.path().join("b.redb");
    let got = run_ok(&["backup", "--data-dir", s(a.path()), "--out", s(&out)]);
    assert_eq!(got["source"], "offline", "{got}");
    // Never overwrites a backup.
    let again = accumen(&["backup", "--data-dir", s(a.path()), "--out", s(&out)]);
    assert_eq!(again.status.code(), Some(3), "{}", describe(&again));

    let b = tempfile::tempdir().unwrap();
    let mut other = TestNode::start_in(b.path(), PERSISTENT, &[]);
    // Not into a running node's data dir, even forced.
    let refused = accumen(&[
        "restore",
        "--from",
        s(&out),
        "--data-dir",
        s(b.path()),
        "--force",
    ]);
    assert_eq!(refused.status.code(), Some(3), "{}", describe(&refused));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("already open"));
    other.terminate();
    let before = std::fs::read(b.path().join("accumen.redb")).unwrap();
    let refused = accumen(&["restore", "--from", s(&out), "--data-dir", s(b.path())]);
    assert_eq!(refused.status.code(), Some(3), "{}", describe(&refused));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("already holds a database") && stderr.contains("--force"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(b.path().join("accumen.redb")).unwrap(),
        before
    );

    // A damaged backup restores nothing, even forced.
    let mut bad = std::fs::read(&out).unwrap();
    let len = bad.len();
    bad.truncate(len / 3);
    let bad_path = a.path().join("bad.redb");
    std::fs::write(&bad_path, &bad).unwrap();
    let refused = accumen(&[
        "restore",
        "--from",
        s(&bad_path),
        "--data-dir",
        s(b.path()),
        "--force",
    ]);
    assert_ne!(refused.status.code(), Some(0), "{}", describe(&refused));
    assert_eq!(
        std::fs::read(b.path().join("accumen.redb")).unwrap(),
        before
    );
}

#[test]
fn a_tar_of_a_stopped_nodes_data_dir_restores() {
    let a = tempfile::tempdir().unwrap();
    let data = a.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let (want, height) = stopped_node_with_a_chain(&data);
    // The seed runbook's backup, of the stopped node.
    let tarball = a.path().join("state.tar.gz");
    let st = Command::new("tar")
        .args(["-czf", s(&tarball), "-C", s(a.path()), "data"])
        .status()
        .unwrap();
    assert!(st.success());

    let b = tempfile::tempdir().unwrap();
    let st = Command::new("tar")
        .args(["-xzf", s(&tarball), "-C", s(b.path())])
        .status()
        .unwrap();
    assert!(st.success());
    let restored = b.path().join("data");
    let check = run_ok(&["db", "check", "--data-dir", s(&restored)]);
    assert_eq!(check["problem_count"], 0, "{check}");
    let node = TestNode::start_in(&restored, PERSISTENT, &[]);
    assert!(node.height() >= height);
    assert_eq!(hashes(&node, height), want);
}

#[test]
fn backup_with_the_config_of_a_running_node_asks_its_admin_listener() {
    let a = tempfile::tempdir().unwrap();
    let node = TestNode::start_in(a.path(), PERSISTENT, &[]);
    some_chain(&node);
    // The node's own configuration, with the port its admin listener got.
    let config = a.path().join("node.yaml");
    let port0 = std::fs::read_to_string(&config).unwrap();
    let addr = node.admin.trim_start_matches("http://");
    let text = port0.replace(
        "admin_addr: \"127.0.0.1:0\"",
        &format!("admin_addr: \"{addr}\""),
    );
    assert_ne!(text, port0);
    let bound = a.path().join("bound.yaml");
    std::fs::write(&bound, text).unwrap();

    // Port 0 in the config: the running node cannot be found; say what to pass.
    let out_file = a.path().join("b.redb");
    let out = accumen(&["backup", "--config", s(&config), "--out", s(&out_file)]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--admin"));
    // --data-dir on a running node's directory: refused, pointing at the safe way.
    let out = accumen(&["backup", "--data-dir", s(a.path()), "--out", s(&out_file)]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("running node"));
    assert!(!out_file.exists());

    let got = run_ok(&["backup", "--config", s(&bound), "--out", s(&out_file)]);
    assert_eq!(
        got["source"],
        format!("{}/admin/backup", node.admin),
        "{got}"
    );
    let height: u64 = got["stats"]["head_height"].as_u64().unwrap();
    // A running node's database is not checked in place (it would be a moving target).
    let out = accumen(&["db", "check", "--config", s(&bound)]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let copy_dir = tempfile::tempdir().unwrap();
    run_ok(&[
        "restore",
        "--from",
        s(&out_file),
        "--data-dir",
        s(copy_dir.path()),
    ]);
    let check = run_ok(&["db", "check", "--data-dir", s(copy_dir.path())]);
    assert_eq!(check["head_height"], height, "{check}");
    assert_eq!(check["problem_count"], 0, "{check}");
    assert_eq!(
        check["head_hash"],
        node.get(&format!("/v1/blocks/{height}")).1["hash"],
        "{check}"
    );
}

/// Issue 10: the mempool journal is its own file and forgets committed transactions lazily. A
/// node killed right after its transactions committed may leave their rows behind: `db check`
/// counts them as committed (not as problems), and the restart re-admits, refuses and forgets
/// them, so the file is empty once the node has started again; nothing runs twice.
#[test]
fn committed_rows_left_in_the_journal_file_by_a_kill_are_dropped_at_restart() {
    let dir = tempfile::tempdir().unwrap();
    let persist = "storage: persistent\nmempool:\n  persist: true";
    let mut node = TestNode::start_in(dir.path(), persist, &[]);
    let counter = some_chain(&node);
    node.kill();
    assert!(dir.path().join("journal.redb").exists());
    let config = dir.path().join("node.yaml");
    let check = run_ok(&["db", "check", "--config", s(&config)]);
    assert_eq!(check["problem_count"], 0, "{check}");
    let rows = check["journal_rows"].as_u64().unwrap();
    // Every transaction sent was committed, so every row left is a committed one.
    assert_eq!(check["journal_committed"].as_u64(), Some(rows), "{check}");

    let mut node = TestNode::start_in(dir.path(), persist, &[]);
    assert_eq!(count(&node, &counter), hex::encode(5u64.to_le_bytes()));
    assert_eq!(node.get("/mempool/stats").1["size"], 0);
    node.terminate();
    let check = run_ok(&["db", "check", "--config", s(&config)]);
    assert_eq!(check["problem_count"], 0, "{check}");
    assert_eq!(check["journal_rows"], 0, "forgotten at restart: {check}");
}

#[test]
fn a_schema_2_data_dir_is_migrated_at_start_and_serves_the_same_chain_and_receipts() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = TestNode::start_in(dir.path(), PERSISTENT, &[]);
    let mut deployer = Sender::new(1);
    let counter = deploy(&node, &mut deployer, fixture("counter"));
    let last = submit_ok(&node, &deployer.call(counter, "increment", &[]));
    let status = node.wait_included(&last);
    let height = node.height();
    let chain = hashes(&node, height);
    let value = count(&node, &counter);
    node.terminate();

    // The data dir as the previous version (storage schema 2: receipts keyed by tx id) left it.
    {
        let db = accumen_actors::storage::Storage::open_existing(&dir.path().join("accumen.redb"))
            .unwrap();
        db.receipts_to_schema_2(None).unwrap();
    }

    let mut node = TestNode::start_in(dir.path(), PERSISTENT, &[]);
    let line = node
        .find_log("migrated storage schema 2 to 3")
        .unwrap_or_else(|| panic!("no migration line:\n{}", node.logs()));
    assert!(
        line.contains("receipts=2"),
        "the deploy's and the call's: {line}"
    );
    assert_eq!(hashes(&node, height), chain);
    assert_eq!(node.get(&format!("/v1/tx/{last}")).1, status);
    assert_eq!(count(&node, &counter), value);
    // The chain goes on, and its new receipts are served too.
    let next = submit_ok(&node, &deployer.call(counter, "increment", &[]));
    assert_eq!(node.wait_included(&next)["receipt"]["status"], "success");
    node.terminate();

    // Migrated once: a second start has nothing to move, and the data dir checks clean.
    let mut node = TestNode::start_in(dir.path(), PERSISTENT, &[]);
    assert!(node.find_log("migrat").is_none(), "{}", node.logs());
    node.terminate();
    let config = dir.path().join("node.yaml");
    let check = run_ok(&["db", "check", "--config", s(&config)]);
    assert_eq!(check["problem_count"], 0, "{check}");
}
