//! A model's state in and out of `.safetensors` files, under the names
//! PyTorch's `state_dict()` gives the twin PyTorch model (`features.0.weight`,
//! `layer1.0.bn1.running_mean`, ...), so that `load_state_dict` takes what
//! swalp writes and swalp takes what PyTorch writes with
//! `safetensors.torch.save_file(model.state_dict(), path)`.

use std::fmt;
use std::path::{Path, PathBuf};

use swalp_core::tch::{self, Device, Kind, TchError, Tensor};

use super::Model;
use crate::atomic::TempFile;

/// A BatchNorm counter that PyTorch itself treats as optional when loading
/// (it fills in 0), and so does swalp.
const OPTIONAL_SUFFIX: &str = "num_batches_tracked";

/// Why weights could not be read or written.
#[derive(Debug)]
pub enum WeightsError {
    /// The file cannot be read as safetensors.
    Read {
        /// The file.
        path: PathBuf,
        /// Why, in one line (the OS's reason, or what is wrong with the
        /// header).
        reason: String,
    },
    /// The model has a tensor the file lacks.
    Missing {
        /// The file.
        path: PathBuf,
        /// The first missing name, in name order.
        name: String,
        /// How many more are missing.
        more: usize,
    },
    /// The file has a tensor the model lacks.
    Unexpected {
        /// The file.
        path: PathBuf,
        /// The first unexpected name, in name order.
        name: String,
        /// How many more there are.
        more: usize,
    },
    /// A tensor of the file has another shape than the model's.
    Shape {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// Its shape in the file.
        file: Vec<i64>,
        /// The model's shape.
        model: Vec<i64>,
    },
    /// A tensor of the file holds integers where the model holds floats,
    /// or the other way round.
    Dtype {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// Its dtype in the file.
        file: Kind,
        /// The model's dtype.
        model: Kind,
    },
    /// Copying a tensor into the model failed.
    Copy {
        /// The tensor.
        name: String,
        /// libtorch's reason.
        source: TchError,
    },
    /// The file cannot be written.
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl WeightsError {
    /// Whether the user's file is at fault (exit code 2).
    pub fn is_usage(&self) -> bool {
        !matches!(self, WeightsError::Copy { .. } | WeightsError::Write { .. })
    }
}

fn more(n: usize) -> String {
    match n {
        0 => String::new(),
        n => format!(" (and {n} more)"),
    }
}

impl fmt::Display for WeightsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WeightsError::Read { path, reason } => {
                let reason = reason.lines().next().unwrap_or("");
                write!(
                    f,
                    "model.init {}: not a readable .safetensors file: {reason}",
                    path.display()
                )
            }
            WeightsError::Missing {
                path,
                name,
                more: n,
            } => write!(
                f,
                "model.init {}: no tensor `{name}`{}, which the model needs; \
                 names are those of the PyTorch twin's state_dict()",
                path.display(),
                more(*n)
            ),
            WeightsError::Unexpected {
                path,
                name,
                more: n,
            } => write!(
                f,
                "model.init {}: tensor `{name}`{} is not in the model; \
                 names are those of the PyTorch twin's state_dict()",
                path.display(),
                more(*n)
            ),
            WeightsError::Shape {
                path,
                name,
                file,
                model,
            } => write!(
                f,
                "model.init {}: tensor `{name}` has shape {file:?}, the model's is {model:?}",
                path.display()
            ),
            WeightsError::Dtype {
                path,
                name,
                file,
                model,
            } => write!(
                f,
                "model.init {}: tensor `{name}` is {file:?}, the model's is {model:?} \
                 (floating-point and integer tensors do not mix)",
                path.display()
            ),
            WeightsError::Copy { name, source } => {
                write!(f, "cannot load tensor `{name}`: {source}")
            }
            WeightsError::Write { path, source } => {
                write!(f, "cannot write {}: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for WeightsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WeightsError::Copy { source, .. } => Some(source),
            WeightsError::Write { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The first of `names` (sorted) and how many follow it.
fn first_of(mut names: Vec<&String>) -> Option<(String, usize)> {
    names.sort();
    let first = names.first()?;
    Some(((*first).clone(), names.len() - 1))
}

/// Every tensor of `model`'s state (parameters and buffers), by name.
pub fn state(model: &Model) -> Vec<(String, Tensor)> {
    let mut state: Vec<(String, Tensor)> = model.vs.variables().into_iter().collect();
    state.sort_by(|a, b| a.0.cmp(&b.0));
    state
}

/// Loads the `.safetensors` file at `path` into `model`. Every tensor of
/// the model must be in the file with its shape, except BatchNorm's
/// `num_batches_tracked` (0 when absent, as PyTorch loads it), and the file
/// must hold nothing else; floating-point tensors of any precision are
/// converted to the model's. Nothing is changed unless all of it fits.
pub fn load(model: &Model, path: &Path) -> Result<(), WeightsError> {
    let file: Vec<(String, Tensor)> =
        crate::safetensors_file::read(path).map_err(|reason| WeightsError::Read {
            path: path.into(),
            reason,
        })?;
    let vars = model.vs.variables();
    let in_file = |name: &String| file.iter().any(|(n, _)| n == name);
    let missing: Vec<&String> = vars
        .keys()
        .filter(|n| !in_file(n) && !n.ends_with(OPTIONAL_SUFFIX))
        .collect();
    if let Some((name, more)) = first_of(missing) {
        return Err(WeightsError::Missing {
            path: path.into(),
            name,
            more,
        });
    }
    let unexpected: Vec<&String> = file
        .iter()
        .map(|(n, _)| n)
        .filter(|n| !vars.contains_key(*n))
        .collect();
    if let Some((name, more)) = first_of(unexpected) {
        return Err(WeightsError::Unexpected {
            path: path.into(),
            name,
            more,
        });
    }
    for (name, t) in &file {
        let target = &vars[name];
        if t.size() != target.size() {
            return Err(WeightsError::Shape {
                path: path.into(),
                name: name.clone(),
                file: t.size(),
                model: target.size(),
            });
        }
        if t.is_floating_point() != target.is_floating_point() {
            return Err(WeightsError::Dtype {
                path: path.into(),
                name: name.clone(),
                file: t.kind(),
                model: target.kind(),
            });
        }
    }
    let _guard = tch::no_grad_guard();
    for (name, target) in &vars {
        let copied = match file.iter().find(|(n, _)| n == name) {
            Some((_, t)) => target.shallow_clone().f_copy_(t),
            None => target.shallow_clone().f_zero_().map(|_| ()),
        };
        copied.map_err(|source| WeightsError::Copy {
            name: name.clone(),
            source,
        })?;
    }
    Ok(())
}

/// Writes `model`'s whole state (parameters and BatchNorm buffers, on the
/// CPU) to `path`, atomically: a temporary file renamed into place.
pub fn save(model: &Model, path: &Path) -> Result<(), WeightsError> {
    let fail = |source: std::io::Error| WeightsError::Write {
        path: path.into(),
        source,
    };
    let state: Vec<(String, Tensor)> = state(model)
        .into_iter()
        .map(|(name, t)| (name, t.detach().to_device(Device::Cpu).contiguous()))
        .collect();
    let tmp = TempFile::create_for(path).map_err(fail)?;
    Tensor::write_safetensors(&state, tmp.path()).map_err(|e| match e {
        TchError::Io(e) => fail(e),
        other => fail(std::io::Error::other(other.to_string())),
    })?;
    tmp.persist().map_err(fail)
}
