//! Transactions: the unsigned body, its action, the signed envelope and signing keys.
//!
//! Invariants:
//! - A transaction's id is SHA-256 of the canonical encoding of its unsigned body (`Tx`); the
//!   signature is Ed25519 by `sender` over the domain-tagged message `"accumen/tx/v1" || id`
//!   (`SigDomain::Tx`), checked under the chain's signature rule, ZIP-215 (`types/sig.rs`: the
//!   same decision one by one or in batches).
//! - Every signature the node makes or checks goes through `SigDomain`: a transaction signature
//!   and a block signature are over messages that can never be equal (different tags, neither a
//!   prefix of the other, followed by exactly 32 bytes), so a signature over a transaction id can
//!   never pass as a signature over a block hash with the same bytes, or the other way round.
//! - The signature is outside the id, so re-encoding a signature cannot change the id.
//! - Shape limits (`check_shape`) are stateless and cheap; they run before any signature check so
//!   an oversized transaction costs the node nothing.

use ed25519_dalek::{Signer, SigningKey};
use serde::{Deserialize, Serialize};

use super::bytes::{Address, Bytes, Hash, HexError, PublicKey, Signature};
use super::codec::{DecodeError, decode_canonical, encode, hash_of, sha256, sha256_parts};
pub use super::sig::{KeyCache, verify_hash};
use super::sig::{VerifyKey, decompress, verify_with};

/// Longest chain id, in bytes.
pub const MAX_CHAIN_ID_LEN: usize = 64;
/// Longest entry-point name, in bytes.
pub const MAX_ENTRY_LEN: usize = 64;
/// Largest call argument, in bytes.
pub const MAX_ARGS_LEN: usize = 64 * 1024;
/// Largest contract code, in bytes.
pub const MAX_CODE_LEN: usize = 512 * 1024;
/// Largest encoded signed transaction, in bytes (a maximal deploy plus headroom).
pub const MAX_TX_BYTES: usize = MAX_CODE_LEN + 4 * 1024;

/// What a transaction does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// Deploy a WebAssembly module; its `init` export runs if present.
    Deploy { code: Bytes },
    /// Call the export `entry` of a deployed contract with `args` as its input.
    Call {
        contract: Address,
        entry: String,
        args: Bytes,
    },
}

/// The unsigned body of a transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tx {
    /// Chain this transaction is for; a node refuses other chains' transactions (replay guard).
    pub chain_id: String,
    /// Ed25519 public key of the signer, who pays the gas and owns the nonce.
    pub sender: PublicKey,
    /// Per-sender sequence number, strictly sequential from 0.
    pub nonce: u64,
    /// Most gas this transaction may use.
    pub gas_limit: u64,
    /// Higher is served first by the mempool.
    pub priority: u64,
    /// Unix milliseconds after which it may no longer be included.
    #[serde(default)]
    pub expiry: Option<u64>,
    /// What it does.
    pub action: Action,
}

/// A transaction with its signature: what clients submit and blocks carry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedTx {
    pub tx: Tx,
    pub signature: Signature,
}

/// Why a transaction was refused before execution.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    #[error("decode: {0}")]
    Decode(#[from] DecodeError),
    #[error("chain id is empty or longer than {MAX_CHAIN_ID_LEN} bytes")]
    BadChainId,
    #[error("gas limit must be greater than zero")]
    ZeroGasLimit,
    #[error(
        "entry name must be 1..={MAX_ENTRY_LEN} bytes of ASCII letters, digits or '_', got {0:?}"
    )]
    BadEntry(String),
    #[error("call args are {0} bytes, limit {MAX_ARGS_LEN}")]
    ArgsTooLarge(usize),
    #[error("contract code is {0} bytes, limit {MAX_CODE_LEN}")]
    CodeTooLarge(usize),
    #[error("contract code is empty")]
    EmptyCode,
    #[error("sender is not a valid Ed25519 public key")]
    BadSender,
    #[error("signature does not verify for the sender")]
    BadSignature,
}

impl Tx {
    /// The transaction id: SHA-256 of the canonical encoding of this body.
    pub fn id(&self) -> Hash {
        hash_of(self)
    }

    /// Stateless limits that every node applies before looking at signatures or state.
    pub fn check_shape(&self) -> Result<(), TxError> {
        if self.chain_id.is_empty() || self.chain_id.len() > MAX_CHAIN_ID_LEN {
            return Err(TxError::BadChainId);
        }
        if self.gas_limit == 0 {
            return Err(TxError::ZeroGasLimit);
        }
        match &self.action {
            Action::Deploy { code } => {
                if code.is_empty() {
                    return Err(TxError::EmptyCode);
                }
                if code.len() > MAX_CODE_LEN {
                    return Err(TxError::CodeTooLarge(code.len()));
                }
            }
            Action::Call { entry, args, .. } => {
                if !valid_entry(entry) {
                    return Err(TxError::BadEntry(entry.chars().take(80).collect()));
                }
                if args.len() > MAX_ARGS_LEN {
                    return Err(TxError::ArgsTooLarge(args.len()));
                }
            }
        }
        Ok(())
    }

    /// The contract this transaction touches: the callee, or the address a deploy creates.
    pub fn target(&self) -> Address {
        match &self.action {
            Action::Deploy { code } => {
                contract_address(&self.sender, self.nonce, &sha256(code.as_ref()))
            }
            Action::Call { contract, .. } => *contract,
        }
    }
}

/// Entry names are plain identifiers so they can be printed and logged safely.
pub fn valid_entry(entry: &str) -> bool {
    !entry.is_empty()
        && entry.len() <= MAX_ENTRY_LEN
        && entry
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The address of a contract deployed by `deployer` with `nonce` and code hash `code_hash`.
pub fn contract_address(deployer: &PublicKey, nonce: u64, code_hash: &Hash) -> Address {
    let h = sha256_parts(&[
        b"accumen/contract/v1",
        &deployer.0,
        &nonce.to_le_bytes(),
        &code_hash.0,
    ]);
    Address(h.0)
}

impl SignedTx {
    /// Decodes a transaction from its canonical binary form.
    pub fn decode(bytes: &[u8]) -> Result<Self, TxError> {
        Ok(decode_canonical(bytes, MAX_TX_BYTES)?)
    }

    /// The canonical binary form.
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    /// Decodes a transaction from its canonical binary form and takes its id from those
    /// bytes, without encoding the body again.
    ///
    /// Why the id is the same as `tx.id()` on every machine: canonical bytes are exactly
    /// `encode(self)` (`decode_canonical` checks it), and postcard encodes a struct as its
    /// fields in order with nothing around them, so `encode(SignedTx)` is `encode(Tx)` followed
    /// by the signature, which is a fixed-size array (`Signature::LEN` bytes, no length
    /// prefix). The id, SHA-256 of `encode(Tx)`, is therefore SHA-256 of all but the last
    /// `Signature::LEN` bytes (tested against `Tx::id` in `decoded_ids_are_the_body_hash`).
    pub fn decode_identified(bytes: &[u8]) -> Result<IdentifiedTx, TxError> {
        let tx = Self::decode(bytes)?;
        // A decoded SignedTx always holds a whole signature, so this never saturates.
        let body = bytes.len().saturating_sub(Signature::LEN);
        Ok(IdentifiedTx {
            id: sha256(&bytes[..body]),
            tx,
        })
    }

    /// Checks shape and signature; returns the transaction with its id computed once.
    ///
    /// Order of the checks (the same in `verify_cached` and `verify_batch`): the sender key must
    /// decompress (`BadSender`), then the shape, then the signature (`BadSignature`).
    pub fn verify(self) -> Result<VerifiedTx, TxError> {
        let key = decompress(&self.tx.sender).ok_or(TxError::BadSender)?;
        self.verify_with_key(&key)
    }

    /// Like `verify`, taking the sender's decompressed key from `cache` (senders repeat, and
    /// decompressing a public key is a sizeable part of the cost of a verification).
    pub fn verify_cached(self, cache: &KeyCache) -> Result<VerifiedTx, TxError> {
        let key = cache.key(&self.tx.sender)?;
        self.verify_with_key(&key)
    }

    fn verify_with_key(self, key: &VerifyKey) -> Result<VerifiedTx, TxError> {
        self.tx.check_shape()?;
        let id = self.tx.id();
        if !verify_with(key, SigDomain::Tx, &id, &self.signature) {
            return Err(TxError::BadSignature);
        }
        Ok(VerifiedTx { id, tx: self })
    }
}

/// A transaction with its id, before any check: what the verifiers take, so an id computed
/// once (by `SignedTx::decode_identified`, from the bytes received) is not computed again.
/// The fields are private, so the id is always the transaction's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentifiedTx {
    id: Hash,
    tx: SignedTx,
}

impl IdentifiedTx {
    /// Computes the id (one encoding of the body).
    pub fn new(tx: SignedTx) -> Self {
        Self { id: tx.tx.id(), tx }
    }

    /// The transaction id.
    pub fn id(&self) -> Hash {
        self.id
    }

    /// The signed transaction.
    pub fn signed(&self) -> &SignedTx {
        &self.tx
    }

    /// Both parts.
    pub fn into_parts(self) -> (Hash, SignedTx) {
        (self.id, self.tx)
    }
}

/// A transaction whose shape and signature have been checked, with its id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedTx {
    id: Hash,
    tx: SignedTx,
}

impl VerifiedTx {
    /// Only the verifiers (`SignedTx::verify*`, `sig::verify_batch`) make one from parts.
    pub(super) fn new(id: Hash, tx: SignedTx) -> Self {
        Self { id, tx }
    }

    /// The transaction id.
    pub fn id(&self) -> Hash {
        self.id
    }

    /// The signed transaction.
    pub fn signed(&self) -> &SignedTx {
        &self.tx
    }

    /// The unsigned body.
    pub fn tx(&self) -> &Tx {
        &self.tx.tx
    }

    /// Gives back the signed transaction.
    pub fn into_signed(self) -> SignedTx {
        self.tx
    }

    /// Rebuilds from storage written by this node: the id is recomputed, the signature trusted.
    pub fn from_trusted(tx: SignedTx) -> Self {
        Self { id: tx.tx.id(), tx }
    }
}

/// An Ed25519 signing key for transactions or blocks.
pub struct Keypair {
    key: SigningKey,
}

impl std::fmt::Debug for Keypair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        write!(f, "Keypair(public={})", self.public())
    }
}

/// Why a key could not be made or read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KeyError {
    #[error("no randomness from the operating system: {0}")]
    Entropy(#[source] getrandom::Error),
    #[error("secret key: {0}")]
    Hex(#[from] HexError),
}

impl Keypair {
    /// A fresh key from the operating system's randomness.
    pub fn generate() -> Result<Self, KeyError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(KeyError::Entropy)?;
        Ok(Self::from_seed(seed))
    }

    /// The key with this 32-byte secret seed (deterministic; tests and key files).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self {
            key: SigningKey::from_bytes(&seed),
        }
    }

    /// Parses a seed written by `seed_hex` (surrounding whitespace ignored).
    pub fn from_seed_hex(s: &str) -> Result<Self, KeyError> {
        Ok(Self::from_seed(Hash::from_hex(s.trim())?.0))
    }

    /// The secret seed as hex, for a key file.
    pub fn seed_hex(&self) -> String {
        hex::encode(self.key.to_bytes())
    }

    /// The public key.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.key.verifying_key().to_bytes())
    }

    /// Signs a 32-byte hash in `domain`: the message is the domain's tag followed by the hash.
    pub fn sign_hash(&self, domain: SigDomain, hash: &Hash) -> Signature {
        Signature(self.key.sign(domain.message(hash).as_ref()).to_bytes())
    }

    /// Signs a transaction body. The body's `sender` should be this key's public key.
    pub fn sign(&self, tx: Tx) -> SignedTx {
        let signature = self.sign_hash(SigDomain::Tx, &tx.id());
        SignedTx { tx, signature }
    }
}

/// What a signature is for. Each domain prefixes the signed 32-byte hash with its own tag, so a
/// signature made in one domain never verifies in another (see the module invariants).
///
/// The tags are part of the chain's rules: changing one invalidates every signature made with it,
/// so a new rule gets a new tag (`.../v2`) instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SigDomain {
    /// A transaction id.
    Tx,
    /// A block header hash.
    Block,
}

/// Longest domain tag; the signed message fits on the stack.
const MAX_TAG_LEN: usize = 16;

/// A signed message: a domain tag followed by a 32-byte hash.
#[derive(Clone, Copy, Debug)]
pub struct SigMessage {
    buf: [u8; MAX_TAG_LEN + Hash::LEN],
    len: usize,
}

impl AsRef<[u8]> for SigMessage {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl SigDomain {
    /// The domain's tag: ASCII, distinct lengths, neither a prefix of the other. The tx tag is
    /// short on purpose: Ed25519 hashes `R || A || message` (64 + 13 + 32 = 109 bytes), which
    /// still fits one SHA-512 block, so domain separation costs transaction checks nothing.
    pub const fn tag(self) -> &'static [u8] {
        match self {
            SigDomain::Tx => b"accumen/tx/v1",
            SigDomain::Block => b"accumen/block/v1",
        }
    }

    /// The bytes actually signed: `tag || hash`.
    pub fn message(self, hash: &Hash) -> SigMessage {
        let tag = self.tag();
        let mut buf = [0u8; MAX_TAG_LEN + Hash::LEN];
        buf[..tag.len()].copy_from_slice(tag);
        buf[tag.len()..tag.len() + Hash::LEN].copy_from_slice(&hash.0);
        SigMessage {
            buf,
            len: tag.len() + Hash::LEN,
        }
    }
}

// Every tag fits the message buffer.
const _: () = assert!(
    SigDomain::Tx.tag().len() <= MAX_TAG_LEN && SigDomain::Block.tag().len() <= MAX_TAG_LEN
);

#[cfg(test)]
mod tests {
    use super::*;

    fn call(kp: &Keypair, nonce: u64) -> Tx {
        use crate::testkit::{CHAIN, body, call};
        body(
            CHAIN,
            kp.public(),
            nonce,
            call(Address([9; 32]), "increment", &[]),
            1_000_000,
        )
    }

    #[test]
    fn sign_verify_and_tamper() {
        let kp = Keypair::from_seed([1; 32]);
        let stx = kp.sign(call(&kp, 0));
        let v = stx.clone().verify().unwrap();
        assert_eq!(v.id(), stx.tx.id());

        let mut tampered = stx.clone();
        tampered.tx.nonce = 1;
        assert_eq!(tampered.verify(), Err(TxError::BadSignature));

        let other = Keypair::from_seed([2; 32]);
        let mut wrong_sender = stx.clone();
        wrong_sender.tx.sender = other.public();
        assert_eq!(wrong_sender.verify(), Err(TxError::BadSignature));

        let mut bad_sig = stx;
        bad_sig.signature.0[0] ^= 1;
        assert_eq!(bad_sig.verify(), Err(TxError::BadSignature));
    }

    #[test]
    fn cached_verification_agrees_with_plain() {
        let kp = Keypair::from_seed([7; 32]);
        let cache = KeyCache::new(2);
        for nonce in 0..5 {
            let stx = kp.sign(call(&kp, nonce));
            assert_eq!(stx.clone().verify_cached(&cache), stx.clone().verify());
            let mut bad = stx;
            bad.signature.0[5] ^= 1;
            assert_eq!(bad.verify_cached(&cache), Err(TxError::BadSignature));
        }
        // Fill past capacity with other senders; results do not change.
        for seed in 10..15u8 {
            let other = Keypair::from_seed([seed; 32]);
            assert!(other.sign(call(&other, 0)).verify_cached(&cache).is_ok());
        }
        let mut bogus = kp.sign(call(&kp, 0));
        bogus.tx.sender = PublicKey([0xff; 32]);
        assert!(bogus.verify_cached(&cache).is_err());
    }

    #[test]
    fn tx_signatures_are_domain_separated() {
        let kp = Keypair::from_seed([8; 32]);
        let stx = kp.sign(call(&kp, 0));
        let id = stx.tx.id();
        // The signed message is exactly the tag followed by the id.
        let mut expected = b"accumen/tx/v1".to_vec();
        expected.extend_from_slice(&id.0);
        assert_eq!(SigDomain::Tx.message(&id).as_ref(), expected.as_slice());
        assert!(verify_hash(
            SigDomain::Tx,
            &kp.public(),
            &id,
            &stx.signature
        ));
        // The same signature is worthless as a block signature over the same 32 bytes.
        assert!(!verify_hash(
            SigDomain::Block,
            &kp.public(),
            &id,
            &stx.signature
        ));

        // A block-domain signature over bytes equal to the tx id does not authorise the tx,
        // through either verification path.
        let cache = KeyCache::new(4);
        let mut forged = stx.clone();
        forged.signature = kp.sign_hash(SigDomain::Block, &id);
        assert_eq!(forged.clone().verify(), Err(TxError::BadSignature));
        assert_eq!(forged.verify_cached(&cache), Err(TxError::BadSignature));

        // Nor does a bare signature over the id (the rule before domain separation).
        let mut bare = stx.clone();
        bare.signature = Signature(kp.key.sign(&id.0).to_bytes());
        assert_eq!(bare.clone().verify(), Err(TxError::BadSignature));
        assert_eq!(bare.verify_cached(&cache), Err(TxError::BadSignature));

        // The genuine one still verifies, cached or not.
        assert!(stx.clone().verify_cached(&cache).is_ok());
        assert!(stx.verify().is_ok());
    }

    #[test]
    fn domain_tags_can_never_collide() {
        let (tx, block) = (SigDomain::Tx.tag(), SigDomain::Block.tag());
        assert_ne!(tx.len(), block.len());
        assert!(!tx.starts_with(block) && !block.starts_with(tx));
        let h = Hash([0xab; 32]);
        assert_ne!(
            SigDomain::Tx.message(&h).as_ref(),
            SigDomain::Block.message(&h).as_ref()
        );
    }

    #[test]
    fn decoded_ids_are_the_body_hash() {
        let kp = Keypair::from_seed([4; 32]);
        let mut txs = Vec::new();
        // Lengths on both sides of postcard's varint boundaries (127, 16,383), every optional
        // field set and unset, both actions, extreme integers.
        for len in [0usize, 1, 127, 128, 16_383, 16_384, 70_000] {
            let mut t = call(&kp, len as u64);
            t.action = crate::testkit::call(Address([len as u8; 32]), "e", &vec![0xa5; len]);
            txs.push(t.clone());
            t.action = crate::testkit::deploy(vec![1; len.max(1)]);
            t.expiry = Some(u64::MAX);
            t.priority = u64::MAX;
            t.nonce = u64::MAX;
            t.gas_limit = 1;
            t.chain_id = "c".repeat(len.clamp(1, MAX_CHAIN_ID_LEN));
            txs.push(t);
        }
        for t in txs {
            let stx = kp.sign(t);
            let got = SignedTx::decode_identified(&stx.encode()).unwrap();
            assert_eq!(got.id(), stx.tx.id());
            assert_eq!(got.signed(), &stx);
            assert_eq!(IdentifiedTx::new(stx.clone()), got);
        }
        // Bytes that are not one canonical transaction give decode's error.
        let mut bytes = kp.sign(call(&kp, 1)).encode();
        bytes.push(0);
        assert_eq!(
            SignedTx::decode_identified(&bytes).map(|t| t.id()),
            SignedTx::decode(&bytes).map(|t| t.tx.id())
        );
        assert!(SignedTx::decode_identified(&[]).is_err());
        assert!(SignedTx::decode_identified(&bytes[..10]).is_err());
    }

    #[test]
    fn binary_and_json_round_trip() {
        let kp = Keypair::from_seed([3; 32]);
        let stx = kp.sign(call(&kp, 5));
        assert_eq!(SignedTx::decode(&stx.encode()), Ok(stx.clone()));
        let json = serde_json::to_string(&stx).unwrap();
        assert!(json.contains("\"call\""), "{json}");
        let back: SignedTx = serde_json::from_str(&json).unwrap();
        assert_eq!(back, stx);
        let unknown = json.replacen("\"nonce\"", "\"bogus\":1,\"nonce\"", 1);
        assert!(serde_json::from_str::<SignedTx>(&unknown).is_err());
    }

    #[test]
    fn shape_limits() {
        let kp = Keypair::from_seed([4; 32]);
        let mut tx = call(&kp, 0);
        tx.gas_limit = 0;
        assert_eq!(tx.check_shape(), Err(TxError::ZeroGasLimit));
        let mut tx = call(&kp, 0);
        tx.action = Action::Call {
            contract: Address::ZERO,
            entry: "bad name".into(),
            args: Bytes::default(),
        };
        assert!(matches!(tx.check_shape(), Err(TxError::BadEntry(_))));
        tx.action = Action::Deploy {
            code: Bytes(vec![0; MAX_CODE_LEN + 1]),
        };
        assert_eq!(
            tx.check_shape(),
            Err(TxError::CodeTooLarge(MAX_CODE_LEN + 1))
        );
        tx.chain_id = String::new();
        assert_eq!(tx.check_shape(), Err(TxError::BadChainId));
    }

    #[test]
    fn key_seed_round_trip() {
        let kp = Keypair::generate().unwrap();
        let again = Keypair::from_seed_hex(&format!("{}\n", kp.seed_hex())).unwrap();
        assert_eq!(kp.public(), again.public());
        assert!(!format!("{kp:?}").contains(&kp.seed_hex()));
    }

    #[test]
    fn addresses_depend_on_all_inputs() {
        let d = PublicKey([1; 32]);
        let c = Hash([2; 32]);
        let a = contract_address(&d, 0, &c);
        assert_ne!(a, contract_address(&d, 1, &c));
        assert_ne!(a, contract_address(&PublicKey([3; 32]), 0, &c));
        assert_ne!(a, contract_address(&d, 0, &Hash([4; 32])));
    }
}
