//! Attack: contracts that validate but cannot be compiled, and compile bombs (issue 6, §1 and
//! §2). Through the public API only: the refused deploys get `400 invalid_contract` naming the
//! limit, use no nonce and create nothing; a bomb just within the limits deploys and pays for
//! its compile; blocks keep coming and an honest sender's call is included meanwhile.
//! (`/health` is watched by the supervision tests; here block height is the liveness signal.)

#[path = "../fixtures/compile_bombs.rs"]
mod bombs;

use std::time::Duration;

use accumen_actors::types::Action;
use accumen_actors::vm::gas;

use crate::harness::{Sender, TestNode, deploy, error_code, fixture, submit, submit_ok, wait_for};

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
