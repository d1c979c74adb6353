//! The `int` kernels, one module per backend. Both compute the block maxima,
//! then `round(x·Q/m)` and `i·m/Q` in `f64` with the same operations in the
//! same order, deciding through [`swalp_core::Rounding`], so they agree bit
//! for bit.

pub mod native;
pub mod tensor;
