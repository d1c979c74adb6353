//! Stochastic weight averaging: the running mean of the weights (the
//! BatchNorm statistics an average needs are recomputed by
//! [`crate::batchnorm::recompute_batchnorm`]).

use tch::{nn::VarStore, Tensor};

use crate::error::{Error, Result};
use crate::hook::SharedRng;
use crate::quantizer::Quantizer;

/// When averaging starts and how often it samples.
///
/// ```
/// use swalp_core::swa::SwaEvery;
/// let every = SwaEvery::Epochs(1);
/// assert_ne!(every, SwaEvery::Steps(1));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwaEvery {
    /// After every `n`-th epoch, counting from the start epoch.
    Epochs(u64),
    /// After every `n`-th optimizer step, counting from the start step.
    Steps(u64),
}

/// The running average of a model's weights.
///
/// `update` sets `avg ← avg · n/(n+1) + w/(n+1)` (the seed's formula) and, if
/// a quantizer is set, rounds the average (the paper's low-precision
/// average). The average is full precision by default.
///
/// ```
/// use swalp_core::{hook::shared_rng, swa::Swa};
/// use tch::Tensor;
/// let w = vec![("w".to_string(), Tensor::from_slice(&[1.0f32, 2.0]))];
/// let mut swa = Swa::new(&w);
/// let rng = shared_rng(0);
/// swa.update(&w, &rng).unwrap();
/// swa.update(&[("w".to_string(), Tensor::from_slice(&[3.0f32, 4.0]))], &rng).unwrap();
/// assert_eq!(swa.count(), 2);
/// assert_eq!(Vec::<f32>::try_from(&swa.average()[0].1).unwrap(), vec![2.0, 3.0]);
/// ```
#[derive(Debug)]
pub struct Swa {
    average: Vec<(String, Tensor)>,
    count: u64,
    quantizer: Option<Quantizer>,
}

impl Swa {
    /// An empty average shaped like `params` (name, tensor).
    ///
    /// ```
    /// use swalp_core::{swa::Swa, tch::Tensor};
    /// let swa = Swa::new(&[("w".to_string(), Tensor::from_slice(&[1.0f32, 2.0]))]);
    /// assert_eq!(swa.count(), 0);
    /// assert_eq!(Vec::<f32>::try_from(&swa.average()[0].1)?, [0.0, 0.0]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(params: &[(String, Tensor)]) -> Self {
        let mut average: Vec<(String, Tensor)> = params
            .iter()
            .map(|(n, t)| (n.clone(), t.detach().zeros_like()))
            .collect();
        average.sort_by(|a, b| a.0.cmp(&b.0));
        Swa {
            average,
            count: 0,
            quantizer: None,
        }
    }

    /// Returns this average rounded with `quantizer` after every update.
    ///
    /// ```
    /// use swalp_core::{hook::shared_rng, swa::Swa, tch::Tensor, Quantizer};
    /// # use swalp_formats as _;
    /// let q: Quantizer = r#"{ format = "fixed", wl = 8, fl = 6 }"#.parse()?;
    /// let w = [("w".to_string(), Tensor::from_slice(&[0.3f32]))];
    /// let mut swa = Swa::new(&w).with_quantizer(Some(q));
    /// swa.update(&w, &shared_rng(0))?;
    /// assert_eq!(Vec::<f32>::try_from(&swa.average()[0].1)?, [0.296875]); // 19/64
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_quantizer(mut self, quantizer: Option<Quantizer>) -> Self {
        self.quantizer = quantizer;
        self
    }

    /// How many models have been averaged.
    ///
    /// ```
    /// use swalp_core::{hook::shared_rng, swa::Swa, tch::Tensor};
    /// let w = [("w".to_string(), Tensor::from_slice(&[1.0f32]))];
    /// let mut swa = Swa::new(&w);
    /// swa.update(&w, &shared_rng(0))?;
    /// assert_eq!(swa.count(), 1);
    /// # Ok::<(), swalp_core::Error>(())
    /// ```
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The averaged tensors by name, ordered by name.
    ///
    /// ```
    /// use swalp_core::{swa::Swa, tch::Tensor};
    /// let zero = || Tensor::from_slice(&[0.0f32]);
    /// let swa = Swa::new(&[("b".to_string(), zero()), ("a".to_string(), zero())]);
    /// let names: Vec<&str> = swa.average().iter().map(|(n, _)| n.as_str()).collect();
    /// assert_eq!(names, ["a", "b"]);
    /// ```
    pub fn average(&self) -> &[(String, Tensor)] {
        &self.average
    }

    /// Adds `params` (same names and shapes as at construction) to the
    /// average.
    ///
    /// ```
    /// use swalp_core::{hook::shared_rng, swa::Swa, tch::Tensor};
    /// let mut swa = Swa::new(&[("w".to_string(), Tensor::from_slice(&[1.0f32]))]);
    /// // Every parameter of the average must be given.
    /// assert!(swa.update(&[], &shared_rng(0)).unwrap_err().is_usage());
    /// ```
    pub fn update(&mut self, params: &[(String, Tensor)], rng: &SharedRng) -> Result<()> {
        let _guard = tch::no_grad_guard();
        let n = self.count as f64;
        for (name, avg) in &mut self.average {
            let w = params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, t)| t)
                .ok_or_else(|| Error::State(format!("SWA update lacks parameter `{name}`")))?;
            let mut next = &*avg * (n / (n + 1.0)) + w.detach() / (n + 1.0);
            if let Some(q) = &self.quantizer {
                let mut rng = rng.lock().unwrap_or_else(|p| p.into_inner());
                next = q.quantize(&next, &mut rng)?;
            }
            *avg = next;
        }
        self.count += 1;
        Ok(())
    }

    /// Copies the average into `vs`'s variables of the same names (the
    /// averaged model's weights). BatchNorm statistics are not touched; see
    /// [`recompute_batchnorm`](crate::batchnorm::recompute_batchnorm).
    ///
    /// ```
    /// use swalp_core::{hook::shared_rng, swa::Swa};
    /// use swalp_core::tch::{nn::VarStore, Device, Tensor};
    /// let vs = VarStore::new(Device::Cpu);
    /// let w = vs.root().zeros("w", &[2]);
    /// let mut swa = Swa::new(&[("w".to_string(), w.shallow_clone())]);
    /// swa.update(&[("w".to_string(), Tensor::from_slice(&[1.0f32, 3.0]))], &shared_rng(0))?;
    /// swa.copy_to(&vs)?;
    /// assert_eq!(Vec::<f32>::try_from(&w.detach())?, [1.0, 3.0]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn copy_to(&self, vs: &VarStore) -> Result<()> {
        let _guard = tch::no_grad_guard();
        let mut variables = vs.variables();
        for (name, avg) in &self.average {
            let target = variables.get_mut(name).ok_or_else(|| {
                Error::State(format!(
                    "model has no variable `{name}` for the SWA average"
                ))
            })?;
            target.f_copy_(avg)?;
        }
        Ok(())
    }

    /// Restores a saved average and count.
    ///
    /// ```
    /// use swalp_core::{swa::Swa, tch::Tensor};
    /// let mut swa = Swa::new(&[("w".to_string(), Tensor::from_slice(&[0.0f32]))]);
    /// swa.load(vec![("w".to_string(), Tensor::from_slice(&[2.5f32]))], 4)?;
    /// assert_eq!(swa.count(), 4);
    /// assert_eq!(Vec::<f32>::try_from(&swa.average()[0].1)?, [2.5]);
    /// // A saved average of another shape is refused.
    /// let other = vec![("w".to_string(), Tensor::from_slice(&[1.0f32, 2.0]))];
    /// assert!(swa.load(other, 1).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn load(&mut self, average: Vec<(String, Tensor)>, count: u64) -> Result<()> {
        for (name, avg) in &mut self.average {
            let saved = average
                .iter()
                .find(|(k, _)| k == name)
                .ok_or_else(|| Error::State(format!("saved SWA average lacks `{name}`")))?;
            if saved.1.size() != avg.size() {
                return Err(Error::State(format!(
                    "saved SWA average `{name}` has shape {:?}, expected {:?}",
                    saved.1.size(),
                    avg.size()
                )));
            }
            *avg = saved.1.to_device(avg.device()).detach().copy();
        }
        self.count = count;
        Ok(())
    }
}
