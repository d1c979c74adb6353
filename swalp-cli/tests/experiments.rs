//! Experiments from TOML: the SWALP paper's theory results on CPU, the
//! experiment files in exp/, and the run/show/validate commands' errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_swalp-cli"))
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn exp(name: &str) -> PathBuf {
    repo().join("exp").join(name)
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run swalp-cli")
}

fn run_experiment(file: &Path, out: &Path, extra: &[&str]) -> Value {
    let mut args = vec![
        "run",
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(extra);
    let output = run(&args);
    assert!(
        output.status.success(),
        "swalp-cli {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(out.join("result.json")).unwrap()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn linreg_swalp_average_approaches_the_optimum_where_sgd_stalls() {
    let dir = tempfile::tempdir().unwrap();
    let result = run_experiment(&exp("linreg_swalp.toml"), dir.path(), &[]);
    let sgd = result["final"]["sgd"]["dist_to_opt"].as_f64().unwrap();
    let swa = result["final"]["swa"]["dist_to_opt"].as_f64().unwrap();
    assert!(
        swa * 10.0 <= sgd,
        "SWALP {swa} is not 10x closer than SGD {sgd}"
    );
    // Low-precision SGD itself stalls at its noise floor: the 8-bit grid has
    // step 2^-6, so it stays far from the optimum.
    assert!(
        sgd > 1e-3,
        "SGD distance {sgd} below the quantization floor"
    );
    for file in ["config.toml", "metrics.jsonl", "result.json"] {
        assert!(dir.path().join(file).is_file(), "{file} missing");
    }
    let lines = std::fs::read_to_string(dir.path().join("metrics.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 24);
}

#[test]
fn logreg_swalp_average_ends_in_a_smaller_noise_ball() {
    let dir = tempfile::tempdir().unwrap();
    let result = run_experiment(&exp("logreg_synthetic_swalp.toml"), dir.path(), &[]);
    let sgd = result["final"]["sgd"]["train_loss_gap"].as_f64().unwrap();
    let swa = result["final"]["swa"]["train_loss_gap"].as_f64().unwrap();
    assert!(
        swa >= -1e-9,
        "gap {swa} below the optimum: the optimum is wrong"
    );
    assert!(
        swa < sgd / 2.0,
        "SWALP gap {swa} not clearly below SGD gap {sgd}"
    );
}

#[test]
fn same_seed_same_numbers_different_seed_different_numbers() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let short = ["--set", "train.epochs=6"];
    let a = run_experiment(&exp("linreg_swalp.toml"), dirs[0].path(), &short);
    let b = run_experiment(&exp("linreg_swalp.toml"), dirs[1].path(), &short);
    let mut other = short.to_vec();
    other.extend(["--set", "experiment.seed=5"]);
    let c = run_experiment(&exp("linreg_swalp.toml"), dirs[2].path(), &other);
    assert_eq!(a, b);
    assert_ne!(a["final"], c["final"]);
}

#[test]
fn every_experiment_file_validates() {
    let mut count = 0;
    for entry in std::fs::read_dir(repo().join("exp")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let output = run(&["validate", path.to_str().unwrap()]);
        assert!(
            output.status.success(),
            "{}: {}",
            path.display(),
            stderr(&output)
        );
        count += 1;
    }
    assert!(count >= 2);
}

#[test]
fn show_prints_the_resolved_experiment_with_overrides() {
    let output = run(&[
        "show",
        exp("linreg_swalp.toml").to_str().unwrap(),
        "--set",
        "optim.lr=0.5",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let shown: toml::Table = toml::from_str(&String::from_utf8_lossy(&output.stdout)).unwrap();
    assert_eq!(shown["optim"]["lr"].as_float(), Some(0.5));
    // Defaults are filled in.
    assert_eq!(shown["optim"]["momentum"].as_float(), Some(0.0));
    assert_eq!(shown["schedule"]["per"].as_str(), Some("epoch"));
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

const VALID: &str = r#"
[experiment]
name = "t"

[data]
name = "synthetic-linreg"
n_train = 64
n_test = 16
dim = 4

[model]
name = "linreg"

[optim]
lr = 0.01

[train]
epochs = 1
batch_size = 16
"#;

#[test]
fn schema_errors_name_the_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            VALID.replace("lr = 0.01", "lrr = 0.01"),
            vec!["bad.toml:15", "lrr", "did you mean `lr`"],
        ),
        (
            VALID.replace("batch_size = 16", "batch_size = \"big\""),
            vec!["bad.toml:19", "invalid type"],
        ),
        (
            VALID.replace("lr = 0.01", "lr = -1.0"),
            vec!["optim.lr", "-1", "positive"],
        ),
        (
            VALID.replace(
                "[model]\nname = \"linreg\"",
                "[model]\nname = \"resnet9000\"",
            ),
            vec!["model.name", "resnet9000"],
        ),
        (
            format!("{VALID}\n[quant]\nweight = {{ format = \"fixed\", wl = 40, fl = 6 }}\n"),
            vec!["quant", "weight.wl", "40"],
        ),
        (
            format!("{VALID}\n[quant]\nwieght = {{ format = \"fixed\", wl = 8, fl = 6 }}\n"),
            vec!["wieght", "did you mean `weight`"],
        ),
        (
            VALID.replace("[train]", "[train]\nepochs_ = 3"),
            vec!["epochs_", "did you mean `epochs`"],
        ),
        ("[experiment\nname = 1".to_string(), vec!["bad.toml:1"]),
    ];
    for (text, needles) in cases {
        let path = write(dir.path(), "bad.toml", &text);
        let out = dir.path().join("out");
        for args in [
            vec!["validate", path.to_str().unwrap()],
            vec![
                "run",
                path.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ],
        ] {
            let command = args[0];
            let output = run(&args);
            let err = stderr(&output);
            assert_eq!(output.status.code(), Some(2), "{command}: {err}");
            assert_eq!(err.trim().lines().count(), 1, "{err}");
            for needle in &needles {
                assert!(err.contains(needle), "{command}: {err:?} lacks {needle:?}");
            }
            assert!(
                !dir.path().join("out").exists(),
                "an invalid experiment created outputs"
            );
        }
    }
    let output = run(&[
        "validate",
        dir.path().join("missing.toml").to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("missing.toml"));
}

#[test]
fn overrides_are_checked_like_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "ok.toml", VALID);
    let output = run(&[
        "validate",
        path.to_str().unwrap(),
        "--set",
        "train.epochz=3",
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("did you mean `epochs`"),
        "{}",
        stderr(&output)
    );
    let output = run(&["validate", path.to_str().unwrap(), "--set", "nonsense"]);
    assert_eq!(output.status.code(), Some(2));
    let before = std::fs::read(&path).unwrap();
    let result = run_experiment(&path, &dir.path().join("out"), &["--set", "train.epochs=2"]);
    assert_eq!(result["epochs"], 2);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the experiment file was modified"
    );
}

#[test]
fn cuda_is_refused_clearly_without_a_gpu() {
    if swalp_core::tch::Cuda::is_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "ok.toml", VALID);
    let output = run(&[
        "run",
        path.to_str().unwrap(),
        "--device",
        "cuda",
        "--out",
        dir.path().join("o").to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("CUDA is not available"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn averaging_can_start_at_a_step_and_be_low_precision() {
    let dir = tempfile::tempdir().unwrap();
    let text = VALID.replace("epochs = 1", "epochs = 5")
        + "\n[swa]\nstart_step = 10\nevery_steps = 1\nquant = { format = \"fixed\", wl = 8, fl = 4 }\n";
    let path = write(dir.path(), "steps.toml", &text);
    let result = run_experiment(&path, &dir.path().join("out"), &[]);
    // 64 examples in batches of 16: 4 steps per epoch, 20 in all; averaging
    // at steps 10..=20.
    assert_eq!(result["steps"], 20);
    assert_eq!(result["final"]["swa"]["count"], 11);
    let both = format!("{VALID}\n[swa]\nstart = 0\nstart_step = 3\nevery_steps = 1\n");
    let path = write(dir.path(), "both.toml", &both);
    let output = run(&["validate", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("alternatives"),
        "{}",
        stderr(&output)
    );
}
