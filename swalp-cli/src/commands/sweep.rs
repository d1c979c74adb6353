//! `swalp-cli sweep`, `sweep status`, `report` and `sweep-task`: a sweep
//! planned by [`crate::sweep`], its runs started as processes by a local
//! or a Slurm executor, and its report.

use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::cli::{ExecutorArg, ReportArgs, ReportFormat, SweepAction, SweepArgs, SweepTaskArgs};
use crate::error::CliError;
use crate::experiment::{self, Experiment};
use crate::sweep::report::Report;
use crate::sweep::{self, run_state, Plan, RunState, SweepSpec, LOG};

mod slurm;

/// The lock a sweep command holds on its directory.
const SWEEP_LOCK: &str = ".sweep.lock";

/// `swalp-cli sweep ...`.
pub fn run(args: &SweepArgs, out: &mut dyn Write) -> Result<(), CliError> {
    if let Some(SweepAction::Status { dir }) = &args.action {
        return status(dir, out);
    }
    let (Some(path), Some(dir)) = (&args.experiment, &args.out) else {
        return Err(CliError::Usage(
            "sweep needs EXP.toml and --out DIR (or: sweep status DIR)".into(),
        ));
    };
    let plan = plan(path, args)?;
    if args.dry_run {
        return print_runs(&plan, out);
    }
    if args.executor == ExecutorArg::Slurm {
        slurm::sbatch_available()?;
    }
    std::fs::create_dir_all(dir).map_err(|e| CliError::write(dir, &e))?;
    let _lock = lock_sweep(dir)?;
    plan.write(dir, args.force)?;
    let jobs = args.jobs.unwrap_or_else(default_jobs).max(1);
    match args.executor {
        ExecutorArg::Local => run_local(dir, &plan, jobs)?,
        ExecutorArg::Slurm => {
            let submitted = slurm::submit(dir, &plan, jobs)?;
            let Some(job) = submitted else {
                writeln!(out, "every run of the sweep is done").map_err(CliError::Stdout)?;
                return finish(dir, out);
            };
            writeln!(
                out,
                "submitted Slurm job array {job} ({})",
                dir.join(slurm::SCRIPT).display()
            )
            .map_err(CliError::Stdout)?;
            if args.no_wait {
                return writeln!(
                    out,
                    "not waiting; `swalp-cli sweep status {}` shows progress and `swalp-cli \
                     report {}` the table",
                    dir.display(),
                    dir.display()
                )
                .map_err(CliError::Stdout);
            }
            slurm::wait(dir, &plan, &job)?;
        }
    }
    finish(dir, out)
}

/// The plan of `args`: the file's [sweep] table, overridden by the command
/// line; every run checked.
fn plan(path: &Path, args: &SweepArgs) -> Result<Plan, CliError> {
    let exp = Experiment::load(path, &args.overrides)?;
    let mut spec = match &exp.sweep {
        Some(table) => SweepSpec::from_table(table)?,
        None => SweepSpec::default(),
    };
    spec.override_with(&args.grid, &args.seeds)?;
    if let Some(options) = &args.slurm {
        spec.slurm
            .extend(options.split_whitespace().map(String::from));
    }
    // A dry run shows the runs without the data or devices they need.
    Ok(Plan::new(path, &args.overrides, &spec, !args.dry_run)?)
}

fn print_runs(plan: &Plan, out: &mut dyn Write) -> Result<(), CliError> {
    for run in &plan.runs {
        writeln!(
            out,
            "{:>4}  {}  {}",
            run.index,
            run.dir.display(),
            run.sets.join(" ")
        )
        .map_err(CliError::Stdout)?;
    }
    writeln!(out, "{} runs (dry run: nothing written)", plan.runs.len()).map_err(CliError::Stdout)
}

/// Holds `DIR/.sweep.lock` so that two sweep commands never drive one
/// directory.
fn lock_sweep(dir: &Path) -> Result<File, CliError> {
    let path = dir.join(SWEEP_LOCK);
    crate::atomic::lock_file(&path)
        .map_err(|e| CliError::write(&path, &e))?
        .ok_or_else(|| {
            CliError::Usage(format!(
                "another sweep command is driving {}; wait for it or use `swalp-cli sweep \
                 status {}`",
                dir.display(),
                dir.display()
            ))
        })
}

fn default_jobs() -> usize {
    swalp_core::tch::Cuda::device_count().max(1) as usize
}

/// Writes the report, prints the table, and fails when runs failed.
fn finish(dir: &Path, out: &mut dyn Write) -> Result<(), CliError> {
    let report = Report::read(dir)?;
    report.write(dir)?;
    out.write_all(report.markdown().as_bytes())
        .map_err(CliError::Stdout)?;
    writeln!(out, "report in {}", dir.join("report.md").display()).map_err(CliError::Stdout)?;
    let failed = report.rows.iter().map(|r| r.runs - r.done).sum::<usize>();
    if failed > 0 {
        return Err(CliError::SweepFailed {
            failed,
            dir: dir.into(),
        });
    }
    Ok(())
}

/// A task started by the local executor.
struct Running {
    index: usize,
    child: Child,
    started: Instant,
    gpu: Option<usize>,
}

/// Runs the sweep's unfinished runs as child processes, `jobs` at once,
/// each on its own GPU when there are GPUs, with one progress line.
fn run_local(dir: &Path, plan: &Plan, jobs: usize) -> Result<(), CliError> {
    let gpus = swalp_core::tch::Cuda::device_count().max(0) as usize;
    let mut queue: Vec<usize> = plan
        .runs
        .iter()
        .filter(|r| run_state(dir, r) != RunState::Done)
        .map(|r| r.index)
        .rev()
        .collect();
    let total = plan.runs.len();
    let mut done = total - queue.len();
    let mut failed = 0usize;
    let mut running: Vec<Running> = Vec::new();
    let mut durations: Vec<Duration> = Vec::new();
    let mut progress = Progress::new();
    loop {
        while running.len() < jobs {
            let Some(index) = queue.pop() else { break };
            let free_gpu = (gpus > 0).then(|| {
                (0..gpus)
                    .find(|g| running.iter().all(|r| r.gpu != Some(*g)))
                    .unwrap_or(0)
            });
            let child = spawn_task(dir, plan, index, free_gpu)?;
            running.push(Running {
                index,
                child,
                started: Instant::now(),
                gpu: free_gpu,
            });
        }
        if running.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        let mut still = Vec::new();
        for mut task in running {
            match task.child.try_wait() {
                Ok(None) => still.push(task),
                Ok(Some(status)) => {
                    durations.push(task.started.elapsed());
                    if status.success() {
                        done += 1;
                    } else {
                        failed += 1;
                        let run = &plan.runs[task.index];
                        progress.note(&format!(
                            "run {} failed (exit {}): {}",
                            run.dir.display(),
                            status.code().map_or("signal".into(), |c| c.to_string()),
                            last_log_line(&dir.join(&run.dir))
                        ));
                    }
                }
                Err(e) => return Err(CliError::Internal(format!("waiting for a task: {e}"))),
            }
        }
        running = still;
        let eta = eta(&durations, queue.len() + running.len(), jobs);
        progress.show(&format!(
            "sweep: {done}/{total} done, {} running, {failed} failed, {} pending{eta}",
            running.len(),
            queue.len()
        ));
    }
    progress.finish();
    Ok(())
}

/// Starts `swalp-cli sweep-task DIR INDEX` with its output appended to the
/// run's log; it stops (with a checkpoint) if this process dies.
fn spawn_task(
    dir: &Path,
    plan: &Plan,
    index: usize,
    gpu: Option<usize>,
) -> Result<Child, CliError> {
    let run_dir = dir.join(&plan.runs[index].dir);
    std::fs::create_dir_all(&run_dir).map_err(|e| CliError::write(&run_dir, &e))?;
    let log_path = run_dir.join(LOG);
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| CliError::write(&log_path, &e))?;
    let err_log = log
        .try_clone()
        .map_err(|e| CliError::write(&log_path, &e))?;
    let exe = std::env::current_exe().map_err(|e| CliError::Internal(e.to_string()))?;
    let mut command = Command::new(exe);
    command
        .arg("sweep-task")
        .arg(absolute(dir))
        .arg(index.to_string())
        .current_dir(&plan.workdir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err_log);
    if let Some(gpu) = gpu {
        command.env("CUDA_VISIBLE_DEVICES", gpu.to_string());
    }
    stop_with_parent(&mut command);
    command
        .spawn()
        .map_err(|e| CliError::Internal(format!("starting a sweep task: {e}")))
}

/// Linux: the task receives SIGTERM (and checkpoints) when the sweep
/// process dies, even by SIGKILL, so that no orphan holds a run.
#[cfg(target_os = "linux")]
fn stop_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches no memory of ours.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn stop_with_parent(_: &mut Command) {}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

fn eta(durations: &[Duration], remaining: usize, jobs: usize) -> String {
    if durations.is_empty() || remaining == 0 {
        return String::new();
    }
    let mean = durations.iter().sum::<Duration>().as_secs_f64() / durations.len() as f64;
    let secs = (mean * remaining as f64 / jobs as f64).round() as u64;
    format!(", ETA {}m{:02}s", secs / 60, secs % 60)
}

/// The last non-empty line of a run's log.
fn last_log_line(run_dir: &Path) -> String {
    std::fs::read_to_string(run_dir.join(LOG))
        .ok()
        .and_then(|text| {
            text.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(String::from)
        })
        .unwrap_or_else(|| "(no log)".into())
}

/// One progress line on stderr: rewritten in place on a terminal, printed
/// when it changes otherwise.
struct Progress {
    terminal: bool,
    last: String,
}

impl Progress {
    fn new() -> Self {
        Progress {
            terminal: std::io::stderr().is_terminal(),
            last: String::new(),
        }
    }

    fn show(&mut self, line: &str) {
        if line == self.last {
            return;
        }
        if self.terminal {
            eprint!("\r\x1b[2K{line}");
        } else {
            eprintln!("{line}");
        }
        self.last = line.to_string();
    }

    fn note(&mut self, line: &str) {
        if self.terminal {
            eprint!("\r\x1b[2K");
        }
        eprintln!("{line}");
        self.last.clear();
    }

    fn finish(&mut self) {
        if self.terminal && !self.last.is_empty() {
            eprintln!();
        }
    }
}

/// `swalp-cli sweep status DIR`.
fn status(dir: &Path, out: &mut dyn Write) -> Result<(), CliError> {
    let plan = Plan::read(dir)?;
    let mut counts = [0usize; 5];
    let mut failed = Vec::new();
    for run in &plan.runs {
        let state = run_state(dir, run);
        counts[state as usize] += 1;
        if state == RunState::Failed {
            failed.push(run);
        }
    }
    let [pending, running, interrupted, failed_n, done] = counts;
    writeln!(
        out,
        "{} runs: {done} done, {running} running, {interrupted} interrupted, {failed_n} failed, \
         {pending} pending",
        plan.runs.len()
    )
    .map_err(CliError::Stdout)?;
    for run in failed {
        writeln!(
            out,
            "failed {}: {}",
            run.dir.display(),
            last_log_line(&dir.join(&run.dir))
        )
        .map_err(CliError::Stdout)?;
    }
    Ok(())
}

/// `swalp-cli report DIR`.
pub fn report(args: &ReportArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let report = Report::read(&args.dir)?;
    let text = match args.format {
        ReportFormat::Markdown => report.markdown(),
        ReportFormat::Csv => report.csv(),
        ReportFormat::Json => report.json()?,
    };
    out.write_all(text.as_bytes()).map_err(CliError::Stdout)
}

/// `swalp-cli sweep-task DIR INDEX`: one run, with the command line's
/// observers (Ctrl-C and SIGTERM checkpoint and stop it).
pub fn task(args: &SweepTaskArgs) -> Result<(), CliError> {
    let plan = Plan::read(&args.dir)?;
    let run = plan.run(args.index)?;
    let exp = Experiment::parse(&run.config, &args.dir.join(sweep::MANIFEST), &[])?;
    let mut observers = experiment::file_observers(&exp);
    observers.extend(super::observers::terminal(&exp));
    eprintln!(
        "sweep task {} ({}), pid {}",
        args.index,
        run.dir.display(),
        std::process::id()
    );
    match sweep::run_task(&args.dir, args.index, observers)? {
        sweep::TaskOutcome::AlreadyDone => eprintln!("already done"),
        sweep::TaskOutcome::Finished(_) => eprintln!("finished"),
    }
    Ok(())
}
