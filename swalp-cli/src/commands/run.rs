//! `swalp-cli run`, `show` and `validate`: experiments from TOML files.

use std::io::Write;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::cli::{ExperimentArgs, RunArgs, RunDeviceArg};
use crate::error::CliError;
use crate::experiment::{self, config::DeviceChoice, Experiment, RunOptions};

fn load(args: &ExperimentArgs) -> Result<Experiment, CliError> {
    Ok(Experiment::load(&args.experiment, &args.overrides)?)
}

/// Runs the experiment, printing the per-epoch table and the final result.
pub fn run(args: &RunArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let mut exp = load(&args.experiment)?;
    if let Some(device) = args.device {
        exp.experiment.device = match device {
            RunDeviceArg::Auto => DeviceChoice::Auto,
            RunDeviceArg::Cpu => DeviceChoice::Cpu,
            RunDeviceArg::Cuda => DeviceChoice::Cuda,
        };
    }
    let out_dir = args
        .out
        .clone()
        .unwrap_or_else(|| default_out_dir(&exp.experiment.name));
    let options = RunOptions {
        out_dir: out_dir.clone(),
        print_table: exp.log.table.unwrap_or(true),
    };
    let result = experiment::run(&exp, &options)?;
    let text = serde_json::to_string_pretty(&result["final"])
        .map_err(|e| CliError::Internal(e.to_string()))?;
    writeln!(out, "final: {text}").map_err(CliError::Stdout)?;
    writeln!(out, "outputs in {}", out_dir.display()).map_err(CliError::Stdout)?;
    Ok(())
}

/// Prints the resolved experiment as TOML.
pub fn show(args: &ExperimentArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let exp = load(args)?;
    let text = toml::to_string(&exp).map_err(|e| CliError::Internal(e.to_string()))?;
    out.write_all(text.as_bytes()).map_err(CliError::Stdout)
}

/// Checks the experiment; errors exit 2.
pub fn validate(args: &ExperimentArgs) -> Result<(), CliError> {
    load(args).map(|_| ())
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
