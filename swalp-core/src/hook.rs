//! The activation/error quantization point as a real autograd node.
//!
//! [`QuantAct`] rounds a value with the activation quantizer on the way
//! forward and the gradient flowing back through it with the error
//! quantizer, in any graph (residual blocks, branches, modules used twice)
//! and on any device. The node lives in C++ (`cpp/quant_hook.cpp`) because
//! tch has no custom autograd functions; it calls back into Rust for the
//! rounding and holds a reference count on the [`QuantHook`], so the
//! quantizers outlive every graph that still needs them. Rust panics are
//! caught before they reach C++, and errors come back as [`Error`]s (from
//! [`QuantAct::f_forward`]) or as libtorch errors from `backward`.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use tch::{nn, Tensor};
use torch_sys::C_tensor;

use crate::error::{Error, Result};
use crate::quantizer::{QuantPair, Quantizer};
use crate::rng::QuantRng;

/// A random-number generator shared by the quantization points of a model,
/// so a whole run draws from one reproducible sequence.
///
/// ```
/// use swalp_core::hook::{shared_rng, SharedRng};
/// let rng: SharedRng = shared_rng(7);
/// let shared = rng.clone(); // one generator for every point
/// let _ = shared.lock().unwrap().next_stream();
/// assert_eq!(rng.lock().unwrap().streams_used(), 1);
/// ```
pub type SharedRng = Arc<Mutex<QuantRng>>;

/// Creates a [`SharedRng`] from a seed.
///
/// ```
/// let rng = swalp_core::hook::shared_rng(0);
/// assert_eq!(rng.lock().unwrap().seed(), 0);
/// ```
pub fn shared_rng(seed: u64) -> SharedRng {
    Arc::new(Mutex::new(QuantRng::new(seed)))
}

/// The state shared between a [`QuantAct`] and the graph nodes it created.
///
/// ```
/// use swalp_core::{hook::{shared_rng, QuantAct}, Quantizer};
/// use swalp_core::tch::{Kind, Tensor};
/// # use swalp_formats as _;
/// let q: Quantizer = r#"{ format = "fixed", wl = 8, fl = 6 }"#.parse()?;
/// let act = QuantAct::from_quantizers(None, Some(q), shared_rng(0));
/// let x = Tensor::from_slice(&[1.0f32]).set_requires_grad(true);
/// let y = act.f_forward(&x)?;
/// drop(act); // the graph of `y` keeps the hook, and its quantizers, alive
/// (&y * 0.3).sum(Kind::Float).backward();
/// assert_eq!(Vec::<f32>::try_from(&x.grad())?, [0.296875]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct QuantHook {
    pair: QuantPair,
    rng: SharedRng,
}

/// Direction codes shared with `cpp/quant_hook.cpp`: 0 forward, 1 backward.
const FORWARD: c_int = 0;

impl QuantHook {
    fn quantize(&self, direction: c_int, x: &Tensor) -> Result<Tensor> {
        let quantizer = if direction == FORWARD {
            &self.pair.forward
        } else {
            &self.pair.backward
        };
        match quantizer {
            // A fresh tensor, so the graph edge attaches to our own output.
            None => Ok(x.detach().copy()),
            Some(q) => {
                // A poisoned lock only means another thread panicked while
                // rounding; the generator state itself is always valid.
                let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
                q.quantize(x, &mut rng)
            }
        }
    }
}

extern "C" {
    fn swalp_hook_apply(
        hook: *const c_void,
        quantize: QuantizeFn,
        release: ReleaseFn,
        input: *const C_tensor,
        output: *mut *mut C_tensor,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;
}

/// The C++ node's callback: maps the tensor (ownership passed) in
/// direction 0 (forward) or 1 (backward, the incoming gradient).
pub(crate) type QuantizeFn =
    extern "C" fn(*const c_void, c_int, *mut C_tensor, *mut c_char, usize) -> *mut C_tensor;
/// Releases the state the node holds.
pub(crate) type ReleaseFn = extern "C" fn(*const c_void);

/// `x` through the C++ node (`cpp/quant_hook.cpp`): `map` on the way
/// forward and on the gradient flowing back, `state` (from
/// `Arc::into_raw`, handed over) passed to both and released by `release`
/// when the graph is freed. The quantization point and the differentiable
/// all-reduce of synchronised BatchNorm ([`crate::distributed`]) are such
/// nodes.
///
/// # Safety
/// `state` must come from `Arc::into_raw` of the type `map` and `release`
/// expect, with a reference the call takes over.
pub(crate) unsafe fn apply_node(
    state: *const c_void,
    map: QuantizeFn,
    release: ReleaseFn,
    x: &Tensor,
) -> std::result::Result<Tensor, String> {
    let mut err = vec![0 as c_char; 1024];
    let mut out: *mut C_tensor = std::ptr::null_mut();
    // SAFETY: `x` outlives the call; the C++ side takes over the reference
    // and returns a new heap tensor on success.
    let status = unsafe {
        swalp_hook_apply(
            state,
            map,
            release,
            x.as_ptr(),
            &mut out,
            err.as_mut_ptr(),
            err.len(),
        )
    };
    take_from_cpp(status, out, &err)
}

extern "C" fn quantize_callback(
    hook: *const c_void,
    direction: c_int,
    input: *mut C_tensor,
    err: *mut c_char,
    err_len: usize,
) -> *mut C_tensor {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `hook` is a pointer from `Arc::into_raw` kept alive by the
        // C++ side's reference; `input` is a fresh heap tensor handed over.
        let hook = unsafe { &*(hook as *const QuantHook) };
        let x = unsafe { Tensor::from_ptr(input) };
        hook.quantize(direction, &x)
    }));
    hand_to_cpp(outcome, "panic while quantizing", err, err_len)
}

extern "C" fn release_callback(hook: *const c_void) {
    // SAFETY: every pointer handed to C++ came from `Arc::into_raw` on an
    // `Arc<QuantHook>` and is released exactly once.
    unsafe { release_from_cpp::<QuantHook>(hook, "a quantization hook") }
}

/// What a Rust callback of the C++ shim returns: the tensor, whose
/// ownership passes to the caller, or null after writing the error (or the
/// panic, after `panic_prefix`) into `err`. Shared by the quantization hook
/// and the matrix-product node ([`crate::matmul`]).
pub(crate) fn hand_to_cpp(
    outcome: std::thread::Result<Result<Tensor>>,
    panic_prefix: &str,
    err: *mut c_char,
    err_len: usize,
) -> *mut C_tensor {
    let message = match outcome {
        Ok(Ok(mut y)) => {
            let ptr = y.as_mut_ptr();
            // Ownership of the C++ tensor passes to the caller.
            std::mem::forget(y);
            return ptr;
        }
        Ok(Err(e)) => e.to_string(),
        Err(panic) => format!("{panic_prefix}: {}", panic_message(&panic)),
    };
    write_message(&message, err, err_len);
    std::ptr::null_mut()
}

/// Drops the reference to a `T` that the C++ shim held (`what` names it in
/// the log).
///
/// # Safety
/// `hook` must come from `Arc::<T>::into_raw` and be released only once.
pub(crate) unsafe fn release_from_cpp<T>(hook: *const c_void, what: &str) {
    // A panic must not unwind into C++ (dropping the last reference drops
    // the quantizers, which is Rust code); one here is a bug worth a log
    // line, not an abort.
    let released = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the caller's guarantee.
        drop(unsafe { Arc::from_raw(hook as *const T) });
    }));
    if let Err(panic) = released {
        log::error!("panic while releasing {what}: {}", panic_message(&panic));
    }
}

/// The tensor a C++ shim function returned (`status` 0 and `out` set), or
/// the NUL-terminated message it wrote into `err`.
pub(crate) fn take_from_cpp(
    status: c_int,
    out: *mut C_tensor,
    err: &[c_char],
) -> std::result::Result<Tensor, String> {
    if status == 0 && !out.is_null() {
        // SAFETY: a fresh heap tensor the caller now owns.
        Ok(unsafe { Tensor::from_ptr(out) })
    } else {
        // SAFETY: the C++ side wrote a NUL-terminated message into `err`.
        Err(unsafe { CStr::from_ptr(err.as_ptr()) }
            .to_string_lossy()
            .into_owned())
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}

fn write_message(message: &str, err: *mut c_char, err_len: usize) {
    if err.is_null() || err_len == 0 {
        return;
    }
    let bytes = message.as_bytes();
    let n = bytes.len().min(err_len - 1);
    // SAFETY: the C++ caller provides a buffer of `err_len` bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), err as *mut u8, n);
        *err.add(n) = 0;
    }
}

/// An activation/error quantization point, usable as a tch module.
///
/// Forward returns `Q_activation(x)`; backward passes `Q_error(grad)` on to
/// `x`. Cloning shares the quantizers and the generator.
///
/// ```
/// use swalp_core::{hook::{shared_rng, QuantAct}, QuantPair, Quantizer};
/// use swalp_core::tch::{nn::Module, Kind, Tensor};
/// # use swalp_formats as _;
/// let q: Quantizer = r#"{ format = "fixed", wl = 8, fl = 6 }"#.parse()?;
/// let act = QuantAct::new(QuantPair::new(Some(q.clone()), Some(q)), shared_rng(0));
/// let x = Tensor::from_slice(&[0.3f32, -0.7]).set_requires_grad(true);
/// let y = act.forward(&x);
/// assert_eq!(Vec::<f32>::try_from(&y.detach())?, [0.296875, -0.703125]);
/// (&y * 0.3).sum(Kind::Float).backward(); // the error 0.3 is rounded to 19/64
/// assert_eq!(Vec::<f32>::try_from(&x.grad())?, [0.296875, 0.296875]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct QuantAct {
    hook: Arc<QuantHook>,
}

impl QuantAct {
    /// A quantization point with the given pair and generator.
    ///
    /// ```
    /// use swalp_core::{hook::{shared_rng, QuantAct}, QuantPair};
    /// let act = QuantAct::new(QuantPair::default(), shared_rng(0));
    /// assert!(act.pair().is_identity());
    /// ```
    pub fn new(pair: QuantPair, rng: SharedRng) -> Self {
        QuantAct {
            hook: Arc::new(QuantHook { pair, rng }),
        }
    }

    /// A point with only an activation quantizer and/or an error quantizer.
    ///
    /// ```
    /// use swalp_core::{hook::{shared_rng, QuantAct}, Quantizer};
    /// # use swalp_formats as _;
    /// let q: Quantizer = r#"{ format = "fixed", wl = 8, fl = 6 }"#.parse()?;
    /// let act = QuantAct::from_quantizers(None, Some(q), shared_rng(0));
    /// assert!(act.pair().forward.is_none() && act.pair().backward.is_some());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_quantizers(
        activation: Option<Quantizer>,
        error: Option<Quantizer>,
        rng: SharedRng,
    ) -> Self {
        Self::new(QuantPair::new(activation, error), rng)
    }

    /// How many autograd graph nodes currently hold this point's quantizers
    /// (they release them when their graph is freed).
    ///
    /// ```
    /// use swalp_core::{hook::{shared_rng, QuantAct}, tch::Tensor, Quantizer};
    /// # use swalp_formats as _;
    /// let q: Quantizer = r#"{ format = "fixed", wl = 8, fl = 6 }"#.parse()?;
    /// let act = QuantAct::from_quantizers(Some(q), None, shared_rng(0));
    /// let y = act.f_forward(&Tensor::from_slice(&[0.3f32]).set_requires_grad(true))?;
    /// assert_eq!(act.graph_references(), 1);
    /// drop(y);
    /// assert_eq!(act.graph_references(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn graph_references(&self) -> usize {
        Arc::strong_count(&self.hook) - 1
    }

    /// The quantizers of this point.
    ///
    /// ```
    /// use swalp_core::{hook::{shared_rng, QuantAct}, QuantPair};
    /// let act = QuantAct::new(QuantPair::new(None, None), shared_rng(0));
    /// assert!(act.pair().backward.is_none());
    /// ```
    pub fn pair(&self) -> &QuantPair {
        &self.hook.pair
    }

    /// Applies the point, reporting quantization errors.
    ///
    /// ```
    /// use swalp_core::{hook::{shared_rng, QuantAct}, tch::Tensor, Backend, Quantizer};
    /// # use swalp_formats as _;
    /// let q: Quantizer = r#"{ format = "fixed", wl = 8, fl = 6 }"#.parse()?;
    /// let act = QuantAct::from_quantizers(Some(q.clone()), None, shared_rng(0));
    /// let y = act.f_forward(&Tensor::from_slice(&[0.3f32]))?;
    /// assert_eq!(Vec::<f32>::try_from(&y)?, [0.296875]);
    /// // The native kernel takes `f32` only: an `f64` input is an error, not a panic.
    /// let native = QuantAct::from_quantizers(Some(q.with_backend(Backend::Native)), None, shared_rng(0));
    /// assert!(native.f_forward(&Tensor::from_slice(&[0.3f64])).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn f_forward(&self, x: &Tensor) -> Result<Tensor> {
        let hook = Arc::into_raw(Arc::clone(&self.hook)) as *const c_void;
        // SAFETY: a reference to an `Arc<QuantHook>`, which the callbacks
        // expect.
        unsafe { apply_node(hook, quantize_callback, release_callback, x) }.map_err(Error::Hook)
    }
}

impl nn::Module for QuantAct {
    /// Applies the point; panics on a quantization error, as tch modules do
    /// (use [`QuantAct::f_forward`] to handle it).
    fn forward(&self, xs: &Tensor) -> Tensor {
        match self.f_forward(xs) {
            Ok(y) => y,
            Err(e) => panic!("{e}"),
        }
    }
}
