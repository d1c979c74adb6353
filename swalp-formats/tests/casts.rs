//! The float presets with `nearest-even` equal libtorch's own dtype casts
//! (`to_kind(...)` and back to f32) bit for bit on finite inputs.

use swalp_core::tch::{Kind, Tensor};
use swalp_core::{Backend, QuantRng, Quantizer, Rounding};
use swalp_formats as _;

/// Finite f32 values from every binade, both signs, subnormals included:
/// random bit patterns plus the exact midpoints between neighbours of the
/// target format (ties), which are the hard cases.
fn finite_inputs(man_bits: u32) -> Vec<f32> {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut xs: Vec<f32> = (0..200_000)
        .map(|_| f32::from_bits(next() as u32))
        .filter(|x| x.is_finite())
        .collect();
    // Ties: a value with a 1 just below the target's last mantissa bit and
    // zeros after it, in every binade.
    let tie_bit = 1u32 << (22 - man_bits);
    for exp_field in 1..255u32 {
        for mantissa in [0u32, 1 << 22, (1 << 23) - (tie_bit << 1)] {
            let base = (exp_field << 23) | (mantissa & !(tie_bit * 2 - 1));
            for sign in [0, 1u32 << 31] {
                xs.push(f32::from_bits(sign | base | tie_bit));
                xs.push(f32::from_bits(
                    sign | base | ((tie_bit * 3) & ((1 << 23) - 1)),
                ));
            }
        }
    }
    xs.extend([
        0.0,
        -0.0,
        f32::MAX,
        f32::MIN,
        f32::MIN_POSITIVE,
        1e-45,
        -1e-45,
    ]);
    xs
}

fn check_against_cast(spec: &str, kind: Kind, man_bits: u32, in_range: impl Fn(f32) -> bool) {
    let xs: Vec<f32> = finite_inputs(man_bits)
        .into_iter()
        .filter(|&x| in_range(x))
        .collect();
    let x = Tensor::from_slice(&xs);
    let cast = Vec::<f32>::try_from(x.to_kind(kind).to_kind(Kind::Float)).unwrap();
    for backend in [Backend::Native, Backend::Tensor] {
        let q: Quantizer = spec.parse().unwrap();
        let q = q.with_rounding(Rounding::NearestEven).with_backend(backend);
        let y = Vec::<f32>::try_from(q.quantize(&x, &mut QuantRng::new(0)).unwrap()).unwrap();
        let mismatches: Vec<_> = (0..xs.len())
            .filter(|&i| {
                y[i].to_bits() != cast[i].to_bits() && !(y[i].is_nan() && cast[i].is_nan())
            })
            .take(5)
            .map(|i| (xs[i], y[i], cast[i]))
            .collect();
        assert!(
            mismatches.is_empty(),
            "{spec} ({backend}) vs {kind:?} cast: (x, swalp, cast) {mismatches:?}"
        );
    }
}

#[test]
fn bfloat16_equals_the_bfloat16_cast() {
    check_against_cast(r#"{ format = "bfloat16" }"#, Kind::BFloat16, 7, |_| true);
}

#[test]
fn fp16_equals_the_half_cast() {
    check_against_cast(r#"{ format = "fp16" }"#, Kind::Half, 10, |_| true);
}

#[test]
fn generic_float_with_ieee_specials_equals_the_half_cast() {
    check_against_cast(
        r#"{ format = "float", exp = 5, man = 10, specials = "ieee" }"#,
        Kind::Half,
        10,
        |_| true,
    );
}

#[test]
fn fp8_e5m2_equals_the_float8_e5m2_cast() {
    check_against_cast(r#"{ format = "fp8_e5m2" }"#, Kind::Float8e5m2, 2, |_| true);
}

#[test]
fn fp8_e4m3_with_nan_overflow_equals_the_float8_e4m3fn_cast() {
    check_against_cast(
        r#"{ format = "fp8_e4m3", overflow = "nan" }"#,
        Kind::Float8e4m3fn,
        3,
        |_| true,
    );
}

#[test]
fn fp8_e4m3_saturates_by_default() {
    let q: Quantizer = r#"{ format = "fp8_e4m3" }"#.parse().unwrap();
    let x = Tensor::from_slice(&[448.0f32, 463.9, 464.0, 470.0, 1e6, -1e6, f32::INFINITY]);
    let y = Vec::<f32>::try_from(q.quantize(&x, &mut QuantRng::new(0)).unwrap()).unwrap();
    assert_eq!(y, vec![448.0, 448.0, 448.0, 448.0, 448.0, -448.0, 448.0]);
}
