//! The load generator against a real node: `accumen-stress --duration 2s --json` runs, sends,
//! sees commits, and prints a well-formed summary whose counts are consistent. No speed is
//! asserted (figures belong in the report and RUNBOOK "Performance", not in tests).

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::harness::*;

const STRESS: &str = env!("CARGO_BIN_EXE_accumen-stress");

/// Runs the stress tool against `node` with `extra` arguments; its JSON summary.
fn run_stress(node: &TestNode, extra: &[&str]) -> Value {
    let mut child = Command::new(STRESS)
        .args([
            "--api",
            &node.api,
            "--duration",
            "2s",
            "--json",
            "--deadline",
            "30s",
        ])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        stdout.read_to_string(&mut s).unwrap();
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        stderr.read_to_string(&mut s).unwrap();
        s
    });
    // The tool bounds itself (2 s of sending, 30 s of draining); this only catches a hang.
    let status = wait_for("accumen-stress to finish", Duration::from_secs(180), || {
        child.try_wait().unwrap()
    });
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    assert!(
        status.success(),
        "accumen-stress failed: {status}\n{err}\n{}",
        node.logs()
    );
    // Progress lines go to stderr, one a second while the run lasts.
    assert!(err.contains("offered") && err.contains("p99"), "{err}");
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("summary is not JSON ({e}): {out}"))
}

fn check_summary(s: &Value, format: &str) {
    for field in [
        "committed_tps",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "max_ms",
        "offered_tps",
        "send_seconds",
        "run_seconds",
    ] {
        assert!(s[field].as_f64().is_some(), "{field} missing: {s}");
    }
    let n = |f: &str| s[f].as_u64().unwrap_or_else(|| panic!("{f} missing: {s}"));
    let (offered, accepted, committed) = (n("offered"), n("accepted"), n("committed"));
    assert!(committed > 0, "nothing committed: {s}");
    assert!(committed <= accepted, "{s}");
    assert!(accepted <= offered, "{s}");
    assert!(s["committed_tps"].as_f64().unwrap() > 0.0, "{s}");
    let (p50, p95, p99, max) = (
        s["p50_ms"].as_f64().unwrap(),
        s["p95_ms"].as_f64().unwrap(),
        s["p99_ms"].as_f64().unwrap(),
        s["max_ms"].as_f64().unwrap(),
    );
    assert!(0.0 < p50 && p50 <= p95 && p95 <= p99 && p99 <= max, "{s}");
    // Errors by kind: an object of counts, adding up to errors_total.
    let errors = s["errors"].as_object().unwrap_or_else(|| panic!("{s}"));
    let sum: u64 = errors.values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(sum, n("errors_total"), "{s}");
    assert_eq!(s["config"]["format"], format, "{s}");
    assert_eq!(s["config"]["duration_s"], 2.0, "{s}");
}

#[test]
fn stress_tool_reports_consistent_counts_in_both_formats() {
    let node = TestNode::start("");
    for format in ["binary", "json"] {
        let s = run_stress(
            &node,
            &[
                "--rate",
                "400",
                "--senders",
                "20",
                "--contracts",
                "2",
                "--batch",
                "50",
                "--payload-bytes",
                "64",
                "--format",
                format,
            ],
        );
        check_summary(&s, format);
        // At 400/s for 2 s the schedule offers at most 800 (the last batch may start late).
        assert!(s["offered"].as_u64().unwrap() <= 800, "{s}");
        assert_eq!(s["config"]["payload_bytes"], 64, "{s}");
        // 800 calls drain in well under the 30 s deadline, so the watcher (which finds its
        // transactions by sender and nonce) must have seen every accepted one committed, and
        // nothing it did not send (the second run's fresh senders share the node's chain
        // with the first run's).
        assert_eq!(s["committed"], s["accepted"], "{s}");
        assert_eq!(s["committed_unacknowledged"], 0, "{s}");
    }
}
