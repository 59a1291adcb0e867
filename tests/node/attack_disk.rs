//! A full disk (issue 6, §8): the node's data dir is a small tmpfs that fills up. The store must
//! be detected as failed (ERROR naming storage and the OS error, `/health` 503 with the reason on
//! both listeners, transactions refused with 503 `storage_failed`, exit code 74), and once space
//! is back a restart on the same data dir must find every committed block intact, include every
//! acknowledged transaction (`mempool.persist`) and keep producing.
//!
//! Needs root (it mounts a tmpfs); where mounting is not permitted it prints SKIPPED and returns.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::harness::*;

/// Size of the test filesystem, MiB.
const FS_MIB: u64 = 32;
/// Call arguments of the transactions that fill the journal (`MAX_ARGS_LEN` is 64 KiB).
const BIG_ARGS: usize = 60 * 1024;

/// A tmpfs mounted on a temp dir; unmounted on drop (after every node using it is gone).
struct Tmpfs {
    dir: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(mib: u64) -> Result<Tmpfs, String> {
        let tmp = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let dir = tmp.path().to_path_buf();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m,mode=0700")])
            .arg("tmpfs")
            .arg(&dir)
            .output()
            .map_err(|e| format!("running mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs { dir, _tmp: tmp })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Still busy (a node that has not quite gone): detach it now, it goes when free.
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

/// Writes zeros to `path` until the filesystem refuses (ENOSPC); returns the bytes written.
fn fill(path: &Path) -> u64 {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 256 * 1024];
    let mut written = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(28), "filling the disk: {e}");
                break;
            }
        }
    }
    written
}

/// GET that tolerates a node that has gone away (None).
fn try_get(base: &str, path: &str) -> Option<(u16, Value)> {
    accumen::client::HttpClient::new(base).ok()?.get(path).ok()
}

fn block_at(node: &TestNode, h: u64) -> Value {
    let (code, b) = node.get(&format!("/v1/blocks/{h}"));
    assert_eq!(code, 200, "block {h}: {b}");
    b
}

fn field(v: &Value, key: &str) -> String {
    let s = v
        .get(key)
        .or_else(|| v.get("header").and_then(|h| h.get(key)))
        .unwrap_or_else(|| panic!("no {key} in {v}"));
    s.to_string()
}

const EXTRA: &str = "storage: persistent
mempool:
  persist: true
";

#[test]
fn disk_full_fails_the_store_loudly_and_a_restart_recovers_everything() {
    let fs = match Tmpfs::mount(FS_MIB) {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!(
                "SKIPPED disk_full_fails_the_store_loudly_and_a_restart_recovers_everything: \
                 cannot mount a test filesystem ({why}); this test needs root"
            );
            return;
        }
    };
    let mut node = TestNode::start_in(&fs.dir, EXTRA, &[]);
    let mut alice = Sender::new(61);
    let counter = deploy(&node, &mut alice, fixture("counter"));
    let mut acked: Vec<String> = Vec::new();
    for _ in 0..3 {
        acked.push(submit_ok(&node, &alice.call(counter, "increment", &[])));
    }
    for h in &acked {
        node.wait_included(h);
    }
    // Acknowledged but not includable yet (nonces 1 and 2 of a sender whose nonce 0 is still to
    // come): they sit in the journal through the failure and must come back after the restart.
    let mut dave = Sender::new(64);
    dave.nonce = 1;
    let waiting: Vec<String> = (0..2)
        .map(|_| submit_ok(&node, &dave.call(counter, "increment", &[])))
        .collect();
    wait_for("a few blocks", Duration::from_secs(30), || {
        (node.height() >= 5).then_some(())
    });
    // Blocks committed before the disk fills: they must all survive.
    let before = node.height();
    let hashes: Vec<String> = (1..=before)
        .map(|h| field(&block_at(&node, h), "hash"))
        .collect();

    // Fill the disk, then keep sending big transactions (each journaled before it is
    // acknowledged) until the store gives out.
    let filler = fs.dir.join("filler");
    let filled = fill(&filler);
    assert!(filled > 0);
    let mut bob = Sender::new(62);
    let failed_with = wait_for("the store to fail", Duration::from_secs(60), || {
        if let Ok(Some(status)) = node.child.try_wait() {
            panic!(
                "node exited ({status}) before reporting the failure:\n{}",
                node.logs()
            );
        }
        let batch: Vec<_> = (0..8)
            .map(|i| bob.call(counter, "increment", &[i as u8; BIG_ARGS]))
            .collect();
        let (code, v) = node
            .client()
            .post("/v1/txs", &json_txs(&batch))
            .unwrap_or_else(|e| panic!("POST /v1/txs: {e}\n{}", node.logs()));
        if code == 200 {
            let results = v["results"].as_array().unwrap();
            let mut refused = None;
            for (r, t) in results.iter().zip(&batch) {
                if r["accepted"] == true {
                    acked.push(r["tx_hash"].as_str().unwrap().to_string());
                } else {
                    refused = Some(r["error"].clone());
                    // Refused: the nonce is unused; later ones of this batch are gaps.
                    bob.nonce = bob.nonce.min(t.tx.nonce);
                }
            }
            if let Some(e) = refused {
                return Some(e);
            }
        } else {
            // The whole batch was refused (the store failed, e.g. in a block commit, first).
            bob.nonce -= batch.len() as u64;
            return Some(v["error"].clone());
        }
        let (_, h) = node.get("/health");
        (h["checks"]["storage"] == false).then_some(h)
    });
    eprintln!("the store failed; first refusal or health: {failed_with}");

    // /health on both listeners: 503, storage check false, the reason names the OS error.
    for base in [node.api.clone(), node.health.clone()] {
        let (code, h) = wait_for("an unhealthy /health", Duration::from_secs(30), || {
            if let Ok(Some(status)) = node.child.try_wait() {
                panic!(
                    "node exited ({status}) before /health said why:\n{}",
                    node.logs()
                );
            }
            try_get(&base, "/health").filter(|(c, _)| *c == 503)
        });
        assert_eq!(code, 503);
        assert_eq!(h["status"], "unhealthy", "{h}");
        assert_eq!(h["checks"]["storage"], false, "{h}");
        let reason = h["reason"].as_str().unwrap_or_default();
        assert!(
            reason.starts_with("storage failed") && reason.contains("No space left on device"),
            "{h}"
        );
    }
    // Admission refuses what it can neither journal nor commit.
    let (code, v) = submit(&node, &bob.call(counter, "increment", &[]));
    bob.nonce -= 1;
    assert_eq!(
        (code, error_code(&v).as_str()),
        (503, "storage_failed"),
        "{v}"
    );
    // One ERROR naming storage and the OS error.
    let line = node
        .find_log("storage failed: I/O error")
        .unwrap_or_else(|| panic!("no storage ERROR line:\n{}", node.logs()));
    assert!(
        line.contains("ERROR") && line.contains("os error 28"),
        "{line}"
    );

    // The node exits 74 by itself so that it gets restarted.
    let status = wait_for("the node to exit", Duration::from_secs(60), || {
        node.child.try_wait().unwrap()
    });
    assert_eq!(status.code(), Some(74), "{}", node.logs());
    // No tight loop of failing block attempts while it waited.
    let attempts = node
        .logs()
        .lines()
        .filter(|l| l.contains("block production failed"))
        .count();
    assert!(
        attempts <= 1,
        "{attempts} failed block attempts:\n{}",
        node.logs()
    );
    drop(node);

    // Space is back: restart on the same data dir.
    std::fs::remove_file(&filler).unwrap();
    let node = TestNode::start_in(&fs.dir, EXTRA, &[]);
    wait_for("a healthy /health", Duration::from_secs(30), || {
        let (code, h) = node.get("/health");
        (code == 200 && h["checks"]["storage"] == true).then_some(())
    });
    // Every block committed before the failure is intact.
    for (i, want) in hashes.iter().enumerate() {
        let h = i as u64 + 1;
        assert_eq!(&field(&block_at(&node, h), "hash"), want, "block {h}");
    }
    // The journaled transactions are back in the pool; once the gap is filled they go in.
    for h in &waiting {
        let (code, v) = node.get(&format!("/v1/tx/{h}"));
        assert_eq!((code, v["status"].as_str()), (200, Some("pending")), "{v}");
    }
    dave.nonce = 0;
    acked.push(submit_ok(&node, &dave.call(counter, "increment", &[])));
    acked.extend(waiting);
    // Every acknowledged transaction is included (restored from the journal if need be).
    for h in &acked {
        let v = node.wait_included(h);
        assert_eq!(v["receipt"]["status"], "success", "{v}");
    }
    // It keeps producing, an honest transaction gets in, and the chain links up throughout.
    let restarted_at = node.height();
    let mut carol = Sender::new(63);
    let h = submit_ok(&node, &carol.call(counter, "increment", &[]));
    node.wait_included(&h);
    wait_for("new blocks", Duration::from_secs(30), || {
        (node.height() >= restarted_at + 3).then_some(())
    });
    let head = node.height();
    let mut parent = field(&block_at(&node, 0), "hash");
    for h in 1..=head {
        let b = block_at(&node, h);
        assert_eq!(field(&b, "parent_hash"), parent, "block {h} does not link");
        parent = field(&b, "hash");
    }
    drop(node);
    drop(fs);
}
