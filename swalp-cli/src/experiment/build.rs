//! What an experiment builds that both a run and its [`check`](super::check)
//! need: the device, and the models, optimizer and average for a data shape.

use swalp_core::hook::{shared_rng, SharedRng};
use swalp_core::optim::{
    Adam, AdamConfig, LowPrecision, OptimQuantizers, Optimizer, Sgd, SgdConfig,
};
use swalp_core::points::PointConfig;
use swalp_core::swa::Swa;
use swalp_core::tch::{self, Device};

use super::config::{DeviceChoice, Experiment, OptimName};
use super::ExperimentError;
use crate::models::{self, weights, Inputs, Model};

/// What a run trains: the model, the model the average is evaluated in, the
/// optimizer, the average (when SWA is on) and the quantizers' generators.
pub(super) struct Parts {
    pub model: Model,
    pub averaged: Model,
    pub optimizer: Box<dyn Optimizer>,
    pub swa: Option<Swa>,
    /// The optimizer's and the average's generator.
    pub rng: SharedRng,
    /// The models' own points' generator (activations, errors, products):
    /// `rng` itself, or with [`Generators::PerRank`] one of its own.
    pub points_rng: SharedRng,
}

/// Which generators the quantizers draw from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Generators {
    /// One for everything, as a single process draws.
    One,
    /// The models' points draw from a generator apart from the optimizer's
    /// and the average's: a data-parallel rank reseeds it with its rank
    /// (each rank rounds its own examples with draws of its own), while the
    /// replicated state's roundings draw alike on every rank.
    PerRank,
}

/// Builds `exp`'s [`Parts`] for `inputs` on `device`. Initial weights come
/// from libtorch's generator: seed it first.
pub(super) fn parts(
    exp: &Experiment,
    inputs: &Inputs,
    device: Device,
    generators: Generators,
) -> Result<Parts, ExperimentError> {
    let points = exp.points();
    let rng = shared_rng(exp.experiment.seed);
    let points_rng = match generators {
        Generators::One => rng.clone(),
        Generators::PerRank => shared_rng(exp.experiment.seed),
    };
    let model = models::build(&exp.model, inputs, points, points_rng.clone(), device)?;
    // Before the optimizer, whose accumulators copy the initial weights.
    if let Some(path) = &exp.model.init {
        weights::load(&model, path)?;
    }
    let averaged_points = if exp.swa.eval_quantized {
        points.clone()
    } else {
        PointConfig::full_precision()
    };
    let averaged = models::build(
        &exp.model,
        inputs,
        &averaged_points,
        points_rng.clone(),
        device,
    )?;
    let mut quant = OptimQuantizers::from_points(points);
    quant.grad_scale = exp.optim.grad_scale;
    let optimizer = optimizer(exp, &model, quant, rng.clone());
    let swa = exp.swa.enabled().then(|| {
        Swa::new(&LowPrecision::<SgdConfig>::trainable(&model.vs))
            .with_quantizer(exp.swa.quantizer().cloned())
    });
    Ok(Parts {
        model,
        averaged,
        optimizer,
        swa,
        rng,
        points_rng,
    })
}

/// The device `experiment.device` names, if this machine has it; a GPU is
/// the `local_rank`-th (each rank of a data-parallel run on a node has its
/// own).
pub(super) fn device(choice: DeviceChoice, local_rank: usize) -> Result<Device, ExperimentError> {
    let cuda = tch::Cuda::is_available();
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Auto if !cuda => Ok(Device::Cpu),
        DeviceChoice::Auto => Ok(Device::Cuda(local_rank)),
        DeviceChoice::Cuda if cuda => Ok(Device::Cuda(local_rank)),
        DeviceChoice::Cuda => Err(ExperimentError::Device(
            "experiment.device = \"cuda\" but CUDA is not available on this machine; use \"cpu\" or \"auto\"".into(),
        )),
    }
}

/// The optimizer an experiment asks for, over `model`'s trainable
/// variables.
fn optimizer(
    exp: &Experiment,
    model: &Model,
    quant: OptimQuantizers,
    rng: SharedRng,
) -> Box<dyn Optimizer> {
    let o = &exp.optim;
    let params = LowPrecision::<SgdConfig>::trainable(&model.vs);
    if o.name == OptimName::Sgd {
        let config = SgdConfig {
            lr: o.lr,
            momentum: o.momentum,
            dampening: o.dampening,
            weight_decay: o.weight_decay,
            nesterov: o.nesterov,
        };
        Box::new(Sgd::new(params, config, o.lr, quant, rng))
    } else {
        let config = AdamConfig {
            lr: o.lr,
            beta1: o.beta1,
            beta2: o.beta2,
            eps: o.eps,
            weight_decay: o.weight_decay,
            decoupled: o.name == OptimName::Adamw,
        };
        Box::new(Adam::new(params, config, o.lr, quant, rng))
    }
}
