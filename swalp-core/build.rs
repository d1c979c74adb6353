//! Builds the C++ shim (`cpp/quant_hook.cpp`, the autograd hook, and
//! `cpp/scaled_ops.cpp`, operators tch lacks) against libtorch's headers
//! and makes every binary that links swalp find libtorch at run time.
//!
//! torch-sys reports libtorch's directory as `DEP_TCH_LIBTORCH_LIB`. This
//! script bakes it into this crate's tests as an rpath and passes the link
//! arguments on as `DEP_SWALP_CORE_LINK_ARGS` (via `links = "swalp_core"`), so
//! dependent crates' build scripts can do the same for their binaries (see
//! `swalp-formats/build.rs`). It also keeps `libtorch_cuda` linked: the
//! linker's as-needed default drops it because no symbol is used directly,
//! and then CUDA is invisible at run time.

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-changed=cpp/quant_hook.cpp");
    println!("cargo:rerun-if-changed=cpp/scaled_ops.cpp");
    // Without libtorch's directory the C++ shim cannot be built, and the
    // crate would fail later with unresolved symbols at link time: say why
    // now.
    let Ok(lib_dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        panic!(
            "swalp-core: torch-sys did not report libtorch's directory \
             (DEP_TCH_LIBTORCH_LIB), which the C++ shim is built against; build \
             through swalp-cli/scripts/with-torch (or with LIBTORCH_USE_PYTORCH=1 and \
             PyTorch 2.11.0 importable, or LIBTORCH pointing at libtorch 2.11.0)"
        );
    };
    let lib = Path::new(&lib_dir);
    let include = lib.join("../include");
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag("-D_GLIBCXX_USE_CXX11_ABI=1")
        .file("cpp/quant_hook.cpp")
        .file("cpp/scaled_ops.cpp")
        .compile("swalp_hook");

    let mut args = vec![format!("-Wl,-rpath,{lib_dir}")];
    if lib.join("libtorch_cuda.so").exists() {
        args.push(format!(
            "-Wl,--push-state,--no-as-needed,-L{lib_dir},-ltorch_cuda,--pop-state"
        ));
    }
    for arg in &args {
        println!("cargo:rustc-link-arg={arg}");
    }
    println!("cargo:libtorch_lib={lib_dir}");
    println!("cargo:link_args={}", args.join("\t"));
}
