//! The layers every model is built from, initialised as PyTorch and the
//! SWALP seed initialise them. This is the one place where models get their
//! starting weights.
//!
//! - [`linear`] and [`conv2d`]: PyTorch's `nn.Linear` / `nn.Conv2d`
//!   defaults, weights from `kaiming_uniform_(a = √5)` (bound
//!   `1/√fan_in`) and biases from U(±1/√fan_in). (tch's own defaults are
//!   Kaiming-uniform with the ReLU gain, √6 ≈ 2.45 times wider.)
//! - [`seed_conv2d`]: the seed's VGG and PreResNet convolutions, weights
//!   from N(0, 2/(k·k·out_channels)), biases zero.
//! - [`batch_norm`]: PyTorch's `nn.BatchNorm2d` (weight 1, bias 0, running
//!   mean 0, running variance 1, momentum 0.1, ε 1e-5).
//! - [`zeros_linear`]: an affine map starting at zero, for the convex
//!   models.
//!
//! Draws come from libtorch's generator, which the trainer seeds with
//! `experiment.seed` before building a model.

use swalp_core::batchnorm::{BatchNorm, BatchNormMomentum};
use swalp_core::tch::nn;

/// The bound of PyTorch's default weight initialisation,
/// `kaiming_uniform_(w, a = √5)`, computed as `torch.nn.init` computes it:
/// `√3 · gain / √fan_in` with `gain = √(2 / (1 + a²))`, which is
/// `1/√fan_in` to within rounding.
fn kaiming_uniform_bound(fan_in: i64) -> f64 {
    let a = 5f64.sqrt();
    let gain = (2.0 / (1.0 + a.powi(2))).sqrt();
    3f64.sqrt() * (gain / (fan_in as f64).sqrt())
}

/// PyTorch's default bias initialisation: U(±1/√fan_in).
fn default_bias(fan_in: i64) -> nn::Init {
    let bound = 1.0 / (fan_in as f64).sqrt();
    nn::Init::Uniform {
        lo: -bound,
        up: bound,
    }
}

/// `nn.Linear(inputs, outputs)` with PyTorch's initialisation.
pub fn linear(path: nn::Path, inputs: i64, outputs: i64) -> nn::Linear {
    let bound = kaiming_uniform_bound(inputs);
    let config = nn::LinearConfig {
        ws_init: nn::Init::Uniform {
            lo: -bound,
            up: bound,
        },
        bs_init: Some(default_bias(inputs)),
        bias: true,
    };
    nn::linear(path, inputs, outputs, config)
}

/// An affine map from `inputs` to `outputs` starting at zero (weights and
/// bias), inside every format's range.
pub fn zeros_linear(path: nn::Path, inputs: i64, outputs: i64) -> nn::Linear {
    let config = nn::LinearConfig {
        ws_init: nn::Init::Const(0.0),
        bs_init: Some(nn::Init::Const(0.0)),
        bias: true,
    };
    nn::linear(path, inputs, outputs, config)
}

/// Shape of a square convolution.
#[derive(Clone, Copy, Debug)]
pub struct Conv {
    /// Input channels.
    pub inputs: i64,
    /// Output channels.
    pub outputs: i64,
    /// Kernel side.
    pub kernel: i64,
    /// Stride.
    pub stride: i64,
    /// Zero padding on each side.
    pub padding: i64,
    /// Whether it adds a bias.
    pub bias: bool,
}

impl Conv {
    /// A `kernel`×`kernel` convolution, stride 1, padding `kernel / 2`
    /// (the output keeps the input's size), with a bias.
    pub fn same(inputs: i64, outputs: i64, kernel: i64) -> Self {
        Conv {
            inputs,
            outputs,
            kernel,
            stride: 1,
            padding: kernel / 2,
            bias: true,
        }
    }

    fn config(self, ws_init: nn::Init, bs_init: nn::Init) -> nn::ConvConfig {
        nn::ConvConfig {
            stride: self.stride,
            padding: self.padding,
            bias: self.bias,
            ws_init,
            bs_init,
            ..Default::default()
        }
    }

    fn fan_in(self) -> i64 {
        self.inputs * self.kernel * self.kernel
    }
}

/// `nn.Conv2d` with PyTorch's initialisation.
pub fn conv2d(path: nn::Path, conv: Conv) -> nn::Conv2D {
    let bound = kaiming_uniform_bound(conv.fan_in());
    let ws = nn::Init::Uniform {
        lo: -bound,
        up: bound,
    };
    let config = conv.config(ws, default_bias(conv.fan_in()));
    nn::conv2d(path, conv.inputs, conv.outputs, conv.kernel, config)
}

/// A convolution initialised as the seed's VGG and PreResNet do: weights
/// from N(0, 2/n) with `n = k·k·out_channels`, bias (if any) zero.
pub fn seed_conv2d(path: nn::Path, conv: Conv) -> nn::Conv2D {
    let n = conv.kernel * conv.kernel * conv.outputs;
    let ws = nn::Init::Randn {
        mean: 0.0,
        stdev: (2.0 / n as f64).sqrt(),
    };
    let config = conv.config(ws, nn::Init::Const(0.0));
    nn::conv2d(path, conv.inputs, conv.outputs, conv.kernel, config)
}

/// `nn.BatchNorm2d(channels)` as PyTorch starts it, its momentum taken from
/// `momentum`.
pub fn batch_norm(path: nn::Path, channels: i64, momentum: &BatchNormMomentum) -> BatchNorm {
    BatchNorm::new(path, channels, momentum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pytorch_bound_is_one_over_root_fan_in() {
        for fan_in in [1, 3, 64, 512, 4608] {
            let bound = kaiming_uniform_bound(fan_in);
            let expected = 1.0 / (fan_in as f64).sqrt();
            assert!((bound / expected - 1.0).abs() < 1e-15, "{fan_in}: {bound}");
        }
    }
}
