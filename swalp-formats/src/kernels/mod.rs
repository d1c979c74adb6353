//! The kernels of the built-in formats, one module per backend, kept apart
//! from the format math so that a new backend never touches a format's
//! definition. Both backends compute in `f64` and make identical decisions
//! through [`swalp_core::Rounding`], so they agree bit for bit.

pub mod native;
pub mod tensor;
