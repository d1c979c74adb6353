//! The low-precision optimizer: SGD and Adam/AdamW written in tensor ops,
//! with quantizers at the gradient, momentum, accumulator and weight points.
//!
//! One step follows the SWALP paper's algorithm (and its code):
//!
//! 1. `g ← Q_gradient(s · ∇w)` (optional gradient scale `s`);
//! 2. the update rule (SGD, Adam, AdamW) steps the accumulator `a`, the
//!    full-width copy of the weights, using `g`;
//! 3. `a ← Q_accumulator(a)`, then `w ← Q_weight(a)`;
//! 4. every state buffer (momentum, Adam moments) `← Q_momentum(buffer)`.
//!
//! The accumulator exists when a weight quantizer is set (initialised as a
//! copy of the initial weights); without one the weights themselves are
//! updated, then `w ← Q_accumulator(w)`. QPyTorch's `OptimLP` without an
//! accumulator quantizer keeps no full-width copy; setting the accumulator
//! to the weight quantizer reproduces that.

mod adam;
mod ops;
mod sgd;

pub use adam::{Adam, AdamConfig};
pub use sgd::{Sgd, SgdConfig};

use tch::{nn::VarStore, Tensor};

use crate::error::{Error, Result};
use crate::hook::SharedRng;
use crate::points::{PointConfig, QuantPoint};
use crate::quantizer::Quantizer;

/// The quantizers an optimizer applies, and the gradient scale.
///
/// ```
/// use swalp_core::optim::OptimQuantizers;
/// # use swalp_formats as _;
/// let quant = OptimQuantizers {
///     weight: Some(r#"{ format = "fixed", wl = 8, fl = 6 }"#.parse()?),
///     grad_scale: 1024.0,
///     ..OptimQuantizers::full_precision()
/// };
/// assert!(quant.weight.is_some() && quant.gradient.is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct OptimQuantizers {
    /// Applied to the weights after each step.
    pub weight: Option<Quantizer>,
    /// Applied to each gradient before the update.
    pub gradient: Option<Quantizer>,
    /// Applied to each state buffer after the update.
    pub momentum: Option<Quantizer>,
    /// Applied to the full-width accumulator after the update.
    pub accumulator: Option<Quantizer>,
    /// Gradients are multiplied by this before quantization (1 = none).
    pub grad_scale: f64,
}

impl OptimQuantizers {
    /// No quantization, gradient scale 1.
    ///
    /// ```
    /// let quant = swalp_core::optim::OptimQuantizers::full_precision();
    /// assert!(quant.weight.is_none() && quant.accumulator.is_none());
    /// assert_eq!(quant.grad_scale, 1.0);
    /// ```
    pub fn full_precision() -> Self {
        OptimQuantizers {
            grad_scale: 1.0,
            ..Default::default()
        }
    }

    /// The optimizer's points of a [`PointConfig`].
    ///
    /// ```
    /// use swalp_core::{optim::OptimQuantizers, points::{PointConfig, QuantPoint}, Quantizer};
    /// # use swalp_formats as _;
    /// let q: Quantizer = r#"{ format = "fixed", wl = 8, fl = 6 }"#.parse()?;
    /// let points = PointConfig::full_precision().with(QuantPoint::Weight, Some(q));
    /// let quant = OptimQuantizers::from_points(&points);
    /// assert!(quant.weight.is_some() && quant.gradient.is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_points(points: &PointConfig) -> Self {
        OptimQuantizers {
            weight: points.get(QuantPoint::Weight).cloned(),
            gradient: points.get(QuantPoint::Gradient).cloned(),
            momentum: points.get(QuantPoint::Momentum).cloned(),
            accumulator: points.get(QuantPoint::Accumulator).cloned(),
            grad_scale: 1.0,
        }
    }
}

/// An update rule: how one parameter moves given its gradient.
///
/// ```
/// use swalp_core::optim::{LowPrecision, OptimQuantizers, UpdateRule};
/// use swalp_core::{hook::shared_rng, tch::{Kind, Tensor}};
/// // Sign descent: w ← w − lr · sign(g).
/// struct SignSgd;
/// impl UpdateRule for SignSgd {
///     const BUFFERS: &'static [&'static str] = &[];
///     fn update(&self, w: &mut Tensor, g: &Tensor, _: &mut [Option<Tensor>], lr: f64, _: u64) -> swalp_core::Result<()> {
///         w.f_sub_(&(g.f_sign()? * lr))?;
///         Ok(())
///     }
/// }
/// let w = Tensor::from_slice(&[1.0f32]).set_requires_grad(true);
/// let params = vec![("w".to_string(), w.shallow_clone())];
/// let mut opt = LowPrecision::new(params, SignSgd, 0.25, OptimQuantizers::full_precision(), shared_rng(0));
/// (&w * 3.0).sum(Kind::Float).backward();
/// opt.step()?;
/// assert_eq!(w.double_value(&[0]), 0.75);
/// # Ok::<(), swalp_core::Error>(())
/// ```
pub trait UpdateRule: Send {
    /// Names of the per-parameter state buffers, for checkpoints.
    ///
    /// ```
    /// use swalp_core::optim::{AdamConfig, SgdConfig, UpdateRule};
    /// assert_eq!(SgdConfig::BUFFERS, ["momentum"]);
    /// assert_eq!(AdamConfig::BUFFERS, ["exp_avg", "exp_avg_sq"]);
    /// ```
    const BUFFERS: &'static [&'static str];

    /// Updates `param` in place from `grad` at learning rate `lr` and step
    /// number `step` (1 for the first step), creating or updating `buffers`
    /// (one slot per name in `BUFFERS`). Runs without autograd. A libtorch
    /// error (a shape or device mismatch) is returned, not swallowed.
    ///
    /// ```
    /// use swalp_core::optim::{SgdConfig, UpdateRule};
    /// use swalp_core::tch::Tensor;
    /// let sgd = SgdConfig { momentum: 0.9, ..SgdConfig::new(0.1) };
    /// let mut w = Tensor::from_slice(&[1.0f32]);
    /// let mut buffers: [Option<Tensor>; 1] = [None];
    /// sgd.update(&mut w, &Tensor::from_slice(&[2.0f32]), &mut buffers, 0.1, 1)?;
    /// assert!((w.double_value(&[0]) - 0.8).abs() < 1e-6);
    /// assert!(buffers[0].is_some()); // the momentum buffer
    /// // A gradient of another shape is an error.
    /// assert!(sgd.update(&mut w, &Tensor::from_slice(&[1.0f32, 2.0]), &mut buffers, 0.1, 2).is_err());
    /// # Ok::<(), swalp_core::Error>(())
    /// ```
    fn update(
        &self,
        param: &mut Tensor,
        grad: &Tensor,
        buffers: &mut [Option<Tensor>],
        lr: f64,
        step: u64,
    ) -> Result<()>;
}

/// What a training loop asks of an optimizer, whatever its update rule:
/// object-safe, so a loop can hold a `Box<dyn Optimizer>` chosen at run
/// time. [`LowPrecision`] implements it for every [`UpdateRule`].
///
/// ```
/// use swalp_core::{hook::shared_rng, optim::{Adam, AdamConfig, OptimQuantizers, Optimizer, Sgd, SgdConfig}};
/// use swalp_core::tch::{Kind, Tensor};
/// let w = Tensor::from_slice(&[1.0f32]).set_requires_grad(true);
/// let params = || vec![("w".to_string(), w.shallow_clone())];
/// let quant = OptimQuantizers::full_precision;
/// let adam = true;
/// let mut opt: Box<dyn Optimizer> = if adam {
///     Box::new(Adam::new(params(), AdamConfig::adam(0.1), 0.1, quant(), shared_rng(0)))
/// } else {
///     Box::new(Sgd::new(params(), SgdConfig::new(0.1), 0.1, quant(), shared_rng(0)))
/// };
/// opt.set_lr(0.01);
/// (&w * 2.0).sum(Kind::Float).backward();
/// opt.step()?;
/// assert!((w.double_value(&[0]) - 0.99).abs() < 1e-6);
/// # Ok::<(), swalp_core::Error>(())
/// ```
pub trait Optimizer: Send {
    /// The learning rate.
    fn lr(&self) -> f64;
    /// Sets the learning rate.
    fn set_lr(&mut self, lr: f64);
    /// Zeroes every gradient.
    fn zero_grad(&mut self);
    /// One optimizer step.
    fn step(&mut self) -> Result<()>;
    /// Every state tensor by name, for checkpoints.
    fn state_tensors(&self) -> Vec<(String, Tensor)>;
    /// Restores state saved by `state_tensors`.
    fn load_state_tensors(&mut self, state: &[(String, Tensor)]) -> Result<()>;
}

impl<R: UpdateRule> Optimizer for LowPrecision<R> {
    fn lr(&self) -> f64 {
        LowPrecision::lr(self)
    }
    fn set_lr(&mut self, lr: f64) {
        LowPrecision::set_lr(self, lr)
    }
    fn zero_grad(&mut self) {
        LowPrecision::zero_grad(self)
    }
    fn step(&mut self) -> Result<()> {
        LowPrecision::step(self)
    }
    fn state_tensors(&self) -> Vec<(String, Tensor)> {
        LowPrecision::state_tensors(self)
    }
    fn load_state_tensors(&mut self, state: &[(String, Tensor)]) -> Result<()> {
        LowPrecision::load_state_tensors(self, state)
    }
}

/// A low-precision optimizer over named parameters with update rule `R`.
///
/// ```
/// use swalp_core::{hook::shared_rng, optim::{Sgd, SgdConfig, OptimQuantizers}};
/// use swalp_core::tch::{nn::VarStore, Device, Kind};
/// let vs = VarStore::new(Device::Cpu);
/// let w = vs.root().ones("w", &[2]);
/// let config = SgdConfig { momentum: 0.9, weight_decay: 5e-4, ..SgdConfig::new(0.05) };
/// let mut opt = Sgd::from_var_store(&vs, config, OptimQuantizers::full_precision(), shared_rng(0))?;
/// // forward, loss.backward(), then:
/// (&w * 2.0).sum(Kind::Float).backward();
/// opt.step()?;
/// opt.zero_grad();
/// assert_eq!(opt.steps(), 1);
/// assert!((w.double_value(&[0]) - (1.0 - 0.05 * (2.0 + 5e-4))).abs() < 1e-6);
/// # Ok::<(), swalp_core::Error>(())
/// ```
#[derive(Debug)]
pub struct LowPrecision<R: UpdateRule> {
    names: Vec<String>,
    params: Vec<Tensor>,
    accumulators: Vec<Option<Tensor>>,
    buffers: Vec<Vec<Option<Tensor>>>,
    rule: R,
    lr: f64,
    steps: u64,
    quant: OptimQuantizers,
    rng: SharedRng,
}

impl<R: UpdateRule> LowPrecision<R> {
    /// An optimizer over `params` (name, tensor) — ordered by name, so
    /// checkpoints do not depend on construction order.
    ///
    /// ```
    /// use swalp_core::{hook::shared_rng, optim::{OptimQuantizers, Sgd, SgdConfig}};
    /// use swalp_core::tch::Tensor;
    /// let params = vec![
    ///     ("b".to_string(), Tensor::from_slice(&[0.0f32; 3])),
    ///     ("a".to_string(), Tensor::from_slice(&[0.0f32])),
    /// ];
    /// let opt = Sgd::new(params, SgdConfig::new(0.1), 0.1, OptimQuantizers::full_precision(), shared_rng(0));
    /// assert_eq!(opt.params()[0].size(), [1]); // `a` comes first
    /// ```
    pub fn new(
        mut params: Vec<(String, Tensor)>,
        rule: R,
        lr: f64,
        quant: OptimQuantizers,
        rng: SharedRng,
    ) -> Self {
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let (names, params): (Vec<String>, Vec<Tensor>) = params.into_iter().unzip();
        let accumulators = params
            .iter()
            .map(|p| quant.weight.as_ref().map(|_| p.detach().copy()))
            .collect();
        let buffers = params
            .iter()
            .map(|_| R::BUFFERS.iter().map(|_| None).collect())
            .collect();
        LowPrecision {
            names,
            params,
            accumulators,
            buffers,
            rule,
            lr,
            steps: 0,
            quant,
            rng,
        }
    }

    /// The trainable variables of `vs`.
    ///
    /// ```
    /// use swalp_core::{optim::Sgd, tch::{nn::VarStore, Device}};
    /// let vs = VarStore::new(Device::Cpu);
    /// let _w = vs.root().zeros("w", &[2]);
    /// let _stats = vs.root().zeros_no_train("running_mean", &[2]);
    /// let names: Vec<String> = Sgd::trainable(&vs).into_iter().map(|(n, _)| n).collect();
    /// assert_eq!(names, ["w"]);
    /// ```
    pub fn trainable(vs: &VarStore) -> Vec<(String, Tensor)> {
        vs.variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect()
    }

    /// The learning rate.
    ///
    /// ```
    /// use swalp_core::{hook::shared_rng, optim::{OptimQuantizers, Sgd, SgdConfig}};
    /// let opt = Sgd::new(vec![], SgdConfig::new(0.1), 0.1, OptimQuantizers::full_precision(), shared_rng(0));
    /// assert_eq!(opt.lr(), 0.1);
    /// ```
    pub fn lr(&self) -> f64 {
        self.lr
    }

    /// Sets the learning rate (schedules call this every epoch or step).
    ///
    /// ```
    /// use swalp_core::{hook::shared_rng, optim::{OptimQuantizers, Sgd, SgdConfig}};
    /// let mut opt = Sgd::new(vec![], SgdConfig::new(0.1), 0.1, OptimQuantizers::full_precision(), shared_rng(0));
    /// opt.set_lr(0.01);
    /// assert_eq!(opt.lr(), 0.01);
    /// ```
    pub fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    /// Steps taken so far.
    ///
    /// ```
    /// use swalp_core::{hook::shared_rng, optim::{OptimQuantizers, Sgd, SgdConfig}};
    /// let mut opt = Sgd::new(vec![], SgdConfig::new(0.1), 0.1, OptimQuantizers::full_precision(), shared_rng(0));
    /// opt.step()?;
    /// assert_eq!(opt.steps(), 1);
    /// # Ok::<(), swalp_core::Error>(())
    /// ```
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The quantizers.
    ///
    /// ```
    /// use swalp_core::{hook::shared_rng, optim::{OptimQuantizers, Sgd, SgdConfig}};
    /// let quant = OptimQuantizers { grad_scale: 128.0, ..OptimQuantizers::full_precision() };
    /// let opt = Sgd::new(vec![], SgdConfig::new(0.1), 0.1, quant, shared_rng(0));
    /// assert_eq!(opt.quantizers().grad_scale, 128.0);
    /// ```
    pub fn quantizers(&self) -> &OptimQuantizers {
        &self.quant
    }

    /// The parameters, ordered by name.
    ///
    /// ```
    /// use swalp_core::{hook::shared_rng, optim::{OptimQuantizers, Sgd, SgdConfig}};
    /// let params = vec![("w".to_string(), swalp_core::tch::Tensor::from_slice(&[1.0f32]))];
    /// let opt = Sgd::new(params, SgdConfig::new(0.1), 0.1, OptimQuantizers::full_precision(), shared_rng(0));
    /// assert_eq!(opt.params()[0].double_value(&[0]), 1.0);
    /// ```
    pub fn params(&self) -> &[Tensor] {
        &self.params
    }

    /// The full-width accumulator of each parameter (when a weight quantizer
    /// is set).
    ///
    /// ```
    /// use swalp_core::{hook::shared_rng, optim::{OptimQuantizers, Sgd, SgdConfig}};
    /// # use swalp_formats as _;
    /// let weight: swalp_core::Quantizer = r#"{ format = "fixed", wl = 8, fl = 6 }"#.parse()?;
    /// let quant = OptimQuantizers { weight: Some(weight), ..OptimQuantizers::full_precision() };
    /// let params = vec![("w".to_string(), swalp_core::tch::Tensor::from_slice(&[0.3f32]))];
    /// let opt = Sgd::new(params, SgdConfig::new(0.1), 0.1, quant, shared_rng(0));
    /// // A copy of the initial weights.
    /// assert_eq!(opt.accumulators()[0].as_ref().unwrap().double_value(&[0]), 0.3f32 as f64);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn accumulators(&self) -> &[Option<Tensor>] {
        &self.accumulators
    }

    /// The state buffers of parameter `index`, in `R::BUFFERS` order.
    ///
    /// ```
    /// use swalp_core::{hook::shared_rng, optim::{OptimQuantizers, Sgd, SgdConfig}};
    /// use swalp_core::tch::{Kind, Tensor};
    /// let w = Tensor::from_slice(&[1.0f32]).set_requires_grad(true);
    /// let sgd = SgdConfig { momentum: 0.9, ..SgdConfig::new(0.1) };
    /// let mut opt = Sgd::new(vec![("w".into(), w.shallow_clone())], sgd, 0.1, OptimQuantizers::full_precision(), shared_rng(0));
    /// assert!(opt.buffers(0)[0].is_none());
    /// w.sum(Kind::Float).backward();
    /// opt.step()?;
    /// assert!(opt.buffers(0)[0].is_some());
    /// # Ok::<(), swalp_core::Error>(())
    /// ```
    pub fn buffers(&self, index: usize) -> &[Option<Tensor>] {
        &self.buffers[index]
    }

    /// Zeroes every gradient.
    ///
    /// ```
    /// use swalp_core::{hook::shared_rng, optim::{OptimQuantizers, Sgd, SgdConfig}};
    /// use swalp_core::tch::{Kind, Tensor};
    /// let w = Tensor::from_slice(&[1.0f32]).set_requires_grad(true);
    /// let mut opt = Sgd::new(vec![("w".into(), w.shallow_clone())], SgdConfig::new(0.1), 0.1, OptimQuantizers::full_precision(), shared_rng(0));
    /// (&w * 2.0).sum(Kind::Float).backward();
    /// opt.zero_grad();
    /// assert_eq!(w.grad().double_value(&[0]), 0.0);
    /// ```
    pub fn zero_grad(&mut self) {
        for p in &mut self.params {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.detach_().zero_();
            }
        }
    }

    /// One optimizer step (see the module docs for the order).
    ///
    /// ```
    /// use swalp_core::{hook::shared_rng, optim::{OptimQuantizers, Sgd, SgdConfig}};
    /// use swalp_core::tch::{Kind, Tensor};
    /// # use swalp_formats as _;
    /// let weight: swalp_core::Quantizer = r#"{ format = "fixed", wl = 8, fl = 6 }"#.parse()?;
    /// let quant = OptimQuantizers { weight: Some(weight), ..OptimQuantizers::full_precision() };
    /// let w = Tensor::from_slice(&[1.0f32]).set_requires_grad(true);
    /// let mut opt = Sgd::new(vec![("w".into(), w.shallow_clone())], SgdConfig::new(0.1), 0.1, quant, shared_rng(0));
    /// (&w * 2.0).sum(Kind::Float).backward();
    /// opt.step()?;
    /// // The accumulator takes the full-precision step; the weights are its rounding.
    /// let accumulator = opt.accumulators()[0].as_ref().unwrap().double_value(&[0]);
    /// assert!((accumulator - 0.8).abs() < 1e-6);
    /// assert_eq!(w.double_value(&[0]), 51.0 / 64.0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn step(&mut self) -> Result<()> {
        self.steps += 1;
        let _guard = tch::no_grad_guard();
        for i in 0..self.params.len() {
            let grad = self.params[i].grad();
            if !grad.defined() {
                continue;
            }
            let grad = if self.quant.grad_scale == 1.0 {
                grad
            } else {
                grad * self.quant.grad_scale
            };
            let grad = self.apply(&self.quant.gradient, grad)?;
            let target = match &mut self.accumulators[i] {
                Some(acc) => acc,
                None => &mut self.params[i],
            };
            self.rule
                .update(target, &grad, &mut self.buffers[i], self.lr, self.steps)?;
            self.finish_weights(i)?;
            for slot in 0..self.buffers[i].len() {
                if let Some(buffer) = self.buffers[i][slot].take() {
                    self.buffers[i][slot] = Some(self.apply(&self.quant.momentum, buffer)?);
                }
            }
        }
        Ok(())
    }

    /// `a ← Q_acc(a)`, `w ← Q_weight(a)` (or `w ← Q_acc(w)` without an
    /// accumulator), written into the model's own tensors.
    fn finish_weights(&mut self, i: usize) -> Result<()> {
        match self.accumulators[i].take() {
            Some(acc) => {
                let acc = self.apply(&self.quant.accumulator, acc)?;
                // Rounded straight into the model's weights: no temporary.
                match &self.quant.weight {
                    Some(q) => {
                        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
                        q.quantize_into(&acc, &mut self.params[i], &mut rng)?;
                    }
                    None => {
                        self.params[i].f_copy_(&acc)?;
                    }
                }
                self.accumulators[i] = Some(acc);
            }
            None => {
                if self.quant.accumulator.is_some() {
                    let w = self.apply(&self.quant.accumulator, self.params[i].shallow_clone())?;
                    self.params[i].f_copy_(&w)?;
                }
            }
        }
        Ok(())
    }

    fn apply(&self, quantizer: &Option<Quantizer>, x: Tensor) -> Result<Tensor> {
        match quantizer {
            None => Ok(x),
            Some(q) => {
                let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
                q.quantize(&x, &mut rng)
            }
        }
    }

    /// Every state tensor by name, for checkpoints: `step`, and per
    /// parameter `<name>.accumulator` and `<name>.<buffer>`.
    ///
    /// ```
    /// use swalp_core::{hook::shared_rng, optim::{OptimQuantizers, Sgd, SgdConfig}};
    /// use swalp_core::tch::{Kind, Tensor};
    /// let w = Tensor::from_slice(&[1.0f32]).set_requires_grad(true);
    /// let sgd = SgdConfig { momentum: 0.9, ..SgdConfig::new(0.1) };
    /// let mut opt = Sgd::new(vec![("w".into(), w.shallow_clone())], sgd, 0.1, OptimQuantizers::full_precision(), shared_rng(0));
    /// w.sum(Kind::Float).backward();
    /// opt.step()?;
    /// let names: Vec<String> = opt.state_tensors().into_iter().map(|(n, _)| n).collect();
    /// assert_eq!(names, ["step", "w.momentum"]);
    /// # Ok::<(), swalp_core::Error>(())
    /// ```
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![("step".to_string(), Tensor::from(self.steps as i64))];
        for (i, name) in self.names.iter().enumerate() {
            if let Some(acc) = &self.accumulators[i] {
                out.push((format!("{name}.accumulator"), acc.shallow_clone()));
            }
            for (slot, buffer) in R::BUFFERS.iter().zip(&self.buffers[i]) {
                if let Some(b) = buffer {
                    out.push((format!("{name}.{slot}"), b.shallow_clone()));
                }
            }
        }
        out
    }

    /// Restores state saved by [`state_tensors`](Self::state_tensors) into
    /// an optimizer over the same parameters.
    ///
    /// ```
    /// use swalp_core::{hook::shared_rng, optim::{OptimQuantizers, Sgd, SgdConfig}};
    /// use swalp_core::tch::{Kind, Tensor};
    /// let w = Tensor::from_slice(&[1.0f32]).set_requires_grad(true);
    /// let sgd = SgdConfig { momentum: 0.9, ..SgdConfig::new(0.1) };
    /// let new = || Sgd::new(vec![("w".into(), w.shallow_clone())], sgd, 0.1, OptimQuantizers::full_precision(), shared_rng(0));
    /// let mut opt = new();
    /// w.sum(Kind::Float).backward();
    /// opt.step()?;
    /// let mut resumed = new();
    /// resumed.load_state_tensors(&opt.state_tensors())?;
    /// assert_eq!(resumed.steps(), 1);
    /// assert!(resumed.buffers(0)[0].is_some());
    /// assert!(resumed.load_state_tensors(&[]).is_err()); // no `step`
    /// # Ok::<(), swalp_core::Error>(())
    /// ```
    pub fn load_state_tensors(&mut self, state: &[(String, Tensor)]) -> Result<()> {
        let find = |key: &str| state.iter().find(|(k, _)| k == key).map(|(_, t)| t);
        let missing = |key: String| Error::State(format!("optimizer state has no tensor `{key}`"));
        let step = find("step").ok_or_else(|| missing("step".into()))?;
        self.steps = step.f_int64_value(&[])? as u64;
        for (i, name) in self.names.iter().enumerate() {
            let shape = self.params[i].size();
            let check = |key: &str, t: &Tensor| -> Result<Tensor> {
                if t.size() != shape {
                    return Err(Error::State(format!(
                        "optimizer state `{key}` has shape {:?}, the parameter has {shape:?}",
                        t.size()
                    )));
                }
                Ok(t.to_device(self.params[i].device()).detach().copy())
            };
            if self.accumulators[i].is_some() {
                let key = format!("{name}.accumulator");
                let t = find(&key).ok_or_else(|| missing(key.clone()))?;
                self.accumulators[i] = Some(check(&key, t)?);
            }
            for (slot, buffer_name) in R::BUFFERS.iter().enumerate() {
                let key = format!("{name}.{buffer_name}");
                self.buffers[i][slot] = find(&key).map(|t| check(&key, t)).transpose()?;
            }
        }
        Ok(())
    }
}
