//! Linear and convolution layers whose matrix products follow a
//! [`LayerArithmetic`], through one autograd node ([`super::node`]).

use std::sync::Arc;

use tch::{nn, Tensor};

use super::node::{self, MatmulHook};
use super::LayerArithmetic;
use crate::error::{Error, Result};
use crate::hook::SharedRng;

/// A model's [`LayerArithmetic`] bound to the generator its stochastic
/// roundings draw from: what wraps the model's linear and convolution
/// layers as they are built. With exact arithmetic (no `[quant.matmul]`)
/// the layers are tch's, unchanged.
///
/// ```
/// use swalp_core::{hook::shared_rng, matmul::{Layers, LayerArithmetic}};
/// use swalp_core::tch::{nn, nn::Module, Device, Kind, Tensor};
/// # use swalp_formats as _;
/// let table: toml::Table = toml::from_str(r#"accumulator = { format = "fp16" }"#)?;
/// let layers = Layers::new(&LayerArithmetic::from_table(&table)?, shared_rng(0));
/// let vs = nn::VarStore::new(Device::Cpu);
/// let fc = layers.linear(nn::linear(vs.root() / "fc", 4096, 1, Default::default()));
/// let (mut w, mut b) = (fc.inner().ws.shallow_clone(), fc.inner().bs.as_ref().unwrap().shallow_clone());
/// tch::no_grad(|| { let _ = w.fill_(1.0 / 2048.0); let _ = b.zero_(); });
/// let y = fc.forward(&Tensor::ones([1, 4096], (Kind::Float, Device::Cpu)));
/// assert_eq!(y.double_value(&[0, 0]), 1.0); // swamped: f32 would give 2
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Layers {
    hook: Option<Arc<MatmulHook>>,
}

impl Layers {
    /// Layers computing with `arithmetic`, drawing from `rng`.
    pub fn new(arithmetic: &LayerArithmetic, rng: SharedRng) -> Self {
        let hook = (!arithmetic.is_exact()).then(|| {
            Arc::new(MatmulHook {
                arithmetic: arithmetic.clone(),
                rng,
            })
        });
        Layers { hook }
    }

    /// Layers with libtorch's arithmetic.
    ///
    /// ```
    /// let layers = swalp_core::matmul::Layers::exact();
    /// assert!(layers.arithmetic().is_none());
    /// ```
    pub fn exact() -> Self {
        Layers { hook: None }
    }

    /// The arithmetic, unless exact.
    pub fn arithmetic(&self) -> Option<&LayerArithmetic> {
        self.hook.as_ref().map(|h| &h.arithmetic)
    }

    /// `layer` computing `x · Wᵀ + b` with this arithmetic.
    pub fn linear(&self, layer: nn::Linear) -> Linear {
        Linear {
            inner: layer,
            hook: self.hook.clone(),
        }
    }

    /// `layer`, a convolution with `stride` and zero `padding` on each side
    /// (no dilation, one group: tch's `Conv2D` does not say its own),
    /// computed as a matrix product of the unfolded input with this
    /// arithmetic.
    pub fn conv2d(&self, layer: nn::Conv2D, stride: i64, padding: i64) -> Conv2d {
        Conv2d {
            inner: layer,
            stride,
            padding,
            hook: self.hook.clone(),
        }
    }
}

/// `x · Wᵀ + b` through a [`Layers`]' arithmetic; `x` may have any number
/// of leading dimensions. The bias is added in `f32` after the product.
#[derive(Debug)]
pub struct Linear {
    inner: nn::Linear,
    hook: Option<Arc<MatmulHook>>,
}

impl Linear {
    /// tch's layer, holding the variables.
    pub fn inner(&self) -> &nn::Linear {
        &self.inner
    }

    /// The layer's output, reporting errors of the arithmetic.
    pub fn f_forward(&self, x: &Tensor) -> Result<Tensor> {
        let Some(hook) = &self.hook else {
            return Ok(nn::Module::forward(&self.inner, x));
        };
        let size = x.size();
        let inputs = *size.last().unwrap_or(&0);
        let rows = x.f_reshape([-1, inputs])?;
        let y = node::apply(hook, &rows, &self.inner.ws.f_tr()?)?;
        let mut shape = size;
        if let Some(last) = shape.last_mut() {
            *last = y.size()[1];
        }
        let y = y.f_reshape(&shape)?;
        Ok(match &self.inner.bs {
            Some(b) => y.f_add(b)?,
            None => y,
        })
    }
}

impl nn::Module for Linear {
    /// The layer's output; panics on an error of the arithmetic, as tch
    /// modules do (use [`Linear::f_forward`] to handle it).
    fn forward(&self, xs: &Tensor) -> Tensor {
        self.f_forward(xs).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// A 2-D convolution through a [`Layers`]' arithmetic: the input unfolded
/// into its `k×k` patches (`im2col`), one matrix product with the
/// flattened weights (`K = C·k·k` in the forward and weight-gradient
/// products, `K = out_channels` in the input gradient's, whose overlapping
/// patches `col2im` then adds in `f32`), the bias added in `f32`.
#[derive(Debug)]
pub struct Conv2d {
    inner: nn::Conv2D,
    stride: i64,
    padding: i64,
    hook: Option<Arc<MatmulHook>>,
}

impl Conv2d {
    /// tch's layer, holding the variables.
    pub fn inner(&self) -> &nn::Conv2D {
        &self.inner
    }

    /// The layer's output, reporting errors of the arithmetic.
    pub fn f_forward(&self, x: &Tensor) -> Result<Tensor> {
        let Some(hook) = &self.hook else {
            return Ok(nn::Module::forward(&self.inner, x));
        };
        let w = &self.inner.ws;
        let (ws, xs) = (w.size(), x.size());
        if ws.len() != 4 || xs.len() != 4 || ws[1] != xs[1] {
            return Err(Error::Matmul(format!(
                "a convolution with weights {ws:?} cannot take an input of shape {xs:?}"
            )));
        }
        let (out_channels, k) = (ws[0], ws[2]);
        let side = |n: i64| (n + 2 * self.padding - k) / self.stride + 1;
        let (h, wd) = (side(xs[2]), side(xs[3]));
        // [N, C·k·k, L] -> [N·L, C·k·k]
        let cols = x.f_im2col([k, k], [1, 1], [self.padding; 2], [self.stride; 2])?;
        let patches = cols.f_transpose(1, 2)?.f_reshape([-1, ws[1] * k * k])?;
        let weights = w.f_reshape([out_channels, -1])?.f_tr()?;
        let y = node::apply(hook, &patches, &weights)?
            .f_reshape([xs[0], h * wd, out_channels])?
            .f_transpose(1, 2)?
            .f_reshape([xs[0], out_channels, h, wd])?;
        Ok(match &self.inner.bs {
            Some(b) => y.f_add(&b.f_reshape([1, out_channels, 1, 1])?)?,
            None => y,
        })
    }
}

impl nn::Module for Conv2d {
    /// The layer's output; panics on an error of the arithmetic, as tch
    /// modules do (use [`Conv2d::f_forward`] to handle it).
    fn forward(&self, xs: &Tensor) -> Tensor {
        self.f_forward(xs).unwrap_or_else(|e| panic!("{e}"))
    }
}
