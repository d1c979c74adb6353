//! Blocks: which elements of a tensor share a scale or an exponent.
//!
//! Block floating point, OCP MX and per-channel integer formats all round
//! each element on a grid set by its block's largest magnitude. This module
//! is where blocks are described ([`Block`], with its spec syntax), mapped
//! onto a row-major tensor ([`BlockLayout`]) and reduced: [`BlockLayout::maxima`]
//! for the native kernels, [`Block::amax`] for the tensor kernels. Formats
//! decide only what a block's maximum means for its elements.

use std::fmt;

use tch::{TchError, Tensor};

use crate::error::SpecError;
use crate::kernel::native::{for_each_input_chunk, max_simd};
use crate::spec::{int_in, invalid, reject_unknown_keys};

/// Which elements share a scale.
///
/// Spec syntax (TOML): `"tensor"`, `{ dim = D }`, `{ dims = [D, ...] }`,
/// `{ size = N, dim = D }` or `{ size = [R, C], dims = [D0, D1] }`.
///
/// ```
/// use swalp_core::block::Block;
/// let v: toml::Value = toml::from_str::<toml::Table>("b = { size = 32, dim = 1 }")?["b"].clone();
/// let block = Block::from_toml("block", &v)?;
/// assert_eq!(block, Block::Chunks { size: 32, dim: 1 });
/// assert_eq!(block.to_toml(), v);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Block {
    /// One block for the whole tensor (spec `"tensor"`).
    Tensor,
    /// One block per slice along these dimensions (spec `{ dim = 0 }` or
    /// `{ dims = [0, 1] }`): elements share a block when their indices in
    /// these dimensions are equal.
    Dims(Vec<usize>),
    /// Contiguous groups of `size` elements along `dim`, one block per
    /// group and per index in the other dimensions; the last group is
    /// shorter when `size` does not divide the dimension (spec
    /// `{ size = 32, dim = 1 }`).
    Chunks {
        /// Elements per group.
        size: usize,
        /// The dimension grouped.
        dim: usize,
    },
    /// Tiles of `size[0] × size[1]` elements over the dimensions `dims[0]`
    /// and `dims[1]` (distinct), one block per tile and per index in the
    /// other dimensions; tiles at the ends are smaller when the sizes do not
    /// divide the dimensions (spec `{ size = [16, 16], dims = [0, 1] }`).
    /// NVFP4's 2-D weight scaling uses 16 × 16 tiles, so that a matrix and
    /// its transpose are cut into the same blocks.
    Tiles {
        /// Elements per tile along each of `dims`.
        size: [usize; 2],
        /// The two dimensions tiled.
        dims: [usize; 2],
    },
}

/// The spec syntax of a [`Block`], for error messages and `formats`.
pub const BLOCK_SYNTAX: &str = "\"tensor\" | { dim = D } | { dims = [D, ...] } | { size = N, dim = D } | { size = [R, C], dims = [D0, D1] }";

impl Block {
    /// Parses the spec value of the key `key` (named in errors).
    pub fn from_toml(key: &str, value: &toml::Value) -> Result<Block, SpecError> {
        const KEYS: [&str; 3] = ["dim", "dims", "size"];
        let dim_of = |sub: &str, v: &toml::Value| {
            int_in(&format!("{key}.{sub}"), v, 0..=63).map(|d| d as usize)
        };
        let size_of = |v: &toml::Value| {
            int_in(&format!("{key}.size"), v, 1..=i64::from(u32::MAX)).map(|n| n as usize)
        };
        let table = match value {
            toml::Value::String(s) if s == "tensor" => return Ok(Block::Tensor),
            toml::Value::Table(t) => t,
            _ => return Err(invalid(key, value, BLOCK_SYNTAX)),
        };
        reject_unknown_keys(key, table, &KEYS)?;
        match (table.get("dim"), table.get("dims"), table.get("size")) {
            (Some(d), None, None) => Ok(Block::Dims(vec![dim_of("dim", d)?])),
            (None, Some(toml::Value::Array(ds)), None) if !ds.is_empty() => Ok(Block::Dims(
                ds.iter()
                    .map(|d| dim_of("dims", d))
                    .collect::<Result<_, _>>()?,
            )),
            (Some(d), None, Some(n)) => Ok(Block::Chunks {
                size: size_of(n)?,
                dim: dim_of("dim", d)?,
            }),
            (None, Some(toml::Value::Array(ds)), Some(toml::Value::Array(ns)))
                if ds.len() == 2 && ns.len() == 2 =>
            {
                let dims = [dim_of("dims", &ds[0])?, dim_of("dims", &ds[1])?];
                if dims[0] == dims[1] {
                    return Err(invalid(key, value, "two different dimensions in `dims`"));
                }
                Ok(Block::Tiles {
                    size: [size_of(&ns[0])?, size_of(&ns[1])?],
                    dims,
                })
            }
            _ => Err(invalid(key, value, BLOCK_SYNTAX)),
        }
    }

    /// The spec value, as [`from_toml`](Self::from_toml) reads it.
    pub fn to_toml(&self) -> toml::Value {
        let int = |x: usize| toml::Value::Integer(x as i64);
        let table = |pairs: Vec<(&str, toml::Value)>| {
            toml::Value::Table(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
        };
        match self {
            Block::Tensor => "tensor".into(),
            Block::Dims(d) if d.len() == 1 => table(vec![("dim", int(d[0]))]),
            Block::Dims(d) => table(vec![(
                "dims",
                toml::Value::Array(d.iter().map(|&x| int(x)).collect()),
            )]),
            Block::Chunks { size, dim } => table(vec![("size", int(*size)), ("dim", int(*dim))]),
            Block::Tiles { size, dims } => table(vec![
                ("size", toml::Value::Array(size.map(int).to_vec())),
                ("dims", toml::Value::Array(dims.map(int).to_vec())),
            ]),
        }
    }

    /// The largest element of `magnitude` over each element's block, as a
    /// tensor broadcastable to `magnitude` (the tensor kernels' block
    /// maximum; the dimensions must exist, see [`BlockLayout::new`]).
    ///
    /// ```
    /// use swalp_core::{block::Block, tch::Tensor};
    /// let m = Tensor::from_slice(&[1.0f64, 5.0, 2.0, 3.0, 4.0, 0.0]).view([2, 3]);
    /// let rows = Block::Dims(vec![0]).amax(&m)?;
    /// assert_eq!(Vec::<f64>::try_from(rows.flatten(0, -1))?, [5.0, 4.0]);
    /// let pairs = Block::Chunks { size: 2, dim: 1 }.amax(&m)?;
    /// assert_eq!(Vec::<f64>::try_from(pairs.flatten(0, -1))?, [5.0, 5.0, 2.0, 4.0, 4.0, 0.0]);
    /// # Ok::<(), swalp_core::tch::TchError>(())
    /// ```
    pub fn amax(&self, magnitude: &Tensor) -> Result<Tensor, TchError> {
        let ndim = magnitude.dim() as i64;
        match self {
            Block::Tensor => magnitude.f_amax(Vec::<i64>::new(), true),
            Block::Dims(dims) => {
                let reduced: Vec<i64> = (0..ndim)
                    .filter(|d| !dims.contains(&(*d as usize)))
                    .collect();
                if reduced.is_empty() {
                    Ok(magnitude.shallow_clone())
                } else {
                    magnitude.f_amax(reduced, true)
                }
            }
            Block::Chunks { size, dim } => chunk_amax(magnitude, *size, *dim),
            // The largest over chunks along one dimension, then over chunks
            // of those maxima along the other: the largest over each tile.
            Block::Tiles { size, dims } => {
                chunk_amax(&chunk_amax(magnitude, size[0], dims[0])?, size[1], dims[1])
            }
        }
    }
}

/// The largest element of `magnitude` over each group of `size`
/// consecutive elements along `dim`, broadcast back to every element of the
/// group (the last group shorter when `size` does not divide the dimension).
fn chunk_amax(magnitude: &Tensor, size: usize, dim: usize) -> Result<Tensor, TchError> {
    let ndim = magnitude.dim() as i64;
    let size = size as i64;
    let moved = magnitude.f_movedim([dim as i64], [ndim - 1])?;
    let len = moved.size()[ndim as usize - 1];
    let groups = (len + size - 1) / size;
    let padded = moved.f_constant_pad_nd([0, groups * size - len])?;
    let mut grouped_shape = padded.size();
    grouped_shape.pop();
    grouped_shape.extend([groups, size]);
    let maxima = padded.f_reshape(&grouped_shape)?.f_amax([-1], true)?;
    maxima
        .f_expand(&grouped_shape, false)?
        .f_reshape(padded.size())?
        .f_narrow(ndim - 1, 0, len)?
        .f_movedim([ndim - 1], [dim as i64])
}

/// A block dimension the tensor does not have.
///
/// ```
/// use swalp_core::block::{resolve_dim, MissingDim};
/// assert_eq!(resolve_dim(-1, &[3, 4]), Ok(1));
/// let err = resolve_dim(2, &[3, 4]).unwrap_err();
/// assert_eq!(err.to_string(), "dimension 2 does not exist in a tensor of shape [3, 4]");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissingDim {
    /// The dimension asked for, as given (negative counts from the end).
    pub dim: i64,
    /// The tensor's shape.
    pub shape: Vec<usize>,
}

impl fmt::Display for MissingDim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "dimension {} does not exist in a tensor of shape {:?}",
            self.dim, self.shape
        )
    }
}

impl std::error::Error for MissingDim {}

/// `dim` of a tensor of `shape` made non-negative (negative counts from the
/// end, as in torch).
pub fn resolve_dim(dim: i64, shape: &[usize]) -> Result<usize, MissingDim> {
    let rank = shape.len() as i64;
    let d = if dim < 0 { dim + rank } else { dim };
    if (0..rank).contains(&d) {
        Ok(d as usize)
    } else {
        Err(MissingDim {
            dim,
            shape: shape.to_vec(),
        })
    }
}

/// Maps the row-major index of an element to its block number.
///
/// A block is identified by the coordinates of the element in the dimensions
/// that separate blocks (for chunks, the coordinate divided by the chunk
/// size); the block number is those coordinates in row-major order.
///
/// ```
/// use swalp_core::block::{Block, BlockLayout};
/// let l = BlockLayout::new(&Block::Dims(vec![1]), &[2, 3])?;
/// assert_eq!(l.num_blocks(), 3);
/// assert_eq!((0..6).map(|i| l.block_of(i)).collect::<Vec<_>>(), [0, 1, 2, 0, 1, 2]);
/// let l = BlockLayout::new(&Block::Chunks { size: 2, dim: 1 }, &[2, 3])?;
/// assert_eq!((0..6).map(|i| l.block_of(i)).collect::<Vec<_>>(), [0, 0, 1, 2, 2, 3]);
/// # Ok::<(), swalp_core::block::MissingDim>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockLayout {
    /// The separating dimensions, innermost first; adjacent whole
    /// dimensions are merged into one term.
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

/// Runs shorter than this make block kernels (and [`BlockLayout::maxima`])
/// visit elements one by one instead of run by run.
const MIN_RUN: usize = 16;

impl BlockLayout {
    /// The layout of `block` over a tensor of `shape`; fails naming the
    /// dimension when `block` refers to one the tensor lacks.
    pub fn new(block: &Block, shape: &[usize]) -> Result<Self, MissingDim> {
        let check = |d: usize| {
            if d < shape.len() {
                Ok(d)
            } else {
                Err(MissingDim {
                    dim: d as i64,
                    shape: shape.to_vec(),
                })
            }
        };
        // (dimension, chunk size) pairs that separate blocks.
        let separating: Vec<(usize, usize)> = match block {
            Block::Tensor => vec![],
            Block::Dims(dims) => {
                let mut dims = dims.clone();
                dims.sort_unstable();
                dims.dedup();
                dims.into_iter()
                    .map(|d| Ok((check(d)?, 1)))
                    .collect::<Result<_, _>>()?
            }
            Block::Chunks { size, dim } => {
                check(*dim)?;
                (0..shape.len())
                    .map(|d| (d, if d == *dim { *size } else { 1 }))
                    .collect()
            }
            Block::Tiles { size, dims } => {
                check(dims[0])?;
                check(dims[1])?;
                (0..shape.len())
                    .map(|d| match dims.iter().position(|&t| t == d) {
                        Some(i) => (d, size[i]),
                        None => (d, 1),
                    })
                    .collect()
            }
        };
        let strides: Vec<usize> = (0..shape.len())
            .map(|d| shape[d + 1..].iter().product())
            .collect();
        let mut terms: Vec<Term> = Vec::with_capacity(separating.len());
        for &(d, chunk) in separating.iter().rev() {
            let term = Term {
                stride: strides[d],
                size: shape[d],
                chunk,
                weight: 0,
            };
            match terms.last_mut() {
                // A whole dimension right outside a whole inner term: one
                // coordinate of the two in row-major order, one term.
                Some(inner)
                    if chunk == 1
                        && inner.chunk == 1
                        && term.stride == inner.stride * inner.size =>
                {
                    inner.size *= term.size;
                }
                _ => terms.push(term),
            }
        }
        let mut weight = 1;
        for t in &mut terms {
            t.weight = weight;
            weight *= t.size.div_ceil(t.chunk);
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
    /// use swalp_core::block::{Block, BlockLayout};
    /// let l = BlockLayout::new(&Block::Chunks { size: 2, dim: 1 }, &[2, 3])?;
    /// assert_eq!((0..6).map(|i| l.run_end(i)).collect::<Vec<_>>(), [2, 2, 3, 5, 5, 6]);
    /// # Ok::<(), swalp_core::block::MissingDim>(())
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
    /// use swalp_core::block::{Block, BlockLayout};
    /// let runs = |b: Block| BlockLayout::new(&b, &[4, 3, 2]).unwrap().blocks_are_runs();
    /// assert!(runs(Block::Dims(vec![0])));
    /// assert!(runs(Block::Dims(vec![0, 1])));
    /// assert!(!runs(Block::Dims(vec![1])));
    /// assert!(!runs(Block::Dims(vec![0, 2])));
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

    /// `Some(n)` when every block is one run of exactly `n` consecutive
    /// elements (see [`blocks_are_runs`](Self::blocks_are_runs)), so the
    /// tensor is a sequence of equal blocks: NVFP4's 16 along the last
    /// dimension, MX's 32 along a last dimension that 32 divides.
    ///
    /// ```
    /// use swalp_core::block::{Block, BlockLayout};
    /// let runs = |b: Block| BlockLayout::new(&b, &[4, 64]).unwrap().uniform_run();
    /// assert_eq!(runs(Block::Chunks { size: 16, dim: 1 }), Some(16));
    /// assert_eq!(runs(Block::Chunks { size: 24, dim: 1 }), None); // 24 + 24 + 16
    /// assert_eq!(runs(Block::Dims(vec![0])), Some(64));
    /// ```
    pub fn uniform_run(&self) -> Option<usize> {
        self.equal_runs().filter(|_| self.blocks_are_runs())
    }

    /// `Some(n)` when the tensor is a sequence of runs of exactly `n`
    /// consecutive elements, each inside one block (a block may hold
    /// several, as a 16 × 16 tile holds 16 runs of 16): the run starting at
    /// element `i · n` is in block [`block_of(i · n)`](Self::block_of).
    ///
    /// ```
    /// use swalp_core::block::{Block, BlockLayout};
    /// let tiles = Block::Tiles { size: [16, 16], dims: [0, 1] };
    /// assert_eq!(BlockLayout::new(&tiles, &[32, 64]).unwrap().equal_runs(), Some(16));
    /// assert_eq!(BlockLayout::new(&tiles, &[32, 40]).unwrap().equal_runs(), None);
    /// ```
    pub fn equal_runs(&self) -> Option<usize> {
        let inner = self.terms.first()?;
        (inner.size % inner.chunk == 0).then(|| inner.stride * inner.chunk)
    }

    /// The length of a full run of consecutive elements sharing a block
    /// (see [`run_end`](Self::run_end)); `usize::MAX` for a single block.
    pub fn typical_run(&self) -> usize {
        match self.terms.first() {
            None => usize::MAX,
            Some(t) => t.stride.saturating_mul(t.chunk.min(t.size)),
        }
    }

    /// Whether full runs are long enough ([`typical_run`](Self::typical_run)
    /// at least 16) for kernels to work run by run rather than element by
    /// element.
    pub fn has_long_runs(&self) -> bool {
        self.typical_run() >= MIN_RUN
    }

    /// The layout as `[stride, size, chunk, weight]` terms, innermost first:
    /// [`block_of(i)`](Self::block_of) is the sum over terms of
    /// `(i / stride % size) / chunk * weight` (what the CUDA kernels
    /// compute).
    ///
    /// ```
    /// use swalp_core::block::{Block, BlockLayout};
    /// let l = BlockLayout::new(&Block::Chunks { size: 2, dim: 1 }, &[2, 3])?;
    /// let block_of = |i: usize| -> usize {
    ///     l.terms().iter().map(|[st, si, ch, w]| (i / st % si) / ch * w).sum()
    /// };
    /// assert!((0..6).all(|i| block_of(i) == l.block_of(i)));
    /// # Ok::<(), swalp_core::block::MissingDim>(())
    /// ```
    pub fn terms(&self) -> Vec<[usize; 4]> {
        self.terms
            .iter()
            .map(|t| [t.stride, t.size, t.chunk, t.weight])
            .collect()
    }

    /// The block of the element at row-major `index`.
    #[inline]
    pub fn block_of(&self, index: usize) -> usize {
        self.terms
            .iter()
            .map(|t| (index / t.stride % t.size) / t.chunk * t.weight)
            .sum()
    }

    /// The largest `key(v)` over each block of `x` (laid out as this
    /// layout's tensor), as a vector over blocks (0 for a block with no
    /// elements). `key` maps a value to an ordered magnitude, such as
    /// [`abs_bits_nan_zero`](crate::kernel::native::abs_bits_nan_zero).
    ///
    /// Layouts with long runs are scanned in parallel run by run and merged
    /// with atomic maxima (the maximum does not depend on the order);
    /// others element by element on one thread.
    ///
    /// ```
    /// use swalp_core::block::{Block, BlockLayout};
    /// use swalp_core::kernel::native::abs_bits_nan_zero;
    /// let l = BlockLayout::new(&Block::Dims(vec![1]), &[2, 2])?;
    /// let max = l.maxima(&[1.0, -4.0, -3.0, 2.0], abs_bits_nan_zero);
    /// assert_eq!(max.iter().map(|&b| f32::from_bits(b)).collect::<Vec<_>>(), [3.0, 4.0]);
    /// # Ok::<(), swalp_core::block::MissingDim>(())
    /// ```
    pub fn maxima<K>(&self, x: &[f32], key: K) -> Vec<u32>
    where
        K: Fn(f32) -> u32 + Copy + Sync,
    {
        use std::sync::atomic::{AtomicU32, Ordering};
        if !self.has_long_runs() {
            let mut max = vec![0u32; self.num_blocks];
            for (i, &v) in x.iter().enumerate() {
                let m = &mut max[self.block_of(i)];
                *m = (*m).max(key(v));
            }
            return max;
        }
        let max: Vec<AtomicU32> = (0..self.num_blocks).map(|_| AtomicU32::new(0)).collect();
        for_each_input_chunk(x, |start, inp| {
            let mut i = 0;
            while i < inp.len() {
                let g = start + i;
                let end = (self.run_end(g) - start).min(inp.len());
                let m = max_simd(&inp[i..end], key);
                if m > 0 {
                    max[self.block_of(g)].fetch_max(m, Ordering::Relaxed);
                }
                i = end;
            }
        });
        max.into_iter().map(AtomicU32::into_inner).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Block numbers by brute force: row-major order of the separating
    /// coordinates.
    fn brute(block: &Block, shape: &[usize]) -> Vec<usize> {
        let numel: usize = shape.iter().product();
        let mut keys: Vec<Vec<usize>> = Vec::with_capacity(numel);
        for i in 0..numel {
            let mut rest = i;
            let mut coords = vec![0; shape.len()];
            for d in (0..shape.len()).rev() {
                coords[d] = rest % shape[d];
                rest /= shape[d];
            }
            let key = match block {
                Block::Tensor => vec![],
                Block::Dims(dims) => {
                    let mut dims = dims.clone();
                    dims.sort_unstable();
                    dims.dedup();
                    dims.iter().map(|&d| coords[d]).collect()
                }
                Block::Chunks { size, dim } => (0..shape.len())
                    .map(|d| {
                        if d == *dim {
                            coords[d] / size
                        } else {
                            coords[d]
                        }
                    })
                    .collect(),
                Block::Tiles { size, dims } => (0..shape.len())
                    .map(|d| match dims.iter().position(|&t| t == d) {
                        Some(i) => coords[d] / size[i],
                        None => coords[d],
                    })
                    .collect(),
            };
            keys.push(key);
        }
        let mut sorted = keys.clone();
        sorted.sort();
        sorted.dedup();
        keys.iter()
            .map(|k| sorted.binary_search(k).expect("present"))
            .collect()
    }

    #[test]
    fn layouts_number_blocks_in_row_major_order_and_find_their_runs() {
        let shapes: [&[usize]; 5] = [&[4, 3, 2], &[2, 1, 5], &[7], &[3, 4, 1, 6], &[1, 1]];
        for shape in shapes {
            let mut blocks = vec![Block::Tensor];
            for d in 0..shape.len() {
                blocks.push(Block::Dims(vec![d]));
                for size in [1, 2, 3, 5] {
                    blocks.push(Block::Chunks { size, dim: d });
                }
                for e in d + 1..shape.len() {
                    blocks.push(Block::Dims(vec![e, d]));
                    blocks.push(Block::Tiles {
                        size: [2, 3],
                        dims: [d, e],
                    });
                    blocks.push(Block::Tiles {
                        size: [1, 2],
                        dims: [e, d],
                    });
                }
            }
            for block in blocks {
                let l = BlockLayout::new(&block, shape).unwrap();
                let expected = brute(&block, shape);
                let numel = expected.len();
                let got: Vec<usize> = (0..numel).map(|i| l.block_of(i)).collect();
                assert_eq!(got, expected, "{block:?} on {shape:?}");
                assert_eq!(l.num_blocks(), expected.iter().max().map_or(1, |m| m + 1));
                for i in 0..numel {
                    let (s, e) = (l.run_start(i), l.run_end(i).min(numel));
                    assert!(s <= i && i < e, "{block:?} {shape:?} {i}");
                    // A run lies inside one block (a block may hold
                    // several runs, as when a size-1 dimension separates).
                    assert!((s..e).all(|j| expected[j] == expected[i]));
                }
                // Each block one run: what `blocks_are_runs` promises.
                let runs = (0..numel).all(|i| {
                    let b = expected[i];
                    let (s, e) = (l.run_start(i), l.run_end(i).min(numel));
                    expected
                        .iter()
                        .enumerate()
                        .all(|(j, &c)| c != b || (s..e).contains(&j))
                });
                if l.blocks_are_runs() {
                    assert!(runs, "{block:?} on {shape:?} claims runs");
                }
            }
        }
    }

    /// The tensor kernels' maxima ([`Block::amax`]) equal the native ones
    /// ([`BlockLayout::maxima`]) for every kind of block, tiles included.
    #[test]
    fn tensor_maxima_equal_layout_maxima() {
        let shape = [5usize, 7, 6];
        let x: Vec<f32> = (0..5 * 7 * 6)
            .map(|i| ((i * 7919) % 211) as f32 - 100.0)
            .collect();
        let t = Tensor::from_slice(&x).view([5, 7, 6]).abs();
        for block in [
            Block::Tensor,
            Block::Dims(vec![1]),
            Block::Chunks { size: 4, dim: 2 },
            Block::Tiles {
                size: [2, 4],
                dims: [0, 2],
            },
            Block::Tiles {
                size: [3, 2],
                dims: [2, 1],
            },
        ] {
            let l = BlockLayout::new(&block, &shape).unwrap();
            let maxima = l.maxima(&x, crate::kernel::native::abs_bits_nan_zero);
            let expected: Vec<f32> = (0..x.len())
                .map(|i| f32::from_bits(maxima[l.block_of(i)]))
                .collect();
            let got = block.amax(&t).unwrap().expand([5, 7, 6], false);
            let got = Vec::<f32>::try_from(got.contiguous().flatten(0, -1)).unwrap();
            assert_eq!(got, expected, "{block:?}");
        }
    }

    #[test]
    fn missing_dimensions_are_named() {
        let err = BlockLayout::new(&Block::Dims(vec![0, 3]), &[2, 2]).unwrap_err();
        assert_eq!(err.dim, 3);
        let err = BlockLayout::new(&Block::Chunks { size: 2, dim: 2 }, &[2, 2]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "dimension 2 does not exist in a tensor of shape [2, 2]"
        );
        assert_eq!(resolve_dim(-3, &[2, 2]).unwrap_err().dim, -3);
    }

    #[test]
    fn maxima_agree_between_run_and_element_scans() {
        let shape = [64usize, 48];
        let x: Vec<f32> = (0..64 * 48)
            .map(|i| ((i * 7919) % 1000) as f32 - 500.0)
            .collect();
        let key = crate::kernel::native::abs_bits_nan_zero;
        for block in [
            Block::Dims(vec![0]),
            Block::Dims(vec![1]),
            Block::Chunks { size: 16, dim: 1 },
            Block::Tensor,
        ] {
            let l = BlockLayout::new(&block, &shape).unwrap();
            let mut expected = vec![0u32; l.num_blocks()];
            for (i, &v) in x.iter().enumerate() {
                expected[l.block_of(i)] = expected[l.block_of(i)].max(key(v));
            }
            assert_eq!(l.maxima(&x, key), expected, "{block:?}");
        }
    }

    #[test]
    fn block_specs_round_trip_and_errors_name_the_key() {
        for text in [
            "\"tensor\"",
            "{ dim = 1 }",
            "{ dims = [0, 2] }",
            "{ size = 32, dim = 0 }",
            "{ size = [16, 16], dims = [0, 1] }",
        ] {
            let v = toml::from_str::<toml::Table>(&format!("b = {text}")).unwrap()["b"].clone();
            let b = Block::from_toml("block", &v).unwrap();
            assert_eq!(b.to_toml(), v, "{text}");
        }
        let v = toml::from_str::<toml::Table>("b = { dimm = 1 }").unwrap()["b"].clone();
        let err = Block::from_toml("block", &v).unwrap_err().to_string();
        assert!(err.contains("did you mean `dim`"), "{err}");
        let v = toml::from_str::<toml::Table>("b = { size = 0, dim = 1 }").unwrap()["b"].clone();
        let err = Block::from_toml("block", &v).unwrap_err().to_string();
        assert!(err.contains("block.size"), "{err}");
    }
}
