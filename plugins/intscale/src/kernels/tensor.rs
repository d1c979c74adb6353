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
    let ndim = x.dim();
    let dim = format.channel_dim(ndim)?;
    let magnitude = x.abs().masked_fill(&x.isfinite().logical_not(), 0.0);
    let m = match dim {
        None => magnitude.amax(Vec::<i64>::new(), true),
        Some(d) => {
            let others: Vec<i64> = (0..ndim as i64).filter(|&i| i != d as i64).collect();
            if others.is_empty() {
                magnitude
            } else {
                magnitude.amax(others, true)
            }
        }
    };
    let divisor = m.ones_like().where_self(&m.eq(0.0), &m);
    let q = format.levels();
    // Divisions by a tensor on x's device, never by a Rust scalar: CUDA
    // turns division by a host scalar into multiplication by its
    // reciprocal, which rounds differently.
    let q_tensor = Tensor::scalar_tensor(q, (Kind::Double, x.device()));
    let t = (x * &q_tensor) / divisor;
    let n = rounding
        .round_int_tensor(&t, draws(random, x).as_ref())
        .clamp(-q, q);
    Ok((n * m) / q_tensor)
}
