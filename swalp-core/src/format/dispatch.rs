//! Running a format's kernels on tensors: backend choice, dtype and device
//! handling, empty tensors and random streams; what
//! [`NumberFormat::quantize`] and [`Quantizer`](crate::Quantizer) call.

use tch::{Device, Kind, Tensor};

use super::{Backend, NumberFormat};
use crate::cuda::CudaKernel;
use crate::error::{Error, Result};
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
    let Some(call) = Call::new(format, x, rounding, rng, backend)? else {
        return Ok(x.detach().copy());
    };
    if call.native() {
        let out = Tensor::empty(call.x.size(), (Kind::Float, Device::Cpu));
        advise_huge_pages(out.data_ptr(), call.x.numel() * std::mem::size_of::<f32>());
        call.run_native(format, &out)?;
        Ok(out)
    } else {
        call.run_device(format)
    }
}

/// [`quantize`] writing the result into `out`, a tensor of `x`'s shape:
/// the rounded values are exactly those [`quantize`] returns (with the same
/// random stream), and `out`'s dtype converts them as `copy_` does.
///
/// When the native kernel runs and `out` is a contiguous `f32` CPU tensor
/// that does not overlap `x`, the kernel writes straight into `out` (no
/// temporary, no copy), and `out`'s autograd version counter is bumped as
/// an in-place operation would; otherwise this is `out.copy_(quantize(x))`.
pub fn quantize_into<F: NumberFormat + ?Sized>(
    format: &F,
    x: &Tensor,
    out: &mut Tensor,
    rounding: Rounding,
    rng: &mut QuantRng,
    backend: Backend,
) -> Result<()> {
    if out.size() != x.size() {
        return Err(Error::Unsupported {
            format: format.name().into(),
            backend,
            reason: format!(
                "cannot write a result of shape {:?} into a tensor of shape {:?}",
                x.size(),
                out.size()
            ),
        });
    }
    let Some(call) = Call::new(format, x, rounding, rng, backend)? else {
        return Ok(());
    };
    let direct = call.native()
        && out.kind() == Kind::Float
        && out.device() == Device::Cpu
        && out.is_contiguous()
        && !overlaps(&call.x, out);
    if direct {
        call.run_native(format, out)?;
        bump_version(out)?;
    } else {
        let y = if call.native() {
            let y = Tensor::empty(call.x.size(), (Kind::Float, Device::Cpu));
            call.run_native(format, &y)?;
            y
        } else {
            call.run_device(format)?
        };
        out.f_copy_(&y)?;
    }
    Ok(())
}

/// Which kernel a call runs.
enum Path {
    Native,
    Tensor,
    Cuda(CudaKernel),
}

/// One kernel call: the checked, detached input, its random stream and the
/// kernel chosen.
struct Call {
    /// Detached; contiguous when native.
    x: Tensor,
    kind: Kind,
    rounding: Rounding,
    random: Option<crate::rng::RandomStream>,
    path: Path,
}

impl Call {
    /// Checks the input and picks the backend; `None` for an empty tensor.
    /// Takes the random stream, so every path consumes the same one.
    fn new<F: NumberFormat + ?Sized>(
        format: &F,
        x: &Tensor,
        rounding: Rounding,
        rng: &mut QuantRng,
        backend: Backend,
    ) -> Result<Option<Call>> {
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
            return Ok(None);
        }
        let random = rounding.is_stochastic().then(|| rng.next_stream());
        let path = choose(format, &x, rounding, backend)?;
        let x = if matches!(path, Path::Native) {
            x.contiguous()
        } else {
            x
        };
        Ok(Some(Call {
            x,
            kind,
            rounding,
            random,
            path,
        }))
    }

    /// Whether the native kernel runs.
    fn native(&self) -> bool {
        matches!(self.path, Path::Native)
    }

    /// Runs the native kernel into `out`, a contiguous f32 CPU tensor of
    /// the input's shape that does not overlap it.
    fn run_native<F: NumberFormat + ?Sized>(&self, format: &F, out: &Tensor) -> Result<()> {
        let shape: Vec<usize> = self.x.size().iter().map(|&d| d as usize).collect();
        let numel = self.x.numel();
        // SAFETY: both tensors are contiguous f32 CPU tensors of `numel`
        // elements that stay alive for this call, and they do not overlap
        // (`out` is fresh or checked by `overlaps`).
        let (input, output) = unsafe {
            (
                std::slice::from_raw_parts(self.x.data_ptr() as *const f32, numel),
                std::slice::from_raw_parts_mut(out.data_ptr() as *mut f32, numel),
            )
        };
        format.quantize_native(input, &shape, output, self.rounding, self.random)
    }

    /// Runs the tensor kernel (in f64) or the CUDA kernel (in f32, which
    /// holds bf16 and f16 exactly) and converts back to the input dtype.
    fn run_device<F: NumberFormat + ?Sized>(&self, format: &F) -> Result<Tensor> {
        match &self.path {
            Path::Cuda(kernel) => {
                let x = self.x.f_to_kind(Kind::Float)?.f_contiguous()?;
                let y = crate::cuda::quantize_on_device(kernel, &x, self.rounding, self.random)?;
                Ok(if self.kind == Kind::Float {
                    y
                } else {
                    y.f_to_kind(self.kind)?
                })
            }
            _ => {
                let y = format.quantize_tensor(
                    &self.x.to_kind(Kind::Double),
                    self.rounding,
                    self.random,
                )?;
                Ok(y.to_kind(self.kind))
            }
        }
    }
}

/// The kernel `backend` asks for `x`, or why it cannot run.
fn choose<F: NumberFormat + ?Sized>(
    format: &F,
    x: &Tensor,
    rounding: Rounding,
    backend: Backend,
) -> Result<Path> {
    let kind = x.kind();
    let native_fits = x.device() == Device::Cpu && kind == Kind::Float;
    let cuda_fits =
        x.device().is_cuda() && matches!(kind, Kind::Float | Kind::Half | Kind::BFloat16);
    let unsupported = |reason: String| Error::Unsupported {
        format: format.name().into(),
        backend,
        reason,
    };
    let shape = || -> Vec<usize> { x.size().iter().map(|&d| d as usize).collect() };
    Ok(match backend {
        Backend::Auto if native_fits && format.has_native() => Path::Native,
        Backend::Auto if cuda_fits && cuda_usable() => {
            match format.cuda_kernel(&shape(), rounding)? {
                Some(kernel) if kernel.fits() => Path::Cuda(kernel),
                _ => Path::Tensor,
            }
        }
        Backend::Auto | Backend::Tensor => Path::Tensor,
        Backend::Native if !native_fits => {
            return Err(unsupported(format!(
                "needs an f32 CPU tensor, got {kind:?} on {:?}; use backend = \"tensor\"",
                x.device()
            )))
        }
        Backend::Native => Path::Native,
        Backend::Cuda if !cuda_fits => {
            return Err(unsupported(format!(
                "needs an f32, bf16 or f16 tensor on a CUDA device, got {kind:?} on {:?}; \
                 use backend = \"tensor\" or \"auto\"",
                x.device()
            )))
        }
        Backend::Cuda => match format.cuda_kernel(&shape(), rounding)? {
            Some(kernel) => Path::Cuda(kernel),
            None => {
                return Err(unsupported(
                    "this format has no CUDA kernel for this tensor; use backend = \"tensor\""
                        .into(),
                ))
            }
        },
    })
}

/// Whether the CUDA backend can run here (driver and NVRTC load). When it
/// cannot, `auto` takes the tensor kernel and says why once in the log.
fn cuda_usable() -> bool {
    static USABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *USABLE.get_or_init(|| {
        let status = crate::cuda::driver::status().and_then(|()| crate::cuda::nvrtc::status());
        if let Err(e) = &status {
            log::warn!("CUDA tensors are rounded by the tensor backend: {e}");
        }
        status.is_ok()
    })
}

/// Whether the memory of contiguous `a` and `b` (CPU) overlaps.
fn overlaps(a: &Tensor, b: &Tensor) -> bool {
    let bytes = |t: &Tensor| t.numel() * t.kind().elt_size_in_bytes();
    let (a0, b0) = (a.data_ptr() as usize, b.data_ptr() as usize);
    a0 < b0 + bytes(b) && b0 < a0 + bytes(a)
}

/// Marks `t` as modified in place for autograd (its version counter), as
/// `copy_` would, without touching its data: two in-place metadata
/// operations that cancel.
fn bump_version(t: &mut Tensor) -> Result<()> {
    let _ = t.f_unsqueeze_(0)?;
    let _ = t.f_squeeze_dim_(0)?;
    Ok(())
}

/// Outputs at least this large are backed by transparent huge pages where
/// the system allows it (Linux with THP in `madvise` mode): a fresh output
/// otherwise takes one page fault per 4 KiB on first write, which costs more
/// than the rounding itself.
const HUGE_PAGE_OUTPUT_BYTES: usize = 8 << 20;

/// Asks the kernel to back the untouched buffer `[ptr, ptr + bytes)` with
/// huge pages; a hint only, failures are ignored.
#[cfg(target_os = "linux")]
fn advise_huge_pages(ptr: *mut std::ffi::c_void, bytes: usize) {
    extern "C" {
        fn madvise(
            addr: *mut std::ffi::c_void,
            len: usize,
            advice: std::ffi::c_int,
        ) -> std::ffi::c_int;
    }
    const MADV_HUGEPAGE: std::ffi::c_int = 14;
    const PAGE: usize = 4096;
    if bytes < HUGE_PAGE_OUTPUT_BYTES {
        return;
    }
    let start = (ptr as usize).next_multiple_of(PAGE);
    let end = (ptr as usize + bytes) / PAGE * PAGE;
    if end > start {
        // SAFETY: the range lies inside a live allocation of ours; the advice
        // changes how pages are backed, never their contents.
        unsafe {
            madvise(start as *mut std::ffi::c_void, end - start, MADV_HUGEPAGE);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_ptr: *mut std::ffi::c_void, _bytes: usize) {}
