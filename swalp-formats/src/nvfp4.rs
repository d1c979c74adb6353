//! NVFP4: NVIDIA's 4-bit format with two-level scaling.
//!
//! Blocks of 16 FP4 E2M1 elements (max 6) share one FP8 E4M3 scale, and the
//! whole tensor one FP32 scale (Blackwell's NVFP4, as trained in NVIDIA's
//! "Pretraining Large Language Models with NVFP4", 2025). The arithmetic is
//! torchao 0.18's (`torchao/prototype/mx_formats/nvfp4_tensor.py`:
//! `per_tensor_amax_to_scale`, `nvfp4_quantize`, `NVFP4Tensor.dequantize`),
//! every step an `f32` operation in this order:
//!
//! 1. tensor scale `t = amax(|x|) / 2688` (`2688 = 448 · 6`, the largest
//!    E4M3 scale times the largest element), only with `tensor_scale`;
//! 2. for each block, `b = amax_block(|x|) / 6`, divided by `t` when
//!    two-level, clamped to `[2^-6, 448]` and rounded to E4M3 (nearest-even):
//!    the block scale `s`;
//! 3. each element `x · r` with `r = (1 / t) / s` (`1 / s` single-level), a
//!    product by the reciprocal as torchao and NVIDIA's kernels compute it,
//!    clamped to `±6` and rounded onto E2M1 with the quantizer's rounding;
//! 4. the value returned is `e · (t · s)` (`e · s` single-level).
//!
//! Where torchao's arithmetic breaks down swalp defines the result:
//!
//! - a block holding a NaN or an infinity becomes all NaN, and with
//!   `tensor_scale` the whole tensor does (the tensor scale is not finite).
//!   torchao agrees except for an infinity in single-level scaling, which it
//!   turns into a finite block (the infinity clamps to 6 · 448);
//! - with `tensor_scale`, a tensor whose largest magnitude is below
//!   `2688 · 2^-122 ≈ 2^-110.6` (zeros included), where `(1 / t) / s` can
//!   overflow, becomes signed zeros; torchao returns NaN for its zeros
//!   (`0 · ∞`, or `0 / 0` for a tensor of zeros).
//!
//! Blocks are 16 consecutive elements along `dim` (`block = "1d"`), or
//! 16 × 16 tiles over `dim` and the dimension before it (`block = "2d"`,
//! NVIDIA's choice for weights: a matrix and its transpose are cut into the
//! same blocks, so the forward and backward GEMMs see the same values). The
//! lengths must be multiples of 16, as on the hardware: a tensor without
//! whole blocks is an error naming its shape, or, with
//! `unaligned = "keep"`, is left in full precision (as NVIDIA's recipe
//! keeps biases, norms and layers whose sizes do not fit in BF16).
//!
//! `dim = 1` blocks convolution tensors (`[N, C, H, W]` activations and
//! `[O, I, kh, kw]` weights) along their channels, the reduction dimension
//! of the convolution's GEMM in the channels-last layout hardware uses; for
//! linear layers it is the last dimension, the default.
//!
//! ```
//! use swalp_core::{tch::Tensor, QuantRng, Quantizer, NumberFormat};
//! use swalp_formats as _; // registers the built-in formats
//! let q: Quantizer = r#"{ format = "nvfp4", tensor_scale = false }"#.parse().unwrap();
//! assert_eq!(q.format().bits_per_value(), 4.5);
//! // One block, maximum 3: b = 3 / 6 = 0.5 (an E4M3 value), r = 2; 0.7 · 2 =
//! // 1.4 rounds to 1.5 on E2M1, 0.2 · 2 = 0.4 to 0.5; then times 0.5.
//! let mut x = vec![0.0f32; 16];
//! x[..3].copy_from_slice(&[3.0, 0.7, 0.2]);
//! let y = q.quantize(&Tensor::from_slice(&x), &mut QuantRng::new(0)).unwrap();
//! assert_eq!(Vec::<f32>::try_from(&y).unwrap()[..3], [3.0, 0.75, 0.25]);
//! ```

use swalp_core::{
    block::{resolve_dim, Block},
    Backend, Error, FormatFactory, NumberFormat, ParamInfo, Params, Result, SpecError,
};

use crate::float::FloatFormat;
use crate::mx::MxElem;

/// Elements per block along each blocked dimension.
pub const BLOCK: usize = 16;
/// The largest element, E2M1's max normal.
pub const ELEM_MAX: f32 = 6.0;
/// The largest block scale, E4M3's max normal.
pub const SCALE_MAX: f32 = 448.0;
/// The smallest block scale, E4M3's smallest normal (torchao's `E4M3_EPS`).
pub const SCALE_MIN: f32 = 0.015625;
/// Bits of an element.
pub const ELEM_BITS: u32 = 4;
/// Bits of a block scale.
pub const SCALE_BITS: u32 = 8;
/// Bits of the tensor scale.
pub const TENSOR_SCALE_BITS: u32 = 32;

/// How blocks are laid out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Nvfp4Block {
    /// 16 consecutive elements along `dim`.
    #[default]
    OneD,
    /// 16 × 16 tiles over `dim` and the dimension before it.
    TwoD,
}

impl Nvfp4Block {
    /// The spec names, in the order of the variants.
    pub const NAMES: [&'static str; 2] = ["1d", "2d"];

    /// The spec name.
    pub fn name(self) -> &'static str {
        match self {
            Nvfp4Block::OneD => "1d",
            Nvfp4Block::TwoD => "2d",
        }
    }
}

/// What a tensor without whole blocks gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Unaligned {
    /// An error naming the shape.
    #[default]
    Error,
    /// Left in full precision.
    Keep,
}

impl Unaligned {
    /// The spec names, in the order of the variants.
    pub const NAMES: [&'static str; 2] = ["error", "keep"];

    /// The spec name.
    pub fn name(self) -> &'static str {
        match self {
            Unaligned::Error => "error",
            Unaligned::Keep => "keep",
        }
    }
}

/// The per-block factors of a scaled float format (NVFP4 here, and scaled
/// FP8, which shares its kernels): elements are `round(clamp(x · mul))` and
/// values `element · dequant`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BlockScales {
    /// The factor taking a value onto the element grid: `(1 / t) / s`.
    pub mul: f32,
    /// The factor taking an element back: `t · s`.
    pub dequant: f32,
}

/// The NVFP4 format; see the [module documentation](self).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nvfp4Format {
    tensor_scale: bool,
    block: Nvfp4Block,
    dim: i64,
    unaligned: Unaligned,
}

impl Nvfp4Format {
    /// NVFP4 with or without the tensor scale, blocks laid out as `block`
    /// along `dim` (negative counts from the end), unaligned tensors refused.
    pub fn new(tensor_scale: bool, block: Nvfp4Block, dim: i64) -> Result<Self, SpecError> {
        DIM.check(&dim.into())?;
        Ok(Nvfp4Format {
            tensor_scale,
            block,
            dim,
            unaligned: Unaligned::Error,
        })
    }

    /// This format with another rule for tensors without whole blocks.
    pub fn with_unaligned(mut self, unaligned: Unaligned) -> Self {
        self.unaligned = unaligned;
        self
    }

    /// Whether the tensor scale is used (two-level scaling).
    pub fn tensor_scale(&self) -> bool {
        self.tensor_scale
    }

    /// The block layout kind.
    pub fn block_kind(&self) -> Nvfp4Block {
        self.block
    }

    /// The blocked dimension as given.
    pub fn dim(&self) -> i64 {
        self.dim
    }

    /// What a tensor without whole blocks gets.
    pub fn unaligned(&self) -> Unaligned {
        self.unaligned
    }

    /// The element type, E2M1 saturating at 6.
    pub fn elem(&self) -> FloatFormat {
        MxElem::Fp4E2m1
            .float()
            .expect("E2M1 is a float element type")
    }

    /// The tensor scale of a tensor whose largest magnitude is `amax`:
    /// `amax / 2688` in `f32`.
    ///
    /// ```
    /// use swalp_formats::Nvfp4Format;
    /// assert_eq!(Nvfp4Format::tensor_scale_of(2688.0), 1.0);
    /// ```
    pub fn tensor_scale_of(amax: f32) -> f32 {
        amax / (SCALE_MAX * ELEM_MAX)
    }

    /// The tensor scale of a tensor whose largest magnitude is `amax`, or
    /// `None` when the tensor becomes zeros: `amax` so small that a block's
    /// `(1 / t) / s` could overflow `f32` (see the [module documentation](self)).
    /// `amax` must be finite.
    ///
    /// ```
    /// use swalp_formats::Nvfp4Format;
    /// assert_eq!(Nvfp4Format::usable_tensor_scale(2688.0), Some(1.0));
    /// assert_eq!(Nvfp4Format::usable_tensor_scale(0.0), None);
    /// assert_eq!(Nvfp4Format::usable_tensor_scale(1e-34), None);
    /// ```
    pub fn usable_tensor_scale(amax: f32) -> Option<f32> {
        let t = Self::tensor_scale_of(amax);
        ((1.0 / t) / SCALE_MIN).is_finite().then_some(t)
    }

    /// The factors of a block whose largest magnitude is `amax`, given the
    /// tensor scale `t` when two-level; torchao's `f32` arithmetic.
    ///
    /// ```
    /// use swalp_formats::{nvfp4::BlockScales, Nvfp4Format};
    /// // 5 / 6 = 0.8333 rounds to 0.8125 on E4M3 (3 mantissa bits).
    /// let s = Nvfp4Format::block_scales(5.0, None);
    /// assert_eq!(s, BlockScales { mul: 1.0 / 0.8125, dequant: 0.8125 });
    /// // Two-level: 5 / 6 / 0.01 = 83.33 rounds to 80 (step 8 in [64, 128)).
    /// let s = Nvfp4Format::block_scales(5.0, Some(0.01));
    /// assert_eq!(s.dequant, 0.01 * 80.0);
    /// assert_eq!(s.mul, (1.0 / 0.01) / 80.0);
    /// ```
    #[inline(always)]
    pub fn block_scales(amax: f32, tensor: Option<f32>) -> BlockScales {
        let b = amax / ELEM_MAX;
        match tensor {
            None => {
                let s = e4m3_nearest(b.clamp(SCALE_MIN, SCALE_MAX));
                BlockScales {
                    mul: 1.0 / s,
                    dequant: s,
                }
            }
            Some(t) => {
                let s = e4m3_nearest((b / t).clamp(SCALE_MIN, SCALE_MAX));
                BlockScales {
                    mul: (1.0 / t) / s,
                    dequant: t * s,
                }
            }
        }
    }

    /// The blocks of a tensor of `shape`, or `None` when the tensor has no
    /// whole blocks and the format keeps such tensors in full precision;
    /// otherwise an error naming the shape.
    ///
    /// ```
    /// use swalp_core::{block::Block, Backend};
    /// use swalp_formats::{nvfp4::{Nvfp4Block, Unaligned}, Nvfp4Format};
    /// let f = Nvfp4Format::new(true, Nvfp4Block::TwoD, -1)?;
    /// assert_eq!(
    ///     f.blocks(&[32, 48], Backend::Auto)?,
    ///     Some(Block::Tiles { size: [16, 16], dims: [0, 1] })
    /// );
    /// let err = f.blocks(&[10, 48], Backend::Auto).unwrap_err().to_string();
    /// assert!(err.contains("[10, 48]"), "{err}");
    /// assert_eq!(f.with_unaligned(Unaligned::Keep).blocks(&[10, 48], Backend::Auto)?, None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn blocks(&self, shape: &[usize], backend: Backend) -> Result<Option<Block>> {
        match self.aligned_block(shape) {
            Ok(block) => Ok(Some(block)),
            Err(_) if self.unaligned == Unaligned::Keep => Ok(None),
            Err(reason) => Err(Error::Unsupported {
                format: "nvfp4".into(),
                backend,
                reason: format!(
                    "{reason}; set unaligned = \"keep\" to leave such tensors in full precision"
                ),
            }),
        }
    }

    /// Whether a tensor of `shape` is left in full precision: it has no
    /// whole blocks and the format keeps such tensors (what
    /// [`NumberFormat::keeps`] returns, so that a quantizer's random
    /// Hadamard transform skips it too).
    ///
    /// ```
    /// use swalp_formats::{nvfp4::{Nvfp4Block, Unaligned}, Nvfp4Format};
    /// let f = Nvfp4Format::new(true, Nvfp4Block::OneD, 1)?.with_unaligned(Unaligned::Keep);
    /// assert!(f.keeps_shape(&[32, 3, 5, 5]) && f.keeps_shape(&[32]));
    /// assert!(!f.keeps_shape(&[32, 16, 5, 5]));
    /// # Ok::<(), swalp_core::SpecError>(())
    /// ```
    pub fn keeps_shape(&self, shape: &[usize]) -> bool {
        self.unaligned == Unaligned::Keep && self.aligned_block(shape).is_err()
    }

    /// The blocks of a tensor of `shape`, or why it has no whole blocks.
    fn aligned_block(&self, shape: &[usize]) -> std::result::Result<Block, String> {
        let dim = resolve_dim(self.dim, shape).map_err(|_| {
            format!(
                "blocks run along dimension {}, which a tensor of shape {shape:?} does not have",
                self.dim
            )
        })?;
        let fits = |d: usize| shape[d] % BLOCK == 0;
        match self.block {
            Nvfp4Block::OneD if fits(dim) => Ok(Block::Chunks { size: BLOCK, dim }),
            Nvfp4Block::OneD => Err(format!(
                "blocks of {BLOCK} along dimension {} need its length to be a multiple of \
                 {BLOCK}; a tensor of shape {shape:?} has {}",
                self.dim, shape[dim]
            )),
            Nvfp4Block::TwoD if dim > 0 && fits(dim) && fits(dim - 1) => Ok(Block::Tiles {
                size: [BLOCK, BLOCK],
                dims: [dim - 1, dim],
            }),
            Nvfp4Block::TwoD => Err(format!(
                "{BLOCK} x {BLOCK} tiles over dimension {} and the one before it need both \
                 lengths to be multiples of {BLOCK}; a tensor of shape {shape:?} has no such pair",
                self.dim
            )),
        }
    }

    /// Storage bits of a tensor of `numel` values, per value: 4-bit
    /// elements, an 8-bit scale per 16 (1-D) or 256 (2-D) values, and the
    /// 32-bit tensor scale amortised over the tensor.
    ///
    /// ```
    /// use swalp_formats::{nvfp4::Nvfp4Block, Nvfp4Format};
    /// let f = Nvfp4Format::new(true, Nvfp4Block::OneD, -1)?;
    /// assert_eq!(f.bits_for_numel(1024), 4.5 + 32.0 / 1024.0);
    /// # Ok::<(), swalp_core::SpecError>(())
    /// ```
    pub fn bits_for_numel(&self, numel: usize) -> f64 {
        let tensor = if self.tensor_scale && numel > 0 {
            f64::from(TENSOR_SCALE_BITS) / numel as f64
        } else {
            0.0
        };
        self.value_bits() + tensor
    }
}

/// `x` rounded to FP8 E4M3 with ties to even, for `x` in `[2^-6, 448]`
/// (E4M3's normal range, where the step is `2^(e - 3)` in binade `e`):
/// exact in `f32`, as torch's cast to `float8_e4m3fn` rounds it.
///
/// ```
/// use swalp_formats::nvfp4::e4m3_nearest;
/// assert_eq!(e4m3_nearest(0.8333333), 0.8125);
/// assert_eq!(e4m3_nearest(1.0625), 1.0); // a tie goes to the even 1.0
/// assert_eq!(e4m3_nearest(440.0), 448.0);
/// ```
#[inline(always)]
pub fn e4m3_nearest(x: f32) -> f32 {
    // The step 2^(e - 3) of x's binade e and its inverse, from the exponent
    // bits (x is normal): x · 2^(3 - e) is exact, as x / 2^(e - 3) is.
    let biased = (x.to_bits() >> 23) & 0xff;
    let step = f32::from_bits((biased.wrapping_sub(3) & 0xff) << 23);
    let inverse = f32::from_bits((254u32.wrapping_sub(biased).wrapping_add(3) & 0xff) << 23);
    // x · 2^(3 - e) is in [8, 16): adding and removing 2^23 rounds it to an
    // integer, ties to even, in two exact-by-IEEE operations that vectorise
    // (`round_ties_even` may be a call into libm).
    const SHIFT: f32 = 8_388_608.0;
    ((x * inverse + SHIFT) - SHIFT) * step
}

impl Nvfp4Format {
    /// The format's own spec keys and values, written from their
    /// declarations: what [`NumberFormat::params`] returns.
    pub(crate) fn spec_params(&self) -> toml::Table {
        let mut t = toml::Table::new();
        TENSOR_SCALE.put(&mut t, self.tensor_scale);
        BLOCK_KIND.put(&mut t, self.block.name());
        DIM.put(&mut t, self.dim);
        UNALIGNED.put(&mut t, self.unaligned.name());
        t
    }

    /// Storage bits per value without the tensor scale (whose share depends
    /// on the tensor's size): what [`NumberFormat::bits_per_value`] returns.
    pub(crate) fn value_bits(&self) -> f64 {
        let per_scale = match self.block {
            Nvfp4Block::OneD => BLOCK,
            Nvfp4Block::TwoD => BLOCK * BLOCK,
        };
        f64::from(ELEM_BITS) + f64::from(SCALE_BITS) / per_scale as f64
    }
}

/// `tensor_scale`: two-level scaling.
pub const TENSOR_SCALE: ParamInfo = ParamInfo::boolean(
    "tensor_scale",
    true,
    "an FP32 scale per tensor (amax / 2688) under the E4M3 block scales; false: single-level",
);

/// `block`: 1-D blocks or 2-D tiles.
pub const BLOCK_KIND: ParamInfo = ParamInfo::choice(
    "block",
    &Nvfp4Block::NAMES,
    "\"1d\": 16 consecutive elements along dim; \"2d\": 16 x 16 tiles over dim and the \
     dimension before it (NVIDIA's weights)",
)
.default_str("1d");

/// `dim`: the blocked dimension.
pub const DIM: ParamInfo = ParamInfo::int(
    "dim",
    -64,
    63,
    "the dimension blocks run along (negative counts from the end); 1 blocks convolution \
     tensors along their channels",
)
.default_int(-1);

/// `unaligned`: what tensors without whole blocks get.
pub const UNALIGNED: ParamInfo = ParamInfo::choice(
    "unaligned",
    &Unaligned::NAMES,
    "a tensor whose blocked lengths are not multiples of 16 (or that lacks the dimensions): \
     an error, or kept in full precision",
)
.default_str("error");

const PARAMS: &[ParamInfo] = &[TENSOR_SCALE, BLOCK_KIND, DIM, UNALIGNED];

fn build(p: &mut Params<'_>) -> Result<Box<dyn NumberFormat>, SpecError> {
    let tensor_scale = p.boolean(&TENSOR_SCALE)?;
    let block = match p.choice(&BLOCK_KIND)? {
        "2d" => Nvfp4Block::TwoD,
        _ => Nvfp4Block::OneD,
    };
    let unaligned = match p.choice(&UNALIGNED)? {
        "keep" => Unaligned::Keep,
        _ => Unaligned::Error,
    };
    Ok(Box::new(
        Nvfp4Format::new(tensor_scale, block, p.int(&DIM)?)?.with_unaligned(unaligned),
    ))
}

swalp_core::register_format!(FormatFactory {
    name: "nvfp4",
    summary: "NVIDIA NVFP4: 16-element FP4 E2M1 blocks with an E4M3 scale each and an FP32 \
              scale per tensor (1-D blocks or 16 x 16 tiles)",
    params: PARAMS,
    build,
});
