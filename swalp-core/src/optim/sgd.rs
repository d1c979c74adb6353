//! Stochastic gradient descent with momentum, dampening, Nesterov momentum
//! and weight decay, as `torch.optim.SGD` computes it.

use tch::{nn::VarStore, Tensor};

use super::{LowPrecision, OptimQuantizers, UpdateRule};
use crate::error::Result;
use crate::hook::SharedRng;

/// SGD hyper-parameters (PyTorch's names and defaults).
///
/// ```
/// let c = swalp_core::optim::SgdConfig { momentum: 0.9, ..swalp_core::optim::SgdConfig::new(0.1) };
/// assert_eq!(c.dampening, 0.0);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdConfig {
    /// Learning rate at construction.
    pub lr: f64,
    /// Momentum factor (0 = none).
    pub momentum: f64,
    /// Dampening of the gradient added to the momentum buffer.
    pub dampening: f64,
    /// L2 penalty added to the gradient.
    pub weight_decay: f64,
    /// Nesterov momentum.
    pub nesterov: bool,
}

impl SgdConfig {
    /// Plain SGD at learning rate `lr`.
    pub fn new(lr: f64) -> Self {
        SgdConfig {
            lr,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
        }
    }
}

impl UpdateRule for SgdConfig {
    const BUFFERS: &'static [&'static str] = &["momentum"];

    fn update(
        &self,
        param: &mut Tensor,
        grad: &Tensor,
        buffers: &mut [Option<Tensor>],
        lr: f64,
        _step: u64,
    ) {
        let mut d = if self.weight_decay != 0.0 {
            grad + &*param * self.weight_decay
        } else {
            grad.shallow_clone()
        };
        if self.momentum != 0.0 {
            let buffer = match buffers[0].take() {
                None => d.detach().copy(),
                Some(b) => b * self.momentum + &d * (1.0 - self.dampening),
            };
            d = if self.nesterov {
                d + &buffer * self.momentum
            } else {
                buffer.shallow_clone()
            };
            buffers[0] = Some(buffer);
        }
        let _ = param.f_sub_(&(d * lr));
    }
}

/// Low-precision SGD.
pub type Sgd = LowPrecision<SgdConfig>;

impl Sgd {
    /// SGD over the trainable variables of `vs`.
    pub fn from_var_store(
        vs: &VarStore,
        config: SgdConfig,
        quant: OptimQuantizers,
        rng: SharedRng,
    ) -> Result<Self> {
        Ok(LowPrecision::new(
            Self::trainable(vs),
            config,
            config.lr,
            quant,
            rng,
        ))
    }
}
