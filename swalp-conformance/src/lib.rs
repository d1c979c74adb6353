//! # swalp-conformance
//!
//! The checks every swalp number format must pass, built-in or plugin, and
//! the small helpers format tests share. This crate is for tests only: it is
//! never published and must only ever appear under `[dev-dependencies]`
//! (`swalp-cli/tests/architecture.rs` checks that).
//!
//! It owns the *properties* a format promises through
//! [`swalp_core::NumberFormat`], stated once and checked the same way for
//! every format, on both backends:
//!
//! | check | property |
//! |---|---|
//! | [`Check::Representable`] | every output of every rounding is a fixed point of nearest-even rounding (bit for bit, with the same shape, so block formats keep their blocks) |
//! | [`Check::Idempotent`] | rounding an output again with the same mode changes nothing |
//! | [`Check::Monotone`] | nearest and directed roundings are monotone (per element, or within blocks sharing one scale: see [`Monotone`]) |
//! | [`Check::Backends`] | native and tensor kernels give the same bits, stochastic rounding included, on small, large (parallel) and odd-sized tensors |
//! | [`Check::Unbiased`] | stochastic rounding of a value between two neighbours averages to the value, within a bound from Bernstein's inequality |
//! | [`Check::Specials`] | ±0, NaN and ±Inf follow the format's declared rules ([`Zero`], [`Nan`]) under every mode |
//! | [`Check::SignSymmetric`] | (opt-in) `Q(-x) = -Q'(x)`, `Q'` the mirrored mode |
//!
//! What it leaves to each format's own tests: exact values (tables,
//! independent references, tie rules, saturation values), spec parsing and
//! errors, dtypes and layouts. A format passing this kit is well-behaved,
//! not necessarily correct.
//!
//! ```
//! # use swalp_formats as _;
//! // Every check, default inputs:
//! swalp_conformance::check(r#"{ format = "fixed", wl = 8, fl = 4 }"#);
//! // A block format: monotone only where every block has the same maximum.
//! swalp_conformance::Conformance::new(
//!     r#"{ format = "bfp", wl = 8, block = { dim = 0 }, symmetric = true }"#,
//! )
//!     .shapes(&[&[12, 20]])
//!     .exponents(-6, 2)
//!     .monotone_anchored(&[12, 20], 8.0, |idx| idx[1] == 0)
//!     .run();
//! ```
//!
//! The helpers ([`same`], [`assert_same_slices`], [`tensor`], [`values`],
//! [`run_on`], [`Data`], ...) are public for format tests to use rather than
//! copy.

#![warn(missing_docs)]

mod checks;
mod helpers;
#[cfg(test)]
mod toy;

use std::fmt;

use swalp_core::{Backend, NumberFormat, Quantizer, Rounding};

pub use helpers::{
    assert_same_outputs, assert_same_slices, p2, quantize, quantizer, run_both, run_on, same,
    same_f64, shape_i64, tensor, values, values_f64, Data, ALL_ROUNDINGS, BACKENDS, SR2,
};

/// Runs every check on the format of `spec` (spec syntax, without or with a
/// `rounding`, which is ignored) with default inputs: shapes `[1000]` and
/// `[20, 50]`, values in binades `-12..=12`, signed zeros, NaN isolated,
/// elementwise monotonicity. Panics with a message naming the check, the
/// spec, the rounding, the backend and the offending input and outputs.
///
/// For formats whose properties differ (blocks, unsigned zero, NaN that
/// poisons a block...), use [`Conformance`].
pub fn check(spec: &str) {
    Conformance::new(spec).run();
}

/// One of the properties [`Conformance`] checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Check {
    /// `Q_ne(Q_r(x)) == Q_r(x)` bit for bit for every rounding `r`.
    Representable,
    /// `Q_r(Q_r(x)) == Q_r(x)` for every rounding `r` (stochastic ones with
    /// a fresh stream).
    Idempotent,
    /// `x <= x'` implies `Q_r(x) <= Q_r(x')` for nearest and directed `r`.
    Monotone,
    /// Native and tensor kernels agree bit for bit (any NaN matching any NaN).
    Backends,
    /// Stochastic rounding is unbiased between neighbours.
    Unbiased,
    /// ±0, NaN and ±Inf follow the declared rules.
    Specials,
    /// `Q_r(-x) == -Q_r'(x)`, `r'` the mirror of `r` (opt-in).
    SignSymmetric,
    /// `params()` names only keys its factory declares, each within what
    /// the declaration allows, and rebuilds an equal format through the
    /// registry (registered formats only).
    Params,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Check::Representable => "representability",
            Check::Idempotent => "idempotence",
            Check::Monotone => "monotonicity",
            Check::Backends => "native == tensor",
            Check::Unbiased => "unbiased stochastic rounding",
            Check::Specials => "±0/NaN/Inf",
            Check::SignSymmetric => "sign symmetry",
            Check::Params => "params() round trip",
        })
    }
}

/// What a format does with signed zeros.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Zero {
    /// `+0 → +0` and `-0 → -0` under every mode (IEEE; the default).
    #[default]
    Signed,
    /// Both zeros become `+0` (a format with a single zero, such as posits).
    Unsigned,
}

/// What a format does with NaN inputs: they always stay NaN; the question
/// is whether they touch other elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Nan {
    /// Every other element rounds as if the NaN were `0.0` (elementwise
    /// formats, and block formats that leave NaN out of the block maximum;
    /// the default).
    #[default]
    Isolated,
    /// A NaN may turn other elements (of its block) into NaN; the elements
    /// that stay numbers round as if the NaN were `0.0` (OCP MX).
    PoisonsBlock,
}

/// How monotonicity is checked.
#[derive(Clone, Debug)]
pub enum Monotone {
    /// Sorted values in one 1-D tensor must come out sorted: for formats
    /// that round each element on its own, or with one scale for the whole
    /// tensor.
    Elementwise,
    /// For block formats, where an element's grid depends on its block's
    /// maximum: a tensor of `shape` whose positions with `is_anchor(index)`
    /// hold `anchor`, and whose other positions hold sorted values of
    /// magnitude below `|anchor|`, in row-major order. With an anchor in
    /// every block, every block has the same scale, so the sorted values
    /// must come out sorted.
    Anchored {
        /// The tensor's shape.
        shape: Vec<usize>,
        /// The value at anchor positions, the largest magnitude.
        anchor: f32,
        /// Whether the position with this multi-index holds the anchor.
        is_anchor: fn(&[usize]) -> bool,
    },
}

/// Every check on one format, with the inputs and the exceptions that
/// format needs. Build with [`new`](Self::new) (a spec) or
/// [`for_format`](Self::for_format) (a format value, registered or not),
/// adjust, then [`run`](Self::run).
///
/// Defaults: shapes `[1000]` and `[20, 50]`, a large shape `[257, 131]`
/// (above [`swalp_core::kernel::native::PARALLEL_THRESHOLD`], not a
/// multiple of common block sizes) for the backend check, values in
/// binades `-12..=12` (plus zeros, ties, and in "wild" inputs infinities,
/// NaN, extremes and random bit patterns), [`Zero::Signed`],
/// [`Nan::Isolated`], [`Monotone::Elementwise`], 512 stochastic samples per
/// element, seed 0.
#[derive(Clone, Debug)]
pub struct Conformance {
    label: String,
    base: Quantizer,
    native: bool,
    shapes: Vec<Vec<usize>>,
    large_shape: Vec<usize>,
    exponents: (i32, i32),
    extra: Vec<f32>,
    seed: u64,
    zero: Zero,
    nan: Nan,
    monotone: Monotone,
    symmetric: bool,
    samples: usize,
    stochastic_shape: Option<Vec<usize>>,
    output_ulps: u32,
    idempotent: Vec<Rounding>,
    skipped: Vec<(Check, String)>,
}

impl Conformance {
    /// The checks for the format of `spec` (spec syntax; quantizer keys
    /// other than the format's own are ignored). Panics if the spec does
    /// not build.
    pub fn new(spec: &str) -> Self {
        let q: Quantizer = spec
            .parse()
            .unwrap_or_else(|e| panic!("conformance: {spec} does not build: {e}"));
        Self::with_quantizer(spec.trim().to_string(), q)
    }

    /// The checks for a format value, registered or not (handy for formats
    /// under construction, or deliberately broken ones).
    pub fn for_format(format: Box<dyn NumberFormat>) -> Self {
        let mut spec = toml::Table::new();
        spec.insert("format".into(), format.name().into());
        spec.extend(format.params());
        let label = toml::Value::Table(spec).to_string();
        Self::with_quantizer(label, Quantizer::new(format, Rounding::NearestEven))
    }

    fn with_quantizer(label: String, q: Quantizer) -> Self {
        let base = q
            .with_rounding(Rounding::NearestEven)
            .with_backend(Backend::Auto);
        Conformance {
            label,
            native: base.format().has_native(),
            base,
            shapes: vec![vec![1000], vec![20, 50]],
            large_shape: vec![257, 131],
            exponents: (-12, 12),
            extra: Vec::new(),
            seed: 0,
            zero: Zero::default(),
            nan: Nan::default(),
            monotone: Monotone::Elementwise,
            symmetric: false,
            samples: 512,
            stochastic_shape: None,
            output_ulps: 0,
            idempotent: ALL_ROUNDINGS.to_vec(),
            skipped: Vec::new(),
        }
    }

    /// The shapes of the tensors most checks use (every one needs at least
    /// one dimension; the first also shapes the stochastic check unless
    /// [`stochastic_shape`](Self::stochastic_shape) is set).
    pub fn shapes(mut self, shapes: &[&[usize]]) -> Self {
        assert!(!shapes.is_empty(), "conformance: shapes must not be empty");
        assert!(
            shapes.iter().all(|s| !s.is_empty()),
            "conformance: every shape needs a dimension"
        );
        self.shapes = shapes.iter().map(|s| s.to_vec()).collect();
        self
    }

    /// The shape of the large tensor on which the backends are compared; it
    /// should hold more than [`swalp_core::kernel::native::PARALLEL_THRESHOLD`]
    /// elements.
    pub fn large_shape(mut self, shape: &[usize]) -> Self {
        self.large_shape = shape.to_vec();
        self
    }

    /// The binades `2^lo..2^(hi+1)` generated values come from (clamped to
    /// `f32`'s): a window around the format's range.
    pub fn exponents(mut self, lo: i32, hi: i32) -> Self {
        assert!(lo <= hi, "conformance: exponents {lo} > {hi}");
        self.exponents = (lo.clamp(-149, 127), hi.clamp(-149, 127));
        self
    }

    /// Values placed first in every generated input (the finite ones only
    /// where inputs must be finite): ties, limits, values a format treats
    /// specially.
    pub fn inputs(mut self, values: &[f32]) -> Self {
        self.extra = values.to_vec();
        self
    }

    /// The seed of the generated inputs and of the random streams.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// What the format does with signed zeros (default [`Zero::Signed`]).
    pub fn zero(mut self, zero: Zero) -> Self {
        self.zero = zero;
        self
    }

    /// What the format does with NaN (default [`Nan::Isolated`]).
    pub fn nan(mut self, nan: Nan) -> Self {
        self.nan = nan;
        self
    }

    /// Checks monotonicity on anchored blocks (see [`Monotone::Anchored`]).
    pub fn monotone_anchored(
        mut self,
        shape: &[usize],
        anchor: f32,
        is_anchor: fn(&[usize]) -> bool,
    ) -> Self {
        assert!(
            anchor.is_finite() && anchor != 0.0,
            "conformance: the anchor must be finite and nonzero"
        );
        self.monotone = Monotone::Anchored {
            shape: shape.to_vec(),
            anchor,
            is_anchor,
        };
        self
    }

    /// Also checks sign symmetry, for formats whose value set is symmetric
    /// about zero.
    pub fn sign_symmetric(mut self) -> Self {
        self.symmetric = true;
        self
    }

    /// Stochastic samples per element in the unbiasedness check (default
    /// 512); more detects smaller biases and costs proportionally.
    pub fn samples(mut self, samples: usize) -> Self {
        assert!(samples >= 16, "conformance: too few samples");
        self.samples = samples;
        self
    }

    /// The shape of the tensor whose elements are sampled in the
    /// unbiasedness check (default: the first of [`shapes`](Self::shapes)).
    /// The check stacks `samples` copies along dimension 0, so a format that
    /// blocks along dimension 0 needs `shape[0]` to be a multiple of its
    /// block size (the check verifies that the copies keep their blocks).
    pub fn stochastic_shape(mut self, shape: &[usize]) -> Self {
        assert!(
            !shape.is_empty(),
            "conformance: the shape needs a dimension"
        );
        self.stochastic_shape = Some(shape.to_vec());
        self
    }

    /// For formats whose grid points are not all `f32` values (they round
    /// `i · scale` to `f32`): the unbiasedness check allows the mean to be
    /// off by this many `f32` ulps of the neighbours (default 0).
    pub fn output_ulps(mut self, ulps: u32) -> Self {
        self.output_ulps = ulps;
        self
    }

    /// The roundings the idempotence check applies twice (default: all of
    /// [`ALL_ROUNDINGS`]); give the reason for leaving any out.
    pub fn idempotent_roundings(mut self, roundings: &[Rounding], reason: &str) -> Self {
        assert!(!reason.is_empty(), "conformance: say why");
        self.idempotent = roundings.to_vec();
        self
    }

    /// Leaves out one check, for a format where the property does not hold
    /// by design; `reason` says why (it is part of the test's record).
    pub fn skip(mut self, check: Check, reason: &str) -> Self {
        assert!(
            !reason.is_empty(),
            "conformance: say why {check} is skipped"
        );
        self.skipped.push((check, reason.to_string()));
        self
    }

    /// Whether `check` runs.
    pub fn runs(&self, check: Check) -> bool {
        let opted_out = self.skipped.iter().any(|(c, _)| *c == check);
        !opted_out && (check != Check::SignSymmetric || self.symmetric)
    }

    /// Runs every check not skipped, panicking at the first failure with a
    /// message naming the check, the spec, the rounding, the backend and
    /// the offending input and outputs.
    pub fn run(&self) {
        if self.runs(Check::Representable) || self.runs(Check::Idempotent) {
            self.check_representable_and_idempotent();
        }
        if self.runs(Check::Monotone) {
            self.check_monotone();
        }
        if self.runs(Check::Backends) {
            self.check_backends();
        }
        if self.runs(Check::Unbiased) {
            self.check_unbiased();
        }
        if self.runs(Check::Specials) {
            self.check_specials();
        }
        if self.runs(Check::SignSymmetric) {
            self.check_sign_symmetric();
        }
        if self.runs(Check::Params) {
            self.check_params();
        }
    }
}
