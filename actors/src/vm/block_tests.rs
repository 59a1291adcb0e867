//! Block execution under attack: node faults drop one transaction, the block limits (gas, bytes,
//! results) leave the rest for later the same way on every worker count, timeouts re-run only
//! what changed and a bounded number of times, receipts carry only stable codes, `memory.grow`
//! is charged and the per-call result caps hold.

use std::sync::Arc;
use std::time::Duration;

use super::super::tests::{Account, CHAIN, fixture, vm, vm_with};
use super::*;
use crate::types::{Address, ReceiptStatus, VerifiedTx, genesis_state_root, state_root, trap_kind};
use crate::vm::{MemState, StateError};

fn ctx(height: u64) -> BlockContext {
    BlockContext {
        chain_id: CHAIN.into(),
        height,
        timestamp_ms: 1_700_000_000_000 + height,
        max_tx_gas: u64::MAX,
        max_block_gas: crate::vm::gas::MAX_BLOCK_GAS,
        max_block_tx_bytes: crate::vm::gas::MAX_BLOCK_TX_BYTES,
        max_block_result_bytes: crate::vm::gas::MAX_BLOCK_RESULT_BYTES,
    }
}

fn wat(src: &str) -> Vec<u8> {
    wat::parse_str(src).unwrap()
}

impl Account {
    /// A call without args at 1M gas: enough for every fixture here, small enough that the
    /// block-limit tests control how many fit.
    fn call_1m(&mut self, contract: Address, entry: &str) -> VerifiedTx {
        self.call_gas(contract, entry, &[], 1_000_000)
    }
}

fn block(vm: &Vm, st: &mut MemState, height: u64, txs: Vec<VerifiedTx>) -> BlockOutcome {
    let out = vm
        .execute_block(Arc::new(st.clone()), &ctx(height), txs)
        .unwrap();
    st.apply(&out.writes);
    out
}

fn reasons(out: &BlockOutcome) -> Vec<DropReason> {
    out.dropped.iter().map(|(_, r)| r.clone()).collect()
}

/// Deploys `code` `n` times from one account; returns the state and the addresses.
fn deployed(vm: &Vm, code: Vec<u8>, n: usize) -> (MemState, Vec<Address>) {
    let mut st = MemState::default();
    let mut d = Account::new(200);
    let (txs, addrs): (Vec<_>, Vec<_>) = (0..n).map(|_| d.deploy(code.clone())).unzip();
    let out = block(vm, &mut st, 1, txs);
    assert!(out.receipts.iter().all(|r| r.status.is_success()));
    (st, addrs)
}

#[test]
fn a_node_fault_drops_that_transaction_not_the_block() {
    let vm1 = vm(1);
    let mut st = MemState::default();
    let mut d = Account::new(200);
    // Two counters with different code: a custom section changes the hash, not the contract.
    let mut other = fixture("counter");
    other.extend([0x00, 0x02, 0x01, b'x']);
    let (d0, c0) = d.deploy(fixture("counter"));
    let (d1, c1) = d.deploy(other);
    block(&vm1, &mut st, 1, vec![d0, d1]);
    // The stored code of the first counter is gone: calls to it cannot be compiled.
    let lost = st.contracts[&c0].code_hash;
    assert_ne!(lost, st.contracts[&c1].code_hash);
    st.code.remove(&lost);
    let mut a = Account::new(1);
    let mut b = Account::new(2);
    let txs = vec![
        a.call_1m(c0, "increment"),
        a.call_1m(c1, "increment"),
        b.call_1m(c1, "increment"),
        b.call_1m(c0, "increment"),
    ];
    // A fresh engine: nothing cached, so the missing code is noticed.
    let fresh = vm(2);
    let out = fresh
        .execute_block(Arc::new(st.clone()), &ctx(2), txs)
        .unwrap();
    let r = reasons(&out);
    assert_eq!(r.len(), 3, "{r:?}");
    assert!(
        matches!(&r[0], DropReason::Fault(m) if m.contains("missing")),
        "{r:?}"
    );
    assert!(matches!(&r[1], DropReason::Fault(_)), "{r:?}");
    assert_eq!(
        r[2],
        DropReason::Nonce {
            expected: 0,
            got: 1
        }
    );
    assert!(!r[0].is_retryable() && !r[1].is_retryable());
    assert_eq!(out.faults(), 2);
    // The honest call on the healthy contract is included, and `a` used no nonce.
    assert_eq!(out.receipts.len(), 1);
    assert_eq!(out.txs[0].tx().sender, b.key.public());
    assert_eq!(out.receipts[0].output.0, 1u64.to_le_bytes().to_vec());
    assert_eq!(out.writes.nonces.get(&a.key.public()), None);
    assert_eq!(out.writes.nonces.get(&b.key.public()), Some(&1));
}

/// A parent state whose storage reads fail: a node fault that must abort the block.
struct BrokenStorage(MemState);

impl StateView for BrokenStorage {
    fn storage_get(&self, _: &Address, _: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        Err(StateError::new("disk on fire"))
    }
    fn contract(&self, a: &Address) -> Result<Option<crate::types::ContractInfo>, StateError> {
        self.0.contract(a)
    }
    fn code(&self, h: &crate::types::Hash) -> Result<Option<Vec<u8>>, StateError> {
        self.0.code(h)
    }
    fn nonce(&self, s: &crate::types::PublicKey) -> Result<u64, StateError> {
        self.0.nonce(s)
    }
}

#[test]
fn a_storage_error_still_aborts_the_block() {
    let vm = vm(2);
    let (st, c) = deployed(&vm, fixture("counter"), 1);
    let mut a = Account::new(3);
    let err = vm
        .execute_block(
            Arc::new(BrokenStorage(st)),
            &ctx(2),
            vec![a.call_1m(c[0], "increment")],
        )
        .unwrap_err();
    assert!(matches!(err, VmError::State(_)), "{err}");
}

#[test]
fn the_block_gas_limit_leaves_the_rest_for_a_later_block() {
    let vm = vm(2);
    let (mut st, c) = deployed(&vm, fixture("counter"), 1);
    let per_tx = gas::MAX_BLOCK_GAS / 20;
    let mut accounts: Vec<Account> = (0..21).map(|i| Account::new(10 + i)).collect();
    let mut txs: Vec<_> = accounts
        .iter_mut()
        .map(|a| a.call_gas(c[0], "get", &[], per_tx))
        .collect();
    // The 21st sender's next transaction is small but its first one did not fit.
    txs.push(accounts[20].call_1m(c[0], "get"));
    // One that could never fit in any block is refused for good.
    let mut big = Account::new(40);
    txs.push(big.call_gas(c[0], "get", &[], gas::MAX_BLOCK_GAS + 1));
    let out = block(&vm, &mut st, 2, txs);
    assert_eq!(out.receipts.len(), 20);
    let r = reasons(&out);
    assert_eq!(r[0], DropReason::BlockFull(BlockLimit::Gas));
    assert!(r[0].is_retryable());
    assert_eq!(
        r[1],
        DropReason::Nonce {
            expected: 0,
            got: 1
        }
    );
    assert!(r[1].is_retryable());
    assert!(matches!(r[2], DropReason::GasLimit { .. }) && !r[2].is_retryable());
    // The left-out one fits in the next block.
    let again = out.dropped[0].0.clone();
    let out = block(&vm, &mut st, 3, vec![again]);
    assert_eq!(out.receipts.len(), 1);
}

#[test]
fn the_block_byte_limit_leaves_the_rest_for_a_later_block() {
    let vm = vm(1);
    let (mut st, c) = deployed(&vm, fixture("counter"), 1);
    let mut a = Account::new(4);
    let args = vec![7u8; crate::types::MAX_ARGS_LEN];
    let txs: Vec<_> = (0..260)
        .map(|_| a.call_gas(c[0], "get", &args, 1_000_000))
        .collect();
    // Nonces from 128 on take one more byte, so count the fit one by one.
    let mut total = 0;
    let fit = txs
        .iter()
        .take_while(|t| {
            total += gas::tx_bytes(t.signed());
            total <= gas::MAX_BLOCK_TX_BYTES
        })
        .count();
    assert!(fit < 260);
    let out = block(&vm, &mut st, 2, txs);
    assert_eq!(out.receipts.len(), fit);
    let r = reasons(&out);
    assert_eq!(r[0], DropReason::BlockFull(BlockLimit::TxBytes));
    assert!(r[1..].iter().all(|r| matches!(r, DropReason::Nonce { .. })));
    let bytes: u64 = out.txs.iter().map(|t| gas::tx_bytes(t.signed())).sum();
    assert!(bytes <= gas::MAX_BLOCK_TX_BYTES);
}

/// Input of `big_results.wat`: [writes, value_len, events, output_len].
fn big_args(writes: u32, value_len: u32, events: u32, output_len: u32) -> Vec<u8> {
    [writes, value_len, events, output_len]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect()
}

#[test]
fn the_result_budget_cuts_the_block_the_same_way_with_1_2_or_4_workers() {
    let code = fixture("big_results");
    let mut results = Vec::new();
    for workers in [1, 2, 4] {
        let vm = vm(workers);
        let (st, c) = deployed(&vm, code.clone(), 3);
        let mut senders: Vec<Account> = (0..4).map(|i| Account::new(50 + i)).collect();
        // About 295 KB of receipt and writes each: the budget holds about 56 of them.
        let txs: Vec<_> = (0..64)
            .map(|i| {
                let args = big_args(3, 60_000, 3, 65_536);
                senders[i % 4].call_gas(c[i % 3], "run", &args, 6_000_000)
            })
            .collect();
        let parent = genesis_state_root(CHAIN);
        let out = vm
            .execute_block(Arc::new(st.clone()), &ctx(2), txs)
            .unwrap();
        assert!(out.receipts.iter().all(|r| r.status.is_success()));
        let r = reasons(&out);
        assert!(!r.is_empty() && out.receipts.len() + r.len() == 64, "{r:?}");
        assert!(
            r.iter()
                .all(|r| *r == DropReason::BlockFull(BlockLimit::ResultBytes))
        );
        // The cut is a suffix in block order.
        let first_dropped = out.dropped[0].0.id();
        assert!(out.txs.iter().all(|t| t.id() != first_dropped));
        // Executing exactly the kept transactions gives the same receipts and writes: no kept
        // result and no write depends on a transaction that was cut.
        let again = vm
            .execute_block(Arc::new(st.clone()), &ctx(2), out.txs.clone())
            .unwrap();
        assert!(again.dropped.is_empty());
        assert_eq!(again.receipts, out.receipts);
        assert_eq!(again.writes, out.writes);
        results.push((
            out.receipts.clone(),
            out.txs.iter().map(|t| t.id()).collect::<Vec<_>>(),
            state_root(&parent, &out.writes),
        ));
    }
    assert_eq!(results[0], results[1]);
    assert_eq!(results[0], results[2]);
}

#[test]
fn per_call_caps_end_the_call_with_a_clear_receipt() {
    let vm = vm(1);
    let (mut st, c) = deployed(&vm, fixture("big_results"), 1);
    let mut a = Account::new(5);
    let cases = [
        (
            big_args(0, 0, 5, 0),
            "events of one call exceed 65536 bytes",
        ),
        (
            big_args(gas::MAX_TX_WRITES as u32 + 1, 1, 0, 0),
            "more than 256 storage keys written in one call",
        ),
        (
            big_args(5, 65_536, 0, 0),
            "storage writes of one call exceed 262144 bytes",
        ),
        (
            big_args(0, 0, 0, 65_537),
            "output is 65537 bytes, limit 65536",
        ),
    ];
    let txs: Vec<_> = cases
        .iter()
        .map(|(args, _)| a.call_gas(c[0], "run", args, 40_000_000))
        .collect();
    let out = block(&vm, &mut st, 2, txs);
    for (i, (_, msg)) in cases.iter().enumerate() {
        assert_eq!(
            out.receipts[i].status,
            ReceiptStatus::Trapped {
                kind: format!("{}{msg}", trap_kind::HOST_PREFIX)
            },
            "case {i}"
        );
        assert!(out.receipts[i].events.is_empty());
    }
    assert!(out.writes.storage.is_empty());
    // Right at the caps is fine.
    let ok = a.call_gas(c[0], "run", &big_args(4, 65_000, 3, 65_536), 40_000_000);
    let out = block(&vm, &mut st, 3, vec![ok]);
    assert_eq!(out.receipts[0].status, ReceiptStatus::Success);
}

const GATE: &str = r#"(module
  (import "accumen" "storage_read" (func $sr (param i32 i32 i32 i32) (result i32)))
  (import "accumen" "storage_write" (func $sw (param i32 i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "open")
  (data (i32.const 8) "\03\00\00\00\00\00\00\00")
  (func (export "open") (call $sw (i32.const 0) (i32.const 4) (i32.const 0) (i32.const 4)))
  ;; Returns at once when "open" is set; otherwise runs slow divisions until the gas or the
  ;; wall-clock backstop stops it.
  (func (export "gate")
    (local $x i64)
    (local $d i64)
    (if (i32.ge_s (call $sr (i32.const 0) (i32.const 4) (i32.const 16) (i32.const 0))
                  (i32.const 0))
      (then (return)))
    (local.set $x (i64.const -1))
    (loop $again
      (local.set $d (i64.load (i32.const 8)))
      (local.set $x
        (i64.div_u (i64.div_u (i64.div_u (i64.div_u
          (i64.or (local.get $x) (i64.const 0x7fffffffffffffff))
          (local.get $d)) (local.get $d)) (local.get $d)) (local.get $d)))
      (br $again))))"#;

/// Gas for a call that must outlast a 50 ms backstop: slow divisions for 100M gas run for about
/// 350 ms (283M gas/s measured), and four of them still fit in `MAX_BLOCK_GAS`.
const SLOW_GAS: u64 = 100_000_000;

#[test]
fn timeouts_rerun_only_the_groups_that_changed() {
    let vm = vm_with(2, Duration::from_millis(50));
    let mut st = MemState::default();
    let mut d = Account::new(60);
    let (d1, slow) = d.deploy(fixture("slow"));
    let (d2, c1) = d.deploy(fixture("counter"));
    let (d3, c2) = d.deploy(fixture("counter"));
    block(&vm, &mut st, 1, vec![d1, d2, d3]);
    let mut a = Account::new(61);
    let mut b = Account::new(62);
    let mut e = Account::new(63);
    let mut txs = vec![
        a.call_gas(slow, "run", &[], SLOW_GAS),
        a.call_1m(c1, "increment"),
        b.call_1m(c1, "increment"),
    ];
    txs.extend((0..5).map(|_| b.call_1m(c2, "increment")));
    txs.push(e.call_gas(slow, "run", &[], SLOW_GAS));
    let out = block(&vm, &mut st, 2, txs);
    // Both timeouts were found in the first run and dropped together.
    let r = reasons(&out);
    assert_eq!(
        r,
        vec![
            DropReason::Timeout,
            DropReason::Timeout,
            DropReason::Nonce {
                expected: 0,
                got: 1
            }
        ]
    );
    // 9 runs, then only the first counter's group again (it lost `a`'s increment).
    assert_eq!(out.executions, 10);
    assert_eq!(out.receipts.len(), 6);
    assert_eq!(out.receipts[0].output.0, 1u64.to_le_bytes().to_vec());
    assert_eq!(out.receipts[5].output.0, 5u64.to_le_bytes().to_vec());
}

#[test]
fn chained_timeouts_rerun_a_bounded_number_of_times() {
    let vm = vm_with(2, Duration::from_millis(50));
    let mut st = MemState::default();
    let mut d = Account::new(70);
    let (d0, slow) = d.deploy(fixture("slow"));
    let (d1, x) = d.deploy(wat(GATE));
    let (d2, y) = d.deploy(wat(GATE));
    let (d3, z) = d.deploy(wat(GATE));
    let (d4, counter) = d.deploy(fixture("counter"));
    block(&vm, &mut st, 1, vec![d0, d1, d2, d3, d4]);
    let [mut a, mut b, mut c, mut dd, mut e] = [71, 72, 73, 74, 75].map(Account::new);
    // Each sender opens the next gate after passing through its own: dropping one timed-out
    // call closes the next gate, which then times out in the re-run, and so on.
    let txs = vec![
        a.call_gas(slow, "run", &[], SLOW_GAS),
        a.call_1m(x, "open"),
        b.call_gas(x, "gate", &[], SLOW_GAS),
        b.call_1m(y, "open"),
        c.call_gas(y, "gate", &[], SLOW_GAS),
        c.call_1m(z, "open"),
        dd.call_gas(z, "gate", &[], SLOW_GAS),
        e.call_1m(counter, "increment"),
    ];
    let out = block(&vm, &mut st, 2, txs);
    assert_eq!(
        reasons(&out),
        vec![
            DropReason::Timeout,
            DropReason::Nonce {
                expected: 0,
                got: 1
            },
            DropReason::Timeout,
            DropReason::Nonce {
                expected: 0,
                got: 1
            },
            DropReason::Timeout,
            DropReason::Deferred,
            DropReason::Deferred,
        ]
    );
    // One full run and two re-runs of one group each; the rest was deferred without running.
    assert_eq!(out.executions, 8 + 1 + 1);
    assert_eq!(out.receipts.len(), 1);
    assert_eq!(out.txs[0].tx().sender, e.key.public());
    assert!(out.dropped[5].1.is_retryable() && out.dropped[6].1.is_retryable());
    assert_eq!(out.writes.nonces.len(), 1);
}

#[test]
fn receipts_carry_stable_codes_not_engine_text() {
    let vm = vm(1);
    let mut st = MemState::default();
    let mut a = Account::new(80);
    // Valid header, garbage body: wasmparser's own message must not reach the receipt.
    let mut garbage = b"\0asm\x01\0\0\0".to_vec();
    garbage.extend([0x01, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x60]);
    let (bad, _) = a.deploy(garbage);
    let (t, trap) = a.deploy(fixture("trap"));
    let (r, rec) = a.deploy(fixture("recursion"));
    let out = block(&vm, &mut st, 1, vec![bad, t, r]);
    assert_eq!(
        out.receipts[0].status,
        ReceiptStatus::Reverted {
            message: "invalid contract: malformed or unsupported WebAssembly".into()
        }
    );
    let out = block(
        &vm,
        &mut st,
        2,
        vec![a.call_1m(trap, "run"), a.call_1m(rec, "run")],
    );
    let kinds: Vec<_> = out
        .receipts
        .iter()
        .map(|r| match &r.status {
            ReceiptStatus::Trapped { kind } => kind.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        vec![trap_kind::UNREACHABLE, trap_kind::STACK_OVERFLOW]
    );
    assert!(kinds.iter().all(|k| trap_kind::ALL.contains(&k.as_str())));
    assert!(!kinds.iter().any(|k| k.contains("wasm trap")));
}

#[test]
fn memory_grow_is_charged_per_page() {
    let vm = vm(1);
    let mut st = MemState::default();
    let mut a = Account::new(90);
    let src = r#"(module
      (import "accumen" "gas_left" (func $gas_left (result i64)))
      (memory (export "memory") 1)
      (func (export "grow") (drop (memory.grow (i32.const 10))))
      (func (export "grow_then_host") (drop (memory.grow (i32.const 10))) (drop (call $gas_left)))
      (func (export "none") (drop (i32.const 10))))"#;
    // Initial pages are free: a module that starts with 10 pages costs what one with 1 does.
    let big = src.replace(
        "(memory (export \"memory\") 1)",
        "(memory (export \"memory\") 11)",
    );
    let (d1, c) = a.deploy(wat(src));
    let (d2, c11) = a.deploy(wat(&big));
    block(&vm, &mut st, 1, vec![d1, d2]);
    let out = block(
        &vm,
        &mut st,
        2,
        vec![
            a.call_1m(c, "none"),
            a.call_1m(c, "grow"),
            a.call_1m(c, "grow_then_host"),
            a.call_1m(c11, "none"),
            a.call_gas(c, "grow", &[], 50_000),
            a.call_gas(c, "grow_then_host", &[], 50_000),
        ],
    );
    let g: Vec<u64> = out.receipts.iter().map(|r| r.gas_used).collect();
    let paid = g[1] - g[0];
    assert!(
        (10 * gas::MEMORY_GROW_PAGE..10 * gas::MEMORY_GROW_PAGE + 10).contains(&paid),
        "{g:?}"
    );
    assert!(g[2] - g[1] >= gas::HOST_CALL, "{g:?}");
    assert_eq!(g[3], g[0]);
    for i in [4, 5] {
        assert_eq!(out.receipts[i].status, ReceiptStatus::OutOfGas, "{i}");
        assert_eq!(g[i], 50_000);
    }
}

#[test]
fn queries_refuse_args_longer_than_a_call_may_carry() {
    let vm = vm(1);
    let (st, c) = deployed(&vm, fixture("counter"), 1);
    let q = |len: usize| Query {
        contract: c[0],
        entry: "get".into(),
        args: vec![0; len],
        sender: Account::new(91).key.public(),
        gas_limit: 10_000_000,
        height: 1,
        time_ms: 0,
    };
    let base: Arc<dyn StateView> = Arc::new(st);
    let ok = vm
        .query(base.clone(), q(crate::types::MAX_ARGS_LEN))
        .unwrap();
    assert_eq!(ok.status, ReceiptStatus::Success);
    let err = vm
        .query(base, q(crate::types::MAX_ARGS_LEN + 1))
        .unwrap_err();
    assert!(
        matches!(err, VmError::ArgsTooLarge { len, limit } if len == limit + 1),
        "{err}"
    );
}

#[test]
fn one_transaction_always_fits_the_result_budget() {
    // output + events + logs + revert message + writes (with their 32-byte addresses), with a
    // generous allowance for the receipt's fixed fields and length prefixes.
    let receipt = gas::MAX_OUTPUT_LEN
        + gas::MAX_TX_EVENT_BYTES
        + gas::MAX_EVENTS * (32 + 16)
        + gas::MAX_LOGS * (gas::MAX_LOG_LEN + 8)
        + gas::MAX_REVERT_LEN
        + 1024;
    let writes = gas::MAX_TX_WRITE_BYTES + gas::MAX_TX_WRITES * 32;
    assert!(((receipt + writes) as u64) < gas::MAX_BLOCK_RESULT_BYTES / 16);
}

#[test]
fn verification_refuses_what_building_cuts_or_drops_as_a_fault_and_accepts_the_rest() {
    let vm = vm(2);
    let (st, c) = deployed(&vm, fixture("big_results"), 3);
    let mut senders: Vec<Account> = (0..4).map(|i| Account::new(70 + i)).collect();
    let txs: Vec<_> = (0..64)
        .map(|i| {
            let args = big_args(3, 60_000, 3, 65_536);
            senders[i % 4].call_gas(c[i % 3], "run", &args, 6_000_000)
        })
        .collect();
    let built = vm
        .execute_block(Arc::new(st.clone()), &ctx(2), txs.clone())
        .unwrap();
    let kept = built.txs.len();
    assert!(kept < 64);
    // The whole selection as a block: the first transaction past the result budget.
    match vm.verify_block(Arc::new(st.clone()), &ctx(2), txs.clone()) {
        Err(ReplayError::NotExecutable { index, tx, reason }) => {
            assert_eq!(index, kept);
            assert_eq!(tx, txs[kept].id());
            assert_eq!(reason, DropReason::BlockFull(BlockLimit::ResultBytes));
        }
        other => panic!("{:?}", other.map(|o| o.receipts.len())),
    }
    // What building kept verifies, with the same results and no run dropped or repeated.
    let verified = vm
        .verify_block(Arc::new(st.clone()), &ctx(2), built.txs.clone())
        .unwrap();
    assert_eq!(verified.receipts, built.receipts);
    assert_eq!(verified.writes, built.writes);
    assert!(verified.dropped.is_empty());
    assert_eq!(verified.executions, kept as u64);
    assert_eq!(verified.deadline_retries, 0);

    // A transaction the engine cannot run (its contract's code is gone) is not dropped either.
    let mut broken = st.clone();
    let lost = broken.contracts[&c[0]].code_hash;
    broken.code.remove(&lost);
    let mut a = Account::new(80);
    let call = a.call_1m(c[0], "run");
    let fresh = vm_with(1, Duration::from_secs(5));
    match fresh.verify_block(Arc::new(broken), &ctx(2), vec![call.clone()]) {
        Err(ReplayError::NotExecutable {
            index: 0,
            tx,
            reason,
        }) => {
            assert_eq!(tx, call.id());
            assert!(
                matches!(&reason, DropReason::Fault(m) if m.contains("missing")),
                "{reason}"
            );
        }
        other => panic!("{:?}", other.map(|o| o.receipts.len())),
    }
}
