//! The command line's observers of a run: a progress bar per epoch, the
//! seed's epoch table on stdout, and Ctrl-C, which stops a run after its
//! current step (the run writes a checkpoint for `--resume`).

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::experiment::observe::{Control, EpochRecord, Observer, Skipped, StepReport};
use crate::experiment::{Experiment, ExperimentError};

/// The observers `swalp-cli run` adds to the library's file observers, as
/// `log.progress` and `log.table` ask.
pub fn terminal(exp: &Experiment) -> Vec<Box<dyn Observer>> {
    let mut observers: Vec<Box<dyn Observer>> =
        vec![Box::new(CtrlC::install()), Box::new(ResumeNotice)];
    if exp.log.progress {
        observers.push(Box::new(Progress::default()));
    }
    if exp.log.table {
        observers.push(Box::new(EpochTable));
    }
    observers
}

/// Set by the Ctrl-C handler; read after every step.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Stops the run after the step during which Ctrl-C was pressed.
struct CtrlC;

impl CtrlC {
    fn install() -> Self {
        static INSTALLED: std::sync::Once = std::sync::Once::new();
        INSTALLED.call_once(|| {
            if let Err(e) = ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst)) {
                log::warn!("Ctrl-C will stop the run without a checkpoint: {e}");
            }
        });
        CtrlC
    }
}

impl Observer for CtrlC {
    fn step(&mut self, _: &StepReport) -> Control {
        if INTERRUPTED.load(Ordering::SeqCst) {
            Control::Stop
        } else {
            Control::Continue
        }
    }
}

/// Says on stderr which checkpoint a resumed run continues from, and which
/// newer ones it could not use.
struct ResumeNotice;

impl Observer for ResumeNotice {
    fn resumed(&mut self, checkpoint: &Path, skipped: &[Skipped]) {
        for s in skipped {
            let why = match &s.error {
                ExperimentError::Checkpoint { problem, .. } => problem.to_string(),
                other => other.to_string(),
            };
            eprintln!("warning: skipping checkpoint {}: {why}", s.dir.display());
        }
        eprintln!("resuming from {}", checkpoint.display());
    }
}

/// A progress bar per epoch, on a terminal (indicatif hides it otherwise).
/// It shows the epoch's mean training loss so far, refreshed every
/// [`LOSS_REFRESH`]: reading the loss waits for the device, so the bar
/// does not ask at every step, and never when it is hidden.
#[derive(Default)]
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    /// When the bar last showed a loss.
    shown: Option<Instant>,
}

/// How often the progress bar reads the loss.
const LOSS_REFRESH: Duration = Duration::from_millis(500);

impl Observer for Progress {
    fn epoch_started(&mut self, epoch: u64, batches: u64, done: u64) {
        let bar = indicatif::ProgressBar::new(batches);
        let style = indicatif::ProgressStyle::with_template(
            "ep {prefix:>3} [{bar:30}] {pos}/{len} {per_sec} loss {msg} ETA {eta}",
        )
        .map(|s| s.progress_chars("=> "));
        if let Ok(style) = style {
            bar.set_style(style);
        }
        bar.set_prefix(epoch.to_string());
        bar.set_position(done);
        bar.set_message("-");
        self.bar = Some(bar);
        // The first step of an epoch shows its loss.
        self.shown = None;
    }

    fn wants_loss(&mut self, _: &StepReport) -> bool {
        let visible = self.bar.as_ref().is_some_and(|bar| !bar.is_hidden());
        visible && self.shown.map_or(true, |t| t.elapsed() >= LOSS_REFRESH)
    }

    fn step(&mut self, report: &StepReport) -> Control {
        if let Some(bar) = &self.bar {
            bar.set_position(report.batch);
            if let Some(loss) = report.mean_loss {
                bar.set_message(format!("{loss:.4}"));
                self.shown = Some(Instant::now());
            }
        }
        Control::Continue
    }

    fn epoch_finished(&mut self, _: &EpochRecord) -> Result<(), ExperimentError> {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        Ok(())
    }
}

/// The seed's per-epoch table on stdout. A closed stdout (`| head`) is not
/// a reason to stop training.
struct EpochTable;

/// Prints a line of the table, ignoring a closed stdout.
fn line(text: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_fmt(text).and_then(|()| out.write_all(b"\n"));
    let _ = out.flush();
}

impl Observer for EpochTable {
    fn started(&mut self, _: &Path, _: &[EpochRecord]) -> Result<(), ExperimentError> {
        line(format_args!(
            "{:>5} {:>10} {:>10} {:>8} {:>8} {:>10} {:>8} {:>10} {:>7}",
            "ep", "lr", "tr_loss", "tr_err", "te_loss", "te_err", "swa_loss", "swa_err", "time"
        ));
        Ok(())
    }

    fn epoch_finished(&mut self, r: &EpochRecord) -> Result<(), ExperimentError> {
        let cell = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
        line(format_args!(
            "{:>5} {:>10.6} {:>10.6} {:>8} {:>8.4} {:>10.4} {:>8} {:>10} {:>7.2}",
            r.epoch,
            r.lr,
            r.train_loss,
            cell(r.train_error),
            r.test_loss,
            r.test_error,
            cell(r.swa_test_loss),
            cell(r.swa_test_error),
            r.time
        ));
        Ok(())
    }
}
