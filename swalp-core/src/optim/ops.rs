//! libtorch's scaled element-wise operators, which tch does not expose
//! (`cpp/scaled_ops.cpp`): `torch.optim` computes `a + α·b` in one
//! operator, rounding once, and an optimizer that is to equal it bit for bit
//! must do the same.

use std::ffi::{c_char, c_int, CStr};

use tch::{TchError, Tensor};
use torch_sys::C_tensor;

use crate::error::{Error, Result};

extern "C" {
    fn swalp_add_scaled(
        this: *const C_tensor,
        other: *const C_tensor,
        alpha: f64,
        out: *mut *mut C_tensor,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;
    fn swalp_add_scaled_(
        this: *mut C_tensor,
        other: *const C_tensor,
        alpha: f64,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;
    fn swalp_addcmul_(
        this: *mut C_tensor,
        t1: *const C_tensor,
        t2: *const C_tensor,
        value: f64,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;
    fn swalp_addcdiv_(
        this: *mut C_tensor,
        t1: *const C_tensor,
        t2: *const C_tensor,
        value: f64,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;
}

/// Runs one shim call with an error buffer; a non-zero status becomes
/// libtorch's message.
fn call(f: impl FnOnce(*mut c_char, usize) -> c_int) -> Result<()> {
    let mut err = [0 as c_char; 512];
    if f(err.as_mut_ptr(), err.len()) == 0 {
        return Ok(());
    }
    // SAFETY: the shim wrote a NUL-terminated message (snprintf).
    let message = unsafe { CStr::from_ptr(err.as_ptr()) }.to_string_lossy();
    Err(Error::Torch(TchError::Torch(message.into_owned())))
}

/// `a + alpha · b` as a new tensor (`torch.add(a, b, alpha=alpha)`).
pub(crate) fn add_scaled(a: &Tensor, b: &Tensor, alpha: f64) -> Result<Tensor> {
    let mut out: *mut C_tensor = std::ptr::null_mut();
    // SAFETY: both tensors outlive the call; on success `out` is a new heap
    // tensor that we own.
    call(|err, len| unsafe {
        swalp_add_scaled(a.as_ptr(), b.as_ptr(), alpha, &mut out, err, len)
    })?;
    // SAFETY: set by the successful call above.
    Ok(unsafe { Tensor::from_ptr(out) })
}

/// `a += alpha · b` (`a.add_(b, alpha=alpha)`).
pub(crate) fn add_scaled_(a: &mut Tensor, b: &Tensor, alpha: f64) -> Result<()> {
    // SAFETY: both tensors outlive the call; `a` is modified in place.
    call(|err, len| unsafe { swalp_add_scaled_(a.as_mut_ptr(), b.as_ptr(), alpha, err, len) })
}

/// `a += value · t1 · t2` (`a.addcmul_(t1, t2, value=value)`).
pub(crate) fn addcmul_(a: &mut Tensor, t1: &Tensor, t2: &Tensor, value: f64) -> Result<()> {
    // SAFETY: as for `add_scaled_`.
    call(|err, len| unsafe {
        swalp_addcmul_(a.as_mut_ptr(), t1.as_ptr(), t2.as_ptr(), value, err, len)
    })
}

/// `a += value · t1 / t2` (`a.addcdiv_(t1, t2, value=value)`).
pub(crate) fn addcdiv_(a: &mut Tensor, t1: &Tensor, t2: &Tensor, value: f64) -> Result<()> {
    // SAFETY: as for `add_scaled_`.
    call(|err, len| unsafe {
        swalp_addcdiv_(a.as_mut_ptr(), t1.as_ptr(), t2.as_ptr(), value, err, len)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(t: &Tensor) -> Vec<f32> {
        Vec::<f32>::try_from(t).unwrap_or_default()
    }

    #[test]
    fn scaled_operators_compute_their_formulas() -> Result<()> {
        let a = Tensor::from_slice(&[1.0f32, 2.0, 3.0]);
        let b = Tensor::from_slice(&[4.0f32, 5.0, 6.0]);
        assert_eq!(values(&add_scaled(&a, &b, 0.5)?), [3.0, 4.5, 6.0]);
        let mut c = a.copy();
        add_scaled_(&mut c, &b, -1.0)?;
        assert_eq!(values(&c), [-3.0, -3.0, -3.0]);
        let mut c = a.copy();
        addcmul_(&mut c, &a, &b, 2.0)?;
        assert_eq!(values(&c), [9.0, 22.0, 39.0]);
        let mut c = a.copy();
        addcdiv_(&mut c, &b, &a, -1.0)?;
        assert_eq!(values(&c), [-3.0, -0.5, 1.0]);
        Ok(())
    }

    #[test]
    fn mismatched_shapes_are_errors_not_panics() {
        let mut a = Tensor::from_slice(&[1.0f32, 2.0]);
        let b = Tensor::from_slice(&[1.0f32, 2.0, 3.0]);
        let err = add_scaled_(&mut a, &b, 1.0).unwrap_err();
        assert!(matches!(err, Error::Torch(_)), "{err}");
    }
}
