//! Gives this crate's tests the rpath to libtorch that swalp-core computed,
//! and compiles the CPU twins of the format's CUDA kernels (`cuda/*.cu` as
//! C++, against swalp-core's `swalp.cuh`).
fn main() {
    if let Ok(args) = std::env::var("DEP_SWALP_CORE_LINK_ARGS") {
        for arg in args.split('\t') {
            println!("cargo:rustc-link-arg={arg}");
        }
    }
    println!("cargo:rerun-if-changed=cuda");
    let core = std::env::var("DEP_SWALP_CORE_CUDA_INCLUDE")
        .expect("swalp-core's build script reports its CUDA header directory");
    // The twin's arithmetic must be the kernels': no fused multiply-adds.
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .warnings(true)
        .flag("-std=c++17")
        .flag("-ffp-contract=off")
        .include(core)
        .include("cuda")
        .file("cuda/twin.cpp")
        .compile("swalp_formats_cuda_twin");
}
