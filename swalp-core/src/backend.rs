//! [`Backend`]: which kernel rounds a tensor. (Parsing one from a spec is
//! [`crate::spec`]'s.)

use std::fmt;

use serde::{Deserialize, Serialize};

/// Which kernel rounds a tensor.
///
/// `Auto` (the default) uses the native kernel for `f32` tensors on the CPU
/// and the CUDA kernel for `f32`, `bf16` and `f16` tensors on a CUDA device
/// when the format has them, and the tensor kernel otherwise.
///
/// ```
/// use swalp_core::Backend;
/// assert_eq!("native".parse::<Backend>().unwrap(), Backend::Native);
/// assert_eq!(Backend::default(), Backend::Auto);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// Native on CPU `f32` when available, tensor otherwise.
    #[default]
    Auto,
    /// The fused Rust CPU kernel; `f32` CPU tensors only.
    Native,
    /// Composed tch ops; any device and floating dtype.
    Tensor,
    /// The fused CUDA kernel (see [`crate::cuda`]); `f32`, `bf16` and `f16`
    /// tensors on a CUDA device.
    Cuda,
}

impl Backend {
    /// Accepted spellings.
    ///
    /// ```
    /// use swalp_core::Backend;
    /// for name in Backend::NAMES {
    ///     assert_eq!(name.parse::<Backend>()?.to_string(), name);
    /// }
    /// # Ok::<(), swalp_core::SpecError>(())
    /// ```
    pub const NAMES: [&'static str; 4] = ["auto", "native", "tensor", "cuda"];
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Auto => "auto",
            Backend::Native => "native",
            Backend::Tensor => "tensor",
            Backend::Cuda => "cuda",
        })
    }
}
