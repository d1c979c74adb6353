//! VGG for 32×32 inputs, as the SWALP seed's `vgg_low` builds it: a
//! quantization point after every conv+ReLU (or conv+BN+ReLU) and after
//! each of the two hidden linear+ReLU, dropout before each hidden linear,
//! none after the last linear; the input image is not quantized. Convs are
//! 3×3 with padding 1, weights from N(0, 2/(9·out_channels)) and zero bias
//! (the seed's rule); linear layers and BatchNorm start as PyTorch's.
//!
//! Variables carry the names of the seed's `state_dict`, whose
//! `nn.Sequential`s count every module, the quantizers included:
//! `features.0.weight` (first conv), `features.1.running_mean` (its
//! BatchNorm in the BN variants), `classifier.1.weight`,
//! `classifier.5.weight`, `classifier.8.weight`.

use swalp_core::batchnorm::BatchNormMomentum;
use swalp_core::hook::SharedRng;
use swalp_core::lower::{LayerKind, QuantSequential};
use swalp_core::matmul::Layers;
use swalp_core::points::PointConfig;
use swalp_core::tch::{nn, Device, Tensor};

use super::init::{self, Conv};
use super::Model;

/// Layer widths; 0 is a 2×2 max-pool.
const VGG16: [i64; 18] = [
    64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0,
];
const VGG19: [i64; 21] = [
    64, 64, 0, 128, 128, 0, 256, 256, 256, 256, 0, 512, 512, 512, 512, 0, 512, 512, 512, 512, 0,
];

/// The seed's dropout probability.
pub const DROPOUT: f64 = 0.5;

/// The classifier's dropout: in training, each element is zeroed with
/// probability `p` and the others are scaled by `1 / (1 − p)`
/// (`nn.Dropout`); in evaluation, and whenever `p` is 0, the identity.
pub fn dropout(x: &Tensor, p: f64, train: bool) -> Tensor {
    x.dropout(p, train)
}

/// Which VGG.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Variant {
    /// 16 or 19 weight layers.
    pub depth: u32,
    /// BatchNorm after every conv.
    pub batchnorm: bool,
    /// Dropout probability before each hidden linear layer.
    pub dropout: f64,
}

/// Builds a VGG for `in_channels`-channel 32×32 images and `classes`.
pub fn build(
    variant: Variant,
    in_channels: i64,
    classes: i64,
    points: &PointConfig,
    rng: SharedRng,
    device: Device,
) -> Model {
    let vs = nn::VarStore::new(device);
    let root = vs.root();
    let momentum = BatchNormMomentum::default();
    let widths: &[i64] = if variant.depth == 19 { &VGG19 } else { &VGG16 };
    let layers = Layers::new(points.matmul(), rng.clone());
    let mut seq = QuantSequential::new();
    let mut channels = in_channels;
    // The index of the next module in the seed's `features` Sequential.
    let mut index = 0;
    for &width in widths {
        if width == 0 {
            seq = seq.add_fn(LayerKind::Pool, |x| x.max_pool2d_default(2));
            index += 1;
            continue;
        }
        let shape = Conv::same(channels, width, 3);
        let conv = init::seed_conv2d(&root / "features" / index, shape);
        seq = seq.add(
            LayerKind::Conv,
            layers.conv2d(conv, shape.stride, shape.padding),
        );
        index += 1;
        if variant.batchnorm {
            let bn = init::batch_norm(&root / "features" / index, width, &momentum);
            seq = seq.add(LayerKind::BatchNorm, bn);
            index += 1;
        }
        seq = seq.add_fn(LayerKind::Activation, |x| x.relu());
        index += 2; // the ReLU and the quantizer
        channels = width;
    }
    let classifier = &root / "classifier";
    let p = variant.dropout;
    let linear = |i: i64, (inputs, outputs): (i64, i64)| {
        layers.linear(init::linear(&classifier / i, inputs, outputs))
    };
    seq = seq
        .add_fn(LayerKind::Other, |x| x.flatten(1, -1))
        .add_fn_t(LayerKind::Dropout, move |x, train| dropout(x, p, train))
        .add(LayerKind::Linear, linear(1, (512, 512)))
        .add_fn(LayerKind::Activation, |x| x.relu())
        .add_fn_t(LayerKind::Dropout, move |x, train| dropout(x, p, train))
        .add(LayerKind::Linear, linear(5, (512, 512)))
        .add_fn(LayerKind::Activation, |x| x.relu())
        .add(LayerKind::Linear, linear(8, (512, classes)));
    let net = seq.lower(&[LayerKind::Activation], points.activation_pair(), rng);
    Model {
        vs,
        net,
        batchnorm: variant.batchnorm.then_some(momentum),
    }
}
