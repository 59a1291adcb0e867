//! Gas: the one table of every charge and every size limit of contract execution.
//!
//! Gas is wasmtime fuel. Executing a WebAssembly instruction costs 1 (wasmtime's default
//! operator cost; `nop`/`drop`-like bookkeeping costs 0). Host functions and the transaction
//! itself charge the amounts below, always *before* doing the work, by taking fuel from the
//! store: a call that cannot pay stops with out-of-gas. `gas_used = gas_limit - fuel left`.
//!
//! Invariant: these numbers are consensus rules. Changing one changes receipts and state roots,
//! so it is a chain upgrade, never a tuning knob; `CONTRACT_ABI.md` documents the same table.

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

/// Most functions (imported and defined) a contract may have.
pub const MAX_FUNCTIONS: u32 = 10_000;
/// Most globals a contract may have.
pub const MAX_GLOBALS: u32 = 1_000;
/// Most elements of a contract's table.
pub const MAX_TABLE_ELEMENTS: u64 = 10_000;
/// Most bytes in all of a contract's data segments together.
pub const MAX_DATA_BYTES: u64 = 1024 * 1024;
/// Most exports a contract may have.
pub const MAX_EXPORTS: u32 = 1_000;

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
