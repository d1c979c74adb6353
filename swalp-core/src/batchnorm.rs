//! Batch normalisation as PyTorch's `nn.BatchNorm1d` / `nn.BatchNorm2d`
//! define it, with the momentum that SWA's statistics recomputation needs to
//! change.
//!
//! tch's own `nn::batch_norm2d` differs from PyTorch in two ways that matter
//! here: it draws the scale from U(0, 1) where PyTorch starts it at 1, and
//! its momentum is fixed at construction, so the seed's `bn_update` (a
//! cumulative average with momentum `b / (n + b)` per batch) cannot be
//! written with it. [`BatchNorm`] keeps PyTorch's variables under PyTorch's
//! names (`weight`, `bias`, `running_mean`, `running_var`,
//! `num_batches_tracked`), starts them as PyTorch does, and reads its
//! momentum from a [`BatchNormMomentum`] shared by every layer of a model.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tch::{nn, Kind, Tensor};

use crate::distributed::{all_reduce_sum, ProcessGroup};
use crate::error::Result;

/// PyTorch's default BatchNorm momentum.
pub const DEFAULT_MOMENTUM: f64 = 0.1;
/// PyTorch's default BatchNorm epsilon.
pub const DEFAULT_EPS: f64 = 1e-5;

/// What a model's BatchNorm layers share: their momentum,
/// [`DEFAULT_MOMENTUM`] unless overridden, as [`recompute_batchnorm`] does
/// for the duration of a pass, and in a data-parallel run with synchronised
/// statistics the process group they synchronise over
/// ([`set_sync`](Self::set_sync)). Clones share both.
///
/// ```
/// use swalp_core::batchnorm::BatchNormMomentum;
/// let momentum = BatchNormMomentum::default();
/// let shared = momentum.clone();
/// momentum.set(Some(0.5));
/// assert_eq!(shared.get(), 0.5);
/// momentum.set(None);
/// assert_eq!(shared.get(), 0.1);
/// ```
#[derive(Clone, Debug, Default)]
pub struct BatchNormMomentum {
    /// The bits of the override; 0 (the bits of +0.0, never a useful
    /// momentum) when there is none.
    override_bits: Arc<AtomicU64>,
    sync: Arc<Mutex<Option<Arc<ProcessGroup>>>>,
}

impl BatchNormMomentum {
    /// The momentum layers use now.
    pub fn get(&self) -> f64 {
        match self.override_bits.load(Ordering::Relaxed) {
            0 => DEFAULT_MOMENTUM,
            bits => f64::from_bits(bits),
        }
    }

    /// Overrides the momentum (`None`: back to the default).
    pub fn set(&self, momentum: Option<f64>) {
        let bits = momentum.map_or(0, f64::to_bits);
        self.override_bits.store(bits, Ordering::Relaxed);
    }

    /// Makes the layers normalise, in training mode, with the statistics of
    /// the whole batch across `group`'s ranks, as PyTorch's SyncBatchNorm
    /// (`None`: each rank's own batch, the default).
    pub fn set_sync(&self, group: Option<Arc<ProcessGroup>>) {
        *self.sync.lock().unwrap_or_else(|p| p.into_inner()) = group;
    }

    /// The group the layers synchronise over, if any.
    pub fn sync(&self) -> Option<Arc<ProcessGroup>> {
        self.sync.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// A BatchNorm layer over dimension 1 of its input (`[N, C]`, `[N, C, L]`
/// or `[N, C, H, W]`), as PyTorch's: scale 1, shift 0, running mean 0,
/// running variance 1, `num_batches_tracked` counting training passes,
/// epsilon 1e-5.
///
/// ```
/// use swalp_core::batchnorm::{BatchNorm, BatchNormMomentum};
/// use swalp_core::tch::{nn, nn::ModuleT, Device, Kind, Tensor};
/// let vs = nn::VarStore::new(Device::Cpu);
/// let bn = BatchNorm::new(vs.root() / "bn", 3, &BatchNormMomentum::default());
/// let names: Vec<String> = { let mut v: Vec<_> = vs.variables().into_keys().collect(); v.sort(); v };
/// assert_eq!(names, ["bn.bias", "bn.num_batches_tracked", "bn.running_mean", "bn.running_var", "bn.weight"]);
/// assert_eq!(Vec::<f32>::try_from(&bn.weight)?, [1.0, 1.0, 1.0]);
/// let x = Tensor::randn([8, 3, 2, 2], (Kind::Float, Device::Cpu));
/// let _ = bn.forward_t(&x, true);
/// assert_eq!(bn.num_batches_tracked.int64_value(&[]), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct BatchNorm {
    /// The scale (γ), trainable.
    pub weight: Tensor,
    /// The shift (β), trainable.
    pub bias: Tensor,
    /// The running mean of the inputs.
    pub running_mean: Tensor,
    /// The running (unbiased) variance of the inputs.
    pub running_var: Tensor,
    /// How many training-mode passes the layer has seen (an `Int64`
    /// scalar).
    pub num_batches_tracked: Tensor,
    momentum: BatchNormMomentum,
}

impl BatchNorm {
    /// A layer over `channels` channels under `path`, whose momentum is
    /// `momentum`'s.
    pub fn new<'a, P: std::borrow::Borrow<nn::Path<'a>>>(
        path: P,
        channels: i64,
        momentum: &BatchNormMomentum,
    ) -> Self {
        let path = path.borrow();
        let device = path.device();
        BatchNorm {
            weight: path.var("weight", &[channels], nn::Init::Const(1.0)),
            bias: path.var("bias", &[channels], nn::Init::Const(0.0)),
            running_mean: path.zeros_no_train("running_mean", &[channels]),
            running_var: path.ones_no_train("running_var", &[channels]),
            num_batches_tracked: path.add(
                "num_batches_tracked",
                Tensor::zeros([], (Kind::Int64, device)),
                false,
            ),
            momentum: momentum.clone(),
        }
    }

    /// The layer applied to `x`; in training mode it normalises with the
    /// batch's statistics and updates the running ones, as
    /// `F.batch_norm` does.
    pub fn f_forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if train {
            let _guard = tch::no_grad_guard();
            let _ = self.num_batches_tracked.shallow_clone().f_add_scalar_(1)?;
        }
        if let Some(group) = self.momentum.sync().filter(|_| train) {
            return self.f_synchronised(x, &group);
        }
        Ok(Tensor::f_batch_norm(
            x,
            Some(&self.weight),
            Some(&self.bias),
            Some(&self.running_mean),
            Some(&self.running_var),
            train,
            self.momentum.get(),
            DEFAULT_EPS,
            true,
        )?)
    }
}

impl BatchNorm {
    /// Training mode over the ranks' whole batch: the mean and the biased
    /// variance of each channel from sums across the ranks (two passes, the
    /// second over the centred values), differentiable through
    /// [`all_reduce_sum`], and the running statistics updated with them as
    /// `F.batch_norm` updates them (the variance made unbiased).
    fn f_synchronised(&self, x: &Tensor, group: &Arc<ProcessGroup>) -> Result<Tensor> {
        let size = x.size();
        let channels = size.get(1).copied().unwrap_or(1);
        let dims: Vec<i64> = (0..size.len() as i64).filter(|&d| d != 1).collect();
        let shape: Vec<i64> = (0..size.len())
            .map(|d| if d == 1 { channels } else { 1 })
            .collect();
        let count = (x.numel() as i64 / channels.max(1)) as f64;
        // Sums in f64, so that splitting the batch costs no precision.
        let local = Tensor::f_cat(
            &[
                x.f_sum_dim_intlist(dims.as_slice(), false, Kind::Double)?,
                Tensor::f_full([1], count, (Kind::Double, x.device()))?,
            ],
            0,
        )?;
        let total = all_reduce_sum(group, &local, "all-reduce of BatchNorm sums")?;
        // The count, on the host (a CPU tensor under Gloo).
        let n = total.f_double_value(&[channels])?;
        if n <= 1.0 {
            return Err(tch::TchError::Torch(format!(
                "Expected more than 1 value per channel when training, got input size {size:?} \
                 on {} ranks",
                group.world_size()
            ))
            .into());
        }
        let mean = total
            .f_narrow(0, 0, channels)?
            .f_div_scalar(n)?
            .f_to_kind(x.kind())?;
        let centred = x.f_sub(&mean.f_view(shape.as_slice())?)?;
        let squares =
            centred
                .f_square()?
                .f_sum_dim_intlist(dims.as_slice(), false, Kind::Double)?;
        let var = all_reduce_sum(group, &squares, "all-reduce of BatchNorm squares")?
            .f_div_scalar(n)?
            .f_to_kind(x.kind())?;
        let scale = var
            .f_add_scalar(DEFAULT_EPS)?
            .f_rsqrt()?
            .f_mul(&self.weight)?
            .f_view(shape.as_slice())?;
        let y = centred
            .f_mul(&scale)?
            .f_add(&self.bias.f_view(shape.as_slice())?)?;
        let _guard = tch::no_grad_guard();
        let m = self.momentum.get();
        let update = |running: &Tensor, batch: Tensor| -> Result<()> {
            let blended = running
                .f_mul_scalar(1.0 - m)?
                .f_add(&batch.f_mul_scalar(m)?)?;
            running.shallow_clone().f_copy_(&blended)?;
            Ok(())
        };
        update(&self.running_mean, mean.f_detach()?)?;
        update(
            &self.running_var,
            var.f_detach()?.f_mul_scalar(n / (n - 1.0))?,
        )?;
        Ok(y)
    }
}

impl nn::ModuleT for BatchNorm {
    /// Panics on a libtorch error (a wrong channel count), as tch's layers
    /// do; [`BatchNorm::f_forward_t`] returns it.
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        match self.f_forward_t(x, train) {
            Ok(y) => y,
            Err(e) => panic!("{e}"),
        }
    }
}

/// Recomputes the running statistics of every BatchNorm layer in `vs` with
/// one pass over `batches`, exactly as the SWALP seed's `bn_update` does:
/// running means reset to 0 and variances to 1, then each batch of `b`
/// examples goes through `forward` (the model in training mode) with the
/// layers' momentum at `b / (n + b)`, `n` the examples before it, which
/// makes the running statistics the cumulative average over the pass.
/// The momentum returns to its default afterwards, also on error.
///
/// Layers are found by their variable names (`running_mean`,
/// `running_var`); they must take their momentum from `momentum`.
///
/// ```
/// use swalp_core::batchnorm::{recompute_batchnorm, BatchNorm, BatchNormMomentum};
/// use swalp_core::tch::{nn, nn::ModuleT, Device, Tensor};
/// let vs = nn::VarStore::new(Device::Cpu);
/// let momentum = BatchNormMomentum::default();
/// let bn = BatchNorm::new(vs.root() / "bn", 2, &momentum);
/// let batches = [
///     Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0]).view([2, 2]),
///     Tensor::from_slice(&[5.0f32, 6.0]).view([1, 2]),
/// ];
/// recompute_batchnorm(&vs, &momentum, batches, |x| bn.f_forward_t(x, true).map(|_| ()))?;
/// // The mean over all three examples.
/// let mean = Vec::<f32>::try_from(&bn.running_mean)?;
/// assert!((mean[0] - 3.0).abs() < 1e-6 && (mean[1] - 4.0).abs() < 1e-6);
/// assert_eq!(momentum.get(), 0.1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn recompute_batchnorm<I, F>(
    vs: &nn::VarStore,
    momentum: &BatchNormMomentum,
    batches: I,
    forward: F,
) -> Result<()>
where
    I: IntoIterator<Item = Tensor>,
    F: FnMut(&Tensor) -> Result<()>,
{
    let counted = batches.into_iter().map(|b| {
        let size = b.size().first().copied().unwrap_or(1);
        (b, size)
    });
    recompute_batchnorm_counted(vs, momentum, counted, forward)
}

/// [`recompute_batchnorm`] with each batch's weight in the average given:
/// in a data-parallel run a rank sees its share of each batch, and the
/// average must weigh the batch by its global size.
pub fn recompute_batchnorm_counted<I, F>(
    vs: &nn::VarStore,
    momentum: &BatchNormMomentum,
    batches: I,
    mut forward: F,
) -> Result<()>
where
    I: IntoIterator<Item = (Tensor, i64)>,
    F: FnMut(&Tensor) -> Result<()>,
{
    let variables = vs.variables();
    {
        let _guard = tch::no_grad_guard();
        for (name, t) in &variables {
            if name.ends_with("running_mean") {
                let _ = t.shallow_clone().f_zero_()?;
            } else if name.ends_with("running_var") {
                let _ = t.shallow_clone().f_fill_(1.0)?;
            }
        }
    }
    let result = (|| {
        let mut seen = 0i64;
        for (batch, size) in batches {
            momentum.set(Some(size as f64 / (seen + size) as f64));
            forward(&batch)?;
            seen += size;
        }
        Ok(())
    })();
    momentum.set(None);
    result
}
