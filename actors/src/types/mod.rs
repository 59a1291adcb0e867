//! Chain data types: transactions, blocks, receipts, state commitments and their canonical
//! encoding. No actix, no storage, no VM: everything here is pure data and pure functions, so
//! every node (sequencer or follower) computes the same bytes and hashes from the same values.

mod block;
mod bytes;
mod codec;
mod merkle;
mod receipt;
mod sig;
mod state;
mod tx;

#[cfg(test)]
mod proptests;

pub use block::{Block, BlockError, BlockHeader, MAX_BLOCK_BYTES, receipts_root, tx_root};
pub use bytes::{Address, Bytes, Hash, HexError, PublicKey, Signature};
pub use codec::{
    DecodeError, decode_canonical, decode_trusted, encode, hash_of, sha256, sha256_parts,
};
pub use merkle::merkle_root;
pub use receipt::{Event, Receipt, ReceiptStatus, revert_reason, trap_kind};
pub use sig::{BATCH_CHUNK, verify_batch, verify_batch_chunked};
pub use state::{ContractInfo, WriteSet, genesis_state_root, state_root};
pub use tx::{
    Action, KeyCache, KeyError, Keypair, MAX_ARGS_LEN, MAX_CHAIN_ID_LEN, MAX_CODE_LEN,
    MAX_ENTRY_LEN, MAX_TX_BYTES, SigDomain, SigMessage, SignedTx, Tx, TxError, VerifiedTx,
    contract_address, valid_entry, verify_hash,
};

/// A `HashMap` for the hot per-transaction maps (mempool entries and accounts, the journal's
/// index), keyed by tx ids and public keys: foldhash with a random per-map seed instead of
/// SipHash, which was about 2% of the node's CPU at 25,000 tx/s. Still seeded, so keys an
/// attacker grinds (ids are hashes of what they sign) cannot be aimed at one bucket chain;
/// iteration order is as unspecified as with `RandomState`, and nothing relies on it.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
