//! Models' starting weights, their names, and weights in and out:
//!
//! - every parameter starts from the distribution PyTorch (or the SWALP
//!   seed) gives it, checked per parameter against the formula;
//! - dropout drops at its rate and scales the rest;
//! - `model.init` takes PyTorch's state_dict names and refuses, with one
//!   line and exit status 2, a file that does not fit;
//! - `model_sgd.safetensors` / `model_swa.safetensors` load into the PyTorch
//!   twin with `load_state_dict` and compute what swalp computes.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use swalp_cli::data::Task;
use swalp_cli::experiment::config::ModelSection;
use swalp_cli::models::{self, vgg, weights, Inputs, Model};
use swalp_core::hook::shared_rng;
use swalp_core::points::PointConfig;
use swalp_core::tch::{self, nn::ModuleT, Device, Kind, Tensor};

/// libtorch's generator is global; tests that seed it hold this lock.
static GENERATOR: Mutex<()> = Mutex::new(());

fn build(name: &str, shape: &[i64], seed: i64) -> Model {
    let section = ModelSection {
        name: name.into(),
        init: None,
        dropout: None,
        sync_batchnorm: false,
    };
    let task = match name {
        "linreg" => Task::Regression,
        _ => Task::Classification { classes: 10 },
    };
    let inputs = Inputs {
        shape: shape.to_vec(),
        task,
    };
    let _lock = GENERATOR.lock().unwrap_or_else(|p| p.into_inner());
    tch::manual_seed(seed);
    let points = PointConfig::full_precision();
    models::build(&section, &inputs, &points, shared_rng(0), Device::Cpu)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

const IMAGE: [i64; 3] = [3, 32, 32];

/// What a parameter should start from.
#[derive(Debug, PartialEq)]
enum Expected {
    Const(f64),
    /// U(−b, b).
    Uniform(f64),
    /// N(0, σ²).
    Normal(f64),
}

/// The distribution of variable `name` of `model`, from PyTorch's and the
/// seed's formulas, independently of swalp's code; `shapes` holds every
/// variable's shape.
fn expected(model: &str, name: &str, shapes: &HashMap<String, Vec<i64>>) -> Expected {
    let (prefix, leaf) = name.rsplit_once('.').unwrap_or(("", name));
    if shapes.contains_key(&format!("{prefix}.running_mean")) {
        return match leaf {
            "weight" | "running_var" => Expected::Const(1.0),
            _ => Expected::Const(0.0),
        };
    }
    if model == "linreg" || model == "logreg" {
        return Expected::Const(0.0);
    }
    let weight = &shapes[&format!("{prefix}.weight")];
    let seed_family = model.starts_with("vgg") || model.starts_with("preresnet");
    if seed_family && weight.len() == 4 {
        // The seed's convolutions: N(0, 2/(k·k·out)), zero bias.
        return match leaf {
            "weight" => {
                let n = weight[0] * weight[2] * weight[3];
                Expected::Normal((2.0 / n as f64).sqrt())
            }
            _ => Expected::Const(0.0),
        };
    }
    // PyTorch's Linear and Conv2d: U(±1/√fan_in), weight and bias.
    let fan_in: i64 = weight[1..].iter().product();
    Expected::Uniform(1.0 / (fan_in as f64).sqrt())
}

/// Checks one variable against its distribution: constants exactly;
/// uniform within its bound and reaching near it, with the uniform's
/// spread; normal with its spread. Returns a description for the log.
fn check_distribution(model: &str, name: &str, t: &Tensor, expected: &Expected) {
    let x = t.to_kind(Kind::Double).flatten(0, -1);
    let n = x.size()[0] as f64;
    let mean = x.mean(Kind::Double).double_value(&[]);
    let std = if n > 1.0 {
        x.std(true).double_value(&[])
    } else {
        0.0
    };
    let max = x.abs().max().double_value(&[]);
    match *expected {
        Expected::Const(c) => {
            let off = (&x - c).abs().max().double_value(&[]);
            assert_eq!(off, 0.0, "{model} {name}: not all {c}");
        }
        Expected::Uniform(b) => {
            assert!(max <= b, "{model} {name}: |w| up to {max}, bound {b}");
            if n >= 1000.0 {
                assert!(
                    max >= 0.99 * b,
                    "{model} {name}: |w| only up to {max}, bound {b}"
                );
                let sd = b / 3f64.sqrt();
                assert!(
                    (std / sd - 1.0).abs() < 0.1,
                    "{model} {name}: std {std}, U(±{b}) has {sd}"
                );
                assert!(
                    mean.abs() < 5.0 * sd / n.sqrt(),
                    "{model} {name}: mean {mean}"
                );
            }
        }
        Expected::Normal(sigma) => {
            if n >= 1000.0 {
                assert!(
                    (std / sigma - 1.0).abs() < 0.1,
                    "{model} {name}: std {std}, expected {sigma}"
                );
                assert!(
                    mean.abs() < 5.0 * sigma / n.sqrt(),
                    "{model} {name}: mean {mean}"
                );
                // Gaussian tails, not a uniform's hard edge at √3 σ.
                assert!(
                    max > 2.5 * sigma,
                    "{model} {name}: largest |w| {max} for σ {sigma}"
                );
            }
        }
    }
}

#[test]
fn every_parameter_starts_as_pytorch_and_the_seed_start_it() {
    let models: [(&str, &[i64]); 10] = [
        ("linreg", &[16]),
        ("logreg", &[1, 8, 8]),
        ("mlp", &[1, 8, 8]),
        ("cnn", &[1, 28, 28]),
        ("vgg16", &IMAGE),
        ("vgg16bn", &IMAGE),
        ("vgg19", &IMAGE),
        ("vgg19bn", &IMAGE),
        ("preresnet20", &IMAGE),
        ("preresnet164", &IMAGE),
    ];
    for (model, shape) in models {
        let built = build(model, shape, 7);
        let state = weights::state(&built);
        let shapes: HashMap<String, Vec<i64>> =
            state.iter().map(|(n, t)| (n.clone(), t.size())).collect();
        let mut checked = 0;
        for (name, t) in &state {
            if name.ends_with("num_batches_tracked") {
                assert_eq!(t.kind(), Kind::Int64, "{model} {name}");
                assert_eq!(t.int64_value(&[]), 0, "{model} {name}");
                continue;
            }
            let e = expected(model, name, &shapes);
            check_distribution(model, name, t, &e);
            checked += 1;
        }
        assert!(checked >= 2, "{model}: {checked} parameters");
    }
}

/// tch's own default initialisation is √6 wider than PyTorch's: the check
/// above would catch it. (The check must be able to fail.)
#[test]
fn the_initialisation_check_rejects_tch_defaults() {
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let linear = {
        let _lock = GENERATOR.lock().unwrap_or_else(|p| p.into_inner());
        tch::manual_seed(3);
        tch::nn::linear(vs.root() / "fc", 512, 256, Default::default())
    };
    let bound = 1.0 / 512f64.sqrt();
    let result = std::panic::catch_unwind(|| {
        check_distribution("tch", "fc.weight", &linear.ws, &Expected::Uniform(bound))
    });
    assert!(result.is_err());
}

#[test]
fn variables_carry_the_pytorch_state_dict_names() {
    let names = |model: &str, shape: &[i64]| -> Vec<String> {
        weights::state(&build(model, shape, 0))
            .into_iter()
            .map(|(n, _)| n)
            .collect()
    };
    let vgg = names("vgg16bn", &IMAGE);
    for name in [
        "features.0.weight",
        "features.0.bias",
        "features.1.weight",
        "features.1.running_mean",
        "features.1.num_batches_tracked",
        "features.4.weight",
        "features.9.weight",
        "classifier.1.weight",
        "classifier.5.bias",
        "classifier.8.weight",
    ] {
        assert!(
            vgg.contains(&name.to_string()),
            "vgg16bn lacks {name}: {vgg:?}"
        );
    }
    // The seed's VGG without BatchNorm: conv, ReLU, quantizer per width.
    let vgg = names("vgg16", &IMAGE);
    assert!(vgg.contains(&"features.3.weight".to_string()), "{vgg:?}");
    assert!(vgg.contains(&"features.7.weight".to_string()), "{vgg:?}");
    let resnet = names("preresnet20", &IMAGE);
    for name in [
        "conv1.weight",
        "layer1.0.bn1.weight",
        "layer1.2.conv2.weight",
        "layer2.0.downsample.0.weight",
        "layer3.2.bn2.running_var",
        "bn.bias",
        "fc.weight",
    ] {
        assert!(
            resnet.contains(&name.to_string()),
            "preresnet20 lacks {name}"
        );
    }
    assert_eq!(resnet.len(), 1 + 9 * 2 * 6 + 2 + 5 + 2);
}

#[test]
fn dropout_drops_at_its_rate_and_scales_the_rest() {
    let x = Tensor::ones([1_000_000], (Kind::Float, Device::Cpu));
    for p in [0.5, 0.2] {
        let y = {
            let _lock = GENERATOR.lock().unwrap_or_else(|e| e.into_inner());
            tch::manual_seed(11);
            vgg::dropout(&x, p, true)
        };
        let zeros = y.eq(0.0).sum(Kind::Int64).int64_value(&[]) as f64 / 1e6;
        assert!((zeros - p).abs() < 0.003, "p = {p}: {zeros} dropped");
        let kept = y.masked_select(&y.ne(0.0));
        let scale = 1.0 / (1.0 - p);
        let off = (kept - scale).abs().max().double_value(&[]);
        assert!(off < 1e-6, "p = {p}: survivors not scaled by {scale}");
        assert!(
            vgg::dropout(&x, p, false).equal(&x),
            "evaluation is the identity"
        );
    }
    assert!(
        vgg::dropout(&x, 0.0, true).equal(&x),
        "p = 0 is the identity"
    );
}

#[test]
fn vgg_dropout_is_a_model_option() {
    let x = {
        let _lock = GENERATOR.lock().unwrap_or_else(|e| e.into_inner());
        tch::manual_seed(5);
        Tensor::randn([2, 3, 32, 32], (Kind::Float, Device::Cpu))
    };
    let forward = |dropout: f64, train: bool| {
        let section = ModelSection {
            name: "vgg16".into(),
            init: None,
            dropout: Some(dropout),
            sync_batchnorm: false,
        };
        let inputs = Inputs {
            shape: IMAGE.to_vec(),
            task: Task::Classification { classes: 10 },
        };
        let _lock = GENERATOR.lock().unwrap_or_else(|e| e.into_inner());
        tch::manual_seed(1);
        let points = PointConfig::full_precision();
        let model = models::build(&section, &inputs, &points, shared_rng(0), Device::Cpu)
            .unwrap_or_else(|e| panic!("{e}"));
        tch::no_grad(|| model.net.forward_t(&x, train))
    };
    assert!(forward(0.0, true).equal(&forward(0.0, false)));
    assert!(!forward(0.5, true).equal(&forward(0.5, false)));
}

#[test]
fn weights_round_trip_through_safetensors() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("w.safetensors");
    let a = build("preresnet20", &IMAGE, 1);
    // Non-default BatchNorm buffers must travel too.
    {
        let _guard = tch::no_grad_guard();
        let x = Tensor::randn([4, 3, 32, 32], (Kind::Float, Device::Cpu));
        let _ = a.net.forward_t(&x, true);
    }
    weights::save(&a, &path).unwrap_or_else(|e| panic!("{e}"));
    let b = build("preresnet20", &IMAGE, 2);
    weights::load(&b, &path).unwrap_or_else(|e| panic!("{e}"));
    for ((na, ta), (nb, tb)) in weights::state(&a).iter().zip(weights::state(&b).iter()) {
        assert_eq!(na, nb);
        assert!(ta.equal(tb), "{na} differs after the round trip");
    }
    let tracked = &weights::state(&b)
        .into_iter()
        .find(|(n, _)| n == "bn.num_batches_tracked")
        .map(|(_, t)| t.int64_value(&[]));
    assert_eq!(*tracked, Some(1));
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_swalp-cli"))
}

fn experiment(dir: &Path, model: &str, data: &str, init: Option<&Path>) -> PathBuf {
    let init = init.map_or(String::new(), |p| format!("init = {p:?}"));
    let text = format!(
        r#"
[experiment]
name = "{model}"
seed = 3
device = "cpu"
[data]
name = "{data}"
n_train = 8
n_test = 4
classes = 10
[model]
name = "{model}"
{init}
[optim]
lr = 0.05
momentum = 0.9
[swa]
start = 1
[train]
epochs = 2
batch_size = 4
[log]
table = false
progress = false
"#
    );
    let path = dir.join(format!("{model}.toml"));
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
    path
}

/// Runs `swalp-cli run`; returns (exit code, stderr).
fn run(exp: &Path, out: &Path) -> (Option<i32>, String) {
    let output = bin()
        .args([
            "run",
            &exp.to_string_lossy(),
            "--out",
            &out.to_string_lossy(),
        ])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn model_init_starts_from_the_given_weights() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let init = dir.path().join("init.safetensors");
    let start = build("cnn", &[1, 28, 28], 9);
    weights::save(&start, &init).unwrap_or_else(|e| panic!("{e}"));
    // Zero epochs cannot be run; one epoch at a rate of almost zero keeps
    // the weights the given ones.
    let exp = experiment(dir.path(), "cnn", "synthetic-mnist", Some(&init));
    let out = dir.path().join("out");
    let output = bin()
        .args([
            "run",
            &exp.to_string_lossy(),
            "--out",
            &out.to_string_lossy(),
        ])
        .args(["--set", "optim.lr=1e-30", "--set", "train.epochs=1"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let end = build("cnn", &[1, 28, 28], 10);
    weights::load(&end, &out.join("model_sgd.safetensors")).unwrap_or_else(|e| panic!("{e}"));
    for ((name, a), (_, b)) in weights::state(&start)
        .iter()
        .zip(weights::state(&end).iter())
    {
        let diff = (a - b).abs().max().double_value(&[]);
        assert!(diff < 1e-12, "{name}: moved by {diff}");
    }
}

#[test]
fn model_init_refuses_files_that_do_not_fit() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let good = build("cnn", &[1, 28, 28], 1);
    let mut state = weights::state(&good);
    let write = |name: &str, state: &[(String, Tensor)]| {
        let path = dir.path().join(name);
        Tensor::write_safetensors(state, &path).unwrap_or_else(|e| panic!("{e}"));
        path
    };
    let missing = write("missing.safetensors", &state[1..]);
    let mut extra: Vec<(String, Tensor)> = state
        .iter()
        .map(|(n, t)| (n.clone(), t.shallow_clone()))
        .collect();
    extra.push((
        "fc9.weight".into(),
        Tensor::zeros([2], (Kind::Float, Device::Cpu)),
    ));
    let extra = write("extra.safetensors", &extra);
    let fc2 = state
        .iter()
        .position(|(n, _)| n == "fc2.weight")
        .unwrap_or(0);
    state[fc2].1 = Tensor::zeros([10, 255], (Kind::Float, Device::Cpu));
    let shape = write("shape.safetensors", &state);
    let garbage = dir.path().join("garbage.safetensors");
    std::fs::write(&garbage, b"not a safetensors file").unwrap_or_else(|e| panic!("{e}"));
    let absent = dir.path().join("absent.safetensors");
    for (file, expected) in [
        (&missing, "no tensor `conv1.bias`, which the model needs"),
        (&extra, "tensor `fc9.weight` is not in the model"),
        (
            &shape,
            "tensor `fc2.weight` has shape [10, 255], the model's is [10, 256]",
        ),
        (&garbage, "not a readable .safetensors file"),
        (&absent, "not a readable .safetensors file"),
    ] {
        let exp = experiment(dir.path(), "cnn", "synthetic-mnist", Some(file));
        let out = dir.path().join("never");
        let (code, stderr) = run(&exp, &out);
        assert_eq!(code, Some(2), "{}: {stderr}", file.display());
        assert!(stderr.contains(expected), "{}: {stderr}", file.display());
        assert!(
            stderr.contains(&file.display().to_string()),
            "names the file: {stderr}"
        );
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(!out.exists(), "nothing is written for a bad model.init");
    }
}

/// The PyTorch environment of the README, if this process can run it:
/// `python3` with torch and safetensors.
fn pytorch() -> Option<String> {
    let python = std::env::var("SWALP_TWIN_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&python)
        .args(["-c", "import torch, safetensors"])
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then_some(python)
}

/// `model_sgd.safetensors` and `model_swa.safetensors` load into the
/// PyTorch twin with `load_state_dict` (strict), and the twin computes
/// what swalp computes.
#[test]
fn exported_models_load_into_their_pytorch_twins() {
    let Some(python) = pytorch() else {
        // Straight to stderr, past the test harness's capture: a skip is
        // said on the output even when the test passes.
        let _ = writeln!(
            std::io::stderr(),
            "exported_models_load_into_their_pytorch_twins skipped: no python3 with torch \
             and safetensors on PATH (run the tests through swalp-cli/scripts/with-torch)"
        );
        return;
    };
    let twins = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/twins/twins.py");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for (model, data, shape) in [
        ("preresnet20", "synthetic-cifar", IMAGE.to_vec()),
        ("vgg16bn", "synthetic-cifar", IMAGE.to_vec()),
        ("cnn", "synthetic-mnist", vec![1, 28, 28]),
    ] {
        let exp = experiment(dir.path(), model, data, None);
        let out = dir.path().join(model);
        let (code, stderr) = run(&exp, &out);
        assert_eq!(code, Some(0), "{model}: {stderr}");
        for file in ["model_sgd.safetensors", "model_swa.safetensors"] {
            let path = out.join(file);
            let loaded = build(model, &shape, 0);
            weights::load(&loaded, &path).unwrap_or_else(|e| panic!("{e}"));
            let input = {
                let _lock = GENERATOR.lock().unwrap_or_else(|e| e.into_inner());
                tch::manual_seed(4);
                Tensor::randn(
                    [3].iter().chain(&shape).copied().collect::<Vec<_>>(),
                    (Kind::Float, Device::Cpu),
                )
            };
            let output = tch::no_grad(|| loaded.net.forward_t(&input, false));
            let io = dir.path().join(format!("{model}-{file}-io.safetensors"));
            Tensor::write_safetensors(&[("input", &input), ("output", &output)], &io)
                .unwrap_or_else(|e| panic!("{e}"));
            let check = Command::new(&python)
                .arg(&twins)
                .args(["check-export", model])
                .arg(&path)
                .arg(&io)
                .output()
                .unwrap_or_else(|e| panic!("{e}"));
            let said = String::from_utf8_lossy(&check.stdout);
            assert!(
                check.status.success(),
                "{model} {file}: {said}{}",
                String::from_utf8_lossy(&check.stderr)
            );
            println!("{model} {file}: {}", said.trim());
        }
    }
}
