//! The Accumulate `WriteData` transaction and its Ed25519 signature: the field tables of the L0
//! document §3.2, the hashes of §3.3, signing (§3.4) and the checks a node applies to an
//! envelope on its own, without account state (§3.5).
//!
//! Invariants: every hash is computed from the binary encoding produced here and never from a
//! hash a peer supplied; decoding accepts only canonical bytes (decode → encode gives the input
//! back); [`sign_write_data`] checks what it built with [`SignedWriteData::check`], so the bridge
//! can never store an envelope a node would refuse for a reason visible in the envelope alone.
//! The same types serialise to the exact JSON of §2.1 (camelCase, lowercase hex, zero values
//! omitted), so a client and a stand-in server share them.
//!
//! Supported subset (all the bridge sends): a transaction header with `principal`, `initiator`,
//! `memo`, `metadata`; a `writeData` body with a `doubleHash` entry; one `ed25519` signature.
//! Other header fields (`expire`, `holdUntil`, `authorities`), body and entry types decode to a
//! typed `UnsupportedField`/`UnsupportedType` error (binary) or a serde error (JSON, unknown
//! members are refused), never to a value that would hash differently from what was sent.

use ed25519_dalek::{Signer as _, SigningKey, Verifier as _, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::encoding::{AccUrl, DecodeError, Reader, TxId, Writer, put_uvarint};
use super::json::{Envelope, Status};
use crate::types::{Bytes, Hash, KeyError, Keypair, PublicKey, Signature, sha256, sha256_parts};

/// Largest number of parts in a data entry (`limits.dataEntryParts`).
pub const MAX_DATA_ENTRY_PARTS: usize = 100;
/// Largest marshalled data entry and whole transaction, in bytes.
pub const MAX_TRANSACTION_BYTES: usize = 20_480;
/// Largest marshalled signature, in bytes.
pub const MAX_SIGNATURE_BYTES: usize = 1_024;

/// `writeData` transaction type number.
const WRITE_DATA: u64 = 5;
/// `doubleHash` data entry type number.
const DOUBLE_HASH: u64 = 3;
/// `ed25519` signature type number.
const ED25519: u64 = 2;

macro_rules! tag {
    ($(#[$m:meta])* $name:ident, $json:literal) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
        pub enum $name {
            #[default]
            #[serde(rename = $json)]
            Tag,
        }
    };
}

tag!(
    /// The JSON `"type": "writeData"` of a body.
    WriteDataType,
    "writeData"
);
tag!(
    /// The JSON `"type": "doubleHash"` of a data entry.
    DoubleHashType,
    "doubleHash"
);
tag!(
    /// The JSON `"type": "ed25519"` of a signature.
    Ed25519Type,
    "ed25519"
);

fn is_zero_hash(h: &Hash) -> bool {
    *h == Hash::ZERO
}
fn is_zero_sig(s: &Signature) -> bool {
    *s == Signature::ZERO
}
fn is_zero(v: &u64) -> bool {
    *v == 0
}
fn is_false(b: &bool) -> bool {
    !*b
}

/// `TransactionHeader` (fields 1–4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransactionHeader {
    pub principal: AccUrl,
    #[serde(default, skip_serializing_if = "is_zero_hash")]
    pub initiator: Hash,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub memo: String,
    #[serde(default, skip_serializing_if = "Bytes::is_empty")]
    pub metadata: Bytes,
}

impl TransactionHeader {
    /// The binary encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.string(1, self.principal.as_str());
        w.hash(2, &self.initiator);
        w.string(3, &self.memo);
        w.bytes(4, &self.metadata.0);
        w.finish()
    }

    /// Decodes canonical bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        const OBJ: &str = "transaction header";
        let mut r = Reader::new(OBJ, bytes);
        let mut principal = None;
        let mut initiator = Hash::ZERO;
        let mut memo = String::new();
        let mut metadata = Bytes::default();
        while let Some(f) = r.next_field()? {
            match f {
                1 => principal = Some(r.url(f)?),
                2 => initiator = r.hash()?,
                3 => memo = r.string(f)?.to_string(),
                4 => metadata = Bytes(r.bytes()?.to_vec()),
                _ => return Err(r.unsupported(f)),
            }
        }
        let principal = principal.ok_or(DecodeError::MissingField {
            object: OBJ,
            field: 1,
        })?;
        let h = TransactionHeader {
            principal,
            initiator,
            memo,
            metadata,
        };
        canonical(h, bytes, Self::encode, OBJ)
    }

    /// `SHA256(bin(header))`.
    pub fn hash(&self) -> Hash {
        sha256(&self.encode())
    }
}

/// Accepts a decoded value only when it re-encodes to the input.
fn canonical<T>(
    value: T,
    input: &[u8],
    encode: fn(&T) -> Vec<u8>,
    object: &'static str,
) -> Result<T, DecodeError> {
    if encode(&value) == input {
        Ok(value)
    } else {
        Err(DecodeError::NonCanonical { object })
    }
}

/// `DoubleHashDataEntry`: type 3, field 2 `data` repeated.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DoubleHashEntry {
    #[serde(rename = "type")]
    pub kind: DoubleHashType,
    #[serde(default)]
    pub data: Vec<Bytes>,
}

impl DoubleHashEntry {
    /// An entry of these parts, in order.
    pub fn new(parts: Vec<Vec<u8>>) -> Self {
        Self {
            kind: DoubleHashType::Tag,
            data: parts.into_iter().map(Bytes).collect(),
        }
    }

    /// The binary encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.type_field(1, DOUBLE_HASH);
        for part in &self.data {
            w.repeated_bytes(2, &part.0);
        }
        w.finish()
    }

    /// Decodes canonical bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        const OBJ: &str = "data entry";
        let mut r = Reader::new(OBJ, bytes);
        let mut e = DoubleHashEntry::default();
        let mut typed = false;
        while let Some(f) = r.next_field()? {
            match f {
                1 => {
                    let t = r.uint()?;
                    if t != DOUBLE_HASH {
                        return Err(DecodeError::UnsupportedType {
                            object: OBJ,
                            expected: DOUBLE_HASH,
                            got: t,
                        });
                    }
                    typed = true;
                }
                2 => e.data.push(Bytes(r.bytes()?.to_vec())),
                _ => return Err(r.unsupported(f)),
            }
        }
        if !typed {
            return Err(DecodeError::MissingField {
                object: OBJ,
                field: 1,
            });
        }
        canonical(e, bytes, Self::encode, OBJ)
    }

    /// The entry hash: `SHA256( MR( SHA256(part_1), …, SHA256(part_n) ) )` (§3.3 rule 2), also
    /// the `entryHash` a node reports and the key of `data`/`entry` queries.
    pub fn hash(&self) -> Hash {
        let leaves: Vec<Hash> = self.data.iter().map(|p| sha256(&p.0)).collect();
        sha256(&accumulate_merkle_root(&leaves).0)
    }
}

/// The `writeData` body: type 5, 2 `entry`, 3 `scratch`, 4 `writeToState`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WriteData {
    #[serde(rename = "type")]
    pub kind: WriteDataType,
    pub entry: DoubleHashEntry,
    #[serde(default, skip_serializing_if = "is_false")]
    pub scratch: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub write_to_state: bool,
}

impl WriteData {
    fn encode_with(&self, entry: bool) -> Vec<u8> {
        let mut w = Writer::new();
        w.type_field(1, WRITE_DATA);
        if entry {
            w.nested(2, &self.entry.encode());
        }
        w.uint(3, u64::from(self.scratch));
        w.uint(4, u64::from(self.write_to_state));
        w.finish()
    }

    /// The binary encoding.
    pub fn encode(&self) -> Vec<u8> {
        self.encode_with(true)
    }

    /// Decodes canonical bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        const OBJ: &str = "writeData body";
        let mut r = Reader::new(OBJ, bytes);
        let mut b = WriteData::default();
        let (mut typed, mut entry) = (false, false);
        while let Some(f) = r.next_field()? {
            match f {
                1 => {
                    let t = r.uint()?;
                    if t != WRITE_DATA {
                        return Err(DecodeError::UnsupportedType {
                            object: OBJ,
                            expected: WRITE_DATA,
                            got: t,
                        });
                    }
                    typed = true;
                }
                2 => {
                    b.entry = DoubleHashEntry::decode(r.bytes()?)?;
                    entry = true;
                }
                3 => b.scratch = r.bool()?,
                4 => b.write_to_state = r.bool()?,
                _ => return Err(r.unsupported(f)),
            }
        }
        for (present, field) in [(typed, 1), (entry, 2)] {
            if !present {
                return Err(DecodeError::MissingField { object: OBJ, field });
            }
        }
        canonical(b, bytes, Self::encode, OBJ)
    }

    /// The WriteData body hash (§3.3 rule 3):
    /// `SHA256( SHA256(bin(body without entry)) || entryHash )`.
    pub fn hash(&self) -> Hash {
        sha256_parts(&[&sha256(&self.encode_with(false)).0, &self.entry.hash().0])
    }
}

/// A transaction: 1 `header`, 2 `body` (both nested).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transaction {
    pub header: TransactionHeader,
    pub body: WriteData,
}

impl Transaction {
    /// The binary encoding (its length sets the fee).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.nested(1, &self.header.encode());
        w.nested(2, &self.body.encode());
        w.finish()
    }

    /// Decodes canonical bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        const OBJ: &str = "transaction";
        let mut r = Reader::new(OBJ, bytes);
        let (mut header, mut body) = (None, None);
        while let Some(f) = r.next_field()? {
            match f {
                1 => header = Some(TransactionHeader::decode(r.bytes()?)?),
                2 => body = Some(WriteData::decode(r.bytes()?)?),
                _ => return Err(r.unsupported(f)),
            }
        }
        let header = header.ok_or(DecodeError::MissingField {
            object: OBJ,
            field: 1,
        })?;
        let body = body.ok_or(DecodeError::MissingField {
            object: OBJ,
            field: 2,
        })?;
        canonical(Transaction { header, body }, bytes, Self::encode, OBJ)
    }

    /// The transaction hash: `SHA256( SHA256(bin(header)) || bodyHash )` (§3.3 rule 4).
    pub fn hash(&self) -> Hash {
        sha256_parts(&[&self.header.hash().0, &self.body.hash().0])
    }

    /// `acc://<hash>@<principal>`.
    pub fn id(&self) -> TxId {
        TxId {
            hash: self.hash(),
            account: self.header.principal.clone(),
        }
    }
}

/// A signature's vote (Go `VoteType`); the bridge always accepts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Vote {
    #[default]
    Accept,
    Reject,
    Abstain,
    Suggest,
}

impl Vote {
    fn number(self) -> u64 {
        match self {
            Vote::Accept => 0,
            Vote::Reject => 1,
            Vote::Abstain => 2,
            Vote::Suggest => 3,
        }
    }

    fn from_number(n: u64) -> Option<Self> {
        [Vote::Accept, Vote::Reject, Vote::Abstain, Vote::Suggest]
            .into_iter()
            .find(|v| v.number() == n)
    }

    fn is_accept(&self) -> bool {
        *self == Vote::Accept
    }
}

/// `ED25519Signature` (fields 1–10, §3.2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Ed25519Signature {
    #[serde(rename = "type")]
    pub kind: Ed25519Type,
    pub public_key: PublicKey,
    #[serde(default, skip_serializing_if = "is_zero_sig")]
    pub signature: Signature,
    pub signer: AccUrl,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub signer_version: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub timestamp: u64,
    #[serde(default, skip_serializing_if = "Vote::is_accept")]
    pub vote: Vote,
    #[serde(default, skip_serializing_if = "is_zero_hash")]
    pub transaction_hash: Hash,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub memo: String,
    #[serde(default, skip_serializing_if = "Bytes::is_empty")]
    pub data: Bytes,
}

impl Ed25519Signature {
    fn encode_with(&self, full: bool) -> Vec<u8> {
        let mut w = Writer::new();
        w.type_field(1, ED25519);
        w.bytes(2, &self.public_key.0);
        if full && !is_zero_sig(&self.signature) {
            w.bytes(3, &self.signature.0);
        }
        w.string(4, self.signer.as_str());
        w.uint(5, self.signer_version);
        w.uint(6, self.timestamp);
        w.uint(7, self.vote.number());
        if full {
            w.hash(8, &self.transaction_hash);
        }
        w.string(9, &self.memo);
        w.bytes(10, &self.data.0);
        w.finish()
    }

    /// The full binary encoding (its length sets the signature fee).
    pub fn encode(&self) -> Vec<u8> {
        self.encode_with(true)
    }

    /// The signature metadata (§3.3 rule 5): the encoding without `signature` and
    /// `transactionHash`.
    pub fn metadata(&self) -> Vec<u8> {
        self.encode_with(false)
    }

    /// Decodes canonical bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        const OBJ: &str = "ed25519 signature";
        let mut r = Reader::new(OBJ, bytes);
        let mut typed = false;
        let mut public_key = None;
        let mut signer = None;
        let mut s = SigParts::default();
        while let Some(f) = r.next_field()? {
            match f {
                1 => {
                    let t = r.uint()?;
                    if t != ED25519 {
                        return Err(DecodeError::UnsupportedType {
                            object: OBJ,
                            expected: ED25519,
                            got: t,
                        });
                    }
                    typed = true;
                }
                2 => public_key = Some(PublicKey(r.fixed::<32>(f)?)),
                3 => s.signature = Signature(r.fixed::<64>(f)?),
                4 => signer = Some(r.url(f)?),
                5 => s.signer_version = r.uint()?,
                6 => s.timestamp = r.uint()?,
                7 => {
                    let n = r.uint()?;
                    s.vote = Vote::from_number(n).ok_or(DecodeError::UnsupportedType {
                        object: "vote",
                        expected: 0,
                        got: n,
                    })?;
                }
                8 => s.transaction_hash = r.hash()?,
                9 => s.memo = r.string(f)?.to_string(),
                10 => s.data = Bytes(r.bytes()?.to_vec()),
                _ => return Err(r.unsupported(f)),
            }
        }
        let missing = |field| DecodeError::MissingField { object: OBJ, field };
        if !typed {
            return Err(missing(1));
        }
        let sig = Ed25519Signature {
            kind: Ed25519Type::Tag,
            public_key: public_key.ok_or(missing(2))?,
            signature: s.signature,
            signer: signer.ok_or(missing(4))?,
            signer_version: s.signer_version,
            timestamp: s.timestamp,
            vote: s.vote,
            transaction_hash: s.transaction_hash,
            memo: s.memo,
            data: s.data,
        };
        canonical(sig, bytes, Self::encode, OBJ)
    }

    /// The initiator (§3.3 rule 6, "simple hash"): `SHA256(metadata)`.
    pub fn initiator(&self) -> Hash {
        sha256(&self.metadata())
    }

    /// The deprecated "Merkle" initiator a node still accepts (§3.3 rule 6):
    /// `MR(SHA256(publicKey), SHA256(signer), SHA256(uvarint version), SHA256(uvarint timestamp))`.
    /// Only [`SignedWriteData::check`] uses it; never sign with it.
    pub fn merkle_initiator(&self) -> Hash {
        let mut version = Vec::new();
        put_uvarint(&mut version, self.signer_version);
        let mut timestamp = Vec::new();
        put_uvarint(&mut timestamp, self.timestamp);
        accumulate_merkle_root(&[
            sha256(&self.public_key.0),
            sha256(self.signer.as_str().as_bytes()),
            sha256(&version),
            sha256(&timestamp),
        ])
    }

    /// The 32 bytes Ed25519 signs (§3.3 rule 7): `SHA256( initiator || txHash )`.
    pub fn signing_digest(&self, tx_hash: &Hash) -> Hash {
        sha256_parts(&[&self.initiator().0, &tx_hash.0])
    }

    /// The signature message hash (§3.3 rule 8): `SHA256(bin(full signature))`.
    pub fn message_hash(&self) -> Hash {
        sha256(&self.encode())
    }

    /// The signature's id, `acc://<message hash>@<signer>`.
    pub fn id(&self) -> TxId {
        TxId {
            hash: self.message_hash(),
            account: self.signer.clone(),
        }
    }

    /// `SHA256(publicKey)`: how a key page lists the key.
    pub fn key_hash(&self) -> Hash {
        sha256(&self.public_key.0)
    }
}

#[derive(Default)]
struct SigParts {
    signature: Signature,
    signer_version: u64,
    timestamp: u64,
    vote: Vote,
    transaction_hash: Hash,
    memo: String,
    data: Bytes,
}

/// Accumulate's Merkle root (§3.3 rule 1; Go `merkle.State.AddEntry` / `Anchor`): a binary
/// counter of pending subtree roots, folded from the lowest slot up. No leaves → 32 zero bytes;
/// one leaf → the leaf; three → `SHA256(SHA256(h1||h2) || h3)`. Not the project's
/// `types::merkle_root`, which is domain-separated.
pub fn accumulate_merkle_root(leaves: &[Hash]) -> Hash {
    let mut slots: Vec<Option<Hash>> = Vec::new();
    for leaf in leaves {
        let mut carry = *leaf;
        let mut i = 0;
        loop {
            match slots.get_mut(i) {
                None => {
                    slots.push(Some(carry));
                    break;
                }
                Some(slot @ None) => {
                    *slot = Some(carry);
                    break;
                }
                Some(slot @ Some(_)) => {
                    if let Some(left) = slot.take() {
                        carry = sha256_parts(&[&left.0, &carry.0]);
                    }
                    i += 1;
                }
            }
        }
    }
    let mut running: Option<Hash> = None;
    for v in slots.into_iter().flatten() {
        running = Some(match running {
            None => v,
            Some(r) => sha256_parts(&[&v.0, &r.0]),
        });
    }
    running.unwrap_or(Hash::ZERO)
}

/// The Ed25519 key that signs for the key page on the L0.
pub struct L0Key {
    key: SigningKey,
}

impl std::fmt::Debug for L0Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        write!(f, "L0Key(public={})", self.public())
    }
}

impl L0Key {
    /// The key with this 32-byte RFC 8032 seed.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self {
            key: SigningKey::from_bytes(&seed),
        }
    }

    /// The same key as a project key (`accumen key generate` file format): Accumulate signs
    /// the plain digest, without the project's signature domains.
    pub fn from_keypair(kp: &Keypair) -> Result<Self, KeyError> {
        Ok(Self::from_seed(Hash::from_hex(&kp.seed_hex())?.0))
    }

    /// The public key.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.key.verifying_key().to_bytes())
    }

    /// Signs an arbitrary digest, so tests can build envelopes that are validly signed yet
    /// wrong in another way (an initiator that is not the signature's metadata hash).
    #[cfg(any(test, feature = "test-hooks"))]
    pub fn sign_digest(&self, digest: &Hash) -> Signature {
        Signature(self.key.sign(&digest.0).to_bytes())
    }
}

/// What to write and how to sign it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteDataRequest {
    /// The data account.
    pub principal: AccUrl,
    /// The key page.
    pub signer: AccUrl,
    /// The key page's current version.
    pub signer_version: u64,
    /// Strictly greater than the key's `lastUsedOn` (§3.6); never zero.
    pub timestamp: u64,
    pub memo: String,
    pub metadata: Vec<u8>,
    /// The `doubleHash` entry's parts.
    pub parts: Vec<Vec<u8>>,
}

/// A signed `WriteData`: the transaction and its initiating signature, ready to submit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedWriteData {
    pub transaction: Transaction,
    pub signature: Ed25519Signature,
}

/// What [`SignedWriteData::check`] found valid, and what a node or stand-in needs next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    pub tx_id: TxId,
    pub signature_id: TxId,
    pub entry_hash: Hash,
    /// `SHA256(publicKey)`, to look up in the key page.
    pub key_hash: Hash,
    /// What the signer is charged (§5): `sigFee + txFee − 1` credit units.
    pub fee_units: u64,
}

/// Why an envelope is refused. [`CheckError::status`] is the status a node answers with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    #[error("envelope has no transaction")]
    NoTransaction,
    #[error("envelope has no signature")]
    NoSignature,
    #[error("envelope has {0} transactions; this subset supports exactly one")]
    TooManyTransactions(usize),
    #[error("envelope has {0} signatures; this subset supports exactly one")]
    TooManySignatures(usize),
    #[error("envelope txHash {envelope} is not the transaction's hash {computed}")]
    EnvelopeTxHash { envelope: Hash, computed: Hash },
    #[error("signature is for transaction {signature}, not {computed}")]
    TransactionHash { signature: Hash, computed: Hash },
    #[error("missing initiator")]
    NoInitiator,
    /// A real node does not refuse this at submission: it takes the signature as a secondary
    /// one, and the transaction, never initiated, stays pending until it expires (Go
    /// `sig_user.go` `checkInit`, `sendCreditPayment`). The bridge only ever sends one
    /// initiating signature, so this subset refuses it up front (`badRequest`) rather than
    /// accepting a transaction that can never execute.
    #[error("initiator {header} does not match the signature metadata hash {computed}")]
    Initiator { header: Hash, computed: Hash },
    #[error("signature has no timestamp")]
    ZeroTimestamp,
    #[error("initial signature cannot be a {0:?} vote")]
    Vote(Vote),
    #[error("invalid signature")]
    InvalidSignature,
    #[error("data entry has {got} parts, more than {MAX_DATA_ENTRY_PARTS}")]
    TooManyParts { got: usize },
    #[error("{what} is {got} bytes, more than {max}")]
    TooLarge {
        what: &'static str,
        got: usize,
        max: usize,
    },
}

impl CheckError {
    /// The status a node reports for this failure (§1, §3.5).
    pub fn status(&self) -> Status {
        match self {
            CheckError::InvalidSignature => Status::Unauthenticated,
            CheckError::ZeroTimestamp => Status::BadTimestamp,
            _ => Status::BadRequest,
        }
    }
}

impl SignedWriteData {
    /// From a submitted envelope: exactly one transaction and one signature (the subset the
    /// bridge sends). Hashes are recomputed by [`check`](Self::check), not taken from the JSON.
    pub fn from_envelope(envelope: &Envelope) -> Result<Self, CheckError> {
        let transaction = match envelope.transaction.as_slice() {
            [] => return Err(CheckError::NoTransaction),
            [t] => t.clone(),
            many => return Err(CheckError::TooManyTransactions(many.len())),
        };
        let signature = match envelope.signatures.as_slice() {
            [] => return Err(CheckError::NoSignature),
            [s] => s.clone(),
            many => return Err(CheckError::TooManySignatures(many.len())),
        };
        if let Some(h) = envelope.tx_hash {
            let computed = transaction.hash();
            if h != computed {
                return Err(CheckError::EnvelopeTxHash {
                    envelope: h,
                    computed,
                });
            }
        }
        Ok(Self {
            transaction,
            signature,
        })
    }

    /// The JSON envelope for `submit` (§2.1).
    pub fn envelope(&self) -> Envelope {
        Envelope {
            signatures: vec![self.signature.clone()],
            transaction: vec![self.transaction.clone()],
            tx_hash: None,
        }
    }

    /// Everything a node checks without account state (§3.5), in the node's order: sizes, the
    /// link between signature and transaction, a non-zero initiator, the signature, then the
    /// initiator checks (metadata hash, timestamp, vote).
    /// Signer version, key membership, `lastUsedOn`, credits and the data account need the
    /// L0's state and are the caller's (the stand-in's) to check with [`Checked`].
    pub fn check(&self) -> Result<Checked, CheckError> {
        let entry = &self.transaction.body.entry;
        if entry.data.len() > MAX_DATA_ENTRY_PARTS {
            return Err(CheckError::TooManyParts {
                got: entry.data.len(),
            });
        }
        let limit = |what, got, max| {
            if got > max {
                Err(CheckError::TooLarge { what, got, max })
            } else {
                Ok(())
            }
        };
        limit("data entry", entry.encode().len(), MAX_TRANSACTION_BYTES)?;
        let tx_len = self.transaction.encode().len();
        limit("transaction", tx_len, MAX_TRANSACTION_BYTES)?;
        let sig_len = self.signature.encode().len();
        limit("signature", sig_len, MAX_SIGNATURE_BYTES)?;

        let sig = &self.signature;
        let tx_hash = self.transaction.hash();
        if sig.transaction_hash != tx_hash {
            return Err(CheckError::TransactionHash {
                signature: sig.transaction_hash,
                computed: tx_hash,
            });
        }
        let header = &self.transaction.header;
        if header.initiator == Hash::ZERO {
            return Err(CheckError::NoInitiator);
        }
        // The node's order (Go `sig_user.go`): the signature first, then the initiator checks.
        let key = VerifyingKey::from_bytes(&sig.public_key.0)
            .map_err(|_| CheckError::InvalidSignature)?;
        let sig_bytes = ed25519_dalek::Signature::from_bytes(&sig.signature.0);
        key.verify(&sig.signing_digest(&tx_hash).0, &sig_bytes)
            .map_err(|_| CheckError::InvalidSignature)?;
        let computed = sig.initiator();
        if header.initiator != computed && header.initiator != sig.merkle_initiator() {
            return Err(CheckError::Initiator {
                header: header.initiator,
                computed,
            });
        }
        if sig.timestamp == 0 {
            return Err(CheckError::ZeroTimestamp);
        }
        if sig.vote != Vote::Accept {
            return Err(CheckError::Vote(sig.vote));
        }

        let body = &self.transaction.body;
        Ok(Checked {
            tx_id: TxId {
                hash: tx_hash,
                account: header.principal.clone(),
            },
            signature_id: sig.id(),
            entry_hash: entry.hash(),
            key_hash: sig.key_hash(),
            fee_units: signer_fee_units(tx_len, sig_len, body.scratch, body.write_to_state),
        })
    }
}

/// The credit units charged to the initiating signer (§5, Go `fee_schedule.go`,
/// `sig_user.go` `computeSignerFee`): WriteData 10 units per started 256 bytes of transaction
/// (1 if scratch, doubled with writeToState), plus 1 unit per started 256 bytes of signature,
/// minus 1.
pub fn signer_fee_units(tx_len: usize, sig_len: usize, scratch: bool, write_to_state: bool) -> u64 {
    let chunks = |n: usize| (n as u64).div_ceil(256).max(1);
    let mut tx_fee = chunks(tx_len) * if scratch { 1 } else { 10 };
    if write_to_state {
        tx_fee *= 2;
    }
    (chunks(sig_len) + tx_fee).saturating_sub(1)
}

/// Builds and signs a `WriteData` (§3.4): signature metadata → initiator → header → transaction
/// hash → Ed25519 over `SHA256(initiator || txHash)`. The result is checked before it is
/// returned, so a too-large entry or a zero timestamp is an error here, not at the node.
pub fn sign_write_data(key: &L0Key, req: &WriteDataRequest) -> Result<SignedWriteData, CheckError> {
    let mut signature = Ed25519Signature {
        kind: Ed25519Type::Tag,
        public_key: key.public(),
        signature: Signature::ZERO,
        signer: req.signer.clone(),
        signer_version: req.signer_version,
        timestamp: req.timestamp,
        vote: Vote::Accept,
        transaction_hash: Hash::ZERO,
        memo: String::new(),
        data: Bytes::default(),
    };
    let transaction = Transaction {
        header: TransactionHeader {
            principal: req.principal.clone(),
            initiator: signature.initiator(),
            memo: req.memo.clone(),
            metadata: Bytes(req.metadata.clone()),
        },
        body: WriteData {
            kind: WriteDataType::Tag,
            entry: DoubleHashEntry::new(req.parts.clone()),
            scratch: false,
            write_to_state: false,
        },
    };
    let tx_hash = transaction.hash();
    signature.transaction_hash = tx_hash;
    let digest = signature.signing_digest(&tx_hash);
    signature.signature = Signature(key.key.sign(&digest.0).to_bytes());
    let signed = SignedWriteData {
        transaction,
        signature,
    };
    signed.check()?;
    Ok(signed)
}
