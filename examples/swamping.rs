//! Swamping, shown directly: the dot product of 4096 products equal to
//! 2^-11 (true value 2) accumulated in fp16, as one running sum, with every
//! addition rounded (chunk 1), with chunks of 64 summed in f32 first (Wang
//! et al., NeurIPS 2018), and with stochastic rounding of the running sum.
//!
//! Unchunked, the fp16 sum stops growing at 1: there its step (2^-10) is
//! twice the addend, and 1 + 2^-11 ties back to 1. Chunks keep every
//! product; stochastic rounding is right on average.
//!
//! ```text
//! swalp-cli/scripts/with-torch cargo run --release --example swamping
//! ```

use swalp_core::matmul::Accumulation;
use swalp_core::tch::{Device, Kind, Tensor};
use swalp_core::{QuantRng, Quantizer};
use swalp_formats as _; // links the built-in formats into the registry

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let k = 4096;
    let a = Tensor::full([1, k], 1.0 / 2048.0, (Kind::Float, Device::Cpu));
    let b = Tensor::ones([k, 1], (Kind::Float, Device::Cpu));
    let fp16: Quantizer = r#"{ format = "fp16" }"#.parse()?;
    let fp16_sr: Quantizer = r#"{ format = "fp16", rounding = "stochastic" }"#.parse()?;
    let rows = [
        (
            "fp16 running sum",
            Accumulation::new(None, fp16.clone(), None, None)?,
        ),
        (
            "fp16, chunk 1",
            Accumulation::new(None, fp16.clone(), Some(1), None)?,
        ),
        (
            "fp16, chunks of 64 in f32",
            Accumulation::new(None, fp16, Some(64), None)?,
        ),
        (
            "fp16 running sum, stochastic",
            Accumulation::new(None, fp16_sr, None, None)?,
        ),
    ];
    println!("sum of {k} products 2^-11 (exact: 2)");
    let mut sums = Vec::new();
    for (name, acc) in &rows {
        let y = acc
            .matmul(&a, &b, &mut QuantRng::new(0))?
            .double_value(&[0, 0]);
        println!("{name:>30}: {y}");
        sums.push(y);
    }
    assert_eq!(&sums[..3], [1.0, 1.0, 2.0], "what this example shows");
    assert!((sums[3] - 2.0).abs() < 0.1);
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
