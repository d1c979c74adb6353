//! The Slurm executor: the sweep's unfinished runs as one job array
//! (`sbatch --array=I,J,...%K`), whose batch script is written into the
//! sweep directory so users can read and resubmit it.
//!
//! Slurm warns a task 120 s before its time limit, or on preemption, with
//! SIGUSR1 to the batch shell (`--signal=B:USR1@120`; a batch script without
//! `srun` steps receives neither `scancel --signal` nor `--signal=SIG@T`
//! without `B:`). The script forwards it to the task as SIGTERM, waits for
//! the task's checkpoint, and requeues its own array element
//! (`${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}`: `$SLURM_JOB_ID` of the
//! element whose id is the array's would requeue the whole array), which
//! then resumes from that checkpoint. SIGTERM itself (`scancel`) stops the
//! task with a checkpoint and does not requeue it: a trap that requeued on
//! TERM would make tasks impossible to cancel (measured with
//! `scripts/slurm-local`, see `scripts/slurm-local.md`).

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::error::CliError;
use crate::sweep::{run_state, Plan, RunState, LOG};

/// The batch script's name in the sweep directory.
pub const SCRIPT: &str = "sweep.sbatch";

/// Seconds between polls of the array.
const POLL: Duration = Duration::from_secs(2);

/// `sbatch` on PATH, or a one-line usage error.
pub fn sbatch_available() -> Result<(), CliError> {
    match Command::new("sbatch").arg("--version").output() {
        Ok(out) if out.status.success() => Ok(()),
        _ => Err(CliError::Usage(
            "--executor slurm: sbatch not found (Slurm is not installed or not on PATH); \
             use --executor local"
                .into(),
        )),
    }
}

/// Single-quotes `text` for bash.
fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The batch script of `plan` in `dir`, each run on `ranks` tasks.
fn script(dir: &Path, plan: &Plan, exe: &Path, ranks: usize) -> String {
    let mut s = String::from("#!/bin/bash\n");
    let name = plan
        .experiment
        .file_stem()
        .map_or("sweep".into(), |n| n.to_string_lossy().into_owned());
    let _ = writeln!(s, "#SBATCH --job-name=swalp-{name}");
    let _ = writeln!(s, "#SBATCH --output={}/slurm-%A_%a.out", dir.display());
    let _ = writeln!(s, "#SBATCH --chdir={}", plan.workdir.display());
    let _ = writeln!(s, "#SBATCH --signal=B:USR1@120");
    let _ = writeln!(s, "#SBATCH --requeue");
    let _ = writeln!(s, "#SBATCH --open-mode=append");
    if ranks > 1 {
        // One task a rank, started by srun below (a step, which the ranks
        // read as their group), and a GPU each for runs on CUDA.
        let _ = writeln!(s, "#SBATCH --ntasks={ranks}");
        if plan.runs.iter().any(|r| trains_on_cuda(&r.config)) {
            let _ = writeln!(s, "#SBATCH --gpus-per-task=1");
        }
    }
    for option in &plan.slurm {
        let _ = writeln!(s, "#SBATCH {option}");
    }
    s.push_str(
        "# Written by `swalp-cli sweep --executor slurm`; resubmit with\n\
         #   sbatch --array=<indices> THIS_FILE\n\
         # Each array task runs one run of sweep.json; a run already finished is\n\
         # skipped, an interrupted one resumes from its checkpoint.\n",
    );
    s.push_str("set -u\ndirs=(\n");
    for run in &plan.runs {
        let _ = writeln!(s, "  {}", quoted(&run.dir.display().to_string()));
    }
    let _ = write!(
        s,
        ")\n\
         sweep={dir}\n\
         task=\"$SLURM_ARRAY_TASK_ID\"\n\
         log=\"$sweep/${{dirs[$task]}}/{LOG}\"\n\
         mkdir -p \"$(dirname \"$log\")\"\n\
         child=\n\
         # USR1 (time limit near, preemption): checkpoint, then requeue this\n\
         # element to resume. TERM (scancel): checkpoint and stop.\n\
         stop() {{\n\
         \x20   trap '' USR1\n\
         \x20   [ -n \"$child\" ] || exit 143\n\
         \x20   kill -TERM \"$child\" 2>/dev/null\n\
         \x20   wait \"$child\"; rc=$?\n\
         \x20   if [ \"$1\" = requeue ] && [ \"$rc\" != 0 ]; then\n\
         \x20       scontrol requeue \"${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}}\" && exit 0\n\
         \x20   fi\n\
         \x20   exit \"$rc\"\n\
         }}\n\
         trap 'stop requeue' USR1\n\
         trap 'stop exit' TERM\n\
         {threads}{launch}{exe} sweep-task \"$sweep\" \"$task\" >>\"$log\" 2>&1 &\n\
         child=$!\n\
         wait \"$child\"\n",
        dir = quoted(&dir.display().to_string()),
        exe = quoted(&exe.display().to_string()),
        // srun forwards the TERM the traps send to every rank; a rank that
        // fails ends the step.
        launch = if ranks > 1 { "srun --kill-on-bad-exit=1 " } else { "" },
        // As torchrun: one libtorch thread a rank unless told otherwise
        // (the task's CPUs when --cpus-per-task gives them).
        threads = if ranks > 1 {
            "export OMP_NUM_THREADS=\"${OMP_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-1}}\"\n"
        } else {
            ""
        },
    );
    s
}

/// Whether an experiment (a run's resolved TOML) names `device = "cuda"`.
fn trains_on_cuda(config: &str) -> bool {
    let table: Option<toml::Table> = toml::from_str(config).ok();
    table
        .as_ref()
        .and_then(|t| t.get("experiment"))
        .and_then(|e| e.get("device"))
        .and_then(toml::Value::as_str)
        == Some("cuda")
}

/// Writes the script and submits the unfinished runs as one array of at
/// most `jobs` elements at once, each run on `ranks` tasks; the job id, or
/// `None` when nothing is left.
pub fn submit(
    dir: &Path,
    plan: &Plan,
    jobs: usize,
    ranks: usize,
) -> Result<Option<String>, CliError> {
    let pending: Vec<String> = plan
        .runs
        .iter()
        .filter(|r| !matches!(run_state(dir, r), RunState::Done | RunState::Running))
        .map(|r| r.index.to_string())
        .collect();
    if pending.is_empty() {
        return Ok(None);
    }
    let exe = std::env::current_exe().map_err(|e| CliError::Internal(e.to_string()))?;
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let path = dir.join(SCRIPT);
    crate::atomic::write(&path, script(&dir, plan, &exe, ranks).as_bytes())
        .map_err(|e| CliError::write(&path, &e))?;
    let array = format!("--array={}%{jobs}", pending.join(","));
    let output = Command::new("sbatch")
        .args(["--parsable", &array])
        .arg(&path)
        .output()
        .map_err(|e| CliError::Internal(format!("running sbatch: {e}")))?;
    if !output.status.success() {
        let err = String::from_utf8_lossy(&output.stderr);
        return Err(CliError::Usage(format!(
            "sbatch refused the sweep: {}",
            err.lines().next().unwrap_or("").trim()
        )));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let job = text.trim().split(';').next().unwrap_or("").to_string();
    Ok(Some(job))
}

/// Polls until no task of `job` is left in the queue, showing progress.
pub fn wait(dir: &Path, plan: &Plan, job: &str) -> Result<(), CliError> {
    let mut last = String::new();
    loop {
        let queued = Command::new("squeue")
            .args(["-h", "-r", "-j", job, "-o", "%i %T"])
            .output()
            .map_err(|e| CliError::Internal(format!("running squeue: {e}")))?;
        let listing = String::from_utf8_lossy(&queued.stdout).into_owned();
        let left = listing.lines().filter(|l| !l.trim().is_empty()).count();
        let done = plan
            .runs
            .iter()
            .filter(|r| run_state(dir, r) == RunState::Done)
            .count();
        let line = format!(
            "sweep: {done}/{} done, {left} task(s) of job {job} in the queue",
            plan.runs.len()
        );
        if line != last {
            eprintln!("{line}");
            last = line;
        }
        if queued.status.success() && left == 0 {
            return Ok(());
        }
        if !queued.status.success() {
            let err = String::from_utf8_lossy(&queued.stderr);
            // A job whose records were purged is finished; anything else
            // (the controller restarting) is asked again.
            if err.contains("Invalid job id") {
                return Ok(());
            }
            let reason = err.lines().next().unwrap_or("").trim().to_string();
            if reason != last {
                eprintln!("squeue: {reason} (asking again)");
                last = reason;
            }
        }
        std::thread::sleep(POLL);
    }
}
