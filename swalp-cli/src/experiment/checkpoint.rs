//! Checkpoints: everything needed to continue a run exactly where it
//! stopped, written atomically.
//!
//! A checkpoint is a directory `checkpoints/step-<N>` in the run directory
//! holding `model.safetensors` (every model variable, BatchNorm statistics
//! included), `optimizer.safetensors` (step count, momentum buffers,
//! accumulators), `swa.safetensors` (the average, when averaging has
//! started) and `state.json` (position in the run, the quantization RNG, the
//! partial epoch's running sums). It is assembled in a hidden temporary
//! directory (`.partial-<pid>`), closed by `sha256sums` (the digest of every
//! other file, `sha256sum -c` format, written last) and renamed into place,
//! so a checkpoint either exists whole or not at all. The two newest
//! checkpoints are kept: when the newest is damaged, [`load_latest`] falls
//! back to the one before.

use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use swalp_core::tch::Tensor;
use swalp_core::QuantRng;

use super::observe::{Divergence, EpochRecord, Skipped};
use super::{CheckpointProblem, ExperimentError};

/// The name prefix of a checkpoint being assembled.
pub const PARTIAL_PREFIX: &str = ".partial-";

/// The digest file, written last.
pub const DIGESTS: &str = "sha256sums";

/// Checkpoints kept: the newest, and one to fall back to.
const KEEP: usize = 2;

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
    /// The first NaN or infinity, for a run that trains on through it
    /// (`train.on_nonfinite = "continue"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub divergence: Option<Divergence>,
    /// The ranks of the data-parallel run (1 for one process): a run
    /// resumes only with as many, since the sharding of every batch and
    /// each rank's draws depend on it.
    #[serde(default = "one_process")]
    pub world_size: u64,
}

/// The world size of a checkpoint written before world sizes were
/// recorded: every such run was one process.
fn one_process() -> u64 {
    1
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
    let tmp = root.join(format!("{PARTIAL_PREFIX}{}", std::process::id()));
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
    write_digests(&tmp)?;
    let name = format!("step-{:012}", position.steps);
    let target = root.join(&name);
    if target.exists() {
        std::fs::remove_dir_all(&target).map_err(|e| output_error(&target, e))?;
    }
    std::fs::rename(&tmp, &target).map_err(|e| output_error(&target, e))?;
    let all = list(&root)?;
    for old in &all[..all.len().saturating_sub(KEEP)] {
        std::fs::remove_dir_all(old).map_err(|e| output_error(old, e))?;
    }
    Ok(target)
}

/// The files of a checkpoint directory that its digest covers, sorted.
fn covered_files(dir: &Path) -> Result<Vec<String>, ExperimentError> {
    let entries = std::fs::read_dir(dir).map_err(|e| output_error(dir, e))?;
    let mut names = Vec::new();
    for entry in entries {
        let name = entry.map_err(|e| output_error(dir, e))?.file_name();
        let name = name.to_string_lossy().into_owned();
        if name != DIGESTS {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

fn sha256_of(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .fold(String::with_capacity(64), |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        }))
}

/// Writes `sha256sums` for the files in `dir`, flushed to disk.
fn write_digests(dir: &Path) -> Result<(), ExperimentError> {
    let mut text = String::new();
    for name in covered_files(dir)? {
        let path = dir.join(&name);
        let digest = sha256_of(&path).map_err(|e| output_error(&path, e))?;
        let _ = writeln!(text, "{digest}  {name}");
    }
    let path = dir.join(DIGESTS);
    std::fs::write(&path, text).map_err(|e| output_error(&path, e))?;
    std::fs::File::open(&path)
        .and_then(|f| f.sync_all())
        .map_err(|e| output_error(&path, e))
}

/// Checks every file of the checkpoint in `dir` against `sha256sums`.
fn verify_digests(dir: &Path) -> Result<(), ExperimentError> {
    let problem = |problem| ExperimentError::Checkpoint {
        dir: dir.into(),
        problem,
    };
    let listed = match std::fs::read_to_string(dir.join(DIGESTS)) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(problem(CheckpointProblem::NoDigests))
        }
        Err(e) => {
            return Err(problem(CheckpointProblem::Unreadable {
                file: DIGESTS.into(),
                source: e.into(),
            }))
        }
    };
    let mut expected: Vec<(String, String)> = Vec::new();
    for line in listed.lines() {
        let Some((digest, name)) = line.split_once("  ") else {
            return Err(problem(CheckpointProblem::Mismatch {
                file: DIGESTS.into(),
            }));
        };
        expected.push((name.to_string(), digest.to_string()));
    }
    expected.sort();
    let present = covered_files(dir)?;
    if let Some(extra) = present
        .iter()
        .find(|name| !expected.iter().any(|(n, _)| n == *name))
    {
        return Err(problem(CheckpointProblem::Mismatch {
            file: extra.clone(),
        }));
    }
    for (name, digest) in expected {
        let path = dir.join(&name);
        match sha256_of(&path) {
            Ok(actual) if actual == digest => {}
            Ok(_) => return Err(problem(CheckpointProblem::Mismatch { file: name })),
            Err(e) => {
                return Err(problem(CheckpointProblem::Unreadable {
                    file: name,
                    source: e.into(),
                }))
            }
        }
    }
    Ok(())
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
                    && p.is_dir()
            })
            .collect(),
    };
    found.sort();
    Ok(found)
}

/// Whether the run in `run_dir` has written a checkpoint (valid or not).
pub fn any(run_dir: &Path) -> Result<bool, ExperimentError> {
    Ok(!list(&run_dir.join("checkpoints"))?.is_empty())
}

/// Loads the newest valid checkpoint of the run in `run_dir`: complete,
/// equal to its digests, and accepted by `accept` (the caller's check of
/// its position against the experiment). Returns it with the newer ones
/// passed over; when none is valid, the newest one's error.
pub fn load_latest(
    run_dir: &Path,
    accept: impl Fn(&Checkpoint) -> Result<(), ExperimentError>,
) -> Result<(Checkpoint, Vec<Skipped>), ExperimentError> {
    let mut skipped = Vec::new();
    for dir in list(&run_dir.join("checkpoints"))?.into_iter().rev() {
        match load(&dir).and_then(|c| accept(&c).map(|()| c)) {
            Ok(checkpoint) => return Ok((checkpoint, skipped)),
            Err(error) => skipped.push(Skipped { dir, error }),
        }
    }
    match skipped.into_iter().next() {
        Some(newest) => Err(newest.error),
        None => Err(ExperimentError::Resume {
            run_dir: run_dir.into(),
            problem: super::ResumeProblem::NoCheckpoint,
        }),
    }
}

/// Loads a checkpoint directory, after checking its digests.
pub fn load(dir: &Path) -> Result<Checkpoint, ExperimentError> {
    verify_digests(dir)?;
    let read_error = |path: &Path, e: super::Cause| ExperimentError::Checkpoint {
        dir: dir.into(),
        problem: CheckpointProblem::Unreadable {
            file: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            source: e,
        },
    };
    let state_path = dir.join("state.json");
    let text =
        std::fs::read_to_string(&state_path).map_err(|e| read_error(&state_path, e.into()))?;
    let position: Position =
        serde_json::from_str(&text).map_err(|e| read_error(&state_path, e.into()))?;
    let tensors = |name: &str| -> Result<Vec<(String, Tensor)>, ExperimentError> {
        let path = dir.join(name);
        Tensor::read_safetensors(&path).map_err(|e| read_error(&path, e.into()))
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
