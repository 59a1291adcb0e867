//! The chain's signature rule: Ed25519 verified under ZIP-215, one signature at a time or in
//! batches, with exactly the same accept/reject decision either way.
//!
//! Rule (consensus): a signature `R || s` by key `A` over message `M` (the domain-tagged message
//! of `SigDomain`) is valid iff
//! - `A` and `R` are 32-byte encodings that decompress to curve points; non-canonical encodings
//!   (a `y` coordinate `>= p`, or the sign bit set on `x = 0`) and points of small order are
//!   accepted, and `k = SHA-512(R_bytes || A_bytes || M)` hashes the bytes as given;
//! - `s` is canonical (`s < l`, the group order), else the signature is refused;
//! - the cofactored equation `[8]([s]B - R - [k]A) = 0` holds.
//!
//! That is ZIP-215 (<https://zips.z.cash/zip-0215>), implemented by `ed25519-consensus` 2.1,
//! which we use for every verification of a transaction or block signature. Signing still uses
//! ed25519-dalek: the signatures are the same bytes (RFC 8032 signing is deterministic).
//!
//! Invariants:
//! - Batch == single. `verify_batch` returns, per item, exactly what `SignedTx::verify` returns.
//!   The batch equation is a random linear combination of the per-item cofactored equations, so
//!   if every item is valid the batch is valid whatever the coefficients (deterministic), and if
//!   any item is invalid the batch fails except with probability about 2^-128 over the 128-bit
//!   coefficients (its non-torsion error survives the multiplication by 8). A failed chunk is
//!   re-checked one signature at a time, so every rejection is a single-verification rejection.
//!   This is why the rule is ZIP-215 and not `verify_strict`: the strict, cofactorless check has
//!   no batch equation that agrees with it on every input.
//! - Deterministic across machines: no decision depends on the RNG (see above), on the chunk
//!   size, on thread count or on the key cache's contents; the cache only saves decompression.
//! - Compatible: every signature valid under the old rule (`verify_strict`: cofactorless, no
//!   small-order `A` or `R`, canonical encodings) is valid here (cofactorless implies cofactored),
//!   so chains written under the old rule replay unchanged. The converse does not hold: a
//!   transaction from a small-order key (no honest key is one) can be "signed" by anyone.
//! - Bounded work: a batch costs at most one batch pass plus one single verification per item,
//!   whatever an attacker puts in it (`BATCH_CHUNK` limits the fallback to the failing chunk).

use std::collections::HashMap;
use std::sync::Mutex;

use ed25519_consensus::{VerificationKey, VerificationKeyBytes, batch};

use super::bytes::{Hash, PublicKey, Signature};
use super::tx::{SigDomain, SignedTx, TxError, VerifiedTx};

/// Signatures per batch equation. A failing chunk is re-checked one by one, so this bounds what
/// one bad signature costs its neighbours, and a chunk is the unit of progress a follower
/// reports. Measured (`make bench-limits`, release, loaded 2-core machine): per signature 84 us
/// one by one, 43 us in batches of 64, 37 us of 256, 31 us of 1024; 256 takes most of the gain
/// while keeping a chunk to tens of milliseconds even in debug builds.
pub const BATCH_CHUNK: usize = 256;

/// Below this many signatures a batch saves nothing worth its setup: verify one by one.
const MIN_BATCH: usize = 4;

fn consensus_sig(sig: &Signature) -> ed25519_consensus::Signature {
    ed25519_consensus::Signature::from(sig.0)
}

/// The key `pk` as a curve point, or `None` if it does not decompress (ZIP-215 accepts every
/// encoding that does, canonical or not, small order or not).
fn decompress(pk: &PublicKey) -> Option<VerificationKey> {
    VerificationKey::try_from(pk.0).ok()
}

/// Single verification under the chain's rule: `sig` by `key` over `domain`'s message for
/// `hash`.
pub(crate) fn verify_with(
    key: &VerificationKey,
    domain: SigDomain,
    hash: &Hash,
    sig: &Signature,
) -> bool {
    key.verify(&consensus_sig(sig), domain.message(hash).as_ref())
        .is_ok()
}

/// Checks an Ed25519 signature by `key` over a 32-byte hash in `domain`, under the chain's rule
/// (ZIP-215, see the module docs).
pub fn verify_hash(domain: SigDomain, key: &PublicKey, hash: &Hash, sig: &Signature) -> bool {
    decompress(key).is_some_and(|k| verify_with(&k, domain, hash, sig))
}

/// Decompressed sender keys, shared by the threads that verify incoming transactions.
///
/// Bounded: when full it is simply emptied (a cheap, allocation-free policy that keeps the
/// steady-state hit rate of a working set smaller than the bound). Its contents never change a
/// decision: a key either decompresses or not, cached or not.
#[derive(Debug)]
pub struct KeyCache {
    keys: Mutex<HashMap<PublicKey, VerificationKey>>,
    capacity: usize,
}

impl KeyCache {
    /// A cache of at most `capacity` keys.
    pub fn new(capacity: usize) -> Self {
        KeyCache {
            keys: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    pub(crate) fn key(&self, pk: &PublicKey) -> Result<VerificationKey, TxError> {
        let lock = || self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = lock().get(pk) {
            return Ok(*k);
        }
        // Decompress outside the lock; an invalid key is not cached.
        let key = decompress(pk).ok_or(TxError::BadSender)?;
        let mut keys = lock();
        if keys.len() >= self.capacity {
            keys.clear();
        }
        keys.insert(*pk, key);
        Ok(key)
    }
}

/// A transaction whose key and shape passed, waiting for its signature check.
struct Pending {
    index: usize,
    key: VerificationKey,
    id: Hash,
    tx: SignedTx,
}

impl Pending {
    fn verify_single(self) -> Result<VerifiedTx, TxError> {
        if verify_with(&self.key, SigDomain::Tx, &self.id, &self.tx.signature) {
            Ok(VerifiedTx::new(self.id, self.tx))
        } else {
            Err(TxError::BadSignature)
        }
    }
}

/// Verifies many transactions; item `i` of the answer is exactly `txs[i].verify()` (and
/// `verify_cached`), in the same order, with the signatures checked in batches of
/// [`BATCH_CHUNK`] (see the module invariants for why the decisions cannot differ).
///
/// Key and shape errors are found per item first, so they come out as for single verification
/// (`BadSender` before shape errors before `BadSignature`).
pub fn verify_batch(txs: Vec<SignedTx>, cache: &KeyCache) -> Vec<Result<VerifiedTx, TxError>> {
    verify_batch_chunked(txs, cache, BATCH_CHUNK)
}

/// `verify_batch` with `chunk` signatures per batch equation (at least 1). The chunk size
/// changes only the speed, never an answer; the benchmarks use it to choose [`BATCH_CHUNK`].
pub fn verify_batch_chunked(
    txs: Vec<SignedTx>,
    cache: &KeyCache,
    chunk: usize,
) -> Vec<Result<VerifiedTx, TxError>> {
    let chunk = chunk.max(1);
    let mut out: Vec<Option<Result<VerifiedTx, TxError>>> = Vec::with_capacity(txs.len());
    let mut pending = Vec::with_capacity(txs.len());
    for (index, tx) in txs.into_iter().enumerate() {
        let checked = cache
            .key(&tx.tx.sender)
            .and_then(|key| tx.tx.check_shape().map(|()| key));
        match checked {
            Ok(key) => {
                out.push(None);
                let id = tx.tx.id();
                pending.push(Pending { index, key, id, tx });
            }
            Err(e) => out.push(Some(Err(e))),
        }
    }
    let mut rng = BatchRng::from_os();
    let mut rest = pending.into_iter().peekable();
    while rest.peek().is_some() {
        let chunk: Vec<Pending> = rest.by_ref().take(chunk).collect();
        for (index, result) in verify_chunk(chunk, rng.as_mut()) {
            out[index] = Some(result);
        }
    }
    out.into_iter()
        // Every index got an answer above: either at the first pass or from its chunk.
        .map(|r| r.unwrap_or(Err(TxError::BadSignature)))
        .collect()
}

/// One batch equation over `chunk`; on failure (or without randomness, or for a few items)
/// every item is verified on its own, which is the rule's definition.
fn verify_chunk(
    chunk: Vec<Pending>,
    rng: Option<&mut BatchRng>,
) -> Vec<(usize, Result<VerifiedTx, TxError>)> {
    if let Some(rng) = rng.filter(|_| chunk.len() >= MIN_BATCH)
        && batch_equation(&chunk).verify(rng).is_ok()
    {
        return chunk
            .into_iter()
            .map(|p| (p.index, Ok(VerifiedTx::new(p.id, p.tx))))
            .collect();
    }
    chunk
        .into_iter()
        .map(|p| (p.index, p.verify_single()))
        .collect()
}

/// The batch verifier holding every signature of `chunk` (each over its tx-domain message).
fn batch_equation(chunk: &[Pending]) -> batch::Verifier {
    let mut verifier = batch::Verifier::new();
    for p in chunk {
        let msg = SigDomain::Tx.message(&p.id);
        verifier.queue((
            VerificationKeyBytes::from(p.key),
            consensus_sig(&p.tx.signature),
            msg.as_ref(),
        ));
    }
    verifier
}

/// The batch equation's coefficients: a BLAKE3 output stream keyed with 32 bytes from the
/// operating system, fresh for every `verify_batch` call, so no client can predict them when it
/// builds its signatures. Its output never changes a decision (module invariants), only the
/// negligible chance that a batch with an invalid item passes, which needs unpredictability.
pub(crate) struct BatchRng {
    xof: blake3::OutputReader,
}

impl BatchRng {
    /// `None` when the OS has no randomness: the caller then verifies one by one (always
    /// correct, only slower) instead of using a guessable seed.
    pub(crate) fn from_os() -> Option<Self> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).ok()?;
        let xof = blake3::Hasher::new_keyed(&seed)
            .update(b"accumen/batch-coefficients/v1")
            .finalize_xof();
        Some(BatchRng { xof })
    }
}

impl rand_core::RngCore for BatchRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.xof.fill(&mut b);
        u32::from_le_bytes(b)
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.xof.fill(&mut b);
        u64::from_le_bytes(b)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.xof.fill(dest);
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.xof.fill(dest);
        Ok(())
    }
}

// A keyed BLAKE3 stream is a PRF output: computationally indistinguishable from random.
impl rand_core::CryptoRng for BatchRng {}

#[cfg(test)]
mod tests;
