//! The `swalp-cli` program: parse the arguments, run the command, report an
//! error as one line with its exit status (feature `cli`).

use std::ffi::OsString;
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::commands;
use crate::error::{self, CliError};

/// The `swalp-cli` program on this process's arguments: parses them, runs
/// the command, reports any error on stderr and returns the exit status.
pub fn main() -> ExitCode {
    main_from(std::env::args_os())
}

/// [`main`] on the given arguments (the first is the program name). Clap's
/// usage errors exit the process with status 2 and `--help` with 0.
pub fn main_from<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    init_logging();
    install_panic_hook();
    let cli = Cli::parse_from(args);
    let mut stdout = std::io::stdout().lock();
    let result = catch_unwind(AssertUnwindSafe(|| {
        run(&cli, &mut stdout)?;
        stdout.flush().map_err(CliError::Stdout)
    }));
    match result {
        Ok(Ok(())) => ExitCode::SUCCESS,
        // A closed pipe (`swalp-cli formats | head`) is not a failure.
        Ok(Err(CliError::Stdout(e))) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
        // The panic hook has said what happened.
        Err(_) => ExitCode::from(error::EXIT_INTERNAL),
    }
}

/// Reports a panic (a bug: every input has its own error) as one line,
/// without libtorch's C++ backtrace; `RUST_BACKTRACE=1` adds Rust's.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        if crate::experiment::in_trial_step() {
            return;
        }
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("no message");
        let first = message.lines().next().unwrap_or("").trim();
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("error: internal error: swalp-cli panicked{place}: {first}; please report it");
        if std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0") {
            eprintln!("{}", std::backtrace::Backtrace::force_capture());
        }
    }));
}

/// Runs a parsed command line, writing its output to `out`.
pub fn run(cli: &Cli, out: &mut dyn Write) -> Result<(), CliError> {
    match &cli.command {
        Command::Formats(args) => commands::formats::run(args, out),
        Command::Quantize(args) if args.demo => commands::demo::run(args, out),
        Command::Quantize(args) => commands::quantize::run(args),
        Command::Run(args) => commands::run::run(args, out),
        Command::Show(args) => commands::run::show(args, out),
        Command::Validate(args) => commands::run::validate(args),
        Command::Data(args) => commands::data::run(args, out),
        Command::Bench(args) => commands::bench::run(args, out),
        Command::Sweep(args) => commands::sweep::run(args, out),
        Command::Report(args) => commands::sweep::report(args, out),
        Command::SweepTask(args) => commands::sweep::task(args),
    }
}

/// Logs to stderr as `warning: ...`, filtered by `RUST_LOG` (default `warn`).
/// Does nothing if a logger is already installed.
pub fn init_logging() {
    let env = env_logger::Env::default().default_filter_or("warn");
    let _ = env_logger::Builder::from_env(env)
        .format(|buf, record| {
            let level = match record.level() {
                log::Level::Error => "error",
                log::Level::Warn => "warning",
                log::Level::Info => "info",
                log::Level::Debug => "debug",
                log::Level::Trace => "trace",
            };
            writeln!(buf, "{level}: {}", record.args())
        })
        .try_init();
}
