//! `swalp-cli quantize --demo`: quantize a seeded standard-normal tensor
//! with several specs and compare their errors, no files needed.

use std::io::Write;

use swalp_core::{QuantRng, Quantizer};
use tch::{Device, Kind, Tensor};

use super::quantize::{build_quantizer, select_device};
use crate::cli::QuantizeArgs;
use crate::error::CliError;

/// The specs compared when `--demo` gets no `--spec`: fixed point, an
/// e5m2-like float, block floating point per tensor and per block of 16,
/// every preset and MXFP8.
pub const DEFAULT_SPECS: &[&str] = &[
    r#"{ format = "fixed", wl = 8, fl = 5 }"#,
    r#"{ format = "fixed", wl = 8, fl = 5, rounding = "stochastic" }"#,
    r#"{ format = "float", exp = 5, man = 2 }"#,
    r#"{ format = "bfp", wl = 8, block = "tensor" }"#,
    r#"{ format = "bfp", wl = 8, block = { size = 16, dim = 0 } }"#,
    r#"{ format = "bfloat16" }"#,
    r#"{ format = "fp16" }"#,
    r#"{ format = "fp8_e4m3" }"#,
    r#"{ format = "fp8_e5m2" }"#,
    r#"{ format = "mx", elem = "fp8_e4m3" }"#,
];

/// Error statistics of one quantized tensor against its original.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ErrorStats {
    /// Root mean square of the error.
    pub rms: f64,
    /// Signal-to-quantization-noise ratio in dB (infinite when exact).
    pub snr_db: f64,
    /// Largest absolute error.
    pub max_abs: f64,
    /// Fraction of values the quantizer changed.
    pub changed: f64,
}

impl ErrorStats {
    /// Compares `quantized` with `original` (same length, non-empty).
    pub fn of(original: &[f32], quantized: &[f32]) -> Self {
        let n = original.len().max(1) as f64;
        let (mut signal, mut noise, mut max_abs, mut changed) = (0.0, 0.0, 0.0f64, 0usize);
        for (&x, &y) in original.iter().zip(quantized) {
            let (x, y) = (f64::from(x), f64::from(y));
            let e = (y - x).abs();
            signal += x * x;
            noise += e * e;
            max_abs = max_abs.max(e);
            changed += usize::from(x != y);
        }
        ErrorStats {
            rms: (noise / n).sqrt(),
            snr_db: 10.0 * (signal / noise).log10(),
            max_abs,
            changed: changed as f64 / n,
        }
    }
}

/// Runs the demo, printing the table to `out`.
pub fn run(args: &QuantizeArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let specs: Vec<&str> = if args.specs.is_empty() {
        DEFAULT_SPECS.to_vec()
    } else {
        args.specs.iter().map(String::as_str).collect()
    };
    // Every spec is checked before any work.
    let quantizers = specs
        .iter()
        .map(|s| build_quantizer(s, args.backend))
        .collect::<Result<Vec<_>, _>>()?;
    let device = select_device(args.device)?;
    let internal = |e: tch::TchError| CliError::Internal(e.to_string());

    // Drawn on the CPU so that the data do not depend on --device.
    tch::manual_seed(i64::from_ne_bytes(args.seed.to_ne_bytes()));
    let x = Tensor::f_randn([i64::from(args.elements)], (Kind::Float, Device::Cpu))
        .map_err(internal)?;
    let original = Vec::<f32>::try_from(&x).map_err(internal)?;
    let x = x.f_to_device(device).map_err(internal)?;

    let mut rows = Vec::with_capacity(specs.len());
    for (spec, q) in specs.iter().zip(&quantizers) {
        let quantized = quantize_to_vec(q, &x, args.seed, spec)?;
        rows.push((
            spec.trim(),
            q.format().bits_per_value(),
            ErrorStats::of(&original, &quantized),
        ));
    }
    let header = format!(
        "{} standard-normal values (seed {}, device {})\n",
        args.elements, args.seed, args.device
    );
    let text = header + &render_table(&rows);
    out.write_all(text.as_bytes()).map_err(CliError::Stdout)
}

/// Quantizes `x` with a fresh random stream from `seed` (so each row is
/// independent of the others) and returns the values on the CPU.
fn quantize_to_vec(q: &Quantizer, x: &Tensor, seed: u64, spec: &str) -> Result<Vec<f32>, CliError> {
    let y = q
        .quantize(x, &mut QuantRng::new(seed))
        .map_err(|source| CliError::Quantize {
            tensor: format!("the demo tensor with --spec {spec}"),
            source,
        })?;
    y.f_to_device(Device::Cpu)
        .and_then(|y| Vec::<f32>::try_from(&y))
        .map_err(|e| CliError::Internal(e.to_string()))
}

/// The table: one row per spec.
fn render_table(rows: &[(&str, f64, ErrorStats)]) -> String {
    let width = rows
        .iter()
        .map(|(s, ..)| s.chars().count())
        .max()
        .unwrap_or(0)
        .max(4);
    let mut text = format!(
        "{:<width$}  {:>6}  {:>9}  {:>8}  {:>9}  {:>7}\n",
        "spec", "bits", "rms error", "SNR (dB)", "max error", "changed"
    );
    for (spec, bits, s) in rows {
        text.push_str(&format!(
            "{spec:<width$}  {bits:>6.2}  {:>9.3e}  {:>8.2}  {:>9.3e}  {:>7.4}\n",
            s.rms, s.snr_db, s.max_abs, s.changed
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_of_a_known_error() {
        let s = ErrorStats::of(&[1.0, -1.0, 2.0, 0.0], &[1.0, -1.5, 2.0, 0.5]);
        assert_eq!(s.max_abs, 0.5);
        assert_eq!(s.changed, 0.5);
        assert!((s.rms - (0.5f64 / 4.0).sqrt()).abs() < 1e-12);
        assert!((s.snr_db - 10.0 * (6.0f64 / 0.5).log10()).abs() < 1e-12);
        assert_eq!(ErrorStats::of(&[1.0], &[1.0]).snr_db, f64::INFINITY);
    }

    #[test]
    fn default_specs_build() {
        for spec in DEFAULT_SPECS {
            if let Err(e) = spec.parse::<Quantizer>() {
                panic!("{spec}: {e}");
            }
        }
    }
}
