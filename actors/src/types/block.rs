//! Blocks: the signed header and the transactions it orders.
//!
//! Invariants: the header hash is SHA-256 of the header's canonical encoding and the sequencer
//! signs that hash in the block domain (`"accumen/block/v1" || hash`, see `SigDomain`), so no
//! transaction signature can ever stand in for a block signature; `tx_root` is the Merkle root of the transaction ids in block order and
//! `receipts_root` that of the receipt hashes. Genesis (height 0) is derived from the chain id and
//! the hash of the chain's parameters (`chain::ChainParams::genesis`) alone, so every node of a
//! chain starts from the same parent hash and state root, and two chains whose parameters differ
//! in any value differ from block 1 on (block 1's `parent_hash` is the genesis hash).

use serde::{Deserialize, Serialize};

use super::bytes::{Hash, PublicKey, Signature};
use super::codec::{DecodeError, decode_canonical, encode, hash_of, sha256_parts};
use super::merkle::merkle_root;
use super::receipt::Receipt;
use super::state::{WriteSet, genesis_state_root, state_root};
use super::tx::{Keypair, MAX_TX_BYTES, SigDomain, SignedTx, verify_hash};

/// A block header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockHeader {
    pub height: u64,
    pub parent_hash: Hash,
    /// Unix milliseconds, set by the sequencer; never earlier than the parent's.
    pub timestamp_ms: u64,
    pub tx_root: Hash,
    pub receipts_root: Hash,
    pub state_root: Hash,
    /// The sequencer that signed this block (all zeros for genesis).
    pub sequencer: PublicKey,
}

impl BlockHeader {
    /// SHA-256 of the canonical encoding: the block hash.
    pub fn hash(&self) -> Hash {
        hash_of(self)
    }

    /// The header of the block on top of `parent` with these transactions, receipts and
    /// writes: the one rule by which a sequencer builds a header and a follower checks it.
    /// `sequencer` is set when the block is sealed.
    pub fn child(
        parent: &BlockHeader,
        timestamp_ms: u64,
        txs: &[SignedTx],
        receipts: &[Receipt],
        writes: &WriteSet,
    ) -> BlockHeader {
        let ids: Vec<Hash> = txs.iter().map(|t| t.tx.id()).collect();
        Self::child_of_ids(parent, timestamp_ms, &ids, receipts, writes)
    }

    /// [`BlockHeader::child`] from the transactions' ids (in block order) instead of the
    /// transactions: the same rule, for a builder that already holds every id (a `VerifiedTx`
    /// carries its own) and should not hash each transaction again.
    pub fn child_of_ids(
        parent: &BlockHeader,
        timestamp_ms: u64,
        tx_ids: &[Hash],
        receipts: &[Receipt],
        writes: &WriteSet,
    ) -> BlockHeader {
        BlockHeader {
            height: parent.height.saturating_add(1),
            parent_hash: parent.hash(),
            timestamp_ms,
            tx_root: merkle_root(tx_ids),
            receipts_root: receipts_root(receipts),
            state_root: state_root(&parent.state_root, writes),
            sequencer: PublicKey::ZERO,
        }
    }
}

/// A signed block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    pub header: BlockHeader,
    pub signature: Signature,
    pub txs: Vec<SignedTx>,
}

/// Why a block was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    #[error("decode: {0}")]
    Decode(#[from] DecodeError),
    #[error("block signature does not verify for sequencer {0}")]
    BadSignature(PublicKey),
    #[error("tx root mismatch: header {header}, computed {computed}")]
    TxRoot { header: Hash, computed: Hash },
}

/// Largest encoded block this node will decode from a peer.
pub const MAX_BLOCK_BYTES: usize = 64 * 1024 * 1024;

impl Block {
    /// The block hash.
    pub fn hash(&self) -> Hash {
        self.header.hash()
    }

    /// The genesis block of a chain: deterministic from the chain id and the hash of the
    /// chain's parameters (`ChainParams::hash`; `ChainParams::genesis` calls this), to which its
    /// `parent_hash` commits. The types layer takes the hash rather than the parameters so that
    /// it never depends on `chain`.
    pub fn genesis(chain_id: &str, params_hash: &Hash) -> Block {
        Block {
            header: BlockHeader {
                height: 0,
                // v2: since storage schema 2 the genesis commits to the chain parameters.
                parent_hash: sha256_parts(&[
                    b"accumen/genesis/v2",
                    chain_id.as_bytes(),
                    &params_hash.0,
                ]),
                timestamp_ms: 0,
                tx_root: merkle_root(&[]),
                receipts_root: merkle_root(&[]),
                state_root: genesis_state_root(chain_id),
                sequencer: PublicKey::ZERO,
            },
            signature: Signature::ZERO,
            txs: Vec::new(),
        }
    }

    /// Signs `header` with the sequencer key; the header's `sequencer` is set to that key.
    pub fn seal(mut header: BlockHeader, txs: Vec<SignedTx>, key: &Keypair) -> Block {
        header.sequencer = key.public();
        let signature = key.sign_hash(SigDomain::Block, &header.hash());
        Block {
            header,
            signature,
            txs,
        }
    }

    /// Checks the sequencer's signature and that `tx_root` commits to `txs`: the checks a block
    /// passes on its own, before `chain::verify` checks it against its parent and re-executes it.
    pub fn verify(&self) -> Result<(), BlockError> {
        if !verify_hash(
            SigDomain::Block,
            &self.header.sequencer,
            &self.hash(),
            &self.signature,
        ) {
            return Err(BlockError::BadSignature(self.header.sequencer));
        }
        let computed = tx_root(&self.txs);
        if computed != self.header.tx_root {
            return Err(BlockError::TxRoot {
                header: self.header.tx_root,
                computed,
            });
        }
        Ok(())
    }

    /// Canonical binary form.
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    /// Decodes a block from its canonical binary form (signature not yet checked).
    pub fn decode(bytes: &[u8]) -> Result<Block, BlockError> {
        Ok(decode_canonical(bytes, MAX_BLOCK_BYTES)?)
    }
}

/// Merkle root of the transaction ids, in order.
pub fn tx_root(txs: &[SignedTx]) -> Hash {
    let ids: Vec<Hash> = txs.iter().map(|t| t.tx.id()).collect();
    merkle_root(&ids)
}

/// Merkle root of the receipt hashes, in order.
pub fn receipts_root(receipts: &[Receipt]) -> Hash {
    let hashes: Vec<Hash> = receipts.iter().map(Receipt::hash).collect();
    merkle_root(&hashes)
}

// A block holds at least one byte per transaction, so this bounds the count a decoder accepts.
const _: () = assert!(MAX_BLOCK_BYTES > MAX_TX_BYTES);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Action, Address, Bytes, Tx};

    #[test]
    fn genesis_is_deterministic_per_chain_and_params() {
        let (p, q) = (Hash([1; 32]), Hash([2; 32]));
        assert_eq!(Block::genesis("a", &p), Block::genesis("a", &p));
        assert_ne!(
            Block::genesis("a", &p).hash(),
            Block::genesis("b", &p).hash()
        );
        assert_ne!(
            Block::genesis("a", &p).hash(),
            Block::genesis("a", &q).hash()
        );
    }

    #[test]
    fn seal_verify_and_tamper() {
        let kp = Keypair::from_seed([5; 32]);
        let tx = kp.sign(Tx {
            chain_id: "c".into(),
            sender: kp.public(),
            nonce: 0,
            gas_limit: 10,
            priority: 0,
            expiry: None,
            action: Action::Call {
                contract: Address::ZERO,
                entry: "x".into(),
                args: Bytes::default(),
            },
        });
        let g = Block::genesis("c", &Hash([0; 32]));
        let header = BlockHeader {
            height: 1,
            parent_hash: g.hash(),
            timestamp_ms: 1,
            tx_root: tx_root(std::slice::from_ref(&tx)),
            receipts_root: merkle_root(&[]),
            state_root: g.header.state_root,
            sequencer: PublicKey::ZERO,
        };
        let block = Block::seal(header, vec![tx], &kp);
        assert_eq!(block.verify(), Ok(()));
        assert_eq!(Block::decode(&block.encode()), Ok(block.clone()));

        // Domain separation: the sequencer's block signature over hash H is not a transaction
        // signature over H, and a transaction-domain signature over H does not seal the block.
        let h = block.hash();
        assert!(verify_hash(
            SigDomain::Block,
            &kp.public(),
            &h,
            &block.signature
        ));
        assert!(!verify_hash(
            SigDomain::Tx,
            &kp.public(),
            &h,
            &block.signature
        ));
        let mut tx_signed = block.clone();
        tx_signed.signature = kp.sign_hash(SigDomain::Tx, &h);
        assert!(matches!(
            tx_signed.verify(),
            Err(BlockError::BadSignature(_))
        ));

        let mut wrong_height = block.clone();
        wrong_height.header.height = 2;
        assert!(matches!(
            wrong_height.verify(),
            Err(BlockError::BadSignature(_))
        ));
        let mut dropped_tx = block;
        dropped_tx.txs.clear();
        assert!(matches!(
            dropped_tx.verify(),
            Err(BlockError::TxRoot { .. })
        ));
    }
}
