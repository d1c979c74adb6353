//! An experiment run from Rust with swalp-cli as a library, without its
//! command line (`swalp-cli = { ..., default-features = false }` pulls in
//! neither clap nor the downloader nor Ctrl-C handling): a typed
//! configuration, the data set and the model built by hand to look at them,
//! then the whole run with an observer of one's own next to the files the
//! library writes.
//!
//! ```text
//! swalp-cli/scripts/with-torch cargo run --release -p swalp-cli --example experiment_from_rust
//! ```

use std::path::Path;

use swalp_cli::data;
use swalp_cli::experiment::observe::{Control, EpochRecord, Observer, StepReport};
use swalp_cli::experiment::{self, Experiment, ExperimentError, RunOptions};
use swalp_cli::models::{self, Inputs};
use swalp_core::hook::shared_rng;
use swalp_core::tch::Device;

/// Least squares in 8-bit fixed point, averaged with SWALP.
const EXPERIMENT: &str = r#"
[experiment]
name = "linreg_from_rust"
device = "cpu"

[data]
name = "synthetic-linreg"
n_train = 4096
dim = 16

[model]
name = "linreg"

[quant]
default = { format = "fixed", wl = 8, fl = 6, rounding = "stochastic" }

[optim]
lr = 0.02

[swa]
start = 4
every_steps = 1

[train]
epochs = 12
batch_size = 32
"#;

/// Keeps the batch loss of every 64th step and the epoch records. The loss
/// is read from the device only when an observer asks for it, and reading
/// waits for the device, so observers ask at some steps, not at all.
#[derive(Default)]
struct Collect {
    losses: Vec<f64>,
    epochs: Vec<EpochRecord>,
}

impl Observer for &mut Collect {
    fn wants_loss(&mut self, report: &StepReport) -> bool {
        report.steps % 64 == 0
    }

    fn step(&mut self, report: &StepReport) -> Control {
        self.losses.extend(report.loss);
        Control::Continue
    }

    fn epoch_finished(&mut self, record: &EpochRecord) -> Result<(), ExperimentError> {
        self.epochs.push(record.clone());
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let exp = Experiment::parse(EXPERIMENT, Path::new("linreg_from_rust.toml"), &[])?;

    // The pieces, by hand.
    let dataset = data::load(&exp.data, exp.experiment.seed, exp.optim.weight_decay)?;
    let inputs = Inputs {
        shape: dataset.input_shape(),
        task: dataset.task,
    };
    let model = models::build(
        &exp.model,
        &inputs,
        exp.points(),
        shared_rng(0),
        Device::Cpu,
    )?;
    println!(
        "{} training examples of shape {:?}; model variables: {:?}",
        dataset.train_len(),
        inputs.shape,
        models::weights::state(&model)
            .iter()
            .map(|(name, t)| (name.clone(), t.size()))
            .collect::<Vec<_>>()
    );

    // The whole run: metrics.jsonl, checkpoints, result.json and the
    // exported models in a directory, and our own observer.
    let dir = std::env::temp_dir().join(format!("swalp-example-{}", std::process::id()));
    let options = RunOptions::new(dir.clone());
    let mut collect = Collect::default();
    let mut observers: Vec<Box<dyn Observer + '_>> = experiment::file_observers(&exp);
    observers.push(Box::new(&mut collect));
    let result = experiment::run_with(&exp, &options, observers)?;
    println!(
        "{} losses read, first {:.4}, last {:.4}",
        collect.losses.len(),
        collect.losses.first().copied().unwrap_or(f64::NAN),
        collect.losses.last().copied().unwrap_or(f64::NAN)
    );
    let (sgd, swa) = (
        result["final"]["sgd"]["dist_to_opt"]
            .as_f64()
            .unwrap_or(f64::NAN),
        result["final"]["swa"]["dist_to_opt"]
            .as_f64()
            .unwrap_or(f64::NAN),
    );
    println!("squared distance to the optimum: SGD {sgd:.3e}, SWALP {swa:.3e}");
    assert_eq!(collect.epochs.len(), 12);
    assert_eq!(collect.losses.len(), 12 * 128 / 64, "one read per 64 steps");
    assert!(swa < sgd, "the average is closer to the optimum");
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

#[test]
fn runs() {
    main().unwrap_or_else(|e| panic!("{e}"));
}
