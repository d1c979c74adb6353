//! Tensor kernels: composed tch ops on `Double` tensors, for any device.
//! Every op is the fallible `f_` form, so a libtorch failure is an error of
//! the call, never a panic.

use swalp_core::{
    kernel::tensor::{draws, exponent, pow2, round_to_fixed_grid, round_to_grid},
    tch::{Kind, Tensor},
    RandomStream, Result, Rounding,
};

use crate::{BlockFloat, FixedPoint, FloatFormat};

fn scalar(x: &Tensor, v: f64) -> Result<Tensor> {
    Ok(Tensor::f_scalar_tensor(v, (Kind::Double, x.device()))?)
}

/// Fixed point; see [`native::fixed`](super::native::fixed).
pub fn fixed(
    format: &FixedPoint,
    x: &Tensor,
    rounding: Rounding,
    random: Option<RandomStream>,
) -> Result<Tensor> {
    let r = draws(random, x)?;
    let n = round_to_fixed_grid(x, -format.fl(), rounding, r.as_ref())?;
    let n = if format.clamps() {
        let (lo, hi) = format.int_range();
        n.f_clamp(lo, hi)?
    } else {
        n
    };
    Ok(n.f_mul_scalar(format.step())?)
}

/// Floating point; see [`native::float`](super::native::float).
pub fn float(
    format: &FloatFormat,
    x: &Tensor,
    rounding: Rounding,
    random: Option<RandomStream>,
) -> Result<Tensor> {
    let r = draws(random, x)?;
    let man = i64::from(format.man_bits());
    let (emin, emax) = (i64::from(format.emin()), i64::from(format.emax()));
    let e = exponent(x)?.f_clamp_max(emax)?;
    let k = if format.has_subnormals() {
        e.f_clamp_min(emin)?.f_sub_scalar(man)?
    } else {
        // Below 2^emin the only values are 0 and ±2^emin: a step of 2^emin.
        e.f_sub_scalar(man)?.f_where_self(
            &e.f_ge(emin)?,
            &Tensor::f_scalar_tensor(emin, (Kind::Int64, x.device()))?,
        )?
    };
    let y = round_to_grid(x, &k, rounding, r.as_ref())?.f_mul(&pow2(&k)?)?;
    let negative = x.f_lt(0.0)?;
    let overflow = scalar(x, format.overflow_value(true, rounding))?.f_where_self(
        &negative,
        &scalar(x, format.overflow_value(false, rounding))?,
    )?;
    let y = overflow.f_where_self(&y.f_abs()?.f_gt(format.max_value())?, &y)?;
    let infinity = scalar(x, format.infinity_value(true))?
        .f_where_self(&negative, &scalar(x, format.infinity_value(false))?)?;
    Ok(infinity.f_where_self(&x.f_isinf()?, &y)?)
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
    let magnitude = x.f_abs()?.f_masked_fill(&x.f_isnan()?, 0.0)?;
    let max_abs = format.block_for(shape.len()).amax(&magnitude)?;
    let (lo, hi) = format.exponent_range();
    let shared = exponent(&max_abs)?.f_clamp(i64::from(lo), i64::from(hi))?;
    let k = shared.f_sub_scalar(i64::from(format.wl() as i32 - 2))?;
    let r = draws(random, x)?;
    let (nlo, nhi) = format.int_range();
    let n = round_to_grid(x, &k, rounding, r.as_ref())?.f_clamp(nlo, nhi)?;
    // At the largest steps the lowest integer is -nhi: where -2^(wl-1) · 2^k
    // would be -2^128 or beyond, k + wl - 1 >= 128; see `int_range_at`.
    let top = i64::from(129 - format.wl() as i32);
    let beyond_f32 = k.f_ge(top)?.f_logical_and(&n.f_eq(nlo)?)?;
    let n = scalar(x, -nhi)?.f_where_self(&beyond_f32, &n)?;
    Ok(n.f_mul(&pow2(&k)?)?)
}

/// OCP MX; see [`native::mx`](super::native::mx).
pub fn mx(
    format: &crate::mx::MxFormat,
    x: &Tensor,
    rounding: Rounding,
    random: Option<RandomStream>,
) -> Result<Tensor> {
    let shape: Vec<usize> = x.size().iter().map(|&d| d as usize).collect();
    let block = format.block(&shape, swalp_core::Backend::Tensor)?;
    // A 0-dimensional tensor is one block of one element.
    let flat = if shape.is_empty() {
        x.f_reshape([1])?
    } else {
        x.shallow_clone()
    };
    let finite = flat.f_isfinite()?;
    let magnitude = flat
        .f_abs()?
        .f_masked_fill(&finite.f_logical_not()?, f64::INFINITY)?;
    let max_abs = block.amax(&magnitude)?;
    let elem = format.elem();
    let (lo, hi) = (
        i64::from(crate::mx::SCALE_EXP_MIN),
        i64::from(crate::mx::SCALE_EXP_MAX),
    );
    let (s, no_scale) = mx_scale_exponent(format, &max_abs)?;
    let s = s.f_clamp(lo, hi)?;
    let e = exponent(&flat)?
        .f_sub(&s)?
        .f_clamp(i64::from(elem.emin()), i64::from(elem.emax()))?;
    let k = e.f_sub_scalar(i64::from(elem.man_bits()))?.f_add(&s)?;
    let r = draws(random, &flat)?;
    let y = round_to_grid(&flat, &k, rounding, r.as_ref())?.f_mul(&pow2(&k)?)?;
    let limit = pow2(&s)?.f_mul_scalar(elem.max_value())?;
    let y = limit
        .f_copysign(&y)?
        .f_where_self(&y.f_abs()?.f_gt_tensor(&limit)?, &y)?;
    let nan = scalar(&flat, f64::NAN)?;
    let y = nan.f_where_self(&no_scale, &y)?;
    Ok(y.f_reshape(x.size())?)
}

/// The shared exponent of each block from its largest magnitude, by the
/// format's scale rule, as
/// [`MxFormat::shared_exponent`](crate::mx::MxFormat::shared_exponent)
/// computes it; with the blocks that get the NaN scale.
fn mx_scale_exponent(format: &crate::mx::MxFormat, max_abs: &Tensor) -> Result<(Tensor, Tensor)> {
    use crate::mx::ScaleRule;
    let elem = format.elem();
    let emax = i64::from(elem.emax());
    // Zero (exponent -1023) reads as 2^-1000, below every unclamped scale.
    let floor_log2 = |m: &Tensor| -> Result<Tensor> { Ok(exponent(m)?.f_clamp_min(-1000)?) };
    let above = |m: &Tensor, e: &Tensor| -> Result<Tensor> {
        Ok(m.f_gt_tensor(&pow2(e)?)?.f_to_kind(Kind::Int64)?)
    };
    let e = floor_log2(max_abs)?;
    let no_scale = max_abs.f_isfinite()?.f_logical_not()?;
    Ok(match format.scale_rule() {
        ScaleRule::Floor => (e.f_sub_scalar(emax)?, no_scale),
        ScaleRule::Ceil => (e.f_add(&above(max_abs, &e)?)?.f_sub_scalar(emax)?, no_scale),
        ScaleRule::Even => {
            let mbits = i64::from(elem.man_bits());
            let steps = max_abs
                .f_div(&pow2(&e.f_sub_scalar(mbits)?)?)?
                .f_add_scalar(0.5)?
                .f_floor()?;
            let carry = steps
                .f_ge((1i64 << (mbits + 1)) as f64)?
                .f_to_kind(Kind::Int64)?;
            let e = e.f_add(&carry)?;
            let overflow = e
                .f_ge(128)?
                .f_logical_and(&max_abs.f_le(f64::from(f32::MAX))?)?;
            (e.f_sub_scalar(emax)?, no_scale.f_logical_or(&overflow)?)
        }
        ScaleRule::Rceil => {
            let log2 = max_abs
                .f_to_kind(Kind::Float)?
                .f_div_scalar(elem.max_value())?
                .f_to_kind(Kind::Double)?
                .f_log2()?
                .f_to_kind(Kind::Float)?
                .f_ceil()?
                .f_clamp(-1000.0, 1000.0)?;
            (log2.f_to_kind(Kind::Int64)?, no_scale)
        }
    })
}

/// NVFP4; see [`native::nvfp4`](super::native::nvfp4). The scales and the
/// products are computed on `f32` tensors, as torchao computes them; the
/// element rounding is the float kernel's on the exact `f32` products.
pub fn nvfp4(
    format: &crate::Nvfp4Format,
    x: &Tensor,
    rounding: Rounding,
    random: Option<RandomStream>,
) -> Result<Tensor> {
    use crate::nvfp4::{ELEM_MAX, SCALE_MAX, SCALE_MIN};
    let shape: Vec<usize> = x.size().iter().map(|&d| d as usize).collect();
    let Some(block) = format.blocks(&shape, swalp_core::Backend::Tensor)? else {
        return Ok(x.f_mul_scalar(1.0)?);
    };
    let xf = x.f_to_kind(Kind::Float)?;
    let finite = xf.f_isfinite()?;
    let magnitude = xf
        .f_abs()?
        .f_masked_fill(&finite.f_logical_not()?, f64::INFINITY)?;
    let block_amax = block.amax(&magnitude)?;
    let b = block_amax.f_div_scalar(f64::from(ELEM_MAX))?;
    let one = Tensor::f_scalar_tensor(1.0, (Kind::Float, x.device()))?;
    let mut not_finite = block_amax.f_isinf()?;
    let (mul, dequant, flush) = if format.tensor_scale() {
        let amax = magnitude.f_amax(Vec::<i64>::new(), false)?;
        let t = amax.f_div_scalar(f64::from(SCALE_MAX * ELEM_MAX))?;
        let rt = one.f_div(&t)?;
        let flush = rt
            .f_div_scalar(f64::from(SCALE_MIN))?
            .f_isfinite()?
            .f_logical_not()?;
        not_finite = not_finite.f_logical_or(&amax.f_isinf()?)?;
        let s = e4m3_nearest(
            &b.f_div(&t)?
                .f_clamp(f64::from(SCALE_MIN), f64::from(SCALE_MAX))?,
        )?;
        (rt.f_div(&s)?, t.f_mul(&s)?, Some(flush))
    } else {
        let s = e4m3_nearest(&b.f_clamp(f64::from(SCALE_MIN), f64::from(SCALE_MAX))?)?;
        (one.f_div(&s)?, s, None)
    };
    let y = scaled_elements(
        &xf,
        &mul,
        &dequant,
        &format.elem(),
        &not_finite,
        rounding,
        random,
    )?;
    let y = match flush {
        Some(flush) => xf.f_mul_scalar(0.0)?.f_where_self(&flush, &y)?,
        None => y,
    };
    Ok(y.f_to_kind(Kind::Double)?)
}

/// `f32` values in E4M3's normal range rounded to E4M3, ties to even, as
/// [`e4m3_nearest`](crate::nvfp4::e4m3_nearest) does (NaN stays NaN).
fn e4m3_nearest(s: &Tensor) -> Result<Tensor> {
    let d = s.f_to_kind(Kind::Double)?;
    let k = exponent(&d)?.f_sub_scalar(3)?.f_clamp(-1000, 1000)?;
    let n = round_to_grid(&d, &k, Rounding::NearestEven, None)?;
    Ok(n.f_mul(&pow2(&k)?)?.f_to_kind(Kind::Float)?)
}

/// The elements of scaled float blocks (NVFP4, scaled FP8) as `f32`:
/// `round(clamp(x · mul, ±max)) · dequant`, the element on the grid of
/// `elem` (whose largest value is `max`), NaN where `not_finite`; see the
/// native `ScaledElement`.
fn scaled_elements(
    xf: &Tensor,
    mul: &Tensor,
    dequant: &Tensor,
    elem: &FloatFormat,
    not_finite: &Tensor,
    rounding: Rounding,
    random: Option<RandomStream>,
) -> Result<Tensor> {
    let max = elem.max_value();
    let scaled = xf.f_mul(mul)?.f_clamp(-max, max)?;
    let q = float(elem, &scaled.f_to_kind(Kind::Double)?, rounding, random)?;
    let y = q.f_to_kind(Kind::Float)?.f_mul(dequant)?;
    Ok(y.f_masked_fill(not_finite, f64::NAN)?)
}

/// Scaled FP8; see [`native::fp8_scaled`](super::native::fp8_scaled).
pub fn fp8_scaled(
    format: &crate::Fp8Scaled,
    x: &Tensor,
    rounding: Rounding,
    random: Option<RandomStream>,
) -> Result<Tensor> {
    let shape: Vec<usize> = x.size().iter().map(|&d| d as usize).collect();
    let xf = x.f_to_kind(Kind::Float)?;
    let magnitude = xf
        .f_abs()?
        .f_masked_fill(&xf.f_isfinite()?.f_logical_not()?, f64::INFINITY)?;
    let amax = format.block(&shape).amax(&magnitude)?;
    let top = Tensor::f_scalar_tensor(f64::from(format.max_elem()), (Kind::Float, x.device()))?;
    let m = top.f_div(&amax)?;
    let m = m.f_masked_fill(&m.f_isinf()?, f64::from(f32::MAX))?;
    let m = m.f_masked_fill(&amax.f_eq(0.0)?, 1.0)?;
    let m = if format.pow2() {
        // Sign and exponent bits only: 0xFF800000 as an i32.
        m.f_view_dtype(Kind::Int)?
            .f_bitwise_and(-8_388_608i64)?
            .f_view_dtype(Kind::Float)?
    } else {
        m
    };
    let one = Tensor::f_scalar_tensor(1.0, (Kind::Float, x.device()))?;
    let dequant = one.f_div(&m)?;
    let y = scaled_elements(
        &xf,
        &m,
        &dequant,
        &format.elem_format(),
        &amax.f_isinf()?,
        rounding,
        random,
    )?;
    Ok(y.f_to_kind(Kind::Double)?)
}
