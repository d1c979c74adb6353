//! The command line, as clap definitions: what each subcommand takes and its
//! help text. Nothing here does any work.

// These doc comments are also the --help text, which shows placeholders such
// as <NAME> literally; rustdoc would read them as HTML tags.
#![allow(rustdoc::invalid_html_tags)]

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use swalp_core::Backend;

/// Simulate low-precision number formats on tensors.
#[derive(Debug, Parser)]
#[command(name = "swalp-cli", version, about, propagate_version = true)]
#[command(after_help = "Logging: set RUST_LOG (e.g. RUST_LOG=info); the default level is warn.")]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List every registered number format with its spec keys.
    Formats(FormatsArgs),
    /// Quantize the tensors of a .npy or .safetensors file.
    Quantize(QuantizeArgs),
    /// Run an experiment file.
    Run(RunArgs),
    /// Print an experiment file fully resolved (defaults filled in) as TOML.
    Show(ExperimentArgs),
    /// Check an experiment file: exit 0, or 2 with the error.
    Validate(ExperimentArgs),
    /// Download a real data set (CIFAR-10/100, MNIST, Fashion-MNIST).
    Data(DataArgs),
    /// Time the format kernels (ns per element next to a plain copy), or one
    /// VGG16 training step in full and in low precision (--train).
    Bench(BenchArgs),
    /// Run an experiment over a grid of values and seeds (locally or as a
    /// Slurm job array), then write the paper's table; `sweep status DIR`
    /// tells where a sweep is.
    Sweep(SweepArgs),
    /// Print a sweep's table (also written as DIR/report.md, .csv, .json
    /// and DIR/curves.svg).
    Report(ReportArgs),
    /// Run one entry of a sweep's manifest (what the executors start).
    #[command(hide = true)]
    SweepTask(SweepTaskArgs),
}

/// Arguments of `swalp-cli sweep`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
#[command(after_help = SWEEP_AFTER_HELP)]
pub struct SweepArgs {
    /// `status DIR`.
    #[command(subcommand)]
    pub action: Option<SweepAction>,

    /// The experiment file (its optional `[sweep]` table gives seeds, grid and
    /// Slurm options; the command line overrides them).
    #[arg(required = true, value_name = "EXP.toml")]
    pub experiment: Option<PathBuf>,

    /// Sweep a key over values, e.g. --grid optim.lr=0.1,0.05 or
    /// --grid 'quant.default={ format = "bfp", wl = 8 },{}' (repeatable;
    /// keys joined with + move together).
    #[arg(long = "grid", value_name = "KEY=V1,V2,...")]
    pub grid: Vec<String>,

    /// Seeds of every grid point (comma-separated), e.g. 100,200,300.
    #[arg(long, value_name = "N,N,...", value_delimiter = ',')]
    pub seeds: Vec<String>,

    /// Override a key of the file for every run (repeatable).
    #[arg(long = "set", value_name = "KEY.PATH=VALUE")]
    pub overrides: Vec<String>,

    /// The sweep directory: DIR/sweep.json, DIR/<grid point>/seed-<N>/ and
    /// the report.
    #[arg(long, required = true, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Where runs execute.
    #[arg(long, value_enum, default_value_t = ExecutorArg::Local)]
    pub executor: ExecutorArg,

    /// Runs at once (default: the number of CUDA devices, else 1); with
    /// Slurm, the array's task limit (%N).
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,

    /// Ranks of each run (data-parallel, as torchrun or srun would start
    /// them): locally N processes on localhost, each on its own GPU when
    /// there are GPUs; with Slurm, N tasks (--ntasks=N, one GPU each when
    /// the experiment's device is "cuda") started by srun.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub ranks_per_run: u16,

    /// Print the runs and do nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Reuse a directory that holds another sweep.
    #[arg(long)]
    pub force: bool,

    /// Extra sbatch options, e.g. --slurm "--partition=gpu --gres=gpu:1
    /// --time=24:00:00" (added to [sweep.slurm]).
    #[arg(long, value_name = "OPTIONS", allow_hyphen_values = true)]
    pub slurm: Option<String>,

    /// Slurm: return after submitting instead of waiting for the array.
    #[arg(long)]
    pub no_wait: bool,
}

/// What `sweep` does besides running one.
#[derive(Debug, Subcommand)]
pub enum SweepAction {
    /// Counts of done, running, interrupted, failed and pending runs, and
    /// the last log line of each failed one.
    Status {
        /// The sweep directory.
        dir: PathBuf,
    },
}

/// Where a sweep's runs execute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExecutorArg {
    /// Child processes on this machine (--jobs at once).
    Local,
    /// One Slurm job array (sbatch).
    Slurm,
}

const SWEEP_AFTER_HELP: &str = "\
Each run gets DIR/<grid point>/seed-<N>/ with what `run --out` writes, and its
log in log.txt there. Running the same command again skips finished runs,
resumes interrupted ones from their newest checkpoint and restarts failed
ones; a larger grid adds only the new runs.

Exit status: 0 when every run finished, 1 when some failed, 2 for bad input
(nothing is written or submitted then).";

/// Arguments of `swalp-cli report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The sweep directory.
    pub dir: PathBuf,
    /// The table's format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Markdown)]
    pub format: ReportFormat,
}

/// The format of `report`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// A Markdown table.
    Markdown,
    /// CSV, numbers unrounded.
    Csv,
    /// JSON.
    Json,
}

/// Arguments of `swalp-cli sweep-task`.
#[derive(Debug, Args)]
pub struct SweepTaskArgs {
    /// The sweep directory.
    pub dir: PathBuf,
    /// The run's index in DIR/sweep.json.
    pub index: usize,
}

/// Arguments of `swalp-cli data`.
#[derive(Debug, Args)]
pub struct DataArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: DataCommand,
}

/// The subcommands of `swalp-cli data`.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Download, verify (md5) and unpack a data set; skipped if already there.
    #[command(after_help = DATA_DOWNLOAD_AFTER_HELP)]
    Download(DataDownloadArgs),
}

/// Arguments of `swalp-cli data download`.
#[derive(Debug, Args)]
pub struct DataDownloadArgs {
    /// The data set.
    #[arg(value_parser = data_name_parser())]
    pub name: crate::data::real::DataName,

    /// Directory to put it in (default: data/<NAME>).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,

    /// Fetch from URL/<NAME>/<file> instead of the official hosts (also
    /// SWALP_DATA_MIRROR); URL is http(s)://HOST, optionally with :PORT and /PATH.
    /// URL/<NAME>/checksums.txt, if served, must agree with the built-in md5
    /// digests.
    #[arg(long, value_name = "URL")]
    pub mirror: Option<String>,

    /// Verify with the mirror's checksums.txt where it disagrees with the
    /// built-in md5 digests (a warning names each such file).
    #[arg(long)]
    pub trust_mirror_checksums: bool,
}

const DATA_DOWNLOAD_AFTER_HELP: &str = "\
Sources: cifar10, cifar100 from https://www.cs.toronto.edu/~kriz/ (binary
version, extracted to DIR/cifar-10-batches-bin/ or DIR/cifar-100-binary/);
mnist from https://ossci-datasets.s3.amazonaws.com/mnist/ and fashion-mnist
from http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/ (the four
.gz files, kept as they are). Every file is downloaded into a hidden staging
folder in DIR and checked against its published md5 digest; only when the whole
set is verified is it moved into place. A failed download leaves DIR as it was
(no file of the set, no staging folder); staging folders of interrupted
downloads are removed by the next download.

Mirrors: a mirror's checksums.txt must agree with the built-in digests; a
disagreement is an error unless --trust-mirror-checksums is given.

Exit status: 0 on success, 2 on a network, server, checksum or file problem
and on a write failure the user can fix (permissions, read-only file system,
full disk or quota, a file in the way), 1 on other write failures (an I/O
error).";

/// Arguments of `swalp-cli show` and `swalp-cli validate`.
#[derive(Debug, Args)]
pub struct ExperimentArgs {
    /// The experiment file (TOML).
    #[arg(value_name = "EXP.toml")]
    pub experiment: PathBuf,

    /// Override a key of the file, e.g. --set train.epochs=2 (repeatable).
    #[arg(long = "set", value_name = "KEY.PATH=VALUE")]
    pub overrides: Vec<String>,
}

/// Arguments of `swalp-cli run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The experiment, and overrides of its keys.
    #[command(flatten)]
    pub experiment: ExperimentArgs,

    /// Output directory (default: runs/<experiment.name>-<UTC date-time>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Device, overriding experiment.device.
    #[arg(long, value_enum)]
    pub device: Option<RunDeviceArg>,

    /// Run once per seed (comma-separated, e.g. 100,200,300) into
    /// DIR/seed-<N>, then print the mean ± std of the SGD and SWA test error
    /// and write DIR/summary.json.
    #[arg(long, value_name = "N,N,...", value_delimiter = ',')]
    pub seeds: Vec<u64>,

    /// Continue the run in DIR from its newest valid checkpoint (DIR is the
    /// run's output directory; with --seeds, the directory holding
    /// seed-<N>/).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["out", "overwrite"])]
    pub resume: Option<PathBuf>,

    /// Replace the run the output directory holds (its config, metrics,
    /// checkpoints, results and event files; other files stay). Without it
    /// a directory holding a run is refused.
    #[arg(long)]
    pub overwrite: bool,
}

/// Where `run` trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RunDeviceArg {
    /// CUDA when available, else the CPU.
    Auto,
    /// The CPU.
    Cpu,
    /// The first CUDA device.
    Cuda,
}

/// Arguments of `swalp-cli formats`.
#[derive(Debug, Args)]
pub struct FormatsArgs {
    /// Print a JSON array of {name, summary, params: [{name, kind, default,
    /// allowed, help}]} instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `swalp-cli quantize`.
#[derive(Debug, Args)]
#[command(override_usage = QUANTIZE_USAGE, after_help = QUANTIZE_AFTER_HELP)]
pub struct QuantizeArgs {
    /// Quantizer spec, a TOML inline table such as
    /// '{ format = "fixed", wl = 8, fl = 6, rounding = "stochastic" }'
    /// (see `swalp-cli formats`). Exactly one with IN/OUT; with --demo, repeat
    /// it to compare several (default: a built-in list).
    #[arg(long = "spec", value_name = "SPEC", required_unless_present = "demo")]
    pub specs: Vec<String>,

    /// Seed of the random streams of stochastic rounding (and of --demo's data).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// Device the quantization runs on; results are always written from the CPU.
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    pub device: DeviceArg,

    /// Kernel to use, overriding the spec's `backend` key.
    #[arg(long, value_enum)]
    pub backend: Option<BackendArg>,

    /// Instead of IN/OUT, quantize a seeded standard-normal tensor with each
    /// --spec and print a table of errors.
    #[arg(long, conflicts_with_all = ["input", "output"])]
    pub demo: bool,

    /// Number of values in --demo's tensor.
    #[arg(long, requires = "demo", default_value_t = 65536,
          value_parser = clap::value_parser!(u32).range(1..=100_000_000))]
    pub elements: u32,

    /// Tensor file to read (.npy or .safetensors); never modified.
    #[arg(value_name = "IN", required_unless_present = "demo")]
    pub input: Option<PathBuf>,

    /// Tensor file to write, with IN's extension; replaced atomically, and not
    /// created at all if anything fails.
    #[arg(value_name = "OUT", required_unless_present = "demo")]
    pub output: Option<PathBuf>,
}

const QUANTIZE_USAGE: &str = "\
swalp-cli quantize --spec <SPEC> [--seed <N>] [--device cpu|cuda] [--backend native|tensor|auto] <IN> <OUT>
       swalp-cli quantize --demo [--spec <SPEC>]... [--seed <N>] [--elements <N>] [--device ...] [--backend ...]";

const QUANTIZE_AFTER_HELP: &str = "\
Files: a .npy holds one tensor; every tensor of a .safetensors is quantized, in
file order, each with its own random stream from --seed, names kept.

Dtypes: f32 tensors are written as f32. f64, f16 and bf16 tensors are converted
to f32 with a warning, and written as f32. Integer, bool and complex tensors are
refused.

Exit status: 0 on success, 2 on a usage error or bad input, 1 on an internal
failure.

Examples:
  swalp-cli quantize --spec '{ format = \"fixed\", wl = 8, fl = 6 }' w.npy w8.npy
  swalp-cli quantize --spec '{ format = \"bfp\", wl = 8, block = { dim = 0 }, rounding = \"stochastic\" }' \\
      --seed 1 model.safetensors model-bfp8.safetensors
  swalp-cli quantize --demo";

/// `--device`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DeviceArg {
    /// The CPU.
    Cpu,
    /// The first CUDA GPU.
    Cuda,
}

/// `--backend`, mirroring [`swalp_core::Backend`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    /// The fused Rust CPU kernel (f32 CPU tensors only).
    Native,
    /// Composed libtorch ops (any device).
    Tensor,
    /// The fused CUDA kernel, compiled at run time (CUDA tensors only).
    Cuda,
    /// Native on the CPU and CUDA on a GPU when they apply, tensor otherwise.
    Auto,
}

impl std::fmt::Display for DeviceArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DeviceArg::Cpu => "cpu",
            DeviceArg::Cuda => "cuda",
        })
    }
}

impl From<BackendArg> for Backend {
    fn from(arg: BackendArg) -> Self {
        match arg {
            BackendArg::Native => Backend::Native,
            BackendArg::Tensor => Backend::Tensor,
            BackendArg::Cuda => Backend::Cuda,
            BackendArg::Auto => Backend::Auto,
        }
    }
}

/// The real data sets by their names, listed in `--help` and in errors.
fn data_name_parser() -> impl clap::builder::TypedValueParser<Value = crate::data::real::DataName> {
    use crate::data::real::DataName;
    use clap::builder::TypedValueParser;
    let names = DataName::ALL.map(DataName::name);
    clap::builder::PossibleValuesParser::new(names)
        .try_map(|name| DataName::from_name(&name).ok_or(format!("unknown data set {name:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn backend_names_match_the_core() {
        for arg in BackendArg::value_variants() {
            let name = arg.to_possible_value().map(|v| v.get_name().to_string());
            assert_eq!(name, Some(Backend::from(*arg).to_string()));
        }
    }
}

/// Arguments of `swalp-cli bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Number of f32 elements the kernels round.
    #[arg(long, default_value_t = 1 << 24,
          value_parser = clap::value_parser!(u64).range(4096..=1 << 30))]
    pub elements: u64,

    /// Time a VGG16 training step (batch 32, CIFAR-shaped input) in full
    /// precision and with 8-bit block floating point at all six points.
    #[arg(long, conflicts_with = "matmul")]
    pub train: bool,

    /// Time matrix products that multiply and accumulate in chosen formats
    /// (`[quant.matmul]`) on the CPU, next to libtorch's f32 product:
    /// `[--batch, 512] x [512, 512]` (default batch 256).
    #[arg(long, conflicts_with = "device")]
    pub matmul: bool,

    /// Time only this format (a quantizer spec such as
    /// `{ format = "nvfp4" }`; repeat for several). Default: every built-in
    /// format family.
    #[arg(long = "format", value_name = "SPEC")]
    pub formats: Vec<String>,

    /// Where to time: the kernels on the CPU (native and tensor backends) or
    /// on the first CUDA GPU (CUDA and tensor backends); the training step
    /// on the CPU or the GPU. Default: the CPU for kernels, the GPU if there
    /// is one for `--train`.
    #[arg(long, value_enum)]
    pub device: Option<DeviceArg>,

    /// Batch size of the `--train` step (default: 32 on the CPU, 128 on a
    /// GPU), or rows of the `--matmul` product (default 256).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub batch: Option<u64>,

    /// Training steps timed (the median is reported), after two warm-up steps.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub steps: u64,

    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
}
