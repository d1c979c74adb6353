//! Several processes training one model: torch.distributed's engine (c10d)
//! on tch tensors.
//!
//! PyTorch users scale out with `torch.distributed` launched by `torchrun`
//! or `srun`. swalp uses the same engine through its C++ shim
//! (`cpp/distributed.cpp`), so the same rendezvous (a TCPStore at
//! `MASTER_ADDR:MASTER_PORT`), transports (Gloo for CPU tensors, NCCL for
//! CUDA ones) and launchers serve it:
//!
//! - [`Rendezvous`] reads the rank, the world size and the store's address
//!   from the variables torchrun or Slurm set;
//! - [`ProcessGroup`] joins the group and runs all-reduce, broadcast and
//!   barrier on tensors, every failure and timeout an
//!   [`DistributedError`] naming the rank and the operation;
//! - [`all_reduce_sum`] is a sum across ranks autograd differentiates,
//!   for statistics that span the ranks (synchronised BatchNorm);
//! - [`GradientBuckets`] flattens a model's gradients into a few buffers, so
//!   a step makes a few collectives rather than one per parameter, as
//!   DistributedDataParallel's buckets do.
//!
//! This module owns the communication; what data-parallel training does with
//! it (sharding, which state is reduced when) belongs to the trainer.

mod autograd;
mod buckets;
mod group;
mod rendezvous;

pub use autograd::all_reduce_sum;
pub use buckets::{Communication, GradientBuckets};
pub use group::{Backend, ProcessGroup};
pub use rendezvous::{Launcher, Rendezvous};

pub use crate::error::DistributedError;
