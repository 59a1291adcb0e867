//! Stopping and starting: SIGTERM finishes the block and exits 0; persistent storage brings back
//! the same chain and state; journaled transactions survive a crash.

use std::time::Duration;

use crate::harness::*;

const PERSISTENT: &str = "storage: persistent";
const SLOW_BLOCKS: &str = "block_time: \"1h\"";

#[test]
fn sigterm_commits_pending_transactions_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let extra = format!("{PERSISTENT}\n{SLOW_BLOCKS}");
    let mut node = TestNode::start_in(dir.path(), &extra, &[]);
    let mut s = Sender::new(30);
    // With hour-long blocks nothing is produced until the node is asked to stop.
    let (tx, counter) = s.deploy(fixture("counter"));
    let deploy_hash = submit_ok(&node, &tx);
    let call_hash = submit_ok(&node, &s.call(counter, "increment", &[]));
    assert_eq!(node.height(), 0);
    let status = node.terminate();
    assert_eq!(status.code(), Some(0), "{}", node.logs());
    assert!(
        node.find_log("block producer finished").is_some(),
        "{}",
        node.logs()
    );

    let node = TestNode::start_in(
        dir.path(),
        SLOW_BLOCKS,
        &[("ACCUMEN_STORAGE", "persistent")],
    );
    assert_eq!(node.height(), 1);
    for hash in [&deploy_hash, &call_hash] {
        let (code, v) = node.get(&format!("/v1/tx/{hash}"));
        assert_eq!(code, 200, "{v}");
        assert_eq!(v["status"], "included");
        assert_eq!(v["receipt"]["status"], "success");
    }
}

#[test]
fn persistent_restart_gives_back_the_same_chain_and_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = TestNode::start_in(dir.path(), PERSISTENT, &[]);
    let mut s = Sender::new(31);
    let counter = deploy(&node, &mut s, fixture("counter"));
    let mut last = String::new();
    for _ in 0..5 {
        last = submit_ok(&node, &s.call(counter, "increment", &[]));
    }
    node.wait_included(&last);
    let height = node.height();
    let blocks: Vec<_> = (0..=height)
        .map(|h| node.get(&format!("/v1/blocks/{h}")).1)
        .collect();
    let (_, chain) = node.get("/v1/chain");
    assert_eq!(node.terminate().code(), Some(0));

    let node = TestNode::start_in(dir.path(), PERSISTENT, &[]);
    let (_, chain2) = node.get("/v1/chain");
    assert_eq!(chain["genesis_hash"], chain2["genesis_hash"]);
    // The same sequencer key was loaded from the data dir.
    assert_eq!(chain["sequencer"], chain2["sequencer"]);
    for (h, b) in blocks.iter().enumerate() {
        let (code, again) = node.get(&format!("/v1/blocks/{h}"));
        assert_eq!(code, 200);
        assert_eq!(&again, b, "block {h} changed across the restart");
    }
    let key = hex::encode(b"count");
    let (_, v) = node.get(&format!("/v1/contracts/{counter}/state/{key}"));
    assert_eq!(v["value"], hex::encode(5u64.to_le_bytes()));
    let (_, acct) = node.get(&format!("/v1/accounts/{}", s.key.public()));
    assert_eq!(acct["next_nonce"], 6);
    // The chain goes on from where it stopped, on top of the old head.
    let next = wait_for("a new block", Duration::from_secs(20), || {
        let (code, b) = node.get(&format!("/v1/blocks/{}", height + 1));
        (code == 200).then_some(b)
    });
    assert_eq!(next["parent_hash"], blocks[height as usize]["hash"]);
    let hash = submit_ok(&node, &s.call(counter, "increment", &[]));
    let v = node.wait_included(&hash);
    assert_eq!(v["receipt"]["output"], hex::encode(6u64.to_le_bytes()));
}

#[test]
fn journaled_transactions_survive_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let persist = "storage: persistent\nmempool:\n  persist: true";
    let mut node = TestNode::start_in(dir.path(), persist, &[]);
    let mut s = Sender::new(32);
    let counter = deploy(&node, &mut s, fixture("counter"));
    assert_eq!(node.terminate().code(), Some(0));

    // Acknowledged while no block is being made, then the process is killed.
    let mut node = TestNode::start_in(dir.path(), &format!("{persist}\n{SLOW_BLOCKS}"), &[]);
    let hashes: Vec<String> = (0..5)
        .map(|_| submit_ok(&node, &s.call(counter, "increment", &[])))
        .collect();
    let (_, m) = node.get("/mempool/stats");
    assert_eq!(m["size"], 5);
    node.kill();

    let node = TestNode::start_in(dir.path(), persist, &[]);
    for h in &hashes {
        let v = node.wait_included(h);
        assert_eq!(v["receipt"]["status"], "success");
    }
    let key = hex::encode(b"count");
    let (_, v) = node.get(&format!("/v1/contracts/{counter}/state/{key}"));
    assert_eq!(v["value"], hex::encode(5u64.to_le_bytes()));
    assert!(node.find_log("re-admitted").is_some(), "{}", node.logs());
}

#[test]
fn a_data_dir_of_another_chain_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = TestNode::start_in(dir.path(), PERSISTENT, &[]);
    assert_eq!(node.terminate().code(), Some(0));
    let config = dir.path().join("other.yaml");
    std::fs::write(
        &config,
        base_config(dir.path())
            .replace(CHAIN, "another-chain")
            .replace("storage: memory", "storage: persistent"),
    )
    .unwrap();
    let out = std::process::Command::new(BIN)
        .arg("--role=sequencer")
        .arg(format!("--config={}", config.display()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("another-chain") && err.contains(CHAIN),
        "{err}"
    );
}

/// A stand-in for systemd's notify socket in `dir`: the socket to read and its path for
/// `NOTIFY_SOCKET`. Reads wait at most 20 s, so a node that never notifies fails the test.
fn notify_socket(dir: &std::path::Path) -> (std::os::unix::net::UnixDatagram, String) {
    let path = dir.join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    (sock, path.to_str().unwrap().to_string())
}

#[test]
fn systemd_hears_ready_watchdog_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let (sock, socket) = notify_socket(dir.path());
    let mut node = TestNode::start_in(
        dir.path(),
        "",
        &[("NOTIFY_SOCKET", &socket), ("WATCHDOG_USEC", "400000")],
    );
    let mut seen = String::new();
    let mut buf = [0u8; 256];
    // READY comes once the listeners are bound; then a watchdog ping every 200 ms.
    while !(seen.contains("READY=1") && seen.contains("WATCHDOG=1")) {
        let n = sock.recv(&mut buf).expect("a notification from the node");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        seen.push('\n');
    }
    assert!(seen.find("READY=1") < seen.find("WATCHDOG=1"), "{seen}");
    let status = node.terminate();
    assert_eq!(status.code(), Some(0));
    loop {
        let n = sock.recv(&mut buf).expect("STOPPING=1 from the node");
        if String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1") {
            break;
        }
    }
}

/// `STATUS=` lines (what `systemctl status` shows) carry the health rule's verdict, the role,
/// the height and the mempool size; `/health` names the role too.
#[test]
fn systemd_status_lines_carry_role_health_height_and_mempool() {
    let dir = tempfile::tempdir().unwrap();
    let (sock, socket) = notify_socket(dir.path());
    let mut node = TestNode::start_in(dir.path(), "", &[("NOTIFY_SOCKET", &socket)]);
    let mut buf = [0u8; 512];
    let status = loop {
        let n = sock.recv(&mut buf).expect("a STATUS= line from the node");
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if let Some(line) = text.lines().find_map(|l| l.strip_prefix("STATUS=")) {
            break line.to_owned();
        }
    };
    assert!(
        status.starts_with("sequencer: healthy; height ") && status.contains("; mempool "),
        "{status}"
    );
    let (code, health) = node.get("/health");
    assert_eq!(code, 200, "{health}");
    assert_eq!(health["role"], "sequencer");
    assert_eq!(node.terminate().code(), Some(0));
}

#[test]
fn a_call_past_execution_timeout_is_dropped_with_an_error_log() {
    let node = TestNode::start("execution:\n  workers: 2\n  timeout: \"10ms\"");
    let mut s = Sender::new(33);
    let slow = deploy(&node, &mut s, fixture("slow"));
    let counter = deploy(&node, &mut s, fixture("counter"));
    let mut other = Sender::new(34);
    // The largest gas limit the node allows: about 6 million slow iterations, many times the
    // 10 ms backstop on any machine.
    let slow_call = s.sign(
        accumen_actors::types::Action::Call {
            contract: slow,
            entry: "run".into(),
            args: accumen_actors::types::Bytes::default(),
        },
        50_000_000,
    );
    let stuck = submit_ok(&node, &slow_call);
    let fine = submit_ok(&node, &other.call(counter, "increment", &[]));
    // The other sender's transaction goes through; the slow one never gets a receipt.
    let v = node.wait_included(&fine);
    assert_eq!(v["receipt"]["status"], "success");
    let line = wait_for("the timeout log", Duration::from_secs(20), || {
        node.find_log("execution timeout")
    });
    assert!(line.contains("ERROR"), "{line}");
    let (code, v) = node.get(&format!("/v1/tx/{stuck}"));
    assert_eq!(
        code, 404,
        "a timed-out transaction must leave the mempool: {v}"
    );
    let (_, e) = node.get("/execution/stats");
    assert!(e["timeouts"].as_u64().unwrap() >= 1, "{e}");
    // Its nonce was not used.
    let (_, acct) = node.get(&format!("/v1/accounts/{}", s.key.public()));
    assert_eq!(acct["next_nonce"], 2);
}
