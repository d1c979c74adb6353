//! The format registry: every number format, built-in or from a plugin crate,
//! is a [`FormatFactory`] submitted with [`register_format!`](crate::register_format).
//!
//! There is no other way in: `swalp-formats` registers `fixed`, `float` and
//! `bfp` exactly as a third-party crate would. A binary sees the formats of
//! every crate it links.

use crate::error::SpecError;
use crate::format::NumberFormat;
use crate::spec::{ParamInfo, Params, QUANTIZER_KEYS};

/// Builds one named format from its spec parameters.
///
/// ```
/// use swalp_core::{FormatFactory, ParamInfo, Params, NumberFormat, SpecError};
/// fn build(p: &mut Params) -> Result<Box<dyn NumberFormat>, SpecError> {
///     # unimplemented!()
/// }
/// // In a plugin crate:
/// // swalp_core::register_format!(FormatFactory {
/// //     name: "myfmt", summary: "...", params: &[], build,
/// // });
/// let factory = FormatFactory { name: "myfmt", summary: "my format", params: &[], build };
/// assert_eq!(factory.name, "myfmt");
/// ```
#[derive(Debug)]
pub struct FormatFactory {
    /// The `format = "..."` name.
    pub name: &'static str,
    /// One line for `swalp-cli formats`.
    pub summary: &'static str,
    /// Every key the format accepts.
    pub params: &'static [ParamInfo],
    /// Builds the format; must read every key it accepts through `Params`.
    pub build: fn(&mut Params<'_>) -> Result<Box<dyn NumberFormat>, SpecError>,
}

inventory::collect!(FormatFactory);

/// Registers a [`FormatFactory`] from any crate; the factory must be a
/// constant expression.
///
/// ```ignore
/// swalp_core::register_format!(swalp_core::FormatFactory {
///     name: "ternary",
///     summary: "values -1, 0, 1 times a power-of-two scale",
///     params: TERNARY_PARAMS,
///     build: build_ternary,
/// });
/// ```
#[macro_export]
macro_rules! register_format {
    ($factory:expr) => {
        $crate::inventory::submit! { $factory }
    };
}

/// Every registered factory, sorted by name.
///
/// ```
/// use swalp_core::registry;
/// # use swalp_formats as _;
/// let names: Vec<&str> = registry::formats().iter().map(|f| f.name).collect();
/// assert!(names.contains(&"fixed") && names.contains(&"fp16"));
/// assert!(names.windows(2).all(|w| w[0] <= w[1]));
/// ```
pub fn formats() -> Vec<&'static FormatFactory> {
    let mut all: Vec<&'static FormatFactory> =
        inventory::iter::<FormatFactory>.into_iter().collect();
    all.sort_by_key(|f| f.name);
    all
}

/// The factory registered under `name`.
///
/// ```
/// use swalp_core::{registry, SpecError};
/// # use swalp_formats as _;
/// assert_eq!(registry::find("fixed")?.name, "fixed");
/// assert!(matches!(registry::find("fixd"), Err(SpecError::UnknownFormat { .. })));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn find(name: &str) -> Result<&'static FormatFactory, SpecError> {
    let all = formats();
    let mut matches = all.iter().filter(|f| f.name == name);
    match (matches.next(), matches.next()) {
        (Some(f), None) => Ok(f),
        (Some(_), Some(_)) => Err(SpecError::DuplicateFormat { name: name.into() }),
        (None, _) => Err(SpecError::UnknownFormat {
            name: name.into(),
            known: all.iter().map(|f| f.name.to_string()).collect(),
        }),
    }
}

/// Builds a format from a spec table holding `format` and the format's own
/// keys. Quantizer keys (`rounding`, `scale`, `rht`, `backend`) are ignored here.
///
/// ```
/// use swalp_core::{registry::build_format, spec::parse_table};
/// # use swalp_formats as _;
/// let spec = parse_table(r#"format = "float", exp = 5, man = 2, rounding = "stochastic""#)?;
/// assert_eq!(build_format(&spec)?.bits_per_value(), 8.0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn build_format(spec: &toml::Table) -> Result<Box<dyn NumberFormat>, SpecError> {
    let name = match spec.get("format") {
        None => return Err(SpecError::MissingFormat),
        Some(toml::Value::String(s)) => s.as_str(),
        Some(other) => {
            return Err(crate::spec::invalid(
                "format",
                other,
                "a format name string such as \"fixed\"",
            ))
        }
    };
    let factory = find(name)?;
    let own: toml::Table = spec
        .iter()
        .filter(|(k, _)| !QUANTIZER_KEYS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut params = Params::new(factory.name, &own, factory.params);
    params.check_declared()?;
    let format = (factory.build)(&mut params)?;
    params.finish()?;
    Ok(format)
}
