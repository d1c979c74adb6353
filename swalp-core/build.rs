//! Makes every binary that links swalp find libtorch at run time.
//!
//! torch-sys reports libtorch's directory as `DEP_TCH_LIBTORCH_LIB`. This
//! script bakes it into this crate's tests as an rpath and passes it on as
//! `DEP_SWALP_CORE_LINK_ARGS` (via `links = "swalp_core"`), so dependent
//! crates' build scripts can do the same for their binaries (see
//! `swalp-cli/build.rs`). It also keeps `libtorch_cuda` linked: the linker's
//! as-needed default drops it because no symbol is used directly, and then
//! CUDA is invisible at run time.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(lib_dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        return;
    };
    let mut args = vec![format!("-Wl,-rpath,{lib_dir}")];
    if std::path::Path::new(&lib_dir).join("libtorch_cuda.so").exists() {
        args.push(format!("-Wl,--push-state,--no-as-needed,-L{lib_dir},-ltorch_cuda,--pop-state"));
    }
    for arg in &args {
        println!("cargo:rustc-link-arg={arg}");
    }
    println!("cargo:libtorch_lib={lib_dir}");
    println!("cargo:link_args={}", args.join("\t"));
}
