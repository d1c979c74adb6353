//! A sum across ranks that autograd can differentiate: the backward pass of
//! y = Σ_ranks x is the same sum of the incoming gradients (every rank's y
//! depends on every rank's x), as torch.distributed.nn.all_reduce.

use std::ffi::{c_char, c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use tch::Tensor;
use torch_sys::C_tensor;

use super::ProcessGroup;
use crate::error::{Error, Result};
use crate::hook::{apply_node, hand_to_cpp, release_from_cpp};

/// What the graph node holds.
struct AllReduce {
    group: Arc<ProcessGroup>,
    /// Names the collective in errors.
    what: String,
}

/// `x` summed across the ranks of `group`, its gradient summed the same way
/// in the backward pass. Every rank must call it, and run the backward
/// pass, in the same order. `what` names the collective in errors.
pub fn all_reduce_sum(group: &Arc<ProcessGroup>, x: &Tensor, what: &str) -> Result<Tensor> {
    let state = Arc::new(AllReduce {
        group: Arc::clone(group),
        what: what.into(),
    });
    let state = Arc::into_raw(state) as *const c_void;
    // SAFETY: a reference to an `Arc<AllReduce>`, which the callbacks expect.
    unsafe { apply_node(state, sum_callback, release_callback, x) }.map_err(Error::Hook)
}

extern "C" fn sum_callback(
    state: *const c_void,
    direction: c_int,
    input: *mut C_tensor,
    err: *mut c_char,
    err_len: usize,
) -> *mut C_tensor {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `state` is kept alive by the node's reference; `input` is
        // a fresh heap tensor handed over.
        let state = unsafe { &*(state as *const AllReduce) };
        let x = unsafe { Tensor::from_ptr(input) };
        // A fresh contiguous tensor (the input may be the caller's): the
        // node's output, summed in place.
        let mut y = Tensor::f_empty(x.size(), (x.kind(), x.device()))?;
        y.f_copy_(&x.f_detach()?)?;
        let what = if direction == 0 {
            state.what.clone()
        } else {
            format!("{} (its gradient)", state.what)
        };
        state.group.all_reduce_sum(&[y.shallow_clone()], &what)?;
        Ok(y)
    }));
    hand_to_cpp(outcome, "panic in an all-reduce", err, err_len)
}

extern "C" fn release_callback(state: *const c_void) {
    // SAFETY: every pointer handed to C++ came from `Arc::into_raw` on an
    // `Arc<AllReduce>` and is released exactly once.
    unsafe { release_from_cpp::<AllReduce>(state, "an all-reduce") }
}
