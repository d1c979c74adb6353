//! Pre-activation ResNets for 32×32 inputs, as the SWALP seed's
//! `preresnet_low` builds them: in every block a quantization point after
//! each ReLU (before the conv it feeds) and after each conv; the shortcut's
//! 1×1 conv is not quantized; one point after the stem conv; the final
//! BN–ReLU–8×8 average pool–linear head is not quantized. Depth `6n+2`
//! uses basic blocks (PreResNet20: n = 3), depth `9n+2` from 44 on
//! bottleneck blocks with expansion 4 (PreResNet164: n = 18), in three
//! stages of 16, 32 and 64 planes. Convs have no bias and weights from
//! N(0, 2/(k²·out_channels)); BatchNorm and the linear head start as
//! PyTorch's.
//!
//! Variables carry the names of the seed's `state_dict`: `conv1.weight`,
//! `layer1.0.bn1.weight`, `layer2.0.downsample.0.weight`, `bn.running_var`,
//! `fc.bias`.

use swalp_core::batchnorm::{BatchNorm, BatchNormMomentum};
use swalp_core::hook::{QuantAct, SharedRng};
use swalp_core::matmul::{self, Layers};
use swalp_core::points::PointConfig;
use swalp_core::tch::{nn, nn::Module, nn::ModuleT, Device, Tensor};

use super::init::{self, Conv};
use super::Model;

/// A bias-free convolution keeping the input's size at stride 1,
/// initialised as the seed's, computed with `layers`' arithmetic.
fn conv(
    layers: &Layers,
    path: nn::Path,
    (inputs, outputs): (i64, i64),
    kernel: i64,
    stride: i64,
) -> matmul::Conv2d {
    let shape = Conv {
        inputs,
        outputs,
        kernel,
        stride,
        padding: kernel / 2,
        bias: false,
    };
    layers.conv2d(init::seed_conv2d(path, shape), stride, shape.padding)
}

/// One pre-activation block: `(bn, conv)` pairs applied in sequence, and
/// an optional shortcut conv.
#[derive(Debug)]
struct Block {
    layers: Vec<(BatchNorm, matmul::Conv2d)>,
    shortcut: Option<matmul::Conv2d>,
    q: Option<QuantAct>,
}

impl Block {
    fn quantize(&self, x: Tensor) -> Tensor {
        match &self.q {
            Some(q) => q.forward(&x),
            None => x,
        }
    }
}

impl ModuleT for Block {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut out = x.shallow_clone();
        for (bn, conv) in &self.layers {
            let activated = self.quantize(bn.forward_t(&out, train).relu());
            out = self.quantize(conv.forward(&activated));
        }
        let residual = match &self.shortcut {
            Some(conv) => conv.forward(x),
            None => x.shallow_clone(),
        };
        out + residual
    }
}

#[derive(Debug)]
struct PreResNet {
    stem: matmul::Conv2d,
    blocks: Vec<Block>,
    head_bn: BatchNorm,
    fc: matmul::Linear,
    q: Option<QuantAct>,
}

impl ModuleT for PreResNet {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut out = self.stem.forward(x);
        if let Some(q) = &self.q {
            out = q.forward(&out);
        }
        for block in &self.blocks {
            out = block.forward_t(&out, train);
        }
        let out = self.head_bn.forward_t(&out, train).relu();
        // The seed's nn.AvgPool2d(8): the 8×8 map of a 32×32 input. (Not
        // tch's `avg_pool2d_default`, which sets a divisor override of 1
        // and so sums the window.)
        let out = out
            .avg_pool2d([8, 8], [8, 8], [0, 0], false, true, None::<i64>)
            .flatten(1, -1);
        self.fc.forward(&out)
    }
}

/// Builds PreResNet-`depth` (20, 164, or any `6n+2` / `9n+2 >= 44`).
pub fn build(
    depth: i64,
    in_channels: i64,
    classes: i64,
    points: &PointConfig,
    rng: SharedRng,
    device: Device,
) -> Model {
    let vs = nn::VarStore::new(device);
    let root = vs.root();
    let momentum = BatchNormMomentum::default();
    let bn = |path: nn::Path, c| init::batch_norm(path, c, &momentum);
    let pair = points.activation_pair();
    let layers = Layers::new(points.matmul(), rng.clone());
    let q = (!pair.is_identity()).then(|| QuantAct::new(pair, rng));
    let bottleneck = depth >= 44;
    let (per_stage, expansion) = if bottleneck {
        ((depth - 2) / 9, 4)
    } else {
        ((depth - 2) / 6, 1)
    };
    let conv = |path, shape, kernel, stride| conv(&layers, path, shape, kernel, stride);
    let stem = conv(&root / "conv1", (in_channels, 16), 3, 1);
    let mut blocks = Vec::new();
    let mut inplanes = 16;
    for (stage, planes) in [16i64, 32, 64].into_iter().enumerate() {
        for b in 0..per_stage {
            let stride = if stage > 0 && b == 0 { 2 } else { 1 };
            let p = &root / format!("layer{}", stage + 1) / b;
            let layers = if bottleneck {
                vec![
                    (
                        bn(&p / "bn1", inplanes),
                        conv(&p / "conv1", (inplanes, planes), 1, 1),
                    ),
                    (
                        bn(&p / "bn2", planes),
                        conv(&p / "conv2", (planes, planes), 3, stride),
                    ),
                    (
                        bn(&p / "bn3", planes),
                        conv(&p / "conv3", (planes, planes * expansion), 1, 1),
                    ),
                ]
            } else {
                vec![
                    (
                        bn(&p / "bn1", inplanes),
                        conv(&p / "conv1", (inplanes, planes), 3, stride),
                    ),
                    (
                        bn(&p / "bn2", planes),
                        conv(&p / "conv2", (planes, planes), 3, 1),
                    ),
                ]
            };
            let out = planes * expansion;
            let shortcut = (stride != 1 || inplanes != out)
                .then(|| conv(&p / "downsample" / 0, (inplanes, out), 1, stride));
            blocks.push(Block {
                layers,
                shortcut,
                q: q.clone(),
            });
            inplanes = out;
        }
    }
    let head_bn = bn(&root / "bn", inplanes);
    let fc = layers.linear(init::linear(&root / "fc", inplanes, classes));
    let net = nn::seq_t().add(PreResNet {
        stem,
        blocks,
        head_bn,
        fc,
        q,
    });
    Model {
        vs,
        net,
        batchnorm: Some(momentum),
    }
}
