//! Running an experiment: the training loop with its schedule, SWA,
//! evaluation, checkpoints and outputs.
//!
//! The run directory receives `config.toml` (the resolved experiment),
//! `metrics.jsonl` (one line per epoch), TensorBoard event files,
//! `checkpoints/` and, at the end, `result.json`, each written atomically.
//!
//! Every random choice is a function of the seed and the position in the
//! run (epoch, batch), never of what ran before: the shuffling and the
//! augmentation draw from counter-based streams, libtorch's generator (for
//! dropout) is reseeded before every step, and the quantization RNG is
//! saved in checkpoints. A run resumed from a checkpoint on the same device
//! therefore ends with exactly the numbers of an uninterrupted one.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use serde_json::{json, Value};
use swalp_core::hook::{shared_rng, SharedRng};
use swalp_core::optim::{
    Adam, AdamConfig, LowPrecision, OptimQuantizers, Sgd, SgdConfig, UpdateRule,
};
use swalp_core::points::PointConfig;
use swalp_core::schedule::LrSchedule;
use swalp_core::swa::{recompute_batchnorm, Swa};
use swalp_core::tch::{self, nn::ModuleT, Device, Kind, Tensor};
use swalp_core::{QuantRng, Quantizer};

use super::checkpoint::{self, Position};
use super::config::{DeviceChoice, Experiment};
use super::tensorboard::EventWriter;
use super::ExperimentError;
use crate::data::{self, Dataset, Optimum, Task};
use crate::io::atomic::TempFile;
use crate::models::{self, Model};

/// Prints a line of the epoch table; a closed stdout (`| head`) is not an
/// error worth stopping a run for.
macro_rules! table_line {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// How to run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The run directory (created if needed).
    pub out_dir: PathBuf,
    /// Continue from the newest checkpoint in `out_dir`.
    pub resume: bool,
    /// Behave as if Ctrl-C were pressed after this many optimizer steps
    /// (tests of interruption and resumption).
    pub stop_after_steps: Option<u64>,
}

/// Set by the Ctrl-C handler; checked between steps.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

fn install_interrupt_handler() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        if let Err(e) = ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst)) {
            log::warn!("Ctrl-C will stop the run without a checkpoint: {e}");
        }
    });
}

/// The optimizer an experiment asked for.
enum Optimizer {
    Sgd(Sgd),
    Adam(Adam),
}

/// The optimizer calls the loop needs, whatever the update rule.
trait Stepper {
    fn set_lr(&mut self, lr: f64);
    fn zero_grad(&mut self);
    fn step(&mut self) -> swalp_core::Result<()>;
    fn state_tensors(&self) -> Vec<(String, Tensor)>;
    fn load_state_tensors(&mut self, state: &[(String, Tensor)]) -> swalp_core::Result<()>;
}

impl<R: UpdateRule> Stepper for LowPrecision<R> {
    fn set_lr(&mut self, lr: f64) {
        LowPrecision::set_lr(self, lr)
    }
    fn zero_grad(&mut self) {
        LowPrecision::zero_grad(self)
    }
    fn step(&mut self) -> swalp_core::Result<()> {
        LowPrecision::step(self)
    }
    fn state_tensors(&self) -> Vec<(String, Tensor)> {
        LowPrecision::state_tensors(self)
    }
    fn load_state_tensors(&mut self, state: &[(String, Tensor)]) -> swalp_core::Result<()> {
        LowPrecision::load_state_tensors(self, state)
    }
}

impl Optimizer {
    fn build(exp: &Experiment, model: &Model, quant: OptimQuantizers, rng: SharedRng) -> Self {
        let o = &exp.optim;
        let params = LowPrecision::<SgdConfig>::trainable(&model.vs);
        if o.name == "sgd" {
            let config = SgdConfig {
                lr: o.lr,
                momentum: o.momentum,
                dampening: o.dampening,
                weight_decay: o.weight_decay,
                nesterov: o.nesterov,
            };
            Optimizer::Sgd(LowPrecision::new(params, config, o.lr, quant, rng))
        } else {
            let config = AdamConfig {
                lr: o.lr,
                beta1: o.beta1,
                beta2: o.beta2,
                eps: o.eps,
                weight_decay: o.weight_decay,
                decoupled: o.name == "adamw",
            };
            Optimizer::Adam(LowPrecision::new(params, config, o.lr, quant, rng))
        }
    }

    fn get(&mut self) -> &mut dyn Stepper {
        match self {
            Optimizer::Sgd(o) => o,
            Optimizer::Adam(o) => o,
        }
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

/// Examples per forward pass when evaluating.
const EVAL_CHUNK: i64 = 1000;

fn evaluate(model: &Model, task: Task, x: &Tensor, y: &Tensor, device: Device) -> Evaluation {
    let _guard = tch::no_grad_guard();
    let n = x.size()[0];
    let (mut loss, mut wrong, mut residual) = (0.0, 0i64, 0.0);
    let mut start = 0;
    while start < n {
        let len = EVAL_CHUNK.min(n - start);
        let xb = x.narrow(0, start, len).to_device(device);
        let yb = y.narrow(0, start, len).to_device(device);
        let output = model.net.forward_t(&xb, false);
        loss += loss_of(task, &output, &yb).double_value(&[]) * len as f64;
        match task {
            Task::Regression => {
                residual += (&output - &yb).square().sum(Kind::Double).double_value(&[])
            }
            Task::Classification { .. } => {
                wrong += output
                    .argmax(1, false)
                    .ne_tensor(&yb)
                    .sum(Kind::Int64)
                    .int64_value(&[])
            }
        }
        start += len;
    }
    let error = match task {
        Task::Regression => {
            let spread = (y - y.mean(Kind::Float))
                .square()
                .sum(Kind::Double)
                .double_value(&[]);
            100.0 * residual / spread
        }
        Task::Classification { .. } => 100.0 * wrong as f64 / n as f64,
    };
    Evaluation {
        loss: loss / n as f64,
        error,
    }
}

/// The model's parameters as one vector `[w, b]` (linear models).
fn linear_parameters(model: &Model) -> Option<(Tensor, Tensor)> {
    let vars = model.vs.variables();
    let w = vars
        .get("linear.weight")?
        .detach()
        .to_kind(Kind::Double)
        .to_device(Device::Cpu);
    let b = vars
        .get("linear.bias")?
        .detach()
        .to_kind(Kind::Double)
        .to_device(Device::Cpu);
    Some((w, b))
}

/// Distance to the known optimum: squared parameter distance (least
/// squares) or the training-objective gap (logistic regression).
fn optimum_metrics(model: &Model, data: &Dataset) -> Value {
    let Some((w, b)) = linear_parameters(model) else {
        return json!({});
    };
    match &data.optimum {
        Some(Optimum::Parameters(opt)) => {
            let flat = Tensor::cat(&[w.flatten(0, -1), b.flatten(0, -1)], 0);
            json!({ "dist_to_opt": (flat - opt).square().sum(Kind::Double).double_value(&[]) })
        }
        Some(Optimum::Objective {
            value,
            weight_decay,
        }) => {
            let theta = Tensor::cat(&[w.tr(), b.unsqueeze(0)], 0);
            let x = data.train_x.to_kind(Kind::Double);
            let objective =
                data::synthetic::logistic_objective(&x, &data.train_y, &theta, *weight_decay);
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

/// A seed for one purpose at one position of the run.
fn derived_seed(seed: u64, purpose: u64, epoch: u64, batch: u64) -> u64 {
    let mut rng = QuantRng::new(seed ^ purpose.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let stream = rng.next_stream();
    (u64::from(stream.bits(epoch)) << 32) | u64::from(stream.bits(batch ^ (1 << 40)))
}

const SHUFFLE: u64 = 1;
const AUGMENT: u64 = 2;
const DROPOUT: u64 = 3;

/// The order of the training examples in `epoch`: a Fisher–Yates shuffle
/// driven by a counter-based stream.
fn epoch_order(seed: u64, epoch: u64, n: i64) -> Vec<i64> {
    let stream = QuantRng::new(derived_seed(seed, SHUFFLE, epoch, 0)).next_stream();
    let mut order: Vec<i64> = (0..n).collect();
    for i in (1..n as usize).rev() {
        let j = ((u64::from(stream.bits(i as u64)) * (i as u64 + 1)) >> 32) as usize;
        order.swap(i, j);
    }
    order
}

/// One training batch, prepared off the training thread.
struct Batch {
    x: Tensor,
    y: Tensor,
}

/// Prepares the batches of one epoch from `first` on, on a background
/// thread, at most two ahead of the training step.
fn spawn_batches(
    data: &Dataset,
    order: Vec<i64>,
    batch_size: i64,
    first: i64,
    device: Device,
    augment_seed: u64,
) -> mpsc::Receiver<Batch> {
    let (tx, rx) = mpsc::sync_channel(2);
    let x = data.train_x.shallow_clone();
    let y = data.train_y.shallow_clone();
    let augment = data.augment;
    let prepare = data.prepare.clone();
    std::thread::spawn(move || {
        let stream = QuantRng::new(augment_seed).next_stream();
        let n = order.len() as i64;
        let mut start = first * batch_size;
        while start < n {
            let len = batch_size.min(n - start);
            let positions = &order[start as usize..(start + len) as usize];
            let idx = Tensor::from_slice(positions);
            let mut xb = x.index_select(0, &idx);
            if let Some(augment) = augment {
                let draws: Vec<u32> = (start..start + len)
                    .map(|p| stream.bits(p as u64))
                    .collect();
                xb = augment(&xb, &draws);
            }
            if let Some(prepare) = &prepare {
                xb = prepare(&xb);
            }
            let batch = Batch {
                x: xb.to_device(device),
                y: y.index_select(0, &idx).to_device(device),
            };
            if tx.send(batch).is_err() {
                return;
            }
            start += len;
        }
    });
    rx
}

/// What an experiment trains, and its state.
struct Trainer<'a> {
    exp: &'a Experiment,
    device: Device,
    data: Dataset,
    model: Model,
    averaged: Model,
    optimizer: Optimizer,
    swa: Option<Swa>,
    schedule: LrSchedule,
    rng: SharedRng,
    position: Position,
}

impl<'a> Trainer<'a> {
    fn new(exp: &'a Experiment, device: Device) -> Result<Self, ExperimentError> {
        let seed = exp.experiment.seed;
        let data = data::load(&exp.data, seed, exp.optim.weight_decay)?;
        let points = exp.points()?;
        let rng = shared_rng(seed);
        tch::manual_seed(seed as i64);
        let model = models::build(&exp.model, &data, &points, rng.clone(), device)?;
        let averaged_points = if exp.swa.eval_quantized {
            points.clone()
        } else {
            PointConfig::full_precision()
        };
        let averaged = models::build(&exp.model, &data, &averaged_points, rng.clone(), device)?;
        let mut quant = OptimQuantizers::from_points(&points);
        quant.grad_scale = exp.optim.grad_scale;
        let optimizer = Optimizer::build(exp, &model, quant, rng.clone());
        let swa_quant = exp
            .swa
            .quant
            .as_ref()
            .map(Quantizer::from_spec)
            .transpose()
            .map_err(|e| ExperimentError::Invalid(format!("swa.quant: {e}")))?;
        let swa = exp.swa.enabled().then(|| {
            Swa::new(&LowPrecision::<SgdConfig>::trainable(&model.vs)).with_quantizer(swa_quant)
        });
        let position = Position {
            epoch: 0,
            batch: 0,
            steps: 0,
            loss_sum: 0.0,
            wrong: 0,
            rng: QuantRng::new(seed),
            swa_count: 0,
        };
        Ok(Trainer {
            exp,
            device,
            data,
            model,
            averaged,
            optimizer,
            swa,
            schedule: exp.schedule()?,
            rng,
            position,
        })
    }

    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        LowPrecision::<SgdConfig>::trainable(&self.model.vs)
    }

    fn save_checkpoint(&mut self, run_dir: &Path) -> Result<PathBuf, ExperimentError> {
        self.position.rng = self.rng.lock().unwrap_or_else(|p| p.into_inner()).clone();
        self.position.swa_count = self.swa.as_ref().map_or(0, Swa::count);
        let model: Vec<(String, Tensor)> = self.model.vs.variables().into_iter().collect();
        let optimizer = self.optimizer.get().state_tensors();
        let swa = self
            .swa
            .as_ref()
            .filter(|s| s.count() > 0)
            .map(|s| s.average().to_vec_shallow());
        checkpoint::save(run_dir, &self.position, &model, &optimizer, swa.as_deref())
    }

    fn restore(&mut self, checkpoint: checkpoint::Checkpoint) -> Result<(), ExperimentError> {
        let _guard = tch::no_grad_guard();
        let mut vars = self.model.vs.variables();
        for (name, saved) in &checkpoint.model {
            let target = vars.get_mut(name).ok_or_else(|| {
                ExperimentError::Invalid(format!(
                    "checkpoint has variable `{name}` the model lacks"
                ))
            })?;
            target.f_copy_(saved)?;
        }
        self.optimizer
            .get()
            .load_state_tensors(&checkpoint.optimizer)?;
        if let (Some(swa), Some(avg)) = (self.swa.as_mut(), checkpoint.swa) {
            swa.load(avg, checkpoint.position.swa_count)?;
        }
        *self.rng.lock().unwrap_or_else(|p| p.into_inner()) = checkpoint.position.rng.clone();
        self.position = checkpoint.position;
        Ok(())
    }

    fn batches_per_epoch(&self) -> u64 {
        let n = self.data.train_len() as u64;
        let b = self.exp.train.batch_size as u64;
        n.div_ceil(b)
    }

    /// Trains the rest of the current epoch; returns false when interrupted.
    fn train_epoch(
        &mut self,
        progress: &indicatif::ProgressBar,
        stop_after: Option<u64>,
    ) -> Result<bool, ExperimentError> {
        let seed = self.exp.experiment.seed;
        let epoch = self.position.epoch;
        let per_epoch = self.batches_per_epoch();
        let order = epoch_order(seed, epoch, self.data.train_len());
        let batches = spawn_batches(
            &self.data,
            order,
            self.exp.train.batch_size as i64,
            self.position.batch as i64,
            self.device,
            derived_seed(seed, AUGMENT, epoch, 0),
        );
        progress.set_position(self.position.batch);
        let per_step = self.exp.schedule.per == "step";
        for batch in batches {
            let b = self.position.batch;
            let lr = if per_step {
                self.schedule
                    .lr_at(epoch as f64 + b as f64 / per_epoch as f64)
            } else {
                self.schedule.lr_at(epoch as f64)
            };
            tch::manual_seed(derived_seed(seed, DROPOUT, epoch, b) as i64);
            let optimizer = self.optimizer.get();
            optimizer.set_lr(lr);
            let output = self.model.net.forward_t(&batch.x, true);
            let loss = loss_of(self.data.task, &output, &batch.y);
            if let Task::Classification { .. } = self.data.task {
                let wrong = output.argmax(1, false).ne_tensor(&batch.y).sum(Kind::Int64);
                self.position.wrong += wrong.int64_value(&[]);
            }
            optimizer.zero_grad();
            loss.f_backward()?;
            optimizer.step()?;
            let loss = loss.double_value(&[]);
            self.position.loss_sum += loss * batch.x.size()[0] as f64;
            self.position.batch += 1;
            self.position.steps += 1;
            self.average_after_step()?;
            progress.inc(1);
            progress.set_message(format!("{loss:.4}"));
            let stop = stop_after.is_some_and(|s| self.position.steps >= s);
            if INTERRUPTED.load(Ordering::SeqCst) || stop {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn average_after_step(&mut self) -> Result<(), ExperimentError> {
        let (Some(swa), Some(every)) = (self.swa.as_mut(), self.exp.swa.every_steps) else {
            return Ok(());
        };
        let started = self.exp.swa.start.is_some_and(|s| self.position.epoch >= s)
            || self
                .exp
                .swa
                .start_step
                .is_some_and(|s| self.position.steps >= s);
        if started && self.position.steps % every == 0 {
            let params = LowPrecision::<SgdConfig>::trainable(&self.model.vs);
            swa.update(&params, &self.rng)?;
        }
        Ok(())
    }

    /// The seed's rule: average after every epoch `e` with `e + 1 >= start`.
    fn average_after_epoch(&mut self) -> Result<(), ExperimentError> {
        if self.exp.swa.every_steps.is_some() {
            return Ok(());
        }
        let params = self.named_parameters();
        if let (Some(swa), Some(start)) = (self.swa.as_mut(), self.exp.swa.start) {
            if self.position.epoch + 1 >= start {
                swa.update(&params, &self.rng)?;
            }
        }
        Ok(())
    }

    fn evaluate(&self, model: &Model) -> Evaluation {
        evaluate(
            model,
            self.data.task,
            &self.data.test_x,
            &self.data.test_y,
            self.device,
        )
    }

    /// Loads the average into the averaged model, recomputes its BatchNorm
    /// statistics over the training set if it has any, and evaluates it.
    fn evaluate_average(&self) -> Result<Option<Evaluation>, ExperimentError> {
        let Some(swa) = self.swa.as_ref().filter(|s| s.count() > 0) else {
            return Ok(None);
        };
        swa.copy_to(&self.averaged.vs)?;
        if self.averaged.has_batchnorm {
            let batch = self.exp.train.batch_size as i64;
            let device = self.device;
            let data = &self.data;
            let batches = data
                .train_x
                .split(batch, 0)
                .into_iter()
                .map(move |b| data.prepared(&b).to_device(device));
            recompute_batchnorm(
                &self.averaged.vs,
                models::BATCHNORM_MOMENTUM,
                batches,
                |b| {
                    let _ = self.averaged.net.forward_t(b, true);
                },
            )?;
        }
        Ok(Some(self.evaluate(&self.averaged)))
    }
}

trait ShallowVec {
    fn to_vec_shallow(&self) -> Vec<(String, Tensor)>;
}

impl ShallowVec for [(String, Tensor)] {
    fn to_vec_shallow(&self) -> Vec<(String, Tensor)> {
        self.iter()
            .map(|(k, t)| (k.clone(), t.shallow_clone()))
            .collect()
    }
}

fn progress_bar(exp: &Experiment, epoch: u64, len: u64) -> indicatif::ProgressBar {
    if !exp.log.progress {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    let style = indicatif::ProgressStyle::with_template(
        "ep {prefix:>3} [{bar:30}] {pos}/{len} {per_sec} loss {msg} ETA {eta}",
    )
    .map(|s| s.progress_chars("=> "));
    if let Ok(style) = style {
        bar.set_style(style);
    }
    bar.set_prefix(epoch.to_string());
    bar
}

/// Metrics lines of earlier epochs, kept when resuming.
fn previous_metrics(path: &Path, before_epoch: u64) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter(|l| {
            serde_json::from_str::<Value>(l)
                .ok()
                .and_then(|v| v["epoch"].as_u64())
                .is_some_and(|e| e < before_epoch)
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Runs `exp` into `options.out_dir`; returns the contents of `result.json`.
pub fn run(exp: &Experiment, options: &RunOptions) -> Result<Value, ExperimentError> {
    let device = resolve_device(exp.experiment.device)?;
    let out = &options.out_dir;
    std::fs::create_dir_all(out).map_err(|e| ExperimentError::Output {
        path: out.clone(),
        reason: e.to_string(),
    })?;
    let mut trainer = Trainer::new(exp, device)?;
    if options.resume {
        let path = checkpoint::latest(out)?;
        trainer.restore(checkpoint::load(&path)?)?;
        log::info!("resuming from {}", path.display());
    } else {
        let resolved = toml::to_string(exp).map_err(|e| ExperimentError::Invalid(e.to_string()))?;
        write_atomically(&out.join("config.toml"), resolved.as_bytes())?;
    }
    install_interrupt_handler();
    let metrics_path = out.join("metrics.jsonl");
    let mut metrics = previous_metrics(&metrics_path, trainer.position.epoch);
    let mut events = if exp.log.tensorboard {
        Some(
            EventWriter::create(out).map_err(|e| ExperimentError::Output {
                path: out.clone(),
                reason: e.to_string(),
            })?,
        )
    } else {
        None
    };
    if exp.log.table {
        table_line!(
            "{:>5} {:>10} {:>10} {:>8} {:>8} {:>10} {:>8} {:>10} {:>7}",
            "ep",
            "lr",
            "tr_loss",
            "tr_err",
            "te_loss",
            "te_err",
            "swa_loss",
            "swa_err",
            "time"
        );
    }
    while trainer.position.epoch < exp.train.epochs {
        let epoch = trainer.position.epoch;
        let started = Instant::now();
        let bar = progress_bar(exp, epoch, trainer.batches_per_epoch());
        let completed = trainer.train_epoch(&bar, options.stop_after_steps)?;
        bar.finish_and_clear();
        if !completed {
            trainer.save_checkpoint(out)?;
            return Err(ExperimentError::Interrupted {
                run_dir: out.clone(),
            });
        }
        trainer.average_after_epoch()?;
        let lr = trainer.schedule.lr_at(epoch as f64);
        let train_loss = trainer.position.loss_sum / trainer.data.train_len() as f64;
        // Errors of the model as it trained (dropout on, weights moving), as
        // the seed reports them; none for regression.
        let train_error = match trainer.data.task {
            Task::Classification { .. } => {
                Some(100.0 * trainer.position.wrong as f64 / trainer.data.train_len() as f64)
            }
            Task::Regression => None,
        };
        let test = trainer.evaluate(&trainer.model);
        let swa_test = trainer.evaluate_average()?;
        let seconds = started.elapsed().as_secs_f64();
        let line = json!({
            "epoch": epoch, "lr": lr, "train_loss": train_loss, "train_error": train_error,
            "test_loss": test.loss, "test_error": test.error,
            "swa_test_loss": swa_test.map(|e| e.loss), "swa_test_error": swa_test.map(|e| e.error),
            "time": seconds,
        });
        metrics.push_str(&format!("{line}\n"));
        write_atomically(&metrics_path, metrics.as_bytes())?;
        if let Some(events) = events.as_mut() {
            let mut scalars = vec![
                ("lr", lr),
                ("train/loss", train_loss),
                ("test/loss", test.loss),
                ("test/error", test.error),
            ];
            if let Some(e) = train_error {
                scalars.push(("train/error", e));
            }
            if let Some(s) = swa_test {
                scalars.extend([("swa/test_loss", s.loss), ("swa/test_error", s.error)]);
            }
            let _ = events.scalars(epoch as i64, &scalars);
        }
        if exp.log.table {
            let swa = |f: fn(&Evaluation) -> f64| {
                swa_test
                    .as_ref()
                    .map_or("-".to_string(), |e| format!("{:.4}", f(e)))
            };
            table_line!(
                "{:>5} {:>10.6} {:>10.6} {:>8} {:>8.4} {:>10.4} {:>8} {:>10} {:>7.2}",
                epoch,
                lr,
                train_loss,
                train_error.map_or("-".to_string(), |e| format!("{e:.4}")),
                test.loss,
                test.error,
                swa(|e| e.loss),
                swa(|e| e.error),
                seconds
            );
            let _ = std::io::stdout().flush();
        }
        trainer.position.epoch += 1;
        trainer.position.batch = 0;
        trainer.position.loss_sum = 0.0;
        trainer.position.wrong = 0;
        let every = exp.log.checkpoint_every;
        if (every > 0 && trainer.position.epoch % every == 0)
            || trainer.position.epoch == exp.train.epochs
        {
            trainer.save_checkpoint(out)?;
        }
    }

    let sgd = trainer.evaluate(&trainer.model);
    let mut result = json!({
        "experiment": exp.experiment.name,
        "seed": exp.experiment.seed,
        "epochs": exp.train.epochs,
        "steps": trainer.position.steps,
        "final": { "sgd": evaluation_json(sgd, optimum_metrics(&trainer.model, &trainer.data)) },
    });
    if let Some(e) = trainer.evaluate_average()? {
        let mut swa = evaluation_json(e, optimum_metrics(&trainer.averaged, &trainer.data));
        swa["count"] = json!(trainer.swa.as_ref().map_or(0, Swa::count));
        result["final"]["swa"] = swa;
    }
    let text = serde_json::to_string_pretty(&result)
        .map_err(|e| ExperimentError::Invalid(e.to_string()))?;
    write_atomically(&out.join("result.json"), text.as_bytes())?;
    Ok(result)
}
