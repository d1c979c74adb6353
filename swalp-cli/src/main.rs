//! The `swalp-cli` binary: the library's entry point with the built-in
//! formats. A custom binary links more format crates and calls the same.

fn main() -> std::process::ExitCode {
    swalp_cli::main()
}
