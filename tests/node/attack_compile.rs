//! Attack: contracts that validate but cannot be compiled, and compile bombs (issue 6, §1 and
//! §2). Through the public API only: the refused deploys get `400 invalid_contract` naming the
//! limit, use no nonce and create nothing; a bomb just within the limits deploys and pays for
//! its compile; blocks keep coming and an honest sender's call is included meanwhile.
//! (`/health` is watched by the supervision tests; here block height is the liveness signal.)
//!
//! Gas schedule 2 (issue 11): a tiny deploy on a new chain pays the per-module compile base; a
//! chain created with schedule 1 keeps schedule 1's prices (the same receipts as the build before
//! schedule 2); a chain with a schedule this build does not know is refused at start.

#[path = "../fixtures/compile_bombs.rs"]
mod bombs;

use std::time::Duration;

use accumen_actors::chain::ChainParams;
use accumen_actors::storage::Storage;
use accumen_actors::types::Action;
use accumen_actors::vm::gas::{self, GasSchedule};

use crate::harness::{
    CHAIN, Sender, TestNode, base_config, deploy, error_code, fixture, run_to_exit, submit,
    submit_ok, wait_for,
};

/// Submits a deploy that must be refused at admission with a message containing `reason`,
/// and checks that it changed nothing.
fn refused(node: &TestNode, attacker: &mut Sender, code: Vec<u8>, reason: &str) {
    let (tx, addr) = attacker.deploy(code);
    let (status, v) = submit(node, &tx);
    attacker.nonce -= 1;
    assert_eq!(status, 400, "{v}");
    assert_eq!(error_code(&v), "invalid_contract", "{v}");
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(reason), "{reason:?} not in {message:?}");
    let (status, v) = node.get(&format!("/v1/contracts/{addr}"));
    assert_eq!(status, 404, "{v}");
    let (_, v) = node.get(&format!("/v1/accounts/{}", attacker.key.public()));
    assert_eq!(v["next_nonce"].as_u64(), Some(attacker.nonce), "{v}");
}

#[test]
fn compile_bombs_are_refused_or_paid_and_blocks_keep_coming() {
    let node = TestNode::start("");
    let mut attacker = Sender::new(61);
    let mut honest = Sender::new(62);
    let counter = deploy(&node, &mut honest, fixture("counter"));

    // §1: two tables passed the old validation and then failed to compile in every block.
    let two_tables = wat::parse_str(
        r#"(module (memory (export "memory") 1) (table 1 funcref) (table 1 funcref)
             (func (export "run")))"#,
    )
    .unwrap();
    refused(
        &node,
        &mut attacker,
        two_tables,
        "table count 2 exceeds the limit 1",
    );

    // §2: the review's bomb (5,000 nested blocks, one br_table over all, 2,000 locals: 96 s
    // and 5.3 GB of compile) is refused before anything compiles.
    let bomb = wat::parse_str(bombs::nested_br_table(5_000, 5_000, 2_000)).unwrap();
    refused(
        &node,
        &mut attacker,
        bomb,
        "local (per function) count 2000 exceeds",
    );
    // The same shape within the locals limit hits the nesting limit.
    let bomb = wat::parse_str(bombs::nested_br_table(5_000, 5_000, gas::MAX_LOCALS)).unwrap();
    refused(&node, &mut attacker, bomb, "control nesting depth count");
    // And a br_table wider than the limit.
    let wide = gas::MAX_BR_TABLE_TARGETS + 1;
    let bomb = wat::parse_str(bombs::nested_br_table(10, wide, 10)).unwrap();
    refused(&node, &mut attacker, bomb, "br_table target count");

    // At the nesting and br_table limits (with 64 locals, so that its compile weight fits the
    // default execution.gas_limit): deploys, paying its compile weight in gas.
    let within = wat::parse_str(bombs::nested_br_table(
        gas::MAX_NESTING_DEPTH - 1,
        gas::MAX_BR_TABLE_TARGETS - 1,
        64,
    ))
    .unwrap();
    let height_before = node.height();
    let (tx, bomb_addr) = attacker.deploy(within);
    let bomb_hash = submit_ok(&node, &tx);
    // An honest call sent right behind it.
    let call = honest.call(counter, "increment", &[]);
    let call_hash = submit_ok(&node, &call);
    let v = node.wait_included(&bomb_hash);
    assert_eq!(v["receipt"]["status"], "success", "{v}");
    let bomb_gas = v["receipt"]["gas_used"].as_u64().unwrap_or(0);
    let code_len = match &tx.tx.action {
        Action::Deploy { code } => code.0.len(),
        Action::Call { .. } => 0,
    };
    assert!(
        bomb_gas > gas::intrinsic(0, code_len) + 1_000_000,
        "the compile weight is charged on top of the bytes: {v}"
    );
    let v = node.wait_included(&call_hash);
    assert_eq!(v["receipt"]["status"], "success", "{v}");

    // Calling the bomb works and pays its module-load share; the chain keeps producing blocks.
    let call = attacker.call(bomb_addr, "run", &[]);
    let v = node.wait_included(&submit_ok(&node, &call));
    assert_eq!(v["receipt"]["status"], "success", "{v}");
    wait_for("blocks after the attack", Duration::from_secs(30), || {
        (node.height() >= height_before + 3).then_some(())
    });
}

/// The smallest contract: an exported memory and no function at all (no code to compile, and
/// still a module wasmtime sets up, translates and publishes).
fn tiny() -> Vec<u8> {
    wat::parse_str(r#"(module (memory (export "memory") 1))"#).unwrap()
}

/// Deploys `code` and returns its receipt's `gas_used` (the deploy must succeed).
fn deploy_gas(node: &TestNode, sender: &mut Sender, code: Vec<u8>) -> u64 {
    let (tx, _) = sender.deploy(code);
    let v = node.wait_included(&submit_ok(node, &tx));
    assert_eq!(v["receipt"]["status"], "success", "{v}");
    v["receipt"]["gas_used"].as_u64().unwrap_or(0)
}

/// A persistent data dir in `dir` holding a new chain (genesis only) with gas schedule
/// `version` and otherwise the test configuration's parameters: what an older build left.
fn chain_with_schedule(dir: &std::path::Path, version: u32) {
    let params = ChainParams {
        gas_schedule: version,
        ..ChainParams::with_defaults(CHAIN)
    };
    Storage::open(&dir.join("accumen.redb"), &params).unwrap();
}

#[test]
fn a_tiny_deploy_on_a_new_chain_pays_the_module_base() {
    let node = TestNode::start("");
    let (_, chain) = node.get("/v1/chain");
    assert_eq!(
        chain["params"]["gas_schedule"],
        gas::GAS_SCHEDULE_VERSION,
        "{chain}"
    );
    assert_eq!(gas::GAS_SCHEDULE_VERSION, 2);
    let code = tiny();
    let len = code.len();
    let paid = deploy_gas(&node, &mut Sender::new(63), code);
    // No function: schedule 1 charged the bytes only; schedule 2 adds the module base.
    let base = GasSchedule::V2.compile().module;
    assert!(base > 0);
    assert_eq!(paid, gas::intrinsic(0, len) + base, "{len} bytes");
}

#[test]
fn a_schedule_1_chain_keeps_schedule_1_prices() {
    let dir = tempfile::tempdir().unwrap();
    chain_with_schedule(dir.path(), 1);
    let node = TestNode::start_in(dir.path(), "storage: persistent", &[]);
    let (_, chain) = node.get("/v1/chain");
    assert_eq!(chain["params"]["gas_schedule"], 1, "{chain}");
    let mut s = Sender::new(64);
    let code = tiny();
    let len = code.len();
    assert_eq!(deploy_gas(&node, &mut s, code), gas::intrinsic(0, len));
    // The counter fixture's deploy receipt of the build before schedule 2 (the golden figure of
    // `chain::tests::a_schedule_1_chain_replays_exactly_as_the_build_before_schedule_2`).
    assert_eq!(deploy_gas(&node, &mut s, fixture("counter")), 350_497);
}

#[test]
fn a_chain_with_an_unknown_gas_schedule_is_refused_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    chain_with_schedule(dir.path(), 3);
    let config = dir.path().join("node.yaml");
    std::fs::write(
        &config,
        base_config(dir.path()).replace("storage: memory", "storage: persistent"),
    )
    .unwrap();
    let out = run_to_exit("sequencer", &config, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for part in [
        "this chain was created with gas_schedule = 3",
        "runs gas schedules [1, 2]",
    ] {
        assert!(err.contains(part), "{part:?} missing from:\n{err}");
    }
}
