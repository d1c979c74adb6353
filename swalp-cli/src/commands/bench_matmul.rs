//! `swalp-cli bench --matmul`: matrix products that multiply and
//! accumulate in chosen formats ([`swalp_core::matmul::Accumulation`]),
//! next to libtorch's `f32` product into a warm output (`matmul_out`), the
//! honest floor.
//!
//! The product is `[M, K] · [K, N]` with `M = --batch` (default 256) and
//! `K = N = 512`, a hidden layer of the MLP at a large batch. Each
//! configuration is timed on each native CPU kernel that computes it (the
//! `f32` lanes, which `matmul` prefers, and the `f64` kernel); one is also
//! timed on the tensor implementation, the one other devices use (one call:
//! it takes seconds). Native times are the best of several repetitions; all
//! are in nanoseconds per multiply-add.

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::json;
use swalp_core::matmul::{Accumulation, CpuKernel};
use swalp_core::tch::{self, Device, Kind, Tensor};
use swalp_core::{QuantRng, Quantizer};

use super::timing::{best_of, machine};
use crate::cli::BenchArgs;
use crate::error::CliError;

/// A configuration timed: product, accumulator, chunk, chunk accumulator
/// (`None`: exact product, one sum, `f32` chunks).
type Config = (
    Option<&'static str>,
    &'static str,
    Option<usize>,
    Option<&'static str>,
);

/// The configurations timed.
const CONFIGS: [Config; 6] = [
    (Some("fp8_e5m2"), "fp16", Some(1), None),
    (Some("fp8_e5m2"), "fp16", Some(32), None),
    (Some("fp8_e5m2"), "fp16", Some(64), None),
    (Some("fp8_e5m2"), "fp16", None, None),
    (None, "fp16", Some(64), None),
    (None, "bfloat16", Some(64), Some("fp16")),
];

/// The configuration also timed on the tensor implementation.
const TENSOR_TIMED: usize = 2;

fn quantizer(name: &str) -> Result<Quantizer, CliError> {
    format!("{{ format = {name:?} }}")
        .parse()
        .map_err(|e: swalp_core::SpecError| CliError::Internal(e.to_string()))
}

fn describe(config: &Config) -> String {
    let (product, acc, chunk, chunk_acc) = config;
    format!(
        "products {}, sum {acc}, {}",
        product.unwrap_or("exact"),
        match chunk {
            None => "one running sum".to_string(),
            Some(c) => format!("chunks of {c} in {}", chunk_acc.unwrap_or("f32")),
        }
    )
}

/// The best time of `kernel` on `a · b`, or `None` where that kernel does
/// not compute this product.
fn time_native(
    accumulation: &Accumulation,
    a: &Tensor,
    b: &Tensor,
    kernel: CpuKernel,
) -> Result<Option<Duration>, CliError> {
    let mut rng = QuantRng::new(0);
    let internal = |e: swalp_core::Error| CliError::Internal(e.to_string());
    if accumulation
        .matmul_cpu(a, b, &mut rng, kernel)
        .map_err(internal)?
        .is_none()
    {
        return Ok(None);
    }
    let mut failure = None;
    let best = best_of(|| {
        if let Err(e) = accumulation.matmul_cpu(a, b, &mut rng, kernel) {
            failure = Some(e);
        }
    });
    match failure {
        Some(e) => Err(internal(e)),
        None => Ok(Some(best)),
    }
}

/// Runs the benchmark, writing a Markdown table (or JSON lines).
pub fn run(args: &BenchArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let m = args.batch.unwrap_or(256) as i64;
    let (k, n) = (512i64, 512i64);
    let macs = (m * k * n) as f64;
    let per_mac = |d: Duration| d.as_secs_f64() * 1e9 / macs;
    tch::manual_seed(0);
    let a = Tensor::randn([m, k], (Kind::Float, Device::Cpu));
    let b = Tensor::randn([k, n], (Kind::Float, Device::Cpu)) * 0.05;
    let warm = Tensor::zeros([m, n], (Kind::Float, Device::Cpu));
    let floor = per_mac(best_of(|| {
        let _ = a.matmul_out(&warm, &b);
    }));
    let mut rows = vec![
        json!({ "what": "libtorch f32 matmul into a warm output", "implementation": "libtorch",
                                "ns_per_mac": floor, "x_libtorch": 1.0 }),
    ];
    for (i, config) in CONFIGS.iter().enumerate() {
        let (product, acc, chunk, chunk_acc) = *config;
        let accumulation = Accumulation::new(
            product.map(quantizer).transpose()?,
            quantizer(acc)?,
            chunk,
            chunk_acc.map(quantizer).transpose()?,
        )
        .map_err(|e| CliError::Internal(e.to_string()))?;
        for (label, kernel) in [
            ("native f32 lanes", CpuKernel::Lanes),
            ("native f64", CpuKernel::F64),
        ] {
            if let Some(ns) = time_native(&accumulation, &a, &b, kernel)? {
                rows.push(json!({ "what": describe(config), "implementation": label,
                                  "ns_per_mac": per_mac(ns), "x_libtorch": per_mac(ns) / floor }));
            }
        }
        if i == TENSOR_TIMED {
            // The tensor implementation takes seconds: one call is timed.
            let start = Instant::now();
            let _ = accumulation
                .matmul_tensor(&a, &b, &mut QuantRng::new(0))
                .map_err(|e| CliError::Internal(e.to_string()))?;
            let tensor = per_mac(start.elapsed());
            rows.push(
                json!({ "what": describe(config), "implementation": "tensor",
                              "ns_per_mac": tensor, "x_libtorch": tensor / floor }),
            );
        }
    }
    if args.json {
        for row in rows {
            writeln!(out, "{row}").map_err(CliError::Stdout)?;
        }
        return Ok(());
    }
    let mut text = format!(
        "Matrix product [{m}, {k}] x [{k}, {n}], {}\n\n\
         | arithmetic | implementation | ns/multiply-add | x libtorch f32 |\n|---|---|---:|---:|\n",
        machine()
    );
    for row in &rows {
        text += &format!(
            "| {} | {} | {:.3} | {:.1} |\n",
            row["what"].as_str().unwrap_or(""),
            row["implementation"].as_str().unwrap_or(""),
            row["ns_per_mac"].as_f64().unwrap_or(f64::NAN),
            row["x_libtorch"].as_f64().unwrap_or(f64::NAN),
        );
    }
    out.write_all(text.as_bytes()).map_err(CliError::Stdout)
}
