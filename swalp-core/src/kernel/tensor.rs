//! Building blocks for tensor kernels: the arithmetic of
//! [`native`](super::native) as tch ops on `Double` tensors, on any device,
//! giving bit-identical results. Every helper is fallible, as the tch ops
//! under it are.

use tch::{Kind, TchError, Tensor};

use crate::rng::RandomStream;
use crate::rounding::Rounding;

/// `2^k` elementwise, exactly, for an integer tensor `k` in `-1022..=1023`
/// (built from the exponent bits, not with `pow`, so no device's math library
/// can round it).
///
/// ```
/// use swalp_core::{kernel::tensor::pow2, tch::Tensor};
/// let p = pow2(&Tensor::from_slice(&[-2i64, 0, 3]))?;
/// assert_eq!(Vec::<f64>::try_from(&p)?, [0.25, 1.0, 8.0]);
/// # Ok::<(), swalp_core::tch::TchError>(())
/// ```
pub fn pow2(k: &Tensor) -> Result<Tensor, TchError> {
    k.f_to_kind(Kind::Int64)?
        .f_add_scalar(1023)?
        .f_bitwise_left_shift_tensor_scalar(52)?
        .f_view_dtype(Kind::Double)
}

/// `floor(log2(|x|))` elementwise as `Int64` for a `Double` tensor; exact for
/// normal values (every value converted from `f32`). Zero and subnormal
/// doubles give −1023, infinities and NaN 1024: callers clamp or mask them.
///
/// ```
/// use swalp_core::{kernel::tensor::exponent, tch::Tensor};
/// let e = exponent(&Tensor::from_slice(&[1.0f64, -0.75, 6.0]))?;
/// assert_eq!(Vec::<i64>::try_from(&e)?, [0, -1, 2]);
/// # Ok::<(), swalp_core::tch::TchError>(())
/// ```
pub fn exponent(x: &Tensor) -> Result<Tensor, TchError> {
    x.f_view_dtype(Kind::Int64)?
        .f_bitwise_right_shift_tensor_scalar(52)?
        .f_bitwise_and(0x7ff)?
        .f_sub_scalar(1023)
}

/// The random draws for every element of `x` (row-major), or `None` for
/// deterministic rounding.
pub fn draws(random: Option<RandomStream>, x: &Tensor) -> Result<Option<Tensor>, TchError> {
    random
        .map(|r| r.bits_tensor(&x.size(), x.device()))
        .transpose()
}

/// Rounds `x / 2^k` to integers with `rounding`, for an integer tensor `k`
/// broadcastable to `x` (one step per element or per block).
pub fn round_to_grid(
    x: &Tensor,
    k: &Tensor,
    rounding: Rounding,
    draws: Option<&Tensor>,
) -> Result<Tensor, TchError> {
    rounding.round_int_tensor(&x.f_mul(&pow2(&k.f_neg()?)?)?, draws)
}

/// [`round_to_grid`] for one step `2^k` shared by every element.
///
/// ```
/// use swalp_core::{kernel::tensor::round_to_fixed_grid, tch::Tensor, Rounding};
/// // 0.3 on a grid of step 2^-2 = 0.25 is 1.2 steps.
/// let x = Tensor::from_slice(&[0.3f64]);
/// let n = round_to_fixed_grid(&x, -2, Rounding::Up, None)?;
/// assert_eq!(Vec::<f64>::try_from(&n)?, [2.0]);
/// # Ok::<(), swalp_core::tch::TchError>(())
/// ```
pub fn round_to_fixed_grid(
    x: &Tensor,
    k: i32,
    rounding: Rounding,
    draws: Option<&Tensor>,
) -> Result<Tensor, TchError> {
    rounding.round_int_tensor(&x.f_mul_scalar(super::native::pow2(-k))?, draws)
}
