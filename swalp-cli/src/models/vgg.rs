//! VGG for 32×32 inputs, as the SWALP seed's `vgg_low` builds it: a
//! quantization point after every conv+ReLU (or conv+BN+ReLU) and after
//! each of the two hidden linear+ReLU, dropout before each hidden linear,
//! none after the last linear; the input image is not quantized. Convs are
//! 3×3 with padding 1 and weights drawn from N(0, 2/(9·out_channels)),
//! biases zero; linear layers keep PyTorch's default initialisation.

use swalp_core::hook::SharedRng;
use swalp_core::lower::{LayerKind, QuantSequential};
use swalp_core::points::PointConfig;
use swalp_core::tch::{nn, Device};

use super::Model;

/// Layer widths; 0 is a 2×2 max-pool.
const VGG16: [i64; 18] = [
    64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0,
];
const VGG19: [i64; 21] = [
    64, 64, 0, 128, 128, 0, 256, 256, 256, 256, 0, 512, 512, 512, 512, 0, 512, 512, 512, 512, 0,
];

/// Which VGG.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Variant {
    /// 16 or 19 weight layers.
    pub depth: u32,
    /// BatchNorm after every conv.
    pub batchnorm: bool,
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
    let widths: &[i64] = if variant.depth == 19 { &VGG19 } else { &VGG16 };
    let mut seq = QuantSequential::new();
    let mut channels = in_channels;
    for (i, &width) in widths.iter().enumerate() {
        if width == 0 {
            seq = seq.add_fn(LayerKind::Pool, |x| x.max_pool2d_default(2));
            continue;
        }
        let config = nn::ConvConfig {
            padding: 1,
            ws_init: nn::Init::Randn {
                mean: 0.0,
                stdev: (2.0 / (9.0 * width as f64)).sqrt(),
            },
            bs_init: nn::Init::Const(0.0),
            ..Default::default()
        };
        seq = seq.add(
            LayerKind::Conv,
            nn::conv2d(&root / "features" / i, channels, width, 3, config),
        );
        if variant.batchnorm {
            let bn = nn::batch_norm2d(
                &root / "features" / format!("{i}_bn"),
                width,
                Default::default(),
            );
            seq = seq.add(LayerKind::BatchNorm, bn);
        }
        seq = seq.add_fn(LayerKind::Activation, |x| x.relu());
        channels = width;
    }
    let classifier = &root / "classifier";
    seq = seq
        .add_fn(LayerKind::Other, |x| x.flatten(1, -1))
        .add_fn_t(LayerKind::Dropout, |x, train| x.dropout(0.5, train))
        .add(
            LayerKind::Linear,
            nn::linear(&classifier / "fc1", 512, 512, Default::default()),
        )
        .add_fn(LayerKind::Activation, |x| x.relu())
        .add_fn_t(LayerKind::Dropout, |x, train| x.dropout(0.5, train))
        .add(
            LayerKind::Linear,
            nn::linear(&classifier / "fc2", 512, 512, Default::default()),
        )
        .add_fn(LayerKind::Activation, |x| x.relu())
        .add(
            LayerKind::Linear,
            nn::linear(&classifier / "fc3", 512, classes, Default::default()),
        );
    let net = seq.lower(&[LayerKind::Activation], points.activation_pair(), rng);
    Model {
        vs,
        net,
        has_batchnorm: variant.batchnorm,
    }
}
