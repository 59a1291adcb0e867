//! The signature rule's tests: the published ZIP-215 vectors, and batch == single on
//! adversarial inputs (small-order keys and R, non-canonical encodings, non-canonical s, one bad
//! item at each position of a batch).

use super::*;
use crate::testkit::{CHAIN, body, call};
use crate::types::{Address, Keypair, Tx};
use ed25519_consensus::VerificationKey;

/// The published ZIP-215 cases (see the fixture's header).
const ZIP215: &str = include_str!("zip215.txt");

/// The group order l, little-endian.
const L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

pub(super) fn zip215_cases() -> Vec<([u8; 32], [u8; 64])> {
    ZIP215
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (vk, sig) = l.split_once(' ').unwrap();
            (
                hex::decode(vk).unwrap().try_into().unwrap(),
                hex::decode(sig.trim()).unwrap().try_into().unwrap(),
            )
        })
        .collect()
}

/// The 14 small-order encodings the vectors use (8 canonical, then 6 non-canonical).
pub(super) fn small_order_encodings() -> Vec<[u8; 32]> {
    let mut seen = Vec::new();
    for (vk, _) in zip215_cases() {
        if !seen.contains(&vk) {
            seen.push(vk);
        }
    }
    seen
}

fn zip215_verify(vk: &[u8; 32], sig: &[u8; 64], msg: &[u8]) -> bool {
    VerificationKey::try_from(*vk)
        .and_then(|k| k.verify(&ed25519_consensus::Signature::from(*sig), msg))
        .is_ok()
}

/// The chain's previous rule.
fn strict_verify(vk: &[u8; 32], sig: &[u8; 64], msg: &[u8]) -> bool {
    ed25519_dalek::VerifyingKey::from_bytes(vk).is_ok_and(|k| {
        k.verify_strict(msg, &ed25519_dalek::Signature::from_bytes(sig))
            .is_ok()
    })
}

fn add_le(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let v = u16::from(a[i]) + u16::from(b[i]) + carry;
        out[i] = v as u8;
        carry = v >> 8;
    }
    assert_eq!(carry, 0, "sum overflows 256 bits");
    out
}

fn tx_body(sender: PublicKey, nonce: u64) -> Tx {
    body(
        CHAIN,
        sender,
        nonce,
        call(Address([9; 32]), "increment", &[]),
        1_000_000,
    )
}

fn honest(seed: u8, nonce: u64) -> SignedTx {
    let kp = Keypair::from_seed([seed; 32]);
    kp.sign(tx_body(kp.public(), nonce))
}

/// A transaction "signed" by a small-order key: R small order, s = 0. Valid under ZIP-215 for
/// any body (the cofactored equation is 0 = 0), invalid under the old strict rule.
fn small_order_tx(vk: [u8; 32], r: [u8; 32], nonce: u64) -> SignedTx {
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(&r);
    SignedTx {
        tx: tx_body(PublicKey(vk), nonce),
        signature: Signature(sig),
    }
}

/// A key encoding that does not decompress (found, not assumed: about half of all y do not).
fn undecompressible_key() -> [u8; 32] {
    (2u8..=255)
        .map(|y| {
            let mut k = [0u8; 32];
            k[0] = y;
            k
        })
        .find(|k| VerificationKey::try_from(*k).is_err())
        .unwrap()
}

/// Non-canonical encodings (y + p, either sign) of points that are not of small order.
pub(super) fn non_canonical_large_order_keys() -> Vec<[u8; 32]> {
    let small = small_order_encodings();
    let mut out = Vec::new();
    for i in 0..19u8 {
        let mut y = [0xff; 32];
        y[0] = 0xed + i;
        y[31] = 0x7f;
        for sign in [0u8, 0x80] {
            let mut k = y;
            k[31] |= sign;
            if VerificationKey::try_from(k).is_ok() && !small.contains(&k) {
                out.push(k);
            }
        }
    }
    out
}

/// Every kind of input the tests throw at both paths.
fn adversarial_txs() -> Vec<SignedTx> {
    let small = small_order_encodings();
    let mut v = Vec::new();
    // Honest transactions, some senders repeating (the batch groups by key).
    for n in 0..6 {
        v.push(honest(1 + (n % 3) as u8, n));
    }
    // ZIP-215-only: small-order A and R (canonical and non-canonical), s = 0.
    for (i, a) in small.iter().enumerate() {
        v.push(small_order_tx(*a, small[(i * 5) % small.len()], i as u64));
    }
    // Small-order A with s != 0: invalid ([8][s]B is not 0).
    let mut t = small_order_tx(small[0], small[1], 0);
    t.signature.0[32] = 1;
    v.push(t);
    // Honest key, R replaced by a small-order point: invalid.
    let mut t = honest(4, 0);
    t.signature.0[..32].copy_from_slice(&small[3]);
    v.push(t);
    // Non-canonical s: s + l satisfies the equation ([l]B = 0) but must be refused.
    let mut t = honest(5, 0);
    let s: [u8; 32] = t.signature.0[32..].try_into().unwrap();
    t.signature.0[32..].copy_from_slice(&add_le(&s, &L));
    v.push(t);
    // s = l exactly, and s = 2^256 - 1.
    let mut t = honest(5, 1);
    t.signature.0[32..].copy_from_slice(&L);
    v.push(t);
    let mut t = honest(5, 2);
    t.signature.0[32..].copy_from_slice(&[0xff; 32]);
    v.push(t);
    // Small-order A, small-order R, s = l (non-canonical zero): refused although 0 = 0.
    let mut t = small_order_tx(small[2], small[4], 0);
    t.signature.0[32..].copy_from_slice(&L);
    v.push(t);
    // R that does not decompress.
    let mut t = honest(6, 0);
    t.signature.0[..32].copy_from_slice(&undecompressible_key());
    v.push(t);
    // A that does not decompress: BadSender, whatever else is wrong.
    v.push(small_order_tx(undecompressible_key(), small[0], 0));
    let mut t = small_order_tx(undecompressible_key(), small[0], 0);
    t.tx.gas_limit = 0;
    v.push(t);
    // Non-canonical encodings of large-order keys: the key is accepted, garbage signatures not.
    for (i, k) in non_canonical_large_order_keys().into_iter().enumerate() {
        let mut t = small_order_tx(k, small[i % small.len()], 0);
        t.signature.0[40] = i as u8 + 1;
        v.push(t);
    }
    // Tampered honest signatures (R and s), a wrong sender, a bad shape with a good signature.
    let mut t = honest(7, 0);
    t.signature.0[0] ^= 1;
    v.push(t);
    let mut t = honest(7, 1);
    t.signature.0[63] ^= 0x01;
    v.push(t);
    let mut t = honest(8, 0);
    t.tx.sender = Keypair::from_seed([9; 32]).public();
    v.push(t);
    let kp = Keypair::from_seed([10; 32]);
    let mut b = tx_body(kp.public(), 0);
    b.gas_limit = 0;
    v.push(kp.sign(b));
    v
}

fn singles(txs: &[SignedTx]) -> Vec<Result<VerifiedTx, TxError>> {
    txs.iter().map(|t| t.clone().verify()).collect()
}

/// A reproducible shuffle (no RNG dependency in tests).
fn shuffled<T: Clone>(v: &[T], seed: u64) -> Vec<T> {
    let mut out = v.to_vec();
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for i in (1..out.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.swap(i, (x % (i as u64 + 1)) as usize);
    }
    out
}

#[test]
fn zip215_vectors_all_valid_and_all_invalid_under_the_old_rule() {
    let cases = zip215_cases();
    assert_eq!(cases.len(), 196);
    assert_eq!(small_order_encodings().len(), 14);
    for (i, (vk, sig)) in cases.iter().enumerate() {
        assert!(
            zip215_verify(vk, sig, b"Zcash"),
            "case {i} must be ZIP-215 valid"
        );
        assert!(
            !strict_verify(vk, sig, b"Zcash"),
            "case {i} was strict-valid"
        );
    }
    // The same pairs as chain signatures: valid for any transaction body and block hash, one
    // by one, cached, and in a batch.
    let txs: Vec<SignedTx> = cases
        .iter()
        .enumerate()
        .map(|(i, (vk, sig))| SignedTx {
            tx: tx_body(PublicKey(*vk), i as u64),
            signature: Signature(*sig),
        })
        .collect();
    let cache = KeyCache::new(64);
    for t in &txs {
        assert!(t.clone().verify().is_ok());
        assert!(t.clone().verify_cached(&cache).is_ok());
        assert!(verify_hash(
            SigDomain::Block,
            &t.tx.sender,
            &Hash([7; 32]),
            &t.signature
        ));
    }
    let batch = verify_batch(txs.clone(), &cache);
    assert_eq!(batch, singles(&txs));
    assert!(batch.iter().all(Result::is_ok));
}

#[test]
fn old_rule_valid_signatures_stay_valid() {
    // Cofactorless (strict) validity implies cofactored: existing chains replay.
    for seed in 0..40u8 {
        let kp = Keypair::from_seed([seed; 32]);
        let h = Hash([seed.wrapping_mul(3); 32]);
        for domain in [SigDomain::Tx, SigDomain::Block] {
            let sig = kp.sign_hash(domain, &h);
            assert!(strict_verify(
                &kp.public().0,
                &sig.0,
                domain.message(&h).as_ref()
            ));
            assert!(verify_hash(domain, &kp.public(), &h, &sig));
        }
    }
}

#[test]
fn batch_equals_single_on_adversarial_inputs() {
    let txs = adversarial_txs();
    let expected = singles(&txs);
    // The inputs really cover accepted and every refused kind.
    assert!(expected.iter().any(Result::is_ok));
    for kind in [
        TxError::BadSender,
        TxError::BadSignature,
        TxError::ZeroGasLimit,
    ] {
        assert!(expected.contains(&Err(kind.clone())), "no {kind:?} case");
    }
    // Non-canonical s and small-order keys are decided as the rule says.
    let small = small_order_encodings();
    assert!(small_order_tx(small[5], small[9], 3).verify().is_ok());
    let cache = KeyCache::new(1024);
    assert_eq!(verify_batch(txs.clone(), &cache), expected);
    // Any order, any position relative to chunk boundaries, repeated past one chunk.
    let mut big = Vec::new();
    while big.len() < 3 * BATCH_CHUNK {
        big.extend(txs.iter().cloned());
    }
    for seed in 0..4 {
        let order = shuffled(&big, seed);
        assert_eq!(
            verify_batch(order.clone(), &KeyCache::new(8)),
            singles(&order),
            "seed {seed}"
        );
    }
}

#[test]
fn one_bad_item_at_each_position() {
    let small = small_order_encodings();
    let bad_kinds = |n: u64| -> SignedTx {
        match n % 4 {
            0 => {
                let mut t = honest(40, n);
                t.signature.0[10] ^= 0x40;
                t
            }
            1 => {
                let mut t = honest(41, n);
                let s: [u8; 32] = t.signature.0[32..].try_into().unwrap();
                t.signature.0[32..].copy_from_slice(&add_le(&s, &L));
                t
            }
            2 => {
                let mut t = small_order_tx(small[1], small[2], n);
                t.signature.0[33] = 7;
                t
            }
            _ => small_order_tx(undecompressible_key(), small[0], n),
        }
    };
    // Sizes below the batch minimum, one chunk, and across chunk boundaries (small chunks keep
    // the n * n single checks cheap; the chunk size never changes an answer).
    for (n, chunk) in [(1usize, 8usize), (MIN_BATCH, 8), (9, 8), (21, 8), (70, 64)] {
        let good: Vec<SignedTx> = (0..n as u64)
            .map(|i| {
                if i % 5 == 4 {
                    // ZIP-215-only items are part of "good" too.
                    small_order_tx(small[(i as usize) % 14], small[7], i)
                } else {
                    honest(20 + (i % 7) as u8, i)
                }
            })
            .collect();
        let cache = KeyCache::new(64);
        assert!(verify_batch(good.clone(), &cache).iter().all(Result::is_ok));
        assert!(
            verify_batch_chunked(good.clone(), &cache, chunk)
                .iter()
                .all(Result::is_ok)
        );
        for pos in 0..n {
            let mut txs = good.clone();
            txs[pos] = bad_kinds(pos as u64);
            let got = verify_batch_chunked(txs.clone(), &cache, chunk);
            assert_eq!(got, singles(&txs), "n {n} pos {pos}");
            assert_eq!(
                got.iter().filter(|r| r.is_err()).count(),
                1,
                "n {n} pos {pos}"
            );
            assert!(got[pos].is_err());
            if pos % 16 == 0 {
                assert_eq!(verify_batch(txs, &cache), got, "n {n} pos {pos}");
            }
        }
    }
}

#[test]
fn decisions_do_not_depend_on_randomness_cache_or_chunking() {
    let txs = adversarial_txs();
    let expected = singles(&txs);
    // Without randomness every item is verified on its own: the same answers.
    let pending = |txs: &[SignedTx]| -> Vec<Pending> {
        txs.iter()
            .enumerate()
            .filter_map(|(index, t)| {
                let key = decompress(&t.tx.sender)?;
                t.tx.check_shape().ok()?;
                Some(Pending {
                    index,
                    key,
                    id: t.tx.id(),
                    tx: t.clone(),
                })
            })
            .collect()
    };
    let mut with_rng = verify_chunk(pending(&txs), BatchRng::from_os().as_mut());
    let mut without = verify_chunk(pending(&txs), None);
    with_rng.sort_by_key(|(i, _)| *i);
    without.sort_by_key(|(i, _)| *i);
    assert_eq!(with_rng, without);
    for (i, r) in &with_rng {
        assert_eq!(r, &expected[*i]);
    }
    // A cache of one key (constantly emptied) and a large one decide the same.
    assert_eq!(verify_batch(txs.clone(), &KeyCache::new(1)), expected);
    assert_eq!(verify_batch(txs.clone(), &KeyCache::new(10_000)), expected);
    assert!(verify_batch(Vec::new(), &KeyCache::new(1)).is_empty());
    // The ids taken from the received bytes (the API's path) decide the same, for every item.
    let identified: Vec<IdentifiedTx> = txs
        .iter()
        .map(|t| SignedTx::decode_identified(&t.encode()).unwrap())
        .collect();
    assert_eq!(verify_identified(identified, &KeyCache::new(16)), expected);
    for chunk in [1, 3, BATCH_CHUNK] {
        let identified = txs.iter().cloned().map(IdentifiedTx::new).collect();
        assert_eq!(
            verify_identified_chunked(identified, &KeyCache::new(16), chunk),
            expected
        );
    }
}

#[test]
fn all_valid_batches_pass_whole() {
    // The deterministic half of batch == single: a batch of valid items passes whatever the
    // coefficients, so an honest chunk never falls back to single checks.
    let small = small_order_encodings();
    let chunk: Vec<Pending> = (0..BATCH_CHUNK as u64)
        .map(|i| {
            let t = if i % 3 == 0 {
                small_order_tx(small[(i as usize) % 14], small[(i as usize * 3) % 14], i)
            } else {
                honest(50 + (i % 5) as u8, i)
            };
            Pending {
                index: i as usize,
                key: decompress(&t.tx.sender).unwrap(),
                id: t.tx.id(),
                tx: t,
            }
        })
        .collect();
    let items: Vec<Prepared> = chunk
        .iter()
        .map(|p| Prepared::new(&p.key, p.message().as_ref(), &p.tx.signature).unwrap())
        .collect();
    for _ in 0..5 {
        assert!(batch_holds(&items, &mut BatchRng::from_os().unwrap()));
    }
}

// ---- Bisection of failed batches: exactly the single answers, within the work bound. ----

/// A deterministic xorshift stream (tests take no RNG dependency).
struct Xs(u64);

impl Xs {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes32(&mut self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for c in out.chunks_mut(8) {
            c.copy_from_slice(&self.next().to_le_bytes());
        }
        out
    }
}

/// `n` parsed signatures (all parse: R decodes, s < l), valid unless `bad(i)`: honest ones,
/// ZIP-215-only small-order ones, and, when bad, an honest signature with another canonical s,
/// a small-order key with s != 0, or an honest key whose R was replaced by a small-order point.
fn prepared(n: usize, bad: impl Fn(usize) -> bool) -> Vec<Prepared> {
    let small = small_order_encodings();
    (0..n)
        .map(|i| {
            let mut t = if i % 7 == 3 {
                small_order_tx(small[i % 14], small[(i * 3) % 14], i as u64)
            } else {
                honest(60 + (i % 9) as u8, i as u64)
            };
            if bad(i) {
                match i % 3 {
                    0 if i % 7 != 3 => t.signature.0[32] ^= 0x01, // still < l
                    0 | 1 => {
                        t = small_order_tx(small[i % 14], small[(i + 1) % 14], i as u64);
                        t.signature.0[32] = 5;
                    }
                    _ => {
                        t = honest(60 + (i % 9) as u8, i as u64);
                        t.signature.0[..32].copy_from_slice(&small[i % 14]);
                    }
                }
            }
            let p = Pending {
                index: i,
                key: decompress(&t.tx.sender).unwrap(),
                id: t.tx.id(),
                tx: t.clone(),
            };
            let prepared = Prepared::new(&p.key, p.message().as_ref(), &p.tx.signature)
                .expect("test items parse");
            // The reference implementation agrees with the intended validity.
            let msg = SigDomain::Tx.message(&t.tx.id());
            assert_eq!(
                zip215_verify(&t.tx.sender.0, &t.signature.0, msg.as_ref()),
                !bad(i),
                "item {i}"
            );
            prepared
        })
        .collect()
}

/// Decides `items` with the batch path and checks it against one single equation per item
/// and against the work bound; returns the work.
fn decide_and_check(items: &[Prepared], what: &str) -> Work {
    let expected: Vec<bool> = items.iter().map(Prepared::holds).collect();
    let mut work = Work::default();
    let got = decide(items, BatchRng::from_os().as_mut(), &mut work);
    assert_eq!(got, expected, "{what}");
    let n = items.len();
    // Bound: one batch over all, at most 2n more terms of bisection, at most one single each.
    assert!(
        work.batch_terms <= (1 + BISECT_BUDGET) * n,
        "{what}: {work:?}"
    );
    assert!(work.singles <= n, "{what}: {work:?}");
    work
}

#[test]
fn bisection_none_bad_one_batch_and_no_singles() {
    for n in [MIN_BATCH, 9, 64, BATCH_CHUNK] {
        let items = prepared(n, |_| false);
        let work = decide_and_check(&items, &format!("n {n}"));
        assert_eq!(
            work,
            Work {
                batch_terms: n,
                singles: 0
            },
            "n {n}"
        );
    }
}

#[test]
fn bisection_one_bad_at_every_position() {
    let good = prepared(BATCH_CHUNK, |_| false);
    let bads = prepared(BATCH_CHUNK, |_| true);
    for pos in 0..BATCH_CHUNK {
        let mut items = good.clone();
        items[pos] = bads[pos];
        let work = decide_and_check(&items, &format!("pos {pos}"));
        // The bad item is found by bisection: one leaf of single checks, not the whole chunk.
        assert!(work.singles <= LEAF, "pos {pos}: {work:?}");
    }
    // Small chunks (leaf-sized halves, odd sizes) too.
    for n in [MIN_BATCH, 5, LEAF + 1, 2 * LEAF + 3, 37] {
        let good = prepared(n, |_| false);
        let bads = prepared(n, |_| true);
        for pos in 0..n {
            let mut items = good.clone();
            items[pos] = bads[pos];
            decide_and_check(&items, &format!("n {n} pos {pos}"));
        }
    }
}

/// A named set of bad positions.
type Pattern = (&'static str, fn(usize) -> bool);

#[test]
fn bisection_all_bad_and_dense_patterns() {
    let n = BATCH_CHUNK;
    let patterns: [Pattern; 8] = [
        ("all bad", |_| true),
        ("every other", |i| i % 2 == 1),
        ("first half", |i| i < BATCH_CHUNK / 2),
        ("last item", |i| i == BATCH_CHUNK - 1),
        ("first and last", |i| i == 0 || i == BATCH_CHUNK - 1),
        ("one per leaf", |i| i % LEAF == 0),
        ("one per 32", |i| i % 32 == 17),
        ("a run of 12", |i| (100..112).contains(&i)),
    ];
    for (what, bad) in patterns {
        let items = prepared(n, bad);
        decide_and_check(&items, what);
    }
    // Random subsets of random density.
    let good = prepared(n, |_| false);
    let bads = prepared(n, |_| true);
    let mut xs = Xs(0x5eed);
    for round in 0..24 {
        let density = 1 + xs.next() % 64;
        let items: Vec<Prepared> = (0..n)
            .map(|i| {
                if xs.next() % 256 < density {
                    bads[i]
                } else {
                    good[i]
                }
            })
            .collect();
        decide_and_check(&items, &format!("random round {round}"));
    }
}

#[test]
fn batches_with_unparsable_items_equal_singles() {
    // Items that do not parse (R off the curve, s >= l) never enter an equation; the parsed
    // ones around them are still decided by batch and bisection.
    let mut txs: Vec<SignedTx> = (0..BATCH_CHUNK as u64)
        .map(|i| honest(3 + (i % 4) as u8, i))
        .collect();
    txs[5].signature.0[..32].copy_from_slice(&undecompressible_key());
    txs[77].signature.0[32..].copy_from_slice(&L);
    txs[200].signature.0[40] ^= 0x10;
    let got = verify_batch(txs.clone(), &KeyCache::new(16));
    assert_eq!(got, singles(&txs));
    let bad: Vec<usize> = (0..got.len()).filter(|i| got[*i].is_err()).collect();
    assert_eq!(bad, vec![5, 77, 200]);
}

#[test]
fn single_verification_matches_the_reference_on_random_inputs() {
    // Our ZIP-215 against ed25519-consensus, one signature at a time, on keys and R drawn from
    // honest, small-order, non-canonical, and random encodings, and s from honest, zero,
    // s + l, and random values, in both domains.
    let small = small_order_encodings();
    let noncanon = non_canonical_large_order_keys();
    assert!(!noncanon.is_empty());
    let mut xs = Xs(0xdead_beef);
    let (mut valid, mut invalid) = (0, 0);
    for round in 0..3000u64 {
        let kp = Keypair::from_seed([(round % 11) as u8; 32]);
        let hash = Hash(xs.bytes32());
        let domain = if round % 2 == 0 {
            SigDomain::Tx
        } else {
            SigDomain::Block
        };
        let honest_sig = kp.sign_hash(domain, &hash).0;
        let pick = xs.next();
        let a: [u8; 32] = match pick % 5 {
            0 | 1 => kp.public().0,
            2 => small[(pick >> 8) as usize % 14],
            3 => noncanon[(pick >> 8) as usize % noncanon.len()],
            _ => xs.bytes32(),
        };
        let mut sig = honest_sig;
        match (pick >> 16) % 6 {
            0 | 1 => {}
            2 => sig[..32].copy_from_slice(&small[(pick >> 24) as usize % 14]),
            3 => sig[..32].copy_from_slice(&xs.bytes32()),
            4 => sig[32..].copy_from_slice(&[0; 32]),
            _ => {}
        }
        match (pick >> 32) % 5 {
            0 => {
                let s: [u8; 32] = sig[32..].try_into().unwrap();
                if s[31] < 0x10 - 0x01 {
                    sig[32..].copy_from_slice(&add_le(&s, &L));
                }
            }
            1 => {
                let mut s = xs.bytes32();
                s[31] &= 0x0f;
                sig[32..].copy_from_slice(&s);
            }
            _ => {}
        }
        let msg = domain.message(&hash);
        let expected = zip215_verify(&a, &sig, msg.as_ref());
        assert_eq!(
            verify_hash(domain, &PublicKey(a), &hash, &Signature(sig)),
            expected,
            "round {round}"
        );
        if expected {
            valid += 1;
        } else {
            invalid += 1;
        }
    }
    // Both answers are well represented.
    assert!(
        valid > 200 && invalid > 500,
        "{valid} valid, {invalid} invalid"
    );
}
