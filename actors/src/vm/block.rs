//! Block execution: orders, checks and runs a block's transactions and produces its receipts
//! and write set.
//!
//! Invariants:
//! - Deterministic: the same parent state and transactions give the same receipts, write set and
//!   hence state root whatever `execution.workers` is. Contracts cannot call each other, so the
//!   transactions are grouped by the contract they touch (a deploy belongs to the address it
//!   creates); each group runs in block order on one worker; groups run in parallel and their
//!   results are merged back in block order. A transaction's result depends only on the parent
//!   state and the earlier transactions of its own group, never on which worker ran it or when.
//! - The chain's limits (per-transaction gas cap, block gas, transaction bytes and result bytes)
//!   come from the `BlockContext`, which `chain::context` fills from the chain's `ChainParams`,
//!   never from this node's configuration; prices are the gas schedule's (`gas.rs`).
//! - Admission checks that depend on order (nonces, per sender) run first, sequentially, in block
//!   order: a transaction with the wrong nonce, another chain's id, an expiry before the block
//!   time or a gas limit above the chain's `max_tx_gas` is dropped, not executed, and uses no
//!   nonce. Every included transaction uses its nonce, whatever its receipt says.
//! - Block limits (the chain's `max_block_gas`, `max_block_tx_bytes`, `max_block_result_bytes`):
//!   the pre-pass admits transactions in block order while the sum of declared gas limits and the
//!   sum of canonical transaction bytes stay within them; one that does not fit is left out as
//!   retryable (`BlockFull`). After execution the receipts and kept writes are measured in block
//!   order against the result-bytes limit; the block is cut before the first transaction that
//!   would exceed it, and it and every later one are left out as retryable. Cutting a suffix
//!   never changes an earlier result, and each transaction's writes are kept separately, so the
//!   write set is rebuilt from the kept ones alone.
//! - A failed call (revert, trap, out of gas) keeps nothing but its receipt and its gas.
//! - A call that hits the wall-clock deadline is a node problem, not a result: it is dropped with
//!   an ERROR log ("execution timeout"), as if it had never been there, so its nonce is unused and
//!   its sender's later transactions are dropped as future nonces. So is a transaction that
//!   fails for a reason that is not the contract's (compile or engine error, missing code):
//!   dropped for good (`Fault`), logged at ERROR (rate-limited) and counted, never retried and
//!   never allowed to stop the block. Storage errors still abort the block, to be retried.
//! - Neither kind leaves a trace in its group, so only groups that lose a transaction that did
//!   run (a sender's later transactions) are executed again, and at most `MAX_RERUNS` times;
//!   after that the affected suffixes are deferred to a later block without running anything.
//! - Verification (`Vm::verify_block`, a follower re-executing a sealed block) uses the same
//!   admission, grouping, calls and merge, but never drops or re-plans: a transaction that would
//!   be left out (any `DropReason`) makes the block invalid (`ReplayError`). The deadline stays a
//!   liveness guard there too, not a result: a call that runs past it is run again from the same
//!   inputs with a deadline `VERIFY_DEADLINE_FACTOR` times larger, up to `VERIFY_ATTEMPTS` runs;
//!   one that still does not finish fails the verification (`ReplayError::Timeout`), so sync
//!   stops rather than commit a result the sequencer did not have. This is deterministic: a run
//!   that hits the deadline leaves no trace (fresh store, its writes discarded, the group overlay
//!   handed back untouched), and a run that finishes ends the same way whatever deadline it had,
//!   since only fuel (gas) decides when a contract stops by itself. So the retried call computes
//!   exactly what a call with no deadline would, on every node and worker count.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::cache::{CachedModule, Source};
use super::engine::{RunEnd, RunInput, RunResult, Vm, VmError};
use super::gas;
use super::host::Overlay;
use super::state::StateView;
use super::validate::ValidationError;
use crate::ratelimit::LogLimiter;
use crate::types::{
    Action, Address, Bytes, ContractInfo, Hash, MAX_ARGS_LEN, PublicKey, Receipt, ReceiptStatus,
    VerifiedTx, WriteSet, revert_reason, sha256,
};

/// Rounds of re-execution after timeouts or faults, beyond the first run. Each round re-runs only
/// the groups that lost a transaction that had run; after the last one the affected suffixes are
/// deferred instead, so a block costs at most `1 + MAX_RERUNS` executions of its groups.
const MAX_RERUNS: usize = 2;

/// Verification: runs of one call at most, the first with `execution.timeout`'s deadline.
pub const VERIFY_ATTEMPTS: u32 = 4;
/// Verification: each further run of a call that hit its deadline gets this many times more.
pub const VERIFY_DEADLINE_FACTOR: u64 = 4;

/// One ERROR line per interval for transactions dropped as node faults.
static FAULT_LOG: LogLimiter = LogLimiter::new(Duration::from_secs(10));

/// The block being built or verified, and the chain's consensus limits it is built under (see
/// `chain::context`, which fills them from the chain's `ChainParams`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockContext {
    pub chain_id: String,
    pub height: u64,
    pub timestamp_ms: u64,
    /// Most gas one transaction may ask for (`ChainParams::max_tx_gas`).
    pub max_tx_gas: u64,
    /// Sum of declared gas limits in one block (`ChainParams::max_block_gas`).
    pub max_block_gas: u64,
    /// Sum of canonical transaction bytes in one block (`ChainParams::max_block_tx_bytes`).
    pub max_block_tx_bytes: u64,
    /// Sum of receipt and write bytes in one block (`ChainParams::max_block_result_bytes`).
    pub max_block_result_bytes: u64,
}

/// Building drops what cannot be included; verifying refuses the block instead (module comment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Build,
    Verify,
}

/// Which per-block limit a transaction did not fit in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockLimit {
    /// `max_block_gas`: declared gas limits.
    Gas,
    /// `max_block_tx_bytes`: canonical transaction bytes.
    TxBytes,
    /// `max_block_result_bytes`: receipt and write bytes.
    ResultBytes,
}

impl std::fmt::Display for BlockLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BlockLimit::Gas => "block gas limit",
            BlockLimit::TxBytes => "block transaction bytes limit",
            BlockLimit::ResultBytes => "block receipt and write bytes limit",
        })
    }
}

/// Why a transaction was left out of a block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DropReason {
    #[error("transaction is for chain {0:?}")]
    WrongChain(String),
    #[error("expired at {expiry} ms, block time is {block_time} ms")]
    Expired { expiry: u64, block_time: u64 },
    #[error("gas limit {limit} exceeds the chain's max_tx_gas {max}")]
    GasLimit { limit: u64, max: u64 },
    #[error("nonce {got} is not the sender's next nonce {expected}")]
    Nonce { expected: u64, got: u64 },
    #[error("execution timeout")]
    Timeout,
    /// Execution failed for a reason that is not the contract's (compile or engine error,
    /// missing code); the text is the engine's, for logs only.
    #[error("node fault while executing: {0}")]
    Fault(String),
    /// Did not fit in this block; may fit in a later one.
    #[error("{0} reached")]
    BlockFull(BlockLimit),
    /// Left for a later block: re-execution rounds after timeouts ran out.
    #[error("deferred to a later block after execution timeouts")]
    Deferred,
}

impl DropReason {
    /// True when the transaction may become valid later (a future nonce, a full block, a block
    /// deferred after timeouts): the mempool keeps it. Everything else is removed, including a
    /// timeout or a fault: a transaction that hit the wall-clock backstop or an engine failure
    /// once would most likely do it again and stall every block it is retried in.
    pub fn is_retryable(&self) -> bool {
        match self {
            DropReason::Nonce { expected, got } => got > expected,
            DropReason::BlockFull(_) | DropReason::Deferred => true,
            _ => false,
        }
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
    /// Transaction runs this execution took, re-runs after timeouts included (for metrics and
    /// tests; not part of the block).
    pub executions: u64,
    /// Verification only: calls run again with a larger deadline after hitting theirs (for
    /// metrics and tests; not part of the block).
    pub deadline_retries: u64,
}

/// Why a sealed block's transactions cannot be re-executed as the block gives them
/// (`Vm::verify_block`).
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// A transaction building would have left out: the block is invalid.
    #[error("transaction {index} ({tx}) is not executable in this block: {reason}")]
    NotExecutable {
        index: usize,
        tx: Hash,
        reason: DropReason,
    },
    /// A call still ran past its deadline after every retry: this node cannot tell the
    /// block's result, so it must not accept (or reject) it on a guess.
    #[error(
        "transaction {index} ({tx}) still ran past its deadline after {attempts} runs (last \
         deadline {last:?}); execution.timeout is too small for this machine or it is overloaded"
    )]
    Timeout {
        index: usize,
        tx: Hash,
        attempts: u32,
        last: Duration,
    },
    /// A node error (storage, engine, instance pool): nothing is decided about the block.
    #[error(transparent)]
    Vm(#[from] VmError),
}

impl BlockOutcome {
    /// Transactions dropped as node faults (`DropReason::Fault`), for metrics.
    pub fn faults(&self) -> usize {
        self.dropped
            .iter()
            .filter(|(_, r)| matches!(r, DropReason::Fault(_)))
            .count()
    }
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

/// A finished transaction: its receipt and what it leaves in state.
struct Done {
    receipt: Receipt,
    /// Its own storage writes (empty unless it succeeded).
    writes: Overlay,
    /// The contract a successful deploy created, with its code.
    deployed: Option<(ContractInfo, Vec<u8>)>,
    /// Runs beyond the first after hitting the deadline (verification only).
    retries: u32,
}

enum TxRun {
    Done(Box<Done>),
    /// Hit the wall-clock deadline; left no trace in its group.
    Timeout,
    /// Failed for a reason that is not the contract's; left no trace in its group.
    Fault(String),
}

impl TxRun {
    fn done(receipt: Receipt) -> TxRun {
        TxRun::Done(Box::new(Done {
            receipt,
            writes: Overlay::new(),
            deployed: None,
            retries: 0,
        }))
    }
}

/// A node error that aborts the block, or a per-transaction fault that drops only this one.
fn fault(e: VmError) -> Result<TxRun, VmError> {
    match e {
        // Storage, a full instance pool or a bad configuration concern the node, not this
        // transaction: the whole block is retried.
        VmError::State(_) | VmError::Busy(_) | VmError::Config(_) => Err(e),
        other => Ok(TxRun::Fault(other.to_string())),
    }
}

struct Plan {
    included: Vec<VerifiedTx>,
    /// (contract, positions in `included`), in order of first appearance.
    groups: Vec<(Address, Vec<usize>)>,
}

/// One contract's slice of the block, run on one worker.
struct Group {
    address: Address,
    /// The contract, once looked up: `Some(None)` means it does not exist.
    info: Option<Option<ContractInfo>>,
    module: Option<Arc<CachedModule>>,
    /// Why the contract's module could not be loaded, once tried: later calls in this group
    /// fail the same way without compiling again.
    module_fault: Option<String>,
    overlay: Overlay,
}

impl Group {
    fn new(address: Address) -> Self {
        Group {
            address,
            info: None,
            module: None,
            module_fault: None,
            overlay: Overlay::new(),
        }
    }

    fn info(&mut self, base: &dyn StateView) -> Result<Option<ContractInfo>, VmError> {
        if self.info.is_none() {
            self.info = Some(base.contract(&self.address)?);
        }
        Ok(self.info.clone().flatten())
    }
}

/// The admission pre-pass, in block order: chain, expiry, per-tx gas, nonce, then the block's
/// gas and byte budgets. Only the block order decides, so every node admits the same set.
fn plan(
    base: &dyn StateView,
    ctx: &BlockContext,
    txs: Vec<VerifiedTx>,
    dropped: &mut Vec<(VerifiedTx, DropReason)>,
) -> Result<Plan, VmError> {
    // A transaction that could never fit in any block is not retryable.
    let max_tx_gas = ctx.max_tx_gas.min(ctx.max_block_gas);
    let mut included = Vec::with_capacity(txs.len());
    let mut nonces: BTreeMap<PublicKey, u64> = BTreeMap::new();
    let mut group_index: BTreeMap<Address, usize> = BTreeMap::new();
    let mut groups: Vec<(Address, Vec<usize>)> = Vec::new();
    let mut block_gas = 0u64;
    let mut block_bytes = 0u64;
    for vtx in txs {
        let tx = vtx.tx();
        let reason = if tx.chain_id != ctx.chain_id {
            Some(DropReason::WrongChain(tx.chain_id.clone()))
        } else if let Some(expiry) = tx.expiry.filter(|e| *e < ctx.timestamp_ms) {
            Some(DropReason::Expired {
                expiry,
                block_time: ctx.timestamp_ms,
            })
        } else if tx.gas_limit > max_tx_gas {
            Some(DropReason::GasLimit {
                limit: tx.gas_limit,
                max: max_tx_gas,
            })
        } else {
            let expected = match nonces.get(&tx.sender) {
                Some(n) => *n,
                None => base.nonce(&tx.sender)?,
            };
            let bytes = gas::tx_bytes(vtx.signed());
            if tx.nonce != expected {
                Some(DropReason::Nonce {
                    expected,
                    got: tx.nonce,
                })
            } else if block_gas.saturating_add(tx.gas_limit) > ctx.max_block_gas {
                Some(DropReason::BlockFull(BlockLimit::Gas))
            } else if block_bytes.saturating_add(bytes) > ctx.max_block_tx_bytes {
                Some(DropReason::BlockFull(BlockLimit::TxBytes))
            } else {
                block_gas += tx.gas_limit;
                block_bytes += bytes;
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
    Ok(Plan { included, groups })
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

/// A transaction whose gas limit cannot cover a charge taken before anything runs: out of gas,
/// the whole limit charged, nothing done.
fn unpaid(tx_id: Hash, contract: Address, gas_limit: u64) -> TxRun {
    TxRun::done(receipt(tx_id, contract, ReceiptStatus::OutOfGas, gas_limit))
}

fn reverted(message: impl Into<String>) -> ReceiptStatus {
    ReceiptStatus::Reverted {
        message: message.into(),
    }
}

/// The receipt message of a deploy that validation refused: the rule in our own words. The
/// parser's text (`Invalid`) and its type names are left out: they change with wasmparser
/// versions, and receipts must not (see `types::revert_reason`).
fn invalid_contract(e: &ValidationError) -> String {
    let rule = match e {
        ValidationError::Invalid(_) => "malformed or unsupported WebAssembly".to_string(),
        ValidationError::ImportType { name, .. } => {
            format!("import accumen::{name} does not have the type the ABI gives it")
        }
        ValidationError::EntryType { name, .. } => {
            format!("export {name:?} is a function but not of type () -> ()")
        }
        other => other.to_string(),
    };
    format!("{}: {rule}", revert_reason::INVALID_CONTRACT)
}

/// Bytes a finished transaction adds to the block's results (`max_block_result_bytes`): its
/// canonical receipt plus 32 + key + value per storage write it keeps. A pure function of the
/// receipt and writes, so every node measures the same.
fn result_bytes(d: &Done) -> u64 {
    let receipt =
        postcard::experimental::serialized_size(&d.receipt).map_or(u64::MAX, |n| n as u64);
    let writes: u64 = d
        .writes
        .iter()
        .map(|(k, v)| 32 + k.len() as u64 + v.as_ref().map_or(0, |v| v.len() as u64))
        .sum();
    receipt.saturating_add(writes)
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
    mode: Mode,
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
        let Plan {
            mut included,
            mut groups,
        } = plan(base.as_ref(), ctx, txs, &mut dropped)?;
        let mut runs =
            self.run_groups(Mode::Build, &base, ctx, &included, &groups, included.len())?;
        let mut executions = runs.iter().filter(|r| r.is_some()).count() as u64;
        let mut reruns = 0;
        loop {
            // Positions that ran to no result: dropped as if they had never been there.
            let bad: Vec<bool> = runs
                .iter()
                .map(|r| !matches!(r, Some(TxRun::Done(_))))
                .collect();
            if !bad.contains(&true) {
                break;
            }
            if reruns == MAX_RERUNS {
                self.defer(ctx, &mut included, &mut runs, &groups, &mut dropped);
                break;
            }
            reruns += 1;
            // Each group's transactions that did run, by id: if the new plan gives a group
            // exactly these, its results still hold (the dropped ones left no trace).
            let mut before: HashMap<Address, Vec<Hash>> = HashMap::new();
            for (addr, positions) in &groups {
                let ids = positions
                    .iter()
                    .filter(|p| !bad[**p])
                    .map(|p| included[*p].id())
                    .collect();
                before.insert(*addr, ids);
            }
            let mut kept_runs: HashMap<Hash, TxRun> = HashMap::new();
            let mut candidates = Vec::with_capacity(included.len());
            for (vtx, run) in included.into_iter().zip(runs) {
                match run {
                    Some(TxRun::Done(d)) => {
                        kept_runs.insert(vtx.id(), TxRun::Done(d));
                        candidates.push(vtx);
                    }
                    other => {
                        let reason = self.no_result(ctx, &vtx, other);
                        dropped.push((vtx, reason));
                    }
                }
            }
            let next = plan(base.as_ref(), ctx, candidates, &mut dropped)?;
            included = next.included;
            groups = next.groups;
            runs = (0..included.len()).map(|_| None).collect();
            let mut changed = Vec::new();
            for (addr, positions) in &groups {
                let same = before.get(addr).is_some_and(|ids| {
                    ids.len() == positions.len()
                        && ids
                            .iter()
                            .zip(positions)
                            .all(|(id, p)| included[*p].id() == *id)
                });
                if same {
                    for p in positions {
                        runs[*p] = kept_runs.remove(&included[*p].id());
                    }
                } else {
                    changed.push((*addr, positions.clone()));
                }
            }
            let rerun =
                self.run_groups(Mode::Build, &base, ctx, &included, &changed, included.len())?;
            for (slot, run) in runs.iter_mut().zip(rerun) {
                if run.is_some() {
                    executions += 1;
                    *slot = run;
                }
            }
        }
        let mut out = self.merge(base.as_ref(), ctx, included, runs, dropped)?;
        out.executions = executions;
        Ok(out)
    }

    /// Re-executes a sealed block's transactions against `base` (the parent state), exactly as
    /// given: the same admission, grouping, calls and merge as `execute_block`, but nothing is
    /// dropped or re-planned. A transaction building would have left out fails the block
    /// (`ReplayError::NotExecutable`), and a call that hits its deadline is run again with a
    /// larger one (module comment: why that is deterministic) until `VERIFY_ATTEMPTS` runs.
    pub fn verify_block(
        &self,
        base: Arc<dyn StateView>,
        ctx: &BlockContext,
        txs: Vec<VerifiedTx>,
    ) -> Result<BlockOutcome, ReplayError> {
        let ids: Vec<Hash> = txs.iter().map(VerifiedTx::id).collect();
        let mut dropped = Vec::new();
        let Plan { included, groups } = plan(base.as_ref(), ctx, txs, &mut dropped)?;
        if let Some((vtx, reason)) = dropped.into_iter().next() {
            // `plan` keeps the block order, so the first position where the admitted list stops
            // following the block is the first transaction it left out.
            let index = ids
                .iter()
                .enumerate()
                .position(|(i, id)| included.get(i).map(VerifiedTx::id) != Some(*id))
                .unwrap_or(ids.len());
            return Err(ReplayError::NotExecutable {
                index,
                tx: vtx.id(),
                reason,
            });
        }
        let runs = self.run_groups(Mode::Verify, &base, ctx, &included, &groups, included.len())?;
        let executions = runs.iter().filter(|r| r.is_some()).count() as u64;
        for (index, (vtx, run)) in included.iter().zip(&runs).enumerate() {
            match run {
                Some(TxRun::Done(_)) => {}
                Some(TxRun::Timeout) => {
                    return Err(ReplayError::Timeout {
                        index,
                        tx: vtx.id(),
                        attempts: VERIFY_ATTEMPTS,
                        last: Vm::deadline_of(self.verify_deadline(VERIFY_ATTEMPTS)),
                    });
                }
                Some(TxRun::Fault(why)) => {
                    return Err(ReplayError::NotExecutable {
                        index,
                        tx: vtx.id(),
                        reason: DropReason::Fault(why.clone()),
                    });
                }
                None => {
                    return Err(ReplayError::Vm(VmError::Engine(format!(
                        "transaction {} has no result",
                        vtx.id()
                    ))));
                }
            }
        }
        let mut out = self.merge(base.as_ref(), ctx, included, runs, Vec::new())?;
        if let Some((vtx, reason)) = out.dropped.first() {
            // Only the result-bytes cut drops anything here, and it cuts right after the kept
            // transactions.
            return Err(ReplayError::NotExecutable {
                index: out.txs.len(),
                tx: vtx.id(),
                reason: reason.clone(),
            });
        }
        out.executions = executions + out.deadline_retries;
        Ok(out)
    }

    /// The deadline, in epoch ticks, of a verification's `attempt`-th run of one call (from 1).
    fn verify_deadline(&self, attempt: u32) -> u64 {
        let factor = VERIFY_DEADLINE_FACTOR.saturating_pow(attempt.saturating_sub(1));
        self.deadline_ticks().saturating_mul(factor)
    }

    /// Runs one call: once with `execution.timeout`'s deadline when building; when verifying,
    /// again with a larger deadline each time it hits it, at most `VERIFY_ATTEMPTS` runs (the
    /// module comment says why the result cannot depend on which run finished). Returns the run
    /// and how many runs beyond the first it took.
    fn run_call(
        &self,
        mode: Mode,
        lane: usize,
        module: &CachedModule,
        entry: &str,
        base: &Arc<dyn StateView>,
        mut input: RunInput,
    ) -> Result<(RunResult, u32), VmError> {
        let mut attempt = 1;
        loop {
            input.deadline_ticks = self.verify_deadline(attempt);
            let again = (mode == Mode::Verify && attempt < VERIFY_ATTEMPTS).then(|| RunInput {
                contract: input.contract,
                sender: input.sender,
                height: input.height,
                time_ms: input.time_ms,
                input: input.input.clone(),
                fuel: input.fuel,
                group: Overlay::new(),
                deadline_ticks: 0,
            });
            let run = self.run(lane, module, entry, base.clone(), input)?;
            match (run.end, again) {
                (RunEnd::Timeout, Some(mut next)) => {
                    tracing::warn!(
                        contract = %next.contract,
                        height = next.height,
                        attempt,
                        deadline = ?Vm::deadline_of(self.verify_deadline(attempt)),
                        "verification: a call ran past its deadline; running it again with a \
                         larger one"
                    );
                    // The timed-out run left the group overlay as it was handed in.
                    next.group = run.group;
                    input = next;
                    attempt += 1;
                }
                (end, _) => {
                    return Ok((RunResult { end, ..run }, attempt - 1));
                }
            }
        }
    }

    /// The drop reason of a transaction that ran to no result, logged at ERROR.
    fn no_result(&self, ctx: &BlockContext, vtx: &VerifiedTx, run: Option<TxRun>) -> DropReason {
        match run {
            Some(TxRun::Fault(why)) => {
                if let Some(suppressed) = FAULT_LOG.allow() {
                    tracing::error!(
                        tx = %vtx.id(),
                        contract = %vtx.tx().target(),
                        height = ctx.height,
                        error = %why,
                        suppressed,
                        "execution failed for a reason that is not the contract's: transaction \
                         dropped from the block"
                    );
                }
                DropReason::Fault(why)
            }
            _ => {
                tracing::error!(
                    tx = %vtx.id(),
                    contract = %vtx.tx().target(),
                    height = ctx.height,
                    timeout = ?self.config().timeout,
                    "execution timeout: transaction dropped from the block"
                );
                DropReason::Timeout
            }
        }
    }

    /// After the last re-run: drops the transactions with no result and defers, without running
    /// anything, every transaction whose result could depend on them. In one pass in block
    /// order: a sender's transactions after one of its dropped ones (their nonces no longer
    /// follow), and a group's transactions after a deferred one of that group (it may have
    /// written what they read). A dropped timeout or fault left no trace in its group, so it
    /// defers only its sender's later transactions. Every kept result was computed with exactly
    /// the kept transactions before it in its group, so it stands.
    fn defer(
        &self,
        ctx: &BlockContext,
        included: &mut Vec<VerifiedTx>,
        runs: &mut Vec<Option<TxRun>>,
        groups: &[(Address, Vec<usize>)],
        dropped: &mut Vec<(VerifiedTx, DropReason)>,
    ) {
        let mut group_of = vec![0usize; included.len()];
        for (gi, (_, positions)) in groups.iter().enumerate() {
            for p in positions {
                group_of[*p] = gi;
            }
        }
        let mut sender_gone: BTreeMap<PublicKey, ()> = BTreeMap::new();
        let mut group_broken = vec![false; groups.len()];
        let mut kept_txs = Vec::with_capacity(included.len());
        let mut kept_runs = Vec::with_capacity(included.len());
        for (i, (vtx, run)) in std::mem::take(included)
            .into_iter()
            .zip(std::mem::take(runs))
            .enumerate()
        {
            let sender = vtx.tx().sender;
            let g = group_of[i];
            if sender_gone.contains_key(&sender) || group_broken[g] {
                sender_gone.insert(sender, ());
                group_broken[g] = true;
                dropped.push((vtx, DropReason::Deferred));
            } else if matches!(run, Some(TxRun::Done(_))) {
                kept_txs.push(vtx);
                kept_runs.push(run);
            } else {
                sender_gone.insert(sender, ());
                let reason = self.no_result(ctx, &vtx, run);
                dropped.push((vtx, reason));
            }
        }
        *included = kept_txs;
        *runs = kept_runs;
    }

    /// Builds the outcome from the finished runs, in block order, cutting the block before the
    /// first transaction whose results would pass `max_block_result_bytes`.
    ///
    /// Same on every node and worker count: each `Done` is a pure function of the parent state
    /// and the earlier transactions of its group (see the module invariants), the sizes are
    /// measured on canonical encodings, and the cut is found by one walk in block order. The
    /// transactions after the cut are all dropped, so no kept result depends on a dropped one,
    /// and the write set is rebuilt from the kept transactions' own writes in block order.
    fn merge(
        &self,
        base: &dyn StateView,
        ctx: &BlockContext,
        included: Vec<VerifiedTx>,
        runs: Vec<Option<TxRun>>,
        mut dropped: Vec<(VerifiedTx, DropReason)>,
    ) -> Result<BlockOutcome, VmError> {
        let mut out = BlockOutcome::default();
        let mut used = 0u64;
        let mut full = false;
        for (vtx, run) in included.into_iter().zip(runs) {
            let Some(TxRun::Done(d)) = run else {
                // `execute_block` resolves every other run before merging.
                return Err(VmError::Engine(format!(
                    "transaction {} has no result at merge",
                    vtx.id()
                )));
            };
            let size = result_bytes(&d);
            if full || used.saturating_add(size) > ctx.max_block_result_bytes {
                full = true;
                dropped.push((vtx, DropReason::BlockFull(BlockLimit::ResultBytes)));
                continue;
            }
            used += size;
            let tx = vtx.tx();
            let contract = tx.target();
            out.writes
                .nonces
                .insert(tx.sender, tx.nonce.saturating_add(1));
            for (k, v) in d.writes {
                out.writes
                    .storage
                    .insert((contract, Bytes(k)), v.map(Bytes));
            }
            if let Some((info, code)) = d.deployed {
                if !out.writes.code.contains_key(&info.code_hash)
                    && base.code(&info.code_hash)?.is_none()
                {
                    out.writes.code.insert(info.code_hash, Bytes(code));
                }
                out.writes.contracts.insert(info.address, info);
            }
            out.gas_used = out.gas_used.saturating_add(d.receipt.gas_used);
            out.deadline_retries += u64::from(d.retries);
            out.receipts.push(d.receipt);
            out.txs.push(vtx);
        }
        out.dropped = dropped;
        Ok(out)
    }

    /// Runs `groups` (positions into `txs`), spread over the lanes; returns one slot per
    /// position of `txs` (`n` of them), filled for the positions of `groups`.
    fn run_groups(
        &self,
        mode: Mode,
        base: &Arc<dyn StateView>,
        ctx: &BlockContext,
        txs: &[VerifiedTx],
        groups: &[(Address, Vec<usize>)],
        n: usize,
    ) -> Result<Vec<Option<TxRun>>, VmError> {
        let mut slots: Vec<Option<TxRun>> = (0..n).map(|_| None).collect();
        let workers = self.lanes().min(groups.len());
        let results: Vec<Vec<(usize, TxRun)>> = if workers <= 1 {
            groups
                .iter()
                .map(|(addr, positions)| self.run_group(mode, 0, base, ctx, txs, *addr, positions))
                .collect::<Result<_, _>>()?
        } else {
            let next = AtomicUsize::new(0);
            let next = &next;
            let worker = move |lane: usize| -> Result<Vec<Vec<(usize, TxRun)>>, VmError> {
                let mut out = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((addr, positions)) = groups.get(i) else {
                        return Ok(out);
                    };
                    out.push(self.run_group(mode, lane, base, ctx, txs, *addr, positions)?);
                }
            };
            std::thread::scope(|s| {
                let handles: Vec<_> = (0..workers)
                    .map(|lane| s.spawn(move || worker(lane)))
                    .collect();
                let mut all = Vec::with_capacity(groups.len());
                let mut first_err = None;
                for h in handles {
                    match h.join() {
                        Ok(Ok(r)) => all.extend(r),
                        Ok(Err(e)) => first_err = first_err.or(Some(e)),
                        Err(_) => {
                            first_err = first_err
                                .or(Some(VmError::Engine("execution worker panicked".into())))
                        }
                    }
                }
                match first_err {
                    Some(e) => Err(e),
                    None => Ok(all),
                }
            })?
        };
        for (pos, run) in results.into_iter().flatten() {
            if let Some(slot) = slots.get_mut(pos) {
                *slot = Some(run);
            }
        }
        Ok(slots)
    }

    #[allow(clippy::too_many_arguments)]
    fn run_group(
        &self,
        mode: Mode,
        lane: usize,
        base: &Arc<dyn StateView>,
        ctx: &BlockContext,
        txs: &[VerifiedTx],
        address: Address,
        positions: &[usize],
    ) -> Result<Vec<(usize, TxRun)>, VmError> {
        let mut group = Group::new(address);
        let mut runs = Vec::with_capacity(positions.len());
        for &pos in positions {
            let vtx = &txs[pos];
            let tx = vtx.tx();
            let run = match &tx.action {
                Action::Deploy { code } => self.deploy(
                    mode,
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
                        mode,
                    },
                )?,
            };
            runs.push((pos, run));
        }
        Ok(runs)
    }

    #[allow(clippy::too_many_arguments)]
    fn deploy(
        &self,
        mode: Mode,
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
            return Ok(unpaid(tx_id, g.address, gas_limit));
        }
        if g.info(base.as_ref())?.is_some() {
            let status = reverted(format!("{} {}", revert_reason::ALREADY_EXISTS, g.address));
            return Ok(TxRun::done(receipt(tx_id, g.address, status, intrinsic)));
        }
        let info = match self.validate(code) {
            Ok(info) => info,
            Err(e) => {
                let status = reverted(invalid_contract(&e));
                return Ok(TxRun::done(receipt(tx_id, g.address, status, intrinsic)));
            }
        };
        // The compile is paid before it is done: bytes, plus the code's compile weight.
        let intrinsic = gas::deploy_intrinsic(code.len(), info.compile_weight);
        if gas_limit < intrinsic {
            return Ok(unpaid(tx_id, g.address, gas_limit));
        }
        let code_hash = sha256(code);
        let module = match self.module(lane, &code_hash, Some(code), base.as_ref()) {
            Ok((m, _)) => m,
            Err(e) => return fault(e),
        };
        let r = receipt(tx_id, g.address, ReceiptStatus::Success, intrinsic);
        let mut done = if info.has_init {
            let (run, retries) = self.run_call(
                mode,
                lane,
                &module,
                "init",
                base,
                RunInput {
                    contract: g.address,
                    sender: *sender,
                    height: ctx.height,
                    time_ms: ctx.timestamp_ms,
                    input: Vec::new(),
                    fuel: gas_limit - intrinsic,
                    group: std::mem::take(&mut g.overlay),
                    deadline_ticks: self.deadline_ticks(),
                },
            )?;
            match settle(g, r, intrinsic, gas_limit, run, retries) {
                // A failed `init` creates no contract.
                TxRun::Done(d) if d.receipt.status.is_success() => d,
                other => return Ok(other),
            }
        } else {
            Box::new(Done {
                receipt: r,
                writes: Overlay::new(),
                deployed: None,
                retries: 0,
            })
        };
        let contract = ContractInfo {
            address: g.address,
            code_hash,
            deployer: *sender,
            height: ctx.height,
            tx_id,
        };
        g.info = Some(Some(contract.clone()));
        g.module = Some(module);
        done.deployed = Some((contract, code.to_vec()));
        Ok(TxRun::Done(done))
    }

    fn call(
        &self,
        g: &mut Group,
        base: &Arc<dyn StateView>,
        a: CallArgs<'_>,
    ) -> Result<TxRun, VmError> {
        let intrinsic = gas::intrinsic(a.args.len(), 0);
        if a.gas_limit < intrinsic {
            return Ok(unpaid(a.tx_id, g.address, a.gas_limit));
        }
        let Some(info) = g.info(base.as_ref())? else {
            let status = reverted(format!("{} {}", revert_reason::UNKNOWN_CONTRACT, g.address));
            return Ok(TxRun::done(receipt(a.tx_id, g.address, status, intrinsic)));
        };
        if let Some(why) = &g.module_fault {
            return Ok(TxRun::Fault(why.clone()));
        }
        let (module, source) = match &g.module {
            Some(m) => (m.clone(), Source::Memory),
            None => match self.module(a.lane, &info.code_hash, None, base.as_ref()) {
                Ok((m, source)) => {
                    g.module = Some(m.clone());
                    (m, source)
                }
                Err(e) => {
                    let run = fault(e)?;
                    if let TxRun::Fault(why) = &run {
                        g.module_fault = Some(why.clone());
                    }
                    return Ok(run);
                }
            },
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
            return Ok(unpaid(a.tx_id, g.address, a.gas_limit));
        }
        if a.entry == "init" {
            let status = reverted(revert_reason::INIT_ONLY_AT_DEPLOY);
            return Ok(TxRun::done(receipt(a.tx_id, g.address, status, intrinsic)));
        }
        if !module.has_entry(a.entry) {
            let status = reverted(format!("{} {:?}", revert_reason::UNKNOWN_ENTRY, a.entry));
            return Ok(TxRun::done(receipt(a.tx_id, g.address, status, intrinsic)));
        }
        let (run, retries) = self.run_call(
            a.mode,
            a.lane,
            &module,
            a.entry,
            base,
            RunInput {
                contract: g.address,
                sender: a.sender,
                height: a.height,
                time_ms: a.time_ms,
                input: a.args.to_vec(),
                fuel: a.gas_limit - intrinsic,
                group: std::mem::take(&mut g.overlay),
                deadline_ticks: self.deadline_ticks(),
            },
        )?;
        let r = receipt(a.tx_id, g.address, ReceiptStatus::Success, intrinsic);
        Ok(settle(g, r, intrinsic, a.gas_limit, run, retries))
    }

    /// Runs an entry read-only against `base`: nothing it writes or emits is kept.
    pub fn query(&self, base: Arc<dyn StateView>, q: Query) -> Result<QueryResult, VmError> {
        if q.args.len() > MAX_ARGS_LEN {
            return Err(VmError::ArgsTooLarge {
                len: q.args.len(),
                limit: MAX_ARGS_LEN,
            });
        }
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
                mode: Mode::Build,
            },
        )?;
        match run {
            TxRun::Done(d) => Ok(QueryResult {
                status: d.receipt.status,
                gas_used: d.receipt.gas_used,
                output: d.receipt.output,
                logs: d.receipt.logs,
            }),
            TxRun::Timeout => Err(VmError::Timeout),
            TxRun::Fault(why) => Err(VmError::Engine(why)),
        }
    }
}

/// Folds a finished run into its result: the receipt (gas, logs; output and events on success)
/// and the group (the block overlay handed back, plus the run's writes on success, which the
/// result also keeps for the merge). Out of gas charges the whole limit. A run that hit the
/// wall-clock deadline or a node fault has no deterministic result: the transaction is dropped.
fn settle(
    g: &mut Group,
    mut r: Receipt,
    intrinsic: u64,
    gas_limit: u64,
    run: RunResult,
    retries: u32,
) -> TxRun {
    g.overlay = run.group;
    r.logs = run.logs;
    r.gas_used = intrinsic.saturating_add(run.fuel_used);
    let mut writes = Overlay::new();
    match run.end {
        RunEnd::Success => {
            g.overlay
                .extend(run.writes.iter().map(|(k, v)| (k.clone(), v.clone())));
            writes = run.writes;
            r.events = run.events;
            r.output = Bytes(run.output);
        }
        RunEnd::Timeout => return TxRun::Timeout,
        RunEnd::Fault(why) => return TxRun::Fault(why),
        RunEnd::OutOfGas => {
            r.gas_used = gas_limit;
            r.status = ReceiptStatus::OutOfGas;
        }
        RunEnd::Reverted(message) => r.status = ReceiptStatus::Reverted { message },
        RunEnd::Trapped(kind) => r.status = ReceiptStatus::Trapped { kind },
    }
    TxRun::Done(Box::new(Done {
        receipt: r,
        writes,
        deployed: None,
        retries,
    }))
}

#[cfg(test)]
#[path = "block_tests.rs"]
mod tests;
