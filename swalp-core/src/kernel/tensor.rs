//! Building blocks for tensor kernels: the arithmetic of
//! [`native`](super::native) as tch ops on `Double` tensors, on any device,
//! giving bit-identical results.

use tch::{Kind, Tensor};

use crate::rng::RandomStream;
use crate::rounding::Rounding;

/// `2^k` elementwise, exactly, for an integer tensor `k` in `-1022..=1023`
/// (built from the exponent bits, not with `pow`, so no device's math library
/// can round it).
pub fn pow2(k: &Tensor) -> Tensor {
    (k.to_kind(Kind::Int64) + 1023)
        .bitwise_left_shift_tensor_scalar(52)
        .view_dtype(Kind::Double)
}

/// `floor(log2(|x|))` elementwise as `Int64` for a `Double` tensor; exact for
/// normal values (every value converted from `f32`). Zero and subnormal
/// doubles give −1023, infinities and NaN 1024: callers clamp or mask them.
pub fn exponent(x: &Tensor) -> Tensor {
    x.view_dtype(Kind::Int64)
        .bitwise_right_shift_tensor_scalar(52)
        .bitwise_and(0x7ff)
        - 1023
}

/// The random draws for every element of `x` (row-major), or `None` for
/// deterministic rounding.
pub fn draws(random: Option<RandomStream>, x: &Tensor) -> Option<Tensor> {
    random.map(|r| r.bits_tensor(&x.size(), x.device()))
}

/// Rounds `x / 2^k` to integers with `rounding`, for an integer tensor `k`
/// broadcastable to `x` (one step per element or per block).
pub fn round_to_grid(x: &Tensor, k: &Tensor, rounding: Rounding, draws: Option<&Tensor>) -> Tensor {
    rounding.round_int_tensor(&(x * pow2(&k.neg())), draws)
}

/// [`round_to_grid`] for one step `2^k` shared by every element.
pub fn round_to_fixed_grid(
    x: &Tensor,
    k: i32,
    rounding: Rounding,
    draws: Option<&Tensor>,
) -> Tensor {
    rounding.round_int_tensor(&(x * super::native::pow2(-k)), draws)
}
