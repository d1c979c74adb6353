//! Reading `.safetensors` files in file order.
//!
//! `tch::Tensor::read_safetensors` validates the file but returns its tensors
//! in hash order. This module reads the header with the `safetensors` crate
//! to recover the order of the tensors' data in the file, so that each tensor
//! draws the same random stream on every run.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use safetensors::tensor::Metadata;
use tch::Tensor;

/// Largest header accepted, as in the safetensors crate.
const MAX_HEADER: u64 = 100_000_000;

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
/// `safetensors` crate parses it (tch reads and validates the data).
fn tensor_order(path: &Path) -> Result<Vec<String>, String> {
    let metadata: Metadata =
        serde_json::from_slice(&read_header(path)?).map_err(|e| format!("corrupt header ({e})"))?;
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

/// The JSON header bytes: an 8-byte little-endian length, then the header.
/// Only the header is read; the tensors' data is tch's to read.
fn read_header(path: &Path) -> Result<Vec<u8>, String> {
    let mut file = File::open(path).map_err(|e| e.to_string())?;
    let file_len = file.metadata().map_err(|e| e.to_string())?.len();
    let mut len = [0u8; 8];
    file.read_exact(&mut len)
        .map_err(|_| "truncated: shorter than the 8-byte header length".to_string())?;
    let len = u64::from_le_bytes(len);
    if len > MAX_HEADER || len > file_len.saturating_sub(8) {
        return Err(format!(
            "corrupt header: declares {len} header bytes in a file of {file_len}"
        ));
    }
    let mut header = vec![0u8; len as usize];
    file.read_exact(&mut header)
        .map_err(|e| format!("reading the header: {e}"))?;
    Ok(header)
}
