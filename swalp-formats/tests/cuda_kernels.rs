//! The CUDA kernels' sources, checked without a GPU: each format's CUDA C
//! compiled for the CPU (its "twin", same text, see swalp-core's
//! `cuda/swalp.cuh`) equals the native kernel bit for bit for every format
//! and rounding, stochastic included, NaN payloads included; and NVRTC
//! compiles every source to PTX for compute_80 and compute_90.

use swalp_core::cuda::{self, nvrtc, run_twin};
use swalp_core::{registry::build_format, spec::parse_table, NumberFormat, QuantRng, Rounding};
use swalp_formats as _;

/// Every built-in format with a CUDA kernel, in the variants whose kernel
/// parameters or code paths differ.
const SPECS: &[&str] = &[
    r#"{ format = "fixed", wl = 8, fl = 6 }"#,
    r#"{ format = "fixed", wl = 8, fl = 4, symmetric = true }"#,
    r#"{ format = "fixed", wl = 12, fl = 6, clamp = false }"#,
    r#"{ format = "fixed", wl = 4, fl = -2 }"#,
    r#"{ format = "float", exp = 5, man = 2 }"#,
    r#"{ format = "float", exp = 4, man = 3, subnormals = false, specials = "fn", overflow = "nan" }"#,
    r#"{ format = "float", exp = 6, man = 9, overflow = "saturate" }"#,
    r#"{ format = "float", exp = 3, man = 2, specials = "none" }"#,
    r#"{ format = "float", exp = 8, man = 23 }"#,
    r#"{ format = "bfloat16" }"#,
    r#"{ format = "fp16" }"#,
    r#"{ format = "fp8_e4m3" }"#,
    r#"{ format = "fp8_e5m2" }"#,
    r#"{ format = "bfp", wl = 8, block = { dim = 0 } }"#,
    r#"{ format = "bfp", wl = 6, block = { dim = 1 }, symmetric = true }"#,
    r#"{ format = "bfp", wl = 4, ebit = 3, block = "tensor" }"#,
    r#"{ format = "bfp", wl = 5, block = { size = 7, dim = 1 } }"#,
    r#"{ format = "bfp", wl = 8, block = { dims = [0, 2] } }"#,
    r#"{ format = "bfp", wl = 8, block = { size = [4, 4], dims = [0, 1] } }"#,
    r#"{ format = "mx", elem = "fp8_e4m3" }"#,
    r#"{ format = "mx", elem = "fp8_e5m2", scale_rule = "ceil" }"#,
    r#"{ format = "mx", elem = "fp6_e2m3", block_size = 4, dim = 0 }"#,
    r#"{ format = "mx", elem = "fp6_e3m2", scale_rule = "even" }"#,
    r#"{ format = "mx", elem = "fp4_e2m1", scale_rule = "rceil" }"#,
    r#"{ format = "mx", elem = "int8", block_size = 16 }"#,
    r#"{ format = "nvfp4" }"#,
    r#"{ format = "nvfp4", tensor_scale = false }"#,
    r#"{ format = "nvfp4", block = "2d" }"#,
    r#"{ format = "fp8_scaled" }"#,
    r#"{ format = "fp8_scaled", elem = "e5m2", granularity = "row" }"#,
    r#"{ format = "fp8_scaled", granularity = { block = 16 }, pow2 = true }"#,
    r#"{ format = "fp8_scaled", granularity = { block2d = 8 } }"#,
];

fn roundings() -> Vec<Rounding> {
    let mut r = Rounding::DETERMINISTIC.to_vec();
    r.push(Rounding::STOCHASTIC);
    r.push(Rounding::Stochastic { bits: 3 });
    r
}

fn format(spec: &str) -> Box<dyn NumberFormat> {
    let table = parse_table(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
    build_format(&table).unwrap_or_else(|e| panic!("{spec}: {e}"))
}

/// Values over many binades, with ties on coarse grids, both zeros, f32
/// subnormals and extremes; `specials` adds NaN and infinities (which make
/// whole blocks NaN in block formats, so they get their own inputs).
fn values(n: usize, seed: u64, specials: bool) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut v: Vec<f32> = (0..n)
        .map(|i| {
            let r = next();
            let mantissa = (r >> 40) as f32 / (1u64 << 24) as f32 + 0.5;
            let exponent = (r % 24) as i32 - 12;
            let sign = if r & (1 << 20) != 0 { -1.0 } else { 1.0 };
            match i % 17 {
                3 => sign * (((r >> 8) % 64) as f32 * 0.125),
                5 => 0.0 * sign,
                7 => sign * f32::from_bits(((r >> 11) as u32) & 0x007f_ffff),
                11 => sign * mantissa * 2f32.powi(exponent * 8),
                _ => sign * mantissa * 2f32.powi(exponent),
            }
        })
        .collect();
    if specials {
        v[1] = f32::NAN;
        v[n / 2] = f32::INFINITY;
        v[n - 2] = f32::NEG_INFINITY;
        v[n / 3] = f32::from_bits(0xffc0_1234);
        v[n / 4] = f32::MAX;
    }
    v
}

const SHAPES: &[&[usize]] = &[&[16, 48], &[2, 6, 8, 16], &[1000]];

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn cpu_twins_equal_the_native_kernels_bit_for_bit() {
    let (mut checked, mut refused) = (0, 0);
    for spec in SPECS {
        let f = format(spec);
        for (s, shape) in SHAPES.iter().enumerate() {
            let numel: usize = shape.iter().product();
            for rounding in roundings() {
                for specials in [false, true] {
                    let x = values(numel, s as u64 * 31 + u64::from(specials), specials);
                    let mut rng = QuantRng::new(7);
                    let random = rounding.is_stochastic().then(|| rng.next_stream());
                    let mut native = vec![0.0f32; numel];
                    let native_result = f.quantize_native(&x, shape, &mut native, rounding, random);
                    let kernel = match (f.cuda_kernel(shape, rounding), native_result) {
                        (Ok(Some(kernel)), Ok(())) => kernel,
                        // A block dimension the shape lacks: both refuse.
                        (Err(_), Err(_)) => {
                            refused += 1;
                            continue;
                        }
                        (k, n) => panic!(
                            "{spec} {shape:?}: kernel {:?}, native {n:?}",
                            k.map(|k| k.map(|k| k.entry))
                        ),
                    };
                    let twin = run_twin(&kernel, &x, rounding, random)
                        .unwrap_or_else(|e| panic!("{spec}: {e}"));
                    let (n, t) = (bits(&native), bits(&twin));
                    if let Some(i) = (0..numel).find(|&i| n[i] != t[i]) {
                        panic!(
                            "{spec} {rounding} {shape:?} element {i}: x = {:e} ({:#010x}), \
                             native {:e} ({:#010x}), CUDA twin {:e} ({:#010x})",
                            x[i],
                            x[i].to_bits(),
                            native[i],
                            n[i],
                            twin[i],
                            t[i]
                        );
                    }
                    checked += 1;
                }
            }
        }
    }
    // Every spec × shape × rounding × input; refused only where a block
    // dimension is missing or NVFP4 has no whole blocks (9 spec-shape pairs).
    let cases = roundings().len() * 2;
    assert_eq!(checked + refused, SPECS.len() * SHAPES.len() * cases);
    assert!(refused <= 9 * cases, "{refused} cases refused");
}

#[test]
fn every_kernel_source_compiles_to_ptx_for_compute_80_and_90() {
    if let Err(e) = nvrtc::status() {
        println!("skipped: NVRTC is not available here ({e})");
        return;
    }
    let version = nvrtc::version().expect("NVRTC reports its version");
    let mut compiled = 0;
    for spec in SPECS {
        let f = format(spec);
        let kernel = f
            .cuda_kernel(&[2, 6, 16, 16], Rounding::NearestEven)
            .expect("kernel")
            .expect("every format here has one for a 4-D tensor");
        for cc in [80, 90] {
            let ptx = nvrtc::compile(&kernel.sources(), kernel.entry, nvrtc::Target::Ptx(cc))
                .unwrap_or_else(|e| panic!("{spec} for compute_{cc}: {e}"));
            let text = String::from_utf8_lossy(&ptx);
            assert!(
                text.contains(&format!(".entry {}(", kernel.entry)),
                "{spec}: PTX lacks the kernel {}",
                kernel.entry
            );
            assert!(
                text.contains(".entry swalp_block_maxima("),
                "{spec}: no maxima kernel"
            );
            assert!(
                text.contains(&format!(".target sm_{cc}")),
                "{spec}: wrong target"
            );
            // --fmad=false: no multiply-add of ours is fused. (MX's f64
            // division and log2 are CUDA's correctly rounded routines, built
            // of explicit f64 FMAs.)
            assert!(
                !text.contains("fma.rn.f32"),
                "{spec}: PTX fuses a multiply-add"
            );
            if !spec.contains("\"mx\"") {
                assert!(!text.contains("fma."), "{spec}: PTX fuses a multiply-add");
            }
            compiled += 1;
        }
    }
    println!(
        "NVRTC {}.{} compiled {compiled} kernels to PTX",
        version.0, version.1
    );
    assert_eq!(compiled, SPECS.len() * 2);
}

#[test]
fn a_plugins_own_kernel_compiles_through_the_same_path() {
    if let Err(e) = nvrtc::status() {
        println!("skipped: NVRTC is not available here ({e})");
        return;
    }
    // What a third-party format returns from `cuda_kernel`: its own source
    // on top of swalp.cuh's rounding rule and draws.
    let kernel = cuda::CudaKernel::new(
        cuda::CudaSource {
            name: "halving.cu",
            text: r#"#include "swalp.cuh"
typedef struct { double step; } halving_params;
SWALP_FN float halving_element(const swalp_args* a, const halving_params* p, swalp_u64 i) {
  return (float)(swalp_round(a, (double)a->x[i] / p->step, swalp_draw(a, i)) * p->step);
}
SWALP_KERNEL(halving, halving_params, halving_element)
"#,
        },
        "halving",
        cuda::KernelParams::new().f64(0.5),
    );
    let ptx = nvrtc::compile(&kernel.sources(), kernel.entry, nvrtc::Target::Ptx(90))
        .expect("a plugin's kernel compiles");
    assert!(String::from_utf8_lossy(&ptx).contains(".entry halving("));
}

#[test]
fn a_source_error_is_reported_with_the_kernel_and_nvrtcs_message() {
    if let Err(e) = nvrtc::status() {
        println!("skipped: NVRTC is not available here ({e})");
        return;
    }
    let broken = cuda::CudaSource {
        name: "broken.cu",
        text: "#include \"swalp.cuh\"\nthis is not C;\n",
    };
    let err = nvrtc::compile(&[broken, cuda::HEADER], "broken", nvrtc::Target::Ptx(90))
        .expect_err("NVRTC rejects it");
    let message = err.to_string();
    assert!(
        message.contains("broken") && message.contains("compute_90"),
        "{message}"
    );
    assert!(message.contains("error"), "{message}");
}

// ---- on a GPU (skipped without one) ----

use swalp_core::format::dispatch;
use swalp_core::tch::{self, Device, Kind, Tensor};
use swalp_core::Backend;

/// The first CUDA device, or `None` after printing why the test is skipped.
fn gpu() -> Option<Device> {
    if tch::Cuda::is_available() {
        Some(Device::Cuda(0))
    } else {
        println!("skipped: no CUDA device");
        None
    }
}

/// Equal bits, or both NaN (GPU arithmetic makes its own NaN patterns).
fn same(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

#[test]
fn gpu_kernels_equal_the_native_kernels() {
    let Some(device) = gpu() else { return };
    let mut checked = 0;
    for spec in SPECS {
        let f = format(spec);
        for (s, shape) in SHAPES.iter().enumerate() {
            let numel: usize = shape.iter().product();
            let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
            for rounding in roundings() {
                for specials in [false, true] {
                    let x = values(numel, s as u64 * 31 + u64::from(specials), specials);
                    let mut native = vec![0.0f32; numel];
                    let mut rng = QuantRng::new(7);
                    let random = rounding.is_stochastic().then(|| rng.next_stream());
                    if f.quantize_native(&x, shape, &mut native, rounding, random)
                        .is_err()
                    {
                        continue;
                    }
                    let t = Tensor::from_slice(&x)
                        .view(dims.as_slice())
                        .to_device(device);
                    let y =
                        dispatch::quantize(&*f, &t, rounding, &mut QuantRng::new(7), Backend::Cuda)
                            .unwrap_or_else(|e| panic!("{spec} {rounding} {shape:?}: {e}"));
                    let y: Vec<f32> =
                        Vec::try_from(y.to_device(Device::Cpu).flatten(0, -1)).expect("f32 result");
                    if let Some(i) = (0..numel).find(|&i| !same(y[i], native[i])) {
                        panic!(
                            "{spec} {rounding} {shape:?} element {i}: x = {:e}, native {:e}, CUDA {:e}",
                            x[i], native[i], y[i]
                        );
                    }
                    checked += 1;
                }
            }
        }
    }
    println!("{checked} GPU cases equal the native kernels");
    assert!(checked > SPECS.len() * 16);
}

#[test]
fn gpu_auto_backend_rounds_f32_bf16_and_f16_as_the_tensor_backend() {
    let Some(device) = gpu() else { return };
    let x = values(4096, 3, false);
    for spec in [
        r#"{ format = "bfp", wl = 8, block = { dim = 0 } }"#,
        r#"{ format = "fp8_e4m3" }"#,
        r#"{ format = "nvfp4" }"#,
    ] {
        let f = format(spec);
        for kind in [Kind::Float, Kind::BFloat16, Kind::Half] {
            let t = Tensor::from_slice(&x)
                .view([64, 64])
                .to_kind(kind)
                .to_device(device);
            for rounding in [Rounding::NearestEven, Rounding::STOCHASTIC] {
                let auto =
                    dispatch::quantize(&*f, &t, rounding, &mut QuantRng::new(1), Backend::Auto)
                        .expect("auto");
                let tensor =
                    dispatch::quantize(&*f, &t, rounding, &mut QuantRng::new(1), Backend::Tensor)
                        .expect("tensor");
                assert_eq!(auto.kind(), kind);
                let differ = auto
                    .to_kind(Kind::Float)
                    .ne_tensor(&tensor.to_kind(Kind::Float))
                    .logical_and(&auto.isnan().logical_not())
                    .sum(Kind::Int64)
                    .int64_value(&[]);
                assert_eq!(differ, 0, "{spec} {kind:?} {rounding}");
            }
        }
    }
}
