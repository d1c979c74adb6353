//! Tensor kernel: composed tch ops on `Double` tensors, for any device.
//!
//! The same computation as [`native::posit`](super::native::posit), with
//! every branch evaluated for every element and the right one selected.

use swalp_core::{
    kernel::tensor::{draws, exponent, pow2, round_to_grid},
    tch::{Kind, Tensor},
    RandomStream, Rounding,
};

use crate::{Binade, Posit};

fn scalar(x: &Tensor, v: f64) -> Tensor {
    Tensor::scalar_tensor(v, (Kind::Double, x.device()))
}

fn column(x: &Tensor, values: Vec<i64>) -> Tensor {
    Tensor::from_slice(&values).to_device(x.device())
}

/// Rounds every element of the `Double` tensor `x` to `format`.
pub fn posit(
    format: &Posit,
    x: &Tensor,
    rounding: Rounding,
    random: Option<RandomStream>,
) -> Tensor {
    let scale = format.scale();
    let a = x.abs();
    let y = if scale == 0 {
        // posit<2, es>: every nonzero value saturates to ±1 below.
        x.shallow_clone()
    } else {
        in_range(format, x, &a, rounding, random)
    };
    let y = scalar(x, format.maxpos())
        .copysign(x)
        .where_self(&a.ge(format.maxpos()), &y);
    let y = scalar(x, format.minpos())
        .copysign(x)
        .where_self(&a.le(format.minpos()), &y);
    let y = scalar(x, 0.0).where_self(&x.eq(0.0), &y);
    scalar(x, f64::NAN).where_self(&x.isfinite().logical_not(), &y)
}

/// The rounding of values strictly between minpos and maxpos; other
/// elements get meaningless (but harmless) values.
fn in_range(
    format: &Posit,
    x: &Tensor,
    a: &Tensor,
    rounding: Rounding,
    random: Option<RandomStream>,
) -> Tensor {
    let scale = i64::from(format.scale());
    let r = draws(random, x);
    let s = exponent(a).clamp(-scale, scale - 1);
    let index = &s + scale;
    // One column per field of the binade table, looked up per element.
    let (mut step, mut tie_down, mut sparse) = (vec![], vec![], vec![]);
    let (mut low, mut gap, mut tie_up) = (vec![], vec![], vec![]);
    for (b, layout) in (-scale..scale).zip(format.binades()) {
        match *layout {
            Binade::Uniform {
                step: k,
                tie_down: t,
            } => {
                step.push(i64::from(k));
                tie_down.push(i64::from(t));
                sparse.push(0);
                // Valid exponents for the unused sparse branch.
                low.push(b);
                gap.push(2);
                tie_up.push(0);
            }
            Binade::Sparse {
                low: l,
                gap: g,
                tie_up: t,
            } => {
                step.push(b);
                tie_down.push(0);
                sparse.push(1);
                low.push(i64::from(l));
                gap.push(i64::from(g));
                tie_up.push(i64::from(t));
            }
        }
    }
    let lookup = |values: Vec<i64>| column(x, values).take(&index);
    let any_sparse = sparse.contains(&1);
    let any_tie_down = tie_down.contains(&1);

    let step = lookup(step);
    let mut y = round_to_grid(x, &step, rounding, r.as_ref()) * pow2(&step);
    if any_tie_down && rounding == Rounding::NearestEven {
        let lower = pow2(&s);
        let tie = lookup(tie_down)
            .eq(1)
            .logical_and(&a.eq_tensor(&(&lower * 1.5)));
        y = lower.copysign(x).where_self(&tie, &y);
    }
    if any_sparse {
        let low = lookup(low);
        let gap = lookup(gap);
        let up = if rounding == Rounding::NearestEven {
            let mid = &low + gap.floor_divide_scalar(2);
            let at_mid = s
                .eq_tensor(&mid)
                .logical_and(&a.gt_tensor(&pow2(&mid)).logical_or(&lookup(tie_up).eq(1)));
            s.gt_tensor(&mid).logical_or(&at_mid)
        } else {
            let t = (a * pow2(&low.neg()) - 1.0) / (pow2(&gap) - 1.0);
            let t = t.neg().where_self(&x.lt(0.0), &t);
            rounding.round_int_tensor(&t, r.as_ref()).ne(0.0)
        };
        let sparse_y = pow2(&(&low + &gap))
            .where_self(&up, &pow2(&low))
            .copysign(x);
        y = sparse_y.where_self(&lookup(sparse).eq(1), &y);
    }
    y
}
