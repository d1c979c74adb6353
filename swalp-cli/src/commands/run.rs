//! `swalp-cli run`, `show` and `validate`: experiments from TOML files.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use swalp_core::distributed::ProcessGroup;

use serde_json::{json, Value};

use crate::cli::{ExperimentArgs, RunArgs, RunDeviceArg};
use crate::error::CliError;
use crate::experiment::{
    self, config::DeviceChoice, Claim, Experiment, ExperimentError, RunOptions,
};

fn load(args: &ExperimentArgs) -> Result<Experiment, CliError> {
    Ok(Experiment::load(&args.experiment, &args.overrides)?)
}

/// Runs the experiment (once, or once per seed), printing the per-epoch
/// table and the final result.
pub fn run(args: &RunArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let mut exp = load(&args.experiment)?;
    if let Some(device) = args.device {
        exp.experiment.device = match device {
            RunDeviceArg::Auto => DeviceChoice::Auto,
            RunDeviceArg::Cpu => DeviceChoice::Cpu,
            RunDeviceArg::Cuda => DeviceChoice::Cuda,
        };
    }
    // Under torchrun or srun: this process is one rank of a data-parallel
    // run; rank 0 alone writes and prints (a later rank's directory name,
    // made from the clock, is never used).
    let group = experiment::join_from_env(&exp)?;
    let prints = group.as_ref().map_or(true, |g| g.rank() == 0);
    if group.is_none() && exp.points().communication().is_some() {
        eprintln!(
            "warning: quant.communication rounds the gradients ranks exchange; \
             this run is one process, so it trains without it (launch it with \
             torchrun or srun for several)"
        );
    }
    let (dir, claim) = match (&args.resume, &args.out) {
        (Some(dir), _) => (dir.clone(), Claim::Resume),
        (None, Some(dir)) if args.overwrite => (dir.clone(), Claim::Overwrite),
        (None, Some(dir)) => (dir.clone(), Claim::Fresh),
        (None, None) => (default_out_dir(&exp.experiment.name), Claim::Fresh),
    };
    let run_one = |exp: &Experiment, dir: &Path, claim| run_one(exp, dir, claim, &group);
    if args.seeds.is_empty() {
        let result = run_one(&exp, &dir, claim)?;
        if !prints {
            return Ok(());
        }
        for section in ["paper", "final"] {
            let text = serde_json::to_string_pretty(&result[section])
                .map_err(|e| CliError::Internal(e.to_string()))?;
            writeln!(out, "{section}: {text}").map_err(CliError::Stdout)?;
        }
        writeln!(out, "outputs in {}", dir.display()).map_err(CliError::Stdout)?;
        return Ok(());
    }
    if let Some(seed) = repeated(&args.seeds) {
        return Err(CliError::Usage(format!(
            "--seeds lists seed {seed} twice; each seed is one run (DIR/seed-{seed})"
        )));
    }
    // Checked before the first seed trains (each run checks again; the
    // seed never makes an experiment valid or invalid).
    experiment::check(&exp)?;
    let mut results = Vec::new();
    for &seed in &args.seeds {
        exp.experiment.seed = seed;
        let seed_dir = dir.join(format!("seed-{seed}"));
        let done = seed_dir.join("result.json");
        let result = match claim {
            Claim::Resume if done.is_file() => read_result(&done)?,
            // Killed before its first checkpoint: start that seed again.
            Claim::Resume if !experiment::checkpoint::any(&seed_dir)? => {
                run_one(&exp, &seed_dir, Claim::Overwrite)?
            }
            claim => run_one(&exp, &seed_dir, claim)?,
        };
        results.push((seed, result));
    }
    if !prints {
        return Ok(());
    }
    let summary = summarize(&exp.experiment.name, &results);
    write_summary(&dir, &summary)?;
    out.write_all(summary_table(&summary).as_bytes())
        .map_err(CliError::Stdout)?;
    writeln!(out, "outputs in {}", dir.display()).map_err(CliError::Stdout)
}

/// The first seed listed twice.
fn repeated(seeds: &[u64]) -> Option<u64> {
    seeds
        .iter()
        .enumerate()
        .find(|(i, s)| seeds[..*i].contains(s))
        .map(|(_, s)| *s)
}

fn run_one(
    exp: &Experiment,
    dir: &Path,
    claim: Claim,
    group: &Option<Arc<ProcessGroup>>,
) -> Result<Value, CliError> {
    let options = RunOptions {
        out_dir: dir.to_path_buf(),
        claim,
        group: group.clone(),
    };
    let mut observers = experiment::file_observers(exp);
    observers.extend(super::observers::terminal(exp));
    Ok(experiment::run_with(exp, &options, observers)?)
}

fn read_result(path: &Path) -> Result<Value, CliError> {
    let unreadable = |e: experiment::Cause| {
        CliError::from(ExperimentError::Read {
            path: path.into(),
            what: "result file",
            source: e,
        })
    };
    let text = std::fs::read_to_string(path).map_err(|e| unreadable(e.into()))?;
    serde_json::from_str(&text).map_err(|e| unreadable(e.into()))
}

/// The paper's table row: mean ± std over seeds of the test error of the
/// SGD iterate and of the SWA average, as the paper defines them
/// (`result.json`'s `paper` section).
fn summarize(name: &str, results: &[(u64, Value)]) -> Value {
    let errors = |which: &str| -> Vec<f64> {
        results
            .iter()
            .filter_map(|(_, r)| r["paper"][which]["test_error"].as_f64())
            .collect()
    };
    let stat = |which: &str| match crate::sweep::report::Stat::of(&errors(which)) {
        None => Value::Null,
        Some(s) => json!({ "test_error_mean": s.mean, "test_error_std": s.std, "runs": s.n }),
    };
    json!({
        "experiment": name,
        "seeds": results.iter().map(|(s, _)| s).collect::<Vec<_>>(),
        "sgd": stat("sgd"),
        "swa": stat("swa"),
        "runs": results
            .iter()
            .map(|(s, r)| json!({ "seed": s, "paper": r["paper"], "final": r["final"] }))
            .collect::<Vec<_>>(),
    })
}

fn summary_table(summary: &Value) -> String {
    let cell = |which: &str| match (
        summary[which]["test_error_mean"].as_f64(),
        summary[which]["test_error_std"].as_f64(),
    ) {
        (Some(m), Some(s)) => format!("{m:.2}±{s:.2}"),
        _ => "-".into(),
    };
    format!(
        "{:<24} | {:>14} | {:>14}\n{:<24} | {:>14} | {:>14}\n",
        "experiment",
        "SGD error (%)",
        "SWA error (%)",
        summary["experiment"].as_str().unwrap_or(""),
        cell("sgd"),
        cell("swa")
    )
}

fn write_summary(dir: &Path, summary: &Value) -> Result<(), CliError> {
    let path = dir.join("summary.json");
    let text =
        serde_json::to_string_pretty(summary).map_err(|e| CliError::Internal(e.to_string()))?;
    crate::atomic::write(&path, text.as_bytes()).map_err(|e| {
        CliError::from(ExperimentError::Output {
            path: path.clone(),
            source: e.into(),
        })
    })
}

/// Prints the resolved experiment as TOML.
pub fn show(args: &ExperimentArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let exp = load(args)?;
    let text = toml::to_string(&exp).map_err(|e| CliError::Internal(e.to_string()))?;
    out.write_all(text.as_bytes()).map_err(CliError::Stdout)
}

/// Checks the experiment as a run would before training
/// ([`experiment::check`]), and every run of its `[sweep]` if it has one;
/// errors exit 2.
pub fn validate(args: &ExperimentArgs) -> Result<(), CliError> {
    let exp = load(args)?;
    match &exp.sweep {
        None => Ok(experiment::check(&exp)?),
        Some(table) => {
            let spec = crate::sweep::SweepSpec::from_table(table)?;
            crate::sweep::Plan::new(&args.experiment, &args.overrides, &spec, true)?;
            Ok(())
        }
    }
}

/// `runs/<name>-<YYYYmmdd-HHMMSS>` in UTC.
fn default_out_dir(name: &str) -> PathBuf {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    PathBuf::from("runs").join(format!(
        "{name}-{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    ))
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_786), (2026, 11, 29));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
