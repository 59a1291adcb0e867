//! VM tests: the ABI fixtures, hostile contracts, gas, admission order, determinism across
//! worker counts, timeouts and the compiled-module cache.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::testkit::{self, Signer};
use crate::types::{
    Action, Address, Bytes, Hash, Keypair, ReceiptStatus, Tx, VerifiedTx, genesis_state_root,
    state_root,
};

pub(crate) use crate::testkit::CHAIN;

pub(crate) fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../tests/fixtures/{name}.wat",
        env!("CARGO_MANIFEST_DIR")
    );
    wat::parse_file(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// An engine with `workers` lanes and a per-call deadline of `timeout`.
pub(crate) fn vm_with(workers: usize, timeout: Duration) -> Vm {
    Vm::new(VmConfig {
        workers,
        timeout,
        ..VmConfig::default()
    })
    .unwrap()
}

/// An engine with `workers` lanes and the default deadline.
pub(crate) fn vm(workers: usize) -> Vm {
    vm_with(workers, VmConfig::default().timeout)
}

fn ctx(height: u64) -> BlockContext {
    BlockContext {
        chain_id: CHAIN.into(),
        height,
        timestamp_ms: 1_700_000_000_000 + height,
        max_tx_gas: 50_000_000,
        max_block_gas: crate::vm::gas::MAX_BLOCK_GAS,
        max_block_tx_bytes: crate::vm::gas::MAX_BLOCK_TX_BYTES,
        max_block_result_bytes: crate::vm::gas::MAX_BLOCK_RESULT_BYTES,
    }
}

/// A sender with its next nonce (shared with the block-limit tests in `block_tests.rs`): the
/// shared `testkit::Signer`, answering with verified transactions and a larger call gas.
pub(crate) struct Account(Signer);

impl std::ops::Deref for Account {
    type Target = Signer;

    fn deref(&self) -> &Signer {
        &self.0
    }
}

impl Account {
    pub(crate) fn new(seed: u8) -> Self {
        Account(Signer::new(seed))
    }

    pub(crate) fn tx(&mut self, action: Action, gas_limit: u64) -> VerifiedTx {
        self.0.verified(action, gas_limit)
    }

    pub(crate) fn deploy(&mut self, code: Vec<u8>) -> (VerifiedTx, Address) {
        let (t, addr) = self.0.deploy(code);
        (testkit::verified(t), addr)
    }

    fn call(&mut self, contract: Address, entry: &str, args: &[u8]) -> VerifiedTx {
        self.call_gas(contract, entry, args, 10_000_000)
    }

    pub(crate) fn call_gas(
        &mut self,
        contract: Address,
        entry: &str,
        args: &[u8],
        gas: u64,
    ) -> VerifiedTx {
        self.tx(testkit::call(contract, entry, args), gas)
    }
}

/// Executes one block on top of `state` and applies it.
fn block(vm: &Vm, state: &mut MemState, height: u64, txs: Vec<VerifiedTx>) -> BlockOutcome {
    let out = vm
        .execute_block(Arc::new(state.clone()), &ctx(height), txs)
        .unwrap();
    state.apply(&out.writes);
    out
}

fn status(out: &BlockOutcome, i: usize) -> &ReceiptStatus {
    &out.receipts[i].status
}

#[test]
fn counter_deploys_and_counts() {
    let vm = vm(2);
    let mut st = MemState::default();
    let mut a = Account::new(1);
    let (d, addr) = a.deploy(fixture("counter"));
    let out = block(&vm, &mut st, 1, vec![d]);
    assert_eq!(status(&out, 0), &ReceiptStatus::Success);
    assert_eq!(out.receipts[0].contract, addr);
    assert!(st.contracts.contains_key(&addr));
    assert_eq!(
        st.storage.get(&(addr, b"count".to_vec())),
        Some(&0u64.to_le_bytes().to_vec())
    );

    let calls: Vec<_> = (0..10).map(|_| a.call(addr, "increment", &[])).collect();
    let out = block(&vm, &mut st, 2, calls);
    for (i, r) in out.receipts.iter().enumerate() {
        assert_eq!(r.status, ReceiptStatus::Success);
        assert_eq!(r.output.0, (i as u64 + 1).to_le_bytes().to_vec());
        assert!(r.gas_used > gas::TX_BASE + gas::STORAGE_WRITE);
    }
    assert_eq!(
        st.storage.get(&(addr, b"count".to_vec())),
        Some(&10u64.to_le_bytes().to_vec())
    );
    assert_eq!(st.nonces.get(&a.key.public()), Some(&11));
    assert_eq!(
        out.gas_used,
        out.receipts.iter().map(|r| r.gas_used).sum::<u64>()
    );

    let q = vm
        .query(
            Arc::new(st.clone()),
            Query {
                contract: addr,
                entry: "increment".into(),
                args: vec![],
                sender: a.key.public(),
                gas_limit: 1_000_000,
                height: 2,
                time_ms: 0,
            },
        )
        .unwrap();
    assert_eq!(q.status, ReceiptStatus::Success);
    assert_eq!(q.output.0, 11u64.to_le_bytes().to_vec());
    // The query's write was discarded.
    assert_eq!(
        st.storage.get(&(addr, b"count".to_vec())),
        Some(&10u64.to_le_bytes().to_vec())
    );
}

#[test]
fn kv_events_reverts_and_context() {
    let vm = vm(1);
    let mut st = MemState::default();
    let mut a = Account::new(2);
    let (d, kv) = a.deploy(fixture("kv"));
    let mut set_args = vec![3u8];
    set_args.extend_from_slice(b"abcvalue");
    let txs = vec![
        d,
        a.call(kv, "set", &set_args),
        a.call(kv, "get", b"abc"),
        a.call(kv, "get", b"zzz"),
        a.call(kv, "set_then_revert", &[1, b'q', b'!']),
        a.call(kv, "get", b"q"),
        a.call(kv, "remove", b"abc"),
        a.call(kv, "get", b"abc"),
        a.call(kv, "context", &[]),
        a.call(kv, "nope", &[]),
        a.call(kv, "init", &[]),
    ];
    let out = block(&vm, &mut st, 7, txs);
    assert_eq!(status(&out, 1), &ReceiptStatus::Success);
    assert_eq!(out.receipts[1].events.len(), 1);
    assert_eq!(out.receipts[1].events[0].topic.0, b"set");
    assert_eq!(out.receipts[1].events[0].data.0, b"abc");
    assert_eq!(out.receipts[1].logs, vec!["kv: set called".to_string()]);
    assert_eq!(out.receipts[2].output.0, b"value");
    assert_eq!(
        status(&out, 3),
        &ReceiptStatus::Reverted {
            message: "not found".into()
        }
    );
    // set_then_revert: the write and its event vanish, its log line stays.
    assert_eq!(
        status(&out, 4),
        &ReceiptStatus::Reverted {
            message: "reverted on purpose".into()
        }
    );
    assert!(out.receipts[4].events.is_empty());
    assert_eq!(out.receipts[4].logs.len(), 1);
    assert!(matches!(status(&out, 5), ReceiptStatus::Reverted { .. }));
    assert_eq!(status(&out, 6), &ReceiptStatus::Success);
    assert_eq!(out.receipts[6].events[0].topic.0, b"removed");
    assert!(matches!(status(&out, 7), ReceiptStatus::Reverted { .. }));
    let c = &out.receipts[8].output.0;
    assert_eq!(&c[..32], &a.key.public().0);
    assert_eq!(i64::from_le_bytes(c[32..40].try_into().unwrap()), 7);
    assert_eq!(
        i64::from_le_bytes(c[40..48].try_into().unwrap()),
        1_700_000_000_007
    );
    assert!(i64::from_le_bytes(c[48..56].try_into().unwrap()) > 0);
    assert_eq!(
        status(&out, 9),
        &ReceiptStatus::Reverted {
            message: "contract has no entry point \"nope\"".into()
        }
    );
    assert!(
        matches!(status(&out, 10), ReceiptStatus::Reverted { message } if message.contains("init"))
    );
    assert!(!st.storage.contains_key(&(kv, b"abc".to_vec())));
    assert!(!st.storage.contains_key(&(kv, b"q".to_vec())));
}

#[test]
fn hostile_contracts_end_cleanly() {
    let vm = Vm::new(VmConfig {
        workers: 2,
        max_memory_pages: 16,
        ..VmConfig::default()
    })
    .unwrap();
    let mut st = MemState::default();
    let mut a = Account::new(3);
    let mut deploys = Vec::new();
    let mut addrs = Vec::new();
    for name in ["loop", "memory_bomb", "trap", "recursion"] {
        let (d, addr) = a.deploy(fixture(name));
        deploys.push(d);
        addrs.push(addr);
    }
    let out = block(&vm, &mut st, 1, deploys);
    assert!(
        out.receipts.iter().all(|r| r.status.is_success()),
        "{:?}",
        out.receipts
    );

    let calls: Vec<_> = addrs.iter().map(|c| a.call(*c, "run", &[])).collect();
    let out = block(&vm, &mut st, 2, calls);
    assert_eq!(status(&out, 0), &ReceiptStatus::OutOfGas);
    assert_eq!(out.receipts[0].gas_used, 10_000_000);
    assert_eq!(
        status(&out, 1),
        &ReceiptStatus::Trapped {
            kind: "unreachable".into()
        }
    );
    assert_eq!(
        status(&out, 2),
        &ReceiptStatus::Trapped {
            kind: "unreachable".into()
        }
    );
    assert_eq!(
        status(&out, 3),
        &ReceiptStatus::Trapped {
            kind: "stack overflow".into()
        }
    );

    // Rejected at deploy: a clean receipt naming the reason, and no contract.
    let (d1, bad1) = a.deploy(fixture("unknown_import"));
    let (d2, bad2) = a.deploy(fixture("huge_data"));
    let out = block(&vm, &mut st, 3, vec![d1, d2]);
    assert!(
        matches!(status(&out, 0), ReceiptStatus::Reverted { message } if message.contains("env::abort")),
        "{:?}",
        status(&out, 0)
    );
    assert!(
        matches!(status(&out, 1), ReceiptStatus::Reverted { message } if message.contains("data segment")),
        "{:?}",
        status(&out, 1)
    );
    assert!(!st.contracts.contains_key(&bad1) && !st.contracts.contains_key(&bad2));
    // Calling a contract that was never created.
    let out = block(&vm, &mut st, 4, vec![a.call(bad1, "run", &[])]);
    assert!(
        matches!(status(&out, 0), ReceiptStatus::Reverted { message } if message.contains("unknown contract"))
    );
}

fn wat(src: &str) -> Vec<u8> {
    wat::parse_str(src).unwrap()
}

#[test]
fn validation_names_each_reason() {
    let vm = vm(1);
    let v = |src: &str| vm.validate(&wat(src));
    assert_eq!(vm.validate(b"(module)"), Err(ValidationError::NotWasm));
    assert!(matches!(
        vm.validate(b"\0asm\x01\0\0\0garbage"),
        Err(ValidationError::Invalid(_))
    ));
    assert_eq!(v("(module)"), Err(ValidationError::NoMemoryExport));
    assert_eq!(
        v("(module (memory 1))"),
        Err(ValidationError::NoMemoryExport)
    );
    assert!(matches!(
        v(
            r#"(module (import "accumen" "output" (func (param i32))) (memory (export "memory") 1))"#
        ),
        Err(ValidationError::ImportType { .. })
    ));
    assert!(matches!(
        v(r#"(module (import "accumen" "nope" (func)) (memory (export "memory") 1))"#),
        Err(ValidationError::UnknownImport { .. })
    ));
    assert!(matches!(
        v(r#"(module (import "accumen" "mem" (memory 1)) (export "memory" (memory 0)))"#),
        Err(ValidationError::ImportKind { .. })
    ));
    assert!(matches!(
        v(r#"(module (memory (export "memory") 1) (func (export "f") (param i32)))"#),
        Err(ValidationError::EntryType { .. })
    ));
    assert_eq!(
        v(r#"(module (memory (export "memory") 1) (func $s) (start $s))"#),
        Err(ValidationError::StartFunction)
    );
    assert_eq!(
        v(r#"(module (memory (export "memory") 65))"#),
        Err(ValidationError::MemoryTooLarge {
            initial: 65,
            limit: 64
        })
    );
    assert!(matches!(
        v(r#"(module (memory (export "memory") 1 1 shared))"#),
        Err(ValidationError::Invalid(_) | ValidationError::MemoryKind)
    ));
    let info =
        v(r#"(module (memory (export "memory") 1) (func (export "init")) (func (export "go")))"#)
            .unwrap();
    assert!(info.has_init);
    assert_eq!(info.entries, vec!["init".to_string(), "go".to_string()]);
}

#[test]
fn host_calls_check_bounds_and_limits() {
    let vm = vm(1);
    let mut st = MemState::default();
    let mut a = Account::new(4);
    let src = r#"(module
      (import "accumen" "output" (func $output (param i32 i32)))
      (import "accumen" "storage_write" (func $sw (param i32 i32 i32 i32)))
      (import "accumen" "log" (func $log (param i32 i32)))
      (import "accumen" "input_read" (func $ir (param i32)))
      (memory (export "memory") 1)
      (data (i32.const 0) "\ff\fe")
      (func (export "oob") (call $output (i32.const 65530) (i32.const 100)))
      (func (export "negative") (call $output (i32.const 0) (i32.const -1)))
      (func (export "wrap") (call $output (i32.const -1) (i32.const 2)))
      (func (export "long_key") (call $sw (i32.const 0) (i32.const 300) (i32.const 0) (i32.const 1)))
      (func (export "bad_log") (call $log (i32.const 0) (i32.const 2)))
      (func (export "input_oob") (call $ir (i32.const 65535))))"#;
    let (d, c) = a.deploy(wat(src));
    let mut txs = vec![d];
    for e in ["oob", "negative", "wrap", "long_key", "bad_log"] {
        txs.push(a.call(c, e, &[]));
    }
    txs.push(a.call(c, "input_oob", &[1, 2, 3]));
    let out = block(&vm, &mut st, 1, txs);
    let kinds: Vec<String> = out.receipts[1..]
        .iter()
        .map(|r| match &r.status {
            ReceiptStatus::Trapped { kind } => kind.clone(),
            other => format!("{other:?}"),
        })
        .collect();
    assert!(kinds[0].contains("outside memory"), "{kinds:?}");
    assert!(kinds[1].contains("negative"), "{kinds:?}");
    assert!(kinds[2].contains("outside memory"), "{kinds:?}");
    assert!(
        kinds[3].contains("storage key is 300 bytes, limit 256"),
        "{kinds:?}"
    );
    assert!(kinds[4].contains("not UTF-8"), "{kinds:?}");
    assert!(kinds[5].contains("outside memory"), "{kinds:?}");
}

#[test]
fn gas_is_charged_and_bounded() {
    let vm = vm(1);
    let mut st = MemState::default();
    let mut a = Account::new(5);
    let (d, c) = a.deploy(fixture("counter"));
    block(&vm, &mut st, 1, vec![d]);
    // Not even the intrinsic cost: out of gas, whole limit charged, nothing run.
    let low = a.tx(
        Action::Call {
            contract: c,
            entry: "increment".into(),
            args: Bytes::default(),
        },
        100,
    );
    // Enough to start but not for the storage write.
    let mid = a.tx(
        Action::Call {
            contract: c,
            entry: "increment".into(),
            args: Bytes::default(),
        },
        gas::TX_BASE + 1_000,
    );
    let ok = a.call(c, "increment", &[]);
    let out = block(&vm, &mut st, 2, vec![low, mid, ok]);
    assert_eq!(status(&out, 0), &ReceiptStatus::OutOfGas);
    assert_eq!(out.receipts[0].gas_used, 100);
    assert_eq!(status(&out, 1), &ReceiptStatus::OutOfGas);
    assert_eq!(out.receipts[1].gas_used, gas::TX_BASE + 1_000);
    assert_eq!(status(&out, 2), &ReceiptStatus::Success);
    // Only the successful call counted; both failed ones used their nonces.
    assert_eq!(out.receipts[2].output.0, 1u64.to_le_bytes().to_vec());
    assert_eq!(st.nonces.get(&a.key.public()), Some(&4));
    let used = out.receipts[2].gas_used;
    assert!(
        used > gas::TX_BASE + gas::STORAGE_WRITE + gas::STORAGE_READ,
        "{used}"
    );
}

#[test]
fn order_dependent_checks_drop_without_using_nonces() {
    let vm = vm(1);
    let mut st = MemState::default();
    let mut a = Account::new(6);
    let (d, c) = a.deploy(fixture("counter"));
    block(&vm, &mut st, 1, vec![d]);

    let good = a.call(c, "increment", &[]);
    let replay = good.clone();
    let mut future_acct = Account::new(6);
    future_acct.0.nonce = 5;
    let future = future_acct.call(c, "increment", &[]);
    let mut wrong_chain = Tx {
        chain_id: "other".into(),
        ..good.tx().clone()
    };
    wrong_chain.nonce = 2;
    let wrong_chain = a.key.sign(wrong_chain).verify().unwrap();
    let mut expired = good.tx().clone();
    expired.nonce = 2;
    expired.expiry = Some(1);
    let expired = a.key.sign(expired).verify().unwrap();
    let mut greedy = good.tx().clone();
    greedy.nonce = 2;
    greedy.gas_limit = 60_000_000;
    let greedy = a.key.sign(greedy).verify().unwrap();

    let out = block(
        &vm,
        &mut st,
        2,
        vec![good, replay, future, wrong_chain, expired, greedy],
    );
    assert_eq!(out.receipts.len(), 1);
    let reasons: Vec<_> = out.dropped.iter().map(|(_, r)| r.clone()).collect();
    assert_eq!(
        reasons[0],
        DropReason::Nonce {
            expected: 2,
            got: 1
        }
    );
    assert!(!reasons[0].is_retryable());
    assert_eq!(
        reasons[1],
        DropReason::Nonce {
            expected: 2,
            got: 5
        }
    );
    assert!(reasons[1].is_retryable());
    assert_eq!(reasons[2], DropReason::WrongChain("other".into()));
    assert!(matches!(reasons[3], DropReason::Expired { expiry: 1, .. }));
    assert!(matches!(
        reasons[4],
        DropReason::GasLimit {
            limit: 60_000_000,
            ..
        }
    ));
    assert_eq!(st.nonces.get(&a.key.public()), Some(&2));
}

/// A few hundred mixed transactions over several contracts.
fn mixed_block(seed: u8) -> (MemState, Vec<VerifiedTx>) {
    let vm = vm(1);
    let mut st = MemState::default();
    let mut accounts: Vec<Account> = (0..6).map(|i| Account::new(seed.wrapping_add(i))).collect();
    let mut setup = Vec::new();
    let mut counters = Vec::new();
    let mut kvs = Vec::new();
    for i in 0..3 {
        let (d, c) = accounts[i].deploy(fixture("counter"));
        setup.push(d);
        counters.push(c);
        let (d, k) = accounts[i + 3].deploy(fixture("kv"));
        setup.push(d);
        kvs.push(k);
    }
    block(&vm, &mut st, 1, setup);
    // Modest gas limits, so that all 300 fit in `MAX_BLOCK_GAS`.
    let call = |a: &mut Account, contract: Address, entry: &str, args: &[u8]| {
        let action = Action::Call {
            contract,
            entry: entry.into(),
            args: Bytes(args.to_vec()),
        };
        a.tx(action, 1_000_000)
    };
    let mut txs = Vec::new();
    for i in 0..300usize {
        let who = i % accounts.len();
        let a = &mut accounts[who];
        let tx = match i % 7 {
            0..=2 => call(a, counters[i % 3], "increment", &[]),
            3 => {
                let mut args = vec![2u8, b'k', (i % 5) as u8];
                args.extend_from_slice(&(i as u64).to_le_bytes());
                call(a, kvs[i % 3], "set", &args)
            }
            4 => call(a, kvs[i % 3], "get", &[b'k', (i % 5) as u8]),
            5 => call(a, kvs[i % 3], "set_then_revert", &[1, b'z', 1]),
            _ => a.tx(
                Action::Deploy {
                    code: Bytes(fixture("counter")),
                },
                2_000_000,
            ),
        };
        txs.push(tx);
    }
    (st, txs)
}

#[test]
fn same_block_same_results_with_1_or_8_workers() {
    let (st, txs) = mixed_block(40);
    let parent = genesis_state_root(CHAIN);
    let mut results = Vec::new();
    for workers in [1, 8, 3] {
        let vm = vm(workers);
        let out = vm
            .execute_block(Arc::new(st.clone()), &ctx(2), txs.clone())
            .unwrap();
        assert_eq!(out.receipts.len(), 300);
        assert!(out.dropped.is_empty());
        results.push((out.receipts, state_root(&parent, &out.writes), out.writes));
    }
    assert_eq!(results[0].0, results[1].0);
    assert_eq!(results[0].1, results[1].1);
    assert_eq!(results[0].2, results[1].2);
    assert_eq!(results[0].1, results[2].1);
    let statuses: std::collections::BTreeSet<&str> =
        results[0].0.iter().map(|r| r.status.label()).collect();
    assert!(
        statuses.contains("success") && statuses.contains("reverted"),
        "{statuses:?}"
    );
}

#[test]
fn timeout_drops_the_transaction_and_reruns_the_block() {
    let vm = Vm::new(VmConfig {
        workers: 2,
        timeout: Duration::from_millis(50),
        ..VmConfig::default()
    })
    .unwrap();
    let mut st = MemState::default();
    let mut a = Account::new(7);
    let mut b = Account::new(8);
    let (d1, spin) = a.deploy(fixture("slow"));
    let (d2, counter) = b.deploy(fixture("counter"));
    block(&vm, &mut st, 1, vec![d1, d2]);
    // Slow divisions for the largest gas a block allows run for many seconds: only the
    // wall-clock backstop can stop them.
    let slow = a.tx(
        Action::Call {
            contract: spin,
            entry: "run".into(),
            args: Bytes::default(),
        },
        gas::MAX_BLOCK_GAS / 2,
    );
    let after_slow = a.call(counter, "increment", &[]);
    let other = b.call(counter, "increment", &[]);
    let big = BlockContext {
        max_tx_gas: u64::MAX,
        ..ctx(2)
    };
    let out = vm
        .execute_block(Arc::new(st.clone()), &big, vec![slow, after_slow, other])
        .unwrap();
    assert_eq!(out.receipts.len(), 1);
    assert_eq!(out.txs[0].tx().sender, b.key.public());
    assert_eq!(out.dropped[0].1, DropReason::Timeout);
    // The slow transaction never used its nonce, so the next one is now a future nonce.
    assert_eq!(
        out.dropped[1].1,
        DropReason::Nonce {
            expected: 1,
            got: 2
        }
    );
    assert_eq!(out.writes.nonces.get(&a.key.public()), None);
}

#[test]
fn memory_limit_must_fit_the_workers() {
    let err = Vm::new(VmConfig {
        workers: 8,
        max_memory_pages: 64,
        memory_limit_mb: 16,
        ..VmConfig::default()
    })
    .unwrap_err();
    assert!(err.to_string().contains("needs at least 32 MB"), "{err}");
    // The runbook's resource-constrained profile fits.
    let ok = Vm::new(VmConfig {
        workers: 2,
        max_memory_pages: 8,
        memory_limit_mb: 16,
        ..VmConfig::default()
    })
    .unwrap();
    assert_eq!(ok.slots(), 32);
    assert!(
        Vm::new(VmConfig {
            max_memory_pages: 0,
            ..VmConfig::default()
        })
        .is_err()
    );
    assert!(
        Vm::new(VmConfig {
            workers: 0,
            ..VmConfig::default()
        })
        .is_err()
    );
}

#[test]
fn compiled_modules_are_cached_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let config = VmConfig {
        workers: 1,
        cache_dir: Some(dir.path().to_path_buf()),
        ..VmConfig::default()
    };
    let mut a = Account::new(9);
    let (d, c) = a.deploy(fixture("counter"));
    let call = a.call(c, "increment", &[]);
    let mut st = MemState::default();
    {
        let vm = Vm::new(config.clone()).unwrap();
        block(&vm, &mut st, 1, vec![d]);
        assert_eq!(vm.cached_modules(), 1);
    }
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(files.len(), 1);
    // A fresh engine loads the artifact; a corrupted artifact is recompiled, never run.
    let path = files[0].as_ref().unwrap().path();
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let vm = Vm::new(config).unwrap();
    let out = block(&vm, &mut st, 2, vec![call]);
    assert_eq!(status(&out, 0), &ReceiptStatus::Success);
    assert_eq!(out.receipts[0].output.0, 1u64.to_le_bytes().to_vec());
    // It was rewritten intact.
    let rewritten = std::fs::read(&path).unwrap();
    assert_ne!(rewritten, bytes);
}

#[test]
fn missing_code_drops_the_transaction() {
    let vm = vm(1);
    let mut st = MemState::default();
    let mut a = Account::new(10);
    let (d, c) = a.deploy(fixture("counter"));
    block(&vm, &mut st, 1, vec![d]);
    let hash = st.contracts[&c].code_hash;
    st.code.clear();
    let fresh = Vm::new(VmConfig::default()).unwrap();
    let out = fresh
        .execute_block(Arc::new(st.clone()), &ctx(2), vec![a.call(c, "get", &[])])
        .unwrap();
    assert!(out.receipts.is_empty());
    assert_eq!(
        out.dropped[0].1,
        DropReason::Fault(VmError::MissingCode(hash).to_string())
    );
    assert_ne!(hash, Hash::ZERO);
}

#[test]
fn executes_against_a_storage_snapshot_and_commits() {
    use crate::storage::Storage;
    use crate::types::{Block, BlockHeader};

    let storage = Storage::in_memory(CHAIN).unwrap();
    let seq = Keypair::from_seed([99; 32]);
    let vm = vm(2);
    let mut a = Account::new(11);
    let (d, c) = a.deploy(fixture("counter"));
    let mut batches = vec![vec![d]];
    batches.push((0..5).map(|_| a.call(c, "increment", &[])).collect());
    for batch in batches {
        let head = storage.head().unwrap();
        let bctx = ctx(head.height + 1);
        let out = vm
            .execute_block(Arc::new(storage.snapshot().unwrap()), &bctx, batch)
            .unwrap();
        let txs: Vec<_> = out.txs.iter().map(|t| t.signed().clone()).collect();
        let header = BlockHeader::child(&head, bctx.timestamp_ms, &txs, &out.receipts, &out.writes);
        let block = Block::seal(header, txs, &seq);
        storage
            .commit_block(&block, &out.receipts, &out.writes)
            .unwrap();
    }
    assert_eq!(storage.head().unwrap().height, 2);
    assert_eq!(
        storage.storage_get(&c, b"count").unwrap(),
        Some(5u64.to_le_bytes().to_vec())
    );
    assert_eq!(storage.nonce(&a.key.public()).unwrap(), 6);
    assert!(storage.contract(&c).unwrap().is_some());
}

#[test]
fn abi_doc_example_runs() {
    let doc = include_str!("../../CONTRACT_ABI.md");
    let start = doc.find("```wat\n").expect("the ABI doc has a WAT example") + 7;
    let end = start + doc[start..].find("```").expect("closed code block");
    let code = wat(&doc[start..end]);
    let vm = vm(1);
    let mut st = MemState::default();
    let mut a = Account::new(12);
    let mut b = Account::new(13);
    let (d, tally) = a.deploy(code);
    let txs = vec![
        d,
        a.call(tally, "vote", b"yes"),
        b.call(tally, "vote", b"yes"),
        b.call(tally, "vote", b"no"),
        a.call(tally, "vote", b""),
        a.call(tally, "count", b"yes"),
    ];
    let out = block(&vm, &mut st, 1, txs);
    for i in 0..4 {
        assert_eq!(status(&out, i), &ReceiptStatus::Success, "{i}");
    }
    assert_eq!(out.receipts[2].events[0].topic.0, b"vote");
    assert_eq!(out.receipts[2].events[0].data.0, b.key.public().0.to_vec());
    assert_eq!(
        status(&out, 4),
        &ReceiptStatus::Reverted {
            message: "choice must be 1 to 32 bytes".into()
        }
    );
    assert_eq!(out.receipts[5].output.0, 2u64.to_le_bytes().to_vec());
}

#[test]
fn storage_read_is_charged_on_the_stored_length() {
    let vm = vm(1);
    let mut st = MemState::default();
    let mut a = Account::new(14);
    // `peek` reads key "k" with capacity 0: nothing is copied out.
    let src = r#"(module
      (import "accumen" "storage_read" (func $sr (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (data (i32.const 0) "k")
      (func (export "peek") (drop (call $sr (i32.const 0) (i32.const 1) (i32.const 16) (i32.const 0)))))"#;
    let (d, c) = a.deploy(wat(src));
    block(&vm, &mut st, 1, vec![d]);
    let mut gas = Vec::new();
    for len in [10usize, 10_000] {
        st.storage.insert((c, b"k".to_vec()), vec![1u8; len]);
        let out = block(&vm, &mut st, 2, vec![a.call(c, "peek", &[])]);
        assert_eq!(status(&out, 0), &ReceiptStatus::Success);
        gas.push(out.receipts[0].gas_used);
    }
    assert_eq!(gas[1] - gas[0], 9_990 * gas::COPY_BYTE, "{gas:?}");
}
