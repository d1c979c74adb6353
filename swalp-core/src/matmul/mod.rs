//! Matrix products that multiply and accumulate in chosen formats: the
//! arithmetic inside a layer, which QPyTorch and its peers leave to
//! libtorch's `f32` accumulation.
//!
//! [`Accumulation`] rounds each product to a `product` format, builds sums
//! of `chunk` consecutive products in a `chunk_accumulator` format (`f32`
//! unless given), and adds those into a running sum rounded to the
//! `accumulator` format, the way hardware with narrow accumulators (and
//! software that promotes partial sums, Wang et al. 2018) computes a dot
//! product. For `y = Σ_{k<K} a_k · b_k`:
//!
//! ```text
//! p_k = Q_product(a_k · b_k)            (a_k · b_k exact: f32 × f32 fits f64)
//! chunk = None:   s ← Q_acc(s + p_k)                for k = 0, 1, ..., K-1
//! chunk = C:      for each chunk of C consecutive k (the last may be shorter):
//!                     t ← 0;  t ← Q_chunk(t + p_k)  for k in the chunk, in order
//!                     s ← Q_acc(s + Q_acc(t))
//! ```
//!
//! with `s` starting at 0. Every sum is formed in `f64` and then rounded
//! to its format, so a sum is exact before rounding whenever its operands'
//! significands fit 53 bits together (always for formats of 24 bits or
//! fewer added to an exact product of two of them, unless their exponents
//! differ by more than about 29); `f32` rounds to nearest, ties to even.
//!
//! Rounding runs through [`Quantizer::quantize`] on whole `[M, N]` matrices,
//! in this order for each `k`: the product's rounding, then the chunk sum's
//! (or, without chunks, the running sum's); at a chunk's end, `Q_acc(t)`,
//! then the running sum's. A stochastic rounding takes the next stream of
//! the [`QuantRng`] at each of these calls (a deterministic one takes none),
//! and the draw of output element `(i, j)` is the stream's draw `i·N + j`;
//! so a result is a function of the seed, on every device.
//!
//! **Implementations**, all equal bit for bit: on CPU, the `f32` lanes
//! ([`CpuKernel::Lanes`]: AVX2 and FMA, every rounding fused into the
//! product loop) when every rounding is nearest-even onto a grid that fits
//! `f32` ([`NearestGrid`](crate::format::NearestGrid)) and sums of the
//! chosen formats may be formed in `f32`; else the `f64` kernel
//! ([`CpuKernel::F64`]) for formats with a
//! [`value_rounding`](crate::NumberFormat::value_rounding); else, and on
//! other devices, the tensor implementation
//! ([`matmul_tensor`](Accumulation::matmul_tensor)).
//! [`matmul_cpu`](Accumulation::matmul_cpu) runs one CPU kernel by name.
//!
//! Accumulator and product formats must round each value on its own
//! ([`NumberFormat::per_element`](crate::NumberFormat::per_element)): a
//! block format shares a scale across the elements of a matrix, which no
//! running sum has.

use std::fmt;

mod config;
mod lanes;
mod layer;
mod native;
mod node;

pub use config::LayerArithmetic;
pub use layer::{Conv2d, Layers, Linear};

use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};
use crate::quantizer::Quantizer;
use crate::rng::QuantRng;

/// How a matrix product multiplies and accumulates; see the
/// [module documentation](self).
///
/// ```
/// use swalp_core::{matmul::Accumulation, tch::Tensor, QuantRng, Quantizer};
/// # use swalp_formats as _;
/// let fp16: Quantizer = r#"{ format = "fp16" }"#.parse()?;
/// // Swamping: 4096 products 2^-11 summed in fp16 stop growing at 1, where
/// // fp16's step (2^-10) is twice the addend and 1 + 2^-11 ties to 1.
/// let a = Tensor::full([1, 4096], 1.0f64 / 2048.0, (tch::Kind::Float, tch::Device::Cpu));
/// let b = Tensor::ones([4096, 1], (tch::Kind::Float, tch::Device::Cpu));
/// let one_sum = Accumulation::new(None, fp16.clone(), None, None)?;
/// let y = one_sum.matmul(&a, &b, &mut QuantRng::new(0))?;
/// assert_eq!(y.double_value(&[0, 0]), 1.0);
/// // Chunks of 64 summed in f32 first lose nothing: 4096 / 2048 = 2.
/// let chunked = Accumulation::new(None, fp16, Some(64), None)?;
/// let y = chunked.matmul(&a, &b, &mut QuantRng::new(0))?;
/// assert_eq!(y.double_value(&[0, 0]), 2.0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Accumulation {
    product: Option<Quantizer>,
    accumulator: Quantizer,
    chunk: Option<usize>,
    chunk_accumulator: Option<Quantizer>,
}

/// Why an [`Accumulation`] cannot be built or run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccumulationError {
    /// A role got a format that does not round values one by one.
    NotPerElement {
        /// `product`, `accumulator` or `chunk_accumulator`.
        role: &'static str,
        /// The format's name.
        format: String,
    },
    /// A role's quantizer rotates (RHT), which mixes the elements of a sum.
    Rotated {
        /// The role.
        role: &'static str,
    },
    /// `chunk = 0`.
    ZeroChunk,
    /// The operands are not `[M, K]` and `[K, N]`.
    Shapes {
        /// The left operand's shape.
        a: Vec<i64>,
        /// The right operand's shape.
        b: Vec<i64>,
    },
}

impl fmt::Display for AccumulationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccumulationError::NotPerElement { role, format } => write!(
                f,
                "`{role}`: format {format:?} shares scales between elements, which a running \
                 sum has not; use a per-element format (fixed, float, bfloat16, fp16, fp8_e4m3, \
                 fp8_e5m2)"
            ),
            AccumulationError::Rotated { role } => write!(
                f,
                "`{role}`: `rht` rotates groups of values and cannot apply to one sum; remove it"
            ),
            AccumulationError::ZeroChunk => write!(
                f,
                "`chunk` must be a positive number of products (1 rounds every addition) or \"none\""
            ),
            AccumulationError::Shapes { a, b } => write!(
                f,
                "a matrix product needs operands [M, K] and [K, N], got {a:?} and {b:?}"
            ),
        }
    }
}

impl std::error::Error for AccumulationError {}

impl From<AccumulationError> for Error {
    fn from(e: AccumulationError) -> Self {
        Error::Unsupported {
            format: "matmul".into(),
            backend: crate::Backend::Auto,
            reason: e.to_string(),
        }
    }
}

/// The native CPU kernels of [`Accumulation::matmul_cpu`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuKernel {
    /// Eight `f32` lanes (AVX2 and FMA) with every rounding fused into the
    /// product loop; for nearest-even roundings onto grids that fit `f32`
    /// and finite `f32` operands (see the `lanes` module's notes).
    Lanes,
    /// Every product and sum in `f64`, each rounding through the formats'
    /// value roundings; any rounding mode.
    F64,
}

impl Accumulation {
    /// Products rounded to `product` (`None`: exact), running sums to
    /// `accumulator`, sums of `chunk` products (`None`: one running sum) in
    /// `chunk_accumulator` (`None`: `f32`).
    pub fn new(
        product: Option<Quantizer>,
        accumulator: Quantizer,
        chunk: Option<usize>,
        chunk_accumulator: Option<Quantizer>,
    ) -> Result<Self, AccumulationError> {
        if chunk == Some(0) {
            return Err(AccumulationError::ZeroChunk);
        }
        let roles = [
            ("product", product.as_ref()),
            ("accumulator", Some(&accumulator)),
            ("chunk_accumulator", chunk_accumulator.as_ref()),
        ];
        for (role, q) in roles {
            let Some(q) = q else { continue };
            if !q.format().per_element() {
                return Err(AccumulationError::NotPerElement {
                    role,
                    format: q.format().name().into(),
                });
            }
            if q.rht().is_some() {
                return Err(AccumulationError::Rotated { role });
            }
        }
        Ok(Accumulation {
            product,
            accumulator,
            chunk,
            chunk_accumulator,
        })
    }

    /// `a · b` for `a` of shape `[M, K]` and `b` of `[K, N]`, multiplied and
    /// accumulated as described in the [module documentation](self); the
    /// result has `a`'s dtype and device and is detached from autograd.
    ///
    /// CPU operands take a native kernel when every format has a
    /// [`value_rounding`](crate::NumberFormat::value_rounding) (the built-in
    /// per-element formats do) and no quantizer asks for
    /// `backend = "tensor"`: the `f32` lanes ([`CpuKernel::Lanes`]) where
    /// they apply, else the `f64` kernel. Other devices and formats take the
    /// tensor implementation ([`matmul_tensor`](Self::matmul_tensor)); all
    /// give the same result bit for bit.
    pub fn matmul(&self, a: &Tensor, b: &Tensor, rng: &mut QuantRng) -> Result<Tensor> {
        check_shapes(a, b)?;
        if a.device() == Device::Cpu {
            for kernel in [CpuKernel::Lanes, CpuKernel::F64] {
                if let Some(y) = self.matmul_cpu(a, b, rng, kernel)? {
                    return Ok(y);
                }
            }
        }
        self.matmul_tensor(a, b, rng)
    }

    /// `a · b` by one native CPU kernel, or `None` (and no stream taken)
    /// where that kernel cannot compute this product: its formats or
    /// roundings, the CPU, or (for the lanes) operands that are not finite
    /// `f32`. [`matmul`](Self::matmul) chooses; this is for comparing them.
    ///
    /// ```
    /// use swalp_core::matmul::{Accumulation, CpuKernel};
    /// use swalp_core::tch::{Device, Kind, Tensor};
    /// use swalp_core::QuantRng;
    /// # use swalp_formats as _;
    /// let fp16: swalp_core::Quantizer = r#"{ format = "fp16" }"#.parse()?;
    /// let e5m2 = r#"{ format = "fp8_e5m2" }"#.parse()?;
    /// let acc = Accumulation::new(Some(e5m2), fp16, Some(64), None)?;
    /// let cpu = (Kind::Float, Device::Cpu);
    /// let (a, b) = (Tensor::randn([4, 300], cpu), Tensor::randn([300, 5], cpu));
    /// let f64_kernel = acc.matmul_cpu(&a, &b, &mut QuantRng::new(0), CpuKernel::F64)?.expect("value roundings");
    /// if let Some(lanes) = acc.matmul_cpu(&a, &b, &mut QuantRng::new(0), CpuKernel::Lanes)? {
    ///     assert!(lanes.equal(&f64_kernel));
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn matmul_cpu(
        &self,
        a: &Tensor,
        b: &Tensor,
        rng: &mut QuantRng,
        kernel: CpuKernel,
    ) -> Result<Option<Tensor>> {
        check_shapes(a, b)?;
        if a.device() != Device::Cpu || b.device() != Device::Cpu {
            return Ok(None);
        }
        let _guard = tch::no_grad_guard();
        let (a, b) = (a.detach(), b.detach());
        match kernel {
            CpuKernel::Lanes => match lanes::LanesKernel::new(self) {
                Some(lanes) => lanes.matmul(&a, &b),
                None => Ok(None),
            },
            CpuKernel::F64 => {
                let Some(kernel) = native::Kernel::new(self) else {
                    return Ok(None);
                };
                let (a64, b64) = (a.f_to_kind(Kind::Double)?, b.f_to_kind(Kind::Double)?);
                Ok(Some(kernel.matmul(&a64, &b64, rng)?.f_to_kind(a.kind())?))
            }
        }
    }

    /// The format products are rounded to (`None`: exact).
    pub fn product(&self) -> Option<&Quantizer> {
        self.product.as_ref()
    }

    /// The running sum's format.
    pub fn accumulator(&self) -> &Quantizer {
        &self.accumulator
    }

    /// The chunk length (`None`: one running sum).
    pub fn chunk(&self) -> Option<usize> {
        self.chunk
    }

    /// The chunk sums' format (`None`: `f32`).
    pub fn chunk_accumulator(&self) -> Option<&Quantizer> {
        self.chunk_accumulator.as_ref()
    }

    /// Whether [`matmul`](Self::matmul) runs the native kernel for CPU
    /// operands (every format has a value rounding).
    pub fn has_native(&self) -> bool {
        native::Kernel::new(self).is_some()
    }

    /// [`matmul`](Self::matmul) with libtorch operations on any device: one
    /// step per `k` on whole `[M, N]` matrices, each rounding through
    /// [`Quantizer::quantize`]. The definition the native kernel is tested
    /// against.
    pub fn matmul_tensor(&self, a: &Tensor, b: &Tensor, rng: &mut QuantRng) -> Result<Tensor> {
        check_shapes(a, b)?;
        let (m, k, n) = (a.size()[0], a.size()[1], b.size()[1]);
        let kind = a.kind();
        let _guard = tch::no_grad_guard();
        let a = a.detach().f_to_kind(Kind::Double)?;
        let b = b.detach().f_to_kind(Kind::Double)?;
        let zeros = || Tensor::f_zeros([m, n], (Kind::Double, a.device()));
        let mut sum = zeros()?;
        let mut chunk_sum = zeros()?;
        for i in 0..k {
            // [M, 1] · [1, N]: one exact product per output element.
            let product = a.f_narrow(1, i, 1)?.f_mul(&b.f_narrow(0, i, 1)?)?;
            let product = match &self.product {
                Some(q) => q.quantize(&product, rng)?,
                None => product,
            };
            match self.chunk {
                None => sum = self.accumulator.quantize(&sum.f_add(&product)?, rng)?,
                Some(c) => {
                    chunk_sum = self.round_chunk(&chunk_sum.f_add(&product)?, rng)?;
                    let last_of_chunk = (i + 1) % c as i64 == 0 || i + 1 == k;
                    if last_of_chunk {
                        let partial = self.accumulator.quantize(&chunk_sum, rng)?;
                        sum = self.accumulator.quantize(&sum.f_add(&partial)?, rng)?;
                        chunk_sum = zeros()?;
                    }
                }
            }
        }
        Ok(sum.f_to_kind(kind)?)
    }

    /// A chunk sum rounded to the chunk accumulator (`f32` by default).
    fn round_chunk(&self, t: &Tensor, rng: &mut QuantRng) -> Result<Tensor> {
        match &self.chunk_accumulator {
            Some(q) => q.quantize(t, rng),
            None => Ok(t.f_to_kind(Kind::Float)?.f_to_kind(Kind::Double)?),
        }
    }
}

/// Checks that `a` and `b` are `[M, K]` and `[K, N]`.
fn check_shapes(a: &Tensor, b: &Tensor) -> Result<()> {
    let (sa, sb) = (a.size(), b.size());
    if sa.len() != 2 || sb.len() != 2 || sa[1] != sb[0] {
        return Err(AccumulationError::Shapes { a: sa, b: sb }.into());
    }
    Ok(())
}
