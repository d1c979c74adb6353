//! The formats' CUDA kernels (see [`swalp_core::cuda`]): which source in
//! `cuda/` each format runs and the values of its parameter struct, laid
//! out field by field as the source declares it. The math is in the
//! sources; the values come from the same format methods the native
//! kernels use, and the test suite runs every source's CPU twin against
//! the native kernels.

use swalp_core::{
    block::{Block, BlockLayout},
    cuda::{CudaKernel, CudaSource, KernelParams, MaxKey, TwinFn},
    Backend, Result, Rounding,
};

use super::native::FloatParams;
use crate::{mx::MxFormat, BlockFloat, FixedPoint, FloatFormat, Fp8Scaled, Nvfp4Format};

/// `swalp_float.cuh`, included by the float-based sources.
const FLOAT_HEADER: CudaSource = CudaSource {
    name: "swalp_float.cuh",
    text: include_str!("../../cuda/swalp_float.cuh"),
};

macro_rules! source {
    ($file:literal) => {
        CudaSource {
            name: $file,
            text: include_str!(concat!("../../cuda/", $file)),
        }
    };
}

// The CPU twins compiled by build.rs from the same sources.
extern "C" {
    fn swalp_twin_swalp_fixed(
        args: *const swalp_core::cuda::KernelArgs,
        p: *const std::ffi::c_void,
    );
    fn swalp_twin_swalp_float(
        args: *const swalp_core::cuda::KernelArgs,
        p: *const std::ffi::c_void,
    );
    fn swalp_twin_swalp_bfp(args: *const swalp_core::cuda::KernelArgs, p: *const std::ffi::c_void);
    fn swalp_twin_swalp_mx(args: *const swalp_core::cuda::KernelArgs, p: *const std::ffi::c_void);
    fn swalp_twin_swalp_nvfp4(
        args: *const swalp_core::cuda::KernelArgs,
        p: *const std::ffi::c_void,
    );
    fn swalp_twin_swalp_fp8_scaled(
        args: *const swalp_core::cuda::KernelArgs,
        p: *const std::ffi::c_void,
    );
}

fn kernel(
    source: CudaSource,
    float_header: bool,
    entry: &'static str,
    twin: TwinFn,
    params: KernelParams,
) -> CudaKernel {
    CudaKernel {
        headers: if float_header {
            vec![FLOAT_HEADER]
        } else {
            Vec::new()
        },
        twin: Some(twin),
        ..CudaKernel::new(source, entry, params)
    }
}

/// `swalp_float_params`.
fn float_params(format: &FloatFormat, rounding: Rounding) -> KernelParams {
    let p = FloatParams::of(format, rounding);
    KernelParams::new()
        .f64(p.max)
        .f64(p.overflow[0])
        .f64(p.overflow[1])
        .f64(p.infinity[0])
        .f64(p.infinity[1])
        .i32(p.emin)
        .i32(p.emax)
        .i32(p.man)
        .i32(p.below_emin)
}

/// The layout of `block` over `shape` for the format named `format`.
fn layout(format: &str, block: &Block, shape: &[usize]) -> Result<BlockLayout> {
    BlockLayout::new(block, shape).map_err(|e| swalp_core::Error::Unsupported {
        format: format.into(),
        backend: Backend::Cuda,
        reason: e.to_string(),
    })
}

/// Fixed point.
pub fn fixed(
    format: &FixedPoint,
    _shape: &[usize],
    _rounding: Rounding,
) -> Result<Option<CudaKernel>> {
    let k = -format.fl();
    let (lo, hi) = if format.clamps() {
        format.int_range()
    } else {
        (f64::NEG_INFINITY, f64::INFINITY)
    };
    let params = KernelParams::new()
        .f64(swalp_core::kernel::native::pow2(-k))
        .f64(swalp_core::kernel::native::pow2(k))
        .f64(lo)
        .f64(hi);
    Ok(Some(kernel(
        source!("fixed.cu"),
        false,
        "swalp_fixed",
        swalp_twin_swalp_fixed,
        params,
    )))
}

/// Floating point (and the presets, through their float).
pub fn float(
    format: &FloatFormat,
    _shape: &[usize],
    rounding: Rounding,
) -> Result<Option<CudaKernel>> {
    Ok(Some(kernel(
        source!("float.cu"),
        true,
        "swalp_float",
        swalp_twin_swalp_float,
        float_params(format, rounding),
    )))
}

/// Block floating point.
pub fn block(
    format: &BlockFloat,
    shape: &[usize],
    _rounding: Rounding,
) -> Result<Option<CudaKernel>> {
    let (exp_lo, exp_hi) = format.exponent_range();
    let (int_lo, int_hi) = format.int_range();
    let params = KernelParams::new()
        .i32(exp_lo)
        .i32(exp_hi)
        .i32(format.wl() as i32)
        .i32(0)
        .f64(int_lo)
        .f64(int_hi);
    Ok(Some(CudaKernel {
        blocks: Some((format.layout(shape)?, MaxKey::NanZero)),
        ..kernel(
            source!("bfp.cu"),
            false,
            "swalp_bfp",
            swalp_twin_swalp_bfp,
            params,
        )
    }))
}

/// OCP MX.
pub fn mx(format: &MxFormat, shape: &[usize], _rounding: Rounding) -> Result<Option<CudaKernel>> {
    let elem = format.elem();
    let rule = match format.scale_rule() {
        crate::mx::ScaleRule::Floor => 0,
        crate::mx::ScaleRule::Ceil => 1,
        crate::mx::ScaleRule::Even => 2,
        crate::mx::ScaleRule::Rceil => 3,
    };
    let params = KernelParams::new()
        .f64(elem.max_value())
        .f32(elem.max_value() as f32)
        .i32(elem.emin())
        .i32(elem.emax())
        .i32(elem.man_bits() as i32)
        .i32(rule)
        .i32(crate::mx::SCALE_EXP_MIN)
        .i32(crate::mx::SCALE_EXP_MAX)
        .i32(0);
    Ok(Some(CudaKernel {
        blocks: Some((format.layout(shape, Backend::Cuda)?, MaxKey::NanInf)),
        ..kernel(
            source!("mx.cu"),
            false,
            "swalp_mx",
            swalp_twin_swalp_mx,
            params,
        )
    }))
}

/// NVFP4; `None` for a tensor the format keeps (the tensor backend copies
/// it).
pub fn nvfp4(
    format: &Nvfp4Format,
    shape: &[usize],
    rounding: Rounding,
) -> Result<Option<CudaKernel>> {
    let Some(block) = format.blocks(shape, Backend::Cuda)? else {
        return Ok(None);
    };
    let params = KernelParams::new()
        .nested(&float_params(&format.elem(), rounding))
        .i32(i32::from(format.tensor_scale()))
        .i32(0);
    Ok(Some(CudaKernel {
        blocks: Some((layout("nvfp4", &block, shape)?, MaxKey::NanInf)),
        tensor_max: format.tensor_scale().then_some(MaxKey::NanInf),
        ..kernel(
            source!("nvfp4.cu"),
            true,
            "swalp_nvfp4",
            swalp_twin_swalp_nvfp4,
            params,
        )
    }))
}

/// Scaled FP8.
pub fn fp8_scaled(
    format: &Fp8Scaled,
    shape: &[usize],
    rounding: Rounding,
) -> Result<Option<CudaKernel>> {
    let params = KernelParams::new()
        .nested(&float_params(&format.elem_format(), rounding))
        .f32(format.max_elem())
        .i32(i32::from(format.pow2()));
    Ok(Some(CudaKernel {
        blocks: Some((
            layout("fp8_scaled", &format.block(shape), shape)?,
            MaxKey::NanInf,
        )),
        ..kernel(
            source!("fp8_scaled.cu"),
            true,
            "swalp_fp8_scaled",
            swalp_twin_swalp_fp8_scaled,
            params,
        )
    }))
}
