//! The mempool's data structure: admission, ordering and bookkeeping of pending transactions.
//! Pure data: no actix, no storage, no clock (callers pass `now_ms`), so it is tested directly.
//!
//! Layout:
//! - `entries`: every pending transaction by id, ready or in flight (selected for a block
//!   attempt whose outcome is not known yet).
//! - `accounts`: per sender, its pending transactions by nonce, its committed next nonce
//!   (`base`) and its selection `cursor`.
//! - `ready`: one key per sender at most, for the sender's *next executable* transaction (its
//!   "head"), ordered by highest priority, then earliest arrival. Selecting a head moves the
//!   sender's cursor on and makes its next contiguous nonce the new head, so selection costs
//!   O(log n) per transaction and admission O(log n).
//! - `expiries`: transactions with an expiry, ordered by it, so expiring is O(expired · log n).
//!
//! Invariants (checked by `check_invariants` in the tests):
//! - Every entry is in exactly one account's `txs`, under its own nonce, and vice versa; an
//!   account with no transactions is removed, so `accounts()` counts senders with pending txs.
//! - `base <= cursor`; every pending nonce in `base..cursor` is in flight and every nonce at or
//!   above `cursor` is ready. (Nonces below `base` are stale: ready or in flight, they can no
//!   longer execute, and the next `on_block` for the sender removes them.)
//! - A sender has a key in `ready` iff it has a ready transaction at nonce `cursor`; so a
//!   transaction behind a nonce gap is never selected, and a sender's transactions are selected
//!   strictly in nonce order.
//! - Arrival sequence numbers are unique and never reused; a transaction keeps its own for its
//!   whole life in the pool, so a transaction returned to the ready set keeps its old place.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::types::{Hash, PublicKey, VerifiedTx};
use crate::vm::DropReason;

/// Limits the pool enforces at admission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// The only chain id accepted.
    pub chain_id: String,
    /// Most pending transactions in total (`mempool.max_size`).
    pub max_size: usize,
    /// Most pending transactions per sender (`mempool.account_limit`).
    pub account_limit: usize,
    /// Largest gas limit of one transaction (`execution.gas_limit`).
    pub max_tx_gas: u64,
    /// How far ahead of the sender's committed next nonce a transaction may be held.
    pub max_future_nonces: u64,
}

/// Why a transaction was not admitted. The `Display` text is shown to API clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmitError {
    #[error("transaction is for chain {got:?}, this node serves chain {expected:?}")]
    WrongChain { expected: String, got: String },
    #[error("gas limit {limit} exceeds the per-transaction maximum {max} (execution.gas_limit)")]
    GasLimit { limit: u64, max: u64 },
    #[error("transaction expired at {expiry} ms, node time is {now} ms")]
    Expired { expiry: u64, now: u64 },
    #[error("nonce {got} is already used: the sender's next nonce is {expected}")]
    NonceTooLow { expected: u64, got: u64 },
    #[error(
        "nonce {got} is too far ahead: the sender's next nonce is {next} and the mempool holds \
         transactions at most {max_ahead} nonces ahead of it"
    )]
    NonceTooFar { next: u64, got: u64, max_ahead: u64 },
    #[error("transaction {0} is already pending")]
    Duplicate(Hash),
    #[error(
        "another pending transaction of this sender already has nonce {nonce}; replacing a \
         pending transaction (replace-by-fee) is not supported, wait until it is included or \
         expires"
    )]
    NonceTaken { nonce: u64 },
    #[error("mempool is full ({max_size} pending transactions); retry later")]
    PoolFull { max_size: usize },
    #[error(
        "sender already has {limit} pending transactions, the most mempool.account_limit allows; \
         wait until some are included"
    )]
    AccountFull { limit: usize },
}

impl AdmitError {
    /// Stable snake_case code for JSON errors; clients match on it, so never rename one.
    pub fn code(&self) -> &'static str {
        match self {
            AdmitError::WrongChain { .. } => "wrong_chain",
            AdmitError::GasLimit { .. } => "gas_limit",
            AdmitError::Expired { .. } => "expired",
            AdmitError::NonceTooLow { .. } => "nonce_too_low",
            AdmitError::NonceTooFar { .. } => "nonce_too_far",
            AdmitError::Duplicate(_) => "duplicate",
            AdmitError::NonceTaken { .. } => "nonce_taken",
            AdmitError::PoolFull { .. } => "mempool_full",
            AdmitError::AccountFull { .. } => "account_limit",
        }
    }

    /// HTTP status: 400 for a transaction that can never be admitted as sent, 409 for a
    /// conflict with the chain or the pool, 503/429 for capacity (retrying later may work).
    pub fn http_status(&self) -> u16 {
        match self {
            AdmitError::WrongChain { .. }
            | AdmitError::GasLimit { .. }
            | AdmitError::Expired { .. }
            | AdmitError::NonceTooFar { .. } => 400,
            AdmitError::NonceTooLow { .. }
            | AdmitError::Duplicate(_)
            | AdmitError::NonceTaken { .. } => 409,
            AdmitError::PoolFull { .. } => 503,
            AdmitError::AccountFull { .. } => 429,
        }
    }
}

/// Position in the ready set: highest priority first, then earliest arrival. The arrival
/// sequence is unique, so keys never collide.
type ReadyKey = (Reverse<u64>, u64);

#[derive(Debug)]
struct Entry {
    tx: VerifiedTx,
    /// Arrival sequence number.
    seq: u64,
    /// Selected for a block attempt whose outcome is not known yet.
    in_flight: bool,
}

impl Entry {
    fn ready_key(&self) -> ReadyKey {
        (Reverse(self.tx.tx().priority), self.seq)
    }

    fn expiry_key(&self) -> Option<(u64, Hash)> {
        self.tx.tx().expiry.map(|e| (e, self.tx.id()))
    }

    fn expired(&self, now_ms: u64) -> bool {
        self.tx.tx().expiry.is_some_and(|e| e < now_ms)
    }
}

#[derive(Debug)]
struct Account {
    /// The sender's next nonce in committed state, as last learned.
    base: u64,
    /// The next nonce to select; `base..cursor` are in flight.
    cursor: u64,
    /// Pending transactions by nonce.
    txs: BTreeMap<u64, Hash>,
    /// This sender's key in the ready set, if it has a selectable transaction.
    head: Option<ReadyKey>,
}

/// Pending transactions, see the module comment.
#[derive(Debug)]
pub struct Pool {
    config: PoolConfig,
    entries: HashMap<Hash, Entry>,
    accounts: HashMap<PublicKey, Account>,
    ready: BTreeMap<ReadyKey, Hash>,
    expiries: BTreeSet<(u64, Hash)>,
    /// Ids selected since the last `on_block`/`return_in_flight`, in selection order.
    in_flight: Vec<Hash>,
    next_seq: u64,
}

impl Pool {
    /// An empty pool enforcing `config`.
    pub fn new(config: PoolConfig) -> Pool {
        Pool {
            config,
            entries: HashMap::new(),
            accounts: HashMap::new(),
            ready: BTreeMap::new(),
            expiries: BTreeSet::new(),
            in_flight: Vec::new(),
            next_seq: 0,
        }
    }

    /// The limits this pool was built with.
    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// Admits a tx whose signature was already verified. `state_nonce` = the sender's next
    /// nonce in committed state (caller looks it up). Rejections change nothing.
    ///
    /// The nonce checks use the larger of `state_nonce` and the nonce the pool learned from
    /// the last block, so a lookup that races a block commit cannot admit a stale nonce.
    pub fn admit(
        &mut self,
        tx: VerifiedTx,
        state_nonce: u64,
        now_ms: u64,
    ) -> Result<(), AdmitError> {
        let id = tx.id();
        let body = tx.tx();
        if body.chain_id != self.config.chain_id {
            return Err(AdmitError::WrongChain {
                expected: self.config.chain_id.clone(),
                got: body.chain_id.clone(),
            });
        }
        if body.gas_limit > self.config.max_tx_gas {
            return Err(AdmitError::GasLimit {
                limit: body.gas_limit,
                max: self.config.max_tx_gas,
            });
        }
        if let Some(expiry) = body.expiry.filter(|e| *e < now_ms) {
            return Err(AdmitError::Expired {
                expiry,
                now: now_ms,
            });
        }
        // Before the nonce checks: resending a pending transaction should say so, not that
        // its nonce is taken.
        if self.entries.contains_key(&id) {
            return Err(AdmitError::Duplicate(id));
        }
        let account = self.accounts.get(&body.sender);
        let next = account.map_or(state_nonce, |a| a.base.max(state_nonce));
        if body.nonce < next {
            return Err(AdmitError::NonceTooLow {
                expected: next,
                got: body.nonce,
            });
        }
        if body.nonce - next > self.config.max_future_nonces {
            return Err(AdmitError::NonceTooFar {
                next,
                got: body.nonce,
                max_ahead: self.config.max_future_nonces,
            });
        }
        if let Some(a) = account {
            if a.txs.contains_key(&body.nonce) {
                return Err(AdmitError::NonceTaken { nonce: body.nonce });
            }
            if a.txs.len() >= self.config.account_limit {
                return Err(AdmitError::AccountFull {
                    limit: self.config.account_limit,
                });
            }
        } else if self.config.account_limit == 0 {
            return Err(AdmitError::AccountFull { limit: 0 });
        }
        if self.entries.len() >= self.config.max_size {
            return Err(AdmitError::PoolFull {
                max_size: self.config.max_size,
            });
        }

        // Accepted: from here on nothing fails.
        let sender = body.sender;
        let nonce = body.nonce;
        let seq = self.next_seq;
        self.next_seq += 1;
        let entry = Entry {
            tx,
            seq,
            in_flight: false,
        };
        if let Some(k) = entry.expiry_key() {
            self.expiries.insert(k);
        }
        self.entries.insert(id, entry);
        let account = self.accounts.entry(sender).or_insert(Account {
            base: next,
            cursor: next,
            txs: BTreeMap::new(),
            head: None,
        });
        account.txs.insert(nonce, id);
        // A newer committed nonce moves selection past nonces that can no longer execute;
        // those stay until the next block purges them, like any stale transaction.
        account.base = account.base.max(next);
        account.cursor = account.cursor.max(account.base);
        self.refresh_head(&sender);
        Ok(())
    }

    /// Up to `max` executable txs for the next block, removed from the ready set but
    /// remembered as in flight (not selectable again, still counted by `len`, still found by
    /// `get`/`contains`). Highest priority first, then earliest arrival; each sender's txs in
    /// nonce order from its next nonce; a tx behind a nonce gap is held back; expired txs
    /// (expiry < now_ms) met on the way are removed instead of returned.
    pub fn select(&mut self, max: usize, now_ms: u64) -> Vec<VerifiedTx> {
        let mut out = Vec::with_capacity(max.min(self.ready.len()));
        while out.len() < max {
            let Some((_, id)) = self.ready.pop_first() else {
                break;
            };
            let Some(entry) = self.entries.get_mut(&id) else {
                continue; // unreachable by the invariants; skipping keeps the pool usable
            };
            let sender = entry.tx.tx().sender;
            if let Some(a) = self.accounts.get_mut(&sender) {
                a.head = None;
            }
            if entry.expired(now_ms) {
                // Its nonce becomes a gap: the sender's later txs wait until it is resent.
                self.remove(&id);
                continue;
            }
            entry.in_flight = true;
            out.push(entry.tx.clone());
            self.in_flight.push(id);
            if let Some(a) = self.accounts.get_mut(&sender) {
                // Saturating: a tx at nonce u64::MAX has no successor to wait for.
                a.cursor = a.cursor.saturating_add(1);
            }
            self.refresh_head(&sender);
        }
        out
    }

    /// After a block commits: `included` ids leave the pool; `new_nonces` are the senders'
    /// next nonces from the committed write set; `dropped` ones that are retryable (a future
    /// nonce) stay, the rest are removed, and so is every pending tx whose nonce is now below
    /// its sender's next nonce. In-flight txs neither included nor dropped become selectable
    /// again. Returns the ids removed as no longer valid (not the included ones).
    pub fn on_block(
        &mut self,
        included: &[Hash],
        new_nonces: &BTreeMap<PublicKey, u64>,
        dropped: &[(Hash, DropReason)],
    ) -> Vec<Hash> {
        let mut removed = Vec::new();
        let mut touched: BTreeSet<PublicKey> = BTreeSet::new();
        for id in included {
            if let Some(entry) = self.remove(id) {
                let tx = entry.tx.tx();
                touched.insert(tx.sender);
                // An included nonce is used even if the caller's nonce map missed the sender.
                if let Some(a) = self.accounts.get_mut(&tx.sender) {
                    a.base = a.base.max(tx.nonce.saturating_add(1));
                }
            }
        }
        for (id, reason) in dropped {
            if reason.is_retryable() {
                continue; // stays; made ready again with the other in-flight txs below
            }
            if let Some(entry) = self.remove(id) {
                touched.insert(entry.tx.tx().sender);
                removed.push(*id);
            }
        }
        for (sender, nonce) in new_nonces {
            if let Some(a) = self.accounts.get_mut(sender) {
                a.base = a.base.max(*nonce);
                touched.insert(*sender);
            }
        }
        for sender in &touched {
            let stale: Vec<Hash> = match self.accounts.get(sender) {
                Some(a) => a.txs.range(..a.base).map(|(_, id)| *id).collect(),
                None => continue,
            };
            for id in stale {
                if self.remove(&id).is_some() {
                    removed.push(id);
                }
            }
        }
        self.reset_in_flight(touched);
        removed
    }

    /// A block attempt failed (e.g. a storage error): every in-flight tx becomes selectable
    /// again, in its old order.
    pub fn return_in_flight(&mut self) {
        self.reset_in_flight(BTreeSet::new());
    }

    /// Removes txs whose expiry < now_ms; returns their ids. In-flight txs are left alone:
    /// the block they are in decides their fate, and `on_block` reports it.
    pub fn expire(&mut self, now_ms: u64) -> Vec<Hash> {
        let due: Vec<Hash> = self
            .expiries
            .iter()
            .take_while(|(e, _)| *e < now_ms)
            .map(|(_, id)| *id)
            .filter(|id| self.entries.get(id).is_some_and(|e| !e.in_flight))
            .collect();
        let mut touched = BTreeSet::new();
        for id in &due {
            if let Some(entry) = self.remove(id) {
                touched.insert(entry.tx.tx().sender);
            }
        }
        for sender in &touched {
            self.refresh_head(sender);
        }
        due
    }

    /// Pending transactions, ready and in flight.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No pending transactions, ready or in flight.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Distinct senders with pending transactions.
    pub fn accounts(&self) -> usize {
        self.accounts.len()
    }

    /// Transactions selected and not yet settled by `on_block` or `return_in_flight`.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// A pending transaction (ready or in flight) by id.
    pub fn get(&self, id: &Hash) -> Option<&VerifiedTx> {
        self.entries.get(id).map(|e| &e.tx)
    }

    /// Whether a transaction with this id is pending (ready or in flight).
    pub fn contains(&self, id: &Hash) -> bool {
        self.entries.contains_key(id)
    }

    /// The sender's next nonce counting its pending contiguous txs (what a client should use
    /// next), given its committed `state_nonce`.
    pub fn pending_nonce(&self, sender: &PublicKey, state_nonce: u64) -> u64 {
        let Some(a) = self.accounts.get(sender) else {
            return state_nonce;
        };
        let mut next = a.base.max(state_nonce);
        for nonce in a.txs.range(next..).map(|(n, _)| *n) {
            if nonce != next {
                break;
            }
            match next.checked_add(1) {
                Some(n) => next = n,
                None => break,
            }
        }
        next
    }

    /// Pending transactions of this sender.
    pub fn pending_of(&self, sender: &PublicKey) -> usize {
        self.accounts.get(sender).map_or(0, |a| a.txs.len())
    }

    /// Makes every in-flight tx ready again, resets the cursors of their senders and of
    /// `touched` to the committed nonce, and recomputes those senders' heads.
    fn reset_in_flight(&mut self, mut touched: BTreeSet<PublicKey>) {
        for id in std::mem::take(&mut self.in_flight) {
            if let Some(e) = self.entries.get_mut(&id) {
                e.in_flight = false;
                touched.insert(e.tx.tx().sender);
            }
        }
        for sender in &touched {
            if let Some(a) = self.accounts.get_mut(sender) {
                a.cursor = a.base;
            }
            self.refresh_head(sender);
        }
    }

    /// Puts the sender's key in the ready set iff it has a ready tx at its cursor.
    fn refresh_head(&mut self, sender: &PublicKey) {
        let Some(a) = self.accounts.get_mut(sender) else {
            return;
        };
        if let Some(k) = a.head.take() {
            self.ready.remove(&k);
        }
        let Some(id) = a.txs.get(&a.cursor) else {
            return;
        };
        if let Some(e) = self.entries.get(id).filter(|e| !e.in_flight) {
            let key = e.ready_key();
            self.ready.insert(key, *id);
            a.head = Some(key);
        }
    }

    /// Removes one tx from every index (and its account if that empties it). The caller
    /// refreshes the sender's head if the removal may have changed it.
    fn remove(&mut self, id: &Hash) -> Option<Entry> {
        let entry = self.entries.remove(id)?;
        if let Some(k) = entry.expiry_key() {
            self.expiries.remove(&k);
        }
        let tx = entry.tx.tx();
        if let Some(a) = self.accounts.get_mut(&tx.sender) {
            a.txs.remove(&tx.nonce);
            if a.head == Some(entry.ready_key()) {
                self.ready.remove(&entry.ready_key());
                a.head = None;
            }
            if a.txs.is_empty() {
                self.accounts.remove(&tx.sender);
            }
        }
        Some(entry)
    }

    /// Checks every invariant in the module comment; panics on the first broken one.
    #[cfg(test)]
    pub(crate) fn check_invariants(&self) {
        let mut count = 0;
        let mut heads = 0;
        for (sender, a) in &self.accounts {
            assert!(!a.txs.is_empty(), "empty account kept");
            assert!(a.base <= a.cursor, "cursor below base");
            for (nonce, id) in &a.txs {
                let e = &self.entries[id];
                assert_eq!(e.tx.tx().sender, *sender);
                assert_eq!(e.tx.tx().nonce, *nonce);
                if *nonce >= a.base {
                    assert_eq!(e.in_flight, *nonce < a.cursor, "in-flight flag vs cursor");
                }
                count += 1;
            }
            let want = a.txs.get(&a.cursor).map(|id| self.entries[id].ready_key());
            assert_eq!(a.head, want, "head of {sender}");
            if let Some(k) = a.head {
                assert_eq!(self.ready.get(&k), a.txs.get(&a.cursor));
                heads += 1;
            }
        }
        assert_eq!(count, self.entries.len());
        assert_eq!(heads, self.ready.len());
        let flying = self.entries.values().filter(|e| e.in_flight).count();
        assert_eq!(flying, self.in_flight.len());
        let with_expiry = self.entries.values().filter(|e| e.tx.tx().expiry.is_some());
        assert_eq!(with_expiry.count(), self.expiries.len());
    }
}

#[cfg(test)]
#[path = "pool_tests.rs"]
mod tests;
