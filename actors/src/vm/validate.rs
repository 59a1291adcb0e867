//! Deploy-time validation of contract code (ABI v1).
//!
//! Invariant: a module that passes here can be compiled and instantiated by this engine with the
//! configured limits, so every later failure of a call is the contract's own deterministic fault.
//! The module limits are the constants of `gas.rs`, which `engine_config` also builds the
//! instance pool and store limits from: one place, so validation and engine cannot disagree
//! (the tests below instantiate a module at every limit).
//!
//! Checks, in order: WebAssembly binary (not text), size; then one pass over the sections that
//! refuses a count before reading the items it counts (tables, memories, functions, imports,
//! types, globals, exports, element and data segments) and walks every function body with the
//! operator reader for the compile limits (body size, locals, control blocks, nesting depth,
//! `br_table` width), measuring the code for its compile weight (`gas::CodeStats`); then the
//! engine's own validation (which refuses threads, relaxed SIMD, GC and other disabled
//! proposals); then the ABI: imports only from `"accumen"` with exactly the documented types,
//! one memory exported as `memory` and within `wasm.max_memory_pages`, function entry points of
//! type `() -> ()`, no start function, and active data and element segments whose whole
//! constant offset expression is evaluated and lies within the initial memory or table. Each
//! rejection names its reason. Deterministic: the result and the weight depend on the code
//! and the chain's parameters (page limit, gas schedule) only.

use wasmparser::{DataKind, ExternalKind, FuncType, Operator, Parser, Payload, TypeRef, ValType};

use super::gas;
use crate::types::MAX_CODE_LEN;

/// Why a contract was refused at deploy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("not a WebAssembly binary (compile WAT text to .wasm first)")]
    NotWasm,
    #[error("code is {0} bytes, limit {MAX_CODE_LEN}")]
    TooLarge(usize),
    #[error("invalid WebAssembly: {0}")]
    Invalid(String),
    #[error("import {module}::{name} is not part of the accumen ABI")]
    UnknownImport { module: String, name: String },
    #[error("import accumen::{name} has type {found}, the ABI says {expected}")]
    ImportType {
        name: String,
        found: String,
        expected: String,
    },
    #[error("only functions may be imported; {module}::{name} is a {kind}")]
    ImportKind {
        module: String,
        name: String,
        kind: &'static str,
    },
    #[error("contract must export its memory as \"memory\"")]
    NoMemoryExport,
    #[error("contract may declare at most one memory")]
    TooManyMemories,
    #[error("memory starts at {initial} pages, limit wasm.max_memory_pages = {limit}")]
    MemoryTooLarge { initial: u64, limit: u32 },
    #[error("shared or 64-bit memories are not allowed")]
    MemoryKind,
    #[error("export {name:?} is a function of type {found}; entry points must be () -> ()")]
    EntryType { name: String, found: String },
    #[error("a start function is not allowed (use the `init` entry point)")]
    StartFunction,
    #[error("{what} count {count} exceeds the limit {limit}")]
    TooMany {
        what: &'static str,
        count: u64,
        limit: u64,
    },
    #[error(
        "data segment at offset {offset} with {len} bytes lies outside the initial memory of {memory_bytes} bytes"
    )]
    DataOutOfBounds {
        offset: u64,
        len: u64,
        memory_bytes: u64,
    },
    #[error(
        "data segment offset must be a constant i32 expression (i32.const, i32.add/sub/mul, \
         global.get of an immutable i32 global)"
    )]
    DataOffset,
    #[error(
        "element segment at offset {offset} with {len} entries lies outside the table of {size} entries"
    )]
    ElemOutOfBounds { offset: u64, len: u64, size: u64 },
    #[error(
        "element segment offset must be a constant i32 expression (i32.const, i32.add/sub/mul, \
         global.get of an immutable i32 global)"
    )]
    ElemOffset,
}

/// What validation learned about a module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleInfo {
    /// True when the module exports `init`.
    pub has_init: bool,
    /// Names of the exported entry points.
    pub entries: Vec<String>,
    /// Deterministic estimate of the module's compile cost under the chain's gas schedule, in
    /// gas (`gas::CodeStats::weight`): charged at deploy, and in part by every call
    /// (`gas::module_load`).
    pub compile_weight: u64,
    /// What the weight was computed from (the same under every schedule): for the compile
    /// benchmark and the fuzz harness, which compare schedules.
    pub code_stats: gas::CodeStats,
}

/// The ABI v1 host functions and their types: (name, params, results).
pub const ABI_IMPORTS: &[(&str, &[ValType], &[ValType])] = {
    use ValType::{I32, I64};
    &[
        ("input_len", &[], &[I32]),
        ("input_read", &[I32], &[]),
        ("output", &[I32, I32], &[]),
        ("storage_read", &[I32, I32, I32, I32], &[I32]),
        ("storage_write", &[I32, I32, I32, I32], &[]),
        ("storage_remove", &[I32, I32], &[]),
        ("emit", &[I32, I32, I32, I32], &[]),
        ("log", &[I32, I32], &[]),
        ("sender", &[I32], &[]),
        ("block_height", &[], &[I64]),
        ("block_time", &[], &[I64]),
        ("gas_left", &[], &[I64]),
        ("revert", &[I32, I32], &[]),
    ]
};

fn sig(params: &[ValType], results: &[ValType]) -> String {
    let list = |v: &[ValType]| {
        v.iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!("({}) -> ({})", list(params), list(results))
}

fn invalid(e: impl std::fmt::Display) -> ValidationError {
    ValidationError::Invalid(e.to_string())
}

fn check_count(what: &'static str, count: u64, limit: u64) -> Result<(), ValidationError> {
    if count > limit {
        return Err(ValidationError::TooMany { what, count, limit });
    }
    Ok(())
}

/// Evaluates a constant expression of type i32: `i32.const`, `global.get` of an immutable i32
/// global whose own value is known, and the extended-const `i32.add`/`i32.sub`/`i32.mul`
/// (wrapping, as the engine computes them). `None` for anything else.
fn eval_i32(expr: &wasmparser::ConstExpr<'_>, globals: &[Option<i32>]) -> Option<i32> {
    let mut stack: Vec<i32> = Vec::new();
    let mut ops = expr.get_operators_reader();
    loop {
        let op = ops.read().ok()?;
        match op {
            Operator::I32Const { value } => stack.push(value),
            Operator::GlobalGet { global_index } => {
                stack.push((*globals.get(global_index as usize)?)?);
            }
            Operator::I32Add | Operator::I32Sub | Operator::I32Mul => {
                let b = stack.pop()?;
                let a = stack.pop()?;
                stack.push(match op {
                    Operator::I32Add => a.wrapping_add(b),
                    Operator::I32Sub => a.wrapping_sub(b),
                    _ => a.wrapping_mul(b),
                });
            }
            Operator::End => break,
            _ => return None,
        }
        // Bounds the stack on hostile input; a real offset needs a handful of values.
        if stack.len() > 64 {
            return None;
        }
    }
    match stack.as_slice() {
        [v] => Some(*v),
        _ => None,
    }
}

/// Walks one function body: counts locals (parameters included), operators, blocks and
/// `br_table` targets, tracks the nesting depth, and refuses a body past a compile limit.
fn scan_body(
    body: &wasmparser::FunctionBody<'_>,
    params: u32,
    stats: &mut gas::CodeStats,
) -> Result<(), ValidationError> {
    let bytes = body.range().len() as u64;
    check_count(
        "function body byte",
        bytes,
        u64::from(gas::MAX_FUNCTION_BODY_BYTES),
    )?;
    let mut locals = u64::from(params);
    for l in body.get_locals_reader().map_err(invalid)? {
        let (count, _) = l.map_err(invalid)?;
        // Checked per group, so the sum never overflows before it is refused.
        locals += u64::from(count);
        check_count("local (per function)", locals, u64::from(gas::MAX_LOCALS))?;
    }
    let mut ops = body.get_operators_reader().map_err(invalid)?;
    let (mut depth, mut max_depth) = (1u64, 1u64);
    let (mut operators, mut blocks, mut targets) = (0u64, 0u64, 0u64);
    while !ops.eof() {
        let op = ops.read().map_err(invalid)?;
        operators += 1;
        match op {
            Operator::Block { .. }
            | Operator::Loop { .. }
            | Operator::If { .. }
            | Operator::TryTable { .. } => {
                depth += 1;
                blocks += 1;
                check_count(
                    "control block (per function)",
                    blocks,
                    u64::from(gas::MAX_FUNCTION_BLOCKS),
                )?;
                if depth > max_depth {
                    max_depth = depth;
                    check_count(
                        "control nesting depth",
                        depth,
                        u64::from(gas::MAX_NESTING_DEPTH),
                    )?;
                }
            }
            Operator::Else => {
                blocks += 1;
                check_count(
                    "control block (per function)",
                    blocks,
                    u64::from(gas::MAX_FUNCTION_BLOCKS),
                )?;
            }
            Operator::End => depth = depth.saturating_sub(1),
            Operator::BrTable { targets: t } => {
                let n = u64::from(t.len()) + 1;
                check_count("br_table target", n, u64::from(gas::MAX_BR_TABLE_TARGETS))?;
                targets += n;
            }
            _ => {}
        }
    }
    stats.add_function(gas::FunctionStats {
        body_bytes: bytes,
        locals,
        operators,
        blocks,
        br_table_targets: targets,
    });
    Ok(())
}

/// Validates contract code for this engine and limits.
///
/// The limit checks run first, on a single pass of the binary that reads every count before
/// the items it counts, so oversized input is refused before any work in proportion to it;
/// then the engine validates the module (types, stack discipline, enabled proposals). The
/// compile weight is priced with `schedule`, the chain's gas schedule; nothing else depends on
/// it.
pub fn validate(
    engine: &wasmtime::Engine,
    code: &[u8],
    max_memory_pages: u32,
    schedule: gas::GasSchedule,
) -> Result<ModuleInfo, ValidationError> {
    if !code.starts_with(b"\0asm") {
        return Err(ValidationError::NotWasm);
    }
    if code.len() > MAX_CODE_LEN {
        return Err(ValidationError::TooLarge(code.len()));
    }

    let mut types: Vec<FuncType> = Vec::new();
    let mut func_types: Vec<u32> = Vec::new(); // type index of every function, imports first
    let mut memories: Vec<wasmparser::MemoryType> = Vec::new();
    let mut tables: Vec<u64> = Vec::new(); // initial sizes
    let mut exports: Vec<(String, ExternalKind, u32)> = Vec::new();
    // Value of each global usable in a constant expression (immutable i32 with a known value).
    let mut globals: Vec<Option<i32>> = Vec::new();
    let mut data_bytes = 0u64;
    let mut data_segments: Vec<(Option<i32>, u64)> = Vec::new();
    let mut elem_segments: Vec<(u32, Option<i32>, u64)> = Vec::new();
    let mut elem_items = 0u64;
    let mut imported_funcs = 0usize;
    let mut defined_index = 0usize;
    let mut stats = gas::CodeStats::default();

    for payload in Parser::new(0).parse_all(code) {
        match payload.map_err(invalid)? {
            Payload::TypeSection(r) => {
                check_count("type", u64::from(r.count()), u64::from(gas::MAX_TYPES))?;
                stats.types = u64::from(r.count());
                for t in r.into_iter_err_on_gc_types() {
                    let t = t.map_err(invalid)?;
                    check_count(
                        "function type parameter",
                        t.params().len() as u64,
                        u64::from(gas::MAX_TYPE_PARAMS),
                    )?;
                    check_count(
                        "function type result",
                        t.results().len() as u64,
                        u64::from(gas::MAX_TYPE_RESULTS),
                    )?;
                    types.push(t);
                }
            }
            Payload::ImportSection(r) => {
                check_count("import", u64::from(r.count()), u64::from(gas::MAX_IMPORTS))?;
                for imp in r.into_imports() {
                    let imp = imp.map_err(invalid)?;
                    let kind = match imp.ty {
                        TypeRef::Func(i) => {
                            check_import(imp.module, imp.name, types.get(i as usize))?;
                            func_types.push(i);
                            imported_funcs += 1;
                            continue;
                        }
                        TypeRef::Table(_) => "table",
                        TypeRef::Memory(_) => "memory",
                        TypeRef::Global(_) => "global",
                        TypeRef::Tag(_) => "tag",
                        // custom-descriptors: wasmtime's validator accepts it but its compiler
                        // refuses it, so accepting it here would admit a deploy that can never
                        // compile (found by the fuzz harness).
                        TypeRef::FuncExact(_) => "exact function",
                    };
                    return Err(ValidationError::ImportKind {
                        module: imp.module.to_string(),
                        name: imp.name.to_string(),
                        kind,
                    });
                }
            }
            Payload::FunctionSection(r) => {
                let total = func_types.len() as u64 + u64::from(r.count());
                check_count("function", total, u64::from(gas::MAX_FUNCTIONS))?;
                for f in r {
                    func_types.push(f.map_err(invalid)?);
                }
            }
            Payload::TableSection(r) => {
                check_count("table", u64::from(r.count()), u64::from(gas::MAX_TABLES))?;
                for t in r {
                    let t = t.map_err(invalid)?;
                    check_count("table element", t.ty.initial, gas::MAX_TABLE_ELEMENTS)?;
                    tables.push(t.ty.initial);
                }
            }
            Payload::MemorySection(r) => {
                if r.count() > gas::MAX_MEMORIES {
                    return Err(ValidationError::TooManyMemories);
                }
                for m in r {
                    memories.push(m.map_err(invalid)?);
                }
            }
            Payload::GlobalSection(r) => {
                check_count("global", u64::from(r.count()), u64::from(gas::MAX_GLOBALS))?;
                for g in r {
                    let g = g.map_err(invalid)?;
                    let usable = !g.ty.mutable && g.ty.content_type == ValType::I32;
                    globals.push(if usable {
                        eval_i32(&g.init_expr, &globals)
                    } else {
                        None
                    });
                }
            }
            Payload::ExportSection(r) => {
                check_count("export", u64::from(r.count()), u64::from(gas::MAX_EXPORTS))?;
                for e in r {
                    let e = e.map_err(invalid)?;
                    exports.push((e.name.to_string(), e.kind, e.index));
                }
            }
            Payload::StartSection { .. } => return Err(ValidationError::StartFunction),
            Payload::ElementSection(r) => {
                check_count(
                    "element segment",
                    u64::from(r.count()),
                    u64::from(gas::MAX_ELEMENT_SEGMENTS),
                )?;
                for e in r {
                    let e = e.map_err(invalid)?;
                    let n = match &e.items {
                        wasmparser::ElementItems::Functions(f) => f.count(),
                        wasmparser::ElementItems::Expressions(_, x) => x.count(),
                    };
                    elem_items += u64::from(n);
                    check_count("element", elem_items, gas::MAX_TABLE_ELEMENTS)?;
                    if let wasmparser::ElementKind::Active {
                        table_index,
                        offset_expr,
                    } = &e.kind
                    {
                        let offset = eval_i32(offset_expr, &globals);
                        elem_segments.push((table_index.unwrap_or(0), offset, u64::from(n)));
                    }
                }
            }
            Payload::DataCountSection { count, .. } => {
                check_count(
                    "data segment",
                    u64::from(count),
                    u64::from(gas::MAX_DATA_SEGMENTS),
                )?;
            }
            Payload::DataSection(r) => {
                check_count(
                    "data segment",
                    u64::from(r.count()),
                    u64::from(gas::MAX_DATA_SEGMENTS),
                )?;
                for d in r {
                    let d = d.map_err(invalid)?;
                    let len = d.data.len() as u64;
                    data_bytes += len;
                    check_count("data byte", data_bytes, gas::MAX_DATA_BYTES)?;
                    if let DataKind::Active { offset_expr, .. } = d.kind {
                        data_segments.push((eval_i32(&offset_expr, &globals), len));
                    }
                }
            }
            Payload::CodeSectionStart { size, .. } => {
                check_count("code byte", u64::from(size), gas::MAX_CODE_BYTES)?;
            }
            Payload::CodeSectionEntry(body) => {
                let params = func_types
                    .get(imported_funcs + defined_index)
                    .and_then(|t| types.get(*t as usize))
                    .map_or(0, |t| t.params().len() as u32);
                defined_index += 1;
                scan_body(&body, params, &mut stats)?;
            }
            _ => {}
        }
    }

    // The engine's own validation: types, operand stacks, enabled proposals. It runs after the
    // limits so that its (linear) work is bounded by them too.
    wasmtime::Module::validate(engine, code).map_err(|e| invalid(format!("{e:#}")))?;

    let memory = match memories.as_slice() {
        [m] => *m,
        [] => return Err(ValidationError::NoMemoryExport),
        _ => return Err(ValidationError::TooManyMemories),
    };
    if memory.shared || memory.memory64 {
        return Err(ValidationError::MemoryKind);
    }
    if memory.initial > u64::from(max_memory_pages) {
        return Err(ValidationError::MemoryTooLarge {
            initial: memory.initial,
            limit: max_memory_pages,
        });
    }
    // Active segments are copied at instantiation; one that does not fit would trap there, after
    // the deploy was accepted. Offsets are unsigned (the engine reads the i32 as u32).
    let memory_bytes = memory.initial * 65_536;
    for (offset, len) in data_segments {
        let offset = u64::from(offset.ok_or(ValidationError::DataOffset)? as u32);
        if offset.saturating_add(len) > memory_bytes {
            return Err(ValidationError::DataOutOfBounds {
                offset,
                len,
                memory_bytes,
            });
        }
    }
    for (table, offset, len) in elem_segments {
        let offset = u64::from(offset.ok_or(ValidationError::ElemOffset)? as u32);
        let size = tables.get(table as usize).copied().unwrap_or(0);
        if offset.saturating_add(len) > size {
            return Err(ValidationError::ElemOutOfBounds { offset, len, size });
        }
    }

    let mut has_memory_export = false;
    let mut entries = Vec::new();
    for (name, kind, index) in exports {
        match kind {
            ExternalKind::Memory if name == "memory" => has_memory_export = true,
            ExternalKind::Func | ExternalKind::FuncExact => {
                let ty = func_types
                    .get(index as usize)
                    .and_then(|t| types.get(*t as usize))
                    .ok_or_else(|| invalid(format!("export {name:?} has no type")))?;
                if !ty.params().is_empty() || !ty.results().is_empty() {
                    return Err(ValidationError::EntryType {
                        name,
                        found: sig(ty.params(), ty.results()),
                    });
                }
                entries.push(name);
            }
            _ => {}
        }
    }
    if !has_memory_export {
        return Err(ValidationError::NoMemoryExport);
    }
    Ok(ModuleInfo {
        has_init: entries.iter().any(|e| e == "init"),
        entries,
        compile_weight: stats.weight(schedule),
        code_stats: stats,
    })
}

fn check_import(module: &str, name: &str, ty: Option<&FuncType>) -> Result<(), ValidationError> {
    let unknown = || ValidationError::UnknownImport {
        module: module.to_string(),
        name: name.to_string(),
    };
    if module != "accumen" {
        return Err(unknown());
    }
    let (_, params, results) = ABI_IMPORTS
        .iter()
        .find(|(n, _, _)| *n == name)
        .ok_or_else(unknown)?;
    let ty = ty.ok_or_else(|| invalid(format!("import {name} has no type")))?;
    if ty.params() != *params || ty.results() != *results {
        return Err(ValidationError::ImportType {
            name: name.to_string(),
            found: sig(ty.params(), ty.results()),
            expected: sig(params, results),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Every module limit, at and just past it, on the real engine: what validation accepts
    //! compiles and instantiates; one step further is refused with a reason naming the limit.

    use std::sync::Arc;

    use super::*;
    use crate::vm::engine::{RunEnd, RunInput, Vm, VmConfig};
    use crate::vm::host::Overlay;
    use crate::vm::state::MemState;

    fn vm() -> Vm {
        Vm::new(VmConfig {
            workers: 2,
            ..VmConfig::default()
        })
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn wasm(src: &str) -> Vec<u8> {
        wat::parse_str(src).unwrap_or_else(|e| panic!("{e}: {src:.200}"))
    }

    /// `(module <items> <memory> (func (export "run")))`, `run` being the last function
    /// (items first: the text format wants imports before definitions).
    fn module(items: &str) -> String {
        format!("(module {items} (memory (export \"memory\") 1) (func (export \"run\")))")
    }

    /// Accepted, compiled, instantiated and run on every lane of the real engine.
    fn assert_runs(vm: &Vm, src: &str) {
        let code = wasm(src);
        let info = vm
            .validate(&code)
            .unwrap_or_else(|e| panic!("refused: {e}: {src:.200}"));
        assert!(info.compile_weight > 0);
        let hash = crate::types::sha256(&code);
        let base: Arc<dyn crate::vm::StateView> = Arc::new(MemState::default());
        for lane in 0..vm.lanes() {
            let (module, _) = vm
                .module(lane, &hash, Some(&code), base.as_ref())
                .unwrap_or_else(|e| panic!("{e}: {src:.200}"));
            let run = vm
                .run(
                    lane,
                    &module,
                    "run",
                    base.clone(),
                    RunInput {
                        deadline_ticks: vm.deadline_ticks(),
                        contract: crate::types::Address(crate::types::Hash::ZERO.0),
                        sender: crate::types::PublicKey([0; 32]),
                        height: 1,
                        time_ms: 1,
                        input: Vec::new(),
                        fuel: 1_000_000,
                        group: Overlay::new(),
                    },
                )
                .unwrap_or_else(|e| panic!("{e}: {src:.200}"));
            assert_eq!(run.end, RunEnd::Success, "{src:.200}");
        }
    }

    fn assert_refused(vm: &Vm, src: &str, what: &str) {
        match vm.validate(&wasm(src)) {
            Err(e) => assert!(
                e.to_string().contains(what),
                "refused for {e}, expected {what:?}"
            ),
            Ok(_) => panic!("accepted past the {what} limit: {src:.200}"),
        }
    }

    /// Found by `fuzz_contract_validation_and_compile`: an import of an exact function type
    /// (custom-descriptors) passed wasmtime's validation but can never compile.
    #[test]
    fn exact_function_imports_are_refused() {
        let code = include_bytes!("../../fuzz-corpus/wasm/custom-descriptors.wasm");
        match vm().validate(code) {
            Err(ValidationError::ImportKind { kind, .. }) => assert_eq!(kind, "exact function"),
            other => panic!("expected an import-kind refusal, got {other:?}"),
        }
    }

    fn repeat(n: u64, f: impl Fn(u64) -> String) -> String {
        (0..n).map(f).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn limits_accept_at_and_refuse_past_each_module_limit() {
        let vm = vm();
        // (reason, module items for a count, the limit)
        type Case = (&'static str, Box<dyn Fn(u64) -> String>, u64);
        let cases: Vec<Case> = vec![
            (
                "table count",
                Box::new(|n| repeat(n, |_| "(table 1 funcref)".into())),
                u64::from(gas::MAX_TABLES),
            ),
            (
                "table element count",
                Box::new(|n| format!("(table {n} funcref)")),
                gas::MAX_TABLE_ELEMENTS,
            ),
            (
                "function count",
                // `run` is one more function.
                Box::new(|n| repeat(n - 1, |_| "(func)".into())),
                u64::from(gas::MAX_FUNCTIONS),
            ),
            (
                "import count",
                Box::new(|n| {
                    repeat(n, |_| {
                        "(import \"accumen\" \"gas_left\" (func (result i64)))".into()
                    })
                }),
                u64::from(gas::MAX_IMPORTS),
            ),
            (
                "type count",
                // Type 0 is `run`'s `() -> ()`; explicit types are never merged.
                Box::new(|n| {
                    repeat(n, |i| {
                        format!("(type (func (param{})))", " i32".repeat(i as usize % 20))
                    })
                }),
                u64::from(gas::MAX_TYPES),
            ),
            (
                "function type parameter count",
                Box::new(|n| format!("(func (param{}))", " i64".repeat(n as usize))),
                u64::from(gas::MAX_TYPE_PARAMS),
            ),
            (
                "function type result count",
                Box::new(|n| format!("(func (result{}) unreachable)", " i64".repeat(n as usize))),
                u64::from(gas::MAX_TYPE_RESULTS),
            ),
            (
                "global count",
                Box::new(|n| repeat(n, |i| format!("(global (mut i64) (i64.const {i}))"))),
                u64::from(gas::MAX_GLOBALS),
            ),
            (
                "export count",
                // `memory` and `run` are two.
                Box::new(|n| {
                    repeat(n - 2, |i| {
                        format!("(global (export \"g{i}\") i32 (i32.const 0))")
                    })
                }),
                u64::from(gas::MAX_EXPORTS),
            ),
            (
                "element segment count",
                Box::new(|n| {
                    format!(
                        "(table 100 funcref) {}",
                        repeat(n, |i| format!("(elem (i32.const {}) func 0)", i % 100))
                    )
                }),
                u64::from(gas::MAX_ELEMENT_SEGMENTS),
            ),
            (
                "element count",
                Box::new(|n| {
                    format!(
                        "(table {} funcref) (elem (i32.const 0) func {})",
                        gas::MAX_TABLE_ELEMENTS,
                        repeat(n, |_| "0".into())
                    )
                }),
                gas::MAX_TABLE_ELEMENTS,
            ),
            (
                "data segment count",
                Box::new(|n| repeat(n, |i| format!("(data (i32.const {i}) \"x\")"))),
                u64::from(gas::MAX_DATA_SEGMENTS),
            ),
            (
                "local (per function) count",
                Box::new(|n| {
                    format!(
                        "(func (param i32) (local{}))",
                        " i64".repeat(n as usize - 1)
                    )
                }),
                u64::from(gas::MAX_LOCALS),
            ),
            (
                "control nesting depth count",
                // The function's own frame is one level.
                Box::new(|n| {
                    format!(
                        "(func {} {})",
                        "block ".repeat(n as usize - 1),
                        "end ".repeat(n as usize - 1)
                    )
                }),
                u64::from(gas::MAX_NESTING_DEPTH),
            ),
            (
                "control block (per function) count",
                Box::new(|n| format!("(func {})", "block end ".repeat(n as usize))),
                u64::from(gas::MAX_FUNCTION_BLOCKS),
            ),
            (
                "br_table target count",
                Box::new(|n| {
                    format!(
                        "(func block i32.const 0 br_table{} end)",
                        " 0".repeat(n as usize)
                    )
                }),
                u64::from(gas::MAX_BR_TABLE_TARGETS),
            ),
        ];
        for (what, make, limit) in cases {
            assert_runs(&vm, &module(&make(limit)));
            assert_refused(&vm, &module(&make(limit + 1)), what);
        }

        // Data bytes: needs 5 pages of initial memory.
        let data = |n: u64| {
            format!(
                "(module (memory (export \"memory\") 5) (data (i32.const 0) \"{}\") (func (export \"run\")))",
                "x".repeat(n as usize)
            )
        };
        assert_runs(&vm, &data(gas::MAX_DATA_BYTES));
        assert_refused(&vm, &data(gas::MAX_DATA_BYTES + 1), "data byte count");
        // Memories and pages.
        assert_eq!(
            vm.validate(&wasm(&module("(memory 1)"))),
            Err(ValidationError::TooManyMemories)
        );
        let pages =
            |n: u32| format!("(module (memory (export \"memory\") {n}) (func (export \"run\")))");
        assert_runs(&vm, &pages(vm.config().max_memory_pages));
        assert!(matches!(
            vm.validate(&wasm(&pages(vm.config().max_memory_pages + 1))),
            Err(ValidationError::MemoryTooLarge { .. })
        ));
    }

    #[test]
    fn limits_function_body_bytes() {
        let vm = vm();
        let body = |n: u64| module(&format!("(func {})", "nop ".repeat(n as usize)));
        // The body is its locals count byte, the nops and the final `end`.
        let at = u64::from(gas::MAX_FUNCTION_BODY_BYTES) - 2;
        assert_runs(&vm, &body(at));
        assert_refused(&vm, &body(at + 1), "function body byte count");
    }

    #[test]
    fn limits_all_at_once_instantiate() {
        // Every count limit at once: the instance (VMContext) and the pool still fit.
        let vm = vm();
        let f = u64::from(gas::MAX_FUNCTIONS);
        let imports = u64::from(gas::MAX_IMPORTS);
        let src = format!(
            "(module {imports} (memory (export \"memory\") 5) (table {t} funcref) {globals} {funcs} \
             (elem (i32.const 0) func {elems}) {exports} (data (i32.const 0) \"{data}\") (func (export \"run\")))",
            imports = repeat(imports, |_| {
                "(import \"accumen\" \"gas_left\" (func (result i64)))".into()
            }),
            t = gas::MAX_TABLE_ELEMENTS,
            globals = repeat(u64::from(gas::MAX_GLOBALS), |i| format!(
                "(global (mut i64) (i64.const {i}))"
            )),
            funcs = repeat(f - imports - 1, |_| "(func)".into()),
            elems = repeat(gas::MAX_TABLE_ELEMENTS, |i| (imports + i % (f - imports))
                .to_string()),
            exports = repeat(u64::from(gas::MAX_EXPORTS) - 2, |i| format!(
                "(export \"f{i}\" (func {}))",
                imports + i
            )),
            data = "x".repeat(gas::MAX_DATA_BYTES as usize),
        );
        assert_runs(&vm, &src);
    }

    #[test]
    fn data_and_element_offsets_are_evaluated_whole() {
        let vm = vm();
        let v = |items: &str| vm.validate(&wasm(&module(items)));
        // Extended constant expressions, in bounds and out of bounds.
        assert!(v("(data (i32.add (i32.const 65000) (i32.const 535)) \"x\")").is_ok());
        assert!(matches!(
            v("(data (i32.add (i32.const 65530) (i32.const 100)) \"x\")"),
            Err(ValidationError::DataOutOfBounds { offset: 65630, .. })
        ));
        assert!(matches!(
            v("(data (i32.sub (i32.const 0) (i32.const 1)) \"x\")"),
            Err(ValidationError::DataOutOfBounds {
                offset: 4294967295,
                ..
            })
        ));
        assert!(matches!(
            v("(data (i32.mul (i32.const 4096) (i32.const 16)) \"x\")"),
            Err(ValidationError::DataOutOfBounds { offset: 65536, .. })
        ));
        assert!(v("(data (i32.mul (i32.const 4096) (i32.const 15)) \"x\")").is_ok());
        // Element segments the same way, against the table's initial size.
        assert!(v("(table 2 funcref) (elem (i32.add (i32.const 1) (i32.const 0)) func 0)").is_ok());
        assert!(matches!(
            v("(table 2 funcref) (elem (i32.add (i32.const 1) (i32.const 1)) func 0)"),
            Err(ValidationError::ElemOutOfBounds {
                offset: 2,
                len: 1,
                size: 2
            })
        ));
        // What is accepted also instantiates.
        assert_runs(
            &vm,
            &module("(data (i32.add (i32.const 65000) (i32.const 535)) \"x\")"),
        );
        assert_runs(
            &vm,
            &module("(table 2 funcref) (elem (i32.add (i32.const 1) (i32.const 0)) func 0)"),
        );
    }

    /// An engine pricing compiles with gas schedule `version`.
    fn vm_on(version: u32) -> Vm {
        Vm::new(VmConfig {
            workers: 1,
            gas_schedule: version,
            ..VmConfig::default()
        })
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Compile weights per schedule, golden. Schedule 1's are what the build before schedule 2
    /// charged (printed by it at commit 5312fba): chains created with schedule 1 keep exactly
    /// these charges. Schedule 2 adds the module base and a per-type charge
    /// (`gas::GasSchedule`); everything else is the same.
    const V2_COUNTER: u64 = 827_078;
    const V2_TRAP: u64 = 500_300;
    const V2_SMALL: u64 = 520_000;
    const V2_SLOWEST: u64 = 5_979_336;
    const V2_MUTATED: u64 = 8_130_271;

    #[test]
    fn compile_weights_per_schedule_are_golden() {
        let corpus = |name: &str| {
            let path = format!(
                "{}/fuzz-corpus/wasm/{name}.wasm",
                env!("CARGO_MANIFEST_DIR")
            );
            std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
        };
        let fixture = crate::vm::tests::fixture;
        let cases: [(&str, Vec<u8>, u64, u64); 5] = [
            ("counter", fixture("counter"), 327_078, V2_COUNTER),
            ("trap", fixture("trap"), 80_300, V2_TRAP),
            (
                "smith-small-over-budget",
                corpus("smith-small-over-budget"),
                0,
                V2_SMALL,
            ),
            (
                "smith-slowest",
                corpus("smith-slowest"),
                5_339_336,
                V2_SLOWEST,
            ),
            (
                "mutated-slow-compile",
                corpus("mutated-slow-compile"),
                7_710_271,
                V2_MUTATED,
            ),
        ];
        let (v1, v2) = (vm_on(1), vm_on(2));
        assert_eq!(v1.gas_schedule(), gas::GasSchedule::V1);
        assert_eq!(v2.gas_schedule(), gas::GasSchedule::V2);
        let base = gas::GasSchedule::V2.compile().module;
        let per_type = gas::GasSchedule::V2.compile().func_type;
        for (name, code, w1, w2) in cases {
            let i1 = v1.validate(&code).unwrap_or_else(|e| panic!("{name}: {e}"));
            let i2 = v2.validate(&code).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(i1.compile_weight, w1, "{name} under schedule 1");
            assert_eq!(i2.compile_weight, w2, "{name} under schedule 2");
            // The same code measured the same way; only the prices differ.
            assert_eq!(i1.code_stats, i2.code_stats, "{name}");
            assert_eq!(i1.code_stats.weight(gas::GasSchedule::V2), w2, "{name}");
            let types = i2.code_stats.types;
            assert!(types > 0, "{name}");
            assert_eq!(w2, w1 + base + per_type * types, "{name}");
        }
        // The default engine is a new chain's: schedule 2.
        assert_eq!(vm().gas_schedule(), gas::GasSchedule::CURRENT);
        assert_eq!(
            gas::GasSchedule::CURRENT.version(),
            gas::GAS_SCHEDULE_VERSION
        );
        for &v in gas::GasSchedule::KNOWN_VERSIONS {
            assert_eq!(
                gas::GasSchedule::from_version(v).map(|s| s.version()),
                Ok(v)
            );
        }
        assert!(gas::GasSchedule::from_version(3).is_err());
    }

    #[test]
    fn two_tables_are_refused_at_validation() {
        let vm = vm();
        let err = vm
            .validate(&wasm(&module("(table 1 funcref) (table 1 funcref)")))
            .err()
            .map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("table count 2 exceeds the limit 1"));
    }

    #[test]
    fn deploys_pay_their_compile_weight_and_calls_a_deterministic_share() {
        use crate::types::{Action, Bytes, Keypair, ReceiptStatus, VerifiedTx};
        use crate::vm::{BlockContext, Query};

        let vm = vm();
        let key = Keypair::from_seed([9; 32]);
        let tx = |nonce: u64, gas_limit: u64, action: Action| -> VerifiedTx {
            let body = crate::testkit::body("t", key.public(), nonce, action, gas_limit);
            crate::testkit::verified(key.sign(body))
        };
        let ctx = |height| BlockContext {
            chain_id: "t".into(),
            height,
            timestamp_ms: 1,
            max_tx_gas: 50_000_000,
            max_block_gas: crate::vm::gas::MAX_BLOCK_GAS,
            max_block_tx_bytes: crate::vm::gas::MAX_BLOCK_TX_BYTES,
            max_block_result_bytes: crate::vm::gas::MAX_BLOCK_RESULT_BYTES,
        };
        let code = wasm(&module(&format!(
            "(func (local i64 i64) {})",
            "block local.get 0 local.set 1 end ".repeat(100)
        )));
        let weight = vm.validate(&code).map(|i| i.compile_weight).unwrap_or(0);
        let cost = gas::deploy_intrinsic(code.len(), weight);
        assert!(
            weight > gas::GasSchedule::CURRENT.compile().function * 2,
            "{weight}"
        );

        // One gas short of the compile: out of gas, nothing created.
        let mut st = MemState::default();
        let short = tx(
            0,
            cost - 1,
            Action::Deploy {
                code: Bytes(code.clone()),
            },
        );
        let out = vm
            .execute_block(Arc::new(st.clone()), &ctx(1), vec![short])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out.receipts[0].status, ReceiptStatus::OutOfGas);
        assert!(out.writes.contracts.is_empty());
        st.apply(&out.writes);

        let deploy = tx(
            1,
            50_000_000,
            Action::Deploy {
                code: Bytes(code.clone()),
            },
        );
        let contract = deploy.tx().target();
        let out = vm
            .execute_block(Arc::new(st.clone()), &ctx(2), vec![deploy])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out.receipts[0].status, ReceiptStatus::Success);
        assert_eq!(out.receipts[0].gas_used, cost);
        st.apply(&out.writes);

        // A call pays the same load share on a node that has the module cached and on a fresh
        // one that must compile it: consensus does not see caches.
        let call = tx(
            2,
            1_000_000,
            Action::Call {
                contract,
                entry: "run".into(),
                args: Bytes::default(),
            },
        );
        let warm = vm
            .execute_block(Arc::new(st.clone()), &ctx(3), vec![call.clone()])
            .unwrap_or_else(|e| panic!("{e}"));
        let cold = Vm::new(VmConfig::default())
            .unwrap_or_else(|e| panic!("{e}"))
            .execute_block(Arc::new(st.clone()), &ctx(3), vec![call])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(warm.receipts[0].status, ReceiptStatus::Success);
        assert_eq!(warm.receipts[0].gas_used, cold.receipts[0].gas_used);
        assert!(warm.receipts[0].gas_used >= gas::TX_BASE + gas::module_load(weight));

        // A query (not consensus) pays the whole compile when it caused one, then only the share.
        let fresh = Vm::new(VmConfig::default()).unwrap_or_else(|e| panic!("{e}"));
        let q = Query {
            contract,
            entry: "run".into(),
            args: Vec::new(),
            sender: key.public(),
            gas_limit: 50_000_000,
            height: 3,
            time_ms: 1,
        };
        let base = Arc::new(st);
        let miss = fresh
            .query(base.clone(), q.clone())
            .unwrap_or_else(|e| panic!("{e}"));
        let hit = fresh.query(base, q).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(miss.gas_used, hit.gas_used + weight);
    }
}
