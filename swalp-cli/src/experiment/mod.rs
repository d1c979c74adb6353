//! Experiments: a TOML file describing data, model, quantization, optimizer,
//! schedule and SWA, run end to end into an output directory.

pub mod checkpoint;
pub mod config;
pub mod run;
pub mod tensorboard;

use std::fmt;
use std::path::PathBuf;

pub use config::Experiment;
pub use run::{run, RunOptions};

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
    /// The requested device is not available.
    Device(String),
    /// An output file cannot be written.
    Output {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
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
            ExperimentError::Invalid(message) | ExperimentError::Device(message) => {
                f.write_str(message)
            }
            ExperimentError::Output { path, reason } => {
                write!(f, "cannot write {}: {reason}", path.display())
            }
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
            ExperimentError::Weights(e) => Some(e),
            ExperimentError::Training(e) => Some(e),
            _ => None,
        }
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
