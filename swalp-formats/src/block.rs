//! Block floating point: integers that share one exponent per block.

use swalp_core::{
    block::{Block, BlockLayout, BLOCK_SYNTAX},
    kernel::native::{exponent, pow2},
    Backend, Error, FormatFactory, NumberFormat, ParamInfo, Params, Result, SpecError,
};

/// The seed's "small-block" rule: tensors with at most this many dimensions
/// use one exponent for the whole tensor, larger ones use `block`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmallBlock {
    /// Up to 4 dimensions: in practice every tensor gets one exponent.
    None,
    /// Up to 1 dimension (biases); matrices and convolutions use `block`.
    Fc,
    /// Up to 2 dimensions; only convolution weights use `block`.
    Conv,
}

impl SmallBlock {
    /// The spec names, in the order of the variants.
    pub const NAMES: [&'static str; 3] = ["none", "fc", "conv"];

    /// The spec name.
    pub fn name(self) -> &'static str {
        match self {
            SmallBlock::None => "none",
            SmallBlock::Fc => "fc",
            SmallBlock::Conv => "conv",
        }
    }

    /// The largest number of dimensions that still gets a single exponent.
    pub fn whole_tensor_up_to(self) -> usize {
        match self {
            SmallBlock::None => 4,
            SmallBlock::Fc => 1,
            SmallBlock::Conv => 2,
        }
    }
}

/// Block floating point as the SWALP paper's code computes it.
///
/// For each block, the shared exponent is `E = floor(log2(max |x|))`,
/// clamped to `[-2^(ebit-1), 2^(ebit-1) - 1]`; each element becomes the
/// integer `i = round(x · 2^(wl-2-E))` clamped to `[-2^(wl-1), 2^(wl-1) - 1]`
/// (`[-(2^(wl-1) - 1), ...]` when `symmetric`), and the value is
/// `i · 2^(E-(wl-2))`. With `nearest-even` and `stochastic` this is the
/// seed's `block_quantize` exactly.
///
/// QPyTorch 0.3.0's `block_quantize(..., rounding="nearest")` corresponds to
/// `symmetric = true` with `rounding = "nearest-up"` (ties toward +∞), up to
/// its double rounding (see the README).
///
/// NaN elements stay NaN and do not take part in the block maximum; an
/// infinite element gives its block the largest exponent and saturates.
///
/// ```
/// use swalp_formats::{Block, BlockFloat};
/// let q = BlockFloat::new(8, 8, Block::Dims(vec![0]), None, false).unwrap();
/// assert_eq!(q.shared_exponent(3.0), 1);
/// assert_eq!(q.step_exponent(1), -5); // 64 steps per binade below 2^(E+1)
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockFloat {
    wl: u32,
    ebit: u32,
    block: Block,
    small_block: Option<SmallBlock>,
    symmetric: bool,
}

impl BlockFloat {
    /// A block floating-point format.
    pub fn new(
        wl: u32,
        ebit: u32,
        block: Block,
        small_block: Option<SmallBlock>,
        symmetric: bool,
    ) -> Result<Self, SpecError> {
        WL.check(&i64::from(wl).into())?;
        EBIT.check(&i64::from(ebit).into())?;
        if let Block::Chunks { size: 0, .. } = block {
            return Err(SpecError::InvalidValue {
                key: "block.size".into(),
                value: "0".into(),
                allowed: "a positive integer".into(),
            });
        }
        Ok(BlockFloat {
            wl,
            ebit,
            block,
            small_block,
            symmetric,
        })
    }

    /// Word length of each element, sign included.
    pub fn wl(&self) -> u32 {
        self.wl
    }

    /// Bits of the shared exponent.
    pub fn ebit(&self) -> u32 {
        self.ebit
    }

    /// The block structure for tensors above the small-block threshold.
    pub fn block(&self) -> &Block {
        &self.block
    }

    /// The block structure used for a tensor with `ndim` dimensions.
    pub fn block_for(&self, ndim: usize) -> &Block {
        match self.small_block {
            Some(sb) if ndim <= sb.whole_tensor_up_to() => &Block::Tensor,
            _ => &self.block,
        }
    }

    /// The range of the shared exponent.
    pub fn exponent_range(&self) -> (i32, i32) {
        let half = 1i32 << (self.ebit - 1);
        (-half, half - 1)
    }

    /// The shared exponent of a block whose largest magnitude is `max_abs`.
    pub fn shared_exponent(&self, max_abs: f64) -> i32 {
        let (lo, hi) = self.exponent_range();
        if max_abs == 0.0 {
            lo
        } else if max_abs.is_infinite() {
            hi
        } else {
            exponent(max_abs).clamp(lo, hi)
        }
    }

    /// The exponent `k` of the block's step `2^k`.
    pub fn step_exponent(&self, shared: i32) -> i32 {
        shared - (self.wl as i32 - 2)
    }

    /// The range of the element integers, as `(lowest, highest)`.
    pub fn int_range(&self) -> (f64, f64) {
        let half = pow2(self.wl as i32 - 1);
        let low = if self.symmetric { 1.0 - half } else { -half };
        (low, half - 1.0)
    }

    /// The range of the element integers in a block of step `2^k`. It is
    /// [`int_range`](Self::int_range) except at the largest exponents, where
    /// the most negative integer would be `-2^128`, beyond `f32`: there the
    /// range is symmetric.
    pub fn int_range_at(&self, k: i32) -> (f64, f64) {
        let (low, high) = self.int_range();
        // -2^(wl-1) · 2^k = -2^magnitude_exponent.
        let magnitude_exponent = k + self.wl as i32 - 1;
        if magnitude_exponent >= 128 {
            (-high, high)
        } else {
            (low, high)
        }
    }

    /// Which block each element of a row-major tensor of `shape` belongs to.
    pub fn layout(&self, shape: &[usize]) -> Result<BlockLayout> {
        BlockLayout::new(self.block_for(shape.len()), shape).map_err(|e| Error::Unsupported {
            format: "bfp".into(),
            backend: Backend::Auto,
            reason: format!("block {e}"),
        })
    }
}

impl BlockFloat {
    /// The format's own spec keys and values, written from their
    /// declarations: what [`NumberFormat::params`] returns.
    pub(crate) fn spec_params(&self) -> toml::Table {
        let mut t = toml::Table::new();
        WL.put(&mut t, i64::from(self.wl));
        EBIT.put(&mut t, i64::from(self.ebit));
        BLOCK.put(&mut t, self.block.to_toml());
        if let Some(sb) = self.small_block {
            SMALL_BLOCK.put(&mut t, sb.name());
        }
        SYMMETRIC.put(&mut t, self.symmetric);
        t
    }

    /// Storage bits per value: what [`NumberFormat::bits_per_value`] returns.
    pub(crate) fn value_bits(&self) -> f64 {
        match self.block {
            Block::Chunks { size, .. } => f64::from(self.wl) + f64::from(self.ebit) / size as f64,
            // The exponent's share depends on the tensor's shape.
            _ => f64::from(self.wl),
        }
    }
}

/// `wl`: bits per element.
pub const WL: ParamInfo = ParamInfo::int("wl", 2, 24, "bits per element, sign included");

/// `ebit`: bits of the shared exponent.
pub const EBIT: ParamInfo =
    ParamInfo::int("ebit", 1, 8, "bits of the shared exponent").default_int(8);

/// `block`: which elements share an exponent.
pub const BLOCK: ParamInfo = ParamInfo::other(
    "block",
    "string or table",
    BLOCK_SYNTAX,
    "which elements share an exponent (absent: \"tensor\", or { dim = 0 } with small_block)",
)
.computed_default();

/// `small_block`: the seed's rule for small tensors.
pub const SMALL_BLOCK: ParamInfo = ParamInfo::choice(
    "small_block",
    &SmallBlock::NAMES,
    "one exponent per tensor for tensors of at most 4 / 1 / 2 dimensions (the seed's rule; absent: block applies to every tensor)",
)
.computed_default();

/// `symmetric`: whether the most negative integer is excluded.
pub const SYMMETRIC: ParamInfo = ParamInfo::boolean(
    "symmetric",
    false,
    "exclude the most negative integer (QPyTorch's saturation)",
);

const PARAMS: &[ParamInfo] = &[WL, EBIT, BLOCK, SMALL_BLOCK, SYMMETRIC];

fn build(p: &mut Params<'_>) -> Result<Box<dyn NumberFormat>, SpecError> {
    let wl = p.int(&WL)? as u32;
    let ebit = p.int(&EBIT)? as u32;
    let small_block = p.choice_opt(&SMALL_BLOCK)?.map(|name| match name {
        "none" => SmallBlock::None,
        "fc" => SmallBlock::Fc,
        _ => SmallBlock::Conv,
    });
    let block = match p.raw(&BLOCK) {
        Some(v) => Block::from_toml(BLOCK.name, v)?,
        // The seed pairs small blocks with one exponent per slice along dim 0.
        None if small_block.is_some() => Block::Dims(vec![0]),
        None => Block::Tensor,
    };
    let symmetric = p.boolean(&SYMMETRIC)?;
    Ok(Box::new(BlockFloat::new(
        wl,
        ebit,
        block,
        small_block,
        symmetric,
    )?))
}

swalp_core::register_format!(FormatFactory {
    name: "bfp",
    summary: "block floating point: wl-bit integers sharing one exponent per block",
    params: PARAMS,
    build,
});
