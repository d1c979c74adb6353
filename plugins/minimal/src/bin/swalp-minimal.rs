//! `swalp-cli` with the `pow2` format: the same program, one more crate linked.

// Linking the plugin is what registers its formats.
use swalp_plugin_minimal as _;

fn main() -> std::process::ExitCode {
    swalp_cli::main()
}
