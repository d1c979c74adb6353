//! Data-parallel training: what each rank of a [`ProcessGroup`] does so
//! that together they train as one process on the global batch would.
//!
//! - Every rank starts from rank 0's variables ([`DataParallel::start`]).
//! - Each global batch of `train.batch_size` examples is split by rank as
//!   PyTorch's DistributedSampler splits an epoch: rank r takes the batch's
//!   positions r, r + W, r + 2W, … ([`shard`]). Augmentation draws follow
//!   the global position, so each example is augmented as in one process.
//! - A rank's loss, the mean over its n_r examples, is scaled by n_r / N
//!   before the backward pass (N the global batch), so every gradient the
//!   backward pass computes, and every quantizer inside it, sees the values
//!   one process would see for the same examples; the gradients are then
//!   summed across ranks ([`DataParallel::reduce_gradients`]) before the
//!   optimizer, and with it the weight-gradient quantizer, runs. With equal
//!   shards this is DistributedDataParallel's average of the ranks' gradients.
//! - BatchNorm uses each rank's batch statistics, and its running
//!   statistics are rank 0's, broadcast after every step (DDP's default
//!   `broadcast_buffers=True` broadcasts them before the next forward pass:
//!   the same numbers, with the ranks' states equal between steps), or,
//!   with `model.sync_batchnorm`, the whole batch's statistics across the
//!   ranks (PyTorch's SyncBatchNorm).
//! - Evaluation splits the test set by rank and sums the losses and errors
//!   across ranks; the passes that recompute BatchNorm statistics average
//!   them across ranks.
//!
//! The weights, the optimizer state and the SWA average therefore stay the
//! same on every rank; `log.check_replicas_every` checks it
//! ([`DataParallel::check_replicas`]).

use std::sync::Arc;

use swalp_core::distributed::{Backend, Communication, GradientBuckets, ProcessGroup, Rendezvous};
use swalp_core::tch::{self, Kind, Tensor};
use swalp_core::{QuantRng, Quantizer};

use super::{build, Experiment, ExperimentError};

/// Joins the process group the launcher's variables describe (torchrun's
/// `RANK`, `WORLD_SIZE`, `MASTER_ADDR`, `MASTER_PORT`, `LOCAL_RANK`, or
/// Slurm's under `srun`): Gloo when `exp` trains on the CPU, NCCL on CUDA.
/// `None` for a lone process, which then runs as it always has. Put the
/// group into [`RunOptions::group`](super::RunOptions::group).
pub fn join_from_env(exp: &Experiment) -> Result<Option<Arc<ProcessGroup>>, ExperimentError> {
    let Some(rendezvous) = Rendezvous::from_env()? else {
        return Ok(None);
    };
    let device = build::device(exp.experiment.device, rendezvous.local_rank)?;
    let group = ProcessGroup::join(&rendezvous, Backend::for_device(device))?;
    Ok(Some(Arc::new(group)))
}

/// The positions of a global batch that `rank` of `world` trains on.
pub(super) fn shard(positions: &[i64], rank: usize, world: usize) -> Vec<i64> {
    positions
        .iter()
        .skip(rank)
        .step_by(world)
        .copied()
        .collect()
}

/// One rank's part in data-parallel training.
pub(super) struct DataParallel {
    group: Arc<ProcessGroup>,
    buckets: GradientBuckets,
    /// The model's variables that are not trained (BatchNorm statistics).
    buffers: Vec<Tensor>,
    /// The format gradients travel in (`quant.communication`).
    communication: Option<Quantizer>,
}

impl DataParallel {
    /// Ready to train `params` (the trainable variables) with `buffers`.
    pub(super) fn new(
        group: Arc<ProcessGroup>,
        params: &[Tensor],
        buffers: Vec<Tensor>,
        communication: Option<Quantizer>,
    ) -> Result<Self, ExperimentError> {
        let buckets = GradientBuckets::new(params, GradientBuckets::DEFAULT_CAP_BYTES)?;
        Ok(DataParallel {
            group,
            buckets,
            buffers,
            communication,
        })
    }

    pub(super) fn rank(&self) -> usize {
        self.group.rank()
    }

    pub(super) fn world_size(&self) -> usize {
        self.group.world_size()
    }

    /// Gives every rank rank 0's `variables` (all of a model's variables,
    /// the optimizer's state, the average).
    pub(super) fn start(&self, variables: &[Tensor], what: &str) -> Result<(), ExperimentError> {
        let _guard = tch::no_grad_guard();
        let contiguous = contiguous(variables)?;
        self.group
            .broadcast(&contiguous, 0, &format!("broadcast of rank 0's {what}"))?;
        copy_back(variables, &contiguous)
    }

    /// Rank 0's decision after a step (its observers, the only ones, saw
    /// Ctrl-C or SIGTERM, or asked to stop) for every rank, so that all
    /// stop after the same step and rank 0's checkpoint is the run's.
    pub(super) fn stop_with_rank_0(&self, stop: bool) -> Result<bool, ExperimentError> {
        // On the group's device, as its backend needs (with NCCL, reading
        // it waits for the step: one synchronisation a step).
        let flag = Tensor::from_slice(&[u8::from(stop)]).f_to_device(self.group.device())?;
        self.group
            .broadcast(&[flag.shallow_clone()], 0, "broadcast of whether to stop")?;
        Ok(flag.int64_value(&[0]) != 0)
    }

    /// DDP's `broadcast_buffers`: rank 0's BatchNorm statistics to all,
    /// after a training step.
    pub(super) fn broadcast_buffers(&self) -> Result<(), ExperimentError> {
        if self.buffers.is_empty() {
            return Ok(());
        }
        let _guard = tch::no_grad_guard();
        let contiguous = contiguous(&self.buffers)?;
        self.group
            .broadcast(&contiguous, 0, "broadcast of rank 0's BatchNorm statistics")?;
        copy_back(&self.buffers, &contiguous)
    }

    /// Sums the gradients across ranks, and with them the step's `sums`
    /// (a tensor of per-rank totals: loss × examples, errors), in the same
    /// round of collectives. Under `quant.communication` each rank's
    /// contribution is rounded with draws from `contribution` (this rank's
    /// own) and the sum with draws from `sum` (the same on every rank).
    pub(super) fn reduce_gradients(
        &mut self,
        sums: &Tensor,
        contribution: &mut QuantRng,
        sum: &mut QuantRng,
    ) -> Result<(), ExperimentError> {
        let communication = self.communication.as_ref().map(|quantizer| Communication {
            quantizer,
            contribution,
            sum,
        });
        self.buckets
            .all_reduce_sum(&self.group, &[sums.shallow_clone()], communication)?;
        Ok(())
    }

    /// Sums `t` across ranks, in place.
    pub(super) fn sum(&self, t: &Tensor, what: &str) -> Result<(), ExperimentError> {
        self.group.all_reduce_sum(&[t.shallow_clone()], what)?;
        Ok(())
    }

    /// Averages the floating-point `statistics` across ranks (BatchNorm
    /// running statistics each rank recomputed on its shard).
    pub(super) fn average(&self, statistics: &[Tensor]) -> Result<(), ExperimentError> {
        let _guard = tch::no_grad_guard();
        let floats: Vec<Tensor> = statistics
            .iter()
            .filter(|t| t.is_floating_point())
            .map(Tensor::shallow_clone)
            .collect();
        if floats.is_empty() {
            return Ok(());
        }
        let contiguous = contiguous(&floats)?;
        self.group
            .all_reduce_sum(&contiguous, "all-reduce of the BatchNorm statistics")?;
        let world = self.world_size() as f64;
        for t in &contiguous {
            let _ = t.shallow_clone().f_div_scalar_(world)?;
        }
        copy_back(&floats, &contiguous)
    }

    /// Whether every rank holds the same `state` (name, tensor), bit for
    /// bit: each rank sums each tensor's bit patterns, the sums of all the
    /// ranks are gathered (one all-reduce of a ranks × tensors table) and
    /// compared. Returns the first tensor that differs.
    pub(super) fn check_replicas(
        &self,
        state: &[(String, Tensor)],
    ) -> Result<Option<String>, ExperimentError> {
        let _guard = tch::no_grad_guard();
        let (rank, world) = (self.rank(), self.world_size());
        let mut digests = Vec::with_capacity(state.len());
        for (_, t) in state {
            digests.push(bit_sum(t)?);
        }
        let mine = Tensor::f_stack(&digests, 0)?;
        let table = Tensor::f_zeros(
            [world as i64, state.len() as i64],
            (Kind::Int64, mine.device()),
        )?;
        table.get(rank as i64).f_copy_(&mine)?;
        self.group.all_reduce_sum(
            &[table.shallow_clone()],
            "all-reduce of the replica digests",
        )?;
        let differs = table.f_ne_tensor(&table.get(0))?.f_any_dim(0, false)?;
        let differs = Vec::<bool>::try_from(&differs)?;
        Ok(differs.iter().position(|&d| d).map(|i| state[i].0.clone()))
    }
}

/// The sum of a tensor's bit patterns, as a 64-bit integer (wrapping).
fn bit_sum(t: &Tensor) -> Result<Tensor, ExperimentError> {
    let t = t.f_detach()?.f_contiguous()?;
    let bits = match t.kind() {
        Kind::Float => t.f_view_dtype(Kind::Int)?,
        Kind::Double => t.f_view_dtype(Kind::Int64)?,
        Kind::Half | Kind::BFloat16 => t.f_view_dtype(Kind::Int16)?,
        Kind::Bool => t.f_to_kind(Kind::Int64)?,
        _ => t,
    };
    Ok(bits.f_to_kind(Kind::Int64)?.f_sum(Kind::Int64)?)
}

/// Collectives take contiguous tensors: the variables themselves when they
/// are, copies otherwise (which [`copy_back`] writes back).
fn contiguous(variables: &[Tensor]) -> Result<Vec<Tensor>, ExperimentError> {
    variables.iter().map(|v| Ok(v.f_contiguous()?)).collect()
}

fn copy_back(variables: &[Tensor], contiguous: &[Tensor]) -> Result<(), ExperimentError> {
    for (v, c) in variables.iter().zip(contiguous) {
        if v.data_ptr() != c.data_ptr() {
            v.shallow_clone().f_copy_(c)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_interleave_as_distributed_sampler() {
        let batch: Vec<i64> = (10..17).collect();
        assert_eq!(shard(&batch, 0, 2), [10, 12, 14, 16]);
        assert_eq!(shard(&batch, 1, 2), [11, 13, 15]);
        assert_eq!(shard(&batch, 2, 3), [12, 15]);
        assert_eq!(shard(&batch, 0, 1), batch);
    }
}
