//! The autograd node of a layer's matrix product: `y = a · b` through the
//! layer's [`LayerArithmetic`], with the gradients `g · bᵀ` and `aᵀ · g`
//! computed in their own formats. The node lives in C++
//! (`cpp/matmul_node.cpp`) because tch has no custom autograd functions; as
//! in [`crate::hook`], it calls back into Rust and holds a reference count
//! on the [`MatmulHook`].

use std::ffi::{c_char, c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use tch::Tensor;
use torch_sys::C_tensor;

use super::{Accumulation, LayerArithmetic};
use crate::error::{Error, Result};
use crate::hook::{hand_to_cpp, release_from_cpp, take_from_cpp, SharedRng};

/// A layer's arithmetic and the generator its stochastic roundings draw
/// from, shared by the layer and every graph node it created.
#[derive(Debug)]
pub(super) struct MatmulHook {
    pub(super) arithmetic: LayerArithmetic,
    pub(super) rng: SharedRng,
}

/// Product codes shared with `cpp/matmul_node.cpp`.
const FORWARD: c_int = 0;
const INPUT_GRAD: c_int = 1;

impl MatmulHook {
    /// Product `which` of `x` and `y`: `x · y`, `x · yᵀ` or `xᵀ · y`.
    fn product(&self, which: c_int, x: &Tensor, y: &Tensor) -> Result<Tensor> {
        let (x, y, accumulation) = match which {
            FORWARD => (
                x.shallow_clone(),
                y.shallow_clone(),
                &self.arithmetic.forward,
            ),
            INPUT_GRAD => (x.shallow_clone(), y.f_tr()?, &self.arithmetic.input_grad),
            _ => (x.f_tr()?, y.shallow_clone(), &self.arithmetic.weight_grad),
        };
        self.run(accumulation.as_ref(), &x, &y)
    }

    fn run(&self, accumulation: Option<&Accumulation>, x: &Tensor, y: &Tensor) -> Result<Tensor> {
        match accumulation {
            None => Ok(x.f_matmul(y)?),
            Some(acc) => {
                // A poisoned lock only means another thread panicked while
                // rounding; the generator state itself is always valid.
                let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
                acc.matmul(x, y, &mut rng)
            }
        }
    }
}

extern "C" {
    fn swalp_matmul_apply(
        hook: *const c_void,
        matmul: MatmulFn,
        release: ReleaseFn,
        a: *const C_tensor,
        b: *const C_tensor,
        output: *mut *mut C_tensor,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;
}

type MatmulFn = extern "C" fn(
    *const c_void,
    c_int,
    *mut C_tensor,
    *mut C_tensor,
    *mut c_char,
    usize,
) -> *mut C_tensor;
type ReleaseFn = extern "C" fn(*const c_void);

extern "C" fn matmul_callback(
    hook: *const c_void,
    which: c_int,
    x: *mut C_tensor,
    y: *mut C_tensor,
    err: *mut c_char,
    err_len: usize,
) -> *mut C_tensor {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `hook` comes from `Arc::into_raw` and is kept alive by the
        // C++ side's reference; `x` and `y` are fresh heap tensors handed
        // over.
        let hook = unsafe { &*(hook as *const MatmulHook) };
        let (x, y) = unsafe { (Tensor::from_ptr(x), Tensor::from_ptr(y)) };
        hook.product(which, &x, &y)
    }));
    hand_to_cpp(outcome, "panic in a matrix product", err, err_len)
}

extern "C" fn release_callback(hook: *const c_void) {
    // SAFETY: every pointer handed to C++ came from `Arc::into_raw` on an
    // `Arc<MatmulHook>` and is released exactly once.
    unsafe { release_from_cpp::<MatmulHook>(hook, "a matrix-product hook") }
}

/// `a · b` for `a` `[M, K]` and `b` `[K, N]` through `hook`'s arithmetic,
/// as an autograd node when either operand requires grad.
pub(super) fn apply(hook: &Arc<MatmulHook>, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let mut err = vec![0 as c_char; 1024];
    let mut out: *mut C_tensor = std::ptr::null_mut();
    let raw = Arc::into_raw(Arc::clone(hook)) as *const c_void;
    // SAFETY: `a` and `b` outlive the call; the C++ side takes over the
    // hook reference and returns a new heap tensor on success.
    let status = unsafe {
        swalp_matmul_apply(
            raw,
            matmul_callback,
            release_callback,
            a.as_ptr(),
            b.as_ptr(),
            &mut out,
            err.as_mut_ptr(),
            err.len(),
        )
    };
    take_from_cpp(status, out, &err).map_err(Error::Matmul)
}
