//! The `rht` quantizer key: a point rotates groups by a random Hadamard
//! matrix, rounds, and rotates back, so only the rounding error changes.

use swalp_core::points::{PointConfig, QuantPoint};
use swalp_core::rht::Rht;
use swalp_core::tch::{Device, Kind, Tensor};
use swalp_core::{
    Backend, Error, NumberFormat, QuantRng, Quantizer, RandomStream, Result, Rounding, SpecError,
};
use swalp_formats as _;

fn quantizer(spec: &str) -> Quantizer {
    spec.parse().unwrap_or_else(|e| panic!("{spec}: {e}"))
}

fn values(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(&t.to_kind(Kind::Float).reshape([-1])).expect("f32 values")
}

/// Gaussian rows of 64 with one outlier (30σ) in each group of 16.
fn with_outliers(rows: i64) -> Tensor {
    tch::manual_seed(42);
    let x = Tensor::randn([rows, 64], (Kind::Float, Device::Cpu));
    let spikes = Tensor::zeros([rows, 64], (Kind::Float, Device::Cpu));
    let mut data = values(&spikes);
    for (i, v) in data.iter_mut().enumerate() {
        // A different position in each group, varying with the row.
        if i % 16 == (i / 64 * 5 + i / 16 * 3) % 16 {
            *v = if i % 3 == 0 { -30.0 } else { 30.0 };
        }
    }
    x + Tensor::from_slice(&data).reshape([rows, 64])
}

fn mse(a: &Tensor, b: &Tensor) -> f64 {
    (a.to_kind(Kind::Double) - b.to_kind(Kind::Double))
        .square()
        .mean(Kind::Double)
        .double_value(&[])
}

/// The spacing of f32 values in the binade of `m` (`m > 0`).
fn ulp(m: f32) -> f32 {
    2f32.powi(m.log2().floor() as i32 - 23)
}

#[test]
fn an_identity_format_returns_the_input_within_two_f32_roundings() {
    // `float` with 8 exponent and 23 mantissa bits rounds f32 onto itself,
    // so the only errors are the casts to f32 of the rotated values and of
    // the rotated-back ones. With m the group's largest magnitude, each
    // rotated value is at most √16·m = 4m, so the first cast errs by at
    // most ½ulp(4m) = 2ulp(m) per value; rotating back sums 16 such errors
    // with weights ¼: at most 8ulp(m); the last cast adds at most 1ulp(m)
    // (half an ulp, of a value that may have crossed into the next binade).
    let q = quantizer(r#"{ format = "float", exp = 8, man = 23, rht = 16 }"#);
    tch::manual_seed(1);
    let x = Tensor::randn([32, 64], (Kind::Float, Device::Cpu))
        * Tensor::logspace(-3.0, 3.0, 32, 10.0, (Kind::Float, Device::Cpu)).reshape([32, 1]);
    let y = q.quantize(&x, &mut QuantRng::new(0)).unwrap();
    assert_eq!((y.kind(), y.size()), (Kind::Float, x.size()));
    let (xs, ys) = (values(&x), values(&y));
    let mut worst = 0.0f32;
    for (g, (xg, yg)) in xs.chunks(16).zip(ys.chunks(16)).enumerate() {
        let m = xg.iter().fold(0.0f32, |a, v| a.max(v.abs()));
        for (a, b) in xg.iter().zip(yg) {
            let err = (a - b).abs() / ulp(m);
            assert!(err <= 9.0, "group {g}: {a} became {b} ({err} ulps of {m})");
            worst = worst.max(err);
        }
    }
    // The rotation did run (or nothing would have moved at all).
    assert!(worst > 0.0);
}

#[test]
fn a_real_format_rounds_in_the_rotated_basis() {
    tch::manual_seed(2);
    let x = Tensor::randn([8, 32], (Kind::Float, Device::Cpu));
    let plain = quantizer(r#"{ format = "fp8_e4m3" }"#);
    let rotated = quantizer(r#"{ format = "fp8_e4m3", rht = 16 }"#);
    let a = plain.quantize(&x, &mut QuantRng::new(0)).unwrap();
    let b = rotated.quantize(&x, &mut QuantRng::new(0)).unwrap();
    assert!(!a.equal(&b));
    // Still close to x: the error is fp8's, in another basis.
    assert!(mse(&b, &x) < 1e-2 * mse(&x, &x.zeros_like()));
}

#[test]
fn rht_lowers_the_error_of_block_formats_on_outliers() {
    // One outlier per block of 16 sets the block's power-of-two scale, and
    // the 15 other values round to zero or a few levels; rotated, the
    // outlier is spread over the whole group and every value keeps more of
    // its bits. (NVFP4, whose per-16 E4M3 scales already fit each block
    // closely, does not gain on this example: its error grows with RHT.)
    let x = with_outliers(64);
    for format in [
        r#"format = "bfp", wl = 4, block = { size = 16, dim = 1 }"#,
        r#"format = "mx", elem = "fp4_e2m1""#,
    ] {
        let plain = quantizer(&format!("{{ {format} }}"));
        let rotated = quantizer(&format!("{{ {format}, rht = {{ size = 16, seed = 7 }} }}"));
        let plain_mse = mse(&plain.quantize(&x, &mut QuantRng::new(0)).unwrap(), &x);
        let rotated_mse = mse(&rotated.quantize(&x, &mut QuantRng::new(0)).unwrap(), &x);
        assert!(
            rotated_mse < plain_mse,
            "{format}: {rotated_mse} with RHT, {plain_mse} without"
        );
    }
}

#[test]
fn results_are_deterministic_and_equal_on_both_backends() {
    let x = with_outliers(16);
    for rounding in ["nearest-even", "stochastic"] {
        let spec = format!(
            r#"{{ format = "bfp", wl = 4, block = {{ size = 16, dim = 1 }}, rounding = "{rounding}", rht = {{ size = 16, seed = 3 }} }}"#
        );
        let q = quantizer(&spec);
        let run = |backend| {
            q.clone()
                .with_backend(backend)
                .quantize(&x, &mut QuantRng::new(11))
                .unwrap()
        };
        let native = run(Backend::Native);
        assert!(native.equal(&run(Backend::Native)), "{rounding}");
        assert!(native.equal(&run(Backend::Tensor)), "{rounding}");
        assert!(native.equal(&run(Backend::Auto)), "{rounding}");
    }
    // Another seed, another matrix, another result.
    let q = |seed| {
        quantizer(&format!(
            r#"{{ format = "bfp", wl = 4, block = {{ size = 16, dim = 1 }}, rht = {{ seed = {seed} }} }}"#
        ))
    };
    let a = q(1).quantize(&x, &mut QuantRng::new(0)).unwrap();
    let b = q(2).quantize(&x, &mut QuantRng::new(0)).unwrap();
    assert!(!a.equal(&b));
}

#[test]
fn stochastic_rounding_draws_one_stream_as_without_rht() {
    let x = with_outliers(4);
    let spec = r#"format = "bfp", wl = 4, block = { size = 16, dim = 1 }, rounding = "stochastic""#;
    let (mut with, mut without) = (QuantRng::new(5), QuantRng::new(5));
    let _rotated = quantizer(&format!("{{ {spec}, rht = 16 }}"))
        .quantize(&x, &mut with)
        .unwrap();
    let _plain = quantizer(&format!("{{ {spec} }}"))
        .quantize(&x, &mut without)
        .unwrap();
    assert_eq!(with.next_stream(), without.next_stream());
}

#[test]
fn quantize_into_writes_what_quantize_returns() {
    let x = with_outliers(4);
    let q = quantizer(
        r#"{ format = "bfp", wl = 4, block = { size = 16, dim = 1 }, rounding = "stochastic", rht = 16 }"#,
    );
    let mut out = x.zeros_like();
    q.quantize_into(&x, &mut out, &mut QuantRng::new(3))
        .unwrap();
    assert!(out.equal(&q.quantize(&x, &mut QuantRng::new(3)).unwrap()));
}

#[test]
fn dtype_shape_and_autograd_are_those_of_the_input() {
    let q = quantizer(r#"{ format = "fp8_e4m3", rht = { size = 16, dim = 1 } }"#);
    // A convolution weight [O, I, kh, kw], rotated along its input channels.
    for kind in [Kind::Float, Kind::Double, Kind::BFloat16] {
        let x = Tensor::randn([4, 32, 3, 3], (kind, Device::Cpu)).set_requires_grad(true);
        let y = q.quantize(&x, &mut QuantRng::new(0)).unwrap();
        assert_eq!((y.kind(), y.size()), (kind, x.size()), "{kind:?}");
        assert!(!y.requires_grad());
    }
}

#[test]
fn specs_round_trip_through_text() {
    for (spec, printed) in [
        (r#"{ format = "fp8_e4m3", rht = 16 }"#, "rht = 16"),
        (
            r#"{ format = "fp8_e4m3", rht = { size = 32, dim = 1, seed = 7 } }"#,
            "rht = { size = 32, dim = 1, seed = 7 }",
        ),
        (
            r#"{ format = "fp8_e4m3", rht = { size = 16 } }"#,
            "rht = 16",
        ),
    ] {
        let q = quantizer(spec);
        let text = q.to_string();
        assert!(text.contains(printed), "{spec} printed as {text}");
        let again = quantizer(&text);
        assert_eq!(again.to_string(), text);
        assert_eq!(again.rht(), q.rht());
        assert_eq!(Quantizer::from_spec(&q.spec()).unwrap().rht(), q.rht());
    }
    assert_eq!(quantizer(r#"{ format = "fp8_e4m3" }"#).rht(), None);
}

#[test]
fn bad_rht_specs_name_the_key_and_what_is_allowed() {
    let err = |spec: &str| spec.parse::<Quantizer>().unwrap_err();
    assert_eq!(
        err(r#"{ format = "fp8_e4m3", rht = 12 }"#).to_string(),
        "invalid value 12 for `rht`: expected a power of two in 2..=256"
    );
    let SpecError::UnknownKey {
        key, suggestion, ..
    } = err(r#"{ format = "fp8_e4m3", rht = { size = 16, dimm = 1 } }"#)
    else {
        panic!("dimm accepted");
    };
    assert_eq!((key.as_str(), suggestion.as_deref()), ("dimm", Some("dim")));
    // A misspelt `rht` is a format key no format has: suggested as a
    // quantizer key.
    assert!(err(r#"{ format = "fp8_e4m3", rhtt = 16 }"#)
        .to_string()
        .contains("did you mean `rht`"));
}

#[test]
fn a_tensor_without_whole_groups_is_a_usage_error_naming_its_shape() {
    let q = quantizer(r#"{ format = "fp8_e4m3", rht = 16 }"#);
    let x = Tensor::zeros([3, 20], (Kind::Float, Device::Cpu));
    let err = q.quantize(&x, &mut QuantRng::new(0)).unwrap_err();
    assert!(err.is_usage());
    let Error::Unsupported { format, reason, .. } = &err else {
        panic!("{err}");
    };
    assert_eq!(format, "fp8_e4m3");
    assert_eq!(
        reason,
        "rht groups of 16 along dimension -1 need its length to be a multiple of 16; \
         a tensor of shape [3, 20] has 20"
    );
    let mut out = x.zeros_like();
    assert!(q
        .quantize_into(&x, &mut out, &mut QuantRng::new(0))
        .unwrap_err()
        .is_usage());
    let q = quantizer(r#"{ format = "fp8_e4m3", rht = { dim = 2 } }"#);
    let err = q.quantize(&x, &mut QuantRng::new(0)).unwrap_err();
    assert!(err
        .to_string()
        .contains("a tensor of shape [3, 20] has 2 dimensions"));
}

#[test]
fn rht_carries_over_to_a_point_with_another_format() {
    let table: toml::Table = toml::from_str(
        r#"
        default = { format = "bfp", wl = 8, rht = { size = 16, seed = 3 } }
        weight = { format = "fp8_e4m3" }
        gradient = { rht = 32 }
        error = { format = "fp8_e5m2", rht = { size = 16, dim = 1 } }
        "#,
    )
    .unwrap();
    let points = PointConfig::from_table(&table).unwrap();
    let rht = |p| points.get(p).and_then(|q| q.rht().copied());
    let default = Rht::new(16, -1, 3).unwrap();
    assert_eq!(rht(QuantPoint::Activation), Some(default));
    assert_eq!(rht(QuantPoint::Weight), Some(default));
    assert_eq!(
        rht(QuantPoint::Gradient),
        Some(Rht::new(32, -1, 0).unwrap())
    );
    assert_eq!(rht(QuantPoint::Error), Some(Rht::new(16, 1, 0).unwrap()));
}

/// Rounds to integers, except that it keeps tensors whose last dimension is
/// not a multiple of 16 in full precision (as NVFP4's `unaligned = "keep"`).
#[derive(Clone, Debug)]
struct KeepsUnaligned;

impl NumberFormat for KeepsUnaligned {
    fn name(&self) -> &str {
        "test_keeps_unaligned"
    }
    fn params(&self) -> toml::Table {
        toml::Table::new()
    }
    fn bits_per_value(&self) -> f64 {
        32.0
    }
    fn keeps(&self, shape: &[usize]) -> bool {
        shape.last().map_or(true, |n| n % 16 != 0)
    }
    fn quantize_tensor(
        &self,
        x: &Tensor,
        _rounding: Rounding,
        _random: Option<RandomStream>,
    ) -> Result<Tensor> {
        let shape: Vec<usize> = x.size().iter().map(|&d| d as usize).collect();
        if self.keeps(&shape) {
            return Ok(x.copy());
        }
        Ok(x.f_round()?)
    }
}

#[test]
fn a_tensor_the_format_keeps_skips_the_transform() {
    let q = Quantizer::new(Box::new(KeepsUnaligned), Rounding::NearestEven)
        .with_rht(Rht::new(16, -1, 0).unwrap());
    let kept = Tensor::from_slice(&[0.3f32; 20]).reshape([1, 20]);
    let y = q.quantize(&kept, &mut QuantRng::new(0)).unwrap();
    assert!(y.equal(&kept));
    // An aligned tensor is rotated: 2.3·e0 becomes 2.3·(column 0 of H),
    // sixteen values ±2.3/4 that round to ±1, which rotate back to 4·e0
    // (where rounding 2.3 itself gives 2).
    let mut data = [0.0f32; 16];
    data[0] = 2.3;
    let x = Tensor::from_slice(&data).reshape([1, 16]);
    let y = q.quantize(&x, &mut QuantRng::new(0)).unwrap();
    data[0] = 4.0;
    assert_eq!(values(&y), data);
}
