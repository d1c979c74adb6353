//! Builds the C++ shim (`cpp/quant_hook.cpp`, the autograd hook,
//! `cpp/matmul_node.cpp`, the autograd node of layers' matrix products,
//! `cpp/scaled_ops.cpp`, operators tch lacks, `cpp/cuda_stream.cpp`,
//! PyTorch's current CUDA stream, `cpp/distributed.cpp`, c10d's process
//! groups, and `cpp/distributed_nccl.cpp`, their NCCL backend) against
//! libtorch's headers, the CPU twin
//! of the CUDA header (`cuda/swalp.cuh`), and makes every binary that links
//! swalp find libtorch at run time.
//!
//! It also tells the CUDA backend where the PyTorch wheel's NVRTC lives
//! (`SWALP_NVRTC_DIR`, a default the `SWALP_NVRTC` variable overrides at
//! run time) and dependent build scripts where the CUDA header is
//! (`DEP_SWALP_CORE_CUDA_INCLUDE`), for their own CPU twins.
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
    println!("cargo:rerun-if-changed=cpp/matmul_node.cpp");
    println!("cargo:rerun-if-changed=cpp/scaled_ops.cpp");
    println!("cargo:rerun-if-changed=cpp/cuda_stream.cpp");
    println!("cargo:rerun-if-changed=cpp/distributed.cpp");
    println!("cargo:rerun-if-changed=cpp/distributed_nccl.cpp");
    println!("cargo:rerun-if-changed=cpp/gloo_decls");
    println!("cargo:rerun-if-changed=cuda/swalp.cuh");
    println!("cargo:rerun-if-changed=cuda/twin_core.cpp");
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
    // The wheel's CUDA libraries (nvidia/cu13 beside torch/).
    let nvidia = lib.join("../../nvidia/cu13");
    let with_cuda = lib.join("libc10_cuda.so").exists();
    let mut shim = cc::Build::new();
    shim.cpp(true)
        .pic(true)
        .warnings(false)
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag("-D_GLIBCXX_USE_CXX11_ABI=1")
        .file("cpp/quant_hook.cpp")
        .file("cpp/matmul_node.cpp")
        .file("cpp/scaled_ops.cpp")
        .file("cpp/cuda_stream.cpp")
        // c10d's Gloo backend, whose header needs a few of Gloo's
        // declarations (the wheel has Gloo compiled in, not its headers).
        .define("USE_C10D_GLOO", None)
        .include("cpp/gloo_decls")
        .file("cpp/distributed.cpp");
    if with_cuda {
        shim.define("SWALP_WITH_CUDA", None);
        println!("cargo:rustc-link-lib=dylib=c10_cuda");
    }
    shim.compile("swalp_hook");
    nccl_backend(&include, &nvidia, with_cuda);

    // The twin's arithmetic must be the kernels': no fused multiply-adds.
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .warnings(true)
        .flag("-std=c++17")
        .flag("-ffp-contract=off")
        .include("cuda")
        .file("cuda/twin_core.cpp")
        .compile("swalp_cuda_twin_core");
    let cuda_include =
        Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default()).join("cuda");
    println!("cargo:cuda_include={}", cuda_include.display());
    let nvrtc_dir = nvidia.join("lib");
    if nvrtc_dir.join("libnvrtc.so.13").exists() {
        let dir = nvrtc_dir.canonicalize().unwrap_or(nvrtc_dir);
        println!("cargo:rustc-env=SWALP_NVRTC_DIR={}", dir.display());
    }

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

/// Builds `cpp/distributed_nccl.cpp`, c10d's NCCL backend, on its own (only
/// it sees the CUDA headers): with `USE_C10D_NCCL` when libtorch has CUDA
/// and the CUDA runtime's headers are complete (the wheel's lack `crt/` and
/// CCCL's `nv/`, which with-torch adds from NVIDIA's nvidia-cuda-crt and
/// nvidia-cuda-cccl wheels) and NCCL's header is there; otherwise as a stub
/// that says why there is no NCCL.
fn nccl_backend(include: &Path, nvidia: &Path, with_cuda: bool) {
    let cuda_include = nvidia.join("include");
    let nccl_include = nvidia.join("../nccl/include");
    let complete = [
        cuda_include.join("cuda_runtime.h"),
        cuda_include.join("crt/host_config.h"),
        cuda_include.join("nv/target"),
        nccl_include.join("nccl.h"),
    ]
    .iter()
    .all(|p| p.exists());
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(include)
        .include(include.join("torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag("-D_GLIBCXX_USE_CXX11_ABI=1")
        .file("cpp/distributed_nccl.cpp");
    if with_cuda && complete {
        build
            .define("USE_C10D_NCCL", None)
            .include(&cuda_include)
            .include(cuda_include.join("cccl"))
            .include(&nccl_include);
    }
    build.compile("swalp_nccl");
}
