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
//!   acknowledged, with its arrival sequence, in the same write transaction that forgets what
//!   its admission evicted; the journal entry goes away in the same write transaction that
//!   commits the transaction's block (storage does that) or when the pool drops it (expiry,
//!   eviction, a dropped transaction), so the journal holds what the pool holds and is bounded
//!   like it. On start the journal is re-admitted in arrival order against committed state (a
//!   call admitted because another sender's deploy was pending comes back after that deploy).
//! - A failed journal write refuses the batch being admitted (503 `journal_unavailable`) and
//!   puts the pool back exactly as it was: no earlier, acknowledged transaction is touched.
//! - Signatures are verified by the caller (the API verifies batches on its worker threads);
//!   only `VerifiedTx` values enter the pool.

pub mod pool;

#[cfg(test)]
mod actor_tests;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix::prelude::*;

use crate::metrics::{NodeMetrics, NodeStats, now_ms};
use crate::ratelimit::LogLimiter;
use crate::storage::{Storage, StorageError};
use crate::types::{Action, Address, Hash, PublicKey, SignedTx, VerifiedTx};
use crate::vm::DropReason;
use pool::{AdmitError, BlockLimits, EvictReason, Evicted, Pool};

/// How often expired transactions are removed.
const EXPIRY_INTERVAL: Duration = Duration::from_secs(1);

static FULL_LOG: LogLimiter = LogLimiter::new(Duration::from_secs(10));
static GAS_LOG: LogLimiter = LogLimiter::new(Duration::from_secs(10));
static EVICT_LOG: LogLimiter = LogLimiter::new(Duration::from_secs(10));

/// Where the mempool journals pending transactions (`mempool.persist`). `Storage` is the real
/// one; tests put a failing one in its place.
pub trait Journal: Send + Sync {
    /// One all-or-nothing write: journal `put` (arrival sequence, tx id, tx), forget `remove`.
    fn write(&self, put: &[(u64, Hash, &SignedTx)], remove: &[Hash]) -> Result<(), StorageError>;
    /// Forget these transactions; unknown ids are ignored.
    fn remove(&self, ids: &[Hash]) -> Result<(), StorageError>;
    /// Everything journaled, with its arrival sequence where one is known.
    fn load(&self) -> Result<Vec<(Option<u64>, SignedTx)>, StorageError>;
}

impl Journal for Storage {
    fn write(&self, put: &[(u64, Hash, &SignedTx)], remove: &[Hash]) -> Result<(), StorageError> {
        self.journal_write_ids(put, remove)
    }

    fn remove(&self, ids: &[Hash]) -> Result<(), StorageError> {
        self.journal_remove(ids)
    }

    fn load(&self) -> Result<Vec<(Option<u64>, SignedTx)>, StorageError> {
        self.journal_all_ordered()
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
    deploys: HashMap<Address, Hash>,
    /// Next arrival sequence to journal; above every journaled one.
    journal_seq: u64,
}

impl Shared {
    pub fn new(pool: Pool) -> Self {
        Shared {
            pool,
            deploys: HashMap::new(),
            journal_seq: 0,
        }
    }
}

/// The mempool actor.
pub struct Mempool {
    pool: Arc<Mutex<Shared>>,
    storage: Arc<Storage>,
    journal: Arc<dyn Journal>,
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
            journal: storage.clone(),
            storage,
            persist,
            stats,
            metrics,
        }
    }

    /// Journals through `journal` instead of the storage (a test seam).
    pub fn with_journal(mut self, journal: Arc<dyn Journal>) -> Self {
        self.journal = journal;
        self
    }

    fn pool(&self) -> MutexGuard<'_, Shared> {
        // Pool operations are short and leave it consistent between calls; a panic elsewhere
        // while holding the lock does not make it unusable.
        self.pool.lock().unwrap_or_else(|p| p.into_inner())
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

    fn forget(&self, ids: &[Hash]) {
        if self.persist
            && !ids.is_empty()
            && let Err(e) = self.journal.remove(ids)
        {
            tracing::error!(error = %e, "mempool journal cleanup failed");
        }
    }

    /// Admits verified transactions; one result per transaction, in order.
    pub fn admit(&self, txs: Vec<VerifiedTx>) -> Vec<Result<Hash, MempoolError>> {
        self.admit_batch(txs, true)
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

    /// Admits a batch; with `journal` (and `mempool.persist`), journals what it accepted and
    /// forgets what that evicted in one write, or undoes the whole batch if that fails.
    /// Returns one result per transaction; evictions that stand are counted, and when not
    /// journaling (restore) they are forgotten from the journal here.
    fn admit_batch(&self, txs: Vec<VerifiedTx>, journal: bool) -> Vec<Result<Hash, MempoolError>> {
        let now = now_ms();
        let mut nonces: HashMap<PublicKey, u64> = HashMap::new();
        let mut known: HashMap<Address, bool> = HashMap::new();
        let snapshot = match self.storage.snapshot() {
            Ok(s) => s,
            Err(e) => {
                let err = MempoolError::Storage(Arc::new(e));
                return txs.iter().map(|_| Err(err.clone())).collect();
            }
        };
        let mut results = Vec::with_capacity(txs.len());
        let mut admitted: Vec<Hash> = Vec::new();
        let mut evicted: Vec<Evicted> = Vec::new();
        let mut shared = self.pool();
        let Shared {
            pool,
            deploys,
            journal_seq,
        } = &mut *shared;
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
                            results.push(Err(MempoolError::Storage(Arc::new(e))));
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
                        results.push(Err(MempoolError::Storage(Arc::new(e))));
                        continue;
                    }
                },
            };
            match pool.admit(tx, state_nonce, now) {
                Ok(out) => {
                    evicted.extend(out);
                    admitted.push(id);
                    if let Some(address) = creates {
                        deploys.insert(address, id);
                    }
                    results.push(Ok(id));
                }
                Err(e) => {
                    match &e {
                        AdmitError::PoolFull {
                            max_size,
                            max_bytes,
                        } => {
                            if let Some(suppressed) = FULL_LOG.allow() {
                                tracing::error!(
                                    max_size,
                                    max_bytes,
                                    suppressed,
                                    "mempool full: transaction rejected (mempool.max_size or \
                                     mempool.max_bytes reached and nothing less useful to evict)"
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
        let evicted_ids: Vec<Hash> = evicted.iter().map(|e| e.id).collect();
        if journal && self.persist && !(admitted.is_empty() && evicted.is_empty()) {
            // Arrival sequences in admission order; a tx evicted later in the same batch is
            // not journaled at all.
            let gone: std::collections::HashSet<&Hash> = evicted_ids.iter().collect();
            let put: Vec<(u64, Hash, &SignedTx)> = admitted
                .iter()
                .filter(|id| !gone.contains(id))
                .filter_map(|id| pool.get(id))
                .map(|t| {
                    let seq = *journal_seq;
                    *journal_seq += 1;
                    (seq, t.id(), t.signed())
                })
                .collect();
            if let Err(e) = self.journal.write(&put, &evicted_ids) {
                // Not durable, so not acknowledged: this batch is refused and the pool goes
                // back to exactly what it was (the evicted return, nothing else moves).
                tracing::error!(error = %e, "mempool journal write failed; rejecting the batch");
                pool.rollback(&admitted, evicted);
                let err = MempoolError::Journal(Arc::new(e));
                for r in results.iter_mut() {
                    if r.is_ok() {
                        *r = Err(err.clone());
                    }
                }
                evicted = Vec::new();
            }
        }
        self.count_evictions(&evicted);
        let ok = results.iter().filter(|r| r.is_ok()).count() as u64;
        self.stats.mempool_admitted.fetch_add(ok, Ordering::Relaxed);
        self.stats
            .mempool_rejected
            .fetch_add(results.len() as u64 - ok, Ordering::Relaxed);
        self.publish(pool);
        drop(shared);
        if !journal && !evicted.is_empty() {
            self.forget(&evicted_ids);
        }
        results
    }

    /// Re-admits the journal after a start, in arrival order (entries journaled without a
    /// sequence go last, by sender and nonce); drops entries that are no longer valid or
    /// that re-admission evicted (a smaller `mempool.max_size`/`max_bytes` than before).
    pub fn restore(&self) -> Result<usize, MempoolError> {
        if !self.persist {
            return Ok(0);
        }
        let mut txs = self
            .journal
            .load()
            .map_err(|e| MempoolError::Storage(Arc::new(e)))?;
        txs.sort_by_key(|(seq, t)| (seq.unwrap_or(u64::MAX), t.tx.sender, t.tx.nonce));
        let next_seq = txs
            .iter()
            .filter_map(|(seq, _)| *seq)
            .max()
            .map_or(0, |s| s.saturating_add(1));
        {
            let mut shared = self.pool();
            shared.journal_seq = shared.journal_seq.max(next_seq);
        }
        let verified: Vec<VerifiedTx> = txs
            .into_iter()
            .map(|(_, t)| VerifiedTx::from_trusted(t))
            .collect();
        let ids: Vec<Hash> = verified.iter().map(|t| t.id()).collect();
        // Already journaled (with their sequences): admit without writing them again.
        let results = self.admit_batch(verified, false);
        let stale: Vec<Hash> = ids
            .iter()
            .zip(&results)
            .filter(|(_, r)| r.is_err())
            .map(|(id, _)| *id)
            .collect();
        self.forget(&stale);
        let shared = self.pool();
        Ok(ids.iter().filter(|id| shared.pool.contains(id)).count())
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
            let (expired, futures) = {
                let mut shared = act.pool();
                let expired = shared.pool.expire(now);
                let futures = shared.pool.evict_stale_futures(now);
                if !(expired.is_empty() && futures.is_empty()) {
                    act.publish(&shared.pool);
                }
                (expired, futures)
            };
            if !expired.is_empty() {
                act.stats
                    .mempool_expired
                    .fetch_add(expired.len() as u64, Ordering::Relaxed);
                act.forget(&expired);
            }
            if !futures.is_empty() {
                act.metrics
                    .evicted(EvictReason::FutureTtl.label(), futures.len() as u64);
                act.forget(&futures);
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
            selection
        };
        if !selection.expired.is_empty() {
            self.stats
                .mempool_expired
                .fetch_add(selection.expired.len() as u64, Ordering::Relaxed);
            self.forget(&selection.expired);
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
        let removed = {
            let mut shared = self.pool();
            let Shared { pool, deploys, .. } = &mut *shared;
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

#[cfg(test)]
mod tests {
    //! The actor's journal paths, driven through `admit`/`restore` directly (no actix needed):
    //! a failing journal write, and restore order.

    use super::*;
    use crate::mempool::pool::PoolConfig;
    use crate::testkit::{self, CHAIN};
    use crate::types::Keypair;
    use std::sync::atomic::AtomicBool;

    /// The real storage journal, with a switch that makes every write fail.
    struct FlakyJournal {
        inner: Arc<Storage>,
        fail: AtomicBool,
    }

    impl Journal for FlakyJournal {
        fn write(
            &self,
            put: &[(u64, Hash, &SignedTx)],
            remove: &[Hash],
        ) -> Result<(), StorageError> {
            if self.fail.load(Ordering::Relaxed) {
                return Err(StorageError::Io {
                    what: "journal".into(),
                    source: std::io::Error::other("disk full (injected)"),
                });
            }
            self.inner.write(put, remove)
        }
        fn remove(&self, ids: &[Hash]) -> Result<(), StorageError> {
            if self.fail.load(Ordering::Relaxed) {
                return Err(StorageError::Io {
                    what: "journal".into(),
                    source: std::io::Error::other("disk full (injected)"),
                });
            }
            Journal::remove(&*self.inner, ids)
        }
        fn load(&self) -> Result<Vec<(Option<u64>, SignedTx)>, StorageError> {
            self.inner.load()
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

    fn mempool(storage: &Arc<Storage>, max_size: usize) -> Mempool {
        Mempool::new(
            Arc::new(Mutex::new(Shared::new(Pool::new(config(max_size))))),
            storage.clone(),
            true,
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

    fn journal_ids(storage: &Storage) -> Vec<Hash> {
        let mut ids: Vec<Hash> = storage
            .journal_all()
            .unwrap()
            .iter()
            .map(|t| t.tx.id())
            .collect();
        ids.sort();
        ids
    }

    /// Issue 6 §8: a failed journal write used to run the block-commit clean-up, which raised
    /// the sender's base nonce and dropped its earlier, acknowledged transactions. Now it
    /// refuses the new batch with a 503 and changes nothing else, evictions included.
    #[test]
    fn failed_journal_write_refuses_only_the_new_batch() {
        let storage = Arc::new(Storage::in_memory(CHAIN).unwrap());
        let journal = Arc::new(FlakyJournal {
            inner: storage.clone(),
            fail: AtomicBool::new(false),
        });
        let m = mempool(&storage, 4).with_journal(journal.clone());
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
        let acked = journal_ids(&storage);
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
        assert_eq!(journal_ids(&storage), acked);
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
            !journal_ids(&storage).contains(&b_future.id()),
            "evicted txs leave the journal"
        );
        assert_eq!(journal_ids(&storage).len(), 4);
        assert_eq!(
            m.metrics
                .mempool_evictions
                .get_or_create(&vec![("reason".into(), "future".into())])
                .get(),
            1
        );
    }

    /// Issue 6 §8: restore used to re-admit by (sender, nonce), so a call from one sender to
    /// the contract another sender's pending deploy creates could come first, be refused as
    /// `unknown_contract` and be deleted. Restore follows arrival order now.
    #[test]
    fn restore_follows_arrival_order() {
        let storage = Arc::new(Storage::in_memory(CHAIN).unwrap());
        // Pick keys so that the caller sorts before the deployer: the old order would break.
        let mut keys: Vec<Keypair> = (1..=2).map(|s| Keypair::from_seed([s; 32])).collect();
        keys.sort_by_key(|k| std::cmp::Reverse(k.public()));
        let (deployer, caller) = (&keys[0], &keys[1]);
        assert!(caller.public() < deployer.public());
        let d = deploy(deployer, 0);
        let contract = d.tx().target();
        let c = call(caller, 0, contract);
        let m = mempool(&storage, 10);
        for r in m.admit(vec![d.clone()]) {
            r.unwrap();
        }
        for r in m.admit(vec![c.clone()]) {
            r.unwrap();
        }
        // A restart: a new pool over the same storage.
        let m2 = mempool(&storage, 10);
        assert_eq!(m2.restore().unwrap(), 2);
        let shared = m2.pool();
        assert!(shared.pool.contains(&d.id()) && shared.pool.contains(&c.id()));
        drop(shared);
        assert_eq!(journal_ids(&storage).len(), 2);
        // New admissions are sequenced after the restored ones.
        let d2 = deploy(deployer, 1);
        m2.admit(vec![d2.clone()]).remove(0).unwrap();
        let order: Vec<Hash> = {
            let mut all = storage.journal_all_ordered().unwrap();
            all.sort_by_key(|(s, _)| *s);
            all.iter().map(|(_, t)| t.tx.id()).collect()
        };
        assert_eq!(order, vec![d.id(), c.id(), d2.id()]);

        // A smaller pool on restart keeps what fits and forgets the rest from the journal.
        let m3 = mempool(&storage, 1);
        assert_eq!(m3.restore().unwrap(), 1);
        assert_eq!(journal_ids(&storage), vec![d.id()]);
    }
}
