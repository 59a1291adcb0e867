//! Mempool actor: admission, ordering and the journal of pending transactions.
//!
//! The ordering logic lives in `pool` (actix-free, unit tested). The actor adds what needs the
//! outside world: committed nonces from storage, the journal (`mempool.persist`), expiry on a
//! timer, and the live numbers for `/stats`. Invariants:
//! - The pool itself is shared (`Arc<Mutex<Shared>>`) and outlives any one incarnation of the
//!   actor, so a supervisor restart loses no pending transaction.
//! - A call is admitted only to a contract that is deployed, or that a pending deploy will
//!   create; anything else is refused up front ("unknown contract") instead of costing its
//!   sender a nonce and gas for a receipt that can only say the same.
//! - With `mempool.persist` on, a transaction is journaled in storage *before* it is
//!   acknowledged; the journal entry goes away in the same write transaction that commits the
//!   transaction's block (storage does that) or when the pool drops it. On start the journal is
//!   re-admitted against committed state.
//! - Signatures are verified by the caller (the API verifies batches on its worker threads);
//!   only `VerifiedTx` values enter the pool.

pub mod pool;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix::prelude::*;

use crate::metrics::{NodeMetrics, NodeStats, now_ms};
use crate::ratelimit::LogLimiter;
use crate::storage::Storage;
use crate::types::{Action, Address, Hash, PublicKey, VerifiedTx};
use crate::vm::DropReason;
use pool::{AdmitError, Pool};

/// How often expired transactions are removed.
const EXPIRY_INTERVAL: Duration = Duration::from_secs(1);

static FULL_LOG: LogLimiter = LogLimiter::new(Duration::from_secs(10));
static GAS_LOG: LogLimiter = LogLimiter::new(Duration::from_secs(10));

/// Why a transaction was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MempoolError {
    #[error(transparent)]
    Rejected(#[from] AdmitError),
    #[error("unknown contract {0}: no contract is deployed there and no pending deploy creates it")]
    UnknownContract(Address),
    #[error("storage error: {0}")]
    Storage(String),
}

impl MempoolError {
    /// Stable error code for API clients.
    pub fn code(&self) -> &'static str {
        match self {
            MempoolError::Rejected(e) => e.code(),
            MempoolError::UnknownContract(_) => "unknown_contract",
            MempoolError::Storage(_) => "storage_error",
        }
    }

    /// HTTP status for API clients.
    pub fn http_status(&self) -> u16 {
        match self {
            MempoolError::Rejected(e) => e.http_status(),
            MempoolError::UnknownContract(_) => 404,
            MempoolError::Storage(_) => 500,
        }
    }
}

/// What the mempool keeps across actor restarts.
#[derive(Debug)]
pub struct Shared {
    pub pool: Pool,
    /// Contracts that pending deploys will create, with the deploy's id. Entries go stale once
    /// their deploy leaves the pool; they are checked against the pool on use and pruned after
    /// every block.
    deploys: HashMap<Address, Hash>,
}

impl Shared {
    pub fn new(pool: Pool) -> Self {
        Shared {
            pool,
            deploys: HashMap::new(),
        }
    }
}

/// The mempool actor.
pub struct Mempool {
    pool: Arc<Mutex<Shared>>,
    storage: Arc<Storage>,
    persist: bool,
    stats: Arc<NodeStats>,
    metrics: NodeMetrics,
}

impl std::fmt::Debug for Mempool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mempool")
            .field("persist", &self.persist)
            .finish_non_exhaustive()
    }
}

impl Mempool {
    pub fn new(
        pool: Arc<Mutex<Shared>>,
        storage: Arc<Storage>,
        persist: bool,
        stats: Arc<NodeStats>,
        metrics: NodeMetrics,
    ) -> Self {
        Mempool {
            pool,
            storage,
            persist,
            stats,
            metrics,
        }
    }

    fn pool(&self) -> MutexGuard<'_, Shared> {
        // Pool operations are short and leave it consistent between calls; a panic elsewhere
        // while holding the lock does not make it unusable.
        self.pool.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn publish(&self, pool: &Pool) {
        let size = pool.len() as u64;
        let accounts = pool.accounts() as u64;
        self.stats.mempool_size.store(size, Ordering::Relaxed);
        self.stats
            .mempool_accounts
            .store(accounts, Ordering::Relaxed);
        self.metrics.mempool_size.set(size as i64);
        self.metrics.mempool_accounts.set(accounts as i64);
    }

    fn forget(&self, ids: &[Hash]) {
        if self.persist
            && !ids.is_empty()
            && let Err(e) = self.storage.journal_remove(ids)
        {
            tracing::error!(error = %e, "mempool journal cleanup failed");
        }
    }

    /// Admits verified transactions; one result per transaction, in order.
    pub fn admit(&self, txs: Vec<VerifiedTx>) -> Vec<Result<Hash, MempoolError>> {
        let now = now_ms();
        let mut nonces: HashMap<PublicKey, u64> = HashMap::new();
        let mut known: HashMap<Address, bool> = HashMap::new();
        let snapshot = match self.storage.snapshot() {
            Ok(s) => s,
            Err(e) => {
                let err = MempoolError::Storage(e.to_string());
                return txs.iter().map(|_| Err(err.clone())).collect();
            }
        };
        let mut results = Vec::with_capacity(txs.len());
        let mut accepted = Vec::new();
        let mut shared = self.pool();
        let Shared { pool, deploys } = &mut *shared;
        for tx in txs {
            let id = tx.id();
            let sender = tx.tx().sender;
            if let Action::Call { contract, .. } = &tx.tx().action {
                // Batches call the same few contracts over and over: look each up once.
                let deployed = match known.get(contract) {
                    Some(d) => *d,
                    None => match snapshot.contract(contract) {
                        Ok(c) => *known.entry(*contract).or_insert(c.is_some()),
                        Err(e) => {
                            results.push(Err(MempoolError::Storage(e.to_string())));
                            continue;
                        }
                    },
                };
                let pending = deploys.get(contract).is_some_and(|d| pool.contains(d));
                if !deployed && !pending {
                    results.push(Err(MempoolError::UnknownContract(*contract)));
                    continue;
                }
            }
            let creates = matches!(tx.tx().action, Action::Deploy { .. }).then(|| tx.tx().target());
            let state_nonce = match nonces.get(&sender) {
                Some(n) => *n,
                None => match snapshot.nonce(&sender) {
                    Ok(n) => {
                        nonces.insert(sender, n);
                        n
                    }
                    Err(e) => {
                        results.push(Err(MempoolError::Storage(e.to_string())));
                        continue;
                    }
                },
            };
            let signed = self.persist.then(|| tx.signed().clone());
            match pool.admit(tx, state_nonce, now) {
                Ok(()) => {
                    if let Some(s) = signed {
                        accepted.push(s);
                    }
                    if let Some(address) = creates {
                        deploys.insert(address, id);
                    }
                    results.push(Ok(id));
                }
                Err(e) => {
                    match &e {
                        AdmitError::PoolFull { max_size } => {
                            if let Some(suppressed) = FULL_LOG.allow() {
                                tracing::error!(
                                    max_size,
                                    suppressed,
                                    "mempool full: transaction rejected (mempool.max_size reached)"
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
                    results.push(Err(MempoolError::Rejected(e)));
                }
            }
        }
        if !accepted.is_empty()
            && let Err(e) = self.storage.journal_put(&accepted)
        {
            // Not durable, so not acknowledged: take them back out of the pool.
            tracing::error!(error = %e, "mempool journal write failed; rejecting the batch");
            let ids: Vec<Hash> = accepted.iter().map(|t| t.tx.id()).collect();
            pool.on_block(&ids, &BTreeMap::new(), &[]);
            let err = MempoolError::Storage(e.to_string());
            for r in results.iter_mut() {
                if matches!(r, Ok(id) if ids.contains(id)) {
                    *r = Err(err.clone());
                }
            }
        }
        let ok = results.iter().filter(|r| r.is_ok()).count() as u64;
        self.stats.mempool_admitted.fetch_add(ok, Ordering::Relaxed);
        self.stats
            .mempool_rejected
            .fetch_add(results.len() as u64 - ok, Ordering::Relaxed);
        self.publish(pool);
        results
    }

    /// Re-admits the journal after a start; drops entries that are no longer valid.
    pub fn restore(&self) -> Result<usize, MempoolError> {
        if !self.persist {
            return Ok(0);
        }
        let mut txs = self
            .storage
            .journal_all()
            .map_err(|e| MempoolError::Storage(e.to_string()))?;
        txs.sort_by_key(|t| (t.tx.sender, t.tx.nonce));
        let verified: Vec<VerifiedTx> = txs.into_iter().map(VerifiedTx::from_trusted).collect();
        let ids: Vec<Hash> = verified.iter().map(|t| t.id()).collect();
        // Re-admission journals again, which is harmless (same key, same value).
        let results = self.admit(verified);
        let stale: Vec<Hash> = ids
            .iter()
            .zip(&results)
            .filter(|(_, r)| r.is_err())
            .map(|(id, _)| *id)
            .collect();
        self.forget(&stale);
        Ok(results.len() - stale.len())
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
            let expired = act.pool().pool.expire(now_ms());
            if !expired.is_empty() {
                act.stats
                    .mempool_expired
                    .fetch_add(expired.len() as u64, Ordering::Relaxed);
                act.forget(&expired);
                let shared = act.pool();
                act.publish(&shared.pool);
            }
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

/// Takes up to `max` transactions for the next block (they stay in flight until `BlockDone`).
#[derive(Debug, Message)]
#[rtype(result = "Vec<VerifiedTx>")]
pub struct Select {
    pub max: usize,
}

impl Handler<Select> for Mempool {
    type Result = MessageResult<Select>;
    fn handle(&mut self, msg: Select, _: &mut Context<Self>) -> Self::Result {
        let mut shared = self.pool();
        let txs = shared.pool.select(msg.max, now_ms());
        self.publish(&shared.pool);
        MessageResult(txs)
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
        let removed = {
            let mut shared = self.pool();
            let Shared { pool, deploys } = &mut *shared;
            let removed = pool.on_block(&msg.included, &msg.nonces, &msg.dropped);
            deploys.retain(|_, id| pool.contains(id));
            self.publish(pool);
            removed
        };
        self.forget(&removed);
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
        shared.pool.return_in_flight();
        self.publish(&shared.pool);
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
