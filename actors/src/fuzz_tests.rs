//! Fuzz targets for every decoder that input from outside reaches: transactions (canonical
//! binary and the API's JSON body), blocks (from peers and `db` tools), contract validation and
//! compilation (arbitrary bytes, mutated valid modules and `wasm-smith`-generated modules shaped
//! like contracts at our limits), the L0 answers the JSON-RPC client parses and the requests the
//! devnet dispatcher parses.
//!
//! Two drivers share the `check_*` functions and [`WasmChecker`] below, so both check the same
//! invariants: the seeded mutation harnesses of the `tests` module (stable toolchain, no coverage
//! guidance, run by `cargo test`) and the libFuzzer targets of the `fuzz/` crate (coverage-guided,
//! `make fuzz`), which reach this module through the `fuzzing` feature.
//!
//! Invariant checked: no input panics; anything accepted survives the next step (verify,
//! re-encode, compile). A `check_*` function panics exactly when it found a bug; that is how both
//! drivers see a finding. Each seeded harness replays its corpus
//! (`actors/fuzz-corpus/<target>/`) and then runs `ACCUMEN_FUZZ_CASES` mutated cases (default
//! small, for CI) from a seeded generator (`ACCUMEN_FUZZ_SEED`, default fixed so CI is
//! reproducible). A panicking input is written to `$CARGO_TARGET_DIR/fuzz-crashes/` (or the temp
//! dir) before the test fails, so it can be added to the corpus. Compile times of accepted
//! modules are measured against the compile budget ([`BUDGET_GAS_PER_SEC`]) and printed (run
//! with `--nocapture`), never asserted: speed is a figure for the report, and the slowest
//! modules are saved to `$CARGO_TARGET_DIR/fuzz-found/` for the corpus.

// A fuzz harness states its invariants as panics: an `unwrap` on a step that must succeed for
// accepted input is the check itself, not error handling.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};

use crate::bridge::AccUrl;
use crate::bridge::client::classify_submissions;
use crate::bridge::codec::{L0Key, WriteDataRequest, sign_write_data};
use crate::bridge::json::{
    AccountRecord, ChainEntryRecord, Envelope, MessageRecord, NetworkStatus, RecordRange,
    Submission,
};
use crate::types::{Block, SignedTx};
use crate::vm::{ABI_IMPORTS, ModuleInfo, Vm, VmConfig, gas};

#[cfg(test)]
#[path = "../../tests/fixtures/compile_bombs.rs"]
mod compile_bombs;

// ---------------------------------------------------------------------------------------------
// Targets (shared with `fuzz/`).

/// Canonical binary transactions: what decodes re-encodes to the same bytes, and its checks do
/// not panic.
pub fn check_tx_binary(b: &[u8]) {
    if let Ok(tx) = SignedTx::decode(b) {
        assert_eq!(
            tx.encode(),
            b,
            "a decoded transaction re-encodes differently"
        );
        let _ = tx.tx.check_shape();
        let _ = tx.verify();
    }
}

/// The API's JSON transaction body: what parses encodes, and the encoding decodes.
pub fn check_tx_json(b: &[u8]) {
    if let Ok(tx) = serde_json::from_slice::<SignedTx>(b) {
        let _ = tx.tx.check_shape();
        let _ = SignedTx::decode(&tx.encode());
        let _ = tx.verify();
    }
}

/// Binary blocks: canonical, and verifying one does not panic.
pub fn check_block_binary(b: &[u8]) {
    if let Ok(block) = Block::decode(b) {
        assert_eq!(block.encode(), b, "a decoded block re-encodes differently");
        let _ = block.verify();
    }
}

/// Every shape the L0 client parses out of an answer's `result`, and the submit classification
/// against `envelope` (the one the client sent).
pub fn check_l0_answer(envelope: &Envelope, b: &[u8]) {
    if let Ok(subs) = serde_json::from_slice::<Vec<Submission>>(b) {
        let _ = classify_submissions(envelope, subs);
    }
    let _ = serde_json::from_slice::<MessageRecord>(b);
    let _ = serde_json::from_slice::<AccountRecord>(b);
    let _ = serde_json::from_slice::<ChainEntryRecord>(b);
    let _ = serde_json::from_slice::<RecordRange<ChainEntryRecord>>(b);
    let _ = serde_json::from_slice::<NetworkStatus>(b);
}

const PAGE: &str = "acc://accumen.acme/book/1";
const DATA: &str = "acc://accumen.acme/anchors";

/// The envelope of a signed anchor write, as the client sent it: what `check_l0_answer`
/// classifies submit answers against.
pub fn anchor_envelope() -> Envelope {
    let key = L0Key::from_seed([9; 32]);
    let request = WriteDataRequest {
        principal: AccUrl::parse(DATA).expect("data account URL"),
        signer: AccUrl::parse(PAGE).expect("key page URL"),
        signer_version: 1,
        timestamp: 1,
        memo: String::new(),
        metadata: Vec::new(),
        parts: vec![vec![1; 4]],
    };
    sign_write_data(&key, &request)
        .expect("a fixed request signs")
        .envelope()
}

/// The slowest compile price the calibration measured (CONTRACT_ABI.md, "Compile cost": the
/// weights price compile at 140M to 400M gas per second of compile on the loaded 2-core
/// machine). A module whose compile took longer than `paid / BUDGET_GAS_PER_SEC`, where `paid`
/// is its deploy's intrinsic charge (`gas::deploy_intrinsic`: base, code bytes and compile
/// weight under the chain's gas schedule), got more compile than its deploy paid for: that is
/// what "within the budget" means here. Compile times of a debug build (`cargo test`) are
/// figures only; the budget is checked in the release build by
/// `cargo bench -p accumen-actors --bench compile -- --generated`.
pub const BUDGET_GAS_PER_SEC: f64 = 140e6;

/// What the accepted modules cost to compile (wall clock: reported, never asserted).
#[derive(Debug, Default, Clone)]
pub struct CompileStats {
    pub checked: u64,
    pub accepted: u64,
    pub max_compile: Duration,
    /// The weight of the slowest module, and its code.
    pub slowest_weight: u64,
    pub slowest: Vec<u8>,
    pub max_weight: u64,
    /// Most compile time per budgeted time (`took / (weight / BUDGET_GAS_PER_SEC)`), and the
    /// code that had it; above 1.0 a module compiled longer than it paid for.
    pub worst_ratio: f64,
    pub worst: Vec<u8>,
    /// Modules over the budget under the engine's schedule (`worst_ratio` too).
    pub over_budget: u64,
    /// Modules over the budget under each known schedule, by version (the same compiles,
    /// priced by each: what schedule 2 changed).
    pub over_budget_by_schedule: std::collections::BTreeMap<u32, u64>,
    /// Refusals by reason (the start of the error text), to see what the generator hits.
    pub refusals: std::collections::BTreeMap<String, u64>,
}

impl std::fmt::Display for CompileStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} checked, {} accepted; max compile {:?} (weight {}, {} bytes); max weight {}; \
             worst compile/budget {:.2} ({} bytes); {} over the budget of {} Mgas/s (by gas \
             schedule: {:?}); refusals {:?}",
            self.checked,
            self.accepted,
            self.max_compile,
            self.slowest_weight,
            self.slowest.len(),
            self.max_weight,
            self.worst_ratio,
            self.worst.len(),
            self.over_budget,
            BUDGET_GAS_PER_SEC / 1e6,
            self.over_budget_by_schedule,
            self.refusals,
        )
    }
}

/// Contract validation and compilation, the deploy path (`Vm::validate`, then `Vm::precompile`
/// with the node's engine configuration), with the compile measured.
#[derive(Debug)]
pub struct WasmChecker {
    vm: Vm,
    pub stats: CompileStats,
}

impl Default for WasmChecker {
    fn default() -> Self {
        Self::new()
    }
}

impl WasmChecker {
    /// An engine with the node's defaults (the same configuration a default chain runs).
    pub fn new() -> Self {
        WasmChecker {
            vm: Vm::new(VmConfig::default()).expect("the default VM config is valid"),
            stats: CompileStats::default(),
        }
    }

    /// Validates `code`; if accepted, it must compile (a failure is a validator gap).
    pub fn check(&mut self, code: &[u8]) -> Option<ModuleInfo> {
        self.stats.checked += 1;
        let info = match self.vm.validate(code) {
            Ok(info) => info,
            Err(e) => {
                let text = e.to_string();
                // The kind of refusal, without the module's own bytes (names) or offsets.
                let reason: String = text
                    .split(" (at offset")
                    .next()
                    .unwrap_or_default()
                    .chars()
                    .take(if text.starts_with("invalid WebAssembly") {
                        60
                    } else {
                        30
                    })
                    .collect();
                *self.stats.refusals.entry(reason).or_default() += 1;
                return None;
            }
        };
        let t = Instant::now();
        if let Err(e) = self.vm.precompile(code) {
            panic!("validated code failed to compile: {e}");
        }
        let took = t.elapsed();
        let s = &mut self.stats;
        s.accepted += 1;
        s.max_weight = s.max_weight.max(info.compile_weight);
        if took > s.max_compile {
            s.max_compile = took;
            s.slowest_weight = info.compile_weight;
            s.slowest = code.to_vec();
        }
        let ratio_of = |weight| {
            let paid = gas::deploy_intrinsic(code.len(), weight);
            took.as_secs_f64() / (paid as f64 / BUDGET_GAS_PER_SEC).max(f64::MIN_POSITIVE)
        };
        for &version in gas::GasSchedule::KNOWN_VERSIONS {
            if let Ok(schedule) = gas::GasSchedule::from_version(version) {
                let over = ratio_of(info.code_stats.weight(schedule)) > 1.0;
                *s.over_budget_by_schedule.entry(version).or_default() += u64::from(over);
            }
        }
        let ratio = ratio_of(info.compile_weight);
        if ratio > 1.0 {
            s.over_budget += 1;
        }
        if ratio > s.worst_ratio {
            s.worst_ratio = ratio;
            s.worst = code.to_vec();
        }
        Some(info)
    }

    /// A module generated by `wasm-smith` from `raw` ([`generate_module`]), checked.
    pub fn check_generated(&mut self, raw: &[u8]) -> Option<ModuleInfo> {
        let code = generate_module(raw)?;
        self.check(&code)
    }
}

/// A WAT module that imports every ABI v1 host function with its type: `wasm-smith`'s
/// `available_imports`, so generated code calls the host like a contract does.
fn abi_imports_wat() -> String {
    let mut wat = String::from("(module");
    for (name, params, results) in ABI_IMPORTS {
        let list =
            |v: &[wasmparser::ValType]| v.iter().map(|t| format!(" {t}")).collect::<String>();
        wat.push_str(&format!(
            " (import \"accumen\" \"{name}\" (func (param{}) (result{})))",
            list(params),
            list(results)
        ));
    }
    wat.push(')');
    wat
}

/// The exports of a contract: `memory` (of `pages` pages) and `entries` entry points
/// `() -> ()`, `init` among them when `init` is set.
fn contract_exports_wat(pages: u32, entries: u32, init: bool) -> String {
    let mut wat = format!("(module (memory (export \"memory\") {pages})");
    if init {
        wat.push_str(" (func (export \"init\"))");
    }
    for i in 0..entries {
        wat.push_str(&format!(" (func (export \"entry{i}\"))"));
    }
    wat.push(')');
    wat
}

/// A `wasm-smith` configuration drawn from `u`. Most cases are contract-shaped and near the
/// deploy limits (`vm::gas`): ABI imports, an exported memory around `wasm.max_memory_pages`,
/// `() -> ()` entry points, deep nesting (up to past `MAX_NESTING_DEPTH`, and `br_table`s as wide
/// as the nesting), long bodies, many globals, exports, element and data segments, one or two
/// tables with up to past `MAX_TABLE_ELEMENTS` elements, only the proposals the engine enables;
/// some allow invalid function bodies or a start function, and some take `wasm-smith`'s own
/// arbitrary configuration (every proposal: mostly refused, which tests the refusals).
fn smith_config(u: &mut Unstructured<'_>) -> arbitrary::Result<wasm_smith::Config> {
    let profile = u.int_in_range(0u8..=11)?;
    if profile == 0 {
        return wasm_smith::Config::arbitrary(u);
    }
    let mut c = wasm_smith::Config {
        // The engine's proposals (`vm::engine::engine_config` and wasmtime's build features):
        // generating the refused ones here would only be refused.
        threads_enabled: false,
        shared_everything_threads_enabled: false,
        relaxed_simd_enabled: false,
        memory64_enabled: false,
        gc_enabled: false,
        exceptions_enabled: false,
        custom_page_sizes_enabled: false,
        custom_descriptors_enabled: false,
        wide_arithmetic_enabled: false,
        ..wasm_smith::Config::default()
    };
    c.available_imports = Some(wat::parse_str(abi_imports_wat()).expect("ABI imports WAT"));
    // Reference types bring `externref`, which this engine refuses (wasmtime is built without
    // `gc`): mostly off, so most modules get past the engine's validation to our limits.
    c.reference_types_enabled = u.ratio(1u8, 4)?;
    c.max_memories = 1;
    if u.ratio(7u8, 8)? {
        let pages = u.int_in_range(0..=70)?;
        let entries = u.int_in_range(0..=4)?;
        let init = u.arbitrary()?;
        c.exports =
            Some(wat::parse_str(contract_exports_wat(pages, entries, init)).expect("exports WAT"));
        // The exported memory is the module's memory; another one would only be refused.
        c.max_memories = 0;
    }
    c.allow_invalid_funcs = profile == 1;
    c.allow_start_export = profile == 2;
    c.disallow_traps = u.arbitrary()?;
    c.max_memory32_bytes = 80 << 16;
    c.max_tables = if u.ratio(1u8, 8)? { 2 } else { 1 };
    c.max_table_elements = u.int_in_range(0..=12_000)?;
    c.max_elements = u.int_in_range(0..=2_000)?;
    c.max_element_segments = u.int_in_range(0..=120)?;
    c.max_data_segments = u.int_in_range(0..=100)?;
    c.max_nesting_depth = u.int_in_range(1..=300)?;
    c.max_instructions = u.int_in_range(1..=30_000)?;
    c.max_funcs = u.int_in_range(0..=64)?;
    c.max_globals = u.int_in_range(0..=1_100)?;
    c.max_exports = u.int_in_range(0..=1_100)?;
    c.max_types = u.int_in_range(0..=200)?;
    c.max_type_size = u.int_in_range(1..=2_000)?;
    // Padded LEB128s: the same module in more bytes, against the size limits' arithmetic.
    c.min_uleb_size = u.int_in_range(1..=5)?;
    Ok(c)
}

/// A module generated by `wasm-smith` from `raw` (a configuration first, then the module), or
/// `None` when `raw` runs out before a module is complete.
pub fn generate_module(raw: &[u8]) -> Option<Vec<u8>> {
    let mut u = Unstructured::new(raw);
    let config = smith_config(&mut u).ok()?;
    let module = wasm_smith::Module::new(config, &mut u).ok()?;
    Some(module.to_bytes())
}

#[cfg(test)]
mod tests {
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::path::PathBuf;

    use serde_json::{Value, json};

    use super::*;
    use crate::bridge::devnet::{Devnet, DevnetConfig};
    use crate::testkit::Signer;
    use crate::types::{Hash, Keypair};

    /// Where inputs worth keeping go (`$CARGO_TARGET_DIR/<what>`, or the temp dir).
    fn found_dir(what: &str) -> PathBuf {
        std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir)
            .join(what)
    }

    /// xorshift64*: tiny, seedable, good enough to pick mutations.
    struct Rng(u64);

    impl Rng {
        fn new(seed: u64) -> Rng {
            Rng(seed.max(1))
        }
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.0 = x;
            x.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            if n == 0 {
                0
            } else {
                (self.next() % n as u64) as usize
            }
        }
        fn chance(&mut self, one_in: usize) -> bool {
            self.below(one_in) == 0
        }
    }

    fn env_u64(name: &str, default: u64) -> u64 {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }

    /// Mutated cases per harness: small by default so the CI run stays short.
    fn cases(default: u64) -> u64 {
        env_u64("ACCUMEN_FUZZ_CASES", default)
    }

    fn seed(target: &str) -> u64 {
        let base = env_u64("ACCUMEN_FUZZ_SEED", 0x00AC_C0DE);
        target
            .bytes()
            .fold(base, |h, b| h.rotate_left(5) ^ u64::from(b))
    }

    const INTERESTING: &[u8] = &[0, 1, 0x7f, 0x80, 0xff, 0xfe, 0x40, 0x20];

    /// One to four byte-level mutations of `input`, sometimes spliced with `other`.
    fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
        let mut out = input.to_vec();
        for _ in 0..1 + rng.below(4) {
            let len = out.len();
            match rng.below(9) {
                0 if len > 0 => {
                    let i = rng.below(len);
                    out[i] ^= 1 << rng.below(8);
                }
                1 if len > 0 => {
                    let i = rng.below(len);
                    out[i] = INTERESTING[rng.below(INTERESTING.len())];
                }
                2 if len > 0 => {
                    let i = rng.below(len);
                    out[i] = rng.next() as u8;
                }
                3 => {
                    let i = rng.below(len + 1);
                    let n = 1 + rng.below(16);
                    let fill: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                    out.splice(i..i, fill);
                }
                4 if len > 0 => {
                    let i = rng.below(len);
                    let n = 1 + rng.below((len - i).min(64));
                    out.drain(i..i + n);
                }
                5 => out.truncate(rng.below(len + 1)),
                6 if len > 0 => {
                    // Duplicate a chunk: repeated sections, long vectors.
                    let i = rng.below(len);
                    let n = 1 + rng.below((len - i).min(256));
                    let chunk = out[i..i + n].to_vec();
                    let at = rng.below(len + 1);
                    out.splice(at..at, chunk);
                }
                7 if !other.is_empty() => {
                    let cut = rng.below(out.len() + 1);
                    let from = rng.below(other.len());
                    out.truncate(cut);
                    out.extend_from_slice(&other[from..]);
                }
                _ if len >= 4 => {
                    // LEB128-ish length fields: make one huge.
                    let i = rng.below(len - 3);
                    out[i..i + 4].copy_from_slice(&[0xff, 0xff, 0xff, 0x0f]);
                }
                _ => out.push(rng.next() as u8),
            }
        }
        out
    }

    fn random_value(rng: &mut Rng, depth: u32) -> Value {
        match rng.below(if depth > 3 { 8 } else { 10 }) {
            0 => Value::Null,
            1 => Value::Bool(rng.chance(2)),
            2 => json!(rng.next()),
            3 => json!(-(rng.below(1 << 20) as i64)),
            4 => json!(u64::MAX),
            5 => json!(1e308),
            6 => json!("x".repeat(rng.below(300))),
            7 => json!(format!("acc://{}.acme/{}", rng.below(9), rng.next())),
            8 => Value::Array(
                (0..rng.below(4))
                    .map(|_| random_value(rng, depth + 1))
                    .collect(),
            ),
            _ => {
                let mut m = serde_json::Map::new();
                for _ in 0..rng.below(4) {
                    m.insert(format!("k{}", rng.below(5)), random_value(rng, depth + 1));
                }
                Value::Object(m)
            }
        }
    }

    /// A structural mutation: one node of the tree replaced, removed or nested deeper.
    fn mutate_value(rng: &mut Rng, v: &mut Value, depth: u32) {
        let stop = rng.chance(3) || depth > 8;
        match v {
            Value::Object(m) if !m.is_empty() && !stop => {
                let keys: Vec<String> = m.keys().cloned().collect();
                let k = &keys[rng.below(keys.len())];
                match rng.below(5) {
                    0 => {
                        m.remove(k);
                    }
                    1 => {
                        m.insert(format!("{k}X"), random_value(rng, depth));
                    }
                    _ => {
                        if let Some(child) = m.get_mut(k) {
                            mutate_value(rng, child, depth + 1);
                        }
                    }
                }
            }
            Value::Array(a) if !a.is_empty() && !stop => {
                let i = rng.below(a.len());
                match rng.below(5) {
                    0 => {
                        a.remove(i);
                    }
                    1 => {
                        let dup = a[i].clone();
                        a.insert(i, dup);
                    }
                    _ => mutate_value(rng, &mut a[i], depth + 1),
                }
            }
            _ => {
                *v = match rng.below(4) {
                    0 => Value::Array(vec![v.take()]),
                    _ => random_value(rng, depth),
                }
            }
        }
    }

    /// A JSON input from a seed: structural, textual, or both.
    fn mutate_json(rng: &mut Rng, seed: &[u8], other: &[u8]) -> Vec<u8> {
        match (rng.below(3), serde_json::from_slice::<Value>(seed)) {
            (0 | 1, Ok(mut v)) => {
                for _ in 0..1 + rng.below(3) {
                    mutate_value(rng, &mut v, 0);
                }
                let text = v.to_string().into_bytes();
                if rng.chance(4) {
                    mutate(rng, &text, other)
                } else {
                    text
                }
            }
            _ => mutate(rng, seed, other),
        }
    }

    fn corpus_dir(target: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz-corpus")
            .join(target)
    }

    /// The corpus files of `target`, sorted by name (missing dir: none).
    fn corpus(target: &str) -> Vec<Vec<u8>> {
        let Ok(dir) = std::fs::read_dir(corpus_dir(target)) else {
            return Vec::new();
        };
        let mut paths: Vec<PathBuf> = dir.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        paths
            .into_iter()
            .filter_map(|p| std::fs::read(p).ok())
            .collect()
    }

    /// Runs `check` on `input`; on a panic saves the input and fails with where it went.
    fn run_one(target: &str, case: u64, input: &[u8], check: &mut dyn FnMut(&[u8])) {
        if catch_unwind(AssertUnwindSafe(|| check(input))).is_err() {
            let dir = found_dir("fuzz-crashes");
            let _ = std::fs::create_dir_all(&dir);
            let path = dir.join(format!("{target}-{case}"));
            let _ = std::fs::write(&path, input);
            panic!(
                "fuzz target {target} panicked on case {case}; input saved to {}",
                path.display()
            );
        }
    }

    /// Corpus replay, then `n` mutated cases drawn from seeds + corpus.
    fn fuzz(
        target: &str,
        seeds: Vec<Vec<u8>>,
        n: u64,
        json_input: bool,
        check: &mut dyn FnMut(&[u8]),
    ) {
        let mut pool = seeds;
        pool.extend(corpus(target));
        assert!(!pool.is_empty(), "{target}: no seeds");
        for (i, input) in pool.iter().enumerate() {
            run_one(target, i as u64, input, check);
        }
        let mut rng = Rng::new(seed(target));
        for case in 0..n {
            let a = &pool[rng.below(pool.len())];
            let b = &pool[rng.below(pool.len())];
            let input = if json_input {
                mutate_json(&mut rng, a, b)
            } else {
                mutate(&mut rng, a, b)
            };
            run_one(target, case, &input, check);
        }
    }

    fn fixture_wasm() -> Vec<Vec<u8>> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
        let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "wat"))
            .collect();
        names.sort();
        names.iter().map(|p| wat::parse_file(p).unwrap()).collect()
    }

    fn sample_txs() -> Vec<SignedTx> {
        let mut s = Signer::new(3);
        let code = wat::parse_str(include_str!("../../tests/fixtures/counter.wat")).unwrap();
        let (deploy, addr) = s.deploy(code);
        let call = s.call(addr, "increment", b"\x01\x02\x03");
        vec![deploy, call]
    }

    fn tx_binary_seeds() -> Vec<Vec<u8>> {
        sample_txs().iter().map(SignedTx::encode).collect()
    }

    fn tx_json_seeds() -> Vec<Vec<u8>> {
        sample_txs()
            .iter()
            .map(|t| serde_json::to_vec(t).unwrap())
            .collect()
    }

    fn block_seeds() -> Vec<Vec<u8>> {
        let key = Keypair::from_seed([5; 32]);
        let genesis = Block::genesis("fuzz", &Hash::ZERO);
        let empty = Block::seal(genesis.header.clone(), Vec::new(), &key);
        let full = Block::seal(genesis.header.clone(), sample_txs(), &key);
        vec![genesis.encode(), empty.encode(), full.encode()]
    }

    fn wasm_seeds() -> Vec<Vec<u8>> {
        let mut seeds = fixture_wasm();
        // A bare header, so pure garbage after a valid magic is covered too.
        seeds.push(b"\0asm\x01\0\0\0".to_vec());
        // The known superlinear compile shapes, small enough to pass: their mutations probe the
        // edge of the compile limits.
        for wat in [
            compile_bombs::nested_br_table(20, 20, 10),
            compile_bombs::nested_br_tables(10, 4, 10, 10),
            compile_bombs::many_blocks(200, 20),
            compile_bombs::many_locals(200, 50),
            compile_bombs::many_functions(50, 20),
            compile_bombs::many_block_functions(10, 20, 10),
        ] {
            seeds.push(wat::parse_str(wat).unwrap());
        }
        seeds
    }

    /// Raw `wasm-smith` inputs whose modules the node accepts (found with the fixed seed).
    fn wasm_smith_seeds() -> Vec<Vec<u8>> {
        let mut w = WasmChecker::new();
        let mut rng = Rng::new(seed("wasm-smith-seeds"));
        let mut out = Vec::new();
        for _ in 0..500 {
            let raw = smith_input(&mut rng);
            if raw.len() <= 32 * 1024 && w.check_generated(&raw).is_some() {
                out.push(raw);
                if out.len() == 4 {
                    break;
                }
            }
        }
        out
    }

    /// Writes the seeds the harnesses generate into the corpus as `seed-*` files, so the
    /// libFuzzer targets (`make fuzz`), which only read corpus directories, start from valid
    /// inputs too. Run after a format change:
    /// `cargo test -p accumen-actors write_seed_corpus -- --ignored`.
    #[test]
    #[ignore = "writes into the source tree"]
    fn write_seed_corpus() {
        let sets: [(&str, &str, Vec<Vec<u8>>); 6] = [
            ("tx-binary", "bin", tx_binary_seeds()),
            ("tx-json", "json", tx_json_seeds()),
            ("block-binary", "bin", block_seeds()),
            ("wasm", "wasm", wasm_seeds()),
            ("l0-answer", "json", l0_answers()),
            ("wasm-smith", "bin", wasm_smith_seeds()),
        ];
        for (target, ext, seeds) in sets {
            let dir = corpus_dir(target);
            std::fs::create_dir_all(&dir).unwrap();
            for (i, seed) in seeds.iter().enumerate() {
                std::fs::write(dir.join(format!("seed-{i:02}.{ext}")), seed).unwrap();
            }
        }
    }

    #[test]
    fn fuzz_tx_binary() {
        fuzz(
            "tx-binary",
            tx_binary_seeds(),
            cases(2_000),
            false,
            &mut check_tx_binary,
        );
    }

    #[test]
    fn fuzz_tx_json() {
        fuzz(
            "tx-json",
            tx_json_seeds(),
            cases(2_000),
            true,
            &mut check_tx_json,
        );
    }

    #[test]
    fn fuzz_block_binary() {
        fuzz(
            "block-binary",
            block_seeds(),
            cases(1_000),
            false,
            &mut check_block_binary,
        );
    }

    #[test]
    fn fuzz_contract_validation_and_compile() {
        let seeds = wasm_seeds();
        let mut w = WasmChecker::new();
        fuzz("wasm", seeds, cases(1_000), false, &mut |b| {
            w.check(b);
        });
        println!("wasm: {}", w.stats);
        save_found("wasm", &w.stats);
    }

    fn devnet() -> Devnet {
        let config = DevnetConfig {
            key_page: AccUrl::parse(PAGE).unwrap(),
            public_keys: vec![L0Key::from_seed([9; 32]).public()],
            data_account: AccUrl::parse(DATA).unwrap(),
            credits: 1_000_000,
        };
        Devnet::open(&config, None).unwrap()
    }

    /// Valid JSON-RPC requests of every method the devnet serves.
    fn devnet_requests() -> Vec<Vec<u8>> {
        let key = L0Key::from_seed([9; 32]);
        let w = sign_write_data(
            &key,
            &WriteDataRequest {
                principal: AccUrl::parse(DATA).unwrap(),
                signer: AccUrl::parse(PAGE).unwrap(),
                signer_version: 1,
                timestamp: 1,
                memo: "accumen anchor".into(),
                metadata: Vec::new(),
                parts: vec![vec![1; 4], vec![2; 4]],
            },
        )
        .unwrap();
        let id = w.transaction.id().to_string();
        let rpc = |method: &str, params: Value| {
            json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params})
                .to_string()
                .into_bytes()
        };
        vec![
            rpc("submit", json!({"envelope": w.envelope()})),
            rpc("query", json!({"scope": id})),
            rpc("query", json!({"scope": PAGE})),
            rpc("query", json!({"scope": DATA})),
            rpc(
                "query",
                json!({"scope": DATA, "query": {"queryType": "data", "range": {"start": 0, "count": 10}}}),
            ),
            rpc(
                "query",
                json!({"scope": DATA, "query": {"queryType": "data", "entry": Hash::ZERO.to_hex()}}),
            ),
            rpc("network-status", json!({})),
        ]
    }

    #[test]
    fn fuzz_devnet_requests() {
        let d = devnet();
        let mut answered = 0u32;
        fuzz(
            "devnet-request",
            devnet_requests(),
            cases(2_000),
            true,
            &mut |b| {
                if let Some(answer) = d.handle(b) {
                    // Every answer is JSON-RPC: a result or an error, never garbage.
                    let v: Value = serde_json::from_slice(&answer).unwrap();
                    assert!(v.get("result").is_some() || v.get("error").is_some());
                    answered += 1;
                }
                if answered.is_multiple_of(200) {
                    let _ = d.block();
                }
            },
        );
        // The operator levers take JSON bodies too.
        let levers = [
            ("POST", "/faults"),
            ("POST", "/page/credits"),
            ("POST", "/page/keys"),
            ("POST", "/data-accounts"),
            ("GET", "/state"),
        ];
        let seeds = vec![
            br#"{"credits": 5}"#.to_vec(),
            br#"{"hideMs": 10, "drop": 0.5}"#.to_vec(),
            br#"{"url": "acc://x.acme/data"}"#.to_vec(),
            br#"{"keys": ["00"]}"#.to_vec(),
        ];
        let mut i = 0usize;
        fuzz("devnet-control", seeds, cases(500), true, &mut |b| {
            let (method, path) = levers[i % levers.len()];
            i += 1;
            let (status, _) = d.control(method, path, b);
            assert!((200..600).contains(&status));
        });
    }

    /// L0 answers as the client sees them: the `result` of each devnet answer.
    fn l0_answers() -> Vec<Vec<u8>> {
        let d = devnet();
        let mut out = Vec::new();
        for req in devnet_requests() {
            if let Some(answer) = d.handle(&req) {
                let v: Value = serde_json::from_slice(&answer).unwrap();
                if let Some(r) = v.get("result") {
                    out.push(r.to_string().into_bytes());
                }
            }
            let _ = d.block();
        }
        // After the block the records carry their final status.
        for req in devnet_requests().into_iter().skip(1) {
            if let Some(answer) = d.handle(&req) {
                let v: Value = serde_json::from_slice(&answer).unwrap();
                if let Some(r) = v.get("result") {
                    out.push(r.to_string().into_bytes());
                }
            }
        }
        out
    }

    #[test]
    fn fuzz_l0_answers() {
        let envelope = anchor_envelope();
        fuzz("l0-answer", l0_answers(), cases(3_000), true, &mut |b| {
            check_l0_answer(&envelope, b)
        });
    }

    /// Writes the slowest module and the one furthest over its budget to
    /// `$CARGO_TARGET_DIR/fuzz-found/` (candidates for the corpus).
    fn save_found(target: &str, s: &CompileStats) {
        let dir = found_dir("fuzz-found");
        if std::fs::create_dir_all(&dir).is_err() {
            return;
        }
        for (what, code) in [("slowest", &s.slowest), ("worst-ratio", &s.worst)] {
            if !code.is_empty() {
                let _ = std::fs::write(dir.join(format!("{target}-{what}.wasm")), code);
            }
        }
    }

    /// A random input for `generate_module`: `wasm-smith` reads its choices from these bytes, so
    /// their length bounds the module (up to 256 KiB of choices: bodies of thousands of
    /// instructions). Random bytes are rarely zero, which `wasm-smith` reads as "stop here", so
    /// bodies run to the configured maximum.
    fn smith_input(rng: &mut Rng) -> Vec<u8> {
        let len = 64usize << rng.below(13);
        (0..len).map(|_| rng.next() as u8).collect()
    }

    #[test]
    fn fuzz_generated_modules() {
        let mut w = WasmChecker::new();
        let mut rng = Rng::new(seed("wasm-smith"));
        let (mut generated, mut mutated) = (0u64, 0u64);
        // The corpus of the `wasm-smith` libFuzzer target: raw choice bytes.
        for (i, raw) in corpus("wasm-smith").iter().enumerate() {
            run_one("wasm-smith", i as u64, raw, &mut |b| {
                w.check_generated(b);
            });
        }
        for case in 0..cases(300) {
            let raw = smith_input(&mut rng);
            let mut code = None;
            run_one("wasm-smith", case, &raw, &mut |b| {
                code = generate_module(b);
                if let Some(c) = &code {
                    w.check(c);
                }
            });
            let Some(code) = code else { continue };
            generated += 1;
            // One in four: a byte-level mutation of the generated module, which probes the
            // validator just beside well-formed contract-shaped code.
            if rng.chance(4) {
                let input = mutate(&mut rng, &code, &code);
                let before = w.stats.accepted;
                run_one("wasm-smith-mutated", case, &input, &mut |b| {
                    w.check(b);
                });
                mutated += u64::from(w.stats.accepted > before);
            }
        }
        println!(
            "wasm-smith: {generated} generated, {mutated} mutated accepted; {}",
            w.stats
        );
        save_found("wasm-smith", &w.stats);
        // The generator must reach the code paths that matter: a run where no generated module is
        // accepted tests only the refusals.
        assert!(
            w.stats.accepted > 0,
            "no generated module was accepted: {}",
            w.stats
        );
    }
}
