//! Tensor kernel: composed tch ops on `Double` tensors, for any device.

use swalp_core::{
    kernel::tensor::draws,
    tch::{Kind, Tensor},
    RandomStream, Result, Rounding,
};

use crate::IntScale;

/// Rounds the `Double` tensor `x` to `format`; see
/// [`native::int`](super::native::int).
pub fn int(
    format: &IntScale,
    x: &Tensor,
    rounding: Rounding,
    random: Option<RandomStream>,
) -> Result<Tensor> {
    let shape: Vec<usize> = x.size().iter().map(|&d| d as usize).collect();
    let block = format.block(&shape)?;
    let magnitude = x
        .f_abs()?
        .f_masked_fill(&x.f_isfinite()?.f_logical_not()?, 0.0)?;
    let m = block.amax(&magnitude)?;
    let divisor = m.f_ones_like()?.f_where_self(&m.f_eq(0.0)?, &m)?;
    let q = format.levels();
    // Divisions by a tensor on x's device, never by a Rust scalar: CUDA
    // turns division by a host scalar into multiplication by its
    // reciprocal, which rounds differently.
    let q_tensor = Tensor::f_scalar_tensor(q, (Kind::Double, x.device()))?;
    let t = x.f_mul(&q_tensor)?.f_div(&divisor)?;
    let n = rounding
        .round_int_tensor(&t, draws(random, x)?.as_ref())?
        .f_clamp(-q, q)?;
    Ok(n.f_mul(&m)?.f_div(&q_tensor)?)
}
