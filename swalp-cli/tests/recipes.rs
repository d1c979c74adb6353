//! The CPU recipes of `exp/` on real data: scikit-learn's handwritten
//! digits (`tests/data/digits`, written as MNIST's IDX files by
//! `tests/twins/twins.py digits`), against what PyTorch reaches with the
//! same recipe in full precision (`twins.py recipes`, stored in
//! `tests/twins/cases/recipes.json`).
//!
//! Over five seeds, as the paper reports (the SGD iterate after
//! `swa.start` epochs, the average after `train.epochs − 1`), swalp's
//! full-precision run and its low-precision SGD and SWALP must each be
//! within 1.5 points of PyTorch's full-precision error.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use swalp_cli::experiment::config::ScheduleName;
use swalp_cli::experiment::Experiment;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn digits() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/digits")
}

fn reference(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/twins/cases/recipes.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let all: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    all[name].clone()
}

/// The PyTorch reference was computed with the exp file's own
/// hyper-parameters; a changed recipe needs a new reference.
fn check_same_recipe(exp: &Experiment, recipe: &Value) {
    let f = |k: &str| recipe[k].as_f64().unwrap_or(f64::NAN);
    let u = |k: &str| recipe[k].as_u64().unwrap_or(u64::MAX);
    let name = &exp.experiment.name;
    assert_eq!(
        exp.model.name,
        recipe["model"].as_str().unwrap_or(""),
        "{name}"
    );
    assert_eq!(exp.optim.lr, f("lr"), "{name}: optim.lr");
    assert_eq!(exp.optim.momentum, f("momentum"), "{name}: optim.momentum");
    assert_eq!(
        exp.optim.weight_decay,
        f("weight_decay"),
        "{name}: optim.weight_decay"
    );
    assert_eq!(
        exp.train.batch_size as u64,
        u("batch_size"),
        "{name}: train.batch_size"
    );
    assert_eq!(exp.train.epochs, u("epochs"), "{name}: train.epochs");
    assert_eq!(exp.swa.start, Some(u("swa_start")), "{name}: swa.start");
    assert_eq!(exp.swa.lr, Some(f("swa_lr")), "{name}: swa.lr");
    assert_eq!(
        exp.schedule.name,
        ScheduleName::Swalp,
        "{name}: schedule.name"
    );
    let every_step = recipe["every_step"].as_bool().unwrap_or(false);
    assert_eq!(
        exp.swa.every_steps,
        every_step.then_some(1),
        "{name}: swa.every_steps"
    );
}

/// Runs `file` on the digits for seeds 0–4; returns the mean SGD and SWA
/// test errors (the paper's definitions) from `summary.json`.
fn run_on_digits(file: &Path, extra: &[&str]) -> (f64, f64) {
    run_on_digits_with_seeds(file, "0,1,2,3,4", extra)
}

/// [`run_on_digits`] for the given seeds.
fn run_on_digits_with_seeds(file: &Path, seeds: &str, extra: &[&str]) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let data = format!("data.path={}", digits().display());
    let output = Command::new(env!("CARGO_BIN_EXE_swalp-cli"))
        .arg("run")
        .arg(file)
        .args([
            "--set",
            &data,
            "--set",
            "log.progress=false",
            "--set",
            "log.table=false",
        ])
        .args(["--set", "log.tensorboard=false", "--seeds", seeds, "--out"])
        .arg(dir.path())
        .args(extra)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(dir.path().join("summary.json")).unwrap_or_default();
    let summary: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    let mean = |w: &str| summary[w]["test_error_mean"].as_f64().unwrap_or(f64::NAN);
    (mean("sgd"), mean("swa"))
}

/// Runs `exp/{name}.toml` against the PyTorch reference of the recipe
/// `same_as` (a recipe with the same hyper-parameters, which
/// `check_same_recipe` verifies).
fn check_recipe(name: &str, same_as: &str) {
    let file = repo().join(format!("exp/{name}.toml"));
    let exp = Experiment::load(&file, &[]).unwrap_or_else(|e| panic!("{e}"));
    let reference = reference(same_as);
    check_same_recipe(&exp, &reference["recipe"]);
    let pytorch = |k: &str| reference["mean"][k].as_f64().unwrap_or(f64::NAN);
    let (fp_sgd, fp_swa) = run_on_digits(&file, &["--set", "quant={}"]);
    let (lp_sgd, lp_swa) = run_on_digits(&file, &[]);
    println!(
        "{name} on the digits, seeds 0-4, test error %: PyTorch FP SGD {:.2} SWA {:.2}; \
         swalp FP SGD {fp_sgd:.2} SWA {fp_swa:.2}; SGD-LP {lp_sgd:.2}; SWALP {lp_swa:.2}",
        pytorch("sgd"),
        pytorch("swa")
    );
    for (what, got, against) in [
        ("full-precision SGD", fp_sgd, pytorch("sgd")),
        ("full-precision SWA", fp_swa, pytorch("swa")),
        ("SGD-LP", lp_sgd, pytorch("sgd")),
        ("SWALP", lp_swa, pytorch("swa")),
    ] {
        assert!(
            (got - against).abs() <= 1.5,
            "{name}: swalp's {what} error {got:.2}% is more than 1.5 points from PyTorch's {against:.2}%"
        );
    }
}

#[test]
fn mnist_cnn_recipe_matches_pytorch_on_real_digits() {
    check_recipe("mnist_cnn_bfp8", "mnist_cnn_bfp8");
}

/// NVIDIA's NVFP4 recipe on the same CNN and hyper-parameters.
#[test]
fn mnist_cnn_nvfp4_recipe_matches_pytorch_on_real_digits() {
    check_recipe("mnist_cnn_nvfp4", "mnist_cnn_bfp8");
}

#[test]
fn logreg_recipe_matches_pytorch_on_real_digits() {
    check_recipe("logreg_swalp", "logreg_swalp");
}

/// The accumulation experiment's own run (fp8 products, fp16 sums in
/// chunks of 64) trains as libtorch's products do on the digits (seeds 0
/// and 1 here, to keep CI short; the file's comment has all five and the
/// other arithmetics of its sweep).
#[test]
fn mnist_mlp_accumulation_recipe_trains_as_libtorch_products_do() {
    let file = repo().join("exp/mnist_mlp_accumulation.toml");
    let (sgd, swa) = run_on_digits_with_seeds(&file, "0,1", &[]);
    let (exact_sgd, exact_swa) =
        run_on_digits_with_seeds(&file, "0,1", &["--set", "quant.matmul={}"]);
    println!(
        "mnist_mlp_accumulation on the digits, seeds 0-1, test error %: libtorch products \
         SGD {exact_sgd:.2} SWA {exact_swa:.2}; fp8 products, fp16 chunks of 64 SGD {sgd:.2} \
         SWA {swa:.2}"
    );
    for (what, got, against) in [("SGD", sgd, exact_sgd), ("SWA", swa, exact_swa)] {
        assert!(
            got < 8.0,
            "{what} error {got:.2}%: the recipe does not train"
        );
        assert!(
            (got - against).abs() <= 1.5,
            "{what}: {got:.2}% with simulated accumulation, {against:.2}% with libtorch's products"
        );
    }
}
