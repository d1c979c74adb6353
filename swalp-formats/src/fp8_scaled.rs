//! Scaled FP8: FP8 E4M3 or E5M2 values with an FP32 scale per tensor, per
//! row, per 1 × N block or per N × N tile, computed from the current
//! maximum as TransformerEngine's FP8 recipes do ("current scaling" per
//! tensor, `Float8BlockScaling` per block).
//!
//! For each group `G` of elements sharing a scale, with `M` the element's
//! largest value (448 for E4M3, 57344 for E5M2), every step an `f32`
//! operation (TransformerEngine's `compute_scale_from_amax` with no
//! epsilon):
//!
//! 1. `a = max |x|` over `G`;
//! 2. the multiplier `m = M / a`; `m = 1` when `a = 0`, and `m = f32::MAX`
//!    when the quotient overflows;
//! 3. with `pow2 = true`, `m` keeps only its sign and exponent bits
//!    (`bits & 0xFF800000`): the largest power of two not above `M / a`, so
//!    the scale `1 / m` is `a / M` rounded *up* to a power of two and every
//!    step below is exact;
//! 4. each element `e = round(clamp(x · m, ±M))` onto the FP8 grid with the
//!    quantizer's rounding (FP8 subnormals kept);
//! 5. the value returned is `e · d` with `d = 1 / m` (TransformerEngine's
//!    `scale_inv`).
//!
//! A group holding a NaN or an infinity becomes NaN (TransformerEngine
//! uses `m = 1` there and lets the cast saturate).
//!
//! Granularity (`granularity`): `"tensor"`, one scale; `"row"`, one per
//! index of every dimension but the last (a 1-D tensor is one row);
//! `{ block = N }`, groups of `N` consecutive elements along the last
//! dimension (the last group shorter when `N` does not divide it);
//! `{ block2d = N }`, `N × N` tiles over the last two dimensions (1-D
//! tensors: groups of `N`), DeepSeek-V3's and TransformerEngine's weight
//! tiles with `N = 128`.
//!
//! ```
//! use swalp_core::{tch::Tensor, NumberFormat, QuantRng, Quantizer};
//! use swalp_formats as _; // registers the built-in formats
//! let q: Quantizer = r#"{ format = "fp8_scaled", elem = "e4m3", pow2 = true }"#.parse()?;
//! // a = 3: m = 448 / 3 = 149.33 keeps its exponent, 128; 0.1 · 128 = 12.8
//! // rounds to 13 on E4M3 (step 1 in [8, 16)), so 0.1 becomes 13 / 128.
//! let y = q.quantize(&Tensor::from_slice(&[3.0f32, 0.1]), &mut QuantRng::new(0))?;
//! assert_eq!(Vec::<f32>::try_from(&y)?, [3.0, 13.0 / 128.0]);
//! assert_eq!(q.format().bits_per_value(), 8.0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use swalp_core::{
    block::Block,
    spec::{int_in, invalid},
    FormatFactory, NumberFormat, ParamInfo, Params, Result, SpecError,
};

use crate::float::FloatFormat;
use crate::mx::MxElem;
use crate::nvfp4::BlockScales;

/// Bits of an element.
pub const ELEM_BITS: u32 = 8;
/// Bits of a scale (an `f32`).
pub const SCALE_BITS: u32 = 32;

/// Which elements share a scale.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Granularity {
    /// One scale for the tensor.
    Tensor,
    /// One scale per row (every index but the last dimension's).
    Row,
    /// Groups of this many consecutive elements along the last dimension.
    Block(usize),
    /// Tiles of this many × this many over the last two dimensions.
    Block2d(usize),
}

/// The spec syntax of a [`Granularity`].
pub const GRANULARITY_SYNTAX: &str =
    "\"tensor\" | \"row\" | { block = N } | { block2d = N } (N in 1..=65536)";

impl Granularity {
    /// Parses the value of `granularity`.
    ///
    /// ```
    /// use swalp_formats::fp8_scaled::Granularity;
    /// let v: toml::Value = toml::from_str::<toml::Table>("g = { block = 128 }")?["g"].clone();
    /// assert_eq!(Granularity::from_toml(&v)?, Granularity::Block(128));
    /// assert_eq!(Granularity::Block(128).to_toml(), v);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_toml(value: &toml::Value) -> Result<Granularity, SpecError> {
        let key = GRANULARITY.name;
        match value {
            toml::Value::String(s) if s == "tensor" => Ok(Granularity::Tensor),
            toml::Value::String(s) if s == "row" => Ok(Granularity::Row),
            toml::Value::Table(t) if t.len() == 1 => {
                let size = |v| int_in(&format!("{key}.size"), v, 1..=65_536).map(|n| n as usize);
                match (t.get("block"), t.get("block2d")) {
                    (Some(n), None) => Ok(Granularity::Block(size(n)?)),
                    (None, Some(n)) => Ok(Granularity::Block2d(size(n)?)),
                    _ => Err(invalid(key, value, GRANULARITY_SYNTAX)),
                }
            }
            _ => Err(invalid(key, value, GRANULARITY_SYNTAX)),
        }
    }

    /// The spec value, as [`from_toml`](Self::from_toml) reads it.
    pub fn to_toml(self) -> toml::Value {
        let table = |k: &str, n: usize| {
            toml::Value::Table(
                [(k.to_string(), toml::Value::Integer(n as i64))]
                    .into_iter()
                    .collect(),
            )
        };
        match self {
            Granularity::Tensor => "tensor".into(),
            Granularity::Row => "row".into(),
            Granularity::Block(n) => table("block", n),
            Granularity::Block2d(n) => table("block2d", n),
        }
    }
}

/// Scaled FP8; see the [module documentation](self).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fp8Scaled {
    elem: MxElem,
    granularity: Granularity,
    pow2: bool,
}

impl Fp8Scaled {
    /// Scaled FP8 with `elem` (E4M3 or E5M2) elements; other element types
    /// are refused.
    pub fn new(elem: MxElem, granularity: Granularity, pow2: bool) -> Result<Self, SpecError> {
        if !matches!(elem, MxElem::Fp8E4m3 | MxElem::Fp8E5m2) {
            return Err(invalid(
                ELEM.name,
                &elem.name().into(),
                "\"e4m3\" | \"e5m2\"",
            ));
        }
        if let Granularity::Block(0) | Granularity::Block2d(0) = granularity {
            return Err(invalid(
                GRANULARITY.name,
                &granularity.to_toml(),
                GRANULARITY_SYNTAX,
            ));
        }
        Ok(Fp8Scaled {
            elem,
            granularity,
            pow2,
        })
    }

    /// The element type.
    pub fn elem(&self) -> MxElem {
        self.elem
    }

    /// The element as a saturating float format.
    pub fn elem_format(&self) -> FloatFormat {
        self.elem
            .float()
            .expect("FP8 element types are float formats")
    }

    /// Which elements share a scale.
    pub fn granularity(&self) -> Granularity {
        self.granularity
    }

    /// Whether scales are powers of two.
    pub fn pow2(&self) -> bool {
        self.pow2
    }

    /// The largest element, `M`.
    pub fn max_elem(&self) -> f32 {
        self.elem.max_value() as f32
    }

    /// The groups sharing a scale in a tensor of `shape`.
    ///
    /// ```
    /// use swalp_core::block::Block;
    /// use swalp_formats::{fp8_scaled::{Fp8Scaled, Granularity}, MxElem};
    /// let f = Fp8Scaled::new(MxElem::Fp8E4m3, Granularity::Block2d(128), false)?;
    /// assert_eq!(f.block(&[4, 256, 512]), Block::Tiles { size: [128, 128], dims: [1, 2] });
    /// assert_eq!(f.block(&[300]), Block::Chunks { size: 128, dim: 0 });
    /// # Ok::<(), swalp_core::SpecError>(())
    /// ```
    pub fn block(&self, shape: &[usize]) -> Block {
        let rank = shape.len();
        match (self.granularity, rank) {
            (_, 0) | (Granularity::Tensor, _) | (Granularity::Row, 1) => Block::Tensor,
            (Granularity::Row, _) => Block::Dims((0..rank - 1).collect()),
            (Granularity::Block(n), _) | (Granularity::Block2d(n), 1) => Block::Chunks {
                size: n,
                dim: rank - 1,
            },
            (Granularity::Block2d(n), _) => Block::Tiles {
                size: [n, n],
                dims: [rank - 2, rank - 1],
            },
        }
    }

    /// The factors of a group whose largest magnitude is `amax` (finite):
    /// `mul = m`, `dequant = 1 / m`. Branch-free, so kernels can compute
    /// many at once.
    ///
    /// ```
    /// use swalp_formats::{fp8_scaled::{Fp8Scaled, Granularity}, MxElem};
    /// let f = Fp8Scaled::new(MxElem::Fp8E4m3, Granularity::Tensor, false)?;
    /// assert_eq!(f.block_scales(3.0).mul, 448.0 / 3.0);
    /// assert_eq!(f.block_scales(0.0).mul, 1.0);
    /// assert_eq!(f.block_scales(1e-40).mul, f32::MAX);
    /// let f = Fp8Scaled::new(MxElem::Fp8E4m3, Granularity::Tensor, true)?;
    /// assert_eq!(f.block_scales(3.0).mul, 128.0);
    /// assert_eq!(f.block_scales(3.0).dequant, 1.0 / 128.0);
    /// # Ok::<(), swalp_core::SpecError>(())
    /// ```
    #[inline(always)]
    pub fn block_scales(&self, amax: f32) -> BlockScales {
        let m = self.max_elem() / amax;
        let m = if m.is_infinite() { f32::MAX } else { m };
        let m = if amax == 0.0 { 1.0 } else { m };
        let m = if self.pow2 {
            f32::from_bits(m.to_bits() & 0xFF80_0000)
        } else {
            m
        };
        BlockScales {
            mul: m,
            dequant: 1.0 / m,
        }
    }
}

impl Fp8Scaled {
    /// The format's own spec keys and values, written from their
    /// declarations: what [`NumberFormat::params`] returns.
    pub(crate) fn spec_params(&self) -> toml::Table {
        let mut t = toml::Table::new();
        ELEM.put(&mut t, elem_name(self.elem));
        GRANULARITY.put(&mut t, self.granularity.to_toml());
        POW2.put(&mut t, self.pow2);
        t
    }

    /// Storage bits per value, the scales amortised where the group size is
    /// fixed: what [`NumberFormat::bits_per_value`] returns.
    pub(crate) fn value_bits(&self) -> f64 {
        let scale = f64::from(SCALE_BITS);
        f64::from(ELEM_BITS)
            + match self.granularity {
                Granularity::Block(n) => scale / n as f64,
                Granularity::Block2d(n) => scale / (n * n) as f64,
                // The share depends on the tensor's shape.
                Granularity::Tensor | Granularity::Row => 0.0,
            }
    }
}

fn elem_name(elem: MxElem) -> &'static str {
    match elem {
        MxElem::Fp8E5m2 => "e5m2",
        _ => "e4m3",
    }
}

/// `elem`: the FP8 element type.
pub const ELEM: ParamInfo = ParamInfo::choice(
    "elem",
    &["e4m3", "e5m2"],
    "FP8 element: E4M3 (max 448, TransformerEngine's forward) or E5M2 (max 57344, its gradients)",
)
.default_str("e4m3");

/// `granularity`: which elements share a scale.
pub const GRANULARITY: ParamInfo = ParamInfo::other(
    "granularity",
    "string or table",
    GRANULARITY_SYNTAX,
    "which elements share an FP32 scale: the tensor, each row, 1 x N blocks along the last \
     dimension or N x N tiles over the last two",
)
.default_str("tensor");

/// `pow2`: power-of-two scales.
pub const POW2: ParamInfo = ParamInfo::boolean(
    "pow2",
    false,
    "round each scale amax / max up to a power of two (TransformerEngine's force_pow_2_scales)",
);

const PARAMS: &[ParamInfo] = &[ELEM, GRANULARITY, POW2];

fn build(p: &mut Params<'_>) -> Result<Box<dyn NumberFormat>, SpecError> {
    let elem = match p.choice(&ELEM)? {
        "e5m2" => MxElem::Fp8E5m2,
        _ => MxElem::Fp8E4m3,
    };
    let granularity = match p.raw(&GRANULARITY) {
        None => Granularity::Tensor,
        Some(v) => Granularity::from_toml(v)?,
    };
    let pow2 = p.boolean(&POW2)?;
    Ok(Box::new(Fp8Scaled::new(elem, granularity, pow2)?))
}

swalp_core::register_format!(FormatFactory {
    name: "fp8_scaled",
    summary: "FP8 E4M3/E5M2 with an FP32 scale amax / max per tensor, row, 1 x N block or \
              N x N tile (TransformerEngine's current and block scaling)",
    params: PARAMS,
    build,
});
