//! [`Quantizer`]: a format with a rounding mode, the unit applied at every
//! quantization point, and [`QuantPair`] for points that round a value on
//! the way forward and its gradient on the way back.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use tch::Tensor;

use crate::error::{Result, SpecError};
use crate::format::{Backend, NumberFormat};
use crate::rht::Rht;
use crate::rng::QuantRng;
use crate::rounding::Rounding;
use crate::spec::{invalid, parse_table};

/// A number format, a rounding mode, an optional scale, an optional random
/// Hadamard transform and a backend.
///
/// Built from the one spec syntax used on the command line and in TOML files:
/// `{ format = "fixed", wl = 8, fl = 6, rounding = "stochastic" }`. Keys
/// besides the format's own: `rounding` (default `"nearest-even"`), `scale`
/// (a positive number `s`: the value is rounded as `Q(x·s)/s`, i.e. on a grid
/// scaled by `1/s`; default none), `rht` (`16` or
/// `{ size = 16, dim = -1, seed = 0 }`: groups along `dim` are rotated by a
/// random Hadamard matrix `H` and the value is rounded as `Hᵀ·Q(H·x)`, see
/// [`rht`](crate::rht); default none) and `backend` (`"auto"`, `"native"`,
/// `"tensor"`; default `"auto"`).
///
/// ```
/// use swalp_core::{Quantizer, QuantRng};
/// # use swalp_formats as _;
/// let q: Quantizer = r#"{ format = "fixed", wl = 8, fl = 6, rounding = "stochastic" }"#.parse()?;
/// let x = swalp_core::tch::Tensor::from_slice(&[0.1f32, -0.7, 3.0]);
/// let y = q.quantize(&x, &mut QuantRng::new(0))?;
/// let y = Vec::<f32>::try_from(&y)?;
/// assert!(y.iter().all(|v| (v * 64.0).fract() == 0.0)); // multiples of 2^-6
/// assert_eq!(y[2], 127.0 / 64.0); // saturated
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Quantizer {
    format: Box<dyn NumberFormat>,
    rounding: Rounding,
    scale: Option<f64>,
    rht: Option<Rht>,
    backend: Backend,
}

impl Quantizer {
    /// A quantizer for `format` with `rounding`, no scale, automatic backend.
    ///
    /// ```
    /// use swalp_core::{Backend, Quantizer, Rounding};
    /// let fixed = swalp_formats::FixedPoint::new(8, 6, true, false)?;
    /// let q = Quantizer::new(Box::new(fixed), Rounding::NearestEven);
    /// assert_eq!((q.scale(), q.backend()), (None, Backend::Auto));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(format: Box<dyn NumberFormat>, rounding: Rounding) -> Self {
        Quantizer {
            format,
            rounding,
            scale: None,
            rht: None,
            backend: Backend::Auto,
        }
    }

    /// Builds a quantizer from a spec table through the format registry.
    ///
    /// ```
    /// use swalp_core::{spec::parse_table, Quantizer, Rounding, SpecError};
    /// # use swalp_formats as _;
    /// let q = Quantizer::from_spec(&parse_table(r#"format = "fixed", wl = 8, fl = 6"#)?)?;
    /// assert_eq!(q.rounding(), Rounding::NearestEven);
    /// let no_format = parse_table("wl = 8")?;
    /// assert_eq!(Quantizer::from_spec(&no_format).unwrap_err(), SpecError::MissingFormat);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
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
        let rht = match spec.get("rht") {
            None => None,
            Some(v) => Some(Rht::from_toml("rht", v)?),
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
            rht,
            backend,
        })
    }

    /// Returns this quantizer with another rounding mode.
    ///
    /// ```
    /// use swalp_core::{Quantizer, Rounding};
    /// # use swalp_formats as _;
    /// let q: Quantizer = r#"{ format = "fixed", wl = 8, fl = 6 }"#.parse()?;
    /// let q = q.with_rounding(Rounding::STOCHASTIC);
    /// assert_eq!(q.rounding(), Rounding::Stochastic { bits: 32 });
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_rounding(mut self, rounding: Rounding) -> Self {
        self.rounding = rounding;
        self
    }

    /// Returns this quantizer with a scale: values are rounded as `Q(x·s)/s`.
    ///
    /// ```
    /// use swalp_core::{tch::Tensor, QuantRng, Quantizer};
    /// # use swalp_formats as _;
    /// let q: Quantizer = r#"{ format = "fixed", wl = 8, fl = 6 }"#.parse()?;
    /// let q = q.with_scale(4.0); // a grid of 2^-8 instead of 2^-6
    /// let y = q.quantize(&Tensor::from_slice(&[0.3f32]), &mut QuantRng::new(0))?;
    /// assert_eq!(Vec::<f32>::try_from(&y)?, [77.0 / 256.0]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_scale(mut self, scale: f64) -> Self {
        self.scale = Some(scale);
        self
    }

    /// Returns this quantizer with a random Hadamard transform: groups along
    /// `rht.dim()` are rotated before rounding and rotated back after (see
    /// [`rht`](crate::rht)).
    ///
    /// ```
    /// use swalp_core::{rht::Rht, tch::Tensor, QuantRng, Quantizer};
    /// # use swalp_formats as _;
    /// let q: Quantizer = r#"{ format = "fixed", wl = 8, fl = 6 }"#.parse()?;
    /// let q = q.with_rht(Rht::new(16, -1, 0)?);
    /// assert_eq!(q.spec()["rht"].as_integer(), Some(16));
    /// let err = q.quantize(&Tensor::from_slice(&[0.3f32; 20]), &mut QuantRng::new(0)).unwrap_err();
    /// assert!(err.to_string().contains("a tensor of shape [20] has 20"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_rht(mut self, rht: Rht) -> Self {
        self.rht = Some(rht);
        self
    }

    /// Returns this quantizer with a fixed backend.
    ///
    /// ```
    /// use swalp_core::{Backend, Quantizer};
    /// # use swalp_formats as _;
    /// let q: Quantizer = r#"{ format = "fixed", wl = 8, fl = 6 }"#.parse()?;
    /// let q = q.with_backend(Backend::Tensor);
    /// assert_eq!(q.spec()["backend"].as_str(), Some("tensor"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// The number format.
    ///
    /// ```
    /// use swalp_core::Quantizer;
    /// # use swalp_formats as _;
    /// let q: Quantizer = r#"{ format = "fixed", wl = 8, fl = 6 }"#.parse()?;
    /// assert_eq!((q.format().name(), q.format().bits_per_value()), ("fixed", 8.0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn format(&self) -> &dyn NumberFormat {
        self.format.as_ref()
    }

    /// The rounding mode.
    ///
    /// ```
    /// use swalp_core::{Quantizer, Rounding};
    /// # use swalp_formats as _;
    /// let q: Quantizer = r#"{ format = "fixed", wl = 8, fl = 6, rounding = "toward-zero" }"#.parse()?;
    /// assert_eq!(q.rounding(), Rounding::TowardZero);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn rounding(&self) -> Rounding {
        self.rounding
    }

    /// The scale, if any.
    ///
    /// ```
    /// use swalp_core::Quantizer;
    /// # use swalp_formats as _;
    /// let q: Quantizer = r#"{ format = "fixed", wl = 8, fl = 6, scale = 128 }"#.parse()?;
    /// assert_eq!(q.scale(), Some(128.0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn scale(&self) -> Option<f64> {
        self.scale
    }

    /// The random Hadamard transform, if any.
    ///
    /// ```
    /// use swalp_core::Quantizer;
    /// # use swalp_formats as _;
    /// let q: Quantizer = r#"{ format = "fixed", wl = 8, fl = 6, rht = { size = 16, dim = 1 } }"#.parse()?;
    /// let rht = q.rht().unwrap();
    /// assert_eq!((rht.size(), rht.dim(), rht.seed()), (16, 1, 0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn rht(&self) -> Option<&Rht> {
        self.rht.as_ref()
    }

    /// The backend.
    ///
    /// ```
    /// use swalp_core::{Backend, Quantizer};
    /// # use swalp_formats as _;
    /// let q: Quantizer = r#"{ format = "fixed", wl = 8, fl = 6, backend = "native" }"#.parse()?;
    /// assert_eq!(q.backend(), Backend::Native);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Rounds `x`; the result has `x`'s shape, dtype and device and is
    /// detached from autograd.
    ///
    /// With [`rht`](Self::rht), `x` is rotated in `f64`, cast to its own
    /// dtype (the rotated operand lives in the working precision, as on
    /// hardware), rounded (with the scale, if any), rotated back in `f64` and
    /// cast to its dtype again; a stochastic rounding draws from one stream
    /// of `rng`, as without. A tensor the format
    /// [`keeps`](NumberFormat::keeps) in full precision is not rotated.
    ///
    /// ```
    /// use swalp_core::{tch::{Kind, Tensor}, QuantRng, Quantizer};
    /// # use swalp_formats as _;
    /// let q: Quantizer = r#"{ format = "fixed", wl = 8, fl = 6 }"#.parse()?;
    /// let x = Tensor::from_slice(&[0.3f64, 5.0]).set_requires_grad(true);
    /// let y = q.quantize(&x, &mut QuantRng::new(0))?;
    /// assert_eq!((y.kind(), y.requires_grad()), (Kind::Double, false));
    /// assert_eq!(Vec::<f64>::try_from(&y)?, [0.296875, 127.0 / 64.0]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn quantize(&self, x: &Tensor, rng: &mut QuantRng) -> Result<Tensor> {
        match &self.rht {
            Some(rht) if !self.format.keeps(&shape_of(x)) => self.quantize_rotated(x, rht, rng),
            _ => self.quantize_scaled(x, rng),
        }
    }

    /// Rounds `x` onto the format, with the scale if any.
    fn quantize_scaled(&self, x: &Tensor, rng: &mut QuantRng) -> Result<Tensor> {
        let run = |t: &Tensor, rng: &mut QuantRng| {
            crate::format::dispatch::quantize(
                self.format.as_ref(),
                t,
                self.rounding,
                rng,
                self.backend,
            )
        };
        match self.scale {
            None => run(x, rng),
            Some(s) => Ok(run(&(x.detach() * s), rng)? / s),
        }
    }

    /// Rounds `x` in the basis `rht` rotates it to, and rotates it back.
    fn quantize_rotated(&self, x: &Tensor, rht: &Rht, rng: &mut QuantRng) -> Result<Tensor> {
        let fail = |e: crate::rht::RhtError| e.into_error(self.format.name(), self.backend);
        let kind = x.kind();
        // Cast before rounding: hardware rotates into the working precision,
        // and the native kernels take f32 (the format sees what it would
        // see without RHT, in the other basis).
        let rotated = rht.forward(x).map_err(fail)?.f_to_kind(kind)?;
        let rounded = self.quantize_scaled(&rotated, rng)?;
        Ok(rht.inverse(&rounded).map_err(fail)?.f_to_kind(kind)?)
    }

    /// Rounds `x` into `out` (same shape): `out` ends up equal to
    /// `out.copy_(quantize(x))`, drawing the same random numbers, but the
    /// native kernel writes straight into a contiguous `f32` CPU `out` (see
    /// [`dispatch::quantize_into`](crate::format::dispatch::quantize_into));
    /// with a scale or an RHT it is that copy.
    ///
    /// ```
    /// use swalp_core::{tch::Tensor, QuantRng, Quantizer};
    /// # use swalp_formats as _;
    /// let q: Quantizer = r#"{ format = "fixed", wl = 8, fl = 6 }"#.parse()?;
    /// let mut out = Tensor::from_slice(&[0.0f32; 2]);
    /// q.quantize_into(&Tensor::from_slice(&[0.3f32, -3.0]), &mut out, &mut QuantRng::new(0))?;
    /// assert_eq!(Vec::<f32>::try_from(&out)?, [0.296875, -2.0]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn quantize_into(&self, x: &Tensor, out: &mut Tensor, rng: &mut QuantRng) -> Result<()> {
        match (self.scale, &self.rht) {
            (None, None) => crate::format::dispatch::quantize_into(
                self.format.as_ref(),
                x,
                out,
                self.rounding,
                rng,
                self.backend,
            ),
            _ => {
                let y = self.quantize(x, rng)?;
                out.f_copy_(&y)?;
                Ok(())
            }
        }
    }

    /// The full spec table; [`from_spec`](Self::from_spec) rebuilds an equal
    /// quantizer from it.
    ///
    /// ```
    /// use swalp_core::Quantizer;
    /// # use swalp_formats as _;
    /// let q: Quantizer = r#"{ format = "fixed", wl = 8, fl = 6, scale = 2.0 }"#.parse()?;
    /// let spec = q.spec();
    /// assert_eq!(spec["rounding"].as_str(), Some("nearest-even"));
    /// assert_eq!(Quantizer::from_spec(&spec)?.to_string(), q.to_string());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn spec(&self) -> toml::Table {
        let mut t = toml::Table::new();
        t.insert("format".into(), self.format.name().into());
        t.extend(self.format.params());
        t.insert("rounding".into(), self.rounding.to_toml());
        if let Some(s) = self.scale {
            t.insert("scale".into(), s.into());
        }
        if let Some(rht) = &self.rht {
            t.insert("rht".into(), rht.to_toml());
        }
        if self.backend != Backend::Auto {
            t.insert("backend".into(), self.backend.to_string().into());
        }
        t
    }
}

/// The shape of `x` as the format sees it.
fn shape_of(x: &Tensor) -> Vec<usize> {
    x.size().iter().map(|&d| d as usize).collect()
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
    ///
    /// ```
    /// use swalp_core::{QuantPair, Quantizer};
    /// # use swalp_formats as _;
    /// let q: Quantizer = r#"{ format = "fixed", wl = 8, fl = 6 }"#.parse()?;
    /// let pair = QuantPair::new(Some(q), None);
    /// assert!(pair.forward.is_some() && !pair.is_identity());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(forward: Option<Quantizer>, backward: Option<Quantizer>) -> Self {
        QuantPair { forward, backward }
    }

    /// True when neither direction is quantized.
    ///
    /// ```
    /// assert!(swalp_core::QuantPair::new(None, None).is_identity());
    /// ```
    pub fn is_identity(&self) -> bool {
        self.forward.is_none() && self.backward.is_none()
    }
}
