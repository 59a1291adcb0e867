//! The chain's signature rule: Ed25519 verified under ZIP-215, one signature at a time or in
//! batches, with exactly the same accept/reject decision either way.
//!
//! Rule (consensus): a signature `R || s` by key `A` over message `M` (the domain-tagged message
//! of `SigDomain`) is valid iff
//! - `A` and `R` are 32-byte encodings that decompress to curve points; non-canonical encodings
//!   (a `y` coordinate `>= p`, or the sign bit set on `x = 0`) and points of small order are
//!   accepted, and `k = SHA-512(R_bytes || A_bytes || M) mod l` hashes the bytes as given;
//! - `s` is canonical (`s < l`, the group order), else the signature is refused;
//! - the cofactored equation `[8]([s]B - R - [k]A) = 0` holds.
//!
//! That is ZIP-215 (<https://zips.z.cash/zip-0215>). It is written here, in a few lines, on
//! curve25519-dalek 5 (already in the tree under ed25519-dalek, which still signs): its
//! `decompress` is exactly ZIP-215's decoding (`y` read as 255 bits and reduced mod p, the sign
//! bit applied even to `x = 0`, no canonicity or order check) and it picks its AVX2 backend at
//! run time on x86_64, where the multiscalar and double-scalar multiplications run about twice as
//! fast as `ed25519-consensus`'s portable `curve25519-dalek-ng` that we used before; its AVX-512
//! IFMA backend where the CPU has it (compiled in by `.cargo/config.toml`; on the x86_64 CPUs
//! without IFMA it falls back to AVX2, then to the portable code). The tests
//! check every decision against `ed25519-consensus` (a dev-dependency kept as the reference) on
//! the 196 published ZIP-215 vectors and on adversarial and random inputs.
//!
//! Invariants:
//! - Batch == single. `verify_batch` returns, per item, exactly what `SignedTx::verify` returns.
//!   Each signature is first parsed on its own (`Prepared`: `R` decodes, `s < l`, `k`); a parse
//!   failure is a single-verification rejection. The batch equation is a random linear
//!   combination of the parsed items' cofactored equations, so if every item is valid the batch
//!   is valid whatever the coefficients (deterministic), and if any item is invalid the batch
//!   fails except with probability about 2^-128 over the 128-bit coefficients (its non-torsion
//!   error survives the multiplication by 8). A failed batch is bisected: halves are tested as
//!   smaller batches (the same argument holds for every sub-batch), and ranges of at most
//!   [`LEAF`] items, or any range once the bisection budget is spent, are decided one signature
//!   at a time. So every acceptance is a passing batch equation over valid-or-not items (the
//!   2^-128 argument) or a single check, and every rejection is a single check: decisions equal
//!   single verification's. This is why the rule is ZIP-215 and not `verify_strict`: the strict,
//!   cofactorless check has no batch equation that agrees with it on every input.
//! - Deterministic across machines: no decision depends on the RNG (see above), on the chunk
//!   size, on the bisection (its order and budget only change which equations are computed), on
//!   the IFMA/AVX2/serial backend (the same group arithmetic; the tests compare every decision
//!   with `ed25519-consensus`, whose arithmetic is portable), on thread count or on the key
//!   cache's contents; the cache only saves decompression. Nor on how `R` is decoded: a
//!   chunk's `R`s are decoded eight at a time in IFMA lanes where the CPU has them
//!   ([`batch_decode`], the same points as dalek's `decompress`, tested against it).
//! - Compatible: every signature valid under the old rule (`verify_strict`: cofactorless, no
//!   small-order `A` or `R`, canonical encodings) is valid here (cofactorless implies cofactored),
//!   so chains written under the old rule replay unchanged. The converse does not hold: a
//!   transaction from a small-order key (no honest key is one) can be "signed" by anyone.
//! - Bounded work, whatever an attacker puts in a chunk of n signatures: one parse each, one
//!   batch equation over n, at most `2n` more batch-equation terms spent on bisection
//!   (`BISECT_BUDGET`), and at most one single equation per item (parsing is never repeated).
//!   One bad signature in a chunk costs its neighbours a few sub-batch tests and one leaf of
//!   single checks instead of a single check each; dense failures stop the bisection early.
//!   `make bench-limits` measures both attacks (`attack_256_*`).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::iter::once;
use std::ops::Range;
use std::sync::Mutex;

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use sha2::{Digest, Sha512};

use super::bytes::{Hash, PublicKey, Signature};
use super::tx::{IdentifiedTx, SigDomain, SigMessage, SignedTx, TxError, VerifiedTx};

/// Signatures per batch equation. A failing chunk is bisected, so this bounds the work one bad
/// signature can cause, and a chunk is the unit of progress a follower reports. Measured
/// (`make bench-limits`, bench profile, load average 7, 2026-12-02): per signature 44 us one by
/// one, 27 us in batches of 64, 19 us of 256, 17 us of 1024; 256 takes most of the gain while
/// keeping a chunk to a few milliseconds.
pub const BATCH_CHUNK: usize = 256;

/// Below this many signatures a batch saves nothing worth its setup: verify one by one.
const MIN_BATCH: usize = 4;

/// A failing range of at most this many signatures is decided one by one instead of bisected
/// further: testing a half of a few items costs about as much as checking them.
pub(crate) const LEAF: usize = 16;

/// A public key as the rule uses it: its bytes as given (they are hashed into `k`, and a
/// non-canonical encoding hashes differently from the canonical one) and the point they decode
/// to.
#[derive(Clone, Copy, Debug)]
pub(crate) struct VerifyKey {
    bytes: [u8; 32],
    point: EdwardsPoint,
}

/// The key `pk` as a curve point, or `None` if it does not decompress (ZIP-215 accepts every
/// encoding that does, canonical or not, small order or not).
pub(crate) fn decompress(pk: &PublicKey) -> Option<VerifyKey> {
    let point = CompressedEdwardsY(pk.0).decompress()?;
    Some(VerifyKey { bytes: pk.0, point })
}

/// `s` of `sig`, if canonical (`s < l`); the rule refuses the signature otherwise.
fn canonical_s(sig: &Signature) -> Option<Scalar> {
    let mut s_bytes = [0u8; 32];
    s_bytes.copy_from_slice(&sig.0[32..]);
    Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes))
}

/// The encoding of `R`, the first half of `sig`.
fn r_bytes(sig: &Signature) -> [u8; 32] {
    let mut r = [0u8; 32];
    r.copy_from_slice(&sig.0[..32]);
    r
}

/// One signature parsed for the equation: `R` decoded, `s` canonical, `k` computed. Everything
/// that can make a signature invalid other than the equation itself was checked to build it.
#[derive(Clone, Copy, Debug)]
struct Prepared {
    a: EdwardsPoint,
    a_bytes: [u8; 32],
    r: EdwardsPoint,
    s: Scalar,
    k: Scalar,
}

impl Prepared {
    /// `None`: the signature is invalid under the rule (`R` does not decode, or `s >= l`).
    fn new(key: &VerifyKey, msg: &[u8], sig: &Signature) -> Option<Prepared> {
        let s = canonical_s(sig)?;
        let r = CompressedEdwardsY(r_bytes(sig)).decompress()?;
        Some(Prepared::with(key, msg, sig, s, r))
    }

    /// The parsed signature, from its canonical `s` and its decoded `R` (`new` without the
    /// checks, for callers that decoded many `R` at once).
    fn with(key: &VerifyKey, msg: &[u8], sig: &Signature, s: Scalar, r: EdwardsPoint) -> Prepared {
        let digest: [u8; 64] = Sha512::new()
            .chain_update(&sig.0[..32])
            .chain_update(key.bytes)
            .chain_update(msg)
            .finalize()
            .into();
        Prepared {
            a: key.point,
            a_bytes: key.bytes,
            r,
            s,
            k: Scalar::from_bytes_mod_order_wide(&digest),
        }
    }

    /// The single, cofactored equation `[8](R - ([k](-A) + [s]B)) = 0`. Coefficients reduced
    /// mod l change a point with a torsion part only by a torsion point, which `[8]` removes.
    fn holds(&self) -> bool {
        let r_prime =
            EdwardsPoint::vartime_double_scalar_mul_basepoint(&self.k, &(-self.a), &self.s);
        (self.r - r_prime).mul_by_cofactor().is_identity()
    }
}

/// The batch equation over `items` with fresh 128-bit coefficients `z_i` from `rng`:
/// `[8]([-sum z_i s_i]B + sum [z_i]R_i + sum [z_i k_i]A_i) = 0`, the `A` terms summed per key
/// encoding (senders repeat; the grouping changes only the cost, never the point computed).
fn batch_holds(items: &[Prepared], rng: &mut BatchRng) -> bool {
    let mut b_coeff = Scalar::ZERO;
    let mut r_coeffs = Vec::with_capacity(items.len());
    let mut a_points: Vec<EdwardsPoint> = Vec::with_capacity(items.len());
    let mut a_coeffs: Vec<Scalar> = Vec::with_capacity(items.len());
    let mut a_slot: HashMap<[u8; 32], usize> = HashMap::with_capacity(items.len());
    for p in items {
        let z = Scalar::from(rng.next_u128());
        b_coeff -= z * p.s;
        r_coeffs.push(z);
        let zk = z * p.k;
        match a_slot.entry(p.a_bytes) {
            Entry::Occupied(slot) => a_coeffs[*slot.get()] += zk,
            Entry::Vacant(slot) => {
                slot.insert(a_points.len());
                a_points.push(p.a);
                a_coeffs.push(zk);
            }
        }
    }
    let check = EdwardsPoint::vartime_multiscalar_mul(
        once(&b_coeff).chain(&a_coeffs).chain(&r_coeffs),
        once(&ED25519_BASEPOINT_POINT)
            .chain(&a_points)
            .chain(items.iter().map(|p| &p.r)),
    );
    check.mul_by_cofactor().is_identity()
}

/// What deciding a chunk computed: batch-equation terms (one per signature in each batch
/// equation) and single equations. The module's work bound is stated in these units.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Work {
    batch_terms: usize,
    singles: usize,
}

/// Decides every parsed item: `out[i]` is whether item `i`'s single equation holds.
///
/// One batch equation over all; if it fails, [`Bisection`]. Without randomness, or for fewer
/// than [`MIN_BATCH`] items, every item is checked on its own (always correct, only slower).
fn decide(items: &[Prepared], rng: Option<&mut BatchRng>, work: &mut Work) -> Vec<bool> {
    let mut out = vec![false; items.len()];
    let Some(rng) = rng.filter(|_| items.len() >= MIN_BATCH) else {
        singles(items, 0..items.len(), work, &mut out);
        return out;
    };
    work.batch_terms += items.len();
    if batch_holds(items, rng) {
        out.fill(true);
    } else {
        Bisection {
            items,
            budget: BISECT_BUDGET * items.len(),
            failing_leaves: 0,
            bad: 0,
            rng,
            work,
            out: &mut out,
        }
        .run(0..items.len(), true);
    }
    out
}

/// Batch-equation terms a failed batch of n may spend on bisection: `BISECT_BUDGET * n`. Two
/// passes' worth: one bad item, wherever it is, is found with at most `n/2 + n/4 + ...` terms
/// of failing left halves plus as many for their right siblings (about `2n` at worst, when it
/// is the first item), and one single check per item of its leaf.
const BISECT_BUDGET: usize = 2;

/// The bisection of a failed batch. Invariant: every item of a range it was asked to decide
/// gets `out[i]` = its single equation's answer, by a passing sub-batch or a single check.
///
/// Bounded: at most `budget` more batch terms, then one single check per undecided item. It
/// stops bisecting (single checks for everything left) as soon as the failures look dense: two
/// leaves with a bad item, or a leaf more than half bad. Bisection pays off for a few bad items
/// among many good ones; for many bad items its sub-batch tests would mostly fail and only add
/// to the single checks they need anyway.
struct Bisection<'a> {
    items: &'a [Prepared],
    budget: usize,
    failing_leaves: usize,
    bad: usize,
    rng: &'a mut BatchRng,
    work: &'a mut Work,
    out: &'a mut [bool],
}

impl Bisection<'_> {
    fn dense(&self) -> bool {
        self.failing_leaves >= 2 || 2 * self.bad > LEAF
    }

    /// Decides `items[range]`, known to contain an invalid item when `known_failing` (its
    /// parent failed and its left sibling was all valid), and says whether all of it is valid.
    ///
    /// A range of at most [`LEAF`] items, one whose batch test would overdraw the budget, or
    /// any range once failures look dense, is decided one by one; otherwise it is tested as a
    /// batch (unless known to fail) and its halves bisected on failure. The left half is
    /// decided first: if it is all valid, the right half must hold the invalid item and is
    /// split without being tested whole. "Known" only ever skips a test: a wrong guess (a left
    /// half passing although invalid, probability 2^-128) costs work, never a decision.
    fn run(&mut self, range: Range<usize>, known_failing: bool) -> bool {
        let len = range.len();
        if len <= LEAF {
            // A leaf not known to fail is worth one test while the failures are sparse: it
            // usually passes (the bad item was in its sibling), for fewer terms than checks.
            if !known_failing && !self.dense() && len <= self.budget {
                self.budget -= len;
                self.work.batch_terms += len;
                if batch_holds(&self.items[range.clone()], self.rng) {
                    self.out[range].fill(true);
                    return true;
                }
            }
            let all = singles(self.items, range.clone(), self.work, self.out);
            if !all {
                self.failing_leaves += 1;
                self.bad += self.out[range].iter().filter(|ok| !**ok).count();
            }
            return all;
        }
        if self.dense() || (!known_failing && len > self.budget) {
            return singles(self.items, range, self.work, self.out);
        }
        if !known_failing {
            self.budget -= len;
            self.work.batch_terms += len;
            if batch_holds(&self.items[range.clone()], self.rng) {
                self.out[range].fill(true);
                return true;
            }
        }
        let mid = range.start + len / 2;
        let left = self.run(range.start..mid, false);
        let right = self.run(mid..range.end, left);
        left && right
    }
}

/// Decides `items[range]` one by one; whether all of them hold.
fn singles(items: &[Prepared], range: Range<usize>, work: &mut Work, out: &mut [bool]) -> bool {
    work.singles += range.len();
    let mut all = true;
    for i in range {
        out[i] = items[i].holds();
        all &= out[i];
    }
    all
}

/// Single verification under the chain's rule: `sig` by `key` over `domain`'s message for
/// `hash`.
pub(crate) fn verify_with(
    key: &VerifyKey,
    domain: SigDomain,
    hash: &Hash,
    sig: &Signature,
) -> bool {
    Prepared::new(key, domain.message(hash).as_ref(), sig).is_some_and(|p| p.holds())
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
    keys: Mutex<HashMap<PublicKey, VerifyKey>>,
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

    pub(crate) fn key(&self, pk: &PublicKey) -> Result<VerifyKey, TxError> {
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
    key: VerifyKey,
    id: Hash,
    tx: SignedTx,
}

impl Pending {
    /// Its tx-domain message.
    fn message(&self) -> SigMessage {
        SigDomain::Tx.message(&self.id)
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

/// `verify_batch` on transactions whose ids are known already (`SignedTx::decode_identified`
/// takes them from the bytes received): the same answers, without hashing each body again.
pub fn verify_identified(
    txs: Vec<IdentifiedTx>,
    cache: &KeyCache,
) -> Vec<Result<VerifiedTx, TxError>> {
    verify_identified_chunked(txs, cache, BATCH_CHUNK)
}

/// `verify_batch` with `chunk` signatures per batch equation (at least 1). The chunk size
/// changes only the speed, never an answer; the benchmarks use it to choose [`BATCH_CHUNK`].
pub fn verify_batch_chunked(
    txs: Vec<SignedTx>,
    cache: &KeyCache,
    chunk: usize,
) -> Vec<Result<VerifiedTx, TxError>> {
    let txs = txs.into_iter().map(IdentifiedTx::new).collect();
    verify_identified_chunked(txs, cache, chunk)
}

/// `verify_batch_chunked` on transactions with their ids.
pub fn verify_identified_chunked(
    txs: Vec<IdentifiedTx>,
    cache: &KeyCache,
    chunk: usize,
) -> Vec<Result<VerifiedTx, TxError>> {
    let chunk = chunk.max(1);
    let mut out: Vec<Option<Result<VerifiedTx, TxError>>> = Vec::with_capacity(txs.len());
    let mut pending = Vec::with_capacity(txs.len());
    for (index, tx) in txs.into_iter().enumerate() {
        let (id, tx) = tx.into_parts();
        let checked = cache
            .key(&tx.tx.sender)
            .and_then(|key| tx.tx.check_shape().map(|()| key));
        match checked {
            Ok(key) => {
                out.push(None);
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

/// Decides one chunk: each signature is parsed on its own (a parse failure is its rejection),
/// and the parsed ones are decided together by [`decide`].
fn verify_chunk(
    chunk: Vec<Pending>,
    rng: Option<&mut BatchRng>,
) -> Vec<(usize, Result<VerifiedTx, TxError>)> {
    // Parsed as `Prepared::new` parses one, with every `R` of the chunk decoded at once (the
    // same points, `batch_decode`'s invariant); only those whose `s` passed, as `new` does.
    let s: Vec<Option<Scalar>> = chunk.iter().map(|p| canonical_s(&p.tx.signature)).collect();
    let encodings: Vec<[u8; 32]> = chunk
        .iter()
        .zip(&s)
        .filter(|(_, s)| s.is_some())
        .map(|(p, _)| r_bytes(&p.tx.signature))
        .collect();
    let mut rs = batch_decode::decompress_all(&encodings).into_iter();
    let parsed: Vec<Option<Prepared>> = chunk
        .iter()
        .zip(s)
        .map(|(p, s)| {
            let s = s?;
            // One decoded `R` per canonical `s`, in order.
            let r = rs.next().flatten()?;
            Some(Prepared::with(
                &p.key,
                p.message().as_ref(),
                &p.tx.signature,
                s,
                r,
            ))
        })
        .collect();
    let items: Vec<Prepared> = parsed.iter().flatten().copied().collect();
    let mut valid = decide(&items, rng, &mut Work::default()).into_iter();
    chunk
        .into_iter()
        .zip(parsed)
        .map(|(p, parsed)| {
            // `valid` has one answer per parsed item, in order.
            let ok = parsed.is_some() && valid.next().unwrap_or(false);
            let result = if ok {
                Ok(VerifiedTx::new(p.id, p.tx))
            } else {
                Err(TxError::BadSignature)
            };
            (p.index, result)
        })
        .collect()
}

/// The batch equation's coefficients: a BLAKE3 output stream keyed with 32 bytes from the
/// operating system, fresh for every `verify_batch` call, so no client can predict them when it
/// builds its signatures. Its output never changes a decision (module invariants), only the
/// negligible chance that a batch with an invalid item passes, which needs unpredictability.
/// (A keyed BLAKE3 stream is a PRF output: computationally indistinguishable from random.)
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

    /// The next 128-bit coefficient.
    fn next_u128(&mut self) -> u128 {
        let mut b = [0u8; 16];
        self.xof.fill(&mut b);
        u128::from_le_bytes(b)
    }
}

mod batch_decode;

#[cfg(test)]
mod tests;
