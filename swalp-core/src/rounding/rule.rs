//! The rounding rule, written once.
//!
//! Each mode is a type implementing [`RoundRule`], whose one method,
//! [`round_lanes`](RoundRule::round_lanes), is generic over [`Lanes`]: the
//! operations the rule needs, implemented for a single `f64` (the scalar
//! [`Rounding::round_int`](super::Rounding::round_int) and the native
//! kernels, whose loops of it the compiler vectorises) and for a `Double`
//! tensor (the tensor backend, on any device). Every backend therefore runs
//! the same decisions, written in one place.
//!
//! The rule for a value `v` lying between the integers `floor(v)` and
//! `floor(v) + 1`:
//!
//! - nearest-even, toward-zero, down and up are the IEEE 754
//!   roundToIntegral operations (exact, signed zeros kept);
//! - nearest-away, nearest-up and stochastic decide on `floor(v)` and the
//!   exact fraction `v - floor(v)`, never on `v + 1/2`: adding a constant
//!   can round away low bits and move a value across a tie, the
//!   double-rounding trap QPyTorch's kernels fall into. Stochastic rounding
//!   with `b` bits goes up when `floor(frac · 2^b) + draw >= 2^b` for the
//!   top `b` bits of a uniform 32-bit draw, computed exactly as
//!   `frac · 2^b >= 2^b - draw`.
//!
//! A zero result keeps `v`'s sign, and infinities and NaN come back
//! unchanged (their fraction is NaN, which never rounds up).

use std::convert::Infallible;

use tch::{Kind, TchError, Tensor};

use crate::rng::StreamSegment;

/// What a rounding rule computes with: one `f64`, or every element of a
/// `Double` tensor at once.
///
/// Implemented by swalp-core for `f64` and [`Tensor`]; the rules in this
/// module are written once against it.
///
/// ```
/// use swalp_core::rounding::{NearestAwayRule, RoundRule};
/// use swalp_core::tch::Tensor;
/// let x = Tensor::from_slice(&[2.5f64, -2.5, 0.4]);
/// let scalar: Vec<f64> = [2.5, -2.5, 0.4].iter().map(|&v| NearestAwayRule.round(v, 0)).collect();
/// let lanes = NearestAwayRule.round_lanes(&x, None)?;
/// assert_eq!(Vec::<f64>::try_from(&lanes)?, scalar);
/// # Ok::<(), swalp_core::tch::TchError>(())
/// ```
pub trait Lanes: Sized {
    /// One boolean per lane.
    type Mask;
    /// The random draws, one uniform 32-bit value per lane.
    type Draws: ?Sized;
    /// How an operation fails (never, for `f64`).
    type Error;

    /// IEEE roundToIntegralTowardNegative.
    fn floor(&self) -> Result<Self, Self::Error>;
    /// IEEE roundToIntegralTowardPositive.
    fn ceil(&self) -> Result<Self, Self::Error>;
    /// IEEE roundToIntegralTowardZero.
    fn trunc(&self) -> Result<Self, Self::Error>;
    /// IEEE roundToIntegralTiesToEven.
    fn round_ties_even(&self) -> Result<Self, Self::Error>;
    /// `self - other`.
    fn minus(&self, other: &Self) -> Result<Self, Self::Error>;
    /// `self · c`.
    fn times(&self, c: f64) -> Result<Self, Self::Error>;
    /// `c - (draw >> shift)` per lane, exactly (`c <= 2^32`).
    fn draw_threshold(draws: Option<&Self::Draws>, c: f64, shift: u32)
        -> Result<Self, Self::Error>;
    /// `self > c`.
    fn gt(&self, c: f64) -> Result<Self::Mask, Self::Error>;
    /// `self >= c`.
    fn ge(&self, c: f64) -> Result<Self::Mask, Self::Error>;
    /// `self == c`.
    fn eq(&self, c: f64) -> Result<Self::Mask, Self::Error>;
    /// `self >= other`, lane by lane.
    fn ge_lanes(&self, other: &Self) -> Result<Self::Mask, Self::Error>;
    /// `a && b`.
    fn and(a: &Self::Mask, b: &Self::Mask) -> Result<Self::Mask, Self::Error>;
    /// `a || b`.
    fn or(a: &Self::Mask, b: &Self::Mask) -> Result<Self::Mask, Self::Error>;
    /// `floor + 1` where `up`, else `floor`, with `v`'s sign on a zero
    /// result (`floor(-0.3) + 1` is +0; IEEE rounding gives -0).
    fn floor_or_up(v: &Self, floor: &Self, up: &Self::Mask) -> Result<Self, Self::Error>;
}

impl Lanes for f64 {
    type Mask = bool;
    type Draws = u32;
    type Error = Infallible;

    #[inline(always)]
    fn floor(&self) -> Result<f64, Infallible> {
        Ok(f64::floor(*self))
    }
    #[inline(always)]
    fn ceil(&self) -> Result<f64, Infallible> {
        Ok(f64::ceil(*self))
    }
    #[inline(always)]
    fn trunc(&self) -> Result<f64, Infallible> {
        Ok(f64::trunc(*self))
    }
    #[inline(always)]
    fn round_ties_even(&self) -> Result<f64, Infallible> {
        Ok(f64::round_ties_even(*self))
    }
    #[inline(always)]
    fn minus(&self, other: &f64) -> Result<f64, Infallible> {
        Ok(self - other)
    }
    #[inline(always)]
    fn times(&self, c: f64) -> Result<f64, Infallible> {
        Ok(self * c)
    }
    #[inline(always)]
    fn draw_threshold(draws: Option<&u32>, c: f64, shift: u32) -> Result<f64, Infallible> {
        let draw = draws.copied().unwrap_or(0) >> shift;
        Ok(c - f64::from(draw))
    }
    #[inline(always)]
    fn gt(&self, c: f64) -> Result<bool, Infallible> {
        Ok(*self > c)
    }
    #[inline(always)]
    fn ge(&self, c: f64) -> Result<bool, Infallible> {
        Ok(*self >= c)
    }
    #[inline(always)]
    fn eq(&self, c: f64) -> Result<bool, Infallible> {
        Ok(*self == c)
    }
    #[inline(always)]
    fn ge_lanes(&self, other: &f64) -> Result<bool, Infallible> {
        Ok(*self >= *other)
    }
    #[inline(always)]
    fn and(a: &bool, b: &bool) -> Result<bool, Infallible> {
        Ok(*a && *b)
    }
    #[inline(always)]
    fn or(a: &bool, b: &bool) -> Result<bool, Infallible> {
        Ok(*a || *b)
    }
    #[inline(always)]
    fn floor_or_up(v: &f64, floor: &f64, up: &bool) -> Result<f64, Infallible> {
        let rounded = if *up { floor + 1.0 } else { *floor };
        Ok(rounded.abs().copysign(*v))
    }
}

/// Lanes of a `Double` tensor; draws are an `Int64` tensor of `u32` values
/// broadcastable to it.
impl Lanes for Tensor {
    type Mask = Tensor;
    type Draws = Tensor;
    type Error = TchError;

    fn floor(&self) -> Result<Tensor, TchError> {
        self.f_floor()
    }
    fn ceil(&self) -> Result<Tensor, TchError> {
        self.f_ceil()
    }
    fn trunc(&self) -> Result<Tensor, TchError> {
        self.f_trunc()
    }
    fn round_ties_even(&self) -> Result<Tensor, TchError> {
        // torch.round rounds half to even.
        self.f_round()
    }
    fn minus(&self, other: &Tensor) -> Result<Tensor, TchError> {
        self.f_sub(other)
    }
    fn times(&self, c: f64) -> Result<Tensor, TchError> {
        self.f_mul_scalar(c)
    }
    fn draw_threshold(draws: Option<&Tensor>, c: f64, shift: u32) -> Result<Tensor, TchError> {
        let draws = draws.ok_or_else(|| {
            TchError::Kind("stochastic rounding needs one random draw per element".into())
        })?;
        draws
            .f_bitwise_right_shift_tensor_scalar(i64::from(shift))?
            .f_to_kind(Kind::Double)?
            .f_neg()?
            .f_add_scalar(c)
    }
    fn gt(&self, c: f64) -> Result<Tensor, TchError> {
        self.f_gt(c)
    }
    fn ge(&self, c: f64) -> Result<Tensor, TchError> {
        self.f_ge(c)
    }
    fn eq(&self, c: f64) -> Result<Tensor, TchError> {
        self.f_eq(c)
    }
    fn ge_lanes(&self, other: &Tensor) -> Result<Tensor, TchError> {
        self.f_ge_tensor(other)
    }
    fn and(a: &Tensor, b: &Tensor) -> Result<Tensor, TchError> {
        a.f_logical_and(b)
    }
    fn or(a: &Tensor, b: &Tensor) -> Result<Tensor, TchError> {
        a.f_logical_or(b)
    }
    fn floor_or_up(v: &Tensor, floor: &Tensor, up: &Tensor) -> Result<Tensor, TchError> {
        floor
            .f_add(&up.f_to_kind(Kind::Double)?)?
            .f_abs()?
            .f_copysign(v)
    }
}

/// A rounding mode as a type: kernels are monomorphised per mode (see
/// [`with_round_rule!`](crate::with_round_rule)), so the per-element code
/// has no branch on the mode.
///
/// ```
/// use swalp_core::rounding::{RoundRule, StochasticRule};
/// // 0.25 rounds up when the draw is at least 3/4 of 2^32.
/// let sr = StochasticRule::new(32);
/// assert_eq!(sr.round(0.25, 0xbfff_ffff), 0.0);
/// assert_eq!(sr.round(0.25, 0xc000_0000), 1.0);
/// ```
pub trait RoundRule: Copy + Send + Sync {
    /// Whether the rule uses its random draw.
    const STOCHASTIC: bool;

    /// Whether the rule is one IEEE 754 roundToIntegral operation
    /// (nearest-even, toward zero, down, up): then rounding an `f32` with
    /// [`round_f32`](Self::round_f32) gives exactly what
    /// [`round`](Self::round) gives for the same value as `f64`, and a kernel
    /// whose arithmetic is exact in `f32` may use twice the vector lanes.
    const IEEE_OP: bool = false;

    /// The rule: every lane of `v` rounded to an integer. `draws` is read by
    /// stochastic rounding only (a tensor rule fails without it).
    fn round_lanes<L: Lanes>(self, v: &L, draws: Option<&L::Draws>) -> Result<L, L::Error>;

    /// [`round_lanes`](Self::round_lanes) for one value.
    #[inline(always)]
    fn round(self, v: f64, random: u32) -> f64 {
        match self.round_lanes(&v, Some(&random)) {
            Ok(rounded) => rounded,
            Err(never) => match never {},
        }
    }

    /// `round(f64::from(v), 0) as f32`, in `f32` arithmetic when
    /// [`IEEE_OP`](Self::IEEE_OP).
    #[inline(always)]
    fn round_f32(self, v: f32) -> f32 {
        self.round(f64::from(v), 0) as f32
    }

    /// The random draw for the element with low index bits `lo`, or 0 when
    /// the rule is deterministic (the draw is then never computed).
    #[inline(always)]
    fn draw(self, segment: StreamSegment, lo: u32) -> u32 {
        if Self::STOCHASTIC {
            segment.bits(lo)
        } else {
            0
        }
    }
}

/// [`Rounding::NearestEven`](super::Rounding::NearestEven) as a [`RoundRule`].
#[derive(Clone, Copy, Debug)]
pub struct NearestEvenRule;
/// [`Rounding::NearestAway`](super::Rounding::NearestAway) as a [`RoundRule`].
#[derive(Clone, Copy, Debug)]
pub struct NearestAwayRule;
/// [`Rounding::NearestUp`](super::Rounding::NearestUp) as a [`RoundRule`].
#[derive(Clone, Copy, Debug)]
pub struct NearestUpRule;
/// [`Rounding::TowardZero`](super::Rounding::TowardZero) as a [`RoundRule`].
#[derive(Clone, Copy, Debug)]
pub struct TowardZeroRule;
/// [`Rounding::Down`](super::Rounding::Down) as a [`RoundRule`].
#[derive(Clone, Copy, Debug)]
pub struct DownRule;
/// [`Rounding::Up`](super::Rounding::Up) as a [`RoundRule`].
#[derive(Clone, Copy, Debug)]
pub struct UpRule;
/// [`Rounding::Stochastic`](super::Rounding::Stochastic) as a [`RoundRule`].
#[derive(Clone, Copy, Debug)]
pub struct StochasticRule {
    one: f64,
    shift: u32,
}

impl StochasticRule {
    /// Stochastic rounding with `bits` random bits.
    ///
    /// # Panics
    /// When `bits` is not in `1..=32` (a [`Rounding`](super::Rounding)
    /// never holds such a value).
    pub fn new(bits: u8) -> Self {
        assert!((1..=32).contains(&bits), "stochastic bits out of range");
        StochasticRule {
            one: (1u64 << bits) as f64,
            shift: 32 - u32::from(bits),
        }
    }
}

/// Implements a rule that is one IEEE operation, with its `f32` twin.
macro_rules! ieee_rule {
    ($rule:ty, $op:ident) => {
        impl RoundRule for $rule {
            const STOCHASTIC: bool = false;
            const IEEE_OP: bool = true;
            #[inline(always)]
            fn round_lanes<L: Lanes>(self, v: &L, _: Option<&L::Draws>) -> Result<L, L::Error> {
                v.$op()
            }
            #[inline(always)]
            fn round_f32(self, v: f32) -> f32 {
                v.$op()
            }
        }
    };
}

ieee_rule!(NearestEvenRule, round_ties_even);
ieee_rule!(TowardZeroRule, trunc);
ieee_rule!(DownRule, floor);
ieee_rule!(UpRule, ceil);

impl RoundRule for NearestAwayRule {
    const STOCHASTIC: bool = false;
    #[inline(always)]
    fn round_lanes<L: Lanes>(self, v: &L, _: Option<&L::Draws>) -> Result<L, L::Error> {
        let floor = v.floor()?;
        let frac = v.minus(&floor)?;
        let tie_away = L::and(&frac.eq(0.5)?, &v.gt(0.0)?)?;
        L::floor_or_up(v, &floor, &L::or(&frac.gt(0.5)?, &tie_away)?)
    }
}

impl RoundRule for NearestUpRule {
    const STOCHASTIC: bool = false;
    #[inline(always)]
    fn round_lanes<L: Lanes>(self, v: &L, _: Option<&L::Draws>) -> Result<L, L::Error> {
        let floor = v.floor()?;
        let frac = v.minus(&floor)?;
        L::floor_or_up(v, &floor, &frac.ge(0.5)?)
    }
}

impl RoundRule for StochasticRule {
    const STOCHASTIC: bool = true;
    #[inline(always)]
    fn round_lanes<L: Lanes>(self, v: &L, draws: Option<&L::Draws>) -> Result<L, L::Error> {
        let floor = v.floor()?;
        let frac = v.minus(&floor)?;
        // floor(frac · 2^bits) + draw >= 2^bits, with the floor dropped
        // because the right-hand side 2^bits - draw is an integer; every
        // quantity is exact in f64.
        let threshold = L::draw_threshold(draws, self.one, self.shift)?;
        L::floor_or_up(v, &floor, &frac.times(self.one)?.ge_lanes(&threshold)?)
    }
}

/// Evaluates `$body` with `$rule` bound to the [`RoundRule`] of the
/// [`Rounding`](crate::Rounding) `$rounding`: the body is compiled once per
/// mode, so the per-element code has no `match` on the mode.
///
/// ```
/// use swalp_core::{with_round_rule, rounding::RoundRule, Rounding};
/// let r = Rounding::NearestAway;
/// let y = with_round_rule!(r, rule => rule.round(-2.5, 0));
/// assert_eq!(y, -3.0);
/// ```
#[macro_export]
macro_rules! with_round_rule {
    ($rounding:expr, $rule:ident => $body:expr) => {{
        use $crate::rounding as __rules;
        match $rounding {
            $crate::Rounding::NearestEven => {
                let $rule = __rules::NearestEvenRule;
                $body
            }
            $crate::Rounding::NearestAway => {
                let $rule = __rules::NearestAwayRule;
                $body
            }
            $crate::Rounding::NearestUp => {
                let $rule = __rules::NearestUpRule;
                $body
            }
            $crate::Rounding::TowardZero => {
                let $rule = __rules::TowardZeroRule;
                $body
            }
            $crate::Rounding::Down => {
                let $rule = __rules::DownRule;
                $body
            }
            $crate::Rounding::Up => {
                let $rule = __rules::UpRule;
                $body
            }
            $crate::Rounding::Stochastic { bits } => {
                let $rule = __rules::StochasticRule::new(bits);
                $body
            }
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Rounding;

    /// The textbook definition on floor and fraction for every mode, the
    /// IEEE ones included: what each rule must equal.
    fn reference(mode: Rounding, v: f64, random: u32) -> f64 {
        let floor = v.floor();
        let frac = v - floor;
        if frac == 0.0 || !v.is_finite() {
            return v;
        }
        let up = match mode {
            Rounding::NearestEven => frac > 0.5 || (frac == 0.5 && floor % 2.0 != 0.0),
            Rounding::NearestAway => frac > 0.5 || (frac == 0.5 && v > 0.0),
            Rounding::NearestUp => frac >= 0.5,
            Rounding::TowardZero => v < 0.0,
            Rounding::Down => false,
            Rounding::Up => true,
            Rounding::Stochastic { bits } => {
                let truncated = (frac * (1u64 << bits) as f64).floor() as u64;
                truncated + (u64::from(random) >> (32 - u32::from(bits))) >= (1u64 << bits)
            }
        };
        let rounded = if up { floor + 1.0 } else { floor };
        rounded.abs().copysign(v)
    }

    fn values() -> Vec<f64> {
        let mut v = vec![
            0.0,
            -0.0,
            0.5,
            -0.5,
            1.5,
            -1.5,
            2.5,
            -2.5,
            0.25,
            -0.25,
            0.75,
            -0.75,
            1e-300,
            -1e-300,
            -1e-17,
            1e-17,
            0.5 - 2f64.powi(-54),
            -0.5 - 2f64.powi(-53),
            2f64.powi(52) + 1.0,
            -(2f64.powi(52) + 1.0),
            2f64.powi(53),
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            -f64::NAN,
            f64::MAX,
            f64::MIN_POSITIVE,
        ];
        let mut x = 0x1234_5678_9abc_def0u64;
        for _ in 0..4000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let scale = 2f64.powi((x % 40) as i32 - 20);
            let f = ((x >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * scale;
            v.push(f);
            v.push((f * 4.0).round() / 4.0);
        }
        v
    }

    const DRAWS: [u32; 7] = [0, 1, 0x7fff_ffff, 0x8000_0000, 0xc000_0000, u32::MAX, 12345];

    fn modes() -> Vec<Rounding> {
        let stochastic = [1u8, 2, 7, 8, 16, 31, 32].map(|bits| Rounding::Stochastic { bits });
        Rounding::DETERMINISTIC
            .into_iter()
            .chain(stochastic)
            .collect()
    }

    fn same(a: f64, b: f64) -> bool {
        a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
    }

    #[test]
    fn scalar_rules_equal_the_textbook_definition() {
        for mode in modes() {
            for v in values() {
                for d in DRAWS {
                    let a = with_round_rule!(mode, rule => rule.round(v, d));
                    let b = reference(mode, v, d);
                    assert!(
                        same(a, b),
                        "{mode} of {v:e} with draw {d:#x}: {a:e} vs {b:e}"
                    );
                }
            }
        }
    }

    #[test]
    fn tensor_rules_equal_the_scalar_rules() {
        let v = values();
        let x = Tensor::from_slice(&v);
        for mode in modes() {
            for d in DRAWS {
                let draws = Tensor::from_slice(&vec![i64::from(d); v.len()]);
                let lanes = with_round_rule!(mode, rule => rule.round_lanes(&x, Some(&draws)))
                    .expect("tensor rounding");
                let lanes = Vec::<f64>::try_from(&lanes).expect("f64 values");
                for (&v, &a) in v.iter().zip(&lanes) {
                    let b = with_round_rule!(mode, rule => rule.round(v, d));
                    assert!(
                        same(a, b),
                        "{mode} of {v:e} with draw {d:#x}: {a:e} vs {b:e}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_tensor_stochastic_rule_without_draws_is_an_error() {
        let x = Tensor::from_slice(&[0.5f64]);
        let err = StochasticRule::new(8).round_lanes(&x, None).unwrap_err();
        assert!(err.to_string().contains("random draw"), "{err}");
    }

    #[test]
    fn ieee_rules_round_f32_as_f64() {
        fn check32<R: RoundRule>(rule: R) {
            assert!(R::IEEE_OP);
            let mut x = 0x9e37_79b9u32;
            let specials = [
                0.0f32,
                -0.0,
                0.5,
                -0.5,
                1.5,
                -2.5,
                f32::MAX,
                f32::MIN_POSITIVE,
            ];
            let values = (0..200_000)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    f32::from_bits(x)
                })
                .chain(specials);
            for v in values {
                let a = rule.round_f32(v);
                let b = rule.round(f64::from(v), 0) as f32;
                assert!(
                    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
                    "{v:e}"
                );
            }
        }
        check32(NearestEvenRule);
        check32(TowardZeroRule);
        check32(DownRule);
        check32(UpRule);
    }
}
