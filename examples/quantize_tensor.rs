//! Quantize one tensor with every built-in format family (`fixed`, `float`,
//! `bfp`, `mx`, `nvfp4`, `fp8_scaled` and the presets `bfloat16`, `fp16`, `fp8_e4m3`, `fp8_e5m2`)
//! and compare storage cost and error.
//!
//! Each row prints the quantizer's full spec (defaults filled in), its bits
//! per value and the signal-to-noise ratio of the quantized tensor. The
//! example checks at the end that it covered every registered format.
//!
//! ```text
//! swalp-cli/scripts/with-torch cargo run --release --example quantize_tensor
//! ```

use std::collections::BTreeSet;

use swalp_core::tch::{Device, Kind, Tensor};
use swalp_core::{QuantRng, Quantizer};
use swalp_formats as _; // links the built-in formats into the registry

fn main() -> Result<(), swalp_core::Error> {
    swalp_core::tch::manual_seed(0);
    let x = Tensor::randn([256, 256], (Kind::Float, Device::Cpu));
    let specs = [
        r#"{ format = "fixed", wl = 8, fl = 5 }"#,
        r#"{ format = "fixed", wl = 8, fl = 5, rounding = "stochastic" }"#,
        r#"{ format = "float", exp = 4, man = 3, specials = "none" }"#,
        r#"{ format = "bfp", wl = 8, block = "tensor" }"#,
        r#"{ format = "bfp", wl = 8, block = { dim = 0 } }"#,
        r#"{ format = "bfp", wl = 8, block = { size = 32, dim = 1 } }"#,
        r#"{ format = "mx", elem = "fp8_e4m3" }"#,
        r#"{ format = "mx", elem = "fp6_e2m3" }"#,
        r#"{ format = "mx", elem = "fp4_e2m1", rounding = "stochastic" }"#,
        r#"{ format = "mx", elem = "int8", block_size = 16, dim = 0 }"#,
        r#"{ format = "nvfp4" }"#,
        r#"{ format = "fp8_scaled", granularity = "row" }"#,
        r#"{ format = "fp8_scaled", elem = "e5m2", granularity = { block = 128 }, pow2 = true }"#,
        r#"{ format = "nvfp4", block = "2d", rounding = "stochastic" }"#,
        r#"{ format = "bfloat16" }"#,
        r#"{ format = "fp16" }"#,
        r#"{ format = "fp8_e4m3" }"#,
        r#"{ format = "fp8_e5m2", rounding = "stochastic" }"#,
    ];
    let mut rng = QuantRng::new(0);
    let signal = x.square().mean(Kind::Double).double_value(&[]);
    let mut rows = Vec::new();
    let mut covered = BTreeSet::new();
    for spec in specs {
        let q: Quantizer = spec.parse()?;
        let y = q.quantize(&x, &mut rng)?;
        let noise = (&y - &x).square().mean(Kind::Double).double_value(&[]);
        let snr = 10.0 * (signal / noise).log10();
        covered.insert(q.format().name().to_string());
        rows.push((q.to_string(), q.format().bits_per_value(), snr));
    }
    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    println!("{:<width$} {:>6} {:>9}", "spec", "bits", "SNR (dB)");
    for (spec, bits, snr) in rows {
        println!("{spec:<width$} {bits:>6.2} {snr:>9.2}");
    }

    let registered: BTreeSet<String> = swalp_core::registry::formats()
        .iter()
        .map(|f| f.name.to_string())
        .collect();
    let missing: Vec<&String> = registered.difference(&covered).collect();
    assert!(missing.is_empty(), "formats not shown: {missing:?}");
    let names: Vec<&str> = registered.iter().map(String::as_str).collect();
    println!("covered every registered format: {}", names.join(", "));
    Ok(())
}

#[cfg(test)]
mod tests {
    /// `cargo test` runs the example end to end; its assertions check what
    /// it claims.
    #[test]
    fn runs() {
        super::main().unwrap();
    }
}
