//! Many point encodings decoded at once: `CompressedEdwardsY::decompress` (ZIP-215's decoding,
//! see the parent module) computed for eight encodings together in AVX-512 IFMA lanes.
//!
//! Why: a batch of signatures verifies in about 12 us a signature, and decoding each
//! signature's `R` took about a fifth of it: curve25519-dalek decodes with its portable
//! 64-bit field code (a 250-squaring exponentiation per point) whatever its vector backend, and
//! has no batch decoding. Eight lanes of 52-bit multiply-adds run the same exponentiation for
//! eight points in little more than the time of one.
//!
//! Invariants:
//! - Same answer as `CompressedEdwardsY::decompress` for every 32-byte input: `None` for the same
//!   inputs, otherwise the same point. The steps are dalek's, in the same order (`y` read as 255
//!   bits, `u = y^2 - 1`, `v = d y^2 + 1`, `sqrt_ratio_i`, the nonnegative root, the sign bit
//!   applied even to `x = 0`, `T = X Y`); every comparison is made on canonical encodings, as
//!   dalek's `ct_eq` does. The tests compare the two on random, non-canonical, small-order and
//!   non-square inputs and on the ZIP-215 vectors. So no decision of the chain depends on
//!   which path ran (consensus).
//! - The fast path runs only where the CPU has AVX-512F and IFMA (checked at run time) and
//!   where a self-check at first use found it agreeing with dalek on fixed inputs. The
//!   self-check also proves the one layout assumption below. Anywhere else every encoding goes
//!   through dalek's `decompress`: slower, same answers.
//! - The points handed back are built from coordinates (`X`, `Y`, `Z = 1`, `T = XY`, each
//!   fully reduced mod p, so within dalek's limb bounds). curve25519-dalek has no public
//!   constructor for that, so they are written into an `EdwardsPoint` through its memory
//!   layout: four radix-2^51 field elements of five `u64` limbs, in field order. Any bit
//!   pattern of those `u64`s is a value of the type (no undefined behaviour whatever the
//!   layout); a different layout would give wrong points, and that is what the self-check
//!   catches before the fast path is ever used.
//!
//! The lane arithmetic (`mul`, `square`, `reduce`) is curve25519-dalek's AVX-512 IFMA field
//! code (`backend/vector/ifma/field.rs`, four lanes of 256 bits) widened to eight lanes of 512
//! bits. curve25519-dalek: Copyright (c) 2016-2021 isis agora lovecruft, Copyright (c) 2016-2021
//! Henry de Valence; BSD-3-Clause: redistributions must retain this notice, and neither name may
//! be used to endorse this software.

use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};

/// Each encoding in `encodings` decoded, in order; exactly
/// `CompressedEdwardsY(e).decompress()` for each `e`.
pub(crate) fn decompress_all(encodings: &[[u8; 32]]) -> Vec<Option<EdwardsPoint>> {
    #[cfg(target_arch = "x86_64")]
    if lanes::available() {
        let mut out = Vec::with_capacity(encodings.len());
        for group in encodings.chunks(lanes::LANES) {
            out.extend(lanes::decompress(group));
        }
        return out;
    }
    one_by_one(encodings)
}

/// dalek's `decompress` of each encoding: the path wherever the lanes are not used.
fn one_by_one(encodings: &[[u8; 32]]) -> Vec<Option<EdwardsPoint>> {
    encodings
        .iter()
        .map(|e| CompressedEdwardsY(*e).decompress())
        .collect()
}

/// Whether `decompress_all` takes the eight-lane path on this machine (the tests assert it on
/// machines with IFMA, so that the path they compare with dalek is the one the node runs).
#[cfg(test)]
pub(crate) fn fast_path_active() -> bool {
    #[cfg(target_arch = "x86_64")]
    return lanes::available();
    #[cfg(not(target_arch = "x86_64"))]
    return false;
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod lanes {
    //! The eight-lane path. `unsafe` appears where the Rust rules require it, each with its
    //! reason: calling the `avx512ifma` functions (sound once the CPU is known to have the
    //! features), moving lanes in and out of vector registers, and building an `EdwardsPoint`
    //! from its coordinates (module docs).

    use std::arch::x86_64::{
        __m512i, _mm512_add_epi64, _mm512_and_si512, _mm512_madd52hi_epu64, _mm512_madd52lo_epu64,
        _mm512_set1_epi64, _mm512_setzero_si512, _mm512_slli_epi64, _mm512_srli_epi64,
        _mm512_sub_epi64,
    };
    use std::sync::OnceLock;

    use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};

    /// Field elements per vector.
    pub(super) const LANES: usize = 8;

    const MASK51: u64 = (1 << 51) - 1;

    /// One field element as five radix-2^51 limbs (`FieldElement51`'s representation).
    type Limbs = [u64; 5];

    /// `d = -121665/121666`, as curve25519-dalek's `EDWARDS_D`.
    const EDWARDS_D: Limbs = [
        929955233495203,
        466365720129213,
        1662059464998953,
        2033849074728123,
        1442794654840575,
    ];

    /// A square root of -1, as curve25519-dalek's `SQRT_M1`.
    const SQRT_M1: Limbs = [
        1718705420411056,
        234908883556509,
        2233514472574048,
        2117202627021982,
        765476049583133,
    ];

    /// `16 p` in limbs (dalek's lazy negation adds it so that no limb underflows).
    const P16: Limbs = [
        16 * ((1 << 51) - 19),
        16 * MASK51,
        16 * MASK51,
        16 * MASK51,
        16 * MASK51,
    ];

    /// Whether the CPU has the features and the self-check passed (computed once).
    pub(super) fn available() -> bool {
        static OK: OnceLock<bool> = OnceLock::new();
        *OK.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512ifma")
                && self_check()
        })
    }

    /// The fast path against dalek on fixed inputs chosen to reach every branch: the base
    /// point and its negation, the identity, the small-order points (among them `x = 0` with
    /// the sign bit set), a non-canonical `y >= p`, encodings that are not points, and points
    /// whose `sqrt_ratio_i` needs the `sqrt(-1)` correction. Equality is checked through
    /// dalek's own arithmetic (`==`, `compress`, and a sum, which reads `T`), so it also
    /// proves the layout `point` writes.
    fn self_check() -> bool {
        let mut inputs: Vec<[u8; 32]> = Vec::new();
        let base = curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
        let mut p = base;
        for _ in 0..12 {
            inputs.push(p.compress().to_bytes());
            inputs.push((-p).compress().to_bytes());
            p = p + p + base;
        }
        let mut one = [0u8; 32];
        one[0] = 1;
        inputs.push(one);
        one[31] = 0x80;
        inputs.push(one);
        let mut minus_one = [0xffu8; 32];
        minus_one[0] = 0xec;
        minus_one[31] = 0x7f;
        inputs.push(minus_one);
        // y = p + 1: non-canonical, decodes as y = 1.
        let mut p_plus_one = [0xffu8; 32];
        p_plus_one[0] = 0xee;
        p_plus_one[31] = 0x7f;
        inputs.push(p_plus_one);
        for i in 0u8..40 {
            let mut e = [0u8; 32];
            e[0] = i;
            e[7] = i.wrapping_mul(37);
            e[31] = i.wrapping_mul(73);
            inputs.push(e);
        }
        inputs.chunks(LANES).all(|group| {
            decompress(group).into_iter().zip(group).all(|(fast, e)| {
                match (fast, CompressedEdwardsY(*e).decompress()) {
                    (None, None) => true,
                    (Some(f), Some(d)) => {
                        f == d && f.compress() == d.compress() && (f + base) == (d + base)
                    }
                    _ => false,
                }
            })
        })
    }

    /// Decodes up to eight encodings in the lanes, or through dalek on a CPU without the
    /// features (so this stays sound whoever calls it; `available` also requires the
    /// self-check before `decompress_all` uses it).
    pub(super) fn decompress(group: &[[u8; 32]]) -> Vec<Option<EdwardsPoint>> {
        if !(std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512ifma"))
        {
            return super::one_by_one(group);
        }
        // SAFETY: the CPU has AVX-512F and IFMA (checked just above; the detection is cached).
        unsafe { decompress8(group) }
    }

    /// `FieldElement51::from_bytes`: `y` read as 255 bits (bit 255 is the sign of `x`).
    fn from_bytes(b: &[u8; 32]) -> Limbs {
        let load = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(w)
        };
        [
            load(0) & MASK51,
            (load(6) >> 3) & MASK51,
            (load(12) >> 6) & MASK51,
            (load(19) >> 1) & MASK51,
            (load(24) >> 12) & MASK51,
        ]
    }

    /// The canonical limbs (value in `[0, p)`, each limb below 2^51) of limbs below 2^64:
    /// `FieldElement51::to_bytes`'s reduction, so two values are equal iff these are.
    fn canonical(x: Limbs) -> Limbs {
        let c = x.map(|l| l >> 51);
        let mut l = x.map(|l| l & MASK51);
        l[0] += c[4] * 19;
        l[1] += c[0];
        l[2] += c[1];
        l[3] += c[2];
        l[4] += c[3];
        let mut q = (l[0] + 19) >> 51;
        q = (l[1] + q) >> 51;
        q = (l[2] + q) >> 51;
        q = (l[3] + q) >> 51;
        q = (l[4] + q) >> 51;
        l[0] += 19 * q;
        l[1] += l[0] >> 51;
        l[0] &= MASK51;
        l[2] += l[1] >> 51;
        l[1] &= MASK51;
        l[3] += l[2] >> 51;
        l[2] &= MASK51;
        l[4] += l[3] >> 51;
        l[3] &= MASK51;
        l[4] &= MASK51;
        l
    }

    /// `-x` of canonical `x`, canonical.
    fn negate(x: Limbs) -> Limbs {
        canonical([
            P16[0] - x[0],
            P16[1] - x[1],
            P16[2] - x[2],
            P16[3] - x[3],
            P16[4] - x[4],
        ])
    }

    /// `FieldElement51::is_negative`: the low bit of the canonical encoding.
    fn is_negative(canonical: &Limbs) -> bool {
        canonical[0] & 1 == 1
    }

    /// The point with these coordinates (all canonical, `T = XY`, `Z = 1`), written through
    /// `EdwardsPoint`'s layout (module docs; `self_check` proves it before any use).
    fn point(x: Limbs, y: Limbs, t: Limbs) -> EdwardsPoint {
        let mut words = [0u64; 20];
        words[..5].copy_from_slice(&x);
        words[5..10].copy_from_slice(&y);
        words[10] = 1;
        words[15..].copy_from_slice(&t);
        // SAFETY: the sizes are equal (`transmute` checks it at compile time) and every field
        // of `EdwardsPoint` is made of `u64` limbs, for which any bit pattern is valid.
        unsafe { std::mem::transmute::<[u64; 20], EdwardsPoint>(words) }
    }

    /// Eight field elements, lane `j` of vector `i` being limb `i` of element `j`. "Reduced":
    /// every limb below 2^52, as the 52-bit multiply-adds need.
    #[derive(Clone, Copy)]
    struct F8([__m512i; 5]);

    /// Lanes to vector registers and back (a `__m512i` is eight `u64`s).
    fn to_vec(lanes: [u64; LANES]) -> __m512i {
        // SAFETY: same size, and every bit pattern is valid for both types.
        unsafe { std::mem::transmute::<[u64; LANES], __m512i>(lanes) }
    }

    fn from_vec(v: __m512i) -> [u64; LANES] {
        // SAFETY: as in `to_vec`.
        unsafe { std::mem::transmute::<__m512i, [u64; LANES]>(v) }
    }

    impl F8 {
        fn pack(elems: &[Limbs; LANES]) -> F8 {
            F8(std::array::from_fn(|i| to_vec(elems.map(|e| e[i]))))
        }

        fn unpack(&self) -> [Limbs; LANES] {
            let limbs = self.0.map(from_vec);
            std::array::from_fn(|j| std::array::from_fn(|i| limbs[i][j]))
        }

        fn splat(x: &Limbs) -> F8 {
            F8::pack(&[*x; LANES])
        }
    }

    #[target_feature(enable = "avx512f,avx512ifma")]
    fn splat64(x: u64) -> __m512i {
        _mm512_set1_epi64(x as i64)
    }

    #[target_feature(enable = "avx512f,avx512ifma")]
    fn add(a: __m512i, b: __m512i) -> __m512i {
        _mm512_add_epi64(a, b)
    }

    /// `z + low 52 bits of (x * y)`, for `x, y < 2^52`.
    #[target_feature(enable = "avx512f,avx512ifma")]
    fn lo(z: __m512i, x: __m512i, y: __m512i) -> __m512i {
        _mm512_madd52lo_epu64(z, x, y)
    }

    /// `z + high 52 bits of (x * y)`, for `x, y < 2^52`.
    #[target_feature(enable = "avx512f,avx512ifma")]
    fn hi(z: __m512i, x: __m512i, y: __m512i) -> __m512i {
        _mm512_madd52hi_epu64(z, x, y)
    }

    #[target_feature(enable = "avx512f,avx512ifma")]
    fn shr52(x: __m512i) -> __m512i {
        _mm512_srli_epi64::<52>(x)
    }

    #[target_feature(enable = "avx512f,avx512ifma")]
    fn shl<const N: u32>(x: __m512i) -> __m512i {
        _mm512_slli_epi64::<N>(x)
    }

    /// The weak reduction (`F51x4Unreduced` into `F51x4Reduced`): carries computed in
    /// parallel, every limb below 2^51 + 2^18 after it.
    #[target_feature(enable = "avx512f,avx512ifma")]
    fn reduce(x: [__m512i; 5]) -> F8 {
        let mask = splat64(MASK51);
        let r19 = splat64(19);
        let c = x.map(|l| _mm512_srli_epi64::<51>(l));
        let m = x.map(|l| _mm512_and_si512(l, mask));
        F8([
            lo(m[0], c[4], r19),
            add(m[1], c[0]),
            add(m[2], c[1]),
            add(m[3], c[2]),
            add(m[4], c[3]),
        ])
    }

    /// `a * b` (dalek's `F51x4Reduced * F51x4Reduced`, instructions in the same waves).
    #[target_feature(enable = "avx512f,avx512ifma")]
    fn mul(a: &F8, b: &F8) -> F8 {
        let x = &a.0;
        let y = &b.0;
        let zero = _mm512_setzero_si512();
        let (mut z0_1, mut z1_1, mut z2_1, mut z3_1, mut z4_1) = (zero, zero, zero, zero, zero);
        let (mut z5_1, mut z6_1, mut z7_1, mut z8_1) = (zero, zero, zero, zero);
        let (mut z0_2, mut z1_2, mut z2_2, mut z3_2, mut z4_2) = (zero, zero, zero, zero, zero);
        let (mut z5_2, mut z6_2, mut z7_2, mut z8_2, mut z9_2) = (zero, zero, zero, zero, zero);

        // Wave 0
        z4_1 = lo(z4_1, x[2], y[2]);
        z5_2 = hi(z5_2, x[2], y[2]);
        z5_1 = lo(z5_1, x[4], y[1]);
        z6_2 = hi(z6_2, x[4], y[1]);
        z6_1 = lo(z6_1, x[4], y[2]);
        z7_2 = hi(z7_2, x[4], y[2]);
        z7_1 = lo(z7_1, x[4], y[3]);
        z8_2 = hi(z8_2, x[4], y[3]);

        // Wave 1
        z4_1 = lo(z4_1, x[3], y[1]);
        z5_2 = hi(z5_2, x[3], y[1]);
        z5_1 = lo(z5_1, x[3], y[2]);
        z6_2 = hi(z6_2, x[3], y[2]);
        z6_1 = lo(z6_1, x[3], y[3]);
        z7_2 = hi(z7_2, x[3], y[3]);
        z7_1 = lo(z7_1, x[3], y[4]);
        z8_2 = hi(z8_2, x[3], y[4]);

        // Wave 2
        z8_1 = lo(z8_1, x[4], y[4]);
        z9_2 = hi(z9_2, x[4], y[4]);
        z4_1 = lo(z4_1, x[4], y[0]);
        z5_2 = hi(z5_2, x[4], y[0]);
        z5_1 = lo(z5_1, x[2], y[3]);
        z6_2 = hi(z6_2, x[2], y[3]);
        z6_1 = lo(z6_1, x[2], y[4]);
        z7_2 = hi(z7_2, x[2], y[4]);

        let z8 = add(z8_1, add(z8_2, z8_2));
        let z9 = add(z9_2, z9_2);

        // Wave 3
        z3_1 = lo(z3_1, x[3], y[0]);
        z4_2 = hi(z4_2, x[3], y[0]);
        z4_1 = lo(z4_1, x[1], y[3]);
        z5_2 = hi(z5_2, x[1], y[3]);
        z5_1 = lo(z5_1, x[1], y[4]);
        z6_2 = hi(z6_2, x[1], y[4]);
        z2_1 = lo(z2_1, x[2], y[0]);
        z3_2 = hi(z3_2, x[2], y[0]);

        let z6 = add(z6_1, add(z6_2, z6_2));
        let z7 = add(z7_1, add(z7_2, z7_2));

        // Wave 4
        z3_1 = lo(z3_1, x[2], y[1]);
        z4_2 = hi(z4_2, x[2], y[1]);
        z4_1 = lo(z4_1, x[0], y[4]);
        z5_2 = hi(z5_2, x[0], y[4]);
        z1_1 = lo(z1_1, x[1], y[0]);
        z2_2 = hi(z2_2, x[1], y[0]);
        z2_1 = lo(z2_1, x[1], y[1]);
        z3_2 = hi(z3_2, x[1], y[1]);

        let z5 = add(z5_1, add(z5_2, z5_2));

        // Wave 5
        z3_1 = lo(z3_1, x[1], y[2]);
        z4_2 = hi(z4_2, x[1], y[2]);
        z0_1 = lo(z0_1, x[0], y[0]);
        z1_2 = hi(z1_2, x[0], y[0]);
        z1_1 = lo(z1_1, x[0], y[1]);
        z2_1 = lo(z2_1, x[0], y[2]);
        z2_2 = hi(z2_2, x[0], y[1]);
        z3_2 = hi(z3_2, x[0], y[2]);

        let r19 = splat64(19);

        // Wave 6
        let t0 = hi(zero, r19, z9);
        let t1 = lo(zero, r19, shr52(z9));
        z3_1 = lo(z3_1, x[0], y[3]);
        z4_2 = hi(z4_2, x[0], y[3]);
        z1_2 = lo(z1_2, r19, shr52(z5));
        z2_2 = lo(z2_2, r19, shr52(z6));
        z3_2 = lo(z3_2, r19, shr52(z7));
        z0_1 = lo(z0_1, r19, z5);

        // Wave 7
        z4_1 = lo(z4_1, r19, z9);
        z1_1 = lo(z1_1, r19, z6);
        z0_2 = lo(z0_2, r19, add(t0, t1));
        z4_2 = hi(z4_2, r19, z8);
        z2_1 = lo(z2_1, r19, z7);
        z1_2 = hi(z1_2, r19, z5);
        z2_2 = hi(z2_2, r19, z6);
        z3_2 = hi(z3_2, r19, z7);

        // Wave 8
        z3_1 = lo(z3_1, r19, z8);
        z4_2 = lo(z4_2, r19, shr52(z8));

        reduce([
            add(z0_1, add(z0_2, z0_2)),
            add(z1_1, add(z1_2, z1_2)),
            add(z2_1, add(z2_2, z2_2)),
            add(z3_1, add(z3_2, z3_2)),
            add(z4_1, add(z4_2, z4_2)),
        ])
    }

    /// `a^2` (dalek's `F51x4Reduced::square`).
    #[target_feature(enable = "avx512f,avx512ifma")]
    fn square(a: &F8) -> F8 {
        let x = &a.0;
        let zero = _mm512_setzero_si512();

        let z0_1 = lo(zero, x[0], x[0]);

        let z1_2 = lo(zero, x[0], x[1]);
        let mut z1_2 = hi(z1_2, x[0], x[0]);

        let z2_4 = hi(zero, x[0], x[1]);
        let mut z2_1 = shl::<2>(z2_4);
        let mut z2_2 = lo(zero, x[0], x[2]);
        z2_1 = lo(z2_1, x[1], x[1]);

        let z3_4 = hi(zero, x[0], x[2]);
        let mut z3_1 = shl::<2>(z3_4);
        let mut z3_2 = lo(zero, x[1], x[2]);
        z3_2 = lo(z3_2, x[0], x[3]);
        z3_2 = hi(z3_2, x[1], x[1]);

        let mut z4_4 = hi(zero, x[1], x[2]);
        z4_4 = hi(z4_4, x[0], x[3]);
        let mut z4_1 = shl::<2>(z4_4);
        let mut z4_2 = lo(zero, x[1], x[3]);
        z4_2 = lo(z4_2, x[0], x[4]);
        z4_1 = lo(z4_1, x[2], x[2]);

        let mut z5_4 = hi(zero, x[1], x[3]);
        z5_4 = hi(z5_4, x[0], x[4]);
        let mut z5_1 = shl::<2>(z5_4);
        let mut z5_2 = lo(zero, x[2], x[3]);
        z5_2 = lo(z5_2, x[1], x[4]);
        z5_2 = hi(z5_2, x[2], x[2]);

        let mut z6_4 = hi(zero, x[2], x[3]);
        z6_4 = hi(z6_4, x[1], x[4]);
        let mut z6_1 = shl::<2>(z6_4);
        let z6_2 = lo(zero, x[2], x[4]);
        z6_1 = lo(z6_1, x[3], x[3]);

        let z7_4 = hi(zero, x[2], x[4]);
        let mut z7_1 = shl::<2>(z7_4);
        let mut z7_2 = lo(zero, x[3], x[4]);
        z7_2 = hi(z7_2, x[3], x[3]);

        let z8_4 = hi(zero, x[3], x[4]);
        let mut z8_1 = shl::<2>(z8_4);
        z8_1 = lo(z8_1, x[4], x[4]);

        let z9_2 = hi(zero, x[4], x[4]);

        z5_1 = add(z5_1, shl::<1>(z5_2));
        z6_1 = add(z6_1, shl::<1>(z6_2));
        z7_1 = add(z7_1, shl::<1>(z7_2));
        let z9_1 = shl::<1>(z9_2);

        let r19 = splat64(19);

        let t0 = hi(zero, r19, z9_1);
        let t1 = lo(zero, r19, shr52(z9_1));

        z4_2 = lo(z4_2, r19, shr52(z8_1));
        z3_2 = lo(z3_2, r19, shr52(z7_1));
        z2_2 = lo(z2_2, r19, shr52(z6_1));
        z1_2 = lo(z1_2, r19, shr52(z5_1));

        let z0_2 = lo(zero, r19, add(t0, t1));
        z1_2 = hi(z1_2, r19, z5_1);
        z2_2 = hi(z2_2, r19, z6_1);
        z3_2 = hi(z3_2, r19, z7_1);
        z4_2 = hi(z4_2, r19, z8_1);

        let z0_1 = lo(z0_1, r19, z5_1);
        let z1_1 = lo(zero, r19, z6_1);
        z2_1 = lo(z2_1, r19, z7_1);
        z3_1 = lo(z3_1, r19, z8_1);
        z4_1 = lo(z4_1, r19, z9_1);

        reduce([
            add(z0_1, add(z0_2, z0_2)),
            add(z1_1, add(z1_2, z1_2)),
            add(z2_1, add(z2_2, z2_2)),
            add(z3_1, add(z3_2, z3_2)),
            add(z4_1, add(z4_2, z4_2)),
        ])
    }

    /// `a^(2^k)`, `k >= 1`.
    #[target_feature(enable = "avx512f,avx512ifma")]
    fn pow2k(a: &F8, k: u32) -> F8 {
        let mut x = square(a);
        for _ in 1..k {
            x = square(&x);
        }
        x
    }

    /// `a^((p-5)/8)`: dalek's `pow22501` and `pow_p58`, the same addition chain.
    #[target_feature(enable = "avx512f,avx512ifma")]
    fn pow_p58(a: &F8) -> F8 {
        let t0 = square(a);
        let t1 = square(&square(&t0));
        let t2 = mul(a, &t1);
        let t3 = mul(&t0, &t2);
        let t4 = square(&t3);
        let t5 = mul(&t2, &t4);
        let t6 = pow2k(&t5, 5);
        let t7 = mul(&t6, &t5);
        let t8 = pow2k(&t7, 10);
        let t9 = mul(&t8, &t7);
        let t10 = pow2k(&t9, 20);
        let t11 = mul(&t10, &t9);
        let t12 = pow2k(&t11, 10);
        let t13 = mul(&t12, &t7);
        let t14 = pow2k(&t13, 50);
        let t15 = mul(&t14, &t13);
        let t16 = pow2k(&t15, 100);
        let t17 = mul(&t16, &t15);
        let t18 = pow2k(&t17, 50);
        let t19 = mul(&t18, &t13);
        let t20 = pow2k(&t19, 2);
        mul(a, &t20)
    }

    /// `16p - a` reduced: `-a` for limbs below 2^52 + 2^18, as dalek's lazy negation.
    #[target_feature(enable = "avx512f,avx512ifma")]
    fn neg(a: &F8) -> F8 {
        let p16 = P16.map(|l| splat64(l));
        reduce(std::array::from_fn(|i| _mm512_sub_epi64(p16[i], a.0[i])))
    }

    /// `decompress::step_1` and `step_2` of curve25519-dalek for up to eight encodings; lanes
    /// past the input's length compute the identity's encoding and are dropped.
    #[target_feature(enable = "avx512f,avx512ifma")]
    fn decompress8(group: &[[u8; 32]]) -> Vec<Option<EdwardsPoint>> {
        let mut ys = [[1, 0, 0, 0, 0]; LANES];
        for (y, e) in ys.iter_mut().zip(group) {
            *y = from_bytes(e);
        }
        let y = F8::pack(&ys);
        let yy = square(&y);
        // u = y^2 - 1, as yy + 16p - 1 (no limb underflows), reduced.
        let minus_one = {
            let mut l = P16;
            l[0] -= 1;
            l.map(|l| splat64(l))
        };
        let u = reduce(std::array::from_fn(|i| add(yy.0[i], minus_one[i])));
        // v = d y^2 + 1 (the product's limbs stay below 2^52 with the 1 added).
        let mut v = mul(&yy, &F8::splat(&EDWARDS_D));
        v.0[0] = add(v.0[0], splat64(1));

        // sqrt_ratio_i(u, v)
        let v3 = mul(&square(&v), &v);
        let v7 = mul(&square(&v3), &v);
        let r = mul(&mul(&u, &v3), &pow_p58(&mul(&u, &v7)));
        let check = mul(&v, &square(&r));
        let sqrt_m1 = F8::splat(&SQRT_M1);
        let neg_u = neg(&u).unpack();
        let r_i = mul(&r, &sqrt_m1).unpack();
        let (check, u, r) = (check.unpack(), u.unpack(), r.unpack());
        let mut xs = [[0u64; 5]; LANES];
        let mut valid = [false; LANES];
        for j in 0..group.len() {
            let c = canonical(check[j]);
            let correct_sign_sqrt = c == canonical(u[j]);
            let flipped_sign_sqrt = c == canonical(neg_u[j]);
            // dalek also switches to `r i` when `check = -u i`; that case is a non-square
            // (`valid` false, unless u = 0, where `flipped_sign_sqrt` holds too), whose root
            // `decompress` discards, so it is not computed here.
            let mut x = if flipped_sign_sqrt {
                canonical(r_i[j])
            } else {
                canonical(r[j])
            };
            // The nonnegative root, then the encoding's sign bit (even on x = 0).
            if is_negative(&x) {
                x = negate(x);
            }
            if group[j][31] >> 7 == 1 {
                x = negate(x);
            }
            xs[j] = x;
            valid[j] = correct_sign_sqrt || flipped_sign_sqrt;
        }
        let t = mul(&F8::pack(&xs), &y).unpack();
        (0..group.len())
            .map(|j| valid[j].then(|| point(xs[j], canonical(ys[j]), canonical(t[j]))))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
    use curve25519_dalek::edwards::CompressedEdwardsY;
    use proptest::prelude::*;

    use super::*;

    /// Both paths agree on every encoding of `inputs`: the same `None`s, and points equal as
    /// dalek sees them (`==`, the canonical encoding, and a sum, which reads every coordinate).
    fn assert_agrees(inputs: &[[u8; 32]]) {
        let fast = decompress_all(inputs);
        assert_eq!(fast.len(), inputs.len());
        for (e, f) in inputs.iter().zip(fast) {
            let d = CompressedEdwardsY(*e).decompress();
            match (f, d) {
                (None, None) => {}
                (Some(f), Some(d)) => {
                    assert_eq!(f, d, "{e:02x?}");
                    assert_eq!(f.compress(), d.compress(), "{e:02x?}");
                    let b = ED25519_BASEPOINT_POINT;
                    assert_eq!((f + b).compress(), (d + b).compress(), "{e:02x?}");
                    assert_eq!(f.mul_by_cofactor(), d.mul_by_cofactor(), "{e:02x?}");
                }
                (f, d) => panic!("{e:02x?}: fast {:?} dalek {:?}", f.is_some(), d.is_some()),
            }
        }
    }

    #[test]
    fn the_eight_lane_path_runs_where_the_cpu_has_ifma() {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512ifma")
        {
            assert!(
                fast_path_active(),
                "the self-check failed on an IFMA machine"
            );
        }
    }

    #[test]
    fn small_order_and_non_canonical_encodings_decode_as_dalek_does() {
        let mut inputs = Vec::new();
        // The eight small-order points, their non-canonical encodings (y + p where it still
        // fits in 255 bits) and each with the sign bit flipped.
        for e in crate::types::sig::tests::small_order_encodings() {
            inputs.push(e);
            let mut flipped = e;
            flipped[31] ^= 0x80;
            inputs.push(flipped);
        }
        // Every y in [p, 2^255): y = p + k for k < 19.
        for k in 0u8..19 {
            let mut e = [0xffu8; 32];
            e[0] = 0xed + k;
            e[31] = 0x7f;
            inputs.push(e);
            e[31] = 0xff;
            inputs.push(e);
        }
        // Lengths that are not a multiple of the lanes.
        for n in 0..inputs.len().min(20) {
            assert_agrees(&inputs[..n]);
        }
        assert_agrees(&inputs);
    }

    #[test]
    fn the_zip215_keys_and_nonces_decode_as_dalek_does() {
        let mut inputs = Vec::new();
        for (vk, sig) in crate::types::sig::tests::zip215_cases() {
            inputs.push(vk);
            inputs.push(sig[..32].try_into().unwrap());
        }
        inputs.extend(crate::types::sig::tests::non_canonical_large_order_keys());
        assert_agrees(&inputs);
    }

    #[test]
    fn points_of_every_kind_decode_as_dalek_does() {
        let mut inputs = Vec::new();
        let mut p = ED25519_BASEPOINT_POINT;
        for _ in 0..200 {
            inputs.push(p.compress().to_bytes());
            inputs.push((-p).compress().to_bytes());
            p = p + p + ED25519_BASEPOINT_POINT;
        }
        assert_agrees(&inputs);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn random_encodings_decode_as_dalek_does(
            inputs in proptest::collection::vec(any::<[u8; 32]>(), 0..40)
        ) {
            assert_agrees(&inputs);
        }
    }
}
