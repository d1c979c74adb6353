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
