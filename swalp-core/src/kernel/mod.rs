//! Running a format's kernels on tensors: backend choice, dtype and device
//! handling, and the building blocks format kernels share.
//!
//! [`native`] holds helpers for Rust loops over `f32` slices, [`tensor`] the
//! same arithmetic as tch ops. Plugins use both.

pub mod native;
pub mod tensor;

use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};
use crate::format::{Backend, NumberFormat};
use crate::rng::QuantRng;
use crate::rounding::Rounding;

/// Rounds `x` onto `format` with the chosen backend: the entry point behind
/// [`NumberFormat::quantize`] and [`Quantizer`](crate::Quantizer).
///
/// The result has `x`'s shape, dtype and device and is detached. A stochastic
/// rounding takes one stream from `rng`; deterministic ones take none.
pub fn quantize<F: NumberFormat + ?Sized>(
    format: &F,
    x: &Tensor,
    rounding: Rounding,
    rng: &mut QuantRng,
    backend: Backend,
) -> Result<Tensor> {
    let kind = x.kind();
    if !matches!(
        kind,
        Kind::Half | Kind::BFloat16 | Kind::Float | Kind::Double
    ) {
        return Err(Error::Unsupported {
            format: format.name().into(),
            backend,
            reason: format!("expected a floating-point tensor, got {kind:?}"),
        });
    }
    let x = x.detach();
    if x.numel() == 0 {
        return Ok(x.copy());
    }
    let random = rounding.is_stochastic().then(|| rng.next_stream());
    let native_fits = x.device() == Device::Cpu && kind == Kind::Float;
    let use_native = match backend {
        Backend::Auto => native_fits && format.has_native(),
        Backend::Tensor => false,
        Backend::Native if !native_fits => {
            return Err(Error::Unsupported {
                format: format.name().into(),
                backend,
                reason: format!(
                    "needs an f32 CPU tensor, got {kind:?} on {:?}; use backend = \"tensor\"",
                    x.device()
                ),
            })
        }
        Backend::Native => true,
    };
    if use_native {
        let x = x.contiguous();
        let shape: Vec<usize> = x.size().iter().map(|&d| d as usize).collect();
        let out = Tensor::empty(x.size(), (Kind::Float, Device::Cpu));
        let numel = x.numel();
        // SAFETY: both tensors are contiguous f32 CPU tensors of `numel`
        // elements that stay alive for this call, and `out` is freshly
        // allocated, so the slices do not alias.
        let (input, output) = unsafe {
            (
                std::slice::from_raw_parts(x.data_ptr() as *const f32, numel),
                std::slice::from_raw_parts_mut(out.data_ptr() as *mut f32, numel),
            )
        };
        format.quantize_native(input, &shape, output, rounding, random)?;
        Ok(out)
    } else {
        let y = format.quantize_tensor(&x.to_kind(Kind::Double), rounding, random)?;
        Ok(y.to_kind(kind))
    }
}
