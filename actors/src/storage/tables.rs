//! Every redb table of the node, declared in one place.
//!
//! Invariant: this file and its parent module are the only code that names a table, so the
//! on-disk layout can be read (and versioned with `SCHEMA_VERSION`) from this one page. Changing
//! a table's name, key or value type is a schema change: bump `SCHEMA_VERSION` and provide a
//! migration, because redb refuses to open a table whose types differ from those it was created
//! with.
//!
//! Value conventions: structured values (blocks, receipts, contract records, journaled
//! transactions, meta entries) are the canonical encoding from `crate::types::encode`, read back
//! with `decode_trusted`; plain integers use redb's fixed-width integer types; contract code and
//! contract storage values are the raw bytes the contract gave, stored as-is.

use redb::TableDefinition;

/// Fixed-size keys (hashes, addresses, public keys) are stored as their 32 raw bytes.
pub(super) type Key32 = &'static [u8; 32];

/// Node metadata: see the `META_*` keys.
pub(super) const META: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("meta");
/// `encode(u32)`: the schema version the file was written with.
pub(super) const META_SCHEMA_VERSION: &str = "schema_version";
/// `encode(String)`: the chain this file belongs to.
pub(super) const META_CHAIN_ID: &str = "chain_id";
/// `encode(ChainParams)`: the chain's parameters, written with the genesis block (schema 2).
pub(super) const META_CHAIN_PARAMS: &str = "chain_params";
/// `encode(BlockHeader)`: the latest committed header (it carries the head height). Kept here so
/// `head()` costs one small read instead of decoding a whole block.
pub(super) const META_HEAD: &str = "head";

/// Height -> `encode(Block)`; genesis is height 0.
pub(super) const BLOCKS: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("blocks");
/// Block hash -> height.
pub(super) const BLOCK_INDEX: TableDefinition<'static, Key32, u64> =
    TableDefinition::new("block_index");
/// Tx id -> (block height, index in the block). Written late (schema 4): the commit of
/// `locations::merge_height(h, id)`, at most 31 blocks after the id's block `h`, writes it;
/// until then `Storage` holds it in memory (see `locations`: random keys cost one page each).
pub(super) const TX_LOCATIONS: TableDefinition<'static, Key32, (u64, u32)> =
    TableDefinition::new("tx_locations");
/// (block height, index in the block) -> `encode(Receipt)` (schema 3). Keyed by position, not
/// by tx id: a block's receipts are appended at the right edge of the tree, a few pages per
/// block, where id-keyed rows land on a random leaf each (the ids are hashes), which made every
/// block rewrite one 4 KiB page per transaction once the table outgrew the block. A receipt by
/// id is `TX_LOCATIONS` then this table.
pub(super) const RECEIPTS: TableDefinition<'static, (u64, u32), &[u8]> =
    TableDefinition::new("block_receipts");
/// Tx id -> `encode(Receipt)`: receipts as schema 2 kept them. Read only by the migration to
/// schema 3 (`Storage::migrate_receipts`), which empties it and then deletes it.
pub(super) const RECEIPTS_BY_ID: TableDefinition<'static, Key32, &[u8]> =
    TableDefinition::new("receipts");
/// Contract address -> `encode(ContractInfo)`.
pub(super) const CONTRACTS: TableDefinition<'static, Key32, &[u8]> =
    TableDefinition::new("contracts");
/// Code hash -> raw WebAssembly bytes.
pub(super) const CODE: TableDefinition<'static, Key32, &[u8]> = TableDefinition::new("code");
/// 32-byte contract address || user key -> raw value. The address prefix keeps one contract's
/// keys contiguous, so a contract's state can be range-scanned (export, future proofs).
pub(super) const CONTRACT_STATE: TableDefinition<'static, &[u8], &[u8]> =
    TableDefinition::new("contract_state");
/// Sender public key -> next nonce.
pub(super) const NONCES: TableDefinition<'static, Key32, u64> = TableDefinition::new("nonces");
/// Tx id -> `encode(SignedTx)`: the mempool journal as versions before `journal.redb` kept it
/// (accepted, not yet committed transactions). Nothing writes it any more except the tests;
/// `JournalStore::migrate_from` moves its rows to the journal file and clears it. Still created
/// in new files so an older binary opening one finds it.
pub(super) const MEMPOOL_JOURNAL: TableDefinition<'static, Key32, &[u8]> =
    TableDefinition::new("mempool_journal");
/// Tx id -> arrival sequence of a journaled transaction, so a restart re-admits the journal in
/// the order it was admitted (a call may depend on another sender's earlier deploy). Added
/// after schema 1 without a version bump: an older file simply lacks it (read as "no order
/// known") and the first journal write creates it; an older binary ignores it.
pub(super) const MEMPOOL_ORDER: TableDefinition<'static, Key32, u64> =
    TableDefinition::new("mempool_order");
/// First height of a batch -> `encode(OutboxRow)`: a signed L0 envelope covering the batch's
/// heights, written before anything is sent to the L0 and removed once the batch and every
/// batch below it are delivered (see `outbox`). Batches never overlap, so the first height
/// identifies a batch and the key order is the anchoring order. The table is from schema 2; no
/// released build ever wrote a row, so its value format was fixed here without a version bump.
pub(super) const OUTBOX: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("outbox");
/// The bridge's watermarks and counters, one `u64` per `BRIDGE_*` key; a missing key reads as 0.
/// Added within schema 2 (never released): `Storage::open` creates it in a file that lacks it,
/// and an older schema-2 binary ignores it.
pub(super) const BRIDGE: TableDefinition<'static, &str, u64> = TableDefinition::new("bridge");
/// Every height up to this one is anchored: its batch is delivered on the L0 (0: none yet;
/// genesis is never anchored).
pub(super) const BRIDGE_ANCHORED: &str = "anchored_up_to";
/// Every height up to this one is in a staged batch (an outbox row) or anchored.
pub(super) const BRIDGE_STAGED: &str = "staged_up_to";
/// The largest signature timestamp ever stored with an outbox row.
pub(super) const BRIDGE_LAST_TIMESTAMP: &str = "last_signature_timestamp";
/// Outbox rows in state `Submitted`.
pub(super) const BRIDGE_IN_FLIGHT: &str = "in_flight";
/// Batches marked delivered, ever.
pub(super) const BRIDGE_DELIVERED_TOTAL: &str = "delivered_total";
/// Batches marked failed (finally), ever.
pub(super) const BRIDGE_FAILED_TOTAL: &str = "failed_total";
