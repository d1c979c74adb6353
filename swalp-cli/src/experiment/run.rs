//! Running an experiment: the training loop with its schedule, SWA and
//! evaluation, and the files it leaves in the output directory:
//! `config.toml` (the resolved experiment), `metrics.jsonl` (one line per
//! epoch) and `result.json`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{json, Value};
use swalp_core::hook::{shared_rng, SharedRng};
use swalp_core::optim::{
    Adam, AdamConfig, LowPrecision, OptimQuantizers, Sgd, SgdConfig, UpdateRule,
};
use swalp_core::points::PointConfig;
use swalp_core::swa::{recompute_batchnorm, Swa};
use swalp_core::tch::{self, nn::ModuleT, Device, Kind, Tensor};
use swalp_core::Quantizer;

use super::config::{DeviceChoice, Experiment};
use super::ExperimentError;
use crate::data::{self, Dataset, Optimum, Task};
use crate::io::atomic::TempFile;
use crate::models::{self, Model};

/// How to run: where outputs go and whether to print the epoch table.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The output directory (created if needed).
    pub out_dir: PathBuf,
    /// Print the per-epoch table to stdout.
    pub print_table: bool,
}

/// The optimizer an experiment asked for.
enum Optimizer {
    Sgd(Sgd),
    Adam(Adam),
}

impl Optimizer {
    fn build(exp: &Experiment, model: &Model, quant: OptimQuantizers, rng: SharedRng) -> Self {
        let o = &exp.optim;
        let params = LowPrecision::<SgdConfig>::trainable(&model.vs);
        match o.name.as_str() {
            "sgd" => {
                let config = SgdConfig {
                    lr: o.lr,
                    momentum: o.momentum,
                    dampening: o.dampening,
                    weight_decay: o.weight_decay,
                    nesterov: o.nesterov,
                };
                Optimizer::Sgd(LowPrecision::new(params, config, o.lr, quant, rng))
            }
            name => {
                let config = AdamConfig {
                    lr: o.lr,
                    beta1: o.beta1,
                    beta2: o.beta2,
                    eps: o.eps,
                    weight_decay: o.weight_decay,
                    decoupled: name == "adamw",
                };
                Optimizer::Adam(LowPrecision::new(params, config, o.lr, quant, rng))
            }
        }
    }

    fn with<T>(&mut self, f: impl FnOnce(&mut dyn StepLike) -> T) -> T {
        match self {
            Optimizer::Sgd(o) => f(o),
            Optimizer::Adam(o) => f(o),
        }
    }
}

/// The optimizer calls the loop needs, whatever the update rule.
trait StepLike {
    fn set_lr(&mut self, lr: f64);
    fn zero_grad(&mut self);
    fn step(&mut self) -> swalp_core::Result<()>;
}

impl<R: UpdateRule> StepLike for LowPrecision<R> {
    fn set_lr(&mut self, lr: f64) {
        LowPrecision::set_lr(self, lr)
    }
    fn zero_grad(&mut self) {
        LowPrecision::zero_grad(self)
    }
    fn step(&mut self) -> swalp_core::Result<()> {
        LowPrecision::step(self)
    }
}

/// Loss and quality of a model on a data split.
#[derive(Clone, Copy, Debug)]
struct Evaluation {
    loss: f64,
    /// Percent: misclassified examples, or for regression the unexplained
    /// share of the targets' variance.
    error: f64,
}

fn resolve_device(choice: DeviceChoice) -> Result<Device, ExperimentError> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Auto => Ok(Device::cuda_if_available()),
        DeviceChoice::Cuda if tch::Cuda::is_available() => Ok(Device::Cuda(0)),
        DeviceChoice::Cuda => Err(ExperimentError::Device(
            "experiment.device = \"cuda\" but CUDA is not available on this machine; use \"cpu\" or \"auto\"".into(),
        )),
    }
}

fn loss_of(task: Task, output: &Tensor, target: &Tensor) -> Tensor {
    match task {
        Task::Regression => (output - target).square().mean(Kind::Float) * 0.5,
        Task::Classification { .. } => output.cross_entropy_for_logits(target),
    }
}

fn evaluate(model: &Model, task: Task, x: &Tensor, y: &Tensor) -> Evaluation {
    let _guard = tch::no_grad_guard();
    let output = model.net.forward_t(x, false);
    let loss = loss_of(task, &output, y).double_value(&[]);
    let error = match task {
        Task::Regression => {
            let residual = (&output - y).square().sum(Kind::Double).double_value(&[]);
            let spread = (y - y.mean(Kind::Float))
                .square()
                .sum(Kind::Double)
                .double_value(&[]);
            100.0 * residual / spread
        }
        Task::Classification { .. } => {
            let wrong = output
                .argmax(1, false)
                .ne_tensor(y)
                .sum(Kind::Int64)
                .int64_value(&[]);
            100.0 * wrong as f64 / y.size()[0] as f64
        }
    };
    Evaluation { loss, error }
}

/// The model's parameters as one vector `[w, b]` (linear models).
fn flat_parameters(model: &Model) -> Tensor {
    let vars = model.vs.variables();
    let w = vars["linear.weight"].detach().flatten(0, -1);
    let b = vars["linear.bias"].detach().flatten(0, -1);
    Tensor::cat(&[w, b], 0)
        .to_kind(Kind::Double)
        .to_device(Device::Cpu)
}

/// Distance to the known optimum: squared parameter distance (least
/// squares) or the training-objective gap (logistic regression).
fn optimum_metrics(model: &Model, data: &Dataset) -> Value {
    match &data.optimum {
        Some(Optimum::Parameters(opt)) => {
            let dist = (flat_parameters(model) - opt)
                .square()
                .sum(Kind::Double)
                .double_value(&[]);
            json!({ "dist_to_opt": dist })
        }
        Some(Optimum::Objective {
            value,
            weight_decay,
        }) => {
            let vars = model.vs.variables();
            let w = vars["linear.weight"]
                .detach()
                .to_kind(Kind::Double)
                .to_device(Device::Cpu);
            let b = vars["linear.bias"]
                .detach()
                .to_kind(Kind::Double)
                .to_device(Device::Cpu);
            let theta = Tensor::cat(&[w.tr(), b.unsqueeze(0)], 0);
            let x = data.train_x.to_kind(Kind::Double).to_device(Device::Cpu);
            let y = data.train_y.to_device(Device::Cpu);
            let objective = data::synthetic::logistic_objective(&x, &y, &theta, *weight_decay);
            json!({ "train_objective": objective, "train_loss_gap": objective - value })
        }
        None => json!({}),
    }
}

fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), ExperimentError> {
    let fail = |e: std::io::Error| ExperimentError::Output {
        path: path.into(),
        reason: e.to_string(),
    };
    let tmp = TempFile::create_for(path).map_err(fail)?;
    std::fs::write(tmp.path(), contents).map_err(fail)?;
    tmp.persist().map_err(fail)
}

fn evaluation_json(e: Evaluation, extra: Value) -> Value {
    let mut v = json!({ "test_loss": e.loss, "test_error": e.error });
    if let (Some(map), Value::Object(more)) = (v.as_object_mut(), extra) {
        map.extend(more);
    }
    v
}

/// Runs `exp`, writing its outputs under `options.out_dir`; returns the
/// contents of `result.json`.
pub fn run(exp: &Experiment, options: &RunOptions) -> Result<Value, ExperimentError> {
    let device = resolve_device(exp.experiment.device)?;
    let out = &options.out_dir;
    std::fs::create_dir_all(out).map_err(|e| ExperimentError::Output {
        path: out.clone(),
        reason: e.to_string(),
    })?;
    let resolved = toml::to_string(exp).map_err(|e| ExperimentError::Invalid(e.to_string()))?;
    write_atomically(&out.join("config.toml"), resolved.as_bytes())?;

    let seed = exp.experiment.seed;
    let data = data::load(&exp.data, seed, exp.optim.weight_decay, device)?;
    let points = exp.points()?;
    let schedule = exp.schedule()?;
    let rng = shared_rng(seed);
    tch::manual_seed(seed as i64);
    let model = models::build(&exp.model, &data, &points, rng.clone(), device)?;
    let averaged = models::build(
        &exp.model,
        &data,
        &PointConfig::full_precision(),
        rng.clone(),
        device,
    )?;
    let mut quant = OptimQuantizers::from_points(&points);
    quant.grad_scale = exp.optim.grad_scale;
    let mut optimizer = Optimizer::build(exp, &model, quant, rng.clone());
    let swa_quant = exp
        .swa
        .quant
        .as_ref()
        .map(Quantizer::from_spec)
        .transpose()
        .map_err(|e| ExperimentError::Invalid(format!("swa.quant: {e}")))?;
    let named = || -> Vec<(String, Tensor)> { LowPrecision::<SgdConfig>::trainable(&model.vs) };
    let mut swa = exp
        .swa
        .enabled()
        .then(|| Swa::new(&named()).with_quantizer(swa_quant.clone()));

    let n = data.train_len();
    let batch = exp.train.batch_size as i64;
    let batches_per_epoch = (n + batch - 1) / batch;
    let per_step = exp.schedule.per == "step";
    let mut metrics = String::new();
    let mut steps: u64 = 0;
    if options.print_table {
        println!(
            "{:>5} {:>10} {:>10} {:>8} {:>10} {:>8} {:>10} {:>7}",
            "ep", "lr", "tr_loss", "tr_err", "te_loss", "te_err", "swa_te_err", "time"
        );
    }
    for epoch in 0..exp.train.epochs {
        let started = Instant::now();
        let averaging_epoch = exp.swa.start.is_some_and(|s| epoch >= s);
        let perm = Tensor::randperm(n, (Kind::Int64, device));
        let (mut loss_sum, mut lr) = (0.0, schedule.lr_at(epoch as f64));
        for b in 0..batches_per_epoch {
            if per_step {
                lr = schedule.lr_at(epoch as f64 + b as f64 / batches_per_epoch as f64);
            }
            optimizer.with(|o| o.set_lr(lr));
            let idx = perm.narrow(0, b * batch, batch.min(n - b * batch));
            let (x, y) = (
                data.train_x.index_select(0, &idx),
                data.train_y.index_select(0, &idx),
            );
            let loss = loss_of(data.task, &model.net.forward_t(&x, true), &y);
            optimizer.with(|o| o.zero_grad());
            loss.f_backward()?;
            optimizer.with(|o| o.step())?;
            loss_sum += loss.double_value(&[]) * idx.size()[0] as f64;
            steps += 1;
            if let (Some(swa), Some(every)) = (swa.as_mut(), exp.swa.every_steps) {
                let started = averaging_epoch || exp.swa.start_step.is_some_and(|s| steps >= s);
                if started && steps % every == 0 {
                    swa.update(&named(), &rng)?;
                }
            }
        }
        // The seed averages after every epoch e with e + 1 >= swa_start.
        if let (Some(swa), None, Some(start)) = (swa.as_mut(), exp.swa.every_steps, exp.swa.start) {
            if epoch + 1 >= start {
                swa.update(&named(), &rng)?;
            }
        }
        let train = evaluate(&model, data.task, &data.train_x, &data.train_y);
        let test = evaluate(&model, data.task, &data.test_x, &data.test_y);
        let swa_test = match &swa {
            Some(s) if s.count() > 0 => Some(evaluate_average(s, &averaged, &data)?),
            _ => None,
        };
        let seconds = started.elapsed().as_secs_f64();
        let line = json!({
            "epoch": epoch, "lr": lr, "train_loss": loss_sum / n as f64, "train_error": train.error,
            "test_loss": test.loss, "test_error": test.error,
            "swa_test_loss": swa_test.map(|e| e.loss), "swa_test_error": swa_test.map(|e| e.error),
            "time": seconds,
        });
        metrics.push_str(&line.to_string());
        metrics.push('\n');
        write_atomically(&out.join("metrics.jsonl"), metrics.as_bytes())?;
        if options.print_table {
            let swa_err = swa_test.map_or("-".to_string(), |e| format!("{:.4}", e.error));
            println!(
                "{:>5} {:>10.6} {:>10.6} {:>8.4} {:>10.6} {:>8.4} {:>10} {:>7.3}",
                epoch,
                lr,
                loss_sum / n as f64,
                train.error,
                test.loss,
                test.error,
                swa_err,
                seconds
            );
            let _ = std::io::stdout().flush();
        }
    }

    let sgd = evaluate(&model, data.task, &data.test_x, &data.test_y);
    let mut result = json!({
        "experiment": exp.experiment.name,
        "seed": seed,
        "epochs": exp.train.epochs,
        "steps": steps,
        "final": { "sgd": evaluation_json(sgd, optimum_metrics(&model, &data)) },
    });
    if let Some(swa) = &swa {
        if swa.count() > 0 {
            let e = evaluate_average(swa, &averaged, &data)?;
            let mut final_swa = evaluation_json(e, optimum_metrics(&averaged, &data));
            final_swa["count"] = json!(swa.count());
            result["final"]["swa"] = final_swa;
        }
    }
    let text = serde_json::to_string_pretty(&result)
        .map_err(|e| ExperimentError::Invalid(e.to_string()))?;
    write_atomically(&out.join("result.json"), text.as_bytes())?;
    Ok(result)
}

/// Loads the average into the averaged model, recomputes its BatchNorm
/// statistics if it has any, and evaluates it on the test set.
fn evaluate_average(
    swa: &Swa,
    averaged: &Model,
    data: &Dataset,
) -> Result<Evaluation, ExperimentError> {
    swa.copy_to(&averaged.vs)?;
    if averaged.has_batchnorm {
        let batches = data.train_x.split(128, 0);
        recompute_batchnorm(&averaged.vs, 0.1, batches, |b| {
            let _ = averaged.net.forward_t(b, true);
        })?;
    }
    Ok(evaluate(averaged, data.task, &data.test_x, &data.test_y))
}
