//! The contract engine: one wasmtime `Engine` per worker lane (all with the same configuration),
//! and single calls in fresh stores. A module is compiled once for all lanes (the others
//! deserialize its artifact, see `cache.rs`); compile failures of validated code are
//! `VmError::Compile`, for the caller to drop the transaction rather than fail the block.
//!
//! Determinism settings, fixed: fuel metering (gas), NaN canonicalization, no threads, no
//! relaxed SIMD, one linear memory per contract. The pooling allocators hold every linear memory
//! the engine can have at once: `execution.memory_limit / wasm.max_memory_pages` slots, split
//! evenly over the `execution.workers` lanes (at least one each), so the memory bound is exact. An epoch ticker
//! thread gives each call a wall-clock deadline (`execution.timeout`, in epoch ticks, chosen per
//! call in `RunInput::deadline_ticks`); that deadline is a backstop for a stuck or far too slow
//! node, never a contract result: a call that hits it is reported as `RunEnd::Timeout`, leaves no
//! trace, and the caller decides: block building drops its transaction, block verification runs
//! it again with a larger deadline (`vm/block.rs`).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, Linker, OptLevel, PoolingAllocationConfig,
    StoreLimitsBuilder, Trap,
};

use super::cache::{CachedModule, ModuleCache, SharedArtifacts, Source};
use super::gas;
use super::host::{self, CallCtx, CallLimits, HostTrap, Overlay};
use super::state::{StateError, StateView};
use super::validate::{ModuleInfo, ValidationError, validate};
use crate::types::{Address, Event, Hash, PublicKey};

/// Bytes in a WebAssembly page.
pub const PAGE_BYTES: u64 = 65_536;
/// How often the epoch ticker advances; the timeout resolution.
const EPOCH_TICK: Duration = Duration::from_millis(10);
/// Most memory slots the pool reserves address space for, however large the limit.
const MAX_POOL_SLOTS: u64 = 256;

/// Engine settings: the chain's page and stack limits (`ChainParams::vm_config`; a consensus
/// rule, never a node's own `wasm.max_memory_pages` once its chain exists) and the node's own
/// resources (`execution.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmConfig {
    /// The chain's `max_memory_pages`: most 64 KiB pages one call's memory may have (deploy
    /// validation and execution).
    pub max_memory_pages: u32,
    /// The chain's `max_wasm_stack`: bytes of Wasm stack one call may use.
    pub max_wasm_stack: usize,
    /// The chain's `gas_schedule` version (`gas::GasSchedule`): what deploys and calls pay for
    /// compiles. A version this build does not know is refused (`check`).
    pub gas_schedule: u32,
    /// `execution.memory_limit`: MB of linear memory all concurrent calls may hold together.
    pub memory_limit_mb: u64,
    /// `execution.workers`: calls that run at once.
    pub workers: usize,
    /// `execution.timeout`: wall-clock backstop per call.
    pub timeout: Duration,
    /// Where compiled modules are kept across restarts (persistent nodes).
    pub cache_dir: Option<PathBuf>,
    /// Compiled modules kept in memory.
    pub module_cache_entries: usize,
}

impl Default for VmConfig {
    fn default() -> Self {
        Self {
            max_memory_pages: 64,
            max_wasm_stack: gas::MAX_WASM_STACK as usize,
            gas_schedule: gas::GAS_SCHEDULE_VERSION,
            memory_limit_mb: 128,
            workers: 4,
            timeout: Duration::from_secs(5),
            cache_dir: None,
            module_cache_entries: 1024,
        }
    }
}

/// A configuration the engine cannot run with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("this chain's {0}: run it with an accumen build that knows its gas schedule")]
    GasSchedule(#[from] gas::UnknownGasSchedule),
    #[error("wasm.max_memory_pages must be between 1 and 65536, got {0}")]
    MemoryPages(u32),
    #[error("execution.workers must be at least 1")]
    Workers,
    #[error("execution.timeout must be at least {}ms", EPOCH_TICK.as_millis())]
    Timeout,
    #[error(
        "execution.memory_limit = {limit_mb} MB cannot hold execution.workers = {workers} calls of \
         wasm.max_memory_pages = {pages} pages (64 KiB each): needs at least {needed_mb} MB"
    )]
    MemoryLimit {
        limit_mb: u64,
        workers: usize,
        pages: u32,
        needed_mb: u64,
    },
}

impl VmConfig {
    fn max_memory_bytes(&self) -> u64 {
        u64::from(self.max_memory_pages) * PAGE_BYTES
    }

    /// Checks that the gas schedule is known and the workers fit in the memory limit; returns
    /// the pool's slot count.
    pub fn check(&self) -> Result<u32, ConfigError> {
        gas::GasSchedule::from_version(self.gas_schedule)?;
        if self.max_memory_pages == 0 || self.max_memory_pages > 65_536 {
            return Err(ConfigError::MemoryPages(self.max_memory_pages));
        }
        if self.workers == 0 {
            return Err(ConfigError::Workers);
        }
        if self.timeout < EPOCH_TICK {
            return Err(ConfigError::Timeout);
        }
        let slots = self.memory_limit_mb.saturating_mul(1024 * 1024) / self.max_memory_bytes();
        if slots < self.workers as u64 {
            let needed = (self.workers as u64) * self.max_memory_bytes();
            return Err(ConfigError::MemoryLimit {
                limit_mb: self.memory_limit_mb,
                workers: self.workers,
                pages: self.max_memory_pages,
                needed_mb: needed.div_ceil(1024 * 1024),
            });
        }
        Ok(slots.min(MAX_POOL_SLOTS.max(self.workers as u64)) as u32)
    }
}

/// A node-side failure: the block must be aborted and retried, never half-committed.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("engine: {0}")]
    Engine(String),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("all {0} instance slots are busy; retry later")]
    Busy(u32),
    #[error("stored code for {0} is missing")]
    MissingCode(Hash),
    #[error("execution timeout")]
    Timeout,
    /// A query's args are longer than a call's may be (`MAX_ARGS_LEN`).
    #[error("call args are {len} bytes, limit {limit}")]
    ArgsTooLarge { len: usize, limit: usize },
    /// Code that passed validation failed to compile or link (a wasmtime limit validation does
    /// not know of, or a changed rule for code stored before it). Not the transaction's
    /// deterministic result: block execution drops the transaction instead of aborting the
    /// block.
    #[error("compiling {code_hash}: {reason}")]
    Compile { code_hash: Hash, reason: String },
    /// A deploy's code was refused (`Vm::precompile`).
    #[error("invalid contract: {0}")]
    Invalid(#[from] ValidationError),
}

fn engine_err(e: impl std::fmt::Display) -> VmError {
    VmError::Engine(e.to_string())
}

/// How one call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RunEnd {
    Success,
    OutOfGas,
    Reverted(String),
    Trapped(String),
    /// Hit the wall-clock deadline: not a deterministic result.
    Timeout,
    /// Failed for a reason that is not the contract's (engine text, for the log only): the
    /// transaction is dropped from the block, never recorded.
    Fault(String),
}

/// Everything one call produced.
pub(crate) struct RunResult {
    pub end: RunEnd,
    /// Fuel consumed by instructions and host calls.
    pub fuel_used: u64,
    pub output: Vec<u8>,
    pub events: Vec<Event>,
    pub logs: Vec<String>,
    /// The call's own writes (meaningful only on success).
    pub writes: Overlay,
    /// The block overlay handed in, handed back untouched.
    pub group: Overlay,
}

/// Inputs of one call.
pub(crate) struct RunInput {
    pub contract: Address,
    pub sender: PublicKey,
    pub height: u64,
    pub time_ms: u64,
    pub input: Vec<u8>,
    pub fuel: u64,
    pub group: Overlay,
    /// Epoch ticks the call may run (`Vm::deadline_ticks` for `execution.timeout`).
    pub deadline_ticks: u64,
}

struct Ticker {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// One worker's engine: its own wasmtime `Engine`, instance pool, linker and module cache.
///
/// Why one per worker: instantiating touches engine-wide shared state (type and module
/// registries, pool index allocator, reference counts) on every call; with two threads on one
/// engine those cache lines bounce between cores and two workers ran no faster than one
/// (5,000 calls: 32 ms with 1 or 2 workers). Two independent engines ran the same work in 17.6 ms.
/// All lanes share one configuration, so they compute identical results.
struct Lane {
    engine: Engine,
    linker: Linker<CallCtx>,
    cache: ModuleCache,
}

/// The contract engine.
pub struct Vm {
    lanes: Vec<Lane>,
    /// Round-robin lane choice for read-only queries.
    next_query_lane: std::sync::atomic::AtomicUsize,
    config: VmConfig,
    /// `config.gas_schedule`, checked by `VmConfig::check`.
    schedule: gas::GasSchedule,
    slots: u32,
    deadline_ticks: u64,
    /// Calls finished (any outcome) and modules loaded, for the supervisor's busy-or-stuck
    /// check; never consensus.
    progress: Arc<std::sync::atomic::AtomicU64>,
    _ticker: Ticker,
}

impl std::fmt::Debug for Vm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vm")
            .field("config", &self.config)
            .field("slots", &self.slots)
            .finish_non_exhaustive()
    }
}

impl Vm {
    /// Builds one engine per worker (each with its share of the instance pool) and the epoch
    /// ticker that drives their deadlines.
    pub fn new(config: VmConfig) -> Result<Vm, VmError> {
        let slots = config.check()?;
        let schedule =
            gas::GasSchedule::from_version(config.gas_schedule).map_err(ConfigError::from)?;
        let lanes_n = config.workers;
        // `check` guarantees slots >= workers, so every lane gets at least one slot and the
        // lanes together never hold more than `execution.memory_limit`.
        let per_lane = (slots / lanes_n as u32).max(1);
        let mut lanes = Vec::with_capacity(lanes_n);
        // One compile per module for all lanes: they share the serialized artifacts.
        let shared = Arc::new(SharedArtifacts::default());
        for _ in 0..lanes_n {
            let engine = Engine::new(&engine_config(&config, per_lane)).map_err(engine_err)?;
            let linker = host::linker(&engine).map_err(engine_err)?;
            let cache = ModuleCache::new(
                &engine,
                shared.clone(),
                config.module_cache_entries,
                config.cache_dir.clone(),
            );
            lanes.push(Lane {
                engine,
                linker,
                cache,
            });
        }

        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
            let engines: Vec<Engine> = lanes.iter().map(|l| l.engine.clone()).collect();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("accumen-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        for e in &engines {
                            e.increment_epoch();
                        }
                    }
                })
                .map_err(engine_err)?
        };
        let deadline_ticks =
            (config.timeout.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64 + 1;
        Ok(Vm {
            lanes,
            next_query_lane: std::sync::atomic::AtomicUsize::new(0),
            config,
            schedule,
            slots: per_lane * lanes_n as u32,
            deadline_ticks,
            progress: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            _ticker: Ticker {
                stop,
                handle: Some(handle),
            },
        })
    }

    /// Contract calls finished so far, whatever their outcome, plus each `execution.timeout`
    /// slice a longer (verification) deadline lets a running call go on. Either way a busy
    /// engine raises this at least once per `execution.timeout`; the supervisor reads it to
    /// tell a busy executor from a stuck one.
    pub fn progress(&self) -> u64 {
        self.progress.load(Ordering::Relaxed)
    }

    /// Counts work done outside contract calls (a follower's signature checks of a large
    /// block), so the supervisor sees a busy executor, not a stuck one.
    pub fn note_progress(&self) {
        self.progress.fetch_add(1, Ordering::Relaxed);
    }

    /// The per-call deadline `execution.timeout` gives, in epoch ticks: what block building and
    /// queries use, and what verification starts from.
    pub(crate) fn deadline_ticks(&self) -> u64 {
        self.deadline_ticks
    }

    /// How long a call may run with a deadline of `ticks` epoch ticks, at most (for logs).
    pub(crate) fn deadline_of(ticks: u64) -> Duration {
        EPOCH_TICK.saturating_mul(u32::try_from(ticks).unwrap_or(u32::MAX))
    }

    /// Number of lanes (one per `execution.workers`).
    pub(crate) fn lanes(&self) -> usize {
        self.lanes.len()
    }

    /// The lane the next read-only query runs on.
    pub(crate) fn query_lane(&self) -> usize {
        self.next_query_lane.fetch_add(1, Ordering::Relaxed) % self.lanes.len()
    }

    fn lane(&self, i: usize) -> &Lane {
        // Callers pass indices below `lanes()`; fall back to lane 0 rather than panic.
        self.lanes.get(i).unwrap_or(&self.lanes[0])
    }

    /// The settings this engine runs with.
    pub fn config(&self) -> &VmConfig {
        &self.config
    }

    /// Instance slots in the pool (concurrent calls the memory limit allows).
    pub fn slots(&self) -> u32 {
        self.slots
    }

    /// Compiled modules held in memory (by the fullest lane).
    pub fn cached_modules(&self) -> usize {
        self.lanes.iter().map(|l| l.cache.len()).max().unwrap_or(0)
    }

    /// The chain's gas schedule this engine prices compiles with.
    pub fn gas_schedule(&self) -> gas::GasSchedule {
        self.schedule
    }

    /// Deploy-time validation of contract code against this engine and its limits, its compile
    /// weight priced with the chain's gas schedule (deploy admission, deploy execution and the
    /// module-load share of calls all take the weight from here).
    pub fn validate(&self, code: &[u8]) -> Result<ModuleInfo, ValidationError> {
        validate(
            &self.lane(0).engine,
            code,
            self.config.max_memory_pages,
            self.schedule,
        )
    }

    /// The compiled module for `code_hash`, compiling `code` (or loading the stored code) on a
    /// miss, and how it was obtained. On a miss the code is validated again, which yields its
    /// compile weight (deterministic: it depends on the code only) and keeps the invariant
    /// that only validated code is compiled. Validated code that still fails to compile is
    /// `VmError::Compile`.
    pub(crate) fn module(
        &self,
        lane: usize,
        code_hash: &Hash,
        code: Option<&[u8]>,
        base: &dyn StateView,
    ) -> Result<(Arc<CachedModule>, Source), VmError> {
        let lane = self.lane(lane);
        if let Some(m) = lane.cache.get(code_hash) {
            return Ok((m, Source::Memory));
        }
        let stored;
        let code = match code {
            Some(c) => c,
            None => {
                stored = base
                    .code(code_hash)?
                    .ok_or(VmError::MissingCode(*code_hash))?;
                &stored
            }
        };
        let compile_err = |reason: String| VmError::Compile {
            code_hash: *code_hash,
            reason,
        };
        let info = self
            .validate(code)
            .map_err(|e| compile_err(format!("stored code no longer validates: {e}")))?;
        let loaded = lane
            .cache
            .load(code_hash, code, info.compile_weight, &lane.linker)
            .map_err(|e| compile_err(format!("{e:#}")));
        // A compile (bounded by the deploy limits, but no call) is work done too: without this a
        // block of deploys without `init` would show the supervisor no progress at all.
        self.progress.fetch_add(1, Ordering::Relaxed);
        loaded
    }

    /// Validates `code` and compiles it into the module cache (shared by all lanes) without
    /// running anything: what a deploy does before `init`. For warming the cache off the block
    /// path and for the compile benchmark.
    pub fn precompile(&self, code: &[u8]) -> Result<ModuleInfo, VmError> {
        let info = self.validate(code)?;
        let code_hash = crate::types::sha256(code);
        let lane = self.lane(0);
        lane.cache
            .load(&code_hash, code, info.compile_weight, &lane.linker)
            .map_err(|e| VmError::Compile {
                code_hash,
                reason: format!("{e:#}"),
            })?;
        Ok(info)
    }

    /// Runs `entry` of `module` in a fresh store.
    ///
    /// Hands the block overlay (`input.group`) back in every `Ok` result, whatever the call did.
    /// `Err` only for node faults that abort the block (storage errors, no free instance slot);
    /// a failure that is not the contract's but concerns this transaction only (the engine
    /// refusing to instantiate validated code, a missing entry export) is `RunEnd::Fault`.
    pub(crate) fn run(
        &self,
        lane: usize,
        module: &CachedModule,
        entry: &str,
        base: Arc<dyn StateView>,
        input: RunInput,
    ) -> Result<RunResult, VmError> {
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.config.max_memory_bytes() as usize)
            .table_elements(gas::MAX_TABLE_ELEMENTS as usize)
            .instances(1)
            .memories(gas::MAX_MEMORIES as usize)
            .tables(gas::MAX_TABLES as usize)
            .build();
        let ctx = CallCtx {
            contract: input.contract,
            sender: input.sender,
            height: input.height,
            time_ms: input.time_ms,
            input: input.input,
            output: Vec::new(),
            events: Vec::new(),
            logs: Vec::new(),
            writes: Overlay::new(),
            group: input.group,
            base,
            memory: None,
            limits: CallLimits::new(limits),
            event_bytes: 0,
            write_bytes: 0,
        };
        let mut store = wasmtime::Store::new(&self.lane(lane).engine, ctx);
        store.limiter(|c| &mut c.limits);
        let mut end = None;
        if let Err(e) = store.set_fuel(input.fuel) {
            end = Some(RunEnd::Fault(format!("setting fuel: {e:#}")));
        }
        // The deadline runs in slices of `execution.timeout`: a verification deadline (several
        // times longer, see `Vm::verify_block`) reports progress after each slice, so the
        // supervisor sees a call that is still within its deadline as busy, not stuck (its
        // heartbeat deadline is above `execution.timeout`). Building and queries have one slice.
        // Which slice a call ends in never changes its result: only fuel decides how a call
        // that finishes ends, and one that runs out of slices is a timeout, not a result.
        let total = input.deadline_ticks.max(1);
        let slice = self.deadline_ticks.clamp(1, total);
        store.set_epoch_deadline(slice);
        if total > slice {
            let progress = self.progress.clone();
            let mut left = total - slice;
            store.epoch_deadline_callback(move |_| {
                if left == 0 {
                    return Ok(wasmtime::UpdateDeadline::Interrupt);
                }
                let step = left.min(slice);
                left -= step;
                progress.fetch_add(1, Ordering::Relaxed);
                Ok(wasmtime::UpdateDeadline::Continue(step))
            });
        }

        let result = match end {
            Some(_) => Ok(()),
            None => match module.pre.instantiate(&mut store) {
                Ok(instance) => {
                    let memory = instance.get_memory(&mut store, "memory");
                    let data = store.data_mut();
                    data.memory = memory;
                    data.limits.running = true;
                    match instance.get_typed_func::<(), ()>(&mut store, entry) {
                        Ok(f) => f.call(&mut store, ()),
                        Err(e) => {
                            end = Some(RunEnd::Fault(format!(
                                "entry {entry:?} is not a () -> () export: {e:#}"
                            )));
                            Ok(())
                        }
                    }
                }
                Err(e) => {
                    if e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
                        .is_some()
                    {
                        return Err(VmError::Busy(self.slots));
                    }
                    // Validation guarantees validated code instantiates; if the engine still
                    // refuses, that is not a contract result.
                    end = Some(RunEnd::Fault(format!("instantiation failed: {e:#}")));
                    Ok(())
                }
            },
        };
        // One more call finished, whatever its end: the supervisor reads this as progress.
        self.progress.fetch_add(1, Ordering::Relaxed);
        let fuel_left = store.get_fuel().unwrap_or(0);
        let mut fuel_used = input.fuel.saturating_sub(fuel_left);
        let mut end = match (end, result) {
            (Some(end), _) => end,
            (None, Ok(())) => RunEnd::Success,
            (None, Err(e)) => classify(e)?,
        };
        // Pages grown since the last host call are charged now (see host.rs).
        let grown = store.data().limits.pending_gas();
        if grown > 0
            && matches!(
                end,
                RunEnd::Success | RunEnd::Reverted(_) | RunEnd::Trapped(_)
            )
        {
            if grown > fuel_left {
                end = RunEnd::OutOfGas;
                fuel_used = input.fuel;
            } else {
                fuel_used += grown;
            }
        }
        let ctx = store.into_data();
        Ok(RunResult {
            end,
            fuel_used,
            output: ctx.output,
            events: ctx.events,
            logs: ctx.logs,
            writes: ctx.writes,
            group: ctx.group,
        })
    }
}

/// The one engine configuration every lane uses; `slots` is the lane's share of the pool.
///
/// Every per-module limit here comes from the module limits in `gas.rs`, the same constants
/// `validate` checks, so validated code always instantiates.
fn engine_config(config: &VmConfig, slots: u32) -> Config {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_core_instances(slots)
        .total_memories(slots.saturating_mul(gas::MAX_MEMORIES))
        .total_tables(slots.saturating_mul(gas::MAX_TABLES))
        .total_component_instances(0)
        .max_memories_per_module(gas::MAX_MEMORIES)
        .max_tables_per_module(gas::MAX_TABLES)
        .table_elements(gas::MAX_TABLE_ELEMENTS as usize)
        .max_core_instance_size(gas::MAX_INSTANCE_BYTES)
        .max_memory_size(config.max_memory_bytes() as usize)
        // Small contracts reuse their first pages without a syscall on every call.
        .linear_memory_keep_resident(PAGE_BYTES as usize * 4)
        .table_keep_resident(16 * 1024);

    let mut c = Config::new();
    // Threads are not compiled in (wasmtime feature `threads` is off), so no shared memory.
    c.consume_fuel(true)
        .epoch_interruption(true)
        .cranelift_nan_canonicalization(true)
        .cranelift_opt_level(OptLevel::Speed)
        .wasm_relaxed_simd(false)
        .wasm_multi_memory(false)
        .wasm_memory64(false)
        .max_wasm_stack(config.max_wasm_stack)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    c
}

/// Maps a failed call to its deterministic end, or a node error.
///
/// Receipts carry only the fixed strings below (see `types::trap_kind`) and our own
/// host-rule messages, never wasmtime's text: an engine upgrade that rewords an error must not
/// change receipts roots. Engine text goes to `RunEnd::Fault`, which is logged, not recorded.
fn classify(e: wasmtime::Error) -> Result<RunEnd, VmError> {
    use crate::types::trap_kind as k;
    if let Some(h) = e.downcast_ref::<HostTrap>() {
        return Ok(match h {
            HostTrap::OutOfGas => RunEnd::OutOfGas,
            HostTrap::Revert(m) => RunEnd::Reverted(m.clone()),
            HostTrap::Abi(m) => RunEnd::Trapped(format!("{}{m}", k::HOST_PREFIX)),
            HostTrap::State(s) => return Err(VmError::State(s.clone())),
        });
    }
    if let Some(t) = e.downcast_ref::<Trap>() {
        let kind = match t {
            Trap::OutOfFuel => return Ok(RunEnd::OutOfGas),
            Trap::Interrupt => return Ok(RunEnd::Timeout),
            Trap::StackOverflow => k::STACK_OVERFLOW,
            Trap::MemoryOutOfBounds => k::MEMORY_OUT_OF_BOUNDS,
            Trap::TableOutOfBounds => k::TABLE_OUT_OF_BOUNDS,
            Trap::IndirectCallToNull => k::INDIRECT_CALL_TO_NULL,
            Trap::BadSignature => k::BAD_SIGNATURE,
            Trap::IntegerOverflow => k::INTEGER_OVERFLOW,
            Trap::IntegerDivisionByZero => k::DIVISION_BY_ZERO,
            Trap::BadConversionToInteger => k::BAD_CONVERSION,
            Trap::UnreachableCodeReached => k::UNREACHABLE,
            Trap::HeapMisaligned => k::HEAP_MISALIGNED,
            Trap::NullReference => k::NULL_REFERENCE,
            Trap::AllocationTooLarge => k::ALLOCATION_TOO_LARGE,
            // Traps of proposals the engine has switched off (GC, components, stack switching):
            // validated code cannot raise them; one fixed kind if a future engine ever does.
            _ => k::OTHER,
        };
        return Ok(RunEnd::Trapped(kind.to_string()));
    }
    // Anything else is not a contract result: validation guarantees validated code runs.
    Ok(RunEnd::Fault(format!("{e:#}")))
}
