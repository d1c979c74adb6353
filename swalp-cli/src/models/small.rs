//! Small models for CPU-sized runs: an MLP and a CNN, with a quantization
//! point after every hidden activation, and PyTorch's initialisation.
//! Their variables are named as the attributes of the PyTorch modules in
//! `swalp-cli/tests/twins/twins.py` (`fc1.weight`, `conv2.bias`, ...).

use swalp_core::hook::SharedRng;
use swalp_core::lower::{LayerKind, QuantSequential};
use swalp_core::matmul::Layers;
use swalp_core::points::PointConfig;
use swalp_core::tch::{nn, Device};

use super::init::{self, Conv};
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
    let layers = Layers::new(points.matmul(), rng.clone());
    let linear = |name: &str, i, o| layers.linear(init::linear(&root / name, i, o));
    let net = QuantSequential::new()
        .add_fn(LayerKind::Other, |x| x.flatten(1, -1))
        .add(LayerKind::Linear, linear("fc1", inputs, 512))
        .add_fn(LayerKind::Activation, |x| x.relu())
        .add(LayerKind::Linear, linear("fc2", 512, 512))
        .add_fn(LayerKind::Activation, |x| x.relu())
        .add(LayerKind::Linear, linear("fc3", 512, classes))
        .lower(&[LayerKind::Activation], points.activation_pair(), rng);
    Model {
        vs,
        net,
        batchnorm: None,
    }
}

/// Two 5×5 conv layers (32, 64 channels, ReLU, 2×2 max-pool) and a
/// 256-unit hidden layer, for `[c, h, w]` inputs with `h` and `w`
/// divisible by 4.
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
    let flat = 64 * (h / 4) * (w / 4);
    let layers = Layers::new(points.matmul(), rng.clone());
    let conv = |name: &str, shape: Conv| {
        layers.conv2d(
            init::conv2d(&root / name, shape),
            shape.stride,
            shape.padding,
        )
    };
    let linear = |name: &str, i, o| layers.linear(init::linear(&root / name, i, o));
    let net = QuantSequential::new()
        .add(LayerKind::Conv, conv("conv1", Conv::same(c, 32, 5)))
        .add_fn(LayerKind::Activation, |x| x.relu())
        .add_fn(LayerKind::Pool, |x| x.max_pool2d_default(2))
        .add(LayerKind::Conv, conv("conv2", Conv::same(32, 64, 5)))
        .add_fn(LayerKind::Activation, |x| x.relu())
        .add_fn(LayerKind::Pool, |x| x.max_pool2d_default(2))
        .add_fn(LayerKind::Other, |x| x.flatten(1, -1))
        .add(LayerKind::Linear, linear("fc1", flat, 256))
        .add_fn(LayerKind::Activation, |x| x.relu())
        .add(LayerKind::Linear, linear("fc2", 256, classes))
        .lower(&[LayerKind::Activation], points.activation_pair(), rng);
    Model {
        vs,
        net,
        batchnorm: None,
    }
}
