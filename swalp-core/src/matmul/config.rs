//! `[quant.matmul]`: the arithmetic of every layer's three matrix products,
//! read from TOML.

use super::{Accumulation, AccumulationError};
use std::collections::BTreeMap;

use crate::error::{closest, SpecError};
use crate::quantizer::Quantizer;
use crate::spec::prefix_key;

/// The keys that describe one product's arithmetic.
const ROLE_KEYS: [&str; 4] = ["product", "accumulator", "chunk", "chunk_accumulator"];

/// The tables that override them for some products.
const PRODUCT_KEYS: [&str; 4] = ["forward", "backward", "input_grad", "weight_grad"];

/// How the linear and convolution layers of a model multiply and
/// accumulate: one [`Accumulation`] (or libtorch's `f32` product, `None`)
/// for the forward product `y = x · Wᵀ`, the input gradient `g · W` and the
/// weight gradient `gᵀ · x`.
///
/// From a table (`[quant.matmul]`) with `product`, `accumulator`, `chunk`
/// and `chunk_accumulator` keys shared by all three products, overridden
/// for some of them by `forward`, `backward` (both gradients),
/// `input_grad` and `weight_grad` tables (the last two override
/// `backward`), each of which may instead be `"none"`: that product is then
/// libtorch's. An empty table is libtorch's arithmetic everywhere.
///
/// ```
/// use swalp_core::matmul::LayerArithmetic;
/// # use swalp_formats as _;
/// let table: toml::Table = toml::from_str(r#"
///     product = { format = "fp8_e5m2" }
///     accumulator = { format = "fp16" }
///     chunk = 64
///     backward = { chunk = "none" }
///     weight_grad = "none"
/// "#)?;
/// let arithmetic = LayerArithmetic::from_table(&table)?;
/// assert_eq!(arithmetic.forward.as_ref().unwrap().chunk(), Some(64));
/// assert_eq!(arithmetic.input_grad.as_ref().unwrap().chunk(), None);
/// assert!(arithmetic.weight_grad.is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct LayerArithmetic {
    /// `y = x · Wᵀ`.
    pub forward: Option<Accumulation>,
    /// `dL/dx = g · W`.
    pub input_grad: Option<Accumulation>,
    /// `dL/dW = gᵀ · x`.
    pub weight_grad: Option<Accumulation>,
}

impl LayerArithmetic {
    /// True when every product is libtorch's (no `[quant.matmul]`).
    ///
    /// ```
    /// assert!(swalp_core::matmul::LayerArithmetic::default().is_exact());
    /// ```
    pub fn is_exact(&self) -> bool {
        self.forward.is_none() && self.input_grad.is_none() && self.weight_grad.is_none()
    }

    /// Reads `[quant.matmul]` (see the type's documentation); error keys
    /// are paths under `matmul`.
    ///
    /// ```
    /// use swalp_core::matmul::LayerArithmetic;
    /// # use swalp_formats as _;
    /// let table: toml::Table = toml::from_str(r#"accumulator = { format = "bfp", wl = 8 }"#)?;
    /// let err = LayerArithmetic::from_table(&table).unwrap_err().to_string();
    /// assert!(err.contains("matmul.accumulator"), "{err}");
    /// assert!(err.contains("per-element format"), "{err}");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_table(table: &toml::Table) -> Result<Self, SpecError> {
        // `matmul = {}`: libtorch's products, as `quant = {}` is full precision.
        if table.is_empty() {
            return Ok(LayerArithmetic::default());
        }
        let allowed: Vec<&str> = ROLE_KEYS.iter().chain(&PRODUCT_KEYS).copied().collect();
        check_keys(table, &allowed, "matmul")?;
        let shared = Spec::default().with(table, "matmul");
        let forward = resolve(
            Some(&shared),
            &shared,
            table.get("forward"),
            "matmul.forward",
        )?;
        let backward = resolve(
            Some(&shared),
            &shared,
            table.get("backward"),
            "matmul.backward",
        )?;
        let grad = |key: &str| {
            resolve(
                backward.as_ref(),
                &shared,
                table.get(key),
                &format!("matmul.{key}"),
            )
        };
        let (input_grad, weight_grad) = (grad("input_grad")?, grad("weight_grad")?);
        let build = |spec: Option<Spec>| spec.map(|s| accumulation(&s)).transpose();
        Ok(LayerArithmetic {
            forward: build(forward)?,
            input_grad: build(input_grad)?,
            weight_grad: build(weight_grad)?,
        })
    }
}

/// One product's role keys, each with the path of the table it came from
/// (`matmul`, `matmul.backward`, ...), which its errors name.
#[derive(Clone, Debug, Default)]
struct Spec {
    values: toml::Table,
    origin: BTreeMap<String, String>,
}

impl Spec {
    /// `self` overridden by the role keys of `table`, found at `path`.
    fn with(mut self, table: &toml::Table, path: &str) -> Spec {
        for (k, v) in table
            .iter()
            .filter(|(k, _)| ROLE_KEYS.contains(&k.as_str()))
        {
            self.values.insert(k.clone(), v.clone());
            self.origin.insert(k.clone(), path.to_string());
        }
        self
    }

    /// The dotted path of `key`.
    fn path(&self, key: &str) -> String {
        let table = self.origin.get(key).map_or("matmul", String::as_str);
        format!("{table}.{key}")
    }
}

/// One product's spec: `parent` (`None`: libtorch's) overridden by
/// `value`, found at `path`, which may be absent (the parent), `"none"` or
/// a table of role keys (laid over `parent`, or over `shared` when the
/// parent is `"none"`).
fn resolve(
    parent: Option<&Spec>,
    shared: &Spec,
    value: Option<&toml::Value>,
    path: &str,
) -> Result<Option<Spec>, SpecError> {
    match value {
        None => Ok(parent.cloned()),
        Some(toml::Value::String(s)) if s == "none" => Ok(None),
        Some(toml::Value::Table(own)) => {
            check_keys(own, &ROLE_KEYS, path)?;
            Ok(Some(parent.unwrap_or(shared).clone().with(own, path)))
        }
        Some(v) => Err(crate::spec::invalid(
            path,
            v,
            "a table of product, accumulator, chunk and chunk_accumulator, or \"none\" \
             (libtorch's f32 product)",
        )),
    }
}

fn check_keys(table: &toml::Table, allowed: &[&str], context: &str) -> Result<(), SpecError> {
    match table.keys().find(|k| !allowed.contains(&k.as_str())) {
        None => Ok(()),
        Some(key) => Err(SpecError::UnknownKey {
            context: context.into(),
            key: key.clone(),
            allowed: allowed.iter().map(|k| k.to_string()).collect(),
            suggestion: closest(key, allowed.iter().copied()),
        }),
    }
}

/// Builds one product's [`Accumulation`] from its resolved spec.
fn accumulation(spec: &Spec) -> Result<Accumulation, SpecError> {
    let key_path = |key: &str| spec.path(key);
    let spec_values = &spec.values;
    let quantizer = |key: &str| -> Result<Option<Quantizer>, SpecError> {
        match spec_values.get(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) if s == "none" && key == "product" => Ok(None),
            Some(toml::Value::Table(t)) => Quantizer::from_spec(t)
                .map(Some)
                .map_err(|e| prefix_key(e, &key_path(key))),
            Some(v) => Err(crate::spec::invalid(
                &key_path(key),
                v,
                if key == "product" {
                    "a format spec such as { format = \"fp8_e5m2\" }, or \"none\" (exact products)"
                } else {
                    "a format spec such as { format = \"fp16\" }"
                },
            )),
        }
    };
    let accumulator = quantizer("accumulator")?.ok_or_else(|| SpecError::MissingKey {
        format: "matmul".into(),
        key: key_path("accumulator"),
        allowed: "a per-element format spec such as { format = \"fp16\" }".into(),
    })?;
    let chunk = match spec_values.get("chunk") {
        None => None,
        Some(toml::Value::String(s)) if s == "none" => None,
        Some(toml::Value::Integer(c)) if *c >= 1 => Some(*c as usize),
        Some(v) => {
            return Err(crate::spec::invalid(
                &key_path("chunk"),
                v,
                "a positive number of products (1 rounds every addition) or \"none\" (one sum)",
            ))
        }
    };
    Accumulation::new(
        quantizer("product")?,
        accumulator,
        chunk,
        quantizer("chunk_accumulator")?,
    )
    .map_err(|e| rejected(e, spec))
}

/// An [`AccumulationError`] as the spec error of the key it is about.
fn rejected(e: AccumulationError, spec: &Spec) -> SpecError {
    let (role, allowed) = match &e {
        AccumulationError::NotPerElement { role, .. } => (
            *role,
            "a per-element format (fixed, float, bfloat16, fp16, fp8_e4m3, fp8_e5m2, a \
             per-element plugin): block formats share one scale between values, which a running \
             sum has not",
        ),
        AccumulationError::Rotated { role } => (*role, "a spec without `rht`"),
        AccumulationError::ZeroChunk | AccumulationError::Shapes { .. } => {
            ("chunk", "a positive chunk")
        }
    };
    let value = spec
        .values
        .get(role)
        .map_or_else(String::new, |v| v.to_string());
    SpecError::InvalidValue {
        key: spec.path(role),
        value,
        allowed: allowed.into(),
    }
}
