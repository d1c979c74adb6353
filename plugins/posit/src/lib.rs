//! # swalp-posit
//!
//! Posit numbers for swalp: `posit<n, es>` as defined by the 2022 Standard
//! for Posit Arithmetic, with any `es` from 0 to 4 (the standard fixes
//! `es = 2`; the earlier posits of Gustafson and Yonemoto used others).
//!
//! Spec: `{ format = "posit", n = 8, es = 0, rounding = "nearest-even" }`
//! (`n` in 2..=32, `es` in 0..=4, default 2, with `2^es · (n-2) <= 127`).
//!
//! ## Values
//!
//! 0, NaR and `±useed^k · 2^e · (1.f)` with `useed = 2^(2^es)`, from
//! `minpos = useed^-(n-2)` to `maxpos = useed^(n-2)` (see [`Posit`]). NaR is
//! represented as NaN: NaN and ±Inf inputs become NaN. Posits have one zero,
//! so `-0.0` becomes `+0.0`.
//!
//! ## Rounding
//!
//! - Nothing rounds to zero or NaR, whatever the mode: nonzero values below
//!   `minpos` in magnitude become `±minpos`, values beyond `maxpos` become
//!   `±maxpos` (the standard's rule, applied to every mode; so `down`,
//!   `toward-zero` and stochastic rounding also give `minpos` there).
//! - `nearest-even` is the standard's rounding: to the nearest posit *on the
//!   bit pattern*, ties to the even pattern. A value between neighbours `u`
//!   and `w` rounds by comparing it with the `(n+1)`-bit posit `v` whose
//!   pattern is `u`'s followed by a one. Where `u` and `w` differ in fraction
//!   bits (almost everywhere), `v` is their arithmetic midpoint and this is
//!   ordinary round-to-nearest-even; near `minpos` and `maxpos`, where the
//!   exponent field is cut short, `u` and `w` differ by a factor
//!   `2^gap` (`gap >= 2`) and `v = sqrt(u·w)` is their geometric midpoint.
//! - `nearest-away` and `nearest-up` round to the posit nearest *in value*,
//!   ties (the arithmetic midpoint) away from zero / toward +∞. They differ
//!   from `nearest-even` beyond ties only where the exponent is cut short:
//!   in posit<8,2>, 4194305 (just above `2^22`) is nearer `2^20` in value,
//!   but above `v = 2^22`, so `nearest-even` gives `2^24`.
//! - `down`, `up`, `toward-zero`: the neighbour below, above, toward zero.
//! - `stochastic` and `{ stochastic_bits = k }` choose between the two
//!   neighbouring posits with probability proportional to distance *in
//!   value* (not by adding random bits to the encoding, which would be
//!   biased where the exponent is cut short), so the result is unbiased
//!   between neighbours: `x` between `u` and `w` rounds to `w` with
//!   probability `(x - u)/(w - u)`, truncated to `k` bits, on the signed
//!   value exactly as [`swalp_core::Rounding`] does for grid formats.
//!
//! ## f32 and precision
//!
//! Posit values are carried in the tensor's dtype. The parameter limit
//! `2^es · (n-2) <= 127` keeps `maxpos <= 2^127` and `minpos >= 2^-127`, so
//! every posit lies in `f32`'s range (it rules out e.g. posit<18,3> and
//! posit<10,4>). Precision is another matter: posits near 1 have up to
//! `n - 3 - es` fraction bits, more than `f32`'s 23 when `n - es > 26`
//! (posit<32,2> has 27), so not every posit is an `f32`. Rounding is still
//! exact for `f32` tensors: where the posit grid is finer than `f32`'s, every
//! `f32` is already a posit and is returned unchanged, and everywhere else
//! the rounded posit is an `f32`. `f64` tensors (tensor kernel) get exact
//! posits for every `n`, whose fraction bits `f64` always holds. Half and
//! bfloat16 tensors are rounded to posits in `f64` and then to the dtype.
//!
//! ```
//! use swalp_core::{tch::Tensor, QuantRng, Quantizer};
//! use swalp_posit as _;
//! let q: Quantizer = r#"{ format = "posit", n = 8, es = 0 }"#.parse().unwrap();
//! let x = Tensor::from_slice(&[1.0f32 + 1.0 / 64.0, 50.0, 1e-9, -1e9]);
//! let y = Vec::<f32>::try_from(q.quantize(&x, &mut QuantRng::new(0)).unwrap()).unwrap();
//! assert_eq!(y, [1.0, 64.0, 1.0 / 64.0, -64.0]);
//! ```

#![warn(missing_docs)]

pub mod kernels;
mod posit;

pub use posit::{Binade, Posit, ES, MAX_SCALE, N};

use swalp_core::{FormatFactory, NumberFormat, ParamInfo, Params, SpecError};

const PARAMS: &[ParamInfo] = &[N, ES];

fn build(p: &mut Params<'_>) -> Result<Box<dyn NumberFormat>, SpecError> {
    let n = p.int(&N)? as u32;
    let es = p.int(&ES)? as u32;
    Ok(Box::new(Posit::new(n, es)?))
}

swalp_core::register_format!(FormatFactory {
    name: "posit",
    summary: "posit<n, es> (2022 posit standard): tapered precision, no underflow or overflow",
    params: PARAMS,
    build,
});
