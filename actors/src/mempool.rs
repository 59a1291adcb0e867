//! Mempool: admission, ordering and the journal of pending transactions.
//!
//! The ordering logic lives in `pool` (actix-free, unit tested). `Admission` adds what needs
//! the outside world: committed nonces and contracts from storage, and the journal
//! (`mempool.persist`, its own file: `storage::JournalStore`) written through a group commit
//! (`group`). The `Mempool` actor owns the rest: expiry on a timer, block selection, `BlockDone`
//! and `ReturnInFlight`, and the live numbers for `/stats`. Invariants:
//! - The pool itself is shared (`Arc<Mutex<Shared>>`) and outlives any one incarnation of the
//!   actor, so a supervisor restart loses no pending transaction. That is also why admission
//!   may run on the API's threads (`Admission::admit`, called from `web::block`) while the
//!   actor runs: every pool change, the actor's and admission's alike, is one short critical
//!   section on that mutex that leaves the pool consistent, and the actor keeps sole charge of
//!   what needs one owner (selection, in-flight bookkeeping, expiry).
//! - The pool mutex is held only for pool work: committed state is read before it is taken
//!   (the pool re-checks nonces against what it learned from blocks, so a read that races a
//!   block commit cannot admit a used nonce), transactions are encoded before it, and the
//!   journal write happens after it is released.
//! - A call is admitted only to a contract that is deployed, or that a pending deploy will
//!   create; anything else is refused up front ("unknown contract") instead of costing its
//!   sender a nonce and gas for a receipt that can only say the same.
//! - With `mempool.persist` on, a transaction is acknowledged only once its journal write is
//!   durable. Until then it is in the pool but not selectable (`Pool::admit_pending`), so no
//!   block can carry a transaction whose admission may still be withdrawn; once durable it
//!   becomes selectable (`Pool::mark_durable`). Its journal entry holds its arrival sequence,
//!   and the same write forgets what its admission evicted (queued under the pool lock, so the
//!   journal sees pool changes in the order they happened).
//! - Committed, expired or dropped transactions are forgotten lazily: queued when the pool
//!   lets them go and written with the next journal write (an admission's, or the actor's
//!   timer flush); committed ones as `JournalOp::Settle`, which writes nothing until their
//!   journal row empties. A block commit never touches the journal. An entry not yet
//!   forgotten when the node stops is harmless: restore re-admits the journal in arrival order
//!   against committed state, which refuses it (nonce used, or expired), and forgets it then.
//! - A failed journal write refuses exactly the batches it held (503 `journal_unavailable`)
//!   and takes them back out of the pool; what they evicted comes back where it still fits
//!   (`Pool::undo`). No earlier, acknowledged transaction is touched.
//! - Signatures are verified by the caller (the API verifies batches on its worker threads);
//!   only `VerifiedTx` values enter the pool.

pub mod group;
pub mod pool;

#[cfg(test)]
mod actor_tests;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix::prelude::*;

use crate::metrics::{NodeMetrics, NodeStats, now_ms};
use crate::ratelimit::LogLimiter;
use crate::storage::{JournalOp, JournalStore, Storage, StorageError};
use crate::types::{Action, Address, FastMap, Hash, PublicKey, SignedTx, VerifiedTx, encode};
use crate::vm::DropReason;
use group::GroupCommit;
use pool::{AdmitError, Admitted, BlockLimits, Departure, EvictReason, Evicted, Pool};

/// A `HashSet` with the hasher of `FastMap`.
type FastSet<T> = HashSet<T, foldhash::fast::RandomState>;

/// How often expired transactions are removed (and queued journal removals written).
const EXPIRY_INTERVAL: Duration = Duration::from_secs(1);

static FULL_LOG: LogLimiter = LogLimiter::new(Duration::from_secs(10));
static GAS_LOG: LogLimiter = LogLimiter::new(Duration::from_secs(10));
static EVICT_LOG: LogLimiter = LogLimiter::new(Duration::from_secs(10));
static JOURNAL_LOG: LogLimiter = LogLimiter::new(Duration::from_secs(10));

/// Where the mempool journals pending transactions (`mempool.persist`). `JournalStore` is the
/// real one; tests put recording or failing ones in its place.
pub trait Journal: Send + Sync {
    /// One all-or-nothing, durable write of `ops`, applied in order.
    fn write(&self, ops: &[JournalOp]) -> Result<(), StorageError>;
    /// Everything journaled, with its arrival sequence, in arrival order.
    fn load(&self) -> Result<Vec<(u64, SignedTx)>, StorageError>;
    /// Moves an older version's journal out of the chain database (see
    /// `JournalStore::migrate_from`); nothing to do for a journal that is not a file.
    fn migrate(&self, _storage: &Storage) -> Result<usize, StorageError> {
        Ok(0)
    }
}

impl Journal for JournalStore {
    fn write(&self, ops: &[JournalOp]) -> Result<(), StorageError> {
        JournalStore::write(self, ops)
    }

    fn load(&self) -> Result<Vec<(u64, SignedTx)>, StorageError> {
        JournalStore::load(self)
    }

    fn migrate(&self, storage: &Storage) -> Result<usize, StorageError> {
        self.migrate_from(storage)
    }
}

/// Why a transaction was not admitted. Domain errors only: the API layer maps them to HTTP
/// statuses and codes (`src/api/error.rs`). Node faults keep their typed cause as `source()`
/// (shared by `Arc` because one fault refuses every transaction of a batch).
#[derive(Debug, Clone, thiserror::Error)]
pub enum MempoolError {
    #[error(transparent)]
    Rejected(#[from] AdmitError),
    #[error("unknown contract {0}: no contract is deployed there and no pending deploy creates it")]
    UnknownContract(Address),
    #[error("storage error")]
    Storage(#[source] Arc<StorageError>),
    #[error(
        "the mempool journal could not be written; the transaction was not accepted, retry later"
    )]
    Journal(#[source] Arc<StorageError>),
}

/// What the mempool keeps across actor restarts.
#[derive(Debug)]
pub struct Shared {
    pub pool: Pool,
    /// Contracts that pending deploys will create, with the deploy's id. Entries go stale once
    /// their deploy leaves the pool; they are checked against the pool on use and pruned after
    /// every block.
    deploys: FastMap<Address, Hash>,
}

impl Shared {
    pub fn new(pool: Pool) -> Self {
        Shared {
            pool,
            deploys: FastMap::default(),
        }
    }
}

/// Admission into the shared pool, callable from any thread (the API's blocking pool, the
/// actor); cheap to clone. See the module comment for why that is safe.
#[derive(Clone)]
pub struct Admission {
    pool: Arc<Mutex<Shared>>,
    storage: Arc<Storage>,
    /// `Some` with `mempool.persist`.
    journal: Option<Arc<GroupCommit>>,
    stats: Arc<NodeStats>,
    metrics: NodeMetrics,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("persist", &self.journal.is_some())
            .finish_non_exhaustive()
    }
}

/// Committed state a batch needs, read before the pool lock is taken.
#[derive(Default)]
struct StateView {
    nonces: FastMap<PublicKey, Result<u64, Arc<StorageError>>>,
    deployed: FastMap<Address, Result<bool, Arc<StorageError>>>,
}

impl Admission {
    /// Admission over `pool`, reading committed state from `storage`, journaling through
    /// `journal` (`None`: `mempool.persist` off).
    pub fn new(
        pool: Arc<Mutex<Shared>>,
        storage: Arc<Storage>,
        journal: Option<Arc<dyn Journal>>,
        stats: Arc<NodeStats>,
        metrics: NodeMetrics,
    ) -> Self {
        if journal.is_some() {
            // The journal forgets transactions by arrival sequence, as the pool reports them.
            pool.lock()
                .unwrap_or_else(|p| p.into_inner())
                .pool
                .track_departures();
        }
        Admission {
            pool,
            storage,
            journal: journal.map(|j| Arc::new(GroupCommit::new(j))),
            stats,
            metrics,
        }
    }

    fn pool(&self) -> MutexGuard<'_, Shared> {
        // Pool operations are short and leave it consistent between calls; a panic elsewhere
        // while holding the lock does not make it unusable.
        self.pool.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The group commit in front of the journal (`None` without `mempool.persist`).
    pub fn group(&self) -> Option<&Arc<GroupCommit>> {
        self.journal.as_ref()
    }

    fn publish(&self, pool: &Pool) {
        let size = pool.len() as u64;
        let accounts = pool.accounts() as u64;
        self.metrics.mempool_bytes.set(pool.bytes() as i64);
        self.stats.mempool_size.store(size, Ordering::Relaxed);
        self.stats
            .mempool_accounts
            .store(accounts, Ordering::Relaxed);
        self.metrics.mempool_size.set(size as i64);
        self.metrics.mempool_accounts.set(accounts as i64);
    }

    /// Queues the journal removals of every transaction that left `pool` since the last
    /// call (`Pool::take_departures`). Call with the pool lock held (the caller has `pool`
    /// from it), so the journal sees removals in the order the pool changed.
    fn forget_departed(&self, pool: &mut Pool) {
        let departed = pool.take_departures();
        if let Some(j) = &self.journal {
            j.forget(&departed);
        }
    }

    /// Writes queued journal removals now if no write is under way (the actor's timer).
    pub fn flush(&self) {
        if let Some(j) = &self.journal {
            j.flush();
        }
    }

    /// Counts (and logs, rate-limited) evictions that stand.
    fn count_evictions(&self, evicted: &[Evicted]) {
        if evicted.is_empty() {
            return;
        }
        let mut by_reason: BTreeMap<&'static str, u64> = BTreeMap::new();
        for e in evicted {
            *by_reason.entry(e.reason.label()).or_default() += 1;
        }
        for (reason, n) in &by_reason {
            self.metrics.evicted(reason, *n);
        }
        if let Some(suppressed) = EVICT_LOG.allow() {
            tracing::warn!(
                evicted = evicted.len(),
                reasons = ?by_reason,
                suppressed,
                "mempool full: evicted less useful transactions to admit executable ones"
            );
        }
    }

    /// Whether the contracts `txs` call exist in committed state, from one snapshot, with no
    /// lock held. Each contract is read once per batch. Nonces are read only for senders the
    /// pool does not know ([`Admission::read_nonces`]).
    fn read_contracts(&self, txs: &[VerifiedTx]) -> Result<StateView, StorageError> {
        let mut view = StateView::default();
        let mut snapshot = None;
        for tx in txs {
            if let Action::Call { contract, .. } = &tx.tx().action
                && !view.deployed.contains_key(contract)
            {
                let snapshot = match &mut snapshot {
                    Some(s) => s,
                    None => snapshot.insert(self.storage.snapshot()?),
                };
                let deployed = snapshot
                    .contract(contract)
                    .map(|c| c.is_some())
                    .map_err(Arc::new);
                view.deployed.insert(*contract, deployed);
            }
        }
        Ok(view)
    }

    /// The committed next nonces of the senders of `txs` that `view` lacks, from one snapshot,
    /// with no lock held; each sender is read once. If no snapshot can be taken, each gets the
    /// error, so its transactions are refused with it.
    fn read_nonces<'a>(&self, txs: impl Iterator<Item = &'a VerifiedTx>, view: &mut StateView) {
        let snapshot = self.storage.snapshot().map_err(Arc::new);
        for tx in txs {
            let sender = tx.tx().sender;
            view.nonces
                .entry(sender)
                .or_insert_with(|| match &snapshot {
                    Ok(s) => s.nonce(&sender).map_err(Arc::new),
                    Err(e) => Err(e.clone()),
                });
        }
    }

    /// Whether admitted transactions are journaled (`mempool.persist`): only then are the bytes
    /// passed to `admit_encoded` used, so a caller without a journal need not keep them.
    pub fn journals(&self) -> bool {
        self.journal.is_some()
    }

    /// Admits verified transactions; one result per transaction, in order. With
    /// `mempool.persist`, returns once the accepted ones are durable in the journal (or
    /// refused because that failed). Blocks on the journal: call it off the async threads.
    pub fn admit(&self, txs: Vec<VerifiedTx>) -> Vec<Result<Hash, MempoolError>> {
        self.admit_batch(txs, Vec::new(), true)
    }

    /// `admit`, with the bytes each transaction was received in where the caller has them:
    /// `encoded[i]`, when `Some`, must be the canonical encoding of `txs[i]` (the bytes that
    /// `SignedTx::decode` accepted, which it checks are exactly `encode(tx)`). The journal
    /// stores them as they are instead of encoding each transaction again. Missing entries (or
    /// a shorter `encoded`) are encoded here.
    pub fn admit_encoded(
        &self,
        txs: Vec<VerifiedTx>,
        encoded: Vec<Option<Vec<u8>>>,
    ) -> Vec<Result<Hash, MempoolError>> {
        self.admit_batch(txs, encoded, true)
    }

    /// Admits a batch; with `journal` (and `mempool.persist`) journals what it accepted and
    /// forgets what that evicted in one queued write, waits for it, and undoes the batch if it
    /// failed. Without `journal` (restore: the rows are journaled already) admitted
    /// transactions are durable at once and evictions are forgotten.
    fn admit_batch(
        &self,
        txs: Vec<VerifiedTx>,
        encoded: Vec<Option<Vec<u8>>>,
        journal: bool,
    ) -> Vec<Result<Hash, MempoolError>> {
        let now = now_ms();
        let mut view = match self.read_contracts(&txs) {
            Ok(v) => v,
            Err(e) => {
                let err = MempoolError::Storage(Arc::new(e));
                return txs.iter().map(|_| Err(err.clone())).collect();
            }
        };
        let group = self.journal.as_ref().filter(|_| journal);
        // Encoded before the lock (where the caller did not pass the bytes received), by
        // position in `txs`; refused transactions' encodings are simply dropped.
        let mut encoded: Vec<Option<Vec<u8>>> = match group {
            Some(_) => {
                let mut given = encoded.into_iter();
                txs.iter()
                    .map(|t| Some(given.next().flatten().unwrap_or_else(|| encode(t.signed()))))
                    .collect()
            }
            None => Vec::new(),
        };
        let total = txs.len();
        // Taken in order; `as_slice` is what is still to come.
        let mut rest = txs.into_iter();
        let mut results = Vec::with_capacity(total);
        // Position in `txs`, id and arrival sequence of each admitted transaction.
        let mut admitted: Vec<(usize, Hash, Option<u64>)> = Vec::new();
        // Each admission as the pool names it (id, arrival sequence, sender and nonce), for
        // `mark_durable` and `undo`: the same id may be evicted and admitted again by another
        // batch meanwhile.
        let mut admissions: Vec<Admitted> = Vec::new();
        let mut evicted: Vec<Evicted> = Vec::new();
        let mut shared = self.pool();
        // In order; `results[i]` is the answer for `txs[i]`.
        loop {
            let Shared { pool, deploys } = &mut *shared;
            while let Some(tx) = rest.as_slice().first() {
                let sender = tx.tx().sender;
                // A sender the pool holds transactions of: its committed next nonce as the
                // pool last learned it (from committed state when its account was made, then
                // from every committed block's `on_block`). A block committed whose `on_block`
                // has not run yet is the only way the store can be ahead of it, and that
                // block's transactions of this sender are still in the pool, in flight, at
                // exactly those nonces: a transaction at one of them is refused as
                // `NonceTaken` (or `Duplicate`) instead of `NonceTooLow`, and every other
                // answer is the one a read of the store would give. The read is skipped: one
                // B-tree search of the chain's file per sender, 1.4% of the node's CPU at
                // 100,000 tx/s from 2,000 senders. Other senders' nonces are read below, with
                // the lock released.
                let state_nonce = match view.nonces.get(&sender) {
                    Some(Ok(n)) => *n,
                    Some(Err(e)) => {
                        results.push(Err(MempoolError::Storage(e.clone())));
                        rest.next();
                        continue;
                    }
                    None => match pool.known_nonce(&sender) {
                        Some(n) => n,
                        None => break,
                    },
                };
                let at = total - rest.len();
                let Some(tx) = rest.next() else {
                    break; // unreachable: `first` was `Some` above
                };
                let id = tx.id();
                if let Action::Call { contract, .. } = &tx.tx().action {
                    let deployed = match view.deployed.get(contract) {
                        Some(Ok(d)) => *d,
                        Some(Err(e)) => {
                            results.push(Err(MempoolError::Storage(e.clone())));
                            continue;
                        }
                        None => false,
                    };
                    let pending = deploys.get(contract).is_some_and(|d| pool.contains(d));
                    if !deployed && !pending {
                        results.push(Err(MempoolError::UnknownContract(*contract)));
                        continue;
                    }
                }
                let creates =
                    matches!(tx.tx().action, Action::Deploy { .. }).then(|| tx.tx().target());
                let outcome = match group {
                    Some(_) => pool.admit_pending(tx, state_nonce, now),
                    None => pool.admit(tx, state_nonce, now),
                };
                match outcome {
                    Ok(out) => {
                        evicted.extend(out);
                        let seq = pool.admitted(&id).map(|adm| {
                            admissions.push(adm);
                            adm.seq
                        });
                        admitted.push((at, id, seq));
                        if let Some(address) = creates {
                            deploys.insert(address, id);
                        }
                        results.push(Ok(id));
                    }
                    Err(e) => {
                        log_refusal(&e);
                        results.push(Err(MempoolError::Rejected(e)));
                    }
                }
            }
            if rest.as_slice().is_empty() {
                break;
            }
            // The next transaction's sender is not in the pool: the nonces of every sender
            // still to come that no read gave yet are read now, without the lock, so the loop
            // does not stop here again (a sender the pool drops meanwhile is then known from
            // the read).
            drop(shared);
            self.read_nonces(rest.as_slice().iter(), &mut view);
            shared = self.pool();
        }
        let ticket = {
            let Shared { pool, .. } = &mut *shared;
            let ticket = match group {
                Some(g) if !(admitted.is_empty() && evicted.is_empty()) => {
                    // Journaled under the pool's arrival sequences, in admission order; a tx
                    // evicted later in the same batch is not journaled at all (by admission:
                    // another batch's tx evicted here and then resubmitted in this batch is
                    // journaled, under its new sequence). The removals first: everything that
                    // left the pool up to now, this batch's evictions included. Queued under
                    // the pool lock: the journal sees this batch after every pool change
                    // before it.
                    let gone: FastSet<u64> = evicted.iter().map(Evicted::seq).collect();
                    let mut ops: Vec<JournalOp> = departure_ops(&pool.take_departures());
                    let journaled = admitted
                        .iter()
                        .filter_map(|(position, id, seq)| Some((position, id, (*seq)?)))
                        .filter(|(_, _, seq)| !gone.contains(seq));
                    for (position, id, seq) in journaled {
                        let Some(bytes) = encoded.get_mut(*position).and_then(Option::take) else {
                            continue; // unreachable: every tx of the batch was encoded
                        };
                        ops.push(JournalOp::Put {
                            seq,
                            id: *id,
                            bytes,
                        });
                    }
                    Some(g.enqueue(ops))
                }
                _ if journal => {
                    // Nothing admitted or evicted: whatever left before goes with the next
                    // write.
                    self.forget_departed(pool);
                    None
                }
                _ => {
                    // Restore: its rewrite supersedes these, which name the pool's new
                    // sequences, not the file's (applied to the file they could hit another
                    // transaction's entry).
                    pool.take_departures();
                    None
                }
            };
            if ticket.is_none() {
                self.count_evictions(&evicted);
                evicted = Vec::new();
                self.publish(pool);
            }
            ticket
        };
        drop(shared);
        if let (Some(g), Some(ticket)) = (group, ticket) {
            // The pool lock is free while the journal writes (other batches join this write
            // or the next one; blocks are selected meanwhile).
            let written = g.wait(ticket);
            let mut shared = self.pool();
            match written {
                Ok(()) => {
                    shared.pool.mark_durable(&admissions);
                    shared.pool.settle(&evicted);
                    self.count_evictions(&evicted);
                }
                Err(e) => {
                    // Not durable, so not acknowledged: this batch is refused and taken back
                    // out; what it evicted comes back where it still fits.
                    if let Some(suppressed) = JOURNAL_LOG.allow() {
                        tracing::error!(
                            error = %e,
                            suppressed,
                            "mempool journal write failed; rejecting the batch"
                        );
                    }
                    // What could not come back is recorded as departed again (its removal was
                    // in the failed write).
                    shared.pool.undo(&admissions, evicted);
                    self.forget_departed(&mut shared.pool);
                    let err = MempoolError::Journal(e);
                    for r in results.iter_mut() {
                        if r.is_ok() {
                            *r = Err(err.clone());
                        }
                    }
                }
            }
            self.publish(&shared.pool);
        }
        let ok = results.iter().filter(|r| r.is_ok()).count() as u64;
        self.stats.mempool_admitted.fetch_add(ok, Ordering::Relaxed);
        self.stats
            .mempool_rejected
            .fetch_add(results.len() as u64 - ok, Ordering::Relaxed);
        results
    }

    /// Re-admits the journal after a start, in arrival order: first moves an older version's
    /// journal out of the chain database (once), then re-admits every transaction against
    /// committed state, and rewrites the journal in one write to hold exactly what it
    /// re-admitted, under the pool's arrival sequences (the journal forgets by sequence), so
    /// what is no longer valid (committed, expired, or evicted by a smaller
    /// `mempool.max_size`/`max_bytes` than before) leaves it. A failed rewrite fails the
    /// restore (the node does not start on a journal it cannot write). Runs on an empty pool,
    /// before any admission. Returns how many are pending.
    pub fn restore(&self) -> Result<usize, MempoolError> {
        let Some(group) = &self.journal else {
            return Ok(0);
        };
        let storage_err = |e: StorageError| MempoolError::Storage(Arc::new(e));
        if !self.pool().pool.is_empty() {
            return Err(storage_err(StorageError::Corrupt(
                "the mempool journal is restored before any admission".into(),
            )));
        }
        let journal = group.journal();
        journal.migrate(&self.storage).map_err(storage_err)?;
        let txs = journal.load().map_err(storage_err)?;
        let encoded: Vec<Vec<u8>> = txs.iter().map(|(_, t)| encode(t)).collect();
        let verified: Vec<VerifiedTx> = txs
            .into_iter()
            .map(|(_, t)| VerifiedTx::from_trusted(t))
            .collect();
        let ids: Vec<Hash> = verified.iter().map(|t| t.id()).collect();
        // Journaled already: admitted durable at once, without a write of their own.
        self.admit_batch(verified, Vec::new(), false);
        let ticket = {
            let mut shared = self.pool();
            // Superseded by the rewrite.
            shared.pool.take_departures();
            let mut ops = vec![JournalOp::Clear];
            let mut last: Option<u64> = None;
            for (id, bytes) in ids.iter().zip(encoded) {
                // In arrival order, so their new sequences increase; a transaction the file
                // held twice (damage) is put once.
                if let Some(adm) = shared.pool.admitted(id)
                    && last.is_none_or(|l| adm.seq > l)
                {
                    last = Some(adm.seq);
                    ops.push(JournalOp::Put {
                        seq: adm.seq,
                        id: *id,
                        bytes,
                    });
                }
            }
            group.enqueue(ops)
        };
        group.wait(ticket).map_err(MempoolError::Journal)?;
        let shared = self.pool();
        Ok(ids.iter().filter(|id| shared.pool.contains(id)).count())
    }
}

/// The journal removals of `departed`: a transaction a committed block included is settled
/// (restore would refuse it anyway, so the journal writes nothing for it until its row
/// empties); any other is removed for good.
fn departure_ops(departed: &[Departure]) -> Vec<JournalOp> {
    departed
        .iter()
        .map(|d| match d.committed {
            true => JournalOp::Settle(d.seq),
            false => JournalOp::Remove(d.seq),
        })
        .collect()
}

/// Logs (rate-limited) the refusals an operator should hear about.
fn log_refusal(e: &AdmitError) {
    match e {
        AdmitError::PoolFull {
            max_size,
            max_bytes,
        } => {
            if let Some(suppressed) = FULL_LOG.allow() {
                tracing::error!(
                    max_size,
                    max_bytes,
                    suppressed,
                    "mempool full: transaction rejected (mempool.max_size or mempool.max_bytes \
                     reached and nothing less useful to evict)"
                );
            }
        }
        AdmitError::GasLimit { limit, max } => {
            if let Some(suppressed) = GAS_LOG.allow() {
                tracing::warn!(
                    limit,
                    max,
                    suppressed,
                    "transaction gas limit above execution.gas_limit: rejected"
                );
            }
        }
        _ => {}
    }
}

/// The mempool actor: expiry, selection and block outcomes over the shared pool; `Admit`
/// messages are served by the same `Admission` the API calls directly.
pub struct Mempool {
    admission: Admission,
}

impl std::fmt::Debug for Mempool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mempool")
            .field("admission", &self.admission)
            .finish()
    }
}

impl Mempool {
    pub fn new(admission: Admission) -> Self {
        Mempool { admission }
    }

    fn pool(&self) -> MutexGuard<'_, Shared> {
        self.admission.pool()
    }

    fn publish(&self, pool: &Pool) {
        self.admission.publish(pool);
    }

    /// Admits verified transactions; one result per transaction, in order.
    pub fn admit(&self, txs: Vec<VerifiedTx>) -> Vec<Result<Hash, MempoolError>> {
        self.admission.admit(txs)
    }

    /// See [`Admission::restore`].
    pub fn restore(&self) -> Result<usize, MempoolError> {
        self.admission.restore()
    }
}

impl Actor for Mempool {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        {
            let shared = self.pool();
            self.publish(&shared.pool);
        }
        ctx.run_interval(EXPIRY_INTERVAL, |act, _| {
            let now = now_ms();
            let a = &act.admission;
            let (expired, futures) = {
                let mut shared = a.pool();
                let expired = shared.pool.expire(now);
                let futures = shared.pool.evict_stale_futures(now);
                if !(expired.is_empty() && futures.is_empty()) {
                    a.publish(&shared.pool);
                }
                a.forget_departed(&mut shared.pool);
                (expired, futures)
            };
            if !expired.is_empty() {
                a.stats
                    .mempool_expired
                    .fetch_add(expired.len() as u64, Ordering::Relaxed);
            }
            if !futures.is_empty() {
                a.metrics
                    .evicted(EvictReason::FutureTtl.label(), futures.len() as u64);
            }
            // Removals no admission carried out (an idle node) go out once a tick, one
            // write for everything committed, expired or dropped since the last.
            a.flush();
        });
    }
}

crate::supervised!(Mempool);

/// Admits verified transactions.
#[derive(Debug, Message)]
#[rtype(result = "Vec<Result<Hash, MempoolError>>")]
pub struct Admit(pub Vec<VerifiedTx>);

impl Handler<Admit> for Mempool {
    type Result = Vec<Result<Hash, MempoolError>>;
    fn handle(&mut self, msg: Admit, _: &mut Context<Self>) -> Self::Result {
        self.admit(msg.0)
    }
}

/// Takes transactions for the next block, at most `max` of them, their declared gas limits
/// summing to at most `max_gas` and their canonical sizes to at most `max_bytes` (they stay in
/// flight until `BlockDone`).
#[derive(Debug, Message)]
#[rtype(result = "Vec<VerifiedTx>")]
pub struct Select {
    pub max: usize,
    pub max_gas: u64,
    pub max_bytes: u64,
}

impl Handler<Select> for Mempool {
    type Result = MessageResult<Select>;
    fn handle(&mut self, msg: Select, _: &mut Context<Self>) -> Self::Result {
        let limits = BlockLimits {
            txs: msg.max,
            gas: msg.max_gas,
            bytes: msg.max_bytes,
        };
        let selection = {
            let mut shared = self.pool();
            let Shared { pool, deploys, .. } = &mut *shared;
            let selection = pool.select(limits, now_ms(), deploys);
            self.publish(pool);
            self.admission.forget_departed(pool);
            selection
        };
        if !selection.expired.is_empty() {
            self.admission
                .stats
                .mempool_expired
                .fetch_add(selection.expired.len() as u64, Ordering::Relaxed);
        }
        MessageResult(selection.txs)
    }
}

/// A block was committed: remove its transactions, re-queue or drop the left-out ones.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct BlockDone {
    pub included: Vec<Hash>,
    pub nonces: BTreeMap<PublicKey, u64>,
    pub dropped: Vec<(Hash, DropReason)>,
}

impl Handler<BlockDone> for Mempool {
    type Result = ();
    fn handle(&mut self, msg: BlockDone, _: &mut Context<Self>) {
        let mut shared = self.pool();
        let Shared { pool, deploys, .. } = &mut *shared;
        pool.on_block(&msg.included, &msg.nonces, &msg.dropped);
        deploys.retain(|_, id| pool.contains(id));
        self.publish(pool);
        // Lazily: the block's commit did not touch the journal; its transactions (settled)
        // and those it dropped go with the next journal write (queued under the pool lock,
        // see `Admission::forget_departed`).
        self.admission.forget_departed(pool);
    }
}

/// A block attempt failed: everything in flight becomes selectable again.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ReturnInFlight;

impl Handler<ReturnInFlight> for Mempool {
    type Result = ();
    fn handle(&mut self, _: ReturnInFlight, _: &mut Context<Self>) {
        let mut shared = self.pool();
        let Shared { pool, deploys, .. } = &mut *shared;
        pool.return_in_flight();
        deploys.retain(|_, id| pool.contains(id));
        self.publish(pool);
        // Dropped for good by a committed block while a later attempt held their senders.
        self.admission.forget_departed(pool);
    }
}

/// Is this transaction pending?
#[derive(Debug, Message)]
#[rtype(result = "bool")]
pub struct IsPending(pub Hash);

impl Handler<IsPending> for Mempool {
    type Result = bool;
    fn handle(&mut self, msg: IsPending, _: &mut Context<Self>) -> bool {
        self.pool().pool.contains(&msg.0)
    }
}

/// A sender's pending count and the nonce its next transaction should use.
#[derive(Debug, Message)]
#[rtype(result = "(usize, u64)")]
pub struct AccountPending {
    pub sender: PublicKey,
    pub state_nonce: u64,
}

impl Handler<AccountPending> for Mempool {
    type Result = MessageResult<AccountPending>;
    fn handle(&mut self, msg: AccountPending, _: &mut Context<Self>) -> Self::Result {
        let shared = self.pool();
        MessageResult((
            shared.pool.pending_of(&msg.sender),
            shared.pool.pending_nonce(&msg.sender, msg.state_nonce),
        ))
    }
}

#[cfg(test)]
mod tests {
    //! Admission's journal paths, driven through `admit`/`restore` directly (no actix needed):
    //! a failing journal write, concurrent admissions sharing writes, durability before
    //! selection, restore order, restore after a crash with committed rows, migration.

    use super::*;
    use crate::mempool::pool::PoolConfig;
    use crate::testkit::{self, CHAIN};
    use crate::types::{Keypair, WriteSet};
    use std::sync::atomic::{AtomicBool, AtomicUsize};
    use std::sync::mpsc;

    /// The real journal store, with a switch that makes every write fail and an optional gate
    /// that holds writes until released.
    struct FlakyJournal {
        inner: JournalStore,
        fail: AtomicBool,
        gate: Mutex<Option<mpsc::Receiver<()>>>,
        writes: AtomicUsize,
    }

    impl FlakyJournal {
        fn new() -> Arc<Self> {
            Arc::new(FlakyJournal {
                inner: JournalStore::in_memory(CHAIN).unwrap(),
                fail: AtomicBool::new(false),
                gate: Mutex::new(None),
                writes: AtomicUsize::new(0),
            })
        }
    }

    impl Journal for FlakyJournal {
        fn write(&self, ops: &[JournalOp]) -> Result<(), StorageError> {
            if let Some(rx) = self.gate.lock().unwrap().as_ref() {
                rx.recv().unwrap();
            }
            self.writes.fetch_add(1, Ordering::SeqCst);
            if self.fail.load(Ordering::Relaxed) {
                return Err(StorageError::Io {
                    what: "journal".into(),
                    source: std::io::Error::other("disk full (injected)"),
                });
            }
            self.inner.write(ops)
        }
        fn load(&self) -> Result<Vec<(u64, SignedTx)>, StorageError> {
            self.inner.load()
        }
        fn migrate(&self, storage: &Storage) -> Result<usize, StorageError> {
            self.inner.migrate_from(storage)
        }
    }

    pub(super) fn config(max_size: usize) -> PoolConfig {
        PoolConfig {
            chain_id: CHAIN.into(),
            max_size,
            max_bytes: 1 << 30,
            account_limit: 10,
            max_tx_gas: 1_000_000,
            max_future_nonces: 10,
            future_limit: 5,
            future_ttl_ms: 60_000,
        }
    }

    fn admission(storage: &Arc<Storage>, journal: Arc<dyn Journal>, max_size: usize) -> Admission {
        Admission::new(
            Arc::new(Mutex::new(Shared::new(Pool::new(config(max_size))))),
            storage.clone(),
            Some(journal),
            Arc::new(NodeStats::default()),
            NodeMetrics::default(),
        )
    }

    pub(super) fn signed(kp: &Keypair, nonce: u64, action: Action) -> VerifiedTx {
        testkit::verified(kp.sign(testkit::body(CHAIN, kp.public(), nonce, action, 1_000)))
    }

    pub(super) fn deploy(kp: &Keypair, nonce: u64) -> VerifiedTx {
        signed(
            kp,
            nonce,
            testkit::deploy(vec![0, 97, 115, 109, 1, 0, 0, 0]),
        )
    }

    pub(super) fn call(kp: &Keypair, nonce: u64, contract: Address) -> VerifiedTx {
        signed(kp, nonce, testkit::call(contract, "increment", &[]))
    }

    fn journal_ids(j: &FlakyJournal) -> Vec<Hash> {
        let mut ids: Vec<Hash> = j.load().unwrap().iter().map(|(_, t)| t.tx.id()).collect();
        ids.sort();
        ids
    }

    fn select_all(m: &Admission) -> Vec<Hash> {
        let mut shared = m.pool();
        let Shared { pool, deploys, .. } = &mut *shared;
        let limits = BlockLimits {
            txs: 1000,
            gas: u64::MAX,
            bytes: u64::MAX,
        };
        pool.select(limits, now_ms(), deploys)
            .txs
            .iter()
            .map(VerifiedTx::id)
            .collect()
    }

    /// A transaction a batch evicts and then admits again (resubmitted, in the room the
    /// eviction left) is journaled by that batch, after the removal of its old row: it is
    /// pending and acknowledged. Only a transaction admitted and then evicted within one batch
    /// goes unjournaled. (By id, the resubmission's row was dropped with the eviction's.)
    #[test]
    fn evicted_and_resubmitted_in_one_batch_is_journaled() {
        let storage = Arc::new(Storage::in_memory(CHAIN).unwrap());
        let journal = FlakyJournal::new();
        let sized = |seed: u8, code: usize, priority: u64| {
            let kp = Keypair::from_seed([seed; 32]);
            let action = testkit::deploy(vec![0; code]);
            let mut body = testkit::body(CHAIN, kp.public(), 0, action, 1_000);
            body.priority = priority;
            testkit::verified(kp.sign(body))
        };
        let x = sized(1, 10, 0);
        let w = sized(2, 400, 0);
        let y = sized(3, 200, 1); // a higher band; larger than the room x alone leaves
        let config = PoolConfig {
            max_bytes: pool::tx_bytes(&x) + pool::tx_bytes(&w) + 10,
            ..config(10)
        };
        let m = Admission::new(
            Arc::new(Mutex::new(Shared::new(Pool::new(config)))),
            storage.clone(),
            Some(journal.clone() as Arc<dyn Journal>),
            Arc::new(NodeStats::default()),
            NodeMetrics::default(),
        );
        assert!(m.admit(vec![x.clone()])[0].is_ok());
        assert!(m.admit(vec![w.clone()])[0].is_ok());
        // y evicts x and w; x fits again after it.
        let results = m.admit(vec![y.clone(), x.clone()]);
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        let mut want = vec![x.id(), y.id()];
        want.sort();
        assert_eq!(journal_ids(&journal), want);
        let mut selected = select_all(&m);
        selected.sort();
        assert_eq!(selected, want);
    }

    /// `admit_encoded` journals the bytes given for the transaction at the same position, and
    /// encodes those given none; a refused transaction's bytes are never journaled.
    #[test]
    fn received_bytes_are_journaled_by_position() {
        let storage = Arc::new(Storage::in_memory(CHAIN).unwrap());
        let journal = FlakyJournal::new();
        let m = admission(&storage, journal.clone(), 10);
        assert!(m.journals());
        let unjournaled = Admission::new(
            Arc::new(Mutex::new(Shared::new(Pool::new(config(10))))),
            storage.clone(),
            None,
            Arc::new(NodeStats::default()),
            NodeMetrics::default(),
        );
        assert!(!unjournaled.journals());
        let (a, b) = (Keypair::from_seed([1; 32]), Keypair::from_seed([2; 32]));
        // Refused: nothing is deployed at this address.
        let refused = call(&a, 0, Address([7; 32]));
        let (da, db) = (deploy(&a, 0), deploy(&b, 0));
        let results = m.admit_encoded(
            vec![refused.clone(), da.clone(), db.clone()],
            vec![
                Some(refused.signed().encode()),
                Some(da.signed().encode()),
                None,
            ],
        );
        assert!(matches!(results[0], Err(MempoolError::UnknownContract(_))));
        assert_eq!(results[1].as_ref().ok(), Some(&da.id()));
        assert_eq!(results[2].as_ref().ok(), Some(&db.id()));
        let rows: Vec<SignedTx> = journal
            .load()
            .unwrap()
            .into_iter()
            .map(|(_, t)| t)
            .collect();
        assert_eq!(rows, vec![da.signed().clone(), db.signed().clone()]);
    }

    /// Issue 6 §8: a failed journal write used to run the block-commit clean-up, which raised
    /// the sender's base nonce and dropped its earlier, acknowledged transactions. Now it
    /// refuses the new batch with a 503 and changes nothing else, evictions included.
    #[test]
    fn failed_journal_write_refuses_only_the_new_batch() {
        let storage = Arc::new(Storage::in_memory(CHAIN).unwrap());
        let journal = FlakyJournal::new();
        let m = admission(&storage, journal.clone(), 4);
        let (a, b, c) = (
            Keypair::from_seed([1; 32]),
            Keypair::from_seed([2; 32]),
            Keypair::from_seed([3; 32]),
        );
        let (d0, d1) = (deploy(&a, 0), deploy(&a, 1));
        let b_future = deploy(&b, 3);
        for r in m.admit(vec![d0.clone(), d1.clone(), b_future.clone()]) {
            r.unwrap();
        }
        let acked = journal_ids(&journal);
        assert_eq!(acked.len(), 3);

        journal.fail.store(true, Ordering::Relaxed);
        // a's next nonce, and c's executable tx that would evict b's future one.
        let (d2, c0) = (deploy(&a, 2), deploy(&c, 0));
        let results = m.admit(vec![d2.clone(), c0.clone(), deploy(&c, 1)]);
        for r in &results {
            let e = r.as_ref().unwrap_err();
            assert!(matches!(e, MempoolError::Journal(_)), "{e}");
            let cause = std::error::Error::source(e).map(ToString::to_string);
            assert!(
                cause
                    .as_deref()
                    .unwrap_or_default()
                    .contains("disk full (injected)"),
                "{e}: {cause:?}"
            );
        }
        {
            let shared = m.pool();
            let pool = &shared.pool;
            for t in [&d0, &d1, &b_future] {
                assert!(pool.contains(&t.id()), "an acknowledged tx was lost");
            }
            assert!(!pool.contains(&d2.id()) && !pool.contains(&c0.id()));
            assert_eq!(pool.len(), 3);
            assert_eq!(
                pool.pending_nonce(&a.public(), 0),
                2,
                "a's nonces untouched"
            );
            pool.check_invariants();
        }
        assert_eq!(journal_ids(&journal), acked);
        assert_eq!(
            m.metrics
                .mempool_evictions
                .get_or_create(&vec![("reason".into(), "future".into())])
                .get(),
            0
        );

        // Once the journal works again the same txs are accepted, evicting as they should.
        journal.fail.store(false, Ordering::Relaxed);
        for r in m.admit(vec![d2.clone(), c0.clone()]) {
            r.unwrap();
        }
        let shared = m.pool();
        assert!(!shared.pool.contains(&b_future.id()), "evicted for c0");
        drop(shared);
        assert!(
            !journal_ids(&journal).contains(&b_future.id()),
            "evicted txs leave the journal"
        );
        assert_eq!(journal_ids(&journal).len(), 4);
        assert_eq!(
            m.metrics
                .mempool_evictions
                .get_or_create(&vec![("reason".into(), "future".into())])
                .get(),
            1
        );
        // Everything left is durable and selectable, in nonce order per sender.
        assert_eq!(select_all(&m).len(), 4);
    }

    /// A transaction whose journal write is under way is in the pool (it counts, it is a
    /// duplicate) but no block can select it, nor its sender's next nonce; once the write is
    /// durable both are selectable. The pool lock is free meanwhile.
    #[test]
    fn a_transaction_is_selectable_only_once_durable() {
        let storage = Arc::new(Storage::in_memory(CHAIN).unwrap());
        let journal = FlakyJournal::new();
        let (release, gate) = mpsc::channel();
        *journal.gate.lock().unwrap() = Some(gate);
        let m = admission(&storage, journal.clone(), 10);
        let a = Keypair::from_seed([1; 32]);
        let (d0, d1) = (deploy(&a, 0), deploy(&a, 1));
        let admitting = {
            let (m, batch) = (m.clone(), vec![d0.clone(), d1.clone()]);
            std::thread::spawn(move || m.admit(batch))
        };
        // Wait (with a deadline) until the batch is in the pool, its write held at the gate.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while m.pool().pool.len() < 2 {
            assert!(std::time::Instant::now() < deadline, "admission never ran");
            std::thread::yield_now();
        }
        assert_eq!(select_all(&m), Vec::<Hash>::new(), "not durable yet");
        assert!(matches!(
            m.admit_batch(vec![d0.clone()], Vec::new(), false)[0],
            Err(MempoolError::Rejected(AdmitError::Duplicate(_)))
        ));
        m.pool().pool.check_invariants();
        release.send(()).unwrap();
        for r in admitting.join().unwrap() {
            r.unwrap();
        }
        assert_eq!(select_all(&m), vec![d0.id(), d1.id()]);
        m.pool().pool.check_invariants();
    }

    /// Admissions from many threads at once: every acknowledged transaction is journaled and
    /// selectable, and batches that arrived during a write shared the next one.
    #[test]
    fn concurrent_admissions_share_journal_writes() {
        let storage = Arc::new(Storage::in_memory(CHAIN).unwrap());
        let journal = FlakyJournal::new();
        let (release, gate) = mpsc::channel();
        *journal.gate.lock().unwrap() = Some(gate);
        let m = admission(&storage, journal.clone(), 1000);
        let threads: Vec<_> = (0..8u8)
            .map(|t| {
                let m = m.clone();
                std::thread::spawn(move || {
                    let k = Keypair::from_seed([t + 1; 32]);
                    m.admit((0..5).map(|n| deploy(&k, n)).collect())
                })
            })
            .collect();
        // Hold the first write until every batch is queued or waiting.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while m.pool().pool.len() < 40 {
            assert!(std::time::Instant::now() < deadline, "admissions never ran");
            std::thread::yield_now();
        }
        // Let every write through (one token each; there are at most 8 batches).
        for _ in 0..8 {
            release.send(()).unwrap();
        }
        let mut acked = Vec::new();
        for t in threads {
            for r in t.join().unwrap() {
                acked.push(r.unwrap());
            }
        }
        acked.sort();
        assert_eq!(acked.len(), 40);
        assert_eq!(journal_ids(&journal), acked);
        let writes = journal.writes.load(Ordering::SeqCst);
        assert!(
            writes <= 2,
            "8 batches queued during one write: {writes} writes"
        );
        let mut selected = select_all(&m);
        selected.sort();
        assert_eq!(selected, acked);
        m.pool().pool.check_invariants();
    }

    /// Issue 6 §8: restore used to re-admit by (sender, nonce), so a call from one sender to
    /// the contract another sender's pending deploy creates could come first, be refused as
    /// `unknown_contract` and be deleted. Restore follows arrival order now.
    #[test]
    fn restore_follows_arrival_order() {
        let storage = Arc::new(Storage::in_memory(CHAIN).unwrap());
        let journal = FlakyJournal::new();
        // Pick keys so that the caller sorts before the deployer: the old order would break.
        let mut keys: Vec<Keypair> = (1..=2).map(|s| Keypair::from_seed([s; 32])).collect();
        keys.sort_by_key(|k| std::cmp::Reverse(k.public()));
        let (deployer, caller) = (&keys[0], &keys[1]);
        assert!(caller.public() < deployer.public());
        let d = deploy(deployer, 0);
        let contract = d.tx().target();
        let c = call(caller, 0, contract);
        let m = admission(&storage, journal.clone(), 10);
        for r in m.admit(vec![d.clone()]) {
            r.unwrap();
        }
        for r in m.admit(vec![c.clone()]) {
            r.unwrap();
        }
        // A restart: a new pool over the same storage and journal.
        let m2 = admission(&storage, journal.clone(), 10);
        assert_eq!(m2.restore().unwrap(), 2);
        let shared = m2.pool();
        assert!(shared.pool.contains(&d.id()) && shared.pool.contains(&c.id()));
        drop(shared);
        assert_eq!(journal_ids(&journal).len(), 2);
        // Restore rewrites the journal under the pool's sequences: only on an empty pool.
        assert!(matches!(m2.restore(), Err(MempoolError::Storage(_))));
        assert_eq!(journal_ids(&journal).len(), 2);
        // Restored transactions are durable: selectable at once.
        assert_eq!(select_all(&m2), vec![d.id(), c.id()]);
        m2.pool().pool.return_in_flight();
        // New admissions are sequenced after the restored ones.
        let d2 = deploy(deployer, 1);
        m2.admit(vec![d2.clone()]).remove(0).unwrap();
        let order: Vec<Hash> = journal
            .load()
            .unwrap()
            .iter()
            .map(|(_, t)| t.tx.id())
            .collect();
        assert_eq!(order, vec![d.id(), c.id(), d2.id()]);

        // A smaller pool on restart keeps what fits and forgets the rest from the journal.
        let m3 = admission(&storage, journal.clone(), 1);
        assert_eq!(m3.restore().unwrap(), 1);
        assert_eq!(journal_ids(&journal), vec![d.id()]);
    }

    /// A crash after a block committed and before its rows were forgotten (removal is lazy):
    /// restore refuses the committed rows against committed state, forgets them, and keeps
    /// the rest in arrival order.
    #[test]
    fn restore_after_a_crash_drops_rows_already_committed() {
        let storage = Arc::new(Storage::in_memory(CHAIN).unwrap());
        let journal = FlakyJournal::new();
        let m = admission(&storage, journal.clone(), 10);
        let a = Keypair::from_seed([1; 32]);
        let txs: Vec<VerifiedTx> = (0..4).map(|n| deploy(&a, n)).collect();
        for r in m.admit(txs.clone()) {
            r.unwrap();
        }
        // Block 1 commits nonces 0 and 1; the node dies before forgetting them.
        let mut writes = WriteSet::default();
        writes.nonces.insert(a.public(), 2);
        let (block, receipts) = crate::storage::tests::make_block(
            &storage.head().unwrap(),
            txs[..2].iter().map(|t| t.signed().clone()).collect(),
            &writes,
        );
        storage.commit_block(&block, &receipts, &writes).unwrap();
        assert_eq!(
            journal_ids(&journal).len(),
            4,
            "the commit left the journal alone"
        );
        let check = journal.inner.check(&storage).unwrap();
        assert_eq!((check.rows, check.committed), (4, 2));
        assert!(check.problems.is_empty());

        let m2 = admission(&storage, journal.clone(), 10);
        assert_eq!(m2.restore().unwrap(), 2);
        let mut left = vec![txs[2].id(), txs[3].id()];
        assert_eq!(select_all(&m2), left);
        left.sort();
        assert_eq!(
            journal_ids(&journal),
            left,
            "committed rows forgotten at restore"
        );
        assert_eq!(journal.inner.check(&storage).unwrap().committed, 0);
    }

    /// Nonces of senders the pool holds come from the pool, others' from the store, in one
    /// batch in order. While a committed block's `on_block` has not run, the store is ahead of
    /// the pool for its senders: a new transaction at a nonce that block used is still refused
    /// (the block's own transaction holds that nonce in the pool), and the next nonce is
    /// admitted. A sender the pool does not hold is read from the store even after senders it
    /// does hold, in the same batch.
    #[test]
    fn a_batch_takes_nonces_from_the_pool_where_it_holds_the_sender_and_reads_the_rest() {
        let storage = Arc::new(Storage::in_memory(CHAIN).unwrap());
        let journal = FlakyJournal::new();
        let m = admission(&storage, journal.clone(), 10);
        let (a, b, c) = (
            Keypair::from_seed([1; 32]),
            Keypair::from_seed([2; 32]),
            Keypair::from_seed([3; 32]),
        );
        let a0 = deploy(&a, 0);
        m.admit(vec![a0.clone()]).remove(0).unwrap();
        assert_eq!(select_all(&m), vec![a0.id()]);
        // Block 1 commits `a0` and, from outside this pool, `c`'s nonces 0 and 1; its
        // `on_block` has not run.
        let c_txs: Vec<SignedTx> = (0..2).map(|n| deploy(&c, n).signed().clone()).collect();
        let mut writes = WriteSet::default();
        writes.nonces.insert(a.public(), 1);
        writes.nonces.insert(c.public(), 2);
        let mut txs = vec![a0.signed().clone()];
        txs.extend(c_txs);
        let (block, receipts) =
            crate::storage::tests::make_block(&storage.head().unwrap(), txs, &writes);
        storage.commit_block(&block, &receipts, &writes).unwrap();

        let other_a0 = signed(&a, 0, testkit::deploy(vec![0, 97, 115, 109, 1, 0, 0, 0, 0]));
        let a1 = call(&a, 1, a0.tx().target());
        let b0 = deploy(&b, 0);
        let c1 = deploy(&c, 1);
        let c2 = deploy(&c, 2);
        let r = m.admit(vec![
            other_a0.clone(),
            a1.clone(),
            b0.clone(),
            c1.clone(),
            c2.clone(),
        ]);
        assert!(
            matches!(
                r[0],
                Err(MempoolError::Rejected(AdmitError::NonceTaken { nonce: 0 }))
            ),
            "{:?}",
            r[0]
        );
        assert_eq!(r[1].as_ref().ok(), Some(&a1.id()), "{:?}", r[1]);
        assert_eq!(r[2].as_ref().ok(), Some(&b0.id()), "{:?}", r[2]);
        assert!(
            matches!(
                r[3],
                Err(MempoolError::Rejected(AdmitError::NonceTooLow {
                    expected: 2,
                    got: 1
                }))
            ),
            "{:?}",
            r[3]
        );
        assert_eq!(r[4].as_ref().ok(), Some(&c2.id()), "{:?}", r[4]);
        let mut want = vec![a1.id(), b0.id(), c2.id()];
        want.sort();
        let mut pending: Vec<Hash> = journal_ids(&journal)
            .into_iter()
            .filter(|id| *id != a0.id())
            .collect();
        pending.sort();
        assert_eq!(
            pending, want,
            "what was admitted, and only that, is journaled"
        );
    }

    /// A data dir from before the journal file: its rows in the chain database come back
    /// after the upgrade, in their arrival order, and leave the chain database.
    #[test]
    fn restore_moves_an_old_journal_out_of_the_chain_database() {
        let storage = Arc::new(Storage::in_memory(CHAIN).unwrap());
        let mut keys: Vec<Keypair> = (1..=2).map(|s| Keypair::from_seed([s; 32])).collect();
        keys.sort_by_key(|k| std::cmp::Reverse(k.public()));
        let (deployer, caller) = (&keys[0], &keys[1]);
        let d = deploy(deployer, 0);
        let c = call(caller, 0, d.tx().target());
        // What an older version wrote: the deploy first, then the call.
        storage
            .journal_write(&[(0, d.signed()), (1, c.signed())], &[])
            .unwrap();
        let journal = FlakyJournal::new();
        let m = admission(&storage, journal.clone(), 10);
        assert_eq!(m.restore().unwrap(), 2);
        assert!(storage.journal_all().unwrap().is_empty());
        let order: Vec<Hash> = journal
            .load()
            .unwrap()
            .iter()
            .map(|(_, t)| t.tx.id())
            .collect();
        assert_eq!(order, vec![d.id(), c.id()]);
        // And once more after a restart: nothing moved twice.
        let m2 = admission(&storage, journal.clone(), 10);
        assert_eq!(m2.restore().unwrap(), 2);
        assert_eq!(journal.load().unwrap().len(), 2);
    }
}
