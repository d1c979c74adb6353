//! `swalp-cli data download NAME [--dir DIR] [--mirror URL]
//! [--trust-mirror-checksums]`: fetch a real data set into a directory,
//! verified (see [`crate::data::download`]).

use std::io::Write;

use crate::cli::{DataArgs, DataCommand, DataDownloadArgs};
use crate::data::download::{self, Origin};
use crate::data::real::MIRROR_ENV;
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
    let origin = Origin::from_flag_or_env(args.mirror.as_deref(), args.trust_mirror_checksums)
        .map_err(CliError::Data)?;
    if args.trust_mirror_checksums && origin == Origin::Canonical {
        return Err(CliError::Usage(format!(
            "--trust-mirror-checksums needs a mirror: give --mirror URL or set {MIRROR_ENV}"
        )));
    }
    let report = download::download(name, &dir, &origin, out).map_err(CliError::Data)?;
    if !report.digest_overrides.is_empty() {
        let files: Vec<String> = report
            .digest_overrides
            .iter()
            .map(|o| format!("{} (md5 {}, built-in {})", o.file, o.mirror, o.built_in))
            .collect();
        log::warn!(
            "--trust-mirror-checksums: verified with the mirror's digests instead of \
             swalp's built-in ones: {}",
            files.join(", ")
        );
    }
    Ok(())
}
