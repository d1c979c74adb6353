//! Native CPU kernel: a fused loop over contiguous `f32` slices.

use swalp_core::{
    kernel::native::{draw, exponent, map_indexed, pow2, round_to_grid},
    RandomStream, Rounding,
};

use crate::{Binade, Posit};

/// Rounds every element of `x` to `format` into `out`.
pub fn posit(
    format: &Posit,
    x: &[f32],
    out: &mut [f32],
    rounding: Rounding,
    random: Option<RandomStream>,
) {
    let (maxpos, minpos) = (format.maxpos(), format.minpos());
    map_indexed(x, out, |i, v| {
        let x = f64::from(v);
        if !x.is_finite() {
            return f32::NAN; // NaR
        }
        if x == 0.0 {
            return 0.0; // posits have a single, unsigned zero
        }
        let a = x.abs();
        let magnitude = if a >= maxpos {
            maxpos
        } else if a <= minpos {
            minpos
        } else {
            let s = exponent(a);
            match format.binade(s) {
                Binade::Uniform { step, tie_down } => {
                    if tie_down && rounding == Rounding::NearestEven && a == 1.5 * pow2(s) {
                        pow2(s)
                    } else {
                        // The signed grid decides, as in every swalp format.
                        return (round_to_grid(x, step, rounding, draw(random, i)) * pow2(step))
                            as f32;
                    }
                }
                Binade::Sparse { low, gap, tie_up } => {
                    let up = if rounding == Rounding::NearestEven {
                        let mid = low + gap / 2;
                        s > mid || (s == mid && (a > pow2(mid) || tie_up))
                    } else {
                        // Position between the neighbours, in value.
                        let t = (a * pow2(-low) - 1.0) / (pow2(gap) - 1.0);
                        let t = if x < 0.0 { -t } else { t };
                        rounding.round_int(t, draw(random, i)) != 0.0
                    };
                    pow2(if up { low + gap } else { low })
                }
            }
        };
        magnitude.copysign(x) as f32
    });
}
