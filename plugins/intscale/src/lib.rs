//! # swalp-intscale
//!
//! Symmetric integer quantization with a floating-point scale, as used for
//! int8 inference and quantization-aware training: format `int`.
//!
//! Spec: `{ format = "int", bits = 8, channel_dim = 0 }` or
//! `{ format = "int", bits = 8, channel_dim = "tensor" }` (the default).
//!
//! ## Values
//!
//! With `Q = 2^(bits-1) - 1` (127 for 8 bits), each block of the tensor (the
//! whole tensor, or each slice along `channel_dim`: each output channel of a
//! weight with `channel_dim = 0`) takes the values `i · scale` for integers
//! `-Q <= i <= Q`, where `scale = m / Q` and `m` is the block's largest
//! finite magnitude. The range is symmetric (`-2^(bits-1)` is not used, as in
//! "restricted range" int8 schemes), so the element of largest magnitude is
//! kept exactly and zero is exact.
//!
//! ## Rounding
//!
//! Every mode of [`swalp_core::Rounding`] applies to `x / scale` on the
//! integer grid, computed as `x·Q/m` (one rounding in `f64`; exact decisions
//! for `f32` inputs, since `x·Q` is exact and the quotient never crosses an
//! integer or a half-integer by rounding). Stochastic rounding is unbiased
//! between neighbours. The result `i·m/Q` is computed in `f64` (`i·m` is
//! exact, the division rounds once) and then rounded to the tensor's dtype:
//! for `f32` tensors, the `f32` nearest the `f64` value `i · scale`.
//!
//! ## Special values
//!
//! NaN stays NaN and does not affect the scale; ±Inf does not affect the
//! scale either and saturates to `±m` (`±Q · scale`). A block whose finite
//! values are all zero keeps zeros (signs kept) and sends ±Inf to ±0.
//!
//! ```
//! use swalp_core::{tch::Tensor, QuantRng, Quantizer};
//! use swalp_intscale as _;
//! // 4 bits: Q = 7; per row (channel_dim = 0), scales 1 and 2.
//! let q: Quantizer = r#"{ format = "int", bits = 4, channel_dim = 0 }"#.parse().unwrap();
//! let x = Tensor::from_slice(&[7.0f32, 2.4, -3.5, 14.0, 3.0, -1.0]).reshape([2, 3]);
//! let y = q.quantize(&x, &mut QuantRng::new(0)).unwrap().reshape([-1]);
//! assert_eq!(Vec::<f32>::try_from(y).unwrap(), [7.0, 2.0, -4.0, 14.0, 4.0, -0.0]);
//! ```

#![warn(missing_docs)]

mod int;
pub mod kernels;

pub use int::{IntScale, Scope, BITS, CHANNEL_DIM};

use swalp_core::{FormatFactory, NumberFormat, ParamInfo, Params, SpecError};

const PARAMS: &[ParamInfo] = &[BITS, CHANNEL_DIM];

fn build(p: &mut Params<'_>) -> Result<Box<dyn NumberFormat>, SpecError> {
    let bits = p.int(&BITS)? as u32;
    let scope = match p.raw(&CHANNEL_DIM) {
        None => Scope::Tensor,
        Some(v) => Scope::from_toml(v)?,
    };
    Ok(Box::new(IntScale::new(bits, scope)?))
}

swalp_core::register_format!(FormatFactory {
    name: "int",
    summary: "symmetric integers times a per-tensor or per-channel scale max|x|/(2^(bits-1)-1)",
    params: PARAMS,
    build,
});
