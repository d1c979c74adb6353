//! The six quantization points of low-precision training and their
//! configuration.

use std::fmt;
use std::str::FromStr;

use crate::error::{closest, SpecError};
use crate::matmul::LayerArithmetic;
use crate::quantizer::{QuantPair, Quantizer};
use crate::spec::{prefix_key, QUANTIZER_KEYS};

/// Where a quantizer is applied.
///
/// ```
/// use swalp_core::points::QuantPoint;
/// assert_eq!("error".parse::<QuantPoint>().unwrap(), QuantPoint::Error);
/// assert_eq!(QuantPoint::ALL.len(), 6);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QuantPoint {
    /// The weights the forward pass uses.
    Weight,
    /// Layer outputs, at each quantization module in the forward pass.
    Activation,
    /// Parameter gradients, before the optimizer uses them.
    Gradient,
    /// The gradient flowing back through each quantization module.
    Error,
    /// Optimizer state buffers (momentum, Adam moments).
    Momentum,
    /// The full-width weight copy the optimizer updates.
    Accumulator,
}

impl QuantPoint {
    /// Every point, in spec order.
    ///
    /// ```
    /// use swalp_core::points::QuantPoint;
    /// assert_eq!(QuantPoint::ALL[0], QuantPoint::Weight);
    /// assert_eq!(QuantPoint::ALL[5], QuantPoint::Accumulator);
    /// ```
    pub const ALL: [QuantPoint; 6] = [
        QuantPoint::Weight,
        QuantPoint::Activation,
        QuantPoint::Gradient,
        QuantPoint::Error,
        QuantPoint::Momentum,
        QuantPoint::Accumulator,
    ];

    /// The spec key of this point.
    ///
    /// ```
    /// use swalp_core::points::QuantPoint;
    /// assert_eq!(QuantPoint::Momentum.name(), "momentum");
    /// assert_eq!(QuantPoint::Momentum.to_string(), "momentum");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            QuantPoint::Weight => "weight",
            QuantPoint::Activation => "activation",
            QuantPoint::Gradient => "gradient",
            QuantPoint::Error => "error",
            QuantPoint::Momentum => "momentum",
            QuantPoint::Accumulator => "accumulator",
        }
    }
}

impl fmt::Display for QuantPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for QuantPoint {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, SpecError> {
        QuantPoint::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| SpecError::UnknownKey {
                context: "quantization points".into(),
                key: s.into(),
                allowed: QuantPoint::ALL
                    .iter()
                    .map(|p| p.name().to_string())
                    .collect(),
                suggestion: closest(s, QuantPoint::ALL.iter().map(|p| p.name())),
            })
    }
}

/// A quantizer (or full precision) for each point.
///
/// Built from a table with one spec per point plus an optional `default`
/// that every point inherits: a point given as a table is the default
/// overridden by its own keys; a point given as `"none"` is full precision;
/// an absent point is the default (or full precision without one). A point
/// that names a different `format` inherits only the default's `rounding`,
/// `scale`, `rht` and `backend`, never parameters of the default's format.
///
/// ```
/// use swalp_core::points::{PointConfig, QuantPoint};
/// # use swalp_formats as _;
/// let table: toml::Table = toml::from_str(r#"
///     default = { format = "fixed", wl = 8, fl = 6, rounding = "stochastic" }
///     accumulator = { wl = 16, fl = 12 }
///     activation = "none"
/// "#).unwrap();
/// let points = PointConfig::from_table(&table).unwrap();
/// assert!(points.get(QuantPoint::Activation).is_none());
/// let accumulator = points.get(QuantPoint::Accumulator).unwrap().spec();
/// assert_eq!(accumulator["wl"].as_integer(), Some(16));
/// assert_eq!(accumulator["rounding"].as_str(), Some("stochastic"));
///
/// // Another format: the rounding carries over, `small_block` does not.
/// let table: toml::Table = toml::from_str(r#"
///     default = { format = "bfp", wl = 8, small_block = "fc", rounding = "stochastic" }
///     accumulator = { format = "fixed", wl = 16, fl = 12 }
/// "#).unwrap();
/// let accumulator = PointConfig::from_table(&table).unwrap().get(QuantPoint::Accumulator).unwrap().spec();
/// assert_eq!(accumulator["format"].as_str(), Some("fixed"));
/// assert_eq!(accumulator["rounding"].as_str(), Some("stochastic"));
/// assert!(accumulator.get("small_block").is_none());
/// ```
#[derive(Clone, Debug, Default)]
pub struct PointConfig {
    quantizers: [Option<Quantizer>; 6],
    matmul: LayerArithmetic,
    communication: Option<Quantizer>,
}

impl PointConfig {
    /// Full precision everywhere.
    ///
    /// ```
    /// use swalp_core::points::PointConfig;
    /// assert!(PointConfig::full_precision().is_full_precision());
    /// ```
    pub fn full_precision() -> Self {
        Self::default()
    }

    /// The quantizer at `point`, if any.
    ///
    /// ```
    /// use swalp_core::{points::{PointConfig, QuantPoint}, Quantizer};
    /// # use swalp_formats as _;
    /// let q: Quantizer = r#"{ format = "fixed", wl = 8, fl = 6 }"#.parse()?;
    /// let points = PointConfig::full_precision().with(QuantPoint::Weight, Some(q));
    /// assert_eq!(points.get(QuantPoint::Weight).unwrap().format().name(), "fixed");
    /// assert!(points.get(QuantPoint::Gradient).is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get(&self, point: QuantPoint) -> Option<&Quantizer> {
        self.quantizers[point as usize].as_ref()
    }

    /// Sets the quantizer at `point`.
    ///
    /// ```
    /// use swalp_core::{points::{PointConfig, QuantPoint}, Quantizer};
    /// # use swalp_formats as _;
    /// let q: Quantizer = r#"{ format = "fixed", wl = 8, fl = 6 }"#.parse()?;
    /// let mut points = PointConfig::full_precision();
    /// points.set(QuantPoint::Gradient, Some(q));
    /// assert!(!points.is_full_precision());
    /// points.set(QuantPoint::Gradient, None);
    /// assert!(points.is_full_precision());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set(&mut self, point: QuantPoint, quantizer: Option<Quantizer>) {
        self.quantizers[point as usize] = quantizer;
    }

    /// Returns this configuration with `point` set.
    ///
    /// ```
    /// use swalp_core::{points::{PointConfig, QuantPoint}, Quantizer};
    /// # use swalp_formats as _;
    /// let q: Quantizer = r#"{ format = "fixed", wl = 8, fl = 6 }"#.parse()?;
    /// let points = PointConfig::full_precision().with(QuantPoint::Error, Some(q));
    /// assert!(points.get(QuantPoint::Error).is_some());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with(mut self, point: QuantPoint, quantizer: Option<Quantizer>) -> Self {
        self.set(point, quantizer);
        self
    }

    /// The activation (forward) and error (backward) quantizers as a pair.
    ///
    /// ```
    /// use swalp_core::{points::{PointConfig, QuantPoint}, Quantizer};
    /// # use swalp_formats as _;
    /// let q: Quantizer = r#"{ format = "fixed", wl = 8, fl = 6 }"#.parse()?;
    /// let pair = PointConfig::full_precision().with(QuantPoint::Error, Some(q)).activation_pair();
    /// assert!(pair.forward.is_none() && pair.backward.is_some());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn activation_pair(&self) -> QuantPair {
        QuantPair::new(
            self.get(QuantPoint::Activation).cloned(),
            self.get(QuantPoint::Error).cloned(),
        )
    }

    /// How linear and convolution layers multiply and accumulate (the
    /// `matmul` table, see [`LayerArithmetic`]); exact without one.
    ///
    /// ```
    /// use swalp_core::points::PointConfig;
    /// # use swalp_formats as _;
    /// let table: toml::Table = toml::from_str(r#"matmul = { accumulator = { format = "fp16" }, chunk = 64 }"#)?;
    /// let points = PointConfig::from_table(&table)?;
    /// assert_eq!(points.matmul().forward.as_ref().unwrap().chunk(), Some(64));
    /// assert!(PointConfig::full_precision().matmul().is_exact());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn matmul(&self) -> &LayerArithmetic {
        &self.matmul
    }

    /// Returns this configuration with `arithmetic` for layers' products.
    pub fn with_matmul(mut self, arithmetic: LayerArithmetic) -> Self {
        self.matmul = arithmetic;
        self
    }

    /// The format gradients travel in between the ranks of a data-parallel
    /// run (the `communication` key): each rank's contribution is rounded
    /// to it before the all-reduce and the sum after it. It never inherits
    /// `default`, which describes the arithmetic of one device; absent, the
    /// gradients travel in f32.
    ///
    /// ```
    /// use swalp_core::points::PointConfig;
    /// # use swalp_formats as _;
    /// let table: toml::Table = toml::from_str(r#"
    ///     default = { format = "fixed", wl = 8, fl = 6 }
    ///     communication = { format = "bfp", wl = 8, block = { size = 32, dim = 0 } }
    /// "#)?;
    /// let points = PointConfig::from_table(&table)?;
    /// assert_eq!(points.communication().unwrap().format().name(), "bfp");
    /// let table: toml::Table = toml::from_str(r#"default = { format = "fixed", wl = 8, fl = 6 }"#)?;
    /// assert!(PointConfig::from_table(&table)?.communication().is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn communication(&self) -> Option<&Quantizer> {
        self.communication.as_ref()
    }

    /// Returns this configuration with `quantizer` for communication.
    pub fn with_communication(mut self, quantizer: Option<Quantizer>) -> Self {
        self.communication = quantizer;
        self
    }

    /// True when no point is quantized and layers compute exactly.
    ///
    /// ```
    /// use swalp_core::points::{PointConfig, QuantPoint};
    /// assert!(PointConfig::full_precision().with(QuantPoint::Weight, None).is_full_precision());
    /// ```
    pub fn is_full_precision(&self) -> bool {
        self.quantizers.iter().all(Option::is_none)
            && self.matmul.is_exact()
            && self.communication.is_none()
    }

    /// Builds the configuration from a table of specs (see the type docs).
    ///
    /// ```
    /// use swalp_core::points::PointConfig;
    /// assert!(PointConfig::from_table(&toml::Table::new())?.is_full_precision());
    /// let table: toml::Table = toml::from_str(r#"wieght = "none""#)?;
    /// let err = PointConfig::from_table(&table).unwrap_err();
    /// assert!(err.to_string().contains("did you mean `weight`"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_table(table: &toml::Table) -> Result<Self, SpecError> {
        let default = match table.get("default") {
            None => None,
            Some(toml::Value::Table(t)) => Some(t),
            Some(v) => return Err(crate::spec::invalid("default", v, "a spec table")),
        };
        const OWN_KEYS: [&str; 3] = ["default", "matmul", "communication"];
        for key in table.keys().filter(|k| !OWN_KEYS.contains(&k.as_str())) {
            key.parse::<QuantPoint>().map_err(|e| match e {
                SpecError::UnknownKey {
                    key,
                    mut allowed,
                    suggestion,
                    ..
                } => {
                    allowed.extend(OWN_KEYS.iter().map(|k| k.to_string()));
                    SpecError::UnknownKey {
                        context: "quant".into(),
                        key,
                        allowed,
                        suggestion,
                    }
                }
                other => other,
            })?;
        }
        let mut config = PointConfig::default();
        for point in QuantPoint::ALL {
            let spec =
                match (table.get(point.name()), default) {
                    (None, None) => None,
                    (None, Some(d)) => Some(d.clone()),
                    (Some(toml::Value::String(s)), _) if s == "none" => None,
                    (Some(toml::Value::Table(t)), d) => Some(inherit(d, t)),
                    (Some(v), _) => return Err(crate::spec::invalid(
                        point.name(),
                        v,
                        "a spec table such as { format = \"fixed\", wl = 8, fl = 6 } or \"none\"",
                    )),
                };
            let quantizer = spec
                .map(|s| Quantizer::from_spec(&s).map_err(|e| prefix_key(e, point.name())))
                .transpose()?;
            config.set(point, quantizer);
        }
        config.communication = match table.get("communication") {
            None => None,
            Some(toml::Value::String(s)) if s == "none" => None,
            Some(toml::Value::Table(t)) => Some(
                Quantizer::from_spec(t).map_err(|e| prefix_key(e, "communication"))?,
            ),
            Some(v) => {
                return Err(crate::spec::invalid(
                    "communication",
                    v,
                    "a spec table such as { format = \"bfp\", wl = 8, block = { size = 32, dim = 0 } } or \"none\"",
                ))
            }
        };
        config.matmul = match table.get("matmul") {
            None => LayerArithmetic::default(),
            Some(toml::Value::Table(t)) => LayerArithmetic::from_table(t)?,
            Some(v) => {
                return Err(crate::spec::invalid(
                    "matmul",
                    v,
                    "a table such as { accumulator = { format = \"fp16\" }, chunk = 64 }",
                ))
            }
        };
        Ok(config)
    }
}

/// A point's spec: the default overridden by the point's own keys. A point
/// that names another format than the default's keeps only the default's
/// format-independent keys (`rounding`, `scale`, `rht`, `backend`): the default's
/// format parameters belong to the default's format.
fn inherit(default: Option<&toml::Table>, own: &toml::Table) -> toml::Table {
    let mut merged = default.cloned().unwrap_or_default();
    if own
        .get("format")
        .is_some_and(|f| Some(f) != merged.get("format"))
    {
        merged.retain(|key, _| QUANTIZER_KEYS[1..].contains(&key));
    }
    merged.extend(own.clone());
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        toml::from_str(text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn another_format_inherits_only_format_independent_keys() {
        let default: toml::Table = table(
            r#"format = "bfp"
               wl = 8
               small_block = "fc"
               rounding = "stochastic"
               scale = 4.0
               rht = { size = 16, seed = 3 }
               backend = "tensor""#,
        );
        let own = table(r#"format = "fixed""#);
        let spec = inherit(Some(&default), &own);
        let mut keys: Vec<&str> = spec.keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(keys, ["backend", "format", "rht", "rounding", "scale"]);
        assert_eq!(spec["format"].as_str(), Some("fixed"));
        assert_eq!(spec["scale"].as_float(), Some(4.0));
        assert_eq!(spec["rht"], default["rht"]);
    }

    #[test]
    fn the_same_format_inherits_everything() {
        let default = table(
            r#"format = "bfp"
                               wl = 8
                               small_block = "fc""#,
        );
        let spec = inherit(
            Some(&default),
            &table(
                r#"format = "bfp"
                                                      wl = 6"#,
            ),
        );
        assert_eq!(spec["wl"].as_integer(), Some(6));
        assert_eq!(spec["small_block"].as_str(), Some("fc"));
        // Without `format` the point is the default's format, overridden.
        let spec = inherit(Some(&default), &table("wl = 4"));
        assert_eq!(spec["format"].as_str(), Some("bfp"));
        assert_eq!(spec["small_block"].as_str(), Some("fc"));
    }
}
