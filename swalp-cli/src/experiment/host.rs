//! Reading values the device computed on the host.
//!
//! On an accelerator every such read is a synchronisation: the host waits
//! until the device has finished all the work queued before it, and the
//! device then idles until the host queues more. The training loop
//! therefore keeps its running sums on the device and reads them only at
//! log points (the end of an epoch, before a checkpoint, when an observer
//! asks for the loss); every read goes through `read`, which counts it
//! so that tests can check that the number of reads does not grow with the
//! number of steps.

use std::cell::Cell;

use swalp_core::tch::{Device, Kind, TchError, Tensor};

thread_local! {
    /// Reads made by `read` on this thread. Thread-local because a run
    /// trains on the thread that started it, and tests run side by side.
    static READS: Cell<u64> = const { Cell::new(0) };
}

/// How many times this thread has read device values on the host through
/// `read` so far: the training loop's sums, evaluations and parameter
/// checks. A run trains on the thread that called
/// [`run_with`](super::run_with), so the difference of two calls around
/// (or, from an [`Observer`](super::observe::Observer), within) a run
/// counts that run's reads.
pub fn host_reads() -> u64 {
    READS.with(Cell::get)
}

/// The values of `t` (any shape, any numeric kind) as `f64`, in row-major
/// order, fetched with one transfer; counted by [`host_reads`].
///
/// Converting to `f64` on the device first is exact for the values read
/// here: `f32` and `f64` numbers, and counts below 2^53.
pub(crate) fn read(t: &Tensor) -> Result<Vec<f64>, TchError> {
    READS.with(|reads| reads.set(reads.get() + 1));
    let flat = t
        .f_detach()?
        .f_to_kind(Kind::Double)?
        .f_flatten(0, -1)?
        .f_to_device(Device::Cpu)?;
    Vec::<f64>::try_from(&flat)
}

/// `read` for a tensor of exactly `N` values.
pub(crate) fn read_array<const N: usize>(t: &Tensor) -> Result<[f64; N], TchError> {
    <[f64; N]>::try_from(read(t)?)
        .map_err(|v| TchError::Shape(format!("read {} values, expected {N}", v.len())))
}
