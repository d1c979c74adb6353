//! The kit's own tests: a toy format, correct or with one deliberate bug,
//! must pass every check when correct and fail exactly the check its bug
//! breaks.

use std::panic::{catch_unwind, AssertUnwindSafe};

use swalp_core::tch::Tensor;
use swalp_core::{
    FormatFactory, NumberFormat, ParamInfo, Params, RandomStream, Result, Rounding, SpecError,
};

use crate::{check, values_f64, Check, Conformance};

/// One bug each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bug {
    None,
    /// The tensor kernel breaks nearest-even ties away from zero.
    TensorTiesAway,
    /// `up` moves even values already on the grid.
    UpAlwaysSteps,
    /// Nearest-even sends (1, 1.25) to 0.75.
    NotMonotone,
    /// Stochastic rounding rounds up half as often as it should.
    Biased,
    /// `-0` becomes `+0` (while zeros are declared signed).
    NegativeZeroLost,
    /// NaN becomes 0.
    NanToZero,
    /// The range is [-8, 7.75], like two's complement.
    AsymmetricRange,
}

/// Multiples of 1/4 in [-8, 8], rounding as [`Rounding`] says (but for the
/// bug).
#[derive(Clone, Debug)]
struct Toy {
    bug: Bug,
}

impl Toy {
    fn round(&self, v: f64, r: Rounding, draw: u32, native: bool) -> f64 {
        if v.is_nan() {
            return if self.bug == Bug::NanToZero { 0.0 } else { v };
        }
        let s = v * 4.0;
        let mut n = match (self.bug, r) {
            (Bug::TensorTiesAway, Rounding::NearestEven) if !native => {
                Rounding::NearestAway.round_int(s, draw)
            }
            // Values on the grid (but zero) move up a step.
            (Bug::UpAlwaysSteps, Rounding::Up) if s != 0.0 && s == s.floor() => s + 1.0,
            (Bug::Biased, Rounding::Stochastic { .. }) => {
                let floor = s.floor();
                let up = f64::from(draw) < (s - floor) * p2_31();
                if up {
                    floor + 1.0
                } else {
                    floor
                }
            }
            _ => r.round_int(s, draw),
        };
        if self.bug == Bug::NotMonotone && r == Rounding::NearestEven && v > 1.0 && v < 1.25 {
            n = 3.0;
        }
        let top = if self.bug == Bug::AsymmetricRange {
            7.75
        } else {
            8.0
        };
        let y = (n / 4.0).clamp(-8.0, top);
        if self.bug == Bug::NegativeZeroLost && y == 0.0 {
            0.0
        } else {
            y
        }
    }
}

fn p2_31() -> f64 {
    2f64.powi(31)
}

impl NumberFormat for Toy {
    fn name(&self) -> &str {
        "toy"
    }

    fn params(&self) -> toml::Table {
        let mut t = toml::Table::new();
        t.insert("bug".into(), format!("{:?}", self.bug).into());
        t
    }

    fn bits_per_value(&self) -> f64 {
        7.0
    }

    fn quantize_tensor(
        &self,
        x: &Tensor,
        rounding: Rounding,
        random: Option<RandomStream>,
    ) -> Result<Tensor> {
        // A test format: through host memory, CPU only.
        let y: Vec<f64> = values_f64(x)
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let draw = random.map_or(0, |r| r.bits(i as u64));
                self.round(v, rounding, draw, false)
            })
            .collect();
        Ok(Tensor::from_slice(&y).reshape(x.size()))
    }

    fn has_native(&self) -> bool {
        true
    }

    fn quantize_native(
        &self,
        x: &[f32],
        _shape: &[usize],
        out: &mut [f32],
        rounding: Rounding,
        random: Option<RandomStream>,
    ) -> Result<()> {
        for (i, (o, &v)) in out.iter_mut().zip(x).enumerate() {
            let draw = random.map_or(0, |r| r.bits(i as u64));
            *o = self.round(f64::from(v), rounding, draw, true) as f32;
        }
        Ok(())
    }
}

const NO_PARAMS: &[ParamInfo] = &[];

fn build_broken(_: &mut Params<'_>) -> std::result::Result<Box<dyn NumberFormat>, SpecError> {
    Ok(Box::new(Toy {
        bug: Bug::TensorTiesAway,
    }))
}

swalp_core::register_format!(FormatFactory {
    name: "conformance-toy-broken",
    summary: "a format whose kernels disagree, for the kit's own tests",
    params: NO_PARAMS,
    build: build_broken,
});

/// A format whose `params()` writes a key its factory does not declare.
#[derive(Clone, Debug)]
struct Undeclared;

impl NumberFormat for Undeclared {
    fn name(&self) -> &str {
        "conformance-toy-undeclared"
    }

    fn params(&self) -> toml::Table {
        toml::Table::from_iter([("extra".to_string(), toml::Value::Integer(1))])
    }

    fn bits_per_value(&self) -> f64 {
        32.0
    }

    fn quantize_tensor(&self, x: &Tensor, _: Rounding, _: Option<RandomStream>) -> Result<Tensor> {
        Ok(x.f_detach_copy()?)
    }
}

fn build_undeclared(_: &mut Params<'_>) -> std::result::Result<Box<dyn NumberFormat>, SpecError> {
    Ok(Box::new(Undeclared))
}

swalp_core::register_format!(FormatFactory {
    name: "conformance-toy-undeclared",
    summary: "a format whose params() writes an undeclared key, for the kit's own tests",
    params: NO_PARAMS,
    build: build_undeclared,
});

#[test]
fn params_naming_an_undeclared_key_fail() {
    let kit = [
        Check::Representable,
        Check::Idempotent,
        Check::Monotone,
        Check::Backends,
        Check::Unbiased,
        Check::Specials,
    ]
    .into_iter()
    .fold(
        Conformance::new(r#"{ format = "conformance-toy-undeclared" }"#),
        |kit, check| kit.skip(check, "only the params check is under test"),
    );
    let message = panic_message(|| kit.run());
    assert!(message.contains("params() round trip"), "{message}");
    assert!(message.contains("`extra`"), "{message}");
}

fn kit(bug: Bug) -> Conformance {
    Conformance::for_format(Box::new(Toy { bug })).exponents(-6, 2)
}

/// The panic message of `f`, which must panic.
fn panic_message(f: impl FnOnce()) -> String {
    let err = catch_unwind(AssertUnwindSafe(f)).expect_err("the check passed a broken format");
    err.downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[test]
fn a_correct_format_passes_every_check() {
    kit(Bug::None).sign_symmetric().run();
}

#[test]
fn each_bug_fails_the_check_it_breaks() {
    for (bug, check) in [
        (Bug::TensorTiesAway, Check::Backends),
        (Bug::UpAlwaysSteps, Check::Idempotent),
        (Bug::NotMonotone, Check::Monotone),
        (Bug::Biased, Check::Unbiased),
        (Bug::NegativeZeroLost, Check::Specials),
        (Bug::NanToZero, Check::Specials),
    ] {
        let msg = panic_message(|| kit(bug).run());
        let want = format!(
            "conformance check `{check}` failed for {{ format = \"toy\", bug = \"{bug:?}\" }}"
        );
        assert!(
            msg.starts_with(&want),
            "{bug:?}: expected `{want}...`, got: {msg}"
        );
        // The message names a rounding and the offending input.
        assert!(msg.contains("x = ") || msg.contains("x["), "{bug:?}: {msg}");
        // Skipping the broken check (with a reason) lets the rest pass.
        kit(bug).skip(check, "deliberately broken").run();
    }
    // Sign symmetry is opt-in: the asymmetric range passes without it.
    let asymmetric = || kit(Bug::AsymmetricRange).inputs(&[7.9, -7.9]);
    asymmetric().run();
    let msg = panic_message(|| asymmetric().sign_symmetric().run());
    assert!(msg.contains("`sign symmetry` failed"), "{msg}");
}

#[test]
#[should_panic(
    expected = "conformance check `native == tensor` failed for { format = \"conformance-toy-broken\" }"
)]
fn a_registered_broken_format_fails_by_its_spec() {
    check(r#"{ format = "conformance-toy-broken" }"#);
}

#[test]
fn a_bias_in_stochastic_rounding_is_found_in_the_sum_alone() {
    // A bias too small for any single element's bound still fails the
    // summed bound: 2% of up-roundings go down instead.
    #[derive(Clone, Debug)]
    struct SlightlyBiased;
    impl NumberFormat for SlightlyBiased {
        fn name(&self) -> &str {
            "slightly-biased"
        }
        fn params(&self) -> toml::Table {
            toml::Table::new()
        }
        fn bits_per_value(&self) -> f64 {
            7.0
        }
        fn quantize_tensor(
            &self,
            x: &Tensor,
            rounding: Rounding,
            random: Option<RandomStream>,
        ) -> Result<Tensor> {
            let y: Vec<f64> = values_f64(x)
                .iter()
                .enumerate()
                .map(|(i, &v)| {
                    let draw = random.map_or(0, |r| r.bits(i as u64));
                    let mut n = rounding.round_int(v * 4.0, draw);
                    // Every 50th up-rounding of a non-grid value goes down.
                    if rounding.is_stochastic() && n > v * 4.0 && draw % 50 == 0 {
                        n -= 1.0;
                    }
                    (n / 4.0).clamp(-8.0, 8.0)
                })
                .collect();
            Ok(Tensor::from_slice(&y).reshape(x.size()))
        }
    }
    let msg = panic_message(|| {
        Conformance::for_format(Box::new(SlightlyBiased))
            .exponents(-6, 2)
            .run()
    });
    assert!(msg.contains("a systematic bias"), "{msg}");
}
