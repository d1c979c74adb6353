//! `swalp-cli data download NAME [--dir DIR] [--mirror URL]`: fetch a real
//! data set into a directory, verified (see [`crate::data::download`]).

use std::io::Write;

use crate::cli::{DataArgs, DataCommand, DataDownloadArgs};
use crate::data::download::{self, Origin};
use crate::data::error::DataError;
use crate::error::CliError;

/// Runs `swalp-cli data ...`.
pub fn run(args: &DataArgs, out: &mut dyn Write) -> Result<(), CliError> {
    match &args.command {
        DataCommand::Download(args) => run_download(args, out),
    }
}

fn run_download(args: &DataDownloadArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let name = args.name;
    let dir = args.dir.clone().unwrap_or_else(|| name.default_dir());
    let origin = Origin::from_flag_or_env(args.mirror.as_deref());
    download::download(name, &dir, &origin, out).map_err(cli_error)?;
    Ok(())
}

/// A data error as a command error: exit 2 unless the machine failed us.
fn cli_error(e: DataError) -> CliError {
    if e.is_usage() {
        CliError::Usage(e.to_string())
    } else {
        CliError::Internal(e.to_string())
    }
}
