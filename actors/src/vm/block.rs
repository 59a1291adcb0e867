//! Block execution: orders, checks and runs a block's transactions and produces its receipts
//! and write set.
//!
//! Invariants:
//! - Deterministic: the same parent state and transactions give the same receipts, write set and
//!   hence state root whatever `execution.workers` is. Contracts cannot call each other, so the
//!   transactions are grouped by the contract they touch (a deploy belongs to the address it
//!   creates); each group runs in block order on one worker; groups run in parallel and their
//!   results are merged back in block order.
//! - Admission checks that depend on order (nonces, per sender) run first, sequentially, in block
//!   order: a transaction with the wrong nonce, another chain's id, an expiry before the block
//!   time or a gas limit above `execution.gas_limit` is dropped, not executed, and uses no nonce.
//!   Every included transaction uses its nonce, whatever its receipt says.
//! - A failed call (revert, trap, out of gas) keeps nothing but its receipt and its gas.
//! - A call that hits the wall-clock deadline is a node problem, not a result: it is dropped with
//!   an ERROR log ("execution timeout") and the block is executed again without it, so its nonce
//!   and any later transaction of the same sender are handled as if it had never been there.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::cache::{CachedModule, Source};
use super::engine::{RunEnd, RunInput, RunResult, Vm, VmError};
use super::gas;
use super::host::Overlay;
use super::state::StateView;
use crate::types::{
    Action, Address, Bytes, ContractInfo, Hash, PublicKey, Receipt, ReceiptStatus, VerifiedTx,
    WriteSet, sha256,
};

/// The block being built or verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockContext {
    pub chain_id: String,
    pub height: u64,
    pub timestamp_ms: u64,
    /// `execution.gas_limit`: most gas one transaction may ask for.
    pub max_tx_gas: u64,
}

/// Why a transaction was left out of a block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DropReason {
    #[error("transaction is for chain {0:?}")]
    WrongChain(String),
    #[error("expired at {expiry} ms, block time is {block_time} ms")]
    Expired { expiry: u64, block_time: u64 },
    #[error("gas limit {limit} exceeds execution.gas_limit {max}")]
    GasLimit { limit: u64, max: u64 },
    #[error("nonce {got} is not the sender's next nonce {expected}")]
    Nonce { expected: u64, got: u64 },
    #[error("execution timeout")]
    Timeout,
}

impl DropReason {
    /// True when the transaction may become valid later (a future nonce): the mempool keeps it.
    /// Everything else is removed, including a timeout: a transaction that hit the wall-clock
    /// backstop once would most likely hit it again and stall every block it is retried in.
    pub fn is_retryable(&self) -> bool {
        matches!(self, DropReason::Nonce { expected, got } if got > expected)
    }
}

/// The result of executing a block.
#[derive(Debug, Clone, Default)]
pub struct BlockOutcome {
    /// Included transactions, in block order.
    pub txs: Vec<VerifiedTx>,
    /// One receipt per included transaction, same order.
    pub receipts: Vec<Receipt>,
    /// Transactions left out, with the reason.
    pub dropped: Vec<(VerifiedTx, DropReason)>,
    /// Everything the block changes.
    pub writes: WriteSet,
    /// Sum of the receipts' gas.
    pub gas_used: u64,
}

/// A read-only call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub contract: Address,
    pub entry: String,
    pub args: Vec<u8>,
    /// Who the contract sees as the caller.
    pub sender: PublicKey,
    pub gas_limit: u64,
    /// Height and time the contract sees (normally the head's).
    pub height: u64,
    pub time_ms: u64,
}

/// What a read-only call returned; its writes and events are discarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryResult {
    pub status: ReceiptStatus,
    pub gas_used: u64,
    pub output: Bytes,
    pub logs: Vec<String>,
}

enum TxRun {
    Done(Receipt),
    Timeout,
}

struct Plan {
    included: Vec<VerifiedTx>,
    nonces: BTreeMap<PublicKey, u64>,
    /// (contract, positions in `included`), in order of first appearance.
    groups: Vec<(Address, Vec<usize>)>,
}

/// One contract's slice of the block, run on one worker.
struct Group {
    address: Address,
    /// The contract, once looked up: `Some(None)` means it does not exist.
    info: Option<Option<ContractInfo>>,
    module: Option<Arc<CachedModule>>,
    overlay: Overlay,
    deployed: Option<(ContractInfo, Vec<u8>)>,
}

struct GroupResult {
    group: Group,
    runs: Vec<(usize, TxRun)>,
}

impl Group {
    fn new(address: Address) -> Self {
        Group {
            address,
            info: None,
            module: None,
            overlay: Overlay::new(),
            deployed: None,
        }
    }

    fn info(&mut self, base: &dyn StateView) -> Result<Option<ContractInfo>, VmError> {
        if self.info.is_none() {
            self.info = Some(base.contract(&self.address)?);
        }
        Ok(self.info.clone().flatten())
    }
}

fn plan(
    base: &dyn StateView,
    ctx: &BlockContext,
    txs: Vec<VerifiedTx>,
    dropped: &mut Vec<(VerifiedTx, DropReason)>,
) -> Result<Plan, VmError> {
    let mut included = Vec::with_capacity(txs.len());
    let mut nonces: BTreeMap<PublicKey, u64> = BTreeMap::new();
    let mut group_index: BTreeMap<Address, usize> = BTreeMap::new();
    let mut groups: Vec<(Address, Vec<usize>)> = Vec::new();
    for vtx in txs {
        let tx = vtx.tx();
        let reason = if tx.chain_id != ctx.chain_id {
            Some(DropReason::WrongChain(tx.chain_id.clone()))
        } else if let Some(expiry) = tx.expiry.filter(|e| *e < ctx.timestamp_ms) {
            Some(DropReason::Expired {
                expiry,
                block_time: ctx.timestamp_ms,
            })
        } else if tx.gas_limit > ctx.max_tx_gas {
            Some(DropReason::GasLimit {
                limit: tx.gas_limit,
                max: ctx.max_tx_gas,
            })
        } else {
            let expected = match nonces.get(&tx.sender) {
                Some(n) => *n,
                None => base.nonce(&tx.sender)?,
            };
            if tx.nonce != expected {
                Some(DropReason::Nonce {
                    expected,
                    got: tx.nonce,
                })
            } else {
                nonces.insert(tx.sender, expected.saturating_add(1));
                None
            }
        };
        if let Some(reason) = reason {
            dropped.push((vtx, reason));
            continue;
        }
        let target = tx.target();
        let pos = included.len();
        let gi = *group_index.entry(target).or_insert_with(|| {
            groups.push((target, Vec::new()));
            groups.len() - 1
        });
        groups[gi].1.push(pos);
        included.push(vtx);
    }
    Ok(Plan {
        included,
        nonces,
        groups,
    })
}

fn receipt(tx_id: Hash, contract: Address, status: ReceiptStatus, gas_used: u64) -> Receipt {
    Receipt {
        tx_id,
        contract,
        status,
        gas_used,
        output: Bytes::default(),
        events: Vec::new(),
        logs: Vec::new(),
    }
}

fn reverted(message: impl Into<String>) -> ReceiptStatus {
    ReceiptStatus::Reverted {
        message: message.into(),
    }
}

/// What one call needs besides the group.
struct CallArgs<'a> {
    /// The engine lane (worker) running this call.
    lane: usize,
    tx_id: Hash,
    sender: PublicKey,
    gas_limit: u64,
    entry: &'a str,
    args: &'a [u8],
    height: u64,
    time_ms: u64,
    /// A read-only query (not consensus): pays the real compile cost of an actual cache miss.
    query: bool,
}

impl Vm {
    /// Executes a block's candidate transactions against `base` (the parent state).
    pub fn execute_block(
        &self,
        base: Arc<dyn StateView>,
        ctx: &BlockContext,
        txs: Vec<VerifiedTx>,
    ) -> Result<BlockOutcome, VmError> {
        let mut dropped = Vec::new();
        let mut candidates = txs;
        loop {
            let plan = plan(base.as_ref(), ctx, candidates, &mut dropped)?;
            let results = self.run_groups(&base, ctx, &plan)?;
            let mut slots: Vec<Option<TxRun>> = (0..plan.included.len()).map(|_| None).collect();
            let mut groups = Vec::with_capacity(results.len());
            for r in results {
                for (pos, run) in r.runs {
                    slots[pos] = Some(run);
                }
                groups.push(r.group);
            }
            let timed_out: Vec<usize> = slots
                .iter()
                .enumerate()
                .filter(|(_, s)| matches!(s, Some(TxRun::Timeout) | None))
                .map(|(i, _)| i)
                .collect();
            if !timed_out.is_empty() {
                let mut next = Vec::with_capacity(plan.included.len());
                for (i, vtx) in plan.included.into_iter().enumerate() {
                    if timed_out.contains(&i) {
                        tracing::error!(
                            tx = %vtx.id(),
                            contract = %vtx.tx().target(),
                            height = ctx.height,
                            timeout = ?self.config().timeout,
                            "execution timeout: transaction dropped from the block"
                        );
                        dropped.push((vtx, DropReason::Timeout));
                    } else {
                        next.push(vtx);
                    }
                }
                candidates = next;
                continue;
            }
            return self.merge(base.as_ref(), plan, slots, groups, dropped);
        }
    }

    fn merge(
        &self,
        base: &dyn StateView,
        plan: Plan,
        slots: Vec<Option<TxRun>>,
        groups: Vec<Group>,
        dropped: Vec<(VerifiedTx, DropReason)>,
    ) -> Result<BlockOutcome, VmError> {
        let mut receipts = Vec::with_capacity(slots.len());
        let mut gas_used = 0u64;
        for slot in slots {
            if let Some(TxRun::Done(r)) = slot {
                gas_used = gas_used.saturating_add(r.gas_used);
                receipts.push(r);
            }
        }
        let mut writes = WriteSet {
            nonces: plan.nonces,
            ..WriteSet::default()
        };
        for g in groups {
            for (k, v) in g.overlay {
                writes.storage.insert((g.address, Bytes(k)), v.map(Bytes));
            }
            if let Some((info, code)) = g.deployed {
                if !writes.code.contains_key(&info.code_hash)
                    && base.code(&info.code_hash)?.is_none()
                {
                    writes.code.insert(info.code_hash, Bytes(code));
                }
                writes.contracts.insert(info.address, info);
            }
        }
        Ok(BlockOutcome {
            txs: plan.included,
            receipts,
            dropped,
            writes,
            gas_used,
        })
    }

    fn run_groups(
        &self,
        base: &Arc<dyn StateView>,
        ctx: &BlockContext,
        plan: &Plan,
    ) -> Result<Vec<GroupResult>, VmError> {
        let workers = self.lanes().min(plan.groups.len());
        if workers <= 1 {
            return plan
                .groups
                .iter()
                .map(|(addr, positions)| {
                    self.run_group(0, base, ctx, &plan.included, *addr, positions)
                })
                .collect();
        }
        let next = AtomicUsize::new(0);
        let next = &next;
        let worker = move |lane: usize| -> Result<Vec<GroupResult>, VmError> {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((addr, positions)) = plan.groups.get(i) else {
                    return Ok(out);
                };
                out.push(self.run_group(lane, base, ctx, &plan.included, *addr, positions)?);
            }
        };
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers)
                .map(|lane| s.spawn(move || worker(lane)))
                .collect();
            let mut all = Vec::with_capacity(plan.groups.len());
            let mut first_err = None;
            for h in handles {
                match h.join() {
                    Ok(Ok(r)) => all.extend(r),
                    Ok(Err(e)) => first_err = first_err.or(Some(e)),
                    Err(_) => {
                        first_err =
                            first_err.or(Some(VmError::Engine("execution worker panicked".into())))
                    }
                }
            }
            match first_err {
                Some(e) => Err(e),
                None => Ok(all),
            }
        })
    }

    fn run_group(
        &self,
        lane: usize,
        base: &Arc<dyn StateView>,
        ctx: &BlockContext,
        txs: &[VerifiedTx],
        address: Address,
        positions: &[usize],
    ) -> Result<GroupResult, VmError> {
        let mut group = Group::new(address);
        let mut runs = Vec::with_capacity(positions.len());
        for &pos in positions {
            let vtx = &txs[pos];
            let tx = vtx.tx();
            let run = match &tx.action {
                Action::Deploy { code } => self.deploy(
                    lane,
                    &mut group,
                    base,
                    ctx,
                    vtx.id(),
                    &tx.sender,
                    tx.gas_limit,
                    &code.0,
                )?,
                Action::Call { entry, args, .. } => self.call(
                    &mut group,
                    base,
                    CallArgs {
                        lane,
                        tx_id: vtx.id(),
                        sender: tx.sender,
                        gas_limit: tx.gas_limit,
                        entry,
                        args: &args.0,
                        height: ctx.height,
                        time_ms: ctx.timestamp_ms,
                        query: false,
                    },
                )?,
            };
            runs.push((pos, run));
        }
        Ok(GroupResult { group, runs })
    }

    #[allow(clippy::too_many_arguments)]
    fn deploy(
        &self,
        lane: usize,
        g: &mut Group,
        base: &Arc<dyn StateView>,
        ctx: &BlockContext,
        tx_id: Hash,
        sender: &PublicKey,
        gas_limit: u64,
        code: &[u8],
    ) -> Result<TxRun, VmError> {
        let intrinsic = gas::intrinsic(0, code.len());
        if gas_limit < intrinsic {
            return Ok(TxRun::Done(receipt(
                tx_id,
                g.address,
                ReceiptStatus::OutOfGas,
                gas_limit,
            )));
        }
        if g.info(base.as_ref())?.is_some() {
            let status = reverted(format!("a contract already exists at {}", g.address));
            return Ok(TxRun::Done(receipt(tx_id, g.address, status, intrinsic)));
        }
        let info = match self.validate(code) {
            Ok(info) => info,
            Err(e) => {
                let status = reverted(format!("invalid contract: {e}"));
                return Ok(TxRun::Done(receipt(tx_id, g.address, status, intrinsic)));
            }
        };
        // The compile is paid before it is done: bytes, plus the code's compile weight.
        let intrinsic = gas::deploy_intrinsic(code.len(), info.compile_weight);
        if gas_limit < intrinsic {
            return Ok(TxRun::Done(receipt(
                tx_id,
                g.address,
                ReceiptStatus::OutOfGas,
                gas_limit,
            )));
        }
        let code_hash = sha256(code);
        let (module, _) = self.module(lane, &code_hash, Some(code), base.as_ref())?;
        let mut r = receipt(tx_id, g.address, ReceiptStatus::Success, intrinsic);
        if info.has_init {
            let run = self.run(
                lane,
                &module,
                "init",
                base.clone(),
                RunInput {
                    contract: g.address,
                    sender: *sender,
                    height: ctx.height,
                    time_ms: ctx.timestamp_ms,
                    input: Vec::new(),
                    fuel: gas_limit - intrinsic,
                    group: std::mem::take(&mut g.overlay),
                },
            )?;
            r = match settle(g, r, intrinsic, gas_limit, run) {
                None => return Ok(TxRun::Timeout),
                // A failed `init` creates no contract.
                Some(r) if !r.status.is_success() => return Ok(TxRun::Done(r)),
                Some(r) => r,
            };
        }
        let contract = ContractInfo {
            address: g.address,
            code_hash,
            deployer: *sender,
            height: ctx.height,
            tx_id,
        };
        g.info = Some(Some(contract.clone()));
        g.module = Some(module);
        g.deployed = Some((contract, code.to_vec()));
        Ok(TxRun::Done(r))
    }

    fn call(
        &self,
        g: &mut Group,
        base: &Arc<dyn StateView>,
        a: CallArgs<'_>,
    ) -> Result<TxRun, VmError> {
        let intrinsic = gas::intrinsic(a.args.len(), 0);
        if a.gas_limit < intrinsic {
            return Ok(TxRun::Done(receipt(
                a.tx_id,
                g.address,
                ReceiptStatus::OutOfGas,
                a.gas_limit,
            )));
        }
        let Some(info) = g.info(base.as_ref())? else {
            let status = reverted(format!("unknown contract {}", g.address));
            return Ok(TxRun::Done(receipt(a.tx_id, g.address, status, intrinsic)));
        };
        let (module, source) = match &g.module {
            Some(m) => (m.clone(), Source::Memory),
            None => {
                let (m, source) = self.module(a.lane, &info.code_hash, None, base.as_ref())?;
                g.module = Some(m.clone());
                (m, source)
            }
        };
        // Loading the module: a share of its compile weight, the same on every node whether or
        // not its cache held the module (consensus). A query is not consensus and pays the
        // whole compile when it actually caused one.
        let mut load = gas::module_load(module.compile_weight);
        if a.query && source == Source::Compiled {
            load = load.saturating_add(module.compile_weight);
        }
        let intrinsic = intrinsic.saturating_add(load);
        if a.gas_limit < intrinsic {
            return Ok(TxRun::Done(receipt(
                a.tx_id,
                g.address,
                ReceiptStatus::OutOfGas,
                a.gas_limit,
            )));
        }
        if a.entry == "init" {
            let status = reverted("init runs only at deploy");
            return Ok(TxRun::Done(receipt(a.tx_id, g.address, status, intrinsic)));
        }
        if !module.has_entry(a.entry) {
            let status = reverted(format!("contract has no entry point {:?}", a.entry));
            return Ok(TxRun::Done(receipt(a.tx_id, g.address, status, intrinsic)));
        }
        let run = self.run(
            a.lane,
            &module,
            a.entry,
            base.clone(),
            RunInput {
                contract: g.address,
                sender: a.sender,
                height: a.height,
                time_ms: a.time_ms,
                input: a.args.to_vec(),
                fuel: a.gas_limit - intrinsic,
                group: std::mem::take(&mut g.overlay),
            },
        )?;
        let r = receipt(a.tx_id, g.address, ReceiptStatus::Success, intrinsic);
        Ok(settle(g, r, intrinsic, a.gas_limit, run).map_or(TxRun::Timeout, TxRun::Done))
    }

    /// Runs an entry read-only against `base`: nothing it writes or emits is kept.
    pub fn query(&self, base: Arc<dyn StateView>, q: Query) -> Result<QueryResult, VmError> {
        let mut g = Group::new(q.contract);
        let run = self.call(
            &mut g,
            &base,
            CallArgs {
                lane: self.query_lane(),
                tx_id: Hash::ZERO,
                sender: q.sender,
                gas_limit: q.gas_limit,
                entry: &q.entry,
                args: &q.args,
                height: q.height,
                time_ms: q.time_ms,
                query: true,
            },
        )?;
        match run {
            TxRun::Done(r) => Ok(QueryResult {
                status: r.status,
                gas_used: r.gas_used,
                output: r.output,
                logs: r.logs,
            }),
            TxRun::Timeout => Err(VmError::Timeout),
        }
    }
}

/// Folds a finished run into its receipt (gas, logs; output and events on success) and its
/// group (the block overlay handed back, plus the run's writes on success). Out of gas charges
/// the whole limit. `None` when the run hit the wall-clock deadline: there is no deterministic
/// result and the transaction is dropped.
fn settle(
    g: &mut Group,
    mut r: Receipt,
    intrinsic: u64,
    gas_limit: u64,
    run: RunResult,
) -> Option<Receipt> {
    g.overlay = run.group;
    r.logs = run.logs;
    r.gas_used = intrinsic.saturating_add(run.fuel_used);
    match run.end {
        RunEnd::Success => {
            g.overlay.extend(run.writes);
            r.events = run.events;
            r.output = Bytes(run.output);
        }
        RunEnd::Timeout => return None,
        RunEnd::OutOfGas => {
            r.gas_used = gas_limit;
            r.status = ReceiptStatus::OutOfGas;
        }
        RunEnd::Reverted(message) => r.status = ReceiptStatus::Reverted { message },
        RunEnd::Trapped(kind) => r.status = ReceiptStatus::Trapped { kind },
    }
    Some(r)
}
