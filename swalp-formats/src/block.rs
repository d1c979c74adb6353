//! Block floating point: integers that share one exponent per block.

use swalp_core::{
    kernel::native::{exponent, pow2},
    spec::{int_in, invalid},
    tch::Tensor,
    Backend, Error, FormatFactory, NumberFormat, ParamInfo, Params, RandomStream, Result, Rounding,
    SpecError,
};

use crate::kernels::{native, tensor};

/// Which elements share an exponent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Block {
    /// One exponent for the whole tensor (spec `"tensor"`).
    Tensor,
    /// One exponent per slice along these dimensions (spec `{ dim = 0 }` or
    /// `{ dims = [0, 1] }`): elements share an exponent when their indices in
    /// these dimensions are equal.
    Dims(Vec<usize>),
    /// Contiguous groups of `size` elements along `dim`, the last group
    /// shorter when `size` does not divide the dimension (spec
    /// `{ size = 32, dim = 1 }`).
    Chunks {
        /// Elements per group.
        size: usize,
        /// The dimension grouped.
        dim: usize,
    },
}

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
        let bad = |key: &str, value: u32, allowed: &str| SpecError::InvalidValue {
            key: key.into(),
            value: value.to_string(),
            allowed: allowed.into(),
        };
        if !(2..=24).contains(&wl) {
            return Err(bad("wl", wl, "an integer in 2..=24"));
        }
        if !(1..=8).contains(&ebit) {
            return Err(bad("ebit", ebit, "an integer in 1..=8"));
        }
        if let Block::Chunks { size: 0, .. } = block {
            return Err(bad("block.size", 0, "a positive integer"));
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
        BlockLayout::new(self.block_for(shape.len()), shape).map_err(|reason| Error::Unsupported {
            format: "bfp".into(),
            backend: Backend::Auto,
            reason,
        })
    }

    fn block_params(&self) -> toml::Value {
        let table = |pairs: Vec<(&str, toml::Value)>| {
            toml::Value::Table(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
        };
        match &self.block {
            Block::Tensor => "tensor".into(),
            Block::Dims(d) if d.len() == 1 => table(vec![("dim", (d[0] as i64).into())]),
            Block::Dims(d) => table(vec![(
                "dims",
                toml::Value::Array(d.iter().map(|&x| (x as i64).into()).collect()),
            )]),
            Block::Chunks { size, dim } => table(vec![
                ("size", (*size as i64).into()),
                ("dim", (*dim as i64).into()),
            ]),
        }
    }
}

/// Maps the row-major index of an element to its block number.
///
/// A block is identified by the coordinates of the element in the dimensions
/// that separate blocks (for chunks, the coordinate divided by the chunk
/// size); the block number is those coordinates in row-major order.
///
/// ```
/// use swalp_formats::{block::BlockLayout, Block};
/// let l = BlockLayout::new(&Block::Dims(vec![1]), &[2, 3]).unwrap();
/// assert_eq!(l.num_blocks(), 3);
/// assert_eq!((0..6).map(|i| l.block_of(i)).collect::<Vec<_>>(), [0, 1, 2, 0, 1, 2]);
/// let l = BlockLayout::new(&Block::Chunks { size: 2, dim: 1 }, &[2, 3]).unwrap();
/// assert_eq!((0..6).map(|i| l.block_of(i)).collect::<Vec<_>>(), [0, 0, 1, 2, 2, 3]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockLayout {
    terms: Vec<Term>,
    num_blocks: usize,
    numel: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Term {
    stride: usize,
    size: usize,
    chunk: usize,
    weight: usize,
}

impl BlockLayout {
    /// The layout of `block` over a tensor of `shape`; fails naming the
    /// dimension when `block` refers to one the tensor lacks.
    pub fn new(block: &Block, shape: &[usize]) -> Result<Self, String> {
        let missing =
            |d: usize| format!("block dimension {d} does not exist in a tensor of shape {shape:?}");
        // (dimension, chunk size) pairs that separate blocks.
        let separating: Vec<(usize, usize)> = match block {
            Block::Tensor => vec![],
            Block::Dims(dims) => {
                let mut dims = dims.clone();
                dims.sort_unstable();
                dims.dedup();
                if let Some(&d) = dims.iter().find(|&&d| d >= shape.len()) {
                    return Err(missing(d));
                }
                dims.into_iter().map(|d| (d, 1)).collect()
            }
            Block::Chunks { size, dim } => {
                if *dim >= shape.len() {
                    return Err(missing(*dim));
                }
                (0..shape.len())
                    .map(|d| (d, if d == *dim { *size } else { 1 }))
                    .collect()
            }
        };
        let strides: Vec<usize> = (0..shape.len())
            .map(|d| shape[d + 1..].iter().product())
            .collect();
        let mut terms = Vec::with_capacity(separating.len());
        let mut weight = 1;
        for &(d, chunk) in separating.iter().rev() {
            terms.push(Term {
                stride: strides[d],
                size: shape[d],
                chunk,
                weight,
            });
            weight *= shape[d].div_ceil(chunk);
        }
        Ok(BlockLayout {
            terms,
            num_blocks: weight,
            numel: shape.iter().product(),
        })
    }

    /// Number of blocks.
    pub fn num_blocks(&self) -> usize {
        self.num_blocks
    }

    /// The end of the run of consecutive elements that share `index`'s
    /// block: the first index after `index` in another block (possibly past
    /// the tensor's end; `usize::MAX` for a single block).
    ///
    /// ```
    /// use swalp_formats::{block::BlockLayout, Block};
    /// let l = BlockLayout::new(&Block::Chunks { size: 2, dim: 1 }, &[2, 3]).unwrap();
    /// assert_eq!((0..6).map(|i| l.run_end(i)).collect::<Vec<_>>(), [2, 2, 3, 5, 5, 6]);
    /// ```
    #[inline]
    pub fn run_end(&self, index: usize) -> usize {
        match self.terms.first() {
            None => usize::MAX,
            Some(t) => {
                // Outer separating dimensions change only at multiples of
                // stride * size of the innermost one.
                let line = index / t.stride;
                let p = line % t.size;
                let next = ((p / t.chunk + 1) * t.chunk).min(t.size);
                (line - p + next) * t.stride
            }
        }
    }

    /// The start of the run of consecutive elements that share `index`'s
    /// block (see [`run_end`](Self::run_end)).
    #[inline]
    pub fn run_start(&self, index: usize) -> usize {
        match self.terms.first() {
            None => 0,
            Some(t) => {
                let line = index / t.stride;
                let p = line % t.size;
                (line - p + p / t.chunk * t.chunk) * t.stride
            }
        }
    }

    /// Whether every block is a single run of consecutive elements (the
    /// blocks are separated by leading dimensions only, the innermost of
    /// them possibly in chunks), so a kernel can find a block's maximum
    /// and round it in one visit. False for a single block.
    ///
    /// ```
    /// use swalp_formats::{block::BlockLayout, Block};
    /// assert!(BlockLayout::new(&Block::Dims(vec![0]), &[4, 3, 2]).unwrap().blocks_are_runs());
    /// assert!(BlockLayout::new(&Block::Dims(vec![0, 1]), &[4, 3, 2]).unwrap().blocks_are_runs());
    /// assert!(!BlockLayout::new(&Block::Dims(vec![1]), &[4, 3, 2]).unwrap().blocks_are_runs());
    /// assert!(!BlockLayout::new(&Block::Dims(vec![0, 2]), &[4, 3, 2]).unwrap().blocks_are_runs());
    /// ```
    pub fn blocks_are_runs(&self) -> bool {
        let Some(outer) = self.terms.last() else {
            return false;
        };
        // Adjacent dimensions from the innermost separating one outwards,
        // the outermost being dimension 0 (dimensions of size 1 between
        // them change nothing), and chunks only in the innermost.
        let adjacent = self
            .terms
            .windows(2)
            .all(|w| w[1].stride == w[0].stride * w[0].size && w[1].chunk == 1);
        adjacent && outer.stride * outer.size == self.numel
    }

    /// The length of a full run of consecutive elements sharing a block
    /// (see [`run_end`](Self::run_end)); `usize::MAX` for a single block.
    pub fn typical_run(&self) -> usize {
        match self.terms.first() {
            None => usize::MAX,
            Some(t) => t.stride.saturating_mul(t.chunk.min(t.size)),
        }
    }

    /// The block of the element at row-major `index`.
    #[inline]
    pub fn block_of(&self, index: usize) -> usize {
        self.terms
            .iter()
            .map(|t| (index / t.stride % t.size) / t.chunk * t.weight)
            .sum()
    }
}

impl NumberFormat for BlockFloat {
    fn name(&self) -> &str {
        "bfp"
    }

    fn params(&self) -> toml::Table {
        let mut t = toml::Table::new();
        t.insert("wl".into(), i64::from(self.wl).into());
        t.insert("ebit".into(), i64::from(self.ebit).into());
        t.insert("block".into(), self.block_params());
        if let Some(sb) = self.small_block {
            let name = match sb {
                SmallBlock::None => "none",
                SmallBlock::Fc => "fc",
                SmallBlock::Conv => "conv",
            };
            t.insert("small_block".into(), name.into());
        }
        t.insert("symmetric".into(), self.symmetric.into());
        t
    }

    fn bits_per_value(&self) -> f64 {
        match self.block {
            Block::Chunks { size, .. } => f64::from(self.wl) + f64::from(self.ebit) / size as f64,
            // The exponent's share depends on the tensor's shape.
            _ => f64::from(self.wl),
        }
    }

    fn quantize_tensor(
        &self,
        x: &Tensor,
        rounding: Rounding,
        random: Option<RandomStream>,
    ) -> Result<Tensor> {
        tensor::block(self, x, rounding, random)
    }

    fn has_native(&self) -> bool {
        true
    }

    fn quantize_native(
        &self,
        x: &[f32],
        shape: &[usize],
        out: &mut [f32],
        rounding: Rounding,
        random: Option<RandomStream>,
    ) -> Result<()> {
        native::block(self, x, shape, out, rounding, random)
    }
}

const PARAMS: &[ParamInfo] = &[
    ParamInfo::required("wl", "integer", "2..=24", "bits per element, sign included"),
    ParamInfo::optional(
        "ebit",
        "integer",
        "8",
        "1..=8",
        "bits of the shared exponent",
    ),
    ParamInfo::optional_without_default(
        "block",
        "string or table",
        "\"tensor\" | { dim = D } | { dims = [D, ...] } | { size = N, dim = D }",
        "which elements share an exponent (absent: \"tensor\", or { dim = 0 } with small_block)",
    ),
    ParamInfo::optional_without_default(
        "small_block",
        "string",
        "\"none\" | \"fc\" | \"conv\"",
        "one exponent per tensor for tensors of at most 4 / 1 / 2 dimensions (the seed's rule; absent: block applies to every tensor)",
    ),
    ParamInfo::optional(
        "symmetric",
        "boolean",
        "false",
        "true | false",
        "exclude the most negative integer (QPyTorch's saturation)",
    ),
];

fn parse_block(value: &toml::Value) -> Result<Block, SpecError> {
    const ALLOWED: &str = "\"tensor\", { dim = D }, { dims = [D, ...] } or { size = N, dim = D }";
    let dim_of = |key: &str, v: &toml::Value| int_in(key, v, 0..=63).map(|d| d as usize);
    match value {
        toml::Value::String(s) if s == "tensor" => Ok(Block::Tensor),
        toml::Value::Table(t) => {
            if let Some(extra) = t
                .keys()
                .find(|k| !["dim", "dims", "size"].contains(&k.as_str()))
            {
                return Err(SpecError::UnknownKey {
                    context: "bfp `block`".into(),
                    key: extra.clone(),
                    allowed: vec!["dim".into(), "dims".into(), "size".into()],
                    suggestion: swalp_core::error::closest(extra, ["dim", "dims", "size"]),
                });
            }
            match (t.get("dim"), t.get("dims"), t.get("size")) {
                (Some(d), None, None) => Ok(Block::Dims(vec![dim_of("block.dim", d)?])),
                (None, Some(toml::Value::Array(ds)), None) if !ds.is_empty() => Ok(Block::Dims(
                    ds.iter()
                        .map(|d| dim_of("block.dims", d))
                        .collect::<Result<_, _>>()?,
                )),
                (Some(d), None, Some(n)) => Ok(Block::Chunks {
                    size: int_in("block.size", n, 1..=i64::from(u32::MAX))? as usize,
                    dim: dim_of("block.dim", d)?,
                }),
                _ => Err(invalid("block", value, ALLOWED)),
            }
        }
        _ => Err(invalid("block", value, ALLOWED)),
    }
}

fn build(p: &mut Params<'_>) -> Result<Box<dyn NumberFormat>, SpecError> {
    let wl = p.int("wl", 2..=24)? as u32;
    let ebit = p.int_or("ebit", 8, 1..=8)? as u32;
    let small_block = match p.raw("small_block") {
        None => None,
        Some(v) => Some(match v.as_str() {
            Some("none") => SmallBlock::None,
            Some("fc") => SmallBlock::Fc,
            Some("conv") => SmallBlock::Conv,
            _ => return Err(invalid("small_block", v, "\"none\" | \"fc\" | \"conv\"")),
        }),
    };
    let block = match p.raw("block") {
        Some(v) => parse_block(v)?,
        // The seed pairs small blocks with one exponent per slice along dim 0.
        None if small_block.is_some() => Block::Dims(vec![0]),
        None => Block::Tensor,
    };
    let symmetric = p.bool_or("symmetric", false)?;
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
