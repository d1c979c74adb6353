//! Reading format parameters out of a spec table, with errors that name the
//! key, the bad value and what is allowed.

use std::ops::RangeInclusive;
use std::str::FromStr;

use crate::backend::Backend;
use crate::error::{closest, SpecError};

/// What a format parameter accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Allowed {
    /// An integer in `min..=max`.
    Int {
        /// The smallest value.
        min: i64,
        /// The largest value.
        max: i64,
    },
    /// `true` or `false`.
    Bool,
    /// One of these strings.
    Choice(&'static [&'static str]),
    /// A value with its own syntax, which the format parses from
    /// [`Params::raw`] (a block, a dimension or `"tensor"`, ...).
    Other {
        /// TOML type, for humans (`string or table`).
        kind: &'static str,
        /// The syntax, for humans.
        syntax: &'static str,
    },
}

/// A parameter's default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamDefault {
    /// The spec must give the key.
    Required,
    /// Absent means this value.
    Value(DefaultValue),
    /// Absent means something the help text describes (no fixed value).
    Computed,
}

/// A fixed default value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultValue {
    /// An integer.
    Int(i64),
    /// A boolean.
    Bool(bool),
    /// A string.
    Str(&'static str),
}

impl DefaultValue {
    fn to_toml(self) -> toml::Value {
        match self {
            DefaultValue::Int(i) => i.into(),
            DefaultValue::Bool(b) => b.into(),
            DefaultValue::Str(s) => s.into(),
        }
    }
}

/// One parameter a format accepts: its key, the values allowed, its default
/// and what it means, declared once. Parsing ([`Params::int`] and the other
/// getters read the range and default from it), a format's `params()`
/// ([`put`](Self::put)), its constructor's checks ([`check`](Self::check))
/// and `swalp-cli formats` all derive from this declaration.
///
/// ```
/// use swalp_core::{ParamInfo, Params};
/// const WL: ParamInfo = ParamInfo::int("wl", 2, 24, "word length in bits");
/// const EBIT: ParamInfo = ParamInfo::int("ebit", 1, 8, "exponent bits").default_int(8);
/// assert_eq!(WL.allowed_text(), "2..=24");
/// assert_eq!(EBIT.default_text().as_deref(), Some("8"));
///
/// let table: toml::Table = toml::from_str("wl = 8")?;
/// let mut p = Params::new("bfp", &table, &[WL, EBIT]);
/// assert_eq!((p.int(&WL)?, p.int(&EBIT)?), (8, 8));
/// p.finish()?;
///
/// let mut spec = toml::Table::new();
/// WL.put(&mut spec, 8);
/// assert_eq!(spec["wl"].as_integer(), Some(8));
/// assert!(WL.check(&toml::Value::Integer(30)).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParamInfo {
    /// Key in the spec table.
    pub name: &'static str,
    /// The values allowed.
    pub allowed: Allowed,
    /// The default.
    pub default: ParamDefault,
    /// One line on what it means.
    pub help: &'static str,
}

impl ParamInfo {
    /// A required integer in `min..=max`.
    pub const fn int(name: &'static str, min: i64, max: i64, help: &'static str) -> Self {
        ParamInfo {
            name,
            allowed: Allowed::Int { min, max },
            default: ParamDefault::Required,
            help,
        }
    }

    /// A boolean, `default` when absent.
    ///
    /// ```
    /// use swalp_core::ParamInfo;
    /// const CLAMP: ParamInfo = ParamInfo::boolean("clamp", true, "saturate");
    /// assert_eq!(CLAMP.default_text().as_deref(), Some("true"));
    /// ```
    pub const fn boolean(name: &'static str, default: bool, help: &'static str) -> Self {
        ParamInfo {
            name,
            allowed: Allowed::Bool,
            default: ParamDefault::Value(DefaultValue::Bool(default)),
            help,
        }
    }

    /// A required string, one of `choices`.
    ///
    /// ```
    /// use swalp_core::ParamInfo;
    /// const SPECIALS: ParamInfo =
    ///     ParamInfo::choice("specials", &["ieee", "none"], "top exponent").default_str("ieee");
    /// assert_eq!(SPECIALS.allowed_text(), "\"ieee\" | \"none\"");
    /// ```
    pub const fn choice(
        name: &'static str,
        choices: &'static [&'static str],
        help: &'static str,
    ) -> Self {
        ParamInfo {
            name,
            allowed: Allowed::Choice(choices),
            default: ParamDefault::Required,
            help,
        }
    }

    /// A required value with its own syntax (read with [`Params::raw`]).
    pub const fn other(
        name: &'static str,
        kind: &'static str,
        syntax: &'static str,
        help: &'static str,
    ) -> Self {
        ParamInfo {
            name,
            allowed: Allowed::Other { kind, syntax },
            default: ParamDefault::Required,
            help,
        }
    }

    /// This parameter with the integer default `value`.
    pub const fn default_int(self, value: i64) -> Self {
        self.with_default(ParamDefault::Value(DefaultValue::Int(value)))
    }

    /// This parameter with the string default `value`.
    pub const fn default_str(self, value: &'static str) -> Self {
        self.with_default(ParamDefault::Value(DefaultValue::Str(value)))
    }

    /// This parameter optional, its absence meaning what the help text says.
    pub const fn computed_default(self) -> Self {
        self.with_default(ParamDefault::Computed)
    }

    const fn with_default(self, default: ParamDefault) -> Self {
        ParamInfo {
            name: self.name,
            allowed: self.allowed,
            default,
            help: self.help,
        }
    }

    /// Whether a spec must give the key.
    pub fn required(&self) -> bool {
        self.default == ParamDefault::Required
    }

    /// TOML type, for humans: `integer`, `boolean`, `string`, ...
    pub fn kind(&self) -> &'static str {
        match self.allowed {
            Allowed::Int { .. } => "integer",
            Allowed::Bool => "boolean",
            Allowed::Choice(_) => "string",
            Allowed::Other { kind, .. } => kind,
        }
    }

    /// The values allowed, for humans (`2..=24`, `"ieee" | "none"`).
    pub fn allowed_text(&self) -> String {
        match self.allowed {
            Allowed::Int { min, max } => format!("{min}..={max}"),
            Allowed::Bool => "true | false".into(),
            Allowed::Choice(choices) => choices
                .iter()
                .map(|c| format!("{c:?}"))
                .collect::<Vec<_>>()
                .join(" | "),
            Allowed::Other { syntax, .. } => syntax.into(),
        }
    }

    /// The default as TOML text, when it is a fixed value.
    pub fn default_text(&self) -> Option<String> {
        match self.default {
            ParamDefault::Value(v) => Some(v.to_toml().to_string()),
            ParamDefault::Required | ParamDefault::Computed => None,
        }
    }

    /// Checks `value` against [`allowed`](Self::allowed) (a value with its
    /// own syntax is the format's to check).
    pub fn check(&self, value: &toml::Value) -> Result<(), SpecError> {
        let ok = match (self.allowed, value) {
            (Allowed::Int { min, max }, toml::Value::Integer(i)) => (min..=max).contains(i),
            (Allowed::Bool, toml::Value::Boolean(_)) => true,
            (Allowed::Choice(choices), toml::Value::String(s)) => choices.contains(&s.as_str()),
            (Allowed::Other { .. }, _) => true,
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(invalid(self.name, value, &self.expected()))
        }
    }

    /// What an error says is expected.
    fn expected(&self) -> String {
        match self.allowed {
            Allowed::Int { .. } => format!("an integer in {}", self.allowed_text()),
            Allowed::Bool => "true or false".into(),
            _ => self.allowed_text(),
        }
    }

    /// Writes `value` under this parameter's key into `spec`: what a
    /// format's `params()` returns, so a spec rebuilt from it gives the
    /// same format.
    pub fn put(&self, spec: &mut toml::Table, value: impl Into<toml::Value>) {
        let value = value.into();
        debug_assert!(self.check(&value).is_ok(), "{}: {value}", self.name);
        spec.insert(self.name.into(), value);
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
/// const WL: ParamInfo = ParamInfo::int("wl", 1, 24, "word length");
/// let table: toml::Table = toml::from_str("wl = 8").unwrap();
/// let mut p = Params::new("fixed", &table, &[WL]);
/// assert_eq!(p.int(&WL).unwrap(), 8);
/// p.finish().unwrap();
///
/// let table: toml::Table = toml::from_str("wl = 8\nwll = 3").unwrap();
/// let mut p = Params::new("fixed", &table, &[WL]);
/// p.int(&WL).unwrap();
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
pub const QUANTIZER_KEYS: [&str; 5] = ["format", "rounding", "scale", "rht", "backend"];

/// Fails naming the first key of the nested table `table` (the value of
/// the spec key `key`) that is not one of `allowed`, with the closest
/// allowed key as a suggestion.
///
/// ```
/// use swalp_core::spec::reject_unknown_keys;
/// let t: toml::Table = toml::from_str("dimm = 1")?;
/// let err = reject_unknown_keys("block", &t, &["dim", "size"]).unwrap_err();
/// assert!(err.to_string().contains("did you mean `dim`"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn reject_unknown_keys(
    key: &str,
    table: &toml::Table,
    allowed: &[&str],
) -> Result<(), SpecError> {
    match table.keys().find(|k| !allowed.contains(&k.as_str())) {
        None => Ok(()),
        Some(extra) => Err(SpecError::UnknownKey {
            context: format!("`{key}`"),
            key: extra.clone(),
            allowed: allowed.iter().map(|k| k.to_string()).collect(),
            suggestion: closest(extra, allowed.iter().copied()),
        }),
    }
}

/// The spec syntax of `rht` (see [`Rht`](crate::rht::Rht)), for error
/// messages and `formats`; declared here with the other quantizer keys, so
/// that this module does not depend on the transform's.
pub const RHT_SYNTAX: &str = "16 | { size = 16, dim = -1, seed = 0 }";

/// The keys every quantizer accepts besides `format` and the format's own,
/// as listed by `swalp-cli formats`.
///
/// ```
/// use swalp_core::spec::{QUANTIZER_KEYS, QUANTIZER_PARAMS};
/// let names: Vec<&str> = QUANTIZER_PARAMS.iter().map(|p| p.name).collect();
/// assert_eq!(names, QUANTIZER_KEYS[1..]);
/// ```
pub const QUANTIZER_PARAMS: [ParamInfo; 4] = [
    ParamInfo::other(
        "rounding",
        "string or table",
        "\"nearest-even\" | \"nearest-away\" | \"nearest-up\" | \"toward-zero\" | \"down\" | \"up\" | \"stochastic\" | { stochastic_bits = 1..=32 }",
        "how a value between two representable neighbours is rounded; stochastic_bits limits the random bits per value",
    )
    .default_str("nearest-even"),
    ParamInfo::other(
        "scale",
        "float",
        "a positive finite number",
        "round x as Q(x*scale)/scale, on a grid scaled by 1/scale (absent: no scaling)",
    )
    .computed_default(),
    ParamInfo::other(
        "rht",
        "integer or table",
        RHT_SYNTAX,
        "random Hadamard transform: groups of size along dim rotated by a seeded random-sign \
         Hadamard matrix before rounding and rotated back after; simulates RHT on both GEMM \
         operands (NVIDIA's NVFP4 recipe) (absent: none)",
    )
    .computed_default(),
    ParamInfo::choice(
        "backend",
        &Backend::NAMES,
        "kernel: native (Rust, f32 on CPU), tensor (libtorch ops, any device), auto (native when it applies)",
    )
    .default_str("auto"),
];

impl<'a> Params<'a> {
    /// Wraps `table` (the spec without `format`, `rounding`, `scale`, `rht`
    /// and `backend`) for the format named `format` declaring `declared`.
    ///
    /// ```
    /// use swalp_core::{ParamInfo, Params};
    /// const WL: ParamInfo = ParamInfo::int("wl", 1, 24, "word length");
    /// let table: toml::Table = toml::from_str("wl = 8")?;
    /// let mut p = Params::new("fixed", &table, &[WL]);
    /// assert_eq!(p.int(&WL)?, 8);
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

    /// The raw value of `param`, if present, for parameters with their own
    /// syntax; marks the key as read.
    ///
    /// ```
    /// use swalp_core::{ParamInfo, Params};
    /// const BLOCK: ParamInfo = ParamInfo::other("block", "table", "{ dim = D }", "blocks");
    /// let table: toml::Table = toml::from_str("block = { dim = 0 }")?;
    /// let mut p = Params::new("bfp", &table, &[BLOCK]);
    /// let block = p.raw(&BLOCK).and_then(|v| v.as_table()).unwrap();
    /// assert_eq!(block["dim"].as_integer(), Some(0));
    /// p.finish()?; // `block` was read
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn raw(&mut self, param: &ParamInfo) -> Option<&'a toml::Value> {
        self.read.push(param.name);
        self.table.get(param.name)
    }

    /// The value given for `param`, checked against what it allows, or its
    /// fixed default; `None` when absent without one (a required key is
    /// then an error).
    fn value(&mut self, param: &ParamInfo) -> Result<Option<toml::Value>, SpecError> {
        match (self.raw(param), param.default) {
            (Some(v), _) => {
                param.check(v)?;
                Ok(Some(v.clone()))
            }
            (None, ParamDefault::Value(d)) => Ok(Some(d.to_toml())),
            (None, ParamDefault::Computed) => Ok(None),
            (None, ParamDefault::Required) => Err(self.missing(param)),
        }
    }

    /// An integer parameter: the value given (in range) or the default.
    ///
    /// ```
    /// use swalp_core::{ParamInfo, Params, SpecError};
    /// const WL: ParamInfo = ParamInfo::int("wl", 1, 24, "word length");
    /// const FL: ParamInfo = ParamInfo::int("fl", 0, 24, "fractional bits");
    /// let table: toml::Table = toml::from_str("wl = 30")?;
    /// let mut p = Params::new("fixed", &table, &[WL, FL]);
    /// assert!(p.int(&WL).is_err()); // out of range
    /// assert!(matches!(p.int(&FL), Err(SpecError::MissingKey { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn int(&mut self, param: &ParamInfo) -> Result<i64, SpecError> {
        self.int_opt(param)?.ok_or_else(|| self.missing(param))
    }

    /// An integer parameter whose absence the format decides (`None`).
    pub fn int_opt(&mut self, param: &ParamInfo) -> Result<Option<i64>, SpecError> {
        Ok(self.value(param)?.and_then(|v| v.as_integer()))
    }

    /// A boolean parameter: the value given or the default.
    ///
    /// ```
    /// use swalp_core::{ParamInfo, Params};
    /// const CLAMP: ParamInfo = ParamInfo::boolean("clamp", true, "saturate");
    /// const SYMMETRIC: ParamInfo = ParamInfo::boolean("symmetric", false, "symmetric range");
    /// let table: toml::Table = toml::from_str("clamp = 1")?;
    /// let mut p = Params::new("fixed", &table, &[CLAMP, SYMMETRIC]);
    /// assert!(p.boolean(&CLAMP).is_err()); // 1 is not a boolean
    /// assert!(!p.boolean(&SYMMETRIC)?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn boolean(&mut self, param: &ParamInfo) -> Result<bool, SpecError> {
        self.value(param)?
            .and_then(|v| v.as_bool())
            .ok_or_else(|| self.missing(param))
    }

    /// A string parameter, one of its choices: the value given or the
    /// default.
    ///
    /// ```
    /// use swalp_core::{ParamInfo, Params};
    /// const SPECIALS: ParamInfo =
    ///     ParamInfo::choice("specials", &["ieee", "none"], "top exponent").default_str("ieee");
    /// let table: toml::Table = toml::from_str(r#"specials = "none""#)?;
    /// let mut p = Params::new("float", &table, &[SPECIALS]);
    /// assert_eq!(p.choice(&SPECIALS)?, "none");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn choice(&mut self, param: &ParamInfo) -> Result<&'static str, SpecError> {
        self.choice_opt(param)?.ok_or_else(|| self.missing(param))
    }

    /// A string parameter whose absence the format decides (`None`).
    pub fn choice_opt(&mut self, param: &ParamInfo) -> Result<Option<&'static str>, SpecError> {
        let Allowed::Choice(choices) = param.allowed else {
            return Err(self.missing(param));
        };
        Ok(self
            .value(param)?
            .and_then(|v| choices.iter().copied().find(|c| v.as_str() == Some(c))))
    }

    /// A [`SpecError::MissingKey`] for `param`: the key is absent without
    /// a default, or a getter does not fit the declaration (a format's bug,
    /// reported rather than panicking).
    fn missing(&self, param: &ParamInfo) -> SpecError {
        SpecError::MissingKey {
            format: self.format.into(),
            key: param.name.into(),
            allowed: param.expected(),
        }
    }

    /// Rejects keys that the format does not declare; called before the
    /// factory runs, so a misspelt key is reported rather than the required
    /// key it was meant to be.
    ///
    /// ```
    /// use swalp_core::{ParamInfo, Params};
    /// const DECLARED: &[ParamInfo] = &[ParamInfo::int("wl", 1, 24, "word length")];
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
    /// use swalp_core::{ParamInfo, Params};
    /// const WL: ParamInfo = ParamInfo::int("wl", 1, 24, "word length");
    /// let table: toml::Table = toml::from_str("wl = 8\nfl = 6")?;
    /// let mut p = Params::new("fixed", &table, &[WL]);
    /// p.int(&WL)?;
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

/// Makes the key of a spec error a path under `prefix` (`weight.wl`).
pub(crate) fn prefix_key(error: SpecError, prefix: &str) -> SpecError {
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
    const PREFIX: &str = "spec = ";
    let mut doc: toml::Table =
        toml::from_str(&format!("{PREFIX}{inline}")).map_err(|e| SpecError::Syntax {
            text: text.into(),
            message: syntax_message(
                &e,
                PREFIX.len() + if trimmed.starts_with('{') { 0 } else { 2 },
            ),
        })?;
    match doc.remove("spec") {
        Some(toml::Value::Table(t)) => Ok(t),
        _ => Err(SpecError::Syntax {
            text: text.into(),
            message: "expected a table".into(),
        }),
    }
}

/// The TOML parser's reason, or (it gives none for some inputs cut short)
/// where the spec stops making sense; `added` is the length of the text put
/// before the spec.
fn syntax_message(e: &toml::de::Error, added: usize) -> String {
    let message = e.message().trim();
    if !message.is_empty() {
        return message.to_string();
    }
    match e.span() {
        Some(span) => format!(
            "malformed or cut short at character {}",
            span.start.saturating_sub(added) + 1
        ),
        None => "malformed or cut short".to_string(),
    }
}

/// A backend from its spec name (`"auto"`, `"native"`, `"tensor"`, `"cuda"`).
impl FromStr for Backend {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, SpecError> {
        match s {
            "auto" => Ok(Backend::Auto),
            "native" => Ok(Backend::Native),
            "tensor" => Ok(Backend::Tensor),
            "cuda" => Ok(Backend::Cuda),
            other => Err(SpecError::InvalidValue {
                key: "backend".into(),
                value: format!("{other:?}"),
                allowed: "\"auto\" | \"native\" | \"tensor\" | \"cuda\"".into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_cut_short_says_what_is_wrong() {
        for text in [
            "{ format = \"fixed\", wl = 8, fl = ",
            "{format=\"fixed\",wl=8,fl=",
            "format = \"fixed\", wl =",
        ] {
            let Err(SpecError::Syntax { message, .. }) = parse_table(text) else {
                panic!("{text} parsed");
            };
            assert!(!message.trim().is_empty(), "{text}: empty reason");
        }
    }

    #[test]
    fn quantizer_params_list_every_rounding_mode_and_backend() {
        let rounding = QUANTIZER_PARAMS[0].allowed_text();
        for mode in crate::Rounding::NAMES {
            assert!(rounding.contains(&format!("{mode:?}")), "{mode}");
        }
        for backend in crate::Backend::NAMES {
            assert!(QUANTIZER_PARAMS[3]
                .allowed_text()
                .contains(&format!("{backend:?}")));
        }
        let names: Vec<&str> = QUANTIZER_PARAMS.iter().map(|p| p.name).collect();
        assert_eq!(names, QUANTIZER_KEYS[1..]);
    }
}
