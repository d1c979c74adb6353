//! # swalp-cli
//!
//! The user's side of swalp: the `swalp-cli` command line and the file I/O
//! behind it:
//!
//! - `swalp-cli formats`: every registered number format and its spec keys;
//! - `swalp-cli quantize`: round the tensors of a `.npy` or `.safetensors`
//!   file onto a format, reproducibly, never harming the input, and its
//!   `--demo` mode comparing formats on random data;
//! - `swalp-cli run`, `show`, `validate`: experiments described in TOML
//!   ([`experiment`]), with their data sets ([`data`]) and models
//!   ([`models`]).
//!
//! This crate owns the workflow around the numbers (arguments, files, messages, exit codes) and
//! must not contain format math or kernels: formats come from the registry
//! (`swalp-core`), filled by `swalp-formats` and any plugin crate linked in.
//!
//! A custom binary with extra formats links its plugin crates and calls the
//! same entry point:
//!
//! ```no_run
//! use my_formats as _; // registers its formats through inventory
//! # mod my_formats {}
//! fn main() -> std::process::ExitCode {
//!     swalp_cli::main()
//! }
//! ```
//!
//! Exit status: 0 on success, 2 on a usage error or bad input, 1 on an
//! internal failure; every error is one line, `error: <message>`, on stderr.
//! Logging goes to stderr through `env_logger` (`RUST_LOG`, default `warn`).

#![warn(missing_docs)]

pub mod cli;
pub mod commands;
pub mod data;
pub mod error;
pub mod experiment;
pub mod io;
pub mod models;

// The built-in formats register themselves through inventory; linking the
// crate is what makes them visible to the registry.
use swalp_formats as _;
#[cfg(feature = "plugins")]
use swalp_intscale as _;
#[cfg(feature = "plugins")]
use swalp_posit as _;

use std::ffi::OsString;
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::ExitCode;

use clap::Parser;

pub use cli::{Cli, Command};
pub use error::CliError;

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
        Err(_) => {
            eprintln!(
                "error: internal error: swalp-cli panicked (message above); please report it"
            );
            ExitCode::from(error::EXIT_INTERNAL)
        }
    }
}

/// Runs a parsed command line, writing its output to `out`.
pub fn run(cli: &Cli, out: &mut dyn Write) -> Result<(), CliError> {
    match &cli.command {
        Command::Formats(args) => commands::formats::run(args, out),
        Command::Quantize(args) => commands::quantize::run(args, out),
        Command::Run(args) => commands::run::run(args, out),
        Command::Show(args) => commands::run::show(args, out),
        Command::Validate(args) => commands::run::validate(args),
        Command::Data(args) => commands::data::run(args, out),
        Command::Bench(args) => commands::bench::run(args, out),
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
