//! Sweeps on this machine: a grid × seeds run by the local executor, killed
//! and rerun, its report checked against the runs' own results, and bad
//! sweeps refused before anything is written.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_swalp-cli"))
}

fn swalp(args: &[&str]) -> Output {
    bin().args(args).output().expect("run swalp-cli")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A small CNN on synthetic MNIST-shaped images: a few seconds per run.
const CNN: &str = r#"
[experiment]
name = "cnn_sweep"
device = "cpu"
[data]
name = "synthetic-mnist"
n_train = 256
n_test = 64
classes = 10
[model]
name = "cnn"
[quant]
default = { format = "bfp", wl = 8, rounding = "stochastic" }
[optim]
lr = 0.05
momentum = 0.9
[swa]
start = 2
[train]
epochs = 4
batch_size = 32
[log]
table = false
progress = false
tensorboard = false

[sweep]
seeds = [1, 2]
[sweep.grid]
quant = { fp = {}, bfp8 = { default = { format = "bfp", wl = 8, rounding = "stochastic" } } }
"#;

fn write_cnn(dir: &Path) -> PathBuf {
    let path = dir.join("cnn.toml");
    std::fs::write(&path, CNN).unwrap();
    path
}

fn results(dir: &Path) -> Vec<(String, Value)> {
    let plan: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("sweep.json")).unwrap()).unwrap();
    plan["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let run_dir = r["dir"].as_str().unwrap().to_string();
            let text = std::fs::read_to_string(dir.join(&run_dir).join("result.json")).unwrap();
            (run_dir, serde_json::from_str(&text).unwrap())
        })
        .collect()
}

fn modified(path: &Path) -> SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

#[test]
fn a_killed_local_sweep_resumes_to_the_uninterrupted_results() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write_cnn(tmp.path());
    let file_s = file.to_str().unwrap();

    let whole = tmp.path().join("whole");
    let output = swalp(&[
        "sweep",
        file_s,
        "--out",
        whole.to_str().unwrap(),
        "--jobs",
        "2",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let expected = results(&whole);
    assert_eq!(expected.len(), 4);
    for name in ["report.md", "report.csv", "report.json", "curves.svg"] {
        assert!(whole.join(name).is_file(), "{name} missing");
    }
    assert!(whole.join("fp/seed-1/log.txt").is_file());

    // Killed (SIGKILL) once the first run has finished: its tasks stop with
    // a checkpoint; the same command then finishes the rest.
    let split = tmp.path().join("split");
    let mut child = bin()
        .args([
            "sweep",
            file_s,
            "--out",
            split.to_str().unwrap(),
            "--jobs",
            "1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let first = split.join("fp/seed-1/result.json");
    let started = Instant::now();
    while !first.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no run finished"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(700));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !split.join("bfp8/seed-2/result.json").exists(),
        "the sweep finished before it was killed"
    );
    let finished_before = modified(&first);
    let output = swalp(&[
        "sweep",
        file_s,
        "--out",
        split.to_str().unwrap(),
        "--jobs",
        "2",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        modified(&first),
        finished_before,
        "a finished run was redone"
    );
    assert_eq!(results(&split), expected);
}

#[test]
fn the_report_is_the_mean_and_std_of_the_runs_results() {
    let tmp = tempfile::tempdir().unwrap();
    let linreg = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../exp/linreg_swalp.toml");
    let dir = tmp.path().join("sweep");
    let output = swalp(&[
        "sweep",
        linreg.to_str().unwrap(),
        "--grid",
        "optim.lr=0.02,0.01",
        "--seeds",
        "1,2,3",
        "--set",
        "train.epochs=4",
        "--set",
        "swa.start=2",
        "--set",
        "log.table=false",
        "--out",
        dir.to_str().unwrap(),
        "--jobs",
        "2",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for (row, lr) in rows.iter().zip(["0.02", "0.01"]) {
        assert_eq!(row["point"], format!("lr-{lr}"));
        for which in ["sgd", "swa"] {
            let errors: Vec<f64> = [1, 2, 3]
                .iter()
                .map(|seed| {
                    let path = dir.join(format!("lr-{lr}/seed-{seed}/result.json"));
                    let r: Value =
                        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
                    r["paper"][which]["test_error"].as_f64().unwrap()
                })
                .collect();
            let mean = errors.iter().sum::<f64>() / 3.0;
            let std = (errors.iter().map(|e| (e - mean).powi(2)).sum::<f64>() / 2.0).sqrt();
            let stat = &row[format!("{which}_error")];
            assert!((stat["mean"].as_f64().unwrap() - mean).abs() <= 1e-12 * mean.abs());
            assert!((stat["std"].as_f64().unwrap() - std).abs() <= 1e-9 * std.max(1e-12));
            assert_eq!(stat["n"], 3);
        }
    }
    let table = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(table.contains("| lr-0.02 |"), "{table}");
    let status = swalp(&["sweep", "status", dir.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&status.stdout).starts_with("6 runs: 6 done"));
    let csv = swalp(&["report", dir.to_str().unwrap(), "--format", "csv"]);
    assert!(String::from_utf8_lossy(&csv.stdout).starts_with("run,sgd_error_mean"));
    let svg = std::fs::read_to_string(dir.join("curves.svg")).unwrap();
    assert!(svg.starts_with("<svg"), "{svg}");
    for label in ["lr-0.02 SGD", "lr-0.02 SWA", "lr-0.01 SGD", "lr-0.01 SWA"] {
        assert!(svg.contains(label), "{label} not in the plot's legend");
    }

    // A larger grid adds only its new runs; a changed run is another sweep.
    let first = dir.join("lr-0.02/seed-1/result.json");
    let kept = modified(&first);
    let mut extended = args_with_grid(&linreg, &dir, "optim.lr=0.02,0.01,0.005");
    let output = swalp(&extended.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(modified(&first), kept, "a finished run was redone");
    assert!(dir.join("lr-0.005/seed-3/result.json").is_file());
    extended.extend(["--set".into(), "optim.momentum=0.5".into()]);
    let output = swalp(&extended.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("holds another sweep"),
        "{}",
        stderr(&output)
    );
    extended.push("--force".into());
    let output = swalp(&extended.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(output.status.success(), "{}", stderr(&output));
    assert_ne!(modified(&first), kept, "--force reran a changed run");
}

fn args_with_grid(linreg: &Path, dir: &Path, grid: &str) -> Vec<String> {
    [
        "sweep",
        linreg.to_str().unwrap(),
        "--grid",
        grid,
        "--seeds",
        "1,2,3",
        "--set",
        "train.epochs=4",
        "--set",
        "swa.start=2",
        "--set",
        "log.table=false",
        "--out",
        dir.to_str().unwrap(),
        "--jobs",
        "2",
    ]
    .map(String::from)
    .to_vec()
}

#[test]
fn a_failed_run_is_reported_and_rerun() {
    let tmp = tempfile::tempdir().unwrap();
    let linreg = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../exp/linreg_swalp.toml");
    let dir = tmp.path().join("sweep");
    // lr = 1e30 in f32 diverges: that run fails, the other finishes.
    let args = [
        "sweep",
        linreg.to_str().unwrap(),
        "--grid",
        "optim.lr=0.02,1e30",
        "--set",
        "quant.default={ format = \"float\", exp = 8, man = 23 }",
        "--set",
        "train.epochs=2",
        "--set",
        "swa.start=1",
        "--out",
        dir.to_str().unwrap(),
    ];
    let output = swalp(&args);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("1 run(s) of the sweep failed"), "{err}");
    let status =
        String::from_utf8_lossy(&swalp(&["sweep", "status", dir.to_str().unwrap()]).stdout)
            .into_owned();
    assert!(status.contains("1 done"), "{status}");
    let failed = status
        .lines()
        .find(|l| l.starts_with("failed lr-1e30/seed-0: error:"));
    assert!(
        failed.is_some_and(|l| l.contains("training diverged")),
        "{status}"
    );
    let table = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(
        table.contains("| lr-1e30 | — | — | — | — | 0/1 | **1** | 0 |"),
        "{table}"
    );
    // Run again: the finished run is kept, the failed one tried again.
    let kept = modified(&dir.join("lr-0.02/seed-0/result.json"));
    assert_eq!(swalp(&args).status.code(), Some(1));
    assert_eq!(modified(&dir.join("lr-0.02/seed-0/result.json")), kept);
    let log = std::fs::read_to_string(dir.join("lr-1e30/seed-0/log.txt")).unwrap();
    assert_eq!(log.matches("training diverged").count(), 2, "{log}");
}

#[test]
fn bad_sweeps_are_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write_cnn(tmp.path());
    let file_s = file.to_str().unwrap();
    let out = tmp.path().join("never");
    let out_s = out.to_str().unwrap();
    for (extra, expected) in [
        (vec!["--grid", "optim.lrr=0.1,0.2"], "did you mean `lr`"),
        (vec!["--grid", "optim.lr=fast,0.1"], "optim.lr"),
        (
            vec![
                "--grid",
                "train.epochs=2",
                "--grid",
                "train.epochs+optim.lr=[1, 0.1]",
            ],
            "swept twice",
        ),
        (vec!["--seeds", "1,x"], "\"x\" is not a seed"),
        (vec!["--seeds", "3,3"], "seed 3 is listed twice"),
        (vec!["--grid", "optim.lr"], "expected KEY=V1,V2"),
    ] {
        let mut args = vec!["sweep", file_s, "--out", out_s];
        args.extend(&extra);
        let output = swalp(&args);
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{extra:?}: {err}");
        assert!(err.contains(expected), "{extra:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{extra:?}: {err}");
        assert!(!out.exists(), "{extra:?} wrote {out_s}");
    }
    let empty = tmp.path().join("empty.toml");
    std::fs::write(&empty, CNN.replace("quant = { fp = {}, bfp8 = { default = { format = \"bfp\", wl = 8, rounding = \"stochastic\" } } }", "quant = []")).unwrap();
    let output = swalp(&["sweep", empty.to_str().unwrap(), "--out", out_s]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("the list of values is empty"));

    let status = swalp(&["sweep", "status", tmp.path().to_str().unwrap()]);
    assert_eq!(status.status.code(), Some(2));
    assert!(
        stderr(&status).contains("is not a sweep directory"),
        "{}",
        stderr(&status)
    );

    // A machine without Slurm: no sbatch on PATH.
    let output = bin()
        .args(["sweep", file_s, "--out", out_s, "--executor", "slurm"])
        .env("PATH", "")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("sbatch not found"),
        "{}",
        stderr(&output)
    );
    assert!(stderr(&output).contains("--executor local"));
    assert!(!out.exists());
}
