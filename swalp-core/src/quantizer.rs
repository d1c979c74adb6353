//! [`Quantizer`]: a format with a rounding mode, the unit applied at every
//! quantization point, and [`QuantPair`] for points that round a value on
//! the way forward and its gradient on the way back.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use tch::Tensor;

use crate::error::{Result, SpecError};
use crate::format::{Backend, NumberFormat};
use crate::rng::QuantRng;
use crate::rounding::Rounding;
use crate::spec::{invalid, parse_table};

/// A number format, a rounding mode, an optional scale and a backend.
///
/// Built from the one spec syntax used on the command line and in TOML files:
/// `{ format = "fixed", wl = 8, fl = 6, rounding = "stochastic" }`. Keys
/// besides the format's own: `rounding` (default `"nearest-even"`), `scale`
/// (a positive number `s`: the value is rounded as `Q(x·s)/s`, i.e. on a grid
/// scaled by `1/s`; default none) and `backend` (`"auto"`, `"native"`,
/// `"tensor"`; default `"auto"`).
///
/// ```no_run
/// # // The formats live in swalp-formats, which this doctest does not link.
/// use swalp_core::{Quantizer, QuantRng};
/// let q: Quantizer = r#"{ format = "fixed", wl = 8, fl = 6, rounding = "stochastic" }"#.parse()?;
/// let x = tch::Tensor::from_slice(&[0.1f32, -0.7, 3.0]);
/// let y = q.quantize(&x, &mut QuantRng::new(0))?;
/// # Ok::<(), swalp_core::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Quantizer {
    format: Box<dyn NumberFormat>,
    rounding: Rounding,
    scale: Option<f64>,
    backend: Backend,
}

impl Quantizer {
    /// A quantizer for `format` with `rounding`, no scale, automatic backend.
    pub fn new(format: Box<dyn NumberFormat>, rounding: Rounding) -> Self {
        Quantizer {
            format,
            rounding,
            scale: None,
            backend: Backend::Auto,
        }
    }

    /// Builds a quantizer from a spec table through the format registry.
    pub fn from_spec(spec: &toml::Table) -> Result<Self, SpecError> {
        let format = crate::registry::build_format(spec)?;
        let rounding = match spec.get("rounding") {
            None => Rounding::NearestEven,
            Some(v) => Rounding::from_toml(v)?,
        };
        let scale = match spec.get("scale") {
            None => None,
            Some(v) => Some(parse_scale(v)?),
        };
        let backend = match spec.get("backend") {
            None => Backend::Auto,
            Some(toml::Value::String(s)) => s.parse()?,
            Some(v) => return Err(invalid("backend", v, "\"auto\" | \"native\" | \"tensor\"")),
        };
        Ok(Quantizer {
            format,
            rounding,
            scale,
            backend,
        })
    }

    /// Returns this quantizer with another rounding mode.
    pub fn with_rounding(mut self, rounding: Rounding) -> Self {
        self.rounding = rounding;
        self
    }

    /// Returns this quantizer with a scale: values are rounded as `Q(x·s)/s`.
    pub fn with_scale(mut self, scale: f64) -> Self {
        self.scale = Some(scale);
        self
    }

    /// Returns this quantizer with a fixed backend.
    pub fn with_backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// The number format.
    pub fn format(&self) -> &dyn NumberFormat {
        self.format.as_ref()
    }

    /// The rounding mode.
    pub fn rounding(&self) -> Rounding {
        self.rounding
    }

    /// The scale, if any.
    pub fn scale(&self) -> Option<f64> {
        self.scale
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Rounds `x`; the result has `x`'s shape, dtype and device and is
    /// detached from autograd.
    pub fn quantize(&self, x: &Tensor, rng: &mut QuantRng) -> Result<Tensor> {
        let run = |t: &Tensor, rng: &mut QuantRng| {
            crate::kernel::quantize(self.format.as_ref(), t, self.rounding, rng, self.backend)
        };
        match self.scale {
            None => run(x, rng),
            Some(s) => Ok(run(&(x.detach() * s), rng)? / s),
        }
    }

    /// The full spec table; [`from_spec`](Self::from_spec) rebuilds an equal
    /// quantizer from it.
    pub fn spec(&self) -> toml::Table {
        let mut t = toml::Table::new();
        t.insert("format".into(), self.format.name().into());
        t.extend(self.format.params());
        t.insert("rounding".into(), self.rounding.to_toml());
        if let Some(s) = self.scale {
            t.insert("scale".into(), s.into());
        }
        if self.backend != Backend::Auto {
            t.insert("backend".into(), self.backend.to_string().into());
        }
        t
    }
}

fn parse_scale(v: &toml::Value) -> Result<f64, SpecError> {
    let s = match v {
        toml::Value::Float(f) => *f,
        toml::Value::Integer(i) => *i as f64,
        _ => f64::NAN,
    };
    if s.is_finite() && s > 0.0 {
        Ok(s)
    } else {
        Err(invalid("scale", v, "a positive finite number"))
    }
}

impl fmt::Display for Quantizer {
    /// Prints the spec as a TOML inline table.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", toml::Value::Table(self.spec()))
    }
}

impl FromStr for Quantizer {
    type Err = SpecError;

    /// Parses spec text such as `{ format = "float", exp = 5, man = 2 }`.
    fn from_str(s: &str) -> Result<Self, SpecError> {
        Quantizer::from_spec(&parse_table(s)?)
    }
}

impl Serialize for Quantizer {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.spec().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Quantizer {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let table = toml::Table::deserialize(d)?;
        Quantizer::from_spec(&table).map_err(serde::de::Error::custom)
    }
}

/// The quantizers of a point that sits in the autograd graph: `forward`
/// rounds the value (activation), `backward` rounds the gradient flowing back
/// through it (error). Either may be absent, meaning full precision.
///
/// ```
/// let pair = swalp_core::QuantPair::default();
/// assert!(pair.is_identity());
/// ```
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct QuantPair {
    /// Applied to the value in the forward pass.
    pub forward: Option<Quantizer>,
    /// Applied to the incoming gradient in the backward pass.
    pub backward: Option<Quantizer>,
}

impl QuantPair {
    /// A pair from its two halves.
    pub fn new(forward: Option<Quantizer>, backward: Option<Quantizer>) -> Self {
        QuantPair { forward, backward }
    }

    /// True when neither direction is quantized.
    pub fn is_identity(&self) -> bool {
        self.forward.is_none() && self.backward.is_none()
    }
}
