//! Compiled-module cache: in memory, and on disk for persistent nodes.
//!
//! Entries are keyed by the code's SHA-256 (the chain's code hash); disk files are additionally
//! keyed by the engine's compatibility hash, so a new wasmtime version or different engine
//! settings never load an old artifact. Invariants: only files this node wrote are deserialized
//! (they carry a SHA-256 of their body, checked before `Module::deserialize`, so a torn or
//! corrupted file is recompiled, never run); files are written to a temporary name and renamed,
//! so readers never see half a file. The memory cache is bounded (oldest entry evicted first).

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash as _, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use wasmtime::{Engine, InstancePre, Linker, Module};

use super::host::CallCtx;
use crate::types::{Hash, sha256};

/// A compiled, linked module ready to instantiate.
pub(crate) struct CachedModule {
    pub pre: InstancePre<CallCtx>,
    /// Exported functions (entry points).
    pub entries: Vec<String>,
}

impl CachedModule {
    pub fn has_entry(&self, entry: &str) -> bool {
        self.entries.iter().any(|e| e == entry)
    }
}

struct Inner {
    map: HashMap<Hash, Arc<CachedModule>>,
    order: VecDeque<Hash>,
}

pub(crate) struct ModuleCache {
    engine: Engine,
    inner: Mutex<Inner>,
    capacity: usize,
    dir: Option<PathBuf>,
    engine_tag: String,
}

impl ModuleCache {
    pub fn new(engine: &Engine, capacity: usize, dir: Option<PathBuf>) -> Self {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        Self {
            engine: engine.clone(),
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                order: VecDeque::new(),
            }),
            capacity: capacity.max(1),
            dir,
            engine_tag: format!("{:016x}", h.finish()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the map inconsistent (single inserts).
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A cached module, if present in memory.
    pub fn get(&self, code_hash: &Hash) -> Option<Arc<CachedModule>> {
        self.lock().map.get(code_hash).cloned()
    }

    /// Number of modules held in memory.
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// Compiles `code` (or loads it from disk), links it and caches it.
    pub fn load(
        &self,
        code_hash: &Hash,
        code: &[u8],
        linker: &Linker<CallCtx>,
    ) -> wasmtime::Result<Arc<CachedModule>> {
        if let Some(m) = self.get(code_hash) {
            return Ok(m);
        }
        let module = match self.load_disk(code_hash) {
            Some(m) => m,
            None => {
                let m = Module::from_binary(&self.engine, code)?;
                self.store_disk(code_hash, &m);
                m
            }
        };
        let entries = module
            .exports()
            .filter(|e| e.ty().func().is_some())
            .map(|e| e.name().to_string())
            .collect();
        let cached = Arc::new(CachedModule {
            pre: linker.instantiate_pre(&module)?,
            entries,
        });
        let mut inner = self.lock();
        if !inner.map.contains_key(code_hash) {
            while inner.map.len() >= self.capacity {
                match inner.order.pop_front() {
                    Some(old) => {
                        inner.map.remove(&old);
                    }
                    None => break,
                }
            }
            inner.order.push_back(*code_hash);
            inner.map.insert(*code_hash, cached.clone());
        }
        Ok(cached)
    }

    fn path(&self, code_hash: &Hash) -> Option<PathBuf> {
        self.dir
            .as_ref()
            .map(|d| d.join(format!("{}-{}.cwasm", code_hash.to_hex(), self.engine_tag)))
    }

    fn load_disk(&self, code_hash: &Hash) -> Option<Module> {
        let path = self.path(code_hash)?;
        let bytes = std::fs::read(&path).ok()?;
        if bytes.len() < 32 || sha256(&bytes[32..]).0[..] != bytes[..32] {
            tracing::warn!(path = %path.display(), "compiled module cache file is corrupt; recompiling");
            let _ = std::fs::remove_file(&path);
            return None;
        }
        // SAFETY: `Module::deserialize` trusts its input to be a wasmtime artifact. We only read
        // files this cache wrote (named by code hash and engine tag, in the node's own data dir)
        // and have just checked the SHA-256 this cache stored in front of the body, so the bytes
        // are exactly what `Module::serialize` produced for this engine configuration.
        #[allow(unsafe_code)]
        let module = unsafe { Module::deserialize(&self.engine, &bytes[32..]) };
        match module {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot load cached module; recompiling");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    fn store_disk(&self, code_hash: &Hash, module: &Module) {
        let Some(path) = self.path(code_hash) else {
            return;
        };
        let result = (|| -> std::io::Result<()> {
            let body = module.serialize().map_err(std::io::Error::other)?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            // Unique per writer: several lanes (and processes) may cache the same module at once.
            static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let tmp = path.with_extension(format!("{}.{seq}.tmp", std::process::id()));
            let mut file = Vec::with_capacity(body.len() + 32);
            file.extend_from_slice(&sha256(&body).0);
            file.extend_from_slice(&body);
            std::fs::write(&tmp, &file)?;
            std::fs::rename(&tmp, &path)
        })();
        if let Err(e) = result {
            // The cache is an optimization: failing to write it only costs a recompile later.
            tracing::warn!(path = %path.display(), error = %e, "cannot write compiled module cache");
        }
    }
}
