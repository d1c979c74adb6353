//! `swalp-cli bench`: how fast each format rounds, next to a plain copy, and
//! what low-precision training costs per step.
//!
//! Kernel timings are the best of several repetitions after a warm-up, in
//! nanoseconds per element, on `--elements` f32 values (default 2^24, a
//! `[N/4096, 4096]` tensor). Each kernel writes into a warm output tensor
//! (`Quantizer::quantize_into`), and is reported next to its ratio to the
//! honest floor: copying the same tensor into a warm buffer (`copy_`). A
//! copy into a fresh tensor is shown too: it pays a page fault per 4 KiB
//! of output, which is what a kernel returning a new tensor pays on top. The training benchmark times one VGG16
//! step on CIFAR-shaped random input (batch 32) in full precision and with
//! 8-bit block floating point and stochastic rounding at all six points;
//! the two models take turns in rounds of a few steps, so both see the same
//! machine load, and each reports the median of its steps after warm-up.
//!
//! With `--device cuda` the kernels are timed on the first GPU, the CUDA
//! backend next to the tensor backend and a device-to-device copy into a
//! warm buffer; each timing then covers several calls ended by one device
//! synchronisation, so launch latency is amortised as in training. The
//! training step defaults to the GPU when there is one, at batch 128.
//!
//! The text output is a Markdown table headed by the machine (CPU model,
//! logical CPUs, libtorch threads) and the UTC date, ready to paste.

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::json;
use swalp_core::tch::{self, nn::ModuleT, Device, Kind, Tensor};
use swalp_core::{Backend, QuantRng, Quantizer, Rounding};

use crate::cli::{BenchArgs, DeviceArg};
use crate::commands::quantize::select_device;
use crate::commands::timing::{best_of, machine, REPETITIONS};
use crate::error::CliError;

/// The formats timed: every built-in format family, per tensor and per
/// dimension 0 for block formats.
pub const SPECS: [&str; 10] = [
    r#"{ format = "fixed", wl = 8, fl = 6 }"#,
    r#"{ format = "float", exp = 5, man = 2 }"#,
    r#"{ format = "bfp", wl = 8, block = "tensor" }"#,
    r#"{ format = "bfp", wl = 8, block = { dim = 0 } }"#,
    r#"{ format = "mx", elem = "fp8_e4m3" }"#,
    r#"{ format = "nvfp4" }"#,
    r#"{ format = "nvfp4", block = "2d" }"#,
    r#"{ format = "fp8_scaled" }"#,
    r#"{ format = "fp8_scaled", granularity = { block = 128 } }"#,
    r#"{ format = "bfloat16" }"#,
];

const WARMUP_STEPS: u64 = 2;
const ROUND_STEPS: u64 = 5;

/// Calls per timing on `device`: one on the CPU; on a GPU several, ended by
/// one synchronisation, so that the launch and the wait are amortised.
fn calls_per_timing(device: Device) -> u32 {
    if device.is_cuda() {
        20
    } else {
        1
    }
}

/// Waits for `device` to finish its queued work.
fn synchronize(device: Device) {
    if let Device::Cuda(ordinal) = device {
        tch::Cuda::synchronize(ordinal as i64);
    }
}

/// [`best_of`] `f` on `device`, per call: `f` runs
/// [`calls_per_timing`] times per timing, then the device is waited for.
fn best_per_call(device: Device, mut f: impl FnMut()) -> Duration {
    let calls = calls_per_timing(device);
    best_of(|| {
        for _ in 0..calls {
            f();
        }
        synchronize(device);
    }) / calls
}

fn median_of(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// The device in words, the GPU's name included.
fn device_label(device: Device) -> String {
    match device {
        Device::Cuda(i) => format!("cuda:{i}"),
        _ => "the CPU".into(),
    }
}

/// Runs `bench`, printing a table or JSON lines to `out`.
pub fn run(args: &BenchArgs, out: &mut dyn Write) -> Result<(), CliError> {
    if args.train {
        return train(args, out);
    }
    if args.matmul {
        return super::bench_matmul::run(args, out);
    }
    let device = select_device(args.device.unwrap_or(DeviceArg::Cpu))?;
    let n = args.elements as i64;
    tch::manual_seed(0);
    let x = Tensor::randn([n / 4096, 4096], (Kind::Float, device));
    let mut warm = x.zeros_like();
    let per_elem = |d: Duration| d.as_secs_f64() * 1e9 / n as f64;
    let copy_ns = per_elem(best_per_call(device, || {
        warm.copy_(&x);
    }));
    let fresh_ns = per_elem(best_per_call(device, || {
        let _ = x.copy();
    }));
    let device_name = if device.is_cuda() { "cuda" } else { "cpu" };
    let mut rows = vec![
        json!({
            "format": "copy into a warm buffer", "rounding": null, "backend": "tensor",
            "device": device_name, "elements": n, "ns_per_elem": copy_ns, "x_copy": 1.0,
        }),
        json!({
            "format": "copy into a fresh tensor", "rounding": null, "backend": "tensor",
            "device": device_name, "elements": n, "ns_per_elem": fresh_ns,
            "x_copy": fresh_ns / copy_ns,
        }),
    ];
    // The fused kernel of the device first, then the tensor kernel.
    let fused = if device.is_cuda() {
        Backend::Cuda
    } else {
        Backend::Native
    };
    // Every native kernel first, then every tensor kernel: the tensor
    // kernels' large f64 temporaries would otherwise churn the allocator and
    // the page cache between native timings.
    let specs: Vec<&str> = if args.formats.is_empty() {
        SPECS.to_vec()
    } else {
        args.formats.iter().map(String::as_str).collect()
    };
    let quantizers = specs
        .iter()
        .map(|spec| {
            spec.parse::<Quantizer>()
                .map_err(|e| CliError::Usage(format!("--format {spec}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut rng = QuantRng::new(0);
    let mut timed = std::collections::HashMap::new();
    for backend in [fused, Backend::Tensor] {
        for (&spec, q) in specs.iter().zip(&quantizers) {
            for rounding in [Rounding::NearestEven, Rounding::STOCHASTIC] {
                let q = q.clone().with_rounding(rounding).with_backend(backend);
                let mut failed = None;
                let time = best_per_call(device, || {
                    if let Err(e) = q.quantize_into(&x, &mut warm, &mut rng) {
                        failed = Some(e);
                    }
                });
                if let Some(e) = failed {
                    return Err(CliError::Internal(format!("bench {spec}: {e}")));
                }
                timed.insert((spec, rounding.to_string(), backend), time);
            }
        }
    }
    for &spec in &specs {
        for rounding in [Rounding::NearestEven, Rounding::STOCHASTIC] {
            for backend in [fused, Backend::Tensor] {
                let spec_value: toml::Value =
                    toml::Value::Table(swalp_core::spec::parse_table(spec).unwrap_or_default());
                let ns = per_elem(timed[&(spec, rounding.to_string(), backend)]);
                rows.push(json!({
                    "format": spec_value, "rounding": rounding.to_string(),
                    "backend": backend.to_string(), "device": device_name, "elements": n,
                    "ns_per_elem": ns, "x_copy": ns / copy_ns,
                }));
            }
        }
    }
    if args.json {
        for row in &rows {
            writeln!(out, "{row}").map_err(CliError::Stdout)?;
        }
        return Ok(());
    }
    let w = |out: &mut dyn Write, line: String| writeln!(out, "{line}").map_err(CliError::Stdout);
    w(
        out,
        format!(
            "{n} f32 elements into a warm output on {}, ns per element (best of {REPETITIONS}) and ratio to a copy into a warm buffer; {}",
            device_label(device),
            machine()
        ),
    )?;
    w(out, String::new())?;
    w(
        out,
        format!("| format | rounding | {fused} ns/elem | {fused} ÷ copy | tensor ns/elem | tensor ÷ copy |"),
    )?;
    w(out, "|---|---|---:|---:|---:|---:|".into())?;
    w(
        out,
        format!("| copy into a warm buffer (the floor) | | {copy_ns:.2} | 1.00 | | |"),
    )?;
    w(
        out,
        format!(
            "| copy into a fresh tensor | | {fresh_ns:.2} | {:.2} | | |",
            fresh_ns / copy_ns
        ),
    )?;
    // Rows 2.. come in (fused, tensor) pairs per spec and rounding.
    for (pair, spec) in rows[2..].chunks(2).zip(specs.iter().flat_map(|s| [s, s])) {
        let cell = |row: &serde_json::Value| {
            let ns = row["ns_per_elem"].as_f64().unwrap_or(f64::NAN);
            (ns, ns / copy_ns)
        };
        let ((native, native_x), (tensor, tensor_x)) = (cell(&pair[0]), cell(&pair[1]));
        w(
            out,
            format!(
                "| `{spec}` | {} | {native:.2} | {native_x:.2} | {tensor:.2} | {tensor_x:.2} |",
                pair[0]["rounding"].as_str().unwrap_or("-"),
            ),
        )?;
    }
    Ok(())
}

/// One VGG16 step, full precision versus 8-bit BFP at all six points.
fn train(args: &BenchArgs, out: &mut dyn Write) -> Result<(), CliError> {
    use crate::models::vgg;
    use swalp_core::hook::shared_rng;
    use swalp_core::optim::{OptimQuantizers, Sgd, SgdConfig};
    use swalp_core::points::PointConfig;

    let device = match args.device {
        Some(arg) => select_device(arg)?,
        None => Device::cuda_if_available(),
    };
    let batch = args
        .batch
        .unwrap_or(if device.is_cuda() { 128 } else { 32 }) as i64;
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
    let internal = |e: swalp_core::Error| CliError::Internal(e.to_string());
    // A model, its optimizer, and a batch.
    let setup = |points: &PointConfig| -> Result<_, CliError> {
        tch::manual_seed(0);
        let rng = shared_rng(0);
        let model = vgg::build(
            vgg::Variant {
                depth: 16,
                batchnorm: false,
                dropout: vgg::DROPOUT,
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
        let opt = Sgd::from_var_store(&model.vs, config, OptimQuantizers::from_points(points), rng)
            .map_err(internal)?;
        let x = Tensor::randn([batch, 3, 32, 32], (Kind::Float, device));
        let y = Tensor::randint(10, [batch], (Kind::Int64, device));
        Ok((model, opt, x, y))
    };
    let mut runs = [setup(&PointConfig::full_precision())?, setup(&lp_points)?];
    let mut times = [Vec::new(), Vec::new()];
    // Full precision and low precision take turns in rounds of a few steps
    // (the first steps of each round are warm-up), so that both see the same
    // machine load without evicting each other's caches at every step.
    let mut left = args.steps;
    while left > 0 {
        let round = left.min(ROUND_STEPS);
        for ((model, opt, x, y), times) in runs.iter_mut().zip(&mut times) {
            for i in 0..round + WARMUP_STEPS {
                let start = Instant::now();
                let loss = model.net.forward_t(x, true).cross_entropy_for_logits(y);
                opt.zero_grad();
                loss.backward();
                opt.step().map_err(internal)?;
                // Waits for the device, so the time covers the whole step.
                let _ = loss.double_value(&[]);
                if i >= WARMUP_STEPS {
                    times.push(start.elapsed());
                }
            }
        }
        left -= round;
    }
    let [fp, lp] = times.map(median_of);
    let row = json!({ "model": "vgg16", "batch": batch, "device": device_label(device),
                      "threads": tch::get_num_threads(), "steps": args.steps,
                      "fp_step_s": fp.as_secs_f64(), "lp_step_s": lp.as_secs_f64(),
                      "ratio": lp.as_secs_f64() / fp.as_secs_f64() });
    if args.json {
        writeln!(out, "{row}").map_err(CliError::Stdout)
    } else {
        writeln!(
            out,
            "VGG16 step, batch {batch}, {} (median of {} steps; {}): full precision {:.3} s, 8-bit BFP at all points {:.3} s ({:.2}x)",
            device_label(device),
            args.steps,
            machine(),
            fp.as_secs_f64(),
            lp.as_secs_f64(),
            lp.as_secs_f64() / fp.as_secs_f64()
        )
        .map_err(CliError::Stdout)
    }
}
