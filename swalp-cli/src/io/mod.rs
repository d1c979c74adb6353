//! Tensor files: `.npy` (one tensor) and `.safetensors` (named tensors),
//! read with checks that turn every bad file into a [`CliError`] naming it,
//! and written atomically so that OUT is either complete or absent.

mod npy;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use tch::{Kind, TchError, Tensor};

use crate::atomic::{parent_dir, TempFile};
use crate::error::{CliError, Role};

/// The kinds of tensor file, decided by extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TensorFileKind {
    /// NumPy `.npy`: one unnamed tensor.
    Npy,
    /// Hugging Face `.safetensors`: named tensors.
    Safetensors,
}

impl TensorFileKind {
    /// The kind of `path` (IN or OUT, for the error), by its extension.
    pub fn of(path: &Path, role: Role) -> Result<Self, CliError> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("npy") => Ok(TensorFileKind::Npy),
            Some("safetensors") => Ok(TensorFileKind::Safetensors),
            _ => Err(CliError::Extension {
                role,
                path: path.to_path_buf(),
            }),
        }
    }
}

/// A tensor of a file, with its name in `.safetensors` files.
#[derive(Debug)]
pub struct NamedTensor {
    /// The name, `None` for the tensor of a `.npy` file.
    pub name: Option<String>,
    /// The values.
    pub tensor: Tensor,
}

impl NamedTensor {
    /// Describes the tensor for messages: `tensor "w" in m.safetensors` or
    /// `the tensor in w.npy`.
    pub fn describe<'a>(&'a self, path: &'a Path) -> impl fmt::Display + 'a {
        Described {
            name: self.name.as_deref(),
            path,
        }
    }
}

struct Described<'a> {
    name: Option<&'a str>,
    path: &'a Path,
}

impl fmt::Display for Described<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name {
            Some(name) => write!(f, "tensor {name:?} in {}", self.path.display()),
            None => write!(f, "the tensor in {}", self.path.display()),
        }
    }
}

/// Reads every tensor of the file at `path` (IN), in file order.
pub fn read_tensors(path: &Path, kind: TensorFileKind) -> Result<Vec<NamedTensor>, CliError> {
    let read_error = |reason: String| CliError::Read {
        path: path.to_path_buf(),
        reason,
    };
    match std::fs::metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(CliError::MissingInput(path.to_path_buf()))
        }
        Err(e) => return Err(read_error(e.to_string())),
        Ok(m) if m.is_dir() => return Err(read_error("is a directory".into())),
        Ok(_) => {}
    }
    match kind {
        TensorFileKind::Npy => Ok(vec![NamedTensor {
            name: None,
            tensor: npy::read(path).map_err(read_error)?,
        }]),
        TensorFileKind::Safetensors => Ok(crate::safetensors_file::read(path)
            .map_err(read_error)?
            .into_iter()
            .map(|(name, tensor)| NamedTensor {
                name: Some(name),
                tensor,
            })
            .collect()),
    }
}

/// Checks, before any work, that OUT can be written without harming IN: its
/// directory exists, it is not a directory, and it is not IN itself.
pub fn check_output(input: &Path, output: &Path) -> Result<(), CliError> {
    let dir = parent_dir(output);
    if !dir.exists() {
        return Err(CliError::MissingOutputDir {
            dir: dir.to_path_buf(),
            path: output.to_path_buf(),
        });
    }
    let usage_error = |reason: &str| CliError::Write {
        path: output.to_path_buf(),
        reason: reason.into(),
        usage: true,
    };
    if !dir.is_dir() {
        return Err(usage_error(&format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    if output.is_dir() {
        return Err(usage_error("is a directory"));
    }
    if output.exists() && same_file(input, output) {
        return Err(CliError::SameFile(output.to_path_buf()));
    }
    Ok(())
}

/// Whether two existing paths name the same file (through symbolic or hard
/// links too).
fn same_file(a: &Path, b: &Path) -> bool {
    let canonical = |p: &Path| p.canonicalize().ok();
    if let (Some(a), Some(b)) = (canonical(a), canonical(b)) {
        if a == b {
            return true;
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(a), Ok(b)) = (std::fs::metadata(a), std::fs::metadata(b)) {
            return a.dev() == b.dev() && a.ino() == b.ino();
        }
    }
    false
}

/// Writes `tensors` (CPU, contiguous) to `path` (OUT) atomically: into a
/// temporary file in OUT's directory, renamed to OUT once complete. On any
/// error OUT is untouched and the temporary file removed.
pub fn write_tensors(
    path: &Path,
    kind: TensorFileKind,
    tensors: &[NamedTensor],
) -> Result<(), CliError> {
    let tmp = TempFile::create_for(path).map_err(|e| CliError::write(path, &e))?;
    let written = match (kind, tensors) {
        (TensorFileKind::Npy, [one]) => one.tensor.write_npy(tmp.path()),
        (TensorFileKind::Npy, _) => {
            return Err(CliError::Internal(format!(
                "a .npy file holds one tensor, asked to write {}",
                tensors.len()
            )))
        }
        (TensorFileKind::Safetensors, _) => {
            let named: Vec<(&str, &Tensor)> = tensors
                .iter()
                .map(|t| (t.name.as_deref().unwrap_or_default(), &t.tensor))
                .collect();
            Tensor::write_safetensors(&named, tmp.path())
        }
    };
    written.map_err(|e| write_error(path, e))?;
    tmp.persist().map_err(|e| CliError::write(path, &e))
}

fn write_error(path: &Path, err: TchError) -> CliError {
    match err {
        TchError::Io(e) => CliError::write(path, &e),
        other => CliError::Write {
            path: PathBuf::from(path),
            reason: other.to_string(),
            usage: false,
        },
    }
}

/// The NumPy-style name of a dtype (`f32`, `bf16`, `i64`, ...).
pub fn dtype_name(kind: Kind) -> String {
    let name = match kind {
        Kind::Float => "f32",
        Kind::Double => "f64",
        Kind::Half => "f16",
        Kind::BFloat16 => "bf16",
        Kind::Int8 => "i8",
        Kind::Int16 => "i16",
        Kind::Int => "i32",
        Kind::Int64 => "i64",
        Kind::Uint8 => "u8",
        Kind::Bool => "bool",
        Kind::ComplexFloat => "complex64",
        Kind::ComplexDouble => "complex128",
        other => return format!("{other:?}"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_extensions() {
        let kind = |p: &str| TensorFileKind::of(Path::new(p), Role::Input).ok();
        assert_eq!(kind("a/b.npy"), Some(TensorFileKind::Npy));
        assert_eq!(kind("m.safetensors"), Some(TensorFileKind::Safetensors));
        assert_eq!(kind("m.npz"), None);
        assert_eq!(kind("npy"), None);
    }

    #[test]
    fn tensors_are_described_by_name_and_file() {
        let t = NamedTensor {
            name: Some("w".into()),
            tensor: Tensor::from_slice(&[1f32]),
        };
        let path = Path::new("m.safetensors");
        assert_eq!(
            t.describe(path).to_string(),
            "tensor \"w\" in m.safetensors"
        );
    }
}
