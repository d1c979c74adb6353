//! Error types. Every message is one line naming what is wrong and what is
//! allowed, so the CLI can print it as is.

use std::fmt;

use crate::backend::Backend;

/// A problem with a format or quantizer spec such as
/// `{ format = "fixed", wl = 8, fl = 6 }`.
///
/// ```
/// use swalp_core::{spec::parse_table, SpecError};
/// let err = parse_table("{ format = fixed }").unwrap_err();
/// assert!(matches!(err, SpecError::Syntax { .. }));
/// assert!(SpecError::MissingFormat.to_string().starts_with("spec has no `format` key"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum SpecError {
    /// The spec text is not a TOML inline table.
    Syntax {
        /// The text given.
        text: String,
        /// What the TOML parser said.
        message: String,
    },
    /// The `format` key is absent.
    MissingFormat,
    /// No registered format has this name.
    UnknownFormat {
        /// The name asked for.
        name: String,
        /// Every registered name.
        known: Vec<String>,
    },
    /// Two registered factories claim the same name.
    DuplicateFormat {
        /// The contested name.
        name: String,
    },
    /// A required key is absent.
    MissingKey {
        /// Format being built.
        format: String,
        /// The absent key.
        key: String,
        /// What the key accepts.
        allowed: String,
    },
    /// A key the format does not take.
    UnknownKey {
        /// Where the key appeared (format name or enclosing key).
        context: String,
        /// The key given.
        key: String,
        /// Keys accepted there.
        allowed: Vec<String>,
        /// The closest accepted key, if one is close.
        suggestion: Option<String>,
    },
    /// A key has a value of the wrong type or out of range.
    InvalidValue {
        /// The key, dotted if nested.
        key: String,
        /// The value given, as TOML.
        value: String,
        /// What is allowed.
        allowed: String,
    },
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpecError::Syntax { text, message } => {
                let message = message.lines().next().unwrap_or("").trim();
                write!(
                    f,
                    "spec {text:?} is not a TOML inline table like \
                     {{ format = \"fixed\", wl = 8, fl = 6 }}: {message}"
                )
            }
            SpecError::MissingFormat => write!(
                f,
                "spec has no `format` key; write e.g. {{ format = \"fixed\", wl = 8, fl = 6 }}"
            ),
            SpecError::UnknownFormat { name, known } => write!(
                f,
                "unknown format {name:?}; known formats: {}",
                known.join(", ")
            ),
            SpecError::DuplicateFormat { name } => write!(
                f,
                "format {name:?} is registered by more than one crate; remove one of them"
            ),
            SpecError::MissingKey {
                format,
                key,
                allowed,
            } => write!(f, "format {format:?} needs key `{key}` ({allowed})"),
            SpecError::UnknownKey {
                context,
                key,
                allowed,
                suggestion,
            } => {
                write!(f, "unknown key `{key}` in {context}")?;
                if let Some(s) = suggestion {
                    write!(f, " (did you mean `{s}`?)")?;
                }
                write!(f, "; allowed keys: {}", allowed.join(", "))
            }
            SpecError::InvalidValue {
                key,
                value,
                allowed,
            } => write!(f, "invalid value {value} for `{key}`: expected {allowed}"),
        }
    }
}

impl std::error::Error for SpecError {}

/// Everything that can go wrong in swalp-core.
///
/// ```
/// use swalp_core::{Error, SpecError};
/// let err: Error = SpecError::MissingFormat.into();
/// assert_eq!(err.to_string(), SpecError::MissingFormat.to_string());
/// assert!(std::error::Error::source(&err).is_some());
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A bad format or quantizer spec.
    Spec(SpecError),
    /// The tensor cannot be quantized as asked (dtype, device, backend).
    Unsupported {
        /// The format's name.
        format: String,
        /// The backend asked for.
        backend: Backend,
        /// Why not, and what would work.
        reason: String,
    },
    /// libtorch reported an error.
    Torch(tch::TchError),
    /// The autograd hook failed (the message comes from the quantizer or
    /// from libtorch).
    Hook(String),
    /// A layer's matrix product in simulated arithmetic failed
    /// ([`crate::matmul`]; the message comes from its rounding or from
    /// libtorch).
    Matmul(String),
    /// Saved training state (optimizer, SWA) does not fit what it is loaded
    /// into.
    State(String),
    /// The CUDA backend failed (loading the driver or NVRTC, compiling or
    /// launching a kernel).
    Cuda(CudaError),
    /// A collective of a data-parallel run failed inside a layer
    /// (synchronised BatchNorm).
    Distributed(DistributedError),
}

impl Error {
    /// Whether the caller's input caused it (a bad spec, a tensor the format
    /// cannot take, saved state that does not fit): a command line reports
    /// these as usage errors.
    ///
    /// ```
    /// use swalp_core::Error;
    /// assert!(Error::State("saved state has another shape".into()).is_usage());
    /// assert!(!Error::Hook("libtorch failed".into()).is_usage());
    /// ```
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Error::Spec(_) | Error::Unsupported { .. } | Error::State(_)
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Spec(e) => e.fmt(f),
            Error::Unsupported {
                format,
                backend,
                reason,
            } => write!(f, "format {format:?} on the {backend} backend: {reason}"),
            Error::Torch(e) => {
                let msg = e.to_string();
                write!(f, "libtorch: {}", msg.lines().next().unwrap_or(""))
            }
            Error::Hook(msg) => write!(f, "quantization hook: {msg}"),
            Error::Matmul(msg) => write!(f, "matrix product: {msg}"),
            Error::State(msg) => f.write_str(msg),
            Error::Cuda(e) => write!(f, "CUDA backend: {e}"),
            Error::Distributed(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Spec(e) => Some(e),
            Error::Torch(e) => Some(e),
            Error::Cuda(e) => Some(e),
            Error::Distributed(e) => Some(e),
            Error::Unsupported { .. } | Error::Hook(_) | Error::Matmul(_) | Error::State(_) => None,
        }
    }
}

impl From<DistributedError> for Error {
    fn from(e: DistributedError) -> Self {
        Error::Distributed(e)
    }
}

impl From<SpecError> for Error {
    fn from(e: SpecError) -> Self {
        Error::Spec(e)
    }
}

impl From<CudaError> for Error {
    fn from(e: CudaError) -> Self {
        Error::Cuda(e)
    }
}

impl From<tch::TchError> for Error {
    fn from(e: tch::TchError) -> Self {
        Error::Torch(e)
    }
}

/// What went wrong in the CUDA backend ([`crate::cuda`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CudaError {
    /// A library could not be loaded (no driver, no NVRTC).
    Load {
        /// The library.
        library: String,
        /// What the loader said, for every place tried.
        reason: String,
    },
    /// NVRTC rejected a kernel source.
    Compile {
        /// The kernel.
        entry: String,
        /// The architecture compiled for (`compute_90`, `sm_90`).
        arch: String,
        /// NVRTC's log.
        log: String,
    },
    /// A driver or NVRTC call failed.
    Call {
        /// The function.
        function: &'static str,
        /// Its status code.
        code: i32,
        /// The library's description of the code.
        message: String,
    },
    /// The block layout has more terms than kernels take.
    Layout {
        /// Its terms.
        terms: usize,
        /// The most kernels take.
        max: usize,
    },
    /// The kernel has no CPU twin.
    NoTwin {
        /// The kernel.
        entry: String,
    },
}

impl fmt::Display for CudaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CudaError::Load { library, reason } => {
                write!(f, "cannot load {library}: {reason}")
            }
            CudaError::Compile { entry, arch, log } => {
                let first = log.lines().find(|l| l.contains("error")).unwrap_or("");
                write!(
                    f,
                    "NVRTC cannot compile kernel {entry} for {arch}: {}",
                    first.trim()
                )
            }
            CudaError::Call {
                function,
                code,
                message,
            } => write!(f, "{function} failed with code {code}: {message}"),
            CudaError::Layout { terms, max } => write!(
                f,
                "the block layout has {terms} separating terms; CUDA kernels take at most {max}"
            ),
            CudaError::NoTwin { entry } => {
                write!(f, "kernel {entry} has no CPU twin compiled")
            }
        }
    }
}

impl std::error::Error for CudaError {}

/// Result with swalp-core's [`Error`].
///
/// ```
/// fn parse(text: &str) -> swalp_core::Result<swalp_core::Quantizer> {
///     Ok(text.parse()?) // a `SpecError` converts into `swalp_core::Error`
/// }
/// assert!(parse("{ wl = 8 }").unwrap_err().is_usage());
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The candidate closest to `given` by edit distance, if it is close enough
/// to be a plausible misspelling.
///
/// ```
/// use swalp_core::error::closest;
/// assert_eq!(closest("wll", ["wl", "fl", "clamp"]), Some("wl".to_string()));
/// assert_eq!(closest("banana", ["wl", "fl"]), None);
/// ```
pub fn closest<'a>(given: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(given, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.to_string())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (diag + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diag = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(closest("wll", ["wl", "fl", "clamp"]), Some("wl".into()));
        assert_eq!(
            closest("symetric", ["symmetric", "clamp"]),
            Some("symmetric".into())
        );
        assert_eq!(closest("banana", ["wl", "fl"]), None);
    }
}

/// What went wrong setting up or using a process group
/// (the `distributed` module).
#[derive(Debug, Clone, PartialEq)]
pub enum DistributedError {
    /// A launcher variable is missing or malformed.
    Environment {
        /// The variable.
        variable: &'static str,
        /// Its value (empty when missing).
        value: String,
        /// What it must be.
        expected: &'static str,
    },
    /// Joining the group failed (the store could not be reached, a rank did
    /// not arrive within the timeout, the backend could not start).
    Join {
        /// This process's rank.
        rank: usize,
        /// The group's size.
        world_size: usize,
        /// Where the store was.
        address: String,
        /// What c10d said.
        message: String,
    },
    /// A collective failed or timed out (a rank died or stopped answering).
    Collective {
        /// This process's rank.
        rank: usize,
        /// The group's size.
        world_size: usize,
        /// The collective, such as "all-reduce of the gradients".
        operation: String,
        /// What c10d said.
        message: String,
    },
    /// Another rank failed at a stage every rank goes through together
    /// (`ProcessGroup::agree`); its own message says why.
    PeerFailed {
        /// This process's rank.
        rank: usize,
        /// The group's size.
        world_size: usize,
        /// The stage.
        stage: String,
    },
    /// Tensors that cannot take part in a collective as given.
    Tensors(String),
}

impl fmt::Display for DistributedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DistributedError::Environment {
                variable,
                value,
                expected,
            } if value.is_empty() => write!(f, "{variable} is not set; it must be {expected}"),
            DistributedError::Environment {
                variable,
                value,
                expected,
            } => write!(f, "{variable}={value:?}: it must be {expected}"),
            DistributedError::Join {
                rank,
                world_size,
                address,
                message,
            } => write!(
                f,
                "rank {rank} of {world_size} could not join the process group at {address}: {}",
                one_line(message)
            ),
            DistributedError::Collective {
                rank,
                world_size,
                operation,
                message,
            } => write!(
                f,
                "rank {rank} of {world_size}: {operation} failed (another rank may have stopped): {}",
                one_line(message)
            ),
            DistributedError::PeerFailed {
                rank,
                world_size,
                stage,
            } => write!(
                f,
                "rank {rank} of {world_size}: another rank failed {stage} (its own message says why)"
            ),
            DistributedError::Tensors(message) => write!(f, "{message}"),
        }
    }
}

impl std::error::Error for DistributedError {}

/// libtorch failing on a collective's tensors (making, copying them).
impl From<tch::TchError> for DistributedError {
    fn from(e: tch::TchError) -> Self {
        DistributedError::Tensors(e.to_string())
    }
}

/// c10d's messages span lines (a C++ backtrace follows the first) and
/// Gloo's start with its source location (`[/pytorch/third_party/gloo/...]`):
/// the first line, without it, says what happened.
fn one_line(message: &str) -> &str {
    let first = message.lines().next().unwrap_or("").trim();
    match first
        .strip_prefix('[')
        .and_then(|rest| rest.split_once("] "))
    {
        Some((location, said)) if location.contains(".cc:") || location.contains(".cpp:") => {
            said.trim()
        }
        _ => first,
    }
}

#[cfg(test)]
mod distributed_tests {
    use super::one_line;

    #[test]
    fn messages_keep_their_first_line_without_a_source_location() {
        assert_eq!(
            one_line("[/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:538] Read error [127.0.0.1]:432: Connection reset by peer\nException raised from ..."),
            "Read error [127.0.0.1]:432: Connection reset by peer"
        );
        assert_eq!(one_line("Timed out\nbacktrace"), "Timed out");
        assert_eq!(one_line("[rank 1] gone"), "[rank 1] gone");
    }
}
