//! Tensor kernels: composed tch ops on `Double` tensors, for any device.

use swalp_core::{
    kernel::tensor::{draws, exponent, pow2, round_to_fixed_grid, round_to_grid},
    tch::{Kind, Tensor},
    RandomStream, Result, Rounding,
};

use crate::{Block, BlockFloat, FixedPoint, FloatFormat};

fn scalar(x: &Tensor, v: f64) -> Tensor {
    Tensor::scalar_tensor(v, (Kind::Double, x.device()))
}

/// Fixed point; see [`native::fixed`](super::native::fixed).
pub fn fixed(
    format: &FixedPoint,
    x: &Tensor,
    rounding: Rounding,
    random: Option<RandomStream>,
) -> Tensor {
    let r = draws(random, x);
    let n = round_to_fixed_grid(x, -format.fl(), rounding, r.as_ref());
    let n = if format.clamps() {
        let (lo, hi) = format.int_range();
        n.clamp(lo, hi)
    } else {
        n
    };
    n * format.step()
}

/// Floating point; see [`native::float`](super::native::float).
pub fn float(
    format: &FloatFormat,
    x: &Tensor,
    rounding: Rounding,
    random: Option<RandomStream>,
) -> Tensor {
    let r = draws(random, x);
    let man = i64::from(format.man_bits());
    let (emin, emax) = (i64::from(format.emin()), i64::from(format.emax()));
    let e = exponent(x).clamp_max(emax);
    let k = if format.has_subnormals() {
        e.clamp_min(emin) - man
    } else {
        // Below 2^emin the only values are 0 and ±2^emin: a step of 2^emin.
        (&e - man).where_self(
            &e.ge(emin),
            &Tensor::scalar_tensor(emin, (Kind::Int64, x.device())),
        )
    };
    let y = round_to_grid(x, &k, rounding, r.as_ref()) * pow2(&k);
    let negative = x.lt(0.0);
    let overflow = scalar(x, format.overflow_value(true, rounding)).where_self(
        &negative,
        &scalar(x, format.overflow_value(false, rounding)),
    );
    let y = overflow.where_self(&y.abs().gt(format.max_value()), &y);
    let infinity = scalar(x, format.infinity_value(true))
        .where_self(&negative, &scalar(x, format.infinity_value(false)));
    infinity.where_self(&x.isinf(), &y)
}

/// Block floating point; see [`native::block`](super::native::block).
pub fn block(
    format: &BlockFloat,
    x: &Tensor,
    rounding: Rounding,
    random: Option<RandomStream>,
) -> Result<Tensor> {
    let shape: Vec<usize> = x.size().iter().map(|&d| d as usize).collect();
    // Validates the block dimensions against the shape, as the native kernel does.
    format.layout(&shape)?;
    let magnitude = x.abs().masked_fill(&x.isnan(), 0.0);
    let max_abs = block_max(&magnitude, format.block_for(shape.len()));
    let (lo, hi) = format.exponent_range();
    let shared = exponent(&max_abs).clamp(i64::from(lo), i64::from(hi));
    let k = shared - i64::from(format.wl() as i32 - 2);
    let r = draws(random, x);
    let (nlo, nhi) = format.int_range();
    let n = round_to_grid(x, &k, rounding, r.as_ref()).clamp(nlo, nhi);
    // At the largest steps the lowest integer is -nhi: where -2^(wl-1) · 2^k
    // would be -2^128 or beyond, k + wl - 1 >= 128; see `int_range_at`.
    let top = i64::from(129 - format.wl() as i32);
    let beyond_f32 = k.ge(top).logical_and(&n.eq(nlo));
    let n = scalar(x, -nhi).where_self(&beyond_f32, &n);
    Ok(n * pow2(&k))
}

/// The maximum of `magnitude` over each element's block, broadcastable to it.
fn block_max(magnitude: &Tensor, block: &Block) -> Tensor {
    let ndim = magnitude.dim() as i64;
    match block {
        Block::Tensor => magnitude.amax(Vec::<i64>::new(), true),
        Block::Dims(dims) => {
            let reduced: Vec<i64> = (0..ndim)
                .filter(|d| !dims.contains(&(*d as usize)))
                .collect();
            if reduced.is_empty() {
                magnitude.shallow_clone()
            } else {
                magnitude.amax(reduced, true)
            }
        }
        Block::Chunks { size, dim } => {
            let size = *size as i64;
            let moved = magnitude.movedim([*dim as i64], [ndim - 1]);
            let len = moved.size()[ndim as usize - 1];
            let groups = (len + size - 1) / size;
            let padded = moved.constant_pad_nd([0, groups * size - len]);
            let mut grouped_shape = padded.size();
            grouped_shape.pop();
            grouped_shape.extend([groups, size]);
            let maxima = padded.reshape(&grouped_shape).amax([-1], true);
            let spread = maxima.expand(&grouped_shape, false).reshape(padded.size());
            spread
                .narrow(ndim - 1, 0, len)
                .movedim([ndim - 1], [*dim as i64])
        }
    }
}

/// OCP MX; see [`native::mx`](super::native::mx).
pub fn mx(
    format: &crate::mx::MxFormat,
    x: &Tensor,
    rounding: Rounding,
    random: Option<RandomStream>,
) -> Result<Tensor> {
    let shape: Vec<usize> = x.size().iter().map(|&d| d as usize).collect();
    let layout = format.layout(&shape, swalp_core::Backend::Tensor)?;
    // A 0-dimensional tensor is one block of one element.
    let flat = if shape.is_empty() {
        x.reshape([1])
    } else {
        x.shallow_clone()
    };
    let finite = flat.isfinite();
    let magnitude = flat.abs().masked_fill(&finite.logical_not(), f64::INFINITY);
    let chunks = Block::Chunks {
        size: format.block_size(),
        dim: layout.dim(),
    };
    let max_abs = block_max(&magnitude, &chunks);
    let elem = format.elem();
    let (lo, hi) = (
        i64::from(crate::mx::SCALE_EXP_MIN),
        i64::from(crate::mx::SCALE_EXP_MAX),
    );
    // Zero (and subnormal) maxima read as exponent -1023 and clamp to 2^-127.
    let s = (exponent(&max_abs) - i64::from(elem.emax())).clamp(lo, hi);
    let e = (exponent(&flat) - &s).clamp(i64::from(elem.emin()), i64::from(elem.emax()));
    let k = e - i64::from(elem.man_bits()) + &s;
    let r = draws(random, &flat);
    let y = round_to_grid(&flat, &k, rounding, r.as_ref()) * pow2(&k);
    let limit = pow2(&s) * elem.max_value();
    let y = limit
        .copysign(&y)
        .where_self(&y.abs().gt_tensor(&limit), &y);
    let nan = scalar(&flat, f64::NAN);
    let y = nan.where_self(&max_abs.isfinite().logical_not(), &y);
    Ok(y.reshape(x.size()))
}
