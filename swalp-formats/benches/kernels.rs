//! Criterion benchmarks of the native kernels: `cargo bench -p swalp-formats`
//! (with `swalp-cli/scripts/with-torch` in front, as every build here).
//!
//! Two groups, each on 2^20 f32 values (a 256 x 4096 tensor, 4 MiB) and
//! reported in elements per second:
//!
//! - `quantize`: `Quantizer::quantize` with the native backend, what a
//!   training step calls (a fresh output tensor each time), next to libtorch's
//!   own copy of the same tensor as the floor;
//! - `native_slice`: the kernel alone (`NumberFormat::quantize_native` into a
//!   reused buffer), without tensor allocation.
//!
//! For the 16M-element tables of the README, use `swalp-cli bench`.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::time::Duration;
use swalp_core::tch::{self, Device, Kind, Tensor};
use swalp_core::{Backend, QuantRng, Quantizer, Rounding};
use swalp_formats as _;

const ROWS: i64 = 256;
const COLS: i64 = 4096;

const SPECS: [(&str, &str); 5] = [
    ("fixed", r#"{ format = "fixed", wl = 8, fl = 6 }"#),
    ("float", r#"{ format = "float", exp = 5, man = 2 }"#),
    (
        "bfp_tensor",
        r#"{ format = "bfp", wl = 8, block = "tensor" }"#,
    ),
    (
        "bfp_dim0",
        r#"{ format = "bfp", wl = 8, block = { dim = 0 } }"#,
    ),
    ("mx_fp8_e4m3", r#"{ format = "mx", elem = "fp8_e4m3" }"#),
];

const ROUNDINGS: [(&str, Rounding); 2] = [
    ("nearest", Rounding::NearestEven),
    ("stochastic", Rounding::STOCHASTIC),
];

fn input() -> Tensor {
    tch::manual_seed(0);
    Tensor::randn([ROWS, COLS], (Kind::Float, Device::Cpu))
}

fn quantizer(spec: &str, rounding: Rounding) -> Quantizer {
    let q: Quantizer = spec.parse().expect("benchmark specs are valid");
    q.with_rounding(rounding).with_backend(Backend::Native)
}

fn quantize(c: &mut Criterion) {
    let x = input();
    let mut group = c.benchmark_group("quantize");
    group.throughput(Throughput::Elements((ROWS * COLS) as u64));
    group.bench_function("copy", |b| b.iter(|| black_box(x.copy())));
    let mut rng = QuantRng::new(0);
    for (name, spec) in SPECS {
        for (mode, rounding) in ROUNDINGS {
            let q = quantizer(spec, rounding);
            group.bench_function(BenchmarkId::new(name, mode), |b| {
                b.iter(|| black_box(q.quantize(&x, &mut rng).expect("quantize")))
            });
        }
    }
    group.finish();
}

fn native_slice(c: &mut Criterion) {
    let x: Vec<f32> = Vec::try_from(input().flatten(0, -1)).expect("f32 values");
    let shape = [ROWS as usize, COLS as usize];
    let mut out = vec![0.0f32; x.len()];
    let mut group = c.benchmark_group("native_slice");
    group.throughput(Throughput::Elements(x.len() as u64));
    let mut rng = QuantRng::new(0);
    for (name, spec) in SPECS {
        for (mode, rounding) in ROUNDINGS {
            let q = quantizer(spec, rounding);
            group.bench_function(BenchmarkId::new(name, mode), |b| {
                b.iter(|| {
                    let random = rounding.is_stochastic().then(|| rng.next_stream());
                    q.format()
                        .quantize_native(&x, &shape, &mut out, rounding, random)
                        .expect("native kernel");
                    black_box(&out);
                })
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    // Short runs: the whole suite takes well under a minute.
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(700))
        .sample_size(20);
    targets = quantize, native_slice
}
criterion_main!(benches);
