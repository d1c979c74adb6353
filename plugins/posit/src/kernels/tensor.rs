//! Tensor kernel: composed tch ops on `Double` tensors, for any device.
//!
//! The same computation as [`native::posit`](super::native::posit), with
//! every branch evaluated for every element and the right one selected.
//! Every op is the fallible `f_` form: a libtorch failure is an error.

use swalp_core::{
    kernel::tensor::{draws, exponent, pow2, round_to_grid},
    tch::{Kind, Tensor},
    RandomStream, Result, Rounding,
};

use crate::{Binade, Posit};

fn scalar(x: &Tensor, v: f64) -> Result<Tensor> {
    Ok(Tensor::f_scalar_tensor(v, (Kind::Double, x.device()))?)
}

fn column(x: &Tensor, values: Vec<i64>) -> Result<Tensor> {
    Ok(Tensor::f_from_slice(&values)?.f_to_device(x.device())?)
}

/// Rounds every element of the `Double` tensor `x` to `format`.
pub fn posit(
    format: &Posit,
    x: &Tensor,
    rounding: Rounding,
    random: Option<RandomStream>,
) -> Result<Tensor> {
    let scale = format.scale();
    let a = x.f_abs()?;
    let y = if scale == 0 {
        // posit<2, es>: every nonzero value saturates to ±1 below.
        x.shallow_clone()
    } else {
        in_range(format, x, &a, rounding, random)?
    };
    let y = scalar(x, format.maxpos())?
        .f_copysign(x)?
        .f_where_self(&a.f_ge(format.maxpos())?, &y)?;
    let y = scalar(x, format.minpos())?
        .f_copysign(x)?
        .f_where_self(&a.f_le(format.minpos())?, &y)?;
    let y = scalar(x, 0.0)?.f_where_self(&x.f_eq(0.0)?, &y)?;
    Ok(scalar(x, f64::NAN)?.f_where_self(&x.f_isfinite()?.f_logical_not()?, &y)?)
}

/// The rounding of values strictly between minpos and maxpos; other
/// elements get meaningless (but harmless) values.
fn in_range(
    format: &Posit,
    x: &Tensor,
    a: &Tensor,
    rounding: Rounding,
    random: Option<RandomStream>,
) -> Result<Tensor> {
    let scale = i64::from(format.scale());
    let r = draws(random, x)?;
    let s = exponent(a)?.f_clamp(-scale, scale - 1)?;
    let index = s.f_add_scalar(scale)?;
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
    let lookup = |values: Vec<i64>| -> Result<Tensor> { Ok(column(x, values)?.f_take(&index)?) };
    let any_sparse = sparse.contains(&1);
    let any_tie_down = tie_down.contains(&1);

    let step = lookup(step)?;
    let mut y = round_to_grid(x, &step, rounding, r.as_ref())?.f_mul(&pow2(&step)?)?;
    if any_tie_down && rounding == Rounding::NearestEven {
        let lower = pow2(&s)?;
        let tie = lookup(tie_down)?
            .f_eq(1)?
            .f_logical_and(&a.f_eq_tensor(&lower.f_mul_scalar(1.5)?)?)?;
        y = lower.f_copysign(x)?.f_where_self(&tie, &y)?;
    }
    if any_sparse {
        let low = lookup(low)?;
        let gap = lookup(gap)?;
        let up = if rounding == Rounding::NearestEven {
            let mid = low.f_add(&gap.f_floor_divide_scalar(2)?)?;
            let above_mid = a
                .f_gt_tensor(&pow2(&mid)?)?
                .f_logical_or(&lookup(tie_up)?.f_eq(1)?)?;
            let at_mid = s.f_eq_tensor(&mid)?.f_logical_and(&above_mid)?;
            s.f_gt_tensor(&mid)?.f_logical_or(&at_mid)?
        } else {
            let t = a
                .f_mul(&pow2(&low.f_neg()?)?)?
                .f_sub_scalar(1.0)?
                .f_div(&pow2(&gap)?.f_sub_scalar(1.0)?)?;
            let t = t.f_neg()?.f_where_self(&x.f_lt(0.0)?, &t)?;
            rounding.round_int_tensor(&t, r.as_ref())?.f_ne(0.0)?
        };
        let sparse_y = pow2(&low.f_add(&gap)?)?
            .f_where_self(&up, &pow2(&low)?)?
            .f_copysign(x)?;
        y = sparse_y.f_where_self(&lookup(sparse)?.f_eq(1)?, &y)?;
    }
    Ok(y)
}
