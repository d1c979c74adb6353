//! Running an experiment: the training loop with its schedule, SWA,
//! evaluation, checkpoints and outputs.
//!
//! The run directory receives `config.toml` (the resolved experiment),
//! `metrics.jsonl` (one line per epoch), TensorBoard event files,
//! `checkpoints/` and, at the end, `result.json`, `model_sgd.safetensors`
//! and `model_swa.safetensors` (the final models, with PyTorch's
//! `state_dict` names), each written atomically.
//!
//! Models are evaluated as the SWALP seed evaluates them: before each
//! evaluation the BatchNorm statistics of the model (the SGD iterate as well
//! as the average) are recomputed with one pass over the training set
//! (`bn_update`), and `result.json` reports under `paper` the two numbers of
//! the paper's table, the SGD iterate after `swa.start` epochs and the
//! average after `train.epochs − 1` epochs, next to the end-of-run values
//! under `final`.
//!
//! Every random choice is a function of the seed and the position in the
//! run (epoch, batch), never of what ran before: the shuffling and the
//! augmentation draw from counter-based streams, libtorch's generator (for
//! dropout) is reseeded before every step, and the quantization RNG is
//! saved in checkpoints. A run resumed from a checkpoint on the same device
//! therefore ends with exactly the numbers of an uninterrupted one.
//!
//! The loop reads nothing from the device at a step, so that a step only
//! queues device work: the epoch's loss sum and error count are kept on
//! the device (`Running`) and read on the host ([`host`]) at log points
//! only: at the end of the epoch, when an observer stops the run (before
//! its checkpoint), and at the steps an observer asks for the loss
//! ([`Observer::wants_loss`]). A non-finite loss is therefore noticed at
//! the next read, not at its step, but reported with its step.

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::time::Instant;

use serde_json::{json, Value};
use swalp_core::batchnorm::recompute_batchnorm_counted;
use swalp_core::distributed::ProcessGroup;
use swalp_core::hook::SharedRng;
use swalp_core::optim::{LowPrecision, Optimizer, SgdConfig};
use swalp_core::schedule::LrSchedule;
use swalp_core::swa::Swa;
use swalp_core::tch::{self, nn::ModuleT, Device, Kind, Tensor};
use swalp_core::QuantRng;

use super::build;
use super::check::check;
use super::checkpoint::{self, Checkpoint, Position};
use super::config::{Experiment, OnNonFinite, SchedulePer};
use super::host;
use super::observe::{
    write_atomically, Control, Divergence, EpochRecord, MetricsFile, Observer, Skipped, StepReport,
    TensorBoard,
};
use super::parallel::{shard, DataParallel};
use super::rundir::{Claim, RunDir};
use super::{CheckpointProblem, ExperimentError, ResumeProblem};
use crate::data::{self, Dataset, Optimum, Task};
use crate::models::{weights, Inputs, Model};

/// How to run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The run directory (created if needed).
    pub out_dir: PathBuf,
    /// A new run, the continuation of the one in `out_dir` (from its newest
    /// valid checkpoint), or a new run replacing it.
    pub claim: Claim,
    /// The process group of a data-parallel run (every rank runs the same
    /// experiment with the same options; rank 0 writes the run directory),
    /// or `None` for one process. See [`join_from_env`](super::join_from_env).
    pub group: Option<Arc<ProcessGroup>>,
}

impl RunOptions {
    /// A new run into `out_dir`, which must not hold another run.
    pub fn new(out_dir: impl Into<PathBuf>) -> Self {
        RunOptions {
            out_dir: out_dir.into(),
            claim: Claim::Fresh,
            group: None,
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

/// Examples per forward pass when evaluating.
const EVAL_CHUNK: i64 = 1000;

/// The loss and error of `model` on `(x, y)`. The sums stay on the device
/// and are read once, at the end: one host synchronisation per evaluation,
/// not one per chunk. They are the sums the host made before, term for
/// term (each chunk's `f32` loss widened to `f64`, times the chunk's
/// length, added in order), so the numbers are unchanged.
fn evaluate(
    model: &Model,
    task: Task,
    x: &Tensor,
    y: &Tensor,
    device: Device,
    parallel: Option<&DataParallel>,
) -> Result<Evaluation, ExperimentError> {
    let _guard = tch::no_grad_guard();
    let n = x.size()[0];
    // Each rank evaluates its share of the examples; the sums are added
    // across ranks.
    let (shard_x, shard_y) = match parallel {
        Some(p) => {
            let rows: Vec<i64> = (0..n).collect();
            let rows = Tensor::from_slice(&shard(&rows, p.rank(), p.world_size()));
            (x.f_index_select(0, &rows)?, y.f_index_select(0, &rows)?)
        }
        None => (x.shallow_clone(), y.shallow_clone()),
    };
    let local = shard_x.size()[0];
    let zero = |kind| Tensor::zeros([], (kind, device));
    let (mut loss, mut wrong, mut residual) =
        (zero(Kind::Double), zero(Kind::Int64), zero(Kind::Double));
    let mut start = 0;
    while start < local {
        let len = EVAL_CHUNK.min(local - start);
        let xb = shard_x.narrow(0, start, len).to_device(device);
        let yb = shard_y.narrow(0, start, len).to_device(device);
        let output = model.net.forward_t(&xb, false);
        let _ = loss.f_add_(&(task.loss(&output, &yb).f_to_kind(Kind::Double)? * len as f64))?;
        match task {
            Task::Regression => {
                let _ = residual.f_add_(&(&output - &yb).square().sum(Kind::Double))?;
            }
            Task::Classification { .. } => {
                let _ = wrong.f_add_(&output.argmax(1, false).ne_tensor(&yb).sum(Kind::Int64))?;
            }
        }
        start += len;
    }
    let sums = Tensor::f_stack(&[loss, wrong.f_to_kind(Kind::Double)?, residual], 0)?;
    if let Some(p) = parallel {
        p.sum(&sums, "all-reduce of the evaluation's sums")?;
    }
    let [loss, wrong, residual] = host::read_array(&sums)?;
    let error = match task {
        Task::Regression => {
            let spread = (y - y.mean(Kind::Float)).square().sum(Kind::Double);
            let [spread] = host::read_array(&spread)?;
            100.0 * residual / spread
        }
        Task::Classification { .. } => 100.0 * wrong / n as f64,
    };
    Ok(Evaluation {
        loss: loss / n as f64,
        error,
    })
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

/// A seed for one purpose at one position of the run on one rank of a
/// data-parallel run, apart from every rank's and from one process's.
fn rank_seed(seed: u64, purpose: u64, at: u64, pass: u64, rank: usize) -> u64 {
    derived_seed(seed, purpose, at, pass | ((rank as u64 + 1) << 48))
}

const SHUFFLE: u64 = 1;
const AUGMENT: u64 = 2;
const DROPOUT: u64 = 3;
/// The passes that recompute BatchNorm statistics draw their own order,
/// augmentation and dropout.
const STATS_SHUFFLE: u64 = 4;
const STATS_AUGMENT: u64 = 5;
const STATS_DROPOUT: u64 = 6;
/// The roundings of gradients travelling between ranks.
const COMMUNICATION: u64 = 7;
/// A data-parallel rank's draws at its models' points (activations,
/// errors, products) in a training step, a statistics pass and an
/// evaluation.
const POINTS: u64 = 8;
const STATS_POINTS: u64 = 9;
const EVAL_POINTS: u64 = 10;

/// Which model a statistics pass is for.
#[derive(Clone, Copy, Debug)]
enum Which {
    Sgd = 0,
    Average = 1,
}

/// The order of `n` examples: a Fisher–Yates shuffle driven by a
/// counter-based stream seeded `stream_seed`, or the file's order when
/// `shuffle` is off.
fn shuffled(shuffle: bool, stream_seed: u64, n: i64) -> Vec<i64> {
    let mut order: Vec<i64> = (0..n).collect();
    if !shuffle {
        return order;
    }
    let stream = QuantRng::new(stream_seed).next_stream();
    for i in (1..n as usize).rev() {
        let j = ((u64::from(stream.bits(i as u64)) * (i as u64 + 1)) >> 32) as usize;
        order.swap(i, j);
    }
    order
}

/// One training batch (this rank's share of it, in a data-parallel run),
/// prepared off the training thread.
struct Batch {
    x: Tensor,
    y: Tensor,
    /// The examples of the global batch, over all ranks.
    global: i64,
}

/// Prepares the batches of one epoch from `first` on, on a background
/// thread, at most two ahead of the training step: of each global batch,
/// the share of rank `ranks.0` of `ranks.1` ([`shard`]).
fn spawn_batches(
    data: &Dataset,
    order: Vec<i64>,
    batch_size: i64,
    first: i64,
    device: Device,
    augment_seed: u64,
    ranks: (usize, usize),
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
            // The batch's positions in the epoch, and the examples there.
            let global: Vec<i64> = (start..start + len).collect();
            let mine = shard(&global, ranks.0, ranks.1);
            let examples: Vec<i64> = mine.iter().map(|&p| order[p as usize]).collect();
            let idx = Tensor::from_slice(&examples);
            let mut xb = x.index_select(0, &idx);
            if let Some(augment) = augment {
                let draws: Vec<u32> = mine.iter().map(|&p| stream.bits(p as u64)).collect();
                xb = augment(&xb, &draws);
            }
            if let Some(prepare) = &prepare {
                xb = prepare(&xb);
            }
            let batch = Batch {
                x: xb.to_device(device),
                y: y.index_select(0, &idx).to_device(device),
                global: len,
            };
            if tx.send(batch).is_err() {
                return;
            }
            start += len;
        }
    });
    rx
}

/// An epoch's running training sums, kept on the device: a step queues its
/// additions and goes on, and the host reads them only at log points
/// ([`Running::read`]), instead of waiting for the device at every step.
///
/// `loss_sum` is the sum the host made before, term for term: each batch's
/// `f32` loss widened to `f64`, times the batch's size, added in order to
/// the position's sum (not to a fresh zero, which would regroup the sum of
/// a resumed epoch). The numbers, and the exactness of resumed runs, are
/// therefore unchanged.
struct Running {
    /// Σ loss × batch size over the epoch's batches, in `f64`.
    loss_sum: Tensor,
    /// Misclassified examples of the epoch (classification).
    wrong: Tensor,
    /// The step of the epoch's first non-finite loss (−1: none yet), so that
    /// a divergence found at a later read names the step it happened at.
    bad_step: Tensor,
    /// That loss (`NaN`, `inf` or `-inf`).
    bad_loss: Tensor,
    /// The newest batch's loss, in `f64`.
    last_loss: Tensor,
}

/// The values of [`Running`], on the host.
struct Readout {
    loss_sum: f64,
    wrong: i64,
    /// The step and value of the epoch's first non-finite loss.
    bad: Option<(u64, f64)>,
    last_loss: f64,
}

impl Running {
    /// The sums of an epoch continued from `position`.
    fn new(position: &Position, device: Device) -> Result<Self, ExperimentError> {
        let double = |v: f64| Tensor::f_full([], v, (Kind::Double, device));
        let int = |v: i64| Tensor::f_full([], v, (Kind::Int64, device));
        Ok(Running {
            loss_sum: double(position.loss_sum)?,
            wrong: int(position.wrong)?,
            bad_step: int(-1)?,
            bad_loss: double(0.0)?,
            last_loss: double(0.0)?,
        })
    }

    /// Adds the step `step` on a batch of `n` examples: its `loss` and
    /// misclassified examples `wrong` (classification). With `watch`, a
    /// non-finite loss is noted, if it is the epoch's first.
    fn add(
        &mut self,
        loss: &Tensor,
        n: i64,
        wrong: Option<Tensor>,
        step: u64,
        watch: bool,
    ) -> Result<(), ExperimentError> {
        let _guard = tch::no_grad_guard();
        let loss = loss.f_detach()?.f_to_kind(Kind::Double)?;
        let _ = self.loss_sum.f_add_(&loss.f_mul_scalar(n as f64)?)?;
        if let Some(wrong) = wrong {
            let _ = self.wrong.f_add_(&wrong)?;
        }
        if watch {
            let first = loss
                .f_isfinite()?
                .f_logical_not()?
                .f_logical_and(&self.bad_step.f_lt(0)?)?;
            let _ = self.bad_step.f_masked_fill_(&first, step as i64)?;
            self.bad_loss = loss.f_where_self(&first, &self.bad_loss)?;
        }
        self.last_loss = loss;
        Ok(())
    }

    /// Reads the sums on the host: one transfer, one synchronisation.
    fn read(&self) -> Result<Readout, ExperimentError> {
        let all = Tensor::f_stack(
            &[
                self.loss_sum.shallow_clone(),
                self.wrong.f_to_kind(Kind::Double)?,
                self.bad_step.f_to_kind(Kind::Double)?,
                self.bad_loss.shallow_clone(),
                self.last_loss.shallow_clone(),
            ],
            0,
        )?;
        // Counts and steps below 2^53 are exact in f64.
        let [loss_sum, wrong, bad_step, bad_loss, last_loss] = host::read_array(&all)?;
        Ok(Readout {
            loss_sum,
            wrong: wrong as i64,
            bad: (bad_step >= 0.0).then_some((bad_step as u64, bad_loss)),
            last_loss,
        })
    }
}

/// What an experiment trains, and its state.
struct Trainer<'a> {
    exp: &'a Experiment,
    device: Device,
    data: Dataset,
    model: Model,
    averaged: Model,
    optimizer: Box<dyn Optimizer>,
    swa: Option<Swa>,
    schedule: LrSchedule,
    rng: SharedRng,
    /// The models' points' generator: `rng` in a single process; a
    /// data-parallel rank's own, reseeded from its rank before each pass.
    points_rng: SharedRng,
    position: Position,
    /// The newest checkpoint written or resumed from.
    last_checkpoint: Option<PathBuf>,
    run_dir: PathBuf,
    /// This rank's part in a data-parallel run.
    parallel: Option<DataParallel>,
}

impl<'a> Trainer<'a> {
    fn new(
        exp: &'a Experiment,
        device: Device,
        run_dir: &Path,
        group: Option<Arc<ProcessGroup>>,
    ) -> Result<Self, ExperimentError> {
        let seed = exp.experiment.seed;
        let data = data::load(&exp.data, seed, exp.optim.weight_decay)?;
        tch::manual_seed(seed as i64);
        let inputs = Inputs {
            shape: data.input_shape(),
            task: data.task,
        };
        let generators = match group {
            Some(_) => build::Generators::PerRank,
            None => build::Generators::One,
        };
        let build::Parts {
            model,
            averaged,
            optimizer,
            swa,
            rng,
            points_rng,
        } = build::parts(exp, &inputs, device, generators)?;
        let position = Position {
            epoch: 0,
            batch: 0,
            steps: 0,
            loss_sum: 0.0,
            wrong: 0,
            rng: QuantRng::new(seed),
            swa_count: 0,
            history: Vec::new(),
            divergence: None,
            world_size: group.as_ref().map_or(1, |g| g.world_size() as u64),
        };
        let parallel = match group {
            Some(group) => {
                check_shards(exp, data.train_len(), group.world_size())?;
                let params = tensors(by_name(LowPrecision::<SgdConfig>::trainable(&model.vs)));
                // Synchronised BatchNorm keeps the ranks' statistics equal;
                // otherwise rank 0's are broadcast before every step.
                let synchronised = exp.model.sync_batchnorm;
                for bn in [&model.batchnorm, &averaged.batchnorm]
                    .into_iter()
                    .flatten()
                {
                    bn.set_sync(synchronised.then(|| Arc::clone(&group)));
                }
                let buffers = if synchronised {
                    Vec::new()
                } else {
                    statistics(&model.vs)
                };
                let communication = exp.points().communication().cloned();
                Some(DataParallel::new(group, &params, buffers, communication)?)
            }
            None => None,
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
            points_rng,
            position,
            last_checkpoint: None,
            run_dir: run_dir.into(),
            parallel,
        })
    }

    /// This rank and the number of ranks ((0, 1) for one process).
    fn ranks(&self) -> (usize, usize) {
        self.parallel
            .as_ref()
            .map_or((0, 1), |p| (p.rank(), p.world_size()))
    }

    /// Seeds a data-parallel rank's points' generator for one pass, from
    /// the pass and the rank, so that each rank rounds its own examples
    /// with draws of its own and a resumed run draws what an uninterrupted
    /// one does. A single process keeps one generator throughout.
    fn reseed_points(&self, purpose: u64, at: u64, pass: u64) {
        let Some(p) = &self.parallel else {
            return;
        };
        let seed = rank_seed(self.exp.experiment.seed, purpose, at, pass, p.rank());
        *self.points_rng.lock().unwrap_or_else(|e| e.into_inner()) = QuantRng::new(seed);
    }

    /// Whether this process writes the run directory (rank 0).
    fn writes(&self) -> bool {
        self.ranks().0 == 0
    }

    /// Every rank takes rank 0's model, optimizer state and average.
    fn synchronise(&self) -> Result<(), ExperimentError> {
        let Some(p) = &self.parallel else {
            return Ok(());
        };
        let model = tensors(by_name(self.model.vs.variables().into_iter().collect()));
        p.start(&model, "model")?;
        p.start(
            &tensors(by_name(self.optimizer.state_tensors())),
            "optimizer state",
        )?;
        if let Some(swa) = self.swa.as_ref().filter(|s| s.count() > 0) {
            p.start(&tensors(by_name(swa.average().to_vec_shallow())), "average")?;
        }
        Ok(())
    }

    /// Under `log.check_replicas_every`, checks that every rank holds the
    /// same weights, optimizer state and average.
    fn check_replicas(&self) -> Result<(), ExperimentError> {
        let every = self.exp.log.check_replicas_every;
        let Some(p) = self.parallel.as_ref().filter(|_| every > 0) else {
            return Ok(());
        };
        if self.position.steps % every != 0 {
            return Ok(());
        }
        let mut state = by_name(self.model.vs.variables().into_iter().collect());
        let optimizer = by_name(self.optimizer.state_tensors());
        state.extend(
            optimizer
                .into_iter()
                .map(|(n, t)| (format!("optimizer {n}"), t)),
        );
        if let Some(swa) = self.swa.as_ref() {
            let average = by_name(swa.average().to_vec_shallow());
            state.extend(
                average
                    .into_iter()
                    .map(|(n, t)| (format!("average {n}"), t)),
            );
        }
        match p.check_replicas(&state)? {
            None => Ok(()),
            Some(name) => Err(ExperimentError::Replicas {
                step: self.position.steps,
                name,
            }),
        }
    }

    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        LowPrecision::<SgdConfig>::trainable(&self.model.vs)
    }

    fn save_checkpoint(&mut self, run_dir: &Path) -> Result<(), ExperimentError> {
        if !self.writes() {
            return Ok(());
        }
        self.position.rng = self.rng.lock().unwrap_or_else(|p| p.into_inner()).clone();
        self.position.swa_count = self.swa.as_ref().map_or(0, Swa::count);
        let model: Vec<(String, Tensor)> = self.model.vs.variables().into_iter().collect();
        let optimizer = self.optimizer.state_tensors();
        let swa = self
            .swa
            .as_ref()
            .filter(|s| s.count() > 0)
            .map(|s| s.average().to_vec_shallow());
        let dir = checkpoint::save(run_dir, &self.position, &model, &optimizer, swa.as_deref())?;
        self.last_checkpoint = Some(dir);
        Ok(())
    }

    /// Whether `checkpoint` can continue this run: a position this
    /// experiment reaches, and (unless the run trains on through NaN)
    /// finite weights.
    fn accepts(&self, checkpoint: &Checkpoint) -> Result<(), ExperimentError> {
        let p = &checkpoint.position;
        let per_epoch = self.batches_per_epoch();
        let inconsistent = |what: String| ExperimentError::Checkpoint {
            dir: checkpoint.dir.clone(),
            problem: CheckpointProblem::Inconsistent { what },
        };
        if p.batch > per_epoch {
            return Err(inconsistent(format!(
                "batch {} of an epoch of {per_epoch} batches",
                p.batch
            )));
        }
        if p.steps != p.epoch * per_epoch + p.batch {
            return Err(inconsistent(format!(
                "{} steps after {} epochs of {per_epoch} batches and {} batches",
                p.steps, p.epoch, p.batch
            )));
        }
        if p.history.len() as u64 != p.epoch {
            return Err(inconsistent(format!(
                "{} epoch records for epoch {}",
                p.history.len(),
                p.epoch
            )));
        }
        let world_size = self.ranks().1 as u64;
        if p.world_size != world_size {
            return Err(ExperimentError::Resume {
                run_dir: self.run_dir.clone(),
                problem: ResumeProblem::WorldSize {
                    was: p.world_size,
                    now: world_size,
                },
            });
        }
        if p.epoch > self.exp.train.epochs {
            return Err(ExperimentError::Resume {
                run_dir: self.run_dir.clone(),
                problem: ResumeProblem::FewerEpochs {
                    done: p.epoch,
                    asked: self.exp.train.epochs,
                },
            });
        }
        if self.exp.train.on_nonfinite == OnNonFinite::Stop {
            if let Some(name) = first_nonfinite(&checkpoint.model)? {
                return Err(ExperimentError::Checkpoint {
                    dir: checkpoint.dir.clone(),
                    problem: CheckpointProblem::NonFinite { name },
                });
            }
        }
        Ok(())
    }

    /// Notes a NaN or infinity: under `train.on_nonfinite = "stop"` the
    /// run ends with [`ExperimentError::Diverged`]; under `"continue"` the
    /// first one is kept for `result.json`.
    fn nonfinite(&mut self, quantity: String, value: f64) -> Result<(), ExperimentError> {
        self.nonfinite_at(self.position.steps, quantity, value)
    }

    /// [`nonfinite`](Self::nonfinite), seen after `step` optimizer steps of
    /// the current epoch.
    fn nonfinite_at(
        &mut self,
        step: u64,
        quantity: String,
        value: f64,
    ) -> Result<(), ExperimentError> {
        let divergence = Divergence {
            epoch: self.position.epoch,
            step,
            quantity,
            value: format!("{value}"),
        };
        if self.exp.train.on_nonfinite == OnNonFinite::Stop {
            return Err(ExperimentError::Diverged {
                divergence,
                last_checkpoint: self.last_checkpoint.clone(),
                run_dir: self.run_dir.clone(),
            });
        }
        self.position.divergence.get_or_insert(divergence);
        Ok(())
    }

    /// Checks the model's variables after an epoch.
    fn check_parameters(&mut self) -> Result<(), ExperimentError> {
        let vars: Vec<(String, Tensor)> = self.model.vs.variables().into_iter().collect();
        if let Some(name) = first_nonfinite(&vars)? {
            let value = match vars.iter().find(|(n, _)| *n == name) {
                Some((_, t)) => nonfinite_value(t)?,
                None => f64::NAN,
            };
            self.nonfinite(format!("parameter `{name}`"), value)?;
        }
        Ok(())
    }

    fn restore(&mut self, checkpoint: checkpoint::Checkpoint) -> Result<(), ExperimentError> {
        let _guard = tch::no_grad_guard();
        let mut vars = self.model.vs.variables();
        for (name, saved) in &checkpoint.model {
            let target = vars.get_mut(name).ok_or_else(|| ExperimentError::Resume {
                run_dir: checkpoint.dir.clone(),
                problem: super::ResumeProblem::UnknownVariable { name: name.clone() },
            })?;
            target.f_copy_(saved)?;
        }
        self.optimizer.load_state_tensors(&checkpoint.optimizer)?;
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

    /// Trains the rest of the current epoch; returns false when an
    /// observer stopped it.
    fn train_epoch(&mut self, observers: &mut Observers<'_>) -> Result<bool, ExperimentError> {
        let seed = self.exp.experiment.seed;
        let epoch = self.position.epoch;
        let per_epoch = self.batches_per_epoch();
        let order = shuffled(
            self.exp.train.shuffle,
            derived_seed(seed, SHUFFLE, epoch, 0),
            self.data.train_len(),
        );
        let ranks = self.ranks();
        let batches = spawn_batches(
            &self.data,
            order,
            self.exp.train.batch_size as i64,
            self.position.batch as i64,
            self.device,
            derived_seed(seed, AUGMENT, epoch, 0),
            ranks,
        );
        observers.epoch_started(epoch, per_epoch, self.position.batch);
        let per_step = self.exp.schedule.per == SchedulePer::Step;
        let mut running = Running::new(&self.position, self.device)?;
        // Once a divergence is known (training on through NaN), there is
        // nothing more to watch for.
        let watch = self.position.divergence.is_none();
        for batch in batches {
            let b = self.position.batch;
            let lr = if per_step {
                self.schedule
                    .lr_at(epoch as f64 + b as f64 / per_epoch as f64)
            } else {
                self.schedule.lr_at(epoch as f64)
            };
            // Each rank draws its own dropout masks (rank 0 those of a
            // single process).
            let rank_bits = (ranks.0 as u64) << 48;
            tch::manual_seed(derived_seed(seed, DROPOUT, epoch, b | rank_bits) as i64);
            self.optimizer.set_lr(lr);
            let (loss, wrong) = match &mut self.parallel {
                None => {
                    let (loss, wrong) = self.step_on(&batch.x, &batch.y, 1.0)?;
                    self.optimizer.step()?;
                    (loss, wrong)
                }
                Some(_) => self.parallel_step(&batch)?,
            };
            self.position.batch += 1;
            self.position.steps += 1;
            // No host read here: the sums stay on the device, and a
            // non-finite loss is found at the next read (a log point, the
            // end of the epoch or an interruption), which names the step
            // it happened at.
            running.add(&loss, batch.global, wrong, self.position.steps, watch)?;
            self.average_after_step()?;
            self.check_replicas()?;
            let mut report = StepReport {
                epoch,
                batch: self.position.batch,
                batches: per_epoch,
                steps: self.position.steps,
                loss: None,
                mean_loss: None,
                wrong: None,
            };
            if observers.wants_loss(&report) {
                let read = self.absorb(&running)?;
                let done = (self.position.batch * self.exp.train.batch_size as u64)
                    .min(self.data.train_len() as u64);
                report.loss = Some(read.last_loss);
                report.mean_loss = Some(read.loss_sum / done as f64);
                if let Task::Classification { .. } = self.data.task {
                    report.wrong = Some(read.wrong as u64);
                }
            }
            let mut stop = observers.step(&report) == Control::Stop;
            if let Some(p) = &self.parallel {
                stop = p.stop_with_rank_0(stop)?;
            }
            if stop {
                // The checkpoint written next holds the sums.
                self.absorb(&running)?;
                return Ok(false);
            }
        }
        self.absorb(&running)?;
        Ok(true)
    }

    /// The forward and backward passes on `(x, y)`, the loss scaled by
    /// `share` for the backward pass; returns the (unscaled) loss and, for
    /// classification, the misclassified examples.
    fn step_on(
        &mut self,
        x: &Tensor,
        y: &Tensor,
        share: f64,
    ) -> Result<(Tensor, Option<Tensor>), ExperimentError> {
        let output = self.model.net.forward_t(x, true);
        let loss = self.data.task.loss(&output, y);
        let wrong = match self.data.task {
            Task::Classification { .. } => Some(tch::no_grad(|| {
                output.argmax(1, false).ne_tensor(y).sum(Kind::Int64)
            })),
            Task::Regression => None,
        };
        self.optimizer.zero_grad();
        if share == 1.0 {
            loss.f_backward()?;
        } else {
            loss.f_mul_scalar(share)?.f_backward()?;
        }
        Ok((loss, wrong))
    }

    /// A data-parallel step (see [`super::parallel`]): this rank's share
    /// of the global batch, the gradients summed across ranks, then the
    /// optimizer. Returns the global batch's loss and misclassified
    /// examples.
    fn parallel_step(
        &mut self,
        batch: &Batch,
    ) -> Result<(Tensor, Option<Tensor>), ExperimentError> {
        let n = batch.x.size()[0];
        let share = n as f64 / batch.global as f64;
        self.reseed_points(POINTS, self.position.steps, 0);
        let (loss, wrong) = self.step_on(&batch.x, &batch.y, share)?;
        // This rank's loss × examples and errors, summed with the gradients.
        let sums = tch::no_grad(|| -> Result<Tensor, ExperimentError> {
            let loss_sum = loss
                .f_detach()?
                .f_to_kind(Kind::Double)?
                .f_mul_scalar(n as f64)?;
            let errors = match &wrong {
                Some(w) => w.f_to_kind(Kind::Double)?,
                None => Tensor::f_zeros([], (Kind::Double, self.device))?,
            };
            Ok(Tensor::f_stack(&[loss_sum, errors], 0)?)
        })?;
        if let Some(p) = &mut self.parallel {
            // Counter-based draws: a function of the step and the rank, so
            // a resumed run draws what an uninterrupted one does.
            let (seed, step) = (self.exp.experiment.seed, self.position.steps);
            let mut mine =
                QuantRng::new(derived_seed(seed, COMMUNICATION, step, p.rank() as u64 + 1));
            let mut shared = QuantRng::new(derived_seed(seed, COMMUNICATION, step, 0));
            p.reduce_gradients(&sums, &mut mine, &mut shared)?;
        }
        self.optimizer.step()?;
        // Each rank's forward pass updated its BatchNorm statistics with its
        // own batch; all keep rank 0's, which DDP's `broadcast_buffers`
        // hands out before the next forward pass (here at once, so the
        // ranks' states stay equal between steps).
        if let Some(p) = &self.parallel {
            p.broadcast_buffers()?;
        }
        let global_loss = sums.get(0).f_div_scalar(batch.global as f64)?;
        let global_wrong = match wrong {
            Some(_) => Some(
                sums.get(1)
                    .f_to_kind(Kind::Int64)?
                    .f_to_device(self.device)?,
            ),
            None => None,
        };
        Ok((global_loss.f_to_device(self.device)?, global_wrong))
    }

    /// Reads the epoch's running sums into the position (which checkpoints
    /// and epoch records are made from), and reports a non-finite loss
    /// they hold: under `train.on_nonfinite = "stop"` the run ends here,
    /// the steps after the divergence and before this read having been
    /// trained in vain, with the divergence's own step in the error.
    fn absorb(&mut self, running: &Running) -> Result<Readout, ExperimentError> {
        let read = running.read()?;
        self.position.loss_sum = read.loss_sum;
        self.position.wrong = read.wrong;
        if let Some((step, value)) = read.bad {
            if self.position.divergence.is_none() {
                self.nonfinite_at(step, "training loss".into(), value)?;
            }
        }
        Ok(read)
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

    fn evaluate(&self, model: &Model, which: Which) -> Result<Evaluation, ExperimentError> {
        self.reseed_points(EVAL_POINTS, self.position.epoch, which as u64);
        evaluate(
            model,
            self.data.task,
            &self.data.test_x,
            &self.data.test_y,
            self.device,
            self.parallel.as_ref(),
        )
    }

    /// The seed's `bn_update`: recomputes `model`'s BatchNorm statistics
    /// (if it has any) with one pass over the training set, shuffled and
    /// augmented as for training, the model in training mode.
    fn recompute_statistics(&self, model: &Model, which: Which) -> Result<(), ExperimentError> {
        let Some(momentum) = &model.batchnorm else {
            return Ok(());
        };
        let (seed, epoch, which) = (self.exp.experiment.seed, self.position.epoch, which as u64);
        let order = shuffled(
            self.exp.train.shuffle,
            derived_seed(seed, STATS_SHUFFLE, epoch, which),
            self.data.train_len(),
        );
        let batches = spawn_batches(
            &self.data,
            order,
            self.exp.train.batch_size as i64,
            0,
            self.device,
            derived_seed(seed, STATS_AUGMENT, epoch, which),
            self.ranks(),
        );
        let mut b = 0u64;
        // Each rank its own dropout masks (rank 0 those of one process).
        let rank_bits = (self.ranks().0 as u64) << 48;
        let _guard = tch::no_grad_guard();
        // Each batch weighs as much as its global size, whatever this
        // rank's share of it.
        let counted = batches.into_iter().map(|b| (b.x, b.global));
        recompute_batchnorm_counted(&model.vs, momentum, counted, |x| {
            let pass = (which << 32) | b;
            tch::manual_seed(derived_seed(seed, STATS_DROPOUT, epoch, pass | rank_bits) as i64);
            self.reseed_points(STATS_POINTS, epoch, pass);
            b += 1;
            let _ = model.net.forward_t(x, true);
            Ok(())
        })?;
        // Each rank saw its share of every batch: the ranks' statistics
        // are averaged.
        if let Some(p) = &self.parallel {
            p.average(&statistics(&model.vs))?;
        }
        Ok(())
    }

    /// The SGD iterate's loss and error, after recomputing its BatchNorm
    /// statistics as the seed does before every evaluation.
    fn evaluate_iterate(&self) -> Result<Evaluation, ExperimentError> {
        self.recompute_statistics(&self.model, Which::Sgd)?;
        self.evaluate(&self.model, Which::Sgd)
    }

    /// Loads the average into the averaged model, recomputes its BatchNorm
    /// statistics and evaluates it; `None` before averaging starts.
    fn evaluate_average(&self) -> Result<Option<Evaluation>, ExperimentError> {
        let Some(swa) = self.swa.as_ref().filter(|s| s.count() > 0) else {
            return Ok(None);
        };
        swa.copy_to(&self.averaged.vs)?;
        self.recompute_statistics(&self.averaged, Which::Average)?;
        self.evaluate(&self.averaged, Which::Average).map(Some)
    }
}

/// Named tensors in the order of their names: the order every rank of a
/// data-parallel run agrees on (a VarStore's own order is a hash map's).
fn by_name(mut named: Vec<(String, Tensor)>) -> Vec<(String, Tensor)> {
    named.sort_by(|a, b| a.0.cmp(&b.0));
    named
}

fn tensors(named: Vec<(String, Tensor)>) -> Vec<Tensor> {
    named.into_iter().map(|(_, t)| t).collect()
}

/// The variables of `vs` that are not trained (BatchNorm statistics), by
/// name.
fn statistics(vs: &tch::nn::VarStore) -> Vec<Tensor> {
    let all = by_name(vs.variables().into_iter().collect());
    tensors(
        all.into_iter()
            .filter(|(_, t)| !t.requires_grad())
            .collect(),
    )
}

/// A data-parallel run needs at least one example per rank in every batch.
fn check_shards(exp: &Experiment, train_len: i64, world: usize) -> Result<(), ExperimentError> {
    let batch = exp.train.batch_size as i64;
    let last = match train_len % batch {
        0 => batch.min(train_len),
        rest => rest,
    };
    let world = world as i64;
    if batch.min(last) >= world {
        return Ok(());
    }
    let message = if batch < world {
        format!(
            "train.batch_size = {batch} is the global batch, split over {world} ranks; give at \
             least {world}, one example per rank"
        )
    } else {
        format!(
            "the last batch of each epoch has {last} examples ({train_len} training examples, \
             train.batch_size = {batch}), fewer than the {world} ranks; choose a batch size that \
             leaves at least {world}"
        )
    };
    Err(ExperimentError::Value {
        key: "train.batch_size".into(),
        message,
    })
}

/// The name of the first variable holding NaN or infinity, found with one
/// host read for all the variables rather than one per variable.
fn first_nonfinite(vars: &[(String, Tensor)]) -> Result<Option<String>, ExperimentError> {
    let floats: Vec<&(String, Tensor)> =
        vars.iter().filter(|(_, t)| t.is_floating_point()).collect();
    let Some((_, first)) = floats.first() else {
        return Ok(None);
    };
    let device = first.device();
    let finite = floats
        .iter()
        .map(|(_, t)| t.f_isfinite()?.f_all()?.f_to_device(device))
        .collect::<Result<Vec<_>, _>>()?;
    let finite = host::read(&Tensor::f_stack(&finite, 0)?)?;
    Ok(floats
        .iter()
        .zip(finite)
        .find(|(_, finite)| *finite == 0.0)
        .map(|((name, _), _)| name.clone()))
}

/// A non-finite value of `t` to report (NaN first, then an infinity).
fn nonfinite_value(t: &Tensor) -> Result<f64, ExperimentError> {
    let t = t.f_detach()?.f_to_kind(Kind::Double)?;
    let [nan, inf] = host::read_array(&Tensor::f_stack(
        &[t.f_isnan()?.f_any()?, t.f_eq(f64::INFINITY)?.f_any()?],
        0,
    )?)?;
    Ok(if nan != 0.0 {
        f64::NAN
    } else if inf != 0.0 {
        f64::INFINITY
    } else {
        f64::NEG_INFINITY
    })
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

/// The paper's two numbers, read from the per-epoch records: the SGD
/// iterate after `swa.start` epochs (after the last epoch without epoch
/// averaging) and the average after `train.epochs − 1` epochs, as the
/// seed's `train.py` reports them.
fn paper_results(exp: &Experiment, history: &[EpochRecord]) -> Value {
    let after = |epochs: u64| history.iter().find(|r| epochs > 0 && r.epoch == epochs - 1);
    let mut paper = json!({});
    let sgd_epochs = exp.swa.start.unwrap_or(exp.train.epochs).max(1);
    if let Some(r) = after(sgd_epochs) {
        paper["sgd"] = json!({
            "epochs_trained": sgd_epochs, "test_loss": r.test_loss, "test_error": r.test_error,
        });
    }
    let swa_epochs = exp.train.epochs.saturating_sub(1);
    if let Some(r) = after(swa_epochs) {
        if let (Some(loss), Some(error)) = (r.swa_test_loss, r.swa_test_error) {
            paper["swa"] = json!({
                "epochs_trained": swa_epochs, "test_loss": loss,
                "test_error": error, "count": r.swa_count,
            });
        }
    }
    paper
}

/// The observers every run has: `metrics.jsonl`, and TensorBoard event
/// files when `log.tensorboard` is on.
pub fn file_observers(exp: &Experiment) -> Vec<Box<dyn Observer>> {
    let mut observers: Vec<Box<dyn Observer>> = vec![Box::new(MetricsFile::default())];
    if exp.log.tensorboard {
        observers.push(Box::new(TensorBoard::default()));
    }
    observers
}

/// Runs `exp` into `options.out_dir` with the [`file_observers`]; returns
/// the contents of `result.json`.
pub fn run(exp: &Experiment, options: &RunOptions) -> Result<Value, ExperimentError> {
    run_with(exp, options, file_observers(exp))
}

/// The observers of a run, called in turn.
struct Observers<'o>(Vec<Box<dyn Observer + 'o>>);

impl Observers<'_> {
    fn started(&mut self, dir: &Path, history: &[EpochRecord]) -> Result<(), ExperimentError> {
        self.0.iter_mut().try_for_each(|o| o.started(dir, history))
    }

    fn resumed(&mut self, checkpoint: &Path, skipped: &[Skipped]) {
        for o in &mut self.0 {
            o.resumed(checkpoint, skipped);
        }
    }

    fn epoch_started(&mut self, epoch: u64, batches: u64, done: u64) {
        for o in &mut self.0 {
            o.epoch_started(epoch, batches, done);
        }
    }

    /// Whether any observer needs the step's losses read. Every observer
    /// is asked, even after one said yes, so that each sees every step.
    fn wants_loss(&mut self, report: &StepReport) -> bool {
        let mut any = false;
        for o in &mut self.0 {
            any |= o.wants_loss(report);
        }
        any
    }

    /// Every observer sees the step; any one can stop the run.
    fn step(&mut self, report: &StepReport) -> Control {
        self.0.iter_mut().fold(Control::Continue, |control, o| {
            match (o.step(report), control) {
                (Control::Stop, _) | (_, Control::Stop) => Control::Stop,
                _ => Control::Continue,
            }
        })
    }

    fn epoch_finished(&mut self, record: &EpochRecord) -> Result<(), ExperimentError> {
        self.0.iter_mut().try_for_each(|o| o.epoch_finished(record))
    }

    fn finished(&mut self, result: &Value) {
        for o in &mut self.0 {
            o.finished(result);
        }
    }
}

/// Runs `exp` into `options.out_dir`, reporting to `observers` (give
/// [`file_observers`] among them for `metrics.jsonl` and TensorBoard);
/// returns the contents of `result.json`. An observer that returns
/// [`Control::Stop`] makes the run write a checkpoint and return
/// [`ExperimentError::Interrupted`].
///
/// The run first claims its directory ([`RunDir`]: one run at a time, no
/// other run's outputs unless resuming or overwriting) and builds the
/// experiment; a failure before anything is written removes a directory
/// the claim created. A resumed run continues from the newest valid
/// checkpoint, with the experiment the directory stores (the given one
/// must equal it except for `train.epochs` and `[log]`).
pub fn run_with<'o>(
    exp: &Experiment,
    options: &RunOptions,
    observers: Vec<Box<dyn Observer + 'o>>,
) -> Result<Value, ExperimentError> {
    check(exp)?;
    let group = options.group.clone();
    let local_rank = group.as_ref().map_or(0, |g| g.local_rank());
    let device = build::device(exp.experiment.device, local_rank)?;
    // Rank 0 claims the directory and alone writes it; the others read it
    // (to resume) once rank 0 has claimed it.
    let writes = group.as_ref().map_or(true, |g| g.rank() == 0);
    let claimed = writes.then(|| RunDir::claim(&options.out_dir, options.claim));
    agree(
        &group,
        matches!(claimed, Some(Err(_))),
        "to claim the run directory",
    )?;
    let dir = claimed.transpose()?;
    let out = dir
        .as_ref()
        .map_or(options.out_dir.clone(), |d| d.path().to_path_buf());
    let abandon = |e, dir: Option<RunDir>| match dir {
        Some(dir) => dir.abandon(e),
        None => e,
    };
    let resumed = (options.claim == Claim::Resume)
        .then(|| resumed_experiment(exp, &out))
        .transpose();
    let resumed = agree(&group, resumed.is_err(), "to read the run to resume").and(resumed);
    let resumed = match resumed {
        Ok(resumed) => resumed,
        Err(e) => return Err(abandon(e, dir)),
    };
    let exp = resumed.as_ref().unwrap_or(exp);
    let trainer = Trainer::new(exp, device, &out, group.clone());
    let trainer = agree(&group, trainer.is_err(), "to build the experiment").and(trainer);
    let trainer = match trainer {
        Ok(trainer) => trainer,
        Err(e) => return Err(abandon(e, dir)),
    };
    // The claim (its lock) lasts as long as the run.
    let _dir = dir;
    // Only rank 0 reports (to the terminal and into files).
    let observers = if writes { observers } else { Vec::new() };
    train(exp, trainer, options.claim, Observers(observers))
}

/// In a data-parallel run, tells every rank whether this one failed at
/// `stage` (see [`ProcessGroup::agree`]); nothing for one process.
fn agree(
    group: &Option<Arc<ProcessGroup>>,
    failed_here: bool,
    stage: &str,
) -> Result<(), ExperimentError> {
    match group {
        Some(g) => Ok(g.agree(failed_here, stage)?),
        None => Ok(()),
    }
}

/// The experiment stored in the run directory `dir`, checked against the
/// one given: they must agree except for `train.epochs` (so that a
/// finished run can be extended) and `[log]`.
fn resumed_experiment(given: &Experiment, dir: &Path) -> Result<Experiment, ExperimentError> {
    let stored_path = dir.join("config.toml");
    if !stored_path.is_file() {
        return Err(ExperimentError::Resume {
            run_dir: dir.into(),
            problem: ResumeProblem::NoCheckpoint,
        });
    }
    let mut stored = Experiment::load(&stored_path, &[])?;
    let as_table = |e: &Experiment| -> Result<toml::Table, ExperimentError> {
        let text = toml::to_string(e).map_err(|err| ExperimentError::Encode(err.into()))?;
        toml::from_str(&text).map_err(|err| ExperimentError::Encode(err.into()))
    };
    let mut a = as_table(given)?;
    let mut b = as_table(&stored)?;
    for t in [&mut a, &mut b] {
        t.remove("log");
        t.remove("sweep");
        if let Some(train) = t.get_mut("train").and_then(toml::Value::as_table_mut) {
            train.remove("epochs");
        }
    }
    if let Some(key) = a.keys().chain(b.keys()).find(|k| a.get(*k) != b.get(*k)) {
        return Err(ExperimentError::Resume {
            run_dir: dir.into(),
            problem: ResumeProblem::Differs {
                section: key.clone(),
                stored: stored_path.clone(),
            },
        });
    }
    stored.train.epochs = given.train.epochs;
    stored.log = given.log.clone();
    Ok(stored)
}

/// The training loop of [`run_with`], from a built trainer.
fn train(
    exp: &Experiment,
    mut trainer: Trainer<'_>,
    claim: Claim,
    mut observers: Observers<'_>,
) -> Result<Value, ExperimentError> {
    let out = trainer.run_dir.clone();
    if claim == Claim::Resume {
        let (checkpoint, skipped) = checkpoint::load_latest(&out, |c| trainer.accepts(c))?;
        let from = checkpoint.dir.clone();
        trainer.restore(checkpoint)?;
        trainer.last_checkpoint = Some(from.clone());
        observers.resumed(&from, &skipped);
    } else if trainer.writes() {
        let resolved = toml::to_string(exp).map_err(|e| ExperimentError::Encode(e.into()))?;
        write_atomically(&out.join("config.toml"), resolved.as_bytes())?;
    }
    trainer.synchronise()?;
    observers.started(&out, &trainer.position.history)?;
    // The evaluations of the last epoch trained in this process.
    let mut last: Option<(Evaluation, Option<Evaluation>)> = None;
    while trainer.position.epoch < exp.train.epochs {
        let epoch = trainer.position.epoch;
        let started = Instant::now();
        if !trainer.train_epoch(&mut observers)? {
            trainer.save_checkpoint(&out)?;
            return Err(ExperimentError::Interrupted { run_dir: out });
        }
        trainer.average_after_epoch()?;
        let n = trainer.data.train_len() as f64;
        // Errors of the model as it trained (dropout on, weights moving), as
        // the seed reports them; none for regression.
        let train_error = match trainer.data.task {
            Task::Classification { .. } => Some(100.0 * trainer.position.wrong as f64 / n),
            Task::Regression => None,
        };
        let test = trainer.evaluate_iterate()?;
        let swa_test = trainer.evaluate_average()?;
        last = Some((test, swa_test));
        let record = EpochRecord {
            epoch,
            lr: trainer.schedule.lr_at(epoch as f64),
            train_loss: trainer.position.loss_sum / n,
            train_error,
            test_loss: test.loss,
            test_error: test.error,
            swa_test_loss: swa_test.map(|e| e.loss),
            swa_test_error: swa_test.map(|e| e.error),
            swa_count: trainer.swa.as_ref().map_or(0, Swa::count),
            time: started.elapsed().as_secs_f64(),
        };
        trainer.position.history.push(record.clone());
        observers.epoch_finished(&record)?;
        // NaN never recovers: stop and say so (or, asked to train on, say
        // so in the result) rather than checkpoint it as progress.
        if trainer.position.divergence.is_none() {
            trainer.check_parameters()?;
        }
        trainer.position.epoch += 1;
        trainer.position.batch = 0;
        trainer.position.loss_sum = 0.0;
        trainer.position.wrong = 0;
        let every = exp.log.checkpoint_every;
        if (every > 0 && trainer.position.epoch % every == 0)
            || trainer.position.epoch == exp.train.epochs
        {
            trainer.save_checkpoint(&out)?;
        }
    }

    // A run resumed after its last epoch evaluates its models again.
    let (sgd, swa) = match last {
        Some(evaluations) => evaluations,
        None => (trainer.evaluate_iterate()?, trainer.evaluate_average()?),
    };
    let epochs = exp.train.epochs;
    let mut result = json!({
        "experiment": exp.experiment.name,
        "seed": exp.experiment.seed,
        "world_size": trainer.ranks().1,
        "epochs": epochs,
        "steps": trainer.position.steps,
        "status": "completed",
        "paper": paper_results(exp, &trainer.position.history),
        "final": { "sgd": evaluation_json(sgd, optimum_metrics(&trainer.model, &trainer.data)) },
    });
    if let Some(divergence) = &trainer.position.divergence {
        result["status"] = json!("diverged");
        result["diverged"] = json!(divergence);
    }
    result["final"]["sgd"]["epochs_trained"] = json!(epochs);
    let writes = trainer.writes();
    if writes {
        weights::save(&trainer.model, &out.join("model_sgd.safetensors"))?;
    }
    if let Some(e) = swa {
        let mut swa = evaluation_json(e, optimum_metrics(&trainer.averaged, &trainer.data));
        swa["epochs_trained"] = json!(epochs);
        swa["count"] = json!(trainer.swa.as_ref().map_or(0, Swa::count));
        result["final"]["swa"] = swa;
        if writes {
            weights::save(&trainer.averaged, &out.join("model_swa.safetensors"))?;
        }
    }
    if writes {
        let text =
            serde_json::to_string_pretty(&result).map_err(|e| ExperimentError::Encode(e.into()))?;
        write_atomically(&out.join("result.json"), text.as_bytes())?;
    }
    observers.finished(&result);
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fraction of the first 4096 draws two seeds' first streams share.
    fn shared_draws(a: u64, b: u64) -> f64 {
        let (a, b) = (
            QuantRng::new(a).next_stream(),
            QuantRng::new(b).next_stream(),
        );
        (0..4096u64).filter(|&i| a.bits(i) == b.bits(i)).count() as f64 / 4096.0
    }

    #[test]
    fn each_rank_draws_its_own_bits_and_the_same_on_a_second_try() {
        let (seed, at, pass) = (3, 17, 0);
        let ranks: Vec<u64> = (0..4)
            .map(|r| rank_seed(seed, POINTS, at, pass, r))
            .collect();
        for (i, &a) in ranks.iter().enumerate() {
            assert_eq!(a, rank_seed(seed, POINTS, at, pass, i));
            // Apart from one process's draws and from the other ranks'.
            assert!(shared_draws(a, derived_seed(seed, POINTS, at, pass)) < 0.01);
            for &b in &ranks[i + 1..] {
                assert!(shared_draws(a, b) < 0.01, "ranks {i} and another");
            }
            // And from the same rank's next step, and another purpose's.
            assert!(shared_draws(a, rank_seed(seed, POINTS, at + 1, pass, i)) < 0.01);
            assert!(shared_draws(a, rank_seed(seed, EVAL_POINTS, at, pass, i)) < 0.01);
        }
    }
}
