//! Backups are consistent copies that open and check like the source, even while blocks are
//! committed; `check` passes on a good chain and names the height, table and key of a flipped
//! byte in a block, in contract state and in a receipt; restore refuses a data dir that holds a
//! database unless forced, and never overwrites a file.

use std::path::Path;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use super::tables::{BLOCKS, CONTRACT_STATE, RECEIPTS};
use super::{BackupError, DB_FILE, Storage, StorageError, restore};
use crate::chain::tests::{build_next, params, sequencer, sequencer_chain};
use crate::vm::Vm;
use crate::vm::tests::vm;

fn chain_at(path: &Path, vm: &Vm) -> Storage {
    let s = Storage::open(path, &params()).unwrap();
    sequencer_chain(vm, &s);
    s
}

/// Flips the last byte of the value at `key` in `def`, writing the file directly (what a disk
/// fault or a tampering hand would do).
fn flip<K: redb::Key + 'static>(
    s: &Storage,
    def: TableDefinition<'static, K, &'static [u8]>,
    key: K::SelfType<'_>,
) {
    let wtx = s.db.begin_write().unwrap();
    {
        let mut t = wtx.open_table(def).unwrap();
        let mut v = t.get(&key).unwrap().unwrap().value().to_vec();
        let last = v.len() - 1;
        v[last] ^= 0x01;
        t.insert(&key, v.as_slice()).unwrap();
    }
    wtx.commit().unwrap();
}

#[test]
fn a_backup_opens_at_the_same_head_with_the_same_blocks_and_state_and_checks_clean() {
    let dir = tempfile::tempdir().unwrap();
    let vm = vm(2);
    let s = chain_at(&dir.path().join(DB_FILE), &vm);
    let report = s.check(&vm, Some(sequencer().public())).unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(report.blocks_verified, 3);
    assert!(report.state_compared);

    let out = dir.path().join("backup.redb");
    let stats = s.backup_to(&out).unwrap();
    assert_eq!(stats.head_height, 3);
    assert_eq!(stats.head_hash, s.head().unwrap().hash());
    assert!(stats.entries > 0 && stats.bytes > 0);
    assert!(!dir.path().join("backup.redb.partial").exists());

    let copy = Storage::open_existing(&out).unwrap();
    assert_eq!(copy.head().unwrap(), s.head().unwrap());
    assert_eq!(copy.params(), s.params());
    for h in 0..=3 {
        assert_eq!(
            copy.block_by_height(h).unwrap(),
            s.block_by_height(h).unwrap()
        );
    }
    let report = copy.check(&vm, Some(sequencer().public())).unwrap();
    assert!(report.ok(), "{:?}", report.problems);

    // Never overwrites.
    assert!(matches!(s.backup_to(&out), Err(BackupError::OutExists(_))));
}

#[test]
fn a_backup_taken_while_blocks_commit_is_the_chain_at_one_height() {
    let dir = tempfile::tempdir().unwrap();
    let vm = vm(2);
    let s = std::sync::Arc::new(chain_at(&dir.path().join(DB_FILE), &vm));
    let writer = {
        let s = s.clone();
        std::thread::spawn(move || {
            let vm = crate::vm::tests::vm(1);
            for _ in 0..50 {
                build_next(&vm, &params(), &sequencer(), &s, Vec::new());
            }
        })
    };
    let mut outs = Vec::new();
    for i in 0..5 {
        let out = dir.path().join(format!("b{i}.redb"));
        let stats = s.backup_to(&out).unwrap();
        outs.push((out, stats));
    }
    writer.join().unwrap();
    for (out, stats) in outs {
        let copy = Storage::open_existing(&out).unwrap();
        let head = copy.head().unwrap();
        assert_eq!(head.height, stats.head_height);
        assert_eq!(
            s.block_by_height(head.height).unwrap().unwrap().header,
            head
        );
        let report = copy.check(&vm, None).unwrap();
        assert!(report.ok(), "{:?}", report.problems);
    }
}

#[test]
fn check_names_a_flipped_byte_in_a_block() {
    let dir = tempfile::tempdir().unwrap();
    let vm = vm(1);
    let s = chain_at(&dir.path().join(DB_FILE), &vm);
    flip(&s, BLOCKS, 2);
    let report = s.check(&vm, Some(sequencer().public())).unwrap();
    assert!(!report.ok());
    let p = &report.problems[0];
    assert_eq!((p.height, p.table), (Some(2), "blocks"), "{p}");
    assert_eq!(report.blocks_verified, 1);
    assert!(!report.state_compared);
}

#[test]
fn check_names_a_flipped_byte_in_contract_state() {
    let dir = tempfile::tempdir().unwrap();
    let vm = vm(1);
    let s = chain_at(&dir.path().join(DB_FILE), &vm);
    let key = {
        let rtx = s.db.begin_read().unwrap();
        let t = rtx.open_table(CONTRACT_STATE).unwrap();
        let (k, _) = t.iter().unwrap().next().unwrap().unwrap();
        k.value().to_vec()
    };
    flip(&s, CONTRACT_STATE, key.as_slice());
    let report = s.check(&vm, None).unwrap();
    assert_eq!(report.problem_count, 1, "{:?}", report.problems);
    let p = &report.problems[0];
    assert_eq!(p.table, "contract_state", "{p}");
    assert_eq!(p.key.as_deref(), Some(super::check::hex(&key).as_str()));
    assert!(p.what.contains("differs from the re-executed"), "{p}");
}

#[test]
fn check_names_a_flipped_byte_in_a_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let vm = vm(1);
    let s = chain_at(&dir.path().join(DB_FILE), &vm);
    let block = s.block_by_height(2).unwrap().unwrap();
    let id = block.txs[3].tx.id();
    flip(&s, RECEIPTS, (2, 3));
    let report = s.check(&vm, None).unwrap();
    assert_eq!(report.problem_count, 1, "{:?}", report.problems);
    let p = &report.problems[0];
    assert_eq!(
        (p.height, p.table, p.key.clone()),
        (Some(2), "block_receipts", Some(id.to_string())),
        "{p}"
    );
}

#[test]
fn restore_refuses_a_data_dir_with_a_database_unless_forced_and_keeps_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let vm = vm(1);
    let s = chain_at(&dir.path().join("src").join(DB_FILE), &vm);
    let out = dir.path().join("backup.redb");
    s.backup_to(&out).unwrap();

    let target = dir.path().join("target");
    let other = Storage::open(&target.join(DB_FILE), &params()).unwrap();
    let other_head = other.head().unwrap();
    drop(other);
    let err = restore(&out, &target, false).unwrap_err();
    assert!(matches!(err, BackupError::TargetNotEmpty(..)), "{err}");
    assert!(err.to_string().contains("--force"), "{err}");
    // Unchanged.
    let again = Storage::open_existing(&target.join(DB_FILE)).unwrap();
    assert_eq!(again.head().unwrap(), other_head);

    // Not while a process holds it.
    let err = restore(&out, &target, true).unwrap_err();
    assert!(
        matches!(err, BackupError::Storage(StorageError::Locked(_))),
        "{err}"
    );
    drop(again);

    let stats = restore(&out, &target, true).unwrap();
    let aside = stats.replaced.unwrap();
    assert_eq!(
        Storage::open_existing(&aside).unwrap().head().unwrap(),
        other_head
    );
    let restored = Storage::open_existing(&stats.path).unwrap();
    assert_eq!(restored.head().unwrap(), s.head().unwrap());

    // Into an empty (or missing) data dir: no force needed.
    let fresh = dir.path().join("fresh");
    let stats = restore(&out, &fresh, false).unwrap();
    assert_eq!(stats.replaced, None);
    assert_eq!(
        Storage::open_existing(&stats.path).unwrap().head().unwrap(),
        s.head().unwrap()
    );
    // A missing backup is a clear I/O error, and changes nothing.
    let err = restore(&dir.path().join("nope"), &dir.path().join("x"), false).unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
    assert!(!dir.path().join("x").join(DB_FILE).exists());
}

#[test]
fn open_existing_never_creates_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB_FILE);
    let err = Storage::open_existing(&path).unwrap_err();
    assert!(matches!(err, StorageError::Io { .. }), "{err}");
    assert!(!path.exists());
}

/// Figures, not assertions: how long commits take while a backup of a database with ~40 MB of
/// contract state runs, against the same commits without one. Run with `--no-capture` to see.
#[test]
fn commit_latency_during_a_backup_figures() {
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let vm = vm(1);
    let s = std::sync::Arc::new(chain_at(&dir.path().join(DB_FILE), &vm));
    {
        // Bulk state, written directly (a check would flag it; this measures I/O only).
        let wtx = s.db.begin_write().unwrap();
        {
            let mut t = wtx.open_table(CONTRACT_STATE).unwrap();
            let value = [7u8; 100];
            for i in 0u64..300_000 {
                let mut k = [9u8; 40];
                k[32..].copy_from_slice(&i.to_be_bytes());
                t.insert(k.as_slice(), value.as_slice()).unwrap();
            }
        }
        wtx.commit().unwrap();
    }
    let commits = |n: usize| -> Vec<Duration> {
        (0..n)
            .map(|_| {
                let t = Instant::now();
                build_next(&vm, &params(), &sequencer(), &s, Vec::new());
                t.elapsed()
            })
            .collect()
    };
    let summary = |mut v: Vec<Duration>| {
        v.sort();
        format!(
            "n={} p50={:?} p99={:?} max={:?}",
            v.len(),
            v[v.len() / 2],
            v[v.len() * 99 / 100],
            v[v.len() - 1]
        )
    };
    let baseline = commits(100);
    let out = dir.path().join("b.redb");
    let backup = {
        let (s, out) = (s.clone(), out.clone());
        std::thread::spawn(move || s.backup_to(&out).unwrap())
    };
    let mut during = Vec::new();
    while !backup.is_finished() {
        during.extend(commits(1));
    }
    let stats = backup.join().unwrap();
    eprintln!(
        "backup: {} entries, {} bytes, head {} in {:?}; commits without backup: {}; during: {}",
        stats.entries,
        stats.bytes,
        stats.head_height,
        stats.elapsed,
        summary(baseline),
        summary(during)
    );
}

#[test]
fn check_passes_with_staged_and_submitted_batches_and_names_an_outbox_out_of_step() {
    use super::SignedBatch;
    use super::tables::{BRIDGE, BRIDGE_IN_FLIGHT, BRIDGE_STAGED};
    use crate::types::Hash;
    let dir = tempfile::tempdir().unwrap();
    let vm = vm(1);
    let s = chain_at(&dir.path().join(DB_FILE), &vm);
    for (first, last) in [(1, 2), (3, 3)] {
        let ts = s.next_signature_timestamp(1000).unwrap();
        s.stage_batch(&SignedBatch {
            first,
            last,
            envelope: vec![first as u8; 5],
            tx_hash: Hash([first as u8; 32]),
            signature_timestamp: ts,
        })
        .unwrap();
    }
    s.outbox_mark_submitted(1).unwrap();
    let report = s.check(&vm, None).unwrap();
    assert!(report.ok(), "{:?}", report.problems);

    // The staged watermark and the in-flight counter moved without the rows.
    let wtx = s.db.begin_write().unwrap();
    {
        let mut t = wtx.open_table(BRIDGE).unwrap();
        t.insert(BRIDGE_STAGED, 2).unwrap();
        t.insert(BRIDGE_IN_FLIGHT, 0).unwrap();
    }
    wtx.commit().unwrap();
    let report = s.check(&vm, None).unwrap();
    let said: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(report.problem_count, 2, "{said:?}");
    assert!(
        said[0].starts_with("table outbox") && said[0].contains("staged_up_to is 2"),
        "{said:?}"
    );
    assert!(
        said[1].starts_with("table bridge, key in_flight"),
        "{said:?}"
    );
}
