//! A minimal swalp format plugin: `pow2`, the values 0 and ±2^e for e in
//! `emin..=emax` (power-of-two, or logarithmic, quantization).
//!
//! Spec: `{ format = "pow2", emin = -4, emax = 4, rounding = "stochastic" }`.
//! Between 2^e and 2^(e+1) every rounding mode decides in value, as on a grid
//! of step 2^e (so nearest-even ties go up, to the even multiple 2·2^e, and
//! stochastic rounding is unbiased); below 2^emin the neighbours are 0 and
//! 2^emin; values beyond 2^emax saturate.

use swalp_core::kernel::{native, tensor};
use swalp_core::tch::Tensor;
use swalp_core::{
    FormatFactory, NumberFormat, ParamInfo, Params, RandomStream, Result, Rounding, SpecError,
};

/// The `pow2` format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pow2 {
    /// The smallest nonzero magnitude is 2^emin.
    pub emin: i32,
    /// The largest magnitude is 2^emax.
    pub emax: i32,
}

impl NumberFormat for Pow2 {
    fn name(&self) -> &str {
        "pow2"
    }

    fn params(&self) -> toml::Table {
        let mut t = toml::Table::new();
        EMIN.put(&mut t, i64::from(self.emin));
        EMAX.put(&mut t, i64::from(self.emax));
        t
    }

    fn bits_per_value(&self) -> f64 {
        // A sign bit and a code for zero and each exponent.
        1.0 + f64::from(self.emax - self.emin + 2).log2().ceil()
    }

    fn quantize_tensor(
        &self,
        x: &Tensor,
        rounding: Rounding,
        random: Option<RandomStream>,
    ) -> Result<Tensor> {
        // Round on the grid of step 2^e, e the binade of x, clamped to the range.
        let k = tensor::exponent(x)?.f_clamp(i64::from(self.emin), i64::from(self.emax))?;
        let n = tensor::round_to_grid(x, &k, rounding, tensor::draws(random, x)?.as_ref())?;
        let max = native::pow2(self.emax);
        Ok(n.f_mul(&tensor::pow2(&k)?)?.f_clamp(-max, max)?)
    }

    fn has_native(&self) -> bool {
        true
    }

    fn quantize_native(
        &self,
        x: &[f32],
        _shape: &[usize],
        out: &mut [f32],
        rounding: Rounding,
        random: Option<RandomStream>,
    ) -> Result<()> {
        let max = native::pow2(self.emax);
        native::map_indexed(x, out, |i, v| {
            let v = f64::from(v);
            let k = native::exponent(v).clamp(self.emin, self.emax);
            let n = native::round_to_grid(v, k, rounding, native::draw(random, i));
            (n * native::pow2(k)).clamp(-max, max) as f32
        });
        Ok(())
    }
}

// Each key declared once: parsing, params() and `swalp-cli formats` read it.
const EMIN: ParamInfo = ParamInfo::int("emin", -126, 127, "smallest nonzero magnitude 2^emin");
const EMAX: ParamInfo =
    ParamInfo::int("emax", -126, 127, "largest magnitude 2^emax, at least emin");
const PARAMS: &[ParamInfo] = &[EMIN, EMAX];

fn build(p: &mut Params<'_>) -> Result<Box<dyn NumberFormat>, SpecError> {
    let emin = p.int(&EMIN)?;
    let emax = p.int(&EMAX)?;
    if emax < emin {
        return Err(swalp_core::spec::invalid(
            EMAX.name,
            &emax.into(),
            &format!("an integer in {emin}..=127 (at least emin)"),
        ));
    }
    Ok(Box::new(Pow2 {
        emin: emin as i32,
        emax: emax as i32,
    }))
}

swalp_core::register_format!(FormatFactory {
    name: "pow2",
    summary: "powers of two: 0 and ±2^e for e in emin..=emax",
    params: PARAMS,
    build,
});

#[cfg(test)]
mod tests {
    use swalp_core::{tch::Tensor, QuantRng, Quantizer};

    fn quantize(spec: &str, x: &[f32], seed: u64) -> Vec<f32> {
        let q: Quantizer = spec.parse().unwrap();
        let y = q.quantize(&Tensor::from_slice(x), &mut QuantRng::new(seed));
        Vec::try_from(y.unwrap()).unwrap()
    }

    #[test]
    fn exact_values_on_both_backends() {
        // 0.3 is nearer 0.25 than 0.5; 1.5 and 3.0 are ties (to 2·2^e);
        // 0.04 is nearer 2^-4 than 0; 0.01 nearer 0; 100 saturates.
        let x = [0.3, -0.3, 1.5, 3.0, 0.04, -0.01, 100.0, f32::NEG_INFINITY];
        let expected = [0.25, -0.25, 2.0, 4.0, 0.0625, -0.0, 16.0, -16.0];
        for backend in ["native", "tensor"] {
            let spec =
                format!(r#"{{ format = "pow2", emin = -4, emax = 4, backend = "{backend}" }}"#);
            assert_eq!(quantize(&spec, &x, 0), expected, "{backend}");
        }
    }

    #[test]
    fn stochastic_rounding_is_unbiased_and_backends_agree() {
        // 0.4 lies 60% of the way from 0.25 to 0.5.
        let x = vec![0.4f32; 1 << 16];
        let spec = |b: &str| {
            format!(
                r#"{{ format = "pow2", emin = -4, emax = 4, rounding = "stochastic", backend = "{b}" }}"#
            )
        };
        let (native, tensor) = (
            quantize(&spec("native"), &x, 7),
            quantize(&spec("tensor"), &x, 7),
        );
        assert_eq!(native, tensor);
        assert!(native.iter().all(|&y| y == 0.25 || y == 0.5));
        let mean = native.iter().map(|&y| f64::from(y)).sum::<f64>() / x.len() as f64;
        assert!((mean - 0.4).abs() < 0.002, "mean {mean}");
    }
}
