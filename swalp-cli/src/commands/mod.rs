//! One module per subcommand; each exposes `run(args, out)`.

pub mod demo;
pub mod formats;
pub mod quantize;
pub mod run;
