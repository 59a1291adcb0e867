//! Gas: the one table of every charge and every size limit of contract execution.
//!
//! Gas is wasmtime fuel. Executing a WebAssembly instruction costs 1 (wasmtime's default
//! operator cost; `nop`/`drop`-like bookkeeping costs 0). Host functions and the transaction
//! itself charge the amounts below, always *before* doing the work, by taking fuel from the
//! store: a call that cannot pay stops with out-of-gas. `gas_used = gas_limit - fuel left`.
//!
//! Invariant: these numbers are consensus rules. Changing one changes receipts and state roots,
//! so it is a chain upgrade, never a tuning knob; `CONTRACT_ABI.md` documents the same table.

/// Version of the contract ABI this build implements (host imports, entry-point and calling
/// convention, receipt rules; `CONTRACT_ABI.md`). Recorded in a chain's `ChainParams` at genesis:
/// a build with another version refuses to run that chain.
pub const ABI_VERSION: u32 = 1;
/// Version of the gas schedule a new chain gets (`GasSchedule::CURRENT`). A chain records the
/// version it was created with and keeps it: this build runs every version of
/// `GasSchedule::KNOWN_VERSIONS` exactly as it was, and refuses a chain with another one
/// (`chain::params`). Any change here that alters receipts or state is a new schedule version,
/// never an edit of an existing one.
pub const GAS_SCHEDULE_VERSION: u32 = GasSchedule::CURRENT.version();
/// Wasm stack of one call, in bytes (wasmtime's `max_wasm_stack`). Where a deep recursion
/// traps with `stack overflow` depends on it, so it is a chain rule like the gas prices.
pub const MAX_WASM_STACK: u64 = 512 * 1024;

/// Charged to every transaction before anything runs.
pub const TX_BASE: u64 = 5_000;
/// Per byte of call args (carried, hashed and copied by every node).
pub const TX_ARGS_BYTE: u64 = 10;
/// Per byte of deployed code (validated, compiled and stored by every node).
pub const DEPLOY_CODE_BYTE: u64 = 50;

/// Charged on entry to every host function, on top of its own cost. Priced on time: a loop of
/// `gas_left` calls ran at 32M gas/s with a charge of 20, ten times slower per gas than a tight
/// loop of instructions (330M gas/s), so a block of host calls would have taken ten times longer
/// than `MAX_BLOCK_GAS` intends; at 200 both run at about the same gas per second (see
/// `CONTRACT_ABI.md`, "Why 500 million").
pub const HOST_CALL: u64 = 200;
/// Per byte moved between the host and guest memory (`input_read`, `output`, `sender`,
/// `revert` message, and every byte of a value `storage_read` finds).
pub const COPY_BYTE: u64 = 1;
/// `storage_read`, plus `COPY_BYTE` per key byte and per byte of the stored value (whatever
/// part of it the guest asked to have copied).
pub const STORAGE_READ: u64 = 400;
/// `storage_write`, plus `STORAGE_WRITE_BYTE` per key and value byte.
pub const STORAGE_WRITE: u64 = 2_000;
/// Per key and value byte of `storage_write`: state is kept by every node forever.
pub const STORAGE_WRITE_BYTE: u64 = 20;
/// `storage_remove`, plus `COPY_BYTE` per key byte.
pub const STORAGE_REMOVE: u64 = 1_000;
/// `emit`, plus `EMIT_BYTE` per topic and data byte.
pub const EMIT: u64 = 500;
/// Per byte of an event (kept in the receipt).
pub const EMIT_BYTE: u64 = 8;
/// `log`, plus `LOG_BYTE` per byte.
pub const LOG: u64 = 100;
/// Per byte of a log line (kept in the receipt).
pub const LOG_BYTE: u64 = 2;

/// Longest storage key, in bytes.
pub const MAX_KEY_LEN: usize = 256;
/// Largest storage value, in bytes.
pub const MAX_VALUE_LEN: usize = 64 * 1024;
/// Largest return data (`output`), in bytes.
pub const MAX_OUTPUT_LEN: usize = 64 * 1024;
/// Longest event topic, in bytes.
pub const MAX_TOPIC_LEN: usize = 256;
/// Largest event data, in bytes.
pub const MAX_EVENT_DATA_LEN: usize = 16 * 1024;
/// Most events one call may emit.
pub const MAX_EVENTS: usize = 128;
/// Longest log line, in bytes.
pub const MAX_LOG_LEN: usize = 1024;
/// Most log lines one call may write.
pub const MAX_LOGS: usize = 64;
/// Longest revert message, in bytes.
pub const MAX_REVERT_LEN: usize = 1024;

// ---------------------------------------------------------------------------------------------
// Module limits: what the engine can instantiate. `engine_config` builds the pooling allocator
// and the per-call `StoreLimits` from these same constants and `validate` checks every deployed
// module against them, so a module that passes validation always compiles and instantiates
// (`vm::tests::limits_*` instantiate a module at every limit on the real engine).

/// Most tables a contract may declare: the pooling allocator reserves one table per instance
/// slot (`max_tables_per_module`).
pub const MAX_TABLES: u32 = 1;
/// Most elements of a contract's table, initially and after `table.grow` (pool slot size).
pub const MAX_TABLE_ELEMENTS: u64 = 10_000;
/// Most linear memories (the pool reserves one per slot; multi-memory is off).
pub const MAX_MEMORIES: u32 = 1;
/// Most functions (imported and defined) a contract may have. Bounds the instance's
/// `VMContext` (one function reference each) and the per-module compile work.
pub const MAX_FUNCTIONS: u32 = 10_000;
/// Most imports: the ABI has 13 functions; duplicates are legal WebAssembly but useless.
pub const MAX_IMPORTS: u32 = 100;
/// Most function types. Each is registered engine-wide on load.
pub const MAX_TYPES: u32 = 1_000;
/// Most parameters of a function type (also block types): each is a local of the callee.
pub const MAX_TYPE_PARAMS: u32 = 128;
/// Most results of a function or block type (multi-value).
pub const MAX_TYPE_RESULTS: u32 = 16;
/// Most globals a contract may have (16 bytes each in the instance's `VMContext`).
pub const MAX_GLOBALS: u32 = 1_000;
/// Most exports a contract may have.
pub const MAX_EXPORTS: u32 = 1_000;
/// Most element segments; their items together are bounded by `MAX_TABLE_ELEMENTS`.
pub const MAX_ELEMENT_SEGMENTS: u32 = 100;
/// Most data segments.
pub const MAX_DATA_SEGMENTS: u32 = 1_000;
/// Most bytes in all of a contract's data segments together (copied into memory by every
/// instantiation, i.e. every call).
pub const MAX_DATA_BYTES: u64 = 256 * 1024;
/// Largest `VMContext` of one instance, in bytes (the pool's `max_core_instance_size`, its
/// default). The limits above keep every accepted module far below it (under 400 KiB at all
/// of them together).
pub const MAX_INSTANCE_BYTES: usize = 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Compile limits: Cranelift's compile time and memory are not linear in the size of a function
// (wasmtime issues 3523, 4291, 12229): deep nesting with wide `br_table`s and many locals grows
// as their product (every branch edge carries every live local as a block parameter). These
// bound the worst module so that its compile stays within the budget measured by
// `actors/benches/compile.rs` (see CONTRACT_ABI.md, "Deploy limits").

/// Most bytes of one function body. Bounds the work of one Cranelift function compile.
pub const MAX_FUNCTION_BODY_BYTES: u32 = 128 * 1024;
/// Deepest nesting of control frames (`block`, `loop`, `if`) in one function, counting the
/// function's own frame. Bounds the control-flow graph depth Cranelift's SSA builder walks.
pub const MAX_NESTING_DEPTH: u32 = 256;
/// Most control blocks (`block`, `loop`, `if`, `else`) of one function. Compile time grows with
/// the square of this number (measured: 250 -> 0.5 s, 500 -> 2.1 s, 1,000 -> 9.3 s with 1,024
/// live locals, on the loaded 2-core test machine), so it is the limit that bounds one
/// function's compile; the square is also priced (`CompilePrices::block_pair`).
pub const MAX_FUNCTION_BLOCKS: u32 = 500;
/// Most targets of one `br_table` (the default included): each target is a CFG edge.
pub const MAX_BR_TABLE_TARGETS: u32 = 1_024;
/// Most locals of one function, parameters included: each is an SSA variable on every edge.
pub const MAX_LOCALS: u32 = 1_024;
/// Most bytes of all function bodies together (the code section). Today the module size
/// limit (`MAX_CODE_LEN`, 512 KiB) is the same bound; this one stays if that one is raised.
pub const MAX_CODE_BYTES: u64 = 512 * 1024;

// ---------------------------------------------------------------------------------------------
// Compile pricing. Validation measures the code (`CodeStats`) and the chain's gas schedule
// (`GasSchedule`) turns it into a compile weight in gas, calibrated so that a second of
// Cranelift compile costs about as much gas as a second of execution (`actors/benches/compile.rs`
// measures both; CONTRACT_ABI.md has the figures). Deterministic: it depends only on the code
// bytes and the chain's schedule, never on a node's cache, machine or configuration.

/// The compile prices of one gas schedule: what each thing validation counts (`CodeStats`)
/// costs, in gas. A schedule's prices never change once a chain uses it (consensus).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompilePrices {
    /// Per module, whatever its code: engine setup, translating the module's sections, the
    /// trampolines of its imports and exports, publishing the code (mmap, `mprotect`) and
    /// pre-linking it. 0 in schedule 1 (its omission is what schedule 2 fixes).
    pub module: u64,
    /// Per function type the module declares (registered engine-wide, with its trampolines):
    /// measured 78 to 130 µs each in the release build (1,000 types: 78 to 129 ms on the loaded
    /// machine). 0 in schedule 1.
    pub func_type: u64,
    /// Per function compiled (function setup, trampolines, relocations).
    pub function: u64,
    /// Per operator of a function body (instruction selection, register allocation).
    pub operator: u64,
    /// Per local or parameter of a function.
    pub local: u64,
    /// Per control block (`block`, `loop`, `if`, `else`): a CFG node.
    pub block: u64,
    /// Per `br_table` target: a CFG edge.
    pub br_table_target: u64,
    /// Per (local x block) of one function: each local may be a block parameter of every block.
    pub local_block: u64,
    /// Per (local x `br_table` target) of one function: each local may be carried on every
    /// edge.
    pub local_target: u64,
    /// Per (block x block) of one function (the measured quadratic part), plus 1 per
    /// (block x block x local).
    pub block_pair: u64,
}

/// Schedule 1: no per-module base (a tiny module paid almost nothing for a compile of about a
/// millisecond, see `GasSchedule`).
const COMPILE_V1: CompilePrices = CompilePrices {
    module: 0,
    func_type: 0,
    function: 80_000,
    operator: 150,
    local: 200,
    block: 200,
    br_table_target: 200,
    local_block: 50,
    local_target: 50,
    block_pair: 128,
};

/// Schedule 2: schedule 1 plus a per-module base and a per-type charge, measured in the release
/// build (`cargo bench -p accumen-actors --bench compile`, with and without `--generated`;
/// CONTRACT_ABI.md "Compile cost"). A module without functions compiled in 0.6 to 1.6 ms
/// (84k to 224k gas at 140M gas per second): 400,000 covers it twice over at the 140M
/// calibration rate. 1,000 types took 78 to 129 ms (11k to 18k gas each): 20,000 per type. The
/// `br_table` and block terms were re-measured and kept: the shapes at the limits pay 0.6 to 2.4
/// billion gas per second of compile, well above the budget.
const COMPILE_V2: CompilePrices = CompilePrices {
    module: 400_000,
    func_type: 20_000,
    ..COMPILE_V1
};

/// A gas schedule: the prices a chain charges, selected by the version the chain recorded at
/// genesis (`ChainParams::gas_schedule`). Every known schedule stays in this build so that a
/// chain keeps executing exactly as it did when it was created; a new chain gets
/// [`GAS_SCHEDULE_VERSION`].
///
/// - **1**: the first schedule.
/// - **2**: adds a per-module compile base (`CompilePrices::module`) and a per-type charge
///   (`CompilePrices::func_type`). Found by the generated-module fuzzing: a 90 to 180 byte module paid about 10k gas of
///   compile weight (under 0.1 ms at the calibrated 140M gas per second) but took about a
///   millisecond to compile in the release build; a block of them bought far more compile than
///   it paid for.
///
/// Only compile weights differ between the schedules; every other price and limit in this file
/// is the same in both (a schedule that changes one of them must say so here and branch on it).
/// The module-load share a call pays (`module_load`) is derived from the compile weight, so under
/// schedule 2 it includes `module / MODULE_LOAD_DIVISOR` of the base: a cache miss recompiles the
/// whole module, base included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GasSchedule {
    V1,
    V2,
}

/// A chain recorded a gas schedule this build does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown gas schedule {version} (this build knows {known:?})")]
pub struct UnknownGasSchedule {
    pub version: u32,
    pub known: &'static [u32],
}

impl GasSchedule {
    /// The schedule of new chains.
    pub const CURRENT: GasSchedule = GasSchedule::V2;
    /// The versions this build can run.
    pub const KNOWN_VERSIONS: &'static [u32] = &[1, 2];

    /// The schedule a chain's recorded version selects.
    pub fn from_version(version: u32) -> Result<GasSchedule, UnknownGasSchedule> {
        match version {
            1 => Ok(GasSchedule::V1),
            2 => Ok(GasSchedule::V2),
            _ => Err(UnknownGasSchedule {
                version,
                known: Self::KNOWN_VERSIONS,
            }),
        }
    }

    /// The version recorded in `ChainParams::gas_schedule`.
    pub const fn version(self) -> u32 {
        match self {
            GasSchedule::V1 => 1,
            GasSchedule::V2 => 2,
        }
    }

    /// This schedule's compile prices.
    pub fn compile(self) -> &'static CompilePrices {
        match self {
            GasSchedule::V1 => &COMPILE_V1,
            GasSchedule::V2 => &COMPILE_V2,
        }
    }
}

/// Every call pays this fraction (1 / `MODULE_LOAD_DIVISOR`) of its module's compile weight,
/// plus `MODULE_LOAD_BASE`: the amortized cost of loading the module, whether or not this
/// node's cache holds it (see `module_load`).
pub const MODULE_LOAD_DIVISOR: u64 = 64;
/// Per call, on top of the share of the compile weight.
pub const MODULE_LOAD_BASE: u64 = 1_000;

/// What validation measured of one function body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FunctionStats {
    pub body_bytes: u64,
    /// Locals, parameters included.
    pub locals: u64,
    pub operators: u64,
    /// `block`, `loop`, `if`, `else`.
    pub blocks: u64,
    /// Sum over the body's `br_table`s of their targets, default included.
    pub br_table_targets: u64,
}

/// What validation measured of a module's code, summed over its function bodies. Schedule
/// independent: every schedule prices the same counts (`CodeStats::weight`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CodeStats {
    /// Function types the module declares (its type section).
    pub types: u64,
    pub functions: u64,
    pub body_bytes: u64,
    pub locals: u64,
    pub operators: u64,
    pub blocks: u64,
    pub br_table_targets: u64,
    /// Sum over functions of `locals * blocks`.
    pub local_blocks: u64,
    /// Sum over functions of `locals * br_table_targets`.
    pub local_targets: u64,
    /// Sum over functions of `blocks^2`.
    pub block_pairs: u64,
    /// Sum over functions of `blocks^2 * locals`.
    pub block_pair_locals: u64,
}

impl CodeStats {
    pub fn add_function(&mut self, f: FunctionStats) {
        self.functions += 1;
        self.body_bytes = self.body_bytes.saturating_add(f.body_bytes);
        self.locals = self.locals.saturating_add(f.locals);
        self.operators = self.operators.saturating_add(f.operators);
        self.blocks = self.blocks.saturating_add(f.blocks);
        self.br_table_targets = self.br_table_targets.saturating_add(f.br_table_targets);
        self.local_blocks = self
            .local_blocks
            .saturating_add(f.locals.saturating_mul(f.blocks));
        self.local_targets = self
            .local_targets
            .saturating_add(f.locals.saturating_mul(f.br_table_targets));
        let pairs = f.blocks.saturating_mul(f.blocks);
        self.block_pairs = self.block_pairs.saturating_add(pairs);
        self.block_pair_locals = self
            .block_pair_locals
            .saturating_add(pairs.saturating_mul(f.locals));
    }

    /// The module's compile weight under `schedule`, in gas. Integer arithmetic on counts of
    /// the code only, so every node computes the same number. No term can saturate within the
    /// deploy limits (the largest, `block_pair_locals`, is below 10,000 functions x 500^2
    /// blocks x 1,024 locals < 2^42), so the sum per term equals the sum per function.
    pub fn weight(&self, schedule: GasSchedule) -> u64 {
        let p = schedule.compile();
        let terms = [
            (p.function, self.functions),
            (p.operator, self.operators),
            (p.local, self.locals),
            (p.block, self.blocks),
            (p.br_table_target, self.br_table_targets),
            (p.local_block, self.local_blocks),
            (p.local_target, self.local_targets),
            (p.block_pair, self.block_pairs),
            (1, self.block_pair_locals),
        ];
        let module = p
            .module
            .saturating_add(p.func_type.saturating_mul(self.types));
        terms.iter().fold(module, |w, (price, n)| {
            w.saturating_add(price.saturating_mul(*n))
        })
    }
}

/// The intrinsic charge of a deploy: base, code bytes, and the code's compile weight.
pub fn deploy_intrinsic(code_len: usize, compile_weight: u64) -> u64 {
    intrinsic(0, code_len).saturating_add(compile_weight)
}

/// What every call pays to have its module loaded, derived from the module's compile weight
/// only. Gas is consensus, so the charge cannot depend on whether this node's cache holds the
/// module: every call pays the same small share, which amortizes the compiles that cache misses
/// cause (a module must be deployed, paying its full weight, before it can be called; the
/// in-memory cache holds 1,024 modules and persistent nodes keep compiled modules on disk).
pub fn module_load(compile_weight: u64) -> u64 {
    MODULE_LOAD_BASE.saturating_add(compile_weight / MODULE_LOAD_DIVISOR)
}

/// The intrinsic charge of a transaction: base, plus its args or code.
pub fn intrinsic(args_len: usize, code_len: usize) -> u64 {
    TX_BASE
        .saturating_add(TX_ARGS_BYTE.saturating_mul(args_len as u64))
        .saturating_add(DEPLOY_CODE_BYTE.saturating_mul(code_len as u64))
}

/// `base + per_byte * bytes`, saturating (a saturated charge simply runs out of gas).
pub fn cost(base: u64, per_byte: u64, bytes: usize) -> u64 {
    base.saturating_add(per_byte.saturating_mul(bytes as u64))
}

/// Per 64 KiB page a call adds with `memory.grow` (the pages a module starts with are free: they
/// are bounded by `wasm.max_memory_pages` and reset by the pool). The node commits and zeroes the
/// page and the kernel faults it in on first touch (and again after the pool resets it): growing
/// by 60 pages and touching each 4 KiB took 8.4 ms, 140 µs a page, where one unit of gas is about
/// 3 ns of a tight loop on the same machine; 50,000 gas is 150 µs.
/// `ResourceLimiter::memory_growing` cannot take fuel (and wasmtime's own
/// `VariableOperatorCost::memory_grow_per_page` is a `u8`, at most 255), so the engine records the
/// pages and charges them at the next host call or when the call returns, whichever comes first.
pub const MEMORY_GROW_PAGE: u64 = 50_000;

/// Most bytes of events (topics and data together) one call may emit.
pub const MAX_TX_EVENT_BYTES: usize = 64 * 1024;
/// Most distinct storage keys one call may write or remove.
pub const MAX_TX_WRITES: usize = 256;
/// Most bytes (key plus value of every distinct key written; a removal counts its key) one
/// call may leave in storage.
pub const MAX_TX_WRITE_BYTES: usize = 256 * 1024;

/// Most gas one block may ask for: the sum of its transactions' declared gas limits. A chain
/// rule (every node selects and checks blocks with it), so a block's execution time is bounded
/// before it starts, whatever its transactions do. Sized so that a full block runs in about one
/// second of one core: a whole block of tight loops took 1.4 s, of host calls 1.1 s, on the
/// loaded 2-core reference machine (`cargo bench --bench engine -- fuel`); see `CONTRACT_ABI.md`.
pub const MAX_BLOCK_GAS: u64 = 500_000_000;
/// Most bytes of canonically encoded transactions in one block; far below the
/// `MAX_BLOCK_BYTES` a block may decode to, so a full block always decodes.
pub const MAX_BLOCK_TX_BYTES: u64 = 16 * 1024 * 1024;
/// Most bytes of results one block may produce: the canonical encoding of every receipt plus,
/// for every storage write it keeps, 32 (the contract address) + key + value bytes. With the
/// per-call caps above one transaction produces well under 1 MiB, so the first transaction of a
/// block always fits.
pub const MAX_BLOCK_RESULT_BYTES: u64 = 16 * 1024 * 1024;

/// A transaction's size as `MAX_BLOCK_TX_BYTES` counts it: its canonical encoding, signature
/// included.
pub fn tx_bytes(tx: &crate::types::SignedTx) -> u64 {
    // The chain types always encode (see `types::codec::encode`); a failure would mean a broken
    // Serialize impl, and counting it as the whole block keeps such a transaction out.
    postcard::experimental::serialized_size(tx).map_or(MAX_BLOCK_TX_BYTES, |n| n as u64)
}
