//! # swalp-cli
//!
//! The user's side of swalp, in two layers.
//!
//! **The experiment library** (always built): an experiment described in
//! TOML and typed in Rust ([`experiment::Experiment`]), its data sets
//! ([`data`]), its models ([`models`], the PyTorch twins' layers,
//! initialisation and `state_dict` names), and the trainer
//! ([`experiment::run_with`]) that reports through
//! [`experiment::observe::Observer`]s: it never prints. A Rust program
//! depends on it with `default-features = false` and gets neither clap nor
//! the downloader nor a Ctrl-C handler (see `examples/experiment_from_rust.rs`).
//!
//! **The command line** (feature `cli`, on by default): the `swalp-cli`
//! program ([`main`]), its arguments ([`cli`]), one module per subcommand
//! ([`commands`], including the terminal's observers: progress bar, epoch
//! table, Ctrl-C), tensor files for `quantize` ([`io`]) and one-line
//! errors with exit codes ([`CliError`]); feature `download` (part of
//! `cli`) fetches data sets.
//!
//! This crate owns the workflow around the numbers and must not contain
//! format math or kernels: formats come from the registry (`swalp-core`),
//! filled by `swalp-formats` and any plugin crate linked in.
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

pub mod atomic;
#[cfg(feature = "cli")]
pub mod cli;
#[cfg(feature = "cli")]
pub mod commands;
pub mod data;
#[cfg(feature = "cli")]
pub mod error;
pub mod experiment;
#[cfg(feature = "cli")]
pub mod io;
pub mod models;
pub mod safetensors_file;
pub mod sweep;

// The built-in formats register themselves through inventory; linking the
// crate is what makes them visible to the registry.
use swalp_formats as _;
#[cfg(feature = "plugins")]
use swalp_intscale as _;
#[cfg(feature = "plugins")]
use swalp_posit as _;

#[cfg(feature = "cli")]
pub use cli::{Cli, Command};
#[cfg(feature = "cli")]
pub use error::CliError;
#[cfg(feature = "cli")]
mod app;
#[cfg(feature = "cli")]
pub use app::{init_logging, main, main_from, run};
