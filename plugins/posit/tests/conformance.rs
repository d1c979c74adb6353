//! The conformance kit (`swalp-conformance`) on posits of several sizes.
//! Exact values (every posit of the small formats, the standard's rounding)
//! are in `posit.rs`.

use swalp_conformance::{Conformance, Zero};
use swalp_posit as _;

fn posit(n: u32, es: u32, lo: i32, hi: i32) {
    Conformance::new(&format!(r#"{{ format = "posit", n = {n}, es = {es} }}"#))
        .exponents(lo, hi)
        // Posits have one zero (pattern 0): -0 becomes +0. NaN and ±Inf
        // become NaR (NaN), which the kit accepts.
        .zero(Zero::Unsigned)
        .sign_symmetric()
        .run();
}

#[test]
fn small_posits_conform() {
    posit(5, 1, -8, 7);
    posit(8, 0, -8, 7);
    posit(8, 2, -26, 25);
}

#[test]
fn wide_posits_conform() {
    posit(16, 1, -30, 29);
    posit(32, 2, -40, 40);
}
