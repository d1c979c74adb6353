//! Native CPU kernel: one pass for the block maxima, one to round.

use swalp_core::{
    block::BlockLayout,
    kernel::native::{abs_bits_finite, draw, map_indexed},
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
    let block = format.block(shape)?;
    let layout = BlockLayout::new(&block, shape).map_err(|e| swalp_core::Error::Unsupported {
        format: "int".into(),
        backend: swalp_core::Backend::Native,
        reason: e.to_string(),
    })?;
    // NaN and infinities never set the scale.
    let max_abs: Vec<f64> = layout
        .maxima(x, abs_bits_finite)
        .into_iter()
        .map(|bits| f64::from(f32::from_bits(bits)))
        .collect();
    let q = format.levels();
    map_indexed(x, out, |i, v| {
        let m = max_abs[layout.block_of(i)];
        let divisor = if m == 0.0 { 1.0 } else { m };
        let t = f64::from(v) * q / divisor;
        let n = rounding.round_int(t, draw(random, i)).clamp(-q, q);
        (n * m / q) as f32
    });
    Ok(())
}
