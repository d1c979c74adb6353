//! [`NearestGrid`]: a value rounding's grid under nearest-even, described
//! by numbers, so that a kernel with its own arithmetic (the `f32` lanes of
//! the matrix-product kernel) can round exactly as
//! [`ValueRounding::round_values`](super::ValueRounding::round_values)
//! does without calling it.

/// The grid a [`ValueRounding`](super::ValueRounding) rounds to under
/// [`Rounding::NearestEven`](crate::Rounding::NearestEven), from
/// [`ValueRounding::nearest_grid`](super::ValueRounding::nearest_grid).
///
/// A value `x` rounds as follows, and `round_values` must give the same
/// `f64` for every `x`:
///
/// 1. the step of `x`'s binade `2^e ≤ |x| < 2^(e+1)` is
///    `2^max(min(e, emax) − man, min_step)` (a fixed-point grid has no
///    `man`: every step is `2^min_step`);
/// 2. `x` goes to the nearest multiple of its step, ties to the even
///    multiple, keeping its sign (a negative `x` that rounds to zero gives
///    `−0`);
/// 3. a result above `hi` becomes `above`, one below `lo` becomes `below`;
/// 4. an infinite `x` becomes `infinity[0]` (`+∞`) or `infinity[1]` (`−∞`);
///    NaN stays NaN.
///
/// ```
/// use swalp_core::{format::NearestGrid, NumberFormat, Rounding};
/// use swalp_formats::{FloatFormat, Overflow, Specials};
/// let e5m2 = FloatFormat::new(5, 2, true, Specials::Ieee, Overflow::Infinity)?;
/// let grid = e5m2.value_rounding(Rounding::NearestEven).and_then(|r| r.nearest_grid());
/// let grid: NearestGrid = grid.expect("IEEE-style floats describe their grid");
/// assert_eq!((grid.man, grid.min_step, grid.hi), (Some(2), -16, 57344.0));
/// # Ok::<(), swalp_core::SpecError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NearestGrid {
    /// Significand bits after the point (a float's mantissa); `None` for a
    /// uniform (fixed-point) grid.
    pub man: Option<u32>,
    /// The largest binade with a step of its own; larger values keep its
    /// step (ignored without `man`).
    pub emax: i32,
    /// The exponent of the smallest step.
    pub min_step: i32,
    /// The largest result that stays.
    pub hi: f64,
    /// The smallest (most negative) result that stays.
    pub lo: f64,
    /// What a result above `hi` becomes.
    pub above: f64,
    /// What a result below `lo` becomes.
    pub below: f64,
    /// What `+∞` and `−∞` become.
    pub infinity: [f64; 2],
}

impl NearestGrid {
    /// The exponent of the largest step.
    pub fn max_step(&self) -> i32 {
        match self.man {
            Some(man) => (self.emax - man as i32).max(self.min_step),
            None => self.min_step,
        }
    }

    /// Significant bits of the widest value on the grid: `man + 1` for a
    /// float, the bits from the step to `max(hi, −lo)` for a fixed grid.
    /// A sum of two values with at most `p` bits each, formed in a
    /// format of at least `2p + 1` bits and rounded again to a `p`-bit
    /// grid, equals the sum rounded once (Figueroa, 1995).
    pub fn precision(&self) -> u32 {
        match self.man {
            Some(man) => man + 1,
            None => {
                let widest = self.hi.abs().max(self.lo.abs()) * (-f64::from(self.min_step)).exp2();
                // Bits of the largest integer multiple of the step.
                (widest.max(1.0).log2().floor() as u32) + 1
            }
        }
    }
}
