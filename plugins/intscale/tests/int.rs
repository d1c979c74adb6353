//! Tests of the `int` format through the public spec syntax, on both
//! backends: exact values computed by hand, block layouts checked against
//! an element-by-element reference, special values, and stochastic rounding.

use swalp_conformance::{
    assert_same_slices, quantizer, run_on, Data, ALL_ROUNDINGS as ALL, BACKENDS,
};
use swalp_core::tch::Tensor;
use swalp_core::{Backend, QuantRng, Quantizer, Rounding};
use swalp_intscale as _;

use Rounding::{Down, NearestAway, NearestEven, NearestUp, TowardZero, Up};

/// Quantizes with seed 0.
fn quantize(
    spec: &str,
    rounding: Rounding,
    backend: Backend,
    x: &[f32],
    shape: &[usize],
) -> Vec<f32> {
    run_on(spec, rounding, backend, x, shape, 0)
}

/// `n` uniform values, each in a random binade `-8..8` of magnitude.
fn sample(data: &mut Data, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let r = data.next_u64();
            let u = (r >> 11) as f64 / 2f64.powi(53) - 0.5;
            let e = ((r & 0xF) as i32) - 8;
            (u * 2f64.powi(e)) as f32
        })
        .collect()
}

// ---------------------------------------------------------- hand-computed

#[test]
fn per_tensor_values_computed_by_hand() {
    // 4 bits: Q = 7; the maximum is 7, so the scale is exactly 1.
    let x = [7.0, -3.5, 2.5, 0.4, 6.6, -7.0, 0.5, 1.5, -0.2];
    let cases: [(Rounding, [f32; 9]); 6] = [
        (
            NearestEven,
            [7.0, -4.0, 2.0, 0.0, 7.0, -7.0, 0.0, 2.0, -0.0],
        ),
        (
            NearestAway,
            [7.0, -4.0, 3.0, 0.0, 7.0, -7.0, 1.0, 2.0, -0.0],
        ),
        (NearestUp, [7.0, -3.0, 3.0, 0.0, 7.0, -7.0, 1.0, 2.0, -0.0]),
        (TowardZero, [7.0, -3.0, 2.0, 0.0, 6.0, -7.0, 0.0, 1.0, -0.0]),
        (Down, [7.0, -4.0, 2.0, 0.0, 6.0, -7.0, 0.0, 1.0, -1.0]),
        (Up, [7.0, -3.0, 3.0, 1.0, 7.0, -7.0, 1.0, 2.0, -0.0]),
    ];
    for (rounding, expected) in cases {
        for backend in BACKENDS {
            let y = quantize(
                r#"{ format = "int", bits = 4 }"#,
                rounding,
                backend,
                &x,
                &[9],
            );
            assert_same_slices(&y, &expected, &format!("{rounding} {backend}"));
        }
    }
    // 3 bits: Q = 3; max 2, scale 2/3: x·3/2 = 1.5, -0.75, 0.45, 3 round to
    // 2, -1, 0, 3 (nearest-even), i.e. 4/3, -2/3, 0, 2.
    for backend in BACKENDS {
        let y = quantize(
            r#"{ format = "int", bits = 3 }"#,
            NearestEven,
            backend,
            &[1.0, -0.5, 0.3, 2.0],
            &[2, 2],
        );
        assert_same_slices(
            &y,
            &[1.333_333_4, -0.666_666_7, 0.0, 2.0],
            &format!("{backend}"),
        );
    }
    // 8 bits: Q = 127; max 127/64, so the scale is 1/64: 1.0 is 64 steps,
    // -0.0234375 is -1.5 steps (to -2), 0.5078125 is 32.5 steps (to 32).
    for backend in BACKENDS {
        let y = quantize(
            r#"{ format = "int", bits = 8 }"#,
            NearestEven,
            backend,
            &[1.984375, 1.0, -0.0234375, 0.5078125],
            &[4],
        );
        assert_same_slices(&y, &[1.984375, 1.0, -0.03125, 0.5], &format!("{backend}"));
    }
}

#[test]
fn per_channel_values_computed_by_hand() {
    // x = [[1, -2, 0.5], [10, 4, -20]], 3 bits (Q = 3).
    let x = [1.0, -2.0, 0.5, 10.0, 4.0, -20.0];
    let (third, two_thirds) = (1.0f64 / 3.0, 2.0f64 / 3.0);
    let f = |v: f64| v as f32;
    let cases: [(&str, [f32; 6]); 4] = [
        // Rows: max 2 (x·3/2 = 1.5, -3, 0.75) and 20 (1.5, 0.6, -3).
        (
            "0",
            [
                f(4.0 * third),
                -2.0,
                f(two_thirds),
                f(40.0 * third),
                f(20.0 * third),
                -20.0,
            ],
        ),
        // Columns: max 10 (0.3, 3), 4 (-1.5, 3) and 20 (0.075, -3).
        ("1", [0.0, f(-8.0 * third), 0.0, 10.0, 4.0, -20.0]),
        ("-1", [0.0, f(-8.0 * third), 0.0, 10.0, 4.0, -20.0]),
        // Whole tensor: max 20 (0.15, -0.3, 0.075, 1.5, 0.6, -3).
        (
            "\"tensor\"",
            [0.0, -0.0, 0.0, f(40.0 * third), f(20.0 * third), -20.0],
        ),
    ];
    for (dim, expected) in cases {
        let spec = format!(r#"{{ format = "int", bits = 3, channel_dim = {dim} }}"#);
        for backend in BACKENDS {
            let y = quantize(&spec, NearestEven, backend, &x, &[2, 3]);
            assert_same_slices(&y, &expected, &format!("channel_dim = {dim}, {backend}"));
        }
    }
}

// ------------------------------------------------------ layouts, backends

/// Element-by-element reference: the block maxima found by walking
/// coordinates, the integers by Rust's own rounding functions.
fn reference(
    x: &[f32],
    shape: &[usize],
    dim: Option<usize>,
    bits: u32,
    mode: Rounding,
) -> Vec<f32> {
    let q = f64::from((1u32 << (bits - 1)) - 1);
    let channel = |i: usize| -> usize {
        let Some(d) = dim else { return 0 };
        // Unravel the row-major index and keep coordinate d.
        let mut rest = i;
        let mut coords = vec![0; shape.len()];
        for (k, &n) in shape.iter().enumerate().rev() {
            coords[k] = rest % n;
            rest /= n;
        }
        coords[d]
    };
    let mut max = std::collections::HashMap::<usize, f64>::new();
    for (i, &v) in x.iter().enumerate() {
        let m = max.entry(channel(i)).or_insert(0.0);
        if v.is_finite() {
            *m = m.max(f64::from(v).abs());
        }
    }
    x.iter()
        .enumerate()
        .map(|(i, &v)| {
            let m = max[&channel(i)];
            let t = f64::from(v) * q / if m == 0.0 { 1.0 } else { m };
            let n = match mode {
                NearestEven => t.round_ties_even(),
                NearestAway => t.round(),
                NearestUp => (t + 0.5).floor(), // exact for the values used here
                TowardZero => t.trunc(),
                Down => t.floor(),
                Up => t.ceil(),
                Rounding::Stochastic { .. } => unreachable!(),
            };
            let n = if n == 0.0 {
                0f64.copysign(t)
            } else {
                n.clamp(-q, q)
            };
            (n * m / q) as f32
        })
        .collect()
}

#[test]
fn blocks_follow_the_channel_dimension() {
    let mut data = Data(3);
    for (shape, dims) in [
        (vec![6usize, 5], vec![None, Some(0), Some(1)]),
        (vec![3, 4, 5], vec![None, Some(0), Some(1), Some(2)]),
        (vec![2, 3, 1, 4], vec![Some(1), Some(2), Some(3)]),
        (vec![7], vec![None, Some(0)]),
    ] {
        let numel: usize = shape.iter().product();
        let x = sample(&mut data, numel);
        for dim in dims {
            let dim_text = dim.map_or("\"tensor\"".to_string(), |d| d.to_string());
            for bits in [2, 4, 8, 16] {
                let spec =
                    format!(r#"{{ format = "int", bits = {bits}, channel_dim = {dim_text} }}"#);
                for mode in [NearestEven, NearestAway, TowardZero, Down, Up] {
                    let expected = reference(&x, &shape, dim, bits, mode);
                    for backend in BACKENDS {
                        let y = quantize(&spec, mode, backend, &x, &shape);
                        assert_same_slices(
                            &y,
                            &expected,
                            &format!("{spec} {mode} {backend} {shape:?}"),
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn native_and_tensor_kernels_agree_bit_for_bit() {
    let mut data = Data(17);
    let mut x = sample(&mut data, 40_000);
    x[5] = f32::NAN;
    x[77] = f32::INFINITY;
    x[1000] = f32::NEG_INFINITY;
    x[2000] = -0.0;
    for dim in ["\"tensor\"", "0", "1", "-1"] {
        for bits in [2, 3, 8, 12, 24] {
            let spec = format!(r#"{{ format = "int", bits = {bits}, channel_dim = {dim} }}"#);
            for rounding in ALL {
                let native = run_on(&spec, rounding, Backend::Native, &x, &[200, 200], 5);
                let tensor = run_on(&spec, rounding, Backend::Tensor, &x, &[200, 200], 5);
                assert_same_slices(&tensor, &native, &format!("{spec} {rounding}"));
            }
        }
    }
}

// --------------------------------------------------------- special values

#[test]
fn the_largest_magnitude_is_kept_exactly_under_every_mode() {
    let mut data = Data(23);
    let x = sample(&mut data, 1000);
    let max = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let at = x.iter().position(|v| v.abs() == max).unwrap();
    for bits in [2, 5, 8, 24] {
        let spec = format!(r#"{{ format = "int", bits = {bits} }}"#);
        for rounding in ALL {
            for backend in BACKENDS {
                let y = quantize(&spec, rounding, backend, &x, &[1000]);
                assert_eq!(y[at], x[at], "{spec} {rounding} {backend}");
                assert!(y.iter().all(|v| v.abs() <= max));
            }
        }
    }
}

#[test]
fn nan_and_infinities_do_not_set_the_scale() {
    // Row 0: max 7 (NaN, ±Inf ignored); row 1: only zeros and infinities.
    let x = [
        f32::NAN,
        7.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        2.2,
        0.0,
        f32::INFINITY,
        -0.0,
        f32::NEG_INFINITY,
        0.0,
    ];
    let expected = [f32::NAN, 7.0, 7.0, -7.0, 2.0, 0.0, 0.0, -0.0, -0.0, 0.0];
    for rounding in ALL {
        for backend in BACKENDS {
            let y = quantize(
                r#"{ format = "int", bits = 4, channel_dim = 0 }"#,
                rounding,
                backend,
                &x,
                &[2, 5],
            );
            if rounding == NearestEven {
                assert_same_slices(&y, &expected, &format!("{backend}"));
            } else {
                assert_same_slices(&y[..4], &expected[..4], &format!("{rounding} {backend}"));
                assert_same_slices(&y[5..], &expected[5..], &format!("{rounding} {backend}"));
            }
        }
    }
}

// ------------------------------------------------------------- stochastic

#[test]
fn stochastic_decisions_follow_the_draws_exactly() {
    // Scale 1 (max 7, 4 bits): x = k + t with exact fractions t.
    let mut x = vec![7.0f32];
    for k in -6..6 {
        for t in [0.25f32, 0.5, 0.8125, 0.0625] {
            x.push(k as f32 + t);
        }
    }
    let x: Vec<f32> = x.iter().cycle().take(x.len() * 40).copied().collect();
    let seed = 8;
    for bits in [32u8, 8, 2, 1] {
        let stream = QuantRng::new(seed).next_stream();
        let expected: Vec<f32> = x
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let v = f64::from(v);
                let (floor, frac) = (v.floor(), v - v.floor());
                let one = 1u64 << bits;
                let truncated = (frac * one as f64).floor() as u64;
                let draw = u64::from(stream.bits(i as u64)) >> (32 - u32::from(bits));
                let n = if truncated + draw >= one {
                    floor + 1.0
                } else {
                    floor
                };
                (if n == 0.0 { 0f64.copysign(v) } else { n }) as f32
            })
            .collect();
        for backend in BACKENDS {
            let y = run_on(
                r#"{ format = "int", bits = 4 }"#,
                Rounding::Stochastic { bits },
                backend,
                &x,
                &[x.len()],
                seed,
            );
            assert_same_slices(&y, &expected, &format!("{bits} bits, {backend}"));
        }
    }
}

#[test]
fn stochastic_rounding_is_unbiased_per_channel() {
    // Two channels of 2^15 copies: max 1 (8 bits: step 1/127) and max 100.
    let copies = 1usize << 15;
    let (a, b) = (0.3f32, -41.3f32);
    let mut x = vec![a; copies];
    x[0] = 1.0;
    x.extend(std::iter::repeat(b).take(copies));
    x[copies] = 100.0;
    for backend in BACKENDS {
        let y = run_on(
            r#"{ format = "int", bits = 8, channel_dim = 0 }"#,
            Rounding::STOCHASTIC,
            backend,
            &x,
            &[2, copies],
            13,
        );
        for (channel, value, max) in [(0, a, 1.0f64), (1, b, 100.0)] {
            let step = max / 127.0;
            let part = &y[channel * copies + 1..(channel + 1) * copies];
            let v = f64::from(value);
            let (lo, hi) = ((v / step).floor() * step, (v / step).ceil() * step);
            assert!(part.iter().all(|&r| (f64::from(r) - lo).abs() < 1e-5 * max
                || (f64::from(r) - hi).abs() < 1e-5 * max));
            let mean = part.iter().map(|&r| f64::from(r)).sum::<f64>() / part.len() as f64;
            let sd = step * 0.5 / (part.len() as f64).sqrt();
            assert!(
                (mean - v).abs() < 5.0 * sd,
                "{backend} channel {channel}: mean {mean} for {v}"
            );
        }
    }
}

#[test]
fn stochastic_rounding_is_reproducible() {
    let x = sample(&mut Data(2), 5000);
    let q = quantizer(
        r#"{ format = "int", bits = 4 }"#,
        Rounding::STOCHASTIC,
        Backend::Auto,
    );
    let run = |rng: &mut QuantRng| -> Vec<f32> {
        Vec::try_from(q.quantize(&Tensor::from_slice(&x), rng).unwrap()).unwrap()
    };
    let mut rng = QuantRng::new(4);
    let (first, second) = (run(&mut rng), run(&mut rng));
    assert_eq!(first, run(&mut QuantRng::new(4)));
    assert_ne!(first, second);
}

// ------------------------------------------------------------------- spec

#[test]
fn spec_round_trips_and_errors_name_the_key() {
    for text in [
        r#"{ format = "int", bits = 8 }"#,
        r#"{ format = "int", bits = 8, channel_dim = -1 }"#,
    ] {
        let q: Quantizer = text.parse().unwrap();
        let spec = q.spec();
        assert_eq!(Quantizer::from_spec(&spec).unwrap().spec(), spec);
        assert_eq!(q.format().bits_per_value(), 8.0);
    }
    let q: Quantizer = r#"{ format = "int", bits = 8 }"#.parse().unwrap();
    assert_eq!(q.format().params()["channel_dim"].as_str(), Some("tensor"));
    for (text, needles) in [
        (r#"{ format = "int", bits = 1 }"#, &["`bits`", "2..=24"][..]),
        (r#"{ format = "int", bits = 25 }"#, &["`bits`", "2..=24"]),
        (
            r#"{ format = "int", bits = 8, channel_dim = "row" }"#,
            &["`channel_dim`", "\"tensor\""],
        ),
        (
            r#"{ format = "int", bits = 8, channel_dim = 99 }"#,
            &["`channel_dim`", "-64..=63"],
        ),
        (r#"{ format = "int" }"#, &["`bits`"]),
        (
            r#"{ format = "int", bits = 8, chanel_dim = 0 }"#,
            &["did you mean `channel_dim`"],
        ),
    ] {
        let err = text.parse::<Quantizer>().unwrap_err().to_string();
        for needle in needles {
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
    // A dimension the tensor lacks is reported when quantizing.
    for backend in BACKENDS {
        let q = quantizer(
            r#"{ format = "int", bits = 8, channel_dim = 2 }"#,
            NearestEven,
            backend,
        );
        let err = q
            .quantize(
                &Tensor::from_slice(&[1.0f32, 2.0]).reshape([1, 2]),
                &mut QuantRng::new(0),
            )
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("channel_dim = 2") && err.contains("2 dimensions"),
            "{err}"
        );
    }
    // A scalar has a per-tensor scale of its own magnitude.
    let q = quantizer(
        r#"{ format = "int", bits = 8 }"#,
        NearestEven,
        Backend::Auto,
    );
    let y = q
        .quantize(&Tensor::from(-0.3f32), &mut QuantRng::new(0))
        .unwrap();
    assert_eq!(f32::try_from(y).unwrap(), -0.3);
}
