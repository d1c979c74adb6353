//! Native CPU kernels: fused loops over contiguous `f32` slices.
//!
//! Each kernel is compiled once per rounding mode ([`with_round_rule!`]),
//! split into aligned chunks across threads ([`for_each_chunk`]) and runs a
//! branch-free element function in a vectorised loop ([`map_simd`]). Block
//! formats walk each chunk in runs of consecutive elements that share a
//! block, so the block lookup happens once per run, not per element.

use swalp_core::{
    block::{Block, BlockLayout},
    format::{NearestGrid, ValueRounding},
    kernel::native::{
        abs_bits_nan_inf, abs_bits_nan_zero, exponent, for_each_chunk, grid_element, grid_value,
        map_runs_scaled_simd, map_runs_simd, map_simd, map_values, max_simd, pow2, segment,
        ElementFn, Grid, RunFn,
    },
    rng::StreamSegment,
    rounding::RoundRule,
    with_round_rule, RandomStream, Result, Rounding,
};

use crate::{nvfp4::BlockScales, BlockFloat, FixedPoint, FloatFormat};

/// Fixed point: round on the `2^-fl` grid, clamp the integer.
pub fn fixed(
    format: &FixedPoint,
    x: &[f32],
    _shape: &[usize],
    out: &mut [f32],
    rounding: Rounding,
    random: Option<RandomStream>,
) -> Result<()> {
    let FixedGrid {
        scale,
        step,
        lo,
        hi,
    } = FixedGrid::of(format);
    with_round_rule!(rounding, rule => {
        for_each_chunk(x, out, |start, inp, outp| {
            let grid = Grid { rule, segment: segment(random, start), scale, step, lo, hi };
            map_simd(inp, outp, start as u32, grid);
        })
    });
    Ok(())
}

/// Floating point: round on the grid of each value's binade, then apply the
/// format's overflow rule.
pub fn float(
    format: &FloatFormat,
    x: &[f32],
    _shape: &[usize],
    out: &mut [f32],
    rounding: Rounding,
    random: Option<RandomStream>,
) -> Result<()> {
    let params = FloatParams::of(format, rounding);
    let params32 = Float32Params::new(&params);
    with_round_rule!(rounding, rule => {
        match params32.as_ref().filter(|_| is_ieee_op(&rule)) {
            Some(p) => for_each_chunk(x, out, |_, inp, outp| {
                map_simd(inp, outp, 0, Float32Element { rule, p: *p });
            }),
            None => for_each_chunk(x, out, |start, inp, outp| {
                let f = FloatElement { rule, segment: segment(random, start), p: params };
                map_simd(inp, outp, start as u32, f);
            }),
        }
    });
    Ok(())
}

fn is_ieee_op<R: RoundRule>(_: &R) -> bool {
    R::IEEE_OP
}

/// [`FloatParams`] for formats whose rounding is exact in `f32` arithmetic
/// under a [`RoundRule::IEEE_OP`] rule: every step `2^k` (and `2^-k`) a
/// normal `f32`, no scaling that could overflow (`emax > man`) and none that
/// scales tiny values down (steps below `2^emin` at most 1). Then
/// `x · 2^-k` is exact, rounding it is one exact operation, and `y · 2^k`
/// is exact or overflows to an infinity that the overflow rule replaces just
/// as it replaces the `f64` result beyond the largest value. Common 16- and
/// 8-bit formats qualify (`bfloat16`, whose subnormal steps reach `2^-133`,
/// does not).
#[derive(Clone, Copy)]
struct Float32Params {
    max: f32,
    overflow: [f32; 2],
    infinity: [f32; 2],
    emin: i32,
    emax: i32,
    man: i32,
    below_emin: i32,
}

impl Float32Params {
    fn new(p: &FloatParams) -> Option<Self> {
        let kmin = p.below_emin.min(p.emin - p.man);
        let kmax = p.emax - p.man;
        let exact = kmin >= -126 && (1..=126).contains(&kmax) && p.below_emin <= 0;
        exact.then(|| Float32Params {
            max: p.max as f32,
            overflow: p.overflow.map(|v| v as f32),
            infinity: p.infinity.map(|v| v as f32),
            emin: p.emin,
            emax: p.emax,
            man: p.man,
            below_emin: p.below_emin,
        })
    }
}

/// `2^k` as an `f32`, for `k` in `-126..=127`.
#[inline(always)]
fn pow2_f32(k: i32) -> f32 {
    f32::from_bits(((k + 127) as u32) << 23)
}

#[derive(Clone, Copy)]
struct Float32Element<R> {
    rule: R,
    p: Float32Params,
}

impl<R: RoundRule> ElementFn for Float32Element<R> {
    /// [`float_element`] in `f32` (see [`Float32Params`]): the same result.
    #[inline(always)]
    fn apply(&self, _: u32, v: f32) -> f32 {
        float32_element(self.rule, &self.p, v)
    }
}

/// [`float_element`] in `f32` for a rule that is one IEEE operation
/// ([`RoundRule::IEEE_OP`]) and a format whose
/// scaling is exact in `f32` ([`Float32Params`]): the same result with twice
/// the vector lanes.
#[inline(always)]
fn float32_element<R: RoundRule>(rule: R, p: &Float32Params, v: f32) -> f32 {
    let e = (((v.to_bits() >> 23) & 0xff) as i32 - 127).min(p.emax);
    let k = if e >= p.emin { e - p.man } else { p.below_emin };
    let y = rule.round_f32(v * pow2_f32(-k)) * pow2_f32(k);
    let negative = v < 0.0;
    let overflow = if negative {
        p.overflow[1]
    } else {
        p.overflow[0]
    };
    let infinity = if negative {
        p.infinity[1]
    } else {
        p.infinity[0]
    };
    let y = if y.abs() > p.max { overflow } else { y };
    let y = if v.is_infinite() { infinity } else { y };
    if v.is_nan() {
        f32::from_bits(v.to_bits() | 0x0040_0000)
    } else {
        y
    }
}

#[derive(Clone, Copy)]
struct FloatElement<R> {
    rule: R,
    segment: StreamSegment,
    p: FloatParams,
}

impl<R: RoundRule> ElementFn for FloatElement<R> {
    #[inline(always)]
    fn apply(&self, lo: u32, v: f32) -> f32 {
        float_element(self.rule, &self.p, v, self.rule.draw(self.segment, lo))
    }
}

/// A float format with the overflow values of one rounding: what
/// [`float_element`] (and the CUDA kernels' `swalp_float_element`) reads.
#[derive(Clone, Copy)]
pub(super) struct FloatParams {
    pub(super) max: f64,
    pub(super) overflow: [f64; 2],
    pub(super) infinity: [f64; 2],
    pub(super) emin: i32,
    pub(super) emax: i32,
    pub(super) man: i32,
    pub(super) below_emin: i32,
}

impl FloatParams {
    pub(super) fn of(format: &FloatFormat, rounding: Rounding) -> Self {
        FloatParams {
            max: format.max_value(),
            overflow: [
                format.overflow_value(false, rounding),
                format.overflow_value(true, rounding),
            ],
            infinity: [format.infinity_value(false), format.infinity_value(true)],
            emin: format.emin(),
            emax: format.emax(),
            man: format.man_bits() as i32,
            // The step below 2^emin (see `FloatFormat::step_exponent`).
            below_emin: if format.has_subnormals() {
                format.emin() - format.man_bits() as i32
            } else {
                format.emin()
            },
        }
    }
}

/// One element of [`float`], branch-free: every case is computed and the
/// right one selected ([`float_value`]); NaN is quieted (as the tensor
/// kernel's round trip through f64 does).
#[inline(always)]
fn float_element<R: RoundRule>(rule: R, p: &FloatParams, v: f32, random: u32) -> f32 {
    let y = float_value(rule, p, f64::from(v), random);
    if v.is_nan() {
        f32::from_bits(v.to_bits() | 0x0040_0000)
    } else {
        y as f32
    }
}

/// Rounds the `f64` value `x`: on the grid of its binade, then the format's
/// overflow rule. Zeros come through the rounding unchanged (every rule
/// keeps a signed zero), infinities become the format's infinity.
#[inline(always)]
fn float_value<R: RoundRule>(rule: R, p: &FloatParams, x: f64, random: u32) -> f64 {
    // The binade from the exponent field: zeros and f64 subnormals read as
    // -1023, below every format's emin as their true exponents are;
    // infinities and NaN read as 1024, at least emax. So this is the step
    // of `FloatFormat::step_exponent(exponent(x))`.
    let e = exponent(x).min(p.emax);
    let k = if e >= p.emin { e - p.man } else { p.below_emin };
    let y = rule.round(x * pow2(-k), random) * pow2(k);
    // The value of x's sign among two, by bit operations: a select here
    // compiles to vector gathers from the arrays, several times slower.
    // (The sign bit decides as `x < 0` would wherever the choice is used:
    // it differs only for -0 and NaN, which neither overflow nor are
    // infinite.)
    let sign = ((x.to_bits() as i64) >> 63) as u64;
    let by_sign = |[pos, neg]: [f64; 2]| {
        f64::from_bits(pos.to_bits() ^ (sign & (pos.to_bits() ^ neg.to_bits())))
    };
    let (overflow, infinity) = (by_sign(p.overflow), by_sign(p.infinity));
    let y = if y.abs() > p.max { overflow } else { y };
    if x.is_infinite() {
        infinity
    } else {
        y
    }
}

/// Floating point's [`ValueRounding`].
pub fn float_values(format: &FloatFormat, rounding: Rounding) -> Box<dyn ValueRounding> {
    let p = FloatParams::of(format, rounding);
    let grid =
        (rounding == Rounding::NearestEven && format.has_subnormals()).then(|| NearestGrid {
            man: Some(format.man_bits()),
            emax: p.emax,
            min_step: p.below_emin,
            hi: p.max,
            lo: -p.max,
            above: p.overflow[0],
            below: p.overflow[1],
            infinity: p.infinity,
        });
    with_round_rule!(rounding, rule => Box::new(FloatValues { rule, p, grid }) as Box<dyn ValueRounding>)
}

struct FloatValues<R> {
    rule: R,
    p: FloatParams,
    /// Under nearest-even with subnormals, [`float_value`]'s grid: its
    /// step `2^k` is `2^max(min(e, emax) − man, emin − man)`.
    grid: Option<NearestGrid>,
}

impl<R: RoundRule> ValueRounding for FloatValues<R> {
    fn round_values(&self, values: &mut [f64], random: Option<RandomStream>, first: u64) {
        // Local copies the loop keeps in registers (through `self` they
        // are loads, which the vectoriser turns into gathers).
        let (rule, p) = (self.rule, self.p);
        map_values(rule, values, random, first, move |x, d| {
            float_value(rule, &p, x, d)
        });
    }

    fn nearest_grid(&self) -> Option<NearestGrid> {
        self.grid
    }
}

/// Fixed point's [`ValueRounding`].
pub fn fixed_values(format: &FixedPoint, rounding: Rounding) -> Box<dyn ValueRounding> {
    let grid = FixedGrid::of(format);
    // [`grid_value`] clamps the rounded integer, so a clamping format's
    // grid stops at its range and keeps the ends.
    let nearest = (rounding == Rounding::NearestEven && format.clamps()).then(|| {
        let (lo, hi) = (grid.lo * grid.step, grid.hi * grid.step);
        NearestGrid {
            man: None,
            emax: 0,
            min_step: -format.fl(),
            hi,
            lo,
            above: hi,
            below: lo,
            infinity: [hi, lo],
        }
    });
    with_round_rule!(rounding, rule => Box::new(FixedValues { rule, grid, nearest }) as Box<dyn ValueRounding>)
}

struct FixedValues<R> {
    rule: R,
    grid: FixedGrid,
    nearest: Option<NearestGrid>,
}

impl<R: RoundRule> ValueRounding for FixedValues<R> {
    fn round_values(&self, values: &mut [f64], random: Option<RandomStream>, first: u64) {
        let (rule, g) = (self.rule, self.grid);
        map_values(rule, values, random, first, move |x, d| {
            grid_value(rule, x, d, g.scale, g.step, g.lo, g.hi)
        });
    }

    fn nearest_grid(&self) -> Option<NearestGrid> {
        self.nearest
    }
}

/// Fixed point's grid: `2^fl`, `2^-fl` and the integer range (unbounded
/// when the format does not clamp).
#[derive(Clone, Copy)]
struct FixedGrid {
    scale: f64,
    step: f64,
    lo: f64,
    hi: f64,
}

impl FixedGrid {
    fn of(format: &FixedPoint) -> Self {
        let k = -format.fl();
        let (lo, hi) = if format.clamps() {
            format.int_range()
        } else {
            (f64::NEG_INFINITY, f64::INFINITY)
        };
        FixedGrid {
            scale: pow2(-k),
            step: pow2(k),
            lo,
            hi,
        }
    }
}

/// Blocks up to this long that are runs of consecutive elements are rounded
/// in one visit (maximum, then elements, while the block is in cache); a
/// block that straddles two chunks has its maximum found by both, so longer
/// blocks take two passes instead.
const FUSE_MAX_RUN: usize = swalp_core::kernel::native::CHUNK;

/// What a block format does with its blocks, for [`blockwise`]: the
/// per-block value its maximum gives, and how elements of one block round.
trait BlockRounding: Sync {
    /// The per-block value (an exponent, a scale).
    type Scale: Copy + Send + Sync;

    /// The value of a block whose largest key is `max_bits`.
    fn scale(&self, max_bits: u32) -> Self::Scale;

    /// Rounds the run `inp` of one block, its first element `g`, into `outp`.
    fn round_run<R: RoundRule>(
        &self,
        rule: R,
        segment: StreamSegment,
        scale: Self::Scale,
        g: usize,
        inp: &[f32],
        outp: &mut [f32],
    );

    /// Rounds the single element `v` at index `g`.
    fn round_one<R: RoundRule>(
        &self,
        rule: R,
        segment: StreamSegment,
        scale: Self::Scale,
        g: usize,
        v: f32,
    ) -> f32;
}

/// The block kernels' driver: block maxima of `key`, then the rounding.
/// Blocks that are short runs of consecutive elements (one exponent per
/// slice along dimension 0, as the seed uses for weights; MX blocks along
/// the last dimension) are done one at a time in a single pass over memory;
/// other layouts take one pass for all maxima and one to round, run by run
/// or, for very short runs, element by element.
fn blockwise<B: BlockRounding, K: Fn(f32) -> u32 + Copy + Sync>(
    blocks: &B,
    layout: &BlockLayout,
    key: K,
    x: &[f32],
    out: &mut [f32],
    rounding: Rounding,
    random: Option<RandomStream>,
) {
    if layout.blocks_are_runs() && layout.typical_run() <= FUSE_MAX_RUN {
        // One visit per block: its maximum, then its elements, from cache.
        with_round_rule!(rounding, rule => {
            for_each_chunk(x, out, |start, inp, outp| {
                let seg = segment(random, start);
                let end = start + inp.len();
                let mut g = start;
                while g < end {
                    // The whole block, which may reach into other chunks.
                    let block = layout.run_start(g)..layout.run_end(g).min(x.len());
                    let scale = blocks.scale(max_simd(&x[block.clone()], key));
                    let stop = block.end.min(end);
                    let part = g - start..stop - start;
                    blocks.round_run(rule, seg, scale, g, &inp[part.clone()], &mut outp[part]);
                    g = stop;
                }
            })
        });
        return;
    }
    let runs = layout.has_long_runs();
    let scales: Vec<B::Scale> = layout
        .maxima(x, key)
        .into_iter()
        .map(|m| blocks.scale(m))
        .collect();
    with_round_rule!(rounding, rule => {
        for_each_chunk(x, out, |start, inp, outp| {
            let seg = segment(random, start);
            if runs {
                let mut i = 0;
                while i < inp.len() {
                    let g = start + i;
                    let end = (layout.run_end(g) - start).min(inp.len());
                    let scale = scales[layout.block_of(g)];
                    blocks.round_run(rule, seg, scale, g, &inp[i..end], &mut outp[i..end]);
                    i = end;
                }
            } else {
                for (j, (o, &v)) in outp.iter_mut().zip(inp).enumerate() {
                    let g = start + j;
                    *o = blocks.round_one(rule, seg, scales[layout.block_of(g)], g, v);
                }
            }
        })
    });
}

/// Block floating point: each block's step exponent from its largest
/// magnitude (NaN takes no part; |x| as f64 is exact, so this is the
/// maximum the tensor kernel finds), then the elements on that grid.
pub fn block(
    format: &BlockFloat,
    x: &[f32],
    shape: &[usize],
    out: &mut [f32],
    rounding: Rounding,
    random: Option<RandomStream>,
) -> Result<()> {
    let layout = format.layout(shape)?;
    blockwise(
        &format,
        &layout,
        abs_bits_nan_zero,
        x,
        out,
        rounding,
        random,
    );
    Ok(())
}

impl BlockRounding for &BlockFloat {
    type Scale = i32;

    fn scale(&self, max_bits: u32) -> i32 {
        self.step_exponent(self.shared_exponent(f64::from(f32::from_bits(max_bits))))
    }

    #[inline]
    fn round_run<R: RoundRule>(
        &self,
        rule: R,
        segment: StreamSegment,
        k: i32,
        g: usize,
        inp: &[f32],
        outp: &mut [f32],
    ) {
        let (lo, hi) = self.int_range_at(k);
        let grid = Grid {
            rule,
            segment,
            scale: pow2(-k),
            step: pow2(k),
            lo,
            hi,
        };
        map_simd(inp, outp, g as u32, grid);
    }

    #[inline]
    fn round_one<R: RoundRule>(
        &self,
        rule: R,
        segment: StreamSegment,
        k: i32,
        g: usize,
        v: f32,
    ) -> f32 {
        let (lo, hi) = self.int_range_at(k);
        let r = rule.draw(segment, g as u32);
        grid_element(rule, v, r, pow2(-k), pow2(k), lo, hi)
    }
}

/// OCP MX: each block's scale from its largest magnitude (a NaN or infinity
/// makes its block non-finite: all NaN), then each element rounded on its
/// block's scaled element grid and clamped to the element's max normal.
pub fn mx(
    format: &crate::mx::MxFormat,
    x: &[f32],
    shape: &[usize],
    out: &mut [f32],
    rounding: Rounding,
    random: Option<RandomStream>,
) -> Result<()> {
    let layout = format.layout(shape, swalp_core::Backend::Native)?;
    let elem = format.elem();
    let blocks = MxBlocks {
        format,
        params: MxParams {
            max: elem.max_value(),
            emin: elem.emin(),
            emax: elem.emax(),
            man: elem.man_bits() as i32,
        },
    };
    blockwise(&blocks, &layout, abs_bits_nan_inf, x, out, rounding, random);
    Ok(())
}

/// An MX format with its element parameters, as [`BlockRounding`].
struct MxBlocks<'a> {
    format: &'a crate::mx::MxFormat,
    params: MxParams,
}

impl BlockRounding for MxBlocks<'_> {
    /// The exponent of the block's scale; `None` for a non-finite block.
    type Scale = Option<i32>;

    fn scale(&self, max_bits: u32) -> Option<i32> {
        self.format
            .shared_exponent(f64::from(f32::from_bits(max_bits)))
    }

    #[inline]
    fn round_run<R: RoundRule>(
        &self,
        rule: R,
        segment: StreamSegment,
        s: Option<i32>,
        g: usize,
        inp: &[f32],
        outp: &mut [f32],
    ) {
        mx_run(rule, segment, &self.params, s, g, inp, outp);
    }

    #[inline]
    fn round_one<R: RoundRule>(
        &self,
        rule: R,
        segment: StreamSegment,
        s: Option<i32>,
        g: usize,
        v: f32,
    ) -> f32 {
        match s {
            None => f32::NAN,
            Some(s) => {
                let limit = self.params.max * pow2(s);
                let r = rule.draw(segment, g as u32);
                mx_element(rule, &self.params, s, limit, v, r)
            }
        }
    }
}

/// Rounds the run `inp` (first element `g`) of a block with scale `2^s`
/// (`None`: a non-finite block, all NaN) into `outp`.
fn mx_run<R: RoundRule>(
    rule: R,
    segment: StreamSegment,
    p: &MxParams,
    s: Option<i32>,
    g: usize,
    inp: &[f32],
    outp: &mut [f32],
) {
    match s {
        None => outp.fill(f32::NAN),
        Some(s) => {
            let limit = p.max * pow2(s);
            let f = MxElement {
                rule,
                segment,
                p: *p,
                s,
                limit,
            };
            map_simd(inp, outp, g as u32, f);
        }
    }
}

#[derive(Clone, Copy)]
struct MxElement<R> {
    rule: R,
    segment: StreamSegment,
    p: MxParams,
    s: i32,
    limit: f64,
}

impl<R: RoundRule> ElementFn for MxElement<R> {
    #[inline(always)]
    fn apply(&self, lo: u32, v: f32) -> f32 {
        let random = self.rule.draw(self.segment, lo);
        mx_element(self.rule, &self.p, self.s, self.limit, v, random)
    }
}

#[derive(Clone, Copy)]
struct MxParams {
    max: f64,
    emin: i32,
    emax: i32,
    man: i32,
}

/// One element of [`mx`] in a block of scale `2^s`: the element grid around
/// `x / 2^s`, moved back by `2^s`; `x = 0` reads as exponent -1023, below
/// every binade, and stays a signed zero.
#[inline(always)]
fn mx_element<R: RoundRule>(rule: R, p: &MxParams, s: i32, limit: f64, v: f32, random: u32) -> f32 {
    let x = f64::from(v);
    let k = (exponent(x) - s).clamp(p.emin, p.emax) - p.man + s;
    let y = rule.round(x * pow2(-k), random) * pow2(k);
    let y = if y.abs() > limit {
        limit.copysign(y)
    } else {
        y
    };
    y as f32
}

/// NVFP4: the tensor scale from the tensor's largest magnitude (two-level),
/// each block's scales from its own, then every element multiplied onto the
/// E2M1 grid, rounded and multiplied back, in `f32` as torchao computes it
/// (see [`Nvfp4Format`](crate::Nvfp4Format)). A tensor without whole blocks
/// is copied when the format keeps such tensors.
pub fn nvfp4(
    format: &crate::Nvfp4Format,
    x: &[f32],
    shape: &[usize],
    out: &mut [f32],
    rounding: Rounding,
    random: Option<RandomStream>,
) -> Result<()> {
    let Some(block) = format.blocks(shape, swalp_core::Backend::Native)? else {
        out.copy_from_slice(x);
        return Ok(());
    };
    let layout = layout_of("nvfp4", &block, shape)?;
    let tensor = if format.tensor_scale() {
        let amax = f32::from_bits(BlockLayout::new(&Block::Tensor, shape).map_or(0, |l| {
            l.maxima(x, abs_bits_nan_inf).first().copied().unwrap_or(0)
        }));
        if !amax.is_finite() {
            out.fill(f32::NAN);
            return Ok(());
        }
        match crate::Nvfp4Format::usable_tensor_scale(amax) {
            Some(t) => Some(t),
            None => {
                for (o, &v) in out.iter_mut().zip(x) {
                    *o = v * 0.0;
                }
                return Ok(());
            }
        }
    } else {
        None
    };
    let blocks = ScaledBlocks::new(&format.elem(), rounding, |amax: f32| {
        crate::Nvfp4Format::block_scales(amax, tensor)
    });
    scaled_blockwise(&blocks, &layout, x, out, rounding, random);
    Ok(())
}

/// Scaled FP8: each group's multiplier from its largest magnitude, then
/// every element multiplied onto the FP8 grid, rounded and multiplied back
/// (see [`Fp8Scaled`](crate::Fp8Scaled)).
pub fn fp8_scaled(
    format: &crate::Fp8Scaled,
    x: &[f32],
    shape: &[usize],
    out: &mut [f32],
    rounding: Rounding,
    random: Option<RandomStream>,
) -> Result<()> {
    let layout = layout_of("fp8_scaled", &format.block(shape), shape)?;
    let blocks = ScaledBlocks::new(&format.elem_format(), rounding, |amax: f32| {
        format.block_scales(amax)
    });
    scaled_blockwise(&blocks, &layout, x, out, rounding, random);
    Ok(())
}

/// The layout of `block` over `shape` for the format named `format`.
fn layout_of(format: &str, block: &Block, shape: &[usize]) -> Result<BlockLayout> {
    BlockLayout::new(block, shape).map_err(|e| swalp_core::Error::Unsupported {
        format: format.into(),
        backend: swalp_core::Backend::Native,
        reason: e.to_string(),
    })
}

/// [`blockwise`] for scaled float blocks, with one vectorised loop per
/// chunk when the blocks are equal runs that tile the chunks (NVFP4's 16
/// along the last dimension).
fn scaled_blockwise<S: Fn(f32) -> BlockScales + Sync>(
    blocks: &ScaledBlocks<S>,
    layout: &BlockLayout,
    x: &[f32],
    out: &mut [f32],
    rounding: Rounding,
    random: Option<RandomStream>,
) {
    let chunk = swalp_core::kernel::native::CHUNK;
    if let Some(run) = layout.uniform_run().filter(|r| chunk % r == 0) {
        with_round_rule!(rounding, rule => {
            for_each_chunk(x, out, |start, inp, outp| {
                let runs = ScaledRuns { blocks, rule, segment: segment(random, start) };
                map_runs_simd(inp, outp, start as u32, run, abs_bits_nan_inf, &runs);
            })
        });
    } else if let Some(run) = layout.equal_runs().filter(|r| chunk % r == 0) {
        // Blocks of several runs (2-D tiles): every block's factors first,
        // then each chunk's runs with their block's factors.
        let scales: Vec<BlockScales> = layout
            .maxima(x, abs_bits_nan_inf)
            .into_iter()
            .map(|m| blocks.scale(m))
            .collect();
        with_round_rule!(rounding, rule => {
            for_each_chunk(x, out, |start, inp, outp| {
                let seg = segment(random, start);
                let runs: Vec<BlockScales> = (start..start + inp.len())
                    .step_by(run)
                    .map(|g| scales[layout.block_of(g)])
                    .collect();
                map_runs_scaled_simd(inp, outp, start as u32, run, &runs, |s| {
                    blocks.element(rule, seg, s)
                });
            })
        });
    } else {
        blockwise(blocks, layout, abs_bits_nan_inf, x, out, rounding, random);
    }
}

/// Scaled float blocks (NVFP4, scaled FP8): each block's factors from its
/// largest magnitude, then `round(clamp(x · mul, ±max)) · dequant` with the
/// element rounded onto the float grid of `elem`; a block holding a NaN or
/// an infinity gets NaN factors, so its elements become NaN.
struct ScaledBlocks<S> {
    elem: FloatParams,
    /// `elem` in `f32` arithmetic, for the IEEE rules (every element type
    /// of these formats qualifies).
    elem32: Option<Float32Params>,
    max: f32,
    scales: S,
}

impl<S: Fn(f32) -> BlockScales + Sync> ScaledBlocks<S> {
    fn new(elem: &FloatFormat, rounding: Rounding, scales: S) -> Self {
        let p = FloatParams::of(elem, rounding);
        ScaledBlocks {
            elem: p,
            elem32: Float32Params::new(&p),
            max: elem.max_value() as f32,
            scales,
        }
    }

    fn element<R: RoundRule>(
        &self,
        rule: R,
        segment: StreamSegment,
        s: BlockScales,
    ) -> ScaledElement<R> {
        ScaledElement {
            rule,
            segment,
            elem: self.elem,
            elem32: self.elem32,
            mul: s.mul,
            dequant: s.dequant,
            max: self.max,
        }
    }
}

impl<S: Fn(f32) -> BlockScales + Sync> BlockRounding for ScaledBlocks<S> {
    type Scale = BlockScales;

    #[inline(always)]
    fn scale(&self, max_bits: u32) -> BlockScales {
        // Branch-free, so that a loop over blocks vectorises: a non-finite
        // maximum gets NaN factors.
        let amax = f32::from_bits(max_bits);
        let s = (self.scales)(amax);
        let bad = !amax.is_finite();
        BlockScales {
            mul: if bad { f32::NAN } else { s.mul },
            dequant: if bad { f32::NAN } else { s.dequant },
        }
    }

    #[inline]
    fn round_run<R: RoundRule>(
        &self,
        rule: R,
        segment: StreamSegment,
        scale: BlockScales,
        g: usize,
        inp: &[f32],
        outp: &mut [f32],
    ) {
        map_simd(inp, outp, g as u32, self.element(rule, segment, scale));
    }

    #[inline]
    fn round_one<R: RoundRule>(
        &self,
        rule: R,
        segment: StreamSegment,
        scale: BlockScales,
        g: usize,
        v: f32,
    ) -> f32 {
        self.element(rule, segment, scale).apply(g as u32, v)
    }
}

/// The runs of one chunk of [`scaled_blockwise`], as [`RunFn`].
struct ScaledRuns<'a, S, R> {
    blocks: &'a ScaledBlocks<S>,
    rule: R,
    segment: StreamSegment,
}

impl<S: Fn(f32) -> BlockScales + Sync, R: RoundRule> RunFn for ScaledRuns<'_, S, R> {
    type Scale = BlockScales;
    type Element = ScaledElement<R>;

    #[inline(always)]
    fn scale(&self, max_key: u32) -> BlockScales {
        self.blocks.scale(max_key)
    }

    #[inline(always)]
    fn element(&self, scale: BlockScales) -> ScaledElement<R> {
        self.blocks.element(self.rule, self.segment, scale)
    }
}

/// `round(clamp(v · mul, ±max)) · dequant` in `f32`, the element on the
/// float grid of `elem`.
#[derive(Clone, Copy)]
struct ScaledElement<R> {
    rule: R,
    segment: StreamSegment,
    elem: FloatParams,
    elem32: Option<Float32Params>,
    mul: f32,
    dequant: f32,
    max: f32,
}

impl<R: RoundRule> ElementFn for ScaledElement<R> {
    #[inline(always)]
    fn apply(&self, lo: u32, v: f32) -> f32 {
        let t = (v * self.mul).clamp(-self.max, self.max);
        let random = self.rule.draw(self.segment, lo);
        let q = match self.elem32.filter(|_| R::IEEE_OP) {
            Some(p) => float32_element(self.rule, &p, t),
            None => float_element(self.rule, &self.elem, t, random),
        };
        q * self.dequant
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Overflow, Specials};

    fn params(format: &FloatFormat, rounding: Rounding) -> FloatParams {
        FloatParams::of(format, rounding)
    }

    /// The f32 path of `float` equals the f64 path on every 499th f32 bit
    /// pattern (NaNs, infinities, subnormals and both zeros included) for
    /// every format it applies to.
    #[test]
    fn float_in_f32_equals_float_in_f64() {
        let formats = [
            (5, 2, true, Specials::Ieee, Overflow::Infinity),
            (5, 2, false, Specials::None, Overflow::Saturate),
            (5, 10, true, Specials::Ieee, Overflow::Infinity),
            (4, 3, true, Specials::Fn, Overflow::Nan),
            (4, 3, false, Specials::Fn, Overflow::Saturate),
            (5, 2, true, Specials::Ieee, Overflow::Saturate),
            (3, 1, true, Specials::None, Overflow::Saturate),
            (6, 9, true, Specials::Ieee, Overflow::Infinity),
        ];
        let mut checked = 0;
        for (exp, man, subnormals, specials, overflow) in formats {
            let format = FloatFormat::new(exp, man, subnormals, specials, overflow).unwrap();
            for rounding in [
                Rounding::NearestEven,
                Rounding::TowardZero,
                Rounding::Down,
                Rounding::Up,
            ] {
                let p = params(&format, rounding);
                let Some(p32) = Float32Params::new(&p) else {
                    continue;
                };
                checked += 1;
                with_round_rule!(rounding, rule => {
                    let wide = FloatElement { rule, segment: StreamSegment::default(), p };
                    let narrow = Float32Element { rule, p: p32 };
                    for bits in (0..=u32::MAX).step_by(499).chain([0, 0x8000_0000, 0x7f80_0000]) {
                        let v = f32::from_bits(bits);
                        let (a, b) = (wide.apply(0, v), narrow.apply(0, v));
                        assert_eq!(a.to_bits(), b.to_bits(), "{format:?} {rounding} {v:e}");
                    }
                });
            }
        }
        assert!(
            checked >= 20,
            "only {checked} format/rounding pairs use the f32 path"
        );
    }

    #[test]
    fn bfloat16_keeps_the_f64_path() {
        let format = FloatFormat::new(8, 7, true, Specials::Ieee, Overflow::Infinity).unwrap();
        assert!(Float32Params::new(&params(&format, Rounding::NearestEven)).is_none());
    }
}
