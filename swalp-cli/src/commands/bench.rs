//! `swalp-cli bench`: how fast each format rounds, next to a plain copy, and
//! what low-precision training costs per step.
//!
//! Kernel timings are the best of several repetitions after a warm-up, in
//! nanoseconds per element, on `--elements` f32 values (default 2^24). The
//! training benchmark times one VGG16 step on CIFAR-shaped random input
//! (batch 32) in full precision and with 8-bit block floating point and
//! stochastic rounding at all six points, taking the median of several
//! steps after warm-up.

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::json;
use swalp_core::tch::{self, nn::ModuleT, Device, Kind, Tensor};
use swalp_core::{Backend, QuantRng, Quantizer, Rounding};

use crate::cli::BenchArgs;
use crate::error::CliError;

/// The formats timed: every built-in format family, per tensor and per
/// dimension 0 for block formats.
pub const SPECS: [&str; 6] = [
    r#"{ format = "fixed", wl = 8, fl = 6 }"#,
    r#"{ format = "float", exp = 5, man = 2 }"#,
    r#"{ format = "bfp", wl = 8, block = "tensor" }"#,
    r#"{ format = "bfp", wl = 8, block = { dim = 0 } }"#,
    r#"{ format = "mx", elem = "fp8_e4m3" }"#,
    r#"{ format = "bfloat16" }"#,
];

const REPETITIONS: usize = 7;

fn best_of(mut f: impl FnMut()) -> Duration {
    f();
    (0..REPETITIONS)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn median_of(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// Runs `bench`, printing a table or JSON lines to `out`.
pub fn run(args: &BenchArgs, out: &mut dyn Write) -> Result<(), CliError> {
    if args.train {
        return train(args, out);
    }
    let n = args.elements as i64;
    tch::manual_seed(0);
    let x = Tensor::randn([n / 4096, 4096], (Kind::Float, Device::Cpu));
    let mut rows = Vec::new();
    let mut labels = vec!["copy".to_string()];
    let copy = best_of(|| {
        let _ = x.copy();
    });
    rows.push(
        json!({ "format": "copy", "rounding": null, "backend": "tensor", "elements": n,
                      "ns_per_elem": copy.as_secs_f64() * 1e9 / n as f64 }),
    );
    let mut rng = QuantRng::new(0);
    for spec in SPECS {
        for rounding in [Rounding::NearestEven, Rounding::STOCHASTIC] {
            for backend in [Backend::Native, Backend::Tensor] {
                let q: Quantizer = spec
                    .parse()
                    .map_err(|e| CliError::Internal(format!("{spec}: {e}")))?;
                let q = q.with_rounding(rounding).with_backend(backend);
                let mut failed = None;
                let time = best_of(|| {
                    if let Err(e) = q.quantize(&x, &mut rng) {
                        failed = Some(e);
                    }
                });
                if let Some(e) = failed {
                    return Err(CliError::Internal(format!("bench {spec}: {e}")));
                }
                let spec_value: toml::Value =
                    toml::Value::Table(swalp_core::spec::parse_table(spec).unwrap_or_default());
                labels.push(spec.to_string());
                rows.push(
                    json!({ "format": spec_value, "rounding": rounding.to_string(),
                                  "backend": backend.to_string(), "elements": n,
                                  "ns_per_elem": time.as_secs_f64() * 1e9 / n as f64 }),
                );
            }
        }
    }
    for (row, format) in rows.iter().zip(&labels) {
        if args.json {
            writeln!(out, "{row}").map_err(CliError::Stdout)?;
        } else {
            writeln!(
                out,
                "{:<58} {:<14} {:<7} {:>8.2} ns/elem",
                format,
                row["rounding"].as_str().unwrap_or("-"),
                row["backend"].as_str().unwrap_or("-"),
                row["ns_per_elem"].as_f64().unwrap_or(f64::NAN)
            )
            .map_err(CliError::Stdout)?;
        }
    }
    Ok(())
}

/// One VGG16 step, full precision versus 8-bit BFP at all six points.
fn train(args: &BenchArgs, out: &mut dyn Write) -> Result<(), CliError> {
    use crate::models::vgg;
    use swalp_core::hook::shared_rng;
    use swalp_core::optim::{OptimQuantizers, Sgd, SgdConfig};
    use swalp_core::points::PointConfig;

    let device = Device::cuda_if_available();
    let lp_points: PointConfig = {
        let table: toml::Table = toml::from_str(
            r#"
            default = { format = "bfp", wl = 8, small_block = "fc", rounding = "stochastic" }
            activation = { small_block = "none" }
            error = { small_block = "none" }
            "#,
        )
        .map_err(|e| CliError::Internal(e.to_string()))?;
        PointConfig::from_table(&table).map_err(|e| CliError::Internal(e.to_string()))?
    };
    let step_time = |points: &PointConfig| -> Result<Duration, CliError> {
        tch::manual_seed(0);
        let rng = shared_rng(0);
        let model = vgg::build(
            vgg::Variant {
                depth: 16,
                batchnorm: false,
            },
            3,
            10,
            points,
            rng.clone(),
            device,
        );
        let config = SgdConfig {
            momentum: 0.9,
            weight_decay: 5e-4,
            ..SgdConfig::new(0.05)
        };
        let mut opt =
            Sgd::from_var_store(&model.vs, config, OptimQuantizers::from_points(points), rng)
                .map_err(|e| CliError::Internal(e.to_string()))?;
        let x = Tensor::randn([32, 3, 32, 32], (Kind::Float, device));
        let y = Tensor::randint(10, [32], (Kind::Int64, device));
        let mut times = Vec::new();
        for i in 0..args.steps + 2 {
            let start = Instant::now();
            let loss = model.net.forward_t(&x, true).cross_entropy_for_logits(&y);
            opt.zero_grad();
            loss.backward();
            opt.step().map_err(|e| CliError::Internal(e.to_string()))?;
            let _ = loss.double_value(&[]);
            if i >= 2 {
                times.push(start.elapsed());
            }
        }
        Ok(median_of(times))
    };
    let fp = step_time(&PointConfig::full_precision())?;
    let lp = step_time(&lp_points)?;
    let row = json!({ "model": "vgg16", "batch": 32, "device": format!("{device:?}"),
                      "fp_step_s": fp.as_secs_f64(), "lp_step_s": lp.as_secs_f64(),
                      "ratio": lp.as_secs_f64() / fp.as_secs_f64() });
    if args.json {
        writeln!(out, "{row}").map_err(CliError::Stdout)
    } else {
        writeln!(
            out,
            "VGG16 step, batch 32, {device:?}: full precision {:.3} s, 8-bit BFP at all points {:.3} s ({:.2}x)",
            fp.as_secs_f64(),
            lp.as_secs_f64(),
            lp.as_secs_f64() / fp.as_secs_f64()
        )
        .map_err(CliError::Stdout)
    }
}
