//! Experiments: a TOML file describing data, model, quantization, optimizer,
//! schedule and SWA, run end to end into an output directory.

pub mod checkpoint;
pub mod config;
pub mod observe;
pub mod run;
pub mod tensorboard;

use std::fmt;
use std::path::PathBuf;

pub use config::Experiment;
pub use run::{file_observers, run, run_with, RunOptions};

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
    /// The training loss became NaN or infinite; the epochs up to it are in
    /// the run directory's metrics.
    Diverged {
        /// The epoch (1-based) whose mean training loss is not finite.
        epoch: u64,
        /// That loss.
        train_loss: f64,
        /// The run directory.
        run_dir: PathBuf,
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
            ExperimentError::Training(_)
            | ExperimentError::Diverged { .. }
            | ExperimentError::Output { .. }
            | ExperimentError::Encode(_) => false,
            _ => true,
        }
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
                         with in [{section}] (only train.epochs may change); run it with the \
                         stored {}",
                        stored.display()
                    ),
                    ResumeProblem::UnknownVariable { name } => write!(
                        f,
                        "--resume {dir}: checkpoint has variable `{name}` the model lacks"
                    ),
                }
            }
            ExperimentError::Encode(e) => write!(f, "internal error: encoding failed: {e}"),
            ExperimentError::Output { path, source } => {
                write!(f, "cannot write {}: {source}", path.display())
            }
            ExperimentError::Data(e) => e.fmt(f),
            ExperimentError::Model(e) => e.fmt(f),
            ExperimentError::Weights(e) => e.fmt(f),
            ExperimentError::Training(e) => write!(f, "training failed: {e}"),
            ExperimentError::Diverged {
                epoch,
                train_loss,
                run_dir,
            } => write!(
                f,
                "training diverged: the mean training loss of epoch {epoch} is {train_loss}; \
                 lower optim.lr (or check the data and quantizers); the epochs so far are in \
                 {}",
                run_dir.join("metrics.jsonl").display()
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
            ExperimentError::Training(e) => Some(e),
            ExperimentError::Read { source, .. }
            | ExperimentError::Output { source, .. }
            | ExperimentError::Encode(source) => Some(source.as_ref()),
            _ => None,
        }
    }
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
