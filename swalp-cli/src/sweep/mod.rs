//! Sweeps: one experiment run over a grid of values and seeds, each run in
//! its own directory, described by a manifest written before any run
//! starts, and summarised as the paper's table.
//!
//! This module plans a sweep ([`SweepSpec`] → [`Plan`]), writes and reads
//! its manifest (`DIR/sweep.json`), runs one entry of it ([`run_task`]:
//! skips a finished run, resumes an interrupted one from its newest valid
//! checkpoint, starts a failed or new one afresh) and tells each run's
//! state ([`run_state`]). Executors, which start tasks as processes (one at
//! a time or several, locally or as a Slurm job array), belong to front
//! ends; [`report`] builds the table and the curves.
//!
//! A grid maps keys (any `--set` key) to values. Values are a list (labels
//! made from the values) or a table of named values; several keys joined
//! with `+` move together (their values are lists of the same length):
//!
//! ```toml
//! [sweep]
//! seeds = [100, 200, 300]
//! [sweep.grid]
//! "data.name" = ["cifar10", "cifar100"]
//! quant = { fp = {}, bfp8 = { default = { format = "bfp", wl = 8 } } }
//! "model.name+optim.lr" = [["vgg16", 0.05], ["preresnet164", 0.1]]
//! ```

pub mod report;

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use swalp_core::distributed::ProcessGroup;

use crate::experiment::observe::Observer;
use crate::experiment::rundir::{Claim, LOCK_FILE};
use crate::experiment::{self, Experiment, ExperimentError, RunOptions};

/// The manifest's file name in the sweep directory.
pub const MANIFEST: &str = "sweep.json";

/// The log of a run's task, in its directory.
pub const LOG: &str = "log.txt";

/// The manifest format.
const VERSION: u32 = 1;

/// One axis of the grid: keys that move together and their values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Axis {
    /// Dotted keys (`optim.lr`); several when zipped with `+`.
    pub keys: Vec<String>,
    /// Each value: its label and one TOML value per key.
    pub values: Vec<(String, Vec<toml::Value>)>,
}

/// What to sweep: seeds and a grid, from `[sweep]` and the command line.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SweepSpec {
    /// The seeds every grid point runs with (none: the experiment's seed).
    pub seeds: Vec<u64>,
    /// The axes, in order (the last varies fastest).
    pub grid: Vec<Axis>,
    /// `sbatch` options from `[sweep.slurm]` (`--key=value`).
    pub slurm: Vec<String>,
}

/// Why a sweep cannot be planned, run or reported.
#[derive(Debug)]
pub enum SweepError {
    /// The `[sweep]` table or a `--grid`/`--seeds` value is malformed.
    Spec {
        /// Where (`[sweep] grid."optim.lr"`, `--grid optim.lr=...`).
        place: String,
        /// What is wrong and what is allowed.
        problem: String,
    },
    /// A run of the grid is not a valid experiment.
    Run {
        /// The run's name (its grid values).
        name: String,
        /// Why.
        source: Box<ExperimentError>,
    },
    /// The directory holds another sweep.
    Different {
        /// The directory.
        dir: PathBuf,
        /// A run whose configuration differs.
        run: String,
    },
    /// A file of the sweep (the manifest, the report) cannot be read or
    /// written.
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: experiment::Cause,
    },
    /// The directory holds no sweep.
    NotASweep {
        /// The directory.
        dir: PathBuf,
    },
    /// No such entry in the manifest.
    NoSuchRun {
        /// The index asked for.
        index: usize,
        /// Runs in the manifest.
        runs: usize,
    },
}

impl SweepError {
    /// Whether the user can fix it (exit code 2).
    pub fn is_usage(&self) -> bool {
        match self {
            SweepError::Run { source, .. } => source.is_usage(),
            // A missing or malformed sweep.json is the user's (a wrong
            // DIR); a failing disk is not.
            SweepError::File { source, .. } => source
                .downcast_ref::<std::io::Error>()
                .map_or(true, crate::atomic::io_error_is_users),
            _ => true,
        }
    }
}

impl fmt::Display for SweepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SweepError::Spec { place, problem } => write!(f, "{place}: {problem}"),
            SweepError::Run { name, source } => write!(f, "sweep run {name}: {source}"),
            SweepError::Different { dir, run } => write!(
                f,
                "{} holds another sweep (run {run} has a different configuration); choose \
                 another --out, or --force to reuse it (runs whose configuration changed start \
                 afresh)",
                dir.display()
            ),
            SweepError::File { path, source } => {
                let reason = source.to_string();
                let reason = reason.lines().next().unwrap_or("").trim();
                write!(f, "{}: {reason}", path.display())
            }
            SweepError::NotASweep { dir } => write!(
                f,
                "{} is not a sweep directory (it has no {MANIFEST}); give the --out of a \
                 `swalp-cli sweep`",
                dir.display()
            ),
            SweepError::NoSuchRun { index, runs } => write!(
                f,
                "the sweep has no run {index}; its runs are 0..{}",
                runs.saturating_sub(1)
            ),
        }
    }
}

impl std::error::Error for SweepError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SweepError::Run { source, .. } => Some(source.as_ref()),
            SweepError::File { source, .. } => Some(source.as_ref()),
            _ => None,
        }
    }
}

fn spec_error(place: impl Into<String>, problem: impl Into<String>) -> SweepError {
    SweepError::Spec {
        place: place.into(),
        problem: problem.into(),
    }
}

impl SweepSpec {
    /// The `[sweep]` table of an experiment (`seeds`, `grid`, `slurm`).
    pub fn from_table(table: &toml::Table) -> Result<Self, SweepError> {
        let mut spec = SweepSpec::default();
        for (key, value) in table {
            let place = format!("[sweep] {key}");
            match key.as_str() {
                "seeds" => {
                    let list = value
                        .as_array()
                        .ok_or_else(|| spec_error(&place, "expected a list of integer seeds"))?;
                    spec.seeds = list
                        .iter()
                        .map(|v| seed_of(v).ok_or_else(|| not_a_seed(&place, v)))
                        .collect::<Result<_, _>>()?;
                }
                "grid" => {
                    let grid = value.as_table().ok_or_else(|| {
                        spec_error(&place, "expected a table of keys and their values")
                    })?;
                    for (keys, values) in grid {
                        spec.grid
                            .push(axis(keys, values, &format!("[sweep] grid.{keys:?}"))?);
                    }
                }
                "slurm" => {
                    let options = value
                        .as_table()
                        .ok_or_else(|| spec_error(&place, "expected a table of sbatch options"))?;
                    spec.slurm = options
                        .iter()
                        .map(|(k, v)| match v {
                            toml::Value::String(s) => format!("--{k}={s}"),
                            toml::Value::Boolean(true) => format!("--{k}"),
                            other => format!("--{k}={other}"),
                        })
                        .collect();
                }
                other => {
                    let known = ["seeds", "grid", "slurm"];
                    let hint = swalp_core::error::closest(other, known)
                        .map(|k| format!(" (did you mean `{k}`?)"))
                        .unwrap_or_default();
                    return Err(spec_error(
                        "[sweep]",
                        format!("unknown key `{other}`{hint}; allowed: seeds, grid, slurm"),
                    ));
                }
            }
        }
        spec.check_keys()?;
        Ok(spec)
    }

    /// Applies `--grid KEY=V1,V2,...` items (replacing the file's axis of
    /// the same keys) and `--seeds` (replacing the file's seeds).
    pub fn override_with(&mut self, grid: &[String], seeds: &[String]) -> Result<(), SweepError> {
        for item in grid {
            let place = format!("--grid {item}");
            let (keys, raw) = item
                .split_once('=')
                .ok_or_else(|| spec_error(&place, "expected KEY=V1,V2,..."))?;
            let values: Vec<toml::Value> = split_top_level(raw)
                .iter()
                .map(|v| crate::experiment::config::parse_value(v))
                .collect();
            let new = axis(keys.trim(), &toml::Value::Array(values), &place)?;
            match self.grid.iter_mut().find(|a| a.keys == new.keys) {
                Some(old) => *old = new,
                None => self.grid.push(new),
            }
        }
        if !seeds.is_empty() {
            self.seeds = seeds
                .iter()
                .map(|s| {
                    s.trim().parse::<u64>().map_err(|_| {
                        spec_error(
                            format!("--seeds {}", seeds.join(",")),
                            format!("{s:?} is not a seed; expected integers 0..=2^64-1"),
                        )
                    })
                })
                .collect::<Result<_, _>>()?;
        }
        self.check_keys()
    }

    /// No key on two axes, no seed twice.
    fn check_keys(&self) -> Result<(), SweepError> {
        let mut seen = BTreeSet::new();
        for key in self.grid.iter().flat_map(|a| &a.keys) {
            if !seen.insert(key) {
                return Err(spec_error(
                    "grid",
                    format!("key `{key}` is swept twice; give it one list of values"),
                ));
            }
        }
        let mut seeds = BTreeSet::new();
        if let Some(seed) = self.seeds.iter().find(|s| !seeds.insert(**s)) {
            return Err(spec_error(
                "seeds",
                format!("seed {seed} is listed twice; each seed is one run"),
            ));
        }
        Ok(())
    }
}

fn seed_of(v: &toml::Value) -> Option<u64> {
    v.as_integer().and_then(|i| u64::try_from(i).ok())
}

fn not_a_seed(place: &str, v: &toml::Value) -> SweepError {
    spec_error(
        place,
        format!("{v} is not a seed; expected integers 0..=2^63-1"),
    )
}

/// One axis from its keys (`a.b` or `a.b+c.d`) and its values (a list, or
/// a table of named values).
fn axis(keys: &str, values: &toml::Value, place: &str) -> Result<Axis, SweepError> {
    let keys: Vec<String> = keys.split('+').map(|k| k.trim().to_string()).collect();
    if keys
        .iter()
        .any(|k| k.is_empty() || k.split('.').any(str::is_empty))
    {
        return Err(spec_error(
            place,
            "expected a dotted key (optim.lr), or keys joined with + (model.name+optim.lr)",
        ));
    }
    let named: Vec<(Option<String>, &toml::Value)> = match values {
        toml::Value::Array(list) => list.iter().map(|v| (None, v)).collect(),
        toml::Value::Table(table) => table.iter().map(|(n, v)| (Some(n.clone()), v)).collect(),
        _ => {
            return Err(spec_error(
                place,
                "expected a list of values, or a table of named values",
            ))
        }
    };
    if named.is_empty() {
        return Err(spec_error(place, "the list of values is empty"));
    }
    let mut out = Vec::new();
    for (name, value) in named {
        let parts = if keys.len() == 1 {
            vec![value.clone()]
        } else {
            match value.as_array() {
                Some(list) if list.len() == keys.len() => list.clone(),
                _ => {
                    return Err(spec_error(
                        place,
                        format!(
                            "each value of {} keys joined with + is a list of {} values, \
                             one per key; got {value}",
                            keys.len(),
                            keys.len()
                        ),
                    ))
                }
            }
        };
        let label = name.unwrap_or_else(|| label_of(&keys[0], &parts[0]));
        out.push((sanitize(&label), parts));
    }
    let mut labels = BTreeSet::new();
    if let Some((label, _)) = out.iter().find(|(l, _)| !labels.insert(l.clone())) {
        return Err(spec_error(
            place,
            format!("two values make the same run name `{label}`; name them in a table"),
        ));
    }
    Ok(Axis { keys, values: out })
}

/// A short label for one value: a string as it is, anything else after
/// the key's last part (`lr-0.05`, `wl-8`); a table by its leaf values.
fn label_of(key: &str, value: &toml::Value) -> String {
    fn leaves(v: &toml::Value, out: &mut Vec<String>) {
        match v {
            toml::Value::Table(t) => t.values().for_each(|v| leaves(v, out)),
            toml::Value::Array(a) => a.iter().for_each(|v| leaves(v, out)),
            toml::Value::String(s) => out.push(s.clone()),
            other => out.push(other.to_string()),
        }
    }
    let last = key.rsplit('.').next().unwrap_or(key);
    match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Table(t) if t.is_empty() => "none".into(),
        toml::Value::Table(_) | toml::Value::Array(_) => {
            let mut parts = Vec::new();
            leaves(value, &mut parts);
            let joined = parts.join("-");
            joined.chars().take(32).collect()
        }
        toml::Value::Float(v) if *v != 0.0 && (v.abs() >= 1e5 || v.abs() < 1e-3) => {
            format!("{last}-{v:e}")
        }
        toml::Value::Float(v) => format!("{last}-{v}"),
        other => format!("{last}-{other}"),
    }
}

/// Keeps a label usable as a directory name.
fn sanitize(label: &str) -> String {
    let clean: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+') {
                c
            } else {
                '_'
            }
        })
        .collect();
    match clean.trim_matches('.') {
        "" => "_".into(),
        s => s.to_string(),
    }
}

/// Splits `a,b,{ c = 1, d = 2 },[1, 2]` at the commas outside brackets,
/// braces and quotes.
fn split_top_level(text: &str) -> Vec<String> {
    let (mut parts, mut current, mut depth, mut quote) = (Vec::new(), String::new(), 0i32, None);
    for c in text.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '{' | '[') => depth += 1,
            (None, '}' | ']') => depth -= 1,
            (None, ',') if depth == 0 => {
                parts.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    parts.push(current);
    parts.into_iter().map(|p| p.trim().to_string()).collect()
}

/// One run of a sweep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// Its position in the manifest (the task index).
    pub index: usize,
    /// The grid point's name (`cifar10_bfp8`), shared by its seeds.
    pub point: String,
    /// The seed.
    pub seed: u64,
    /// Its directory, relative to the sweep directory.
    pub dir: PathBuf,
    /// The grid values, as `--set` items.
    pub sets: Vec<String>,
    /// The resolved experiment, as TOML.
    pub config: String,
}

/// A planned sweep: the manifest's contents.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The manifest format.
    pub version: u32,
    /// The experiment file, as given.
    pub experiment: PathBuf,
    /// The working directory relative paths in the experiment are read
    /// from (tasks run there).
    pub workdir: PathBuf,
    /// The axes.
    pub grid: Vec<Axis>,
    /// The seeds.
    pub seeds: Vec<u64>,
    /// `sbatch` options from `[sweep.slurm]`.
    pub slurm: Vec<String>,
    /// Every run, grid points in order, seeds innermost.
    pub runs: Vec<Run>,
}

impl Plan {
    /// Plans the sweep of the experiment at `path` with `sets` (`--set`
    /// items applied to every run) and `spec`: every run's experiment is
    /// parsed and, with `check`, checked ([`experiment::check`], once per
    /// grid point) before anything is written.
    pub fn new(
        path: &Path,
        sets: &[String],
        spec: &SweepSpec,
        check: bool,
    ) -> Result<Plan, SweepError> {
        let text = std::fs::read_to_string(path).map_err(|e| SweepError::Run {
            name: "base".into(),
            source: Box::new(ExperimentError::Read {
                path: path.into(),
                what: "experiment file",
                source: e.into(),
            }),
        })?;
        let mut runs = Vec::new();
        for point in points(&spec.grid) {
            let name = if point.is_empty() {
                "base".to_string()
            } else {
                point
                    .iter()
                    .map(|(label, _)| label.as_str())
                    .collect::<Vec<_>>()
                    .join("_")
            };
            let grid_sets: Vec<String> = point.iter().flat_map(|(_, s)| s.clone()).collect();
            let mut all: Vec<String> = sets.to_vec();
            all.extend(grid_sets.iter().cloned());
            let run_error = |e: ExperimentError| SweepError::Run {
                name: name.clone(),
                source: Box::new(e),
            };
            let mut base = Experiment::parse(&text, path, &all).map_err(run_error)?;
            base.sweep = None;
            if check {
                experiment::check(&base).map_err(run_error)?;
            }
            let seeds = if spec.seeds.is_empty() {
                vec![base.experiment.seed]
            } else {
                spec.seeds.clone()
            };
            for seed in seeds {
                let mut exp = base.clone();
                exp.experiment.seed = seed;
                let config = toml::to_string(&exp)
                    .map_err(|e| run_error(ExperimentError::Encode(e.into())))?;
                runs.push(Run {
                    index: runs.len(),
                    point: name.clone(),
                    seed,
                    dir: PathBuf::from(&name).join(format!("seed-{seed}")),
                    sets: grid_sets.clone(),
                    config,
                });
            }
        }
        let workdir = std::env::current_dir().map_err(|e| SweepError::File {
            path: PathBuf::from("."),
            source: e.into(),
        })?;
        Ok(Plan {
            version: VERSION,
            experiment: path.into(),
            workdir,
            grid: spec.grid.clone(),
            seeds: spec.seeds.clone(),
            slurm: spec.slurm.clone(),
            runs,
        })
    }

    /// Reads `DIR/sweep.json`.
    pub fn read(dir: &Path) -> Result<Plan, SweepError> {
        let path = dir.join(MANIFEST);
        let error = |e: experiment::Cause| SweepError::File {
            path: path.clone(),
            source: e,
        };
        let text = match std::fs::read_to_string(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(SweepError::NotASweep { dir: dir.into() })
            }
            other => other.map_err(|e| error(e.into()))?,
        };
        serde_json::from_str(&text).map_err(|e| error(e.into()))
    }

    /// Writes `DIR/sweep.json` atomically, after checking that `DIR` holds
    /// no other sweep (a run of both with another configuration) unless
    /// `force`.
    pub fn write(&self, dir: &Path, force: bool) -> Result<(), SweepError> {
        let path = dir.join(MANIFEST);
        let error = |e: experiment::Cause| SweepError::File {
            path: path.clone(),
            source: e,
        };
        if path.exists() && !force {
            let old = Plan::read(dir)?;
            for run in &self.runs {
                if let Some(o) = old.runs.iter().find(|o| o.dir == run.dir) {
                    if o.config != run.config {
                        return Err(SweepError::Different {
                            dir: dir.into(),
                            run: run.dir.display().to_string(),
                        });
                    }
                }
            }
        }
        std::fs::create_dir_all(dir).map_err(|e| error(e.into()))?;
        let text = serde_json::to_string_pretty(self).map_err(|e| error(e.into()))?;
        crate::atomic::write(&path, text.as_bytes()).map_err(|e| error(e.into()))
    }

    /// The run at `index`.
    pub fn run(&self, index: usize) -> Result<&Run, SweepError> {
        self.runs.get(index).ok_or(SweepError::NoSuchRun {
            index,
            runs: self.runs.len(),
        })
    }
}

/// The grid points: one (label, `--set` items) per axis.
fn points(grid: &[Axis]) -> Vec<Vec<(String, Vec<String>)>> {
    let mut points: Vec<Vec<(String, Vec<String>)>> = vec![vec![]];
    for axis in grid {
        let mut next = Vec::new();
        for point in &points {
            for (label, values) in &axis.values {
                let sets = axis
                    .keys
                    .iter()
                    .zip(values)
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                let mut p = point.clone();
                p.push((label.clone(), sets));
                next.push(p);
            }
        }
        points = next;
    }
    points
}

/// Where a run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// Not started.
    Pending,
    /// A process holds its directory.
    Running,
    /// Stopped with a checkpoint to resume from.
    Interrupted,
    /// Started and stopped without a result or a checkpoint.
    Failed,
    /// `result.json` written.
    Done,
}

/// The state of `run` of the sweep in `dir`.
pub fn run_state(dir: &Path, run: &Run) -> RunState {
    let run_dir = dir.join(&run.dir);
    let lock = run_dir.join(LOCK_FILE);
    if lock.exists() && !crate::atomic::is_abandoned(&lock) {
        return RunState::Running;
    }
    if run_dir.join("result.json").is_file() && stored_config_is(&run_dir, &run.config) {
        return RunState::Done;
    }
    if experiment::checkpoint::any(&run_dir).unwrap_or(false) {
        return RunState::Interrupted;
    }
    if run_dir.join(LOG).exists() {
        RunState::Failed
    } else {
        RunState::Pending
    }
}

/// Whether the run directory's `config.toml` is the experiment `config`.
fn stored_config_is(run_dir: &Path, config: &str) -> bool {
    let stored = Experiment::load(&run_dir.join("config.toml"), &[]);
    let given = Experiment::parse(config, Path::new("sweep.json"), &[]);
    match (stored, given) {
        (Ok(mut a), Ok(b)) => {
            // A run may have been extended or logged differently.
            a.log = b.log.clone();
            toml::to_string(&a).ok() == toml::to_string(&b).ok()
        }
        _ => false,
    }
}

/// What [`run_task`] did.
#[derive(Clone, Debug, PartialEq)]
pub enum TaskOutcome {
    /// The run had finished before; nothing was done.
    AlreadyDone,
    /// The run finished now (`result.json`'s contents).
    Finished(serde_json::Value),
}

/// Runs entry `index` of the sweep in `dir`, reporting to `observers`:
/// skips a finished run, continues an interrupted one from its newest
/// valid checkpoint, and starts a new or failed one afresh. With `group`
/// this process is one rank of the run (`sweep --ranks-per-run`): every
/// rank decides from the directory as it was before any of them wrote.
pub fn run_task<'o>(
    dir: &Path,
    index: usize,
    group: Option<Arc<ProcessGroup>>,
    observers: Vec<Box<dyn Observer + 'o>>,
) -> Result<TaskOutcome, SweepError> {
    let plan = Plan::read(dir)?;
    let run = plan.run(index)?;
    let run_error = |e: ExperimentError| SweepError::Run {
        name: run.dir.display().to_string(),
        source: Box::new(e),
    };
    let exp = Experiment::parse(&run.config, &dir.join(MANIFEST), &[]).map_err(run_error)?;
    let run_dir = dir.join(&run.dir);
    let claim = match run_state(dir, run) {
        RunState::Done => return Ok(TaskOutcome::AlreadyDone),
        RunState::Interrupted if stored_config_is(&run_dir, &run.config) => Claim::Resume,
        _ => Claim::Overwrite,
    };
    if let Some(g) = &group {
        g.barrier("the start of a sweep's run")
            .map_err(|e| run_error(e.into()))?;
    }
    let options = RunOptions {
        out_dir: run_dir,
        claim,
        group,
    };
    experiment::run_with(&exp, &options, observers)
        .map(TaskOutcome::Finished)
        .map_err(run_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn grids_take_lists_named_tables_and_zipped_keys() {
        let spec = SweepSpec::from_table(&table(
            r#"
seeds = [1, 2]
[grid]
"optim.lr" = [0.1, 0.05]
quant = { fp = {}, bfp8 = { default = { format = "bfp", wl = 8 } } }
"model.name+train.epochs" = [["vgg16", 300], ["preresnet164", 225]]
"#,
        ))
        .unwrap();
        assert_eq!(spec.seeds, [1, 2]);
        let lr = |v: f64| label_of("optim.lr", &toml::Value::Float(v));
        assert_eq!(
            (lr(1e30), lr(5e-4), lr(0.05), lr(1.0)),
            (
                "lr-1e30".into(),
                "lr-5e-4".into(),
                "lr-0.05".into(),
                "lr-1".into()
            )
        );
        let labels: Vec<Vec<&str>> = spec
            .grid
            .iter()
            .map(|a| a.values.iter().map(|(l, _)| l.as_str()).collect())
            .collect();
        assert_eq!(
            labels,
            [
                vec!["lr-0.1", "lr-0.05"],
                vec!["fp", "bfp8"],
                vec!["vgg16", "preresnet164"]
            ]
        );
        let points = points(&spec.grid);
        assert_eq!(points.len(), 8);
        assert_eq!(
            points[7]
                .iter()
                .flat_map(|(_, s)| s.clone())
                .collect::<Vec<_>>(),
            [
                "optim.lr=0.05",
                "quant={ default = { format = \"bfp\", wl = 8 } }",
                "model.name=\"preresnet164\"",
                "train.epochs=225"
            ]
        );
    }

    #[test]
    fn command_line_grids_split_at_top_level_commas() {
        let mut spec = SweepSpec::default();
        spec.override_with(
            &["quant.default={ format = \"bfp\", wl = 8 },{}".into()],
            &["3".into(), "4".into()],
        )
        .unwrap();
        assert_eq!(spec.grid[0].values.len(), 2);
        assert_eq!(spec.grid[0].values[0].0, "bfp-8");
        assert_eq!(spec.grid[0].values[1].0, "none");
        assert_eq!(spec.seeds, [3, 4]);
    }

    #[test]
    fn malformed_sweeps_are_refused_in_one_line() {
        for (text, expected) in [
            ("seedz = [1]", "unknown key `seedz` (did you mean `seeds`?)"),
            ("seeds = [1, \"x\"]", "\"x\" is not a seed"),
            ("seeds = [1, 1]", "seed 1 is listed twice"),
            (
                "grid = { \"optim.lr\" = [] }",
                "the list of values is empty",
            ),
            ("grid = { \"optim.lr\" = 0.1 }", "expected a list of values"),
            ("grid = { \"a+b\" = [[1]] }", "is a list of 2 values"),
            ("grid = { \"a..b\" = [1] }", "expected a dotted key"),
        ] {
            let err = SweepSpec::from_table(&table(text)).unwrap_err().to_string();
            assert!(err.contains(expected), "{text}: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
        let mut spec = SweepSpec::from_table(&table("grid = { \"optim.lr\" = [1] }")).unwrap();
        let err = spec
            .override_with(&["optim.lr+optim.momentum=[1, 2]".into()], &[])
            .unwrap_err();
        assert!(err.to_string().contains("swept twice"), "{err}");
        let err = spec.override_with(&[], &["x".into()]).unwrap_err();
        assert!(err.to_string().contains("\"x\" is not a seed"), "{err}");
    }
}
