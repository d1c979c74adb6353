//! # swalp-core
//!
//! The concepts of low-precision training simulation, and nothing specific to
//! any one number format:
//!
//! - [`NumberFormat`]: what a format can represent, with a tensor kernel (any
//!   device), an optional native CPU kernel and an optional CUDA kernel
//!   (compiled at run time, see [`cuda`]);
//! - [`Rounding`]: nearest (three tie rules), directed and stochastic
//!   rounding, decided by one rule shared by every kernel;
//! - [`Quantizer`] / [`QuantPair`]: a format with a rounding, the unit applied
//!   at each quantization point, optionally in the basis of a random
//!   Hadamard transform ([`rht`]);
//! - the [`registry`]: formats, built in or from plugins, are registered with
//!   [`register_format!`] and built from spec tables such as
//!   `{ format = "fixed", wl = 8, fl = 6, rounding = "stochastic" }`;
//! - [`QuantRng`]: seeded, counter-based random streams for stochastic
//!   rounding, identical on every backend and thread count;
//! - the training machinery: quantization [`points`], the activation/error
//!   [`hook`], the low-precision optimizers ([`optim`], equal to
//!   `torch.optim` operator for operator), [`swa`], [`batchnorm`] as
//!   PyTorch defines it (with the seed's statistics recomputation) and
//!   learning-rate [`schedule`]s;
//! - the arithmetic inside layers ([`matmul`]): matrix products that
//!   multiply and accumulate in chosen formats, with the linear and
//!   convolution layers and the autograd node that use them.
//!
//! This crate must not contain concrete formats (they live in
//! `swalp-formats` or plugin crates, registered the same way) nor anything
//! about experiments, data sets or the command line (`swalp-cli`).
//!
//! ```no_run
//! use swalp_core::{Quantizer, QuantRng};
//! // With swalp-formats linked, any registered format can be named:
//! let q: Quantizer = r#"{ format = "bfp", wl = 8, block = { dim = 0 }, rounding = "stochastic" }"#.parse()?;
//! let w = tch::Tensor::randn([64, 32], (tch::Kind::Float, tch::Device::Cpu));
//! let wq = q.quantize(&w, &mut QuantRng::new(1))?;
//! # Ok::<(), swalp_core::Error>(())
//! ```

#![warn(missing_docs)]

pub mod backend;
pub mod batchnorm;
pub mod block;
pub mod cuda;
pub mod distributed;
pub mod error;
pub mod format;
pub mod hook;
pub mod kernel;
pub mod lower;
pub mod matmul;
pub mod optim;
pub mod points;
pub mod quantizer;
pub mod registry;
pub mod rht;
pub mod rng;
pub mod rounding;
pub mod schedule;
pub mod spec;
pub mod swa;

pub use backend::Backend;
pub use error::{Error, Result, SpecError};
pub use format::NumberFormat;
pub use quantizer::{QuantPair, Quantizer};
pub use registry::FormatFactory;
pub use rng::{QuantRng, RandomStream};
pub use rounding::Rounding;
pub use spec::{ParamInfo, Params};

/// Re-exported so plugins register with the same `inventory` as the core.
pub use inventory;
/// Re-exported so plugins use the same `tch` as the core.
pub use tch;
