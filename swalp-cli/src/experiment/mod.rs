//! Experiments: a TOML file describing data, model, quantization, optimizer,
//! schedule and SWA, run end to end into an output directory.

mod build;
mod check;
pub mod checkpoint;
pub mod config;
pub mod host;
pub mod observe;
mod parallel;
pub mod run;
pub mod rundir;
pub mod tensorboard;

use std::fmt;
use std::path::PathBuf;

pub use check::{check, in_trial_step};
pub use config::Experiment;
pub use observe::Divergence;
pub use parallel::join_from_env;
pub use run::{file_observers, run, run_with, RunOptions};
pub use rundir::{Claim, ClaimProblem};

/// A cause kept as the error's source.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What is wrong with a `--resume` directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResumeProblem {
    /// It holds no checkpoint.
    NoCheckpoint,
    /// The experiment given differs from the stored one in this section.
    Differs {
        /// The top-level section that differs.
        section: String,
        /// The stored experiment file, to run instead.
        stored: PathBuf,
    },
    /// The checkpoint holds a variable the model does not have.
    UnknownVariable {
        /// The variable's name.
        name: String,
    },
    /// The run has done more epochs than the experiment now asks for.
    FewerEpochs {
        /// Epochs done.
        done: u64,
        /// `train.epochs` given.
        asked: u64,
    },
    /// The run was trained by another number of ranks.
    WorldSize {
        /// The ranks that trained it.
        was: u64,
        /// The ranks resuming it.
        now: u64,
    },
}

/// What is wrong with a checkpoint.
#[derive(Debug)]
pub enum CheckpointProblem {
    /// It has no `sha256sums` (never completed, or not written by swalp).
    NoDigests,
    /// A file differs from its digest, or is not listed.
    Mismatch {
        /// The file.
        file: String,
    },
    /// A file cannot be read or decoded.
    Unreadable {
        /// The file.
        file: String,
        /// Why.
        source: Cause,
    },
    /// Its position does not fit the run (`state.json` edited, or another
    /// experiment's checkpoint).
    Inconsistent {
        /// What does not fit.
        what: String,
    },
    /// A saved model variable holds NaN or infinity.
    NonFinite {
        /// The variable.
        name: String,
    },
}

impl fmt::Display for CheckpointProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckpointProblem::NoDigests => {
                f.write_str("it has no sha256sums, so it was never completed")
            }
            CheckpointProblem::Mismatch { file } => {
                write!(
                    f,
                    "{file} does not match its digest in sha256sums (damaged)"
                )
            }
            CheckpointProblem::Unreadable { file, source } => {
                let reason = source.to_string();
                write!(f, "{file}: {}", reason.lines().next().unwrap_or("").trim())
            }
            CheckpointProblem::Inconsistent { what } => {
                write!(f, "its position does not fit this run: {what}")
            }
            CheckpointProblem::NonFinite { name } => {
                write!(f, "model variable `{name}` holds NaN or infinity")
            }
        }
    }
}

/// Why an experiment could not be loaded or run.
#[derive(Debug)]
pub enum ExperimentError {
    /// A file (the experiment, or part of a checkpoint) cannot be read.
    Read {
        /// The file.
        path: PathBuf,
        /// What it is, for the message (`experiment file`, `checkpoint`).
        what: &'static str,
        /// Why.
        source: Cause,
    },
    /// The file is not valid TOML or does not fit the schema.
    File {
        /// The file.
        path: PathBuf,
        /// The line, when known.
        line: Option<usize>,
        /// What is wrong, naming the key.
        message: String,
    },
    /// A `--set` item that is not `key.path=value` over tables.
    Set {
        /// The item as given.
        item: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A run directory that cannot be claimed.
    RunDir {
        /// The directory.
        run_dir: PathBuf,
        /// Why not.
        problem: ClaimProblem,
    },
    /// A checkpoint that cannot be used.
    Checkpoint {
        /// The checkpoint directory.
        dir: PathBuf,
        /// What is wrong with it.
        problem: CheckpointProblem,
    },
    /// A run directory that cannot be resumed.
    Resume {
        /// The directory.
        run_dir: PathBuf,
        /// Why not.
        problem: ResumeProblem,
    },
    /// Writing the configuration or a result as text failed (a bug).
    Encode(Cause),
    /// A value at `key` (dotted, `optim.lr`) is out of range or
    /// inconsistent with another; [`Experiment::parse`] turns it into a
    /// [`File`](Self::File) error at the key's line (or its `--set`).
    Value {
        /// The key.
        key: String,
        /// What is wrong, naming the key and what is allowed.
        message: String,
    },
    /// The requested device is not available.
    Device(String),
    /// An output file cannot be written.
    Output {
        /// The file.
        path: PathBuf,
        /// Why.
        source: Cause,
    },
    /// The data set cannot be loaded.
    Data(crate::data::error::DataError),
    /// The model cannot be built for this data.
    Model(crate::models::ModelError),
    /// Initial weights (`model.init`) that do not fit, or exported weights
    /// that cannot be written.
    Weights(crate::models::weights::WeightsError),
    /// Training failed.
    Training(swalp_core::Error),
    /// A loss or parameter became NaN or infinite (with
    /// `train.on_nonfinite = "stop"`); the epochs before are in the run
    /// directory's metrics.
    Diverged {
        /// Where and what.
        divergence: Divergence,
        /// The newest checkpoint, all finite, if one was written.
        last_checkpoint: Option<PathBuf>,
        /// The run directory.
        run_dir: PathBuf,
    },
    /// The experiment failed its trial step ([`check`]): a quantizer or
    /// model that cannot work on the tensors this experiment produces.
    Trial(swalp_core::Error),
    /// Setting up or using the process group of a data-parallel run failed.
    Distributed(swalp_core::distributed::DistributedError),
    /// The ranks of a data-parallel run no longer hold the same state (a
    /// bug: found by `log.check_replicas_every`).
    Replicas {
        /// Optimizer steps done.
        step: u64,
        /// The first variable or state tensor that differs.
        name: String,
    },
    /// Ctrl-C: a checkpoint was written and the run can be resumed.
    Interrupted {
        /// The run directory to pass to `--resume`.
        run_dir: PathBuf,
    },
}

impl ExperimentError {
    /// Whether the user can fix it by changing the input (exit code 2).
    pub fn is_usage(&self) -> bool {
        match self {
            ExperimentError::Weights(e) => e.is_usage(),
            ExperimentError::Output { source, .. } => io_cause_is_users(source.as_ref()),
            ExperimentError::Checkpoint {
                problem: CheckpointProblem::Unreadable { source, .. },
                ..
            } => io_cause_is_users(source.as_ref()),
            ExperimentError::Distributed(e) => matches!(
                e,
                swalp_core::distributed::DistributedError::Environment { .. }
                    | swalp_core::distributed::DistributedError::Tensors(_)
            ),
            ExperimentError::Training(_)
            | ExperimentError::Replicas { .. }
            | ExperimentError::Diverged { .. }
            | ExperimentError::Encode(_) => false,
            _ => true,
        }
    }
}

/// "1 process" or "N ranks".
fn processes(n: u64) -> String {
    if n == 1 {
        "1 process".into()
    } else {
        format!("{n} ranks")
    }
}

impl fmt::Display for ExperimentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExperimentError::Read { path, what, source } => {
                write!(f, "cannot read {what} {}: {source}", path.display())
            }
            ExperimentError::File {
                path,
                line: Some(line),
                message,
            } => write!(f, "{}:{line}: {message}", path.display()),
            ExperimentError::File {
                path,
                line: None,
                message,
            } => write!(f, "{}: {message}", path.display()),
            ExperimentError::Device(message) | ExperimentError::Value { message, .. } => {
                f.write_str(message)
            }
            ExperimentError::Set { item, problem } => write!(f, "--set {item:?}: {problem}"),
            ExperimentError::Resume { run_dir, problem } => {
                let dir = run_dir.display();
                match problem {
                    ResumeProblem::NoCheckpoint => {
                        write!(f, "--resume {dir}: no checkpoint in {dir}/checkpoints")
                    }
                    ResumeProblem::Differs { section, stored } => write!(
                        f,
                        "--resume {dir}: the experiment differs from the one the run started \
                         with in [{section}] (only train.epochs and [log] may change); run it \
                         with the stored {}",
                        stored.display()
                    ),
                    ResumeProblem::UnknownVariable { name } => write!(
                        f,
                        "--resume {dir}: checkpoint has variable `{name}` the model lacks"
                    ),
                    ResumeProblem::FewerEpochs { done, asked } => write!(
                        f,
                        "--resume {dir}: the run has done {done} epochs but train.epochs = \
                         {asked}; give train.epochs >= {done}"
                    ),
                    ResumeProblem::WorldSize { was, now } => write!(
                        f,
                        "--resume {dir}: the run was trained by {} and is resumed by {}; \
                         resume it with {was} (each global batch is split by rank)",
                        processes(*was),
                        processes(*now)
                    ),
                }
            }
            ExperimentError::RunDir { run_dir, problem } => {
                let dir = run_dir.display();
                match problem {
                    ClaimProblem::NotADirectory => write!(
                        f,
                        "output directory {dir} is a file, not a directory; choose another"
                    ),
                    ClaimProblem::Busy => write!(
                        f,
                        "output directory {dir} is in use by another run (it holds \
                         {dir}/{}); wait for that run or choose another directory",
                        rundir::LOCK_FILE
                    ),
                    ClaimProblem::Occupied { found } => write!(
                        f,
                        "output directory {dir} already holds a run ({found}); continue it \
                         with --resume {dir}, choose another --out, or replace it with \
                         --overwrite"
                    ),
                }
            }
            ExperimentError::Checkpoint { dir, problem } => {
                write!(f, "cannot use checkpoint {}: {problem}", dir.display())
            }
            ExperimentError::Trial(e) => {
                let text = e.to_string();
                // The quantizer's own words, without the layers that
                // carried them out of libtorch's autograd.
                let reason = [
                    "libtorch: ",
                    "Internal torch error: ",
                    "quantization hook: ",
                ]
                .iter()
                .fold(text.lines().next().unwrap_or("").trim(), |t, prefix| {
                    t.strip_prefix(prefix).unwrap_or(t)
                });
                write!(f, "the experiment fails on its first step: {reason}")
            }
            ExperimentError::Encode(e) => write!(f, "internal error: encoding failed: {e}"),
            ExperimentError::Output { path, source } => {
                write!(
                    f,
                    "cannot write {}: {}",
                    path.display(),
                    io_text(source.as_ref())
                )
            }
            ExperimentError::Data(e) => e.fmt(f),
            ExperimentError::Model(e) => e.fmt(f),
            ExperimentError::Weights(e) => e.fmt(f),
            ExperimentError::Training(e) => write!(f, "training failed: {e}"),
            ExperimentError::Diverged {
                divergence,
                last_checkpoint,
                run_dir,
            } => {
                write!(
                    f,
                    "training diverged: {divergence}; lower optim.lr or check the data and \
                     quantizers, or set train.on_nonfinite = \"continue\" to train on; "
                )?;
                match last_checkpoint {
                    Some(dir) => write!(
                        f,
                        "the last finite checkpoint is {}, the epochs before are in {}",
                        dir.display(),
                        run_dir.join("metrics.jsonl").display()
                    ),
                    None => f.write_str("no checkpoint was written before it"),
                }
            }
            ExperimentError::Distributed(e) => e.fmt(f),
            ExperimentError::Replicas { step, name } => write!(
                f,
                "internal error: after {step} steps the ranks hold different values of \
                 `{name}` (data-parallel replicas must stay equal); please report it"
            ),
            ExperimentError::Interrupted { run_dir } => write!(
                f,
                "interrupted; checkpoint written, continue with --resume {}",
                run_dir.display()
            ),
        }
    }
}

impl std::error::Error for ExperimentError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ExperimentError::Data(e) => Some(e),
            ExperimentError::Model(e) => Some(e),
            ExperimentError::Weights(e) => Some(e),
            ExperimentError::Training(e) | ExperimentError::Trial(e) => Some(e),
            ExperimentError::Distributed(e) => Some(e),
            ExperimentError::Checkpoint {
                problem: CheckpointProblem::Unreadable { source, .. },
                ..
            } => Some(source.as_ref()),
            ExperimentError::Read { source, .. }
            | ExperimentError::Output { source, .. }
            | ExperimentError::Encode(source) => Some(source.as_ref()),
            _ => None,
        }
    }
}

/// An I/O error's reason without Rust's debug text: the OS message
/// (`Permission denied (os error 13)`) or the error's own text.
fn io_text(cause: &(dyn std::error::Error + 'static)) -> String {
    match cause.downcast_ref::<std::io::Error>() {
        Some(e) => crate::atomic::io_error_reason(e),
        None => {
            let text = cause.to_string();
            text.lines().next().unwrap_or("").trim().to_string()
        }
    }
}

/// Whether an output failure is one the user can fix (exit 2): see
/// [`crate::atomic::io_error_is_users`].
fn io_cause_is_users(cause: &(dyn std::error::Error + 'static)) -> bool {
    cause
        .downcast_ref::<std::io::Error>()
        .is_some_and(crate::atomic::io_error_is_users)
}

impl From<crate::data::error::DataError> for ExperimentError {
    fn from(e: crate::data::error::DataError) -> Self {
        ExperimentError::Data(e)
    }
}

impl From<crate::models::ModelError> for ExperimentError {
    fn from(e: crate::models::ModelError) -> Self {
        ExperimentError::Model(e)
    }
}

impl From<crate::models::weights::WeightsError> for ExperimentError {
    fn from(e: crate::models::weights::WeightsError) -> Self {
        ExperimentError::Weights(e)
    }
}

impl From<swalp_core::distributed::DistributedError> for ExperimentError {
    fn from(e: swalp_core::distributed::DistributedError) -> Self {
        ExperimentError::Distributed(e)
    }
}

impl From<swalp_core::Error> for ExperimentError {
    fn from(e: swalp_core::Error) -> Self {
        ExperimentError::Training(e)
    }
}

impl From<swalp_core::tch::TchError> for ExperimentError {
    fn from(e: swalp_core::tch::TchError) -> Self {
        ExperimentError::Training(e.into())
    }
}
