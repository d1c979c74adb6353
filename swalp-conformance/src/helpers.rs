//! Small helpers every format test needs: exact comparisons of `f32`
//! results, tensors from slices and back, quantizing through the spec
//! syntax on a chosen backend, and a seeded generator of test data.
//!
//! They were copied into each format's tests before this crate existed;
//! they live here once, and the checks of this crate use them too.

use swalp_core::tch::{Kind, Tensor};
use swalp_core::{Backend, QuantRng, Quantizer, Rounding};

use Rounding::{Down, NearestAway, NearestEven, NearestUp, TowardZero, Up};

/// Stochastic rounding with 2 random bits (the coarsest hardware-style mode
/// worth testing: its bias is visible).
pub const SR2: Rounding = Rounding::Stochastic { bits: 2 };

/// Every rounding the checks exercise: the six deterministic modes, full
/// stochastic rounding and [`SR2`].
pub const ALL_ROUNDINGS: [Rounding; 8] = [
    NearestEven,
    NearestAway,
    NearestUp,
    TowardZero,
    Down,
    Up,
    Rounding::STOCHASTIC,
    SR2,
];

/// Both kernels, for formats with a native one.
pub const BACKENDS: [Backend; 2] = [Backend::Native, Backend::Tensor];

/// `2^k`, exact for `k` in `-1074..=1023`.
///
/// ```
/// assert_eq!(swalp_conformance::p2(-3), 0.125);
/// ```
pub fn p2(k: i32) -> f64 {
    2f64.powi(k)
}

/// Same value, bit for bit; any two NaNs count as equal (sign and payload
/// ignored). `0.0` and `-0.0` differ.
///
/// ```
/// use swalp_conformance::same;
/// assert!(same(f32::NAN, -f32::NAN) && same(1.5, 1.5));
/// assert!(!same(0.0, -0.0));
/// ```
pub fn same(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// [`same`] for `f64`.
pub fn same_f64(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// Asserts that two slices are [`same`] element by element, naming the
/// first element that differs (value and bits) and `what`.
///
/// ```should_panic
/// swalp_conformance::assert_same_slices(&[1.0, 0.0], &[1.0, -0.0], "zeros");
/// ```
#[track_caller]
pub fn assert_same_slices(a: &[f32], b: &[f32], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths differ");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            same(*x, *y),
            "{what}: element {i} differs: {x:e} ({:#010x}) vs {y:e} ({:#010x})",
            x.to_bits(),
            y.to_bits()
        );
    }
}

/// Asserts that `got`, the outputs for inputs `x`, are [`same`] as
/// `expected`, naming the input of the first output that differs.
///
/// ```
/// swalp_conformance::assert_same_outputs(&[0.25], &[0.25], &[0.3], "fixed fl = 2");
/// ```
#[track_caller]
pub fn assert_same_outputs(got: &[f32], expected: &[f32], x: &[f32], what: &str) {
    assert_eq!(got.len(), expected.len(), "{what}: lengths differ");
    assert_eq!(
        got.len(),
        x.len(),
        "{what}: inputs and outputs differ in length"
    );
    for i in 0..got.len() {
        assert!(
            same(got[i], expected[i]),
            "{what}: x = {:e} gave {:e} ({:#010x}), expected {:e} ({:#010x})",
            x[i],
            got[i],
            got[i].to_bits(),
            expected[i],
            expected[i].to_bits()
        );
    }
}

/// A shape as tch wants it.
pub fn shape_i64(shape: &[usize]) -> Vec<i64> {
    shape.iter().map(|&d| d as i64).collect()
}

/// An `f32` CPU tensor of `shape` holding the row-major data `x`.
///
/// ```
/// let t = swalp_conformance::tensor(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
/// assert_eq!(t.size(), [2, 3]);
/// ```
pub fn tensor(x: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_slice(x).reshape(shape_i64(shape))
}

/// The values of a floating-point tensor (any dtype, layout or shape) as
/// row-major `f32`.
///
/// ```
/// use swalp_conformance::{tensor, values};
/// assert_eq!(values(&tensor(&[1.0, 2.0, 3.0, 4.0], &[2, 2]).tr()), [1.0, 3.0, 2.0, 4.0]);
/// ```
pub fn values(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(&t.to_kind(Kind::Float).contiguous().reshape([-1]))
        .unwrap_or_else(|e| panic!("reading a tensor's values: {e}"))
}

/// The values of a floating-point tensor as row-major `f64`.
pub fn values_f64(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(&t.to_kind(Kind::Double).contiguous().reshape([-1]))
        .unwrap_or_else(|e| panic!("reading a tensor's values: {e}"))
}

/// The quantizer of `spec` (spec syntax, e.g.
/// `{ format = "fixed", wl = 8, fl = 6 }`) with `rounding` and `backend`;
/// panics naming the spec if it does not parse.
pub fn quantizer(spec: &str, rounding: Rounding, backend: Backend) -> Quantizer {
    spec.parse::<Quantizer>()
        .unwrap_or_else(|e| panic!("{spec}: {e}"))
        .with_rounding(rounding)
        .with_backend(backend)
}

/// Quantizes the row-major `f32` data `x` of `shape` with `q` and a fresh
/// [`QuantRng`] of `seed`; asserts that the result keeps the shape and the
/// `f32` dtype, and returns its row-major values. Panics naming `q` if
/// quantizing fails.
pub fn quantize(q: &Quantizer, x: &[f32], shape: &[usize], seed: u64) -> Vec<f32> {
    let y = q
        .quantize(&tensor(x, shape), &mut QuantRng::new(seed))
        .unwrap_or_else(|e| panic!("{q}: {e}"));
    assert_eq!(y.size(), shape_i64(shape), "{q}: the shape changed");
    assert_eq!(y.kind(), Kind::Float, "{q}: the dtype changed");
    values(&y)
}

/// [`quantize`] with the quantizer of `spec`, `rounding` and `backend`.
///
/// ```
/// use swalp_core::{Backend, Rounding};
/// # use swalp_formats as _;
/// let y = swalp_conformance::run_on(
///     r#"{ format = "fixed", wl = 8, fl = 2 }"#,
///     Rounding::Up,
///     Backend::Tensor,
///     &[0.3, -0.3],
///     &[2],
///     0,
/// );
/// assert_eq!(y, [0.5, -0.25]);
/// ```
pub fn run_on(
    spec: &str,
    rounding: Rounding,
    backend: Backend,
    x: &[f32],
    shape: &[usize],
    seed: u64,
) -> Vec<f32> {
    quantize(&quantizer(spec, rounding, backend), x, shape, seed)
}

/// Quantizes with the native and the tensor kernel, asserts that they agree
/// bit for bit (any NaN matching any NaN), and returns the result.
pub fn run_both(spec: &str, rounding: Rounding, x: &[f32], shape: &[usize], seed: u64) -> Vec<f32> {
    let native = run_on(spec, rounding, Backend::Native, x, shape, seed);
    let tensor = run_on(spec, rounding, Backend::Tensor, x, shape, seed);
    assert_same_slices(
        &native,
        &tensor,
        &format!("{spec} {rounding}: native vs tensor"),
    );
    native
}

/// Deterministic pseudo-random test data (splitmix64), independent of
/// torch's global generator: the same seed gives the same data everywhere.
///
/// ```
/// use swalp_conformance::Data;
/// assert_eq!(Data(7).normal(3, 1.0), Data(7).normal(3, 1.0));
/// ```
#[derive(Clone, Debug)]
pub struct Data(pub u64);

impl Data {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// `n` roughly normal values of magnitude ~`scale` (a sum of four
    /// uniforms, centred).
    pub fn normal(&mut self, n: usize, scale: f64) -> Vec<f32> {
        (0..n)
            .map(|_| {
                let s: f64 = (0..4)
                    .map(|_| (self.next_u64() >> 11) as f64 / p2(53))
                    .sum();
                ((s - 2.0) * scale) as f32
            })
            .collect()
    }

    /// `n` values `±m · 2^e` with a random significand `m` in `[1, 2)` and
    /// `e` uniform in `lo..=hi`.
    pub fn spread(&mut self, n: usize, lo: i32, hi: i32) -> Vec<f32> {
        (0..n)
            .map(|_| {
                let r = self.next_u64();
                let e = lo + (r % (hi - lo + 1) as u64) as i32;
                let m = 1.0 + ((r >> 20) & 0x7f_ffff) as f64 / p2(23);
                let s = if r >> 63 == 1 { -1.0 } else { 1.0 };
                (s * m * p2(e)) as f32
            })
            .collect()
    }

    /// A finite `f32` of random sign, exponent and significand: mostly
    /// normal values of any binade, some subnormals or zeros, some tiny.
    pub fn wide_f32(&mut self) -> f32 {
        let r = self.next_u64();
        let exponent = (r % 254) as u32 + 1; // normal exponents
        let bits = ((r >> 8) as u32 & 0x807F_FFFF) | (exponent << 23);
        let v = f32::from_bits(bits);
        match (r >> 40) % 16 {
            0 => f32::from_bits((r >> 8) as u32 & 0x807F_FFFF), // subnormal or zero
            1 => (v.abs() * 1e-30).copysign(v),                 // tiny
            _ => v,
        }
    }
}
