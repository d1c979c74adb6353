//! Tests of the `posit` format through the public spec syntax, on both
//! backends.
//!
//! Expected values never come from the format's own code: posits are decoded
//! from their bit patterns by [`decode`] below (itself checked against tables
//! computed by hand), and the standard's rounding threshold between two
//! neighbouring posits is decoded as the `(n+1)`-bit pattern of the lower one
//! followed by a one bit.

use swalp_conformance::{
    assert_same_outputs, quantizer, run_on, same, Data, ALL_ROUNDINGS as ALL, BACKENDS,
};
use swalp_core::tch::{Kind, Tensor};
use swalp_core::{Backend, QuantRng, Quantizer, Rounding};
use swalp_posit as _;

use Rounding::{Down, NearestAway, NearestEven, NearestUp, TowardZero, Up};

/// Every (n, es) the exhaustive tests enumerate.
const SMALL: [(u32, u32); 20] = [
    (2, 0),
    (2, 3),
    (3, 0),
    (3, 1),
    (4, 2),
    (5, 0),
    (5, 2),
    (6, 2),
    (7, 3),
    (8, 0),
    (8, 1),
    (8, 2),
    (8, 3),
    (8, 4),
    (9, 4),
    (10, 1),
    (12, 3),
    (16, 1),
    (16, 2),
    (17, 3),
];

// ---------------------------------------------------------------- helpers

/// The value of the `n`-bit posit pattern `p` with `es` exponent bits,
/// decoded bit by bit as the standard describes it; NaR is NaN.
fn decode(n: u32, es: u32, p: u64) -> f64 {
    let mask = (1u64 << n) - 1;
    let p = p & mask;
    if p == 0 {
        return 0.0;
    }
    if p == 1 << (n - 1) {
        return f64::NAN;
    }
    let negative = p >> (n - 1) == 1;
    let p = if negative { p.wrapping_neg() & mask } else { p };
    // The n - 1 bits after the sign, most significant first.
    let bits: Vec<u64> = (0..n - 1).rev().map(|i| (p >> i) & 1).collect();
    let run = bits.iter().take_while(|&&b| b == bits[0]).count();
    let k = if bits[0] == 1 {
        run as i32 - 1
    } else {
        -(run as i32)
    };
    let rest = bits.get(run + 1..).unwrap_or(&[]);
    // Exponent bits cut off by the end of the word are zeros.
    let e = (0..es as usize).fold(0i32, |e, j| 2 * e + *rest.get(j).unwrap_or(&0) as i32);
    let fraction: f64 = rest
        .iter()
        .skip(es as usize)
        .enumerate()
        .map(|(j, &b)| b as f64 * 2f64.powi(-(j as i32) - 1))
        .sum();
    let value = 2f64.powi(k * (1 << es) + e) * (1.0 + fraction);
    if negative {
        -value
    } else {
        value
    }
}

fn spec(n: u32, es: u32) -> String {
    format!(r#"{{ format = "posit", n = {n}, es = {es} }}"#)
}

fn quantize_seeded(
    n: u32,
    es: u32,
    rounding: Rounding,
    backend: Backend,
    x: &[f32],
    seed: u64,
) -> Vec<f32> {
    run_on(&spec(n, es), rounding, backend, x, &[x.len()], seed)
}

fn quantize(n: u32, es: u32, rounding: Rounding, backend: Backend, x: &[f32]) -> Vec<f32> {
    quantize_seeded(n, es, rounding, backend, x, 0)
}

fn quantize_f64(n: u32, es: u32, rounding: Rounding, x: &[f64]) -> Vec<f64> {
    let y = quantizer(&spec(n, es), rounding, Backend::Auto)
        .quantize(&Tensor::from_slice(x), &mut QuantRng::new(0))
        .unwrap();
    assert_eq!(y.kind(), Kind::Double);
    Vec::try_from(y).unwrap()
}

/// `v` as an `f32`, asserting that it is one.
fn f32_of(v: f64) -> f32 {
    assert_eq!(f64::from(v as f32), v, "{v:e} is not an f32");
    v as f32
}

fn next_up(v: f32) -> f32 {
    assert!(v > 0.0);
    f32::from_bits(v.to_bits() + 1)
}

fn next_down(v: f32) -> f32 {
    assert!(v > 0.0);
    f32::from_bits(v.to_bits() - 1)
}

// ------------------------------------------------------------- the tables

#[test]
fn the_decoder_matches_tables_computed_by_hand() {
    // (n, es, [(pattern, value)]).
    type Table<'a> = (u32, u32, &'a [(u64, f64)]);
    let tables: [Table<'_>; 4] = [
        (
            8,
            0,
            &[
                (0x00, 0.0),
                (0x01, 1.0 / 64.0), // minpos: 0 000000 1
                (0x02, 1.0 / 32.0), // 0 00000 1 0
                (0x03, 3.0 / 64.0), // 0 00000 1 1: (1 + 1/2) / 32
                (0x08, 0.125),      // 0 0001 000
                (0x10, 0.25),       // 0 001 0000
                (0x20, 0.5),        // 0 01 00000
                (0x30, 0.75),       // 0 01 10000
                (0x40, 1.0),        // 0 10 00000
                (0x41, 1.0 + 1.0 / 32.0),
                (0x50, 1.5),
                (0x60, 2.0),  // 0 110 0000
                (0x70, 4.0),  // 0 1110 000
                (0x7D, 24.0), // 0 111110 1: 16 · 1.5
                (0x7E, 32.0),
                (0x7F, 64.0), // maxpos
                (0xC0, -1.0),
                (0xFF, -1.0 / 64.0),
                (0x81, -64.0),
                (0xBF, -(1.0 + 1.0 / 32.0)),
            ],
        ),
        (
            8,
            1,
            &[
                (0x01, 1.0 / 4096.0), // 4^-6
                (0x20, 0.25),         // 0 01 0 0000: 4^-1
                (0x30, 0.5),          // 0 01 1 0000
                (0x40, 1.0),
                (0x48, 1.5),    // 0 10 0 1000
                (0x50, 2.0),    // 0 10 1 0000
                (0x60, 4.0),    // 0 110 0 000
                (0x70, 16.0),   // 0 1110 0 00
                (0x7D, 512.0),  // 0 11111 0 1: 4^4 · 2
                (0x7E, 1024.0), // 0 111111 0: 4^5
                (0x7F, 4096.0),
            ],
        ),
        (
            16,
            1,
            &[
                (0x0001, 2f64.powi(-28)),
                (0x3000, 0.5), // 0 01 1 000000000000
                (0x4000, 1.0),
                (0x4001, 1.0 + 2f64.powi(-12)),
                (0x5000, 2.0),
                (0x6000, 4.0),
                (0x7FFF, 2f64.powi(28)),
                (0xC000, -1.0),
            ],
        ),
        (
            8,
            2,
            &[
                (0x01, 2f64.powi(-24)), // 0 0000001: 16^-6
                (0x02, 2f64.powi(-20)), // 0 000001 0: 16^-5, exponent bit 0
                (0x03, 2f64.powi(-18)), // exponent bit 1: e = 2
                (0x40, 1.0),
                (0x41, 1.125), // 0 10 00 001
                (0x44, 1.5),
                (0x48, 2.0),           // 0 10 01 000
                (0x50, 4.0),           // 0 10 10 000
                (0x58, 8.0),           // 0 10 11 000
                (0x60, 16.0),          // 0 110 00 00
                (0x7C, 2f64.powi(16)), // 0 11111 0 0
                (0x7D, 2f64.powi(18)), // 0 11111 0 1: e = 2
                (0x7E, 2f64.powi(20)), // 0 111111 0
                (0x7F, 2f64.powi(24)),
                (0xFF, -(2f64.powi(-24))),
            ],
        ),
    ];
    for (n, es, table) in tables {
        let mut x = Vec::new();
        for &(pattern, value) in table {
            assert_eq!(
                decode(n, es, pattern),
                value,
                "posit<{n},{es}> {pattern:#x}"
            );
            x.push(value as f32);
        }
        assert!(decode(n, es, 1 << (n - 1)).is_nan());
        // Every value in the tables is a posit: a fixed point of every mode.
        for backend in BACKENDS {
            for rounding in ALL {
                let y = quantize(n, es, rounding, backend, &x);
                assert_same_outputs(&y, &x, &x, &format!("posit<{n},{es}> {rounding} {backend}"));
            }
        }
    }
}

#[test]
fn roundings_computed_by_hand() {
    let cases: &[(u32, u32, Rounding, f32, f32)] = &[
        // posit<8,0> near 1: step 1/32. 1 + 1/64 is a tie; 0x40 is even.
        (8, 0, NearestEven, 1.0 + 1.0 / 64.0, 1.0),
        (8, 0, NearestAway, 1.0 + 1.0 / 64.0, 1.0 + 1.0 / 32.0),
        (8, 0, NearestUp, -(1.0 + 1.0 / 64.0), -1.0),
        (8, 0, NearestEven, 1.0 + 3.0 / 64.0, 1.0625), // 0x42 is even
        (8, 0, Down, 1.01, 1.0),
        (8, 0, Up, 1.01, 1.0 + 1.0 / 32.0),
        (8, 0, TowardZero, -1.01, -1.0),
        (8, 0, Down, -1.01, -(1.0 + 1.0 / 32.0)),
        // 32..64: no fraction bits; the tie 48 goes to 32 (0x7E, even).
        (8, 0, NearestEven, 48.0, 32.0),
        (8, 0, NearestAway, 48.0, 64.0),
        (8, 0, NearestEven, 50.0, 64.0),
        // 1/64..1/32: the tie 3/128 goes to 1/32 (0x02; minpos 0x01 is odd).
        (8, 0, NearestEven, 3.0 / 128.0, 1.0 / 32.0),
        (8, 0, NearestEven, 100.0, 64.0),
        (8, 0, Up, 100.0, 64.0),
        (8, 0, NearestEven, 0.001, 1.0 / 64.0),
        (8, 0, Down, 0.001, 1.0 / 64.0),
        (8, 0, TowardZero, -0.001, -1.0 / 64.0),
        // posit<8,1> near 1: step 1/16.
        (8, 1, NearestEven, 1.03125, 1.0),
        (8, 1, NearestEven, 1.09375, 1.125),
        // 1024..4096 (0x7E..0x7F): the geometric midpoint 2048 is the tie.
        (8, 1, NearestEven, 2048.0, 1024.0),
        (8, 1, NearestEven, 2049.0, 4096.0),
        (8, 1, NearestAway, 2049.0, 1024.0), // nearer 1024 in value
        (8, 1, NearestAway, 2560.0, 4096.0), // the arithmetic midpoint
        (8, 1, NearestUp, -2560.0, -1024.0),
        // posit<16,1> near 1: step 2^-12.
        (16, 1, NearestEven, 1.0 + 1.0 / 8192.0, 1.0),
        (16, 1, NearestEven, 1.0 + 3.0 / 8192.0, 1.0 + 1.0 / 2048.0),
        (16, 1, NearestEven, 1e9, 268435456.0), // maxpos 2^28
        // posit<8,2>: 2^20..2^24 with the standard's tie at 2^22.
        (8, 2, NearestEven, 4194304.0, 1048576.0),
        (8, 2, NearestEven, 4194305.0, 16777216.0),
        (8, 2, NearestAway, 4194305.0, 1048576.0),
        (8, 2, NearestAway, 8912896.0, 16777216.0), // (2^20 + 2^24) / 2
        (8, 2, NearestEven, 196608.0, 262144.0),    // 3·2^16 -> 2^18
        (8, 2, Down, 196608.0, 65536.0),
        // minpos 2^-24 (odd) to 2^-20: the tie 2^-22 goes up.
        (8, 2, NearestEven, 1.0 / 4194304.0, 1.0 / 1048576.0),
        (8, 2, NearestEven, 1e-30, 1.0 / 16777216.0),
        (8, 2, NearestEven, 1.2, 1.25), // step 1/8
    ];
    for &(n, es, rounding, x, expected) in cases {
        for backend in BACKENDS {
            let y = quantize(n, es, rounding, backend, &[x])[0];
            assert!(
                same(y, expected),
                "posit<{n},{es}> {rounding} {backend}: {x:e} gave {y:e}, expected {expected:e}"
            );
        }
    }
}

// --------------------------------------------------------- exhaustive tests

/// For every posit of posit<n, es>: it is a fixed point of every mode, the
/// standard's threshold between each pair of neighbours rounds to the even
/// pattern (and values beside it to the nearer side), arithmetic midpoints
/// follow nearest-away / nearest-up, and directed modes pick the right
/// neighbour; positive and negative, on both backends.
fn check_every_posit(n: u32, es: u32) {
    let patterns = 1u64 << (n - 1);
    let positives: Vec<f32> = (1..patterns).map(|p| f32_of(decode(n, es, p))).collect();
    let (minpos, maxpos) = (positives[0], *positives.last().unwrap());
    assert_eq!(f64::from(minpos), 2f64.powi(-(1 << es) * (n as i32 - 2)));
    assert_eq!(f64::from(maxpos), 2f64.powi((1 << es) * (n as i32 - 2)));
    let mut cases: Vec<Vec<(f32, f32)>> = vec![Vec::new(); ALL.len()];
    // Adds `x -> expected` for each of `modes`.
    let mut add = |modes: &[Rounding], x: f32, expected: f32| {
        for mode in modes {
            let m = ALL.iter().position(|r| r == mode).unwrap();
            cases[m].push((x, expected));
        }
    };
    for &u in &positives {
        add(&ALL, u, u);
        add(&ALL, -u, -u);
    }
    for (i, pair) in positives.windows(2).enumerate() {
        let (u, w) = (pair[0], pair[1]);
        // The pattern of u is i + 1; negation keeps a pattern's parity.
        let u_even = (i + 1) % 2 == 0;
        let even = if u_even { u } else { w };
        // The standard's threshold: u's pattern followed by a one bit.
        let v = f32_of(decode(n + 1, es, 2 * (i as u64 + 1) + 1));
        assert!(u < v && v < w, "posit<{n},{es}>: {u:e} < {v:e} < {w:e}");
        for (x, y) in [(v, even), (next_up(v), w), (next_down(v), u)] {
            add(&[NearestEven], x, y);
            add(&[NearestEven], -x, -y);
        }
        // The arithmetic midpoint, and values beside it.
        let m = f32_of((f64::from(u) + f64::from(w)) / 2.0);
        add(&[NearestAway], m, w);
        add(&[NearestAway], -m, -w);
        add(&[NearestUp], m, w);
        add(&[NearestUp], -m, -u);
        for (x, y) in [(next_down(m), u), (next_up(m), w)] {
            add(&[NearestAway, NearestUp], x, y);
            add(&[NearestAway, NearestUp], -x, -y);
        }
        // Strictly between.
        let inside = next_up(u);
        add(&[Down, TowardZero], inside, u);
        add(&[Up], inside, w);
        add(&[Down], -inside, -w);
        add(&[Up, TowardZero], -inside, -u);
    }
    for (mode, cases) in ALL.iter().zip(&cases) {
        let x: Vec<f32> = cases.iter().map(|c| c.0).collect();
        let expected: Vec<f32> = cases.iter().map(|c| c.1).collect();
        for backend in BACKENDS {
            let y = quantize(n, es, *mode, backend, &x);
            assert_same_outputs(
                &y,
                &expected,
                &x,
                &format!("posit<{n},{es}> {mode} {backend}"),
            );
        }
    }
}

#[test]
fn all_256_posit8_es0_values_are_fixed_points_and_ties_go_to_even_patterns() {
    // Spelled out for the 8-bit case: every pattern, decoded independently.
    let values: Vec<f64> = (0..256).map(|p| decode(8, 0, p)).collect();
    assert_eq!(values.iter().filter(|v| v.is_nan()).count(), 1);
    let x: Vec<f32> = values
        .iter()
        .map(|&v| if v.is_nan() { f32::NAN } else { f32_of(v) })
        .collect();
    for backend in BACKENDS {
        for rounding in ALL {
            let y = quantize(8, 0, rounding, backend, &x);
            // -0.0 never occurs: pattern 0 is +0.
            assert_same_outputs(&y, &x, &x, &format!("posit<8,0> {rounding} {backend}"));
        }
    }
    check_every_posit(8, 0);
}

#[test]
fn every_posit_of_small_formats_rounds_by_the_standard() {
    for (n, es) in SMALL {
        check_every_posit(n, es);
    }
}

// ------------------------------------------------------- range and specials

#[test]
fn saturates_at_maxpos_and_never_underflows_to_zero() {
    for (n, es) in SMALL.into_iter().chain([(32, 2), (32, 0), (24, 1)]) {
        let maxpos = 2f32.powi((1 << es) * (n as i32 - 2));
        let minpos = 1.0 / maxpos;
        let x = [
            maxpos * 1.5,
            f32::MAX,
            -f32::MAX,
            minpos / 2.0,
            f32::from_bits(1), // the smallest subnormal
            -f32::from_bits(1),
            maxpos,
            minpos,
            -minpos,
        ];
        let expected = [
            maxpos, maxpos, -maxpos, minpos, minpos, -minpos, maxpos, minpos, -minpos,
        ];
        for backend in BACKENDS {
            for rounding in ALL {
                let y = quantize(n, es, rounding, backend, &x);
                assert_same_outputs(
                    &y,
                    &expected,
                    &x,
                    &format!("posit<{n},{es}> {rounding} {backend}"),
                );
            }
        }
    }
}

#[test]
fn nan_and_infinities_become_nar_and_zero_is_unsigned() {
    let x = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.0, -0.0];
    for backend in BACKENDS {
        for rounding in ALL {
            let y = quantize(16, 1, rounding, backend, &x);
            assert!(
                y[..3].iter().all(|v| v.is_nan()),
                "{rounding} {backend}: {y:?}"
            );
            assert_eq!(y[3].to_bits(), 0, "{rounding} {backend}");
            assert_eq!(y[4].to_bits(), 0, "{rounding} {backend}: -0 becomes +0");
        }
    }
    let y = quantize_f64(8, 2, NearestEven, &[f64::NAN, f64::INFINITY, -0.0, 1e300]);
    assert!(y[0].is_nan() && y[1].is_nan());
    assert_eq!((y[2].to_bits(), y[3]), (0, 2f64.powi(24)));
}

// ------------------------------------------------------------- properties

#[test]
fn rounding_is_monotone() {
    let mut data = Data(5);
    let mut x: Vec<f32> = (0..20_000).map(|_| data.wide_f32()).collect();
    x.sort_by(f32::total_cmp);
    for (n, es) in [(8, 0), (8, 2), (16, 1), (12, 3), (32, 2), (9, 4)] {
        for rounding in Rounding::DETERMINISTIC {
            let y = quantize(n, es, rounding, Backend::Native, &x);
            for i in 1..y.len() {
                assert!(
                    y[i - 1] <= y[i],
                    "posit<{n},{es}> {rounding}: {:e} -> {:e} but {:e} -> {:e}",
                    x[i - 1],
                    y[i - 1],
                    x[i],
                    y[i]
                );
            }
        }
    }
}

#[test]
fn native_and_tensor_kernels_agree_bit_for_bit() {
    let mut data = Data(9);
    let mut x: Vec<f32> = (0..50_000).map(|_| data.wide_f32()).collect();
    x.extend([f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.0, -0.0]);
    // Values near 1, where posits are dense.
    x.extend((0..5_000).map(|_| 1.0 + (data.next_u64() % 4096) as f32 / 4096.0));
    for (n, es) in [
        (2, 1),
        (5, 1),
        (8, 0),
        (8, 2),
        (8, 4),
        (16, 1),
        (16, 2),
        (17, 3),
        (24, 1),
        (32, 0),
        (32, 2),
    ] {
        for rounding in ALL {
            let native = quantize_seeded(n, es, rounding, Backend::Native, &x, 3);
            let tensor = quantize_seeded(n, es, rounding, Backend::Tensor, &x, 3);
            assert_same_outputs(&tensor, &native, &x, &format!("posit<{n},{es}> {rounding}"));
            // Results are posits: quantizing again changes nothing.
            if !rounding.is_stochastic() {
                let again = quantize(n, es, rounding, Backend::Native, &native);
                assert_same_outputs(
                    &again,
                    &native,
                    &native,
                    &format!("posit<{n},{es}> {rounding} twice"),
                );
            }
        }
    }
}

// ------------------------------------------------------------- stochastic

/// Stochastic decisions, element by element, from the draws of the stream
/// the quantizer uses: `x` rounds up from `lower` to `upper` when the
/// fraction `(x - lower)/(upper - lower)`, truncated to `bits` bits, plus the
/// top `bits` bits of the draw reaches `2^bits` (swalp's signed rule).
#[test]
fn stochastic_decisions_follow_the_draws_exactly() {
    let t_values = [0.25, 0.375, 0.5, 0.8125, 0.0625];
    // (n, es, u, w): neighbours on a fine grid, a coarse grid and across a
    // cut-short exponent (posit<8,2>: 2^16 | 2^18 and 2^20 | 2^24).
    let pairs: [(u32, u32, f64, f64); 4] = [
        (8, 0, 1.0, 1.0 + 1.0 / 32.0),
        (8, 0, 32.0, 64.0),
        (8, 2, 65536.0, 262144.0),
        (8, 2, 1048576.0, 16777216.0),
    ];
    let seed = 11;
    for bits in [32u8, 8, 2, 1] {
        let rounding = Rounding::Stochastic { bits };
        for &(n, es, u, w) in &pairs {
            let mut x = Vec::new();
            let mut expected = Vec::new();
            for _copy in 0..64 {
                for &t in &t_values {
                    for sign in [1.0, -1.0] {
                        let v = f32_of(sign * (u + t * (w - u)));
                        let (lower, upper, frac) = if sign > 0.0 {
                            (u, w, t)
                        } else {
                            (-w, -u, 1.0 - t)
                        };
                        x.push(v);
                        expected.push((lower, upper, frac));
                    }
                }
            }
            let stream = QuantRng::new(seed).next_stream();
            let expected: Vec<f32> = expected
                .iter()
                .enumerate()
                .map(|(i, &(lower, upper, frac))| {
                    let one = 1u64 << bits;
                    let truncated = (frac * one as f64).floor() as u64;
                    let draw = u64::from(stream.bits(i as u64)) >> (32 - u32::from(bits));
                    (if truncated + draw >= one {
                        upper
                    } else {
                        lower
                    }) as f32
                })
                .collect();
            for backend in BACKENDS {
                let y = quantize_seeded(n, es, rounding, backend, &x, seed);
                assert_same_outputs(
                    &y,
                    &expected,
                    &x,
                    &format!("posit<{n},{es}> {rounding} {backend}"),
                );
            }
        }
    }
}

#[test]
fn stochastic_rounding_is_unbiased_between_neighbours() {
    let copies = 1 << 16;
    // (n, es, x, u, w), in value: the mean must be x.
    let cases: [(u32, u32, f64, f64, f64); 6] = [
        (8, 0, 1.01, 1.0, 1.0 + 1.0 / 32.0),
        (8, 0, -40.0, -64.0, -32.0),
        (8, 2, 100_000.0, 65536.0, 262144.0),
        (8, 2, -3_000_000.0, -16777216.0, -1048576.0),
        (8, 2, 3e-7, 2f64.powi(-24), 2f64.powi(-20)),
        (16, 1, 0.3, 0.29998779296875, 0.300048828125),
    ];
    for (n, es, x, lo, hi) in cases {
        let input = vec![x as f32; copies];
        let x = f64::from(x as f32);
        for backend in BACKENDS {
            let y = quantize_seeded(n, es, Rounding::STOCHASTIC, backend, &input, 21);
            assert!(
                y.iter().all(|&v| f64::from(v) == lo || f64::from(v) == hi),
                "posit<{n},{es}> {x:e}: results outside {{{lo:e}, {hi:e}}}"
            );
            let mean = y.iter().map(|&v| f64::from(v)).sum::<f64>() / copies as f64;
            let p = (x - lo) / (hi - lo);
            let sd = (hi - lo) * (p * (1.0 - p) / copies as f64).sqrt();
            assert!(
                (mean - x).abs() < 5.0 * sd + 1e-12 * x.abs(),
                "posit<{n},{es}> {backend}: mean {mean:e} for {x:e} (sd {sd:e})"
            );
        }
    }
}

#[test]
fn stochastic_rounding_is_reproducible() {
    let x: Vec<f32> = (0..10_000).map(|i| i as f32 * 0.37 - 1800.0).collect();
    let q = quantizer(&spec(8, 2), Rounding::STOCHASTIC, Backend::Auto);
    let run = |rng: &mut QuantRng| -> Vec<f32> {
        Vec::try_from(q.quantize(&Tensor::from_slice(&x), rng).unwrap()).unwrap()
    };
    let mut rng = QuantRng::new(4);
    let (first, second) = (run(&mut rng), run(&mut rng));
    assert_eq!(first, run(&mut QuantRng::new(4)));
    assert_ne!(first, second, "each call draws fresh numbers");
    assert_ne!(first, run(&mut QuantRng::new(5)));
}

// ------------------------------------------------------ f32 and precision

#[test]
fn posit32_is_exact_in_f64_and_f32_inputs_are_never_double_rounded() {
    // posit<32,2> has 27 fraction bits near 1: more than f32 holds.
    let p = |k: i32| 2f64.powi(k);
    let y = quantize_f64(
        32,
        2,
        NearestEven,
        &[
            1.0 + p(-27),
            1.0 + p(-28),
            1.0 + 3.0 * p(-28),
            -(1.0 + 5.0 * p(-28)),
        ],
    );
    // 5·2^-28 is 2.5 steps of 2^-27: the tie goes to the even 2 steps.
    assert_eq!(y, [1.0 + p(-27), 1.0, 1.0 + p(-26), -(1.0 + p(-26))]);
    // posit<32,0>: 29 fraction bits near 1.
    let y = quantize_f64(32, 0, NearestEven, &[1.0 + p(-29), 1.0 + p(-30), 0.1]);
    assert_eq!(y[..2], [1.0 + p(-29), 1.0]);
    // 0.1 in binade -4: regime "0001", 26 fraction bits.
    assert_eq!(y[2], (0.1 * p(30)).round() * p(-30));
    // Every f32 near 1 is a posit<32,2>: unchanged under every mode.
    let x: Vec<f32> = (0..1000)
        .map(|i| f32::from_bits(1.0f32.to_bits() + i * 977))
        .collect();
    for backend in BACKENDS {
        for rounding in ALL {
            let y = quantize(32, 2, rounding, backend, &x);
            assert_same_outputs(&y, &x, &x, &format!("posit<32,2> {rounding} {backend}"));
        }
    }
    // Where posit<32,2> is coarser than f32 (large and small binades),
    // results are posits with few fraction bits, exact in f32.
    let x = [3.0e30f32, 1.0e-30, 123456.7];
    let y = quantize(32, 2, NearestEven, Backend::Native, &x);
    let y64 = quantize_f64(32, 2, NearestEven, &x.map(f64::from));
    assert_eq!(y.iter().map(|&v| f64::from(v)).collect::<Vec<_>>(), y64);
}

// ------------------------------------------------------------------- spec

#[test]
fn spec_defaults_round_trip_and_errors() {
    let q: Quantizer = r#"{ format = "posit", n = 16 }"#.parse().unwrap();
    assert_eq!(q.format().params()["es"].as_integer(), Some(2));
    assert_eq!(q.format().bits_per_value(), 16.0);
    let spec = q.spec();
    let again = Quantizer::from_spec(&spec).unwrap();
    assert_eq!(again.spec(), spec);
    for (text, needles) in [
        (r#"{ format = "posit", n = 33 }"#, &["`n`", "2..=32"][..]),
        (r#"{ format = "posit", n = 8, es = 5 }"#, &["`es`", "0..=4"]),
        (
            r#"{ format = "posit", n = 18, es = 3 }"#,
            &["`n`", "2..=17", "f32"],
        ),
        (r#"{ format = "posit", n = 10, es = 4 }"#, &["`n`", "2..=9"]),
        (r#"{ format = "posit", es = 1 }"#, &["`n`"]),
        (
            r#"{ format = "posit", n = 8, ess = 1 }"#,
            &["ess", "did you mean `es`"],
        ),
    ] {
        let err = text.parse::<Quantizer>().unwrap_err().to_string();
        for needle in needles {
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}
