//! The [`NumberFormat`] trait: what a format can represent, and its kernels.
//!
//! A format implements two kernels and nothing about dispatch:
//! - [`quantize_tensor`](NumberFormat::quantize_tensor), composed tch ops on
//!   `Double` tensors, runs on any device;
//! - [`quantize_native`](NumberFormat::quantize_native), a fused Rust loop over
//!   a contiguous `f32` slice, optional;
//! - [`cuda_kernel`](NumberFormat::cuda_kernel), a fused CUDA kernel's
//!   source and parameters (see [`crate::cuda`]), optional.
//!
//! [`quantize`](NumberFormat::quantize) picks one (see [`Backend`]), handles
//! dtypes, devices, empty tensors and random streams, and is what callers use.

pub mod dispatch;
mod grid;

use std::fmt;

use dyn_clone::DynClone;
use tch::Tensor;

pub use crate::backend::Backend;
use crate::cuda::CudaKernel;
use crate::error::{Error, Result};
use crate::rng::{QuantRng, RandomStream};
use crate::rounding::Rounding;
pub use grid::NearestGrid;

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
/// assert_eq!(y.size(), x.size());
/// # Ok(()) }
/// # demo(&swalp_formats::FixedPoint::new(8, 6, true, false)?)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait NumberFormat: DynClone + Send + Sync + fmt::Debug {
    /// The registry name (`"fixed"`, `"bfloat16"`, ...).
    ///
    /// ```
    /// use swalp_core::NumberFormat;
    /// assert_eq!(swalp_formats::FixedPoint::new(8, 6, true, false)?.name(), "fixed");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn name(&self) -> &str;

    /// The format's own spec keys and values; together with `format = name`
    /// they rebuild an equal format through the registry.
    ///
    /// ```
    /// use swalp_core::{registry::build_format, NumberFormat};
    /// let fixed = swalp_formats::FixedPoint::new(8, 6, true, false)?;
    /// let mut spec = fixed.params();
    /// spec.insert("format".into(), fixed.name().into());
    /// assert_eq!(build_format(&spec)?.params(), fixed.params());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn params(&self) -> toml::Table;

    /// Storage bits per value, including any shared exponent amortised over
    /// its block where the block size is fixed by the format.
    ///
    /// ```
    /// use swalp_core::NumberFormat;
    /// use swalp_formats::{FloatFormat, Overflow, Specials};
    /// let e5m2 = FloatFormat::new(5, 2, true, Specials::Ieee, Overflow::Infinity)?;
    /// assert_eq!(e5m2.bits_per_value(), 8.0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn bits_per_value(&self) -> f64;

    /// Tensor kernel: rounds `x`, a `Double` tensor on any device, and returns
    /// a `Double` tensor of the same shape. `random` is `Some` exactly when
    /// `rounding` is stochastic; element `i` (row-major) must use draw
    /// `random.bits(i)` so that it agrees with the native kernel.
    ///
    /// ```
    /// use swalp_core::{tch::Tensor, NumberFormat, Rounding};
    /// let fixed = swalp_formats::FixedPoint::new(8, 6, true, false)?;
    /// let y = fixed.quantize_tensor(&Tensor::from_slice(&[0.3f64]), Rounding::NearestEven, None)?;
    /// assert_eq!(y.double_value(&[0]), 0.296875);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn quantize_tensor(
        &self,
        x: &Tensor,
        rounding: Rounding,
        random: Option<RandomStream>,
    ) -> Result<Tensor>;

    /// Whether [`quantize_native`](Self::quantize_native) is implemented.
    ///
    /// ```
    /// use swalp_core::NumberFormat;
    /// assert!(swalp_formats::FixedPoint::new(8, 6, true, false)?.has_native());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn has_native(&self) -> bool {
        false
    }

    /// Native kernel: rounds the contiguous row-major `f32` data `x` of the
    /// given `shape` into `out` (same length). The default reports that this
    /// format has no native kernel.
    ///
    /// ```
    /// use swalp_core::{NumberFormat, Rounding};
    /// let fixed = swalp_formats::FixedPoint::new(8, 6, true, false)?;
    /// let mut out = [0.0f32; 2];
    /// fixed.quantize_native(&[0.3, -3.0], &[2], &mut out, Rounding::NearestEven, None)?;
    /// assert_eq!(out, [0.296875, -2.0]); // -3 saturates
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
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

    /// The CUDA kernel that rounds a tensor of `shape` with `rounding` (see
    /// [`crate::cuda`]), or `None` when the format has none for it (CUDA
    /// tensors then take the tensor kernel). Its results must equal the
    /// native kernel's; the default has none.
    ///
    /// ```
    /// use swalp_core::{NumberFormat, Rounding};
    /// let fixed = swalp_formats::FixedPoint::new(8, 6, true, false)?;
    /// let kernel = fixed.cuda_kernel(&[4, 4], Rounding::NearestEven)?.expect("fixed has one");
    /// assert_eq!(kernel.entry, "swalp_fixed");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn cuda_kernel(&self, shape: &[usize], rounding: Rounding) -> Result<Option<CudaKernel>> {
        let _ = (shape, rounding);
        Ok(None)
    }

    /// Whether each value rounds on its own, whatever the other elements of
    /// its tensor (no shared exponent, scale or block): only such formats
    /// can round a running sum ([`crate::matmul`]). The default says no.
    ///
    /// ```
    /// use swalp_core::NumberFormat;
    /// assert!(swalp_formats::FixedPoint::new(8, 6, true, false)?.per_element());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn per_element(&self) -> bool {
        false
    }

    /// How this format rounds single `f64` values on the CPU, for a
    /// per-element format ([`per_element`](Self::per_element)): what the
    /// native matrix-product kernel of [`crate::matmul`] calls after every
    /// multiplication and addition, whose results are exact `f64` values
    /// rather than `f32`. Its results must equal
    /// [`quantize_tensor`](Self::quantize_tensor)'s on the same `f64`
    /// values. The default has none (matrix products then take the tensor
    /// implementation).
    ///
    /// ```
    /// use swalp_core::{NumberFormat, Rounding};
    /// let fixed = swalp_formats::FixedPoint::new(8, 6, true, false)?;
    /// let rounder = fixed.value_rounding(Rounding::NearestEven).expect("fixed has one");
    /// let mut v = [0.3, -3.0];
    /// rounder.round_values(&mut v, None, 0);
    /// assert_eq!(v, [0.296875, -2.0]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn value_rounding(&self, rounding: Rounding) -> Option<Box<dyn ValueRounding>> {
        let _ = rounding;
        None
    }

    /// Whether the format leaves a tensor of this shape in full precision
    /// (NVFP4's `unaligned = "keep"`): a quantizer then skips its transforms
    /// (RHT, which such a shape may not fit) and returns the input. The
    /// default keeps nothing.
    ///
    /// ```
    /// use swalp_core::NumberFormat;
    /// assert!(!swalp_formats::FixedPoint::new(8, 6, true, false)?.keeps(&[3, 20]));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn keeps(&self, shape: &[usize]) -> bool {
        let _ = shape;
        false
    }

    /// Rounds `x` onto this format with the default backend. The result has
    /// `x`'s shape, dtype and device and is detached from any autograd graph.
    ///
    /// ```
    /// use swalp_core::{tch::Tensor, NumberFormat, QuantRng, Rounding};
    /// let fixed = swalp_formats::FixedPoint::new(8, 6, true, false)?;
    /// let y = fixed.quantize(&Tensor::from_slice(&[0.3f32]), Rounding::Up, &mut QuantRng::new(0))?;
    /// assert_eq!(Vec::<f32>::try_from(&y)?, [0.3125]); // 20/64
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn quantize(&self, x: &Tensor, rounding: Rounding, rng: &mut QuantRng) -> Result<Tensor> {
        dispatch::quantize(self, x, rounding, rng, Backend::Auto)
    }
}

dyn_clone::clone_trait_object!(NumberFormat);

/// A format's rounding of single `f64` values with one rounding mode, from
/// [`NumberFormat::value_rounding`].
pub trait ValueRounding: Send + Sync {
    /// Rounds every value in place; under stochastic rounding `values[j]`
    /// takes the draw `random.bits(first + j)`, as element `first + j` of a
    /// tensor would (see [`crate::kernel::native::map_values`]).
    fn round_values(&self, values: &mut [f64], random: Option<RandomStream>, first: u64);

    /// The grid [`round_values`](Self::round_values) rounds to, when it
    /// rounds to nearest (ties to even) and the grid fits a
    /// [`NearestGrid`]; kernels that can round such a grid themselves (the
    /// matrix-product kernel's `f32` lanes) then do, and must give the same
    /// values. The default describes none, which is always correct.
    fn nearest_grid(&self) -> Option<NearestGrid> {
        None
    }
}
