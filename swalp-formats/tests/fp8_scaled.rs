//! Tests of scaled FP8 (`format = "fp8_scaled"`), through the public spec
//! syntax: hand-computed cases, an independent numpy reference of the
//! documented formula (`tests/fp8_scaled/gen_fp8_scaled.py`: every
//! granularity, both element types, with and without power-of-two scales,
//! nearest-even, bit for bit on both backends), stochastic rounding against
//! the same formula with the draws of `QuantRng`, and the general
//! properties of the conformance kit.

use std::collections::HashMap;

use swalp_conformance::{
    assert_same_slices, run_both as run, values, Check, Conformance, Nan, SR2,
};
use swalp_core::tch::Tensor;
use swalp_core::{QuantRng, Quantizer, Rounding};
use swalp_formats as _;

use Rounding::NearestEven;

fn spec(elem: &str, granularity: &str, pow2: bool) -> String {
    format!(
        r#"{{ format = "fp8_scaled", elem = "{elem}", granularity = {granularity}, pow2 = {pow2} }}"#
    )
}

#[test]
fn equals_the_numpy_reference() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fp8_scaled/fp8_scaled.safetensors"
    );
    let vectors: HashMap<String, Tensor> = Tensor::read_safetensors(path)
        .unwrap()
        .into_iter()
        .collect();
    let granularities = [
        ("tensor", r#""tensor""#),
        ("row", r#""row""#),
        ("block128", "{ block = 128 }"),
        ("block32", "{ block = 32 }"),
        ("block2d128", "{ block2d = 128 }"),
    ];
    let mut compared = 0;
    for input in ["rows", "blocks", "tiles", "flat"] {
        let x_t = &vectors[&format!("{input}.input")];
        let shape: Vec<usize> = x_t.size().iter().map(|&d| d as usize).collect();
        let x = values(x_t);
        for elem in ["e4m3", "e5m2"] {
            for (name, granularity) in granularities {
                for (tag, pow2) in [("exact", false), ("pow2", true)] {
                    let Some(expected) = vectors.get(&format!("{input}.{elem}.{name}.{tag}"))
                    else {
                        continue;
                    };
                    let spec = spec(elem, granularity, pow2);
                    let y = run(&spec, NearestEven, &x, &shape, 0);
                    assert_same_slices(&y, &values(expected), &format!("{input}: {spec}"));
                    compared += 1;
                }
            }
        }
    }
    assert_eq!(compared, 48);
}

/// With power-of-two scales a rounded tensor of moderate range is a fixed
/// point: every step is exact.
#[test]
fn power_of_two_scales_are_idempotent() {
    let x: Vec<f32> = (0..2000)
        .map(|i| ((i * 7919 % 2001) as f32 - 1000.0) * 0.37)
        .collect();
    for g in [
        r#""tensor""#,
        r#""row""#,
        "{ block = 32 }",
        "{ block2d = 8 }",
    ] {
        let spec = spec("e4m3", g, true);
        let once = run(&spec, NearestEven, &x, &[40, 50], 0);
        let twice = run(&spec, NearestEven, &once, &[40, 50], 0);
        assert_same_slices(&twice, &once, &spec);
    }
}

/// Cases worked out by hand from the formula.
#[test]
fn hand_computed_cases() {
    // Per tensor, E4M3: a = 7, m = 448 / 7 = 64 exactly. 0.3 · 64 = 19.2
    // lies between 18 and 20 (step 2 in [16, 32)) and rounds to 20, so 0.3
    // becomes 20 / 64 = 0.3125; -7 · 64 = -448 stays.
    let y = run(
        &spec("e4m3", r#""tensor""#, false),
        NearestEven,
        &[7.0, 0.3, -7.0],
        &[3],
        0,
    );
    assert_eq!(y, [7.0, 0.3125, -7.0]);
    // Per row: each row scales on its own. Row 0: a = 1, m = 448; row 1:
    // a = 1000, m = 0.448, so 1 · 0.448 = 0.448 rounds to 0.4375 (step
    // 2^-5 in [0.25, 0.5)) and comes back as 0.4375 · (1 / 0.448), the
    // products in f32.
    let y = run(
        &spec("e4m3", r#""row""#, false),
        NearestEven,
        &[1.0, 0.5, 1000.0, 1.0],
        &[2, 2],
        0,
    );
    let (m0, m1) = (448.0f32, 448.0f32 / 1000.0);
    assert_eq!(
        y,
        [
            448.0 * (1.0 / m0),
            224.0 * (1.0 / m0),
            448.0 * (1.0 / m1),
            0.4375 * (1.0 / m1)
        ]
    );
    // pow2: a = 1000, M / a = 0.448 becomes 0.25; 1000 · 0.25 = 250 lies
    // between 240 and 256 (step 16 in [128, 256)) and rounds to 256, back
    // to 1024: rounding the scale up costs the top of the range.
    let y = run(
        &spec("e4m3", r#""tensor""#, true),
        NearestEven,
        &[1000.0],
        &[1],
        0,
    );
    assert_eq!(y, [1024.0]);
    // E5M2 per block of 2: blocks [3, 0.1] and [0, 0]; m = 57344 / 3 for
    // the first; zeros get m = 1 and stay zeros, signs kept.
    let y = run(
        &spec("e5m2", "{ block = 2 }", true),
        NearestEven,
        &[3.0, 0.1, 0.0, -0.0],
        &[4],
        0,
    );
    // m = 2^14 (19114.67 truncated); 0.1 · 2^14 = 1638.4 lies between 1536
    // and 1792 (step 256 in [1024, 2048)) and rounds to 1536, back to
    // 1536 / 2^14 = 0.09375.
    assert_eq!(y[..2], [3.0, 0.09375]);
    assert_eq!(y[2].to_bits(), 0);
    assert_eq!(y[3].to_bits(), (-0.0f32).to_bits());
}

/// Stochastic rounding follows the formula with the draws of `QuantRng`:
/// the element of each value is one of its two FP8 neighbours, rounded up
/// with probability equal to its distance from the lower one, and equal on
/// both backends draw for draw.
#[test]
fn stochastic_rounding_is_the_formula_with_random_draws() {
    let x: Vec<f32> = (0..4096)
        .map(|i| ((i * 37 % 1001) as f32 - 500.0) * 0.013)
        .collect();
    let a = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let m = 448.0 / a;
    let stream = QuantRng::new(5).next_stream();
    for r in [Rounding::STOCHASTIC, SR2] {
        let y = run(&spec("e4m3", r#""tensor""#, false), r, &x, &[4096], 5);
        for (i, (&v, &q)) in x.iter().zip(&y).enumerate() {
            let t = f64::from((v * m).clamp(-448.0, 448.0));
            // E4M3 step around t, then the neighbours and the draw.
            let e = t.abs().log2().floor().clamp(-6.0, 8.0) as i32;
            let step = 2f64.powi(e - 3);
            let lo = (t / step).floor() * step;
            let frac = (t - lo) / step;
            let bits = match r {
                Rounding::Stochastic { bits } => u32::from(bits),
                _ => unreachable!(),
            };
            let d = u64::from(stream.bits(i as u64)) >> (32 - bits);
            let up = (frac * 2f64.powi(bits as i32)).floor() as u64 + d >= 1u64 << bits;
            let expected = (if up { lo + step } else { lo }) as f32 * (1.0 / m);
            assert_eq!(q, expected, "{r} element {i}: x = {v:e}");
        }
    }
}

#[test]
fn non_finite_values_poison_their_group() {
    let mut x: Vec<f32> = (0..64).map(|i| i as f32 * 0.1 - 3.0).collect();
    x[10] = f32::NAN;
    x[40] = f32::NEG_INFINITY;
    let y = run(
        &spec("e4m3", "{ block = 16 }", false),
        NearestEven,
        &x,
        &[64],
        0,
    );
    let nan: Vec<bool> = y.iter().map(|v| v.is_nan()).collect();
    assert!(nan[..16].iter().all(|&b| b) && nan[32..48].iter().all(|&b| b));
    assert!(!nan[16..32].iter().any(|&b| b) && !nan[48..].iter().any(|&b| b));
}

#[test]
fn spec_keys_bits_and_errors() {
    let q: Quantizer = r#"{ format = "fp8_scaled" }"#.parse().unwrap();
    let spec = q.spec();
    assert_eq!(spec["elem"].as_str(), Some("e4m3"));
    assert_eq!(spec["granularity"].as_str(), Some("tensor"));
    assert_eq!(spec["pow2"].as_bool(), Some(false));
    assert_eq!(q.format().bits_per_value(), 8.0);
    let q: Quantizer = r#"{ format = "fp8_scaled", granularity = { block = 128 } }"#
        .parse()
        .unwrap();
    assert_eq!(q.format().bits_per_value(), 8.25);
    assert_eq!(q.spec()["granularity"]["block"].as_integer(), Some(128));
    let q: Quantizer = r#"{ format = "fp8_scaled", granularity = { block2d = 128 } }"#
        .parse()
        .unwrap();
    assert_eq!(q.format().bits_per_value(), 8.0 + 32.0 / 16384.0);
    for (bad, key) in [
        (r#"{ format = "fp8_scaled", elem = "e3m4" }"#, "elem"),
        (
            r#"{ format = "fp8_scaled", granularity = "col" }"#,
            "granularity",
        ),
        (
            r#"{ format = "fp8_scaled", granularity = { block = 0 } }"#,
            "granularity",
        ),
        (
            r#"{ format = "fp8_scaled", granularity = { tile = 4 } }"#,
            "granularity",
        ),
        (r#"{ format = "fp8_scaled", pow2 = "yes" }"#, "pow2"),
    ] {
        let err = bad.parse::<Quantizer>().unwrap_err().to_string();
        assert!(err.contains(key), "{bad}: {err}");
    }
}

/// The conformance kit for each granularity. Not representability and
/// idempotence: without power-of-two scales `1 / m` and `e · (1 / m)` are
/// rounded in `f32`, so a rounded output's new maximum gives a slightly
/// different `m`; with them, a group whose maximum is within a factor of
/// two of `f32::MAX` can dequantize its largest element to infinity (the
/// scale was rounded up), as TransformerEngine's `f32` dequantization does.
/// `hand_computed_cases` and the numpy reference pin the values.
#[test]
fn general_properties() {
    let anchors = |g: &str| -> fn(&[usize]) -> bool {
        match g {
            r#""tensor""# => |idx| idx == [0, 0],
            r#""row""# => |idx| idx[1] == 0,
            "{ block = 16 }" => |idx| idx[1] % 16 == 0,
            _ => |idx| idx[1] % 16 == 0 && idx[0] % 16 == 0,
        }
    };
    let cases = [
        ("e4m3", r#""tensor""#),
        ("e4m3", r#""row""#),
        ("e4m3", "{ block = 16 }"),
        ("e4m3", "{ block2d = 16 }"),
        ("e5m2", r#""row""#),
        ("e5m2", "{ block2d = 16 }"),
    ];
    for (elem, granularity) in cases {
        {
            for pow2 in [false, true] {
                let reason = if pow2 {
                    "a group near f32::MAX can dequantize to infinity"
                } else {
                    "scales that are not powers of two make e · (1 / m) inexact"
                };
                Conformance::new(&spec(elem, granularity, pow2))
                    .shapes(&[&[1000], &[20, 50]])
                    .stochastic_shape(&[16, 50])
                    .exponents(-20, 20)
                    .nan(Nan::PoisonsBlock)
                    .monotone_anchored(&[32, 64], 4.0, anchors(granularity))
                    .sign_symmetric()
                    .skip(Check::Representable, reason)
                    .skip(Check::Idempotent, reason)
                    .run();
            }
        }
    }
}
