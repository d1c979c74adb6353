//! The checks every swalp format must pass: representable and idempotent
//! outputs, monotone rounding, native == tensor bit for bit, unbiased
//! stochastic rounding, ±0/NaN/Inf handling and sign symmetry.

use swalp_plugin_minimal as _;

#[test]
fn pow2_conforms() {
    swalp_conformance::Conformance::new(r#"{ format = "pow2", emin = -4, emax = 4 }"#)
        .exponents(-7, 6)
        .sign_symmetric()
        .run();
    swalp_conformance::check(r#"{ format = "pow2", emin = -126, emax = 127 }"#);
}
