//! OCP Microscaling (MX) v1.0 formats: blocks of low-precision elements
//! sharing one power-of-two scale.
//!
//! The OCP *Microscaling Formats (MX) Specification* v1.0 (September 2023)
//! defines an MX block as `k` elements `P_i` of a narrow element type and one
//! shared scale `X` in E8M0 (an 8-bit biased power of two, `2^-127..=2^127`,
//! code `0xFF` NaN, no zero and no infinity); element `i` stands for
//! `X · P_i`. Its concrete formats (§5.2, Table 1) all use `k = 32`:
//!
//! | OCP name | `elem` | element | max normal | min subnormal | `emax_elem` |
//! |---|---|---|---|---|---|
//! | MXFP8 | `fp8_e4m3` | FP8 E4M3 (no Inf, one NaN) | 448 | 2^-9 | 8 |
//! | MXFP8 | `fp8_e5m2` | FP8 E5M2 (IEEE-style Inf/NaN) | 57344 | 2^-16 | 15 |
//! | MXFP6 | `fp6_e3m2` | FP6 E3M2 (no Inf/NaN) | 28 | 2^-4 | 4 |
//! | MXFP6 | `fp6_e2m3` | FP6 E2M3 (no Inf/NaN) | 7.5 | 2^-3 | 2 |
//! | MXFP4 | `fp4_e2m1` | FP4 E2M1 (no Inf/NaN) | 6 | 2^-1 | 2 |
//! | MXINT8 | `int8` | 8-bit two's complement, implicit scale 2^-6 | 127/64 | 2^-6 | 0 |
//!
//! The spec's conversion (§6.3) sets `X` to the largest power of two not
//! above `max_i |V_i|`, divided by the largest power of two the element type
//! represents (`2^emax_elem`), and quantizes every `V_i / X` to the element
//! type, clamping values beyond the element's max normal to it, sign kept.
//! This module holds that math; the kernels live in
//! [`kernels`](crate::kernels).

use swalp_core::{
    block::{resolve_dim, Block, BlockLayout},
    kernel::native::{exponent, pow2},
    spec::invalid,
    Backend, Error, FormatFactory, NumberFormat, ParamInfo, Params, Result, SpecError,
};

use crate::float::{FloatFormat, Overflow, Specials};

/// The smallest exponent an E8M0 scale encodes (code `0x00`, `2^-127`).
pub const SCALE_EXP_MIN: i32 = -127;
/// The largest exponent an E8M0 scale encodes (code `0xFE`, `2^127`).
pub const SCALE_EXP_MAX: i32 = 127;
/// Bits of the E8M0 shared scale.
pub const SCALE_BITS: u32 = 8;
/// The block size of every concrete format of the OCP spec (§5.2).
pub const DEFAULT_BLOCK_SIZE: usize = 32;

/// The element type of an MX format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MxElem {
    /// FP8 E4M3 (MXFP8): bias 7, no infinities, max 448.
    Fp8E4m3,
    /// FP8 E5M2 (MXFP8): bias 15, IEEE-style specials, max 57344.
    Fp8E5m2,
    /// FP6 E3M2 (MXFP6): bias 3, no specials, max 28.
    Fp6E3m2,
    /// FP6 E2M3 (MXFP6): bias 1, no specials, max 7.5.
    Fp6E2m3,
    /// FP4 E2M1 (MXFP4): bias 1, no specials, max 6.
    Fp4E2m1,
    /// INT8 (MXINT8): two's complement with an implicit scale of `2^-6`,
    /// i.e. the values `k/64`; conversion produces `|k| <= 127`.
    Int8,
}

impl MxElem {
    /// Every element type, in the order of the spec's Table 1.
    pub const ALL: [MxElem; 6] = [
        MxElem::Fp8E5m2,
        MxElem::Fp8E4m3,
        MxElem::Fp6E3m2,
        MxElem::Fp6E2m3,
        MxElem::Fp4E2m1,
        MxElem::Int8,
    ];

    /// The `elem` value this crate prints (`"fp8_e4m3"`, ..., `"int8"`).
    pub fn name(self) -> &'static str {
        match self {
            MxElem::Fp8E4m3 => "fp8_e4m3",
            MxElem::Fp8E5m2 => "fp8_e5m2",
            MxElem::Fp6E3m2 => "fp6_e3m2",
            MxElem::Fp6E2m3 => "fp6_e2m3",
            MxElem::Fp4E2m1 => "fp4_e2m1",
            MxElem::Int8 => "int8",
        }
    }

    /// The name of the concrete MX format with this element type
    /// (`"mxfp8_e4m3"`, ..., `"mxint8"`), also accepted as `elem`.
    pub fn mx_name(self) -> &'static str {
        match self {
            MxElem::Fp8E4m3 => "mxfp8_e4m3",
            MxElem::Fp8E5m2 => "mxfp8_e5m2",
            MxElem::Fp6E3m2 => "mxfp6_e3m2",
            MxElem::Fp6E2m3 => "mxfp6_e2m3",
            MxElem::Fp4E2m1 => "mxfp4_e2m1",
            MxElem::Int8 => "mxint8",
        }
    }

    /// Parses an element name or a concrete format name.
    ///
    /// ```
    /// use swalp_formats::MxElem;
    /// assert_eq!(MxElem::from_name("mxfp4_e2m1"), Some(MxElem::Fp4E2m1));
    /// assert_eq!(MxElem::from_name("int8"), Some(MxElem::Int8));
    /// assert_eq!(MxElem::from_name("fp4"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<MxElem> {
        MxElem::ALL
            .into_iter()
            .find(|e| e.name() == name || e.mx_name() == name)
    }

    /// Storage bits of one element.
    pub fn bits(self) -> u32 {
        match self {
            MxElem::Fp8E4m3 | MxElem::Fp8E5m2 | MxElem::Int8 => 8,
            MxElem::Fp6E3m2 | MxElem::Fp6E2m3 => 6,
            MxElem::Fp4E2m1 => 4,
        }
    }

    /// The element as a [`FloatFormat`] (saturating, subnormals on), or
    /// `None` for `int8`.
    ///
    /// ```
    /// use swalp_formats::MxElem;
    /// assert_eq!(MxElem::Fp8E4m3.float().unwrap().max_value(), 448.0);
    /// assert!(MxElem::Int8.float().is_none());
    /// ```
    pub fn float(self) -> Option<FloatFormat> {
        let (exp, man, specials) = match self {
            MxElem::Fp8E4m3 => (4, 3, Specials::Fn),
            MxElem::Fp8E5m2 => (5, 2, Specials::Ieee),
            MxElem::Fp6E3m2 => (3, 2, Specials::None),
            MxElem::Fp6E2m3 => (2, 3, Specials::None),
            MxElem::Fp4E2m1 => (2, 1, Specials::None),
            MxElem::Int8 => return None,
        };
        Some(
            FloatFormat::new(exp, man, true, specials, Overflow::Saturate)
                .expect("the MX element formats are valid float formats"),
        )
    }

    /// `emax_elem`: the exponent of the largest power of two the element
    /// represents (its largest normal binade; 0 for `int8`, whose largest
    /// power of two is 1).
    pub fn emax(self) -> i32 {
        self.float().map_or(0, |f| f.emax())
    }

    /// The exponent of the smallest normal binade (0 for `int8`, whose grid
    /// is uniform below 2).
    pub fn emin(self) -> i32 {
        self.float().map_or(0, |f| f.emin())
    }

    /// Fraction bits in a binade: mantissa bits, or 6 for `int8` (64 steps
    /// per unit).
    pub fn man_bits(self) -> u32 {
        self.float().map_or(6, |f| f.man_bits())
    }

    /// The largest element magnitude (max normal), the clamp of §6.3.
    pub fn max_value(self) -> f64 {
        self.float().map_or(127.0 / 64.0, |f| f.max_value())
    }

    /// The smallest positive element (min subnormal).
    pub fn min_subnormal(self) -> f64 {
        pow2(self.emin() - self.man_bits() as i32)
    }

    /// The exponent `k` of the element grid's step `2^k` around an element
    /// of binade exponent `e = floor(log2 |v|)`: `clamp(e, emin, emax) - man`.
    /// For `int8` it is always `-6`.
    pub fn step_exponent(self, e: i32) -> i32 {
        e.clamp(self.emin(), self.emax()) - self.man_bits() as i32
    }
}

/// An OCP MX format: contiguous blocks of `block_size` elements along `dim`
/// share one E8M0 scale.
///
/// Conversion (OCP MX v1.0 §6.3), per block `V` (the last block along `dim`
/// is shorter when `block_size` does not divide the dimension):
///
/// - the scale is `X = 2^s` with `s = floor(log2 max|V_i|) - emax_elem`
///   clamped to the E8M0 range `[-127, 127]`; a block of zeros gets
///   `X = 2^-127` (its zeros keep their signs);
/// - each `V_i / X` is rounded onto the element grid with the quantizer's
///   rounding mode (the spec requires round-to-nearest-even and allows
///   others; every swalp mode works, stochastic ones included) and clamped
///   to `±max normal` of the element, so the result is `X · P_i`. Element
///   subnormals are kept; `f32` subnormal inputs are not flushed.
/// - a block holding a NaN or an infinity becomes all NaN: E8M0 has no
///   infinity and its NaN scale code makes every element of the block NaN
///   (§5.4.1, §6.3 leave non-finite inputs to the implementation).
///
/// Spec: `{ format = "mx", elem = "fp8_e4m3", block_size = 32, dim = -1 }`.
/// `elem` picks the concrete format (`fp8_e4m3`, `fp8_e5m2`, `fp6_e3m2`,
/// `fp6_e2m3`, `fp4_e2m1`, `int8`, or the spec's names `mxfp8_e4m3`, ...,
/// `mxint8`); `dim` counts from the end when negative, as in torch. A
/// 0-dimensional tensor is one block of one element.
///
/// ```
/// use swalp_core::{NumberFormat, QuantRng, Quantizer};
/// use swalp_formats::{MxElem, MxFormat};
/// let q: Quantizer = r#"{ format = "mx", elem = "mxfp4_e2m1" }"#.parse().unwrap();
/// assert_eq!(q.format().bits_per_value(), 4.25);
/// // Block max 3.0: X = 2^(1 - 2) = 0.5; 3.0 / X = 6 (the E2M1 max),
/// // 0.7 / X = 1.4 rounds to 1.5, 0.2 / X = 0.4 to 0.5.
/// let x = swalp_core::tch::Tensor::from_slice(&[3.0f32, 0.7, 0.2]);
/// let y = q.quantize(&x, &mut QuantRng::new(0)).unwrap();
/// assert_eq!(Vec::<f32>::try_from(&y).unwrap(), [3.0, 0.75, 0.25]);
/// assert_eq!(MxFormat::new(MxElem::Fp4E2m1, 32, -1).unwrap().shared_exponent(3.0), Some(-1));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MxFormat {
    elem: MxElem,
    block_size: usize,
    dim: i64,
    rule: ScaleRule,
}

/// How a block's shared exponent follows from its largest magnitude `m`
/// (an f32), as torchao 0.18's `ScaleCalculationMode` of the same name
/// computes it; `emax` is the element's largest power-of-two exponent and
/// the result is clamped to E8M0's `[-127, 127]`.
///
/// - `Floor` (the OCP rule): `floor(log2 m) - emax`. Elements may exceed the
///   element maximum by up to 2× and saturate.
/// - `Ceil`: `ceil(log2 m) - emax`: no element saturates, at the cost of
///   one bit of range for blocks whose maximum is not a power of two.
/// - `Even`: `m` first rounded to the element's mantissa width (half up, on
///   its f32 bits: `(bits + 2^(22 - mbits)) & 0x7F800000`), then `Floor`; a
///   maximum that rounds past `f32::MAX` makes the block NaN.
/// - `Rceil` (NVIDIA's cuBLAS rule): `ceil(log2(m / max_elem))`, where
///   `max_elem` is the element's largest value, computed as torchao 0.18's
///   eager path does: the quotient in f32 and its `log2` rounded to f32
///   before the ceil. A quotient just above `2^k` (by less than about half
///   an f32 ulp of `k`, so only for `|k| >= 4`) then takes exponent `k`, and
///   the block's largest element saturates at `max_elem`.
///
/// ```
/// use swalp_formats::{MxElem, MxFormat, ScaleRule};
/// let f = |rule| MxFormat::new(MxElem::Fp4E2m1, 32, -1).unwrap().with_scale_rule(rule);
/// // max 5.0 = 1.25 · 2^2; E2M1's emax is 2, its max 6.
/// assert_eq!(f(ScaleRule::Floor).shared_exponent(5.0), Some(0));
/// assert_eq!(f(ScaleRule::Ceil).shared_exponent(5.0), Some(1));
/// // 1.25 rounds to 1.5 at E2M1's one mantissa bit: no carry.
/// assert_eq!(f(ScaleRule::Even).shared_exponent(5.0), Some(0));
/// assert_eq!(f(ScaleRule::Even).shared_exponent(7.0), Some(1));
/// // 5 / 6 < 1: 2^0 suffices.
/// assert_eq!(f(ScaleRule::Rceil).shared_exponent(5.0), Some(0));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ScaleRule {
    /// `floor(log2 max) - emax`, the OCP rule.
    #[default]
    Floor,
    /// `ceil(log2 max) - emax`.
    Ceil,
    /// The maximum rounded to the element's mantissa width, then floor.
    Even,
    /// `ceil(log2(max / max_elem))` in f32.
    Rceil,
}

impl ScaleRule {
    /// The rules by spec name.
    pub const NAMES: [&'static str; 4] = ["floor", "ceil", "even", "rceil"];

    /// The spec name.
    pub fn name(self) -> &'static str {
        match self {
            ScaleRule::Floor => "floor",
            ScaleRule::Ceil => "ceil",
            ScaleRule::Even => "even",
            ScaleRule::Rceil => "rceil",
        }
    }

    /// The rule of a spec name.
    pub fn from_name(name: &str) -> Option<ScaleRule> {
        [
            ScaleRule::Floor,
            ScaleRule::Ceil,
            ScaleRule::Even,
            ScaleRule::Rceil,
        ]
        .into_iter()
        .find(|r| r.name() == name)
    }
}

impl MxFormat {
    /// An MX format; `dim` may be negative (counted from the end).
    pub fn new(elem: MxElem, block_size: usize, dim: i64) -> Result<Self, SpecError> {
        BLOCK_SIZE.check(&(block_size as i64).into())?;
        DIM.check(&dim.into())?;
        Ok(MxFormat {
            elem,
            block_size,
            dim,
            rule: ScaleRule::Floor,
        })
    }

    /// This format with another rule for the shared scale.
    pub fn with_scale_rule(mut self, rule: ScaleRule) -> Self {
        self.rule = rule;
        self
    }

    /// The rule for the shared scale.
    pub fn scale_rule(&self) -> ScaleRule {
        self.rule
    }

    /// The element type.
    pub fn elem(&self) -> MxElem {
        self.elem
    }

    /// Elements per block.
    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// The blocked dimension as given (negative counts from the end).
    pub fn dim(&self) -> i64 {
        self.dim
    }

    /// The exponent `s` of the shared scale `X = 2^s` of a block whose
    /// largest magnitude is `max_abs`, by the format's [`ScaleRule`]
    /// (computed exactly; for `f32` maxima this is what torchao computes on
    /// their bits); `None` (the NaN scale) when `max_abs` is not finite.
    pub fn shared_exponent(&self, max_abs: f64) -> Option<i32> {
        if !max_abs.is_finite() {
            return None;
        }
        let emax = self.elem.emax();
        // Zero reads as 2^-1000, below every unclamped scale (f32
        // subnormals are normal doubles and keep their exponent).
        let e = if max_abs == 0.0 {
            -1000
        } else {
            exponent(max_abs).max(-1000)
        };
        let above = |m: f64, e: i32| i32::from(m > pow2(e));
        let s = match self.rule {
            ScaleRule::Floor => e - emax,
            ScaleRule::Ceil => e + above(max_abs, e) - emax,
            ScaleRule::Even => {
                let mbits = self.elem.man_bits() as i32;
                // The mantissa rounded half up to the element's width.
                let steps = (max_abs / pow2(e - mbits) + 0.5).floor();
                let e = e + i32::from(steps >= pow2(mbits + 1));
                // torchao: an f32 maximum that rounds to 2^128 is infinite.
                if e >= 128 && max_abs <= f64::from(f32::MAX) {
                    return None;
                }
                e - emax
            }
            ScaleRule::Rceil => {
                // As torchao's eager path: the quotient in f32, its log2
                // rounded to f32, then ceil (-inf for zero clamps below).
                let d = (max_abs as f32) / self.elem.max_value() as f32;
                let log2 = f64::from(d).log2() as f32;
                log2.ceil().clamp(-1000.0, 1000.0) as i32
            }
        };
        Some(s.clamp(SCALE_EXP_MIN, SCALE_EXP_MAX))
    }

    /// The blocks of a tensor of `shape`: groups of `block_size` along
    /// `dim` made non-negative. A 0-dimensional tensor counts as shape
    /// `[1]`. Fails naming the dimension and shape when the tensor lacks it.
    ///
    /// ```
    /// use swalp_core::{block::Block, Backend};
    /// use swalp_formats::{MxElem, MxFormat};
    /// let f = MxFormat::new(MxElem::Int8, 32, -1).unwrap();
    /// assert_eq!(f.block(&[3, 64], Backend::Auto)?, Block::Chunks { size: 32, dim: 1 });
    /// assert!(f.block(&[], Backend::Auto).is_ok());
    /// # Ok::<(), swalp_core::Error>(())
    /// ```
    pub fn block(&self, shape: &[usize], backend: Backend) -> Result<Block> {
        let dim =
            resolve_dim(self.dim, effective_shape(shape)).map_err(|e| Error::Unsupported {
                format: "mx".into(),
                backend,
                reason: format!("block {e}"),
            })?;
        Ok(Block::Chunks {
            size: self.block_size,
            dim,
        })
    }

    /// Which block each element of a row-major tensor of `shape` belongs to;
    /// the error names the dimension and the shape.
    ///
    /// ```
    /// use swalp_core::Backend;
    /// use swalp_formats::{MxElem, MxFormat};
    /// let f = MxFormat::new(MxElem::Int8, 2, 0).unwrap();
    /// let l = f.layout(&[3, 2], Backend::Auto).unwrap();
    /// assert_eq!(l.num_blocks(), 4);
    /// // Rows 0 and 1 pair up per column; row 2 is the tail block.
    /// assert_eq!((0..6).map(|i| l.block_of(i)).collect::<Vec<_>>(), [0, 1, 0, 1, 2, 3]);
    /// ```
    pub fn layout(&self, shape: &[usize], backend: Backend) -> Result<BlockLayout> {
        let block = self.block(shape, backend)?;
        BlockLayout::new(&block, effective_shape(shape)).map_err(|e| Error::Unsupported {
            format: "mx".into(),
            backend,
            reason: format!("block {e}"),
        })
    }
}

/// The shape MX blocks a tensor of `shape` as: a 0-dimensional tensor is
/// one block of one element.
fn effective_shape(shape: &[usize]) -> &[usize] {
    if shape.is_empty() {
        &[1]
    } else {
        shape
    }
}

impl MxFormat {
    /// The format's own spec keys and values, written from their
    /// declarations: what [`NumberFormat::params`] returns.
    pub(crate) fn spec_params(&self) -> toml::Table {
        let mut t = toml::Table::new();
        ELEM.put(&mut t, self.elem.name());
        BLOCK_SIZE.put(&mut t, self.block_size as i64);
        DIM.put(&mut t, self.dim);
        SCALE_RULE.put(&mut t, self.rule.name());
        t
    }

    /// Storage bits per value: what [`NumberFormat::bits_per_value`] returns.
    pub(crate) fn value_bits(&self) -> f64 {
        f64::from(self.elem.bits()) + f64::from(SCALE_BITS) / self.block_size as f64
    }
}

const ELEM_ALLOWED: &str = "\"fp8_e4m3\" | \"fp8_e5m2\" | \"fp6_e3m2\" | \"fp6_e2m3\" | \"fp4_e2m1\" | \"int8\" (or \"mxfp8_e4m3\" | \"mxfp8_e5m2\" | \"mxfp6_e3m2\" | \"mxfp6_e2m3\" | \"mxfp4_e2m1\" | \"mxint8\")";

/// `elem`: the element type.
pub const ELEM: ParamInfo = ParamInfo::other(
    "elem",
    "string",
    ELEM_ALLOWED,
    "element type: picks the concrete OCP MX format (MXFP8 E4M3/E5M2, MXFP6 E3M2/E2M3, MXFP4, MXINT8)",
);

/// `block_size`: elements per block.
pub const BLOCK_SIZE: ParamInfo = ParamInfo::int(
    "block_size",
    1,
    u32::MAX as i64,
    "elements sharing one E8M0 scale (the OCP formats use 32)",
)
.default_int(DEFAULT_BLOCK_SIZE as i64);

/// `dim`: the blocked dimension.
pub const DIM: ParamInfo = ParamInfo::int(
    "dim",
    -64,
    63,
    "dimension along which contiguous blocks are formed; negative counts from the end",
)
.default_int(-1);

/// `scale_rule`: how the shared scale follows from the block maximum.
pub const SCALE_RULE: ParamInfo = ParamInfo::choice(
    "scale_rule",
    &ScaleRule::NAMES,
    "how a block's scale follows from its largest magnitude: the OCP rule \
     floor(log2 max) - emax, or torchao's ceil, even (max rounded to the element's \
     mantissa first) and rceil (ceil(log2(max / max_elem)), NVIDIA's)",
)
.default_str("floor");

const PARAMS: &[ParamInfo] = &[ELEM, BLOCK_SIZE, DIM, SCALE_RULE];

fn build(p: &mut Params<'_>) -> Result<Box<dyn NumberFormat>, SpecError> {
    let elem = match p.raw(&ELEM) {
        None => {
            return Err(SpecError::MissingKey {
                format: p.format().into(),
                key: ELEM.name.into(),
                allowed: ELEM_ALLOWED.into(),
            })
        }
        Some(v) => v
            .as_str()
            .and_then(MxElem::from_name)
            .ok_or_else(|| invalid(ELEM.name, v, ELEM_ALLOWED))?,
    };
    let block_size = p.int(&BLOCK_SIZE)? as usize;
    let rule = p
        .choice(&SCALE_RULE)
        .map(|name| ScaleRule::from_name(name).unwrap_or_default())?;
    Ok(Box::new(
        MxFormat::new(elem, block_size, p.int(&DIM)?)?.with_scale_rule(rule),
    ))
}

swalp_core::register_format!(FormatFactory {
    name: "mx",
    summary:
        "OCP Microscaling (MX) v1.0: blocks of FP8/FP6/FP4/INT8 elements sharing an E8M0 scale",
    params: PARAMS,
    build,
});
