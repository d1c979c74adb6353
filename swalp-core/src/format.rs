//! The [`NumberFormat`] trait: what a format can represent, and its kernels.
//!
//! A format implements two kernels and nothing about dispatch:
//! - [`quantize_tensor`](NumberFormat::quantize_tensor), composed tch ops on
//!   `Double` tensors, runs on any device;
//! - [`quantize_native`](NumberFormat::quantize_native), a fused Rust loop over
//!   a contiguous `f32` slice, optional.
//!
//! [`quantize`](NumberFormat::quantize) picks one (see [`Backend`]), handles
//! dtypes, devices, empty tensors and random streams, and is what callers use.

use std::fmt;
use std::str::FromStr;

use dyn_clone::DynClone;
use serde::{Deserialize, Serialize};
use tch::Tensor;

use crate::error::{Error, Result, SpecError};
use crate::rng::{QuantRng, RandomStream};
use crate::rounding::Rounding;

/// Which kernel rounds a tensor.
///
/// `Auto` (the default) uses the native kernel for `f32` tensors on the CPU
/// when the format has one, and the tensor kernel otherwise.
///
/// ```
/// use swalp_core::Backend;
/// assert_eq!("native".parse::<Backend>().unwrap(), Backend::Native);
/// assert_eq!(Backend::default(), Backend::Auto);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// Native on CPU `f32` when available, tensor otherwise.
    #[default]
    Auto,
    /// The fused Rust CPU kernel; `f32` CPU tensors only.
    Native,
    /// Composed tch ops; any device and floating dtype.
    Tensor,
}

impl Backend {
    /// Accepted spellings.
    pub const NAMES: [&'static str; 3] = ["auto", "native", "tensor"];
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Auto => "auto",
            Backend::Native => "native",
            Backend::Tensor => "tensor",
        })
    }
}

impl FromStr for Backend {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, SpecError> {
        match s {
            "auto" => Ok(Backend::Auto),
            "native" => Ok(Backend::Native),
            "tensor" => Ok(Backend::Tensor),
            other => Err(SpecError::InvalidValue {
                key: "backend".into(),
                value: format!("{other:?}"),
                allowed: "\"auto\" | \"native\" | \"tensor\"".into(),
            }),
        }
    }
}

/// A number format: the set of values a simulated number can take.
///
/// Implementors describe themselves (name, parameters, storage cost) and
/// provide kernels that round onto their value set; they never see devices,
/// dtypes or random-number state beyond what the kernels are handed.
///
/// ```
/// use swalp_core::{NumberFormat, QuantRng, Rounding, Quantizer};
/// # fn demo(format: &dyn NumberFormat) -> swalp_core::Result<()> {
/// let x = tch::Tensor::from_slice(&[0.1f32, -0.7, 3.0]);
/// let y = format.quantize(&x, Rounding::NearestEven, &mut QuantRng::new(0))?;
/// # Ok(()) }
/// ```
pub trait NumberFormat: DynClone + Send + Sync + fmt::Debug {
    /// The registry name (`"fixed"`, `"bfloat16"`, ...).
    fn name(&self) -> &str;

    /// The format's own spec keys and values; together with `format = name`
    /// they rebuild an equal format through the registry.
    fn params(&self) -> toml::Table;

    /// Storage bits per value, including any shared exponent amortised over
    /// its block where the block size is fixed by the format.
    fn bits_per_value(&self) -> f64;

    /// Tensor kernel: rounds `x`, a `Double` tensor on any device, and returns
    /// a `Double` tensor of the same shape. `random` is `Some` exactly when
    /// `rounding` is stochastic; element `i` (row-major) must use draw
    /// `random.bits(i)` so that it agrees with the native kernel.
    fn quantize_tensor(
        &self,
        x: &Tensor,
        rounding: Rounding,
        random: Option<RandomStream>,
    ) -> Result<Tensor>;

    /// Whether [`quantize_native`](Self::quantize_native) is implemented.
    fn has_native(&self) -> bool {
        false
    }

    /// Native kernel: rounds the contiguous row-major `f32` data `x` of the
    /// given `shape` into `out` (same length). The default reports that this
    /// format has no native kernel.
    fn quantize_native(
        &self,
        x: &[f32],
        shape: &[usize],
        out: &mut [f32],
        rounding: Rounding,
        random: Option<RandomStream>,
    ) -> Result<()> {
        let _ = (x, shape, out, rounding, random);
        Err(Error::Unsupported {
            format: self.name().into(),
            backend: Backend::Native,
            reason: "this format has no native kernel; use backend = \"tensor\"".into(),
        })
    }

    /// Rounds `x` onto this format with the default backend. The result has
    /// `x`'s shape, dtype and device and is detached from any autograd graph.
    fn quantize(&self, x: &Tensor, rounding: Rounding, rng: &mut QuantRng) -> Result<Tensor> {
        crate::kernel::quantize(self, x, rounding, rng, Backend::Auto)
    }
}

dyn_clone::clone_trait_object!(NumberFormat);
