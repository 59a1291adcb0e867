//! Compiled-module cache: in memory per lane, shared between lanes as serialized artifacts, and
//! on disk for persistent nodes.
//!
//! Entries are keyed by the code's SHA-256 (the chain's code hash); disk files are additionally
//! keyed by the engine's compatibility hash, so a new wasmtime version or different engine
//! settings never load an old artifact. Invariants:
//! - A module is compiled once per node, not once per lane: every lane's `ModuleCache` shares one
//!   `SharedArtifacts`, which holds a per-code-hash lock (concurrent misses on several lanes wait
//!   for the one compile) and the serialized artifact, which the other lanes deserialize into
//!   their own engines (all lanes use the same engine configuration, so the artifact fits).
//! - Only bytes this process produced are deserialized: artifacts `Module::serialize` returned
//!   in this process, or files this node wrote (they carry a SHA-256 of their body, checked
//!   before `Module::deserialize`, so a torn or corrupted file is recompiled, never run); files
//!   are written to a temporary name and renamed, so readers never see half a file.
//! - Bounded: each lane's memory cache by entries (oldest evicted first), the shared artifacts by
//!   bytes (`SHARED_ARTIFACT_BYTES`, oldest evicted first; an evicted artifact is recompiled or
//!   reloaded from disk on the next miss).

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash as _, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use wasmtime::{Engine, InstancePre, Linker, Module};

use super::host::CallCtx;
use crate::types::{Hash, sha256};

/// Most bytes of serialized artifacts kept for the other lanes to deserialize.
const SHARED_ARTIFACT_BYTES: usize = 256 * 1024 * 1024;

/// A compiled, linked module ready to instantiate.
pub(crate) struct CachedModule {
    pub pre: InstancePre<CallCtx>,
    /// Exported functions (entry points).
    pub entries: Vec<String>,
    /// The module's compile weight (`gas::CodeStats::weight`), computed from its code: what a
    /// call pays to load it (`gas::module_load`) is derived from this, never from a cache miss.
    pub compile_weight: u64,
}

/// How `ModuleCache::load` obtained a module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// This lane's memory cache.
    Memory,
    /// Another lane's compile, or the disk cache: deserialized, not compiled.
    Artifact,
    /// Compiled here and now.
    Compiled,
}

/// One code hash's compile lock and, once compiled, its serialized artifact.
type Slot = Arc<Mutex<Option<Arc<Vec<u8>>>>>;

#[derive(Default)]
struct SharedInner {
    /// Code hash -> (slot, bytes of its artifact once known).
    slots: HashMap<Hash, (Slot, usize)>,
    order: VecDeque<Hash>,
    bytes: usize,
}

/// What the lanes share: one compile per code hash, and the serialized artifacts.
#[derive(Default)]
pub(crate) struct SharedArtifacts {
    inner: Mutex<SharedInner>,
}

impl SharedArtifacts {
    fn lock(&self) -> std::sync::MutexGuard<'_, SharedInner> {
        // Single inserts and removals: a panic while holding the lock leaves it consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The slot of `code_hash`, created empty on first use.
    fn slot(&self, code_hash: &Hash) -> Slot {
        let mut inner = self.lock();
        if let Some((slot, _)) = inner.slots.get(code_hash) {
            return slot.clone();
        }
        let slot: Slot = Arc::default();
        inner.slots.insert(*code_hash, (slot.clone(), 0));
        inner.order.push_back(*code_hash);
        slot
    }

    /// Drops `code_hash`'s slot if it holds no artifact (its compile failed), so failures
    /// leave nothing behind.
    fn forget_empty(&self, code_hash: &Hash) {
        let mut inner = self.lock();
        if matches!(inner.slots.get(code_hash), Some((_, 0))) {
            inner.slots.remove(code_hash);
            inner.order.retain(|h| h != code_hash);
        }
    }

    /// Records that `code_hash`'s artifact holds `len` bytes and evicts the oldest artifacts
    /// (never this one) until the total fits `SHARED_ARTIFACT_BYTES`. A lane waiting on an
    /// evicted slot still gets its artifact (it holds the `Arc`); later misses start afresh.
    fn account(&self, code_hash: &Hash, len: usize) {
        let mut inner = self.lock();
        let Some(entry) = inner.slots.get_mut(code_hash) else {
            return;
        };
        let old = std::mem::replace(&mut entry.1, len);
        inner.bytes = inner.bytes.saturating_sub(old).saturating_add(len);
        let mut keep = VecDeque::new();
        while inner.bytes > SHARED_ARTIFACT_BYTES {
            let Some(old) = inner.order.pop_front() else {
                break;
            };
            if old == *code_hash {
                keep.push_back(old);
                continue;
            }
            if let Some((_, n)) = inner.slots.remove(&old) {
                inner.bytes = inner.bytes.saturating_sub(n);
            }
        }
        while let Some(h) = keep.pop_back() {
            inner.order.push_front(h);
        }
    }
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
    shared: Arc<SharedArtifacts>,
    inner: Mutex<Inner>,
    capacity: usize,
    dir: Option<PathBuf>,
    engine_tag: String,
}

impl ModuleCache {
    pub fn new(
        engine: &Engine,
        shared: Arc<SharedArtifacts>,
        capacity: usize,
        dir: Option<PathBuf>,
    ) -> Self {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        Self {
            engine: engine.clone(),
            shared,
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

    /// The module for `code_hash`: from this lane's memory, else deserialized from another
    /// lane's compile or the disk cache, else compiled from `code` (once, whatever the number
    /// of lanes asking at the same time), then linked and cached. `compile_weight` is stored
    /// with it. Errors are compile or link failures.
    pub fn load(
        &self,
        code_hash: &Hash,
        code: &[u8],
        compile_weight: u64,
        linker: &Linker<CallCtx>,
    ) -> wasmtime::Result<(Arc<CachedModule>, Source)> {
        if let Some(m) = self.get(code_hash) {
            return Ok((m, Source::Memory));
        }
        let slot = self.shared.slot(code_hash);
        // The per-code-hash compile lock: a second lane missing the same module waits here for
        // the first one's compile and then deserializes its artifact.
        let mut artifact = slot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = self.get(code_hash) {
            return Ok((m, Source::Memory));
        }
        let mut source = Source::Artifact;
        let mut module = artifact.as_ref().and_then(|bytes| {
            // SAFETY: `Module::deserialize` trusts its input to be a wasmtime artifact. These
            // bytes are what `Module::serialize` returned in this process (or a disk file whose
            // checksum `load_disk` verified) for an engine with the same configuration as this
            // lane's (`engine_config` is shared by all lanes).
            #[allow(unsafe_code)]
            let m = unsafe { Module::deserialize(&self.engine, bytes.as_slice()) };
            m.map_err(
                |e| tracing::warn!(error = %e, "cannot load a shared module artifact; recompiling"),
            )
            .ok()
        });
        if module.is_none()
            && let Some((m, bytes)) = self.load_disk(code_hash)
        {
            self.shared.account(code_hash, bytes.len());
            *artifact = Some(Arc::new(bytes));
            module = Some(m);
        }
        let module = match module {
            Some(m) => m,
            None => {
                let m = match Module::from_binary(&self.engine, code) {
                    Ok(m) => m,
                    Err(e) => {
                        drop(artifact);
                        self.shared.forget_empty(code_hash);
                        return Err(e);
                    }
                };
                source = Source::Compiled;
                match m.serialize() {
                    Ok(bytes) => {
                        self.store_disk(code_hash, &bytes);
                        self.shared.account(code_hash, bytes.len());
                        *artifact = Some(Arc::new(bytes));
                    }
                    // Other lanes then compile for themselves: slower, still correct.
                    Err(e) => tracing::warn!(error = %e, "cannot serialize a compiled module"),
                }
                m
            }
        };
        drop(artifact);
        let entries = module
            .exports()
            .filter(|e| e.ty().func().is_some())
            .map(|e| e.name().to_string())
            .collect();
        let cached = Arc::new(CachedModule {
            pre: linker.instantiate_pre(&module)?,
            entries,
            compile_weight,
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
        Ok((cached, source))
    }

    fn path(&self, code_hash: &Hash) -> Option<PathBuf> {
        self.dir
            .as_ref()
            .map(|d| d.join(format!("{}-{}.cwasm", code_hash.to_hex(), self.engine_tag)))
    }

    /// The module in this node's disk cache, and its artifact bytes (checksum stripped).
    fn load_disk(&self, code_hash: &Hash) -> Option<(Module, Vec<u8>)> {
        let path = self.path(code_hash)?;
        let mut bytes = std::fs::read(&path).ok()?;
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
            Ok(m) => {
                bytes.drain(..32);
                Some((m, bytes))
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot load cached module; recompiling");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    fn store_disk(&self, code_hash: &Hash, body: &[u8]) {
        let Some(path) = self.path(code_hash) else {
            return;
        };
        let result = (|| -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            // Unique per writer: several lanes (and processes) may cache the same module at once.
            static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let tmp = path.with_extension(format!("{}.{seq}.tmp", std::process::id()));
            let mut file = Vec::with_capacity(body.len() + 32);
            file.extend_from_slice(&sha256(body).0);
            file.extend_from_slice(body);
            std::fs::write(&tmp, &file)?;
            std::fs::rename(&tmp, &path)
        })();
        if let Err(e) = result {
            // The cache is an optimization: failing to write it only costs a recompile later.
            tracing::warn!(path = %path.display(), error = %e, "cannot write compiled module cache");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Source;
    use crate::vm::engine::{Vm, VmConfig};
    use crate::vm::state::MemState;

    #[test]
    fn one_compile_serves_every_lane_even_when_they_miss_at_once() {
        let vm = Vm::new(VmConfig {
            workers: 4,
            ..VmConfig::default()
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let code = wat::parse_str(
            r#"(module (memory (export "memory") 1) (func (export "run") (local i64) block end))"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let hash = crate::types::sha256(&code);
        let base = MemState::default();
        let sources: Vec<Source> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..vm.lanes())
                .map(|lane| {
                    let (vm, code, hash, base) = (&vm, &code, &hash, &base);
                    s.spawn(move || match vm.module(lane, hash, Some(code), base) {
                        Ok((_, source)) => source,
                        Err(e) => panic!("{e}"),
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| panic!("lane panicked")))
                .collect()
        });
        let compiled = sources.iter().filter(|s| **s == Source::Compiled).count();
        assert_eq!(compiled, 1, "{sources:?}");
        assert!(sources.iter().all(|s| *s != Source::Memory), "{sources:?}");
        // Every lane now has it in memory, with the weight validation computed.
        for lane in 0..vm.lanes() {
            let (m, source) = vm
                .module(lane, &hash, Some(&code), &base)
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(source, Source::Memory);
            assert_eq!(
                m.compile_weight,
                vm.validate(&code).map(|i| i.compile_weight).unwrap_or(0)
            );
        }
    }
}
