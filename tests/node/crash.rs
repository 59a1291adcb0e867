//! One round of the crash loop (`deploy/crash-loop.sh`) as a test: a node with persistent
//! storage and the mempool journal on is SIGKILLed while `accumen-stress` loads it; the stopped
//! data dir passes `accumen db check`; after a restart `accumen-crash-check` finds every id the
//! stress tool recorded as acknowledged (`--acked-out`) in a block or pending. The checker is
//! also shown to catch a loss (an id the node never saw), to skip a partial last line and to
//! refuse a malformed file, so its "nothing lost" means something. No timing is asserted.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::harness::*;

const STRESS: &str = env!("CARGO_BIN_EXE_accumen-stress");
const CHECK: &str = env!("CARGO_BIN_EXE_accumen-crash-check");

const PERSIST: &str = "storage: persistent\nmempool:\n  persist: true\n";

/// Runs accumen-crash-check on `files`: exit code and the JSON report (Null if none).
fn crash_check(node: &TestNode, files: &[&std::path::Path]) -> (i32, Value, String) {
    let mut cmd = Command::new(CHECK);
    cmd.args(["--api", &node.api]);
    for f in files {
        cmd.arg("--acked").arg(f);
    }
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let report = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), report, stderr)
}

fn lines(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path)
        .map(|s| s.matches('\n').count())
        .unwrap_or(0)
}

#[test]
fn acknowledged_transactions_survive_a_sigkill_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let acked = dir.path().join("acked");
    let mut node = TestNode::start_in(dir.path(), PERSIST, &[]);

    // Bounded by itself (--duration, --deadline); killed below long before it ends.
    let mut stress = Command::new(STRESS)
        .args(["--api", &node.api, "--duration", "20s", "--rate", "1000"])
        .args(["--senders", "200", "--contracts", "2", "--batch", "100"])
        .args(["--deadline", "5s", "--json", "--acked-out"])
        .arg(&acked)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill mid-load: once a few batches are acknowledged (the 2 deploys come first).
    wait_for(
        "acknowledged transactions",
        Duration::from_secs(120),
        || {
            if let Ok(Some(status)) = stress.try_wait() {
                panic!("accumen-stress ended early: {status}\n{}", node.logs());
            }
            (lines(&acked) >= 302).then_some(())
        },
    );
    node.kill();
    let _ = stress.kill();
    let _ = stress.wait();
    let recorded = lines(&acked);

    // Offline, on the crashed data dir: linked chain, re-executed state roots, outbox.
    let check = Command::new(BIN)
        .args(["db", "check", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "db check after SIGKILL: {}\n{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );

    let node = TestNode::start_in(dir.path(), PERSIST, &[]);
    let (code, report, err) = crash_check(&node, &[&acked]);
    assert_eq!(code, 0, "{report} {err}\n{}", node.logs());
    assert_eq!(report["lost"], 0, "{report}");
    assert_eq!(report["included_twice"], serde_json::json!([]), "{report}");
    let n = |f: &str| report[f].as_u64().unwrap();
    assert_eq!(n("acked") as usize, recorded, "{report}");
    assert_eq!(n("included") + n("pending"), n("acked"), "{report}");
    assert!(n("included") >= 2, "the deploys were included: {report}");

    // An id the node never saw is a loss: exit 1, listed.
    let unknown = "ab".repeat(32);
    let forged = dir.path().join("forged");
    std::fs::write(&forged, format!("{unknown}\n")).unwrap();
    let (code, report, _) = crash_check(&node, &[&acked, &forged]);
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["lost"], 1, "{report}");
    assert_eq!(report["lost_ids"], serde_json::json!([unknown]), "{report}");

    // A last line cut mid-write is skipped and counted, not read as an id.
    let partial = dir.path().join("partial");
    std::fs::write(&partial, &unknown[..40]).unwrap();
    let (code, report, _) = crash_check(&node, &[&acked, &partial]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["partial_lines"], 1, "{report}");

    // Any other bad line refuses the whole check (exit 2): it must not pass on less input.
    let bad = dir.path().join("bad");
    std::fs::write(&bad, "not-an-id\n").unwrap();
    let (code, _, err) = crash_check(&node, &[&acked, &bad]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("line 1"), "{err}");
    let (code, _, err) = crash_check(&node, &[&dir.path().join("missing")]);
    assert_eq!(code, 2, "{err}");
}
