//! The ABI v1 host functions: the only way a contract touches the world.
//!
//! Every function here, in order: charges `gas::HOST_CALL` plus its own cost (see `gas.rs`)
//! *before* doing any work; checks sizes against the ABI limits; bounds-checks every guest
//! pointer and length (negative lengths and ranges past the end of memory fail the call, they
//! never panic or wrap); then does its work. Breaking a rule fails the call with a `host:` trap
//! whose message names the rule (our own words and numbers only, never engine text: the message
//! is part of the receipt). Storage writes go to the call's own overlay, so a failed call
//! leaves nothing behind.
//!
//! Per-call totals are bounded as well as single items: event bytes (`MAX_TX_EVENT_BYTES`),
//! distinct keys written (`MAX_TX_WRITES`) and their bytes (`MAX_TX_WRITE_BYTES`), so one
//! receipt and one transaction's writes stay small whatever its gas limit.
//!
//! `memory.grow` is charged `MEMORY_GROW_PAGE` per page added after instantiation. The
//! resource limiter that sees the growth cannot take fuel, so it records the pages
//! (`CallLimits::pending_pages`) and every host call settles them before its own charge; the
//! engine settles the rest when the call returns (`Vm::run`). Both points are deterministic.
//!
//! | function | cost (on top of `HOST_CALL`) |
//! |---|---|
//! | `input_len() -> i32` | 0 |
//! | `input_read(ptr)` | `COPY_BYTE` × input length |
//! | `output(ptr, len)` | `COPY_BYTE` × len |
//! | `storage_read(kp, kl, vp, cap) -> i32` | `STORAGE_READ` + `COPY_BYTE` × (kl + stored value length) |
//! | `storage_write(kp, kl, vp, vl)` | `STORAGE_WRITE` + `STORAGE_WRITE_BYTE` × (kl + vl) |
//! | `storage_remove(kp, kl)` | `STORAGE_REMOVE` + `COPY_BYTE` × kl |
//! | `emit(tp, tl, dp, dl)` | `EMIT` + `EMIT_BYTE` × (tl + dl) |
//! | `log(ptr, len)` | `LOG` + `LOG_BYTE` × len |
//! | `sender(ptr)` | `COPY_BYTE` × 32 |
//! | `block_height() -> i64`, `block_time() -> i64`, `gas_left() -> i64` | 0 |
//! | `revert(ptr, len)` | `COPY_BYTE` × len |

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::{Caller, Linker, Memory, ResourceLimiter, StoreLimits};

use super::gas;
use super::state::{StateError, StateView};
use crate::types::{Address, Bytes, Event, PublicKey};

/// Why a host function stopped the call.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HostTrap {
    #[error("out of gas")]
    OutOfGas,
    #[error("reverted: {0}")]
    Revert(String),
    #[error("host: {0}")]
    Abi(String),
    #[error(transparent)]
    State(StateError),
}

/// A contract's storage overlay: `Some` sets a key, `None` removes it.
pub(crate) type Overlay = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// The store data of one call.
pub(crate) struct CallCtx {
    pub contract: Address,
    pub sender: PublicKey,
    pub height: u64,
    pub time_ms: u64,
    pub input: Vec<u8>,
    pub output: Vec<u8>,
    pub events: Vec<Event>,
    pub logs: Vec<String>,
    /// This call's writes; kept only if it succeeds.
    pub writes: Overlay,
    /// Writes of earlier successful calls to the same contract in this block.
    pub group: Overlay,
    pub base: Arc<dyn StateView>,
    pub memory: Option<Memory>,
    pub limits: CallLimits,
    /// Bytes of topics and data emitted so far.
    pub event_bytes: usize,
    /// Key plus value bytes of `writes` (a removal counts its key).
    pub write_bytes: usize,
}

/// The store's resource limiter: wasmtime's `StoreLimits`, plus a count of the pages
/// `memory.grow` added once the instance is running (see the module comment).
pub(crate) struct CallLimits {
    pub inner: StoreLimits,
    /// False while instantiating: a module's initial pages are not charged.
    pub running: bool,
    /// Pages added and not yet charged.
    pub pending_pages: u64,
    /// Pages of the latest grow, taken back if it fails after being allowed.
    last_grow: u64,
}

impl CallLimits {
    pub fn new(inner: StoreLimits) -> Self {
        CallLimits {
            inner,
            running: false,
            pending_pages: 0,
            last_grow: 0,
        }
    }

    /// Gas owed for pages grown since the last settlement.
    pub fn pending_gas(&self) -> u64 {
        self.pending_pages.saturating_mul(gas::MEMORY_GROW_PAGE)
    }
}

fn pages(bytes: usize) -> u64 {
    (bytes as u64).div_ceil(super::engine::PAGE_BYTES)
}

impl ResourceLimiter for CallLimits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = self.inner.memory_growing(current, desired, maximum)?;
        self.last_grow = 0;
        if ok && self.running {
            self.last_grow = pages(desired).saturating_sub(pages(current));
            self.pending_pages = self.pending_pages.saturating_add(self.last_grow);
        }
        Ok(ok)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        // Allowed above but not done (the pool is sized to the same limit, so this should not
        // happen); the pages were not added, so they are not owed.
        self.pending_pages = self.pending_pages.saturating_sub(self.last_grow);
        self.last_grow = 0;
        self.inner.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.inner.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

type HostResult<T> = wasmtime::Result<T>;

fn abi(msg: impl Into<String>) -> wasmtime::Error {
    wasmtime::Error::new(HostTrap::Abi(msg.into()))
}

fn charge(caller: &mut Caller<'_, CallCtx>, amount: u64) -> HostResult<()> {
    let fuel = caller.get_fuel()?;
    // Pages grown since the last host call are paid first (see the module comment).
    let grown = caller.data().limits.pending_gas();
    caller.data_mut().limits.pending_pages = 0;
    let total = amount.saturating_add(gas::HOST_CALL).saturating_add(grown);
    if fuel < total {
        caller.set_fuel(0)?;
        return Err(wasmtime::Error::new(HostTrap::OutOfGas));
    }
    caller.set_fuel(fuel - total)?;
    Ok(())
}

fn length(len: i32, limit: usize, what: &str) -> HostResult<usize> {
    let len = usize::try_from(len).map_err(|_| abi(format!("{what} length {len} is negative")))?;
    if len > limit {
        return Err(abi(format!("{what} is {len} bytes, limit {limit}")));
    }
    Ok(len)
}

fn memory(caller: &Caller<'_, CallCtx>) -> HostResult<Memory> {
    caller
        .data()
        .memory
        .ok_or_else(|| abi("contract has no memory export"))
}

/// Copies `len` guest bytes at `ptr`; out-of-bounds ranges fail the call.
fn read(caller: &mut Caller<'_, CallCtx>, ptr: i32, len: usize, what: &str) -> HostResult<Vec<u8>> {
    let mem = memory(caller)?;
    let start = ptr as u32 as usize;
    let data = mem.data(&*caller);
    let end = start
        .checked_add(len)
        .filter(|end| *end <= data.len())
        .ok_or_else(|| abi(format!("{what} at {start}..+{len} is outside memory")))?;
    Ok(data[start..end].to_vec())
}

/// Writes `bytes` into guest memory at `ptr`; out-of-bounds ranges fail the call.
fn write(caller: &mut Caller<'_, CallCtx>, ptr: i32, bytes: &[u8], what: &str) -> HostResult<()> {
    let mem = memory(caller)?;
    let start = ptr as u32 as usize;
    let data = mem.data_mut(&mut *caller);
    let end = start
        .checked_add(bytes.len())
        .filter(|end| *end <= data.len())
        .ok_or_else(|| {
            abi(format!(
                "{what} at {start}..+{} is outside memory",
                bytes.len()
            ))
        })?;
    data[start..end].copy_from_slice(bytes);
    Ok(())
}

/// Records a storage write or removal of `key` in the call's overlay, within the per-call caps.
fn record_write(
    c: &mut Caller<'_, CallCtx>,
    key: Vec<u8>,
    value: Option<Vec<u8>>,
) -> HostResult<()> {
    let ctx = c.data_mut();
    let size = |k: &[u8], v: &Option<Vec<u8>>| k.len() + v.as_ref().map_or(0, Vec::len);
    let old = ctx.writes.get(&key).map(|v| size(&key, v));
    if old.is_none() && ctx.writes.len() >= gas::MAX_TX_WRITES {
        return Err(abi(format!(
            "more than {} storage keys written in one call",
            gas::MAX_TX_WRITES
        )));
    }
    let total = ctx.write_bytes - old.unwrap_or(0) + size(&key, &value);
    if total > gas::MAX_TX_WRITE_BYTES {
        return Err(abi(format!(
            "storage writes of one call exceed {} bytes",
            gas::MAX_TX_WRITE_BYTES
        )));
    }
    ctx.write_bytes = total;
    ctx.writes.insert(key, value);
    Ok(())
}

/// Looks a key up through the call overlay, the block overlay, then the parent state.
fn lookup(ctx: &CallCtx, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
    if let Some(v) = ctx.writes.get(key) {
        return Ok(v.clone());
    }
    if let Some(v) = ctx.group.get(key) {
        return Ok(v.clone());
    }
    ctx.base.storage_get(&ctx.contract, key)
}

/// Builds the linker with every ABI v1 function under the module name `accumen`.
pub(crate) fn linker(engine: &wasmtime::Engine) -> wasmtime::Result<Linker<CallCtx>> {
    let mut l = Linker::new(engine);
    l.func_wrap(
        "accumen",
        "input_len",
        |mut c: Caller<'_, CallCtx>| -> HostResult<i32> {
            charge(&mut c, 0)?;
            Ok(c.data().input.len() as i32)
        },
    )?;
    l.func_wrap(
        "accumen",
        "input_read",
        |mut c: Caller<'_, CallCtx>, ptr: i32| -> HostResult<()> {
            let len = c.data().input.len();
            charge(&mut c, gas::cost(0, gas::COPY_BYTE, len))?;
            let input = std::mem::take(&mut c.data_mut().input);
            let r = write(&mut c, ptr, &input, "input_read destination");
            c.data_mut().input = input;
            r
        },
    )?;
    l.func_wrap(
        "accumen",
        "output",
        |mut c: Caller<'_, CallCtx>, ptr: i32, len: i32| -> HostResult<()> {
            let len = length(len, gas::MAX_OUTPUT_LEN, "output")?;
            charge(&mut c, gas::cost(0, gas::COPY_BYTE, len))?;
            let bytes = read(&mut c, ptr, len, "output")?;
            c.data_mut().output = bytes;
            Ok(())
        },
    )?;
    l.func_wrap(
        "accumen",
        "storage_read",
        |mut c: Caller<'_, CallCtx>, kp: i32, kl: i32, vp: i32, cap: i32| -> HostResult<i32> {
            let kl = length(kl, gas::MAX_KEY_LEN, "storage key")?;
            let cap = usize::try_from(cap)
                .map_err(|_| abi(format!("storage_read capacity {cap} is negative")))?;
            charge(&mut c, gas::cost(gas::STORAGE_READ, gas::COPY_BYTE, kl))?;
            let key = read(&mut c, kp, kl, "storage key")?;
            let value =
                lookup(c.data(), &key).map_err(|e| wasmtime::Error::new(HostTrap::State(e)))?;
            let Some(value) = value else { return Ok(-1) };
            // Charged on the stored length, not on what is copied out: the node reads (and
            // copies) the whole value either way, and a zero-capacity read of a 64 KiB value
            // must not cost the same as a read of an empty one.
            charge(&mut c, gas::cost(0, gas::COPY_BYTE, value.len()))?;
            let n = value.len().min(cap);
            write(&mut c, vp, &value[..n], "storage_read destination")?;
            Ok(value.len() as i32)
        },
    )?;
    l.func_wrap(
        "accumen",
        "storage_write",
        |mut c: Caller<'_, CallCtx>, kp: i32, kl: i32, vp: i32, vl: i32| -> HostResult<()> {
            let kl = length(kl, gas::MAX_KEY_LEN, "storage key")?;
            let vl = length(vl, gas::MAX_VALUE_LEN, "storage value")?;
            charge(
                &mut c,
                gas::cost(gas::STORAGE_WRITE, gas::STORAGE_WRITE_BYTE, kl + vl),
            )?;
            let key = read(&mut c, kp, kl, "storage key")?;
            let value = read(&mut c, vp, vl, "storage value")?;
            record_write(&mut c, key, Some(value))
        },
    )?;
    l.func_wrap(
        "accumen",
        "storage_remove",
        |mut c: Caller<'_, CallCtx>, kp: i32, kl: i32| -> HostResult<()> {
            let kl = length(kl, gas::MAX_KEY_LEN, "storage key")?;
            charge(&mut c, gas::cost(gas::STORAGE_REMOVE, gas::COPY_BYTE, kl))?;
            let key = read(&mut c, kp, kl, "storage key")?;
            record_write(&mut c, key, None)
        },
    )?;
    l.func_wrap(
        "accumen",
        "emit",
        |mut c: Caller<'_, CallCtx>, tp: i32, tl: i32, dp: i32, dl: i32| -> HostResult<()> {
            let tl = length(tl, gas::MAX_TOPIC_LEN, "event topic")?;
            let dl = length(dl, gas::MAX_EVENT_DATA_LEN, "event data")?;
            if c.data().events.len() >= gas::MAX_EVENTS {
                return Err(abi(format!("more than {} events", gas::MAX_EVENTS)));
            }
            if c.data().event_bytes + tl + dl > gas::MAX_TX_EVENT_BYTES {
                return Err(abi(format!(
                    "events of one call exceed {} bytes",
                    gas::MAX_TX_EVENT_BYTES
                )));
            }
            charge(&mut c, gas::cost(gas::EMIT, gas::EMIT_BYTE, tl + dl))?;
            let topic = read(&mut c, tp, tl, "event topic")?;
            let data = read(&mut c, dp, dl, "event data")?;
            let contract = c.data().contract;
            c.data_mut().event_bytes += tl + dl;
            c.data_mut().events.push(Event {
                contract,
                topic: Bytes(topic),
                data: Bytes(data),
            });
            Ok(())
        },
    )?;
    l.func_wrap(
        "accumen",
        "log",
        |mut c: Caller<'_, CallCtx>, ptr: i32, len: i32| -> HostResult<()> {
            let len = length(len, gas::MAX_LOG_LEN, "log line")?;
            if c.data().logs.len() >= gas::MAX_LOGS {
                return Err(abi(format!("more than {} log lines", gas::MAX_LOGS)));
            }
            charge(&mut c, gas::cost(gas::LOG, gas::LOG_BYTE, len))?;
            let bytes = read(&mut c, ptr, len, "log line")?;
            let line = String::from_utf8(bytes).map_err(|_| abi("log line is not UTF-8"))?;
            c.data_mut().logs.push(line);
            Ok(())
        },
    )?;
    l.func_wrap(
        "accumen",
        "sender",
        |mut c: Caller<'_, CallCtx>, ptr: i32| -> HostResult<()> {
            charge(&mut c, gas::cost(0, gas::COPY_BYTE, 32))?;
            let sender = c.data().sender;
            write(&mut c, ptr, &sender.0, "sender destination")
        },
    )?;
    l.func_wrap(
        "accumen",
        "block_height",
        |mut c: Caller<'_, CallCtx>| -> HostResult<i64> {
            charge(&mut c, 0)?;
            Ok(c.data().height as i64)
        },
    )?;
    l.func_wrap(
        "accumen",
        "block_time",
        |mut c: Caller<'_, CallCtx>| -> HostResult<i64> {
            charge(&mut c, 0)?;
            Ok(c.data().time_ms as i64)
        },
    )?;
    l.func_wrap(
        "accumen",
        "gas_left",
        |mut c: Caller<'_, CallCtx>| -> HostResult<i64> {
            charge(&mut c, 0)?;
            Ok(i64::try_from(c.get_fuel()?).unwrap_or(i64::MAX))
        },
    )?;
    l.func_wrap(
        "accumen",
        "revert",
        |mut c: Caller<'_, CallCtx>, ptr: i32, len: i32| -> HostResult<()> {
            let len = length(len, gas::MAX_REVERT_LEN, "revert message")?;
            charge(&mut c, gas::cost(0, gas::COPY_BYTE, len))?;
            let bytes = read(&mut c, ptr, len, "revert message")?;
            Err(wasmtime::Error::new(HostTrap::Revert(
                String::from_utf8_lossy(&bytes).into_owned(),
            )))
        },
    )?;
    Ok(l)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::state::MemState;
    use crate::vm::validate::ABI_IMPORTS;

    /// `validate::ABI_IMPORTS` (what admission accepts) and this linker (what execution provides)
    /// are two lists of the same ABI: a function in one but not the other, or with other types,
    /// would admit code that cannot link or refuse code that could. They must match exactly, in
    /// both directions: names, parameter and result types.
    #[test]
    fn linker_defines_exactly_the_abi_imports() {
        let engine = wasmtime::Engine::default();
        let l = linker(&engine).unwrap();
        let ctx = CallCtx {
            contract: Address([0; 32]),
            sender: PublicKey([0; 32]),
            height: 0,
            time_ms: 0,
            input: Vec::new(),
            output: Vec::new(),
            events: Vec::new(),
            logs: Vec::new(),
            writes: Overlay::new(),
            group: Overlay::new(),
            base: Arc::new(MemState::default()),
            memory: None,
            limits: CallLimits::new(StoreLimits::default()),
            event_bytes: 0,
            write_bytes: 0,
        };
        let mut store = wasmtime::Store::new(&engine, ctx);
        let defined: Vec<(String, String, wasmtime::Extern)> = l
            .iter(&mut store)
            .map(|(m, n, e)| (m.to_string(), n.to_string(), e))
            .collect();
        let list = |v: Vec<String>| v.join(", ");
        let mut linked: Vec<String> = defined
            .iter()
            .map(|(module, name, ext)| {
                let wasmtime::ExternType::Func(f) = ext.ty(&store) else {
                    panic!("{module}::{name} is not a function");
                };
                format!(
                    "{module}::{name}({}) -> ({})",
                    list(f.params().map(|t| t.to_string()).collect()),
                    list(f.results().map(|t| t.to_string()).collect())
                )
            })
            .collect();
        let mut table: Vec<String> = ABI_IMPORTS
            .iter()
            .map(|(name, params, results)| {
                format!(
                    "accumen::{name}({}) -> ({})",
                    list(params.iter().map(|t| t.to_string()).collect()),
                    list(results.iter().map(|t| t.to_string()).collect())
                )
            })
            .collect();
        linked.sort();
        table.sort();
        assert_eq!(linked.len(), ABI_IMPORTS.len(), "{linked:#?}");
        assert_eq!(linked, table);
    }
}
