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
use swalp_core::Quantizer;

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
    /// `error`, `momentum`, `accumulator`) and a `default` they inherit, as
    /// written; [`Experiment::points`] is what they build.
    #[serde(default)]
    pub quant: toml::Table,
    /// The quantization points built from `quant` by [`Experiment::parse`].
    #[serde(skip)]
    points: PointConfig,
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
    /// A sweep over this experiment (`swalp-cli sweep`): `seeds`, `grid`
    /// and `slurm`, as written; [`crate::sweep::SweepSpec`] reads it. A
    /// single run ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<toml::Table>,
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
    /// The update rule.
    #[serde(default)]
    pub name: OptimName,
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

/// `optim.name`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimName {
    /// SGD with momentum, dampening, Nesterov and weight decay.
    #[default]
    Sgd,
    /// Adam (L2 weight decay).
    Adam,
    /// AdamW (decoupled weight decay).
    Adamw,
}

/// `schedule.name`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleName {
    /// `optim.lr` throughout.
    #[default]
    Constant,
    /// Multiplied by `gamma` at each of `milestones`.
    Step,
    /// Cosine decay to `min_lr` over the run.
    Cosine,
    /// The seed's: decay, then `swa.lr` from `swa.start` on.
    Swalp,
}

/// `schedule.per`: how often the rate changes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SchedulePer {
    /// Once per epoch.
    #[default]
    Epoch,
    /// At every step (fractional epochs).
    Step,
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
    /// The schedule.
    #[serde(default)]
    pub name: ScheduleName,
    /// Update the rate every `epoch` or every `step`.
    #[serde(default)]
    pub per: SchedulePer,
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
            name: ScheduleName::default(),
            per: SchedulePer::default(),
            milestones: Vec::new(),
            gamma: default_gamma(),
            min_lr: 0.0,
        }
    }
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
    /// Quantizer spec for a low-precision average, as written; absent: f32.
    /// [`SwaSection::quantizer`] is what it builds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quant: Option<toml::Table>,
    /// The quantizer built from `quant` by [`Experiment::parse`].
    #[serde(skip)]
    quantizer: Option<Quantizer>,
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

    /// The quantizer of a low-precision average (none: f32).
    pub fn quantizer(&self) -> Option<&Quantizer> {
        self.quantizer.as_ref()
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
    /// What a NaN or infinite training loss or parameter does: `stop` the
    /// run with an error (the default), or `continue` training and mark
    /// `result.json` `"status": "diverged"`.
    #[serde(default)]
    pub on_nonfinite: OnNonFinite,
}

/// `train.on_nonfinite`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnNonFinite {
    /// Stop with [`ExperimentError::Diverged`].
    #[default]
    Stop,
    /// Train on; the result says where it diverged.
    Continue,
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
    /// In a data-parallel run, check every N steps that all ranks hold the
    /// same weights, optimizer state and average, bit for bit (0: never).
    #[serde(default)]
    pub check_replicas_every: u64,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            table: true,
            progress: true,
            tensorboard: true,
            checkpoint_every: 1,
            check_replicas_every: 0,
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
            what: "experiment file",
            source: e.into(),
        })?;
        Self::parse(&text, path, overrides)
    }

    /// Parses experiment text (`path` is for messages only): the schema,
    /// then every value a run uses, quantizer specs included, so that what
    /// parses runs. Errors name the file and the line of the key, or the
    /// `--set` that gave its value.
    pub fn parse(text: &str, path: &Path, overrides: &[String]) -> Result<Self, ExperimentError> {
        let source = Source::new(path, text, overrides);
        let mut doc: toml::Table = toml::from_str(text).map_err(|e| source.toml_error(text, &e))?;
        for item in overrides {
            apply_override(&mut doc, item)?;
        }
        // Re-serialise so serde sees the overridden document (and its
        // spans, which `Source` maps back to the file or the --set).
        let merged = if overrides.is_empty() {
            text.to_string()
        } else {
            toml::to_string(&doc).map_err(|e| ExperimentError::Encode(e.into()))?
        };
        let mut experiment: Experiment =
            toml::from_str(&merged).map_err(|e| source.toml_error(&merged, &e))?;
        experiment.resolve().map_err(|e| source.locate(e))?;
        Ok(experiment)
    }

    /// The quantization points.
    pub fn points(&self) -> &PointConfig {
        &self.points
    }

    /// Builds what the written values describe (quantizers, schedule) and
    /// checks every value.
    fn resolve(&mut self) -> Result<(), ExperimentError> {
        self.points = PointConfig::from_table(&self.quant).map_err(|e| spec_error("quant", e))?;
        self.swa.quantizer = self
            .swa
            .quant
            .as_ref()
            .map(Quantizer::from_spec)
            .transpose()
            .map_err(|e| spec_error("swa.quant", e))?;
        self.validate()
    }

    /// The learning-rate schedule.
    pub fn schedule(&self) -> Result<LrSchedule, ExperimentError> {
        let lr = self.optim.lr;
        Ok(match self.schedule.name {
            ScheduleName::Constant => LrSchedule::Constant { lr },
            ScheduleName::Step => LrSchedule::Step {
                lr,
                milestones: self.schedule.milestones.clone(),
                gamma: self.schedule.gamma,
            },
            ScheduleName::Cosine => LrSchedule::Cosine {
                lr,
                min_lr: self.schedule.min_lr,
                epochs: self.train.epochs as f64,
            },
            ScheduleName::Swalp => {
                let (Some(start), Some(swa_lr)) = (self.swa.start, self.swa.lr) else {
                    return Err(ExperimentError::Value {
                        key: "schedule.name".into(),
                        message: "schedule.name = \"swalp\" needs swa.start and swa.lr".into(),
                    });
                };
                LrSchedule::Swalp {
                    lr_init: lr,
                    swa_start: start as f64,
                    swa_lr,
                }
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
        // torch.optim's own checks: 0 <= eps, 0 <= beta < 1.
        if !(self.optim.eps.is_finite() && self.optim.eps >= 0.0) {
            return Err(invalid("optim.eps", self.optim.eps, "a number >= 0"));
        }
        for (key, beta) in [
            ("optim.beta1", self.optim.beta1),
            ("optim.beta2", self.optim.beta2),
        ] {
            if !(0.0..1.0).contains(&beta) {
                return Err(invalid(key, beta, "a number in [0, 1)"));
            }
        }
        positive("schedule.gamma", self.schedule.gamma)?;
        if !(self.data.noise.is_finite() && self.data.noise >= 0.0) {
            return Err(invalid("data.noise", self.data.noise, "a number >= 0"));
        }
        // Zero examples, dimensions or classes leave nothing to train or
        // evaluate (and used to reach libtorch as a panic).
        let data = &self.data;
        let counts = [
            ("data.subset", data.subset.unwrap_or(1)),
            ("data.n_train", data.n_train),
            ("data.n_test", data.n_test),
            ("data.dim", data.dim),
            ("data.classes", data.classes),
        ];
        if let Some((key, _)) = counts.iter().find(|(_, n)| *n == 0) {
            return Err(invalid(key, 0, "a positive integer"));
        }
        let at_least_zero = |key: &str, v: f64| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(invalid(key, v, "a number >= 0"))
            }
        };
        at_least_zero("optim.weight_decay", self.optim.weight_decay)?;
        at_least_zero("optim.dampening", self.optim.dampening)?;
        at_least_zero("schedule.min_lr", self.schedule.min_lr)?;
        for &m in &self.schedule.milestones {
            at_least_zero("schedule.milestones", m)?;
        }
        // torch.optim.SGD's own rule.
        if self.optim.nesterov && (self.optim.momentum <= 0.0 || self.optim.dampening != 0.0) {
            return Err(ExperimentError::Value {
                key: "optim.nesterov".into(),
                message: "optim.nesterov = true needs optim.momentum > 0 and \
                          optim.dampening = 0 (as torch.optim.SGD)"
                    .into(),
            });
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
            return Err(ExperimentError::Value {
                key: "swa.start_step".into(),
                message: "swa.start and swa.start_step are alternatives: give one".into(),
            });
        }
        if self.swa.start_step.is_some() && self.swa.every_steps.is_none() {
            return Err(ExperimentError::Value {
                key: "swa.start_step".into(),
                message: "swa.start_step needs swa.every_steps (averaging by steps)".into(),
            });
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
        self.schedule()?;
        Ok(())
    }
}

fn invalid(key: &str, value: impl std::fmt::Display, allowed: &str) -> ExperimentError {
    ExperimentError::Value {
        key: key.into(),
        message: format!("invalid value {value} for `{key}`: expected {allowed}"),
    }
}

/// A quantizer spec's error, at the key it names under `section`
/// (`quant.weight.wl`).
fn spec_error(section: &str, e: swalp_core::SpecError) -> ExperimentError {
    use swalp_core::SpecError;
    let key = match &e {
        SpecError::InvalidValue { key, .. } | SpecError::MissingKey { key, .. } => {
            format!("{section}.{key}")
        }
        SpecError::UnknownKey { key, context, .. } => {
            // `context` is `weight (fixed)` for a point's spec.
            match context.split_whitespace().next() {
                Some(point) if section == "quant" && point != "quant" => {
                    format!("{section}.{point}.{key}")
                }
                _ => format!("{section}.{key}"),
            }
        }
        _ => section.to_string(),
    };
    ExperimentError::Value {
        key,
        message: format!("{section}: {e}"),
    }
}

/// Where an experiment's values came from: the file's text, and the
/// `--set` overrides given on top of it.
struct Source<'a> {
    path: &'a Path,
    text: &'a str,
    /// `(dotted key, the override as given)`.
    overrides: Vec<(String, &'a str)>,
}

impl<'a> Source<'a> {
    fn new(path: &'a Path, text: &'a str, overrides: &'a [String]) -> Self {
        let overrides = overrides
            .iter()
            .filter_map(|item| {
                let (key, _) = item.split_once('=')?;
                Some((key.trim().to_string(), item.as_str()))
            })
            .collect();
        Source {
            path,
            text,
            overrides,
        }
    }

    /// The `--set` that gave `key` its value (or the table holding it).
    fn overridden(&self, key: &str) -> Option<&'a str> {
        let under =
            |outer: &str, inner: &str| inner == outer || inner.starts_with(&format!("{outer}."));
        self.overrides
            .iter()
            .rev()
            .find(|(k, _)| under(k, key) || under(key, k))
            .map(|(_, item)| *item)
    }

    /// An error about `key`: at its line in the file, or naming the
    /// `--set` that gave it.
    fn at(&self, key: Option<&str>, message: String, line: Option<usize>) -> ExperimentError {
        // A point's value it inherits from `quant.default` comes from there.
        let inherited = key.and_then(|k| {
            let rest = k.strip_prefix("quant.")?;
            let (_, name) = rest.split_once('.')?;
            let written = self.overridden(k).is_some() || key_written(self.text, k);
            (!written).then(|| format!("quant.default.{name}"))
        });
        let key = inherited.as_deref().or(key);
        if let Some(item) = key.and_then(|k| self.overridden(k)) {
            return ExperimentError::File {
                path: self.path.into(),
                line: None,
                message: format!("{message} (from --set {item})"),
            };
        }
        let line = key.and_then(|k| line_of_key(self.text, k)).or(line);
        ExperimentError::File {
            path: self.path.into(),
            line,
            message,
        }
    }

    /// Gives a value error its place.
    fn locate(&self, error: ExperimentError) -> ExperimentError {
        match error {
            ExperimentError::Value { key, message } => self.at(Some(&key), message, None),
            other => other,
        }
    }

    /// A one-line error from TOML parsing or the schema, on `text` (the
    /// file's, or the document with the overrides applied), with the
    /// closest valid key suggested for unknown ones.
    fn toml_error(&self, text: &str, e: &toml::de::Error) -> ExperimentError {
        // An error about the whole document (a missing section) has no
        // line or key.
        let span = e
            .span()
            .filter(|s| !(s.start == 0 && s.end >= text.trim_end().len()));
        let span_line = span
            .clone()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        let mut message = e.message().trim().replace('\n', " ");
        if let Some(suggestion) = suggest_field(&message) {
            message.push_str(&format!(" (did you mean `{suggestion}`?)"));
        }
        let key = span.and_then(|s| key_path(text, s.start));
        if let Some(key) = &key {
            message = format!("{key}: {message}");
        }
        // A line of the file itself is right as it is; one of the merged
        // document is not a line of the file.
        let line = (text == self.text).then_some(span_line).flatten();
        self.at(key.as_deref(), message, line)
    }
}

/// How much of a dotted key (`optim.lr`, `quant.weight.wl` inside an
/// inline table) a TOML text writes: the parts present, from the first,
/// and the span of the deepest of them.
fn written_parts(text: &str, dotted: &str) -> (usize, Option<std::ops::Range<usize>>) {
    let Ok(doc) = toml_edit::ImDocument::parse(text) else {
        return (0, None);
    };
    let mut table: &dyn toml_edit::TableLike = doc.as_table();
    let (mut found, mut span) = (0, None);
    for part in dotted.split('.') {
        let Some((key, item)) = table.get_key_value(part) else {
            break;
        };
        found += 1;
        span = key.span().or(span);
        match item.as_table_like() {
            Some(inner) => table = inner,
            None => break,
        }
    }
    (found, span)
}

/// The line (1-based) of the deepest part of a dotted key present in a
/// TOML text.
fn line_of_key(text: &str, dotted: &str) -> Option<usize> {
    let start = written_parts(text, dotted).1?.start.min(text.len());
    Some(text[..start].matches('\n').count() + 1)
}

/// A value written on the command line: TOML (`0.1`, `"x"`, `[1, 2]`,
/// `{ wl = 8 }`), or else the text itself as a string (a bare word).
pub fn parse_value(raw: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.trim().to_string()))
}

/// Sets `key.path` in `doc` to `value`, parsed as TOML (a bare word is a
/// string).
fn apply_override(doc: &mut toml::Table, item: &str) -> Result<(), ExperimentError> {
    let bad = || ExperimentError::Set {
        item: item.into(),
        problem: "expected key.path=value".into(),
    };
    let (path, raw) = item.split_once('=').ok_or_else(bad)?;
    let keys: Vec<&str> = path.trim().split('.').collect();
    if keys.iter().any(|k| k.is_empty()) {
        return Err(bad());
    }
    let value = parse_value(raw);
    let (last, parents) = keys.split_last().ok_or_else(bad)?;
    let mut table = doc;
    for key in parents {
        let entry = table
            .entry(key.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = entry.as_table_mut().ok_or_else(|| ExperimentError::Set {
            item: item.into(),
            problem: format!("`{key}` is not a table"),
        })?;
    }
    table.insert(last.to_string(), value);
    Ok(())
}

/// The dotted key (`optim.lr`, `quant.weight.wl` inside an inline table)
/// whose key or value holds byte `offset` of a TOML text, from the spans of
/// the parsed document; the table whose header holds it; `None` when the
/// text does not parse.
fn key_path(text: &str, offset: usize) -> Option<String> {
    let doc = toml_edit::ImDocument::parse(text).ok()?;
    key_at(doc.as_table(), "", offset)
}

fn key_at(table: &dyn toml_edit::TableLike, prefix: &str, offset: usize) -> Option<String> {
    let holds = |span: Option<std::ops::Range<usize>>| span.is_some_and(|s| s.contains(&offset));
    for (name, item) in table.iter() {
        let dotted = format!("{prefix}{name}");
        let key_span = table.get_key_value(name).and_then(|(k, _)| k.span());
        if let Some(inner) = item.as_table_like() {
            let deeper = key_at(inner, &format!("{dotted}."), offset);
            let own = match item {
                toml_edit::Item::Table(t) => t.span(),
                _ => None,
            };
            let whole = match (key_span.clone(), item.span()) {
                (Some(k), Some(v)) => Some(k.start..v.end),
                (None, v) => v,
                (k, None) => k,
            };
            if deeper.is_some() {
                return deeper;
            }
            if holds(own) || holds(whole) {
                return Some(dotted);
            }
            continue;
        }
        let whole = match (key_span, item.span()) {
            (Some(k), Some(v)) => Some(k.start..v.end),
            (k, v) => k.or(v),
        };
        if holds(whole) {
            return Some(dotted);
        }
    }
    None
}

/// Whether every part of a dotted key is written in a TOML text.
fn key_written(text: &str, dotted: &str) -> bool {
    written_parts(text, dotted).0 == dotted.split('.').count()
}

/// For serde's "unknown field `x`, expected one of `a`, `b`" messages.
fn suggest_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (given, rest) = rest.split_once('`')?;
    let expected: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
    swalp_core::error::closest(given, expected.iter().copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "[optim]\nlr = 0.1 # rate\n\n[quant]\nweight = { format = \"fixed\", wl = 8 }\n[train]\nepochs = 2\n";

    #[test]
    fn keys_are_found_from_spans() {
        let at = |needle: &str| key_path(TEXT, TEXT.find(needle).unwrap());
        assert_eq!(at("lr").as_deref(), Some("optim.lr"));
        assert_eq!(at("0.1").as_deref(), Some("optim.lr"));
        assert_eq!(at("wl").as_deref(), Some("quant.weight.wl"));
        assert_eq!(at("\"fixed\"").as_deref(), Some("quant.weight.format"));
        assert_eq!(at("[train]").as_deref(), Some("train"));
        assert_eq!(at("# rate"), None);
        assert_eq!(key_path("lr = = 1", 3), None, "not TOML: no key");
    }

    #[test]
    fn written_keys_are_told_from_inherited_ones() {
        assert!(key_written(TEXT, "quant.weight.wl"));
        assert!(!key_written(TEXT, "quant.weight.fl"));
        assert!(!key_written(TEXT, "quant.activation.wl"));
        assert!(key_written(TEXT, "train"));
    }

    #[test]
    fn an_inherited_value_is_blamed_on_its_set() {
        let text = "[experiment]\nname = \"x\"\n[data]\nname = \"synthetic-linreg\"\n\
                    [model]\nname = \"linreg\"\n[quant]\ndefault = { format = \"fixed\", wl = 8, fl = 4 }\n\
                    [optim]\nlr = 0.1\n[train]\nepochs = 1\nbatch_size = 2\n";
        let set = vec!["quant.default.fl=\"x\"".to_string()];
        let err = Experiment::parse(text, Path::new("e.toml"), &set).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("(from --set quant.default.fl=\"x\")"),
            "{err}"
        );
        let err = Experiment::parse(
            &text.replace("fl = 4", "fl = 999"),
            Path::new("e.toml"),
            &[],
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("e.toml:8:"), "{err}");
    }
}
