//! `swalp-cli sweep`, `sweep status`, `report` and `sweep-task`: a sweep
//! planned by [`crate::sweep`], its runs started as processes by a local
//! or a Slurm executor, and its report.

use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
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
    let ranks = usize::from(args.ranks_per_run);
    let jobs = args.jobs.unwrap_or_else(|| default_jobs(ranks)).max(1);
    match args.executor {
        ExecutorArg::Local => run_local(dir, &plan, jobs, ranks)?,
        ExecutorArg::Slurm => {
            let submitted = slurm::submit(dir, &plan, jobs, ranks)?;
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

/// As many runs at once as the GPUs hold, each on `ranks` of them; one
/// without GPUs.
fn default_jobs(ranks: usize) -> usize {
    (swalp_core::tch::Cuda::device_count().max(0) as usize / ranks).max(1)
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

/// A run started by the local executor: one process, or one per rank.
struct Running {
    index: usize,
    ranks: Vec<Child>,
    started: Instant,
    gpus: Vec<usize>,
}

impl Running {
    /// `None` while a rank runs; then the run's outcome: the first failed
    /// rank's status, else success.
    fn finished(&mut self) -> Result<Option<ExitStatus>, CliError> {
        let mut statuses = Vec::new();
        for child in &mut self.ranks {
            match child.try_wait() {
                Ok(Some(status)) => statuses.push(status),
                Ok(None) => return Ok(None),
                Err(e) => return Err(CliError::Internal(format!("waiting for a task: {e}"))),
            }
        }
        let failed = statuses.iter().find(|s| !s.success());
        Ok(failed.or(statuses.first()).copied())
    }
}

/// Runs the sweep's unfinished runs as child processes, `jobs` runs at
/// once of `ranks` processes each, each process on its own GPU when there
/// are GPUs, with one progress line.
fn run_local(dir: &Path, plan: &Plan, jobs: usize, ranks: usize) -> Result<(), CliError> {
    let gpus = swalp_core::tch::Cuda::device_count().max(0) as usize;
    if gpus > 0 && ranks > gpus {
        return Err(CliError::Usage(format!(
            "--ranks-per-run {ranks} needs {ranks} GPUs, one a rank; this machine has {gpus}"
        )));
    }
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
            let busy: Vec<usize> = running.iter().flat_map(|r| r.gpus.clone()).collect();
            let free = free_gpus(gpus, &busy, ranks);
            let children = spawn_task(dir, plan, index, &free, ranks)?;
            running.push(Running {
                index,
                ranks: children,
                started: Instant::now(),
                gpus: free,
            });
        }
        if running.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        let mut still = Vec::new();
        for mut task in running {
            let Some(status) = task.finished()? else {
                still.push(task);
                continue;
            };
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

/// `ranks` of the machine's `gpus` GPUs for a run, those no run uses
/// (`busy`) first; none without GPUs.
fn free_gpus(gpus: usize, busy: &[usize], ranks: usize) -> Vec<usize> {
    if gpus == 0 {
        return Vec::new();
    }
    let (free, taken): (Vec<usize>, Vec<usize>) = (0..gpus).partition(|g| !busy.contains(g));
    free.into_iter().chain(taken).take(ranks).collect()
}

/// Starts `swalp-cli sweep-task DIR INDEX` with its output appended to the
/// run's log, as one process or as `ranks` ranks on localhost with the
/// variables torchrun sets (and its one libtorch thread a rank unless
/// `OMP_NUM_THREADS` says otherwise); each stops (with a checkpoint) if
/// this process dies. The run sees `gpus` as its devices, rank r the r-th.
fn spawn_task(
    dir: &Path,
    plan: &Plan,
    index: usize,
    gpus: &[usize],
    ranks: usize,
) -> Result<Vec<Child>, CliError> {
    let run_dir = dir.join(&plan.runs[index].dir);
    std::fs::create_dir_all(&run_dir).map_err(|e| CliError::write(&run_dir, &e))?;
    let log_path = run_dir.join(LOG);
    let exe = std::env::current_exe().map_err(|e| CliError::Internal(e.to_string()))?;
    let port = if ranks > 1 { Some(free_port()?) } else { None };
    let mut children = Vec::new();
    for rank in 0..ranks {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| CliError::write(&log_path, &e))?;
        let err_log = log
            .try_clone()
            .map_err(|e| CliError::write(&log_path, &e))?;
        let mut command = Command::new(&exe);
        command
            .arg("sweep-task")
            .arg(absolute(dir))
            .arg(index.to_string())
            .current_dir(&plan.workdir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log);
        if !gpus.is_empty() {
            let visible: Vec<String> = gpus.iter().map(usize::to_string).collect();
            command.env("CUDA_VISIBLE_DEVICES", visible.join(","));
        }
        if let Some(port) = port {
            command
                .env("RANK", rank.to_string())
                .env("LOCAL_RANK", rank.to_string())
                .env("WORLD_SIZE", ranks.to_string())
                .env("MASTER_ADDR", "127.0.0.1")
                .env("MASTER_PORT", port.to_string());
            if std::env::var_os("OMP_NUM_THREADS").is_none() {
                command.env("OMP_NUM_THREADS", "1");
            }
        }
        stop_with_parent(&mut command);
        let child = command
            .spawn()
            .map_err(|e| CliError::Internal(format!("starting a sweep task: {e}")))?;
        children.push(child);
    }
    Ok(children)
}

/// A TCP port free on localhost now, for a run's rendezvous.
fn free_port() -> Result<u16, CliError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| CliError::Internal(format!("finding a free port for a run's ranks: {e}")))
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
    // One rank of the run under `--ranks-per-run` (the executor sets
    // torchrun's variables, or srun Slurm's); rank 0 alone reports.
    let group = experiment::join_from_env(&exp)?;
    let reports = group.as_ref().map_or(true, |g| g.rank() == 0);
    let mut observers = experiment::file_observers(&exp);
    observers.extend(super::observers::terminal(&exp));
    if reports {
        eprintln!(
            "sweep task {} ({}), pid {}{}",
            args.index,
            run.dir.display(),
            std::process::id(),
            group
                .as_ref()
                .map_or(String::new(), |g| format!(", {} ranks", g.world_size()))
        );
    }
    let outcome = sweep::run_task(&args.dir, args.index, group, observers)?;
    if reports {
        match outcome {
            sweep::TaskOutcome::AlreadyDone => eprintln!("already done"),
            sweep::TaskOutcome::Finished(_) => eprintln!("finished"),
        }
    }
    Ok(())
}
