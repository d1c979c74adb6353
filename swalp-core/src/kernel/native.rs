//! Building blocks for native kernels: Rust loops over contiguous `f32`
//! slices, computing in `f64` (where scaling by powers of two is exact for
//! every `f32`) and split across threads for large inputs.
//!
//! Work is split by index ranges and every random draw is a function of the
//! element index, so results never depend on the number of threads.
//!
//! Two levels are offered:
//!
//! - [`map_indexed`], [`round_to_grid`] and [`draw`]: the simple form, one
//!   closure per element with the rounding mode decided per element;
//! - the fast form the built-in formats use: [`with_round_rule!`](crate::with_round_rule)
//!   monomorphises a kernel per rounding mode (a [`RoundRule`], equal to
//!   [`Rounding::round_int`] bit for bit, without a branch per element),
//!   [`for_each_chunk`] splits the work into aligned chunks across
//!   libtorch's intra-op threads, and [`map_simd`] runs a branch-free
//!   per-element function ([`ElementFn`]) in a loop that the compiler
//!   vectorises (for AVX-512 or AVX2 where the CPU has them, chosen at run
//!   time).

use crate::rng::{RandomStream, StreamSegment};
use crate::rounding::{RoundRule, Rounding};

/// Inputs shorter than this run on the calling thread: below it, waking
/// worker threads costs more than it saves.
pub const PARALLEL_THRESHOLD: usize = 1 << 15;

/// The unit of work [`for_each_chunk`] hands out: a power of two, so no
/// chunk straddles a `2^32`-element segment of a random stream.
pub const CHUNK: usize = 1 << 14;

/// `2^k` exactly, for `k` in `-1022..=1023`.
///
/// ```
/// assert_eq!(swalp_core::kernel::native::pow2(-3), 0.125);
/// ```
#[inline]
pub fn pow2(k: i32) -> f64 {
    debug_assert!((-1022..=1023).contains(&k));
    f64::from_bits(((k + 1023) as u64) << 52)
}

/// `floor(log2(|x|))` for a finite, nonzero, normal `x`.
///
/// ```
/// use swalp_core::kernel::native::exponent;
/// assert_eq!(exponent(1.0), 0);
/// assert_eq!(exponent(-0.75), -1);
/// assert_eq!(exponent(1e-40_f32 as f64), -133);
/// ```
#[inline]
pub fn exponent(x: f64) -> i32 {
    ((x.to_bits() >> 52) & 0x7ff) as i32 - 1023
}

/// The random draw of element `index`, or 0 for deterministic rounding.
#[inline]
pub fn draw(random: Option<RandomStream>, index: usize) -> u32 {
    random.map_or(0, |r| r.bits(index as u64))
}

/// Rounds `x / 2^k` to an integer with `rounding`, the core step of every
/// grid-based format: the caller clamps the integer and multiplies by `2^k`.
///
/// ```
/// use swalp_core::{kernel::native::round_to_grid, Rounding};
/// // 0.3 on a grid of step 2^-2 = 0.25 is 1.2 steps.
/// assert_eq!(round_to_grid(0.3, -2, Rounding::NearestEven, 0), 1.0);
/// assert_eq!(round_to_grid(0.3, -2, Rounding::Up, 0), 2.0);
/// ```
#[inline]
pub fn round_to_grid(x: f64, k: i32, rounding: Rounding, random: u32) -> f64 {
    rounding.round_int(x * pow2(-k), random)
}

/// Writes `out[i] = f(i, input[i])` for every `i`, in parallel for large
/// inputs. `f` receives the global element index, for random draws and block
/// lookups.
///
/// ```
/// let x = [1.0f32, 2.0, 3.0];
/// let mut y = [0.0f32; 3];
/// swalp_core::kernel::native::map_indexed(&x, &mut y, |i, v| v * i as f32);
/// assert_eq!(y, [0.0, 2.0, 6.0]);
/// ```
pub fn map_indexed<F>(input: &[f32], out: &mut [f32], f: F)
where
    F: Fn(usize, f32) -> f32 + Sync,
{
    struct Indexed<'a, F>(&'a F, usize);
    impl<F: Fn(usize, f32) -> f32 + Sync> ElementFn for Indexed<'_, F> {
        #[inline(always)]
        fn apply(&self, j: u32, v: f32) -> f32 {
            (self.0)(self.1 + j as usize, v)
        }
    }
    for_each_chunk(input, out, |start, inp, outp| {
        map_simd(inp, outp, 0, Indexed(&f, start));
    });
}

/// A per-element function for [`map_simd`]: `apply(lo, v)` rounds the value
/// `v` of the element whose index has low 32 bits `lo`. Implementations
/// mark `apply` `#[inline(always)]` and keep it branch-free (selects, not
/// early returns), so the loop vectorises.
pub trait ElementFn: Sync {
    /// The output for input `v` at low index bits `lo`.
    fn apply(&self, lo: u32, v: f32) -> f32;
}

/// Calls `f(start, input_chunk, out_chunk)` on consecutive chunks of
/// [`CHUNK`] elements (the last one shorter), `start` being the index of the
/// chunk's first element; in parallel when the input has at least
/// [`PARALLEL_THRESHOLD`] elements. Chunks start at multiples of `CHUNK`, so
/// `start as u32 + j` is the low 32 bits of element `start + j`'s index and
/// one [`StreamSegment`] serves a whole chunk.
///
/// The threads are libtorch's intra-op (OpenMP) threads, sized by
/// `tch::set_num_threads`, the ones its own operators use: a second pool
/// would compete with them for the cores whenever the two alternate, as they
/// do in a training step. Where libtorch's OpenMP runtime is not found, the
/// threads are rayon's.
///
/// ```
/// let x = vec![1.0f32; 100_000];
/// let mut y = vec![0.0f32; 100_000];
/// swalp_core::kernel::native::for_each_chunk(&x, &mut y, |start, inp, out| {
///     for (j, (o, v)) in out.iter_mut().zip(inp).enumerate() {
///         *o = v + (start + j) as f32;
///     }
/// });
/// assert_eq!(y[99_999], 100_000.0);
/// ```
pub fn for_each_chunk<F>(input: &[f32], out: &mut [f32], f: F)
where
    F: Fn(usize, &[f32], &mut [f32]) + Sync,
{
    assert_eq!(input.len(), out.len(), "input and output lengths differ");
    let len = input.len();
    let out_ptr = SyncPtr(out.as_mut_ptr());
    parallel_chunks(len, |first, last| {
        for c in first..last {
            let start = c * CHUNK;
            let n = CHUNK.min(len - start);
            // SAFETY: chunk `c` covers `start..start + n` within `out`, and
            // every chunk index is handed to exactly one call, so the
            // mutable slices never overlap; `out` outlives the loop.
            let outp = unsafe { std::slice::from_raw_parts_mut(out_ptr.get().add(start), n) };
            f(start, &input[start..start + n], outp);
        }
    });
}

/// [`for_each_chunk`] for a pass that only reads: `f(start, chunk)`.
pub fn for_each_input_chunk<F>(input: &[f32], f: F)
where
    F: Fn(usize, &[f32]) + Sync,
{
    let len = input.len();
    parallel_chunks(len, |first, last| {
        for c in first..last {
            let start = c * CHUNK;
            f(start, &input[start..len.min(start + CHUNK)]);
        }
    });
}

#[derive(Clone, Copy)]
struct SyncPtr(*mut f32);
// SAFETY: used only to hand disjoint sub-slices to parallel workers.
unsafe impl Send for SyncPtr {}
unsafe impl Sync for SyncPtr {}
impl SyncPtr {
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// Calls `f(first, last)` on disjoint ranges of chunk indices covering the
/// `len.div_ceil(CHUNK)` chunks of a `len`-element slice: on this thread
/// below [`PARALLEL_THRESHOLD`] elements, otherwise on libtorch's intra-op
/// threads (see [`omp`]), or rayon's where libtorch's OpenMP runtime cannot
/// be found. A panic in `f` is re-raised here.
fn parallel_chunks<F>(len: usize, f: F)
where
    F: Fn(usize, usize) + Sync,
{
    parallel_items(len.div_ceil(CHUNK), len >= PARALLEL_THRESHOLD, f);
}

/// Calls `f(first, last)` on disjoint ranges covering the items
/// `0..items`: on this thread unless `parallel`, otherwise on libtorch's
/// intra-op threads (see [`for_each_chunk`]), or rayon's where libtorch's
/// OpenMP runtime cannot be found. A panic in `f` is re-raised here. For
/// kernels whose unit of work is not a chunk of one slice (the rows of a
/// matrix product).
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// let sum = AtomicUsize::new(0);
/// swalp_core::kernel::native::parallel_items(100, true, |first, last| {
///     sum.fetch_add((first..last).sum::<usize>(), Ordering::Relaxed);
/// });
/// assert_eq!(sum.into_inner(), 4950);
/// ```
pub fn parallel_items<F>(items: usize, parallel: bool, f: F)
where
    F: Fn(usize, usize) + Sync,
{
    if !parallel {
        f(0, items);
    } else if let Some(runtime) = omp::runtime() {
        runtime.run(items, &f);
    } else {
        use rayon::prelude::*;
        (0..items).into_par_iter().for_each(|c| f(c, c + 1));
    }
}

/// Parallel loops on libtorch's intra-op threads.
///
/// libtorch (the PyTorch wheels on Linux) runs its CPU operators on an
/// OpenMP thread pool (GNU libgomp). After each parallel operator those
/// threads keep spinning for a while; a second pool (rayon) started right
/// after competes with them for the cores, and a training step alternates
/// the two hundreds of times. So native kernels run on the same OpenMP
/// threads, through libgomp's entry point `GOMP_parallel` (what
/// `#pragma omp parallel` compiles to), looked up in the running process:
/// libtorch loads its OpenMP runtime, swalp does not link one. The thread
/// count is libtorch's (`tch::set_num_threads`). Work is handed out in
/// small groups of chunks from a shared counter, so a thread that the
/// operating system delays does not hold up the others.
mod omp {
    use std::any::Any;
    use std::ffi::{c_int, c_uint, c_void};
    use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Mutex, OnceLock};

    type ParallelFn = unsafe extern "C" fn(extern "C" fn(*mut c_void), *mut c_void, c_uint, c_uint);
    type IntFn = unsafe extern "C" fn() -> c_int;

    /// libgomp's entry points.
    pub(super) struct Runtime {
        parallel: ParallelFn,
        in_parallel: IntFn,
        max_threads: IntFn,
    }

    /// Chunks claimed at a time from the shared counter.
    const GROUP: usize = 4;

    /// The OpenMP runtime libtorch loaded, if any.
    pub(super) fn runtime() -> Option<&'static Runtime> {
        static RUNTIME: OnceLock<Option<Runtime>> = OnceLock::new();
        RUNTIME.get_or_init(find).as_ref()
    }

    #[cfg(target_os = "linux")]
    fn find() -> Option<Runtime> {
        extern "C" {
            fn dlsym(handle: *mut c_void, symbol: *const std::ffi::c_char) -> *mut c_void;
        }
        // glibc's RTLD_DEFAULT (null): search every object in the process.
        let lookup = |name: &std::ffi::CStr| {
            // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name.
            let p = unsafe { dlsym(std::ptr::null_mut(), name.as_ptr()) };
            (!p.is_null()).then_some(p)
        };
        let parallel = lookup(c"GOMP_parallel")?;
        let in_parallel = lookup(c"omp_in_parallel")?;
        let max_threads = lookup(c"omp_get_max_threads")?;
        // SAFETY: these are libgomp's functions, with these signatures.
        unsafe {
            Some(Runtime {
                parallel: std::mem::transmute::<*mut c_void, ParallelFn>(parallel),
                in_parallel: std::mem::transmute::<*mut c_void, IntFn>(in_parallel),
                max_threads: std::mem::transmute::<*mut c_void, IntFn>(max_threads),
            })
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn find() -> Option<Runtime> {
        None
    }

    struct Job<'a, F> {
        f: &'a F,
        chunks: usize,
        next: AtomicUsize,
        panic: Mutex<Option<Box<dyn Any + Send>>>,
    }

    extern "C" fn worker<F: Fn(usize, usize) + Sync>(data: *mut c_void) {
        // SAFETY: `data` is the `Job` of `run`, alive until GOMP_parallel
        // returns, and only shared (atomics and a mutex inside).
        let job = unsafe { &*(data as *const Job<'_, F>) };
        // No unwinding into C: keep the first panic for the caller.
        let outcome = catch_unwind(AssertUnwindSafe(|| loop {
            let first = job.next.fetch_add(GROUP, Ordering::Relaxed);
            if first >= job.chunks {
                break;
            }
            (job.f)(first, (first + GROUP).min(job.chunks));
        }));
        if let Err(p) = outcome {
            // Let the other threads stop early.
            job.next.store(job.chunks, Ordering::Relaxed);
            let mut slot = job.panic.lock().unwrap_or_else(|e| e.into_inner());
            slot.get_or_insert(p);
        }
    }

    impl Runtime {
        /// Calls `f(first, last)` on disjoint ranges covering `0..chunks`.
        pub(super) fn run<F: Fn(usize, usize) + Sync>(&self, chunks: usize, f: &F) {
            // SAFETY: plain queries of the OpenMP runtime.
            let (nested, threads) = unsafe { ((self.in_parallel)() != 0, (self.max_threads)()) };
            if nested || threads <= 1 || chunks <= GROUP {
                f(0, chunks);
                return;
            }
            let job = Job {
                f,
                chunks,
                next: AtomicUsize::new(0),
                panic: Mutex::new(None),
            };
            let threads = (threads as usize).min(chunks.div_ceil(GROUP)) as c_uint;
            // SAFETY: `worker::<F>` matches the job's type; GOMP_parallel
            // runs it on `threads` threads (this one included) and returns
            // when all are done.
            unsafe {
                (self.parallel)(
                    worker::<F>,
                    &job as *const Job<'_, F> as *mut c_void,
                    threads,
                    0,
                );
            }
            if let Some(p) = job.panic.into_inner().unwrap_or_else(|e| e.into_inner()) {
                resume_unwind(p);
            }
        }
    }
}

/// The draws for the chunk starting at element `start` (a default segment
/// when `random` is `None`).
#[inline]
pub fn segment(random: Option<RandomStream>, start: usize) -> StreamSegment {
    random.map_or_else(StreamSegment::default, |r| r.segment(start as u64))
}

/// Writes `out[j] = f.apply(first + j, input[j])` (the index wrapping in
/// `u32`): the inner loop of a native kernel. `f` is taken by value, so its
/// parameters live in registers during the loop. On x86-64 the loop is also
/// compiled for AVX-512 and AVX2 and the best the CPU has is chosen at run
/// time. Every variant computes the same IEEE operations (Rust never fuses
/// or reorders floating-point arithmetic), so results do not depend on the
/// CPU.
#[inline(always)]
pub fn map_simd<F: ElementFn>(input: &[f32], out: &mut [f32], first: u32, f: F) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx512bw")
        {
            // SAFETY: the CPU supports these features.
            return unsafe { map_simd_avx512(input, out, first, f) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2.
            return unsafe { map_simd_avx2(input, out, first, f) };
        }
    }
    map_simd_plain(input, out, first, f)
}

#[inline(always)]
fn map_simd_plain<F: ElementFn>(input: &[f32], out: &mut [f32], first: u32, f: F) {
    let n = input.len().min(out.len());
    let (input, out) = (&input[..n], &mut out[..n]);
    for j in 0..n {
        out[j] = f.apply(first.wrapping_add(j as u32), input[j]);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn map_simd_avx2<F: ElementFn>(input: &[f32], out: &mut [f32], first: u32, f: F) {
    map_simd_plain(input, out, first, f)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512vl,avx512bw")]
unsafe fn map_simd_avx512<F: ElementFn>(input: &[f32], out: &mut [f32], first: u32, f: F) {
    map_simd_plain(input, out, first, f)
}

/// What [`map_runs_simd`] does with a run of elements sharing a block: the
/// scale its largest key gives, and the element function of that scale.
pub trait RunFn: Sync {
    /// A run's scale.
    type Scale: Copy + Default;
    /// The element function of one run.
    type Element: ElementFn;

    /// The scale of a run whose largest key is `max_key`. Called in a loop
    /// over the runs of a chunk, which the compiler vectorises when this is
    /// branch-free.
    fn scale(&self, max_key: u32) -> Self::Scale;

    /// The element function of a run of scale `scale`.
    fn element(&self, scale: Self::Scale) -> Self::Element;
}

/// Rounds `input` as consecutive runs of `run` elements (the last possibly
/// shorter), each run by the element function of the scale of its largest
/// `key`: `out[j] = f.element(f.scale(max)).apply(first + j, input[j])`.
/// For block formats whose blocks are short equal runs (NVFP4's 16 along
/// the last dimension): the maxima of all runs, then all their scales, then the elements,
/// each a vectorised loop compiled for the best instruction set as
/// [`map_simd`] is, rather than one dispatched call per block.
#[inline(always)]
pub fn map_runs_simd<F: RunFn, K: Fn(f32) -> u32>(
    input: &[f32],
    out: &mut [f32],
    first: u32,
    run: usize,
    key: K,
    f: &F,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx512bw")
        {
            // SAFETY: the CPU supports these features.
            return unsafe { map_runs_avx512(input, out, first, run, key, f) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2.
            return unsafe { map_runs_avx2(input, out, first, run, key, f) };
        }
    }
    map_runs_plain(input, out, first, run, key, f)
}

#[inline(always)]
fn map_runs_plain<F: RunFn, K: Fn(f32) -> u32>(
    input: &[f32],
    out: &mut [f32],
    first: u32,
    run: usize,
    key: K,
    f: &F,
) {
    // Runs of a length known at compile time are one or two vector
    // registers each, with no loop overhead per run.
    match run {
        16 => map_runs_of::<16, F, K>(input, out, first, key, f),
        32 => map_runs_of::<32, F, K>(input, out, first, key, f),
        _ => map_runs_dynamic(input, out, first, run.max(1), key, f),
    }
}

#[inline(always)]
fn map_runs_of<const N: usize, F: RunFn, K: Fn(f32) -> u32>(
    input: &[f32],
    out: &mut [f32],
    first: u32,
    key: K,
    f: &F,
) {
    let n = input.len().min(out.len());
    let whole = n / N * N;
    let (inp, tail_in) = input[..n].split_at(whole);
    let (outp, tail_out) = out[..n].split_at_mut(whole);
    // Plain loops rather than iterator adapters, so that everything is
    // inlined into the caller compiled for the vector instruction set.
    let runs = whole / N;
    let mut maxima = vec![0u32; runs];
    for (i, max) in maxima.iter_mut().enumerate() {
        let run = &inp[i * N..i * N + N];
        let mut m = 0u32;
        for &v in run {
            m = m.max(key(v));
        }
        *max = m;
    }
    let mut scales = vec![F::Scale::default(); runs];
    for i in 0..runs {
        scales[i] = f.scale(maxima[i]);
    }
    for i in 0..runs {
        let e = f.element(scales[i]);
        let base = first.wrapping_add((i * N) as u32);
        let (run_in, run_out) = (&inp[i * N..i * N + N], &mut outp[i * N..i * N + N]);
        for j in 0..N {
            run_out[j] = e.apply(base.wrapping_add(j as u32), run_in[j]);
        }
    }
    map_runs_dynamic(
        tail_in,
        tail_out,
        first.wrapping_add(whole as u32),
        N,
        key,
        f,
    );
}

#[inline(always)]
fn map_runs_dynamic<F: RunFn, K: Fn(f32) -> u32>(
    input: &[f32],
    out: &mut [f32],
    first: u32,
    run: usize,
    key: K,
    f: &F,
) {
    for (i, (inp, outp)) in input.chunks(run).zip(out.chunks_mut(run)).enumerate() {
        let max = inp.iter().fold(0u32, |m, &v| m.max(key(v)));
        let e = f.element(f.scale(max));
        let base = first.wrapping_add((i * run) as u32);
        for (j, (o, &v)) in outp.iter_mut().zip(inp).enumerate() {
            *o = e.apply(base.wrapping_add(j as u32), v);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn map_runs_avx2<F: RunFn, K: Fn(f32) -> u32>(
    input: &[f32],
    out: &mut [f32],
    first: u32,
    run: usize,
    key: K,
    f: &F,
) {
    map_runs_plain(input, out, first, run, key, f)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512vl,avx512bw")]
unsafe fn map_runs_avx512<F: RunFn, K: Fn(f32) -> u32>(
    input: &[f32],
    out: &mut [f32],
    first: u32,
    run: usize,
    key: K,
    f: &F,
) {
    map_runs_plain(input, out, first, run, key, f)
}

/// Rounds `input` as consecutive runs of `run` elements whose scales are
/// given: `out[j] = element(scales[j / run]).apply(first + j, input[j])`,
/// vectorised as [`map_simd`] is. For blocks made of several runs (2-D
/// tiles), whose maxima are found beforehand.
#[inline(always)]
pub fn map_runs_scaled_simd<S: Copy, E: ElementFn, M: Fn(S) -> E>(
    input: &[f32],
    out: &mut [f32],
    first: u32,
    run: usize,
    scales: &[S],
    element: M,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx512bw")
        {
            // SAFETY: the CPU supports these features.
            return unsafe { map_runs_scaled_avx512(input, out, first, run, scales, element) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2.
            return unsafe { map_runs_scaled_avx2(input, out, first, run, scales, element) };
        }
    }
    map_runs_scaled_plain(input, out, first, run, scales, element)
}

#[inline(always)]
fn map_runs_scaled_plain<S: Copy, E: ElementFn, M: Fn(S) -> E>(
    input: &[f32],
    out: &mut [f32],
    first: u32,
    run: usize,
    scales: &[S],
    element: M,
) {
    if run == 16 {
        return runs_with_scales::<16, S, E, M>(input, out, first, scales, element);
    }
    let run = run.max(1);
    for (i, (inp, outp)) in input.chunks(run).zip(out.chunks_mut(run)).enumerate() {
        let e = element(scales[i]);
        let base = first.wrapping_add((i * run) as u32);
        for (j, (o, &v)) in outp.iter_mut().zip(inp).enumerate() {
            *o = e.apply(base.wrapping_add(j as u32), v);
        }
    }
}

#[inline(always)]
fn runs_with_scales<const N: usize, S: Copy, E: ElementFn, M: Fn(S) -> E>(
    input: &[f32],
    out: &mut [f32],
    first: u32,
    scales: &[S],
    element: M,
) {
    let n = input.len().min(out.len());
    let runs = n.div_ceil(N);
    for i in 0..runs.min(scales.len()) {
        let e = element(scales[i]);
        let base = first.wrapping_add((i * N) as u32);
        let end = (i * N + N).min(n);
        if end - i * N == N {
            let (run_in, run_out) = (&input[i * N..i * N + N], &mut out[i * N..i * N + N]);
            for j in 0..N {
                run_out[j] = e.apply(base.wrapping_add(j as u32), run_in[j]);
            }
        } else {
            for j in i * N..end {
                out[j] = e.apply(first.wrapping_add(j as u32), input[j]);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn map_runs_scaled_avx2<S: Copy, E: ElementFn, M: Fn(S) -> E>(
    input: &[f32],
    out: &mut [f32],
    first: u32,
    run: usize,
    scales: &[S],
    element: M,
) {
    map_runs_scaled_plain(input, out, first, run, scales, element)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512vl,avx512bw")]
unsafe fn map_runs_scaled_avx512<S: Copy, E: ElementFn, M: Fn(S) -> E>(
    input: &[f32],
    out: &mut [f32],
    first: u32,
    run: usize,
    scales: &[S],
    element: M,
) {
    map_runs_scaled_plain(input, out, first, run, scales, element)
}

/// The largest `f(x)` over `input` (0 for an empty slice), vectorised as
/// [`map_simd`] is: for block maxima over `f32` bit patterns, which order
/// non-negative floats as their values do.
#[inline(always)]
pub fn max_simd<F>(input: &[f32], f: F) -> u32
where
    F: Fn(f32) -> u32,
{
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F.
            return unsafe { max_simd_avx512(input, &f) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2.
            return unsafe { max_simd_avx2(input, &f) };
        }
    }
    max_simd_plain(input, &f)
}

#[inline(always)]
fn max_simd_plain<F>(input: &[f32], f: &F) -> u32
where
    F: Fn(f32) -> u32,
{
    // Sixteen independent lanes: a shape the vectoriser maps onto vector
    // registers whatever `f` is.
    const LANES: usize = 16;
    let mut acc = [0u32; LANES];
    let mut chunks = input.chunks_exact(LANES);
    for c in &mut chunks {
        for l in 0..LANES {
            acc[l] = acc[l].max(f(c[l]));
        }
    }
    let tail = chunks.remainder().iter().fold(0u32, |m, &v| m.max(f(v)));
    acc.into_iter().fold(tail, u32::max)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn max_simd_avx2<F>(input: &[f32], f: &F) -> u32
where
    F: Fn(f32) -> u32,
{
    max_simd_plain(input, f)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn max_simd_avx512<F>(input: &[f32], f: &F) -> u32
where
    F: Fn(f32) -> u32,
{
    max_simd_plain(input, f)
}

/// `|v|` as `f32` bits with NaN read as 0: the block-maximum key of formats
/// whose NaNs take no part in the maximum. `f32::from_bits` of the largest
/// key is the largest magnitude.
#[inline(always)]
pub fn abs_bits_nan_zero(v: f32) -> u32 {
    let a = v.to_bits() & 0x7fff_ffff;
    if a > 0x7f80_0000 {
        0
    } else {
        a
    }
}

/// `|v|` as `f32` bits with NaN and infinities read as 0: the
/// block-maximum key of formats whose scale only finite values set.
#[inline(always)]
pub fn abs_bits_finite(v: f32) -> u32 {
    let a = v.to_bits() & 0x7fff_ffff;
    if a >= 0x7f80_0000 {
        0
    } else {
        a
    }
}

/// `|v|` as `f32` bits with NaN read as infinity: the block-maximum key of
/// formats where a NaN or an infinity marks its block.
#[inline(always)]
pub fn abs_bits_nan_inf(v: f32) -> u32 {
    (v.to_bits() & 0x7fff_ffff).min(0x7f80_0000)
}

/// The element function of a uniform grid (fixed point, one block of block
/// floating point): [`grid_element`] with the rule's draws.
#[derive(Clone, Copy, Debug)]
pub struct Grid<R> {
    /// The rounding.
    pub rule: R,
    /// The draws of the chunk.
    pub segment: StreamSegment,
    /// `2^-k`.
    pub scale: f64,
    /// `2^k`.
    pub step: f64,
    /// The lowest integer.
    pub lo: f64,
    /// The highest integer.
    pub hi: f64,
}

impl<R: RoundRule> ElementFn for Grid<R> {
    #[inline(always)]
    fn apply(&self, lo: u32, v: f32) -> f32 {
        let random = self.rule.draw(self.segment, lo);
        grid_element(
            self.rule, v, random, self.scale, self.step, self.lo, self.hi,
        )
    }
}

/// `round(v · scale)` clamped to `[lo, hi]` (as `f64::clamp` does: NaN
/// stays NaN), times `step`, as `f32`: the element step of fixed point and
/// block floating point with `scale = 2^-k`, `step = 2^k`.
#[inline(always)]
pub fn grid_element<R: RoundRule>(
    rule: R,
    v: f32,
    random: u32,
    scale: f64,
    step: f64,
    lo: f64,
    hi: f64,
) -> f32 {
    grid_value(rule, f64::from(v), random, scale, step, lo, hi) as f32
}

/// [`grid_element`] for an `f64` value, without the final cast: the
/// rounding of fixed point where the input is an exact `f64` (a product or
/// a sum in [`crate::matmul`]).
///
/// ```
/// use swalp_core::{kernel::native::grid_value, rounding::NearestEvenRule};
/// // 0.3 on the grid 2^-6 of an 8-bit fixed point: 19/64.
/// assert_eq!(grid_value(NearestEvenRule, 0.3, 0, 64.0, 1.0 / 64.0, -128.0, 127.0), 0.296875);
/// ```
#[inline(always)]
pub fn grid_value<R: RoundRule>(
    rule: R,
    x: f64,
    random: u32,
    scale: f64,
    step: f64,
    lo: f64,
    hi: f64,
) -> f64 {
    let n = rule.round(x * scale, random);
    let n = if n < lo { lo } else { n };
    let n = if n > hi { hi } else { n };
    n * step
}

/// Writes `values[j] = f(values[j], draw)` for every `j`, the draw being
/// element `first + j`'s of `random` under a stochastic `rule` (0 under a
/// deterministic one, never computed): the loop behind every
/// [`ValueRounding`](crate::format::ValueRounding).
///
/// ```
/// use swalp_core::{kernel::native::map_values, rounding::{NearestEvenRule, RoundRule}};
/// let mut v = [0.4, 1.6];
/// map_values(NearestEvenRule, &mut v, None, 0, |x, d| NearestEvenRule.round(x, d));
/// assert_eq!(v, [0.0, 2.0]);
/// ```
#[inline(always)]
pub fn map_values<R: RoundRule, F: Fn(f64, u32) -> f64>(
    rule: R,
    values: &mut [f64],
    random: Option<RandomStream>,
    first: u64,
    f: F,
) {
    match random.filter(|_| R::STOCHASTIC) {
        None => map_values_simd(values, f),
        Some(r) => {
            for (j, v) in values.iter_mut().enumerate() {
                *v = f(
                    *v,
                    rule.draw(r.segment(first + j as u64), (first + j as u64) as u32),
                );
            }
        }
    }
}

/// `values[j] = f(values[j], 0)` in a loop compiled for the best vector
/// extension the CPU has, as [`map_simd`] does.
#[inline(always)]
fn map_values_simd<F: Fn(f64, u32) -> f64>(values: &mut [f64], f: F) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("avx512vl")
        {
            // SAFETY: the CPU supports these features.
            return unsafe { map_values_avx512(values, f) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2.
            return unsafe { map_values_avx2(values, f) };
        }
    }
    values.iter_mut().for_each(|v| *v = f(*v, 0));
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn map_values_avx2<F: Fn(f64, u32) -> f64>(values: &mut [f64], f: F) {
    values.iter_mut().for_each(|v| *v = f(*v, 0));
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512vl")]
unsafe fn map_values_avx512<F: Fn(f64, u32) -> f64>(values: &mut [f64], f: F) {
    values.iter_mut().for_each(|v| *v = f(*v, 0));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rounding::StochasticRule;

    #[test]
    fn simd_loops_match_plain_loops() {
        let x: Vec<f32> = (0..1000).map(|i| (i as f32 - 500.0) * 0.37).collect();
        let mut a = vec![0.0f32; 1000];
        let mut b = vec![0.0f32; 1000];
        let f = Grid {
            rule: StochasticRule::new(32),
            segment: QuantRngHelper::segment(),
            scale: 4.0,
            step: 0.25,
            lo: -8.0,
            hi: 7.0,
        };
        map_simd(&x, &mut a, 7, f);
        map_simd_plain(&x, &mut b, 7, f);
        assert_eq!(a, b);
        assert_eq!(
            max_simd(&x, abs_bits_nan_zero),
            x.iter().fold(0.0f32, |m, v| m.max(v.abs())).to_bits()
        );
    }

    struct QuantRngHelper;
    impl QuantRngHelper {
        fn segment() -> StreamSegment {
            crate::QuantRng::new(3).next_stream().segment(0)
        }
    }
}
