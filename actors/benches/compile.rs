//! Compile cost of adversarial contracts at the deploy limits (not criterion: one compile of a
//! bomb takes up to seconds, and peak memory must be measured per process).
//!
//! `cargo bench -p accumen-actors --bench compile` prints, for every case of
//! `tests/fixtures/compile_bombs.rs` (the known Cranelift superlinear shapes, each sized to the
//! limits of `vm::gas`): whether validation accepts it, its code size, compile weight (gas),
//! compile time, and gas per second of compile; then the execution speed (gas per second of a
//! fuel-metered loop), which the compile prices are calibrated against.
//!
//! Peak memory of one case: run the bench binary on it alone under `/usr/bin/time -v`, e.g.
//! `/usr/bin/time -v target/release/deps/compile-* --bench nested_br_tables_max`.
//! `--unchecked` compiles refused cases too (the review's bomb takes minutes and gigabytes).
//! Figures are reported in CONTRACT_ABI.md and closing notes, never asserted.

#[path = "../../tests/fixtures/compile_bombs.rs"]
mod bombs;

use std::sync::Arc;
use std::time::Instant;

use accumen_actors::testkit;
use accumen_actors::types::{Action, Bytes, Keypair};
use accumen_actors::vm::{BlockContext, MemState, Vm, VmConfig, gas};

/// (name, generator): generated lazily, since sizing a case to the limits validates it
/// repeatedly.
type Case = (&'static str, Box<dyn Fn() -> String>);

fn cases() -> Vec<Case> {
    let l = std::env::var("BOMB_L")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(gas::MAX_LOCALS);
    let d = gas::MAX_NESTING_DEPTH - 1;
    let t = gas::MAX_BR_TABLE_TARGETS;
    vec![
        (
            "review_bomb",
            Box::new(|| bombs::nested_br_table(5_000, 5_000, 2_000)),
        ),
        ("two_tables", Box::new(two_tables)),
        (
            "nested_br_table_max",
            Box::new(move || bombs::nested_br_table(d, t, l)),
        ),
        (
            "nested_br_tables_max",
            Box::new(move || fill(|n| bombs::nested_br_tables(d, n.min(d), t, l))),
        ),
        (
            "many_blocks_max",
            Box::new(move || fill(|n| bombs::many_blocks(n, l))),
        ),
        (
            "many_block_functions_max",
            Box::new(move || fill(|n| bombs::many_block_functions(4, n, l))),
        ),
        (
            "many_locals_max",
            Box::new(move || fill(|n| bombs::many_locals(l, n))),
        ),
        (
            "many_functions_max",
            Box::new(|| fill(|n| bombs::many_functions(gas::MAX_FUNCTIONS - 1, n))),
        ),
    ]
}

fn two_tables() -> String {
    r#"(module (memory (export "memory") 1) (table 1 funcref) (table 1 funcref))"#.into()
}

/// The largest `n` (binary search) whose module still passes validation.
///
/// `BOMB_N=<n>` skips the search and uses `n` (for scaling measurements).
fn fill(make: impl Fn(u32) -> String) -> String {
    if let Some(n) = std::env::var("BOMB_N").ok().and_then(|n| n.parse().ok()) {
        return make(n);
    }
    let vm = vm();
    let ok = |n: u32| {
        wat::parse_str(make(n))
            .map(|w| vm.validate(&w).is_ok())
            .unwrap_or(false)
    };
    let (mut lo, mut hi) = (1u32, 1u32);
    while ok(hi) && hi < 1 << 20 {
        lo = hi;
        hi *= 2;
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if ok(mid) { lo = mid } else { hi = mid }
    }
    make(lo)
}

fn vm() -> Vm {
    Vm::new(VmConfig {
        workers: 1,
        ..VmConfig::default()
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Gas per second of a fuel-metered loop (`tests/fixtures/loop.wat`) running out of 50M gas.
fn execution_speed() -> f64 {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/loop.wat");
    let code = wat::parse_file(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let vm = vm();
    let key = Keypair::from_seed([7; 32]);
    let tx = |nonce, action| {
        let body = testkit::body("bench", key.public(), nonce, action, 50_000_000);
        testkit::verified(key.sign(body))
    };
    let ctx = |height| BlockContext {
        chain_id: "bench".into(),
        height,
        timestamp_ms: 1,
        max_tx_gas: 50_000_000,
        max_block_gas: accumen_actors::vm::gas::MAX_BLOCK_GAS,
        max_block_tx_bytes: accumen_actors::vm::gas::MAX_BLOCK_TX_BYTES,
        max_block_result_bytes: accumen_actors::vm::gas::MAX_BLOCK_RESULT_BYTES,
    };
    let deploy = tx(0, Action::Deploy { code: Bytes(code) });
    let contract = deploy.tx().target();
    let mut st = MemState::default();
    let out = vm
        .execute_block(Arc::new(st.clone()), &ctx(1), vec![deploy])
        .unwrap_or_else(|e| panic!("{e}"));
    st.apply(&out.writes);
    let mut best = f64::MAX;
    let mut gas_used = 0;
    for nonce in 1..=3 {
        let call = tx(
            nonce,
            Action::Call {
                contract,
                entry: "run".into(),
                args: Bytes::default(),
            },
        );
        let start = Instant::now();
        let out = vm
            .execute_block(Arc::new(st.clone()), &ctx(nonce + 1), vec![call])
            .unwrap_or_else(|e| panic!("{e}"));
        best = best.min(start.elapsed().as_secs_f64());
        gas_used = out.gas_used;
        st.apply(&out.writes);
    }
    gas_used as f64 / best
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let unchecked = args.iter().any(|a| a == "--unchecked");
    let filter: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let selected =
        |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));

    println!("case | code bytes | validation | weight (gas) | compile s | gas per compile s");
    for (name, make) in cases() {
        if !selected(name) {
            continue;
        }
        let text = make();
        let code = wat::parse_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let vm = vm();
        let (verdict, weight) = match vm.validate(&code) {
            Ok(info) => ("accepted".to_string(), info.compile_weight),
            Err(e) => (format!("refused: {e}"), 0),
        };
        if weight == 0 && !unchecked {
            println!("{name} | {} | {verdict} | - | - | -", code.len());
            continue;
        }
        let start = Instant::now();
        let compiled = if weight == 0 {
            // Bypass validation: what the engine alone would do with it.
            wasmtime::Module::new(&wasmtime::Engine::default(), &code)
                .map(|_| ())
                .map_err(|e| e.to_string())
        } else {
            vm.precompile(&code).map(|_| ()).map_err(|e| e.to_string())
        };
        let secs = start.elapsed().as_secs_f64();
        if let Err(e) = compiled {
            println!(
                "{name} | {} | {verdict} | {weight} | compile failed: {e} | -",
                code.len()
            );
            continue;
        }
        println!(
            "{name} | {} | {verdict} | {weight} | {secs:.3} | {:.0}",
            code.len(),
            weight as f64 / secs
        );
    }
    if filter.is_empty() || selected("execution") {
        println!(
            "execution: {:.0} gas per second (loop.wat, 50M gas)",
            execution_speed()
        );
    }
}
