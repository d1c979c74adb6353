//! Building blocks for native kernels: Rust loops over contiguous `f32`
//! slices, computing in `f64` (where scaling by powers of two is exact for
//! every `f32`) and split across threads for large inputs.
//!
//! Work is split by index ranges and every random draw is a function of the
//! element index, so results never depend on the number of threads.

use rayon::prelude::*;

use crate::rng::RandomStream;
use crate::rounding::Rounding;

/// Inputs shorter than this run on the calling thread: below it, waking
/// worker threads costs more than it saves.
pub const PARALLEL_THRESHOLD: usize = 1 << 15;

const CHUNK: usize = 1 << 14;

/// `2^k` exactly, for `k` in `-1022..=1023`.
///
/// ```
/// assert_eq!(swalp_core::kernel::native::pow2(-3), 0.125);
/// ```
#[inline]
pub fn pow2(k: i32) -> f64 {
    debug_assert!((-1022..=1023).contains(&k));
    f64::from_bits(((k + 1023) as u64) << 52)
}

/// `floor(log2(|x|))` for a finite, nonzero, normal `x`.
///
/// ```
/// use swalp_core::kernel::native::exponent;
/// assert_eq!(exponent(1.0), 0);
/// assert_eq!(exponent(-0.75), -1);
/// assert_eq!(exponent(1e-40_f32 as f64), -133);
/// ```
#[inline]
pub fn exponent(x: f64) -> i32 {
    ((x.to_bits() >> 52) & 0x7ff) as i32 - 1023
}

/// The random draw of element `index`, or 0 for deterministic rounding.
#[inline]
pub fn draw(random: Option<RandomStream>, index: usize) -> u32 {
    random.map_or(0, |r| r.bits(index as u64))
}

/// Rounds `x / 2^k` to an integer with `rounding`, the core step of every
/// grid-based format: the caller clamps the integer and multiplies by `2^k`.
///
/// ```
/// use swalp_core::{kernel::native::round_to_grid, Rounding};
/// // 0.3 on a grid of step 2^-2 = 0.25 is 1.2 steps.
/// assert_eq!(round_to_grid(0.3, -2, Rounding::NearestEven, 0), 1.0);
/// assert_eq!(round_to_grid(0.3, -2, Rounding::Up, 0), 2.0);
/// ```
#[inline]
pub fn round_to_grid(x: f64, k: i32, rounding: Rounding, random: u32) -> f64 {
    rounding.round_int(x * pow2(-k), random)
}

/// Writes `out[i] = f(i, input[i])` for every `i`, in parallel for large
/// inputs. `f` receives the global element index, for random draws and block
/// lookups.
///
/// ```
/// let x = [1.0f32, 2.0, 3.0];
/// let mut y = [0.0f32; 3];
/// swalp_core::kernel::native::map_indexed(&x, &mut y, |i, v| v * i as f32);
/// assert_eq!(y, [0.0, 2.0, 6.0]);
/// ```
pub fn map_indexed<F>(input: &[f32], out: &mut [f32], f: F)
where
    F: Fn(usize, f32) -> f32 + Sync,
{
    assert_eq!(input.len(), out.len(), "input and output lengths differ");
    let run = |offset: usize, inp: &[f32], outp: &mut [f32]| {
        for (j, (o, &v)) in outp.iter_mut().zip(inp).enumerate() {
            *o = f(offset + j, v);
        }
    };
    if input.len() < PARALLEL_THRESHOLD {
        run(0, input, out);
    } else {
        out.par_chunks_mut(CHUNK)
            .zip(input.par_chunks(CHUNK))
            .enumerate()
            .for_each(|(c, (outp, inp))| run(c * CHUNK, inp, outp));
    }
}
