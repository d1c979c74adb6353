//! The checks behind [`Conformance::run`], and the inputs they generate.

use swalp_core::{Backend, QuantRng, Rounding};

use crate::helpers::{p2, quantize, same, tensor, values, Data, ALL_ROUNDINGS};
use crate::{Check, Conformance, Monotone, Nan, Zero};

use Rounding::{Down, NearestAway, NearestEven, TowardZero, Up};

/// Values wild inputs draw from besides random bit patterns.
const SPECIAL_VALUES: [f32; 16] = [
    0.0,
    -0.0,
    f32::INFINITY,
    f32::NEG_INFINITY,
    f32::NAN,
    f32::MAX,
    f32::MIN,
    f32::MIN_POSITIVE,
    -f32::MIN_POSITIVE,
    1e-45,
    -1e-45,
    -3e-39,
    1e30,
    -1e-30,
    65504.0,
    -448.0,
];

/// The most elements the unbiasedness check quantizes at once: below
/// libtorch's grain for parallel operators (32768) and
/// [`swalp_core::kernel::native::PARALLEL_THRESHOLD`].
const PIECE: usize = 16384;

/// `ln(2/δ)` for the per-test false-alarm probability δ = 1e-9 of the
/// unbiasedness bounds.
const LOG_2_OVER_DELTA: f64 = 21.416_413_017_506_358;

/// The deviation `t` that a sum of independent variables, each within 1 of
/// its mean, with total variance `v`, exceeds with probability at most δ:
/// Bernstein's inequality `P(|S - E S| >= t) <= 2 exp(-t² / (2(v + t/3)))`
/// solved for `t`.
pub(crate) fn bernstein_bound(v: f64) -> f64 {
    let c = LOG_2_OVER_DELTA;
    c / 3.0 + (c * c / 9.0 + 2.0 * c * v).sqrt()
}

/// The distance from `v` to the next `f32` away from zero.
fn ulp(v: f32) -> f64 {
    let a = v.abs();
    if !a.is_finite() {
        return 0.0;
    }
    if a == f32::MAX {
        return f64::from(a) - f64::from(f32::from_bits(a.to_bits() - 1));
    }
    f64::from(f32::from_bits(a.to_bits() + 1)) - f64::from(a)
}

/// The row-major multi-index of element `i` of `shape`.
fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        idx[d] = i % shape[d];
        i /= shape[d];
    }
    idx
}

/// The largest magnitudes of three tensors (what sets a block format's
/// scale), for failure messages.
fn max_abs(x: &[f32], y: &[f32], z: &[f32]) -> String {
    let m = |v: &[f32]| {
        v.iter()
            .filter(|v| !v.is_nan())
            .fold(0f32, |m, v| m.max(v.abs()))
    };
    format!(
        "largest magnitudes in the tensor: {:e}, then {:e}, then {:e}",
        m(x),
        m(y),
        m(z)
    )
}

fn show(v: f32) -> String {
    format!("{v:e} ({:#010x})", v.to_bits())
}

impl Conformance {
    fn backends(&self) -> Vec<Backend> {
        if self.native {
            vec![Backend::Native, Backend::Tensor]
        } else {
            vec![Backend::Tensor]
        }
    }

    /// Quantizes with this format, `rounding` and `backend`.
    fn q(&self, r: Rounding, b: Backend, x: &[f32], shape: &[usize], seed: u64) -> Vec<f32> {
        let q = self.base.clone().with_rounding(r).with_backend(b);
        quantize(&q, x, shape, seed)
    }

    fn fail(&self, check: Check, what: std::fmt::Arguments<'_>) -> ! {
        panic!(
            "conformance check `{check}` failed for {}: {what}",
            self.label
        )
    }

    fn data(&self, salt: u64) -> Data {
        Data(self.seed ^ salt.wrapping_mul(0x2545_F491_4F6C_DD1D))
    }

    /// One finite value: mostly `±m · 2^e` with `e` in the exponent window,
    /// some with few significant bits (ties for coarser formats), some zeros.
    fn finite_value(&self, data: &mut Data) -> f32 {
        let (lo, hi) = self.exponents;
        let r = data.next_u64();
        let e = lo + (r % (hi - lo + 1) as u64) as i32;
        let sign = if r >> 63 == 1 { -1.0 } else { 1.0 };
        let v = match (r >> 8) % 16 {
            0 => 0.0,
            1..=4 => {
                // `bits` significant bits after the leading one.
                let bits = 1 + ((r >> 12) % 12) as i32;
                let j = ((r >> 16) % (1 << bits)) as f64;
                (p2(bits) + j) * p2(e - bits)
            }
            _ => (1.0 + ((r >> 28) & 0x7f_ffff) as f64 / p2(23)) * p2(e),
        };
        let v = (sign * v) as f32;
        if v.is_finite() {
            v
        } else {
            f32::MAX.copysign(v)
        }
    }

    /// `n` finite inputs: the finite [`inputs`](Self::inputs) first.
    fn finite(&self, n: usize, salt: u64) -> Vec<f32> {
        let mut data = self.data(salt);
        let mut x: Vec<f32> = self
            .extra
            .iter()
            .copied()
            .filter(|v| v.is_finite())
            .take(n)
            .collect();
        while x.len() < n {
            x.push(self.finite_value(&mut data));
        }
        x
    }

    /// `n` inputs of every kind: finite ones, special values (NaN, ±Inf,
    /// extremes) and random bit patterns; the [`inputs`](Self::inputs) first.
    fn wild(&self, n: usize, salt: u64) -> Vec<f32> {
        let mut data = self.data(salt);
        let mut x: Vec<f32> = self.extra.iter().copied().take(n).collect();
        while x.len() < n {
            let r = data.next_u64();
            x.push(match r % 8 {
                0 => SPECIAL_VALUES[(r >> 8) as usize % SPECIAL_VALUES.len()],
                1 => f32::from_bits((r >> 32) as u32),
                _ => self.finite_value(&mut data),
            });
        }
        x
    }

    pub(crate) fn check_representable_and_idempotent(&self) {
        for (s, shape) in self.shapes.iter().enumerate() {
            let n: usize = shape.iter().product();
            for (kind, x) in [
                ("finite", self.finite(n, 10 + s as u64)),
                ("wild", self.wild(n, 20 + s as u64)),
            ] {
                for b in self.backends() {
                    for (k, r) in ALL_ROUNDINGS.into_iter().enumerate() {
                        let seed = self.seed.wrapping_add(k as u64);
                        let y = self.q(r, b, &x, shape, seed);
                        if self.runs(Check::Representable) {
                            let z = self.q(NearestEven, b, &y, shape, 0);
                            if let Some(i) = (0..n).find(|&i| !same(y[i], z[i])) {
                                self.fail(
                                    Check::Representable,
                                    format_args!(
                                        "{r} ({b} backend, shape {shape:?}, {kind} inputs, element {i}): \
                                         x = {} -> {r} -> {} -> nearest-even -> {} ({})",
                                        show(x[i]),
                                        show(y[i]),
                                        show(z[i]),
                                        max_abs(&x, &y, &z)
                                    ),
                                );
                            }
                        }
                        if self.runs(Check::Idempotent) && self.idempotent.contains(&r) {
                            let z = self.q(r, b, &y, shape, seed.wrapping_add(1000));
                            if let Some(i) = (0..n).find(|&i| !same(y[i], z[i])) {
                                self.fail(
                                    Check::Idempotent,
                                    format_args!(
                                        "{r} ({b} backend, shape {shape:?}, {kind} inputs, element {i}): \
                                         x = {} -> {r} -> {} -> {r} again -> {} ({})",
                                        show(x[i]),
                                        show(y[i]),
                                        show(z[i]),
                                        max_abs(&x, &y, &z)
                                    ),
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    pub(crate) fn check_monotone(&self) {
        // (shape, input, positions whose outputs must be sorted)
        let (shape, x, positions) = match &self.monotone {
            Monotone::Elementwise => {
                let mut x = self.finite(2000, 30);
                x.sort_by(f32::total_cmp);
                (vec![x.len()], x.clone(), (0..x.len()).collect::<Vec<_>>())
            }
            Monotone::Anchored {
                shape,
                anchor,
                is_anchor,
            } => {
                let n: usize = shape.iter().product();
                let free: Vec<usize> = (0..n).filter(|&i| !is_anchor(&unravel(i, shape))).collect();
                // Below |anchor|: scaled from the exponent window's top.
                let scale = f64::from(anchor.abs()) * p2(-(self.exponents.1 + 1));
                let mut v: Vec<f32> = self
                    .finite(free.len(), 31)
                    .iter()
                    .map(|&v| (f64::from(v) * scale) as f32)
                    .map(|v| v.clamp(-anchor.abs(), anchor.abs()))
                    .collect();
                v.sort_by(f32::total_cmp);
                let mut x = vec![*anchor; n];
                for (&i, &v) in free.iter().zip(&v) {
                    x[i] = v;
                }
                (shape.clone(), x, free)
            }
        };
        for b in self.backends() {
            for r in Rounding::DETERMINISTIC {
                let y = self.q(r, b, &x, &shape, 0);
                for w in positions.windows(2) {
                    let (i, j) = (w[0], w[1]);
                    if y[i].is_nan() || y[j].is_nan() {
                        continue;
                    }
                    if y[i] > y[j] {
                        self.fail(
                            Check::Monotone,
                            format_args!(
                                "{r} ({b} backend, shape {shape:?}, {}): x[{i}] = {} <= x[{j}] = {} \
                                 but they round to {} > {}",
                                self.monotone_kind(),
                                show(x[i]),
                                show(x[j]),
                                show(y[i]),
                                show(y[j])
                            ),
                        );
                    }
                }
            }
        }
    }

    fn monotone_kind(&self) -> &'static str {
        match self.monotone {
            Monotone::Elementwise => "elementwise",
            Monotone::Anchored { .. } => "within anchored blocks",
        }
    }

    pub(crate) fn check_backends(&self) {
        if !self.native {
            return;
        }
        let mut cases: Vec<(Vec<usize>, &str, Vec<f32>)> = Vec::new();
        for (s, shape) in self.shapes.iter().enumerate() {
            let n = shape.iter().product();
            cases.push((shape.clone(), "finite", self.finite(n, 40 + s as u64)));
            cases.push((shape.clone(), "wild", self.wild(n, 50 + s as u64)));
        }
        let n = self.large_shape.iter().product();
        cases.push((self.large_shape.clone(), "wild", self.wild(n, 60)));
        for (shape, kind, x) in &cases {
            for (k, r) in ALL_ROUNDINGS.into_iter().enumerate() {
                let seed = self.seed.wrapping_add(7 + k as u64);
                let native = self.q(r, Backend::Native, x, shape, seed);
                let tensor = self.q(r, Backend::Tensor, x, shape, seed);
                let auto = self.q(r, Backend::Auto, x, shape, seed);
                for i in 0..x.len() {
                    if !same(native[i], tensor[i]) || !same(native[i], auto[i]) {
                        self.fail(
                            Check::Backends,
                            format_args!(
                                "{r} (shape {shape:?}, {kind} inputs, seed {seed}, element {i}): \
                                 x = {} -> native {}, tensor {}, auto {}",
                                show(x[i]),
                                show(native[i]),
                                show(tensor[i]),
                                show(auto[i])
                            ),
                        );
                    }
                }
            }
        }
    }

    /// Stochastic rounding of `x` between its neighbours `lo < x < hi` (the
    /// results of rounding down and up, in the same tensor) rounds up with
    /// probability `p = (x - lo)/(hi - lo)`. The check samples every element
    /// of a tensor `samples` times (copies stacked along dimension 0, each
    /// with its own draws) and bounds the count of ups with Bernstein's
    /// inequality at δ = 1e-9, per element and summed over the elements.
    ///
    /// The copies are quantized in pieces of at most [`PIECE`] elements
    /// (successive streams of one generator): large tensors are the
    /// backend check's business, and small ones keep libtorch's operators
    /// single-threaded, so the check costs the same on a busy machine.
    pub(crate) fn check_unbiased(&self) {
        let shape0 = self
            .stochastic_shape
            .clone()
            .unwrap_or_else(|| self.shapes[0].clone());
        let n0: usize = shape0.iter().product();
        let x = self.finite(n0, 70);
        let copies = (PIECE / n0).clamp(1, self.samples);
        let pieces = self.samples.div_ceil(copies);
        let s = pieces * copies;
        let tiled: Vec<f32> = x.iter().copied().cycle().take(n0 * copies).collect();
        let mut shape = shape0.clone();
        shape[0] *= copies;
        let lo = self.q(Down, Backend::Auto, &tiled, &shape, 0);
        let hi = self.q(Up, Backend::Auto, &tiled, &shape, 0);
        for k in 1..copies {
            for i in 0..n0 {
                let j = k * n0 + i;
                if !same(lo[j], lo[i]) || !same(hi[j], hi[i]) {
                    panic!(
                        "conformance: {}: stacking {copies} copies of a tensor of shape {shape0:?} \
                         along dimension 0 changed the blocks (copy {k}, element {i}: down {} vs {}, \
                         up {} vs {}); give a stochastic_shape whose first dimension is a multiple of \
                         the block size",
                        self.label,
                        show(lo[j]),
                        show(lo[i]),
                        show(hi[j]),
                        show(hi[i])
                    );
                }
            }
        }
        for b in self.backends() {
            let q = self
                .base
                .clone()
                .with_rounding(Rounding::STOCHASTIC)
                .with_backend(b);
            let mut rng = QuantRng::new(self.seed.wrapping_add(99));
            let t = tensor(&tiled, &shape);
            let mut ups = vec![0usize; n0];
            for _ in 0..pieces {
                let y = values(
                    &q.quantize(&t, &mut rng)
                        .unwrap_or_else(|e| panic!("{q}: {e}")),
                );
                for (j, &v) in y.iter().enumerate() {
                    let i = j % n0;
                    let (l, h) = (lo[i], hi[i]);
                    if same(v, h) && !same(v, l) {
                        ups[i] += 1;
                    } else if !same(v, l) {
                        self.fail(
                            Check::Unbiased,
                            format_args!(
                                "stochastic ({b} backend, shape {shape:?}, element {j}): x = {} -> {}, \
                                 neither its rounding down {} nor up {}",
                                show(x[i]),
                                show(v),
                                show(l),
                                show(h)
                            ),
                        );
                    }
                }
            }
            let (mut sum_dev, mut sum_var, mut sum_allow, mut tested) = (0.0, 0.0, 0.0, 0);
            for i in 0..n0 {
                let (l, h, xi) = (lo[i], hi[i], x[i]);
                let (lv, hv, xv) = (f64::from(l), f64::from(h), f64::from(xi));
                if !(lv.is_finite() && hv.is_finite() && lv < xv && xv < hv) {
                    continue;
                }
                let ups = ups[i];
                let p = (xv - lv) / (hv - lv);
                let sf = s as f64;
                let dev = ups as f64 - sf * p;
                let var = sf * p * (1.0 - p);
                // Allowed besides chance: 32-bit truncation of the fraction
                // (at most 2^-32 per draw) and f32 rounding of the grid.
                let allow =
                    sf * (p2(-32) + f64::from(self.output_ulps) * ulp(l).max(ulp(h)) / (hv - lv));
                if dev.abs() > bernstein_bound(var) + allow {
                    self.fail(
                        Check::Unbiased,
                        format_args!(
                            "stochastic ({b} backend, shape {shape0:?}, element {i}): x = {} between \
                             {} and {} rounded up {ups} times in {s}; expected {:.1} (p = {p:.4}), \
                             beyond the Bernstein bound {:.1} (δ = 1e-9); mean {:e}",
                            show(xi),
                            show(l),
                            show(h),
                            sf * p,
                            bernstein_bound(var) + allow,
                            lv + (hv - lv) * ups as f64 / sf
                        ),
                    );
                }
                sum_dev += dev;
                sum_var += var;
                sum_allow += allow;
                tested += 1;
            }
            assert!(
                tested >= n0 / 10,
                "conformance: {}: only {tested} of {n0} sampled values lie strictly between two \
                 neighbours; choose exponents() inside the format's range",
                self.label
            );
            if sum_dev.abs() > bernstein_bound(sum_var) + sum_allow {
                self.fail(
                    Check::Unbiased,
                    format_args!(
                        "stochastic ({b} backend, shape {shape0:?}): over {tested} values and {s} \
                         samples each, the ups exceed their expectation by {sum_dev:.1}, beyond the \
                         Bernstein bound {:.1} (δ = 1e-9, variance {sum_var:.1}): a systematic bias",
                        bernstein_bound(sum_var) + sum_allow
                    ),
                );
            }
        }
    }

    pub(crate) fn check_specials(&self) {
        for (s, shape) in self.shapes.iter().enumerate() {
            let n: usize = shape.iter().product();
            let base = self.finite(n, 80 + s as u64);
            let alternate = |i: usize| if i % 2 == 0 { 1.0f32 } else { -1.0 };
            // Zeros among finite values, and a tensor of zeros only.
            let mut mixed = base.clone();
            for (i, v) in mixed.iter_mut().enumerate().filter(|(i, _)| i % 3 == 1) {
                *v = 0.0f32.copysign(alternate(i / 3));
            }
            let zeros: Vec<f32> = (0..n).map(|i| 0.0f32.copysign(alternate(i))).collect();
            // NaN (both signs) among finite values, and the same with 0.
            let nan_at = |i: usize| i % 7 == 3;
            let mut nans = base.clone();
            let mut clean = base.clone();
            for i in (0..n).filter(|&i| nan_at(i)) {
                nans[i] = f32::NAN.copysign(alternate(i / 7));
                clean[i] = 0.0;
            }
            // ±Inf among finite values.
            let mut infs = base.clone();
            for (i, v) in infs.iter_mut().enumerate() {
                match i % 11 {
                    5 => *v = f32::INFINITY,
                    10 => *v = f32::NEG_INFINITY,
                    _ => {}
                }
            }
            // What the infinities become: the same on every backend and
            // under every rounding.
            let nearest_infs = self.q(NearestEven, self.backends()[0], &infs, shape, 0);
            for b in self.backends() {
                for (k, r) in ALL_ROUNDINGS.into_iter().enumerate() {
                    let seed = self.seed.wrapping_add(20 + k as u64);
                    let what = |kind: &str, i: usize, x: f32, y: f32| {
                        format!(
                            "{r} ({b} backend, shape {shape:?}, {kind}, element {i}): x = {} -> {}",
                            show(x),
                            show(y)
                        )
                    };
                    for (kind, x) in [("zeros among values", &mixed), ("all zeros", &zeros)] {
                        let y = self.q(r, b, x, shape, seed);
                        for i in (0..n).filter(|&i| x[i] == 0.0) {
                            let want = match self.zero {
                                Zero::Signed => x[i],
                                Zero::Unsigned => 0.0,
                            };
                            if y[i].to_bits() != want.to_bits() {
                                self.fail(
                                    Check::Specials,
                                    format_args!(
                                        "{}, expected {} ({:?} zero)",
                                        what(kind, i, x[i], y[i]),
                                        show(want),
                                        self.zero
                                    ),
                                );
                            }
                        }
                    }
                    let y = self.q(r, b, &nans, shape, seed);
                    let yc = self.q(r, b, &clean, shape, seed);
                    for i in 0..n {
                        let ok = if nan_at(i) {
                            y[i].is_nan()
                        } else {
                            same(y[i], yc[i]) || (self.nan == Nan::PoisonsBlock && y[i].is_nan())
                        };
                        if !ok {
                            let expected = if nan_at(i) {
                                "NaN".to_string()
                            } else {
                                format!(
                                    "{} as with the NaNs replaced by 0 ({:?})",
                                    show(yc[i]),
                                    self.nan
                                )
                            };
                            self.fail(
                                Check::Specials,
                                format_args!(
                                    "{}, expected {expected}",
                                    what("NaN among values", i, nans[i], y[i])
                                ),
                            );
                        }
                    }
                    let y = self.q(r, b, &infs, shape, seed);
                    for i in (0..n).filter(|&i| infs[i].is_infinite()) {
                        let sign_ok =
                            y[i].is_nan() || y[i].is_sign_negative() == infs[i].is_sign_negative();
                        if !sign_ok || !same(y[i], nearest_infs[i]) {
                            self.fail(
                                Check::Specials,
                                format_args!(
                                    "{}: an infinity must become an infinity or a finite value of its sign, or \
                                     NaN, the same on every backend under every rounding (nearest-even on \
                                     the {} backend gives {})",
                                    what("±Inf among values", i, infs[i], y[i]),
                                    self.backends()[0],
                                    show(nearest_infs[i])
                                ),
                            );
                        }
                    }
                }
            }
        }
    }

    pub(crate) fn check_sign_symmetric(&self) {
        let mirrored = [
            (NearestEven, NearestEven),
            (NearestAway, NearestAway),
            (TowardZero, TowardZero),
            (Down, Up),
            (Up, Down),
        ];
        for (s, shape) in self.shapes.iter().enumerate() {
            let n: usize = shape.iter().product();
            let x = self.finite(n, 90 + s as u64);
            let neg: Vec<f32> = x.iter().map(|v| -v).collect();
            for b in self.backends() {
                for (r, mirror) in mirrored {
                    let y = self.q(r, b, &neg, shape, 0);
                    let z = self.q(mirror, b, &x, shape, 0);
                    for i in 0..n {
                        let want = -z[i];
                        let ok = same(y[i], want)
                            || (self.zero == Zero::Unsigned && y[i] == 0.0 && want == 0.0);
                        if !ok {
                            self.fail(
                                Check::SignSymmetric,
                                format_args!(
                                    "{r} ({b} backend, shape {shape:?}, element {i}): -x = {} -> {}, but \
                                     x = {} -> {mirror} -> {}",
                                    show(neg[i]),
                                    show(y[i]),
                                    show(x[i]),
                                    show(z[i])
                                ),
                            );
                        }
                    }
                }
            }
        }
    }

    /// [`Check::Params`]: every key `params()` writes is declared by the
    /// format's factory and allowed by its declaration, and the spec it
    /// makes rebuilds a format with the same `params()`. A format the
    /// registry does not know (built by [`Conformance::for_format`]) has no
    /// declarations to check against and passes.
    pub(crate) fn check_params(&self) {
        let format = self.base.format();
        let Ok(factory) = swalp_core::registry::find(format.name()) else {
            return;
        };
        let params = format.params();
        for (key, value) in &params {
            let Some(declared) = factory.params.iter().find(|p| p.name == key) else {
                panic!(
                    "params() round trip failed for {}: params() writes `{key}`, which {:?} does \
                     not declare",
                    self.label, factory.name
                );
            };
            if let Err(e) = declared.check(value) {
                panic!(
                    "params() round trip failed for {}: `{key} = {value}` breaks its \
                     declaration: {e}",
                    self.label
                );
            }
        }
        let mut spec = params.clone();
        spec.insert("format".into(), format.name().into());
        let rebuilt = swalp_core::registry::build_format(&spec).unwrap_or_else(|e| {
            panic!(
                "params() round trip failed for {}: {spec} does not build: {e}",
                self.label
            )
        });
        assert_eq!(
            rebuilt.params(),
            params,
            "params() round trip failed for {}: the rebuilt format differs",
            self.label
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bernstein_bound_solves_the_inequality() {
        for v in [0.0, 0.1, 1.0, 100.0, 1e6] {
            let t = bernstein_bound(v);
            let tail = 2.0 * (-t * t / (2.0 * (v + t / 3.0))).exp();
            assert!((tail - 1e-9).abs() < 1e-12, "v = {v}: {tail}");
        }
    }

    #[test]
    fn unravel_is_row_major() {
        assert_eq!(unravel(7, &[2, 3, 2]), [1, 0, 1]);
        assert_eq!(unravel(0, &[5]), [0]);
    }

    #[test]
    fn ulp_of_f32_values() {
        assert_eq!(ulp(1.0), p2(-23));
        assert_eq!(ulp(-1.0), p2(-23));
        assert_eq!(ulp(0.0), p2(-149));
        assert_eq!(ulp(f32::INFINITY), 0.0);
    }
}
