//! Deploy-time validation of contract code (ABI v1).
//!
//! Invariant: a module that passes here can be compiled and instantiated by this engine with the
//! configured limits, so every later failure of a call is the contract's own deterministic fault.
//! Checks, in order: WebAssembly binary (not text), size, the engine's own validation (which
//! refuses threads, relaxed SIMD, GC and other disabled proposals), then the ABI: imports only
//! from `"accumen"` with exactly the documented types, one memory exported as `memory` and within
//! `wasm.max_memory_pages`, function entry points of type `() -> ()`, no start function, and the
//! count and size limits of `gas.rs`. Each rejection names its reason.

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
    #[error("data segment offset must be a constant i32")]
    DataOffset,
}

/// What validation learned about a module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleInfo {
    /// True when the module exports `init`.
    pub has_init: bool,
    /// Names of the exported entry points.
    pub entries: Vec<String>,
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

/// Validates contract code for this engine and limits.
pub fn validate(
    engine: &wasmtime::Engine,
    code: &[u8],
    max_memory_pages: u32,
) -> Result<ModuleInfo, ValidationError> {
    if !code.starts_with(b"\0asm") {
        return Err(ValidationError::NotWasm);
    }
    if code.len() > MAX_CODE_LEN {
        return Err(ValidationError::TooLarge(code.len()));
    }
    wasmtime::Module::validate(engine, code).map_err(|e| invalid(format!("{e:#}")))?;

    let mut types: Vec<FuncType> = Vec::new();
    let mut func_types: Vec<u32> = Vec::new(); // type index of every function, imports first
    let mut memories: Vec<wasmparser::MemoryType> = Vec::new();
    let mut exports: Vec<(String, ExternalKind, u32)> = Vec::new();
    let mut globals = 0u64;
    let mut data_bytes = 0u64;
    let mut data_segments: Vec<(u64, u64)> = Vec::new();

    for payload in Parser::new(0).parse_all(code) {
        match payload.map_err(invalid)? {
            Payload::TypeSection(r) => {
                for t in r.into_iter_err_on_gc_types() {
                    types.push(t.map_err(invalid)?);
                }
            }
            Payload::ImportSection(r) => {
                for imp in r.into_imports() {
                    let imp = imp.map_err(invalid)?;
                    let kind = match imp.ty {
                        TypeRef::Func(i) | TypeRef::FuncExact(i) => {
                            check_import(imp.module, imp.name, types.get(i as usize))?;
                            func_types.push(i);
                            continue;
                        }
                        TypeRef::Table(_) => "table",
                        TypeRef::Memory(_) => "memory",
                        TypeRef::Global(_) => "global",
                        TypeRef::Tag(_) => "tag",
                    };
                    return Err(ValidationError::ImportKind {
                        module: imp.module.to_string(),
                        name: imp.name.to_string(),
                        kind,
                    });
                }
            }
            Payload::FunctionSection(r) => {
                for f in r {
                    func_types.push(f.map_err(invalid)?);
                }
            }
            Payload::TableSection(r) => {
                for t in r {
                    let t = t.map_err(invalid)?;
                    check_count("table element", t.ty.initial, gas::MAX_TABLE_ELEMENTS)?;
                }
            }
            Payload::MemorySection(r) => {
                for m in r {
                    memories.push(m.map_err(invalid)?);
                }
            }
            Payload::GlobalSection(r) => globals += u64::from(r.count()),
            Payload::ExportSection(r) => {
                for e in r {
                    let e = e.map_err(invalid)?;
                    exports.push((e.name.to_string(), e.kind, e.index));
                }
            }
            Payload::StartSection { .. } => return Err(ValidationError::StartFunction),
            Payload::DataSection(r) => {
                for d in r {
                    let d = d.map_err(invalid)?;
                    let len = d.data.len() as u64;
                    data_bytes += len;
                    if let DataKind::Active { offset_expr, .. } = d.kind {
                        let mut ops = offset_expr.get_operators_reader();
                        match ops.read().map_err(invalid)? {
                            Operator::I32Const { value } => {
                                data_segments.push((u64::from(value as u32), len))
                            }
                            _ => return Err(ValidationError::DataOffset),
                        }
                    }
                }
            }
            _ => {}
        }
    }

    check_count(
        "function",
        func_types.len() as u64,
        u64::from(gas::MAX_FUNCTIONS),
    )?;
    check_count("global", globals, u64::from(gas::MAX_GLOBALS))?;
    check_count("export", exports.len() as u64, u64::from(gas::MAX_EXPORTS))?;
    check_count("data byte", data_bytes, gas::MAX_DATA_BYTES)?;

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
    let memory_bytes = memory.initial * 65_536;
    for (offset, len) in data_segments {
        if offset.saturating_add(len) > memory_bytes {
            return Err(ValidationError::DataOutOfBounds {
                offset,
                len,
                memory_bytes,
            });
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
