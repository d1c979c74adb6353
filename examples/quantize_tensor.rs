//! Quantize one tensor with every registered format and compare the error.
//!
//! ```text
//! cargo run --release --example quantize_tensor
//! ```

use swalp_core::tch::{Device, Kind, Tensor};
use swalp_core::{QuantRng, Quantizer};
use swalp_formats as _; // links the built-in formats into the registry

fn main() -> Result<(), swalp_core::Error> {
    swalp_core::tch::manual_seed(0);
    let x = Tensor::randn([256, 256], (Kind::Float, Device::Cpu));
    let specs = [
        r#"{ format = "fixed", wl = 8, fl = 5 }"#,
        r#"{ format = "float", exp = 4, man = 3, specials = "none" }"#,
        r#"{ format = "bfp", wl = 8, block = "tensor" }"#,
        r#"{ format = "bfp", wl = 8, block = { dim = 0 } }"#,
        r#"{ format = "bfp", wl = 8, block = { size = 32, dim = 1 } }"#,
        r#"{ format = "bfloat16" }"#,
        r#"{ format = "fp16" }"#,
        r#"{ format = "fp8_e4m3" }"#,
        r#"{ format = "fp8_e5m2", rounding = "stochastic" }"#,
    ];
    let mut rng = QuantRng::new(0);
    let signal = x.square().mean(Kind::Double).double_value(&[]);
    println!("{:<64} {:>6} {:>9}", "spec", "bits", "SNR (dB)");
    for spec in specs {
        let q: Quantizer = spec.parse()?;
        let y = q.quantize(&x, &mut rng)?;
        let noise = (&y - &x).square().mean(Kind::Double).double_value(&[]);
        let snr = 10.0 * (signal / noise).log10();
        println!(
            "{:<64} {:>6.2} {:>9.2}",
            q.to_string(),
            q.format().bits_per_value(),
            snr
        );
    }
    Ok(())
}
