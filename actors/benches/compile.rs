//! Compile cost of adversarial contracts at the deploy limits (not criterion: one compile of a
//! bomb takes up to seconds, and peak memory must be measured per process).
//!
//! `cargo bench -p accumen-actors --bench compile` prints, for every case of
//! `tests/fixtures/compile_bombs.rs` (the known Cranelift superlinear shapes, each sized to the
//! limits of `vm::gas`) and of the module-level shapes below (each section at its limit):
//! whether validation accepts it, its code size, compile weight under gas schedules 1 and 2,
//! compile time (the fastest of three for small cases), and what its deploy pays under schedule
//! 2 per second of compile; then the execution speed (gas per second of a fuel-metered loop),
//! which the compile prices are calibrated against.
//!
//! Peak memory of one case: run the bench binary on it alone under `/usr/bin/time -v`, e.g.
//! `/usr/bin/time -v target/release/deps/compile-* --bench nested_br_tables_max`.
//! `--unchecked` compiles refused cases too (the review's bomb takes minutes and gigabytes).
//! Figures are reported in CONTRACT_ABI.md and closing notes, never asserted.
//!
//! `--generated[=N]` measures instead what the fuzzing found (the reason for gas schedule 2):
//! the wasm corpus (`actors/fuzz-corpus/wasm/*.wasm`, `wasm-smith/*.bin`) and `N` (default 300)
//! `wasm-smith` modules shaped like contracts (`fuzz_tests::generate_module`, seeded by
//! `ACCUMEN_FUZZ_SEED`), each compiled once on each of `ROUNDS` fresh engines and timed at its
//! fastest (the machine is shared: the minimum is the compile, the rest is other load). It
//! prints every module's compile time against what its deploy pays under each known gas
//! schedule, and how many accepted modules compiled longer than they paid for at
//! `fuzz_tests::BUDGET_GAS_PER_SEC`, and longer than `SAFETY` times that; it exits 1 if any
//! accepted module is over `SAFETY` times its budget under the schedule of new chains (the
//! budget check of the fuzzing, timed, so here and never in `cargo test`). `--csv=FILE` writes
//! the counts validation measured and the times, for fitting the prices.

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
        // Module-level shapes (what the per-module base of gas schedule 2 covers): no code to
        // speak of, each section at its limit, then all of them together.
        ("tiny", Box::new(|| tiny_module(&Sections::default()))),
        (
            "types_max",
            Box::new(|| {
                // The function's own `() -> ()` type is one more.
                tiny_module(&Sections {
                    types: u64::from(gas::MAX_TYPES) - 1,
                    ..Sections::default()
                })
            }),
        ),
        (
            "imports_max",
            Box::new(|| {
                tiny_module(&Sections {
                    imports: u64::from(gas::MAX_IMPORTS),
                    ..Sections::default()
                })
            }),
        ),
        (
            "exports_max",
            Box::new(|| {
                tiny_module(&Sections {
                    exports: u64::from(gas::MAX_EXPORTS) - 2,
                    ..Sections::default()
                })
            }),
        ),
        (
            "globals_max",
            Box::new(|| {
                tiny_module(&Sections {
                    globals: u64::from(gas::MAX_GLOBALS),
                    ..Sections::default()
                })
            }),
        ),
        (
            "elements_max",
            Box::new(|| {
                tiny_module(&Sections {
                    elements: gas::MAX_TABLE_ELEMENTS,
                    ..Sections::default()
                })
            }),
        ),
        (
            "data_segments_max",
            Box::new(|| {
                tiny_module(&Sections {
                    data_segments: u64::from(gas::MAX_DATA_SEGMENTS),
                    ..Sections::default()
                })
            }),
        ),
        (
            "sections_max",
            Box::new(|| {
                tiny_module(&Sections {
                    types: u64::from(gas::MAX_TYPES) - 20,
                    imports: u64::from(gas::MAX_IMPORTS),
                    exports: u64::from(gas::MAX_EXPORTS) - 2,
                    globals: u64::from(gas::MAX_GLOBALS),
                    elements: gas::MAX_TABLE_ELEMENTS,
                    data_segments: u64::from(gas::MAX_DATA_SEGMENTS),
                    ..Sections::default()
                })
            }),
        ),
    ]
}

/// A contract with one empty function and the given number of (distinct) types, imports of
/// the ABI, exports of that function (besides `memory` and `run`), globals, table elements and
/// data segments.
fn tiny_module(s: &Sections) -> String {
    use std::fmt::Write as _;
    let mut m = String::from("(module\n");
    // Distinct types: the binary digits of i as i32/i64 parameters (after a leading f32).
    for i in 0..s.types {
        let mut params = String::from(" f32");
        let mut k = i;
        while k > 0 {
            params.push_str(if k & 1 == 1 { " i64" } else { " i32" });
            k >>= 1;
        }
        let _ = writeln!(m, "(type (func (param{params})))");
    }
    let abi = accumen_actors::vm::ABI_IMPORTS;
    for i in 0..s.imports as usize {
        let (name, params, results) = abi[i % abi.len()];
        let list =
            |v: &[wasmparser::ValType]| v.iter().map(|t| format!(" {t}")).collect::<String>();
        let _ = writeln!(
            m,
            "(import \"accumen\" \"{name}\" (func (param{}) (result{})))",
            list(params),
            list(results)
        );
    }
    m.push_str("(memory (export \"memory\") 64)\n(func $run (export \"run\"))\n");
    for i in 0..s.exports {
        let _ = writeln!(m, "(export \"e{i}\" (func $run))");
    }
    for i in 0..s.globals {
        let _ = writeln!(m, "(global i32 (i32.const {i}))");
    }
    if s.elements > 0 {
        let _ = writeln!(
            m,
            "(table {} funcref) (elem (i32.const 0) func{})",
            s.elements,
            " $run".repeat(s.elements as usize)
        );
    }
    for i in 0..s.data_segments {
        let _ = writeln!(m, "(data (i32.const {}) \"abcd\")", i * 4);
    }
    m.push(')');
    m
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

/// Compiles per module in `--generated` mode (each on a fresh engine; `--rounds=N` changes
/// it); the fastest one counts.
const ROUNDS: usize = 3;
/// The safety factor of `--generated`'s budget check: schedule 2 must pay for every accepted
/// module's compile at `BUDGET_GAS_PER_SEC / SAFETY`, i.e. even a compile `SAFETY` times slower
/// than the calibration machine's stays paid for (a slower or busier validator).
const SAFETY: f64 = 2.0;

/// Section counts of a module validation does not price per item (for fitting the base).
#[derive(Default, Debug, Clone, Copy)]
struct Sections {
    types: u64,
    imports: u64,
    globals: u64,
    exports: u64,
    elements: u64,
    table: u64,
    data_segments: u64,
    data_bytes: u64,
}

fn sections(code: &[u8]) -> Sections {
    use wasmparser::{Parser, Payload};
    let mut s = Sections::default();
    for p in Parser::new(0).parse_all(code).flatten() {
        match p {
            Payload::TypeSection(r) => s.types += u64::from(r.count()),
            Payload::ImportSection(r) => s.imports += u64::from(r.count()),
            Payload::GlobalSection(r) => s.globals += u64::from(r.count()),
            Payload::ExportSection(r) => s.exports += u64::from(r.count()),
            Payload::TableSection(r) => {
                for t in r.into_iter().flatten() {
                    s.table += t.ty.initial;
                }
            }
            Payload::ElementSection(r) => {
                for e in r.into_iter().flatten() {
                    s.elements += u64::from(match &e.items {
                        wasmparser::ElementItems::Functions(f) => f.count(),
                        wasmparser::ElementItems::Expressions(_, x) => x.count(),
                    });
                }
            }
            Payload::DataSection(r) => {
                s.data_segments += u64::from(r.count());
                for d in r.into_iter().flatten() {
                    s.data_bytes += d.data.len() as u64;
                }
            }
            _ => {}
        }
    }
    s
}

/// splitmix64: the random choice bytes `wasm-smith` reads.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// As the fuzz harness's `smith_input`: 64 B to 256 KiB of choices.
    fn smith_input(&mut self) -> Vec<u8> {
        let len = 64usize << (self.next() % 13);
        (0..len).map(|_| self.next() as u8).collect()
    }
}

fn corpus_modules() -> Vec<(String, Vec<u8>)> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz-corpus");
    let mut out = Vec::new();
    for (dir, generated) in [("wasm", false), ("wasm-smith", true)] {
        let Ok(entries) = std::fs::read_dir(format!("{root}/{dir}")) else {
            continue;
        };
        let mut files: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        files.sort();
        for path in files {
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            let name = format!(
                "{dir}/{}",
                path.file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into())
            );
            let code = if generated {
                accumen_actors::fuzz_tests::generate_module(&bytes)
            } else {
                Some(bytes)
            };
            if let Some(code) = code {
                out.push((name, code));
            }
        }
    }
    out
}

/// `--generated`: compile time against what the deploy pays, under every known schedule. False
/// when an accepted module compiled longer than `SAFETY` times what it pays for under the
/// schedule of new chains.
fn generated(n: u64, rounds: usize, csv: Option<&str>) -> bool {
    use accumen_actors::fuzz_tests::{BUDGET_GAS_PER_SEC, generate_module};
    use gas::GasSchedule;

    let seed = std::env::var("ACCUMEN_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x00AC_C0DE_u64);
    let mut rng = Rng(seed);
    let mut modules = corpus_modules();
    let mut tries = 0u64;
    while (modules.len() as u64) < n + 64 && tries < n * 4 {
        tries += 1;
        if let Some(code) = generate_module(&rng.smith_input()) {
            modules.push((format!("generated-{tries}"), code));
        }
    }
    let checker = vm();
    let accepted: Vec<(String, Vec<u8>, gas::CodeStats)> = modules
        .into_iter()
        .filter_map(|(name, code)| {
            let stats = checker.validate(&code).ok()?.code_stats;
            Some((name, code, stats))
        })
        .collect();
    let mut best = vec![f64::MAX; accepted.len()];
    for _ in 0..rounds.max(1) {
        let vm = vm();
        for (i, (name, code, _)) in accepted.iter().enumerate() {
            let start = Instant::now();
            if let Err(e) = vm.precompile(code) {
                panic!("{name}: validated code failed to compile: {e}");
            }
            best[i] = best[i].min(start.elapsed().as_secs_f64());
        }
    }
    let schedules = GasSchedule::KNOWN_VERSIONS
        .iter()
        .filter_map(|v| GasSchedule::from_version(*v).ok())
        .collect::<Vec<_>>();
    let mut csv_out = String::from(
        "name,bytes,seconds,functions,operators,locals,blocks,br_table_targets,local_blocks,\
         local_targets,block_pairs,block_pair_locals,types,imports,globals,exports,elements,\
         table,data_segments,data_bytes",
    );
    for s in &schedules {
        csv_out.push_str(&format!(",paid_v{}", s.version()));
    }
    csv_out.push('\n');
    // (over budget, over budget x SAFETY, worst ratio, its module) per schedule.
    let mut over = vec![(0u64, 0u64, 0f64, String::new()); schedules.len()];
    println!("module | bytes | compile ms | paid per schedule (gas) | compile / budget");
    for (i, (name, code, stats)) in accepted.iter().enumerate() {
        let secs = best[i];
        let mut paid = Vec::new();
        let mut ratios = Vec::new();
        for (j, s) in schedules.iter().enumerate() {
            let p = gas::deploy_intrinsic(code.len(), stats.weight(*s));
            let ratio = secs / (p as f64 / BUDGET_GAS_PER_SEC);
            let o = &mut over[j];
            o.0 += u64::from(ratio > 1.0);
            o.1 += u64::from(ratio > SAFETY);
            if ratio > o.2 {
                o.2 = ratio;
                o.3 = name.clone();
            }
            paid.push(p);
            ratios.push(ratio);
        }
        if !name.starts_with("generated-") || ratios.iter().any(|r| *r > 1.0) {
            println!(
                "{name} | {} | {:.3} | {paid:?} | {}",
                code.len(),
                secs * 1e3,
                ratios
                    .iter()
                    .map(|r| format!("{r:.2}"))
                    .collect::<Vec<_>>()
                    .join(" / ")
            );
        }
        let x = sections(code);
        let st = stats;
        csv_out.push_str(&format!(
            "{name},{},{secs:.6},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            code.len(),
            st.functions,
            st.operators,
            st.locals,
            st.blocks,
            st.br_table_targets,
            st.local_blocks,
            st.local_targets,
            st.block_pairs,
            st.block_pair_locals,
            x.types,
            x.imports,
            x.globals,
            x.exports,
            x.elements,
            x.table,
            x.data_segments,
            x.data_bytes,
        ));
        for p in &paid {
            csv_out.push_str(&format!(",{p}"));
        }
        csv_out.push('\n');
    }
    let total: f64 = best.iter().sum();
    println!(
        "{} modules accepted (corpus and generated, seed {seed}), compile total {:.2} s, \
         slowest {:.2} ms",
        accepted.len(),
        total,
        best.iter().copied().fold(0.0, f64::max) * 1e3
    );
    for (s, (o, o_safe, worst, worst_name)) in schedules.iter().zip(&over) {
        println!(
            "schedule {}: {o} of {} over the budget of {} Mgas/s, {o_safe} over {SAFETY}x it; \
             worst compile/budget {worst:.2} ({worst_name})",
            s.version(),
            accepted.len(),
            BUDGET_GAS_PER_SEC / 1e6
        );
    }
    if let Some(path) = csv
        && let Err(e) = std::fs::write(path, csv_out)
    {
        eprintln!("{path}: {e}");
    }
    schedules
        .iter()
        .zip(&over)
        .all(|(s, o)| *s != GasSchedule::CURRENT || o.1 == 0)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| {
        args.iter()
            .find_map(|a| a.strip_prefix(flag).map(|v| v.trim_start_matches('=')))
    };
    if let Some(n) = value("--generated") {
        let rounds = value("--rounds").and_then(|r| r.parse().ok());
        if !generated(
            n.parse().unwrap_or(300),
            rounds.unwrap_or(ROUNDS),
            value("--csv"),
        ) {
            eprintln!(
                "FAIL: an accepted module compiled longer than {SAFETY}x what its deploy pays \
                 under gas schedule {}",
                gas::GAS_SCHEDULE_VERSION
            );
            std::process::exit(1);
        }
        return;
    }
    let unchecked = args.iter().any(|a| a == "--unchecked");
    let filter: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let selected =
        |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));

    println!(
        "case | code bytes | validation | weight v1 | weight v2 (gas) | compile s | \
         v2 deploy gas per compile s"
    );
    for (name, make) in cases() {
        if !selected(name) {
            continue;
        }
        let text = make();
        let code = wat::parse_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (verdict, stats) = match vm().validate(&code) {
            Ok(info) => ("accepted".to_string(), Some(info.code_stats)),
            Err(e) => (format!("refused: {e}"), None),
        };
        let (w1, w2) = stats.map_or((0, 0), |s| {
            (
                s.weight(gas::GasSchedule::V1),
                s.weight(gas::GasSchedule::V2),
            )
        });
        if stats.is_none() && !unchecked {
            println!("{name} | {} | {verdict} | - | - | - | -", code.len());
            continue;
        }
        // Small cases: the fastest of three compiles, each on a fresh engine (the machine is
        // shared); a bomb compiles once.
        let rounds = if w2 < 50_000_000 { 3 } else { 1 };
        let mut secs = f64::MAX;
        let mut compiled = Ok(());
        for _ in 0..rounds {
            let vm = vm();
            let start = Instant::now();
            compiled = if stats.is_none() {
                // Bypass validation: what the engine alone would do with it.
                wasmtime::Module::new(&wasmtime::Engine::default(), &code)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            } else {
                vm.precompile(&code).map(|_| ()).map_err(|e| e.to_string())
            };
            secs = secs.min(start.elapsed().as_secs_f64());
        }
        if let Err(e) = compiled {
            println!(
                "{name} | {} | {verdict} | {w1} | {w2} | compile failed: {e} | -",
                code.len()
            );
            continue;
        }
        println!(
            "{name} | {} | {verdict} | {w1} | {w2} | {secs:.4} | {:.0}",
            code.len(),
            gas::deploy_intrinsic(code.len(), w2) as f64 / secs
        );
    }
    if filter.is_empty() || selected("execution") {
        println!(
            "execution: {:.0} gas per second (loop.wat, 50M gas)",
            execution_speed()
        );
    }
}
