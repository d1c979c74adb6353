//! Adam and AdamW, as `torch.optim.Adam` / `AdamW` compute them.

use tch::{nn::VarStore, Tensor};

use super::{ops, LowPrecision, OptimQuantizers, UpdateRule};
use crate::error::Result;
use crate::hook::SharedRng;

/// Adam hyper-parameters (PyTorch's names and defaults).
///
/// ```
/// let c = swalp_core::optim::AdamConfig::adamw(1e-3);
/// assert!(c.decoupled && c.weight_decay == 0.01);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    /// Learning rate at construction.
    pub lr: f64,
    /// Decay of the first moment.
    pub beta1: f64,
    /// Decay of the second moment.
    pub beta2: f64,
    /// Added to the denominator.
    pub eps: f64,
    /// Weight decay: an L2 term in the gradient (Adam) or a decoupled
    /// shrinkage of the weights (AdamW).
    pub weight_decay: f64,
    /// AdamW's decoupled weight decay.
    pub decoupled: bool,
}

impl AdamConfig {
    /// Adam at `lr` with PyTorch's defaults.
    ///
    /// ```
    /// let c = swalp_core::optim::AdamConfig::adam(1e-3);
    /// assert_eq!((c.beta1, c.beta2, c.eps), (0.9, 0.999, 1e-8));
    /// assert!(!c.decoupled && c.weight_decay == 0.0);
    /// ```
    pub fn adam(lr: f64) -> Self {
        AdamConfig {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
        }
    }

    /// AdamW at `lr` with PyTorch's defaults (weight decay 0.01).
    ///
    /// ```
    /// use swalp_core::optim::AdamConfig;
    /// let c = AdamConfig::adamw(1e-3);
    /// assert_eq!((c.weight_decay, c.beta2), (0.01, AdamConfig::adam(1e-3).beta2));
    /// ```
    pub fn adamw(lr: f64) -> Self {
        AdamConfig {
            weight_decay: 0.01,
            decoupled: true,
            ..Self::adam(lr)
        }
    }
}

impl UpdateRule for AdamConfig {
    const BUFFERS: &'static [&'static str] = &["exp_avg", "exp_avg_sq"];

    /// `torch.optim.Adam`'s (and `AdamW`'s) single-tensor step, operator
    /// for operator: `w = w·(1 − lr·wd)` (AdamW) or `g = g + wd·w` (Adam);
    /// `m = lerp(m, g, 1 − β1)`; `v = β2·v + (1 − β2)·g·g`;
    /// `w = w − lr/(1 − β1^t) · m / (√v / √(1 − β2^t) + ε)`.
    fn update(
        &self,
        param: &mut Tensor,
        grad: &Tensor,
        buffers: &mut [Option<Tensor>],
        lr: f64,
        step: u64,
    ) -> Result<()> {
        let grad = if self.weight_decay != 0.0 && !self.decoupled {
            ops::add_scaled(grad, param, self.weight_decay)?
        } else {
            grad.shallow_clone()
        };
        if self.weight_decay != 0.0 && self.decoupled {
            let _ = param.f_mul_scalar_(1.0 - lr * self.weight_decay)?;
        }
        let mut m = match buffers[0].take() {
            Some(m) => m,
            None => param.f_zeros_like()?,
        };
        let mut v = match buffers[1].take() {
            Some(v) => v,
            None => param.f_zeros_like()?,
        };
        let _ = m.f_lerp_(&grad, 1.0 - self.beta1)?;
        let _ = v.f_mul_scalar_(self.beta2)?;
        ops::addcmul_(&mut v, &grad, &grad, 1.0 - self.beta2)?;
        // Python's `beta ** step` and `x ** 0.5`: libm's pow, as powf.
        let t = step as f64;
        let bias1 = 1.0 - self.beta1.powf(t);
        let bias2 = 1.0 - self.beta2.powf(t);
        let mut denom = v.f_sqrt()?.f_div_scalar(bias2.powf(0.5))?;
        let _ = denom.f_add_scalar_(self.eps)?;
        ops::addcdiv_(param, &m, &denom, -(lr / bias1))?;
        buffers[0] = Some(m);
        buffers[1] = Some(v);
        Ok(())
    }
}

/// Low-precision Adam / AdamW.
///
/// ```
/// use swalp_core::{hook::shared_rng, optim::{Adam, AdamConfig, OptimQuantizers}};
/// use swalp_core::tch::{Kind, Tensor};
/// let w = Tensor::from_slice(&[1.0f32]).set_requires_grad(true);
/// let params = vec![("w".to_string(), w.shallow_clone())];
/// let mut opt = Adam::new(params, AdamConfig::adam(1e-3), 1e-3, OptimQuantizers::full_precision(), shared_rng(0));
/// (&w * 2.0).sum(Kind::Float).backward();
/// opt.step()?;
/// // Adam's first step moves each weight by the learning rate.
/// assert!((w.double_value(&[0]) - 0.999).abs() < 1e-6);
/// # Ok::<(), swalp_core::Error>(())
/// ```
pub type Adam = LowPrecision<AdamConfig>;

impl Adam {
    /// Adam or AdamW over the trainable variables of `vs`.
    ///
    /// ```
    /// use swalp_core::{hook::shared_rng, optim::{Adam, AdamConfig, OptimQuantizers}};
    /// use swalp_core::tch::{nn::VarStore, Device};
    /// let vs = VarStore::new(Device::Cpu);
    /// let _w = vs.root().zeros("w", &[4]);
    /// let opt = Adam::from_var_store(&vs, AdamConfig::adamw(1e-3), OptimQuantizers::full_precision(), shared_rng(0))?;
    /// assert_eq!(opt.buffers(0).len(), 2); // exp_avg and exp_avg_sq
    /// # Ok::<(), swalp_core::Error>(())
    /// ```
    pub fn from_var_store(
        vs: &VarStore,
        config: AdamConfig,
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
