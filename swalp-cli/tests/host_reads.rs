//! The training loop does not wait for the device at every step (issue 14,
//! item 5): its sums stay on the device and the host reads them at log
//! points only, so the number of reads per epoch does not grow with the
//! number of steps, and the numbers are those the host's per-step sums
//! gave.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use swalp_cli::experiment::host::host_reads;
use swalp_cli::experiment::observe::{Control, EpochRecord, Observer, StepReport};
use swalp_cli::experiment::{Experiment, ExperimentError, RunOptions};

fn exp(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../exp")
        .join(name)
}

/// What a run showed its observers.
#[derive(Default)]
struct Seen {
    /// [`host_reads`] when each epoch started and when the run finished.
    reads_at: Vec<u64>,
    /// Per epoch, the batch losses of the steps that reported them.
    losses: Vec<Vec<f64>>,
    /// Per epoch, the mean loss so far of the steps that reported it.
    mean_losses: Vec<Vec<f64>>,
    /// Per epoch, the misclassified examples so far, where reported.
    wrong: Vec<Vec<u64>>,
    records: Vec<EpochRecord>,
}

impl Seen {
    /// Host reads from each epoch's start to the next one's (or the end):
    /// the epoch's training, evaluations, checks and checkpoint.
    fn reads_per_epoch(&self) -> Vec<u64> {
        self.reads_at.windows(2).map(|w| w[1] - w[0]).collect()
    }
}

/// Records what the run reports; with `every_step`, asks for the losses at
/// every step, as the old loop read them.
struct Watch {
    every_step: bool,
    seen: Rc<RefCell<Seen>>,
}

impl Observer for Watch {
    fn epoch_started(&mut self, _: u64, _: u64, _: u64) {
        let mut seen = self.seen.borrow_mut();
        seen.reads_at.push(host_reads());
        seen.losses.push(Vec::new());
        seen.mean_losses.push(Vec::new());
        seen.wrong.push(Vec::new());
    }

    fn wants_loss(&mut self, _: &StepReport) -> bool {
        self.every_step
    }

    fn step(&mut self, report: &StepReport) -> Control {
        let mut seen = self.seen.borrow_mut();
        if let Some(loss) = report.loss {
            seen.losses.last_mut().unwrap().push(loss);
        }
        if let Some(mean) = report.mean_loss {
            seen.mean_losses.last_mut().unwrap().push(mean);
        }
        if let Some(wrong) = report.wrong {
            seen.wrong.last_mut().unwrap().push(wrong);
        }
        Control::Continue
    }

    fn epoch_finished(&mut self, record: &EpochRecord) -> Result<(), ExperimentError> {
        self.seen.borrow_mut().records.push(record.clone());
        Ok(())
    }

    fn finished(&mut self, _: &serde_json::Value) {
        self.seen.borrow_mut().reads_at.push(host_reads());
    }
}

const EPOCHS: usize = 3;
/// Both experiment files generate 4096 training examples.
const N: u64 = 4096;

/// Runs `file` for three epochs (averaging from the second) with batches
/// of `batch_size`, into `out`.
fn watched(file: &Path, batch_size: u64, every_step: bool, out: &Path) -> Seen {
    let overrides: Vec<String> = [
        format!("train.epochs={EPOCHS}"),
        "swa.start=2".into(),
        format!("train.batch_size={batch_size}"),
        "log.progress=false".into(),
        "log.table=false".into(),
    ]
    .into();
    let experiment = Experiment::load(file, &overrides).unwrap();
    let seen = Rc::new(RefCell::new(Seen::default()));
    let mut observers = swalp_cli::experiment::file_observers(&experiment);
    observers.push(Box::new(Watch {
        every_step,
        seen: Rc::clone(&seen),
    }));
    swalp_cli::experiment::run_with(&experiment, &RunOptions::new(out), observers).unwrap();
    Rc::into_inner(seen).unwrap().into_inner()
}

/// The records without the time they took.
fn numbers(records: &[EpochRecord]) -> Vec<EpochRecord> {
    records
        .iter()
        .map(|r| EpochRecord {
            time: 0.0,
            ..r.clone()
        })
        .collect()
}

/// Per epoch at most one read of the training sums, one per evaluation of
/// the iterate and of the average (two for regression, whose error also
/// reads the targets' spread), and one for the parameters' check.
const READS_PER_EPOCH: u64 = 6;

fn check_reads_and_numbers(file: &str, classification: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let file = exp(file);
    // 137 batches per epoch, the last one of 16 examples; and 410.
    let batches = N.div_ceil(30);
    let quiet = watched(&file, 30, false, &tmp.path().join("quiet"));
    let finer = watched(&file, 10, false, &tmp.path().join("finer"));
    let every = watched(&file, 30, true, &tmp.path().join("every"));

    // Reads per epoch are a small constant, the same for three times the
    // steps: not one per step.
    let reads = quiet.reads_per_epoch();
    assert_eq!(reads.len(), EPOCHS, "{reads:?}");
    for r in &reads {
        assert!((1..=READS_PER_EPOCH).contains(r), "{reads:?}");
    }
    assert_eq!(finer.reads_per_epoch(), reads);
    // Asking at every step reads at every step: the counter sees them.
    for r in every.reads_per_epoch() {
        assert!(r >= batches, "{r} reads for {batches} steps");
    }
    assert!(quiet.losses.iter().all(Vec::is_empty));

    // Reading does not change the numbers.
    assert_eq!(numbers(&every.records), numbers(&quiet.records));

    for (epoch, record) in quiet.records.iter().enumerate() {
        // The old loop's sum, on the host from the batch losses: each f32
        // loss as f64 times the batch's size, in order; bit for bit.
        let losses = &every.losses[epoch];
        assert_eq!(losses.len() as u64, batches);
        let mut sum = 0.0;
        for (b, loss) in losses.iter().enumerate() {
            let size = 30.min(N - 30 * b as u64);
            sum += loss * size as f64;
        }
        assert_eq!(sum / N as f64, record.train_loss, "epoch {epoch}");
        assert!(record.train_loss.is_finite() && record.train_loss > 0.0);
        assert_eq!(every.mean_losses[epoch].last(), Some(&record.train_loss));

        let wrong = &every.wrong[epoch];
        if classification {
            assert_eq!(wrong.len() as u64, batches);
            // Counts so far: never falling, at most a batch more per step.
            for (b, w) in wrong.windows(2).enumerate() {
                assert!(w[0] <= w[1] && w[1] - w[0] <= 30, "batch {b}: {w:?}");
            }
            let last = *wrong.last().unwrap();
            assert!(last > 0 && last < N);
            assert_eq!(record.train_error, Some(100.0 * last as f64 / N as f64));
        } else {
            assert!(wrong.is_empty());
            assert_eq!(record.train_error, None);
        }
    }
}

/// One test for both tasks: runs in this process share libtorch's global
/// generator (the models' initialisation draws from it), so two runs on
/// parallel test threads would not be reproducible.
#[test]
fn the_training_loop_reads_the_device_per_epoch_not_per_step() {
    check_reads_and_numbers("logreg_synthetic_swalp.toml", true);
    check_reads_and_numbers("linreg_swalp.toml", false);
}
