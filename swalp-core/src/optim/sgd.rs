//! Stochastic gradient descent with momentum, dampening, Nesterov momentum
//! and weight decay, as `torch.optim.SGD` computes it.

use tch::{nn::VarStore, Tensor};

use super::{ops, LowPrecision, OptimQuantizers, UpdateRule};
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
    ///
    /// ```
    /// let c = swalp_core::optim::SgdConfig::new(0.1);
    /// assert_eq!((c.lr, c.momentum, c.nesterov), (0.1, 0.0, false));
    /// ```
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

    /// `torch.optim.SGD`'s single-tensor step, operator for operator:
    /// `d = g + wd·w`; `b = clone(d)` on the first step, else
    /// `b = μ·b + (1 − dampening)·d`; `d = d + μ·b` (Nesterov) or `d = b`;
    /// `w = w − lr·d`.
    fn update(
        &self,
        param: &mut Tensor,
        grad: &Tensor,
        buffers: &mut [Option<Tensor>],
        lr: f64,
        _step: u64,
    ) -> Result<()> {
        let mut d = if self.weight_decay != 0.0 {
            ops::add_scaled(grad, param, self.weight_decay)?
        } else {
            grad.shallow_clone()
        };
        if self.momentum != 0.0 {
            let buffer = match buffers[0].take() {
                None => d.f_detach()?.copy(),
                Some(mut b) => {
                    let _ = b.f_mul_scalar_(self.momentum)?;
                    ops::add_scaled_(&mut b, &d, 1.0 - self.dampening)?;
                    b
                }
            };
            d = if self.nesterov {
                ops::add_scaled(&d, &buffer, self.momentum)?
            } else {
                buffer.shallow_clone()
            };
            buffers[0] = Some(buffer);
        }
        ops::add_scaled_(param, &d, -lr)
    }
}

/// Low-precision SGD.
///
/// ```
/// use swalp_core::{hook::shared_rng, optim::{OptimQuantizers, Sgd, SgdConfig}};
/// use swalp_core::tch::{Kind, Tensor};
/// let w = Tensor::from_slice(&[1.0f32]).set_requires_grad(true);
/// let config = SgdConfig { weight_decay: 0.5, ..SgdConfig::new(0.1) };
/// let mut opt = Sgd::new(vec![("w".into(), w.shallow_clone())], config, config.lr, OptimQuantizers::full_precision(), shared_rng(0));
/// (&w * 2.0).sum(Kind::Float).backward();
/// opt.step()?;
/// assert!((w.double_value(&[0]) - (1.0 - 0.1 * (2.0 + 0.5))).abs() < 1e-6);
/// # Ok::<(), swalp_core::Error>(())
/// ```
pub type Sgd = LowPrecision<SgdConfig>;

impl Sgd {
    /// SGD over the trainable variables of `vs`.
    ///
    /// ```
    /// use swalp_core::{hook::shared_rng, optim::{OptimQuantizers, Sgd, SgdConfig}};
    /// use swalp_core::tch::{nn::VarStore, Device};
    /// let vs = VarStore::new(Device::Cpu);
    /// let _w = vs.root().zeros("w", &[4]);
    /// let opt = Sgd::from_var_store(&vs, SgdConfig::new(0.1), OptimQuantizers::full_precision(), shared_rng(0))?;
    /// assert_eq!((opt.params().len(), opt.lr()), (1, 0.1));
    /// # Ok::<(), swalp_core::Error>(())
    /// ```
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
