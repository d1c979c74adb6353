//! Generated experiments: every key set to boundary and hostile values,
//! alone and in random combinations. Whatever the values, an experiment
//! either fails `parse` or `check` with a one-line usage error, or runs (to
//! the end, or stopped by the divergence policy): no panic, and nothing
//! that `check` passed fails later for a reason in the configuration.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::process::Command;

use swalp_cli::experiment::{self, Experiment, ExperimentError, RunOptions};

/// Small experiments of each kind the project runs.
const BASES: [(&str, &str); 3] = [
    (
        "linreg",
        r#"
[experiment]
name = "linreg"
device = "cpu"
[data]
name = "synthetic-linreg"
n_train = 48
n_test = 16
dim = 4
[model]
name = "linreg"
[quant]
default = { format = "fixed", wl = 8, fl = 6, rounding = "stochastic" }
[optim]
lr = 0.02
[swa]
start = 1
every_steps = 1
[train]
epochs = 2
batch_size = 16
[log]
tensorboard = false
"#,
    ),
    (
        "logreg",
        r#"
[experiment]
name = "logreg"
device = "cpu"
[data]
name = "synthetic-logreg"
n_train = 48
n_test = 16
dim = 4
classes = 3
[model]
name = "logreg"
[quant]
default = { format = "bfp", wl = 8 }
[optim]
name = "adam"
lr = 0.01
weight_decay = 0.01
[schedule]
name = "swalp"
[swa]
start = 1
lr = 0.005
[train]
epochs = 2
batch_size = 16
[log]
tensorboard = false
"#,
    ),
    (
        "cnn",
        r#"
[experiment]
name = "cnn"
device = "cpu"
[data]
name = "synthetic-mnist"
n_train = 12
n_test = 4
classes = 10
[model]
name = "cnn"
[quant]
weight = { format = "bfp", wl = 8 }
activation = { format = "bfp", wl = 8, block = { dim = 0 } }
[optim]
lr = 0.05
momentum = 0.9
[schedule]
name = "step"
milestones = [1]
[swa]
start = 1
[train]
epochs = 2
batch_size = 8
[log]
tensorboard = false
"#,
    ),
];

/// Keys and the values tried for each: boundaries, zero, negative,
/// non-finite, huge, wrong type, other names.
const VALUES: &[(&str, &[&str])] = &[
    ("experiment.seed", &["0", "-1", "9223372036854775807"]),
    ("experiment.device", &["\"cuda\"", "\"tpu\""]),
    (
        "data.name",
        &["\"synthetic-cifar\"", "\"mnist\"", "\"nope\""],
    ),
    ("data.n_train", &["0", "1", "2", "17", "-3"]),
    ("data.n_test", &["0", "1"]),
    ("data.dim", &["0", "1", "3"]),
    ("data.classes", &["0", "1", "2", "200"]),
    ("data.noise", &["-1.0", "0.0", "nan", "inf", "1e300"]),
    ("data.subset", &["0", "1", "5", "100000"]),
    ("data.path", &["\"/nonexistent\""]),
    (
        "model.name",
        &[
            "\"linreg\"",
            "\"logreg\"",
            "\"mlp\"",
            "\"cnn\"",
            "\"vgg16\"",
            "\"preresnet20\"",
            "\"x\"",
        ],
    ),
    ("model.dropout", &["-0.1", "0.0", "0.99", "1.0"]),
    ("model.init", &["\"/nonexistent.safetensors\""]),
    (
        "optim.name",
        &["\"sgd\"", "\"adam\"", "\"adamw\"", "\"lbfgs\""],
    ),
    ("optim.lr", &["0.0", "-1.0", "1e-300", "1e30", "nan", "inf"]),
    ("optim.momentum", &["-0.1", "0.0", "0.999", "1.0", "nan"]),
    ("optim.dampening", &["-1.0", "1.0", "2.0", "nan"]),
    ("optim.nesterov", &["true"]),
    ("optim.weight_decay", &["-1.0", "0.0", "1e10", "nan"]),
    ("optim.beta1", &["0.0", "1.0", "-0.1"]),
    ("optim.beta2", &["0.0", "1.0"]),
    ("optim.eps", &["-1.0", "0.0", "1e30"]),
    ("optim.grad_scale", &["0.0", "-1.0", "1e-30", "1e30"]),
    (
        "schedule.name",
        &[
            "\"constant\"",
            "\"step\"",
            "\"cosine\"",
            "\"swalp\"",
            "\"x\"",
        ],
    ),
    ("schedule.per", &["\"step\"", "\"batch\""]),
    ("schedule.gamma", &["0.0", "-1.0", "1.0", "1e30"]),
    (
        "schedule.milestones",
        &["[]", "[-1.0]", "[1e9]", "[3, 1]", "[nan]"],
    ),
    ("schedule.min_lr", &["-1.0", "1e9", "nan"]),
    ("swa.start", &["0", "1", "2", "99"]),
    ("swa.start_step", &["0", "1"]),
    ("swa.every_steps", &["0", "1", "1000"]),
    ("swa.lr", &["0.0", "-1.0", "nan"]),
    ("swa.eval_quantized", &["true"]),
    (
        "swa.quant",
        &[
            "{ format = \"fixed\", wl = 99, fl = 2 }",
            "{ format = \"fixed\", wl = 2, fl = 0 }",
            "{ format = \"bfp\", wl = 2 }",
            "{ format = \"float\", exp = 1, man = 0 }",
        ],
    ),
    ("train.epochs", &["0", "1", "3"]),
    ("train.batch_size", &["0", "1", "5", "1000000"]),
    ("train.shuffle", &["false"]),
    ("train.on_nonfinite", &["\"continue\"", "\"ignore\""]),
    ("log.checkpoint_every", &["0", "1", "1000000000000"]),
    (
        "quant.default",
        &[
            "{ format = \"fixed\", wl = 2, fl = 0 }",
            "{ format = \"float\", exp = 1, man = 0 }",
            "{ format = \"bfp\", wl = 2, block = { dim = 3 } }",
            "{ format = \"mx\", elem = \"fp4_e2m1\" }",
            "{ format = \"mx\", elem = \"fp8_e4m3\", dim = 5 }",
            "\"none\"",
        ],
    ),
    (
        "quant.weight",
        &[
            "{ format = \"bfp\", wl = 8, block = { dim = 1 } }",
            "{ format = \"bfp\", wl = 8, block = { size = 3, dim = 1 } }",
            "{ format = \"fixed\", wl = 24, fl = 149 }",
        ],
    ),
    (
        "quant.gradient",
        &["{ format = \"float\", exp = 8, man = 23, rounding = \"stochastic\" }"],
    ),
    (
        "quant.momentum",
        &["{ format = \"bfp\", wl = 2, block = { dim = 0 } }"],
    ),
];

/// A small deterministic generator for the combinations (no crate needed).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

/// What happened to one generated experiment.
#[derive(Debug, PartialEq)]
enum Outcome {
    Refused,
    Ran,
    Diverged,
}

/// Parses, checks and (when checked) runs `base` with `overrides`,
/// asserting the contract; panics name the case.
fn exercise(base: &str, overrides: &[String], dir: &Path) -> Outcome {
    let case = format!("{overrides:?}");
    let attempt = catch_unwind(AssertUnwindSafe(|| {
        let one_line_usage = |e: &ExperimentError, stage: &str| {
            let text = e.to_string();
            assert!(
                e.is_usage(),
                "{case}: {stage} error is not a usage error: {text}"
            );
            assert!(
                !text.contains('\n'),
                "{case}: {stage} error spans lines: {text}"
            );
            assert!(!text.is_empty(), "{case}: empty {stage} error");
        };
        let exp = match Experiment::parse(base, Path::new("gen.toml"), overrides) {
            Ok(exp) => exp,
            Err(e) => {
                one_line_usage(&e, "parse");
                return Outcome::Refused;
            }
        };
        if let Err(e) = experiment::check(&exp) {
            one_line_usage(&e, "check");
            return Outcome::Refused;
        }
        match experiment::run(&exp, &RunOptions::new(dir)) {
            Ok(result) => {
                assert!(
                    result["status"] == "completed" || result["status"] == "diverged",
                    "{case}: {result}"
                );
                Outcome::Ran
            }
            Err(ExperimentError::Diverged { .. }) => Outcome::Diverged,
            Err(e) => panic!("{case}: check passed but the run failed: {e}"),
        }
    }));
    match attempt {
        Ok(outcome) => outcome,
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            if message.contains(&case) {
                std::panic::resume_unwind(panic);
            }
            panic!("{case}: panicked: {}", message.lines().next().unwrap_or(""));
        }
    }
}

fn generated_cases(seed: u64, combinations: usize) -> Vec<Vec<String>> {
    let mut cases: Vec<Vec<String>> = VALUES
        .iter()
        .flat_map(|(key, values)| values.iter().map(move |v| vec![format!("{key}={v}")]))
        .collect();
    let mut rng = Lcg(seed);
    for _ in 0..combinations {
        let case = (0..3)
            .map(|_| {
                let (key, values) = VALUES[rng.below(VALUES.len())];
                format!("{key}={}", values[rng.below(values.len())])
            })
            .collect();
        cases.push(case);
    }
    cases
}

fn exercise_base(index: usize, combinations: usize) {
    let (name, base) = BASES[index];
    let tmp = tempfile::tempdir().unwrap();
    let mut counts = [0usize; 3];
    for (i, case) in generated_cases(index as u64 + 1, combinations)
        .iter()
        .enumerate()
    {
        let outcome = exercise(base, case, &tmp.path().join(i.to_string()));
        counts[outcome as usize] += 1;
    }
    println!(
        "{name}: {} refused, {} ran, {} diverged",
        counts[0], counts[1], counts[2]
    );
    // The generator must reach both sides of the contract.
    assert!(counts[0] > 20 && counts[1] > 20, "{name}: {counts:?}");
}

#[test]
fn generated_linear_regression_experiments_refuse_or_run() {
    exercise_base(0, 120);
}

#[test]
fn generated_logistic_regression_experiments_refuse_or_run() {
    exercise_base(1, 120);
}

#[test]
fn generated_cnn_experiments_refuse_or_run() {
    exercise_base(2, 60);
}

/// The command line on a sample of the generated experiments: `validate`
/// exits 0 exactly when the library's check passes, and otherwise 2 with
/// one line on stderr, never a panic or a backtrace.
#[test]
fn validate_exits_0_or_2_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, base) = BASES[1];
    let file = tmp.path().join("logreg.toml");
    std::fs::write(&file, base).unwrap();
    let cases = generated_cases(7, 12);
    for case in cases.iter().step_by(4) {
        let mut args = vec!["validate".to_string(), file.to_string_lossy().into_owned()];
        for item in case {
            args.extend(["--set".to_string(), item.clone()]);
        }
        let output = Command::new(env!("CARGO_BIN_EXE_swalp-cli"))
            .args(&args)
            .env("RUST_BACKTRACE", "1")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&output.stderr);
        let passes = Experiment::parse(base, &file, case)
            .ok()
            .is_some_and(|exp| experiment::check(&exp).is_ok());
        match output.status.code() {
            Some(0) => assert!(passes, "{case:?}: validate passed, check failed"),
            Some(2) => {
                assert!(!passes, "{case:?}: validate failed, check passed: {err}");
                assert_eq!(err.trim_end().lines().count(), 1, "{case:?}: {err}");
                assert!(err.starts_with("error: "), "{case:?}: {err}");
                assert!(!err.contains("panicked"), "{case:?}: {err}");
            }
            other => panic!("{case:?}: exit {other:?}: {err}"),
        }
    }
}
