//! Linear and logistic regression: one affine layer (`linear.weight`,
//! `linear.bias`), starting at zero as convex problems usually do. Its
//! output is the prediction (or the logits) and is not quantized, as in
//! the seed's models, whose last layer has no quantizer after it.

use swalp_core::hook::SharedRng;
use swalp_core::lower::{LayerKind, QuantSequential};
use swalp_core::matmul::Layers;
use swalp_core::points::PointConfig;
use swalp_core::tch::{nn, Device};

use super::{init, Model};

/// An affine map from `inputs` features to `outputs`, initialised at zero.
pub fn build(
    inputs: i64,
    outputs: i64,
    points: &PointConfig,
    rng: SharedRng,
    device: Device,
) -> Model {
    let vs = nn::VarStore::new(device);
    let linear = Layers::new(points.matmul(), rng.clone()).linear(init::zeros_linear(
        vs.root() / "linear",
        inputs,
        outputs,
    ));
    let net = QuantSequential::new()
        .add_fn(LayerKind::Other, |x| x.flatten(1, -1))
        .add(LayerKind::Linear, linear)
        .lower(&[], points.activation_pair(), rng);
    Model {
        vs,
        net,
        batchnorm: None,
    }
}
