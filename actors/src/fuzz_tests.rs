//! Randomised fuzz harnesses (stable toolchain, no coverage guidance) for every decoder that
//! input from outside reaches: transactions (canonical binary and the API's JSON body), blocks
//! (from peers and `db` tools), contract validation and compilation (arbitrary bytes and
//! mutated valid modules), the L0 answers the JSON-RPC client parses and the requests the
//! devnet dispatcher parses.
//!
//! Invariant checked: no input panics; anything accepted survives the next step (verify,
//! re-encode, compile). Each harness replays its corpus (`actors/fuzz-corpus/<target>/`) and
//! then runs `ACCUMEN_FUZZ_CASES` mutated cases (default small, for CI) from a seeded
//! generator (`ACCUMEN_FUZZ_SEED`, default fixed so CI is reproducible). A panicking input is
//! written to `$CARGO_TARGET_DIR/fuzz-crashes/` (or the temp dir) before the test fails, so it
//! can be added to the corpus. Compile times of accepted modules are printed (run with
//! `--nocapture`), never asserted: speed is a figure for the report.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::bridge::codec::{L0Key, WriteDataRequest, sign_write_data};
use crate::bridge::devnet::{Devnet, DevnetConfig};
use crate::bridge::json::{
    AccountRecord, ChainEntryRecord, MessageRecord, NetworkStatus, RecordRange, Submission,
};
use crate::bridge::{AccUrl, client::classify_submissions};
use crate::testkit::Signer;
use crate::types::{Block, Hash, Keypair, SignedTx};
use crate::vm::{Vm, VmConfig};

#[path = "../../tests/fixtures/compile_bombs.rs"]
mod compile_bombs;

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
        let dir = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir)
            .join("fuzz-crashes");
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
fn fuzz(target: &str, seeds: Vec<Vec<u8>>, n: u64, json_input: bool, check: &mut dyn FnMut(&[u8])) {
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

#[test]
fn fuzz_tx_binary() {
    let seeds = sample_txs().iter().map(SignedTx::encode).collect();
    fuzz("tx-binary", seeds, cases(2_000), false, &mut |b| {
        if let Ok(tx) = SignedTx::decode(b) {
            // Canonical: what decodes re-encodes to the same bytes.
            assert_eq!(tx.encode(), b);
            let _ = tx.tx.check_shape();
            let _ = tx.verify();
        }
    });
}

#[test]
fn fuzz_tx_json() {
    let seeds = sample_txs()
        .iter()
        .map(|t| serde_json::to_vec(t).unwrap())
        .collect();
    fuzz("tx-json", seeds, cases(2_000), true, &mut |b| {
        if let Ok(tx) = serde_json::from_slice::<SignedTx>(b) {
            let _ = tx.tx.check_shape();
            let _ = SignedTx::decode(&tx.encode());
            let _ = tx.verify();
        }
    });
}

#[test]
fn fuzz_block_binary() {
    let key = Keypair::from_seed([5; 32]);
    let genesis = Block::genesis("fuzz", &Hash::ZERO);
    let empty = Block::seal(genesis.header.clone(), Vec::new(), &key);
    let full = Block::seal(genesis.header.clone(), sample_txs(), &key);
    let seeds = vec![genesis.encode(), empty.encode(), full.encode()];
    fuzz("block-binary", seeds, cases(1_000), false, &mut |b| {
        if let Ok(block) = Block::decode(b) {
            assert_eq!(block.encode(), b);
            let _ = block.verify();
        }
    });
}

#[test]
fn fuzz_contract_validation_and_compile() {
    let vm = Vm::new(VmConfig::default()).unwrap();
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
    let mut accepted = 0u32;
    let mut max_compile = Duration::ZERO;
    let mut max_weight = 0u64;
    fuzz("wasm", seeds, cases(1_000), false, &mut |b| {
        if let Ok(info) = vm.validate(b) {
            let t = Instant::now();
            // Validated code must compile: a failure here is a validator gap.
            vm.precompile(b).unwrap();
            let took = t.elapsed();
            accepted += 1;
            max_weight = max_weight.max(info.compile_weight);
            max_compile = max_compile.max(took);
        }
    });
    println!("wasm: {accepted} accepted; max compile {max_compile:?}; max weight {max_weight}");
}

const PAGE: &str = "acc://accumen.acme/book/1";
const DATA: &str = "acc://accumen.acme/anchors";

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
    let key = L0Key::from_seed([9; 32]);
    let w = sign_write_data(
        &key,
        &WriteDataRequest {
            principal: AccUrl::parse(DATA).unwrap(),
            signer: AccUrl::parse(PAGE).unwrap(),
            signer_version: 1,
            timestamp: 1,
            memo: String::new(),
            metadata: Vec::new(),
            parts: vec![vec![1; 4]],
        },
    )
    .unwrap();
    let envelope = w.envelope();
    fuzz("l0-answer", l0_answers(), cases(3_000), true, &mut |b| {
        if let Ok(subs) = serde_json::from_slice::<Vec<Submission>>(b) {
            let _ = classify_submissions(&envelope, subs);
        }
        let _ = serde_json::from_slice::<MessageRecord>(b);
        let _ = serde_json::from_slice::<AccountRecord>(b);
        let _ = serde_json::from_slice::<ChainEntryRecord>(b);
        let _ = serde_json::from_slice::<RecordRange<ChainEntryRecord>>(b);
        let _ = serde_json::from_slice::<NetworkStatus>(b);
    });
}
