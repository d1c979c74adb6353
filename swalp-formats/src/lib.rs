//! # swalp-formats
//!
//! The built-in number formats of swalp, registered through
//! [`swalp_core::register_format!`] exactly as a plugin crate would:
//!
//! | `format` | type | what it is |
//! |---|---|---|
//! | `fixed` | [`FixedPoint`] | two's complement fixed point, `wl` bits with `fl` fractional |
//! | `float` | [`FloatFormat`] | binary floating point with `exp`/`man` bits |
//! | `bfp` | [`BlockFloat`] | block floating point: integers sharing one exponent per block |
//! | `bfloat16`, `fp16`, `fp8_e4m3`, `fp8_e5m2` | [`presets`] | standard floats |
//! | `mx` | [`MxFormat`] | OCP Microscaling (MX) v1.0: MXFP8/MXFP6/MXFP4/MXINT8 blocks sharing an E8M0 scale |
//! | `fp8_scaled` | [`Fp8Scaled`] | FP8 E4M3/E5M2 with an FP32 scale per tensor, row, block or tile (TransformerEngine's recipes) |
//! | `nvfp4` | [`Nvfp4Format`] | NVIDIA NVFP4: FP4 E2M1 blocks of 16 with E4M3 scales and an FP32 tensor scale |
//!
//! Each format's math (range, spacing, shared exponents) lives in its own
//! module; its kernels live in [`kernels`], one module per backend.
//!
//! This crate owns formats only: no training, no I/O, no CLI. Linking it is
//! enough to make its formats available by name:
//!
//! ```
//! use swalp_core::{Quantizer, QuantRng};
//! use swalp_formats as _; // registers fixed, float, bfp and the presets
//! let q: Quantizer = r#"{ format = "fixed", wl = 8, fl = 6 }"#.parse().unwrap();
//! let x = swalp_core::tch::Tensor::from_slice(&[0.3f32]);
//! let y = q.quantize(&x, &mut QuantRng::new(0)).unwrap();
//! assert_eq!(f32::try_from(y).unwrap(), 0.296875); // 19/64
//! ```

#![warn(missing_docs)]

pub mod block;
pub mod fixed;
pub mod float;
pub mod fp8_scaled;
pub mod kernels;
pub mod mx;
pub mod nvfp4;
pub mod presets;

pub use block::{BlockFloat, SmallBlock};
pub use fixed::FixedPoint;
pub use float::{FloatFormat, Overflow, Specials};
pub use fp8_scaled::Fp8Scaled;
pub use mx::{MxElem, MxFormat, ScaleRule};
pub use nvfp4::Nvfp4Format;
pub use swalp_core::block::Block;
