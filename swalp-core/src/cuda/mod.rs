//! The CUDA backend: each format's rounding as one fused CUDA kernel,
//! compiled at run time by NVRTC and launched through the CUDA driver API
//! on PyTorch's current stream, with no host synchronisation.
//!
//! A format describes its kernel with [`CudaKernel`] (from
//! [`NumberFormat::cuda_kernel`](crate::NumberFormat::cuda_kernel)): a CUDA
//! C source that includes [`HEADER`] (`swalp.cuh`: the rounding rule, the
//! random draws, the block layout, written once) and defines its kernel
//! with `SWALP_KERNEL`, the values of its parameter struct
//! ([`KernelParams`]) and, for block formats, the layout whose maxima the
//! kernel reads. A call is at most three launches: block maxima (one
//! reduction), the tensor's maximum (formats with a tensor scale), then one
//! element-wise pass.
//!
//! Both NVRTC and the driver are loaded when first needed ([`nvrtc`],
//! [`driver`]), so CPU-only machines build and run unchanged; NVRTC comes
//! from the PyTorch wheel (`nvidia/cu13/lib`, found at build time) unless
//! `SWALP_NVRTC` names another `libnvrtc.so`.
//!
//! The same source is also compiled for the CPU by a C++ compiler (the
//! macros of `swalp.cuh` map CUDA's qualifiers away): [`run_twin`] runs
//! that twin, and the test suite checks it against the native kernels bit
//! for bit, so the GPU math is verified where no GPU is. Modules are
//! compiled once per (kernel, device) and cached.

pub mod driver;
mod launch;
pub mod nvrtc;

use std::ffi::c_void;

pub use crate::error::CudaError;

use crate::block::BlockLayout;
use crate::rng::RandomStream;
use crate::rounding::Rounding;

pub(crate) use launch::quantize as quantize_on_device;

/// `swalp.cuh`, the header every kernel source includes.
pub const HEADER: CudaSource = CudaSource {
    name: "swalp.cuh",
    text: include_str!("../../cuda/swalp.cuh"),
};

/// The most separating terms a kernel's block layout may have
/// (`SWALP_MAX_TERMS`).
pub const MAX_TERMS: usize = 8;

/// A named CUDA C text: a kernel source or a header it includes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CudaSource {
    /// The file name (`#include "name"` finds a header by it).
    pub name: &'static str,
    /// The text.
    pub text: &'static str,
}

/// The CPU twin of a kernel: the kernel's element loop compiled for the CPU
/// from the same source (`SWALP_KERNEL` defines it as
/// `swalp_twin_<entry>`). Takes the call's [`KernelArgs`] and the
/// parameter struct.
pub type TwinFn = unsafe extern "C" fn(*const KernelArgs, *const c_void);

/// Which magnitude a block's maximum is taken of
/// (`kernel::native::abs_bits_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MaxKey {
    /// `|v|`, NaN read as 0 ([`abs_bits_nan_zero`](crate::kernel::native::abs_bits_nan_zero)).
    NanZero,
    /// `|v|`, NaN read as infinity ([`abs_bits_nan_inf`](crate::kernel::native::abs_bits_nan_inf)).
    NanInf,
    /// `|v|`, NaN and infinities read as 0 ([`abs_bits_finite`](crate::kernel::native::abs_bits_finite)).
    Finite,
}

impl MaxKey {
    fn code(self) -> i32 {
        match self {
            MaxKey::NanZero => 0,
            MaxKey::NanInf => 1,
            MaxKey::Finite => 2,
        }
    }
}

/// A format's CUDA kernel for one call: what to compile, what to pass.
///
/// ```
/// use swalp_core::cuda::{CudaKernel, CudaSource, KernelParams};
/// // A format that scales every value by a run-time factor.
/// let kernel = CudaKernel::new(
///     CudaSource {
///         name: "scale.cu",
///         text: r#"#include "swalp.cuh"
/// typedef struct { double factor; } scale_params;
/// SWALP_FN float scale_element(const swalp_args* a, const scale_params* p, swalp_u64 i) {
///   return (float)((double)a->x[i] * p->factor);
/// }
/// SWALP_KERNEL(scale_kernel, scale_params, scale_element)
/// "#,
///     },
///     "scale_kernel",
///     KernelParams::new().f64(0.5),
/// );
/// assert_eq!(kernel.params.bytes(), 0.5f64.to_ne_bytes());
/// ```
#[derive(Clone, Debug)]
pub struct CudaKernel {
    /// The source defining the kernel.
    pub source: CudaSource,
    /// Headers the source includes besides [`HEADER`].
    pub headers: Vec<CudaSource>,
    /// The kernel's name (the first argument of `SWALP_KERNEL`).
    pub entry: &'static str,
    /// The parameter struct's values.
    pub params: KernelParams,
    /// The block layout and key whose per-block maxima the kernel reads
    /// (`swalp_block_max`); `None` for element-wise formats.
    pub blocks: Option<(BlockLayout, MaxKey)>,
    /// The key of the tensor's maximum, which the kernel reads through
    /// `tensor_max` (NVFP4's tensor scale); `None` when unused.
    pub tensor_max: Option<MaxKey>,
    /// The kernel's CPU twin, when the format's crate compiled one.
    pub twin: Option<TwinFn>,
}

impl CudaKernel {
    /// An element-wise kernel without headers, blocks or twin.
    pub fn new(source: CudaSource, entry: &'static str, params: KernelParams) -> Self {
        CudaKernel {
            source,
            headers: Vec::new(),
            entry,
            params,
            blocks: None,
            tensor_max: None,
            twin: None,
        }
    }

    /// Whether the kernels can take this kernel's block layout (at most
    /// [`MAX_TERMS`] terms); `auto` uses the tensor backend otherwise.
    pub fn fits(&self) -> bool {
        self.blocks
            .as_ref()
            .map_or(true, |(layout, _)| layout.terms().len() <= MAX_TERMS)
    }

    /// Every source NVRTC needs: the kernel's, then its headers, then
    /// [`HEADER`].
    pub fn sources(&self) -> Vec<CudaSource> {
        let mut all = vec![self.source];
        all.extend(self.headers.iter().copied());
        all.push(HEADER);
        all
    }
}

/// The values of a kernel's parameter struct, laid out as C lays out a
/// struct of the same fields in the same order (each field at a multiple of
/// its size, the whole padded to its widest field).
///
/// ```
/// use swalp_core::cuda::KernelParams;
/// // struct { int a; double b; float c; }: 4 + 4 padding + 8 + 4 + 4 padding.
/// let p = KernelParams::new().i32(1).f64(2.0).f32(3.0);
/// assert_eq!(p.bytes().len(), 24);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KernelParams {
    bytes: Vec<u8>,
    align: usize,
}

impl KernelParams {
    /// No fields.
    pub fn new() -> Self {
        KernelParams {
            bytes: Vec::new(),
            align: 1,
        }
    }

    fn field(mut self, value: &[u8]) -> Self {
        let size = value.len();
        self.bytes
            .resize(self.bytes.len().next_multiple_of(size), 0);
        self.bytes.extend_from_slice(value);
        self.align = self.align.max(size);
        self
    }

    /// A `double` field.
    pub fn f64(self, v: f64) -> Self {
        self.field(&v.to_ne_bytes())
    }

    /// A `float` field.
    pub fn f32(self, v: f32) -> Self {
        self.field(&v.to_ne_bytes())
    }

    /// An `int` field.
    pub fn i32(self, v: i32) -> Self {
        self.field(&v.to_ne_bytes())
    }

    /// An `unsigned int` field.
    pub fn u32(self, v: u32) -> Self {
        self.field(&v.to_ne_bytes())
    }

    /// A nested struct's fields, aligned as the struct.
    pub fn nested(mut self, inner: &KernelParams) -> Self {
        self.bytes
            .resize(self.bytes.len().next_multiple_of(inner.align), 0);
        self.bytes.extend_from_slice(&inner.bytes());
        self.align = self.align.max(inner.align);
        self
    }

    /// The struct's bytes, padded to its alignment.
    pub fn bytes(&self) -> Vec<u8> {
        let mut b = self.bytes.clone();
        b.resize(b.len().next_multiple_of(self.align), 0);
        b
    }

    /// The bytes in 8-byte words, so that a pointer to them is aligned for
    /// any field.
    fn words(&self) -> Vec<u64> {
        self.bytes()
            .chunks(8)
            .map(|c| {
                let mut w = [0u8; 8];
                w[..c.len()].copy_from_slice(c);
                u64::from_ne_bytes(w)
            })
            .collect()
    }
}

/// One call's arguments, `swalp_args` in `swalp.cuh` (the same layout).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KernelArgs {
    x: *const f32,
    out: *mut f32,
    n: u64,
    maxima: *const u32,
    tensor_max: *const u32,
    key0: u32,
    key1: u32,
    mode: i32,
    sr_shift: i32,
    sr_one: f64,
    nterms: i32,
    reserved: i32,
    stride: [u64; MAX_TERMS],
    size: [u64; MAX_TERMS],
    chunk: [u64; MAX_TERMS],
    weight: [u64; MAX_TERMS],
}

impl KernelArgs {
    /// The arguments of rounding `n` values with `rounding` (and `random`
    /// when stochastic), the data pointers null and no layout.
    fn new(n: usize, rounding: Rounding, random: Option<RandomStream>) -> Self {
        let (mode, bits) = match rounding {
            Rounding::NearestEven => (0, 32),
            Rounding::NearestAway => (1, 32),
            Rounding::NearestUp => (2, 32),
            Rounding::TowardZero => (3, 32),
            Rounding::Down => (4, 32),
            Rounding::Up => (5, 32),
            Rounding::Stochastic { bits } => (6, u32::from(bits)),
        };
        let (key0, key1) = random.map_or((0, 0), |r| r.keys());
        KernelArgs {
            x: std::ptr::null(),
            out: std::ptr::null_mut(),
            n: n as u64,
            maxima: std::ptr::null(),
            tensor_max: std::ptr::null(),
            key0,
            key1,
            mode,
            sr_shift: 32 - bits as i32,
            sr_one: (1u64 << bits) as f64,
            nterms: 0,
            reserved: 0,
            stride: [1; MAX_TERMS],
            size: [1; MAX_TERMS],
            chunk: [1; MAX_TERMS],
            weight: [0; MAX_TERMS],
        }
    }

    /// These arguments with `layout`'s terms (none: one block).
    fn with_layout(mut self, layout: Option<&BlockLayout>) -> Result<Self, CudaError> {
        let terms = layout.map(BlockLayout::terms).unwrap_or_default();
        if terms.len() > MAX_TERMS {
            return Err(CudaError::Layout {
                terms: terms.len(),
                max: MAX_TERMS,
            });
        }
        self.nterms = terms.len() as i32;
        for (t, [stride, size, chunk, weight]) in terms.into_iter().enumerate() {
            self.stride[t] = stride as u64;
            self.size[t] = size as u64;
            self.chunk[t] = chunk as u64;
            self.weight[t] = weight as u64;
        }
        Ok(self)
    }
}

extern "C" {
    fn swalp_twin_block_maxima(args: *const KernelArgs, key: i32, maxima: *mut u32);
}

/// Runs `kernel`'s CPU twin on `x`: its maxima, then its element pass, as
/// the GPU would, in one thread. For tests: the twin computes exactly what
/// the CUDA kernel computes (same source), so comparing it with a native
/// kernel checks the GPU math without a GPU.
///
/// ```
/// # use swalp_core::cuda::{run_twin, CudaError, CudaKernel, CudaSource, KernelParams};
/// # use swalp_core::Rounding;
/// let kernel = CudaKernel::new(CudaSource { name: "k.cu", text: "" }, "k", KernelParams::new());
/// let err = run_twin(&kernel, &[1.0], Rounding::NearestEven, None).unwrap_err();
/// assert_eq!(err, CudaError::NoTwin { entry: "k".into() });
/// ```
pub fn run_twin(
    kernel: &CudaKernel,
    x: &[f32],
    rounding: Rounding,
    random: Option<RandomStream>,
) -> Result<Vec<f32>, CudaError> {
    let twin = kernel.twin.ok_or_else(|| CudaError::NoTwin {
        entry: kernel.entry.into(),
    })?;
    let mut out = vec![0.0f32; x.len()];
    let base = KernelArgs {
        x: x.as_ptr(),
        ..KernelArgs::new(x.len(), rounding, random)
    };
    let mut maxima = Vec::new();
    if let Some((layout, key)) = &kernel.blocks {
        maxima = vec![0u32; layout.num_blocks()];
        let args = base.with_layout(Some(layout))?;
        // SAFETY: `args.x` points at `args.n` values and `maxima` holds one
        // entry per block of the layout, the largest index block_of returns.
        unsafe { swalp_twin_block_maxima(&args, key.code(), maxima.as_mut_ptr()) };
    }
    let mut tensor_max = 0u32;
    if let Some(key) = kernel.tensor_max {
        // SAFETY: one block (no terms), one maximum.
        unsafe { swalp_twin_block_maxima(&base, key.code(), &mut tensor_max) };
    }
    let params = kernel.params.words();
    let args = KernelArgs {
        out: out.as_mut_ptr(),
        maxima: maxima.as_ptr(),
        tensor_max: &tensor_max,
        ..base.with_layout(kernel.blocks.as_ref().map(|(l, _)| l))?
    };
    // SAFETY: the twin reads `n` inputs, writes `n` outputs, reads maxima
    // at block indices of the layout given (sized above) and the parameter
    // struct its format laid out in `params`.
    unsafe { twin(&args, params.as_ptr().cast()) };
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::QuantRng;

    extern "C" {
        fn swalp_twin_draw(args: *const KernelArgs, index: u64) -> u32;
        fn swalp_twin_block_of(args: *const KernelArgs, index: u64) -> u64;
    }

    #[test]
    fn the_headers_block_lookup_is_the_layouts_in_32_and_64_bits() {
        use crate::block::{Block, BlockLayout};
        let shape = [3usize, 5, 7, 11];
        let blocks = [
            Block::Tensor,
            Block::Dims(vec![0]),
            Block::Dims(vec![1, 3]),
            Block::Chunks { size: 4, dim: 3 },
            Block::Chunks {
                size: 1 << 40,
                dim: 2,
            },
            Block::Tiles {
                size: [2, 3],
                dims: [1, 3],
            },
        ];
        for block in &blocks {
            let layout = BlockLayout::new(block, &shape).unwrap();
            let args = KernelArgs::new(3 * 5 * 7 * 11, Rounding::NearestEven, None)
                .with_layout(Some(&layout))
                .unwrap();
            // The 64-bit path: the same lookup for a tensor past 2^32 (the
            // lookup reads no data, only the count).
            let huge = KernelArgs { n: 1 << 33, ..args };
            for i in 0..3 * 5 * 7 * 11 {
                let expected = layout.block_of(i) as u64;
                // SAFETY: the lookup reads the layout terms and the count.
                let (small, large) = unsafe {
                    (
                        swalp_twin_block_of(&args, i as u64),
                        swalp_twin_block_of(&huge, i as u64),
                    )
                };
                assert_eq!(
                    (small, large),
                    (expected, expected),
                    "{block:?} element {i}"
                );
            }
        }
    }

    #[test]
    fn the_headers_draws_are_the_streams_past_two_to_the_32() {
        // Beyond 2^32 the index's high half salts the second key.
        let stream = QuantRng::new(9).next_stream();
        let args = KernelArgs::new(1, Rounding::STOCHASTIC, Some(stream));
        for i in [0, 17, (1u64 << 32) + 17, (5 << 32) + 3, u64::MAX] {
            // SAFETY: the draw reads the keys and mode only.
            let draw = unsafe { swalp_twin_draw(&args, i) };
            assert_eq!(draw, stream.bits(i), "index {i}");
        }
        let deterministic = KernelArgs::new(1, Rounding::NearestEven, None);
        // SAFETY: as above.
        assert_eq!(unsafe { swalp_twin_draw(&deterministic, 5) }, 0);
    }

    #[test]
    fn kernel_args_have_the_headers_layout() {
        // swalp_args: 5 pointers/counts, 4 ints, a double, 2 ints, 4 arrays.
        assert_eq!(
            std::mem::size_of::<KernelArgs>(),
            5 * 8 + 16 + 8 + 8 + 4 * 8 * MAX_TERMS
        );
        assert!(HEADER.text.contains("#define SWALP_MAX_TERMS 8"));
    }

    #[test]
    fn params_follow_c_struct_layout() {
        // struct { float a; double b; int c; } -> 4 + 4 + 8 + 4 + 4 = 24.
        let p = KernelParams::new().f32(1.0).f64(2.0).i32(3);
        let b = p.bytes();
        assert_eq!(b.len(), 24);
        assert_eq!(&b[8..16], &2.0f64.to_ne_bytes());
        assert_eq!(&b[16..20], &3i32.to_ne_bytes());
        // A nested struct is aligned as its widest field.
        let outer = KernelParams::new()
            .i32(7)
            .nested(&KernelParams::new().f64(1.0).i32(2));
        assert_eq!(outer.bytes().len(), 8 + 16);
    }

    #[test]
    fn layouts_with_too_many_terms_are_refused() {
        use crate::block::{Block, BlockLayout};
        // Nine dimensions with one not blocked between each: nine terms.
        let shape = [2usize; 17];
        let layout = BlockLayout::new(&Block::Dims((0..17).step_by(2).collect()), &shape).unwrap();
        let err = KernelArgs::new(1 << 17, Rounding::NearestEven, None)
            .with_layout(Some(&layout))
            .unwrap_err();
        assert_eq!(err, CudaError::Layout { terms: 9, max: 8 });
    }
}
