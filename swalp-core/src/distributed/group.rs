//! A process group: the C++ shim's c10d backend behind a Rust handle.

use std::ffi::{c_char, c_int, c_longlong, c_void, CStr, CString};

use tch::{Device, Tensor};
use torch_sys::C_tensor;

use super::{DistributedError, Rendezvous};

extern "C" {
    fn swalp_group_new(
        backend: *const c_char,
        host: *const c_char,
        port: c_int,
        rank: c_int,
        world: c_int,
        agent_store: c_int,
        timeout_ms: c_longlong,
        err: *mut c_char,
        err_len: usize,
    ) -> *mut c_void;
    fn swalp_group_free(group: *mut c_void);
    fn swalp_group_all_reduce(
        group: *mut c_void,
        tensors: *const *const C_tensor,
        n: usize,
        op: c_int,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;
    fn swalp_group_broadcast(
        group: *mut c_void,
        tensors: *const *const C_tensor,
        n: usize,
        root: c_int,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;
    fn swalp_group_barrier(group: *mut c_void, err: *mut c_char, err_len: usize) -> c_int;
}

const ERR_LEN: usize = 2048;

/// The transport a group's collectives run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Gloo: CPU tensors, over TCP.
    Gloo,
    /// NCCL: CUDA tensors.
    Nccl,
}

impl Backend {
    /// What torch.distributed picks by default for tensors on `device`:
    /// NCCL for CUDA, Gloo otherwise.
    pub fn for_device(device: Device) -> Backend {
        if device.is_cuda() {
            Backend::Nccl
        } else {
            Backend::Gloo
        }
    }

    fn name(self) -> &'static str {
        match self {
            Backend::Gloo => "gloo",
            Backend::Nccl => "nccl",
        }
    }
}

/// This process's membership of a group, made from a [`Rendezvous`]. Every
/// rank must make the same collectives in the same order; a rank that stops
/// making them makes the others' fail after the rendezvous's timeout.
pub struct ProcessGroup {
    raw: *mut c_void,
    rank: usize,
    world_size: usize,
    local_rank: usize,
    backend: Backend,
}

// SAFETY: c10d's backends may be used from any thread, one collective at a
// time; `&mut`-free methods below only read the handle, and c10d serialises
// its own work queue.
unsafe impl Send for ProcessGroup {}
unsafe impl Sync for ProcessGroup {}

impl std::fmt::Debug for ProcessGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessGroup")
            .field("rank", &self.rank)
            .field("world_size", &self.world_size)
            .field("backend", &self.backend)
            .finish()
    }
}

impl ProcessGroup {
    /// Joins the group `rendezvous` describes, waiting up to its timeout for
    /// every rank to arrive.
    pub fn join(
        rendezvous: &Rendezvous,
        backend: Backend,
    ) -> Result<ProcessGroup, DistributedError> {
        let join_error = |message: String| DistributedError::Join {
            rank: rendezvous.rank,
            world_size: rendezvous.world_size,
            address: rendezvous.address(),
            message,
        };
        let host = CString::new(rendezvous.master_addr.as_str())
            .map_err(|_| join_error("the host name holds a NUL byte".into()))?;
        let name = CString::new(backend.name()).map_err(|_| join_error("bad backend".into()))?;
        let mut err = [0 as c_char; ERR_LEN];
        // SAFETY: the strings outlive the call; `err` has ERR_LEN bytes.
        let raw = unsafe {
            swalp_group_new(
                name.as_ptr(),
                host.as_ptr(),
                c_int::from(rendezvous.master_port),
                rendezvous.rank as c_int,
                rendezvous.world_size as c_int,
                c_int::from(rendezvous.agent_store),
                rendezvous.timeout.as_millis() as c_longlong,
                err.as_mut_ptr(),
                ERR_LEN,
            )
        };
        if raw.is_null() {
            return Err(join_error(message(&err)));
        }
        Ok(ProcessGroup {
            raw,
            rank: rendezvous.rank,
            world_size: rendezvous.world_size,
            local_rank: rendezvous.local_rank,
            backend,
        })
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The number of processes.
    pub fn world_size(&self) -> usize {
        self.world_size
    }

    /// The rank among this node's processes (torchrun's `LOCAL_RANK`).
    pub fn local_rank(&self) -> usize {
        self.local_rank
    }

    /// The transport.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Where this rank's tensors for the collectives live: the CPU for
    /// Gloo, GPU `LOCAL_RANK` for NCCL.
    pub fn device(&self) -> Device {
        match self.backend {
            Backend::Gloo => Device::Cpu,
            Backend::Nccl => Device::Cuda(self.local_rank),
        }
    }

    /// Tells every rank whether this one failed at `stage`: returns an
    /// error when another rank did and this one did not, so that a rank
    /// that cannot go on stops the others at once rather than after the
    /// timeout. Every rank must call it at the same stage.
    pub fn agree(&self, failed_here: bool, stage: &str) -> Result<(), DistributedError> {
        let flag = Tensor::f_from_slice(&[f32::from(u8::from(failed_here))])?
            .f_to_device(self.device())?;
        self.all_reduce_sum(&[flag.shallow_clone()], stage)?;
        let failed = flag.f_double_value(&[0])?;
        if failed > 0.0 && !failed_here {
            return Err(DistributedError::PeerFailed {
                rank: self.rank,
                world_size: self.world_size,
                stage: stage.into(),
            });
        }
        Ok(())
    }

    /// Replaces each tensor by its sum over the ranks, in place; the
    /// collectives of all the tensors are in flight together. `operation`
    /// names them in errors ("all-reduce of the gradients").
    pub fn all_reduce_sum(
        &self,
        tensors: &[Tensor],
        operation: &str,
    ) -> Result<(), DistributedError> {
        // SAFETY: the shim's contract: `n` tensors behind `ptrs`, `err` of
        // `len` bytes.
        self.on_tensors(tensors, operation, |ptrs, n, err, len| unsafe {
            swalp_group_all_reduce(self.raw, ptrs, n, 0, err, len)
        })
    }

    /// Copies rank `root`'s tensors into every rank's, in place.
    pub fn broadcast(
        &self,
        tensors: &[Tensor],
        root: usize,
        operation: &str,
    ) -> Result<(), DistributedError> {
        // SAFETY: as in `all_reduce_sum`.
        self.on_tensors(tensors, operation, |ptrs, n, err, len| unsafe {
            swalp_group_broadcast(self.raw, ptrs, n, root as c_int, err, len)
        })
    }

    /// Runs a shim collective on `tensors`, checked first, with an error
    /// buffer for its message.
    fn on_tensors(
        &self,
        tensors: &[Tensor],
        operation: &str,
        collective: impl FnOnce(*const *const C_tensor, usize, *mut c_char, usize) -> c_int,
    ) -> Result<(), DistributedError> {
        self.check(tensors)?;
        let ptrs: Vec<*const C_tensor> = tensors.iter().map(Tensor::as_ptr).collect();
        let mut err = [0 as c_char; ERR_LEN];
        // The tensors outlive the call, which waits for the work.
        let status = collective(ptrs.as_ptr(), ptrs.len(), err.as_mut_ptr(), ERR_LEN);
        self.outcome(status, &err, operation)
    }

    /// Waits until every rank has called it.
    pub fn barrier(&self, operation: &str) -> Result<(), DistributedError> {
        let mut err = [0 as c_char; ERR_LEN];
        // SAFETY: `err` has ERR_LEN bytes.
        let status = unsafe { swalp_group_barrier(self.raw, err.as_mut_ptr(), ERR_LEN) };
        self.outcome(status, &err, operation)
    }

    /// Gloo takes dense contiguous CPU tensors, NCCL CUDA ones.
    fn check(&self, tensors: &[Tensor]) -> Result<(), DistributedError> {
        for t in tensors {
            let on_cuda = t.device().is_cuda();
            if on_cuda != (self.backend == Backend::Nccl) {
                return Err(DistributedError::Tensors(format!(
                    "a tensor on {:?} cannot go through {} (Gloo takes CPU tensors, NCCL CUDA ones)",
                    t.device(),
                    self.backend.name()
                )));
            }
            if !t.is_contiguous() {
                return Err(DistributedError::Tensors(
                    "collectives take contiguous tensors".into(),
                ));
            }
        }
        Ok(())
    }

    fn outcome(
        &self,
        status: c_int,
        err: &[c_char],
        operation: &str,
    ) -> Result<(), DistributedError> {
        if status == 0 {
            return Ok(());
        }
        Err(DistributedError::Collective {
            rank: self.rank,
            world_size: self.world_size,
            operation: operation.into(),
            message: message(err),
        })
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // SAFETY: `raw` came from swalp_group_new and is freed once.
        unsafe { swalp_group_free(self.raw) }
    }
}

fn message(err: &[c_char]) -> String {
    // SAFETY: the shim writes a NUL-terminated message (or leaves zeros).
    unsafe { CStr::from_ptr(err.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}
