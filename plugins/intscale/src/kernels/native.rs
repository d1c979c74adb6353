//! Native CPU kernel: one pass for the block maxima, one to round.

use swalp_core::{
    kernel::native::{draw, map_indexed},
    RandomStream, Result, Rounding,
};

use crate::IntScale;

/// Rounds `x` (row-major, of `shape`) to `format` into `out`.
pub fn int(
    format: &IntScale,
    x: &[f32],
    shape: &[usize],
    out: &mut [f32],
    rounding: Rounding,
    random: Option<RandomStream>,
) -> Result<()> {
    let (blocks, run) = format.blocks(shape)?;
    let block_of = |i: usize| (i / run) % blocks;
    let mut max_abs = vec![0.0f64; blocks];
    for (i, &v) in x.iter().enumerate() {
        let a = f64::from(v).abs();
        // NaN and infinities never set the scale.
        if a.is_finite() && a > max_abs[block_of(i)] {
            max_abs[block_of(i)] = a;
        }
    }
    let q = format.levels();
    map_indexed(x, out, |i, v| {
        let m = max_abs[block_of(i)];
        let divisor = if m == 0.0 { 1.0 } else { m };
        let t = f64::from(v) * q / divisor;
        let n = rounding.round_int(t, draw(random, i)).clamp(-q, q);
        (n * m / q) as f32
    });
    Ok(())
}
