//! A few training steps of every model on CPU, with the seed's 8-bit block
//! floating point at every quantization point.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

const QUANT: &str = r#"
[quant]
default = { format = "bfp", wl = 8, small_block = "fc", rounding = "stochastic" }
activation = { small_block = "none" }
error = { small_block = "none" }
"#;

/// Every product of linear and convolution layers in fp16, in chunks of
/// 64 summed in f32.
const MATMUL: &str = r#"
[quant.matmul]
accumulator = { format = "fp16" }
chunk = 64
"#;

fn experiment(model: &str, data: &str, classes: usize) -> String {
    experiment_with(model, data, classes, QUANT)
}

fn experiment_with(model: &str, data: &str, classes: usize, quant: &str) -> String {
    format!(
        r#"
[experiment]
name = "{model}"
seed = 1
device = "cpu"

[data]
name = "{data}"
n_train = 4
n_test = 2
classes = {classes}

[model]
name = "{model}"

[optim]
lr = 0.05
momentum = 0.9
weight_decay = 5e-4

[swa]
start = 1

[train]
epochs = 1
batch_size = 2

[log]
table = false
progress = false
{quant}"#
    )
}

fn run(dir: &Path, model: &str, data: &str) -> Value {
    run_with(dir, model, data, QUANT)
}

fn run_with(dir: &Path, model: &str, data: &str, quant: &str) -> Value {
    let file = dir.join(format!("{model}.toml"));
    std::fs::write(&file, experiment_with(model, data, 10, quant)).unwrap();
    let out = dir.join(format!("{model}-{data}"));
    let output = Command::new(env!("CARGO_BIN_EXE_swalp-cli"))
        .args([
            "run",
            file.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{model}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(out.join("result.json")).unwrap()).unwrap()
}

fn check(result: &Value, model: &str) {
    for which in ["sgd", "swa"] {
        let loss = result["final"][which]["test_loss"].as_f64().unwrap();
        assert!(
            loss.is_finite() && loss > 0.0,
            "{model} {which} loss {loss}"
        );
        let err = result["final"][which]["test_error"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&err), "{model} {which} error {err}");
    }
    assert_eq!(result["steps"], 2, "{model}");
}

#[test]
fn every_image_model_trains_a_few_steps_in_low_precision() {
    let dir = tempfile::tempdir().unwrap();
    for model in [
        "vgg16",
        "vgg16bn",
        "vgg19",
        "vgg19bn",
        "preresnet20",
        "preresnet164",
        "cnn",
        "mlp",
    ] {
        check(&run(dir.path(), model, "synthetic-cifar"), model);
    }
    for model in ["cnn", "mlp", "logreg"] {
        check(&run(dir.path(), model, "synthetic-mnist"), model);
    }
}

/// `[quant.matmul]` reaches the linear and convolution layers of every
/// model family (issue 15, item 1).
#[test]
fn every_model_family_trains_with_simulated_accumulation() {
    let dir = tempfile::tempdir().unwrap();
    for model in ["vgg16", "preresnet20", "cnn", "mlp"] {
        check(
            &run_with(dir.path(), model, "synthetic-cifar", MATMUL),
            model,
        );
    }
    check(
        &run_with(dir.path(), "logreg", "synthetic-mnist", MATMUL),
        "logreg",
    );
}

#[test]
fn image_models_refuse_data_they_cannot_take() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, experiment("vgg16", "synthetic-mnist", 10)).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_swalp-cli"))
        .args([
            "run",
            file.to_str().unwrap(),
            "--out",
            dir.path().join("o").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("32×32"), "{err}");
}

/// Writes a tiny CIFAR-10 in the real binary format: `n` records per
/// training batch file and in the test file, pixels and labels arbitrary.
fn write_cifar10(dir: &Path, n: usize) {
    let record = |i: usize| {
        let mut r = vec![(i % 10) as u8];
        r.extend((0..3072).map(|p| ((p * 7 + i * 13) % 256) as u8));
        r
    };
    let file = |name: &str, offset: usize| {
        let bytes: Vec<u8> = (0..n).flat_map(|i| record(i + offset)).collect();
        std::fs::write(dir.join(name), bytes).unwrap();
    };
    for b in 1..=5 {
        file(&format!("data_batch_{b}.bin"), b * n);
    }
    file("test_batch.bin", 0);
}

#[test]
fn cifar10_files_train_end_to_end_with_augmentation() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("cifar10");
    std::fs::create_dir(&data).unwrap();
    write_cifar10(&data, 4);
    let text = experiment("cnn", "cifar10", 10).replace(
        "name = \"cifar10\"",
        &format!("name = \"cifar10\"\npath = {:?}", data.to_str().unwrap()),
    );
    let file = dir.path().join("c.toml");
    std::fs::write(&file, text).unwrap();
    let out = dir.path().join("out");
    let output = Command::new(env!("CARGO_BIN_EXE_swalp-cli"))
        .args([
            "run",
            file.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("result.json")).unwrap()).unwrap();
    // 20 training records in batches of 2: 10 steps in one epoch.
    assert_eq!(result["steps"], 10);

    // Without the files: one line naming the path and the download command.
    std::fs::remove_file(data.join("data_batch_3.bin")).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_swalp-cli"))
        .args([
            "run",
            file.to_str().unwrap(),
            "--out",
            dir.path().join("o2").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains("data_batch_3.bin") && err.contains("swalp-cli data download cifar10"),
        "{err}"
    );
}
