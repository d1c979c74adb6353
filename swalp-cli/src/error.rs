//! [`CliError`]: everything a command can fail with, as one line for the
//! user and an exit code for scripts.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use swalp_core::SpecError;

/// Exit code of a usage error or bad input: the user can fix it.
pub const EXIT_USAGE: u8 = 2;
/// Exit code of an internal failure: a bug, or the machine failed us.
pub const EXIT_INTERNAL: u8 = 1;
/// Exit code of a run stopped by Ctrl-C (128 + SIGINT) after writing its
/// checkpoint.
pub const EXIT_INTERRUPTED: u8 = 130;

/// Which of the two file arguments of `quantize` a problem is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The tensor file read.
    Input,
    /// The tensor file written.
    Output,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Input => "IN",
            Role::Output => "OUT",
        })
    }
}

/// A failed command. [`Display`](fmt::Display) gives one line naming what is
/// wrong (spec key and value, file path, tensor and dtype) and what is
/// allowed; [`exit_code`](Self::exit_code) says whose fault it is.
#[derive(Debug)]
pub enum CliError {
    /// A `--spec` that does not build a quantizer.
    Spec {
        /// The spec text as given.
        text: String,
        /// What is wrong with it.
        source: SpecError,
    },
    /// Arguments that parse but do not make sense together.
    Usage(String),
    /// A tensor file whose extension is neither `.npy` nor `.safetensors`.
    Extension {
        /// IN or OUT.
        role: Role,
        /// The path given.
        path: PathBuf,
    },
    /// IN and OUT are different kinds of tensor file.
    ExtensionMismatch {
        /// IN.
        input: PathBuf,
        /// OUT.
        output: PathBuf,
    },
    /// IN does not exist.
    MissingInput(PathBuf),
    /// IN exists but cannot be read as a tensor file.
    Read {
        /// IN.
        path: PathBuf,
        /// Why: unreadable, truncated, corrupt.
        reason: String,
    },
    /// A tensor whose dtype cannot be quantized.
    Dtype {
        /// Where the tensor is, e.g. `tensor "w" in a.safetensors`.
        tensor: String,
        /// Its dtype, e.g. `i64`.
        dtype: String,
    },
    /// OUT names the same file as IN.
    SameFile(PathBuf),
    /// OUT's directory does not exist.
    MissingOutputDir {
        /// The directory.
        dir: PathBuf,
        /// OUT as given.
        path: PathBuf,
    },
    /// OUT cannot be written.
    Write {
        /// OUT.
        path: PathBuf,
        /// Why.
        reason: String,
        /// Whether the user can fix it (permissions, a directory in the way).
        usage: bool,
    },
    /// `--device cuda` on a machine without CUDA.
    CudaUnavailable,
    /// Quantizing a tensor failed.
    Quantize {
        /// Which tensor.
        tensor: String,
        /// The core library's error.
        source: swalp_core::Error,
    },
    /// Writing to stdout failed.
    Stdout(io::Error),
    /// Anything else that should not happen.
    Internal(String),
    /// An experiment could not be loaded or run.
    Experiment(crate::experiment::ExperimentError),
    /// A sweep could not be planned, run or reported.
    Sweep(crate::sweep::SweepError),
    /// Some runs of a sweep failed.
    SweepFailed {
        /// How many.
        failed: usize,
        /// The sweep directory.
        dir: PathBuf,
    },
    /// A data set could not be downloaded.
    Data(crate::data::error::DataError),
}

impl CliError {
    /// The process exit code: [`EXIT_USAGE`] (2) for usage errors and bad
    /// input, [`EXIT_INTERNAL`] (1) for internal failures.
    pub fn exit_code(&self) -> u8 {
        match self {
            // The user asked for something the format cannot do; anything
            // else from the core (libtorch, hooks, later variants) is ours.
            CliError::Quantize { source, .. } => {
                if source.is_usage() {
                    EXIT_USAGE
                } else {
                    EXIT_INTERNAL
                }
            }
            CliError::Write { usage, .. } => {
                if *usage {
                    EXIT_USAGE
                } else {
                    EXIT_INTERNAL
                }
            }
            CliError::Stdout(_) | CliError::Internal(_) => EXIT_INTERNAL,
            CliError::Experiment(crate::experiment::ExperimentError::Interrupted { .. }) => {
                EXIT_INTERRUPTED
            }
            CliError::Experiment(e) if !e.is_usage() => EXIT_INTERNAL,
            CliError::Sweep(e) if !e.is_usage() => EXIT_INTERNAL,
            CliError::SweepFailed { .. } => EXIT_INTERNAL,
            CliError::Data(e) if !e.is_usage() => EXIT_INTERNAL,
            _ => EXIT_USAGE,
        }
    }

    /// A [`CliError::Write`] for `path`, classifying `err` as the user's
    /// problem or not.
    pub fn write(path: &Path, err: &io::Error) -> Self {
        let usage = crate::atomic::io_error_is_users(err);
        CliError::Write {
            path: path.to_path_buf(),
            reason: err.to_string(),
            usage,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // A syntax error already quotes the spec text.
            CliError::Spec {
                source: source @ SpecError::Syntax { .. },
                ..
            } => write!(f, "--spec: {source}"),
            CliError::Spec { text, source } => write!(f, "--spec {text}: {source}"),
            CliError::Usage(message) => f.write_str(message),
            CliError::Extension { role, path } => write!(
                f,
                "{role} {}: unsupported file extension; expected .npy or .safetensors",
                path.display()
            ),
            CliError::ExtensionMismatch { input, output } => write!(
                f,
                "IN {} and OUT {} are different kinds of tensor file; \
                 OUT must have IN's extension (.npy → .npy, .safetensors → .safetensors)",
                input.display(),
                output.display()
            ),
            CliError::MissingInput(path) => write!(f, "IN {}: no such file", path.display()),
            CliError::Read { path, reason } => {
                write!(
                    f,
                    "cannot read IN {}: {}",
                    path.display(),
                    first_line(reason)
                )
            }
            CliError::Dtype { tensor, dtype } => write!(
                f,
                "{tensor} has dtype {dtype}; only floating-point tensors \
                 (f32, f64, f16, bf16) can be quantized"
            ),
            CliError::SameFile(path) => write!(
                f,
                "OUT {} is the same file as IN; choose another OUT so that IN is kept",
                path.display()
            ),
            CliError::MissingOutputDir { dir, path } => write!(
                f,
                "directory {} of OUT {} does not exist; create it first",
                dir.display(),
                path.display()
            ),
            CliError::Write { path, reason, .. } => {
                write!(
                    f,
                    "cannot write OUT {}: {}",
                    path.display(),
                    first_line(reason)
                )
            }
            CliError::CudaUnavailable => f.write_str(
                "--device cuda: CUDA is not available on this machine \
                 (no GPU, or libtorch built without CUDA); use --device cpu",
            ),
            CliError::Quantize { tensor, source } => {
                write!(
                    f,
                    "quantizing {tensor}: {}",
                    first_line(&source.to_string())
                )
            }
            CliError::Stdout(err) => write!(f, "cannot write to stdout: {err}"),
            CliError::Internal(message) => {
                write!(f, "internal error: {}", first_line(message))
            }
            CliError::Experiment(e) => f.write_str(first_line(&e.to_string())),
            CliError::Sweep(e) => f.write_str(first_line(&e.to_string())),
            CliError::SweepFailed { failed, dir } => write!(
                f,
                "{failed} run(s) of the sweep failed; `swalp-cli sweep status {}` shows their \
                 logs' last lines, and the same sweep command runs them again",
                dir.display()
            ),
            CliError::Data(e) => f.write_str(first_line(&e.to_string())),
        }
    }
}

impl std::error::Error for CliError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CliError::Spec { source, .. } => Some(source),
            CliError::Quantize { source, .. } => Some(source),
            CliError::Stdout(err) => Some(err),
            CliError::Experiment(e) => Some(e),
            CliError::Sweep(e) => Some(e),
            CliError::Data(e) => Some(e),
            _ => None,
        }
    }
}

/// The first line of a possibly multi-line message (libtorch errors carry
/// backtraces), trimmed.
fn first_line(message: &str) -> &str {
    message.lines().next().unwrap_or("").trim()
}

impl From<crate::sweep::SweepError> for CliError {
    fn from(e: crate::sweep::SweepError) -> Self {
        CliError::Sweep(e)
    }
}

impl From<crate::experiment::ExperimentError> for CliError {
    fn from(e: crate::experiment::ExperimentError) -> Self {
        CliError::Experiment(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_errors_exit_2_and_internal_ones_1() {
        assert_eq!(CliError::CudaUnavailable.exit_code(), EXIT_USAGE);
        assert_eq!(CliError::SameFile("a.npy".into()).exit_code(), EXIT_USAGE);
        assert_eq!(CliError::Internal("x".into()).exit_code(), EXIT_INTERNAL);
        let denied = io::Error::from(io::ErrorKind::PermissionDenied);
        assert_eq!(
            CliError::write(Path::new("o.npy"), &denied).exit_code(),
            EXIT_USAGE
        );
        // A full disk is the user's to fix; a failing device is not.
        let full = io::Error::from_raw_os_error(28);
        assert_eq!(
            CliError::write(Path::new("o.npy"), &full).exit_code(),
            EXIT_USAGE
        );
        let device = io::Error::from_raw_os_error(5);
        assert_eq!(
            CliError::write(Path::new("o.npy"), &device).exit_code(),
            EXIT_INTERNAL
        );
    }

    #[test]
    fn messages_are_one_line() {
        let e = CliError::Read {
            path: "a.npy".into(),
            reason: "bad\nbacktrace".into(),
        };
        assert_eq!(e.to_string(), "cannot read IN a.npy: bad");
    }
}
