//! The conformance kit (`swalp-conformance`) on the `int` format, per tensor
//! and per channel. Exact values are in `int.rs`.

use swalp_conformance::Conformance;
use swalp_core::Rounding;
use swalp_intscale as _;

/// Outputs are the `f32` nearest `i · m/Q`, not `i · m/Q` itself, so a
/// directed or stochastic rounding applied again sees `i ± tiny` and may
/// move a step (`4 bits`, `m = 31.75`: toward-zero gives
/// `f32(31.75/7) = 4.535714`, just below `31.75/7`; again toward zero:
/// `0`). Nearest rounding recovers `i` (the error is below half a step for
/// every `bits <= 24`), so outputs are representable and idempotent under
/// the nearest modes only.
const NOT_ON_THE_F32_GRID: &str = "outputs are f32(i·m/Q), not i·m/Q: re-rounding toward \
     zero, down, up or stochastically may move them a step";

fn int(spec: &str) -> Conformance {
    Conformance::new(spec)
        .exponents(-8, 4)
        .idempotent_roundings(&Rounding::NEAREST, NOT_ON_THE_F32_GRID)
        // The neighbours of the unbiasedness check are f32-rounded too,
        // which matters where the step is a few ulps (24 bits: x = -28 sits
        // between -28 ± 1 ulp, but the grid points are not those).
        .output_ulps(1)
        .sign_symmetric()
}

#[test]
fn per_tensor_scale() {
    for bits in [2, 4, 8, 16, 24] {
        int(&format!(r#"{{ format = "int", bits = {bits} }}"#)).run();
    }
}

#[test]
fn per_channel_scale() {
    // One scale per slice along channel_dim: an anchor in every slice.
    int(r#"{ format = "int", bits = 8, channel_dim = 0 }"#)
        .shapes(&[&[20, 50], &[4, 5, 6]])
        .monotone_anchored(&[16, 40], 8.0, |idx| idx[1] == 0)
        .run();
    int(r#"{ format = "int", bits = 6, channel_dim = 1 }"#)
        .shapes(&[&[20, 50], &[4, 5, 6]])
        .monotone_anchored(&[16, 40], 8.0, |idx| idx[0] == 0)
        .run();
    int(r#"{ format = "int", bits = 12, channel_dim = -1 }"#)
        .shapes(&[&[20, 50], &[4, 5, 6]])
        .monotone_anchored(&[16, 40], 8.0, |idx| idx[0] == 0)
        .run();
}
