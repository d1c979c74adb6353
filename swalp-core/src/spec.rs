//! Reading format parameters out of a spec table, with errors that name the
//! key, the bad value and what is allowed.

use std::ops::RangeInclusive;
use std::str::FromStr;

use crate::backend::Backend;
use crate::error::{closest, SpecError};

/// One parameter a format accepts, as listed by `swalp-cli formats`.
///
/// ```
/// use swalp_core::ParamInfo;
/// const WL: ParamInfo = ParamInfo::required("wl", "integer", "1..=24", "word length in bits");
/// assert_eq!(WL.default, None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParamInfo {
    /// Key in the spec table.
    pub name: &'static str,
    /// TOML type: `integer`, `boolean`, `string`, `table`, ...
    pub kind: &'static str,
    /// Default as TOML text, if the key has a fixed one.
    pub default: Option<&'static str>,
    /// Whether the spec must give the key.
    pub required: bool,
    /// The values allowed, for humans (`1..=24`, `"ieee" | "none"`).
    pub allowed: &'static str,
    /// One line on what it means.
    pub help: &'static str,
}

impl ParamInfo {
    /// A parameter the spec must give.
    ///
    /// ```
    /// use swalp_core::ParamInfo;
    /// let wl = ParamInfo::required("wl", "integer", "2..=24", "word length in bits");
    /// assert!(wl.required && wl.default.is_none());
    /// ```
    pub const fn required(
        name: &'static str,
        kind: &'static str,
        allowed: &'static str,
        help: &'static str,
    ) -> Self {
        ParamInfo {
            name,
            kind,
            default: None,
            required: true,
            allowed,
            help,
        }
    }

    /// An optional parameter whose absence means something the help text
    /// describes (no fixed default value).
    ///
    /// ```
    /// use swalp_core::ParamInfo;
    /// let scale = ParamInfo::optional_without_default("scale", "float", "> 0", "absent: no scaling");
    /// assert!(!scale.required && scale.default.is_none());
    /// ```
    pub const fn optional_without_default(
        name: &'static str,
        kind: &'static str,
        allowed: &'static str,
        help: &'static str,
    ) -> Self {
        ParamInfo {
            name,
            kind,
            default: None,
            required: false,
            allowed,
            help,
        }
    }

    /// A parameter with a default (TOML text such as `8` or `"ieee"`).
    ///
    /// ```
    /// use swalp_core::ParamInfo;
    /// let clamp = ParamInfo::optional("clamp", "boolean", "true", "true | false", "saturate");
    /// assert_eq!((clamp.required, clamp.default), (false, Some("true")));
    /// ```
    pub const fn optional(
        name: &'static str,
        kind: &'static str,
        default: &'static str,
        allowed: &'static str,
        help: &'static str,
    ) -> Self {
        ParamInfo {
            name,
            kind,
            default: Some(default),
            required: false,
            allowed,
            help,
        }
    }
}

/// The parameters of one format spec, handed to a format's factory.
///
/// Typed getters check type and range and record which keys were read;
/// [`finish`](Self::finish) then rejects any key no getter asked for,
/// suggesting the closest declared one.
///
/// ```
/// use swalp_core::{ParamInfo, Params};
/// const PARAMS: &[ParamInfo] = &[ParamInfo::required("wl", "integer", "1..=24", "word length")];
/// let table: toml::Table = toml::from_str("wl = 8").unwrap();
/// let mut p = Params::new("fixed", &table, PARAMS);
/// assert_eq!(p.int("wl", 1..=24).unwrap(), 8);
/// p.finish().unwrap();
///
/// let table: toml::Table = toml::from_str("wl = 8\nwll = 3").unwrap();
/// let mut p = Params::new("fixed", &table, PARAMS);
/// p.int("wl", 1..=24).unwrap();
/// assert!(p.finish().unwrap_err().to_string().contains("did you mean `wl`"));
/// ```
#[derive(Debug)]
pub struct Params<'a> {
    format: &'a str,
    table: &'a toml::Table,
    declared: &'a [ParamInfo],
    read: Vec<&'a str>,
}

/// Spec keys every quantizer accepts besides the format's own.
///
/// ```
/// use swalp_core::spec::QUANTIZER_KEYS;
/// assert!(QUANTIZER_KEYS.contains(&"rounding"));
/// ```
pub const QUANTIZER_KEYS: [&str; 4] = ["format", "rounding", "scale", "backend"];

/// The keys every quantizer accepts besides `format` and the format's own,
/// as listed by `swalp-cli formats`.
///
/// ```
/// use swalp_core::spec::{QUANTIZER_KEYS, QUANTIZER_PARAMS};
/// let names: Vec<&str> = QUANTIZER_PARAMS.iter().map(|p| p.name).collect();
/// assert_eq!(names, QUANTIZER_KEYS[1..]);
/// ```
pub const QUANTIZER_PARAMS: [ParamInfo; 3] = [
    ParamInfo::optional(
        "rounding",
        "string or table",
        "\"nearest-even\"",
        "\"nearest-even\" | \"nearest-away\" | \"nearest-up\" | \"toward-zero\" | \"down\" | \"up\" | \"stochastic\" | { stochastic_bits = 1..=32 }",
        "how a value between two representable neighbours is rounded; stochastic_bits limits the random bits per value",
    ),
    ParamInfo::optional_without_default(
        "scale",
        "float",
        "a positive finite number",
        "round x as Q(x*scale)/scale, on a grid scaled by 1/scale (absent: no scaling)",
    ),
    ParamInfo::optional(
        "backend",
        "string",
        "\"auto\"",
        "\"auto\" | \"native\" | \"tensor\"",
        "kernel: native (Rust, f32 on CPU), tensor (libtorch ops, any device), auto (native when it applies)",
    ),
];

impl<'a> Params<'a> {
    /// Wraps `table` (the spec without `format`, `rounding`, `scale` and
    /// `backend`) for the format named `format` declaring `declared`.
    ///
    /// ```
    /// use swalp_core::Params;
    /// let table: toml::Table = toml::from_str("wl = 8")?;
    /// let mut p = Params::new("fixed", &table, &[]);
    /// assert_eq!(p.int("wl", 1..=24)?, 8);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(format: &'a str, table: &'a toml::Table, declared: &'a [ParamInfo]) -> Self {
        Params {
            format,
            table,
            declared,
            read: Vec::new(),
        }
    }

    /// Name of the format being built.
    ///
    /// ```
    /// let table = toml::Table::new();
    /// assert_eq!(swalp_core::Params::new("fixed", &table, &[]).format(), "fixed");
    /// ```
    pub fn format(&self) -> &str {
        self.format
    }

    /// The raw value of `key`, if present, for parameters with a structured
    /// syntax; marks the key as read.
    ///
    /// ```
    /// use swalp_core::Params;
    /// let table: toml::Table = toml::from_str("block = { dim = 0 }")?;
    /// let mut p = Params::new("bfp", &table, &[]);
    /// let block = p.raw("block").and_then(|v| v.as_table()).unwrap();
    /// assert_eq!(block["dim"].as_integer(), Some(0));
    /// p.finish()?; // `block` was read
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn raw(&mut self, key: &'a str) -> Option<&'a toml::Value> {
        self.read.push(key);
        self.table.get(key)
    }

    /// A required integer in `range`.
    ///
    /// ```
    /// use swalp_core::{Params, SpecError};
    /// let table: toml::Table = toml::from_str("wl = 30")?;
    /// let mut p = Params::new("fixed", &table, &[]);
    /// assert!(p.int("wl", 1..=24).is_err()); // out of range
    /// assert!(matches!(p.int("fl", 0..=24), Err(SpecError::MissingKey { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn int(&mut self, key: &'a str, range: RangeInclusive<i64>) -> Result<i64, SpecError> {
        match self.raw(key) {
            None => Err(SpecError::MissingKey {
                format: self.format.into(),
                key: key.into(),
                allowed: format!("an integer in {}..={}", range.start(), range.end()),
            }),
            Some(v) => int_in(key, v, range),
        }
    }

    /// An optional integer in `range`.
    ///
    /// ```
    /// let table = toml::Table::new();
    /// let mut p = swalp_core::Params::new("bfp", &table, &[]);
    /// assert_eq!(p.int_or("wl", 8, 2..=24)?, 8);
    /// # Ok::<(), swalp_core::SpecError>(())
    /// ```
    pub fn int_or(
        &mut self,
        key: &'a str,
        default: i64,
        range: RangeInclusive<i64>,
    ) -> Result<i64, SpecError> {
        match self.raw(key) {
            None => Ok(default),
            Some(v) => int_in(key, v, range),
        }
    }

    /// An optional boolean.
    ///
    /// ```
    /// use swalp_core::Params;
    /// let table: toml::Table = toml::from_str("clamp = 1")?;
    /// let mut p = Params::new("fixed", &table, &[]);
    /// assert!(p.bool_or("clamp", true).is_err()); // 1 is not a boolean
    /// assert!(!p.bool_or("symmetric", false)?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn bool_or(&mut self, key: &'a str, default: bool) -> Result<bool, SpecError> {
        match self.raw(key) {
            None => Ok(default),
            Some(toml::Value::Boolean(b)) => Ok(*b),
            Some(v) => Err(invalid(key, v, "true or false")),
        }
    }

    /// An optional string that must be one of `allowed`.
    ///
    /// ```
    /// use swalp_core::Params;
    /// let table: toml::Table = toml::from_str(r#"specials = "none""#)?;
    /// let mut p = Params::new("float", &table, &[]);
    /// assert_eq!(p.choice_or("specials", "ieee", &["ieee", "none"])?, "none");
    /// assert_eq!(p.choice_or("overflow", "saturate", &["saturate", "nan"])?, "saturate");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn choice_or(
        &mut self,
        key: &'a str,
        default: &'static str,
        allowed: &[&'static str],
    ) -> Result<&'static str, SpecError> {
        let describe = || {
            allowed
                .iter()
                .map(|a| format!("{a:?}"))
                .collect::<Vec<_>>()
                .join(" | ")
        };
        match self.raw(key) {
            None => Ok(default),
            Some(toml::Value::String(s)) => allowed
                .iter()
                .find(|a| **a == s.as_str())
                .copied()
                .ok_or_else(|| invalid(key, &toml::Value::String(s.clone()), &describe())),
            Some(v) => Err(invalid(key, v, &describe())),
        }
    }

    /// Rejects keys that the format does not declare; called before the
    /// factory runs, so a misspelt key is reported rather than the required
    /// key it was meant to be.
    ///
    /// ```
    /// use swalp_core::{ParamInfo, Params};
    /// const DECLARED: &[ParamInfo] = &[ParamInfo::required("wl", "integer", "1..=24", "word length")];
    /// let table: toml::Table = toml::from_str("wll = 8")?;
    /// let err = Params::new("fixed", &table, DECLARED).check_declared().unwrap_err();
    /// assert!(err.to_string().contains("did you mean `wl`"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn check_declared(&self) -> Result<(), SpecError> {
        self.reject(|k| self.declared.iter().any(|p| p.name == k))
    }

    /// Rejects keys that no getter read.
    ///
    /// ```
    /// use swalp_core::Params;
    /// let table: toml::Table = toml::from_str("wl = 8\nfl = 6")?;
    /// let mut p = Params::new("fixed", &table, &[]);
    /// p.int("wl", 1..=24)?;
    /// assert!(p.finish().is_err()); // no getter read `fl`
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn finish(self) -> Result<(), SpecError> {
        self.reject(|k| self.read.contains(&k))
    }

    fn reject(&self, known: impl Fn(&str) -> bool) -> Result<(), SpecError> {
        match self.table.keys().find(|k| !known(k.as_str())) {
            None => Ok(()),
            Some(key) => {
                let mut allowed: Vec<String> =
                    self.declared.iter().map(|p| p.name.to_string()).collect();
                allowed.extend(QUANTIZER_KEYS.iter().map(|k| k.to_string()));
                Err(SpecError::UnknownKey {
                    context: format!("format {:?}", self.format),
                    key: key.clone(),
                    suggestion: closest(key, allowed.iter().map(String::as_str)),
                    allowed,
                })
            }
        }
    }
}

/// An [`SpecError::InvalidValue`] for `key`.
///
/// ```
/// let err = swalp_core::spec::invalid("wl", &toml::Value::Integer(99), "an integer in 2..=24");
/// assert_eq!(err.to_string(), "invalid value 99 for `wl`: expected an integer in 2..=24");
/// ```
pub fn invalid(key: &str, value: &toml::Value, allowed: &str) -> SpecError {
    SpecError::InvalidValue {
        key: key.into(),
        value: value.to_string(),
        allowed: allowed.into(),
    }
}

/// Checks that `value` is an integer in `range`.
///
/// ```
/// use swalp_core::spec::int_in;
/// assert_eq!(int_in("wl", &toml::Value::Integer(8), 2..=24), Ok(8));
/// assert!(int_in("wl", &toml::Value::Integer(30), 2..=24).is_err());
/// ```
pub fn int_in(
    key: &str,
    value: &toml::Value,
    range: RangeInclusive<i64>,
) -> Result<i64, SpecError> {
    match value.as_integer() {
        Some(i) if range.contains(&i) => Ok(i),
        _ => Err(invalid(
            key,
            value,
            &format!("an integer in {}..={}", range.start(), range.end()),
        )),
    }
}

/// Parses spec text: a TOML inline table `{ format = "fixed", wl = 8 }`; the
/// braces may be omitted.
///
/// ```
/// let t = swalp_core::spec::parse_table(r#"{ format = "fixed", wl = 8, fl = 6 }"#).unwrap();
/// assert_eq!(t["wl"].as_integer(), Some(8));
/// assert!(swalp_core::spec::parse_table("{ format = fixed }").is_err());
/// ```
pub fn parse_table(text: &str) -> Result<toml::Table, SpecError> {
    let trimmed = text.trim();
    let inline = if trimmed.starts_with('{') {
        trimmed.to_string()
    } else {
        format!("{{ {trimmed} }}")
    };
    let mut doc: toml::Table =
        toml::from_str(&format!("spec = {inline}")).map_err(|e| SpecError::Syntax {
            text: text.into(),
            message: e.message().to_string(),
        })?;
    match doc.remove("spec") {
        Some(toml::Value::Table(t)) => Ok(t),
        _ => Err(SpecError::Syntax {
            text: text.into(),
            message: "expected a table".into(),
        }),
    }
}

/// A backend from its spec name (`"auto"`, `"native"`, `"tensor"`).
impl FromStr for Backend {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, SpecError> {
        match s {
            "auto" => Ok(Backend::Auto),
            "native" => Ok(Backend::Native),
            "tensor" => Ok(Backend::Tensor),
            other => Err(SpecError::InvalidValue {
                key: "backend".into(),
                value: format!("{other:?}"),
                allowed: "\"auto\" | \"native\" | \"tensor\"".into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantizer_params_list_every_rounding_mode_and_backend() {
        let rounding = QUANTIZER_PARAMS[0].allowed;
        for mode in crate::Rounding::NAMES {
            assert!(rounding.contains(&format!("{mode:?}")), "{mode}");
        }
        for backend in crate::Backend::NAMES {
            assert!(QUANTIZER_PARAMS[2]
                .allowed
                .contains(&format!("{backend:?}")));
        }
        let names: Vec<&str> = QUANTIZER_PARAMS.iter().map(|p| p.name).collect();
        assert_eq!(names, QUANTIZER_KEYS[1..]);
    }
}
