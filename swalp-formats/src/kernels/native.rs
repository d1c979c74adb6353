//! Native CPU kernels: fused loops over contiguous `f32` slices.

use swalp_core::{
    kernel::native::{draw, exponent, map_indexed, pow2, round_to_grid},
    RandomStream, Result, Rounding,
};

use crate::{BlockFloat, FixedPoint, FloatFormat};

/// Fixed point: round on the `2^-fl` grid, clamp the integer.
pub fn fixed(
    format: &FixedPoint,
    x: &[f32],
    out: &mut [f32],
    rounding: Rounding,
    random: Option<RandomStream>,
) {
    let k = -format.fl();
    let step = pow2(k);
    let (lo, hi) = format.int_range();
    let clamp = format.clamps();
    map_indexed(x, out, |i, v| {
        let n = round_to_grid(f64::from(v), k, rounding, draw(random, i));
        let n = if clamp { n.clamp(lo, hi) } else { n };
        (n * step) as f32
    });
}

/// Floating point: round on the grid of each value's binade, then apply the
/// format's overflow rule.
pub fn float(
    format: &FloatFormat,
    x: &[f32],
    out: &mut [f32],
    rounding: Rounding,
    random: Option<RandomStream>,
) {
    let max = format.max_value();
    let overflow = [
        format.overflow_value(false, rounding),
        format.overflow_value(true, rounding),
    ];
    let infinity = [format.infinity_value(false), format.infinity_value(true)];
    map_indexed(x, out, |i, v| {
        let x = f64::from(v);
        if x == 0.0 {
            return v;
        }
        if x.is_nan() {
            // Quieted, as the tensor kernel's round trip through f64 does.
            return f32::from_bits(v.to_bits() | 0x0040_0000);
        }
        let negative = usize::from(x < 0.0);
        if x.is_infinite() {
            return infinity[negative] as f32;
        }
        let k = format.step_exponent(exponent(x));
        let y = round_to_grid(x, k, rounding, draw(random, i)) * pow2(k);
        if y.abs() > max {
            overflow[negative] as f32
        } else {
            y as f32
        }
    });
}

/// Block floating point: one pass for the block maxima, one to round.
pub fn block(
    format: &BlockFloat,
    x: &[f32],
    shape: &[usize],
    out: &mut [f32],
    rounding: Rounding,
    random: Option<RandomStream>,
) -> Result<()> {
    let layout = format.layout(shape)?;
    let mut max_abs = vec![0.0f64; layout.num_blocks()];
    for (i, &v) in x.iter().enumerate() {
        let m = &mut max_abs[layout.block_of(i)];
        // NaN compares false and so never becomes the maximum.
        let a = f64::from(v).abs();
        if a > *m {
            *m = a;
        }
    }
    let steps: Vec<i32> = max_abs
        .iter()
        .map(|&m| format.step_exponent(format.shared_exponent(m)))
        .collect();
    map_indexed(x, out, |i, v| {
        let k = steps[layout.block_of(i)];
        let (lo, hi) = format.int_range_at(k);
        let n = round_to_grid(f64::from(v), k, rounding, draw(random, i)).clamp(lo, hi);
        (n * pow2(k)) as f32
    });
    Ok(())
}

/// OCP MX: one pass for the block maxima (a NaN or infinity makes its block
/// non-finite), one to round each element on its block's scaled element grid
/// and clamp it to the element's max normal.
pub fn mx(
    format: &crate::mx::MxFormat,
    x: &[f32],
    shape: &[usize],
    out: &mut [f32],
    rounding: Rounding,
    random: Option<RandomStream>,
) -> Result<()> {
    let layout = format.layout(shape, swalp_core::Backend::Native)?;
    let mut max_abs = vec![0.0f64; layout.num_blocks()];
    for (i, &v) in x.iter().enumerate() {
        let a = f64::from(v).abs();
        // NaN compares false: count it as infinite so that it marks the block.
        let a = if a.is_nan() { f64::INFINITY } else { a };
        let m = &mut max_abs[layout.block_of(i)];
        if a > *m {
            *m = a;
        }
    }
    let scales: Vec<Option<i32>> = max_abs.iter().map(|&m| format.shared_exponent(m)).collect();
    let elem = format.elem();
    let max = elem.max_value();
    map_indexed(x, out, |i, v| {
        let Some(s) = scales[layout.block_of(i)] else {
            return f32::NAN;
        };
        let x = f64::from(v);
        // The element grid around x / 2^s, moved back by 2^s; x = 0 reads as
        // exponent -1023, below every binade, and stays a signed zero.
        let k = elem.step_exponent(exponent(x) - s) + s;
        let y = round_to_grid(x, k, rounding, draw(random, i)) * pow2(k);
        let limit = max * pow2(s);
        if y.abs() > limit {
            limit.copysign(y) as f32
        } else {
            y as f32
        }
    });
    Ok(())
}
