//! Inserting quantization points into a model, as QPyTorch's
//! `sequential_lower` does: after every layer of the chosen kinds.
//!
//! tch's `nn::Sequential` cannot be inspected once built, so layers are
//! declared with their kind while the model is assembled.

use tch::{nn, Tensor};

use crate::hook::{QuantAct, SharedRng};
use crate::quantizer::QuantPair;

/// What a layer is, for choosing where quantization points go.
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
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a layer of the given kind.
    pub fn add<M: nn::ModuleT + 'static>(mut self, kind: LayerKind, layer: M) -> Self {
        self.layers.push((kind, Layer(Box::new(layer))));
        self
    }

    /// Appends a function as a layer of the given kind.
    pub fn add_fn<F>(self, kind: LayerKind, f: F) -> Self
    where
        F: Fn(&Tensor) -> Tensor + Send + 'static,
    {
        self.add(kind, nn::func(f))
    }

    /// Appends a train-aware function (dropout) as a layer of the given kind.
    pub fn add_fn_t<F>(self, kind: LayerKind, f: F) -> Self
    where
        F: Fn(&Tensor, bool) -> Tensor + Send + 'static,
    {
        self.add(kind, nn::func_t(f))
    }

    /// How many points [`lower`](Self::lower) would insert.
    pub fn points_after(&self, kinds: &[LayerKind]) -> usize {
        self.layers
            .iter()
            .filter(|(k, _)| kinds.contains(k))
            .count()
    }

    /// The model with a [`QuantAct`] (sharing `pair` and `rng`) after every
    /// layer whose kind is in `kinds`.
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
