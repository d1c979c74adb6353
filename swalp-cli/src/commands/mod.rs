//! One module per subcommand; each exposes `run(args, out)`.

pub mod bench;
pub mod bench_matmul;
pub mod data;
pub mod demo;
pub mod formats;
pub mod observers;
pub mod quantize;
pub mod run;
pub mod sweep;
pub mod timing;
