//! The posit kernels, one module per backend. Both look up each value's
//! binade in the same table ([`Posit::binade`](crate::Posit::binade)),
//! compute in `f64` with exactly the same operations and decide through
//! [`swalp_core::Rounding`], so they agree bit for bit.

pub mod native;
pub mod tensor;
