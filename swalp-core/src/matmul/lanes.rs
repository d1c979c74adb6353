//! The native kernel's `f32` lanes: when every rounding of an
//! [`Accumulation`] is nearest-even onto a grid that a [`NearestGrid`]
//! describes and fits `f32`, and the operands are finite `f32`, a product
//! runs in AVX2 lanes of eight `f32` (twice the `f64` kernel's, with no
//! buffer between its roundings) and gives the same values:
//!
//! - **A product rounds once.** `fma(a, b, M) − M`, with
//!   `M = 1.5 · 2^(k+23)` for the step `2^k` of the product's binade, adds
//!   the exact product to a number whose last bit is worth `2^k`, so the
//!   fused multiply-add's one rounding (to nearest, ties to even) is the
//!   rounding to the grid. The binade comes from `a·b` rounded to `f32`,
//!   which can be a power of two its exact product is just below; both
//!   binades' steps then give that power of two.
//! - **An `f32` chunk sum** is `f32` addition, which the `f64` kernel's
//!   "add in `f64`, round to `f32`" equals for `f32` operands.
//! - **A sum of two grid values rounded to a grid** is formed in `f32` and
//!   rounded again. When both operands lie on the target grid and it has
//!   at most 11 bits, that equals rounding the exact sum once: double
//!   rounding through `q ≥ 2p + 1` bits is harmless for a sum of two
//!   `p`-bit numbers (Figueroa, 1995), and below the grid's smallest
//!   binade such sums are exact in `f32`. The kernel is chosen only where
//!   this holds, and `the_f32_lanes_equal_the_f64_kernel` checks it.
//!
//! Stochastic and directed roundings, scaled quantizers, exact products
//! and grids outside `f32` take the `f64` kernel.

use tch::{Kind, Tensor};

use super::Accumulation;
use crate::backend::Backend;
use crate::error::Result;
use crate::format::NearestGrid;
use crate::kernel::native::parallel_items;
use crate::quantizer::Quantizer;
use crate::rounding::Rounding;

/// Vectors of eight across one tile.
const VECTORS: usize = 2;
/// Output columns of one tile.
const COLS: usize = 8 * VECTORS;
/// Output rows of one tile.
const ROWS: usize = 3;
/// Output rows of one tile of exact products (twice the registers each).
const ROWS_EXACT: usize = 2;
/// Rows handed to a thread at a time (their tiles share each panel of `b`
/// while it is in cache).
const GROUP: usize = 16;
/// Products below this many multiply-adds run on the calling thread.
const PARALLEL_WORK: usize = 1 << 16;
/// The largest precision for which a sum formed in `f32` may be rounded
/// again (`24 ≥ 2·11 + 1`).
const SUM_PRECISION: u32 = 11;

/// One grid's constants for the vector rounding.
#[derive(Clone, Copy, Debug)]
struct Lanes {
    /// Added to the capped exponent field to give `M`'s bits.
    offset: i32,
    /// The exponent field of `2^emax` (0 for a fixed grid).
    emax_bits: i32,
    /// `M`'s bits for the smallest step.
    min_bits: i32,
    hi: f32,
    lo: f32,
    above: f32,
    below: f32,
    /// Whether the grid clamps (`above = hi`, `below = lo`).
    clamps: bool,
    /// What infinities become, when that is not `above` / `below`.
    infinity: Option<[f32; 2]>,
    precision: u32,
    min_step: i32,
}

/// `x` as an `f32` when it is one exactly (infinities and NaN included).
fn exact_f32(x: f64) -> Option<f32> {
    let y = x as f32;
    (x.is_nan() || f64::from(y) == x).then_some(y)
}

fn same(x: f32, y: f32) -> bool {
    x.to_bits() == y.to_bits()
}

impl Lanes {
    /// The grid of `q`, when the vector rounding can reproduce it: steps
    /// from `2^-100` to `2^100` (every `M` a normal `f32` and every product
    /// that rounds to a nonzero value normal), at least two bits below the
    /// `f32` significand, and values that are `f32`.
    fn of(q: &Quantizer) -> Option<Lanes> {
        if q.backend() == Backend::Tensor
            || q.scale().is_some()
            || q.rounding() != Rounding::NearestEven
        {
            return None;
        }
        let grid = q
            .format()
            .value_rounding(Rounding::NearestEven)?
            .nearest_grid()?;
        Lanes::of_grid(&grid)
    }

    fn of_grid(g: &NearestGrid) -> Option<Lanes> {
        let (min_step, max_step) = (g.min_step, g.max_step());
        if min_step < -100 || max_step > 100 || g.man.is_some_and(|m| m > 21) {
            return None;
        }
        // Beyond 2^(max_step + 22) the addition of M no longer rounds to
        // the grid; such values must lie beyond the clamp.
        let limit = f64::from(max_step + 22).exp2();
        if !(g.hi.abs() < limit && g.lo.abs() < limit) {
            return None;
        }
        let (hi, lo) = (exact_f32(g.hi)?, exact_f32(g.lo)?);
        let (above, below) = (exact_f32(g.above)?, exact_f32(g.below)?);
        let infinity = [exact_f32(g.infinity[0])?, exact_f32(g.infinity[1])?];
        let field = |e: i32| (e + 127) << 23;
        let (offset, emax_bits) = match g.man {
            Some(man) => (
                (23 - man as i32) << 23 | 0x0040_0000,
                field(g.emax.min(127)),
            ),
            None => (i32::MIN / 2, 0),
        };
        Some(Lanes {
            offset,
            emax_bits,
            min_bits: field(min_step + 23) | 0x0040_0000,
            hi,
            lo,
            above,
            below,
            clamps: same(above, hi) && same(below, lo),
            infinity: (!(same(infinity[0], above) && same(infinity[1], below))).then_some(infinity),
            precision: g.precision(),
            min_step,
        })
    }

    /// Whether every product of factors at most `a_max` and `b_max` in
    /// magnitude lies within the range of this floating grid, so that its
    /// rounding needs neither the exponent cap nor the limits (the product
    /// of two `f32` is exact in `f64`, and rounding is monotonic with the
    /// limits on the grid).
    fn holds_products_up_to(&self, a_max: f32, b_max: f32) -> bool {
        let largest = f64::from(a_max) * f64::from(b_max);
        let floating = self.emax_bits != 0;
        floating && largest <= f64::from(self.hi) && -largest >= f64::from(self.lo)
    }

    /// Whether every value of `self` (within `target`'s range) lies on
    /// `target`, and sums on `target` may be formed in `f32`.
    fn sums_onto(&self, target: &Lanes) -> bool {
        self.precision <= target.precision
            && self.min_step >= target.min_step
            && target.precision <= SUM_PRECISION
    }
}

/// How products are summed.
#[derive(Clone, Copy, Debug)]
enum Sum {
    /// `s ← Q_acc(s + p)` for every product.
    Running,
    /// Chunks of `len` summed in `f32` (`grid: None`) or on a grid.
    Chunks { len: usize, grid: Option<Lanes> },
}

/// An [`Accumulation`] the `f32` lanes compute.
#[derive(Clone, Copy, Debug)]
pub(super) struct LanesKernel {
    /// `None`: exact products, each added to an `f32` chunk sum in `f64`
    /// lanes (the only sum the lanes form for them).
    product: Option<Lanes>,
    sum: Sum,
    accumulator: Lanes,
}

impl LanesKernel {
    /// The lanes for `acc`, when its roundings allow them and the CPU has
    /// AVX2 and FMA.
    pub(super) fn new(acc: &Accumulation) -> Option<LanesKernel> {
        if !cpu_has_lanes() {
            return None;
        }
        let accumulator = Lanes::of(&acc.accumulator)?;
        let product = match &acc.product {
            Some(q) => Some(Lanes::of(q)?),
            // An exact product is not a value on a grid, so sums of it are
            // not covered by `sums_onto`; only the `f32` chunk sum, one
            // `f64` addition rounded to `f32`, is formed as the `f64`
            // kernel forms it.
            None if acc.chunk.is_some() && acc.chunk_accumulator.is_none() => None,
            None => return None,
        };
        let sums_onto = |target: &Lanes| product.map_or(true, |p| p.sums_onto(target));
        let sum = match acc.chunk {
            None => sums_onto(&accumulator).then_some(Sum::Running)?,
            Some(len) => {
                let grid = match &acc.chunk_accumulator {
                    None => None,
                    Some(q) => {
                        let grid = Lanes::of(q)?;
                        sums_onto(&grid).then_some(Some(grid))?
                    }
                };
                // The chunk's end adds two values on the accumulator grid.
                accumulator
                    .sums_onto(&accumulator)
                    .then_some(Sum::Chunks { len, grid })?
            }
        };
        Some(LanesKernel {
            product,
            sum,
            accumulator,
        })
    }

    /// `a · b` for `f32` operands `[m, k]` and `[k, n]`, as an `f32` tensor;
    /// `None` when an operand is not `f32` or holds a non-finite value
    /// (whose product the `f64` kernel treats differently).
    pub(super) fn matmul(&self, a: &Tensor, b: &Tensor) -> Result<Option<Tensor>> {
        if a.kind() != Kind::Float || b.kind() != Kind::Float {
            return Ok(None);
        }
        let (m, k) = (a.size()[0] as usize, a.size()[1] as usize);
        let n = b.size()[1] as usize;
        let a: Vec<f32> = Vec::try_from(&a.f_contiguous()?.f_view([-1])?)?;
        let b: Vec<f32> = Vec::try_from(&b.f_contiguous()?.f_view([-1])?)?;
        let (Some(a_max), Some(b_max)) = (largest_magnitude(&a), largest_magnitude(&b)) else {
            return Ok(None);
        };
        let route = match self.product {
            Some(p) if p.holds_products_up_to(a_max, b_max) => {
                Route::InRange(pack_panels(&b, k, n, |x| x))
            }
            Some(_) => Route::Limited(pack_panels(&b, k, n, |x| x)),
            None => Route::Exact(pack_panels(&b, k, n, f64::from)),
        };
        let mut out = vec![0f32; m * n];
        let out_ptr = SyncPtr(out.as_mut_ptr());
        parallel_items(
            m.div_ceil(GROUP),
            m * n * k >= PARALLEL_WORK,
            |first, last| {
                for group in first..last {
                    let rows = group * GROUP..m.min((group + 1) * GROUP);
                    // SAFETY: each group is handed to exactly one call and owns
                    // the rows `rows` of `out`, which outlives the loop.
                    let y = unsafe {
                        std::slice::from_raw_parts_mut(
                            out_ptr.get().add(rows.start * n),
                            rows.len() * n,
                        )
                    };
                    // SAFETY: `new` checked that the CPU has AVX2 and FMA.
                    unsafe {
                        match &route {
                            Route::InRange(panels) => {
                                self.rows::<true>(&a, panels, rows.start, (k, n), y)
                            }
                            Route::Limited(panels) => {
                                self.rows::<false>(&a, panels, rows.start, (k, n), y)
                            }
                            Route::Exact(panels) => {
                                self.rows_exact(&a, panels, rows.start, (k, n), y)
                            }
                        }
                    };
                }
            },
        );
        Ok(Some(Tensor::from_slice(&out).f_view([m as i64, n as i64])?))
    }
}

/// How one product runs: `b` packed for it, and the kind of tile.
enum Route {
    /// Rounded products, all within the product grid's range.
    InRange(Vec<f32>),
    /// Rounded products that may need the exponent cap and the limits.
    Limited(Vec<f32>),
    /// Exact products, in `f64` lanes.
    Exact(Vec<f64>),
}

/// The largest `|x|` of `xs` (0 when empty), or `None` when one is not
/// finite.
fn largest_magnitude(xs: &[f32]) -> Option<f32> {
    xs.iter()
        .try_fold(0f32, |max, x| x.is_finite().then(|| max.max(x.abs())))
}

fn cpu_has_lanes() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `b` `[k, n]` as panels of [`COLS`] columns, each `[k, COLS]` and
/// contiguous, the last padded with zeros, each element `convert`ed.
fn pack_panels<T: Copy + Default>(
    b: &[f32],
    k: usize,
    n: usize,
    convert: impl Fn(f32) -> T,
) -> Vec<T> {
    let panels = n.div_ceil(COLS);
    let mut packed = vec![T::default(); panels * k * COLS];
    for (p, panel) in packed.chunks_exact_mut(k * COLS).enumerate() {
        let (j0, j1) = (p * COLS, n.min((p + 1) * COLS));
        for (i, row) in panel.chunks_exact_mut(COLS).enumerate() {
            let source = &b[i * n + j0..i * n + j1];
            row.iter_mut()
                .zip(source)
                .for_each(|(x, b)| *x = convert(*b));
        }
    }
    packed
}

#[derive(Clone, Copy)]
struct SyncPtr(*mut f32);
// SAFETY: used only to hand disjoint row groups to parallel workers.
unsafe impl Send for SyncPtr {}
unsafe impl Sync for SyncPtr {}
impl SyncPtr {
    fn get(self) -> *mut f32 {
        self.0
    }
}

#[cfg(not(target_arch = "x86_64"))]
impl LanesKernel {
    unsafe fn rows<const IN_RANGE: bool>(
        &self,
        _: &[f32],
        _: &[f32],
        _: usize,
        _: (usize, usize),
        _: &mut [f32],
    ) {
        unreachable!("the f32 lanes are chosen only on x86_64 with AVX2 and FMA")
    }

    unsafe fn rows_exact(&self, _: &[f32], _: &[f64], _: usize, _: (usize, usize), _: &mut [f32]) {
        unreachable!("the f32 lanes are chosen only on x86_64 with AVX2 and FMA")
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{Lanes, LanesKernel, Sum, COLS, ROWS, ROWS_EXACT, VECTORS};

    const SIGN: i32 = i32::MIN;
    const EXPONENT: i32 = 0x7F80_0000;

    impl Lanes {
        /// `M = 1.5 · 2^(k+23)` for the step `2^k` of `x`'s binade.
        #[inline(always)]
        unsafe fn magic(&self, x: __m256) -> __m256 {
            let e = _mm256_and_si256(_mm256_castps_si256(x), _mm256_set1_epi32(EXPONENT));
            let e = _mm256_min_epi32(e, _mm256_set1_epi32(self.emax_bits));
            let bits = _mm256_max_epi32(
                _mm256_add_epi32(e, _mm256_set1_epi32(self.offset)),
                _mm256_set1_epi32(self.min_bits),
            );
            _mm256_castsi256_ps(bits)
        }

        /// `y` beyond `hi` / `lo` replaced (NaN stays).
        #[inline(always)]
        unsafe fn limit(&self, y: __m256) -> __m256 {
            let (hi, lo) = (_mm256_set1_ps(self.hi), _mm256_set1_ps(self.lo));
            if self.clamps {
                // `max(lo, y)` returns `y` when it is NaN.
                return _mm256_min_ps(hi, _mm256_max_ps(lo, y));
            }
            let y = _mm256_blendv_ps(
                y,
                _mm256_set1_ps(self.above),
                _mm256_cmp_ps::<_CMP_GT_OQ>(y, hi),
            );
            _mm256_blendv_ps(
                y,
                _mm256_set1_ps(self.below),
                _mm256_cmp_ps::<_CMP_LT_OQ>(y, lo),
            )
        }

        /// `M` for a product that lies within the grid's range on a
        /// floating grid: no exponent cap is needed.
        #[inline(always)]
        unsafe fn magic_in_range(&self, x: __m256) -> __m256 {
            let e = _mm256_and_si256(_mm256_castps_si256(x), _mm256_set1_epi32(EXPONENT));
            let bits = _mm256_max_epi32(
                _mm256_add_epi32(e, _mm256_set1_epi32(self.offset)),
                _mm256_set1_epi32(self.min_bits),
            );
            _mm256_castsi256_ps(bits)
        }

        /// The product `a·b` rounded once onto the grid (finite operands);
        /// `IN_RANGE`: every product of these operands is known to lie
        /// within the range of a floating grid, so neither the exponent cap
        /// nor the limits apply.
        ///
        /// A product that rounds to zero comes out as `+0` whatever its
        /// sign. That cannot show in a sum the lanes form: sums start at
        /// `+0`, and `x + ±0 = x` unless `x` is `-0`, which no sum reaches:
        /// `f32` additions give `-0` only from two `-0`, and every rounded
        /// sum is of two values on its grid (`sums_onto`), a multiple of
        /// the grid's smallest step that rounds to zero only when it is
        /// zero.
        #[inline(always)]
        unsafe fn product<const IN_RANGE: bool>(&self, a: __m256, b: __m256) -> __m256 {
            let rounded = _mm256_mul_ps(a, b);
            if IN_RANGE {
                let m = self.magic_in_range(rounded);
                return _mm256_sub_ps(_mm256_fmadd_ps(a, b, m), m);
            }
            let m = self.magic(rounded);
            self.limit(_mm256_sub_ps(_mm256_fmadd_ps(a, b, m), m))
        }

        /// The `f32` value `x` rounded onto the grid.
        #[inline(always)]
        unsafe fn value(&self, x: __m256) -> __m256 {
            let m = self.magic(x);
            let r = _mm256_sub_ps(_mm256_add_ps(x, m), m);
            let sign = _mm256_and_ps(x, _mm256_castsi256_ps(_mm256_set1_epi32(SIGN)));
            let y = self.limit(_mm256_or_ps(r, sign));
            match self.infinity {
                None => y,
                Some([pos, neg]) => {
                    let magnitude =
                        _mm256_andnot_ps(_mm256_castsi256_ps(_mm256_set1_epi32(SIGN)), x);
                    let infinite =
                        _mm256_cmp_ps::<_CMP_EQ_OQ>(magnitude, _mm256_set1_ps(f32::INFINITY));
                    let by_sign = _mm256_blendv_ps(_mm256_set1_ps(pos), _mm256_set1_ps(neg), x);
                    _mm256_blendv_ps(y, by_sign, infinite)
                }
            }
        }
    }

    type Tile<const R: usize> = [[__m256; VECTORS]; R];

    /// One tile's `f32` chunk sums as `f64` lanes (exact products).
    type WideTile<const R: usize> = [[__m256d; 2 * VECTORS]; R];

    /// Calls `tile(rows, a, panel, out, cols)` for every tile of the output
    /// rows from `row0` (as many as `y` holds): panel by panel, `FULL` rows
    /// at a time, `rows < FULL` for the last.
    #[inline(always)]
    unsafe fn tiles<T, const FULL: usize>(
        a: &[f32],
        panels: &[T],
        row0: usize,
        (k, n): (usize, usize),
        y: &mut [f32],
        mut tile: impl FnMut(usize, &[f32], &[T], &mut [f32], usize),
    ) {
        let rows = y.len() / n;
        for (p, panel) in panels.chunks_exact(k * COLS).enumerate() {
            let cols = COLS.min(n - p * COLS);
            for r in (0..rows).step_by(FULL) {
                let out = &mut y[r * n + p * COLS..];
                tile(FULL.min(rows - r), &a[(row0 + r) * k..], panel, out, cols);
            }
        }
    }

    /// Stores the first `cols` columns of `s` at `out` (row stride `n`).
    #[inline(always)]
    unsafe fn store<const R: usize>(s: &Tile<R>, out: &mut [f32], n: usize, cols: usize) {
        for (r, row) in s.iter().enumerate() {
            let mut values = [0f32; COLS];
            for (v, lane) in row.iter().enumerate() {
                _mm256_storeu_ps(values.as_mut_ptr().add(8 * v), *lane);
            }
            out[r * n..r * n + cols].copy_from_slice(&values[..cols]);
        }
    }

    // Remainder tiles have 1 to `ROWS - 1` rows, and `rows` has arms for
    // 1 and 2; `rows_exact` one for 1.
    const _: () = assert!(ROWS <= 3 && ROWS_EXACT <= 2);

    impl LanesKernel {
        /// The output rows from `row0` (as many as `y` holds) with rounded
        /// products.
        #[target_feature(enable = "avx2,fma")]
        pub(super) unsafe fn rows<const IN_RANGE: bool>(
            &self,
            a: &[f32],
            panels: &[f32],
            row0: usize,
            (k, n): (usize, usize),
            y: &mut [f32],
        ) {
            tiles::<f32, ROWS>(
                a,
                panels,
                row0,
                (k, n),
                y,
                |rows, a, panel, out, cols| match rows {
                    ROWS => self.tile::<ROWS, IN_RANGE>(a, panel, k, out, n, cols),
                    1 => self.tile::<1, IN_RANGE>(a, panel, k, out, n, cols),
                    _ => self.tile::<2, IN_RANGE>(a, panel, k, out, n, cols),
                },
            )
        }

        /// The output rows from `row0` (as many as `y` holds) with exact
        /// products and `f32` chunk sums.
        #[target_feature(enable = "avx2,fma")]
        pub(super) unsafe fn rows_exact(
            &self,
            a: &[f32],
            panels: &[f64],
            row0: usize,
            (k, n): (usize, usize),
            y: &mut [f32],
        ) {
            let Sum::Chunks { len, .. } = self.sum else {
                unreachable!("exact products take the lanes only with f32 chunk sums")
            };
            tiles::<f64, ROWS_EXACT>(a, panels, row0, (k, n), y, |rows, a, panel, out, cols| {
                match rows {
                    ROWS_EXACT => self.tile_exact::<ROWS_EXACT>(a, panel, (k, len), out, n, cols),
                    _ => self.tile_exact::<1>(a, panel, (k, len), out, n, cols),
                }
            })
        }

        /// `R` rows × [`COLS`] columns of the output: `a` starts at the
        /// tile's first row, `out` at its first element (row stride `n`).
        #[inline(always)]
        unsafe fn tile<const R: usize, const IN_RANGE: bool>(
            &self,
            a: &[f32],
            panel: &[f32],
            k: usize,
            out: &mut [f32],
            n: usize,
            cols: usize,
        ) {
            let zero = _mm256_setzero_ps();
            let mut s: Tile<R> = [[zero; VECTORS]; R];
            match self.sum {
                Sum::Running => self.products::<R, IN_RANGE>(a, panel, k, 0..k, &mut s, |s, p| {
                    self.accumulator.value(_mm256_add_ps(s, p))
                }),
                Sum::Chunks { len, grid } => {
                    for start in (0..k).step_by(len) {
                        let chunk = start..k.min(start + len);
                        let mut t: Tile<R> = [[zero; VECTORS]; R];
                        match grid {
                            None => {
                                self.products::<R, IN_RANGE>(a, panel, k, chunk, &mut t, |t, p| {
                                    _mm256_add_ps(t, p)
                                })
                            }
                            Some(g) => {
                                self.products::<R, IN_RANGE>(a, panel, k, chunk, &mut t, |t, p| {
                                    g.value(_mm256_add_ps(t, p))
                                })
                            }
                        }
                        self.add_chunk(&mut s, &t);
                    }
                }
            }
            store(&s, out, n, cols);
        }

        /// [`tile`](Self::tile) for exact products: each is formed in
        /// `f64` (exact for `f32` factors), added to its chunk sum there
        /// and the sum rounded to `f32`, as the `f64` kernel does.
        #[inline(always)]
        unsafe fn tile_exact<const R: usize>(
            &self,
            a: &[f32],
            panel: &[f64],
            (k, len): (usize, usize),
            out: &mut [f32],
            n: usize,
            cols: usize,
        ) {
            let mut s: Tile<R> = [[_mm256_setzero_ps(); VECTORS]; R];
            for start in (0..k).step_by(len) {
                let mut t: WideTile<R> = [[_mm256_setzero_pd(); 2 * VECTORS]; R];
                for i in start..k.min(start + len) {
                    let b = panel.as_ptr().add(i * COLS);
                    let b: [__m256d; 2 * VECTORS] =
                        std::array::from_fn(|v| _mm256_loadu_pd(b.add(4 * v)));
                    for (r, t) in t.iter_mut().enumerate() {
                        let a = _mm256_set1_pd(f64::from(*a.get_unchecked(r * k + i)));
                        for (t, b) in t.iter_mut().zip(b) {
                            let sum = _mm256_add_pd(*t, _mm256_mul_pd(a, b));
                            *t = _mm256_cvtps_pd(_mm256_cvtpd_ps(sum));
                        }
                    }
                }
                let narrow: Tile<R> = std::array::from_fn(|r| {
                    std::array::from_fn(|v| {
                        let (low, high) = (t[r][2 * v], t[r][2 * v + 1]);
                        _mm256_set_m128(_mm256_cvtpd_ps(high), _mm256_cvtpd_ps(low))
                    })
                });
                self.add_chunk(&mut s, &narrow);
            }
            store(&s, out, n, cols);
        }

        /// `s ← Q_acc(s + Q_acc(t))` for a chunk's sums `t`, in the tile's
        /// order.
        #[inline(always)]
        unsafe fn add_chunk<const R: usize>(&self, s: &mut Tile<R>, t: &Tile<R>) {
            for (s, t) in s.iter_mut().flatten().zip(t.iter().flatten()) {
                let partial = self.accumulator.value(*t);
                *s = self.accumulator.value(_mm256_add_ps(*s, partial));
            }
        }

        /// `acc ← add(acc, Q_product(a·b))` for the products `i` in `ks`.
        #[inline(always)]
        unsafe fn products<const R: usize, const IN_RANGE: bool>(
            &self,
            a: &[f32],
            panel: &[f32],
            k: usize,
            ks: std::ops::Range<usize>,
            acc: &mut Tile<R>,
            add: impl Fn(__m256, __m256) -> __m256,
        ) {
            let Some(product) = self.product else {
                unreachable!("rounded products take `rows`, exact ones `rows_exact`")
            };
            for i in ks {
                let b = panel.as_ptr().add(i * COLS);
                let b: [__m256; VECTORS] = std::array::from_fn(|v| _mm256_loadu_ps(b.add(8 * v)));
                for (r, acc) in acc.iter_mut().enumerate() {
                    let a = _mm256_set1_ps(*a.get_unchecked(r * k + i));
                    for (acc, b) in acc.iter_mut().zip(b) {
                        *acc = add(*acc, product.product::<IN_RANGE>(a, b));
                    }
                }
            }
        }
    }
}
