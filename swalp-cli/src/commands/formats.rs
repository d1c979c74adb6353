//! `swalp-cli formats`: every registered number format (plugins included)
//! with its spec keys, as text or JSON.

use std::io::Write;

use serde_json::{json, Value};
use swalp_core::registry::{self, FormatFactory};
use swalp_core::ParamInfo;

use crate::cli::FormatsArgs;
use crate::error::CliError;

/// One spec key, as documented to the user.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyDoc {
    /// The key.
    pub name: String,
    /// Its TOML type.
    pub kind: String,
    /// Its default as TOML text, if it has a fixed one.
    pub default: Option<String>,
    /// Whether a spec must give it.
    pub required: bool,
    /// The values allowed.
    pub allowed: String,
    /// What it means.
    pub help: String,
}

impl From<&ParamInfo> for KeyDoc {
    fn from(p: &ParamInfo) -> Self {
        KeyDoc {
            name: p.name.into(),
            kind: p.kind().into(),
            default: p.default_text(),
            required: p.required(),
            allowed: p.allowed_text(),
            help: p.help.into(),
        }
    }
}

impl KeyDoc {
    fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "kind": self.kind,
            "default": self.default.as_deref().map(toml_text_to_json),
            "required": self.required,
            "allowed": self.allowed,
            "help": self.help,
        })
    }
}

/// The keys every quantizer spec accepts besides its format's own.
pub fn quantizer_keys() -> Vec<KeyDoc> {
    swalp_core::spec::QUANTIZER_PARAMS
        .iter()
        .map(KeyDoc::from)
        .collect()
}

/// Runs `formats`, printing to `out`.
pub fn run(args: &FormatsArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let formats = registry::formats();
    let text = if args.json {
        render_json(&formats)
    } else {
        render_text(&formats)
    };
    out.write_all(text.as_bytes()).map_err(CliError::Stdout)
}

/// The JSON array `[{name, summary, params: [{name, kind, default, allowed,
/// help}]}]`; `default` is the default as a JSON value, `null` when required.
pub fn render_json(formats: &[&FormatFactory]) -> String {
    let array: Vec<Value> = formats
        .iter()
        .map(|f| {
            let params: Vec<Value> = f.params.iter().map(|p| KeyDoc::from(p).to_json()).collect();
            json!({ "name": f.name, "summary": f.summary, "params": params })
        })
        .collect();
    let mut text = Value::Array(array).to_string();
    text.push('\n');
    text
}

/// Readable text: each format and its summary, its keys indented under it
/// (type, default, allowed values, then the help on a second line), then the
/// quantizer keys every format accepts.
pub fn render_text(formats: &[&FormatFactory]) -> String {
    let quantizer = quantizer_keys();
    let width = formats
        .iter()
        .flat_map(|f| f.params.iter().map(|p| p.name.len()))
        .chain(quantizer.iter().map(|k| k.name.len()))
        .max()
        .unwrap_or(0);
    let mut text = String::new();
    for f in formats {
        text.push_str(&format!("{}: {}\n", f.name, f.summary));
        if f.params.is_empty() {
            text.push_str("    (no keys of its own)\n");
        }
        for p in f.params {
            text.push_str(&key_lines(&KeyDoc::from(p), width));
        }
        text.push('\n');
    }
    text.push_str("quantizer keys, accepted with every format:\n");
    for key in &quantizer {
        text.push_str(&key_lines(key, width));
    }
    text.push_str(
        "\nA spec is a TOML inline table, e.g. \
         { format = \"fixed\", wl = 8, fl = 6, rounding = \"stochastic\" }\n",
    );
    text
}

/// `    wl      integer, required; allowed: 2..=24` and the help under it.
fn key_lines(key: &KeyDoc, width: usize) -> String {
    let default = match (&key.default, key.required) {
        (Some(d), _) => format!("default {d}"),
        (None, true) => "required".into(),
        (None, false) => "optional".into(),
    };
    format!(
        "    {:<width$}  {}, {default}; allowed: {}\n    {:width$}  {}\n",
        key.name, key.kind, key.allowed, "", key.help
    )
}

/// A TOML value written as text (`8`, `"ieee"`, `{ dim = 0 }`) as a JSON
/// value; text that is not TOML stays a string.
fn toml_text_to_json(text: &str) -> Value {
    toml::from_str::<toml::Table>(&format!("v = {text}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .and_then(|v| serde_json::to_value(v).ok())
        .unwrap_or_else(|| Value::String(text.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_defaults_become_json_values() {
        assert_eq!(toml_text_to_json("8"), json!(8));
        assert_eq!(toml_text_to_json("\"ieee\""), json!("ieee"));
        assert_eq!(toml_text_to_json("true"), json!(true));
        assert_eq!(toml_text_to_json("{ dim = 0 }"), json!({ "dim": 0 }));
        assert_eq!(toml_text_to_json("none"), json!("none"));
    }

    #[test]
    fn text_lists_the_built_in_formats() {
        let text = render_text(&registry::formats());
        for name in [
            "fixed", "float", "bfp", "bfloat16", "fp16", "fp8_e4m3", "fp8_e5m2",
        ] {
            assert!(
                text.contains(&format!("\n{name}: ")) || text.starts_with(&format!("{name}: "))
            );
        }
    }
}
