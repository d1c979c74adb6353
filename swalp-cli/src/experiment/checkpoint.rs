//! Checkpoints: everything needed to continue a run exactly where it
//! stopped, written atomically.
//!
//! A checkpoint is a directory `checkpoints/step-<N>` in the run directory
//! holding `model.safetensors` (every model variable, BatchNorm statistics
//! included), `optimizer.safetensors` (step count, momentum buffers,
//! accumulators), `swa.safetensors` (the average, when averaging has
//! started) and `state.json` (position in the run, the quantization RNG, the
//! partial epoch's running sums). It is assembled in a hidden temporary
//! directory and renamed into place, so a checkpoint either exists whole or
//! not at all; older checkpoints are removed afterwards.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use swalp_core::tch::Tensor;
use swalp_core::QuantRng;

use super::observe::EpochRecord;
use super::ExperimentError;

/// Where a run is, between two optimizer steps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Position {
    /// The epoch in progress (or the next one, when `batch` is 0).
    pub epoch: u64,
    /// The next batch of that epoch.
    pub batch: u64,
    /// Optimizer steps taken.
    pub steps: u64,
    /// Sum of the training losses of the epoch's batches so far.
    pub loss_sum: f64,
    /// Misclassified training examples of the epoch so far.
    #[serde(default)]
    pub wrong: i64,
    /// The stochastic-rounding generator.
    pub rng: QuantRng,
    /// Models averaged so far.
    pub swa_count: u64,
    /// The records of the finished epochs (for `metrics.jsonl` and the
    /// paper's numbers of a resumed run).
    #[serde(default)]
    pub history: Vec<EpochRecord>,
}

/// A loaded checkpoint.
#[derive(Debug)]
pub struct Checkpoint {
    /// The checkpoint directory it was loaded from.
    pub dir: std::path::PathBuf,
    /// Where the run was.
    pub position: Position,
    /// Model variables by name.
    pub model: Vec<(String, Tensor)>,
    /// Optimizer state by name.
    pub optimizer: Vec<(String, Tensor)>,
    /// The SWA average, if averaging had started.
    pub swa: Option<Vec<(String, Tensor)>>,
}

fn output_error(path: &Path, e: impl Into<super::Cause>) -> ExperimentError {
    ExperimentError::Output {
        path: path.into(),
        source: e.into(),
    }
}

fn write_tensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<(), ExperimentError> {
    let cpu: Vec<(String, Tensor)> = tensors
        .iter()
        .map(|(k, t)| {
            (
                k.clone(),
                t.detach()
                    .to_device(swalp_core::tch::Device::Cpu)
                    .contiguous(),
            )
        })
        .collect();
    Tensor::write_safetensors(&cpu, path).map_err(|e| output_error(path, e))
}

/// Saves a checkpoint under `run_dir/checkpoints` and removes older ones.
pub fn save(
    run_dir: &Path,
    position: &Position,
    model: &[(String, Tensor)],
    optimizer: &[(String, Tensor)],
    swa: Option<&[(String, Tensor)]>,
) -> Result<PathBuf, ExperimentError> {
    let root = run_dir.join("checkpoints");
    std::fs::create_dir_all(&root).map_err(|e| output_error(&root, e))?;
    let tmp = root.join(format!(".partial-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| output_error(&tmp, e))?;
    }
    std::fs::create_dir(&tmp).map_err(|e| output_error(&tmp, e))?;
    write_tensors(&tmp.join("model.safetensors"), model)?;
    write_tensors(&tmp.join("optimizer.safetensors"), optimizer)?;
    if let Some(avg) = swa {
        write_tensors(&tmp.join("swa.safetensors"), avg)?;
    }
    let state = serde_json::to_string_pretty(position).map_err(|e| output_error(&tmp, e))?;
    std::fs::write(tmp.join("state.json"), state).map_err(|e| output_error(&tmp, e))?;
    let name = format!("step-{:012}", position.steps);
    let target = root.join(&name);
    if target.exists() {
        std::fs::remove_dir_all(&target).map_err(|e| output_error(&target, e))?;
    }
    std::fs::rename(&tmp, &target).map_err(|e| output_error(&target, e))?;
    for old in list(&root)? {
        if old != target {
            std::fs::remove_dir_all(&old).map_err(|e| output_error(&old, e))?;
        }
    }
    Ok(target)
}

/// Complete checkpoints under `checkpoints/`, oldest first.
fn list(root: &Path) -> Result<Vec<PathBuf>, ExperimentError> {
    let mut found: Vec<PathBuf> = match std::fs::read_dir(root) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(output_error(root, e)),
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("step-"))
                    && p.join("state.json").is_file()
            })
            .collect(),
    };
    found.sort();
    Ok(found)
}

/// The newest checkpoint of the run in `run_dir`.
pub fn latest(run_dir: &Path) -> Result<PathBuf, ExperimentError> {
    list(&run_dir.join("checkpoints"))?
        .pop()
        .ok_or_else(|| ExperimentError::Resume {
            run_dir: run_dir.into(),
            problem: super::ResumeProblem::NoCheckpoint,
        })
}

/// Loads a checkpoint directory.
pub fn load(dir: &Path) -> Result<Checkpoint, ExperimentError> {
    fn read_error(path: &Path, e: impl Into<super::Cause>) -> ExperimentError {
        ExperimentError::Read {
            path: path.into(),
            what: "checkpoint file",
            source: e.into(),
        }
    }
    let state_path = dir.join("state.json");
    let text = std::fs::read_to_string(&state_path).map_err(|e| read_error(&state_path, e))?;
    let position: Position = serde_json::from_str(&text).map_err(|e| read_error(&state_path, e))?;
    let tensors = |name: &str| -> Result<Vec<(String, Tensor)>, ExperimentError> {
        let path = dir.join(name);
        Tensor::read_safetensors(&path).map_err(|e| read_error(&path, e))
    };
    let swa_path = dir.join("swa.safetensors");
    Ok(Checkpoint {
        dir: dir.into(),
        position,
        model: tensors("model.safetensors")?,
        optimizer: tensors("optimizer.safetensors")?,
        swa: if swa_path.is_file() {
            Some(tensors("swa.safetensors")?)
        } else {
            None
        },
    })
}
