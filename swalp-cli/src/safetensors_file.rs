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
    let (header, data_len) = read_header(path)?;
    let metadata: Metadata =
        serde_json::from_slice(&header).map_err(|e| format!("corrupt header ({e})"))?;
    check_layout(&metadata, data_len)?;
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

/// Checks what the format requires of the header against the data, in
/// words (the safetensors crate's errors are variant names): each tensor's
/// bytes are its dtype's size times its element count, tensors follow each
/// other without gaps or overlaps, and the data ends where the file does.
fn check_layout(metadata: &Metadata, data_len: u64) -> Result<(), String> {
    let mut tensors: Vec<(String, &safetensors::tensor::TensorInfo)> =
        metadata.tensors().into_iter().collect();
    tensors.sort_by_key(|(_, info)| info.data_offsets);
    let mut end = 0usize;
    for (name, info) in tensors {
        let (start, stop) = info.data_offsets;
        let needed = info
            .shape
            .iter()
            .try_fold(info.dtype.size(), |n, &d| n.checked_mul(d));
        if start != end || stop < start {
            return Err(format!(
                "tensor `{name}`: its data offsets {start}..{stop} do not follow the previous \
                 tensor's end {end}"
            ));
        }
        if needed != Some(stop - start) {
            return Err(format!(
                "tensor `{name}`: shape {:?} of {:?} needs {} bytes but its data offsets span {}",
                info.shape,
                info.dtype,
                needed.map_or("too many".to_string(), |n| n.to_string()),
                stop - start
            ));
        }
        end = stop;
    }
    if end as u64 != data_len {
        return Err(format!(
            "the header describes {end} bytes of tensor data but the file holds {data_len} \
             (truncated or padded)"
        ));
    }
    Ok(())
}

/// The JSON header bytes (an 8-byte little-endian length, then the header)
/// and the length of the data after it. Only the header is read; the
/// tensors' data is tch's to read.
fn read_header(path: &Path) -> Result<(Vec<u8>, u64), String> {
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
    Ok((header, file_len - 8 - len))
}
