//! [`check`]: everything a run builds from an experiment, built and tried
//! once, without training or writing anything.

use swalp_core::optim::{LowPrecision, SgdConfig};
use swalp_core::tch::{self, nn::ModuleT, Device, Kind, Tensor};

use super::build;
use super::config::Experiment;
use super::ExperimentError;
use crate::data::{self, Task};
use crate::models::{Inputs, Model};

/// Examples in the trial step of [`check`] (fewer when the training set or
/// the batch is smaller).
const TRIAL_BATCH: i64 = 2;

/// Checks that `exp` can run, as far as it can be known before training:
/// the device, the data set's files and shape (from headers, without
/// reading the examples), the model for that shape, `model.init`, the
/// optimizer, SWA and schedule, and one trial step of a throwaway model
/// (forward, backward, optimizer step, average, evaluation of the average)
/// on random inputs of the data's shape, which exercises every quantizer on
/// the tensors this model produces. Nothing is written.
///
/// `validate` runs this, and so does every run before it claims its
/// directory: an experiment that passes never fails later for a reason in
/// its configuration.
pub fn check(exp: &Experiment) -> Result<(), ExperimentError> {
    build::device(exp.experiment.device, 0)?;
    let shape = data::probe(&exp.data)?;
    if shape.train_len == 0 {
        return Err(ExperimentError::Value {
            key: "data".into(),
            message: format!("data set {:?} has no training examples", exp.data.name),
        });
    }
    exp.schedule()?;
    // Random inputs of the right shape: whatever fails is the
    // configuration's doing.
    trial_step(exp, &shape).map_err(|e| match e {
        ExperimentError::Training(e) => ExperimentError::Trial(e),
        other => other,
    })
}

thread_local! {
    static IN_TRIAL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this thread is running the forward pass of [`check`]'s trial
/// step. tch's module API cannot fail, so a quantization point reports an
/// error in a forward pass as a panic; the trial step turns that panic
/// into its error, and a front end's panic hook should stay quiet
/// meanwhile.
pub fn in_trial_step() -> bool {
    IN_TRIAL.with(std::cell::Cell::get)
}

/// `model`'s forward pass, with a panic (a quantization point's error)
/// returned as an error.
fn trial_forward(model: &Model, x: &Tensor, train: bool) -> Result<Tensor, ExperimentError> {
    IN_TRIAL.with(|t| t.set(true));
    let output = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        model.net.forward_t(x, train)
    }));
    IN_TRIAL.with(|t| t.set(false));
    output.map_err(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_string()))
            .unwrap_or_else(|| "the forward pass failed".into());
        ExperimentError::Trial(swalp_core::Error::Hook(message))
    })
}

/// One step of a throwaway model on the CPU ([`check`]).
fn trial_step(exp: &Experiment, shape: &data::DataShape) -> Result<(), ExperimentError> {
    let inputs = Inputs {
        shape: shape.input.clone(),
        task: shape.task,
    };
    let device = Device::Cpu;
    let build::Parts {
        model,
        averaged,
        mut optimizer,
        mut swa,
        rng,
        ..
    } = build::parts(exp, &inputs, device, build::Generators::One)?;
    let n = TRIAL_BATCH
        .min(exp.train.batch_size as i64)
        .min(shape.train_len);
    // The last batch of an epoch may be smaller (BatchNorm cannot train on
    // one example).
    let last = shape.train_len % exp.train.batch_size as i64;
    let sizes = if last > 0 && last < n {
        vec![n, last]
    } else {
        vec![n]
    };
    for n in sizes {
        let mut dims = vec![n];
        dims.extend(&shape.input);
        let x = Tensor::f_randn(&dims, (Kind::Float, device))?;
        let y = match shape.task {
            Task::Regression => Tensor::f_zeros([n, 1], (Kind::Float, device))?,
            Task::Classification { .. } => Tensor::f_zeros([n], (Kind::Int64, device))?,
        };
        optimizer.set_lr(exp.optim.lr);
        let output = trial_forward(&model, &x, true)?;
        let loss = shape.task.loss(&output, &y);
        optimizer.zero_grad();
        loss.f_backward()?;
        optimizer.step()?;
        // Evaluated as a run evaluates: the iterate, and the average.
        let _guard = tch::no_grad_guard();
        let _ = trial_forward(&model, &x, false)?;
        if let Some(swa) = swa.as_mut() {
            swa.update(&LowPrecision::<SgdConfig>::trainable(&model.vs), &rng)?;
            swa.copy_to(&averaged.vs)?;
            let _ = trial_forward(&averaged, &x, false)?;
        }
    }
    Ok(())
}
