//! The mempool's data structure: admission, eviction, fair ordering and bookkeeping of pending
//! transactions. Pure data: no actix, no storage, no clock (callers pass `now_ms`), so it is
//! tested directly.
//!
//! Layout:
//! - `entries`: every pending transaction by id, ready or in flight (selected for a block
//!   attempt whose outcome is not known yet), with its canonical encoded size.
//! - `accounts`: per sender, its pending transactions by nonce (a `Slot` each: the id and
//!   what the ordering keys and flags need, so keeping the ordered sets current never reads
//!   `entries`), its committed next nonce
//!   (`base`), its selection `cursor`, its first nonce gap (`next_gap`) and its fair-queueing
//!   virtual time (`vtime`).
//! - `ready`: one key per sender at most, for the sender's *next executable* transaction (its
//!   "head"), ordered by fair-queueing tag (see below), then higher priority band, then earliest
//!   arrival. Selecting a head moves the sender's cursor on and makes its next contiguous nonce
//!   the new head, so selection costs O(log n) per transaction and admission O(log n).
//! - `victims`: one key per sender at most, for the sender's highest-nonce transaction (its
//!   "tail") when that is not in flight: the only transaction of the sender that eviction may
//!   take, so evicting never opens a gap in front of another pending transaction. Kept (with
//!   `sizes`) only from the first admission that needs room until the pool is below a quarter
//!   of its limits again (`Pool::eviction_order`): nothing else reads them.
//! - `expiries`: transactions with an expiry, ordered by it, so expiring is O(expired · log n).
//! - `gapped`: senders holding transactions behind a nonce gap ("future" transactions), swept
//!   by `evict_stale_futures`.
//!
//! Fair selection (priority is free, so it must not buy exclusivity): `priority` is clamped
//! into `BANDS` bands (0, 1, 2, 3+). Each sender has a virtual time; a head's tag is
//! `max(vclock, sender's vtime)`, selecting it sets `vclock` to the tag and advances the
//! sender's vtime by `8 >> band` (band 3 costs 1, band 0 costs 8). So every sender with a ready
//! transaction is served at least once per 8 units of virtual time, and a band-3 sender gets at
//! most 8 times the share of a band-0 one; a newly ready sender is tagged with the current
//! `vclock` and is served before every sender already served at that tag or later. Ties go to
//! the higher band, then to the earlier arrival. Consensus does not depend on this (the block
//! records what was selected), so only the local operator's fairness is at stake. Selection
//! also respects the chain's per-block gas and byte limits (a sender whose next tx does not fit
//! keeps its place while others fill the block), and holds a call to a contract that another
//! sender's pending deploy creates until that deploy is selected.
//!
//! Bounds: `max_size` transactions and `max_bytes` encoded bytes in total, `account_limit` per
//! sender, at most `future_limit` per sender behind a nonce gap, and those for at most
//! `future_ttl_ms` after arrival. A full pool admits a transaction that could execute now (not
//! behind a gap) by evicting, in this order, senders' tails that are behind a gap or stale,
//! then tails in a lower priority band, then tails of a sender holding at least two more
//! pending transactions than the newcomer's sender (same band); oldest first within each. If
//! that cannot make room, the largest executable tail in the newcomer's band goes when it is
//! at least twice the newcomer's size and alone makes room (so big deploys cannot keep small
//! transactions out).
//! Every eviction strictly lowers (transactions behind gaps, lower-band transactions, the
//! spread of per-sender counts, or bytes held), so admissions cannot evict each other back and
//! forth forever.
//! A transaction that would be behind a gap is never admitted by evicting.
//!
//! Invariants (checked by `check_invariants` in the tests):
//! - Every entry is in exactly one account's `txs`, under its own nonce, and vice versa; an
//!   account with no transactions is removed, so `accounts()` counts senders with pending txs.
//!   `bytes` is the sum of the entries' sizes.
//! - `base <= cursor <= next_gap`; every pending nonce in `base..cursor` is in flight and every
//!   nonce at or above `cursor` is ready; `next_gap` is the least nonce `>= base` not pending.
//!   (Nonces below `base` are stale: ready or in flight, they can no longer execute, and the
//!   next `on_block` for the sender removes them.)
//! - A sender has a key in `ready` iff it has a ready, durable transaction at nonce `cursor`;
//!   so a transaction behind a nonce gap is never selected, a sender's transactions are
//!   selected strictly in nonce order, and a transaction admitted with `admit_pending` (its
//!   journal write still under way) is not selected, nor any later nonce of its sender, until
//!   `mark_durable`.
//! - While the eviction order is kept, a sender has a key in `victims` iff its highest pending
//!   nonce is not in flight (and none otherwise); it is in `gapped` iff it has a pending nonce
//!   above `next_gap`.
//! - Arrival sequence numbers are unique and never reused; a transaction keeps its own for its
//!   whole life in the pool, and a head keeps its tag until it is selected, so a transaction
//!   returned to the ready set keeps its old place.
//! - A transaction put back by `undo` ends up durable iff its own admission's journal write
//!   succeeded, whenever that outcome reached the pool: before the eviction (the slot's flag),
//!   while it was out (kept in `awaiting`), or after it came back (its own `mark_durable` or
//!   `undo` finds it again). No transaction in the pool is awaited.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use crate::types::{Action, Address, FastMap, Hash, PublicKey, VerifiedTx, shrink_sparse};
use crate::vm::DropReason;

/// Priority bands: `priority` values above `BANDS - 1` count as the top band.
pub const BANDS: u64 = 4;

/// The fair-queueing band of a priority.
pub fn band(priority: u64) -> u8 {
    // Lossless: the value is at most BANDS - 1.
    priority.min(BANDS - 1) as u8
}

/// Virtual time one selected transaction of `band` costs its sender: a band-`b` sender is
/// served `2^b` times as often as a band-0 one when both always have something ready.
fn band_cost(band: u8) -> u64 {
    8 >> band.min(3)
}

/// The size a transaction counts for, in the pool and in a block: its canonical encoding
/// (what blocks carry and the journal stores).
pub fn tx_bytes(tx: &VerifiedTx) -> u64 {
    // postcard's size pass cannot fail for the chain types (see `types::encode`); a failure
    // would count the transaction as maximally large rather than free.
    postcard::experimental::serialized_size(tx.signed()).map_or(u64::MAX, |n| n as u64)
}

/// Limits the pool enforces at admission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// The only chain id accepted.
    pub chain_id: String,
    /// Most pending transactions in total (`mempool.max_size`).
    pub max_size: usize,
    /// Most encoded bytes of pending transactions in total (`mempool.max_bytes`).
    pub max_bytes: u64,
    /// Most pending transactions per sender (`mempool.account_limit`).
    pub account_limit: usize,
    /// Largest gas limit of one transaction (`execution.gas_limit`).
    pub max_tx_gas: u64,
    /// How far ahead of the sender's committed next nonce a transaction may be held.
    pub max_future_nonces: u64,
    /// Most transactions per sender behind a nonce gap (`mempool.future_limit`).
    pub future_limit: usize,
    /// Milliseconds a transaction may stay behind a nonce gap after it arrived
    /// (`mempool.future_ttl`).
    pub future_ttl_ms: u64,
}

/// What one block may hold; selection stops adding a sender's transactions once its next one
/// would not fit, and fills the rest from other senders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockLimits {
    /// `max_transactions`.
    pub txs: usize,
    /// Sum of declared gas limits (`vm::gas::MAX_BLOCK_GAS`).
    pub gas: u64,
    /// Sum of canonical transaction sizes (`vm::gas::MAX_BLOCK_TX_BYTES`).
    pub bytes: u64,
}

/// What `select` took, and what it removed as expired on the way.
#[derive(Debug, Default)]
pub struct Selection {
    pub txs: Vec<VerifiedTx>,
    pub expired: Vec<Hash>,
}

/// Why a transaction was evicted; `label` is the metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EvictReason {
    /// Behind a nonce gap, evicted for a transaction that can execute now.
    Future,
    /// Below its sender's committed nonce (can never execute).
    Stale,
    /// In a lower priority band than the transaction admitted instead.
    Priority,
    /// Its sender held at least two more pending transactions than the newcomer's sender.
    FairShare,
    /// Behind a nonce gap for longer than `mempool.future_ttl`.
    FutureTtl,
    /// In the same band and at least twice the size of the (smaller) transaction admitted
    /// instead, when nothing else could make room.
    Size,
}

impl EvictReason {
    pub fn label(self) -> &'static str {
        match self {
            EvictReason::Future => "future",
            EvictReason::Stale => "stale",
            EvictReason::Priority => "priority",
            EvictReason::FairShare => "fair_share",
            EvictReason::FutureTtl => "future_ttl",
            EvictReason::Size => "size",
        }
    }
}

/// One admission of a pending transaction, as `mark_durable` and `undo` name it: its id with
/// its arrival sequence (the same transaction evicted and admitted again gets a new one, and
/// that is another admission), and where its account holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admitted {
    pub id: Hash,
    pub seq: u64,
    sender: PublicKey,
    nonce: u64,
}

/// A transaction evicted to admit another; holds what `rollback` needs to put it back.
#[derive(Debug)]
pub struct Evicted {
    pub id: Hash,
    pub reason: EvictReason,
    entry: Entry,
    base: u64,
    /// Whether it was durable (the flag lives in its account's slot, gone with it).
    durable: bool,
}

impl Evicted {
    /// The arrival sequence of the admission it ended (see [`Admitted`]): the same id may be
    /// admitted again, even later in the batch that evicted it, and that is another admission.
    pub fn seq(&self) -> u64 {
        self.entry.seq
    }
}

/// A transaction that left the pool, by its arrival sequence (`Pool::track_departures`): what
/// the journal forgets. `committed`: a committed block included it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Departure {
    pub seq: u64,
    pub committed: bool,
}

impl PartialEq for Evicted {
    fn eq(&self, other: &Self) -> bool {
        (self.id, self.reason) == (other.id, other.reason)
    }
}

impl Eq for Evicted {}

/// Why a transaction was not admitted. The `Display` text is shown to API clients; the API
/// layer gives each variant its stable code and HTTP status (`src/api/error.rs`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmitError {
    #[error("transaction is for chain {got:?}, this node serves chain {expected:?}")]
    WrongChain { expected: String, got: String },
    #[error(
        "gas limit {limit} exceeds the per-transaction maximum {max} (the chain's max_tx_gas, see GET /v1/chain)"
    )]
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
    #[error(
        "mempool is full ({max_size} transactions or {max_bytes} bytes) and holds nothing less \
         useful to evict; retry later"
    )]
    PoolFull { max_size: usize, max_bytes: u64 },
    #[error(
        "sender already has {limit} pending transactions, the most mempool.account_limit allows; \
         wait until some are included"
    )]
    AccountFull { limit: usize },
    #[error(
        "sender already has {limit} pending transactions behind a nonce gap (next executable \
         nonce {gap}), the most mempool.future_limit allows; send nonce {gap} first"
    )]
    FutureFull { limit: usize, gap: u64 },
    #[error("transaction is {bytes} bytes, more than the whole mempool holds ({max_bytes} bytes)")]
    TooLarge { bytes: u64, max_bytes: u64 },
}

/// Position in the ready set: fair-queueing tag, then higher band, then earliest arrival. The
/// arrival sequence is unique, so keys never collide.
type ReadyKey = (u64, Reverse<u8>, u64);

/// Position among executable tails of one band by size, largest first, then oldest.
type SizeKey = (u8, Reverse<u64>, u64);

/// Position in the eviction order (smallest goes first): not useful (behind a gap or stale)
/// before useful, lower band first, larger sender first, oldest first. Unique by sequence.
type VictimKey = (bool, u8, Reverse<usize>, u64);

#[derive(Debug)]
struct Entry {
    /// Boxed, so that the map's buckets stay small (about 90 bytes with the id, instead of
    /// about 360 with the transaction inline): lookups by id miss the CPU caches less,
    /// rehashes do not move whole transactions, and a drained map's empty buckets kept 5.8
    /// MiB with the transactions inline.
    tx: Box<VerifiedTx>,
    /// `band(tx.priority)` (copied into its `Slot`, which the ordering keys read), kept here
    /// so selection never reads the boxed transaction for it.
    band: u8,
    /// Arrival sequence number.
    seq: u64,
    /// Canonical encoded size.
    bytes: u64,
    /// Node time at admission, for `future_ttl_ms`.
    admitted_ms: u64,
    /// The fair-queueing tag it was selected with, so a returned transaction gets it back.
    tag: Option<u64>,
}

/// A pending transaction as its account's nonce map holds it: what `refresh` and the eviction
/// planner read, so that they never look the entry up in `entries` (a 32-byte-keyed map as
/// large as the backlog, where the head and tail lookups of every refresh missed the CPU
/// caches: about 2.4% of the node's CPU at the peak). `id`, `seq`, `bytes` and `band` are
/// copies of the entry's, fixed for its life; the two flags live only here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    id: Hash,
    /// Arrival sequence number (the entry's).
    seq: u64,
    /// Canonical encoded size (the entry's).
    bytes: u64,
    /// `band(priority)` (the entry's).
    band: u8,
    /// Selected for a block attempt whose outcome is not known yet.
    in_flight: bool,
    /// Journaled (or not journaled at all): only a durable transaction may be selected, so a
    /// block never carries a transaction whose acknowledgement could still be withdrawn.
    durable: bool,
}

impl Entry {
    fn band(&self) -> u8 {
        self.band
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
    /// The least nonce `>= base` with no pending transaction; pending nonces above it are
    /// behind a gap ("future").
    next_gap: u64,
    /// Fair-queueing virtual time: when this sender may next be served.
    vtime: u64,
    /// Pending transactions by nonce.
    txs: BTreeMap<u64, Slot>,
    /// This sender's key in the ready set, if it has a selectable transaction.
    head: Option<ReadyKey>,
    /// This sender's key in the eviction order, if its tail may be evicted.
    victim: Option<VictimKey>,
    /// This sender's key in `sizes`, if its tail may be evicted and is executable.
    size: Option<SizeKey>,
    /// Whether this sender is in `gapped`: a refresh touches that set only when this changes
    /// (a search of it by 32-byte key on every refresh was a visible share of the pool's CPU).
    gapped: bool,
}

impl Account {
    fn new(base: u64) -> Account {
        Account {
            base,
            cursor: base,
            next_gap: base,
            vtime: 0,
            txs: BTreeMap::new(),
            head: None,
            victim: None,
            size: None,
            gapped: false,
        }
    }

    /// Transactions behind the first gap.
    fn futures(&self) -> usize {
        self.txs.range(self.next_gap..).count()
    }

    /// Its keys in the eviction order (`victims`, `sizes`) as its tail stands: none while the
    /// tail is in flight, a size key only for an executable tail.
    fn tail_keys(&self) -> (Option<VictimKey>, Option<SizeKey>) {
        match self.txs.last_key_value().filter(|(_, s)| !s.in_flight) {
            Some((&nonce, s)) => {
                let useful = (self.base..self.next_gap).contains(&nonce);
                let victim = (useful, s.band, Reverse(self.txs.len()), s.seq);
                (
                    Some(victim),
                    useful.then_some((s.band, Reverse(s.bytes), s.seq)),
                )
            }
            None => (None, None),
        }
    }
}

/// Moves `sender`'s entry in the ordered set `set` from the key in `slot` to `new`, touching the
/// set only if the key changed.
fn rekey<K: Ord + Copy>(
    set: &mut BTreeMap<K, PublicKey>,
    slot: &mut Option<K>,
    new: Option<K>,
    sender: &PublicKey,
) {
    if *slot == new {
        return;
    }
    if let Some(k) = slot.take() {
        set.remove(&k);
    }
    if let Some(k) = new {
        set.insert(k, *sender);
    }
    *slot = new;
}

/// The least nonce `>= from` not in `txs`.
fn first_gap<V>(txs: &BTreeMap<u64, V>, from: u64) -> u64 {
    let mut n = from;
    while txs.contains_key(&n) {
        match n.checked_add(1) {
            Some(m) => n = m,
            None => break,
        }
    }
    n
}

/// One block attempt's share of the in-flight transactions (see `Pool::on_block`).
#[derive(Debug, Default)]
struct Attempt {
    /// Its selection, in order, and the transactions an earlier block left out that wait for
    /// this attempt to settle (their senders have transactions in it).
    ids: Vec<Hash>,
    /// Transactions an earlier committed block dropped for good, whose removal waits for this
    /// attempt to settle for the same reason. Still flagged in flight until then.
    doomed: Vec<Hash>,
}

impl Attempt {
    fn len(&self) -> usize {
        self.ids.len() + self.doomed.len()
    }
}

/// Pending transactions, see the module comment.
#[derive(Debug)]
pub struct Pool {
    config: PoolConfig,
    entries: FastMap<Hash, Entry>,
    accounts: FastMap<PublicKey, Account>,
    ready: BTreeMap<ReadyKey, Hash>,
    victims: BTreeMap<VictimKey, PublicKey>,
    sizes: BTreeMap<SizeKey, PublicKey>,
    expiries: BTreeSet<(u64, Hash)>,
    gapped: BTreeSet<PublicKey>,
    /// The block attempts in flight, oldest first: one per `select` not yet settled by its
    /// `on_block` (which settles the oldest) or by `return_in_flight` (all of them). The block
    /// producer selects block N+1 while N commits, so two may be in flight.
    in_flight: VecDeque<Attempt>,
    next_seq: u64,
    /// Sum of the entries' sizes.
    bytes: u64,
    /// Fair-queueing clock: the tag of the last selected transaction.
    vclock: u64,
    /// Transactions evicted while not durable, by the arrival sequence of the admission whose
    /// journal write had not been applied to the pool yet (`mark_durable` or `undo` by its
    /// batch's thread, which runs after the write, in any order with other batches), with that
    /// write's outcome once applied (`Some(durable)`). The evicting batch's `undo` reads it: a
    /// transaction it puts back is durable if that write succeeded, and stays out if it failed
    /// (its acknowledgement was withdrawn). Without it, the admission's `mark_durable` or `undo`
    /// found nothing to mark (the transaction was evicted) and the put-back transaction stayed
    /// unselectable, or came back unacknowledged. An entry lives only while the evicting
    /// batch is unresolved (`undo` and `settle` remove it), so this holds at most the
    /// evictions of the batches in flight.
    awaiting: FastMap<u64, Option<bool>>,
    /// Every transaction that left since the last `take_departures`, when tracked (`None`
    /// otherwise): the journal forgets entries by sequence, so it needs no index by id.
    departed: Option<Vec<Departure>>,
    /// Whether `victims` and `sizes` (and the accounts' `victim` and `size` keys) are kept.
    /// Only eviction reads them, and only a full pool evicts, so they are built the first
    /// time an admission needs room (`keep_eviction_order`) and dropped again once the pool is
    /// below a quarter of both its limits (`on_block`). Keeping them re-keyed two ordered sets
    /// on every admission, about 2.4% of the node's CPU at the peak, for a pool that was
    /// never full. The hysteresis bounds the rebuilds: each one (a pass over the senders and a
    /// sort of their keys) follows at least three quarters of `max_size` admissions or of
    /// `max_bytes` admitted since the last drop, so it costs O(log n) amortized per admission
    /// whatever a client sends.
    eviction_order: bool,
    /// Tests: never drop the eviction order, to compare a pool that kept it all along with
    /// one that builds it on demand.
    #[cfg(test)]
    pin_eviction_order: bool,
}

impl Pool {
    /// An empty pool enforcing `config`.
    pub fn new(config: PoolConfig) -> Pool {
        Pool {
            config,
            entries: FastMap::default(),
            accounts: FastMap::default(),
            ready: BTreeMap::new(),
            victims: BTreeMap::new(),
            sizes: BTreeMap::new(),
            expiries: BTreeSet::new(),
            gapped: BTreeSet::new(),
            in_flight: VecDeque::new(),
            next_seq: 0,
            bytes: 0,
            vclock: 0,
            awaiting: FastMap::default(),
            departed: None,
            eviction_order: false,
            #[cfg(test)]
            pin_eviction_order: false,
        }
    }

    /// From now on, records every transaction that leaves (see [`Departure`]) until
    /// `take_departures` hands them over. The mempool's journal needs them; a pool without
    /// one does not track, so nothing accumulates.
    pub fn track_departures(&mut self) {
        self.departed.get_or_insert_with(Vec::new);
    }

    /// The departures recorded since the last call, in the order they happened.
    pub fn take_departures(&mut self) -> Vec<Departure> {
        self.departed
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    fn depart(&mut self, seq: u64, committed: bool) {
        if let Some(d) = &mut self.departed {
            d.push(Departure { seq, committed });
        }
    }

    /// Tests: builds the eviction order now and never drops it.
    #[cfg(test)]
    pub(crate) fn pin_eviction_order(&mut self) {
        self.pin_eviction_order = true;
        self.keep_eviction_order();
    }

    /// Builds the eviction order (`victims`, `sizes`) if it is not kept yet; from now on every
    /// `refresh` keeps it current (see `eviction_order`).
    fn keep_eviction_order(&mut self) {
        if self.eviction_order {
            return;
        }
        self.eviction_order = true;
        // Built from sorted keys in one pass over the accounts: 71 ms under the pool's lock for
        // 200,000 senders (release build, the project machine), where inserting each key on
        // its own took 196 ms.
        let mut victims = Vec::with_capacity(self.accounts.len());
        let mut sizes = Vec::with_capacity(self.accounts.len());
        for (sender, a) in self.accounts.iter_mut() {
            let (victim, size) = a.tail_keys();
            a.victim = victim;
            a.size = size;
            victims.extend(victim.map(|k| (k, *sender)));
            sizes.extend(size.map(|k| (k, *sender)));
        }
        // Keys are unique (each ends with an arrival sequence), so the sets are exactly these.
        victims.sort_unstable_by_key(|(k, _)| *k);
        sizes.sort_unstable_by_key(|(k, _)| *k);
        self.victims = victims.into_iter().collect();
        self.sizes = sizes.into_iter().collect();
    }

    /// Drops the eviction order once the pool holds less than a quarter of both limits (see
    /// `eviction_order`).
    fn drop_eviction_order_if_low(&mut self) {
        #[cfg(test)]
        if self.pin_eviction_order {
            return;
        }
        if !self.eviction_order
            || self.entries.len() >= self.config.max_size / 4
            || self.bytes >= self.config.max_bytes / 4
        {
            return;
        }
        self.eviction_order = false;
        self.victims.clear();
        self.sizes.clear();
        for a in self.accounts.values_mut() {
            a.victim = None;
            a.size = None;
        }
    }

    /// The limits this pool was built with.
    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// Admits a tx whose signature was already verified. `state_nonce` = the sender's next
    /// nonce in committed state (caller looks it up). Rejections change nothing. When the pool
    /// is full, a transaction that can execute now (not behind a gap) is admitted by evicting
    /// less useful ones (see the module comment); they are returned so the caller can drop
    /// them from the journal, count them, or `rollback` the admission.
    ///
    /// The nonce checks use the larger of `state_nonce` and the nonce the pool learned from
    /// the last block, so a lookup that races a block commit cannot admit a stale nonce.
    pub fn admit(
        &mut self,
        tx: VerifiedTx,
        state_nonce: u64,
        now_ms: u64,
    ) -> Result<Vec<Evicted>, AdmitError> {
        let evicted = self.admit_as(tx, state_nonce, now_ms, true)?;
        // Durable at once: nothing will `undo` this admission, so what it evicted stays out
        // whatever the evicted admissions' writes do.
        self.settle(&evicted);
        Ok(evicted)
    }

    /// [`Pool::admit`] for a transaction whose journal write is still under way: it counts
    /// for every limit, may be evicted, expire or go stale like any other, but is not
    /// selectable (nor is any later nonce of its sender) until `mark_durable`, or is taken
    /// out again by `undo` when the write fails.
    pub fn admit_pending(
        &mut self,
        tx: VerifiedTx,
        state_nonce: u64,
        now_ms: u64,
    ) -> Result<Vec<Evicted>, AdmitError> {
        self.admit_as(tx, state_nonce, now_ms, false)
    }

    fn admit_as(
        &mut self,
        tx: VerifiedTx,
        state_nonce: u64,
        now_ms: u64,
        durable: bool,
    ) -> Result<Vec<Evicted>, AdmitError> {
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
        // The sender's first gap as it will be once `next` is known to the account.
        let gap = match account {
            Some(a) => first_gap(&a.txs, a.next_gap.max(next)),
            None => next,
        };
        let pending = account.map_or(0, |a| a.txs.len());
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
        let future = body.nonce > gap;
        if future {
            // Counting stops at the limit: O(future_limit), not O(pending).
            let limit = self.config.future_limit;
            let held = account.map_or(0, |a| a.txs.range(gap..).take(limit).count());
            if held >= self.config.future_limit {
                return Err(AdmitError::FutureFull {
                    limit: self.config.future_limit,
                    gap,
                });
            }
        }
        let bytes = tx_bytes(&tx);
        if bytes > self.config.max_bytes {
            return Err(AdmitError::TooLarge {
                bytes,
                max_bytes: self.config.max_bytes,
            });
        }
        let need_count = (self.entries.len() + 1).saturating_sub(self.config.max_size);
        let need_bytes = (self.bytes.saturating_add(bytes)).saturating_sub(self.config.max_bytes);
        let plan = if need_count == 0 && need_bytes == 0 {
            Vec::new()
        } else {
            let full = AdmitError::PoolFull {
                max_size: self.config.max_size,
                max_bytes: self.config.max_bytes,
            };
            if future {
                // Never evict for something that cannot execute yet: that would let
                // gap-fillers and future floods push each other out forever.
                return Err(full);
            }
            let sender = body.sender;
            let band = band(body.priority);
            self.keep_eviction_order();
            match self.plan_evictions(&sender, band, pending, need_count, need_bytes) {
                Some(plan) => plan,
                None => match self.plan_size_eviction(&sender, band, bytes, need_count, need_bytes)
                {
                    Some(victim) => vec![(victim, EvictReason::Size)],
                    None => return Err(full),
                },
            }
        };

        // Accepted: from here on nothing fails.
        let mut evicted = Vec::with_capacity(plan.len());
        for (victim, reason) in plan {
            if let Some(e) = self.evict(&victim, reason) {
                evicted.push(e);
            }
        }
        let sender = body.sender;
        let nonce = body.nonce;
        let seq = self.next_seq;
        self.next_seq += 1;
        let entry = Entry {
            band: band(tx.tx().priority),
            tx: Box::new(tx),
            seq,
            bytes,
            admitted_ms: now_ms,
            tag: None,
        };
        self.insert_entry(entry, next, durable);
        if let Some(a) = self.accounts.get_mut(&sender) {
            // A newer committed nonce moves selection past nonces that can no longer
            // execute; those stay until the next block purges them, like any stale tx.
            a.base = a.base.max(next);
            a.cursor = a.cursor.max(a.base);
            debug_assert!(a.txs.contains_key(&nonce));
        }
        self.refresh(&sender);
        Ok(evicted)
    }

    /// Undoes admissions whose journal write failed: removes `admitted` (ids `admit`
    /// accepted) and puts back what those admissions evicted, so the pool is as it was. For
    /// [`Pool::admit`]'s admissions; `admit_pending`'s are undone by [`Pool::undo`].
    pub fn rollback(&mut self, admitted: &[Hash], evicted: Vec<Evicted>) {
        for id in admitted.iter().rev() {
            if let Some(entry) = self.remove(id) {
                let sender = entry.tx.tx().sender;
                self.refresh(&sender);
            }
        }
        let admitted: BTreeSet<&Hash> = admitted.iter().collect();
        for e in evicted.into_iter().rev() {
            // Nothing is awaited for `admit`'s evictions (it settles them); kept exact anyway.
            self.awaiting.remove(&e.entry.seq);
            // A transaction admitted and then evicted within the same batch was never
            // acknowledged: it stays out.
            if admitted.contains(&e.id) || self.entries.contains_key(&e.id) {
                continue;
            }
            let sender = e.entry.tx.tx().sender;
            self.insert_entry(e.entry, e.base, e.durable);
            self.refresh(&sender);
        }
    }

    /// The committed next nonce of a sender with pending transactions, as the pool last learned
    /// it (`base`: from committed state when its account was made, raised by every `on_block`
    /// since); `None` for a sender with none. Never above the store's; below it only while a
    /// committed block's `on_block` has not run, whose transactions of this sender are then
    /// still here, in flight, at the nonces in between.
    pub fn known_nonce(&self, sender: &PublicKey) -> Option<u64> {
        self.accounts.get(sender).map(|a| a.base)
    }

    /// The current admission of a pending transaction (see [`Admitted`]).
    pub fn admitted(&self, id: &Hash) -> Option<Admitted> {
        let e = self.entries.get(id)?;
        Some(Admitted {
            id: *id,
            seq: e.seq,
            sender: e.tx.tx().sender,
            nonce: e.tx.tx().nonce,
        })
    }

    /// The journal write of these `admit_pending` admissions (`admitted` right after
    /// admitting) is durable: they (and their senders' later nonces) become selectable.
    /// A later admission of the same id (another batch's, whose own write decides) is left
    /// alone; an admission whose transaction was evicted meanwhile leaves its outcome for the
    /// evicting batch's `undo` (`awaiting`).
    pub fn mark_durable(&mut self, admitted: &[Admitted]) {
        // A sorted, deduplicated Vec rather than a BTreeSet: one allocation for the batch, not
        // a tree insert per transaction. Senders' refreshes are independent of one another, so
        // their order does not matter.
        //
        // Only a sender whose newly durable transaction is at its cursor is refreshed: the
        // durable flag is read by nothing else a refresh derives (the gap, the tail's keys),
        // and a transaction elsewhere cannot be the head, so the refresh would leave the
        // sender as it is. Under a backlog a sender's new transactions queue behind others, so
        // this skips most refreshes (they were most of this function's cost, about 1.5% of
        // the node's CPU at 100,000 tx/s).
        let mut touched = Vec::with_capacity(admitted.len());
        for adm in admitted {
            match self.admission_slot_at(adm) {
                Some((slot, cursor)) => {
                    if !slot.durable {
                        slot.durable = true;
                        if cursor == adm.nonce {
                            touched.push(adm.sender);
                        }
                    }
                }
                // Evicted meanwhile: the evicting batch's `undo` may put it back, durable.
                None => self.resolve_evicted(adm.seq, true),
            }
        }
        touched.sort_unstable();
        touched.dedup();
        for sender in &touched {
            self.refresh(sender);
        }
    }

    /// The journal write of `admit_pending` transactions failed: takes out those of `admitted`
    /// still pending and not durable, and puts back what their admission evicted where that
    /// still fits. Unlike `rollback`, other admissions may have changed the pool since (they
    /// run concurrently with the journal write), so an evicted transaction comes back only if
    /// its id and nonce are free, its nonce is not below its sender's committed nonce, and the
    /// pool has room for it; the ids that could not come back are returned, and recorded as
    /// departed again when departures are tracked (the journal must forget them: their
    /// removal was in the failed write). One evicted before its own
    /// admission's write outcome reached the pool comes back as that write left it
    /// (`awaiting`): durable if it succeeded, not at all (and not in the answer: it has no
    /// row) if it failed, and pending if that outcome has not reached the pool yet.
    ///
    /// `admitted` names admissions as for `mark_durable`: a later admission of the same id by
    /// another batch (after this one's was evicted) is that batch's, and stays.
    pub fn undo(&mut self, admitted: &[Admitted], evicted: Vec<Evicted>) -> Vec<Hash> {
        let mut touched = BTreeSet::new();
        for adm in admitted.iter().rev() {
            match self.admission_slot(adm) {
                Some(s) => {
                    if !s.durable
                        && !s.in_flight
                        && let Some(entry) = self.remove(&adm.id)
                    {
                        touched.insert(entry.tx.tx().sender);
                    }
                }
                // Evicted meanwhile: the evicting batch's `undo` must not put it back.
                None => self.resolve_evicted(adm.seq, false),
            }
        }
        // By admission, not id: a transaction of another batch that this one evicted and then
        // admitted again (the same id, resubmitted) is that batch's to put back.
        let ours: BTreeSet<u64> = admitted.iter().map(|adm| adm.seq).collect();
        let mut lost = Vec::new();
        for mut e in evicted.into_iter().rev() {
            // What this batch evicted is settled here whichever way it goes.
            let outcome = self.awaiting.remove(&e.entry.seq).flatten();
            // Admitted and then evicted within the same batch: never acknowledged.
            if ours.contains(&e.entry.seq) {
                continue;
            }
            if self.entries.contains_key(&e.id) {
                continue;
            }
            match outcome {
                // Its admission's write failed, and that reached the pool after the eviction:
                // its acknowledgement was withdrawn, so it must not come back. Not `lost`
                // either: that write put no row, and a removal by id could only hit another
                // admission's row.
                Some(false) => continue,
                // That write succeeded, and that reached the pool after the eviction: its row is
                // there, and the failed write that would have removed it did not happen.
                Some(true) => e.durable = true,
                // Not applied yet (or it was durable when evicted): as it was; its own batch's
                // `mark_durable` or `undo` will find it again.
                None => {}
            }
            let tx = e.entry.tx.tx();
            let (sender, nonce) = (tx.sender, tx.nonce);
            let account = self.accounts.get(&sender);
            let fits = account.is_none_or(|a| {
                nonce >= a.base
                    && !a.txs.contains_key(&nonce)
                    && a.txs.len() < self.config.account_limit
            }) && self.entries.len() < self.config.max_size
                && self.bytes.saturating_add(e.entry.bytes) <= self.config.max_bytes;
            if !fits {
                // Its departure at eviction went with the failed write: recorded again.
                self.depart(e.entry.seq, false);
                lost.push(e.id);
                continue;
            }
            let base = account.map_or(e.base, |a| a.base);
            self.insert_entry(e.entry, base, e.durable);
            touched.insert(sender);
        }
        for sender in &touched {
            self.refresh(sender);
        }
        lost
    }

    /// The batch that evicted `evicted` is durable: they stay out, so the outcomes of their
    /// admissions' writes are no longer awaited (see `awaiting`). `undo` settles a failed
    /// batch's evictions itself.
    pub fn settle(&mut self, evicted: &[Evicted]) {
        if self.awaiting.is_empty() {
            return;
        }
        for e in evicted {
            self.awaiting.remove(&e.entry.seq);
        }
    }

    /// Records the outcome of admission `seq`'s journal write if its transaction was evicted
    /// before that outcome reached the pool and the evicting batch is unresolved.
    fn resolve_evicted(&mut self, seq: u64, durable: bool) {
        if let Some(outcome) = self.awaiting.get_mut(&seq) {
            *outcome = Some(durable);
        }
    }

    /// Up to `limits` worth of executable txs for the next block, removed from the ready set
    /// but remembered as in flight (not selectable again, still counted by `len`, still found
    /// by `get`/`contains`). Fair order (module comment); each sender's txs in nonce order from
    /// its next nonce; a tx behind a nonce gap is held back; a sender whose next tx does not
    /// fit the remaining gas or bytes is passed over (it keeps its place for the next block)
    /// while others fill the block; expired txs (expiry < now_ms) met on the way are removed
    /// and reported instead of returned.
    ///
    /// `deploys` maps contract addresses to the pending deploys that create them: a call to
    /// such a contract waits (keeping its place) until its deploy is selected, then competes
    /// again, because fair order may otherwise put the call first in the block, where it
    /// could only revert with "unknown contract".
    pub fn select<S: std::hash::BuildHasher>(
        &mut self,
        limits: BlockLimits,
        now_ms: u64,
        deploys: &HashMap<Address, Hash, S>,
    ) -> Selection {
        let mut out = Selection {
            txs: Vec::with_capacity(limits.txs.min(self.ready.len())),
            expired: Vec::new(),
        };
        let mut attempt = Attempt {
            ids: Vec::with_capacity(out.txs.capacity()),
            doomed: Vec::new(),
        };
        let (mut gas, mut bytes) = (limits.gas, limits.bytes);
        let mut passed: Vec<(ReadyKey, Hash)> = Vec::new();
        let mut waiting: Vec<(Address, ReadyKey, Hash)> = Vec::new();
        while out.txs.len() < limits.txs && gas > 0 && bytes > 0 {
            let Some((key, id)) = self.ready.pop_first() else {
                break;
            };
            let Some(entry) = self.entries.get(&id) else {
                continue; // unreachable by the invariants; skipping keeps the pool usable
            };
            let sender = entry.tx.tx().sender;
            if entry.expired(now_ms) {
                if let Some(a) = self.accounts.get_mut(&sender) {
                    a.head = None;
                }
                // Its nonce becomes a gap: the sender's later txs wait until it is resent.
                self.remove(&id);
                self.refresh(&sender);
                out.expired.push(id);
                continue;
            }
            let waits_for = match &entry.tx.tx().action {
                Action::Call { contract, .. } => deploys
                    .get(contract)
                    .and_then(|d| self.slot(d))
                    .is_some_and(|d| !d.in_flight)
                    .then_some(*contract),
                Action::Deploy { .. } => None,
            };
            if let Some(contract) = waits_for {
                // Back in the running as soon as its deploy is selected (below).
                waiting.push((contract, key, id));
                continue;
            }
            // Re-borrowed: the deploy lookup above needed the whole map.
            let Some(entry) = self.entries.get_mut(&id) else {
                continue;
            };
            if entry.tx.tx().gas_limit > gas || entry.bytes > bytes {
                // Keeps its head key (and so its place) for the next block.
                passed.push((key, id));
                continue;
            }
            if let Action::Deploy { .. } = &entry.tx.tx().action {
                let created = entry.tx.tx().target();
                waiting.retain(|(contract, key, id)| {
                    let ready = *contract == created;
                    if ready {
                        self.ready.insert(*key, *id);
                    }
                    !ready
                });
            }
            gas -= entry.tx.tx().gas_limit;
            bytes -= entry.bytes;
            entry.tag = Some(key.0);
            let cost = band_cost(entry.band());
            let nonce = entry.tx.tx().nonce;
            out.txs.push(VerifiedTx::clone(&entry.tx));
            attempt.ids.push(id);
            self.vclock = self.vclock.max(key.0);
            if let Some(a) = self.accounts.get_mut(&sender) {
                if let Some(slot) = a.txs.get_mut(&nonce) {
                    slot.in_flight = true;
                }
                a.head = None;
                a.vtime = key.0.saturating_add(cost);
                // Saturating: a tx at nonce u64::MAX has no successor to wait for.
                a.cursor = a.cursor.saturating_add(1);
            }
            self.refresh(&sender);
        }
        for (key, id) in passed
            .into_iter()
            .chain(waiting.into_iter().map(|(_, k, i)| (k, i)))
        {
            self.ready.insert(key, id);
        }
        // Even an empty selection is an attempt: each `select` is settled by one `on_block`
        // (or by `return_in_flight`), so the two stay paired.
        self.in_flight.push_back(attempt);
        out
    }

    /// After a block commits, settles the oldest attempt in flight (the block's selection):
    /// `included` ids leave the pool; `new_nonces` are the senders' next nonces from the
    /// committed write set; `dropped` ones that are retryable (a future nonce, a full block) stay,
    /// the rest are removed, and so is every pending tx whose nonce is now below its sender's
    /// next nonce. The attempt's txs neither included nor removed become selectable again.
    /// Returns the ids removed as no longer valid (not the included ones).
    ///
    /// A sender that also has txs in a later attempt (selected while this block was built and
    /// committed) is settled with that attempt instead: its left-out and dropped txs stay in
    /// flight, carried to the next attempt, and its cursor stays past everything in flight. Its
    /// in-flight txs always run from its committed nonce without a gap (nothing in the middle
    /// leaves the pool or the flight), and none of its later txs can be included anyway: the
    /// block that left one out fixed the sender's nonce below them.
    pub fn on_block(
        &mut self,
        included: &[Hash],
        new_nonces: &BTreeMap<PublicKey, u64>,
        dropped: &[(Hash, DropReason)],
    ) -> Vec<Hash> {
        let attempt = self.in_flight.pop_front().unwrap_or_default();
        let mut removed = Vec::new();
        let mut touched: BTreeSet<PublicKey> = BTreeSet::new();
        for id in included {
            let Some((sender, nonce)) = self
                .entries
                .get(id)
                .map(|e| (e.tx.tx().sender, e.tx.tx().nonce))
            else {
                continue;
            };
            touched.insert(sender);
            // An included nonce is used even if the caller's nonce map missed the sender.
            // Raised before the removal, so the removal does not read as a new gap (which
            // would make `refresh` rescan the sender's whole run).
            if let Some(a) = self.accounts.get_mut(&sender) {
                a.base = a.base.max(nonce.saturating_add(1));
            }
            self.take_as(id, true);
        }
        for (sender, nonce) in new_nonces {
            if let Some(a) = self.accounts.get_mut(sender) {
                a.base = a.base.max(*nonce);
                touched.insert(*sender);
            }
        }
        let mut doomed = attempt.doomed;
        doomed.extend(
            dropped
                .iter()
                .filter(|(_, reason)| !reason.is_retryable())
                .map(|(id, _)| *id),
        );
        // What is left of this attempt (still pending, still flagged in flight), with the
        // sender. The included ids are gone already: a block keeps its selection's order, so
        // they are skipped by walking `included` alongside; any other id is looked up once,
        // here. (Were the orders to differ, the included ids would be looked up and not
        // found: the same answer, at the cost of a lookup of the backlog-sized map each.)
        let mut next_included = included.iter().peekable();
        let left: FastMap<Hash, PublicKey> = attempt
            .ids
            .iter()
            .filter(|id| next_included.next_if_eq(id).is_none())
            .chain(&doomed)
            .filter_map(|id| self.entries.get(id).map(|e| (*id, e.tx.tx().sender)))
            .collect();
        touched.extend(left.values().copied());
        // Senders with txs in a later attempt: the last of their in-flight run (`base..cursor`)
        // is not this attempt's.
        let later: BTreeSet<PublicKey> = touched
            .iter()
            .filter(|sender| {
                self.accounts.get(*sender).is_some_and(|a| {
                    a.cursor > a.base
                        && a.txs
                            .get(&(a.cursor - 1))
                            .is_some_and(|s| s.in_flight && !left.contains_key(&s.id))
                })
            })
            .copied()
            .collect();
        let mut carried = Attempt::default();
        for id in &doomed {
            match left.get(id) {
                Some(sender) if later.contains(sender) => carried.doomed.push(*id),
                Some(_) if self.remove(id).is_some() => removed.push(*id),
                _ => {}
            }
        }
        let doomed: HashSet<Hash, foldhash::fast::RandomState> = doomed.into_iter().collect();
        let mut back = Vec::new();
        // Order does not matter from here: a returned tx gets its own tag back, and an
        // attempt's ids are a set.
        for (id, sender) in left {
            if doomed.contains(&id) {
                continue; // removed or carried above
            }
            if later.contains(&sender) {
                carried.ids.push(id);
            } else {
                back.push(id);
            }
        }
        for sender in &touched {
            let stale: Vec<Hash> = match self.accounts.get(sender) {
                Some(a) => a.txs.range(..a.base).map(|(_, s)| s.id).collect(),
                None => continue,
            };
            for id in stale {
                if self.remove(&id).is_some() {
                    removed.push(id);
                }
            }
        }
        if let Some(next) = self.in_flight.front_mut() {
            next.ids.append(&mut carried.ids);
            next.doomed.append(&mut carried.doomed);
        }
        let settled: BTreeSet<PublicKey> = touched.difference(&later).copied().collect();
        self.reset_in_flight(back, settled);
        for sender in &later {
            self.refresh(sender);
        }
        self.drop_eviction_order_if_low();
        self.shrink_if_sparse();
        removed
    }

    /// Every block attempt in flight failed (e.g. a storage error), or their producer was
    /// replaced: every in-flight tx becomes selectable again, in its old order, except those
    /// a committed block dropped for good, which are removed and returned.
    pub fn return_in_flight(&mut self) -> Vec<Hash> {
        let mut ids = Vec::new();
        let mut removed = Vec::new();
        let mut touched = BTreeSet::new();
        for attempt in std::mem::take(&mut self.in_flight) {
            ids.extend(attempt.ids);
            for id in attempt.doomed {
                if let Some(e) = self.remove(&id) {
                    touched.insert(e.tx.tx().sender);
                    removed.push(id);
                }
            }
        }
        self.reset_in_flight(ids, touched);
        removed
    }

    /// Removes txs whose expiry < now_ms; returns their ids. In-flight txs are left alone:
    /// the block they are in decides their fate, and `on_block` reports it.
    pub fn expire(&mut self, now_ms: u64) -> Vec<Hash> {
        let due: Vec<Hash> = self
            .expiries
            .iter()
            .take_while(|(e, _)| *e < now_ms)
            .map(|(_, id)| *id)
            .filter(|id| self.slot(id).is_some_and(|s| !s.in_flight))
            .collect();
        self.remove_all(&due);
        due
    }

    /// Removes transactions that have been behind a nonce gap for longer than
    /// `future_ttl_ms` since they arrived; returns their ids. Costs O(transactions behind
    /// gaps), which `future_limit` bounds per sender and `max_size` in total.
    pub fn evict_stale_futures(&mut self, now_ms: u64) -> Vec<Hash> {
        let ttl = self.config.future_ttl_ms;
        let mut due = Vec::new();
        for sender in &self.gapped {
            let Some(a) = self.accounts.get(sender) else {
                continue;
            };
            for (_, slot) in a.txs.range(a.next_gap..) {
                if !slot.in_flight
                    && let Some(e) = self.entries.get(&slot.id)
                    && e.admitted_ms.saturating_add(ttl) < now_ms
                {
                    due.push(slot.id);
                }
            }
        }
        self.remove_all(&due);
        due
    }

    /// Removes `ids` (ready ones: expired or evicted), then recomputes the head of each sender
    /// that lost one, once per sender.
    fn remove_all(&mut self, ids: &[Hash]) {
        let mut touched = BTreeSet::new();
        for id in ids {
            if let Some(entry) = self.remove(id) {
                touched.insert(entry.tx.tx().sender);
            }
        }
        for sender in &touched {
            self.refresh(sender);
        }
    }

    /// Pending transactions, ready and in flight.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No pending transactions, ready or in flight.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Encoded bytes of the pending transactions.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Distinct senders with pending transactions.
    pub fn accounts(&self) -> usize {
        self.accounts.len()
    }

    /// Transactions selected and not yet settled by `on_block` or `return_in_flight`.
    pub fn in_flight(&self) -> usize {
        self.in_flight.iter().map(Attempt::len).sum()
    }

    /// Block attempts selected and not yet settled.
    pub fn attempts(&self) -> usize {
        self.in_flight.len()
    }

    /// A pending transaction (ready or in flight) by id.
    pub fn get(&self, id: &Hash) -> Option<&VerifiedTx> {
        self.entries.get(id).map(|e| &*e.tx)
    }

    /// Whether a transaction with this id is pending (ready or in flight).
    pub fn contains(&self, id: &Hash) -> bool {
        self.entries.contains_key(id)
    }

    /// The sender's next nonce counting its pending contiguous txs (what a client should use
    /// next), given its committed `state_nonce`.
    pub fn pending_nonce(&self, sender: &PublicKey, state_nonce: u64) -> u64 {
        match self.accounts.get(sender) {
            None => state_nonce,
            Some(a) if state_nonce <= a.base => a.next_gap,
            Some(a) => first_gap(&a.txs, state_nonce),
        }
    }

    /// Pending transactions of this sender.
    pub fn pending_of(&self, sender: &PublicKey) -> usize {
        self.accounts.get(sender).map_or(0, |a| a.txs.len())
    }

    /// Pending transactions of this sender behind a nonce gap.
    pub fn futures_of(&self, sender: &PublicKey) -> usize {
        self.accounts.get(sender).map_or(0, Account::futures)
    }

    /// Makes the in-flight txs `ids` ready again, resets the cursors of their senders and of
    /// `touched` to the committed nonce, and recomputes those senders' heads. A returned tx
    /// gets back the fair-queueing tag it was selected with (and the clock is wound back to
    /// the least of those), so a failed attempt costs nobody their place. The caller never
    /// passes a sender with txs still in flight in another attempt.
    fn reset_in_flight(&mut self, ids: Vec<Hash>, mut touched: BTreeSet<PublicKey>) {
        for id in ids {
            if let Some(e) = self.entries.get(&id) {
                let tx = e.tx.tx();
                if let Some(slot) = self
                    .accounts
                    .get_mut(&tx.sender)
                    .and_then(|a| a.txs.get_mut(&tx.nonce))
                {
                    slot.in_flight = false;
                }
                touched.insert(tx.sender);
                if let Some(tag) = e.tag {
                    self.vclock = self.vclock.min(tag);
                }
            }
        }
        for sender in &touched {
            if let Some(a) = self.accounts.get_mut(sender) {
                a.cursor = a.base;
                if let Some(tag) = a
                    .txs
                    .get(&a.cursor)
                    .and_then(|s| self.entries.get(&s.id))
                    .and_then(|e| e.tag)
                {
                    a.vtime = tag;
                }
            }
            self.refresh(sender);
        }
    }

    /// Plans the evictions that make room for `need_count` more transactions and
    /// `need_bytes` more bytes for a newcomer from `sender` (holding `pending` txs) in `band`
    /// that could execute now; `None` if the pool holds too little it may evict for it.
    /// Changes nothing: it walks the eviction order as it would be after each eviction.
    fn plan_evictions(
        &self,
        sender: &PublicKey,
        band: u8,
        pending: usize,
        need_count: usize,
        need_bytes: u64,
    ) -> Option<Vec<(Hash, EvictReason)>> {
        // Accounts whose tail an earlier step evicted: their next candidate lives in `local`.
        let mut touched: HashMap<PublicKey, (u64, u64)> = HashMap::new(); // next tail bound, gap
        let mut local: BTreeMap<VictimKey, PublicKey> = BTreeMap::new();
        let mut plan = Vec::new();
        let (mut freed_count, mut freed_bytes) = (0usize, 0u64);
        let mut global = self.victims.iter().peekable();
        while freed_count < need_count || freed_bytes < need_bytes {
            // The least candidate of the two orders, skipping accounts `local` speaks for and
            // the newcomer's own sender (the newcomer follows its useful txs, and its future
            // ones may become executable through the newcomer).
            while let Some((_, s)) = global.peek() {
                if touched.contains_key(*s) || *s == sender {
                    global.next();
                } else {
                    break;
                }
            }
            let from_global = global.peek().map(|(k, s)| (**k, **s));
            let from_local = local.first_key_value().map(|(k, s)| (*k, *s));
            let (key, victim_sender) = match (from_global, from_local) {
                (Some(g), Some(l)) => {
                    if g.0 <= l.0 {
                        global.next();
                        g
                    } else {
                        local.remove(&l.0);
                        l
                    }
                }
                (Some(g), None) => {
                    global.next();
                    g
                }
                (None, Some(l)) => {
                    local.remove(&l.0);
                    l
                }
                (None, None) => return None,
            };
            let (useful, victim_band, Reverse(count), _) = key;
            let a = self.accounts.get(&victim_sender)?;
            let (bound, gap) = touched
                .get(&victim_sender)
                .copied()
                .unwrap_or((u64::MAX, a.next_gap));
            let (&nonce, tail) = a.txs.range(..=bound).next_back()?;
            let id = tail.id;
            let reason = if !useful {
                if nonce < a.base {
                    EvictReason::Stale
                } else {
                    EvictReason::Future
                }
            } else if victim_band < band {
                EvictReason::Priority
            } else if victim_band == band && count >= pending + 2 {
                EvictReason::FairShare
            } else {
                // The least useful candidate is not less useful than the newcomer, and by the
                // order no later one is either.
                return None;
            };
            plan.push((id, reason));
            freed_count += 1;
            freed_bytes = freed_bytes.saturating_add(tail.bytes);
            // The account's next candidate, as `refresh` would key it after this eviction.
            let gap = if (a.base..gap).contains(&nonce) {
                nonce
            } else {
                gap
            };
            let next = nonce
                .checked_sub(1)
                .and_then(|b| a.txs.range(..=b).next_back());
            touched.insert(victim_sender, (nonce.saturating_sub(1), gap));
            if nonce == 0 {
                continue;
            }
            if let Some((&n, s)) = next
                && !s.in_flight
            {
                let useful = (a.base..gap).contains(&n);
                local.insert((useful, s.band, Reverse(count - 1), s.seq), victim_sender);
            }
        }
        Some(plan)
    }

    /// When the usefulness order cannot make room: the largest executable tail of another
    /// sender in the newcomer's band, if it is at least twice the newcomer's size and freeing
    /// it alone makes room. Each such eviction lowers the bytes held, so big transactions
    /// cannot keep small ones out of a pool full of them, and no two can evict each other.
    fn plan_size_eviction(
        &self,
        sender: &PublicKey,
        band: u8,
        bytes: u64,
        need_count: usize,
        need_bytes: u64,
    ) -> Option<Hash> {
        if need_count > 1 {
            return None;
        }
        let (key, victim) = self
            .sizes
            .range((band, Reverse(u64::MAX), 0)..=(band, Reverse(0), u64::MAX))
            .find(|(_, s)| *s != sender)?;
        let (_, Reverse(victim_bytes), _) = *key;
        if victim_bytes < bytes.saturating_mul(2) || victim_bytes < need_bytes {
            return None;
        }
        let a = self.accounts.get(victim)?;
        a.txs.last_key_value().map(|(_, s)| s.id)
    }

    /// Removes one tx for `reason`, keeping what `rollback` needs.
    fn evict(&mut self, id: &Hash, reason: EvictReason) -> Option<Evicted> {
        let sender = self.entries.get(id)?.tx.tx().sender;
        let base = self.accounts.get(&sender)?.base;
        let (entry, slot) = self.take(id)?;
        debug_assert!(slot.is_some(), "a pending entry has its account's slot");
        self.refresh(&sender);
        let durable = slot.is_none_or(|s| s.durable);
        if !durable {
            self.awaiting.insert(entry.seq, None);
        }
        Some(Evicted {
            id: *id,
            reason,
            entry,
            base,
            durable,
        })
    }

    /// Puts an entry into `entries`, its account (created at `base` if missing; a ready slot,
    /// `durable` as given) and the expiry index. The caller refreshes the sender.
    fn insert_entry(&mut self, entry: Entry, base: u64, durable: bool) {
        let id = entry.tx.id();
        let sender = entry.tx.tx().sender;
        let nonce = entry.tx.tx().nonce;
        if let Some(k) = entry.expiry_key() {
            self.expiries.insert(k);
        }
        self.bytes = self.bytes.saturating_add(entry.bytes);
        let slot = Slot {
            id,
            seq: entry.seq,
            bytes: entry.bytes,
            band: entry.band,
            in_flight: false,
            durable,
        };
        self.entries.insert(id, entry);
        self.accounts
            .entry(sender)
            .or_insert_with(|| Account::new(base))
            .txs
            .insert(nonce, slot);
    }

    /// The slot of `adm` if that admission is still pending: the slot at its sender's nonce
    /// holds its id and sequence. Found through the account (small, cache-warm) rather than
    /// `entries`.
    fn admission_slot(&mut self, adm: &Admitted) -> Option<&mut Slot> {
        self.admission_slot_at(adm).map(|(slot, _)| slot)
    }

    /// [`Pool::admission_slot`], with its sender's cursor (one lookup of the account).
    fn admission_slot_at(&mut self, adm: &Admitted) -> Option<(&mut Slot, u64)> {
        let a = self.accounts.get_mut(&adm.sender)?;
        let cursor = a.cursor;
        let slot = a
            .txs
            .get_mut(&adm.nonce)
            .filter(|s| s.id == adm.id && s.seq == adm.seq)?;
        Some((slot, cursor))
    }

    /// The account slot of a pending transaction.
    fn slot(&self, id: &Hash) -> Option<&Slot> {
        let tx = self.entries.get(id)?.tx.tx();
        self.accounts.get(&tx.sender)?.txs.get(&tx.nonce)
    }

    /// Brings a sender's derived state up to date after any change to it: its first gap,
    /// `gapped` membership, ready head (kept, with its tag, while the head tx is unchanged)
    /// and eviction key.
    fn refresh(&mut self, sender: &PublicKey) {
        let Some(a) = self.accounts.get_mut(sender) else {
            return;
        };
        a.cursor = a.cursor.max(a.base);
        a.next_gap = first_gap(&a.txs, a.next_gap.max(a.cursor));
        let gapped = a.txs.range(a.next_gap..).next().is_some();
        if gapped != a.gapped {
            a.gapped = gapped;
            if gapped {
                self.gapped.insert(*sender);
            } else {
                self.gapped.remove(sender);
            }
        }

        // Head and tail are read from the account's slots only (see `Slot`).
        let head = a.txs.get(&a.cursor).filter(|s| !s.in_flight && s.durable);
        match (a.head, head) {
            (Some(k), Some(s)) if k.2 == s.seq => {}
            (old, new) => {
                if let Some(k) = old {
                    self.ready.remove(&k);
                }
                a.head = new.map(|s| {
                    let key = (self.vclock.max(a.vtime), Reverse(s.band), s.seq);
                    self.ready.insert(key, s.id);
                    key
                });
            }
        }

        if self.eviction_order {
            self.rekey_tail(sender);
        }
    }

    /// Brings `sender`'s keys in the eviction order (`victims`, `sizes`) up to date with its
    /// tail.
    fn rekey_tail(&mut self, sender: &PublicKey) {
        let Some(a) = self.accounts.get_mut(sender) else {
            return;
        };
        let (victim, size) = a.tail_keys();
        // Most refreshes (a tx made durable, a head selected) leave the tail's keys as they
        // were: the ordered sets are touched only when a key changed (about 8% of the node's
        // CPU went to refreshes that removed and re-inserted the same keys).
        rekey(&mut self.victims, &mut a.victim, victim, sender);
        rekey(&mut self.sizes, &mut a.size, size, sender);
    }

    /// Removes one tx from every index (and its account if that empties it). The caller
    /// refreshes the sender if the account remains.
    fn remove(&mut self, id: &Hash) -> Option<Entry> {
        self.take(id).map(|(entry, _)| entry)
    }

    /// [`Pool::remove`], also returning the account's slot of the transaction (always there
    /// by the invariants).
    fn take(&mut self, id: &Hash) -> Option<(Entry, Option<Slot>)> {
        self.take_as(id, false)
    }

    /// [`Pool::take`], recording the departure as `committed` or not.
    fn take_as(&mut self, id: &Hash, committed: bool) -> Option<(Entry, Option<Slot>)> {
        let entry = self.entries.remove(id)?;
        self.depart(entry.seq, committed);
        if let Some(k) = entry.expiry_key() {
            self.expiries.remove(&k);
        }
        self.bytes = self.bytes.saturating_sub(entry.bytes);
        let tx = entry.tx.tx();
        let mut slot = None;
        if let Some(a) = self.accounts.get_mut(&tx.sender) {
            slot = a.txs.remove(&tx.nonce);
            if a.head.is_some_and(|k| k.2 == entry.seq)
                && let Some(k) = a.head.take()
            {
                self.ready.remove(&k);
            }
            if (a.base..a.next_gap).contains(&tx.nonce) {
                a.next_gap = tx.nonce;
            }
            if a.txs.is_empty() {
                if let Some(k) = a.head.take() {
                    self.ready.remove(&k);
                }
                if let Some(k) = a.victim.take() {
                    self.victims.remove(&k);
                }
                if let Some(k) = a.size.take() {
                    self.sizes.remove(&k);
                }
                if a.gapped {
                    self.gapped.remove(&tx.sender);
                }
                self.accounts.remove(&tx.sender);
            }
        }
        Some((entry, slot))
    }

    /// Checks every invariant in the module comment; panics on the first broken one.
    #[cfg(test)]
    pub(crate) fn check_invariants(&self) {
        let mut count = 0;
        let mut heads = 0;
        let mut victims = 0;
        let mut sizes = 0;
        let mut bytes = 0u64;
        let mut flying = 0;
        for (sender, a) in &self.accounts {
            assert!(!a.txs.is_empty(), "empty account kept");
            assert!(a.base <= a.cursor, "cursor below base");
            assert!(a.cursor <= a.next_gap, "gap below cursor");
            assert_eq!(
                a.next_gap,
                first_gap(&a.txs, a.base),
                "next_gap of {sender}"
            );
            for (nonce, slot) in &a.txs {
                let id = &slot.id;
                let e = &self.entries[id];
                assert_eq!(e.tx.id(), *id);
                assert_eq!(e.tx.tx().sender, *sender);
                assert_eq!(e.tx.tx().nonce, *nonce);
                assert_eq!(e.bytes, tx_bytes(&e.tx));
                assert_eq!(e.band, band(e.tx.tx().priority), "band of {id}");
                assert_eq!(
                    (slot.seq, slot.bytes, slot.band),
                    (e.seq, e.bytes, e.band),
                    "slot of {id}"
                );
                bytes += e.bytes;
                if *nonce >= a.base {
                    assert_eq!(
                        slot.in_flight,
                        *nonce < a.cursor,
                        "in-flight flag vs cursor"
                    );
                }
                if slot.in_flight {
                    flying += 1;
                }
                count += 1;
            }
            let head = a.txs.get(&a.cursor).filter(|s| !s.in_flight && s.durable);
            assert_eq!(a.head.map(|k| k.2), head.map(|s| s.seq), "head of {sender}");
            if let Some(k) = a.head {
                assert_eq!(self.ready.get(&k), a.txs.get(&a.cursor).map(|s| &s.id));
                assert_eq!(k.1, Reverse(head.map_or(0, |s| s.band)));
                heads += 1;
            }
            let (tail_nonce, tail) = a.txs.last_key_value().unwrap();
            if !self.eviction_order {
                assert_eq!(
                    a.victim, None,
                    "victim key of {sender} while no order is kept"
                );
                assert_eq!(a.size, None, "size key of {sender} while no order is kept");
            } else if tail.in_flight {
                assert_eq!(a.victim, None, "in-flight tail of {sender} is a victim");
                assert_eq!(a.size, None, "in-flight tail of {sender} is a victim");
            } else {
                let want = (
                    (a.base..a.next_gap).contains(tail_nonce),
                    tail.band,
                    Reverse(a.txs.len()),
                    tail.seq,
                );
                assert_eq!(a.victim, Some(want), "victim key of {sender}");
                assert_eq!(self.victims.get(&want), Some(sender));
                victims += 1;
                let size = want.0.then_some((tail.band, Reverse(tail.bytes), tail.seq));
                assert_eq!(a.size, size, "size key of {sender}");
                if let Some(k) = size {
                    assert_eq!(self.sizes.get(&k), Some(sender));
                    sizes += 1;
                }
            }
            assert_eq!(
                self.gapped.contains(sender),
                a.txs.range(a.next_gap..).next().is_some(),
                "gapped {sender}"
            );
            assert_eq!(
                a.gapped,
                self.gapped.contains(sender),
                "gapped flag {sender}"
            );
        }
        assert_eq!(count, self.entries.len());
        assert_eq!(heads, self.ready.len());
        assert_eq!(victims, self.victims.len());
        assert_eq!(sizes, self.sizes.len());
        assert_eq!(bytes, self.bytes);
        assert!(self.gapped.iter().all(|s| self.accounts.contains_key(s)));
        assert_eq!(flying, self.in_flight());
        let listed: Vec<&Hash> = self
            .in_flight
            .iter()
            .flat_map(|a| a.ids.iter().chain(&a.doomed))
            .collect();
        assert_eq!(
            listed.iter().collect::<BTreeSet<_>>().len(),
            listed.len(),
            "an id in two attempts"
        );
        for id in listed {
            assert!(
                self.slot(id).is_some_and(|s| s.in_flight),
                "listed {id} not in flight"
            );
        }
        let with_expiry = self.entries.values().filter(|e| e.tx.tx().expiry.is_some());
        assert_eq!(with_expiry.count(), self.expiries.len());
        // An awaited admission's transaction is out of the pool until its evicting batch's
        // `undo` settles it.
        assert!(
            self.entries
                .values()
                .all(|e| !self.awaiting.contains_key(&e.seq)),
            "a pending transaction is awaited as evicted"
        );
    }

    /// How many evicted admissions' outcomes are awaited (see `awaiting`).
    #[cfg(test)]
    pub(crate) fn awaiting(&self) -> usize {
        self.awaiting.len()
    }
}

/// Below this many entries the pool's hash maps are never shrunk (`types::shrink_sparse`). An
/// entry's bucket is about 90 bytes (its transaction is boxed): the room an empty pool keeps at
/// this floor is well under 1 MiB (with the transactions inline and a floor of 4,096 it was
/// 5.8 MiB, heaptrack after a drain).
const SHRINK_FLOOR: usize = 1024;

impl Pool {
    /// Gives back the room a drained backlog left in the pool's hash maps; returns whether it
    /// did. A map that once held 100,000 keeps its empty buckets after the backlog is gone
    /// unless it is shrunk (46 MiB of them when entries held their transactions inline,
    /// measured with heaptrack, RUNBOOK "Performance"). The ordered indexes (`BTreeMap`/`BTreeSet`)
    /// free their nodes as they empty and need nothing.
    ///
    /// Each map goes through `types::shrink_sparse` with `SHRINK_FLOOR`: shrunk only when its
    /// capacity exceeds 4 times `max(len, SHRINK_FLOOR)`, amortized O(1) per transaction.
    /// Contents, order and every index are untouched: only the maps' spare capacity changes,
    /// never what selection or consensus sees.
    pub fn shrink_if_sparse(&mut self) -> bool {
        let a = shrink_sparse(&mut self.entries, SHRINK_FLOOR);
        let b = shrink_sparse(&mut self.accounts, SHRINK_FLOOR);
        a || b
    }

    /// The capacities of the pool's hash maps (`entries`, `accounts`), for the shrink tests.
    #[cfg(test)]
    pub(crate) fn capacities(&self) -> (usize, usize) {
        (self.entries.capacity(), self.accounts.capacity())
    }
}

#[cfg(test)]
#[path = "pool_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "pool_shrink_tests.rs"]
mod shrink_tests;
