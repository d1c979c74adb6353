//! Experiments from TOML: the SWALP paper's theory results on CPU, the
//! experiment files in exp/, and the run/show/validate commands' errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use swalp_cli::experiment::observe::{Control, Observer, StepReport};
use swalp_cli::experiment::{Experiment, ExperimentError, RunOptions};

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

/// CIFAR-10's and CIFAR-100's files in the binary layout, side by side,
/// with two records each: enough for `validate`, which reads only the
/// files' sizes.
fn tiny_cifar(dir: &Path) -> PathBuf {
    let root = dir.join("cifar");
    std::fs::create_dir_all(&root).unwrap();
    let cifar10 = [
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
        "test_batch.bin",
    ];
    for file in cifar10 {
        std::fs::write(root.join(file), vec![0u8; 2 * 3073]).unwrap();
    }
    for file in ["train.bin", "test.bin"] {
        std::fs::write(root.join(file), vec![0u8; 2 * 3074]).unwrap();
    }
    root
}

/// Every file in exp/ passes `validate`, each on data of its kind: the
/// real digits for MNIST, tiny CIFAR files for CIFAR (validate checks that
/// the data set is there and fits the model).
#[test]
fn every_experiment_file_validates() {
    let tmp = tempfile::tempdir().unwrap();
    let digits = repo().join("swalp-cli/tests/data/digits");
    let mut count = 0;
    for entry in std::fs::read_dir(repo().join("exp")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let exp = Experiment::load(&path, &[]).unwrap();
        // CIFAR-10's and CIFAR-100's files side by side, for sweeps over both.
        let data = match exp.data.name.as_str() {
            "mnist" | "fashion-mnist" => Some(digits.clone()),
            "cifar10" | "cifar100" => Some(tiny_cifar(tmp.path())),
            _ => None,
        };
        let set = data.map(|d| format!("data.path={:?}", d.to_str().unwrap()));
        let mut args = vec!["validate", path.to_str().unwrap()];
        if let Some(set) = &set {
            args.extend(["--set", set.as_str()]);
        }
        let output = run(&args);
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
            vec!["bad.toml:15", "optim.lrr", "did you mean `lr`"],
        ),
        (
            VALID.replace("batch_size = 16", "batch_size = \"big\""),
            vec!["bad.toml:19", "train.batch_size", "invalid type"],
        ),
        (
            VALID.replace("lr = 0.01", "lr = -1.0"),
            vec!["bad.toml:15", "optim.lr", "-1", "positive"],
        ),
        (
            VALID.replace(
                "[model]\nname = \"linreg\"",
                "[model]\nname = \"resnet9000\"",
            ),
            vec!["bad.toml:12", "model.name", "resnet9000"],
        ),
        (
            format!("{VALID}\n[quant]\nweight = {{ format = \"fixed\", wl = 40, fl = 6 }}\n"),
            vec!["bad.toml:22", "quant", "weight.wl", "40"],
        ),
        (
            format!("{VALID}\n[quant]\nwieght = {{ format = \"fixed\", wl = 8, fl = 6 }}\n"),
            vec!["wieght", "did you mean `weight`"],
        ),
        (
            VALID.replace("[train]", "[train]\nepochs_ = 3"),
            vec!["train.epochs_", "did you mean `epochs`"],
        ),
        ("[experiment\nname = 1".to_string(), vec!["bad.toml:1"]),
        (
            VALID.replace("lr = 0.01", "lr = 0.01\nname = \"sgdd\""),
            vec![
                "bad.toml:16",
                "optim.name",
                "sgdd",
                "`sgd`, `adam`, `adamw`",
            ],
        ),
        // What `run` would use is checked by `validate` too.
        (
            format!(
                "{VALID}\n[swa]\nstart = 1\nquant = {{ format = \"fixed\", wl = 99, fl = 6 }}\n"
            ),
            vec!["bad.toml:23", "swa.quant", "99"],
        ),
        (
            format!("{VALID}\n[schedule]\nper = \"batch\"\n"),
            vec!["bad.toml:22", "schedule.per", "expected `epoch` or `step`"],
        ),
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

/// A value given with `--set` is blamed on that `--set`, not on a line of
/// the file (where it is not).
#[test]
fn set_values_are_blamed_on_their_set() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "ok.toml", VALID);
    for (set, needles) in [
        (
            "optim.lr=-0.1",
            vec![
                "invalid value -0.1 for `optim.lr`",
                "(from --set optim.lr=-0.1)",
            ],
        ),
        (
            "quant.weight={ format = \"fixed\", wl = 40, fl = 6 }",
            vec!["weight.wl", "40", "(from --set quant.weight="],
        ),
        (
            "optim.name=sgdd",
            vec!["sgdd", "(from --set optim.name=sgdd)"],
        ),
    ] {
        let output = run(&["validate", path.to_str().unwrap(), "--set", set]);
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{err}");
        let prefix = format!("error: {}: ", path.display());
        assert!(err.starts_with(&prefix), "no line number: {err}");
        for needle in needles {
            assert!(err.contains(needle), "{err:?} lacks {needle:?}");
        }
    }
}

/// Values `run` would misuse or crash on are refused by `validate`, at
/// their `--set`, with what is allowed (issue 11, item 1 and 4).
#[test]
fn values_run_cannot_use_are_refused_by_validate() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "ok.toml", VALID);
    for (set, allowed) in [
        ("data.subset=0", "a positive integer"),
        ("data.n_train=0", "a positive integer"),
        ("data.n_test=0", "a positive integer"),
        ("data.dim=0", "a positive integer"),
        ("data.classes=0", "a positive integer"),
        ("data.noise=-1", "a number >= 0"),
        ("schedule.gamma=-1", "a positive number"),
        ("optim.eps=-1", "a number >= 0"),
        ("optim.beta1=1", "a number in [0, 1)"),
        ("optim.beta2=-0.5", "a number in [0, 1)"),
    ] {
        let output = run(&["validate", path.to_str().unwrap(), "--set", set]);
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{set}: {err}");
        let key = set.split('=').next().unwrap_or_default();
        assert!(err.contains(&format!("for `{key}`")), "{set}: {err}");
        assert!(err.contains(allowed), "{set}: {err}");
        assert!(err.contains(&format!("(from --set {set})")), "{set}: {err}");
    }
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

/// A run whose loss becomes NaN stops with an error naming the epoch
/// (exit 1), keeps the metrics so far and writes no result (issue 11,
/// item 3).
fn metrics_without_time(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("time");
            v
        })
        .collect()
}

/// Stops a run after a number of optimizer steps.
struct StopAfter(u64);

impl Observer for StopAfter {
    fn step(&mut self, report: &StepReport) -> Control {
        if report.steps >= self.0 {
            Control::Stop
        } else {
            Control::Continue
        }
    }
}

#[test]
fn an_interrupted_run_resumes_to_exactly_the_uninterrupted_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let file = exp("linreg_swalp.toml");
    let set = ["--set", "train.epochs=6", "--set", "optim.momentum=0.9"];
    let whole = dir.path().join("whole");
    let expected = run_experiment(&file, &whole, &set);

    // Stop mid-epoch after averaging has started (epoch 4 of 128 steps
    // each), through the library with an observer that stops the run as
    // Ctrl-C does, then resume with the command line.
    let split = dir.path().join("split");
    let overrides: Vec<String> = set.chunks(2).map(|pair| pair[1].to_string()).collect();
    let experiment = Experiment::load(&file, &overrides).unwrap();
    let options = RunOptions::new(split.clone());
    let mut observers = swalp_cli::experiment::file_observers(&experiment);
    observers.push(Box::new(StopAfter(550)));
    let err = swalp_cli::experiment::run_with(&experiment, &options, observers).unwrap_err();
    assert!(matches!(err, ExperimentError::Interrupted { .. }), "{err}");
    assert!(err.to_string().contains("--resume"), "{err}");
    assert!(!split.join("result.json").exists());
    let checkpoints: Vec<_> = std::fs::read_dir(split.join("checkpoints"))
        .unwrap()
        .collect();
    assert_eq!(
        checkpoints.len(),
        2,
        "the newest checkpoint and the one before are kept"
    );

    let mut args = vec![
        "run",
        file.to_str().unwrap(),
        "--resume",
        split.to_str().unwrap(),
    ];
    args.extend(set);
    let output = run(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    let resumed: Value =
        serde_json::from_str(&std::fs::read_to_string(split.join("result.json")).unwrap()).unwrap();
    assert_eq!(resumed, expected);
    assert_eq!(metrics_without_time(&split), metrics_without_time(&whole));
}

#[test]
fn resuming_refuses_a_different_experiment() {
    let dir = tempfile::tempdir().unwrap();
    let file = exp("linreg_swalp.toml");
    let out = dir.path().join("r");
    run_experiment(&file, &out, &["--set", "train.epochs=5"]);
    let output = run(&[
        "run",
        file.to_str().unwrap(),
        "--resume",
        out.to_str().unwrap(),
        "--set",
        "optim.lr=0.5",
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("[optim]"), "{}", stderr(&output));
    // Extending the number of epochs is allowed and continues the run.
    let output = run(&[
        "run",
        file.to_str().unwrap(),
        "--resume",
        out.to_str().unwrap(),
        "--set",
        "train.epochs=6",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(metrics_without_time(&out).len(), 6);
    let missing = dir.path().join("nothing");
    std::fs::create_dir(&missing).unwrap();
    let output = run(&[
        "run",
        file.to_str().unwrap(),
        "--resume",
        missing.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn ctrl_c_writes_a_checkpoint_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("c");
    let child = bin()
        .args([
            "run",
            exp("linreg_swalp.toml").to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--set",
            "train.epochs=100000",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until training runs (an epoch line exists), then press Ctrl-C.
    let started = std::time::Instant::now();
    while !out.join("metrics.jsonl").exists() {
        assert!(started.elapsed().as_secs() < 60, "training did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130), "{}", stderr(&output));
    let mut checkpoints: Vec<_> = std::fs::read_dir(out.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    checkpoints.sort();
    // The interrupt's checkpoint, and the last epoch's before it.
    assert!((1..=2).contains(&checkpoints.len()), "{checkpoints:?}");
    assert!(
        checkpoints.iter().all(|c| c.starts_with("step-")),
        "{checkpoints:?}"
    );
}

#[test]
fn seeds_are_aggregated_into_the_papers_table() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(&[
        "run",
        exp("linreg_swalp.toml").to_str().unwrap(),
        "--seeds",
        "1,2,3",
        "--set",
        "train.epochs=7",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("summary.json")).unwrap())
            .unwrap();
    let errors: Vec<f64> = [1, 2, 3]
        .iter()
        .map(|s| {
            let r: Value = serde_json::from_str(
                &std::fs::read_to_string(dir.path().join(format!("seed-{s}/result.json"))).unwrap(),
            )
            .unwrap();
            // The paper's SWA column: the average after epochs − 1.
            r["paper"]["swa"]["test_error"].as_f64().unwrap()
        })
        .collect();
    let mean = errors.iter().sum::<f64>() / 3.0;
    let std = (errors.iter().map(|e| (e - mean).powi(2)).sum::<f64>() / 2.0).sqrt();
    assert!((summary["swa"]["test_error_mean"].as_f64().unwrap() - mean).abs() < 1e-12);
    assert!((summary["swa"]["test_error_std"].as_f64().unwrap() - std).abs() < 1e-12);
    assert_eq!(summary["swa"]["runs"], 3);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains(&format!("{mean:.2}±{std:.2}")), "{stdout}");
}

#[test]
fn tensorboard_events_hold_the_epoch_metrics() {
    let dir = tempfile::tempdir().unwrap();
    run_experiment(
        &exp("linreg_swalp.toml"),
        dir.path(),
        &["--set", "train.epochs=5"],
    );
    let events: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("events.out.tfevents.")
        })
        .collect();
    assert_eq!(events.len(), 1);
    let scalars = swalp_cli::experiment::tensorboard::read_scalars(&events[0]).unwrap();
    let metrics = metrics_without_time(dir.path());
    for (epoch, line) in metrics.iter().enumerate() {
        let find = |tag: &str| {
            scalars
                .iter()
                .find(|(s, t, _)| *s == epoch as i64 && t == tag)
                .map(|(_, _, v)| *v)
        };
        assert_eq!(
            find("test/error"),
            Some(line["test_error"].as_f64().unwrap() as f32)
        );
        assert_eq!(find("lr"), Some(line["lr"].as_f64().unwrap() as f32));
    }
    // Averaging starts at epoch 4 (swa.start = 4, every step).
    assert!(scalars
        .iter()
        .any(|(s, t, _)| *s == 4 && t == "swa/test_error"));
}

/// `(key, example)` rows of the README's TOML reference table.
fn readme_reference() -> Vec<(String, String)> {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let section = readme
        .split("### TOML reference")
        .nth(1)
        .expect("README has a TOML reference");
    section
        .lines()
        .skip_while(|l| !l.starts_with("| `"))
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (
                cells[1].trim_matches('`').to_string(),
                cells[2].trim_matches('`').to_string(),
            )
        })
        .collect()
}

/// A TOML document setting `rows` on top of a minimal valid experiment.
fn document(rows: &[(String, String)]) -> String {
    let mut doc: toml::Table = toml::from_str(VALID).unwrap();
    for (key, example) in rows {
        let (section, name) = key.split_once('.').unwrap();
        let value: toml::Value =
            toml::from_str::<toml::Table>(&format!("v = {example}")).unwrap()["v"].clone();
        doc.entry(section.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .unwrap()
            .insert(name.to_string(), value);
    }
    toml::to_string(&doc).unwrap()
}

#[test]
fn the_readme_toml_reference_matches_the_schema() {
    let rows = readme_reference();
    assert!(rows.len() > 40, "only {} rows found", rows.len());
    let dir = tempfile::tempdir().unwrap();
    // Every documented key exists and its example is valid.
    let default = rows
        .iter()
        .find(|(k, _)| k == "quant.default")
        .cloned()
        .unwrap();
    for row in &rows {
        // Points other than the default refine it.
        let mut set = vec![row.clone()];
        if row.0.starts_with("quant.") {
            set.push(default.clone());
        }
        if row.0 == "swa.start_step" {
            set.extend(rows.iter().filter(|(k, _)| k == "swa.every_steps").cloned());
        }
        // The schema and the values (`validate` would also want the
        // files the examples name, pretrained.safetensors and the like).
        let text = document(&set);
        if let Err(e) = Experiment::parse(&text, Path::new("one.toml"), &[]) {
            panic!("README key {}: {e}", row.0);
        }
    }
    // Every key of the schema is documented: show a document with all the
    // optional keys set (start_step is the alternative to start).
    let all: Vec<_> = rows
        .iter()
        .filter(|(k, _)| k != "swa.start_step")
        .cloned()
        .collect();
    let path = write(dir.path(), "all.toml", &document(&all));
    let output = run(&["show", path.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let shown: toml::Table = toml::from_str(&String::from_utf8_lossy(&output.stdout)).unwrap();
    let documented: Vec<&str> = rows.iter().map(|(k, _)| k.as_str()).collect();
    for (section, table) in &shown {
        for key in table.as_table().unwrap().keys() {
            let dotted = format!("{section}.{key}");
            assert!(
                documented.contains(&dotted.as_str()),
                "{dotted} is not in the README's TOML reference"
            );
        }
    }
}

/// `[quant.matmul]` mistakes are usage errors naming the key and what is
/// allowed (issue 15, item 5).
#[test]
fn matmul_sections_that_make_no_sense_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "ok.toml", VALID);
    for (set, needles) in [
        (
            r#"quant.matmul={ accumulator = { format = "bfp", wl = 8 } }"#,
            vec!["matmul.accumulator", "per-element format"],
        ),
        (
            r#"quant.matmul={ accumulator = { format = "fp16" }, product = { format = "mx", elem = "fp8_e4m3" } }"#,
            vec!["matmul.product", "per-element format"],
        ),
        (
            r#"quant.matmul={ accumulator = { format = "fp16" }, chunk = 0 }"#,
            vec!["matmul.chunk", "a positive number of products"],
        ),
        (
            r#"quant.matmul={ accumulator = { format = "fp16" }, chunks = 64 }"#,
            vec!["chunks", "did you mean `chunk`"],
        ),
        (
            r#"quant.matmul={ chunk = 64 }"#,
            vec!["matmul.accumulator", "per-element format spec"],
        ),
        (
            r#"quant.matmul={ accumulator = { format = "fp16" }, backward = { chunk = -1 } }"#,
            vec!["matmul.backward.chunk"],
        ),
        (
            r#"quant.matmul={ accumulator = { format = "fp16", rht = 16 } }"#,
            vec!["matmul.accumulator", "rht"],
        ),
        (
            r#"quant.matmul={ accumulator = { format = "fp16" }, forward = 3 }"#,
            vec!["matmul.forward", "\"none\""],
        ),
    ] {
        let output = run(&["validate", path.to_str().unwrap(), "--set", set]);
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{set}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{set}: {err}");
        for needle in needles {
            assert!(err.contains(needle), "{set}: {err:?} lacks {needle:?}");
        }
    }
    // A chunk longer than any K is fine.
    let set = r#"quant.matmul={ accumulator = { format = "fp16" }, chunk = 100000 }"#;
    let output = run(&["validate", path.to_str().unwrap(), "--set", set]);
    assert!(output.status.success(), "{}", stderr(&output));
}

/// A run with `[quant.matmul]` computes every linear product through the
/// arithmetic (its numbers differ from libtorch's products), and the same
/// seed gives the same numbers.
#[test]
fn a_run_with_simulated_accumulation_is_reproducible_and_differs_from_libtorch() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "ok.toml", VALID);
    let matmul = r#"quant.matmul={ product = { format = "fp8_e5m2", rounding = "stochastic" }, accumulator = { format = "fp16" }, chunk = 2 }"#;
    let quiet = [
        "--set",
        "log.progress=false",
        "--set",
        "log.tensorboard=false",
    ];
    let mut args = vec!["--set", matmul];
    args.extend(quiet);
    let loss = |r: &Value| r["final"]["sgd"]["test_loss"].as_f64().unwrap();
    let a = run_experiment(&path, &dir.path().join("a"), &args);
    let b = run_experiment(&path, &dir.path().join("b"), &args);
    let exact = run_experiment(&path, &dir.path().join("c"), &quiet);
    assert_eq!(loss(&a), loss(&b));
    assert_ne!(loss(&a), loss(&exact));
    assert!(
        (loss(&a) / loss(&exact) - 1.0).abs() < 0.5,
        "{} vs {}",
        loss(&a),
        loss(&exact)
    );
}
