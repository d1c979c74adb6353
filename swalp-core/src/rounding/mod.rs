//! Rounding modes: how a real value is mapped onto a format's grid.
//!
//! Every format in swalp reduces rounding to one question: a value `v`, already
//! scaled so that the format's neighbouring representable values are the
//! integers `floor(v)` and `floor(v) + 1`, goes to which of the two?
//! [`Rounding`] names the answer a spec asks for; [`rule`] gives it, once,
//! for scalars ([`Rounding::round_int`]), the native kernels
//! ([`with_round_rule!`](crate::with_round_rule)) and tensors
//! ([`Rounding::round_int_tensor`]), so every backend agrees bit for bit.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use tch::{Kind, TchError, Tensor};

use crate::error::SpecError;

pub mod rule;

pub use rule::{
    DownRule, Lanes, NearestAwayRule, NearestEvenRule, NearestUpRule, RoundRule, StochasticRule,
    TowardZeroRule, UpRule,
};

/// Number of random bits used by plain `"stochastic"` rounding.
pub const FULL_STOCHASTIC_BITS: u8 = 32;

/// How a value between two representable neighbours is rounded.
///
/// Spec syntax (TOML): a string, `"nearest-even"`, `"nearest-away"`,
/// `"nearest-up"`, `"toward-zero"`, `"down"`, `"up"`, `"stochastic"`, or a table
/// `{ stochastic_bits = k }` for stochastic rounding with `k` random bits
/// (1..=32), as hardware implements it.
///
/// ```
/// use swalp_core::Rounding;
/// let r: Rounding = "nearest-even".parse().unwrap();
/// assert_eq!(r, Rounding::NearestEven);
/// assert_eq!(r.round_int(2.5, 0), 2.0);
/// assert_eq!(Rounding::NearestAway.round_int(-2.5, 0), -3.0);
/// // Stochastic rounding goes up when the random draw is below the fraction.
/// let sr = Rounding::Stochastic { bits: 32 };
/// assert_eq!(sr.round_int(0.25, 0), 0.0); // floor(0.25 * 2^32) + 0 < 2^32
/// assert_eq!(sr.round_int(0.25, u32::MAX), 1.0);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rounding {
    /// To nearest, ties to the even neighbour (IEEE 754 default).
    NearestEven,
    /// To nearest, ties away from zero.
    NearestAway,
    /// To nearest, ties toward +infinity (`floor(v + 1/2)`).
    NearestUp,
    /// Truncation: toward zero.
    TowardZero,
    /// Toward −infinity (floor).
    Down,
    /// Toward +infinity (ceil).
    Up,
    /// Stochastic rounding with `bits` random bits: round up with probability
    /// equal to the fraction truncated to `bits` bits, so the result is
    /// unbiased up to `2^-bits` of a step. Applied to the signed value (two's
    /// complement hardware): the truncated residue biases toward −infinity.
    Stochastic {
        /// Random bits per value, 1..=32.
        bits: u8,
    },
}

impl Rounding {
    /// Plain stochastic rounding with the full 32 random bits.
    pub const STOCHASTIC: Rounding = Rounding::Stochastic {
        bits: FULL_STOCHASTIC_BITS,
    };

    /// Every mode name accepted in a spec, for error messages and help.
    pub const NAMES: [&'static str; 7] = [
        "nearest-even",
        "nearest-away",
        "nearest-up",
        "toward-zero",
        "down",
        "up",
        "stochastic",
    ];

    /// The nearest-rounding modes, for tests and documentation.
    pub const NEAREST: [Rounding; 3] = [
        Rounding::NearestEven,
        Rounding::NearestAway,
        Rounding::NearestUp,
    ];

    /// Every deterministic mode.
    pub const DETERMINISTIC: [Rounding; 6] = [
        Rounding::NearestEven,
        Rounding::NearestAway,
        Rounding::NearestUp,
        Rounding::TowardZero,
        Rounding::Down,
        Rounding::Up,
    ];

    /// True for stochastic rounding (which consumes random numbers).
    pub fn is_stochastic(self) -> bool {
        matches!(self, Rounding::Stochastic { .. })
    }

    /// True when, for a value of the given sign, this mode never increases
    /// the magnitude. Formats use it for IEEE overflow: such modes give the
    /// largest finite value instead of infinity.
    pub fn shrinks_magnitude(self, negative: bool) -> bool {
        match self {
            Rounding::TowardZero => true,
            Rounding::Down => !negative,
            Rounding::Up => negative,
            _ => false,
        }
    }

    /// Rounds `v` to an integer. `random` is a uniform 32-bit draw, used only
    /// by stochastic rounding (its top `bits` bits). Non-finite `v` is
    /// returned unchanged. The rule is [`RoundRule`]'s, as in every kernel.
    ///
    /// ```
    /// use swalp_core::Rounding;
    /// assert_eq!(Rounding::NearestEven.round_int(3.5, 0), 4.0);
    /// assert_eq!(Rounding::NearestUp.round_int(-3.5, 0), -3.0);
    /// assert_eq!(Rounding::TowardZero.round_int(-3.7, 0), -3.0);
    /// ```
    #[inline]
    pub fn round_int(self, v: f64, random: u32) -> f64 {
        crate::with_round_rule!(self, rule => rule.round(v, random))
    }

    /// Tensor form of [`round_int`](Self::round_int): rounds every element of
    /// the `Double` tensor `v` to an integer with exactly the same decisions.
    /// `random` holds one uniform 32-bit draw per element (as `Int64`) and is
    /// required by stochastic rounding only (without it, stochastic rounding
    /// is an error).
    ///
    /// ```
    /// use swalp_core::{tch::Tensor, Rounding};
    /// let x = Tensor::from_slice(&[2.5f64, -0.25]);
    /// let y = Rounding::NearestAway.round_int_tensor(&x, None)?;
    /// assert_eq!(Vec::<f64>::try_from(&y)?, [3.0, -0.0]);
    /// # Ok::<(), swalp_core::tch::TchError>(())
    /// ```
    pub fn round_int_tensor(self, v: &Tensor, random: Option<&Tensor>) -> Result<Tensor, TchError> {
        debug_assert_eq!(v.kind(), Kind::Double);
        crate::with_round_rule!(self, rule => rule.round_lanes(v, random))
    }

    /// The spec value for this mode: a string, or a table for limited-bit
    /// stochastic rounding.
    pub fn to_toml(self) -> toml::Value {
        match self {
            Rounding::Stochastic { bits } if bits != FULL_STOCHASTIC_BITS => {
                let mut t = toml::Table::new();
                t.insert("stochastic_bits".into(), toml::Value::Integer(bits.into()));
                toml::Value::Table(t)
            }
            other => toml::Value::String(other.name().into()),
        }
    }

    /// Parses a spec value: a mode name or `{ stochastic_bits = k }`.
    pub fn from_toml(value: &toml::Value) -> Result<Rounding, SpecError> {
        let allowed = || {
            format!(
                "one of {} or {{ stochastic_bits = 1..=32 }}",
                Rounding::NAMES.join(", ")
            )
        };
        match value {
            toml::Value::String(s) => s.parse(),
            toml::Value::Table(t) => {
                let bits = t
                    .get("stochastic_bits")
                    .ok_or_else(|| SpecError::InvalidValue {
                        key: "rounding".into(),
                        value: value.to_string(),
                        allowed: allowed(),
                    })?;
                if let Some(extra) = t.keys().find(|k| *k != "stochastic_bits") {
                    return Err(SpecError::UnknownKey {
                        context: "rounding".into(),
                        key: extra.clone(),
                        allowed: vec!["stochastic_bits".into()],
                        suggestion: None,
                    });
                }
                match bits.as_integer() {
                    Some(b @ 1..=32) => Ok(Rounding::Stochastic { bits: b as u8 }),
                    _ => Err(SpecError::InvalidValue {
                        key: "rounding.stochastic_bits".into(),
                        value: bits.to_string(),
                        allowed: "an integer in 1..=32".into(),
                    }),
                }
            }
            other => Err(SpecError::InvalidValue {
                key: "rounding".into(),
                value: other.to_string(),
                allowed: allowed(),
            }),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Rounding::NearestEven => "nearest-even",
            Rounding::NearestAway => "nearest-away",
            Rounding::NearestUp => "nearest-up",
            Rounding::TowardZero => "toward-zero",
            Rounding::Down => "down",
            Rounding::Up => "up",
            Rounding::Stochastic { .. } => "stochastic",
        }
    }
}

impl fmt::Display for Rounding {
    /// Prints the spec value (`nearest-even`, `{ stochastic_bits = 8 }`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_toml() {
            toml::Value::String(s) => f.write_str(&s),
            other => write!(f, "{other}"),
        }
    }
}

impl FromStr for Rounding {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "nearest-even" => Rounding::NearestEven,
            "nearest-away" => Rounding::NearestAway,
            "nearest-up" => Rounding::NearestUp,
            "toward-zero" => Rounding::TowardZero,
            "down" => Rounding::Down,
            "up" => Rounding::Up,
            "stochastic" => Rounding::STOCHASTIC,
            other => {
                return Err(SpecError::InvalidValue {
                    key: "rounding".into(),
                    value: format!("{other:?}"),
                    allowed: format!(
                        "one of {} or {{ stochastic_bits = 1..=32 }}",
                        Rounding::NAMES.join(", ")
                    ),
                })
            }
        })
    }
}

impl Serialize for Rounding {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_toml().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Rounding {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = toml::Value::deserialize(d)?;
        Rounding::from_toml(&value).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_follow_each_nearest_rule() {
        let inputs = [2.5, 2.4, -2.5, -1.5, 3.5];
        let cases = [
            (Rounding::NearestEven, [2.0, 2.0, -2.0, -2.0, 4.0]),
            (Rounding::NearestAway, [3.0, 2.0, -3.0, -2.0, 4.0]),
            (Rounding::NearestUp, [3.0, 2.0, -2.0, -1.0, 4.0]),
        ];
        for (mode, expected) in cases {
            for (x, e) in inputs.iter().zip(expected) {
                assert_eq!(mode.round_int(*x, 0), e, "{mode} of {x}");
            }
        }
    }

    #[test]
    fn near_tie_values_are_not_double_rounded() {
        // 0.5 - 2^-54: adding 0.5 in f64 would round to 1.0 and floor to 1.
        let v = 0.5 - 2f64.powi(-54);
        assert!(v < 0.5 && v + 0.5 == 1.0);
        for mode in Rounding::NEAREST {
            assert_eq!(mode.round_int(v, 0), 0.0, "{mode}");
        }
        let v = -0.5 - 2f64.powi(-53);
        assert!(v < -0.5);
        for mode in Rounding::NEAREST {
            assert_eq!(mode.round_int(v, 0), -1.0, "{mode}");
        }
    }

    #[test]
    fn directed_modes() {
        for (v, down, up, tz) in [(1.25, 1.0, 2.0, 1.0), (-1.25, -2.0, -1.0, -1.0)] {
            assert_eq!(Rounding::Down.round_int(v, 0), down);
            assert_eq!(Rounding::Up.round_int(v, 0), up);
            assert_eq!(Rounding::TowardZero.round_int(v, 0), tz);
        }
    }

    #[test]
    fn limited_bit_stochastic_truncates_the_fraction() {
        // With 2 bits, a fraction of 0.3 is truncated to 0.25: the value rounds
        // up only for the single draw (of four) whose top bits are 0b11.
        let sr = Rounding::Stochastic { bits: 2 };
        let ups: Vec<f64> = (0u32..4).map(|d| sr.round_int(0.3, d << 30)).collect();
        assert_eq!(ups, vec![0.0, 0.0, 0.0, 1.0]);
    }

    #[test]
    fn parses_and_prints_every_mode() {
        for name in Rounding::NAMES {
            let r: Rounding = name.parse().unwrap();
            assert_eq!(r.to_string(), name);
        }
        let v: toml::Value = toml::from_str::<toml::Table>("r = { stochastic_bits = 8 }")
            .unwrap()
            .remove("r")
            .unwrap();
        let r = Rounding::from_toml(&v).unwrap();
        assert_eq!(r, Rounding::Stochastic { bits: 8 });
        assert_eq!(r.to_string(), "{ stochastic_bits = 8 }");
    }

    #[test]
    fn rejects_unknown_modes_naming_the_allowed_ones() {
        let err = "nearest".parse::<Rounding>().unwrap_err().to_string();
        assert!(err.contains("\"nearest\""), "{err}");
        assert!(err.contains("nearest-even"), "{err}");
        let v: toml::Value = toml::Value::Table(toml::from_str("stochastic_bits = 40").unwrap());
        let err = Rounding::from_toml(&v).unwrap_err().to_string();
        assert!(err.contains("1..=32"), "{err}");
    }
}
