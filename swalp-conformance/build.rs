//! Gives this crate's tests the rpath to libtorch that swalp-core computed.
fn main() {
    if let Ok(args) = std::env::var("DEP_SWALP_CORE_LINK_ARGS") {
        for arg in args.split('\t') {
            println!("cargo:rustc-link-arg={arg}");
        }
    }
}
