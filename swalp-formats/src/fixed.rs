//! Fixed point: `wl`-bit two's complement integers scaled by `2^-fl`.

use swalp_core::{
    kernel::native::pow2, FormatFactory, NumberFormat, ParamInfo, Params, Result, SpecError,
};

/// Fixed-point format: values `i · 2^-fl` for integers `i` in
/// `[-2^(wl-1), 2^(wl-1) - 1]` (`[-(2^(wl-1) - 1), ...]` when symmetric).
/// Out-of-range values saturate when `clamp` is true (the default) and keep
/// their rounded value otherwise.
///
/// QPyTorch 0.3.0's `fixed_point_quantize(..., rounding="nearest")` rounds
/// ties to even; use `rounding = "nearest-even"` to reproduce it.
///
/// Spec: `{ format = "fixed", wl = 8, fl = 6, clamp = true, symmetric = false }`.
///
/// ```
/// use swalp_formats::FixedPoint;
/// let q = FixedPoint::new(8, 6, true, false).unwrap();
/// assert_eq!(q.step(), 1.0 / 64.0);
/// assert_eq!(q.max(), 127.0 / 64.0);
/// assert_eq!(q.min(), -2.0);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FixedPoint {
    wl: u32,
    fl: i32,
    clamp: bool,
    symmetric: bool,
}

/// `wl`, the word length: values are carried in `f32`, whose significand
/// holds 24 bits.
///
/// ```
/// use swalp_formats::{fixed::WL, FixedPoint};
/// assert_eq!(WL.allowed_text(), "2..=24");
/// assert!(FixedPoint::new(25, 0, true, false).is_err());
/// ```
pub const WL: ParamInfo = ParamInfo::int("wl", 2, 24, "word length in bits, sign included");

/// `fl`, the fractional bits: the step `2^-fl` must be an `f32` (down to
/// `2^-149`) and the range fit it (`fl >= wl - 128`, checked by
/// [`FixedPoint::new`]).
pub const FL: ParamInfo = ParamInfo::int(
    "fl",
    2 - 128,
    149,
    "fractional bits: the step is 2^-fl; at least wl-128",
);

/// `clamp`: whether out-of-range values saturate.
pub const CLAMP: ParamInfo = ParamInfo::boolean("clamp", true, "saturate out-of-range values");

/// `symmetric`: whether the most negative integer is excluded.
pub const SYMMETRIC: ParamInfo = ParamInfo::boolean(
    "symmetric",
    false,
    "exclude the most negative integer, so the range is symmetric",
);

impl FixedPoint {
    /// A fixed-point format; fails when the values would not be exactly
    /// representable in `f32`.
    ///
    /// ```
    /// use swalp_formats::FixedPoint;
    /// assert!(FixedPoint::new(8, 6, true, false).is_ok());
    /// // A step of 2^-150 is below f32's smallest subnormal.
    /// assert!(FixedPoint::new(8, 150, true, false).is_err());
    /// ```
    pub fn new(wl: u32, fl: i32, clamp: bool, symmetric: bool) -> Result<Self, SpecError> {
        WL.check(&i64::from(wl).into())?;
        FL.check(&i64::from(fl).into())?;
        let fl_range = fl_range(wl);
        if !fl_range.contains(&fl) {
            return Err(SpecError::InvalidValue {
                key: "fl".into(),
                value: fl.to_string(),
                allowed: format!(
                    "an integer in {}..={} for wl = {wl} (the step 2^-fl and the range must fit f32)",
                    fl_range.start(),
                    fl_range.end()
                ),
            });
        }
        Ok(FixedPoint {
            wl,
            fl,
            clamp,
            symmetric,
        })
    }

    /// Word length in bits.
    ///
    /// ```
    /// assert_eq!(swalp_formats::FixedPoint::new(8, 6, true, false)?.wl(), 8);
    /// # Ok::<(), swalp_core::SpecError>(())
    /// ```
    pub fn wl(&self) -> u32 {
        self.wl
    }

    /// Fractional bits.
    ///
    /// ```
    /// assert_eq!(swalp_formats::FixedPoint::new(4, -2, true, false)?.fl(), -2);
    /// # Ok::<(), swalp_core::SpecError>(())
    /// ```
    pub fn fl(&self) -> i32 {
        self.fl
    }

    /// Whether out-of-range values saturate.
    ///
    /// ```
    /// assert!(!swalp_formats::FixedPoint::new(8, 6, false, false)?.clamps());
    /// # Ok::<(), swalp_core::SpecError>(())
    /// ```
    pub fn clamps(&self) -> bool {
        self.clamp
    }

    /// Whether the most negative integer is excluded.
    ///
    /// ```
    /// assert!(swalp_formats::FixedPoint::new(8, 6, true, true)?.is_symmetric());
    /// # Ok::<(), swalp_core::SpecError>(())
    /// ```
    pub fn is_symmetric(&self) -> bool {
        self.symmetric
    }

    /// The spacing `2^-fl` between neighbouring values.
    ///
    /// ```
    /// assert_eq!(swalp_formats::FixedPoint::new(4, -2, true, false)?.step(), 4.0);
    /// # Ok::<(), swalp_core::SpecError>(())
    /// ```
    pub fn step(&self) -> f64 {
        pow2(-self.fl)
    }

    /// The range of the integer `i`, as `(lowest, highest)`.
    ///
    /// ```
    /// use swalp_formats::FixedPoint;
    /// assert_eq!(FixedPoint::new(8, 6, true, false)?.int_range(), (-128.0, 127.0));
    /// assert_eq!(FixedPoint::new(8, 6, true, true)?.int_range(), (-127.0, 127.0));
    /// # Ok::<(), swalp_core::SpecError>(())
    /// ```
    pub fn int_range(&self) -> (f64, f64) {
        let half = pow2(self.wl as i32 - 1);
        let low = if self.symmetric { 1.0 - half } else { -half };
        (low, half - 1.0)
    }

    /// The most negative value.
    ///
    /// ```
    /// assert_eq!(swalp_formats::FixedPoint::new(8, 6, true, true)?.min(), -127.0 / 64.0);
    /// # Ok::<(), swalp_core::SpecError>(())
    /// ```
    pub fn min(&self) -> f64 {
        self.int_range().0 * self.step()
    }

    /// The largest value.
    ///
    /// ```
    /// assert_eq!(swalp_formats::FixedPoint::new(4, 0, true, false)?.max(), 7.0);
    /// # Ok::<(), swalp_core::SpecError>(())
    /// ```
    pub fn max(&self) -> f64 {
        self.int_range().1 * self.step()
    }
}

fn fl_range(wl: u32) -> std::ops::RangeInclusive<i32> {
    // Smallest step 2^-149 (f32's smallest subnormal); largest magnitude
    // 2^(wl-1-fl) at most 2^127.
    (wl as i32 - 128)..=149
}

impl FixedPoint {
    /// The format's own spec keys and values, written from their
    /// declarations: what [`NumberFormat::params`] returns.
    pub(crate) fn spec_params(&self) -> toml::Table {
        let mut t = toml::Table::new();
        WL.put(&mut t, i64::from(self.wl));
        FL.put(&mut t, i64::from(self.fl));
        CLAMP.put(&mut t, self.clamp);
        SYMMETRIC.put(&mut t, self.symmetric);
        t
    }

    /// Storage bits per value: what [`NumberFormat::bits_per_value`] returns.
    pub(crate) fn value_bits(&self) -> f64 {
        self.wl.into()
    }
}

const PARAMS: &[ParamInfo] = &[WL, FL, CLAMP, SYMMETRIC];

fn build(p: &mut Params<'_>) -> Result<Box<dyn NumberFormat>, SpecError> {
    let wl = p.int(&WL)? as u32;
    let fl = p.int(&FL)? as i32;
    let format = FixedPoint::new(wl, fl, p.boolean(&CLAMP)?, p.boolean(&SYMMETRIC)?)?;
    Ok(Box::new(format))
}

swalp_core::register_format!(FormatFactory {
    name: "fixed",
    summary: "fixed point: wl-bit two's complement integers times 2^-fl",
    params: PARAMS,
    build,
});
