//! swalp against its PyTorch twins: the same weights, the same batches, the
//! same hyper-parameters, and the losses and weights PyTorch 2.11 reached
//! (`tests/twins/twins.py generate` wrote them into `tests/twins/cases/`, on
//! a CPU of the capability each file records; on another, [`case`] has
//! twins.py make them again here).
//!
//! The twins' tensors are not stored: each is drawn from libtorch's CPU
//! generator with a stated seed and distribution, which tch reproduces bit
//! for bit (checked here against digests of PyTorch's draws). The initial
//! weights go into swalp through a `.safetensors` file and
//! `models::weights::load`, the path `model.init` takes.
//!
//! - every model in full precision, with `torch.optim.SGD` (momentum 0.9,
//!   weight decay 5e-4, the rate halved after 10 of 20 steps): per-step
//!   losses within 1e-4 relative, final weights and BatchNorm buffers within
//!   1e-4 absolute, the loss in evaluation mode after training too;
//! - the other optimizer settings (Nesterov, dampening, Adam, AdamW) on the
//!   MLP;
//! - the seed's low-precision step (8-bit small-block block floating point
//!   at all five of its points, nearest rounding) on the CNN, VGG16 and
//!   PreResNet20 against swalp's `bfp` with `nearest-even`;
//! - the same step with stochastic rounding: the spread of final losses
//!   over 10 seeds.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use common::digits;
use serde_json::Value;
use swalp_cli::data::Task;
use swalp_cli::experiment::config::ModelSection;
use swalp_cli::experiment::{Experiment, RunOptions};
use swalp_cli::models::{self, weights, Inputs, Model};
use swalp_core::hook::shared_rng;
use swalp_core::optim::{Adam, AdamConfig, OptimQuantizers, Optimizer, Sgd, SgdConfig};
use swalp_core::points::PointConfig;
use swalp_core::tch::{self, nn::ModuleT, Device, Kind, Tensor};

/// libtorch's generator is global: a test that seeds it and draws holds
/// this lock, so draws of tests running in parallel never interleave.
static GENERATOR: Mutex<()> = Mutex::new(());

/// The case files stored with the tests.
fn stored_cases() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/twins/cases")
}

/// The twin case `name`, made on a CPU of this machine's capability: the
/// stored file when it was, otherwise the file [`regenerated_cases`] made
/// here. libtorch picks its convolution and matrix-product kernels by CPU
/// capability and they sum in different orders, so PyTorch's own losses on an
/// AVX512 machine differ from its losses on an AVX2 one by more than the
/// tolerances below.
fn case(name: &str) -> Value {
    let stored = read_case(&stored_cases(), name);
    let here = cpu_capability();
    if stored["cpu_capability"].as_str() == Some(here) {
        return stored;
    }
    read_case(regenerated_cases(), name)
}

fn read_case(dir: &Path, name: &str) -> Value {
    let path = dir.join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run tests/twins/twins.py generate)",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn twins_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/twins/twins.py")
}

/// The CPU capability libtorch dispatches to on this machine ("AVX2",
/// "AVX512", ...), as PyTorch reports it: the same library, so the same
/// answer the kernels in this process follow.
fn cpu_capability() -> &'static str {
    static CAPABILITY: OnceLock<String> = OnceLock::new();
    CAPABILITY.get_or_init(|| {
        let out = Command::new("python3")
            .args([
                "-c",
                "import torch; print(torch.backends.cpu.get_cpu_capability())",
            ])
            .output()
            .unwrap_or_else(|e| panic!("python3: {e} (run the tests through swalp-cli/scripts/with-torch)"));
        assert!(
            out.status.success(),
            "python3 could not import torch (run the tests through swalp-cli/scripts/with-torch): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    })
}

/// The cases made by twins.py on this machine, once per CPU capability and
/// version of twins.py, kept under Cargo's test directory.
fn regenerated_cases() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let script = twins_script();
        let source = std::fs::read(&script).unwrap_or_else(|e| panic!("{}: {e}", script.display()));
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "twins-cases-{}-{:016x}",
            cpu_capability(),
            fnv1a(&source)
        ));
        if dir.is_dir() {
            return dir;
        }
        eprintln!(
            "twins: the stored cases were made on a CPU of another capability than this {}; \
             making them here with twins.py generate (about two minutes)",
            cpu_capability()
        );
        let partial = dir.with_extension(format!("partial.{}", std::process::id()));
        let status = Command::new("python3")
            .arg(&script)
            .args(["generate", "--out"])
            .arg(&partial)
            .status()
            .unwrap_or_else(|e| panic!("python3 {}: {e}", script.display()));
        assert!(status.success(), "twins.py generate failed: {status}");
        // A directory that exists is complete: another test binary that
        // made it first wins, and this copy is dropped.
        if std::fs::rename(&partial, &dir).is_err() {
            let _ = std::fs::remove_dir_all(&partial);
        }
        dir
    })
}

/// FNV-1a, 64 bits: names the regenerated cases after the script's text.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default()
}

fn i64s(v: &Value) -> Vec<i64> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default()
}

/// A tensor drawn as `recipe` says from libtorch's generator seeded `seed`
/// (the caller holds [`GENERATOR`]): what `seeded()` in twins.py draws.
fn seeded(recipe: &Value, shape: &[i64], seed: i64) -> Tensor {
    tch::manual_seed(seed);
    let float = (Kind::Float, Device::Cpu);
    let number = |i: usize| recipe[i].as_f64().unwrap_or(f64::NAN);
    match recipe[0].as_str() {
        Some("uniform") => Tensor::empty(shape, float).uniform_(number(1), number(2)),
        Some("normal") => Tensor::empty(shape, float).normal_(number(1), number(2)),
        Some("randint") => Tensor::randint(
            recipe[1].as_i64().unwrap_or(0),
            shape,
            (Kind::Int64, Device::Cpu),
        ),
        Some("const") if recipe[1].is_i64() => Tensor::full(
            shape,
            recipe[1].as_i64().unwrap_or(0),
            (Kind::Int64, Device::Cpu),
        ),
        Some("const") => Tensor::full(shape, number(1), float),
        _ => panic!("unknown recipe {recipe}"),
    }
}

fn draw(t: &Value) -> Tensor {
    seeded(
        &t["recipe"],
        &i64s(&t["shape"]),
        t["seed"].as_i64().unwrap_or(0),
    )
}

/// The indices twins.py samples: `k` evenly spaced, first and last
/// included.
fn sample_indices(n: i64, k: i64) -> Vec<i64> {
    if n <= k {
        return (0..n).collect();
    }
    (0..k)
        .map(|i| (i * (n - 1) + (k - 1) / 2) / (k - 1))
        .collect()
}

/// Compares `t` with a digest of PyTorch's tensor: sum and sum of squares
/// within `rel` relative, sampled elements within `abs` absolute. Returns
/// the largest sampled difference.
fn check_digest(what: &str, t: &Tensor, digest: &Value, abs: f64, rel: f64) -> f64 {
    let flat = t.detach().to_kind(Kind::Double).flatten(0, -1);
    let expected = f64s(&digest["sample"]);
    let indices = sample_indices(flat.size()[0], expected.len().max(1) as i64);
    assert_eq!(indices.len(), expected.len(), "{what}: sample size");
    let mut largest: f64 = 0.0;
    for (&i, e) in indices.iter().zip(&expected) {
        // Both sides as f32: the sample's 9 digits identify an f32 exactly.
        let got = flat.double_value(&[i]) as f32 as f64;
        let e = &(*e as f32 as f64);
        let diff = (got - e).abs();
        assert!(
            diff <= abs,
            "{what}[{i}]: swalp {got}, PyTorch {e} (difference {diff:e} > {abs:e})"
        );
        largest = largest.max(diff);
    }
    for (key, got) in [
        ("sum", flat.sum(Kind::Double).double_value(&[])),
        ("sumsq", flat.square().sum(Kind::Double).double_value(&[])),
    ] {
        let e = digest[key].as_f64().unwrap_or(f64::NAN);
        let scale = e.abs().max(1.0);
        assert!(
            (got - e).abs() <= rel * scale,
            "{what} {key}: swalp {got}, PyTorch {e}"
        );
    }
    largest
}

/// The swalp quantization points of a case: none, or the seed's 8-bit
/// small-block BFP (one exponent per tensor for activations and errors).
fn points(quant: &str) -> PointConfig {
    let rounding = match quant {
        "fp" => return PointConfig::full_precision(),
        "nearest" => "nearest-even",
        _ => "stochastic",
    };
    let text = format!(
        r#"default = {{ format = "bfp", wl = 8, small_block = "fc", rounding = "{rounding}" }}
           activation = {{ small_block = "none" }}
           error = {{ small_block = "none" }}"#
    );
    let table: toml::Table = toml::from_str(&text).unwrap_or_default();
    PointConfig::from_table(&table).unwrap_or_else(|e| panic!("{e}"))
}

/// The model of a case, built by swalp and loaded with the twin's initial
/// state through a `.safetensors` file, as `model.init` loads it.
fn model(spec: &Value, init: &[Value], quant_seed: u64, dir: &Path) -> Model {
    let name = spec["model"].as_str().unwrap_or_default();
    let section = ModelSection {
        name: name.into(),
        init: None,
        // Dropout masks cannot be shared with PyTorch: the twins use none.
        dropout: name.starts_with("vgg").then_some(0.0),
        sync_batchnorm: false,
    };
    let task = match spec["classes"].as_u64() {
        Some(classes) => Task::Classification {
            classes: classes as usize,
        },
        None => Task::Regression,
    };
    let inputs = Inputs {
        shape: i64s(&spec["input_shape"]),
        task,
    };
    let quant = spec["quant"].as_str().unwrap_or("fp");
    let rng = shared_rng(quant_seed);
    let model = models::build(&section, &inputs, &points(quant), rng, Device::Cpu)
        .unwrap_or_else(|e| panic!("{e}"));
    let state: Vec<(String, Tensor)> = init
        .iter()
        .map(|t| (t["name"].as_str().unwrap_or_default().to_string(), draw(t)))
        .collect();
    let path = dir.join("init.safetensors");
    Tensor::write_safetensors(&state, &path).unwrap_or_else(|e| panic!("{e}"));
    weights::load(&model, &path).unwrap_or_else(|e| panic!("{e}"));
    model
}

fn optimizer(spec: &Value, model: &Model, quant: OptimQuantizers, seed: u64) -> Box<dyn Optimizer> {
    let o = &spec["optim"];
    let num = |k: &str| o[k].as_f64().unwrap_or(0.0);
    let params = Sgd::trainable(&model.vs);
    let rng = shared_rng(seed);
    match o["name"].as_str() {
        Some("sgd") => Box::new(Sgd::new(
            params,
            SgdConfig {
                lr: num("lr"),
                momentum: num("momentum"),
                dampening: num("dampening"),
                weight_decay: num("weight_decay"),
                nesterov: o["nesterov"].as_bool().unwrap_or(false),
            },
            num("lr"),
            quant,
            rng,
        )),
        Some(name) => Box::new(Adam::new(
            params,
            AdamConfig {
                lr: num("lr"),
                beta1: num("beta1"),
                beta2: num("beta2"),
                eps: num("eps"),
                weight_decay: num("weight_decay"),
                decoupled: name == "adamw",
            },
            num("lr"),
            quant,
            rng,
        )),
        None => panic!("case without an optimizer"),
    }
}

/// What a swalp run of a case gives.
struct Run {
    model: Model,
    losses: Vec<f64>,
    task: Task,
}

/// Trains a case's model as twins.py's `train` does: the rate halves after
/// half the steps; the batches cycle.
fn train(case: &Value, quant_seed: u64, dir: &Path) -> Run {
    let spec = &case["spec"];
    let init = case["init"].as_array().cloned().unwrap_or_default();
    let (model, batches) = {
        let _lock = GENERATOR.lock().unwrap_or_else(|p| p.into_inner());
        let model = model(spec, &init, quant_seed, dir);
        let batches: Vec<(Tensor, Tensor)> = case["batches"]
            .as_array()
            .map(|a| a.iter().map(|b| (draw(&b["x"]), draw(&b["y"]))).collect())
            .unwrap_or_default();
        (model, batches)
    };
    let quant = OptimQuantizers::from_points(&points(spec["quant"].as_str().unwrap_or("fp")));
    let mut opt = optimizer(spec, &model, quant, quant_seed);
    let task = match spec["classes"].as_u64() {
        Some(c) => Task::Classification {
            classes: c as usize,
        },
        None => Task::Regression,
    };
    let steps = batches.len();
    let lr = spec["optim"]["lr"].as_f64().unwrap_or(0.0);
    let mut losses = Vec::new();
    for (k, (x, y)) in batches.iter().enumerate() {
        opt.set_lr(if k >= steps / 2 { lr * 0.5 } else { lr });
        let out = model.net.forward_t(x, true);
        let loss = task.loss(&out, y);
        opt.zero_grad();
        loss.backward();
        opt.step().unwrap_or_else(|e| panic!("{e}"));
        losses.push(loss.double_value(&[]));
    }
    Run {
        model,
        losses,
        task,
    }
}

fn relative(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-12)
}

/// Checks a deterministic case (full precision, or nearest rounding): the
/// drawn inputs and initial weights are PyTorch's, the per-step losses,
/// the evaluation loss and the final state agree. Returns the largest
/// relative loss difference.
fn check_case(name: &str) -> f64 {
    let case = case(name);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // The reproduction of PyTorch's draws is exact.
    {
        let _lock = GENERATOR.lock().unwrap_or_else(|p| p.into_inner());
        for t in case["init"].as_array().into_iter().flatten() {
            let what = format!("{name}: initial {}", t["name"]);
            check_digest(&what, &draw(t), &t["digest"], 0.0, 1e-12);
        }
        let batches = case["batches"].as_array().cloned().unwrap_or_default();
        for (b, digest) in batches
            .iter()
            .zip(case["batch_digests"].as_array().into_iter().flatten())
        {
            check_digest(
                &format!("{name}: batch x"),
                &draw(&b["x"]),
                &digest["x"],
                0.0,
                1e-12,
            );
            check_digest(
                &format!("{name}: batch y"),
                &draw(&b["y"]),
                &digest["y"],
                0.0,
                1e-12,
            );
        }
    }
    let run = train(&case, 0, dir.path());
    let expected = f64s(&case["losses"]);
    assert_eq!(run.losses.len(), expected.len());
    let mut worst: f64 = 0.0;
    for (k, (got, e)) in run.losses.iter().zip(&expected).enumerate() {
        // Losses are f32 values on both sides; compare them as such (JSON
        // may move the last bit of the f64 that carries one).
        let e = &(*e as f32 as f64);
        let r = relative(*got, *e);
        assert!(
            r <= 1e-4,
            "{name}: step {k} loss swalp {got}, PyTorch {e} (relative {r:e})"
        );
        worst = worst.max(r);
    }
    let (x, y) = {
        let _lock = GENERATOR.lock().unwrap_or_else(|p| p.into_inner());
        (
            draw(&case["eval_batch"]["x"]),
            draw(&case["eval_batch"]["y"]),
        )
    };
    let eval = tch::no_grad(|| run.task.loss(&run.model.net.forward_t(&x, false), &y));
    let (got, e) = (
        eval.double_value(&[]),
        case["eval_loss"].as_f64().unwrap_or(f64::NAN),
    );
    assert!(
        relative(got, e) <= 1e-4,
        "{name}: evaluation loss swalp {got}, PyTorch {e}"
    );
    let state = weights::state(&run.model);
    let finals = case["final"].as_object().cloned().unwrap_or_default();
    assert_eq!(state.len(), finals.len(), "{name}: state entries");
    let mut largest: f64 = 0.0;
    for (var, t) in &state {
        let digest = finals
            .get(var)
            .unwrap_or_else(|| panic!("{name}: PyTorch has no `{var}`"));
        largest = largest.max(check_digest(
            &format!("{name}: final {var}"),
            t,
            digest,
            1e-4,
            1e-3,
        ));
    }
    println!(
        "{name}: {} steps, largest relative loss difference {worst:.2e}, largest weight difference {largest:.2e}",
        run.losses.len()
    );
    worst
}

#[test]
fn linreg_trains_as_pytorch() {
    check_case("linreg");
}

#[test]
fn logreg_trains_as_pytorch() {
    check_case("logreg");
}

#[test]
fn mlp_trains_as_pytorch() {
    check_case("mlp");
}

#[test]
fn cnn_trains_as_pytorch() {
    check_case("cnn");
}

#[test]
fn vgg16_trains_as_pytorch() {
    check_case("vgg16");
}

#[test]
fn vgg16bn_trains_as_pytorch() {
    check_case("vgg16bn");
}

#[test]
fn vgg19_trains_as_pytorch() {
    check_case("vgg19");
}

#[test]
fn vgg19bn_trains_as_pytorch() {
    check_case("vgg19bn");
}

#[test]
fn preresnet20_trains_as_pytorch() {
    check_case("preresnet20");
}

#[test]
fn preresnet164_trains_as_pytorch() {
    check_case("preresnet164");
}

#[test]
fn sgd_nesterov_steps_as_pytorch() {
    check_case("mlp_nesterov");
}

#[test]
fn sgd_dampening_steps_as_pytorch() {
    check_case("mlp_dampening");
}

#[test]
fn adam_steps_as_pytorch() {
    check_case("mlp_adam");
}

#[test]
fn adamw_steps_as_pytorch() {
    check_case("mlp_adamw");
}

#[test]
fn cnn_low_precision_step_is_the_seeds() {
    check_case("cnn_bfp8_nearest");
}

#[test]
fn vgg16_low_precision_step_is_the_seeds() {
    check_case("vgg16_bfp8_nearest");
}

#[test]
fn preresnet20_low_precision_step_is_the_seeds() {
    check_case("preresnet20_bfp8_nearest");
}

/// Mean and sample standard deviation.
fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

/// With stochastic rounding the draws differ by design: over 10 seeds the
/// final losses (mean of the last cycle of 4 batches) must agree in mean
/// within three standard errors and in spread within a factor of three.
#[test]
fn cnn_stochastic_low_precision_matches_the_seed_in_distribution() {
    let case = case("cnn_bfp8_stochastic");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let tail = |losses: &[f64]| losses[losses.len() - 4..].iter().sum::<f64>() / 4.0;
    let pytorch: Vec<f64> = case["losses"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| tail(&f64s(l)))
        .collect();
    let swalp: Vec<f64> = (0..pytorch.len() as u64)
        .map(|seed| tail(&train(&case, 100 + seed, dir.path()).losses))
        .collect();
    let (mp, sp) = mean_std(&pytorch);
    let (ms, ss) = mean_std(&swalp);
    let n = pytorch.len() as f64;
    let standard_error = ((sp * sp + ss * ss) / n).sqrt();
    println!("final loss over {n} seeds: PyTorch {mp:.5} ± {sp:.5}, swalp {ms:.5} ± {ss:.5}");
    assert!(
        (mp - ms).abs() <= 3.0 * standard_error,
        "means differ: PyTorch {mp} ± {sp}, swalp {ms} ± {ss}"
    );
    assert!(
        ss <= 3.0 * sp && sp <= 3.0 * ss,
        "spreads differ: PyTorch {sp}, swalp {ss}"
    );
    assert!(ss > 0.0, "stochastic rounding must vary with the seed");
}

/// The whole trainer (`experiment::run`) against PyTorch: full-batch SGD on
/// the digits in their file order (`train.shuffle = false`); the
/// SWALP schedule; averaging from `swa.start`; BatchNorm statistics
/// recomputed before every evaluation as the seed does. Every metric of
/// every epoch agrees, as do the exported models and the paper's numbers.
fn check_trainer(name: &str) {
    let case = case(name);
    let spec = &case["spec"];
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let data = digits(dir.path(), spec["upsample"].as_u64().unwrap_or(1) as usize);
    let init = dir.path().join("init.safetensors");
    let _lock = GENERATOR.lock().unwrap_or_else(|p| p.into_inner());
    let state: Vec<(String, Tensor)> = case["init"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| (t["name"].as_str().unwrap_or_default().to_string(), draw(t)))
        .collect();
    Tensor::write_safetensors(&state, &init).unwrap_or_else(|e| panic!("{e}"));
    // The digits' training set, or its first `subset` examples.
    let n_train = spec["subset"].as_u64().unwrap_or(1297);
    let subset = spec["subset"]
        .as_u64()
        .map_or(String::new(), |n| format!("subset = {n}"));
    let text = format!(
        r#"
        [experiment]
        name = "{name}"
        device = "cpu"
        [data]
        name = "mnist"
        path = {data:?}
        {subset}
        [model]
        name = {model}
        init = {init:?}
        [optim]
        lr = {lr}
        momentum = {momentum}
        weight_decay = {wd}
        [schedule]
        name = "swalp"
        [swa]
        start = {start}
        lr = {swa_lr}
        [train]
        epochs = {epochs}
        batch_size = {n_train}
        shuffle = false
        [log]
        table = false
        progress = false
        tensorboard = false
        checkpoint_every = 0
        "#,
        model = spec["model"],
        lr = spec["lr"],
        momentum = spec["momentum"],
        wd = spec["weight_decay"],
        start = spec["swa_start"],
        swa_lr = spec["swa_lr"],
        epochs = spec["epochs"],
    );
    let exp =
        Experiment::parse(&text, Path::new("twin.toml"), &[]).unwrap_or_else(|e| panic!("{e}"));
    let out = dir.path().join("run");
    let options = RunOptions::new(out.clone());
    let result = swalp_cli::experiment::run(&exp, &options).unwrap_or_else(|e| panic!("{e}"));
    let lines: Vec<Value> = std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let expected = case["epochs"].as_array().cloned().unwrap_or_default();
    assert_eq!(lines.len(), expected.len(), "{name}: epochs");
    let mut worst: f64 = 0.0;
    for (got, e) in lines.iter().zip(&expected) {
        let epoch = &e["epoch"];
        for key in ["lr", "train_loss", "test_loss", "swa_test_loss"] {
            match (got[key].as_f64(), e[key].as_f64()) {
                (Some(g), Some(x)) => {
                    let r = relative(g, x);
                    assert!(
                        r <= 1e-4,
                        "{name} epoch {epoch} {key}: swalp {g}, PyTorch {x}"
                    );
                    worst = worst.max(r);
                }
                (None, None) => {}
                (g, x) => panic!("{name} epoch {epoch} {key}: swalp {g:?}, PyTorch {x:?}"),
            }
        }
        // The shuffled batch sums BatchNorm's statistics in another order:
        // an almost tied prediction of a barely trained model may flip.
        for key in ["train_error", "test_error", "swa_test_error"] {
            let (g, x) = (got[key].as_f64(), e[key].as_f64());
            let close = match (g, x) {
                (Some(g), Some(x)) => (g - x).abs() <= 1.0,
                (g, x) => g == x,
            };
            assert!(
                close,
                "{name} epoch {epoch} {key}: swalp {g:?}, PyTorch {x:?}"
            );
        }
    }
    for (file, key) in [
        ("model_sgd.safetensors", "final_sgd"),
        ("model_swa.safetensors", "final_swa"),
    ] {
        let tensors =
            Tensor::read_safetensors(out.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let digests = case[key].as_object().cloned().unwrap_or_default();
        assert_eq!(tensors.len(), digests.len(), "{name} {file}: entries");
        for (var, t) in &tensors {
            let digest = digests
                .get(var)
                .unwrap_or_else(|| panic!("{file}: PyTorch has no `{var}`"));
            check_digest(&format!("{name} {file} {var}"), t, digest, 1e-4, 1e-3);
        }
    }
    let (start, epochs) = (
        spec["swa_start"].as_u64().unwrap_or(0) as usize,
        expected.len(),
    );
    // The paper's numbers are the SGD iterate after swa.start epochs and
    // the average after epochs − 1; the final ones after the last epoch.
    let paper = &result["paper"];
    assert_eq!(paper["sgd"]["test_loss"], lines[start - 1]["test_loss"]);
    assert_eq!(paper["sgd"]["epochs_trained"], start);
    assert_eq!(
        paper["swa"]["test_loss"],
        lines[epochs - 2]["swa_test_loss"]
    );
    assert_eq!(paper["swa"]["count"], epochs - start);
    let last = &lines[epochs - 1];
    assert_eq!(result["final"]["swa"]["test_loss"], last["swa_test_loss"]);
    assert_eq!(result["final"]["swa"]["count"], epochs - start + 1);
    println!(
        "{name}: {epochs} epochs through the trainer, largest relative difference {worst:.2e}"
    );
}

#[test]
fn the_trainer_trains_the_cnn_as_pytorch() {
    check_trainer("trainer_cnn");
}

#[test]
fn the_trainer_trains_and_evaluates_preresnet20_as_the_seed() {
    check_trainer("trainer_preresnet20");
}
