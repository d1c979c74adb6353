//! Reading `.safetensors` files in file order.
//!
//! `tch::Tensor::read_safetensors` validates the file but returns its tensors
//! in hash order. This module reads the header with the `safetensors` crate
//! to recover the order of the tensors' data in the file, so that each tensor
//! draws the same random stream on every run.

use std::path::Path;

use safetensors::SafeTensors;
use tch::Tensor;

/// The named tensors of the `.safetensors` file at `path`, in the order of
/// their data in the file. Errors are one-line reasons.
pub fn read(path: &Path) -> Result<Vec<(String, Tensor)>, String> {
    let order = tensor_order(path)?;
    let mut tensors = Tensor::read_safetensors(path).map_err(|e| e.to_string())?;
    let position = |name: &str| order.iter().position(|n| n == name);
    if tensors.len() != order.len() || tensors.iter().any(|(n, _)| position(n).is_none()) {
        return Err("the header and the tensors read disagree".into());
    }
    tensors.sort_by_key(|(name, _)| position(name));
    Ok(tensors)
}

/// Tensor names in the order of their data offsets, from the header as the
/// `safetensors` crate reads and validates it.
fn tensor_order(path: &Path) -> Result<Vec<String>, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let (_, metadata) =
        SafeTensors::read_metadata(&bytes).map_err(|e| format!("corrupt header ({e:?})"))?;
    if metadata.metadata().is_some() {
        log::warn!(
            "{}: its __metadata__ is not carried over to OUT",
            path.display()
        );
    }
    let mut entries: Vec<(usize, String)> = metadata
        .tensors()
        .into_iter()
        .map(|(name, info)| (info.data_offsets.0, name))
        .collect();
    entries.sort();
    Ok(entries.into_iter().map(|(_, name)| name).collect())
}
