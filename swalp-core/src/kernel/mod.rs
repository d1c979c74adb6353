//! The building blocks format kernels share (choosing a backend and
//! running the kernels is [`crate::format::dispatch`]'s).
//!
//! [`native`] holds helpers for Rust loops over `f32` slices, [`tensor`] the
//! same arithmetic as tch ops. Plugins use both.

pub mod native;
pub mod tensor;
