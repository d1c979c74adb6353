//! Define a number format in about 40 lines and use it by name, like any
//! built-in one.
//!
//! The format is `ternary`, TernGrad's (Wen et al., 2017): the values `-s`, `0`
//! and `s`, with `s = max|x|` per tensor, or per row with `per_row = true`.
//! Dividing by `s` puts every value in `[-1, 1]`, so rounding to an integer
//! with the quantizer's rounding mode picks -1, 0 or 1; with stochastic
//! rounding the result is unbiased. The type implements
//! `swalp_core::NumberFormat` with a tensor kernel only (so it runs on any
//! device), and `swalp_core::register_format!` makes
//! `{ format = "ternary", per_row = true, rounding = "stochastic" }` a valid
//! spec everywhere specs are read.
//!
//! ```text
//! swalp-cli/scripts/with-torch cargo run --release --example custom_format
//! ```

use swalp_core::kernel::tensor::draws;
use swalp_core::tch::{Kind, Tensor};
use swalp_core::{FormatFactory, NumberFormat, ParamInfo, Params, QuantRng, Quantizer};
use swalp_core::{RandomStream, Result, Rounding, SpecError};

// ---- the format: everything a plugin crate would contain ------------------

#[derive(Clone, Debug)]
struct Ternary {
    per_row: bool,
}

impl NumberFormat for Ternary {
    fn name(&self) -> &str {
        "ternary"
    }
    fn params(&self) -> toml::Table {
        let mut spec = toml::Table::new();
        PER_ROW.put(&mut spec, self.per_row);
        spec
    }
    fn bits_per_value(&self) -> f64 {
        3f64.log2() // the scale is shared by a whole tensor or row
    }
    fn quantize_tensor(
        &self,
        x: &Tensor,
        r: Rounding,
        random: Option<RandomStream>,
    ) -> Result<Tensor> {
        let s = if self.per_row && x.dim() > 1 {
            let dims: Vec<i64> = (1..x.dim() as i64).collect();
            x.abs().amax(dims, true) // shape [rows, 1, ...]: one scale per row
        } else {
            x.abs().max()
        };
        let s = s.clamp_min(f64::MIN_POSITIVE); // an all-zero tensor stays zero
        let n = r.round_int_tensor(&(x / &s), draws(random, x)?.as_ref())?;
        Ok(n * s)
    }
}

// The key, its default and its help, declared once: parsing, `params()` and
// `swalp-cli formats` all read this.
const PER_ROW: ParamInfo = ParamInfo::boolean(
    "per_row",
    false,
    "one scale per row (dim 0) instead of per tensor",
);

fn build(p: &mut Params<'_>) -> Result<Box<dyn NumberFormat>, SpecError> {
    Ok(Box::new(Ternary {
        per_row: p.boolean(&PER_ROW)?,
    }))
}

swalp_core::register_format!(FormatFactory {
    name: "ternary",
    summary: "TernGrad's values -s, 0, s with s = max|x| per tensor or per row",
    params: &[PER_ROW],
    build,
});

// ---- using it by name -----------------------------------------------------

fn show(values: &Tensor) -> String {
    let v: Vec<f32> = Vec::try_from(values.flatten(0, -1)).expect("f32 values");
    v.iter().map(|x| format!("{x:>6.2}")).collect()
}

fn main() -> Result<()> {
    let factory = swalp_core::registry::find("ternary")?;
    println!("registered: {}: {}", factory.name, factory.summary);

    let x = Tensor::from_slice(&[0.9f32, -0.3, 0.05, 0.5, -1.2, 0.6]);
    let mut rng = QuantRng::new(0);
    println!("{:<21}{}", "input:", show(&x));
    for rounding in ["nearest-even", "stochastic"] {
        let q: Quantizer =
            format!(r#"{{ format = "ternary", rounding = "{rounding}" }}"#).parse()?;
        let y = q.quantize(&x, &mut rng)?;
        println!("{:<21}{}    {q}", format!("{rounding}:"), show(&y));
    }

    // Stochastic rounding is unbiased: the mean of many draws approaches x.
    let q: Quantizer = r#"{ format = "ternary", rounding = "stochastic" }"#.parse()?;
    let n = 20_000;
    let copies = x.unsqueeze(0).repeat([n, 1]); // every row is x; per tensor, s = 1.2
    let mean = q
        .quantize(&copies, &mut rng)?
        .mean_dim(0, false, Kind::Float);
    let bias = (&mean - &x).abs().max().double_value(&[]);
    let label = format!("mean of {n} draws:");
    println!("{label:<21}{}    (max |mean - x| = {bias:.4})", show(&mean));
    assert!(
        bias < 0.03,
        "stochastic ternary rounding should be unbiased"
    );

    // One scale per row of a matrix.
    let w = Tensor::from_slice(&[0.2f32, -0.1, 0.05, 4.0, -3.0, 1.0]).view([2, 3]);
    let q: Quantizer = r#"{ format = "ternary", per_row = true }"#.parse()?;
    println!("{:<21}{}", "matrix (2 x 3):", show(&w));
    println!(
        "{:<21}{}    {q}",
        "per row:",
        show(&q.quantize(&w, &mut rng)?)
    );
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
