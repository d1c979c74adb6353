//! The experiment file: a TOML document with the sections `experiment`,
//! `data`, `model`, `quant`, `optim`, `schedule`, `swa`, `train` and `log`.
//!
//! Every key has a default except the few an experiment cannot do without;
//! unknown keys and wrong types are errors naming the file, the line and the
//! key, with the closest valid key suggested.

use std::path::Path;

use serde::{Deserialize, Serialize};
use swalp_core::points::PointConfig;
use swalp_core::schedule::LrSchedule;

use super::ExperimentError;
pub use crate::data::DataSection;
pub use crate::models::ModelSection;

/// A whole experiment, defaults filled in.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// Name, seed and device.
    pub experiment: ExperimentSection,
    /// The data set.
    pub data: DataSection,
    /// The model.
    pub model: ModelSection,
    /// A quantizer spec per point (`weight`, `activation`, `gradient`,
    /// `error`, `momentum`, `accumulator`) and a `default` they inherit.
    #[serde(default)]
    pub quant: toml::Table,
    /// The optimizer.
    pub optim: OptimSection,
    /// The learning-rate schedule.
    #[serde(default)]
    pub schedule: ScheduleSection,
    /// Stochastic weight averaging.
    #[serde(default)]
    pub swa: SwaSection,
    /// The training loop.
    pub train: TrainSection,
    /// Logging and outputs.
    #[serde(default)]
    pub log: LogSection,
}

/// `[experiment]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentSection {
    /// Names the run and its default output directory.
    pub name: String,
    /// Seeds data generation, initialisation, shuffling and stochastic
    /// rounding.
    #[serde(default)]
    pub seed: u64,
    /// `auto` (CUDA when available), `cpu` or `cuda`.
    #[serde(default)]
    pub device: DeviceChoice,
}

/// Where to train.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// CUDA when available, else CPU.
    #[default]
    Auto,
    /// The CPU.
    Cpu,
    /// The first CUDA device.
    Cuda,
}

/// `[optim]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OptimSection {
    /// `sgd`, `adam` or `adamw`.
    #[serde(default = "default_optim")]
    pub name: String,
    /// Initial learning rate.
    pub lr: f64,
    /// SGD momentum.
    #[serde(default)]
    pub momentum: f64,
    /// SGD dampening.
    #[serde(default)]
    pub dampening: f64,
    /// SGD Nesterov momentum.
    #[serde(default)]
    pub nesterov: bool,
    /// Weight decay (L2 for SGD and Adam, decoupled for AdamW).
    #[serde(default)]
    pub weight_decay: f64,
    /// Adam β1.
    #[serde(default = "default_beta1")]
    pub beta1: f64,
    /// Adam β2.
    #[serde(default = "default_beta2")]
    pub beta2: f64,
    /// Adam ε.
    #[serde(default = "default_eps")]
    pub eps: f64,
    /// Gradients are multiplied by this before quantization.
    #[serde(default = "default_grad_scale")]
    pub grad_scale: f64,
}

fn default_optim() -> String {
    "sgd".into()
}
fn default_beta1() -> f64 {
    0.9
}
fn default_beta2() -> f64 {
    0.999
}
fn default_eps() -> f64 {
    1e-8
}
fn default_grad_scale() -> f64 {
    1.0
}

/// `[schedule]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSection {
    /// `constant`, `step`, `cosine` or `swalp`.
    #[serde(default = "default_schedule")]
    pub name: String,
    /// Update the rate every `epoch` or every `step`.
    #[serde(default = "default_per")]
    pub per: String,
    /// `step`: epochs at which the rate is multiplied by `gamma`.
    #[serde(default)]
    pub milestones: Vec<f64>,
    /// `step`: the factor.
    #[serde(default = "default_gamma")]
    pub gamma: f64,
    /// `cosine`: the final rate.
    #[serde(default)]
    pub min_lr: f64,
}

impl Default for ScheduleSection {
    fn default() -> Self {
        ScheduleSection {
            name: default_schedule(),
            per: default_per(),
            milestones: Vec::new(),
            gamma: default_gamma(),
            min_lr: 0.0,
        }
    }
}

fn default_schedule() -> String {
    "constant".into()
}
fn default_per() -> String {
    "epoch".into()
}
fn default_gamma() -> f64 {
    0.1
}

/// `[swa]`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SwaSection {
    /// Epoch at which averaging starts, as in the seed: the weights are
    /// averaged after every epoch `e` with `e + 1 >= start` (or, with
    /// `every_steps`, at every K-th step of epochs `e >= start`). Absent (and
    /// no `start_step`): no averaging.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<u64>,
    /// Optimizer step from which averaging starts instead of an epoch
    /// (with `every_steps`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_step: Option<u64>,
    /// Learning rate while averaging (the `swalp` schedule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lr: Option<f64>,
    /// Average every N optimizer steps instead of every epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every_steps: Option<u64>,
    /// Quantizer spec for a low-precision average; absent: f32.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quant: Option<toml::Table>,
    /// Evaluate the averaged model with the experiment's activation and
    /// error quantizers (default: full precision, as the paper does).
    #[serde(default)]
    pub eval_quantized: bool,
}

impl SwaSection {
    /// Whether any averaging is configured.
    pub fn enabled(&self) -> bool {
        self.start.is_some() || self.start_step.is_some()
    }
}

/// `[train]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSection {
    /// Passes over the training set.
    pub epochs: u64,
    /// Examples per step.
    pub batch_size: usize,
    /// Visit the training examples in a new random order every epoch (the
    /// DataLoader's `shuffle=True`); `false` keeps the file's order.
    #[serde(default = "yes")]
    pub shuffle: bool,
}

/// `[log]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    /// Print the per-epoch table.
    #[serde(default = "yes")]
    pub table: bool,
    /// Show a progress bar per epoch (on a terminal).
    #[serde(default = "yes")]
    pub progress: bool,
    /// Write TensorBoard event files.
    #[serde(default = "yes")]
    pub tensorboard: bool,
    /// Write a checkpoint every N epochs (0: only when interrupted and at
    /// the end).
    #[serde(default = "one")]
    pub checkpoint_every: u64,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            table: true,
            progress: true,
            tensorboard: true,
            checkpoint_every: 1,
        }
    }
}

fn yes() -> bool {
    true
}
fn one() -> u64 {
    1
}

impl Experiment {
    /// Reads and checks an experiment file, applying `--set key.path=value`
    /// overrides first.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self, ExperimentError> {
        let text = std::fs::read_to_string(path).map_err(|e| ExperimentError::Read {
            path: path.into(),
            reason: e.to_string(),
        })?;
        Self::parse(&text, path, overrides)
    }

    /// Parses experiment text (`path` is for messages only).
    pub fn parse(text: &str, path: &Path, overrides: &[String]) -> Result<Self, ExperimentError> {
        let mut doc: toml::Table = toml::from_str(text).map_err(|e| file_error(path, text, &e))?;
        for item in overrides {
            apply_override(&mut doc, item)?;
        }
        // Re-serialise so serde sees the overridden document; line numbers
        // stay those of the file when nothing was overridden.
        let merged = if overrides.is_empty() {
            text.to_string()
        } else {
            toml::to_string(&doc).map_err(|e| ExperimentError::Invalid(e.to_string()))?
        };
        let experiment: Experiment =
            toml::from_str(&merged).map_err(|e| file_error(path, &merged, &e))?;
        experiment
            .validate()
            .map_err(|e| locate(e, path, &merged))?;
        Ok(experiment)
    }

    /// The quantization points.
    pub fn points(&self) -> Result<PointConfig, ExperimentError> {
        PointConfig::from_table(&self.quant)
            .map_err(|e| ExperimentError::Invalid(format!("quant: {e}")))
    }

    /// The learning-rate schedule.
    pub fn schedule(&self) -> Result<LrSchedule, ExperimentError> {
        let lr = self.optim.lr;
        Ok(match self.schedule.name.as_str() {
            "constant" => LrSchedule::Constant { lr },
            "step" => LrSchedule::Step {
                lr,
                milestones: self.schedule.milestones.clone(),
                gamma: self.schedule.gamma,
            },
            "cosine" => LrSchedule::Cosine {
                lr,
                min_lr: self.schedule.min_lr,
                epochs: self.train.epochs as f64,
            },
            "swalp" => {
                let (Some(start), Some(swa_lr)) = (self.swa.start, self.swa.lr) else {
                    return Err(ExperimentError::Invalid(
                        "schedule.name = \"swalp\" needs swa.start and swa.lr".into(),
                    ));
                };
                LrSchedule::Swalp {
                    lr_init: lr,
                    swa_start: start as f64,
                    swa_lr,
                }
            }
            other => {
                return Err(invalid(
                    "schedule.name",
                    other,
                    "\"constant\", \"step\", \"cosine\" or \"swalp\"",
                ))
            }
        })
    }

    fn validate(&self) -> Result<(), ExperimentError> {
        let positive = |key: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(invalid(key, v, "a positive number"))
            }
        };
        positive("optim.lr", self.optim.lr)?;
        positive("optim.grad_scale", self.optim.grad_scale)?;
        if let Some(lr) = self.swa.lr {
            positive("swa.lr", lr)?;
        }
        if !(0.0..1.0).contains(&self.optim.momentum) {
            return Err(invalid(
                "optim.momentum",
                self.optim.momentum,
                "a number in [0, 1)",
            ));
        }
        if let Some(p) = self.model.dropout {
            if !(0.0..1.0).contains(&p) {
                return Err(invalid("model.dropout", p, "a probability in [0, 1)"));
            }
        }
        if self.optim.weight_decay < 0.0 {
            return Err(invalid(
                "optim.weight_decay",
                self.optim.weight_decay,
                "a number >= 0",
            ));
        }
        let one_of = |key: &str, value: &str, names: &[&str]| {
            if names.contains(&value) {
                Ok(())
            } else {
                let quoted: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
                Err(invalid(
                    key,
                    format!("{value:?}"),
                    &format!("one of {}", quoted.join(", ")),
                ))
            }
        };
        one_of("data.name", &self.data.name, &crate::data::NAMES)?;
        one_of("model.name", &self.model.name, &crate::models::NAMES)?;
        if !["sgd", "adam", "adamw"].contains(&self.optim.name.as_str()) {
            return Err(invalid(
                "optim.name",
                &self.optim.name,
                "\"sgd\", \"adam\" or \"adamw\"",
            ));
        }
        if !["epoch", "step"].contains(&self.schedule.per.as_str()) {
            return Err(invalid(
                "schedule.per",
                &self.schedule.per,
                "\"epoch\" or \"step\"",
            ));
        }
        if self.train.epochs == 0 {
            return Err(invalid("train.epochs", 0, "a positive integer"));
        }
        if self.train.batch_size == 0 {
            return Err(invalid("train.batch_size", 0, "a positive integer"));
        }
        if self.swa.every_steps == Some(0) {
            return Err(invalid("swa.every_steps", 0, "a positive integer"));
        }
        if self.swa.start.is_some() && self.swa.start_step.is_some() {
            return Err(ExperimentError::Invalid(
                "swa.start and swa.start_step are alternatives: give one".into(),
            ));
        }
        if self.swa.start_step.is_some() && self.swa.every_steps.is_none() {
            return Err(ExperimentError::Invalid(
                "swa.start_step needs swa.every_steps (averaging by steps)".into(),
            ));
        }
        if let Some(start) = self.swa.start {
            if start > self.train.epochs {
                return Err(invalid(
                    "swa.start",
                    start,
                    &format!("an epoch up to train.epochs = {}", self.train.epochs),
                ));
            }
        }
        self.points()?;
        self.schedule()?;
        Ok(())
    }
}

fn invalid(key: &str, value: impl std::fmt::Display, allowed: &str) -> ExperimentError {
    ExperimentError::Invalid(format!(
        "invalid value {value} for `{key}`: expected {allowed}"
    ))
}

/// Gives a value error the file and the line of the key it names (the first
/// `` `key` `` in its message; for quantizer specs, the point's line).
fn locate(error: ExperimentError, path: &Path, text: &str) -> ExperimentError {
    let ExperimentError::Invalid(message) = error else {
        return error;
    };
    let named = message.split('`').nth(1).unwrap_or("");
    let key = match message.strip_prefix("quant: ") {
        Some(_) => format!("quant.{}", named.split('.').next().unwrap_or("")),
        None => named.to_string(),
    };
    ExperimentError::File {
        path: path.into(),
        line: line_of(text, &key),
        message,
    }
}

/// The line (1-based) where `section.key` is set in a TOML text.
fn line_of(text: &str, dotted: &str) -> Option<usize> {
    let (section, key) = dotted.split_once('.')?;
    let mut current = String::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.starts_with('[') {
            current = line
                .trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_string();
            if current == dotted {
                return Some(i + 1);
            }
        } else if current == section {
            let name = line.split('=').next().unwrap_or("").trim();
            if name == key {
                return Some(i + 1);
            }
        }
    }
    None
}

/// Sets `key.path` in `doc` to `value`, parsed as TOML (a bare word is a
/// string).
fn apply_override(doc: &mut toml::Table, item: &str) -> Result<(), ExperimentError> {
    let bad = || ExperimentError::Invalid(format!("--set {item:?}: expected key.path=value"));
    let (path, raw) = item.split_once('=').ok_or_else(bad)?;
    let keys: Vec<&str> = path.trim().split('.').collect();
    if keys.iter().any(|k| k.is_empty()) {
        return Err(bad());
    }
    let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.trim().to_string()));
    let (last, parents) = keys.split_last().ok_or_else(bad)?;
    let mut table = doc;
    for key in parents {
        let entry = table
            .entry(key.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = entry.as_table_mut().ok_or_else(|| {
            ExperimentError::Invalid(format!("--set {item:?}: `{key}` is not a table"))
        })?;
    }
    table.insert(last.to_string(), value);
    Ok(())
}

/// A one-line `file:line: message` from a TOML or schema error, with the
/// closest valid key suggested for unknown ones.
fn file_error(path: &Path, text: &str, e: &toml::de::Error) -> ExperimentError {
    let line = e
        .span()
        .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
    let mut message = e.message().trim().replace('\n', " ");
    if let Some(suggestion) = suggest_field(&message) {
        message.push_str(&format!(" (did you mean `{suggestion}`?)"));
    }
    if let Some(key) = e.span().and_then(|s| key_path(text, s.start)) {
        message = format!("{key}: {message}");
    }
    ExperimentError::File {
        path: path.into(),
        line,
        message,
    }
}

/// The dotted key (`optim.lr`) written on the line holding byte `offset`:
/// the key before `=` under the nearest `[section]` header above it.
fn key_path(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next()?.trim();
    let section = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    if line.starts_with('[') {
        return Some(
            line.trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_string(),
        );
    }
    let key = line.split('=').next()?.trim();
    if key.is_empty() || key.starts_with('#') {
        return section;
    }
    Some(match section {
        Some(section) => format!("{section}.{key}"),
        None => key.to_string(),
    })
}

/// For serde's "unknown field `x`, expected one of `a`, `b`" messages.
fn suggest_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (given, rest) = rest.split_once('`')?;
    let expected: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
    swalp_core::error::closest(given, expected.iter().copied())
}
