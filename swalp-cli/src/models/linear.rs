//! Linear and logistic regression: one affine layer. Its output is the
//! prediction (or the logits) and is not quantized, as in the seed's models,
//! whose last layer has no quantizer after it.

use swalp_core::hook::SharedRng;
use swalp_core::lower::{LayerKind, QuantSequential};
use swalp_core::points::PointConfig;
use swalp_core::tch::{nn, Device};

use super::Model;

/// An affine map from `inputs` features to `outputs`, initialised at zero
/// (inside every format's range).
pub fn build(
    inputs: i64,
    outputs: i64,
    points: &PointConfig,
    rng: SharedRng,
    device: Device,
) -> Model {
    let vs = nn::VarStore::new(device);
    let config = nn::LinearConfig {
        ws_init: nn::Init::Const(0.0),
        bs_init: Some(nn::Init::Const(0.0)),
        bias: true,
    };
    let linear = nn::linear(vs.root() / "linear", inputs, outputs, config);
    let net = QuantSequential::new()
        .add_fn(LayerKind::Other, |x| x.flatten(1, -1))
        .add(LayerKind::Linear, linear)
        .lower(&[], points.activation_pair(), rng);
    Model {
        vs,
        net,
        has_batchnorm: false,
    }
}
