//! A run owns its directory and cannot be fooled: one run per directory,
//! no silent overwrite, checkpoints verified by their digests with a
//! fallback to the one before, resumes that must fit the run, divergence
//! that stops loudly, no debris, and `validate` failing whatever `run`
//! would fail for a reason in the configuration (issue 11's cases).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use sha2::{Digest, Sha256};
use swalp_cli::experiment::rundir::{Claim, RunDir};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_swalp-cli"))
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn linreg() -> String {
    repo()
        .join("exp/linreg_swalp.toml")
        .to_string_lossy()
        .into_owned()
}

/// linreg_swalp, short and quiet.
const SHORT: [&str; 8] = [
    "--set",
    "train.epochs=5",
    "--set",
    "swa.start=2",
    "--set",
    "log.progress=false",
    "--set",
    "log.table=false",
];

fn swalp(args: &[&str]) -> Output {
    bin().args(args).output().expect("run swalp-cli")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `run linreg_swalp SHORT extra...`.
fn run(extra: &[&str]) -> Output {
    let file = linreg();
    let mut args = vec!["run", file.as_str()];
    args.extend(SHORT);
    args.extend(extra);
    swalp(&args)
}

fn assert_usage(output: &Output, expected: &str) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(err.contains(expected), "expected {expected:?} in: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
}

fn result_without_time(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("result.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn checkpoints(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    found.sort();
    found
}

/// Rewrites a checkpoint's `sha256sums` for its current files, as someone
/// editing it by hand with care would.
fn redigest(checkpoint: &Path) {
    let mut names: Vec<String> = std::fs::read_dir(checkpoint)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "sha256sums")
        .collect();
    names.sort();
    let mut text = String::new();
    for name in names {
        let digest = Sha256::digest(std::fs::read(checkpoint.join(&name)).unwrap());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        writeln!(text, "{hex}  {name}").unwrap();
    }
    std::fs::write(checkpoint.join("sha256sums"), text).unwrap();
}

fn edit_state(checkpoint: &Path, edit: impl FnOnce(&mut Value)) {
    let path = checkpoint.join("state.json");
    let mut state: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut state);
    std::fs::write(&path, serde_json::to_string(&state).unwrap()).unwrap();
}

#[test]
fn a_second_run_cannot_use_a_directory_in_use() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let held = RunDir::claim(&out, Claim::Fresh).unwrap();
    let output = run(&["--out", out.to_str().unwrap()]);
    assert_usage(&output, "is in use by another run");
    let resumed = run(&["--resume", out.to_str().unwrap()]);
    assert_usage(&resumed, "is in use by another run");
    drop(held);
    assert!(run(&["--out", out.to_str().unwrap()]).status.success());
}

#[test]
fn a_finished_run_is_kept_unless_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let out_s = out.to_str().unwrap();
    assert!(run(&["--out", out_s]).status.success());
    let first = result_without_time(&out);
    let again = run(&["--out", out_s, "--set", "experiment.seed=7"]);
    assert_usage(&again, "already holds a run");
    assert_eq!(
        result_without_time(&out),
        first,
        "the finished run was touched"
    );

    // --overwrite replaces the run's files (stale event files included)
    // and keeps the user's own.
    std::fs::write(out.join("events.out.tfevents.1.stale"), "old").unwrap();
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    let replaced = run(&["--out", out_s, "--overwrite", "--set", "experiment.seed=7"]);
    assert!(replaced.status.success(), "{}", stderr(&replaced));
    assert_eq!(result_without_time(&out)["seed"], 7);
    assert!(!out.join("events.out.tfevents.1.stale").exists());
    assert_eq!(
        std::fs::read_to_string(out.join("notes.txt")).unwrap(),
        "mine"
    );

    let file = tmp.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    assert_usage(
        &run(&["--out", file.to_str().unwrap()]),
        "is a file, not a directory",
    );
}

#[test]
fn resume_falls_back_to_the_previous_valid_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let whole = tmp.path().join("whole");
    assert!(run(&["--out", whole.to_str().unwrap()]).status.success());
    let expected = result_without_time(&whole);

    // A 4-epoch run, extended to 5 after its newest checkpoint is damaged:
    // it continues from the one before (epoch 3) and still ends with the
    // uninterrupted numbers.
    let split = tmp.path().join("split");
    let split_s = split.to_str().unwrap();
    let four = run(&["--out", split_s, "--set", "train.epochs=4"]);
    assert!(four.status.success(), "{}", stderr(&four));
    let kept = checkpoints(&split);
    assert_eq!(kept.len(), 2, "{kept:?}");
    let mut damaged = std::fs::read(kept[1].join("model.safetensors")).unwrap();
    let last = damaged.len() - 1;
    damaged[last] ^= 1;
    std::fs::write(kept[1].join("model.safetensors"), damaged).unwrap();
    let resumed = run(&["--resume", split_s]);
    let err = stderr(&resumed);
    assert!(resumed.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "skipping checkpoint {}: model.safetensors does not match its digest",
            kept[1].display()
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("resuming from {}", kept[0].display())),
        "{err}"
    );
    assert_eq!(result_without_time(&split), expected);
}

#[test]
fn checkpoints_that_do_not_fit_the_run_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let out_s = out.to_str().unwrap();
    assert!(run(&["--out", out_s]).status.success());

    // Fewer epochs than done cannot be honoured.
    assert_usage(
        &run(&["--resume", out_s, "--set", "train.epochs=3"]),
        "the run has done 5 epochs but train.epochs = 3",
    );

    // A hand-edited position: caught by the digest, and by the position
    // check when the digest is rewritten too.
    let kept = checkpoints(&out);
    for c in &kept {
        edit_state(c, |s| s["epoch"] = 999.into());
    }
    assert_usage(
        &run(&["--resume", out_s]),
        "state.json does not match its digest in sha256sums",
    );
    for c in &kept {
        redigest(c);
    }
    assert_usage(
        &run(&["--resume", out_s]),
        "its position does not fit this run",
    );
}

#[test]
fn resume_refuses_another_experiment_and_accepts_new_log_settings() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let out_s = out.to_str().unwrap();
    assert!(run(&["--out", out_s, "--set", "train.epochs=4"])
        .status
        .success());
    assert_usage(
        &run(&["--resume", out_s, "--set", "optim.lr=0.5"]),
        "differs from the one the run started with in [optim]",
    );
    let extended = run(&["--resume", out_s, "--set", "log.tensorboard=false"]);
    assert!(extended.status.success(), "{}", stderr(&extended));
    assert_eq!(result_without_time(&out)["epochs"], 5);
}

#[test]
fn a_checkpoint_holding_nan_is_not_resumed() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let out_s = out.to_str().unwrap();
    assert!(run(&["--out", out_s, "--set", "train.epochs=4"])
        .status
        .success());
    let kept = checkpoints(&out);
    for c in &kept {
        let path = c.join("model.safetensors");
        let tensors = swalp_core::tch::Tensor::read_safetensors(&path).unwrap();
        let poisoned: Vec<(String, swalp_core::tch::Tensor)> = tensors
            .into_iter()
            .map(|(name, t)| (name, t.fill(f64::NAN)))
            .collect();
        swalp_core::tch::Tensor::write_safetensors(&poisoned, &path).unwrap();
        redigest(c);
    }
    assert_usage(&run(&["--resume", out_s]), "holds NaN or infinity");
}

#[test]
fn divergence_stops_the_run_with_where_and_what() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    // In f32 (the default's saturating fixed point would hold the weights
    // finite): the first steps overflow.
    let float = "quant.default={ format = \"float\", exp = 8, man = 23 }";
    let output = run(&[
        "--out",
        out.to_str().unwrap(),
        "--set",
        "optim.lr=1e30",
        "--set",
        float,
    ]);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(
        err.contains("training diverged: the training loss is inf at epoch 0, step"),
        "{err}"
    );
    assert!(err.contains("lower optim.lr"), "{err}");
    assert!(err.contains("no checkpoint was written before it"), "{err}");
    assert!(!out.join("result.json").exists());

    // Asked to train on, the run ends and says so in its result.
    let on = tmp.path().join("on");
    let output = run(&[
        "--out",
        on.to_str().unwrap(),
        "--set",
        "optim.lr=1e30",
        "--set",
        float,
        "--set",
        "train.on_nonfinite=\"continue\"",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let result = result_without_time(&on);
    assert_eq!(result["status"], "diverged");
    assert_eq!(result["diverged"]["quantity"], "training loss");
    assert_eq!(result["diverged"]["epoch"], 0);

    let fine = tmp.path().join("fine");
    assert!(run(&["--out", fine.to_str().unwrap()]).status.success());
    assert_eq!(result_without_time(&fine)["status"], "completed");
}

#[test]
fn debris_of_a_killed_run_is_removed_when_it_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let out_s = out.to_str().unwrap();
    assert!(run(&["--out", out_s, "--set", "train.epochs=4"])
        .status
        .success());
    let partial = out.join("checkpoints/.partial-99999");
    std::fs::create_dir_all(&partial).unwrap();
    std::fs::write(partial.join("model.safetensors"), "half").unwrap();
    let temp = out.join(".result.json.swalp-tmp-abc123");
    std::fs::write(&temp, "half").unwrap();
    let resumed = run(&["--resume", out_s]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert!(!partial.exists());
    assert!(!temp.exists());
}

/// MNIST-format files whose headers are fine but whose training labels
/// are out of range: found only when the data set is read.
fn write_bad_labels_set(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let images = |n: u32| {
        let mut bytes = Vec::new();
        for word in [0x0803u32, n, 8, 8] {
            bytes.extend(word.to_be_bytes());
        }
        bytes.extend(vec![7u8; (n * 64) as usize]);
        bytes
    };
    let labels = |n: u32, label: u8| {
        let mut bytes = Vec::new();
        for word in [0x0801u32, n] {
            bytes.extend(word.to_be_bytes());
        }
        bytes.extend(vec![label; n as usize]);
        bytes
    };
    std::fs::write(dir.join("train-images-idx3-ubyte"), images(4)).unwrap();
    std::fs::write(dir.join("train-labels-idx1-ubyte"), labels(4, 42)).unwrap();
    std::fs::write(dir.join("t10k-images-idx3-ubyte"), images(2)).unwrap();
    std::fs::write(dir.join("t10k-labels-idx1-ubyte"), labels(2, 1)).unwrap();
}

#[test]
fn a_run_failing_before_it_writes_leaves_no_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_bad_labels_set(&data);
    let out = tmp.path().join("new/run");
    let mnist = repo().join("exp/mnist_cnn_bfp8.toml");
    let output = swalp(&[
        "run",
        mnist.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--set",
        &format!("data.path={:?}", data.to_str().unwrap()),
    ]);
    assert_usage(&output, "label");
    assert!(!tmp.path().join("new").exists(), "empty --out left behind");
}

#[test]
fn the_same_seed_twice_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let output = run(&[
        "--out",
        tmp.path().join("s").to_str().unwrap(),
        "--seeds",
        "1,2,1",
    ]);
    assert_usage(&output, "--seeds lists seed 1 twice");
}

#[test]
fn validate_fails_what_run_would_fail() {
    let digits = repo().join("swalp-cli/tests/data/digits");
    let mnist = repo().join("exp/mnist_cnn_bfp8.toml");
    let data_path = format!("data.path={:?}", digits.to_str().unwrap());
    let lin = linreg();
    let cases: [(&str, Vec<&str>, &str); 4] = [
        (
            lin.as_str(),
            vec!["--set", "model.name=cnn"],
            "model.name = \"cnn\" needs images",
        ),
        (
            mnist.to_str().unwrap(),
            vec![
                "--set",
                data_path.as_str(),
                "--set",
                "quant.error={ format = \"bfp\", wl = 8, block = { dim = 3 } }",
            ],
            "the experiment fails on its first step: format \"bfp\"",
        ),
        (
            mnist.to_str().unwrap(),
            vec!["--set", "data.path=\"/nonexistent/mnist\""],
            "/nonexistent/mnist",
        ),
        (
            lin.as_str(),
            vec!["--set", "swa.quant={ format = \"fixed\", wl = 99, fl = 2 }"],
            "invalid value 99 for `wl`: expected an integer in 2..=24",
        ),
    ];
    for (file, extra, expected) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("run");
        let mut validate = vec!["validate", file];
        validate.extend(&extra);
        assert_usage(&swalp(&validate), expected);
        let mut run = vec!["run", file, "--out", out.to_str().unwrap()];
        run.extend(&extra);
        assert_usage(&swalp(&run), expected);
        assert!(!out.exists(), "{expected}: run wrote {}", out.display());
    }
}

/// A `.safetensors` file with the given header and `data` bytes of data.
fn safetensors_file(path: &Path, header: &str, data: usize) {
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header.as_bytes());
    bytes.extend(vec![0u8; data]);
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn damaged_tensor_files_are_described_in_words() {
    let tmp = tempfile::tempdir().unwrap();
    let short = tmp.path().join("short.safetensors");
    let header = r#"{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}"#;
    safetensors_file(&short, header, 8);
    let inconsistent = tmp.path().join("inconsistent.safetensors");
    let header = r#"{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,8]}}"#;
    safetensors_file(&inconsistent, header, 8);
    let missing = tmp.path().join("missing.safetensors");
    for (file, expected) in [
        (
            &short,
            "the header describes 16 bytes of tensor data but the file holds 8",
        ),
        (
            &inconsistent,
            "tensor `w`: shape [2, 2] of F32 needs 16 bytes but its data offsets span 8",
        ),
        (&missing, "such file"),
    ] {
        let init = format!("model.init={:?}", file.to_str().unwrap());
        let validate = swalp(&["validate", &linreg(), "--set", &init]);
        assert_usage(&validate, expected);
        let out = tmp.path().join("out.safetensors");
        let quantize = swalp(&[
            "quantize",
            "--spec",
            "{ format = \"fixed\", wl = 8, fl = 4 }",
            file.to_str().unwrap(),
            out.to_str().unwrap(),
        ]);
        assert_usage(&quantize, expected);
        for raw in [
            "TensorInvalidInfo",
            "MetadataIncompleteBuffer",
            "IoError(",
            "Os {",
        ] {
            assert!(!stderr(&validate).contains(raw), "{}", stderr(&validate));
            assert!(!stderr(&quantize).contains(raw), "{}", stderr(&quantize));
        }
    }
}
