//! Reading `.safetensors` files in file order.
//!
//! `tch::Tensor::read_safetensors` validates the file but returns its tensors
//! in hash order. This module reads the header itself to recover the order of
//! the tensors' data in the file, so that each tensor draws the same random
//! stream on every run.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use tch::Tensor;

/// Largest header accepted, as in the safetensors crate.
const MAX_HEADER: u64 = 100_000_000;

/// Key of the free-form string metadata in a header.
const METADATA_KEY: &str = "__metadata__";

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

/// Tensor names in the order of their data offsets.
fn tensor_order(path: &Path) -> Result<Vec<String>, String> {
    let header = read_header(path)?;
    let header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&header)
        .map_err(|e| format!("corrupt header (not a JSON object: {e})"))?;
    let mut entries = Vec::with_capacity(header.len());
    for (name, info) in &header {
        if name == METADATA_KEY {
            log::warn!(
                "{}: its {METADATA_KEY} is not carried over to OUT",
                path.display()
            );
            continue;
        }
        let start = info
            .get("data_offsets")
            .and_then(|o| o.get(0))
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| format!("corrupt header: tensor {name:?} has no data_offsets"))?;
        entries.push((start, name.clone()));
    }
    entries.sort();
    Ok(entries.into_iter().map(|(_, name)| name).collect())
}

/// The JSON header bytes: an 8-byte little-endian length, then the header.
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
