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

/// Why an experiment could not be loaded or run.
#[derive(Debug)]
pub enum ExperimentError {
    /// The experiment file cannot be read.
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
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
    /// A value is out of range or inconsistent with another.
    Invalid(String),
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
        reason: String,
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
            ExperimentError::Training(_) | ExperimentError::Output { .. } => false,
            _ => true,
        }
    }
}

impl fmt::Display for ExperimentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExperimentError::Read { path, reason } => {
                write!(
                    f,
                    "cannot read experiment file {}: {reason}",
                    path.display()
                )
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
            ExperimentError::Invalid(message)
            | ExperimentError::Device(message)
            | ExperimentError::Value { message, .. } => f.write_str(message),
            ExperimentError::Output { path, reason } => {
                write!(f, "cannot write {}: {reason}", path.display())
            }
            ExperimentError::Data(e) => e.fmt(f),
            ExperimentError::Model(e) => e.fmt(f),
            ExperimentError::Weights(e) => e.fmt(f),
            ExperimentError::Training(e) => write!(f, "training failed: {e}"),
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
