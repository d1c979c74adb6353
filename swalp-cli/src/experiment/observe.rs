//! What a run reports while it trains, and the observers that listen: the
//! library writes `metrics.jsonl` and TensorBoard files through observers
//! ([`MetricsFile`], [`TensorBoard`]); a front end adds its own (the command
//! line's progress bar, epoch table and Ctrl-C). The trainer itself never
//! prints.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::tensorboard::EventWriter;
use super::ExperimentError;

/// One optimizer step.
///
/// The losses and the error count live on the device while a run trains:
/// reading them on the host makes the host wait for the device, so they
/// are read only at log points, when an observer asks for them
/// ([`Observer::wants_loss`]). At other steps `loss`, `mean_loss` and
/// `wrong` are `None`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepReport {
    /// The epoch (0-based).
    pub epoch: u64,
    /// Batches of this epoch done, this one included.
    pub batch: u64,
    /// Batches in the epoch.
    pub batches: u64,
    /// Optimizer steps of the run so far, this one included.
    pub steps: u64,
    /// The batch's training loss, at log points.
    pub loss: Option<f64>,
    /// The mean training loss of the epoch's examples so far (those of the
    /// batches before an interruption included), at log points; after the
    /// epoch's last batch it is the epoch's `train_loss`.
    pub mean_loss: Option<f64>,
    /// Misclassified training examples of the epoch so far, at log points
    /// (classification only).
    pub wrong: Option<u64>,
}

/// One finished epoch: a line of `metrics.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// The epoch (0-based).
    pub epoch: u64,
    /// Its learning rate (at its start, for per-step schedules).
    pub lr: f64,
    /// Mean training loss over its batches.
    pub train_loss: f64,
    /// Misclassified training examples, percent, as the model trained
    /// (classification only).
    pub train_error: Option<f64>,
    /// Test loss of the SGD iterate.
    pub test_loss: f64,
    /// Test error of the SGD iterate, percent (regression: unexplained
    /// variance).
    pub test_error: f64,
    /// Test loss of the average, once averaging has started.
    pub swa_test_loss: Option<f64>,
    /// Test error of the average.
    pub swa_test_error: Option<f64>,
    /// Models averaged so far.
    pub swa_count: u64,
    /// Seconds the epoch took, evaluation included.
    pub time: f64,
}

/// The first NaN or infinity of a run: which quantity, where.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Divergence {
    /// The epoch (0-based, as in the table and `metrics.jsonl`).
    pub epoch: u64,
    /// Optimizer steps taken when it was seen.
    pub step: u64,
    /// What: `training loss` or `parameter <name>`.
    pub quantity: String,
    /// Its value: `NaN`, `inf` or `-inf`.
    pub value: String,
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the {} is {} at epoch {}, step {}",
            self.quantity, self.value, self.epoch, self.step
        )
    }
}

/// A checkpoint a resumed run passed over
/// ([`load_latest`](super::checkpoint::load_latest)), and why.
#[derive(Debug)]
pub struct Skipped {
    /// The checkpoint directory.
    pub dir: PathBuf,
    /// What is wrong with it.
    pub error: ExperimentError,
}

/// Whether a run goes on after a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Keep training.
    Continue,
    /// Write a checkpoint and stop ([`ExperimentError::Interrupted`]).
    Stop,
}

/// Listens to a run. Every method has a default that does nothing.
///
/// ```
/// use swalp_cli::experiment::observe::{Control, Observer, StepReport};
/// /// Stops a run after a number of optimizer steps.
/// struct StopAfter(u64);
/// impl Observer for StopAfter {
///     fn step(&mut self, report: &StepReport) -> Control {
///         if report.steps >= self.0 { Control::Stop } else { Control::Continue }
///     }
/// }
/// ```
pub trait Observer {
    /// The run starts in `run_dir`; `history` holds the records of the
    /// epochs before (a resumed run's).
    fn started(&mut self, run_dir: &Path, history: &[EpochRecord]) -> Result<(), ExperimentError> {
        let _ = (run_dir, history);
        Ok(())
    }

    /// A resumed run continues from `checkpoint`; `skipped` are the newer
    /// checkpoints it could not use, and why.
    fn resumed(&mut self, checkpoint: &Path, skipped: &[Skipped]) {
        let _ = (checkpoint, skipped);
    }

    /// An epoch starts (or resumes with `done` of its `batches` done).
    fn epoch_started(&mut self, epoch: u64, batches: u64, done: u64) {
        let _ = (epoch, batches, done);
    }

    /// Whether this observer needs the losses of the step `report`
    /// describes (asked before [`step`](Observer::step), with the losses
    /// still `None`). A yes makes the run read them from the device, which
    /// waits for the device to finish its queued work: ask at a bounded
    /// rate (the command line's progress bar asks a few times a second),
    /// not at every step. The default never asks; the epoch's totals reach
    /// [`epoch_finished`](Observer::epoch_finished) anyway.
    fn wants_loss(&mut self, report: &StepReport) -> bool {
        let _ = report;
        false
    }

    /// An optimizer step was taken; [`Control::Stop`] interrupts the run.
    fn step(&mut self, report: &StepReport) -> Control {
        let _ = report;
        Control::Continue
    }

    /// An epoch finished and was evaluated.
    fn epoch_finished(&mut self, record: &EpochRecord) -> Result<(), ExperimentError> {
        let _ = record;
        Ok(())
    }

    /// The run finished; `result` is `result.json`'s contents.
    fn finished(&mut self, result: &Value) {
        let _ = result;
    }
}

/// Writes `metrics.jsonl`: one JSON line per epoch, rewritten atomically
/// after each (a resumed run keeps the lines of the epochs before).
#[derive(Debug, Default)]
pub struct MetricsFile {
    path: PathBuf,
    text: String,
}

impl MetricsFile {
    fn write(&self) -> Result<(), ExperimentError> {
        write_atomically(&self.path, self.text.as_bytes())
    }

    fn push(&mut self, record: &EpochRecord) -> Result<(), ExperimentError> {
        let line = serde_json::to_string(record).map_err(|e| ExperimentError::Output {
            path: self.path.clone(),
            source: e.into(),
        })?;
        self.text.push_str(&line);
        self.text.push('\n');
        Ok(())
    }
}

impl Observer for MetricsFile {
    fn started(&mut self, run_dir: &Path, history: &[EpochRecord]) -> Result<(), ExperimentError> {
        self.path = run_dir.join("metrics.jsonl");
        self.text.clear();
        for record in history {
            self.push(record)?;
        }
        if !history.is_empty() {
            self.write()?;
        }
        Ok(())
    }

    fn epoch_finished(&mut self, record: &EpochRecord) -> Result<(), ExperimentError> {
        self.push(record)?;
        self.write()
    }
}

/// Writes TensorBoard event files (`tensorboard --logdir RUN_DIR`): the
/// rate, the losses and the errors of every epoch.
#[derive(Default)]
pub struct TensorBoard {
    events: Option<EventWriter>,
}

impl Observer for TensorBoard {
    fn started(&mut self, run_dir: &Path, _: &[EpochRecord]) -> Result<(), ExperimentError> {
        let events = EventWriter::create(run_dir).map_err(|e| ExperimentError::Output {
            path: run_dir.into(),
            source: e.into(),
        })?;
        self.events = Some(events);
        Ok(())
    }

    fn epoch_finished(&mut self, r: &EpochRecord) -> Result<(), ExperimentError> {
        let Some(events) = self.events.as_mut() else {
            return Ok(());
        };
        let mut scalars = vec![
            ("lr", r.lr),
            ("train/loss", r.train_loss),
            ("test/loss", r.test_loss),
            ("test/error", r.test_error),
        ];
        if let Some(e) = r.train_error {
            scalars.push(("train/error", e));
        }
        if let (Some(loss), Some(error)) = (r.swa_test_loss, r.swa_test_error) {
            scalars.extend([("swa/test_loss", loss), ("swa/test_error", error)]);
        }
        // Event files are a convenience: a failed write loses a point of a
        // plot, not the run's results.
        if let Err(e) = events.scalars(r.epoch as i64, &scalars) {
            log::warn!("TensorBoard event file: {e}");
        }
        Ok(())
    }
}

/// Writes `contents` to `path` through a temporary file and a rename.
pub(crate) fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), ExperimentError> {
    crate::atomic::write(path, contents).map_err(|e| ExperimentError::Output {
        path: path.into(),
        source: e.into(),
    })
}
