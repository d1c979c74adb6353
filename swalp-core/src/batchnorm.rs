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
use std::sync::Arc;

use tch::{nn, Kind, Tensor};

use crate::error::Result;

/// PyTorch's default BatchNorm momentum.
pub const DEFAULT_MOMENTUM: f64 = 0.1;
/// PyTorch's default BatchNorm epsilon.
pub const DEFAULT_EPS: f64 = 1e-5;

/// The momentum of a model's BatchNorm layers: [`DEFAULT_MOMENTUM`] unless
/// overridden, as [`recompute_batchnorm`] does for the duration of a pass.
/// Clones share the value.
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
    mut forward: F,
) -> Result<()>
where
    I: IntoIterator<Item = Tensor>,
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
        for batch in batches {
            let size = batch.size().first().copied().unwrap_or(1);
            momentum.set(Some(size as f64 / (seen + size) as f64));
            forward(&batch)?;
            seen += size;
        }
        Ok(())
    })();
    momentum.set(None);
    result
}
