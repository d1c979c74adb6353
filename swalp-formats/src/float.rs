//! Binary floating point with `exp` exponent and `man` mantissa bits.

use swalp_core::{
    kernel::native::pow2, FormatFactory, NumberFormat, ParamInfo, Params, Result, Rounding,
    SpecError,
};

/// What the top exponent encodes.
///
/// ```
/// use swalp_formats::{FloatFormat, Overflow, Specials};
/// // IEEE reserves the top exponent; without specials it holds normal numbers.
/// let fp16 = FloatFormat::new(5, 10, true, Specials::Ieee, Overflow::Infinity)?;
/// let all_normal = FloatFormat::new(5, 10, true, Specials::None, Overflow::Saturate)?;
/// assert_eq!((fp16.emax(), all_normal.emax()), (15, 16));
/// # Ok::<(), swalp_core::SpecError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Specials {
    /// IEEE 754: the top exponent is reserved for infinities and NaN.
    Ieee,
    /// No specials: the top binade holds normal numbers (QPyTorch's
    /// convention).
    None,
    /// Finite with NaN (OCP FP8 E4M3, torch's `float8_e4m3fn`): the top
    /// binade holds normal numbers except the all-ones mantissa, which is NaN;
    /// no infinities.
    Fn,
}

/// What a finite value beyond the largest finite value becomes.
///
/// ```
/// use swalp_core::Rounding;
/// use swalp_formats::{FloatFormat, Overflow, Specials};
/// let e5m2 = FloatFormat::new(5, 2, true, Specials::Ieee, Overflow::Saturate)?;
/// assert_eq!(e5m2.overflow_value(false, Rounding::NearestEven), 57344.0);
/// let e5m2 = FloatFormat::new(5, 2, true, Specials::Ieee, Overflow::Infinity)?;
/// assert_eq!(e5m2.overflow_value(false, Rounding::NearestEven), f64::INFINITY);
/// # Ok::<(), swalp_core::SpecError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overflow {
    /// The largest finite value of the same sign.
    Saturate,
    /// Infinity (IEEE formats only), except under rounding modes that never
    /// increase the magnitude, which give the largest finite value.
    Infinity,
    /// NaN, with the same exception (what torch's FP8 E4M3 cast does).
    Nan,
}

/// A binary floating-point format.
///
/// Values are `±2^e · 1.m` with `man` mantissa bits, exponent bias
/// `2^(exp-1) - 1`, subnormals `±2^emin · 0.m` when enabled (otherwise the
/// only value below `2^emin` in magnitude is zero). NaN inputs stay NaN;
/// infinite inputs stay infinite when the format has infinities, and
/// otherwise become ±max (`overflow = "saturate"`) or NaN (`"nan"`) under
/// every rounding mode.
///
/// QPyTorch 0.3.0's `float_quantize(..., rounding="nearest")` corresponds to
/// `specials = "none"` with `rounding = "nearest-away"` (it adds half an ulp
/// to the magnitude and truncates).
///
/// Spec: `{ format = "float", exp = 5, man = 2, subnormals = true,
/// specials = "ieee", overflow = "infinity" }`.
///
/// ```
/// use swalp_formats::{FloatFormat, Overflow, Specials};
/// let fp16 = FloatFormat::new(5, 10, true, Specials::Ieee, Overflow::Infinity).unwrap();
/// assert_eq!(fp16.max_value(), 65504.0);
/// assert_eq!(fp16.min_normal(), 2f64.powi(-14));
/// assert_eq!(fp16.min_subnormal(), 2f64.powi(-24));
/// let e4m3 = FloatFormat::new(4, 3, true, Specials::Fn, Overflow::Saturate).unwrap();
/// assert_eq!(e4m3.max_value(), 448.0);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FloatFormat {
    exp: u32,
    man: u32,
    subnormals: bool,
    specials: Specials,
    overflow: Overflow,
}

impl FloatFormat {
    /// A floating-point format; fails on combinations that have no normal
    /// numbers or an overflow behaviour the encoding cannot express.
    ///
    /// ```
    /// use swalp_formats::{FloatFormat, Overflow, Specials};
    /// assert!(FloatFormat::new(4, 3, true, Specials::Fn, Overflow::Saturate).is_ok());
    /// // Only IEEE specials have infinities to overflow to.
    /// assert!(FloatFormat::new(4, 3, true, Specials::Fn, Overflow::Infinity).is_err());
    /// ```
    pub fn new(
        exp: u32,
        man: u32,
        subnormals: bool,
        specials: Specials,
        overflow: Overflow,
    ) -> Result<Self, SpecError> {
        let bad = |key: &str, value: String, allowed: &str| SpecError::InvalidValue {
            key: key.into(),
            value,
            allowed: allowed.into(),
        };
        EXP.check(&i64::from(exp).into())?;
        MAN.check(&i64::from(man).into())?;
        if specials == Specials::Ieee && exp < 2 {
            return Err(bad(
                "exp",
                exp.to_string(),
                "at least 2 with specials = \"ieee\" (one exponent is reserved)",
            ));
        }
        if specials == Specials::Fn && man < 1 {
            return Err(bad(
                "man",
                man.to_string(),
                "at least 1 with specials = \"fn\" (the all-ones mantissa is NaN)",
            ));
        }
        if overflow == Overflow::Infinity && specials != Specials::Ieee {
            return Err(bad(
                "overflow",
                "\"infinity\"".into(),
                "\"saturate\" or \"nan\": only specials = \"ieee\" has infinities",
            ));
        }
        if overflow == Overflow::Nan && specials == Specials::None {
            return Err(bad(
                "overflow",
                "\"nan\"".into(),
                "\"saturate\": specials = \"none\" has no NaN encoding",
            ));
        }
        Ok(FloatFormat {
            exp,
            man,
            subnormals,
            specials,
            overflow,
        })
    }

    /// Exponent bits.
    ///
    /// ```
    /// use swalp_formats::{FloatFormat, Overflow, Specials};
    /// let bf16 = FloatFormat::new(8, 7, true, Specials::Ieee, Overflow::Infinity)?;
    /// assert_eq!(bf16.exp_bits(), 8);
    /// # Ok::<(), swalp_core::SpecError>(())
    /// ```
    pub fn exp_bits(&self) -> u32 {
        self.exp
    }

    /// Mantissa (fraction) bits.
    ///
    /// ```
    /// use swalp_formats::{FloatFormat, Overflow, Specials};
    /// let bf16 = FloatFormat::new(8, 7, true, Specials::Ieee, Overflow::Infinity)?;
    /// assert_eq!(bf16.man_bits(), 7);
    /// # Ok::<(), swalp_core::SpecError>(())
    /// ```
    pub fn man_bits(&self) -> u32 {
        self.man
    }

    /// Whether subnormal values exist.
    ///
    /// ```
    /// use swalp_formats::{FloatFormat, Overflow, Specials};
    /// let flushing = FloatFormat::new(5, 2, false, Specials::Ieee, Overflow::Infinity)?;
    /// assert!(!flushing.has_subnormals());
    /// # Ok::<(), swalp_core::SpecError>(())
    /// ```
    pub fn has_subnormals(&self) -> bool {
        self.subnormals
    }

    /// The special-value encoding.
    ///
    /// ```
    /// use swalp_formats::{FloatFormat, Overflow, Specials};
    /// let e4m3 = FloatFormat::new(4, 3, true, Specials::Fn, Overflow::Saturate)?;
    /// assert_eq!(e4m3.specials(), Specials::Fn);
    /// # Ok::<(), swalp_core::SpecError>(())
    /// ```
    pub fn specials(&self) -> Specials {
        self.specials
    }

    /// The overflow behaviour.
    ///
    /// ```
    /// use swalp_formats::{FloatFormat, Overflow, Specials};
    /// let e4m3 = FloatFormat::new(4, 3, true, Specials::Fn, Overflow::Nan)?;
    /// assert_eq!(e4m3.overflow(), Overflow::Nan);
    /// # Ok::<(), swalp_core::SpecError>(())
    /// ```
    pub fn overflow(&self) -> Overflow {
        self.overflow
    }

    /// The exponent bias.
    ///
    /// ```
    /// use swalp_formats::{FloatFormat, Overflow, Specials};
    /// let fp16 = FloatFormat::new(5, 10, true, Specials::Ieee, Overflow::Infinity)?;
    /// let e4m3 = FloatFormat::new(4, 3, true, Specials::Fn, Overflow::Saturate)?;
    /// assert_eq!((fp16.bias(), e4m3.bias()), (15, 7));
    /// # Ok::<(), swalp_core::SpecError>(())
    /// ```
    pub fn bias(&self) -> i32 {
        (1 << (self.exp - 1)) - 1
    }

    /// The exponent of the smallest normal binade.
    ///
    /// ```
    /// use swalp_formats::{FloatFormat, Overflow, Specials};
    /// let fp16 = FloatFormat::new(5, 10, true, Specials::Ieee, Overflow::Infinity)?;
    /// assert_eq!(fp16.emin(), -14);
    /// # Ok::<(), swalp_core::SpecError>(())
    /// ```
    pub fn emin(&self) -> i32 {
        1 - self.bias()
    }

    /// The exponent of the largest binade holding finite values.
    ///
    /// ```
    /// use swalp_formats::{FloatFormat, Overflow, Specials};
    /// let fp16 = FloatFormat::new(5, 10, true, Specials::Ieee, Overflow::Infinity)?;
    /// let e4m3 = FloatFormat::new(4, 3, true, Specials::Fn, Overflow::Saturate)?;
    /// assert_eq!((fp16.emax(), e4m3.emax()), (15, 8));
    /// # Ok::<(), swalp_core::SpecError>(())
    /// ```
    pub fn emax(&self) -> i32 {
        let top_field = (1 << self.exp) - 1;
        let reserved = i32::from(self.specials == Specials::Ieee);
        top_field - reserved - self.bias()
    }

    /// The largest finite value. Where the format's range exceeds `f32`'s
    /// (8 exponent bits without reserved specials) it is the largest value of
    /// the format that `f32` can hold.
    ///
    /// ```
    /// use swalp_formats::{FloatFormat, Overflow, Specials};
    /// let bf16 = FloatFormat::new(8, 7, true, Specials::Ieee, Overflow::Infinity)?;
    /// assert_eq!(bf16.max_value(), 2f64.powi(127) * (2.0 - 2f64.powi(-7)));
    /// // Beyond f32's range: capped at f32::MAX.
    /// let wide = FloatFormat::new(8, 23, true, Specials::None, Overflow::Saturate)?;
    /// assert_eq!(wide.max_value(), f64::from(f32::MAX));
    /// # Ok::<(), swalp_core::SpecError>(())
    /// ```
    pub fn max_value(&self) -> f64 {
        // The NaN code of an `fn` format sits in its top binade; when that
        // binade lies beyond f32 (emax = 128) the f32-visible binade is full.
        let lost_codes = if self.specials == Specials::Fn && self.emax() <= 127 {
            2
        } else {
            1
        };
        pow2(self.emax().min(127)) * (2.0 - f64::from(lost_codes) * pow2(-(self.man as i32)))
    }

    /// The smallest positive normal value.
    ///
    /// ```
    /// use swalp_formats::{FloatFormat, Overflow, Specials};
    /// let e4m3 = FloatFormat::new(4, 3, true, Specials::Fn, Overflow::Saturate)?;
    /// assert_eq!(e4m3.min_normal(), 2f64.powi(-6));
    /// # Ok::<(), swalp_core::SpecError>(())
    /// ```
    pub fn min_normal(&self) -> f64 {
        pow2(self.emin())
    }

    /// The smallest positive value.
    ///
    /// ```
    /// use swalp_formats::{FloatFormat, Overflow, Specials};
    /// let e4m3 = FloatFormat::new(4, 3, true, Specials::Fn, Overflow::Saturate)?;
    /// assert_eq!(e4m3.min_subnormal(), 2f64.powi(-9));
    /// let flushing = FloatFormat::new(4, 3, false, Specials::Fn, Overflow::Saturate)?;
    /// assert_eq!(flushing.min_subnormal(), 2f64.powi(-6));
    /// # Ok::<(), swalp_core::SpecError>(())
    /// ```
    pub fn min_subnormal(&self) -> f64 {
        if self.subnormals {
            pow2(self.emin() - self.man as i32)
        } else {
            self.min_normal()
        }
    }

    /// The exponent `k` of the spacing `2^k` between representable values
    /// around a value whose binade exponent is `e = floor(log2 |x|)`.
    /// Without subnormals, the range below `2^emin` has spacing `2^emin`:
    /// its only values are 0 and `±2^emin`.
    ///
    /// ```
    /// use swalp_formats::{FloatFormat, Overflow, Specials};
    /// let fp16 = FloatFormat::new(5, 10, true, Specials::Ieee, Overflow::Infinity)?;
    /// assert_eq!(fp16.step_exponent(0), -10); // ulp(1) = 2^-10
    /// assert_eq!(fp16.step_exponent(-20), -24); // subnormal range
    /// let flushing = FloatFormat::new(5, 10, false, Specials::Ieee, Overflow::Infinity)?;
    /// assert_eq!(flushing.step_exponent(-20), -14);
    /// # Ok::<(), swalp_core::SpecError>(())
    /// ```
    pub fn step_exponent(&self, e: i32) -> i32 {
        let e = e.min(self.emax());
        if e >= self.emin() {
            e - self.man as i32
        } else if self.subnormals {
            self.emin() - self.man as i32
        } else {
            self.emin()
        }
    }

    /// What a rounded value of magnitude above [`max_value`](Self::max_value)
    /// becomes, given its sign and the rounding mode.
    ///
    /// ```
    /// use swalp_core::Rounding;
    /// use swalp_formats::{FloatFormat, Overflow, Specials};
    /// let fp16 = FloatFormat::new(5, 10, true, Specials::Ieee, Overflow::Infinity)?;
    /// assert_eq!(fp16.overflow_value(false, Rounding::NearestEven), f64::INFINITY);
    /// assert_eq!(fp16.overflow_value(false, Rounding::TowardZero), 65504.0);
    /// assert_eq!(fp16.overflow_value(true, Rounding::Down), f64::NEG_INFINITY);
    /// # Ok::<(), swalp_core::SpecError>(())
    /// ```
    pub fn overflow_value(&self, negative: bool, rounding: Rounding) -> f64 {
        let sign = if negative { -1.0 } else { 1.0 };
        let saturate = sign * self.max_value();
        match self.overflow {
            Overflow::Saturate => saturate,
            _ if rounding.shrinks_magnitude(negative) => saturate,
            Overflow::Infinity => sign * f64::INFINITY,
            Overflow::Nan => f64::NAN,
        }
    }

    /// What an infinite input becomes.
    ///
    /// ```
    /// use swalp_formats::{FloatFormat, Overflow, Specials};
    /// let fp16 = FloatFormat::new(5, 10, true, Specials::Ieee, Overflow::Infinity)?;
    /// let e4m3 = FloatFormat::new(4, 3, true, Specials::Fn, Overflow::Saturate)?;
    /// assert_eq!(fp16.infinity_value(true), f64::NEG_INFINITY);
    /// assert_eq!(e4m3.infinity_value(false), 448.0);
    /// let e4m3_nan = FloatFormat::new(4, 3, true, Specials::Fn, Overflow::Nan)?;
    /// assert!(e4m3_nan.infinity_value(false).is_nan());
    /// # Ok::<(), swalp_core::SpecError>(())
    /// ```
    pub fn infinity_value(&self, negative: bool) -> f64 {
        match (self.specials, self.overflow) {
            (Specials::Ieee, _) => {
                if negative {
                    f64::NEG_INFINITY
                } else {
                    f64::INFINITY
                }
            }
            (_, Overflow::Nan) => f64::NAN,
            _ => {
                if negative {
                    -self.max_value()
                } else {
                    self.max_value()
                }
            }
        }
    }

    fn default_overflow(specials: Specials) -> Overflow {
        match specials {
            Specials::Ieee => Overflow::Infinity,
            Specials::None | Specials::Fn => Overflow::Saturate,
        }
    }

    /// Reads `subnormals`, `specials` (unless `specials` is given: a preset's
    /// encoding is fixed) and `overflow` (declared by `overflow`, whose
    /// default a preset fixes), for the `float` format and the presets.
    pub(crate) fn read_options(
        p: &mut Params<'_>,
        specials: Option<Specials>,
        overflow: &ParamInfo,
    ) -> Result<(bool, Specials, Overflow), SpecError> {
        let subnormals = p.boolean(&SUBNORMALS)?;
        let specials = match specials {
            Some(fixed) => fixed,
            None => match p.choice(&SPECIALS)? {
                "ieee" => Specials::Ieee,
                "none" => Specials::None,
                _ => Specials::Fn,
            },
        };
        let overflow = match p.choice_opt(overflow)? {
            None => Self::default_overflow(specials),
            Some("saturate") => Overflow::Saturate,
            Some("infinity") => Overflow::Infinity,
            Some(_) => Overflow::Nan,
        };
        Ok((subnormals, specials, overflow))
    }

    /// `subnormals`, `specials` and `overflow` as spec values.
    pub(crate) fn option_params(&self) -> toml::Table {
        let mut t = toml::Table::new();
        SUBNORMALS.put(&mut t, self.subnormals);
        SPECIALS.put(&mut t, specials_name(self.specials));
        OVERFLOW.put(&mut t, overflow_name(self.overflow));
        t
    }
}

const SPECIALS_NAMES: [&str; 3] = ["ieee", "none", "fn"];
pub(crate) const OVERFLOW_NAMES: [&str; 3] = ["saturate", "infinity", "nan"];

fn specials_name(s: Specials) -> &'static str {
    match s {
        Specials::Ieee => "ieee",
        Specials::None => "none",
        Specials::Fn => "fn",
    }
}

fn overflow_name(o: Overflow) -> &'static str {
    match o {
        Overflow::Saturate => "saturate",
        Overflow::Infinity => "infinity",
        Overflow::Nan => "nan",
    }
}

impl FloatFormat {
    /// The format's own spec keys and values, written from their
    /// declarations: what [`NumberFormat::params`] returns.
    pub(crate) fn spec_params(&self) -> toml::Table {
        let mut t = toml::Table::new();
        EXP.put(&mut t, i64::from(self.exp));
        MAN.put(&mut t, i64::from(self.man));
        t.extend(self.option_params());
        t
    }

    /// Storage bits per value: what [`NumberFormat::bits_per_value`] returns.
    pub(crate) fn value_bits(&self) -> f64 {
        f64::from(1 + self.exp + self.man)
    }
}

/// `exp`: exponent bits.
pub const EXP: ParamInfo = ParamInfo::int("exp", 1, 8, "exponent bits");

/// `man`: mantissa bits.
pub const MAN: ParamInfo = ParamInfo::int("man", 0, 23, "mantissa bits (without the hidden bit)");

/// `subnormals`, shared by `float` and the presets.
pub const SUBNORMALS: ParamInfo = ParamInfo::boolean(
    "subnormals",
    true,
    "keep values below 2^emin (false flushes them to 0 or ±2^emin)",
);

/// `specials`: what the top exponent encodes.
pub const SPECIALS: ParamInfo = ParamInfo::choice(
    "specials",
    &SPECIALS_NAMES,
    "top exponent: reserved for Inf/NaN, normal numbers, or normal with one NaN code",
)
.default_str("ieee");

/// `overflow` of `float`, whose default follows `specials`.
pub const OVERFLOW: ParamInfo = ParamInfo::choice(
    "overflow",
    &OVERFLOW_NAMES,
    "what values beyond the largest finite become (absent: \"infinity\" with ieee specials, else \"saturate\")",
)
.computed_default();

const PARAMS: &[ParamInfo] = &[EXP, MAN, SUBNORMALS, SPECIALS, OVERFLOW];

fn build(p: &mut Params<'_>) -> Result<Box<dyn NumberFormat>, SpecError> {
    let exp = p.int(&EXP)? as u32;
    let man = p.int(&MAN)? as u32;
    let (subnormals, specials, overflow) = FloatFormat::read_options(p, None, &OVERFLOW)?;
    Ok(Box::new(FloatFormat::new(
        exp, man, subnormals, specials, overflow,
    )?))
}

swalp_core::register_format!(FormatFactory {
    name: "float",
    summary: "binary floating point with exp exponent and man mantissa bits",
    params: PARAMS,
    build,
});
