//! One CUDA call: scratch tensors from PyTorch's allocator, the maxima
//! launches, the element launch, all on PyTorch's current stream.

use std::ffi::{c_int, c_void};

use tch::{Device, Kind, Tensor};

use super::driver::{self, Stream};
use super::{CudaError, CudaKernel, KernelArgs};
use crate::rng::RandomStream;
use crate::rounding::Rounding;

extern "C" {
    fn swalp_cuda_current_stream(device: c_int, ok: *mut c_int) -> *mut c_void;
}

/// PyTorch's current stream on device `ordinal`.
fn current_stream(ordinal: i32) -> Result<Stream, CudaError> {
    let mut ok = 0;
    // SAFETY: one out-parameter; the shim catches C++ exceptions.
    let stream = unsafe { swalp_cuda_current_stream(ordinal, &mut ok) };
    if ok == 0 {
        return Err(CudaError::Call {
            function: "c10::cuda::getCurrentCUDAStream",
            code: -1,
            message: format!(
                "no current stream on cuda:{ordinal} (is this libtorch built with CUDA?)"
            ),
        });
    }
    Ok(stream)
}

/// Rounds `x`, a contiguous `f32` tensor on a CUDA device, with `kernel`;
/// returns a new tensor. Nothing waits for the GPU: the launches are
/// queued on the current stream after whatever produced `x`.
pub(crate) fn quantize(
    kernel: &CudaKernel,
    x: &Tensor,
    rounding: Rounding,
    random: Option<RandomStream>,
) -> crate::Result<Tensor> {
    let Device::Cuda(ordinal) = x.device() else {
        return Err(crate::Error::Cuda(CudaError::Call {
            function: "quantize",
            code: -1,
            message: format!("expected a CUDA tensor, got one on {:?}", x.device()),
        }));
    };
    let ordinal = ordinal as i32;
    let loaded = driver::load_kernel(ordinal, kernel)?;
    let stream = current_stream(ordinal)?;
    let n = x.numel();
    let out = x.f_empty_like()?;
    let device = x.device();
    let base = KernelArgs {
        x: x.data_ptr() as *const f32,
        out: out.data_ptr() as *mut f32,
        ..KernelArgs::new(n, rounding, random)
    };
    // Scratch maxima from PyTorch's caching allocator, zeroed on the same
    // stream; freed in stream order after the launches that read them.
    let block_maxima = match &kernel.blocks {
        Some((layout, key)) => {
            let maxima = Tensor::f_zeros([layout.num_blocks() as i64], (Kind::Int, device))?;
            let args = base.with_layout(Some(layout))?;
            run_maxima(ordinal, &loaded, stream, args, *key, &maxima)?;
            Some(maxima)
        }
        None => None,
    };
    let tensor_max = match kernel.tensor_max {
        Some(key) => {
            let maxima = Tensor::f_zeros([1], (Kind::Int, device))?;
            run_maxima(ordinal, &loaded, stream, base, key, &maxima)?;
            Some(maxima)
        }
        None => None,
    };
    let pointer = |t: &Option<Tensor>| {
        t.as_ref()
            .map_or(std::ptr::null(), |t| t.data_ptr() as *const u32)
    };
    let mut args = KernelArgs {
        maxima: pointer(&block_maxima),
        tensor_max: pointer(&tensor_max),
        ..base.with_layout(kernel.blocks.as_ref().map(|(l, _)| l))?
    };
    let mut params = kernel.params.words();
    let mut pointers = [
        (&mut args as *mut KernelArgs).cast::<c_void>(),
        params.as_mut_ptr().cast::<c_void>(),
    ];
    driver::launch(
        ordinal,
        &loaded,
        loaded.kernel,
        n as u64,
        stream,
        &mut pointers,
    )?;
    Ok(out)
}

fn run_maxima(
    ordinal: i32,
    loaded: &driver::Loaded,
    stream: Stream,
    mut args: KernelArgs,
    key: super::MaxKey,
    maxima: &Tensor,
) -> Result<(), CudaError> {
    let mut key = key.code();
    let mut out = maxima.data_ptr() as *mut u32;
    let mut pointers = [
        (&mut args as *mut KernelArgs).cast::<c_void>(),
        (&mut key as *mut i32).cast::<c_void>(),
        (&mut out as *mut *mut u32).cast::<c_void>(),
    ];
    driver::launch(
        ordinal,
        loaded,
        loaded.maxima,
        args.n,
        stream,
        &mut pointers,
    )
}
