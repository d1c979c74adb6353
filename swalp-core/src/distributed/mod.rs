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
pub use buckets::GradientBuckets;
pub use group::{Backend, ProcessGroup};
pub use rendezvous::{Launcher, Rendezvous};

use std::fmt;

/// What went wrong setting up or using a process group.
#[derive(Debug, Clone, PartialEq)]
pub enum DistributedError {
    /// A launcher variable is missing or malformed.
    Environment {
        /// The variable.
        variable: &'static str,
        /// Its value (empty when missing).
        value: String,
        /// What it must be.
        expected: &'static str,
    },
    /// Joining the group failed (the store could not be reached, a rank did
    /// not arrive within the timeout, the backend could not start).
    Join {
        /// This process's rank.
        rank: usize,
        /// The group's size.
        world_size: usize,
        /// Where the store was.
        address: String,
        /// What c10d said.
        message: String,
    },
    /// A collective failed or timed out (a rank died or stopped answering).
    Collective {
        /// This process's rank.
        rank: usize,
        /// The group's size.
        world_size: usize,
        /// The collective, such as "all-reduce of the gradients".
        operation: String,
        /// What c10d said.
        message: String,
    },
    /// Another rank failed at a stage every rank goes through together
    /// ([`ProcessGroup::agree`]); its own message says why.
    PeerFailed {
        /// This process's rank.
        rank: usize,
        /// The group's size.
        world_size: usize,
        /// The stage.
        stage: String,
    },
    /// Tensors that cannot take part in a collective as given.
    Tensors(String),
}

impl fmt::Display for DistributedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DistributedError::Environment {
                variable,
                value,
                expected,
            } if value.is_empty() => write!(f, "{variable} is not set; it must be {expected}"),
            DistributedError::Environment {
                variable,
                value,
                expected,
            } => write!(f, "{variable}={value:?}: it must be {expected}"),
            DistributedError::Join {
                rank,
                world_size,
                address,
                message,
            } => write!(
                f,
                "rank {rank} of {world_size} could not join the process group at {address}: {}",
                one_line(message)
            ),
            DistributedError::Collective {
                rank,
                world_size,
                operation,
                message,
            } => write!(
                f,
                "rank {rank} of {world_size}: {operation} failed (another rank may have stopped): {}",
                one_line(message)
            ),
            DistributedError::PeerFailed {
                rank,
                world_size,
                stage,
            } => write!(
                f,
                "rank {rank} of {world_size}: another rank failed {stage} (its own message says why)"
            ),
            DistributedError::Tensors(message) => write!(f, "{message}"),
        }
    }
}

impl std::error::Error for DistributedError {}

/// c10d's messages span lines (a C++ backtrace follows the first) and
/// Gloo's start with its source location (`[/pytorch/third_party/gloo/...]`):
/// the first line, without it, says what happened.
fn one_line(message: &str) -> &str {
    let first = message.lines().next().unwrap_or("").trim();
    match first
        .strip_prefix('[')
        .and_then(|rest| rest.split_once("] "))
    {
        Some((location, said)) if location.contains(".cc:") || location.contains(".cpp:") => {
            said.trim()
        }
        _ => first,
    }
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn messages_keep_their_first_line_without_a_source_location() {
        assert_eq!(
            one_line("[/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:538] Read error [127.0.0.1]:432: Connection reset by peer\nException raised from ..."),
            "Read error [127.0.0.1]:432: Connection reset by peer"
        );
        assert_eq!(one_line("Timed out\nbacktrace"), "Timed out");
        assert_eq!(one_line("[rank 1] gone"), "[rank 1] gone");
    }
}
