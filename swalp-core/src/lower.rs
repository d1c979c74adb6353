//! Inserting quantization points into a model, as QPyTorch's
//! `sequential_lower` does: after every layer of the chosen kinds.
//!
//! tch's `nn::Sequential` cannot be inspected once built, so layers are
//! declared with their kind while the model is assembled.

use tch::{nn, Tensor};

use crate::hook::{QuantAct, SharedRng};
use crate::quantizer::QuantPair;

/// What a layer is, for choosing where quantization points go.
///
/// ```
/// use swalp_core::lower::{LayerKind, QuantSequential};
/// let model = QuantSequential::new()
///     .add_fn(LayerKind::Other, |x| x.flatten(1, -1))
///     .add_fn(LayerKind::Activation, |x| x.relu());
/// assert_eq!(model.points_after(&[LayerKind::Activation, LayerKind::Conv]), 1);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LayerKind {
    /// Fully connected.
    Linear,
    /// Convolution.
    Conv,
    /// Batch normalisation.
    BatchNorm,
    /// Elementwise nonlinearity (ReLU, tanh, ...).
    Activation,
    /// Pooling.
    Pool,
    /// Dropout.
    Dropout,
    /// Anything else (reshapes, ...).
    Other,
}

struct Layer(Box<dyn nn::ModuleT>);

impl std::fmt::Debug for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Layer")
    }
}

impl nn::ModuleT for Layer {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.0.forward_t(xs, train)
    }
}

/// A sequential model whose layers carry their kind, lowered to a tch
/// `SequentialT` with quantization points after the chosen kinds.
///
/// ```
/// use swalp_core::lower::{LayerKind, QuantSequential};
/// use swalp_core::{hook::shared_rng, QuantPair};
/// use tch::{nn, nn::ModuleT};
/// let vs = nn::VarStore::new(tch::Device::Cpu);
/// let model = QuantSequential::new()
///     .add(LayerKind::Linear, nn::linear(vs.root() / "fc1", 4, 8, Default::default()))
///     .add_fn(LayerKind::Activation, |x| x.relu())
///     .add(LayerKind::Linear, nn::linear(vs.root() / "fc2", 8, 2, Default::default()));
/// assert_eq!(model.points_after(&[LayerKind::Activation]), 1);
/// let net = model.lower(&[LayerKind::Activation], QuantPair::default(), shared_rng(0));
/// let y = net.forward_t(&tch::Tensor::zeros([3, 4], (tch::Kind::Float, tch::Device::Cpu)), false);
/// assert_eq!(y.size(), [3, 2]);
/// ```
#[derive(Debug, Default)]
pub struct QuantSequential {
    layers: Vec<(LayerKind, Layer)>,
}

impl QuantSequential {
    /// An empty model.
    ///
    /// ```
    /// use swalp_core::lower::{LayerKind, QuantSequential};
    /// assert_eq!(QuantSequential::new().points_after(&[LayerKind::Linear]), 0);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a layer of the given kind.
    ///
    /// ```
    /// use swalp_core::lower::{LayerKind, QuantSequential};
    /// use swalp_core::tch::{nn, Device};
    /// let vs = nn::VarStore::new(Device::Cpu);
    /// let conv = nn::conv2d(vs.root() / "conv", 3, 8, 3, Default::default());
    /// let model = QuantSequential::new().add(LayerKind::Conv, conv);
    /// assert_eq!(model.points_after(&[LayerKind::Conv]), 1);
    /// ```
    pub fn add<M: nn::ModuleT + 'static>(mut self, kind: LayerKind, layer: M) -> Self {
        self.layers.push((kind, Layer(Box::new(layer))));
        self
    }

    /// Appends a function as a layer of the given kind.
    ///
    /// ```
    /// use swalp_core::lower::{LayerKind, QuantSequential};
    /// let model = QuantSequential::new().add_fn(LayerKind::Other, |x| x.flatten(1, -1));
    /// assert_eq!(model.points_after(&[LayerKind::Other]), 1);
    /// ```
    pub fn add_fn<F>(self, kind: LayerKind, f: F) -> Self
    where
        F: Fn(&Tensor) -> Tensor + Send + 'static,
    {
        self.add(kind, nn::func(f))
    }

    /// Appends a train-aware function (dropout) as a layer of the given kind.
    ///
    /// ```
    /// use swalp_core::lower::{LayerKind, QuantSequential};
    /// use swalp_core::{hook::shared_rng, tch::{nn::ModuleT, Tensor}, QuantPair};
    /// let net = QuantSequential::new()
    ///     .add_fn_t(LayerKind::Dropout, |x, train| x.dropout(0.5, train))
    ///     .lower(&[], QuantPair::default(), shared_rng(0));
    /// let x = Tensor::from_slice(&[1.0f32, 2.0]);
    /// assert!(net.forward_t(&x, false).equal(&x)); // no dropout when evaluating
    /// ```
    pub fn add_fn_t<F>(self, kind: LayerKind, f: F) -> Self
    where
        F: Fn(&Tensor, bool) -> Tensor + Send + 'static,
    {
        self.add(kind, nn::func_t(f))
    }

    /// How many points [`lower`](Self::lower) would insert.
    ///
    /// ```
    /// use swalp_core::lower::{LayerKind, QuantSequential};
    /// let model = QuantSequential::new()
    ///     .add_fn(LayerKind::Activation, |x| x.relu())
    ///     .add_fn(LayerKind::Activation, |x| x.tanh());
    /// assert_eq!(model.points_after(&[LayerKind::Activation]), 2);
    /// assert_eq!(model.points_after(&[LayerKind::Linear]), 0);
    /// ```
    pub fn points_after(&self, kinds: &[LayerKind]) -> usize {
        self.layers
            .iter()
            .filter(|(k, _)| kinds.contains(k))
            .count()
    }

    /// The model with a [`QuantAct`] (sharing `pair` and `rng`) after every
    /// layer whose kind is in `kinds`.
    ///
    /// ```
    /// use swalp_core::lower::{LayerKind, QuantSequential};
    /// use swalp_core::{hook::shared_rng, tch::{nn::ModuleT, Tensor}, QuantPair, Quantizer};
    /// # use swalp_formats as _;
    /// let q: Quantizer = r#"{ format = "fixed", wl = 8, fl = 6 }"#.parse()?;
    /// let net = QuantSequential::new()
    ///     .add_fn(LayerKind::Activation, |x| x.relu())
    ///     .lower(&[LayerKind::Activation], QuantPair::new(Some(q), None), shared_rng(0));
    /// let y = net.forward_t(&Tensor::from_slice(&[0.3f32, -1.0]), false);
    /// assert_eq!(Vec::<f32>::try_from(&y)?, [0.296875, 0.0]); // relu, then 19/64
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lower(self, kinds: &[LayerKind], pair: QuantPair, rng: SharedRng) -> nn::SequentialT {
        let mut seq = nn::seq_t();
        for (kind, layer) in self.layers {
            seq = seq.add(layer);
            if kinds.contains(&kind) && !pair.is_identity() {
                seq = seq.add(QuantAct::new(pair.clone(), rng.clone()));
            }
        }
        seq
    }
}
