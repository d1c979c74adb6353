//! What an experiment builds that both a run and its [`check`](super::check)
//! need: the device and the optimizer.

use swalp_core::hook::SharedRng;
use swalp_core::optim::{
    Adam, AdamConfig, LowPrecision, OptimQuantizers, Optimizer, Sgd, SgdConfig,
};
use swalp_core::tch::{self, Device};

use super::config::{DeviceChoice, Experiment, OptimName};
use super::ExperimentError;
use crate::models::Model;

/// The device `experiment.device` names, if this machine has it.
pub(super) fn device(choice: DeviceChoice) -> Result<Device, ExperimentError> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Auto => Ok(Device::cuda_if_available()),
        DeviceChoice::Cuda if tch::Cuda::is_available() => Ok(Device::Cuda(0)),
        DeviceChoice::Cuda => Err(ExperimentError::Device(
            "experiment.device = \"cuda\" but CUDA is not available on this machine; use \"cpu\" or \"auto\"".into(),
        )),
    }
}

/// The optimizer an experiment asks for, over `model`'s trainable
/// variables.
pub(super) fn optimizer(
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
