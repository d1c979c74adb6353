//! Tests of the OCP Microscaling formats (`format = "mx"`), through the
//! public spec syntax.
//!
//! Expected values come from the OCP MX v1.0 spec's tables, worked out by
//! hand in the comments, or from an independent reference written here in
//! plain `f64`: it enumerates every encoding of the element type from its
//! bit fields (sign, exponent, mantissa, bias), finds each scaled value's two
//! neighbours in that list, and picks one by the rounding mode; block maxima
//! and shared exponents come from plain loops over multi-indices. It shares
//! no code with the kernels beyond the random draws of `QuantRng`.

use std::collections::HashMap;

use proptest::prelude::*;
use swalp_conformance::{
    assert_same_slices, p2, quantizer, run_both as run, run_on, same, tensor, values, Data,
    ALL_ROUNDINGS as ALL, SR2,
};
use swalp_core::tch::{Kind, Tensor};
use swalp_core::{Backend, Error, QuantRng, Quantizer, Rounding};
use swalp_formats::{MxElem, MxFormat};

use Rounding::{Down, NearestAway, NearestEven, NearestUp, TowardZero, Up};

// ---------------------------------------------------------------------------
// The element types, from the OCP MX v1.0 spec's tables
// ---------------------------------------------------------------------------

/// One element type as the spec tabulates it.
#[derive(Clone, Copy, Debug)]
struct Elem {
    name: &'static str,
    mx_name: &'static str,
    bits: u32,
    /// Exponent and mantissa bits and bias; `ebits == 0` marks INT8.
    ebits: u32,
    mbits: u32,
    bias: i32,
    /// Which encodings are not numbers.
    reserved: Reserved,
    /// From the spec's tables.
    max_normal: f64,
    min_subnormal: f64,
    /// Exponent of the largest power of two the type represents.
    emax: i32,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Reserved {
    /// Every encoding is a number (FP6, FP4, INT8).
    Nothing,
    /// The top exponent field is Inf/NaN (E5M2).
    TopExponent,
    /// Only S.1111.111 is NaN (E4M3).
    AllOnes,
}

const ELEMS: [Elem; 6] = [
    Elem {
        name: "fp8_e4m3",
        mx_name: "mxfp8_e4m3",
        bits: 8,
        ebits: 4,
        mbits: 3,
        bias: 7,
        reserved: Reserved::AllOnes,
        max_normal: 448.0, // 2^8 × 1.75
        min_subnormal: 1.0 / 512.0,
        emax: 8,
    },
    Elem {
        name: "fp8_e5m2",
        mx_name: "mxfp8_e5m2",
        bits: 8,
        ebits: 5,
        mbits: 2,
        bias: 15,
        reserved: Reserved::TopExponent,
        max_normal: 57344.0, // 2^15 × 1.75
        min_subnormal: 1.0 / 65536.0,
        emax: 15,
    },
    Elem {
        name: "fp6_e3m2",
        mx_name: "mxfp6_e3m2",
        bits: 6,
        ebits: 3,
        mbits: 2,
        bias: 3,
        reserved: Reserved::Nothing,
        max_normal: 28.0, // 2^4 × 1.75
        min_subnormal: 0.0625,
        emax: 4,
    },
    Elem {
        name: "fp6_e2m3",
        mx_name: "mxfp6_e2m3",
        bits: 6,
        ebits: 2,
        mbits: 3,
        bias: 1,
        reserved: Reserved::Nothing,
        max_normal: 7.5, // 2^2 × 1.875
        min_subnormal: 0.125,
        emax: 2,
    },
    Elem {
        name: "fp4_e2m1",
        mx_name: "mxfp4_e2m1",
        bits: 4,
        ebits: 2,
        mbits: 1,
        bias: 1,
        reserved: Reserved::Nothing,
        max_normal: 6.0, // 2^2 × 1.5
        min_subnormal: 0.5,
        emax: 2,
    },
    Elem {
        name: "int8",
        mx_name: "mxint8",
        bits: 8,
        ebits: 0,
        mbits: 6,
        bias: 0,
        reserved: Reserved::Nothing,
        max_normal: 127.0 / 64.0, // 1 63/64
        min_subnormal: 1.0 / 64.0,
        emax: 0,
    },
];

fn elem(name: &str) -> Elem {
    *ELEMS.iter().find(|e| e.name == name).unwrap()
}

impl Elem {
    /// Every non-negative value with the parity of its encoding's last bit
    /// (for ties to even), ascending, from the bit fields.
    fn magnitudes(&self) -> Vec<(f64, u32)> {
        let mut v = Vec::new();
        if self.ebits == 0 {
            // INT8: k / 64; the conversion clamps to |k| <= 127.
            for k in 0u32..=127 {
                v.push((f64::from(k) / 64.0, k & 1));
            }
            return v;
        }
        let top = (1u32 << self.ebits) - 1;
        for e in 0..=top {
            for m in 0..(1u32 << self.mbits) {
                let reserved = match self.reserved {
                    Reserved::Nothing => false,
                    Reserved::TopExponent => e == top,
                    Reserved::AllOnes => e == top && m == (1 << self.mbits) - 1,
                };
                if reserved {
                    continue;
                }
                let frac = f64::from(m) / p2(self.mbits as i32);
                let value = if e == 0 {
                    frac * p2(1 - self.bias)
                } else {
                    (1.0 + frac) * p2(e as i32 - self.bias)
                };
                v.push((value, m & 1));
            }
        }
        v.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
        v
    }

    /// Every value, negative ones included, ascending; one zero.
    fn values(&self) -> Vec<(f64, u32)> {
        let pos = self.magnitudes();
        let mut all: Vec<(f64, u32)> = pos
            .iter()
            .rev()
            .filter(|(v, _)| *v > 0.0)
            .map(|&(v, p)| (-v, p))
            .collect();
        all.extend(pos);
        all
    }

    fn spec(&self, block: usize, dim: i64) -> String {
        format!(
            "{{ format = \"mx\", elem = \"{}\", block_size = {block}, dim = {dim} }}",
            self.name
        )
    }
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// One block holding all of `x` (1-D), nearest-even unless given.
fn run_block(e: Elem, r: Rounding, x: &[f32]) -> Vec<f32> {
    run(&e.spec(x.len(), -1), r, x, &[x.len()], 0)
}

/// The draw of element `i` of the first stream of `seed`.
fn draw(seed: u64, i: usize) -> u32 {
    QuantRng::new(seed).next_stream().bits(i as u64)
}

// ---------------------------------------------------------------------------
// The independent reference
// ---------------------------------------------------------------------------

/// `floor(log2 m)` for a positive finite `m`, by counting.
fn floor_log2(m: f64) -> i32 {
    let mut e = 0;
    while p2(e) > m {
        e -= 1;
    }
    while p2(e + 1) <= m {
        e += 1;
    }
    e
}

/// Rounds the scaled value `u` to the element type: saturates beyond the
/// max normal, otherwise picks one of the two neighbouring values.
fn ref_element(e: &Elem, table: &[(f64, u32)], u: f64, r: Rounding, random: u32) -> f64 {
    if u == 0.0 {
        return u;
    }
    if u >= e.max_normal {
        return e.max_normal;
    }
    if u <= -e.max_normal {
        return -e.max_normal;
    }
    let j = table.iter().position(|&(v, _)| v >= u).unwrap();
    let (hi, hi_parity) = table[j];
    if hi == u {
        return u;
    }
    let (lo, _) = table[j - 1];
    let (dlo, dhi) = (u - lo, hi - u);
    let pick_hi = match r {
        NearestEven => dhi < dlo || (dhi == dlo && hi_parity == 0),
        NearestAway => dhi < dlo || (dhi == dlo && u > 0.0),
        NearestUp => dhi <= dlo,
        TowardZero => u < 0.0,
        Down => false,
        Up => true,
        Rounding::Stochastic { bits } => {
            let frac = dlo / (hi - lo);
            let truncated = (frac * p2(i32::from(bits))).floor() as u64;
            let d = u64::from(random) >> (32 - u32::from(bits));
            truncated + d >= 1u64 << bits
        }
    };
    let v = if pick_hi { hi } else { lo };
    if v == 0.0 {
        0f64.copysign(u)
    } else {
        v
    }
}

/// Block numbers of a row-major tensor of `shape`: elements share a block
/// when their indices agree except along `dim`, where they agree after
/// division by `block`.
fn ref_blocks(shape: &[usize], block: usize, dim: usize) -> Vec<usize> {
    let n: usize = shape.iter().product();
    let mut ids: HashMap<Vec<usize>, usize> = HashMap::new();
    (0..n)
        .map(|i| {
            let mut idx = vec![0usize; shape.len()];
            let mut r = i;
            for d in (0..shape.len()).rev() {
                idx[d] = r % shape[d];
                r /= shape[d];
            }
            idx[dim] /= block;
            let next = ids.len();
            *ids.entry(idx).or_insert(next)
        })
        .collect()
}

/// The MX conversion of `x` (row-major, `shape`, at least 1-D), in `f64`.
fn reference(
    e: &Elem,
    x: &[f64],
    shape: &[usize],
    block: usize,
    dim: usize,
    r: Rounding,
    seed: u64,
) -> Vec<f64> {
    let table = e.values();
    let ids = ref_blocks(shape, block, dim);
    let nblocks = ids.iter().max().map_or(0, |m| m + 1);
    let mut max = vec![0f64; nblocks];
    let mut poisoned = vec![false; nblocks];
    for (&v, &b) in x.iter().zip(&ids) {
        if v.is_finite() {
            max[b] = max[b].max(v.abs());
        } else {
            poisoned[b] = true;
        }
    }
    x.iter()
        .zip(&ids)
        .enumerate()
        .map(|(i, (&v, &b))| {
            if poisoned[b] {
                return f64::NAN;
            }
            let s = if max[b] == 0.0 {
                -127
            } else {
                (floor_log2(max[b]) - e.emax).clamp(-127, 127)
            };
            let random = if r.is_stochastic() { draw(seed, i) } else { 0 };
            ref_element(e, &table, v / p2(s), r, random) * p2(s)
        })
        .collect()
}

fn reference_f32(
    e: &Elem,
    x: &[f32],
    shape: &[usize],
    block: usize,
    dim: usize,
    r: Rounding,
    seed: u64,
) -> Vec<f32> {
    let wide: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
    reference(e, &wide, shape, block, dim, r, seed)
        .into_iter()
        .map(|v| {
            // Every MX value of an f32 input is an f32.
            assert!(
                v.is_nan() || f64::from(v as f32) == v,
                "{v:e} is not an f32"
            );
            v as f32
        })
        .collect()
}

// ---------------------------------------------------------------------------
// The element tables
// ---------------------------------------------------------------------------

#[test]
fn element_types_match_the_spec_tables() {
    for e in ELEMS {
        let mags = e.magnitudes();
        let (max, _) = *mags.last().unwrap();
        assert_eq!(max, e.max_normal, "{}: max from the encodings", e.name);
        assert_eq!(mags[1].0, e.min_subnormal, "{}: min subnormal", e.name);
        assert_eq!(p2(floor_log2(max)), p2(e.emax), "{}: emax", e.name);
        // The number of distinct non-negative values.
        let count = match e.name {
            "fp8_e4m3" => 127, // 2^7 - 1 (the NaN mantissa)
            "fp8_e5m2" => 124, // 2^7 - 4 (Inf and 3 NaN mantissas)
            "fp6_e3m2" | "fp6_e2m3" => 32,
            "fp4_e2m1" => 8, // 0, 0.5, 1, 1.5, 2, 3, 4, 6
            _ => 128,
        };
        assert_eq!(mags.len(), count, "{}", e.name);

        let lib = MxElem::from_name(e.name).unwrap();
        assert_eq!(MxElem::from_name(e.mx_name), Some(lib));
        assert_eq!(lib.name(), e.name);
        assert_eq!(lib.mx_name(), e.mx_name);
        assert_eq!(lib.bits(), e.bits);
        assert_eq!(lib.max_value(), e.max_normal, "{}", e.name);
        assert_eq!(lib.min_subnormal(), e.min_subnormal, "{}", e.name);
        assert_eq!(lib.emax(), e.emax, "{}", e.name);

        for (block, bits) in [(32, 8.25), (16, 8.5), (1, 16.0)] {
            let q = quantizer(&e.spec(block, -1), NearestEven, Backend::Auto);
            let want = bits - 8.0 + f64::from(e.bits);
            assert_eq!(
                q.format().bits_per_value(),
                want,
                "{} block {block}",
                e.name
            );
        }
    }
    let e2m1: Vec<f64> = elem("fp4_e2m1").magnitudes().iter().map(|v| v.0).collect();
    assert_eq!(e2m1, [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]);
}

#[test]
fn max_normal_and_min_subnormal_survive_scaling() {
    for e in ELEMS {
        for t in [-30, -3, 0, 7, 40] {
            // max·2^t has binade emax + t, so X = 2^t.
            let (max, sub) = (e.max_normal * p2(t), e.min_subnormal * p2(t));
            let x = [
                max,
                sub,
                -max,
                -sub,
                0.5 * sub,
                0.75 * sub,
                1.5 * sub,
                -0.25 * sub,
            ];
            let x: Vec<f32> = x.iter().map(|&v| v as f32).collect();
            let y = run_block(e, NearestEven, &x);
            let want = [max, sub, -max, -sub, 0.0, sub, 2.0 * sub, -0.0];
            let want: Vec<f32> = want.iter().map(|&v| v as f32).collect();
            assert_same_slices(&y, &want, &format!("{} at 2^{t}", e.name));
            let lib = MxFormat::new(MxElem::from_name(e.name).unwrap(), 32, -1).unwrap();
            assert_eq!(lib.shared_exponent(max), Some(t));
        }
    }
}

// ---------------------------------------------------------------------------
// Hand-worked blocks
// ---------------------------------------------------------------------------

#[test]
fn scale_rule_on_hand_made_e4m3_blocks() {
    let e = elem("fp8_e4m3");
    // Block 0, max 1.0: X = 2^(0 - 8) = 2^-8, so 1.0 is the element 2^8.
    //   0.3 / X = 76.8 lies in [64, 128), step 8: 9.6 steps -> 10 -> 80·2^-8.
    //   -0.01 / X = -2.56 lies in [2, 4), step 0.25: -10.24 -> -10 -> -2.5·2^-8.
    //   2^-17 / X = 2^-9, the min subnormal; 2^-18 is half of it (tie -> 0);
    //   3·2^-19 is 0.75 of it -> 2^-9.
    // Block 1, max 0.75 = 1.5·2^-1: X = 2^-9; 0.75 / X = 384 = 1.5·2^8.
    //   0.1 / X = 51.2 in [32, 64), step 4: 12.8 -> 13 -> 52·2^-9.
    //   -0.3 / X = -153.6 in [128, 256), step 16: -9.6 -> -10 -> -160·2^-9.
    let x = [
        1.0,
        0.3,
        -0.01,
        p2(-17) as f32,
        p2(-18) as f32,
        (3.0 * p2(-19)) as f32,
        0.0,
        -0.0,
        0.75,
        0.1,
        -0.3,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
    ];
    let want = [
        1.0,
        80.0 * p2(-8),
        -2.5 * p2(-8),
        p2(-17),
        0.0,
        p2(-17),
        0.0,
        -0.0,
        0.75,
        52.0 * p2(-9),
        -160.0 * p2(-9),
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
    ];
    let want: Vec<f32> = want.iter().map(|&v| v as f32).collect();
    let y = run(&e.spec(8, -1), NearestEven, &x, &[16], 0);
    assert_same_slices(&y, &want, "e4m3 blocks");
    let f = MxFormat::new(MxElem::Fp8E4m3, 8, -1).unwrap();
    assert_eq!(f.shared_exponent(1.0), Some(-8));
    assert_eq!(f.shared_exponent(0.75), Some(-9));
    assert_eq!(f.shared_exponent(1.999), Some(-8));
}

#[test]
fn block_maxima_that_round_past_the_element_max_saturate() {
    // A block max m·2^k with m > max_normal / 2^emax scales to m·2^emax,
    // whose neighbours on the element grid both lie at or beyond the max
    // normal, so every rounding mode gives ±max_normal·X, X = 2^(k - emax).
    //   E4M3: 1.9375·2^8 = 496: 15.5 steps of 32 -> 16 -> 512 > 448 -> 448.
    //   E5M2: 1.9·2^15 = 62259.2: 7.6 steps of 2^13 -> 8 -> 65536 -> 57344.
    //   E3M2: 1.9·2^4 = 30.4: 7.6 steps of 4 -> 32 -> 28.
    //   E2M3: 1.99·4 = 7.96: 15.92 steps of 0.5 -> 8 -> 7.5.
    //   E2M1: 1.8·4 = 7.2: 3.6 steps of 2 -> 8 -> 6.
    //   INT8: 1.999·64 = 127.936 -> 128 -> 127, i.e. 127/64.
    let cases = [
        ("fp8_e4m3", 1.9375),
        ("fp8_e5m2", 1.9),
        ("fp6_e3m2", 1.9),
        ("fp6_e2m3", 1.99),
        ("fp4_e2m1", 1.8),
        ("int8", 1.999),
    ];
    for (name, m) in cases {
        let e = elem(name);
        for k in [-40, 0, 3, 60] {
            let x = [(m * p2(k)) as f32, (-m * p2(k)) as f32];
            let sat = (e.max_normal * p2(k - e.emax)) as f32;
            for r in ALL {
                let y = run(&e.spec(2, -1), r, &x, &[2], 5);
                assert_same_slices(&y, &[sat, -sat], &format!("{name} {r} at 2^{k}"));
            }
        }
    }
    // The brief's example: E4M3, block max 1.9375·2^k -> 448·2^(k-8).
    let y = run_block(elem("fp8_e4m3"), NearestEven, &[1.9375 * 1024.0]);
    assert_eq!(y, [448.0 * 4.0]);
}

#[test]
fn the_tail_block_gets_its_own_scale() {
    let e = elem("fp4_e2m1");
    // Blocks of 2 along rows of 5: [0, 1], [2, 3], [4].
    // Row 0: [4, 1] max 4: X = 2^(2-2) = 1 -> 4, 1.
    //        [0.75, 0.1] max 0.75: X = 2^(-1-2) = 1/8 -> 6, 0.8 (-> 1.0) -> 0.75, 0.125.
    //        [0.45] alone: X = 2^(-2-2) = 1/16 -> 7.2 -> 8 -> saturates at 6 -> 0.375.
    //        (Sharing the previous block's X = 1/8 would give 3.6 -> 4 -> 0.5.)
    // Row 1: [-0, 0] stays; [5, -3] max 5: X = 1 -> 5 is a tie of 4 and 6 -> 4;
    //        [-0] alone stays -0.
    let x = [4.0, 1.0, 0.75, 0.1, 0.45, -0.0, 0.0, 5.0, -3.0, -0.0];
    let want = [4.0, 1.0, 0.75, 0.125, 0.375, -0.0, 0.0, 4.0, -3.0, -0.0];
    for dim in [-1, 1] {
        let y = run(&e.spec(2, dim), NearestEven, &x, &[2, 5], 0);
        assert_same_slices(&y, &want, &format!("dim {dim}"));
    }
    // The same blocks along dim 0 of the transpose.
    let xt: Vec<f32> = (0..10).map(|i| x[(i % 2) * 5 + i / 2]).collect();
    let wt: Vec<f32> = (0..10).map(|i| want[(i % 2) * 5 + i / 2]).collect();
    for dim in [0, -2] {
        let y = run(&e.spec(2, dim), NearestEven, &xt, &[5, 2], 0);
        assert_same_slices(&y, &wt, &format!("transposed, dim {dim}"));
    }

    // The default block of 32 over 40 elements: [0, 32) and the tail [32, 40).
    // E4M3, first block max 100: X = 2^(6-8) = 1/4; 100 / X = 400 is a tie
    // of 384 and 416 (step 32) -> 384 -> 96; 0.0011 / X = 0.0044 is 2.25
    // subnormal steps of 2^-9 -> 2 -> 2^-8·X = 2^-10.
    // Tail, max 0.0011: X = 2^(-10-8) = 2^-18; 0.0011 / X = 288.36 in
    // [256, 512), step 32: 9.01 -> 9 -> 288·2^-18.
    let e = elem("fp8_e4m3");
    let mut x = vec![0.0011f32; 40];
    x[0] = 100.0;
    let y = run_on(
        r#"{ format = "mx", elem = "fp8_e4m3" }"#,
        NearestEven,
        Backend::Native,
        &x,
        &[40],
        0,
    );
    let mut want = vec![p2(-10) as f32; 40];
    want[0] = 96.0;
    for w in &mut want[32..] {
        *w = (288.0 * p2(-18)) as f32;
    }
    assert_same_slices(&y, &want, "40 elements, default block");
    assert_same_slices(&run(&e.spec(32, -1), NearestEven, &x, &[40], 0), &want, "");
}

#[test]
fn a_nan_or_infinity_makes_its_whole_block_nan() {
    let x = [
        1.0,
        f32::NAN,
        2.0,
        3.0, // blocks: [1, NaN] all NaN; [2, 3] normal
        f32::INFINITY,
        0.5,
        -0.0,
        f32::NEG_INFINITY, // both blocks NaN
        0.5,
        0.25,
        -0.0,
        0.0, // normal
    ];
    let poisoned = [0, 1, 4, 5, 6, 7];
    // The other blocks are rounded as if the poisoned ones were not there.
    let mut clean = x;
    for &i in &poisoned {
        clean[i] = 0.0;
    }
    for e in ELEMS {
        for r in ALL {
            let y = run(&e.spec(2, -1), r, &x, &[3, 4], 9);
            let c = run(&e.spec(2, -1), r, &clean, &[3, 4], 9);
            for i in 0..x.len() {
                if poisoned.contains(&i) {
                    assert!(y[i].is_nan(), "{} {r}: element {i} = {}", e.name, y[i]);
                } else {
                    assert!(same(y[i], c[i]), "{} {r}: element {i}", e.name);
                }
            }
        }
    }
    // A block whose only non-finite element is the maximum candidate, in
    // both the first and a later position, also along dim 0.
    let e = elem("fp6_e2m3");
    let x = [f32::INFINITY, 1.0, 2.0, 4.0, 1.0, f32::NAN];
    let y = run(&e.spec(3, 0), NearestEven, &x, &[3, 2], 0);
    assert!(y.iter().all(|v| v.is_nan()), "{y:?}");
    let y = run(&e.spec(2, 0), NearestEven, &x, &[3, 2], 0);
    assert!(y[0].is_nan() && y[2].is_nan() && y[5].is_nan());
    assert_eq!([y[1], y[3], y[4]], [1.0, 4.0, 1.0]);
}

#[test]
fn zero_and_tiny_blocks_take_the_smallest_scale() {
    for e in ELEMS {
        // All zeros: X = 2^-127; the zeros keep their signs.
        let y = run_block(e, NearestEven, &[0.0, -0.0, 0.0]);
        assert_same_slices(&y, &[0.0, -0.0, 0.0], e.name);
        let lib = MxFormat::new(MxElem::from_name(e.name).unwrap(), 32, -1).unwrap();
        assert_eq!(lib.shared_exponent(0.0), Some(-127));
        assert_eq!(lib.shared_exponent(p2(-149)), Some(-127));
        assert_eq!(lib.shared_exponent(f64::NAN), None);
        assert_eq!(lib.shared_exponent(f64::INFINITY), None);
    }
    // E4M3: max 2^-140 would want X = 2^-148; the E8M0 scale stops at 2^-127.
    // 2^-140 / 2^-127 = 2^-13, below half the min subnormal 2^-9.
    let e = elem("fp8_e4m3");
    let x = [p2(-140) as f32, -(p2(-140) as f32)];
    assert_same_slices(&run_block(e, NearestEven, &x), &[0.0, -0.0], "2^-140");
    let up = [p2(-136) as f32, -0.0];
    assert_same_slices(&run_block(e, Up, &x), &up, "2^-140 up");
    // 2^-136 / 2^-127 = 2^-9, the min subnormal; 3·2^-138 is 0.75 of it.
    let x = [p2(-136) as f32, -(3.0 * p2(-138)) as f32];
    let want = [p2(-136) as f32, -(p2(-136) as f32)];
    assert_same_slices(&run_block(e, NearestEven, &x), &want, "2^-136");
}

#[test]
fn int8_elements_are_sixty_fourths_clamped_to_127() {
    let e = elem("int8");
    // Max 1.0: X = 2^(0 - 0) = 1; 0.3·64 = 19.2 -> 19; 0.01·64 = 0.64 -> 1.
    // Max 1.999: X = 1; 1.99·64 = 127.36 -> 127; -1.999·64 = -127.94 -> -128,
    //   clamped to -127 (the max normal, sign kept); 2^-7·64 = 0.5 -> 0.
    // Max 3.9: X = 2; 0.1 / 2 · 64 = 3.2 -> 3; -3.9 / 2 · 64 = -124.8 -> -125.
    let x = [
        1.0,
        0.3,
        -1.0,
        0.01,
        1.5,
        1.99,
        -1.999,
        p2(-7) as f32,
        3.0,
        0.1,
        -3.9,
        0.0,
    ];
    let want = [
        1.0,
        19.0 / 64.0,
        -1.0,
        1.0 / 64.0,
        1.5,
        127.0 / 64.0,
        -127.0 / 64.0,
        0.0,
        3.0,
        3.0 / 32.0,
        -125.0 / 32.0,
        0.0,
    ];
    let y = run(&e.spec(4, -1), NearestEven, &x, &[12], 0);
    assert_same_slices(&y, &want, "int8");
    // Rounding down never reaches -128/64 either.
    let y = run(&e.spec(4, -1), Down, &x, &[12], 0);
    assert_eq!(y[6], -127.0 / 64.0);
    // Every output is k/64 · X with |k| <= 127, under every mode.
    let mut data = Data(3);
    let x = data.spread(256, -12, 12);
    for r in ALL {
        let y = run(&e.spec(8, -1), r, &x, &[256], 4);
        for (b, (xs, ys)) in x.chunks(8).zip(y.chunks(8)).enumerate() {
            let max = xs.iter().fold(0f64, |m, &v| m.max(f64::from(v).abs()));
            let step = p2(floor_log2(max) - 6);
            for &v in ys {
                let k = f64::from(v) / step;
                assert!(k.fract() == 0.0 && k.abs() <= 127.0, "{r} block {b}: {v}");
            }
        }
    }
}

#[test]
fn every_rounding_mode_moves_a_chosen_element_its_own_way() {
    // E4M3 blocks [1.0, x]: X = 2^-8 and x / X lies in [64, 128), step 8, so
    // x sits between multiples of 8·2^-8 = 2^-5: 0.3 between 9 and 10 steps
    // (0.28125, 0.3125), 0.296875 on the tie 9.5, 0.265625 on the tie 8.5.
    let e = elem("fp8_e4m3");
    let (s9, s10, s8) = (0.28125, 0.3125, 0.25);
    #[rustfmt::skip]
    let cases: [(Rounding, [f32; 5]); 6] = [
        //            0.3   -0.3   0.296875  0.265625 -0.265625
        (NearestEven, [s10, -s10, s10, s8, -s8]),
        (NearestAway, [s10, -s10, s10, s9, -s9]),
        (NearestUp,   [s10, -s10, s10, s9, -s8]),
        (TowardZero,  [s9,  -s9,  s9,  s8, -s8]),
        (Down,        [s9,  -s10, s9,  s8, -s9]),
        (Up,          [s10, -s9,  s10, s9, -s8]),
    ];
    let inputs = [0.3f32, -0.3, 0.296875, 0.265625, -0.265625];
    for (r, want) in cases {
        for (&x, w) in inputs.iter().zip(want) {
            let y = run_block(e, r, &[1.0, x]);
            assert_eq!(y, [1.0, w], "{r} of {x}");
        }
    }
    // Stochastic: always one of the neighbours, and both occur.
    let x: Vec<f32> = [1.0f32, 0.3].repeat(500);
    for r in [Rounding::STOCHASTIC, SR2, Rounding::Stochastic { bits: 1 }] {
        let y = run(&e.spec(2, -1), r, &x, &[1000], 17);
        let picks: Vec<f32> = y.iter().skip(1).step_by(2).copied().collect();
        assert!(picks.iter().all(|&v| v == s9 || v == s10), "{r}");
        assert!(picks.contains(&s9) && picks.contains(&s10), "{r}");
    }
}

/// Mean of `n` stochastic roundings of `x` in blocks `[1.0, x]`, and the
/// two neighbours of `x`.
fn stochastic_mean(e: Elem, r: Rounding, x: f32, seed: u64) -> (f64, f64, f64) {
    const N: usize = 20_000;
    let data: Vec<f32> = [1.0f32, x].repeat(N);
    let y = run(&e.spec(2, -1), r, &data, &[N, 2], seed);
    // X = 2^-emax for a block max of 1; the neighbours from the reference.
    let u = f64::from(x) * p2(e.emax);
    let lo = ref_element(&e, &e.values(), u, Down, 0) * p2(-e.emax);
    let hi = ref_element(&e, &e.values(), u, Up, 0) * p2(-e.emax);
    let mut sum = 0.0;
    for pair in y.chunks(2) {
        assert_eq!(pair[0], 1.0);
        let v = f64::from(pair[1]);
        assert!(v == lo || v == hi, "{}: {v} not in {{{lo}, {hi}}}", e.name);
        sum += v;
    }
    (sum / N as f64, lo, hi)
}

#[test]
fn stochastic_rounding_is_unbiased() {
    const N: f64 = 20_000.0;
    for e in ELEMS {
        for (r, seed) in [(Rounding::STOCHASTIC, 1), (SR2, 2)] {
            let x = 0.3f32;
            let (mean, lo, hi) = stochastic_mean(e, r, x, seed);
            let step = hi - lo;
            let p = (f64::from(x) - lo) / step;
            assert!(p > 0.1 && p < 0.9, "{}: p = {p}", e.name);
            // With k bits the fraction is truncated to k bits first.
            let p_eff = match r {
                Rounding::Stochastic { bits: 32 } => p,
                Rounding::Stochastic { bits } => {
                    (p * p2(i32::from(bits))).floor() / p2(i32::from(bits))
                }
                _ => unreachable!(),
            };
            let want = lo + p_eff * step;
            let se = step * (p_eff * (1.0 - p_eff) / N).sqrt();
            assert!(
                (mean - want).abs() <= 4.0 * se + 1e-15,
                "{} {r}: mean {mean} vs {want} (4 se = {})",
                e.name,
                4.0 * se
            );
        }
    }
}

#[test]
fn stochastic_rounding_is_seed_reproducible() {
    let mut data = Data(11);
    let x = data.spread(6 * 70, -8, 8);
    for e in ELEMS {
        for r in [Rounding::STOCHASTIC, SR2] {
            let spec = e.spec(32, 1);
            let a = run(&spec, r, &x, &[6, 70], 7);
            let b = run(&spec, r, &x, &[6, 70], 7);
            let c = run(&spec, r, &x, &[6, 70], 8);
            assert_same_slices(&a, &b, &format!("{} {r}: same seed", e.name));
            let differ = a.iter().zip(&c).filter(|(p, q)| !same(**p, **q)).count();
            assert!(differ > 20, "{} {r}: only {differ} differ", e.name);
        }
    }
    // Successive calls on one generator draw fresh numbers.
    let q = quantizer(&elem("fp4_e2m1").spec(32, -1), SR2, Backend::Auto);
    let t = tensor(&x, &[x.len()]);
    let mut rng = QuantRng::new(5);
    let first = values(&q.quantize(&t, &mut rng).unwrap());
    let second = values(&q.quantize(&t, &mut rng).unwrap());
    assert_ne!(first, second);
    assert_eq!(rng.streams_used(), 2);
}

// ---------------------------------------------------------------------------
// Spec, registry and shapes
// ---------------------------------------------------------------------------

#[test]
fn spec_errors_name_the_problem() {
    let err = |spec: &str| spec.parse::<Quantizer>().unwrap_err().to_string();

    let msg = err(r#"{ format = "mx", elem = "fp8" }"#);
    assert!(msg.contains("\"fp8\"") && msg.contains("`elem`"), "{msg}");
    for e in ELEMS {
        assert!(msg.contains(&format!("\"{}\"", e.name)), "{msg}");
        assert!(msg.contains(&format!("\"{}\"", e.mx_name)), "{msg}");
    }
    let msg = err(r#"{ format = "mx", elem = 8 }"#);
    assert!(msg.contains("`elem`") && msg.contains("fp4_e2m1"), "{msg}");
    let msg = err(r#"{ format = "mx" }"#);
    assert!(msg.contains("needs key `elem`"), "{msg}");
    assert!(msg.contains("mxint8"), "{msg}");

    for bad in ["0", "-3", "1.5", "\"32\""] {
        let msg = err(&format!(
            r#"{{ format = "mx", elem = "int8", block_size = {bad} }}"#
        ));
        assert!(msg.contains("`block_size`"), "{bad}: {msg}");
    }
    for bad in ["64", "-65", "\"last\""] {
        let msg = err(&format!(
            r#"{{ format = "mx", elem = "int8", dim = {bad} }}"#
        ));
        assert!(msg.contains("`dim`"), "{bad}: {msg}");
    }
    let msg = err(r#"{ format = "mx", elem = "int8", blocksize = 16 }"#);
    assert!(msg.contains("did you mean `block_size`"), "{msg}");
    assert!(MxFormat::new(MxElem::Int8, 0, -1).is_err());
}

#[test]
fn a_block_dimension_beyond_the_rank_is_an_error() {
    let x = tensor(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
    for dim in [2, 5, -3] {
        let spec = elem("fp6_e3m2").spec(4, dim);
        for r in [NearestEven, Rounding::STOCHASTIC] {
            for b in [Backend::Auto, Backend::Native, Backend::Tensor] {
                let q = quantizer(&spec, r, b);
                let err = q.quantize(&x, &mut QuantRng::new(0)).unwrap_err();
                let msg = err.to_string();
                assert!(matches!(err, Error::Unsupported { .. }), "{msg}");
                assert!(msg.contains(&format!("dimension {dim} ")), "{b}: {msg}");
                assert!(msg.contains("[2, 3]"), "{b}: {msg}");
                let wide = x.to_kind(Kind::Double);
                if b != Backend::Native {
                    let msg = q.quantize(&wide, &mut QuantRng::new(0)).unwrap_err();
                    assert!(msg.to_string().contains("[2, 3]"), "{msg}");
                }
            }
        }
    }
}

#[test]
fn params_round_trip_through_the_registry() {
    for e in ELEMS {
        for name in [e.name, e.mx_name] {
            for (block, dim) in [(32, -1), (1, 0), (16, 3), (33, -2)] {
                for r in ALL {
                    let spec = format!(
                        r#"{{ format = "mx", elem = "{name}", block_size = {block}, dim = {dim} }}"#
                    );
                    let q = quantizer(&spec, r, Backend::Tensor);
                    let params = q.format().params();
                    assert_eq!(params["elem"].as_str(), Some(e.name));
                    assert_eq!(params["block_size"].as_integer(), Some(block));
                    assert_eq!(params["dim"].as_integer(), Some(dim));
                    let again: Quantizer = q.to_string().parse().unwrap();
                    assert_eq!(again.to_string(), q.to_string());
                    assert_eq!(again.format().params(), params);
                    assert_eq!(again.rounding(), r);
                    let rebuilt = swalp_core::registry::build_format(&q.spec()).unwrap();
                    assert_eq!(rebuilt.params(), params);
                }
            }
        }
    }
    // Defaults: block_size 32, the last dimension, the OCP scale rule.
    let q = quantizer(
        r#"{ format = "mx", elem = "mxint8" }"#,
        NearestEven,
        Backend::Auto,
    );
    assert_eq!(
        q.to_string(),
        r#"{ format = "mx", elem = "int8", block_size = 32, dim = -1, scale_rule = "floor", rounding = "nearest-even" }"#
    );
    let factory = swalp_core::registry::find("mx").unwrap();
    let keys: Vec<&str> = factory.params.iter().map(|p| p.name).collect();
    assert_eq!(keys, ["elem", "block_size", "dim", "scale_rule"]);
}

#[test]
fn dim_picks_the_blocked_dimension() {
    let mut data = Data(21);
    let x = data.spread(2 * 6 * 5, -6, 6);
    let t = tensor(&x, &[2, 6, 5]);
    for e in ELEMS {
        for r in [NearestEven, Down] {
            for (dim, neg) in [(0, -3), (1, -2), (2, -1)] {
                let spec = e.spec(4, dim);
                let q = quantizer(&spec, r, Backend::Auto);
                let y = values(&q.quantize(&t, &mut QuantRng::new(0)).unwrap());
                let yn = run(&e.spec(4, neg), r, &x, &[2, 6, 5], 0);
                assert_same_slices(&y, &yn, &format!("{} dim {dim} vs {neg}", e.name));
                // Moving the dimension last and blocking the last one agrees.
                let moved = t.movedim([dim], [2]).contiguous();
                let q_last = quantizer(&e.spec(4, -1), r, Backend::Auto);
                let z = q_last
                    .quantize(&moved, &mut QuantRng::new(0))
                    .unwrap()
                    .movedim([2], [dim]);
                assert_same_slices(&y, &values(&z), &format!("{} dim {dim}", e.name));
            }
        }
    }
}

#[test]
fn scalars_empty_and_non_contiguous_tensors() {
    let e = elem("fp8_e4m3");
    // A 0-d tensor is a block of one: 0.3 -> X = 2^(-2-8); 0.3 / X = 307.2 in
    // [256, 512), step 32: 9.6 -> 10 -> 320·2^-10 = 0.3125.
    for dim in [-1, 0] {
        for b in [Backend::Auto, Backend::Native, Backend::Tensor] {
            let q = quantizer(&e.spec(32, dim), NearestEven, b);
            let y = q
                .quantize(&Tensor::from(0.3f32), &mut QuantRng::new(0))
                .unwrap();
            assert_eq!(y.size(), Vec::<i64>::new());
            assert_eq!(f32::try_from(&y).unwrap(), 0.3125);
        }
    }
    let q = quantizer(&e.spec(32, 1), NearestEven, Backend::Auto);
    assert!(q
        .quantize(&Tensor::from(0.3f32), &mut QuantRng::new(0))
        .is_err());

    for b in [Backend::Auto, Backend::Native, Backend::Tensor] {
        let q = quantizer(&e.spec(4, 1), Rounding::STOCHASTIC, b);
        let empty = Tensor::zeros([0, 3], (Kind::Float, swalp_core::tch::Device::Cpu));
        assert_eq!(
            q.quantize(&empty, &mut QuantRng::new(0)).unwrap().size(),
            [0, 3]
        );
    }

    let mut data = Data(4);
    let x = data.spread(7 * 9, -4, 4);
    let t = tensor(&x, &[7, 9]).transpose(0, 1);
    assert!(!t.is_contiguous());
    for r in [NearestEven, Rounding::STOCHASTIC] {
        for b in [Backend::Auto, Backend::Native, Backend::Tensor] {
            let q = quantizer(&elem("fp6_e2m3").spec(4, -1), r, b);
            let a = values(&q.quantize(&t, &mut QuantRng::new(2)).unwrap());
            let c = values(&q.quantize(&t.contiguous(), &mut QuantRng::new(2)).unwrap());
            assert_same_slices(&a, &c, &format!("{r} {b}"));
        }
    }
}

#[test]
fn wide_inputs_clamp_the_scale_at_2_to_the_127() {
    // f64 inputs reach scales beyond E8M0: max 2^200 wants X = 2^192 (E4M3),
    // which clamps to 2^127, so 2^200 / X = 2^73 saturates at 448 and
    // 1.0 / X = 2^-127 rounds to zero.
    let e = elem("fp8_e4m3");
    let x = [p2(200), 1.0, -p2(199), 1e-300];
    let q = quantizer(&e.spec(4, -1), NearestEven, Backend::Auto);
    let y = q
        .quantize(&Tensor::from_slice(&x), &mut QuantRng::new(0))
        .unwrap();
    assert_eq!(y.kind(), Kind::Double);
    let y = Vec::<f64>::try_from(&y).unwrap();
    assert_eq!(y, [448.0 * p2(127), 0.0, -448.0 * p2(127), 0.0]);
    assert_eq!(y, reference(&e, &x, &[4], 4, 0, NearestEven, 0));
    // And tiny f64 maxima clamp at 2^-127 like zero blocks.
    let x = [1e-300, -1e-310, 0.0];
    let y = q
        .quantize(&Tensor::from_slice(&x), &mut QuantRng::new(0))
        .unwrap();
    let y = Vec::<f64>::try_from(&y).unwrap();
    assert_same_slices(
        &y.iter().map(|&v| v as f32).collect::<Vec<_>>(),
        &[0.0, -0.0, 0.0],
        "tiny",
    );
}

#[test]
fn reduced_precision_dtypes_match_f32() {
    let mut data = Data(8);
    let x: Vec<f32> = data
        .spread(64, -10, 10)
        .iter()
        .map(|&v| half_bf16(v))
        .collect();
    for e in ELEMS {
        for r in [NearestEven, Rounding::STOCHASTIC] {
            let q = quantizer(&e.spec(8, -1), r, Backend::Auto);
            let bf = tensor(&x, &[64]).to_kind(Kind::BFloat16);
            let y = q.quantize(&bf, &mut QuantRng::new(3)).unwrap();
            assert_eq!(y.kind(), Kind::BFloat16);
            let want = run(&e.spec(8, -1), r, &x, &[64], 3);
            assert_same_slices(&values(&y), &want, &format!("{} {r} bf16", e.name));
        }
    }
}

/// `v` truncated to bfloat16 precision (8 significant bits), as an f32.
fn half_bf16(v: f32) -> f32 {
    f32::from_bits(v.to_bits() & 0xffff_0000)
}

#[test]
fn backends_agree_on_large_inputs() {
    // Beyond the native kernel's parallel threshold (2^15 elements).
    let mut data = Data(99);
    let x = data.spread(300 * 130, -20, 20);
    for e in ELEMS {
        for (r, dim) in [(NearestEven, 0), (Rounding::STOCHASTIC, -1), (SR2, 1)] {
            let y = run(&e.spec(32, dim), r, &x, &[300, 130], 42);
            let want = reference_f32(&e, &x, &[300, 130], 32, (dim + 2) as usize % 2, r, 42);
            assert_same_slices(&y, &want, &format!("{} {r} dim {dim}", e.name));
        }
    }
}

// ---------------------------------------------------------------------------
// Properties on random blocks
// ---------------------------------------------------------------------------

const SPECIAL_VALUES: [f32; 9] = [
    f32::NAN,
    f32::INFINITY,
    f32::NEG_INFINITY,
    f32::MAX,
    f32::MIN,
    f32::MIN_POSITIVE,
    1e-45,
    -1e-45,
    -3e-39,
];

/// Inputs from raw draws around `2^base`: mostly values with random
/// mantissas, some on coarse grids (ties), zeros, and with `wild` the odd
/// special value.
fn inputs(raw: &[(u8, u32, u32)], base: i32, wild: bool) -> Vec<f32> {
    raw.iter()
        .map(|&(cat, a, b)| {
            let sign = if b & 1 == 1 { -1.0 } else { 1.0 };
            let e = (base + (a % 25) as i32 - 12).clamp(-149, 127);
            match cat % 32 {
                0 if wild => SPECIAL_VALUES[a as usize % SPECIAL_VALUES.len()],
                1 | 2 => 0.0f32.copysign(sign as f32),
                3..=10 => (sign * f64::from(b >> 22) * p2(e - 9)) as f32,
                _ => (sign * (1.0 + f64::from(b >> 9) / p2(23)) * p2(e)) as f32,
            }
        })
        .collect()
}

/// A shape of rank 1..=3 with `n` elements at most, a dim and a block size.
fn layout() -> impl Strategy<Value = (Vec<usize>, i64, usize)> {
    (
        prop::collection::vec(1usize..=9, 1..=3),
        0usize..3,
        prop_oneof![Just(1usize), Just(2), Just(3), Just(4), Just(7), Just(32)],
        any::<bool>(),
    )
        .prop_map(|(shape, d, block, negative)| {
            let d = d % shape.len();
            let dim = if negative {
                d as i64 - shape.len() as i64
            } else {
                d as i64
            };
            (shape, dim, block)
        })
}

fn base() -> impl Strategy<Value = i32> {
    prop_oneof![6 => -20i32..=20, 1 => -150i32..=-110, 1 => 100i32..=127]
}

/// Raw draws for [`inputs`].
type Raw = Vec<(u8, u32, u32)>;

fn raw(n: usize) -> impl Strategy<Value = Raw> {
    prop::collection::vec(any::<(u8, u32, u32)>(), n)
}

/// A layout, raw draws for every element, and the binade they centre on.
fn case() -> impl Strategy<Value = (Vec<usize>, i64, usize, Raw, i32)> {
    (layout(), base()).prop_flat_map(|((shape, dim, block), base)| {
        let n = shape.iter().product();
        (Just(shape), Just(dim), Just(block), raw(n), Just(base))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Both kernels equal the independent f64 reference, for every element
    /// type and every rounding mode, stochastic ones draw for draw.
    #[test]
    fn kernels_match_the_independent_reference(
        (shape, dim, block, raw, base) in case(),
        wild in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let x = inputs(&raw, base, wild);
        let d = (if dim < 0 { dim + shape.len() as i64 } else { dim }) as usize;
        for e in ELEMS {
            for r in ALL {
                let spec = e.spec(block, dim);
                let y = run(&spec, r, &x, &shape, seed);
                let want = reference_f32(&e, &x, &shape, block, d, r, seed);
                assert_same_slices(&y, &want, &format!("{spec} {r} {shape:?} x = {x:?}"));
            }
        }
    }

    /// Every output is representable: re-quantizing it with nearest-even
    /// (on either backend) gives it back bit for bit.
    #[test]
    fn outputs_are_representable(
        (shape, dim, block, raw, base) in case(),
        wild in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let x = inputs(&raw, base, wild);
        for e in ELEMS {
            let spec = e.spec(block, dim);
            for r in ALL {
                let y = run(&spec, r, &x, &shape, seed);
                let z = run(&spec, NearestEven, &y, &shape, 0);
                assert_same_slices(&z, &y, &format!("{spec}: {r} then nearest-even"));
            }
        }
    }

    /// The native and tensor kernels agree bit for bit on arbitrary bit
    /// patterns (NaN payloads, infinities, subnormals included).
    #[test]
    fn backends_agree_on_arbitrary_bits(
        (shape, dim, block) in layout(),
        bits in prop::collection::vec(any::<u32>(), 1..64),
        seed in any::<u64>(),
    ) {
        let n: usize = shape.iter().product();
        let x: Vec<f32> = (0..n).map(|i| f32::from_bits(bits[i % bits.len()].rotate_left(i as u32))).collect();
        for e in ELEMS {
            for r in ALL {
                run(&e.spec(block, dim), r, &x, &shape, seed);
            }
        }
    }
}

#[test]
fn every_deterministic_mode_matches_the_reference_on_dense_grids() {
    // Every multiple of a quarter step across each element type's whole
    // range (ties and near-ties included), in blocks anchored at the max.
    for e in ELEMS {
        let table = e.magnitudes();
        let mut x = Vec::new();
        for w in table.windows(2) {
            let (lo, hi) = (w[0].0, w[1].0);
            for q in 0..4 {
                let v = lo + (hi - lo) * f64::from(q) / 4.0;
                x.extend([e.max_normal, v, -v, e.max_normal * 1.005]);
            }
        }
        let x: Vec<f32> = x.iter().map(|&v| (v * p2(-3)) as f32).collect();
        for r in Rounding::DETERMINISTIC {
            let y = run(&e.spec(4, -1), r, &x, &[x.len()], 0);
            let want = reference_f32(&e, &x, &[x.len()], 4, 0, r, 0);
            assert_same_slices(&y, &want, &format!("{} {r}", e.name));
        }
    }
}

// ---------------------------------------------------------------------------
// Scale rules against torchao 0.18
// ---------------------------------------------------------------------------

/// torchao 0.18.0's `to_mx` + `dequantize` for every element type it has
/// and every `ScaleCalculationMode`, nearest-even (vectors from
/// `tests/torchao/gen_mx_scale_rules.py`): swalp's native and tensor kernels
/// equal them bit for bit, on random blocks over 2^±60 and on blocks whose
/// maximum sits at, or one ulp from, a power of two times the element max.
#[test]
fn scale_rules_equal_torchao_0_18() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/torchao/mx_scale_rules.safetensors"
    );
    let vectors: HashMap<String, Tensor> = Tensor::read_safetensors(path)
        .unwrap()
        .into_iter()
        .collect();
    let mut compared = 0;
    for e in ELEMS.iter().filter(|e| e.name != "int8") {
        let flat = |key: String| Vec::<f32>::try_from(&vectors[&key].flatten(0, -1)).unwrap();
        let x = flat(format!("{}.input", e.name));
        for rule in ["floor", "ceil", "even", "rceil"] {
            let expected = flat(format!("{}.{rule}", e.name));
            let spec = format!(
                r#"{{ format = "mx", elem = "{}", scale_rule = "{rule}" }}"#,
                e.name
            );
            let y = run(&spec, NearestEven, &x, &[x.len() / 32, 32], 0);
            assert_same_slices(&y, &expected, &format!("{spec} vs torchao"));
            compared += 1;
        }
    }
    assert_eq!(compared, 20);
}

/// The rules on hand-made E2M1 blocks (max 6, emax 2, one mantissa bit).
#[test]
fn scale_rules_on_hand_made_fp4_blocks() {
    let f = |rule: &str| {
        MxFormat::new(MxElem::Fp4E2m1, 32, -1)
            .unwrap()
            .with_scale_rule(swalp_formats::ScaleRule::from_name(rule).unwrap())
    };
    // (max, floor, ceil, even, rceil)
    for (max, floor, ceil, even, rceil) in [
        (4.0, 0, 0, 0, 0),  // a power of two: all agree but rceil (4/6 < 1)
        (5.0, 0, 1, 0, 0),  // 1.25·4: even rounds 1.25 to 1.5, no carry
        (6.0, 0, 1, 0, 0),  // the element max: rceil fits it exactly
        (7.0, 0, 1, 1, 1),  // 1.75·4 rounds to 2·4; 7/6 > 1
        (12.0, 1, 2, 1, 1), // 1.5·8
        (0.0, -127, -127, -127, -127),
    ] {
        let got: Vec<Option<i32>> = ["floor", "ceil", "even", "rceil"]
            .iter()
            .map(|r| f(r).shared_exponent(max))
            .collect();
        assert_eq!(
            got,
            [Some(floor), Some(ceil), Some(even), Some(rceil)],
            "max {max}"
        );
    }
    // Ceil near f32::MAX: the largest element rounds up to 2^8 · 2^120,
    // infinite in f32, as torchao dequantizes it (floor saturates instead).
    let big = [3.3e38f32, 1.0];
    let y = run(
        r#"{ format = "mx", elem = "fp8_e4m3", scale_rule = "ceil" }"#,
        NearestEven,
        &big,
        &[2],
        0,
    );
    assert_eq!(y, [f32::INFINITY, 0.0]);
    let y = run(
        r#"{ format = "mx", elem = "fp8_e4m3" }"#,
        NearestEven,
        &big,
        &[2],
        0,
    );
    assert_eq!(y[0], 448.0 * 2f32.powi(119));
    // An f32 maximum that rounds past f32::MAX: the block is NaN, as in
    // torchao; non-finite maxima always are.
    assert_eq!(f("even").shared_exponent(f64::from(f32::MAX)), None);
    assert_eq!(f("ceil").shared_exponent(f64::INFINITY), None);
    let err = "{ format = \"mx\", elem = \"fp4_e2m1\", scale_rule = \"up\" }"
        .parse::<Quantizer>()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("\"floor\" | \"ceil\" | \"even\" | \"rceil\""),
        "{err}"
    );
}
