//! Offline verification of a whole database (`accumen db check`): everything a follower would
//! check, plus what only the stored tables can tell.
//!
//! What is checked, in order: the schema version, chain id and recorded parameters (by opening
//! the file); the genesis block against the parameters; every block from 1 to the head read,
//! decoded and re-executed on the state its parent left with `chain::verify` (sequencer
//! signature, parent link and height, tx root, receipts and state roots), exactly as a follower
//! does, on a fresh in-memory store that replays the chain; each block's hash index, tx
//! locations (a location written late, `locations`, may be absent until its height) and stored
//! receipts against the re-execution; the stored head against the last
//! block; the state tables (contracts, code, contract state, nonces) equal, entry by entry, to
//! the replayed state; no block, index, location or receipt the chain does not have; the
//! legacy mempool journal table decodable and holding no committed transaction (an older
//! version removed rows in the block's commit; the journal file, `journal.redb`, is checked by
//! `JournalStore::check` and folded in with `CheckReport::add_journal`); the bridge's watermarks and
//! outbox rows as `outbox` requires them.
//!
//! Invariants:
//! - Read only: the check itself writes nothing to the checked file (the replay writes its own
//!   in-memory store); opening it is a node's open (`Storage::open_existing`), which lets redb
//!   recover a file that was not closed cleanly and migrates a schema-2 or 3 file to schema 4.
//! - Every problem is reported with what it concerns (height, table, key) and the check goes
//!   on, except that a block that cannot be re-executed ends the replay (no later state can be
//!   computed without it) and the state comparison is then skipped.
//! - Bounded output: at most `MAX_PROBLEMS` problems are listed; the count goes on.
//! - An `Err` means the check could not run (I/O, a file that does not open); problems found in
//!   the data are `Ok` with a non-empty `problems`.

use std::sync::Arc;

use redb::{
    Key, ReadTransaction, ReadableTable, ReadableTableMetadata, TableDefinition, TableHandle, Value,
};

use super::tables::{
    BLOCK_INDEX, BLOCKS, CODE, CONTRACT_STATE, CONTRACTS, MEMPOOL_JOURNAL, META, NONCES, RECEIPTS,
    TX_LOCATIONS,
};
use super::{Ctx, OutboxState, Storage, StorageError, locations, read_head};
use crate::chain::{self, Verified};
use crate::types::{Block, BlockHeader, Hash, PublicKey, Receipt, SignedTx, decode_trusted};
use crate::vm::{StateView, Vm};

/// Problems listed at most; more are counted.
pub const MAX_PROBLEMS: usize = 1000;

/// One thing wrong in the data, located as precisely as known.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// The block height concerned, if any.
    pub height: Option<u64>,
    /// The table concerned.
    pub table: &'static str,
    /// The key concerned (hex for binary keys), if any.
    pub key: Option<String>,
    pub what: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(h) = self.height {
            write!(f, "height {h}: ")?;
        }
        write!(f, "table {}", self.table)?;
        if let Some(k) = &self.key {
            write!(f, ", key {k}")?;
        }
        write!(f, ": {}", self.what)
    }
}

/// The result of `Storage::check`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckReport {
    pub chain_id: String,
    pub params_hash: Hash,
    /// The stored head.
    pub head_height: u64,
    pub head_hash: Hash,
    /// The key every block was checked against.
    pub sequencer: Option<PublicKey>,
    /// Blocks re-executed and found valid (the replay stops at the first invalid one).
    pub blocks_verified: u64,
    pub txs_verified: u64,
    /// Whether the state tables were compared with the replayed state (only when every block
    /// re-executed).
    pub state_compared: bool,
    /// Problems found (at most `MAX_PROBLEMS`; `problem_count` counts them all).
    pub problems: Vec<Problem>,
    pub problem_count: u64,
    /// Pending transactions in the mempool journal file (`journal.redb`), when one was
    /// checked (the name is from layout 1, which kept a row per transaction).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub journal_rows: Option<u64>,
    /// Of those, transactions already committed: removal is lazy (`storage::journal`),
    /// so these are normal and restore forgets them; not problems.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub journal_committed: Option<u64>,
}

impl CheckReport {
    /// Folds in the check of the mempool journal file (`JournalStore::check`): its pending and
    /// committed transactions are reported, its problems (table `journal`, key the entry's
    /// sequence, or the row's number for a row that does not parse) added.
    pub fn add_journal(&mut self, j: super::JournalCheck) {
        self.journal_rows = Some(j.rows);
        self.journal_committed = Some(j.committed);
        for (seq, what) in j.problems {
            self.add(None, "journal", Some(seq.to_string()), what);
        }
    }

    pub fn ok(&self) -> bool {
        self.problem_count == 0
    }

    fn add(&mut self, height: Option<u64>, table: &'static str, key: Option<String>, what: String) {
        self.problem_count += 1;
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(Problem {
                height,
                table,
                key,
                what,
            });
        }
    }
}

pub(super) fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push_str(&format!("{x:02x}"));
    }
    s
}

/// Every entry of a table as (key bytes, value bytes), in key order, to compare tables of
/// different key types with one merge.
fn entries<'t, K: Key + 'static, V: Value + 'static>(
    rtx: &'t ReadTransaction,
    def: TableDefinition<'static, K, V>,
    kb: impl Fn(K::SelfType<'_>) -> Vec<u8> + 't,
    vb: impl Fn(V::SelfType<'_>) -> Vec<u8> + 't,
) -> Result<Entries<'t>, StorageError> {
    let name = def.name().to_owned();
    let t = match rtx.open_table(def) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Box::new(std::iter::empty())),
        Err(e) => return Err(e).ctx(&format!("opening {name}")),
    };
    let iter = t
        .range::<K::SelfType<'_>>(..)
        .ctx(&format!("reading {name}"))?;
    Ok(Box::new(iter.map(move |item| {
        let (k, v) = item.ctx(&format!("reading {name}"))?;
        Ok((kb(k.value()), vb(v.value())))
    })))
}

impl Storage {
    /// Verifies the whole database (see the module docs), re-executing the chain with `vm`
    /// (configured for this chain: `params().vm_config(..)`). `sequencer`: the chain's key;
    /// `None` takes it from block 1 (a chain signed throughout by another key still passes:
    /// give the key to tell).
    pub fn check(
        &self,
        vm: &Vm,
        sequencer: Option<PublicKey>,
    ) -> Result<CheckReport, StorageError> {
        let params = self.params().clone();
        let rtx = self.begin_read()?;
        let head = read_head(&rtx.open_table(META).ctx("opening meta")?)?;
        let mut r = CheckReport {
            chain_id: params.chain_id.clone(),
            params_hash: params.hash(),
            head_height: head.height,
            head_hash: head.hash(),
            sequencer,
            blocks_verified: 0,
            txs_verified: 0,
            state_compared: false,
            problems: Vec::new(),
            problem_count: 0,
            journal_rows: None,
            journal_committed: None,
        };
        let blocks = rtx.open_table(BLOCKS).ctx("opening blocks")?;
        let index = rtx.open_table(BLOCK_INDEX).ctx("opening block_index")?;
        let locations = rtx.open_table(TX_LOCATIONS).ctx("opening tx_locations")?;
        let receipts = rtx.open_table(RECEIPTS).ctx("opening block_receipts")?;

        let read_block = |r: &mut CheckReport, h: u64| -> Result<Option<Block>, StorageError> {
            match blocks.get(h).ctx("reading blocks")? {
                None => {
                    r.add(Some(h), "blocks", Some(h.to_string()), "missing".into());
                    Ok(None)
                }
                Some(g) => match decode_trusted::<Block>(g.value()) {
                    Ok(b) => Ok(Some(b)),
                    Err(e) => {
                        r.add(
                            Some(h),
                            "blocks",
                            Some(h.to_string()),
                            format!("does not decode: {e}"),
                        );
                        Ok(None)
                    }
                },
            }
        };

        // Genesis: the one the recorded parameters give.
        let genesis = params.genesis();
        if let Some(g) = read_block(&mut r, 0)?
            && g != genesis
        {
            r.add(
                Some(0),
                "blocks",
                Some("0".into()),
                format!(
                    "genesis block {} is not the one the recorded chain parameters give ({})",
                    g.header.hash(),
                    genesis.header.hash()
                ),
            );
        }
        self.check_index(&mut r, &index, &genesis.header)?;

        // Replay: every block re-executed on the state its parent left, as a follower does.
        let replay = Storage::in_memory_with(&params)?;
        let mut sequencer = sequencer;
        let mut replayed_all = true;
        let mut last = genesis.header.clone();
        // Transactions `tx_locations` holds: all but those written late and not yet due, or
        // every one in a file from schema 3 or older (`locations`).
        let mut located = 0u64;
        for h in 1..=head.height {
            let Some(block) = read_block(&mut r, h)? else {
                replayed_all = false;
                break;
            };
            let key = *sequencer.get_or_insert(block.header.sequencer);
            let parent = replay.head()?;
            let base: Arc<dyn StateView> = Arc::new(replay.snapshot()?);
            let v: Verified = match chain::verify(vm, &params, &key, &parent, base, &block) {
                Ok(v) => v,
                Err(e) => {
                    let what = if e.is_invalid_block() {
                        format!("block {} is invalid: {e}", block.header.hash())
                    } else {
                        format!(
                            "block {} could not be re-executed: {e}",
                            block.header.hash()
                        )
                    };
                    r.add(Some(h), "blocks", Some(h.to_string()), what);
                    replayed_all = false;
                    break;
                }
            };
            self.check_index(&mut r, &index, &block.header)?;
            for (i, (tx, receipt)) in block.txs.iter().zip(&v.receipts).enumerate() {
                let id = tx.tx.id();
                let key = Some(id.to_string());
                let expected = (h, i as u32);
                let stored = locations
                    .get(&id.0)
                    .ctx("reading tx_locations")?
                    .map(|g| g.value());
                located += u64::from(stored.is_some());
                match stored {
                    Some(at) if at == expected => {}
                    Some((gh, gi)) => {
                        r.add(
                            Some(h),
                            "tx_locations",
                            key.clone(),
                            format!("says height {gh} index {gi}, the block has it at index {i}"),
                        );
                    }
                    // Written late (`locations`): not there yet is right until its height.
                    None if !locations::is_written(h, &id, head.height) => {}
                    None => r.add(Some(h), "tx_locations", key.clone(), "missing".into()),
                }
                match receipts.get(expected).ctx("reading block_receipts")? {
                    None => r.add(Some(h), "block_receipts", key, "missing".into()),
                    Some(g) => match decode_trusted::<Receipt>(g.value()) {
                        Err(e) => r.add(Some(h), "block_receipts", key, format!("does not decode: {e}")),
                        Ok(stored) if stored != *receipt => r.add(Some(h), "block_receipts", key, format!(
                            "differs from the re-executed receipt (stored {stored:?}, re-executed {receipt:?})"
                        )),
                        Ok(_) => {}
                    },
                }
            }
            replay.commit_block(&block, &v.receipts, &v.writes)?;
            r.blocks_verified += 1;
            r.txs_verified += block.txs.len() as u64;
            last = block.header;
        }
        if replayed_all && last != head {
            r.add(
                Some(head.height),
                "meta",
                Some("head".into()),
                format!(
                    "stored head {} is not the last block {}",
                    head.hash(),
                    last.hash()
                ),
            );
        }
        r.sequencer = sequencer;

        // Nothing stored beyond the chain.
        let count = |r: &mut CheckReport, table: &'static str, got: u64, want: u64| {
            if got != want {
                r.add(
                    None,
                    table,
                    None,
                    format!("{got} entries, the chain has {want}"),
                );
            }
        };
        if replayed_all {
            let txs = r.txs_verified;
            count(
                &mut r,
                "blocks",
                blocks.len().ctx("reading blocks")?,
                head.height + 1,
            );
            count(
                &mut r,
                "block_index",
                index.len().ctx("reading block_index")?,
                head.height + 1,
            );
            count(
                &mut r,
                "tx_locations",
                locations.len().ctx("reading tx_locations")?,
                located,
            );
            count(
                &mut r,
                "block_receipts",
                receipts.len().ctx("reading block_receipts")?,
                txs,
            );
            self.compare_state(&mut r, &rtx, &replay)?;
            r.state_compared = true;
        }
        self.check_journal(&mut r, &rtx)?;
        drop((blocks, index, locations, receipts, rtx));
        self.check_outbox(&mut r, head.height)?;
        Ok(r)
    }

    fn check_index(
        &self,
        r: &mut CheckReport,
        index: &impl ReadableTable<super::Key32, u64>,
        header: &BlockHeader,
    ) -> Result<(), StorageError> {
        let hash = header.hash();
        match index.get(&hash.0).ctx("reading block_index")? {
            Some(g) if g.value() == header.height => {}
            Some(g) => r.add(
                Some(header.height),
                "block_index",
                Some(hash.to_string()),
                format!("points at height {}", g.value()),
            ),
            None => r.add(
                Some(header.height),
                "block_index",
                Some(hash.to_string()),
                "missing".into(),
            ),
        }
        Ok(())
    }

    /// The state tables equal the replayed state, entry by entry (one merge per table).
    fn compare_state(
        &self,
        r: &mut CheckReport,
        rtx: &ReadTransaction,
        replay: &Storage,
    ) -> Result<(), StorageError> {
        let ours = rtx;
        let theirs = replay.begin_read()?;
        let k32 = |k: &[u8; 32]| k.to_vec();
        let bytes = |v: &[u8]| v.to_vec();
        let num = |v: u64| v.to_be_bytes().to_vec();
        merge(
            r,
            "contracts",
            entries(ours, CONTRACTS, k32, bytes)?,
            entries(&theirs, CONTRACTS, k32, bytes)?,
        )?;
        merge(
            r,
            "code",
            entries(ours, CODE, k32, bytes)?,
            entries(&theirs, CODE, k32, bytes)?,
        )?;
        merge(
            r,
            "contract_state",
            entries(ours, CONTRACT_STATE, bytes, bytes)?,
            entries(&theirs, CONTRACT_STATE, bytes, bytes)?,
        )?;
        merge(
            r,
            "nonces",
            entries(ours, NONCES, k32, num)?,
            entries(&theirs, NONCES, k32, num)?,
        )?;
        Ok(())
    }

    /// Every journaled transaction decodes and none is committed (a commit removes its own).
    fn check_journal(
        &self,
        r: &mut CheckReport,
        rtx: &ReadTransaction,
    ) -> Result<(), StorageError> {
        let k32 = |k: &[u8; 32]| k.to_vec();
        for item in entries(rtx, MEMPOOL_JOURNAL, k32, |v: &[u8]| v.to_vec())? {
            let (k, v) = item?;
            let key = Some(hex(&k));
            match decode_trusted::<SignedTx>(&v) {
                Err(e) => r.add(
                    None,
                    "mempool_journal",
                    key,
                    format!("does not decode: {e}"),
                ),
                Ok(tx) if tx.tx.id().0.as_slice() != k.as_slice() => r.add(
                    None,
                    "mempool_journal",
                    key,
                    format!("holds transaction {}", tx.tx.id()),
                ),
                Ok(tx) => {
                    if let Some((height, _)) = self.tx_location(&tx.tx.id())? {
                        r.add(
                            None,
                            "mempool_journal",
                            key,
                            format!("is committed at height {height} but still journaled"),
                        );
                    }
                }
            }
        }
        Ok(())
    }

    /// The bridge's ranges as `outbox` defines them: `anchored <= staged <= head`, and the
    /// outbox rows cover exactly `anchored+1 ..= staged`, contiguous, in order; the in-flight
    /// counter matches the submitted rows; no row's timestamp is above the last one stored.
    fn check_outbox(&self, r: &mut CheckReport, head: u64) -> Result<(), StorageError> {
        let s = self.bridge_stats()?;
        if !(s.last_anchored_height <= s.last_staged_height && s.last_staged_height <= head) {
            r.add(None, "bridge", None, format!(
                "watermarks out of order: anchored {} staged {} head {head} (need anchored <= staged <= head)",
                s.last_anchored_height, s.last_staged_height
            ));
        }
        let rows = match self.outbox_rows() {
            Ok(rows) => rows,
            Err(e @ StorageError::Decode { .. }) => {
                r.add(None, "outbox", None, e.to_string());
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let mut next = s.last_anchored_height + 1;
        let mut submitted = 0u64;
        for row in &rows {
            let key = Some(row.first.to_string());
            if row.first != next {
                r.add(Some(row.first), "outbox", key.clone(), format!(
                    "batch {}..={} does not start at {next} (rows must cover anchored+1..=staged without gap or overlap)",
                    row.first, row.last
                ));
            }
            if row.last < row.first {
                r.add(
                    Some(row.first),
                    "outbox",
                    key.clone(),
                    format!("ends at {} before it starts", row.last),
                );
            }
            if row.signature_timestamp > s.last_signature_timestamp {
                r.add(
                    Some(row.first),
                    "outbox",
                    key.clone(),
                    format!(
                        "signature timestamp {} above the last stored {}",
                        row.signature_timestamp, s.last_signature_timestamp
                    ),
                );
            }
            if row.state == OutboxState::Submitted {
                submitted += 1;
            }
            next = row.last.saturating_add(1);
        }
        if next != s.last_staged_height + 1 {
            r.add(
                None,
                "outbox",
                None,
                format!(
                    "rows cover up to {}, but staged_up_to is {}",
                    next - 1,
                    s.last_staged_height
                ),
            );
        }
        if submitted != s.in_flight {
            r.add(
                None,
                "bridge",
                Some("in_flight".into()),
                format!(
                    "says {}, the outbox has {submitted} submitted rows",
                    s.in_flight
                ),
            );
        }
        Ok(())
    }
}

type Entries<'a> = Box<dyn Iterator<Item = Result<(Vec<u8>, Vec<u8>), StorageError>> + 'a>;

/// Reports every key whose value differs, or that only one side has, between the stored table
/// (`ours`) and the replayed one (`theirs`), both in key order.
fn merge(
    r: &mut CheckReport,
    table: &'static str,
    ours: Entries<'_>,
    theirs: Entries<'_>,
) -> Result<(), StorageError> {
    let mut ours = ours.peekable();
    let mut theirs = theirs.peekable();
    loop {
        let a = ours.peek().map(|x| x.as_ref().map(|(k, _)| k.clone()));
        let b = theirs.peek().map(|x| x.as_ref().map(|(k, _)| k.clone()));
        match (a, b) {
            (None, None) => return Ok(()),
            (Some(Err(_)), _) => return ours.next().map_or(Ok(()), |x| x.map(drop)),
            (_, Some(Err(_))) => return theirs.next().map_or(Ok(()), |x| x.map(drop)),
            (Some(Ok(ka)), Some(Ok(kb))) if ka == kb => {
                let (_, va) = ours.next().transpose()?.unwrap_or_default();
                let (_, vb) = theirs.next().transpose()?.unwrap_or_default();
                if va != vb {
                    r.add(
                        None,
                        table,
                        Some(hex(&ka)),
                        format!(
                            "value {} differs from the re-executed {}",
                            hex(&va),
                            hex(&vb)
                        ),
                    );
                }
            }
            (Some(Ok(ka)), Some(Ok(kb))) if ka < kb => {
                ours.next();
                r.add(
                    None,
                    table,
                    Some(hex(&ka)),
                    "stored, but re-executing the chain does not write it".into(),
                );
            }
            (Some(Ok(ka)), None) => {
                ours.next();
                r.add(
                    None,
                    table,
                    Some(hex(&ka)),
                    "stored, but re-executing the chain does not write it".into(),
                );
            }
            (_, Some(Ok(kb))) => {
                theirs.next();
                r.add(
                    None,
                    table,
                    Some(hex(&kb)),
                    "missing: re-executing the chain writes it".into(),
                );
            }
        }
    }
}
