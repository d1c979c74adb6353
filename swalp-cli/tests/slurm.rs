//! The Slurm executor against a real Slurm: `scripts/slurm-local` brings up
//! a single-node cluster (installing Debian's `slurm-wlm` and `munge` when
//! missing) and takes down what it started. Sweeps run as job arrays and
//! survive a requeue; `srun --ntasks 2` runs one data-parallel run. Where
//! Slurm cannot run (not root, no apt) the test prints "skipped: <reason>"
//! and returns.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn script() -> PathBuf {
    repo().join("scripts/slurm-local")
}

/// Our single-node cluster, taken down on drop if this test started it.
struct Cluster {
    started: bool,
    env: Vec<(String, String)>,
}

impl Cluster {
    /// The cluster, or `None` (after printing why) where Slurm cannot run.
    fn up() -> Option<Cluster> {
        let was_up = Command::new(script())
            .arg("status")
            .output()
            .is_ok_and(|o| o.status.success());
        let up = Command::new(script())
            .arg("up")
            .output()
            .expect("run slurm-local");
        let err = String::from_utf8_lossy(&up.stderr).into_owned();
        match up.status.code() {
            Some(0) => {}
            Some(3) => {
                let reason = err.lines().last().unwrap_or("").trim();
                println!("skipped: {reason}");
                return None;
            }
            _ => panic!("scripts/slurm-local up failed:\n{err}"),
        }
        let env_out = Command::new(script()).arg("env").output().unwrap();
        let env = String::from_utf8_lossy(&env_out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim_matches(['\'', '"']).to_string()))
            .collect();
        Some(Cluster {
            started: !was_up,
            env,
        })
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    fn swalp(&self, args: &[&str]) -> Output {
        self.command(env!("CARGO_BIN_EXE_swalp-cli"))
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.started {
            let _ = Command::new(script()).arg("down").status();
        }
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn results(dir: &Path) -> Vec<Value> {
    let plan: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("sweep.json")).unwrap()).unwrap();
    plan["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let path = dir.join(r["dir"].as_str().unwrap()).join("result.json");
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
        })
        .collect()
}

/// A small CNN long enough to be stopped in the middle.
const CNN: &str = r#"
[experiment]
name = "cnn_requeue"
device = "cpu"
seed = 3
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
start = 8
[train]
epochs = 12
batch_size = 32
[log]
table = false
progress = false
tensorboard = false
"#;

/// The three scenarios in one test: they share the one cluster.
#[test]
fn sweeps_run_as_slurm_job_arrays_and_survive_requeue() {
    let Some(cluster) = Cluster::up() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();

    // 1. A 4-run sweep through sbatch ends with the local executor's results.
    let linreg = repo().join("exp/linreg_swalp.toml");
    let sweep = |dir: &Path, executor: &str| {
        cluster.swalp(&[
            "sweep",
            linreg.to_str().unwrap(),
            "--grid",
            "optim.lr=0.02,0.01",
            "--seeds",
            "1,2",
            "--set",
            "train.epochs=4",
            "--set",
            "swa.start=2",
            "--out",
            dir.to_str().unwrap(),
            "--executor",
            executor,
            "--jobs",
            "2",
        ])
    };
    let on_slurm = tmp.path().join("slurm");
    let output = sweep(&on_slurm, "slurm");
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("submitted Slurm job array"));
    let local = tmp.path().join("local");
    assert!(sweep(&local, "local").status.success());
    assert_eq!(results(&on_slurm), results(&local));
    let script_text = std::fs::read_to_string(on_slurm.join("sweep.sbatch")).unwrap();
    assert!(script_text.contains("#SBATCH --signal=B:USR1@120"));
    let table = std::fs::read_to_string(on_slurm.join("report.md")).unwrap();
    assert!(
        table.contains("| lr-0.02 |") && table.contains("2/2"),
        "{table}"
    );
    assert!(on_slurm.join("lr-0.01/seed-2/log.txt").is_file());

    // 2. The warning Slurm sends before a time limit (SIGUSR1 to the batch
    //    shell): the task checkpoints, its array element requeues itself and
    //    resumes to the uninterrupted result.
    let file = tmp.path().join("cnn.toml");
    std::fs::write(&file, CNN).unwrap();
    let dir = tmp.path().join("requeue");
    let output = cluster.swalp(&[
        "sweep",
        file.to_str().unwrap(),
        "--out",
        dir.to_str().unwrap(),
        "--executor",
        "slurm",
        "--no-wait",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let job = stdout
        .split("submitted Slurm job array ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no job id in: {stdout}"))
        .to_string();
    let run_dir = dir.join("base/seed-3");
    let started = Instant::now();
    while !run_dir.join("metrics.jsonl").exists() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the task never trained"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let cancel = cluster
        .command("scancel")
        .args(["--batch", "--signal=USR1", &format!("{job}_0")])
        .output()
        .unwrap();
    assert!(cancel.status.success(), "{}", stderr(&cancel));
    let started = Instant::now();
    loop {
        let queue = cluster
            .command("squeue")
            .args(["-h", "-j", &job])
            .output()
            .unwrap();
        if queue.status.success() && queue.stdout.iter().all(u8::is_ascii_whitespace) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "the requeued task did not finish"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let log = std::fs::read_to_string(run_dir.join("log.txt")).unwrap();
    assert!(log.contains("interrupted; checkpoint written"), "{log}");
    assert!(log.contains("resuming from"), "{log}");
    let uninterrupted = tmp.path().join("uninterrupted");
    let output = cluster.swalp(&[
        "sweep",
        file.to_str().unwrap(),
        "--out",
        uninterrupted.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(results(&dir), results(&uninterrupted));

    // 3. `srun --ntasks 2`: one data-parallel run of two ranks, which meet
    //    through the step's variables (SLURM_PROCID, SLURM_STEP_NUM_TASKS,
    //    the step's first node, a port from the job id).
    let mlp = tmp.path().join("mlp.toml");
    std::fs::write(&mlp, MLP.replace("DIGITS", &digits().to_string_lossy())).unwrap();
    let out = tmp.path().join("srun");
    let output = cluster
        .command("srun")
        .args(["--ntasks", "2", "--cpus-per-task", "1"])
        .arg(env!("CARGO_BIN_EXE_swalp-cli"))
        .args(["run", mlp.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .env("OMP_NUM_THREADS", "1")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let result: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("result.json")).unwrap()).unwrap();
    assert_eq!(result["world_size"], 2);
    // Rank 0 alone printed the result.
    let printed = String::from_utf8_lossy(&output.stdout);
    assert_eq!(printed.matches("outputs in").count(), 1, "{printed}");

    // 4. `sweep --ranks-per-run 2`: each array element is two tasks started
    //    by srun, and trains what the local executor's two ranks train.
    let ranked = |dir: &Path, executor: &str| {
        cluster.swalp(&[
            "sweep",
            mlp.to_str().unwrap(),
            "--seeds",
            "4",
            "--out",
            dir.to_str().unwrap(),
            "--executor",
            executor,
            "--ranks-per-run",
            "2",
        ])
    };
    let on_slurm = tmp.path().join("ranked-slurm");
    let output = ranked(&on_slurm, "slurm");
    assert!(output.status.success(), "{}", stderr(&output));
    let script_text = std::fs::read_to_string(on_slurm.join("sweep.sbatch")).unwrap();
    assert!(script_text.contains("#SBATCH --ntasks=2"), "{script_text}");
    assert!(
        script_text.contains("srun --kill-on-bad-exit=1 "),
        "{script_text}"
    );
    let local = tmp.path().join("ranked-local");
    let output = ranked(&local, "local");
    assert!(output.status.success(), "{}", stderr(&output));
    let result = |dir: &Path| -> Value {
        let text = std::fs::read_to_string(dir.join("base/seed-4/result.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    };
    assert_eq!(result(&on_slurm)["world_size"], 2);
    assert_eq!(result(&on_slurm)["final"], result(&local)["final"]);
}

fn digits() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/digits")
}

/// The MLP on the digits for a data-parallel run under srun.
const MLP: &str = r#"
[experiment]
name = "mlp_srun"
device = "cpu"
[data]
name = "mnist"
path = "DIGITS"
[model]
name = "mlp"
[optim]
lr = 0.05
momentum = 0.9
[train]
epochs = 1
batch_size = 64
[log]
table = false
progress = false
tensorboard = false
check_replicas_every = 5
"#;
