//! The six quantization points of low-precision training and their
//! configuration.

use std::fmt;
use std::str::FromStr;

use crate::error::{closest, SpecError};
use crate::quantizer::{QuantPair, Quantizer};

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
    pub const ALL: [QuantPoint; 6] = [
        QuantPoint::Weight,
        QuantPoint::Activation,
        QuantPoint::Gradient,
        QuantPoint::Error,
        QuantPoint::Momentum,
        QuantPoint::Accumulator,
    ];

    /// The spec key of this point.
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
/// an absent point is the default (or full precision without one).
///
/// ```
/// use swalp_core::points::{PointConfig, QuantPoint};
/// # use swalp_core::{FormatFactory, NumberFormat, Params, ParamInfo, SpecError};
/// let table: toml::Table = toml::from_str(r#"
///     default = { format = "fixed", wl = 8, fl = 6, rounding = "stochastic" }
///     accumulator = { wl = 16, fl = 12 }
///     activation = "none"
/// "#).unwrap();
/// # if swalp_core::registry::find("fixed").is_err() { return; }
/// let points = PointConfig::from_table(&table).unwrap();
/// assert!(points.get(QuantPoint::Activation).is_none());
/// ```
#[derive(Clone, Debug, Default)]
pub struct PointConfig {
    quantizers: [Option<Quantizer>; 6],
}

impl PointConfig {
    /// Full precision everywhere.
    pub fn full_precision() -> Self {
        Self::default()
    }

    /// The quantizer at `point`, if any.
    pub fn get(&self, point: QuantPoint) -> Option<&Quantizer> {
        self.quantizers[point as usize].as_ref()
    }

    /// Sets the quantizer at `point`.
    pub fn set(&mut self, point: QuantPoint, quantizer: Option<Quantizer>) {
        self.quantizers[point as usize] = quantizer;
    }

    /// Returns this configuration with `point` set.
    pub fn with(mut self, point: QuantPoint, quantizer: Option<Quantizer>) -> Self {
        self.set(point, quantizer);
        self
    }

    /// The activation (forward) and error (backward) quantizers as a pair.
    pub fn activation_pair(&self) -> QuantPair {
        QuantPair::new(
            self.get(QuantPoint::Activation).cloned(),
            self.get(QuantPoint::Error).cloned(),
        )
    }

    /// True when no point is quantized.
    pub fn is_full_precision(&self) -> bool {
        self.quantizers.iter().all(Option::is_none)
    }

    /// Builds the configuration from a table of specs (see the type docs).
    pub fn from_table(table: &toml::Table) -> Result<Self, SpecError> {
        let default = match table.get("default") {
            None => None,
            Some(toml::Value::Table(t)) => Some(t),
            Some(v) => return Err(crate::spec::invalid("default", v, "a spec table")),
        };
        for key in table.keys().filter(|k| *k != "default") {
            key.parse::<QuantPoint>().map_err(|e| match e {
                SpecError::UnknownKey {
                    key,
                    mut allowed,
                    suggestion,
                    ..
                } => {
                    allowed.push("default".into());
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
                    (Some(toml::Value::Table(t)), d) => {
                        let mut merged = d.cloned().unwrap_or_default();
                        merged.extend(t.clone());
                        Some(merged)
                    }
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
        Ok(config)
    }
}

/// Makes the key of a spec error a path under `prefix` (`weight.wl`).
fn prefix_key(error: SpecError, prefix: &str) -> SpecError {
    match error {
        SpecError::InvalidValue {
            key,
            value,
            allowed,
        } => SpecError::InvalidValue {
            key: format!("{prefix}.{key}"),
            value,
            allowed,
        },
        SpecError::UnknownKey {
            context,
            key,
            allowed,
            suggestion,
        } => SpecError::UnknownKey {
            context: format!("{prefix} ({context})"),
            key,
            allowed,
            suggestion,
        },
        SpecError::MissingKey {
            format,
            key,
            allowed,
        } => SpecError::MissingKey {
            format,
            key: format!("{prefix}.{key}"),
            allowed,
        },
        other => other,
    }
}
