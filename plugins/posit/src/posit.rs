//! The posit<n, es> format: its parameters, range and the layout of its
//! values binade by binade, which both kernels read.

use swalp_core::{kernel::native::pow2, ParamInfo, Result, SpecError};

/// `n`: bits per posit.
pub const N: ParamInfo = ParamInfo::int("n", 2, 32, "bits per posit, sign included");

/// `es`: exponent bits; the 2022 standard fixes 2, earlier posits
/// (Gustafson and Yonemoto, 2017) used 0 to 4 (with `2^es·(n-2) <= 127`, checked by [`Posit::new`]).
pub const ES: ParamInfo = ParamInfo::int(
    "es",
    0,
    4,
    "exponent bits, with 2^es·(n-2) <= 127: useed = 2^(2^es), maxpos = useed^(n-2); the 2022 standard uses 2",
)
.default_int(2);

/// The largest `log2(maxpos) = 2^es · (n - 2)` allowed, so that every posit
/// lies in the range of `f32` (`maxpos <= 2^127`, `minpos >= 2^-127`).
pub const MAX_SCALE: i32 = 127;

/// A posit format with `n` bits and `es` exponent bits.
///
/// An `n`-bit pattern `p` (two's complement for negative values) encodes 0
/// (`p = 0`), NaR (`p = 100...0`) or `±useed^k · 2^e · (1.f)`: after the sign
/// bit comes the regime, a run of identical bits ended by the opposite bit or
/// by the end of the word (`k = run - 1` for a run of ones, `k = -run` for a
/// run of zeros), then up to `es` exponent bits `e` (bits cut off by the end
/// of the word are zeros) and the remaining bits as the fraction `f`, where
/// `useed = 2^(2^es)`. The largest value is `maxpos = useed^(n-2)`, the
/// smallest positive `minpos = useed^-(n-2)`.
///
/// See the [crate documentation](crate) for rounding and the spec syntax.
///
/// ```
/// use swalp_posit::Posit;
/// let p = Posit::new(8, 0).unwrap();
/// assert_eq!((p.maxpos(), p.minpos()), (64.0, 1.0 / 64.0));
/// let p16 = Posit::new(16, 1).unwrap();
/// assert_eq!(p16.maxpos(), 2f64.powi(28));
/// assert!(Posit::new(32, 2).is_ok());
/// assert!(Posit::new(18, 3).is_err()); // maxpos = 2^128 would overflow f32
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Posit {
    n: u32,
    es: u32,
    /// The layout of binade `s` at index `s + scale()`, for `s` in
    /// `-scale()..scale()`.
    binades: Vec<Binade>,
}

/// What the posits look like between `2^s` and `2^(s+1)`, for a binade `s`
/// strictly inside the posit range.
///
/// The 2022 standard rounds to nearest on the bit pattern: a value between
/// the neighbouring posits `u < w` (patterns `U` and `U + 1`) rounds down if
/// it is below the `(n+1)`-bit posit `v` with pattern `U` followed by a one
/// bit, up if above, and to the even pattern if equal. Where the neighbours
/// differ in fraction bits `v` is their arithmetic midpoint; where they differ
/// in exponent or regime bits it is their geometric midpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binade {
    /// The binade holds evenly spaced posits `j · 2^step` (`step <= s`, with
    /// `s - step` fraction bits), `2^s` and `2^(s+1)` included; `v` is the
    /// arithmetic midpoint of neighbours.
    Uniform {
        /// `log2` of the spacing.
        step: i32,
        /// No fraction bits (`step == s`) and the pattern of `2^s` is even,
        /// so that the standard sends the tie `1.5 · 2^s` down to `2^s`
        /// (rounding on the grid alone would send it up, to the even
        /// multiple `2 · 2^s`).
        tie_down: bool,
    },
    /// The exponent field is cut short: the binade lies between the
    /// neighbouring posits `2^low` and `2^(low+gap)` (`gap >= 2`, no posit
    /// between them); `v` is the geometric midpoint `2^(low + gap/2)`.
    Sparse {
        /// `log2` of the lower neighbour.
        low: i32,
        /// `log2` of the ratio of the upper to the lower neighbour.
        gap: i32,
        /// The pattern of `2^low` is odd, so the standard sends the tie
        /// `2^(low + gap/2)` up.
        tie_up: bool,
    },
}

impl Posit {
    /// A posit format; fails outside `2 <= n <= 32`, `0 <= es <= 4`, or when
    /// `maxpos = 2^(2^es · (n-2))` would exceed `2^127`.
    pub fn new(n: u32, es: u32) -> Result<Self, SpecError> {
        N.check(&i64::from(n).into())?;
        ES.check(&i64::from(es).into())?;
        let largest_n = (MAX_SCALE >> es) as u32 + 2;
        if n > largest_n {
            return Err(SpecError::InvalidValue {
                key: N.name.into(),
                value: n.to_string(),
                allowed: format!(
                    "an integer in 2..={largest_n} for es = {es} (maxpos = 2^(2^es·(n-2)) must \
                     not exceed 2^127, so that every posit fits f32)"
                ),
            });
        }
        let mut posit = Posit {
            n,
            es,
            binades: Vec::new(),
        };
        let scale = posit.scale();
        posit.binades = (-scale..scale).map(|s| posit.layout(s)).collect();
        Ok(posit)
    }

    /// Bits per posit.
    pub fn n(&self) -> u32 {
        self.n
    }

    /// Exponent bits.
    pub fn es(&self) -> u32 {
        self.es
    }

    /// `log2(useed) = 2^es`.
    pub fn useed_log2(&self) -> i32 {
        1 << self.es
    }

    /// `log2(maxpos) = 2^es · (n - 2)`; `log2(minpos)` is its negative.
    pub fn scale(&self) -> i32 {
        self.useed_log2() * (self.n as i32 - 2)
    }

    /// The largest posit, `useed^(n-2)`.
    pub fn maxpos(&self) -> f64 {
        pow2(self.scale())
    }

    /// The smallest positive posit, `useed^-(n-2)`.
    pub fn minpos(&self) -> f64 {
        pow2(-self.scale())
    }

    /// The layout of binade `s` (`-scale() <= s < scale()`), from the table
    /// both kernels use.
    pub fn binade(&self, s: i32) -> Binade {
        self.binades[(s + self.scale()) as usize]
    }

    /// The binade table, binade `-scale()` first.
    pub(crate) fn binades(&self) -> &[Binade] {
        &self.binades
    }

    /// Computes the layout of binade `s` from the encoding.
    fn layout(&self, s: i32) -> Binade {
        let (n, es) = (self.n as i32, self.es as i32);
        let k = s.div_euclid(1 << es);
        let e = s.rem_euclid(1 << es);
        // The regime is k+1 ones and a zero, or -k zeros and a one.
        let regime_len = if k >= 0 { k + 2 } else { 1 - k };
        // Bits left after the sign and the regime; 0 <= rest <= n - 3 for s
        // strictly inside the range.
        let rest = n - 1 - regime_len;
        // The last bit of a pattern whose exponent and fraction fields are
        // empty is the regime's last bit: its terminator (0) when k >= 0, the
        // final one when k < 0.
        let regime_last_odd = k < 0;
        if rest >= es {
            let fraction = rest - es;
            let lower_odd = if es == 0 { regime_last_odd } else { e & 1 == 1 };
            Binade::Uniform {
                step: s - fraction,
                tie_down: fraction == 0 && !lower_odd,
            }
        } else {
            // Only the top `rest` exponent bits are stored: the exponent
            // steps by 2^(es - rest) within the regime.
            let shift = es - rest;
            let e_low = e - e.rem_euclid(1 << shift);
            let lower_odd = if rest == 0 {
                regime_last_odd
            } else {
                (e_low >> shift) & 1 == 1
            };
            Binade::Sparse {
                low: k * (1 << es) + e_low,
                gap: 1 << shift,
                tie_up: lower_odd,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_of_posit8_es2() {
        let p = Posit::new(8, 2).unwrap();
        // Around 1: regime "10", two exponent bits, three fraction bits.
        assert_eq!(
            p.binade(0),
            Binade::Uniform {
                step: -3,
                tie_down: false
            }
        );
        // 2^16..2^20: regime "111110", one exponent bit: 2^16, 2^18, 2^20.
        assert_eq!(
            p.binade(17),
            Binade::Sparse {
                low: 16,
                gap: 2,
                tie_up: false
            }
        );
        assert_eq!(
            p.binade(19),
            Binade::Sparse {
                low: 18,
                gap: 2,
                tie_up: true
            }
        );
        // 2^20..2^24: regime "1111110" with no exponent bits; 0111_1110 is even.
        assert_eq!(
            p.binade(23),
            Binade::Sparse {
                low: 20,
                gap: 4,
                tie_up: false
            }
        );
        // minpos = 2^-24 (0000_0001, odd) to 2^-20.
        assert_eq!(
            p.binade(-24),
            Binade::Sparse {
                low: -24,
                gap: 4,
                tie_up: true
            }
        );
    }

    #[test]
    fn rejects_posits_beyond_f32() {
        assert!(Posit::new(33, 0).is_err());
        assert!(Posit::new(8, 5).is_err());
        assert!(Posit::new(17, 3).is_ok());
        let err = Posit::new(18, 3).unwrap_err().to_string();
        assert!(err.contains("2..=17"), "{err}");
        assert!(Posit::new(9, 4).is_ok());
        assert!(Posit::new(10, 4).is_err());
    }
}
