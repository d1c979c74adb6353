//! Small models for CPU-sized runs: an MLP and a CNN, with a quantization
//! point after every hidden activation.

use swalp_core::hook::SharedRng;
use swalp_core::lower::{LayerKind, QuantSequential};
use swalp_core::points::PointConfig;
use swalp_core::tch::{nn, Device};

use super::Model;

/// A two-hidden-layer MLP (512 units, ReLU) on flattened inputs.
pub fn mlp(
    inputs: i64,
    classes: i64,
    points: &PointConfig,
    rng: SharedRng,
    device: Device,
) -> Model {
    let vs = nn::VarStore::new(device);
    let root = vs.root();
    let net = QuantSequential::new()
        .add_fn(LayerKind::Other, |x| x.flatten(1, -1))
        .add(
            LayerKind::Linear,
            nn::linear(&root / "fc1", inputs, 512, Default::default()),
        )
        .add_fn(LayerKind::Activation, |x| x.relu())
        .add(
            LayerKind::Linear,
            nn::linear(&root / "fc2", 512, 512, Default::default()),
        )
        .add_fn(LayerKind::Activation, |x| x.relu())
        .add(
            LayerKind::Linear,
            nn::linear(&root / "fc3", 512, classes, Default::default()),
        )
        .lower(&[LayerKind::Activation], points.activation_pair(), rng);
    Model {
        vs,
        net,
        has_batchnorm: false,
    }
}

/// Two 5×5 conv layers (32, 64 channels, ReLU, 2×2 max-pool) and a
/// 256-unit hidden layer, for `[c, h, w]` inputs.
pub fn cnn(
    shape: &[i64],
    classes: i64,
    points: &PointConfig,
    rng: SharedRng,
    device: Device,
) -> Model {
    let vs = nn::VarStore::new(device);
    let root = vs.root();
    let (c, h, w) = (shape[0], shape[1], shape[2]);
    let conv = |name: &str, cin, cout| {
        let config = nn::ConvConfig {
            padding: 2,
            ..Default::default()
        };
        nn::conv2d(&root / name, cin, cout, 5, config)
    };
    let flat = 64 * (h / 4) * (w / 4);
    let net = QuantSequential::new()
        .add(LayerKind::Conv, conv("conv1", c, 32))
        .add_fn(LayerKind::Activation, |x| x.relu())
        .add_fn(LayerKind::Pool, |x| x.max_pool2d_default(2))
        .add(LayerKind::Conv, conv("conv2", 32, 64))
        .add_fn(LayerKind::Activation, |x| x.relu())
        .add_fn(LayerKind::Pool, |x| x.max_pool2d_default(2))
        .add_fn(LayerKind::Other, |x| x.flatten(1, -1))
        .add(
            LayerKind::Linear,
            nn::linear(&root / "fc1", flat, 256, Default::default()),
        )
        .add_fn(LayerKind::Activation, |x| x.relu())
        .add(
            LayerKind::Linear,
            nn::linear(&root / "fc2", 256, classes, Default::default()),
        )
        .lower(&[LayerKind::Activation], points.activation_pair(), rng);
    Model {
        vs,
        net,
        has_batchnorm: false,
    }
}
